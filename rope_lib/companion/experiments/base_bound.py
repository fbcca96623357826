"""Retrieval against the RoPE base (notebook 07): Men et al. 2024 (arXiv 2405.14591) at our scale.

The claim: below the base bound b*(L) of :func:`rope_lib.base_bound.base_lower_bound` a model trained at length L
keeps a good loss but loses long-range retrieval. Here, per training seed and per base of the profile's
:data:`SETTINGS`:

* a **text model**: the notebook-04 plain model with only ``rope_base`` changed (same data, steps, schedule; at
  base 1e4 it *is* notebook 04's model). Its loss at L on the seed's own test windows is the "perplexity" side.
* a **retrieval model**: the text model fine-tuned on passkey rows (:func:`rope_lib.companion.data.passkey_batch`, 100%
  of the rows; the filler around the key is still text, so it keeps being a language model) with the recipe of
  :data:`RETRIEVAL`: QUERY's and the key symbols' embedding rows re-drawn (pre-training leaves them collapsed onto one
  vector), the answer byte's cross-entropy weighted up, short key distances first. Its passkey accuracy at every
  distance 1..L-2 is the retrieval side; its text loss at L shows what learning retrieval cost.

On the retrieval model at notebook 04's base (1e4), passkey accuracy beyond L (1x-16x, key distance as a fraction of
the longest one a sample holds) for :data:`HEATMAP_METHODS` without fine-tuning: which extension methods keep retrieval.
"""

from __future__ import annotations

import functools

from ...base_bound import base_lower_bound, max_context_length
from ..data import make_passkey_set
from ..evaluate import passkey_hits, passkey_rows_cosine
from ..model import ModelConfig, PositionScheme
from ..runtime import check_profile
from ..train import TrainConfig
from .common import register
from .harness import (
    RETRIEVAL,
    RETRIEVAL_BUDGET,
    Harness,
    finish,
    rerope_scheme,
    retrieval_model,
    run_seeds,
    scheme_for,
    shared_models,
)

NAME = "base_bound"
# Per profile: the bases swept (around the bound of the profile's model: d = 32, L = 64 in smoke has
# b* = 315, so 10 is 30x below and 1e4 30x above; each base below 1e4 costs one more pre-training per seed). The
# retrieval fine-tuning recipe and budget are the harness's (RETRIEVAL, RETRIEVAL_BUDGET).
SETTINGS: dict[str, dict] = {
    "smoke": dict(bases=(10.0, 1e4)),
    # L = 128 (b* = 1.0e3 at d = 32): 10 is 100x below, 1e4 10x above
    "medium": dict(bases=(10.0, 1e4)),
    # one GPU, sized, not run: d = 64, L = 512 (b* = 3.4e3): 10 and 100 below, 1e4 and 1e5 above
    "full": dict(bases=(10.0, 100.0, 1e4, 1e5)),
}
PASSKEY_SAMPLES = 16  # per distance (base sweep): the same texts and keys at every distance and base
# Passkey at L and at every test length of the profile (smoke: 2x-16x) on the base-1e4 retrieval model, each method
# tuned to s = L'/L (ReRoPE: w = L/2).
HEATMAP_METHODS: tuple[str, ...] = ("Baseline", "NTK-aware", "YaRN", "Dynamic YaRN", "ReRoPE")
HEATMAP_FRACTIONS: tuple[float, ...] = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1.0)  # of the longest distance, T - 2
HEATMAP_SAMPLES = 8  # per cell and seed


def base_label(base: float) -> str:
    return f"{base:g}"


def retrieval_configs(profile: str, seed: int) -> dict[str, tuple[ModelConfig, TrainConfig]]:
    """{"text-b<base>", "retrieval-b<base>": (model config, training config)} of training seed ``seed``, per base."""
    pre = shared_models(profile, seed)["plain"][1]
    out = {}
    for base in SETTINGS[check_profile(profile)]["bases"]:
        model_cfg, cfg = retrieval_model(profile, seed, base)
        out[f"text-b{base_label(base)}"] = (model_cfg, pre)
        out[f"retrieval-b{base_label(base)}"] = (model_cfg, cfg)
    return out


def _distances(length: int, fractions) -> list[int]:
    longest = length - 2
    return sorted({min(longest, max(1, round(f * longest))) for f in fractions})


def _heatmap_scheme(method: str, mult: int, L: int, base: float, d: int) -> PositionScheme:
    if method == "ReRoPE":
        return rerope_scheme(L // 2)
    return scheme_for(method, float(mult), L, base, d)


def _bar(items, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False, **({} if progress else {"disable": True}))


def _per_base(h: Harness, s: dict, keys, distances: list[int], progress: bool) -> dict:
    """Per base: how far B_m stays >= 0, and for its text and retrieval model the loss at L and passkey hits."""
    bases = {}
    for base in _bar(s["bases"], "bases", progress):
        label = base_label(base)
        entry = {"keeps_bias_sum_nonnegative_to": max_context_length(base, h.head_dim)}
        for kind in ("text", "retrieval"):
            variant = f"{kind}-b{label}"
            summary = h.score(variant, h.at_train_length())["non_repeated"]
            hits = passkey_hits(h.trained[variant][0], keys, batch_tokens=h.batch_tokens)
            entry[kind] = {
                "passkey_rows_cosine": passkey_rows_cosine(h.trained[variant][0]),
                "loss_per_sample": summary["loss_per_sample"],
                "passkey": {str(m): hits[i].tolist() for i, m in enumerate(distances)},
            }
        bases[label] = entry
    return bases


def _heatmap(h: Harness, s: dict, mults: tuple[int, ...], progress: bool) -> dict:
    """Passkey hits beyond L of the retrieval model at notebook 04's base (h.base), per method, length and distance."""
    heatmap: dict = {}
    if h.base not in s["bases"]:
        return heatmap
    model = h.trained[f"retrieval-b{base_label(h.base)}"][0]
    samples = {}
    for method, mult in _bar([(m, mult) for mult in mults for m in HEATMAP_METHODS], "heatmap", progress):
        T = mult * h.L
        if mult not in samples:
            dist = _distances(T, HEATMAP_FRACTIONS)
            samples[mult] = (dist, make_passkey_set(h.corpus, T, dist, HEATMAP_SAMPLES, seed=h.seed)[0])
        dist, x = samples[mult]
        scheme = _heatmap_scheme(method, mult, h.L, h.base, h.head_dim)
        hits = passkey_hits(model, x, scheme, batch_tokens=h.batch_tokens)
        heatmap.setdefault(method, {})[str(mult)] = {str(m): hits[i].tolist() for i, m in enumerate(dist)}
    return heatmap


def _one_seed(h: Harness, *, s: dict, progress: bool) -> dict:
    L, d = h.L, h.head_dim
    budget = RETRIEVAL_BUDGET[h.profile]
    distances = list(range(1, L - 1))
    keys, key_files = make_passkey_set(h.corpus, L, distances, PASSKEY_SAMPLES, seed=h.seed)
    bases = _per_base(h, s, keys, distances, progress)
    mults = (1, *h.mults)
    heatmap = _heatmap(h, s, mults, progress)
    passkey = {"length": L, "distances": distances, "samples": PASSKEY_SAMPLES, "files": key_files, "chance": 1 / 16}
    config = {
        "eval": h.eval_config(
            passkey=passkey,
            heatmap={
                "methods": list(HEATMAP_METHODS),
                "multipliers": list(mults),
                "distance_fractions": list(HEATMAP_FRACTIONS),
                "samples": HEATMAP_SAMPLES,
                "base": h.base,
                "rerope_window": L // 2,
            },
        ),
        "base_bound": {
            "bases": [float(b) for b in s["bases"]],
            "head_dim": d,
            "bound": base_lower_bound(L, d),
            "retrieval": {
                **RETRIEVAL,
                "steps": budget["steps"],
                "curriculum": [list(c) for c in budget["curriculum"]],
                "passkey_fraction": 1.0,
                "schedule": "constant, no warm-up",
            },
        },
    }
    return finish(NAME, h, config=config, bases=bases, heatmap=heatmap)


@register(NAME, models=retrieval_configs)
def run(profile: str = "smoke", device: str | None = None, seed: int = 0, out=None, *, progress: bool = True) -> dict:
    """For every training seed: the text and retrieval model of each base (trained or loaded), their loss at L,
    passkey accuracy at every key distance within L, and the base-1e4 heatmap beyond L; writes ``base_bound.json``.
    """
    s = SETTINGS[check_profile(profile)]
    one_seed = functools.partial(_one_seed, s=s, progress=progress)
    models = functools.partial(retrieval_configs, profile)
    return run_seeds(NAME, profile, device, seed, out, one_seed, extra_models=models, progress=progress)
