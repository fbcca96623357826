"""Every checkpoint key the experiments train under stays what it was when tests/data/checkpoint_keys.json was
written: a changed key would retrain every model (and silently orphan the cached ones)."""

import functools
import json
from pathlib import Path

from rope_lib.companion.data import load_corpus
from rope_lib.companion.experiments import EXTRA_MODELS
from rope_lib.companion.experiments.harness import all_models
from rope_lib.companion.train import config_key

PINNED = json.loads((Path(__file__).parent / "data" / "checkpoint_keys.json").read_text())


def test_every_experiment_model_keeps_its_checkpoint_key():
    assert load_corpus().digest == PINNED["corpus_digest"]  # the corpus is pinned too: a new one is new data
    now = {}
    for profile in ("smoke", "medium", "full"):
        extra = [functools.partial(fn, profile) for fn in EXTRA_MODELS.values()]
        for seed, variant, model_cfg, train_cfg in all_models(profile, 0, extra):
            now[f"{profile}/seed{seed}/{variant}"] = config_key(model_cfg, train_cfg, PINNED["corpus_digest"])
    assert sorted(now) == sorted(PINNED["keys"])  # the same models...
    changed = {name: (PINNED["keys"][name][:12], key[:12]) for name, key in now.items() if key != PINNED["keys"][name]}
    assert not changed  # ...under the same keys
