"""Extend by fine-tuning (notebook 08b): PI, NTK-aware, YaRN and direct fine-tuning from the notebook-04 model.

Chen et al. 2023 (Positional Interpolation, arXiv 2306.15595, Tables 3-4) fine-tune LLaMA from 2048 to 8192-32768
positions for 1000 steps with interpolated positions, and compare with fine-tuning on plain positions ("direct"),
whose effective window (passkey k_max) grows far less; Peng et al. 2023 (YaRN, arXiv 2309.00071) claim the same
with fewer steps, and a model whose scale covers a longer length than its fine-tuning data. Here: the plain model of
each training seed of notebook 04 (length L) is fine-tuned at L' = :data:`EXTEND` x L with each method of
:data:`METHODS`, every method on the same batches (the batch of step t depends on the training seed and t only),
with the same steps, learning rate and schedule (a short linear warm-up, then constant, so that the weights after t
steps of one run are the weights of a t-step run: the snapshots of :data:`SETTINGS` are fine-tuning budgets, not
points of a decaying schedule). Each method keeps its own position scheme at every length it is evaluated at: L, L'
and 2L' (losses and accuracies per test window, on each seed's own non-repeated windows of notebook 04; beyond L
also the loss before and from position L). Step 0 is the pre-trained model under the same scheme.

Passkey (PI's Table 4): the text models never retrieve (the key bytes never occur in their corpus), so the same
text fine-tuning also starts from notebook 07's retrieval model (:func:`harness.retrieval_model`: notebook 04's
model fine-tuned to retrieve within L) for :data:`RETRIEVAL_METHODS`, and its k_max at L' is measured before and
after.

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
from .harness import (
    PROFILE_SETTINGS,
    RETRIEVAL,
    RETRIEVAL_BUDGET,
    Harness,
    at_every_length,
    finish,
    retrieval_model,
    run_seeds,
    scheme_for,
    shared_models,
)

NAME = "finetune"
EXTEND = 4  # L' = 4L (PI's 2048 -> 8192)
# YaRN tuned to cover 2L' (s = 2L'/L), fine-tuned at L' like the others: YaRN's way past its fine-tuning data (Peng et
# al. fine-tune s = 32 on 64k-token data and evaluate to 128k); "YaRN" itself (s = L'/L) is then past its own s at 2L'.
YARN_WIDE = f"YaRN (s = {2 * EXTEND})"
# method -> (the harness method whose scheme the model is fine-tuned and evaluated with, its scale s)
METHODS: dict[str, tuple[str, int]] = {
    "Direct": ("Baseline", EXTEND),
    "PI": ("PI", EXTEND),
    "NTK-aware": ("NTK-aware", EXTEND),
    "YaRN": ("YaRN", EXTEND),
    YARN_WIDE: ("YaRN", 2 * EXTEND),
}
METHOD_NOTES = {
    "Direct": "fine-tuned at L' with plain positions (PI's 'direct extrapolation' fine-tuning)",
    "PI": "fine-tuned at L' with positions interpolated by s = L'/L",
    "NTK-aware": "fine-tuned at L' with bloc97's base b*s^(d/(d-2)), s = L'/L",
    "YaRN": "fine-tuned at L' with YaRN (transformers' ramp, temperature 0.1 ln s + 1), s = L'/L",
    YARN_WIDE: "fine-tuned at L' with YaRN tuned to 2L' (s = 2L'/L): its scale covers every evaluated length",
}
# PI's Table 4 measures the effective window by passkey retrieval: k_max, the largest key distance k such that every
# distance up to k is retrieved in at least 20% of the samples. Our text models never learned to retrieve (the key
# bytes never occur in the corpus), so the test starts from notebook 07's retrieval model (notebook 04's model
# fine-tuned for retrieval at L): fine-tuned at L' on text with each of these methods, as PI fine-tunes LLaMA (which
# retrieves within its window) on text, then asked for keys at distances spaced over L'.
RETRIEVAL_METHODS: tuple[str, ...] = ("Direct", "PI", "YaRN")
PASSKEY_DISTANCES = 16  # per sample length L': distances L'/16, 2L'/16, ..., L' - 2 (PI: 32 spaced over L')
PASSKEY_SAMPLES = 32  # per distance: chance is 1/16, so 20% (7 of 32) by luck has probability ~1%
KMAX_RATE = 0.2  # PI's success rate for k_max
# Per profile: the fine-tuning run (steps, batch, lr as a fraction of pre-training's) and its kept snapshots.
SETTINGS: dict[str, dict] = {
    # CPU: 5 methods x 3 seeds x 100 steps of 8 x 256 bytes (the pre-training step's 2048 tokens), and 3 more from the
    # retrieval model: ~15 s each on 2 cores
    "smoke": dict(steps=100, batch_size=8, lr_fraction=1 / 3, warmup_steps=5, snapshots=(10, 25, 50)),
    "medium": dict(steps=100, batch_size=8, lr_fraction=1 / 3, warmup_steps=5, snapshots=(10, 25, 50)),
    # one GPU: PI's own budget shape (1000 steps, evaluated at 200 and 1000), 8 x 2048 tokens per step (pre-training's
    # 32 x 512): 16M tokens per model, 24 models ~ 5 pre-trainings (not yet run)
    "full": dict(steps=1000, batch_size=8, lr_fraction=0.1, warmup_steps=20, snapshots=(50, 100, 200, 500)),
}


def k_max(rates: Sequence[float], distances: Sequence[int], rate: float = KMAX_RATE) -> int:
    """PI's effective window: the largest distance k such that every distance up to k (of ``distances``, ascending)
    is retrieved at ``rates`` >= ``rate``; 0 when the shortest one is not."""
    best = 0
    for r, k in zip(rates, distances):
        if r < rate:
            break
        best = k
    return best


def finetune_configs(profile: str, seed: int) -> dict[str, tuple[ModelConfig, TrainConfig]]:
    """{"ft-<method>": (model config, fine-tuning config)} of training seed ``seed``: each starts from the plain
    model of notebook 04 (same seed) and trains on text at L' = EXTEND x L with its method's scheme. Then the
    retrieval model (notebook 07's, at notebook 04's base) as "retrieval", and "rft-<method>": that model fine-tuned
    the same way, for :data:`RETRIEVAL_METHODS` (snapshots are kept of the text models only)."""
    model_cfg, pre = shared_models(profile, seed)["plain"]
    digest = load_corpus().digest
    out = {
        f"ft-{method}": (model_cfg, _extension(profile, model_cfg, pre, config_key(model_cfg, pre, digest), method))
        for method in METHODS
    }
    retrieval = retrieval_model(profile, seed, model_cfg.rope_base)
    out["retrieval"] = retrieval
    parent = config_key(*retrieval, digest)
    for method in RETRIEVAL_METHODS:
        out[f"rft-{method}"] = (model_cfg, _extension(profile, model_cfg, pre, parent, method, snapshots=False))
    return out


def _extension(profile: str, model_cfg: ModelConfig, pre: TrainConfig, parent: str, method: str, *, snapshots=True):
    """The text fine-tuning at L' of ``method`` from the checkpoint ``parent``: the pre-training config with this
    profile's steps, batch and constant learning rate, and the method's scheme."""
    p = PROFILE_SETTINGS[check_profile(profile)]
    s = SETTINGS[profile]
    L = model_cfg.train_length
    harness_method, scale = METHODS[method]
    return replace(
        pre,
        steps=s["steps"],
        batch_size=s["batch_size"],
        lr=p["train"]["lr"] * s["lr_fraction"],
        min_lr_ratio=1.0,  # constant after warm-up: a snapshot after t steps is a t-step fine-tuning run
        warmup_steps=s["warmup_steps"],
        save_every=s["steps"],
        scheme=scheme_for(harness_method, float(scale), L, model_cfg.rope_base, model_cfg.head_dim),
        finetune=FineTune(init_from=parent, length=EXTEND * L, snapshots=tuple(s["snapshots"]) if snapshots else ()),
    )


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
    score it after every snapshot and at the end at L, L' and 2L' (beyond L also split at L); passkey retrieval at
    L' of the text models and of notebook 07's retrieval model before and after the same fine-tuning
    (:data:`RETRIEVAL_METHODS`); writes ``<out>/finetune.json``.

    Rows are named ``"<method> @ <steps>"``; ``@ 0`` is the pre-trained model under the method's scheme. The
    retrieval section is keyed the same way.
    """
    methods = check_names("methods", list(METHODS) if methods is None else methods, METHODS)
    one_seed = functools.partial(_one_seed, profile=check_profile(profile), methods=methods)

    def extra_models(s: int) -> dict:  # the text models of the chosen methods, and the retrieval path always
        configs = finetune_configs(profile, s).items()
        return {k: v for k, v in configs if not k.startswith("ft-") or k[len("ft-") :] in methods}

    return run_seeds(NAME, profile, device, seed, out, one_seed, extra_models=extra_models, progress=progress)


def _rows(h: Harness, configs: dict, methods: Sequence[str]) -> list:
    """Per method, the rows "<method> @ <steps>": the pre-trained model (@ 0), every snapshot and the final model,
    each under the method's fine-tuning scheme at every length (s stays what it was fine-tuned with)."""
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


def _passkey(h: Harness, rows: list, evaluated: dict, configs: dict, steps: int) -> tuple[dict, dict]:
    """Passkey hits at L' (distances spaced over L'): the text models before and after fine-tuning (added to their
    rows), and the retrieval model of notebook 07 before (under each method's scheme) and after text fine-tuning:
    ({"length", "distances"}, {"<method> @ <steps>": {distance: hits per sample}})."""
    length = EXTEND * h.L
    spaced = (round(i * length / PASSKEY_DISTANCES) for i in range(1, PASSKEY_DISTANCES + 1))
    distances = sorted({min(length - 2, k) for k in spaced})  # the longest a sample of L' bytes holds is L' - 2
    keys, _ = make_passkey_set(h.corpus, length, distances, PASSKEY_SAMPLES, seed=h.seed)

    def hits(variant: str, scheme) -> dict:
        found = passkey_hits(h.trained[variant][0], keys, scheme, batch_tokens=h.batch_tokens)  # (distances, samples)
        return {str(d): found[i].tolist() for i, d in enumerate(distances)}

    for name, variant, scheme_at, info in rows:
        if info["steps"] in (0, steps):
            evaluated[name]["passkey"] = hits(variant, scheme_at(EXTEND))
    retrieval = {}
    for method in RETRIEVAL_METHODS:
        scheme = configs[f"rft-{method}"][1].scheme
        retrieval[f"{method} @ 0"] = hits("retrieval", scheme)
        retrieval[f"{method} @ {steps}"] = hits(f"rft-{method}", scheme)
    return {"length": length, "distances": distances}, retrieval


def _one_seed(h: Harness, *, profile: str, methods: Sequence[str]) -> dict:
    ft_settings = SETTINGS[profile]
    configs = finetune_configs(profile, h.seed)
    rows = _rows(h, configs, methods)
    # L (train_length), L' and 2L' on the non-repeated set only; beyond L also split at L (the extension itself)
    evaluated = h.evaluate(rows, mults=[EXTEND, 2 * EXTEND], train_length=True, repeated_mults=[], split_at_L=True)
    passkey, retrieval = _passkey(h, rows, evaluated, configs, ft_settings["steps"])
    config = {
        "eval": h.eval_config(
            evaluated_multipliers=[1, EXTEND, 2 * EXTEND],
            passkey={**passkey, "samples": PASSKEY_SAMPLES, "chance": 1 / 16, "k_max_rate": KMAX_RATE},
        ),
        "finetune": {
            "extend": EXTEND,
            "length": EXTEND * h.L,
            **{k: v for k, v in ft_settings.items() if k != "snapshots"},
            "snapshots": list(ft_settings["snapshots"]),
            "schedule": "linear warm-up, then constant (min_lr_ratio = 1)",
            "methods": {m: METHOD_NOTES[m] for m in methods},
            "schemes": {m: configs[f"ft-{m}"][1].scheme.to_dict() for m in methods},
            "retrieval_methods": list(RETRIEVAL_METHODS),
            "retrieval_model": {**RETRIEVAL, **RETRIEVAL_BUDGET[profile]},
        },
    }
    return finish(NAME, h, config=config, rows=evaluated, retrieval=retrieval)
