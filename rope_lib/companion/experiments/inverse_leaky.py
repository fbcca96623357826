"""InvLeaky ReRoPE (kexue.fm/archives/9728): train with Leaky ReRoPE at a leak k < 1, infer with plain RoPE.

Su's recipe: train at length L with Leaky ReRoPE, window w = L/4 and leak k = 1/(2s) (s the extension scale, the
test length being sL), optionally with the base multiplied by s ("-b" rows); at test time use *plain RoPE* (so
Flash attention and an ordinary KV cache work). With k < 1 the relative position beyond the window,
w + (r - w)/k, grows *faster* than r, so the largest relative position met in training, w + (L-1-w)/k, exceeds the
largest one at the test length, sL - 1: at test time plain RoPE meets only relative positions inside the trained
range (every one of them inside the window, every 1/k-th beyond it). Su measured +6% training time
(330 s -> 350 s per 1000 steps).

This experiment (notebook 06) trains the InvLeaky model(s) with the *same* model size, data, training length,
budget and seed as notebook 04's log-n-trained model (Su's InvLeaky rows are "-log n"), evaluates them with plain
RoPE on the same nested test samples, and re-evaluates beside them the notebook-04 rows (Baseline, NTK-fixed, YaRN,
on both models) and ReRoPE with w = L/4 on the log-n model, all through the harness
(:mod:`rope_lib.companion.experiments.harness`), so every per-sample accuracy is paired with every other. It also times
the training step of Leaky ReRoPE against plain RoPE on the same model, interleaved in one run
(:func:`measure_training_overhead`).

Scale rule: Su's 8x recipe, s = 8, k = 1/(2s) = 1/16 (his table is at 8x); the 16x column lies beyond the range
this recipe trains, on purpose.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ... import _checks
from ...rerope import rerope_relative_position
from ..data import TEST_SETS, make_test_set
from ..model import ModelConfig, PositionScheme
from ..train import TrainConfig, train
from .common import check_names, register
from .harness import Harness, at_every_length, finish, method_rows, rerope_scheme, run_seeds, settings

NAME = "inverse_leaky"

# "invleaky": Su's InvLeaky ReRoPE-w128-log n (w = L/4, k = 1/(2s)); "invleaky_b": the same with base b*s
# (Su's -b8 row: s = 8 at his 8x test length).
VARIANTS: tuple[str, ...] = ("invleaky", "invleaky_b")
# The smoke profile trains only the main variant: Leaky ReRoPE training on CPU is ~1.5x slower than plain RoPE, and
# one model of the notebook-04 size already takes most of the notebook's ~2.5 minute budget.
DEFAULT_VARIANTS: dict[str, tuple[str, ...]] = {"smoke": ("invleaky",), "medium": ("invleaky",), "full": VARIANTS}
# Su's recipe for 8x (train 512, test 4096): k = 1/16. His table's columns are 8x; a 16x column is beyond the range
# this recipe trains (the notebook shows what happens there).
DEFAULT_SCALE = 8.0
COMPARED_METHODS: tuple[str, ...] = ("Baseline", "NTK-fixed", "YaRN")

# Training-step timing: after warm-up, ``rounds`` windows of ``steps_per_round`` steps per scheme, in the order
# ABBA BAAB ... so a drift in machine load affects both schemes alike.
TIMING = {"warmup_steps": 2, "rounds": 4, "steps_per_round": 5}
# Claim (c) is a ~1-point question at the training length, where the nested test sets give only n_samples x (L-1)
# predictions; one forward over this many fresh L-byte windows per model is cheap and resolves it much better.
TRAIN_LENGTH_SAMPLES = 256


def invleaky_window(train_length: int) -> int:
    """Su's window w = L/4 (integer; needs L >= 4)."""
    return _checks.int_at_least("train_length", train_length, 4) // 4


def invleaky_leak(scale: float) -> float:
    """Su's leak k = 1/(2s) for the extension scale s (k < 1 for s > 1/2)."""
    return 1.0 / (2.0 * _checks.finite_number("scale", scale, at_least=1))


def trained_relative_positions(train_length: int, window: int, leaky_k: float) -> np.ndarray:
    """The relative positions p(r) Leaky ReRoPE uses for r = 0..L-1 (float64, increasing).

    p(r) = r below the window w, w + (r - w)/k from w on."""
    r = torch.arange(train_length, dtype=torch.float64)
    return rerope_relative_position(r, window, leaky_k).numpy()


def invleaky_scheme(window: int, leaky_k: float) -> PositionScheme:
    """The *training* scheme: Leaky ReRoPE with the model's own base (inference is plain RoPE, ``PositionScheme()``)."""
    return rerope_scheme(window, leaky_k)


def invleaky_configs(
    profile: str, seed: int, scale: float, variants: Sequence[str]
) -> dict[str, tuple[ModelConfig, TrainConfig]]:
    """{variant: (model config, training config)}: notebook 04's log-n model and budget, trained with Leaky ReRoPE."""
    check_names("variants", variants, VARIANTS)
    _, model_log_n, train_cfg, _ = settings(profile, seed)
    w, k = invleaky_window(model_log_n.train_length), invleaky_leak(scale)
    leaky_train = replace(train_cfg, scheme=invleaky_scheme(w, k))
    out = {}
    for v in variants:
        cfg = replace(model_log_n, rope_base=model_log_n.rope_base * scale) if v == "invleaky_b" else model_log_n
        out[v] = (cfg, leaky_train)
    return out


def row_label(variant: str, window: int, scale: float) -> str:
    """Su's naming: "InvLeaky ReRoPE-w16-log n", "InvLeaky ReRoPE-w16-b16-log n"."""
    check_names("variants", [variant], VARIANTS)
    b = f"-b{scale:g}" if variant == "invleaky_b" else ""
    return f"InvLeaky ReRoPE-w{window}{b}-log n"


def measure_training_overhead(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    leaky: PositionScheme,
    *,
    corpus,
    device: torch.device,
    warmup_steps: int = 2,
    rounds: int = 4,
    steps_per_round: int = 5,
) -> dict:
    """Seconds per training step of ``leaky`` vs plain RoPE on the same model, interleaved in one run.

    Each window is a fresh, uncached run of :func:`rope_lib.companion.train.train` (``use_cache=False``,
    ``max_steps_this_call``): the real training step (forward, backward, clipping, AdamW), timed by ``train``'s own
    clock around its loop. torch.compile is switched off for the windows (a compile would dominate a few steps);
    everything else (batch, amp, threads) is the training configuration's. Returns per-window seconds per step for
    "rope" and "leaky", their totals and ``ratio`` = leaky / rope (machine- and load-dependent).
    """
    _checks.nonnegative_int("warmup_steps", warmup_steps)
    _checks.positive_int("rounds", rounds)
    _checks.positive_int("steps_per_round", steps_per_round)
    base = replace(train_cfg, compile=False)
    schemes = {"rope": replace(base, scheme=PositionScheme()), "leaky": replace(base, scheme=leaky)}
    tokens = model_cfg.train_length * base.batch_size

    def window(name: str, steps: int) -> float:
        _, meta = train(
            model_cfg,
            schemes[name],
            corpus=corpus,
            device=device,
            progress=False,
            use_cache=False,
            max_steps_this_call=steps,
        )
        return tokens / meta["tokens_per_s"]  # seconds per step

    if warmup_steps:
        for name in schemes:
            window(name, warmup_steps)
    per_step = {name: [] for name in schemes}
    for r in range(rounds):
        order = ("rope", "leaky") if r % 2 == 0 else ("leaky", "rope")
        for name in order:
            per_step[name].append(window(name, steps_per_round))
    total = {name: float(np.sum(v)) * steps_per_round for name, v in per_step.items()}
    return {
        "s_per_step": per_step,
        "total_s": total,
        "ratio": total["leaky"] / total["rope"],
        "ratio_median_of_rounds": float(np.median(np.array(per_step["leaky"]) / np.array(per_step["rope"]))),
        "steps_per_scheme": rounds * steps_per_round,
        "warmup_steps": warmup_steps,
        "order": "ABBA: rope, leaky, leaky, rope, ...",
        "compile": False,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


@dataclass(frozen=True)
class _Recipe:
    """Su's s-fold recipe as one run applies it: the InvLeaky variants, s, the window w = L/4 and the leak 1/(2s)."""

    variants: tuple[str, ...]
    scale: float
    window: int
    leak: float

    @property
    def leaky(self) -> PositionScheme:
        return invleaky_scheme(self.window, self.leak)

    def label(self, variant: str) -> str:
        return row_label(variant, self.window, self.scale)


def _train_length_scores(h: Harness, r: _Recipe) -> dict:
    """Every model at L with plain RoPE (notebook 04's "L" column), two informative extras (ReRoPE at L, which
    clips beyond w < L, and each InvLeaky model under the Leaky scheme it was trained with), and the same comparison
    on many more windows (:data:`TRAIN_LENGTH_SAMPLES`)."""
    at_L = h.at_train_length()
    extra = {(f"ReRoPE-w{r.window}-log n", "log_n"): PositionScheme(attention="rerope", window=r.window)}
    extra.update({(f"{r.label(v)} (training scheme)", v): r.leaky for v in r.variants})
    wide = {kind: make_test_set(h.corpus, kind, h.L, TRAIN_LENGTH_SAMPLES, seed=h.seed) for kind in TEST_SETS}
    wide_models = [(v, v, None) for v in h.trained] + [(f"{v} (training scheme)", v, r.leaky) for v in r.variants]
    return {
        "train_length_metrics": {v: h.score(v, at_L) for v in h.trained},
        "train_length_extra": {name: h.score(v, at_L, sch) for (name, v), sch in extra.items()},
        "train_length_wide": {
            "n_samples": int(wide["non_repeated"].shape[0]),
            "metrics": {name: h.score(v, wide, sch) for name, v, sch in wide_models},
        },
    }


def _rows(h: Harness, r: _Recipe, configs: dict) -> list:
    """The rows beside notebook 04's: its frequency methods, ReRoPE-log n, and each InvLeaky model (plain RoPE)."""
    jobs = method_rows(COMPARED_METHODS, ("none", "trained"), L=h.L, base=h.base, d=h.head_dim)
    rerope = PositionScheme(attention="rerope", window=r.window)
    info = {"method": "ReRoPE", "log_n": "trained", "window": r.window}
    jobs.append((f"ReRoPE-w{r.window}-log n", "log_n", at_every_length(rerope), info))
    for v in r.variants:
        info = {
            "method": "InvLeaky ReRoPE",
            "log_n": "trained",
            "window": r.window,
            "leaky_k": r.leak,
            "scale": r.scale,
            "rope_base": configs[v][0].rope_base,
            "inference": "plain RoPE",
        }
        jobs.append((r.label(v), v, at_every_length(PositionScheme()), info))
    return h.evaluate(jobs)


def _one_seed(h: Harness, *, recipe: _Recipe, configs_of, timing: bool) -> dict:
    """One training seed's results: the training-length scores, the rows, the trained range and (first seed) the
    training-step overhead."""
    r, configs = recipe, configs_of(h.seed)
    scores = _train_length_scores(h, r)
    rows = _rows(h, r, configs)
    eval_s = time.perf_counter() - h.eval_started
    overhead = None
    if timing and h.run_index == 0:  # a property of the code and machine, not of the seed: measured once
        mcfg, tcfg = configs[r.variants[0]]
        overhead = measure_training_overhead(mcfg, tcfg, tcfg.scheme, corpus=h.corpus, device=h.device, **TIMING)
    p = trained_relative_positions(h.L, r.window, r.leak)
    config = {
        "invleaky": {v: {"model": mc.to_dict(), "train": tc.to_dict()} for v, (mc, tc) in configs.items()},
        "variants": list(r.variants),
        "scale": r.scale,
        "window": r.window,
        "leaky_k": r.leak,
        "scale_rule": "Su's recipe for an s-fold extension: w = L/4, k = 1/(2s); the trained range"
        " w + (L-1-w)/k covers test lengths up to about sL",
        "eval": h.eval_config(
            inference="InvLeaky rows: plain RoPE (PositionScheme(), SDPA) at every length",
            samples="identical to the extrapolation experiment (same seeds, nested windows)",
        ),
    }
    coverage = {
        "max_trained_relative_position": float(p.max()),
        "max_test_relative_position": {str(m): int(m * h.L - 1) for m in h.mults},
        "trained_spacing_beyond_window": 1 / r.leak,
    }
    timings = {"eval_s": eval_s}
    return finish(
        NAME, h, config=config, timings=timings, coverage=coverage, training_overhead=overhead, **scores, rows=rows
    )


def default_models(profile: str, seed: int) -> dict[str, tuple[ModelConfig, TrainConfig]]:
    """The InvLeaky models a default run of ``profile`` trains for training seed ``seed``."""
    return invleaky_configs(profile, seed, DEFAULT_SCALE, DEFAULT_VARIANTS[profile])


@register(NAME, list_options={"variants": VARIANTS}, models=default_models)
def run(
    profile: str = "smoke",
    device: str | None = None,
    seed: int = 0,
    out=None,
    *,
    variants: Sequence[str] | None = None,
    scale: float | None = None,
    timing: bool = True,
    progress: bool = True,
) -> dict:
    """For every training seed: train (or load) the InvLeaky model(s), evaluate them with plain RoPE beside the
    notebook-04 rows and ReRoPE; time the Leaky training step against plain RoPE (first seed only); writes
    ``<out>/inverse_leaky.json``; returns the dict.

    Args:
        profile: "smoke" (CPU, minutes) or "full" (one GPU; refused on CPU).
        device: None -> cuda when present, else cpu.
        seed: the first training seed and the test-window seed (as notebook 04's).
        out: output folder (default ``rope_lib.results_dir(profile)``).
        variants: subset of :data:`VARIANTS` (default :data:`DEFAULT_VARIANTS` of the profile).
        scale: s in k = 1/(2s) and in the "-b" base b*s (default :data:`DEFAULT_SCALE`, Su's 8x recipe).
        timing: measure the training-step overhead (:func:`measure_training_overhead`).
        progress: tqdm bars (silenced by ``TQDM_DISABLE=1``).
    """
    model_cfg = settings(profile, seed).model
    variants = check_names("variants", list(DEFAULT_VARIANTS[profile] if variants is None else variants), VARIANTS)
    s = float(DEFAULT_SCALE if scale is None else _checks.finite_number("scale", scale, at_least=1))
    recipe = _Recipe(
        variants=tuple(variants), scale=s, window=invleaky_window(model_cfg.train_length), leak=invleaky_leak(s)
    )
    extra_models = functools.partial(invleaky_configs, profile, scale=s, variants=variants)
    one_seed = functools.partial(_one_seed, recipe=recipe, configs_of=extra_models, timing=timing)
    return run_seeds(NAME, profile, device, seed, out, one_seed, extra_models=extra_models, progress=progress)
