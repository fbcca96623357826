"""Extend by fine-tuning (notebook 08b): PI, NTK-aware, YaRN and direct fine-tuning from the notebook-04 model.

Chen et al. 2023 (Positional Interpolation, arXiv 2306.15595, Tables 3-4) fine-tune LLaMA from 2048 to 8192-32768
positions for 1000 steps with interpolated positions, and compare with fine-tuning on plain positions ("direct");
Peng et al. 2023 (YaRN, arXiv 2309.00071) claim the same with fewer steps and better extrapolation past the
fine-tuned length. Here: the plain model of each training seed of notebook 04 (length L) is fine-tuned at
L' = :data:`EXTEND` x L with each method of :data:`METHODS`, every method on the same batches (the batch of step t
depends on the training seed and t only), with the same steps, learning rate and schedule (a short linear warm-up,
then constant, so that the weights after t steps of one run are the weights of a t-step run: the snapshots of
:data:`SNAPSHOTS` are fine-tuning budgets, not points of a decaying schedule). Each method keeps its own position
scheme, tuned once to s = L'/L, at every length it is evaluated at: L, L' and 2L' (losses and accuracies per
test window, on each seed's own non-repeated windows of notebook 04). Step 0 is the pre-trained model under the
same scheme (notebook 04's zero-shot rows at 4x).

The shared pieces (profiles, methods, test sets, evaluation) are :mod:`rope_lib.companion.experiments.harness`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace

from ..data import load_corpus, make_passkey_set
from ..evaluate import passkey_hits
from ..model import ModelConfig
from ..runtime import check_profile
from ..train import FineTune, TrainConfig, config_key, load_snapshot
from .common import check_names, register
from .harness import PROFILE_SETTINGS, Harness, at_every_length, finish, run_seeds, scheme_for, shared_models

NAME = "finetune"
EXTEND = 4  # L' = 4L (PI's 2048 -> 8192)
# method -> the harness method whose scheme (at s = EXTEND) the model is fine-tuned and evaluated with
METHODS: dict[str, str] = {"Direct": "Baseline", "PI": "PI", "NTK-aware": "NTK-aware", "YaRN": "YaRN"}
METHOD_NOTES = {
    "Direct": "fine-tuned at L' with plain positions (PI's 'direct extrapolation' fine-tuning)",
    "PI": "fine-tuned at L' with positions interpolated by s = L'/L",
    "NTK-aware": "fine-tuned at L' with bloc97's base b*s^(d/(d-2))",
    "YaRN": "fine-tuned at L' with YaRN (transformers' ramp, temperature 0.1 ln s + 1)",
}
# PI's Table 4 measures the effective window by passkey retrieval: k_max, the largest key distance retrieved in at
# least 20% of the samples. Distances as fractions of L' (the largest is L' - 2, the longest a sample holds).
PASSKEY_FRACTIONS: tuple[float, ...] = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
PASSKEY_SAMPLES = 32  # per distance: chance is 1/16, so 20% (7 of 32) by luck has probability ~1%
# Per profile: the fine-tuning run (steps, batch, lr as a fraction of pre-training's) and its kept snapshots.
SETTINGS: dict[str, dict] = {
    # CPU: 4 methods x 3 seeds x 60 steps of 8 x 256 bytes (the pre-training step's 2048 tokens) in ~3 minutes
    "smoke": dict(steps=100, batch_size=8, lr_fraction=1 / 3, warmup_steps=5, snapshots=(10, 25, 50)),
    "medium": dict(steps=100, batch_size=8, lr_fraction=1 / 3, warmup_steps=5, snapshots=(10, 25, 50)),
    # one GPU: PI's own budget shape (1000 steps, evaluated at 200 and 1000), 8 x 2048 tokens per step (pre-training's
    # 32 x 512): 16M tokens per model, 12 models ~ 2.4 pre-trainings, about 6 more minutes of an H100 (not yet run)
    "full": dict(steps=1000, batch_size=8, lr_fraction=0.1, warmup_steps=20, snapshots=(50, 100, 200, 500)),
}


def finetune_configs(profile: str, seed: int) -> dict[str, tuple[ModelConfig, TrainConfig]]:
    """{"ft-<method>": (model config, fine-tuning config)} of training seed ``seed``: each starts from the plain
    model of notebook 04 (same seed) and trains at L' = EXTEND x L with its method's scheme."""
    p = PROFILE_SETTINGS[check_profile(profile)]
    s = SETTINGS[profile]
    model_cfg, pre = shared_models(profile, seed)["plain"]
    parent = config_key(model_cfg, pre, load_corpus().digest)
    L = model_cfg.train_length
    out = {}
    for method, harness_method in METHODS.items():
        scheme = scheme_for(harness_method, float(EXTEND), L, model_cfg.rope_base, model_cfg.head_dim)
        cfg = replace(
            pre,
            steps=s["steps"],
            batch_size=s["batch_size"],
            lr=p["train"]["lr"] * s["lr_fraction"],
            min_lr_ratio=1.0,  # constant after warm-up: a snapshot after t steps is a t-step fine-tuning run
            warmup_steps=s["warmup_steps"],
            save_every=s["steps"],
            scheme=scheme,
            finetune=FineTune(init_from=parent, length=EXTEND * L, snapshots=tuple(s["snapshots"])),
        )
        out[f"ft-{method}"] = (model_cfg, cfg)
    return out


@register(NAME, list_options={"methods": METHODS}, models=finetune_configs)
def run(
    profile: str = "smoke",
    device: str | None = None,
    seed: int = 0,
    out=None,
    *,
    methods: Sequence[str] | None = None,
    progress: bool = True,
) -> dict:
    """For every training seed: fine-tune (or load) the notebook-04 plain model with each method at L' = 4L, and
    score it after every snapshot and at the end at L, L' and 2L'; writes ``<out>/finetune.json``.

    Rows are named ``"<method> @ <steps>"``; ``@ 0`` is the pre-trained model under the method's scheme.
    """
    methods = check_names("methods", list(METHODS) if methods is None else methods, METHODS)
    one_seed = functools.partial(_one_seed, profile=check_profile(profile), methods=methods)

    def extra_models(s: int) -> dict:
        return {k: v for k, v in finetune_configs(profile, s).items() if k[len("ft-") :] in methods}

    return run_seeds(NAME, profile, device, seed, out, one_seed, extra_models=extra_models, progress=progress)


def _rows(h: Harness, configs: dict, methods: Sequence[str]) -> list:
    """Per method, the rows "<method> @ <steps>": the pre-trained model (@ 0), every snapshot and the final model,
    each under the method's fine-tuning scheme at every length (s stays L'/L, as after PI's fine-tuning)."""
    rows = []
    for method in methods:
        model_cfg, cfg = configs[f"ft-{method}"]
        _, meta = h.trained[f"ft-{method}"]
        for step in (0, *cfg.snapshots, cfg.steps):
            variant = {0: "plain", cfg.steps: f"ft-{method}"}.get(step, f"ft-{method}@{step}")
            if variant not in h.trained:  # a snapshot: its own identity in the evaluation cache
                model = load_snapshot(model_cfg, cfg, h.corpus, step, h.device)
                h.trained[variant] = (model, {"key": f"{meta['key']}@{step}"})
            tokens = step * cfg.batch_size * cfg.sequence_length(model_cfg)
            info = {"method": method, "steps": step, "tokens": tokens}
            rows.append((f"{method} @ {step}", variant, at_every_length(cfg.scheme), info))
    return rows


def _one_seed(h: Harness, *, profile: str, methods: Sequence[str]) -> dict:
    ft_settings = SETTINGS[profile]
    configs = finetune_configs(profile, h.seed)
    rows = _rows(h, configs, methods)
    # L (train_length), L' and 2L' on the non-repeated set only
    evaluated = h.evaluate(rows, mults=[EXTEND, 2 * EXTEND], train_length=True, repeated_mults=[])
    # passkey retrieval at L' for the pre-trained model (each method's scheme) and after the last step
    length = EXTEND * h.L
    distances = sorted({min(length - 2, max(1, round(f * length))) for f in PASSKEY_FRACTIONS})
    keys, _ = make_passkey_set(h.corpus, length, distances, PASSKEY_SAMPLES, seed=h.seed)
    for name, variant, scheme_at, info in rows:
        if info["steps"] in (0, ft_settings["steps"]):
            hits = passkey_hits(h.trained[variant][0], keys, scheme_at(EXTEND))  # (distances, samples)
            evaluated[name]["passkey"] = {str(d): hits[i].tolist() for i, d in enumerate(distances)}
    config = {
        "eval": h.eval_config(
            evaluated_multipliers=[1, EXTEND, 2 * EXTEND],
            passkey={"length": length, "distances": distances, "samples": PASSKEY_SAMPLES, "chance": 1 / 16},
        ),
        "finetune": {
            "extend": EXTEND,
            "length": EXTEND * h.L,
            **{k: v for k, v in ft_settings.items() if k != "snapshots"},
            "snapshots": list(ft_settings["snapshots"]),
            "schedule": "linear warm-up, then constant (min_lr_ratio = 1)",
            "methods": {m: METHOD_NOTES[m] for m in methods},
            "schemes": {m: configs[f"ft-{m}"][1].scheme.to_dict() for m in methods},
        },
    }
    return finish(NAME, h, config=config, rows=evaluated)
