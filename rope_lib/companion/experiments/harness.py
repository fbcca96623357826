"""The harness every trained-model experiment runs on: profile settings, the method table, training with the
checkpoint cache, nested test sets, row evaluation (with an evaluation cache), and the results file.

An experiment's ``run()`` is::

    def one_seed(h):                                  # h: one training seed's settings, models, test windows
        rows = h.evaluate([(row name, model variant, scheme_at(mult), info), ...])
        return finish(NAME, h, config={...}, rows=rows)            # header + config + timings of this seed
    return run_seeds(NAME, profile, device, seed, out, one_seed)   # every seed; one JSON, written atomically

Seeds: a run started with ``seed`` trains and evaluates the profile's ``seeds`` training seeds (seed, seed + 1,
...), each on its own part of the test windows drawn with ``seed`` (no window shared between seeds; in smoke one
window per test file), so a finding is decided over training noise and test-text noise together
(:meth:`rope_lib.companion.report.Rows.gap`). ``python -m rope_lib.companion.experiments train`` trains every model up
front.

Two models are trained per profile and seed with plain RoPE at length L, one without and one with log n in
training (``ModelConfig.train_log_n``; Su's "-log n" rows); an experiment can train more (``extra_models``).

Scale rule: every static method is tuned to the test length, s = L'/L, as in Su's table (his 4096/512 runs use
k = 8). The dynamic methods (Dynamic NTK, Dynamic YaRN) choose their scale from the length each token sees,
s = max(1, n/L), evaluated as a decoder with a cache of un-rotated keys would (``PositionScheme.dynamic_blocks``).

Test samples are nested (``rope_lib.companion.data.make_test_set(max_length=...)``): every test length scores the last
L' bytes of the same windows, so the loss on the last L tokens, read at each length, is Su's "longer context, lower
loss" curve (kexue.fm/archives/9948) at no extra cost.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..._checks import atomic_write
from ..data import TEST_SETS, Corpus, load_corpus, make_test_set
from ..evaluate import last_window_loss, token_metrics
from ..model import ModelConfig, PositionScheme
from ..runtime import cache_dir, check_profile, pick_device, torch_threads
from ..train import FineTune, PasskeyTask, TrainConfig, config_key, train
from .common import check_names, code_digest, git_sha, output_path, package_versions, write_json

# name -> factory(s, L, base, head_dim) -> PositionScheme. Names as in Su's tables (kexue.fm/archives/9706, 9859).
MethodFactory = Callable[[float, int, float, int], PositionScheme]

# Dynamic methods: 8 query blocks per doubling of the length, each rotated (with all earlier keys) for its block
# end, so a query's scale is rounded up by less than 2^(1/8) - 1 = 9% (rope_lib.companion.model, PositionScheme).
DYNAMIC_BLOCKS = 8

METHODS: dict[str, MethodFactory] = {
    "Baseline": lambda s, L, b, d: PositionScheme({"rope_type": "default", "rope_theta": b}),
    "PI": lambda s, L, b, d: PositionScheme({"rope_type": "linear", "rope_theta": b, "factor": s}),
    "NTK-aware": lambda s, L, b, d: PositionScheme({"rope_type": "ntk", "rope_theta": b, "factor": s}),
    # Su's "NTK-RoPE-old" row (kexue.fm/archives/9706) uses lambda = s^(2/d), i.e. the base b*s, not bloc97's
    # b*s^(d/(d-2)) above; under it NTK-fixed is NTK-old shifted by one digit (notebook 02).
    "NTK-old": lambda s, L, b, d: PositionScheme({"rope_type": "default", "rope_theta": b * s}),
    "NTK-fixed": lambda s, L, b, d: PositionScheme({"rope_type": "ntk_fixed", "rope_theta": b, "factor": s}),
    "NTK-mixed": lambda s, L, b, d: PositionScheme(
        {"rope_type": "ntk_mixed", "rope_theta": b, "factor": s, "p": 0.625}
    ),
    "NTK-by-parts": lambda s, L, b, d: PositionScheme(
        {"rope_type": "ntk_by_parts", "rope_theta": b, "factor": s, "original_max_position_embeddings": L}
    ),
    "YaRN": lambda s, L, b, d: PositionScheme(
        {"rope_type": "yarn", "rope_theta": b, "factor": s, "original_max_position_embeddings": L}
    ),
    # YaRN's frequencies without its temperature: isolates what the ramp alone does
    "YaRN (t = 1)": lambda s, L, b, d: PositionScheme(
        {
            "rope_type": "yarn",
            "rope_theta": b,
            "factor": s,
            "original_max_position_embeddings": L,
            "attention_factor": 1.0,
        }
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
    "NTK-aware": "bloc97's NTK-aware base b*s^(d/(d-2))",
    "NTK-old": "Su's NTK-RoPE-old row: base b*s (lambda = s^(2/d))",
    "NTK-fixed": "Su's fixed NTK theta_i*s^(-2(i+1)/d)",
    "NTK-mixed": "Su's mixed-radix NTK, p = 0.625",
    "NTK-by-parts": "published ramp in rotations r (alpha=1, beta=32), no temperature",
    "YaRN": "transformers' yarn (ramp in pair index, beta_fast=32, beta_slow=1) + temperature 0.1 ln s + 1",
    "YaRN (t = 1)": "YaRN's frequencies without its temperature (attention_factor 1)",
    "Dynamic NTK": "NTK-aware with s = max(1, n/L) per token (decoder-exact, raw-key cache)",
    "Dynamic YaRN": "YaRN with s = max(1, n/L) per token (decoder-exact, raw-key cache)",
}
LOG_N_VARIANTS: tuple[str, ...] = ("none", "dagger", "trained")
# Which trained model a log-n variant runs on: "dagger" adds log n at test time to the plain model.
MODEL_OF_LOG_N: dict[str, str] = {"none": "plain", "dagger": "plain", "trained": "log_n"}

# The smoke model; the medium profile trains the same model at another length.
_SMOKE_MODEL = dict(
    d_model=128,
    n_layers=4,
    n_heads=4,
    head_dim=32,
    d_ff=352,
    mlp="swiglu",
    norm="rmsnorm",
    tie_embeddings=True,
    rope_base=10000.0,
    train_length=64,
)

PROFILE_SETTINGS: dict[str, dict] = {
    "smoke": {
        # CPU, 2 threads: both trainings plus the evaluation in about 4 minutes.
        "model": _SMOKE_MODEL,
        "train": dict(steps=350, batch_size=32, lr=3e-3, warmup_steps=30, save_every=100),
        "multipliers": (2, 4, 8, 16),
        # per training seed: 3 seeds x 21 windows = 63 windows of 16L = 1024 bytes, each from its own test file
        # (the test split has 64 files that long), so resampling windows is resampling files
        "n_samples": 21,
        "seeds": 3,
        "batch_tokens": 16384,
        "num_threads": 2,
    },
    "medium": {
        # CPU, 2 threads, outside CI (`make medium`): the second rung of the scale ladder. What changes is the
        # training length, L = 128 (2x smoke; tested to 16L = 2048 as smoke is), with 1.4x the training tokens; the
        # model keeps the smoke size so that the rung fits about half an hour on 2 cores (the full profile, L = 512,
        # has the bigger model).
        "model": {**_SMOKE_MODEL, "train_length": 128},
        "train": dict(steps=500, batch_size=16, lr=3e-3, warmup_steps=30, save_every=100),
        "multipliers": (2, 4, 8, 16),
        # per seed: 3 x 10 windows of 16L = 2048 bytes, each from its own test file
        "n_samples": 10,
        "seeds": 3,
        "batch_tokens": 16384,
        "num_threads": 2,
    },
    "full": {
        # One GPU, sized by a FLOP estimate (NOT yet run on a GPU): 25.4M parameters, ~0.18 GFLOP per training
        # token (6N plus attention at T = 512) x 82M tokens (5000 x 32 x 512; 3.4 epochs of the 24 MB training
        # split) = 1.5e16 FLOP per model, ~2.5 min each at an assumed 100 TFLOP/s effective bf16, 9 models (3 seeds)
        # ~25 min; evaluation ~27M tokens forward per seed and experiment (33 rows x 2 sets x 30L x 32 samples),
        # dominated by attention at 16L = 8192: in all about 40 minutes of an H100.
        "model": dict(
            d_model=512,
            n_layers=8,
            n_heads=8,
            head_dim=64,
            d_ff=1376,
            mlp="swiglu",
            norm="rmsnorm",
            tie_embeddings=True,
            rope_base=10000.0,
            train_length=512,
        ),
        "train": dict(steps=5000, batch_size=32, lr=1e-3, warmup_steps=200, save_every=500, compile=True),
        "multipliers": (2, 4, 8, 16),
        # per seed: 3 x 32 windows of 16L = 8192 bytes (the test split holds 115 in 44 files: a few per file)
        "n_samples": 32,
        "seeds": 3,
        "batch_tokens": 131072,
        "num_threads": None,
    },
}

# A table row: (row name, model variant, scheme_at(mult) -> PositionScheme, extra info for the JSON).
Row = tuple[str, str, Callable[[int], PositionScheme], dict]


# ------------------------------------------------------------------------------------------ the method table


def scheme_for(method: str, s: float, L: int, base: float, head_dim: int, *, dagger: bool = False) -> PositionScheme:
    """The PositionScheme of ``method`` at scale s (``dagger``: plus log n at test time only)."""
    check_names("methods", [method], METHODS)
    scheme = METHODS[method](float(s), L, base, head_dim)
    return replace(scheme, log_n=True) if dagger else scheme


def tuned_scheme(method: str, mult: int, *, L: int, base: float, d: int, dagger: bool = False) -> PositionScheme:
    """A row's ``scheme_at(mult)`` for a frequency method tuned to each test length (s = mult); bind all but mult."""
    return scheme_for(method, float(mult), L, base, d, dagger=dagger)


def at_every_length(scheme: PositionScheme) -> Callable[[int], PositionScheme]:
    """A row's ``scheme_at(mult)`` for a scheme with nothing to tune to the test length (ReRoPE, plain RoPE, a
    fine-tuned model's scheme): ``scheme`` itself at every multiplier."""
    return functools.partial(_same_scheme, scheme)


def _same_scheme(scheme: PositionScheme, mult: int) -> PositionScheme:
    return scheme


def rerope_scheme(window: int, leaky_k: float | None = None, *, dagger: bool = False) -> PositionScheme:
    """ReRoPE (or Leaky ReRoPE) attention with the model's own base; ``dagger``: log n at test time only."""
    return PositionScheme({"rope_type": "default"}, log_n=dagger, attention="rerope", window=window, leaky_k=leaky_k)


def row_name(method: str, log_n: str) -> str:
    """Su's naming: "NTK-mixed", "NTK-mixed-log n-dagger" (test time only), "NTK-mixed-log n" (trained)."""
    check_names("log n variants", [log_n], LOG_N_VARIANTS)
    return {"none": method, "dagger": f"{method}-log n-dagger", "trained": f"{method}-log n"}[log_n]


def method_rows(methods: Sequence[str], log_n_variants: Sequence[str], *, L: int, base: float, d: int) -> list[Row]:
    """Rows for frequency methods tuned to each test length, in the order (log n variant, method)."""
    rows = []
    for log_n in log_n_variants:
        for method in methods:
            at = functools.partial(tuned_scheme, method, L=L, base=base, d=d, dagger=log_n == "dagger")
            rows.append((row_name(method, log_n), MODEL_OF_LOG_N[log_n], at, {"method": method, "log_n": log_n}))
    return rows


# ---------------------------------------------------------------------------------- settings, models, samples


class ProfileSettings(NamedTuple):
    """What a profile trains and how it evaluates (a tuple: ``model, model_log_n, train, eval = settings(...)``)."""

    model: ModelConfig  # the plain model
    model_log_n: ModelConfig  # the same model trained with log n (Su's "-log n" rows)
    train: TrainConfig  # the training run both share
    eval: dict  # multipliers, n_samples, batch_tokens, num_threads


def settings(profile: str, seed: int = 0) -> ProfileSettings:
    """The model configs, training config and evaluation settings of a profile, for training seed ``seed``."""
    p = PROFILE_SETTINGS[check_profile(profile)]
    model = ModelConfig(**p["model"])
    ev = {k: p[k] for k in ("multipliers", "n_samples", "batch_tokens", "num_threads")}
    return ProfileSettings(model, replace(model, train_log_n=True), TrainConfig(**p["train"], seed=seed), ev)


def train_models(profile: str, device: torch.device, seed: int, *, corpus=None, progress: bool = True) -> dict:
    """Both models of a profile, trained or loaded from the checkpoint cache: {"plain": (model, meta), "log_n": ...}.

    Every experiment reuses these exact checkpoints: same profile and seed, same cache key.
    """
    corpus = load_corpus() if corpus is None else corpus
    return {
        variant: train(mcfg, tcfg, corpus=corpus, device=device, progress=progress)
        for variant, (mcfg, tcfg) in shared_models(profile, seed).items()
    }


def shared_models(profile: str, seed: int) -> dict[str, tuple[ModelConfig, TrainConfig]]:
    """{"plain": (model config, training config), "log_n": ...}: the two models every experiment shares."""
    model_cfg, model_log_n_cfg, train_cfg, _ = settings(profile, seed)
    return {"plain": (model_cfg, train_cfg), "log_n": (model_log_n_cfg, train_cfg)}


# The retrieval recipe of notebook 07 (found on the smoke models: 100% retrieval at every distance within L on 3 of 3
# seeds; without the re-drawn rows, or without the weighted answer and curriculum, the models stay at chance), used
# by base_bound (a retrieval model per base) and finetune (notebook 04's base: the model PI's passkey test extends).
RETRIEVAL = dict(lr=1e-3, batch_size=32, reinit_norm=0.8, answer_weight=10.0)
# Per profile: the retrieval fine-tuning budget, and its curriculum of (until step, largest key distance).
RETRIEVAL_BUDGET: dict[str, dict] = {
    "smoke": dict(steps=160, curriculum=((40, 4), (80, 16))),
    "medium": dict(steps=160, curriculum=((40, 4), (80, 16))),
    "full": dict(steps=400, curriculum=((100, 8), (200, 64))),
}


def retrieval_model(profile: str, seed: int, base: float) -> tuple[ModelConfig, TrainConfig]:
    """(model config, fine-tuning config) of the retrieval model at ``base``: the plain model of training seed
    ``seed`` with only ``rope_base`` changed (at notebook 04's base it is that model), fine-tuned at L on passkey rows
    with :data:`RETRIEVAL`'s recipe. The text model it starts from is the model config with the pre-training config.
    """
    budget = RETRIEVAL_BUDGET[check_profile(profile)]
    plain, pre = shared_models(profile, seed)["plain"]
    model_cfg = replace(plain, rope_base=float(base))
    cfg = replace(
        pre,
        steps=budget["steps"],
        batch_size=RETRIEVAL["batch_size"],
        lr=RETRIEVAL["lr"],
        min_lr_ratio=1.0,  # constant: retrieval forms between the curriculum's stages, not at a schedule's end
        warmup_steps=0,  # a warm-up kept the retrieval head from forming in the exploratory runs
        save_every=budget["steps"],
        finetune=FineTune(init_from=config_key(model_cfg, pre, load_corpus().digest)),
        task=PasskeyTask(
            fraction=1.0,
            reinit_norm=RETRIEVAL["reinit_norm"],
            answer_weight=RETRIEVAL["answer_weight"],
            curriculum=tuple(budget["curriculum"]),
        ),
    )
    return model_cfg, cfg


def training_seeds(profile: str, seed: int) -> list[int]:
    """The training seeds of a run started with ``seed``: seed, seed + 1, ... (the profile's ``seeds`` of them)."""
    return [seed + i for i in range(PROFILE_SETTINGS[check_profile(profile)]["seeds"])]


def make_test_sets(
    corpus, L: int, mults: Sequence[int], n_samples: int, seed: int, *, part: int = 0, parts: int = 1
) -> tuple[dict, list[str]]:
    """({kind: {mult: (n, mult*L) int64}} for mult in (1, *mults), the file of each sample).

    Samples are nested in windows of max(mults)*L bytes. ``parts`` x ``n_samples`` windows are drawn with ``seed``
    (round-robin over the test files, so every file gives one window before any gives two) and every
    ``parts``-th one from ``part`` on is kept: each training seed of a run gets its own windows, none shared.
    """
    max_len = max(mults) * L
    sets, files = {}, None
    for kind in TEST_SETS:
        sets[kind] = {}
        for m in (1, *mults):
            n = n_samples * parts
            x, f = make_test_set(corpus, kind, m * L, n, seed=seed, max_length=max_len, return_files=True)
            sets[kind][m] = x[part::parts].contiguous()
            files = f[part::parts]
    return sets, files


# ------------------------------------------------------------------------------------------------- scoring


def _summary(m: dict, L: int, bin_size: int | None = None, split_at_L: bool = False) -> dict:
    out = {
        "acc": m["acc"],
        "loss": m["loss"],
        "last_window_loss": last_window_loss(m["loss_per_position"], L),
        # per sample, so that the "longer context, lower loss" curve gets a paired interval
        "last_window_loss_per_sample": np.asarray(m["loss_matrix"])[:, -(L - 1) :].mean(1),
        "acc_per_sample": m["acc_per_sample"],
        "loss_per_sample": m["loss_per_sample"],
    }
    if bin_size:
        lp = np.asarray(m["loss_per_position"])
        ap = np.asarray(m["acc_per_position"])
        n = (lp.size // bin_size) * bin_size  # T-1 predictions: the last, incomplete bin is dropped
        out["loss_per_bin"] = lp[:n].reshape(-1, bin_size).mean(1)
        out["acc_per_bin"] = ap[:n].reshape(-1, bin_size).mean(1)
    if split_at_L:
        # prediction j is of byte j + 1: the bytes at positions < L (what the model was trained on) and the rest
        # (only a longer window has them), per sample - an extension measure free of the loss at short range
        losses = np.asarray(m["loss_matrix"])
        out["within_L_loss_per_sample"] = losses[:, : L - 1].mean(1)
        out["beyond_L_loss_per_sample"] = losses[:, L - 1 :].mean(1)
    return out


def scored(
    entry: tuple,
    samples: torch.Tensor,
    scheme: PositionScheme | None,
    *,
    L: int,
    batch_tokens: int,
    bin_size=None,
    split_at_L: bool = False,
) -> dict:
    """The summary of one trained model ``entry`` = (model, meta) under ``scheme`` on ``samples`` (n, T).

    Cached under ``cache_dir()/eval``, keyed by the checkpoint, the scheme, the samples' bytes, the settings, the
    device and thread count and the library's source: the experiments of notebooks 05 and 06 re-score rows of
    notebook 04 on the same windows, and a notebook re-executes what the command line already ran. Floats are
    stored exactly (JSON repr), so a cached summary equals a fresh one.
    """
    model, meta = entry
    device = next(model.parameters()).device
    key = json.dumps(
        {
            "model": meta.get("key"),
            "scheme": None if scheme is None else scheme.to_dict(),
            "samples": hashlib.sha256(samples.numpy().tobytes()).hexdigest() + str(tuple(samples.shape)),
            "L": L,
            "bin_size": bin_size,
            "split_at_L": split_at_L,
            "batch_tokens": batch_tokens,
            "device": str(device),
            "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "code": code_digest(),
        },
        sort_keys=True,
    )
    path = cache_dir() / "eval" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
    if meta.get("key") and path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    summary = _summary(token_metrics(model, samples, scheme, batch_tokens=batch_tokens), L, bin_size, split_at_L)
    summary = {k: v.tolist() if isinstance(v, np.ndarray) else float(v) for k, v in summary.items()}
    if meta.get("key"):  # a model outside the checkpoint cache has no identity to key on
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(summary), encoding="utf-8"))
    return summary


def score_sets(entry: tuple, sets: dict, scheme: PositionScheme | None, *, L: int, batch_tokens: int) -> dict:
    """{kind: summary} of one trained model ``entry`` = (model, meta) and scheme (None: plain RoPE) on ``sets`` =
    {kind: (n, T) int64 samples}."""
    return {kind: scored(entry, sets[kind], scheme, L=L, batch_tokens=batch_tokens) for kind in TEST_SETS}


def evaluate_rows(
    trained: dict,
    tests: dict,
    rows: Sequence[Row],
    *,
    L: int,
    batch_tokens: int,
    train_length: bool = False,
    split_at_L: bool = False,
    progress: bool = True,
) -> dict:
    """Evaluate table rows on every test set and multiplier in ``tests`` (except 1 unless ``train_length``).

    Multiplier 1 (the training length) is skipped by default: every frequency method is plain RoPE there. A row
    whose scheme differs at L (ReRoPE clips inside L) asks for it with ``train_length=True``. A test set scores
    only the multipliers it has in ``tests`` (see :meth:`Harness.evaluate`'s ``repeated_mults``).

    Args:
        trained: {variant: (model, meta)}, from :func:`train_models` (plus any extra models).
        rows: (row name, model variant, scheme_at(mult) -> PositionScheme, extra info for the JSON).

    Returns:
        {row name: {**info, "model", "schemes": {mult: scheme dict}, "metrics": {kind: {mult: summary}}}}, where a
        summary has acc, loss, last_window_loss, acc_per_sample, and at 8x loss/acc per L/8-byte bin; with
        ``split_at_L``, beyond L also the per-sample loss on the bytes before position L and on those from L on.
    """
    from tqdm.auto import tqdm

    mults = sorted(m for m in tests[TEST_SETS[0]] if m != 1 or train_length)
    bin_size = max(1, L // 8)
    out = {}
    # disable only when asked: an explicit disable=False would override TQDM_DISABLE=1 (papermill/nbval runs)
    bar = tqdm(rows, desc="evaluate", leave=False, **({} if progress else {"disable": True}))
    for name, variant, scheme_at, info in bar:
        metrics, schemes = {kind: {} for kind in TEST_SETS}, {}
        for mult in mults:
            scheme = scheme_at(mult)
            schemes[str(mult)] = scheme.to_dict()
            for kind in (k for k in TEST_SETS if mult in tests[k]):
                metrics[kind][str(mult)] = scored(
                    trained[variant],
                    tests[kind][mult],
                    scheme,
                    L=L,
                    batch_tokens=batch_tokens,
                    bin_size=bin_size if mult == 8 else None,
                    split_at_L=split_at_L and mult > 1,
                )
        out[name] = {**info, "model": variant, "schemes": schemes, "metrics": metrics}
    return out


# ------------------------------------------------------------------------------------ one run, start to end


def experiment_device(profile: str, device: str | None) -> torch.device:
    """The device an experiment runs on; the full profile is sized for a GPU and refused on a CPU."""
    dev = pick_device(device)
    if profile == "full" and dev.type != "cuda":
        raise ValueError("profile 'full' needs a GPU (device cuda); on CPU use profile 'smoke'")
    return dev


def results_header(name: str, profile: str, seed: int, dev: torch.device) -> dict:
    """The fields every results JSON opens with: what ran, where, and from which code (versions, git SHA)."""
    return {
        "experiment": name,
        "schema": 1,
        "profile": profile,
        "seed": seed,
        "device": str(dev),
        # rope_lib.companion.runtime.autocast: bf16 matmuls on CUDA (rotation angles stay float64), float32 on the CPU
        "compute_dtype": "bfloat16 autocast" if dev.type == "cuda" else "float32",
        "versions": package_versions(),
        "git_sha": git_sha(),
        "code": code_digest(),  # what makes the file current: run_experiment replays it only while this matches
    }


# The parts of rope_lib.companion.train's meta worth keeping in a results file (the rest is cache bookkeeping).
_TRAINING_KEYS = ("key", "cache_hit", "steps", "tokens_seen", "n_parameters", "val_loss", "val_acc", "loss_curve")


def training_record(trained: dict) -> tuple[dict, dict]:
    """({variant: training summary}, {timing name: {variant: value}}) for ``{variant: (model, meta)}``."""
    summary = {v: {k: meta.get(k) for k in _TRAINING_KEYS} for v, (_, meta) in trained.items()}
    timings = {
        f"train_{out}": {v: meta.get(key) for v, (_, meta) in trained.items()}
        for out, key in (("wall_s", "wall_time_s"), ("tokens_per_s", "tokens_per_s"), ("cache_hit", "cache_hit"))
    }
    return summary, timings


@dataclass
class Harness:
    """What :func:`prepare` sets up for one run: configs, corpus, trained models and the nested test sets."""

    profile: str
    seed: int
    device: torch.device
    model: ModelConfig
    model_log_n: ModelConfig
    train_cfg: TrainConfig  # the training run of the two shared models (the function that trains is ``train``)
    eval: dict
    corpus: Corpus
    trained: dict
    tests: dict
    sample_files: list[str] = field(default_factory=list)
    run_index: int = 0
    progress: bool = True
    started: float = field(default_factory=time.perf_counter)
    eval_started: float = field(default_factory=time.perf_counter)

    @property
    def L(self) -> int:  # noqa: N802 - the paper's name for the training length
        return self.model.train_length

    @property
    def base(self) -> float:
        return self.model.rope_base

    @property
    def head_dim(self) -> int:
        return self.model.head_dim

    @property
    def mults(self) -> tuple[int, ...]:
        return tuple(self.eval["multipliers"])

    @property
    def batch_tokens(self) -> int:
        return self.eval["batch_tokens"]

    def at_train_length(self) -> dict:
        """{kind: (n, L) samples}: the first L bytes of every nested test window."""
        return {kind: self.tests[kind][1] for kind in TEST_SETS}

    def score(self, variant: str, sets: dict, scheme: PositionScheme | None = None) -> dict:
        """:func:`score_sets` for the trained model ``variant``."""
        return score_sets(self.trained[variant], sets, scheme, L=self.L, batch_tokens=self.batch_tokens)

    def evaluate(
        self,
        rows: Sequence[Row],
        *,
        mults: Sequence[int] | None = None,
        train_length: bool = False,
        repeated_mults: Sequence[int] | None = None,
        split_at_L: bool = False,
    ) -> dict:
        """:func:`evaluate_rows` on the nested test sets (only ``mults`` if given; also L if ``train_length``).

        ``repeated_mults``: score the repeated set only at these multipliers (and at L if ``train_length``; an
        empty sequence: only there); the non-repeated set is scored at every multiplier. None: both sets everywhere.
        """
        keep = {1, *(self.mults if mults is None else check_names("mults", mults, self.mults))}
        keep_repeated = keep
        if repeated_mults is not None:
            listed = check_names("repeated_mults", repeated_mults, self.mults) if repeated_mults else []  # []: L only
            keep_repeated = keep & {1, *listed}
        tests = {
            kind: {m: t for m, t in by_mult.items() if m in (keep_repeated if kind == "repeated" else keep)}
            for kind, by_mult in self.tests.items()
        }
        return evaluate_rows(
            self.trained,
            tests,
            rows,
            L=self.L,
            batch_tokens=self.batch_tokens,
            train_length=train_length,
            split_at_L=split_at_L,
            progress=self.progress,
        )

    def eval_config(self, **extra) -> dict:
        """The evaluation settings every results file records (plus ``extra``)."""
        return {
            "train_length": self.L,
            "multipliers": list(self.mults),
            "test_lengths": [m * self.L for m in self.mults],
            "test_sets": list(TEST_SETS),
            "n_samples": int(self.tests[TEST_SETS[0]][1].shape[0]),
            "sample_files": list(self.sample_files),
            "nested_samples": f"every test length scores the last L' bytes of the same {max(self.mults) * self.L}-byte"
            " windows",
            "position_bin": max(1, self.L // 8),
            "num_threads": self.eval["num_threads"],
            **extra,
        }


@contextlib.contextmanager
def prepare(
    profile: str,
    device: str | None,
    seed: int,
    *,
    extra_models: dict[str, tuple[ModelConfig, TrainConfig]] | None = None,
    test_seed: int | None = None,
    run_index: int = 0,
    n_runs: int = 1,
    progress: bool = True,
) -> Iterator[Harness]:
    """Set up one training seed's run: the profile's settings and thread count, the corpus, both models (plus
    ``extra_models``, {variant: (model config, training config)}), trained or loaded from the cache, and the nested
    test sets: part ``run_index`` of ``n_runs`` disjoint parts of the windows drawn with ``test_seed`` (default
    ``seed``), so the runs of one experiment never share a test window.

    The thread count of the profile holds until the ``with`` block ends (the smoke profile fixes 2 threads for
    run-to-run determinism). The full profile is refused on a CPU.
    """
    dev = experiment_device(profile, device)
    model_cfg, model_log_n_cfg, train_cfg, ev = settings(profile, seed)
    started = time.perf_counter()
    with torch_threads(ev["num_threads"]):
        corpus = load_corpus()
        trained = train_models(profile, dev, seed, corpus=corpus, progress=progress)
        for variant, (mcfg, tcfg) in (extra_models or {}).items():
            trained[variant] = train(mcfg, tcfg, corpus=corpus, device=dev, progress=progress)
        eval_started = time.perf_counter()
        tests, files = make_test_sets(
            corpus,
            model_cfg.train_length,
            tuple(ev["multipliers"]),
            ev["n_samples"],
            seed if test_seed is None else test_seed,
            part=run_index,
            parts=n_runs,
        )
        yield Harness(
            profile=profile,
            seed=seed,
            device=dev,
            model=model_cfg,
            model_log_n=model_log_n_cfg,
            train_cfg=train_cfg,
            eval=ev,
            corpus=corpus,
            trained=trained,
            tests=tests,
            sample_files=files,
            run_index=run_index,
            progress=progress,
            started=started,
            eval_started=eval_started,
        )


def finish(name: str, h: Harness, *, config: dict, timings: dict | None = None, **sections) -> dict:
    """One training seed's results: the header, ``config`` (after the model configs, before the corpus), the
    training record and timings of every trained model, then ``sections`` in order. :func:`run_seeds` writes them."""
    training, train_timings = training_record(h.trained)
    now = time.perf_counter()
    return {
        **results_header(name, h.profile, h.seed, h.device),
        "config": {
            "model": h.model.to_dict(),
            "model_log_n": h.model_log_n.to_dict(),
            "train": h.train_cfg.to_dict(),
            **config,
            "corpus": h.corpus.summary(),
        },
        "training": training,
        "timings": {**train_timings, "eval_s": now - h.eval_started, **(timings or {}), "total_s": now - h.started},
        **sections,
    }


def run_seeds(
    name: str,
    profile: str,
    device: str | None,
    seed: int,
    out: str | Path | None,
    one_seed: Callable[[Harness], dict],
    *,
    extra_models: Callable[[int], dict] | None = None,
    progress: bool = True,
) -> dict:
    """Run ``one_seed`` (a :class:`Harness` -> :func:`finish` dict) for every training seed of the profile, each on
    its own part of the test windows, and write ``<out>/<name>.json``: the header, the first run's config, and
    ``runs``, every seed's results in seed order. ``extra_models(seed)`` gives the extra models of a seed.

    Nothing is written unless every seed ran.
    """
    dev = experiment_device(profile, device)
    seeds = training_seeds(profile, seed)
    started = time.perf_counter()
    runs = []
    for i, s in enumerate(seeds):
        extra = extra_models(s) if extra_models else None
        with prepare(
            profile, device, s, extra_models=extra, test_seed=seed, run_index=i, n_runs=len(seeds), progress=progress
        ) as h:
            runs.append(one_seed(h))
    header = results_header(name, profile, seed, dev)
    per_run_header = set(header)
    results = {
        **{k: v for k, v in header.items() if k != "seed"},
        "schema": 2,
        "seeds": seeds,
        "test_seed": seed,
        "config": runs[0]["config"],
        "timings": {"total_s": time.perf_counter() - started},
        "runs": [{"seed": r["seed"], **{k: v for k, v in r.items() if k not in per_run_header}} for r in runs],
    }
    write_json(results, output_path(name, profile, out))
    return results


def all_models(profile: str, seed: int, extra_models: Sequence[Callable[[int], dict]] = ()) -> list[tuple]:
    """(seed, variant, model config, training config) of every model a run started with ``seed`` trains."""
    out = []
    for s in training_seeds(profile, seed):
        for models in (shared_models(profile, s), *(extra(s) for extra in extra_models)):
            out += [(s, v, m, t) for v, (m, t) in models.items()]
    return out


def train_all(
    profile: str, device: str | None, seed: int, extra_models: Sequence[Callable[[int], dict]] = (), *, progress=True
) -> list[dict]:
    """Train (or find in the cache) every model of every seed, before the notebooks that share them run."""
    dev = experiment_device(profile, device)
    settings_ = PROFILE_SETTINGS[check_profile(profile)]
    corpus = load_corpus()
    metas = []
    with torch_threads(settings_["num_threads"]):
        for s, variant, mcfg, tcfg in all_models(profile, seed, extra_models):
            _, meta = train(mcfg, tcfg, corpus=corpus, device=dev, progress=progress)
            metas.append({"seed": s, "variant": variant, "key": meta["key"], "cache_hit": meta["cache_hit"]})
    return metas
