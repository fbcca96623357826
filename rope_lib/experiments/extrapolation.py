"""Train short, test long: Su's length-extrapolation table on a small byte-level LM (notebook 04).

Two models are trained at length L with plain RoPE: one without and one with log n in training
(``ModelConfig.train_log_n``; Su's "-log n" rows). Each is then evaluated, *without fine-tuning*, at
L' = 2L, 4L, 8L, 16L on Su's two test sets (non-repeated natural text; a half-length sample repeated) with every
method of :data:`METHODS`; the model trained without log n also with "log n-dagger" (log n at test time only).

Scale rule: every static method is tuned to the test length, s = L'/L, as in Su's table (his 4096/512 runs use
k = 8). The dynamic methods (Dynamic NTK, Dynamic YaRN) choose their scale from the length each token sees,
s = max(1, n/L), evaluated as a decoder with a cache of un-rotated keys would (``PositionScheme.dynamic_blocks``):
positions up to L are not scaled at all. (A plain forward over the whole sequence would use s = L'/L for every
position and coincide with the static method; see :mod:`rope_lib.model`.)

Test samples are nested (``rope_lib.data.make_test_set(max_length=16L)``): every test length scores the last L'
bytes of the same windows, so the loss on the last L tokens, read at each length, is Su's "longer context, lower
loss" curve (kexue.fm/archives/9948) for free.

Building blocks for further experiments on the same two models (ReRoPE, notebook 05): :func:`settings`,
:func:`train_models` (cache hits once this experiment ran), :func:`make_test_sets`, :func:`evaluate_rows`,
:func:`profile_threads`, :func:`tuned_scheme`, :func:`fixed_scheme` (and, in ``common``, :func:`results_header`,
:func:`training_record`). A ReRoPE row is just another (name, model, scheme_at, info) tuple::

    rows = [("ReRoPE-w16-log n-dagger", "plain",
             lambda mult: PositionScheme(attention="rerope", window=16, log_n=True), {"window": 16})]
    evaluate_rows(train_models(profile, dev, seed), tests, rows, L=L, batch_tokens=...)
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch

from ..data import TEST_SETS, load_corpus, make_test_set
from ..evaluate import last_window_loss, token_metrics
from ..model import ModelConfig, PositionScheme
from ..train import TrainConfig, train
from ..utils import check_profile
from .common import check_names, experiment_device, output_path, register, results_header, training_record, write_json

NAME = "extrapolation"

# name -> factory(s, L, base, head_dim) -> PositionScheme. Names as in Su's tables (kexue.fm/archives/9706, 9859).
MethodFactory = Callable[[float, int, float, int], PositionScheme]


# Dynamic methods: 8 query blocks per doubling of the length, each rotated (with all earlier keys) for its block
# end, so a query's scale is rounded up by less than 2^(1/8) - 1 = 9% (rope_lib.model, PositionScheme).
DYNAMIC_BLOCKS = 8


METHODS: dict[str, MethodFactory] = {
    "Baseline": lambda s, L, b, d: PositionScheme({"rope_type": "default", "rope_theta": b}),
    "PI": lambda s, L, b, d: PositionScheme({"rope_type": "linear", "rope_theta": b, "factor": s}),
    "NTK-old": lambda s, L, b, d: PositionScheme({"rope_type": "ntk", "rope_theta": b, "factor": s}),
    "NTK-fixed": lambda s, L, b, d: PositionScheme({"rope_type": "ntk_fixed", "rope_theta": b, "factor": s}),
    "NTK-mixed": lambda s, L, b, d: PositionScheme({"rope_type": "ntk_mixed", "rope_theta": b, "factor": s, "p": 0.625}),
    "NTK-by-parts": lambda s, L, b, d: PositionScheme(
        {"rope_type": "ntk_by_parts", "rope_theta": b, "factor": s, "original_max_position_embeddings": L}
    ),
    "YaRN": lambda s, L, b, d: PositionScheme(
        {"rope_type": "yarn", "rope_theta": b, "factor": s, "original_max_position_embeddings": L}
    ),
    "Dynamic NTK": lambda s, L, b, d: PositionScheme(
        {"rope_type": "dynamic", "rope_theta": b, "factor": 1.0, "original_max_position_embeddings": L},
        dynamic_blocks=DYNAMIC_BLOCKS,
    ),
    "Dynamic YaRN": lambda s, L, b, d: PositionScheme(
        {"rope_type": "dynamic_yarn", "rope_theta": b, "original_max_position_embeddings": L},
        dynamic_blocks=DYNAMIC_BLOCKS,
    ),
}
METHOD_NOTES = {
    "Baseline": "direct extrapolation: plain RoPE at every length",
    "PI": "Positional Interpolation theta_i/s, no fine-tuning",
    "NTK-old": "NTK-aware base b*s^(d/(d-2))",
    "NTK-fixed": "Su's fixed NTK theta_i*s^(-2(i+1)/d)",
    "NTK-mixed": "Su's mixed-radix NTK, p = 0.625",
    "NTK-by-parts": "published ramp in rotations r (alpha=1, beta=32), no temperature",
    "YaRN": "transformers' yarn (ramp in pair index, beta_fast=32, beta_slow=1) + temperature 0.1 ln s + 1",
    "Dynamic NTK": "NTK-aware with s = max(1, n/L) per token (decoder-exact, raw-key cache)",
    "Dynamic YaRN": "YaRN with s = max(1, n/L) per token (decoder-exact, raw-key cache)",
}
LOG_N_VARIANTS: tuple[str, ...] = ("none", "dagger", "trained")

# Su's 8x numbers (train 512, test 4096; per-token accuracy %, (repeated, non-repeated)); REFERENCES.md section 1.
# 9706/9708 rows come from one baseline run; the YaRN rows from 9859, whose own NTK row reads 60.57 / 42.20.
SU_TRAIN_ACC = {"none": 49.41, "trained": 49.40}
SU_8X: dict[str, tuple[float, float]] = {
    "Baseline": (24.17, 23.16),
    "Baseline-log n": (24.60, 24.02),
    "PI": (15.04, 13.54),
    "PI-log n": (14.99, 16.51),
    "NTK-old": (51.28, 39.27),
    "NTK-old-log n": (61.71, 43.75),
    "NTK-fixed": (51.86, 39.61),
    "NTK-fixed-log n-dagger": (55.94, 41.11),
    "NTK-fixed-log n": (62.85, 44.14),
    "NTK-mixed": (53.09, 40.12),
    "NTK-mixed-log n-dagger": (59.11, 42.38),
    "NTK-mixed-log n": (68.91, 45.41),
    "YaRN": (80.10, 47.45),
    "YaRN-log n": (82.57, 46.52),
}

PROFILE_SETTINGS: dict[str, dict] = {
    "smoke": {
        # CPU, 2 threads: both trainings plus the evaluation in about 4 minutes.
        "model": dict(
            d_model=128, n_layers=4, n_heads=4, head_dim=32, d_ff=352, mlp="swiglu", norm="rmsnorm",
            tie_embeddings=True, rope_base=10000.0, train_length=64,
        ),
        "train": dict(steps=350, batch_size=32, lr=3e-3, warmup_steps=30, save_every=100),
        "multipliers": (2, 4, 8, 16),
        "n_samples": 12,
        "batch_tokens": 16384,
        "num_threads": 2,
    },
    "full": {
        # One GPU, sized by a FLOP estimate for ~15 minutes of an H100 (NOT yet run on a GPU): 25.4M parameters,
        # ~0.18 GFLOP per training token (6N plus attention at T = 512) x 82M tokens (5000 x 32 x 512; 3.4 epochs of
        # the 24 MB training split) = 1.5e16 FLOP per model, ~2.5 min each at an assumed 100 TFLOP/s effective bf16;
        # evaluation ~53M tokens forward (27 rows x 2 sets x 30L x 64 samples), dominated by attention at 16L = 8192.
        # Smoke sizes (CPU, 2 threads): 0.84M parameters, 350 x 32 x 64 = 0.72M training bytes per model.
        "model": dict(
            d_model=512, n_layers=8, n_heads=8, head_dim=64, d_ff=1376, mlp="swiglu", norm="rmsnorm",
            tie_embeddings=True, rope_base=10000.0, train_length=512,
        ),
        "train": dict(steps=5000, batch_size=32, lr=1e-3, warmup_steps=200, save_every=500, compile=True),
        "multipliers": (2, 4, 8, 16),
        "n_samples": 64,
        "batch_tokens": 131072,
        "num_threads": None,
    },
}


def scheme_for(method: str, s: float, L: int, base: float, head_dim: int, *, dagger: bool = False) -> PositionScheme:
    """The PositionScheme of ``method`` at scale s (``dagger``: plus log n at test time only)."""
    check_names("methods", [method], METHODS)
    scheme = METHODS[method](float(s), L, base, head_dim)
    return replace(scheme, log_n=True) if dagger else scheme


def tuned_scheme(method: str, mult: int, *, L: int, base: float, d: int, dagger: bool = False) -> PositionScheme:
    """A row's ``scheme_at(mult)`` for a frequency method tuned to each test length (s = mult); bind all but mult."""
    return scheme_for(method, float(mult), L, base, d, dagger=dagger)


def fixed_scheme(scheme: PositionScheme, mult: int) -> PositionScheme:
    """A row's ``scheme_at(mult)`` for a scheme with nothing to tune to the test length (ReRoPE, plain RoPE)."""
    return scheme


def row_name(method: str, log_n: str) -> str:
    """Su's naming: "NTK-mixed", "NTK-mixed-log n-dagger" (test time only), "NTK-mixed-log n" (trained)."""
    return {"none": method, "dagger": f"{method}-log n-dagger", "trained": f"{method}-log n"}[log_n]


def settings(profile: str, seed: int = 0) -> tuple[ModelConfig, ModelConfig, TrainConfig, dict]:
    """(model config, log-n model config, training config, evaluation settings) of a profile."""
    p = PROFILE_SETTINGS[check_profile(profile)]
    model = ModelConfig(**p["model"])
    model_log_n = replace(model, train_log_n=True)
    train_cfg = TrainConfig(**p["train"], seed=seed)
    ev = {k: p[k] for k in ("multipliers", "n_samples", "batch_tokens", "num_threads")}
    return model, model_log_n, train_cfg, ev


def _summary(m: dict, L: int, bin_size: int | None = None) -> dict:
    out = {
        "acc": m["acc"],
        "loss": m["loss"],
        "last_window_loss": last_window_loss(m["loss_per_position"], L),
        "acc_per_sample": m["acc_per_sample"],
    }
    if bin_size:
        lp = np.asarray(m["loss_per_position"])
        ap = np.asarray(m["acc_per_position"])
        n = (lp.size // bin_size) * bin_size  # T-1 predictions: the last, incomplete bin is dropped
        out["loss_per_bin"] = lp[:n].reshape(-1, bin_size).mean(1)
        out["acc_per_bin"] = ap[:n].reshape(-1, bin_size).mean(1)
    return out


def score_sets(model, sets: dict, scheme: PositionScheme | None, *, L: int, batch_tokens: int) -> dict:
    """{kind: summary} of one model and scheme (None: plain RoPE) on ``sets`` = {kind: (n, T) int64 samples}."""
    return {kind: _summary(token_metrics(model, sets[kind], scheme, batch_tokens=batch_tokens), L) for kind in TEST_SETS}


@contextlib.contextmanager
def profile_threads(num_threads: int | None):
    """Fix torch's CPU thread count for the duration (the smoke profile uses 2, for run-to-run determinism)."""
    old = torch.get_num_threads()
    try:
        if num_threads:
            torch.set_num_threads(num_threads)
        yield
    finally:
        torch.set_num_threads(old)


def train_models(profile: str, device: torch.device, seed: int, *, corpus=None, progress: bool = True) -> dict:
    """Both models of a profile, trained or loaded from the checkpoint cache: {"plain": (model, meta), "log_n": ...}.

    Other experiments (ReRoPE, notebook 05) reuse these exact checkpoints: same profile and seed, same cache key.
    """
    model_cfg, model_log_n_cfg, train_cfg, _ = settings(profile, seed)
    corpus = load_corpus() if corpus is None else corpus
    return {
        variant: train(cfg, train_cfg, corpus=corpus, device=device, progress=progress)
        for variant, cfg in (("plain", model_cfg), ("log_n", model_log_n_cfg))
    }


def make_test_sets(corpus, L: int, mults: Sequence[int], n_samples: int, seed: int) -> dict:
    """{kind: {mult: (n, mult*L) int64}} for mult in (1, *mults), nested in windows of max(mults)*L bytes."""
    max_len = max(mults) * L
    return {
        kind: {m: make_test_set(corpus, kind, m * L, n_samples, seed=seed, max_length=max_len) for m in (1, *mults)}
        for kind in TEST_SETS
    }


def evaluate_rows(
    trained: dict,
    tests: dict,
    rows: Sequence[tuple[str, str, Callable[[int], PositionScheme], dict]],
    *,
    L: int,
    batch_tokens: int,
    progress: bool = True,
) -> dict:
    """Evaluate table rows on every test set and multiplier in ``tests`` (except 1).

    Args:
        trained: from :func:`train_models`.
        rows: (row name, model variant "plain"/"log_n", scheme_at(mult) -> PositionScheme, extra info for the JSON).

    Returns:
        {row name: {**info, "model", "schemes": {mult: scheme dict}, "metrics": {kind: {mult: summary}}}}, where a
        summary has acc, loss, last_window_loss, acc_per_sample, and at 8x loss/acc per L/8-byte bin.
    """
    from tqdm.auto import tqdm

    mults = sorted(m for m in tests[TEST_SETS[0]] if m != 1)
    bin_size = max(1, L // 8)
    out = {}
    for name, variant, scheme_at, info in tqdm(rows, desc="evaluate", leave=False, **({} if progress else {"disable": True})):
        model = trained[variant][0]
        metrics, schemes = {kind: {} for kind in TEST_SETS}, {}
        for mult in mults:
            scheme = scheme_at(mult)
            schemes[str(mult)] = scheme.to_dict()
            for kind in TEST_SETS:
                m = token_metrics(model, tests[kind][mult], scheme, batch_tokens=batch_tokens)
                metrics[kind][str(mult)] = _summary(m, L, bin_size if mult == 8 else None)
        out[name] = {**info, "model": variant, "schemes": schemes, "metrics": metrics}
    return out


@register(NAME, list_options={"methods": METHODS})
def run(
    profile: str = "smoke",
    device: str | None = None,
    seed: int = 0,
    out=None,
    *,
    methods: Sequence[str] | None = None,
    progress: bool = True,
) -> dict:
    """Train (or load) both models, evaluate every method, write ``<out>/extrapolation.json``; returns the dict.

    Args:
        profile: "smoke" (CPU, minutes) or "full" (one GPU; refused on CPU).
        device: None -> cuda when present, else cpu.
        seed: training seed (init, batch order) and test-sample seed.
        out: output folder (default ``rope_lib.results_dir(profile)``).
        methods: subset of :data:`METHODS` (default all, in table order).
        progress: tqdm bars (silenced by ``TQDM_DISABLE=1``).
    """
    methods = check_names("methods", list(METHODS) if methods is None else methods, METHODS)
    dev = experiment_device(profile, device)
    model_cfg, model_log_n_cfg, train_cfg, ev = settings(profile, seed)
    L, base, d = model_cfg.train_length, model_cfg.rope_base, model_cfg.head_dim
    mults = tuple(ev["multipliers"])
    t_start = time.perf_counter()
    with profile_threads(ev["num_threads"]):
        corpus = load_corpus()
        trained = train_models(profile, dev, seed, corpus=corpus, progress=progress)
        t_eval = time.perf_counter()
        tests = make_test_sets(corpus, L, mults, ev["n_samples"], seed)
        at_L = {kind: tests[kind][1] for kind in TEST_SETS}
        train_length_metrics = {
            variant: score_sets(model, at_L, None, L=L, batch_tokens=ev["batch_tokens"]) for variant, (model, _) in trained.items()
        }
        jobs = []
        for log_n in LOG_N_VARIANTS:
            for method in methods:
                scheme_at = functools.partial(tuned_scheme, method, L=L, base=base, d=d, dagger=log_n == "dagger")
                variant = "log_n" if log_n == "trained" else "plain"
                jobs.append((row_name(method, log_n), variant, scheme_at, {"method": method, "log_n": log_n}))
        rows = evaluate_rows(trained, tests, jobs, L=L, batch_tokens=ev["batch_tokens"], progress=progress)
        eval_s = time.perf_counter() - t_eval

    training, train_timings = training_record(trained)
    results = {
        **results_header(NAME, profile, seed, dev),
        "config": {
            "model": model_cfg.to_dict(),
            "model_log_n": model_log_n_cfg.to_dict(),
            "train": train_cfg.to_dict(),
            "eval": {
                "train_length": L,
                "multipliers": list(mults),
                "test_lengths": [m * L for m in mults],
                "test_sets": list(TEST_SETS),
                "n_samples": int(tests["non_repeated"][1].shape[0]),
                "scale_rule": "static methods: s = L'/L (tuned to the test length, as Su); dynamic: s = max(1, n/L) per token",
                "nested_samples": f"every test length scores the last L' bytes of the same {max(mults) * L}-byte windows",
                "position_bin": max(1, L // 8),
                "methods": {m: METHOD_NOTES[m] for m in methods},
                "num_threads": ev["num_threads"],
            },
            "corpus": corpus.summary(),
        },
        "training": training,
        "timings": {**train_timings, "eval_s": eval_s, "total_s": time.perf_counter() - t_start},
        "train_length_metrics": train_length_metrics,
        "rows": rows,
    }
    write_json(results, output_path(NAME, profile, out))
    return results
