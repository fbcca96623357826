"""Every RoPE frequency-scaling method, one small function each, plus a reader for transformers configs.

Notation (the companion's): theta_i = b^(-2i/d), i = 0..d/2-1, base b, *rotary* dim d, scale s, training
(original) length L, current length n.  Every method returns ``(inv_freq, attention_factor)``:

* ``inv_freq``: float64 tensor of shape (d/2,), the per-pair angular frequencies to rotate with;
* ``attention_factor``: float multiplying cos and sin of both q and k (so the logits scale by its square),
  exactly what ``rope_lib.apply_rope(..., attention_factor=)`` and transformers' ``attention_scaling`` do.

``d`` is the rotary dim, ``head_dim * partial_rotary_factor``: the frequencies are spread over the rotated
features only (transformers does the same; computing them over head_dim is a known bug class).

Methods (``ROPE_TYPES``), with the source of each formula:

=================  ==================================================================================
``default``        theta_i (Su, RoFormer)
``linear``         Positional Interpolation, theta_i / s (Chen et al. 2023, arXiv 2306.15595)
``ntk``            NTK-aware "old": base b * s^(d/(d-2)) (bloc97; Su, kexue.fm/archives/9675)
``ntk_fixed``      Su's fixed NTK: theta_m = 1/(lambda (beta lambda)^(m-1)), beta=b^(2/d), lambda=s^(2/d)
                   (kexue.fm/archives/9706), i.e. theta_i * s^(-2(i+1)/d)
``ntk_mixed``      Su's mixed radix: theta_i * exp(-a (i+1)^p), a (d/2)^p = ln s (archives/9706);
                   p = 1 is ``ntk_fixed``, p = 0 is ``linear``
``dynamic``        Dynamic NTK (transformers semantics): b (s n/L - (s-1))^(d/(d-2)), n = max(seq_len, L);
                   here s is a slope: the NTK scale in effect is s n/L - (s-1), which is n/L only for s = 1
``ntk_by_parts``   NTK-by-parts as *published* (YaRN paper, arXiv 2309.00071, Sec. 3.2): ramp linear in the
                   number of rotations r = L theta_i / (2 pi), bounds alpha < beta, no temperature
``yarn``           YaRN as *implemented* (transformers / the YaRN repository): ramp linear in the pair index
                   between the correction dims of beta_fast and beta_slow, optional floor/ceil, temperature
``dynamic_yarn``   ``yarn`` with s = max(1, seq_len / L) (YaRN paper, Sec. 3.3)
``llama3``         Llama 3.1: wavelengths < L/high_freq_factor kept, > L/low_freq_factor divided by s,
                   linear-in-r blend between; identical to ``ntk_by_parts`` with alpha=low, beta=high
``longrope``       LongRoPE: theta_i / ext_i with per-pair factors (short below L, long above);
                   attention factor sqrt(1 + ln s / ln L) (arXiv 2402.13753, as in transformers)
=================  ==================================================================================

Two remarks of ours (shown in notebook 03): the published NTK-by-parts ramp is linear in r, while the YaRN code
(and so transformers' ``yarn``) ramps linearly in the pair index, i.e. in log r - the two differ inside the ramp.
Llama 3's rule is the published ramp with (alpha, beta) = (low_freq_factor, high_freq_factor) = (1, 4).

Length-dependent methods (``dynamic``, ``dynamic_yarn``, ``longrope``) read ``seq_len``; their keys must be cached
*un-rotated* to decode exactly: :func:`rope_lib.decoding.dynamic_rope_step` does that with a raw-key cache, and
:func:`rope_lib.decoding.stale_cache_error` measures how far the usual rotate-once cache drifts from a full recompute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import torch

from ._checks import positive_int
from .rope import inv_freq

Frequencies = tuple[torch.Tensor, float]

ROPE_TYPES: tuple[str, ...] = (
    "default",
    "linear",
    "ntk",
    "ntk_fixed",
    "ntk_mixed",
    "dynamic",
    "ntk_by_parts",
    "yarn",
    "dynamic_yarn",
    "llama3",
    "longrope",
)
# The types transformers also has (``ROPE_INIT_FUNCTIONS`` plus the models' own "default"); tested for parity.
TRANSFORMERS_ROPE_TYPES: tuple[str, ...] = ("default", "linear", "dynamic", "yarn", "llama3", "longrope")


# ----------------------------------------------------------------------------------------------------------------
# argument checks (each names the argument; frequencies() re-checks under the config key's name)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _number(
    name: str, value: Any, *, low: float | None = None, low_open: bool = False, high: float | None = None
) -> float:
    if not _is_number(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high:g}, got {value!r}")
    return value


def _integer(name: str, value: Any, *, low: int) -> int:
    return positive_int(name, value, low=low)


def _rotary_dim(name: str, value: Any, *, low: int = 2) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or value % 2:
        raise ValueError(f"{name} must be an even integer >= {low}, got {value!r}")
    return value


def _base(value: Any, name: str = "base") -> float:
    return _number(name, value, low=1.0, low_open=True)


def _factor(value: Any, name: str = "factor") -> float:
    return _number(name, value, low=1.0)


def _seq_len(value: Any) -> int | None:
    if value is None:
        return None
    return _integer("seq_len", value, low=1)


def _per_pair(name: str, values: Any, pairs: int) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, str) or not all(_is_number(v) for v in values):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}")
    if len(values) != pairs:
        raise ValueError(f"{name} must have rotary_dim/2 = {pairs} entries (one per pair), got {len(values)}")
    if any(float(v) <= 0 for v in values):
        raise ValueError(f"{name} entries must be > 0, got {list(values)!r}")
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


# ----------------------------------------------------------------------------------------------------------------
# the methods


def default_frequencies(rotary_dim: int, base: float) -> Frequencies:
    """Plain RoPE: theta_i = b^(-2i/d); attention factor 1."""
    return inv_freq(_rotary_dim("rotary_dim", rotary_dim), _base(base)), 1.0


def linear_frequencies(rotary_dim: int, base: float, factor: float) -> Frequencies:
    """Positional Interpolation: every pair divided by s (equivalently positions m -> m/s)."""
    theta, _ = default_frequencies(rotary_dim, base)
    return theta / _factor(factor), 1.0


def ntk_base(rotary_dim: int, base: float, factor: float) -> float:
    """NTK-aware base b' = b * s^(d/(d-2)): the lowest pair (i = d/2-1) then turns exactly as PI's lowest pair."""
    d = _rotary_dim("rotary_dim", rotary_dim, low=4)  # d/(d-2) needs d > 2
    return _base(base) * _factor(factor) ** (d / (d - 2))


def ntk_frequencies(rotary_dim: int, base: float, factor: float) -> Frequencies:
    """NTK-aware scaling ("NTK-RoPE-old" in Su's tables): plain RoPE with base b * s^(d/(d-2))."""
    return inv_freq(rotary_dim, ntk_base(rotary_dim, base, factor)), 1.0


def ntk_fixed_frequencies(rotary_dim: int, base: float, factor: float) -> Frequencies:
    """Su's fixed NTK: theta_i * s^(-2(i+1)/d), i.e. theta_m = 1/(lambda (beta lambda)^(m-1)) with m = i+1.

    The lowest pair is divided by exactly s (as PI) and the highest by s^(2/d) (nearly kept).
    """
    theta, _ = default_frequencies(rotary_dim, base)
    s = _factor(factor)
    m = torch.arange(1, rotary_dim // 2 + 1, dtype=torch.float64)
    return theta * s ** (-2.0 * m / rotary_dim), 1.0


def ntk_mixed_frequencies(rotary_dim: int, base: float, factor: float, p: float) -> Frequencies:
    """Su's mixed-radix NTK: theta_i * exp(-a (i+1)^p) with a (d/2)^p = ln s.

    The digit m = i+1 is stretched by lambda_m = exp(a (m^p - (m-1)^p)); the cumulative product is exp(a m^p).
    p = 1 gives :func:`ntk_fixed_frequencies`, p = 0 gives :func:`linear_frequencies`; Su used p = 0.625 for his
    GAU runs and k = 12, p = 0.75 for his LLaMA-2 patch. 0 <= p <= 1.
    """
    theta, _ = default_frequencies(rotary_dim, base)
    s = _factor(factor)
    p = _number("p", p, low=0.0, high=1.0)
    m = torch.arange(1, rotary_dim // 2 + 1, dtype=torch.float64)
    a = math.log(s) / (rotary_dim / 2) ** p
    return theta * torch.exp(-a * m**p), 1.0


def dynamic_ntk_base(rotary_dim: int, base: float, factor: float, original_length: int, seq_len: int | None) -> float:
    """Dynamic NTK's base at length n: b (s n/L - (s-1))^(d/(d-2)) with n = max(seq_len, L) (seq_len None -> L).

    The bracket is the static NTK scale in effect at length n: 1 at n = L (plain RoPE), n/L for factor 1 (the
    s = n/L rule of the YaRN paper), and for factor s > 1 it grows s times faster than n/L (s + 1 at n = 2L):
    transformers' ``factor`` is the slope of the schedule, not the extension ratio.
    """
    d = _rotary_dim("rotary_dim", rotary_dim, low=4)
    s, L = _factor(factor), _integer("original_length", original_length, low=1)
    n = max(_seq_len(seq_len) or L, L)
    return _base(base) * (s * n / L - (s - 1.0)) ** (d / (d - 2))


def dynamic_ntk_frequencies(
    rotary_dim: int, base: float, factor: float, original_length: int, seq_len: int | None = None
) -> Frequencies:
    """Dynamic NTK: NTK-aware scaling whose base grows with the current length (transformers' ``dynamic``).

    transformers takes L from ``config.max_position_embeddings``; here it is the explicit ``original_length``.
    """
    return inv_freq(rotary_dim, dynamic_ntk_base(rotary_dim, base, factor, original_length, seq_len)), 1.0


def rotations(rotary_dim: int, base: float, original_length: int) -> torch.Tensor:
    """r_i = L / lambda_i = L theta_i / (2 pi): how many full turns pair i makes over the training length."""
    theta, _ = default_frequencies(rotary_dim, base)
    return _integer("original_length", original_length, low=1) * theta / (2 * math.pi)


def ntk_by_parts_ramp(r: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """The published ramp gamma(r): 0 for r < alpha (interpolate), 1 for r > beta (keep), linear in r between."""
    alpha = _number("alpha", alpha, low=0.0, low_open=True)
    beta = _number("beta", beta, low=0.0, low_open=True)
    if not beta > alpha:
        raise ValueError(f"beta must be > alpha, got alpha={alpha!r}, beta={beta!r}")
    return ((torch.as_tensor(r, dtype=torch.float64) - alpha) / (beta - alpha)).clamp(0.0, 1.0)


def ntk_by_parts_frequencies(
    rotary_dim: int, base: float, factor: float, original_length: int, alpha: float = 1.0, beta: float = 32.0
) -> Frequencies:
    """NTK-by-parts as published: theta_i' = (1 - gamma(r_i)) theta_i / s + gamma(r_i) theta_i, attention factor 1.

    Pairs turning fewer than alpha times over L are interpolated (as PI), more than beta times kept; YaRN's
    LLaMA values are alpha = 1, beta = 32. (The YaRN *code* ramps in the pair index instead; see ``yarn``.)
    """
    theta, _ = default_frequencies(rotary_dim, base)
    s = _factor(factor)
    gamma = ntk_by_parts_ramp(rotations(rotary_dim, base, original_length), alpha, beta)
    return (1 - gamma) * theta / s + gamma * theta, 1.0


def yarn_correction_dim(rotations: float, rotary_dim: int, base: float, original_length: int) -> float:
    """The (fractional) pair index i at which pair i turns ``rotations`` times over L.

    Solving L b^(-2i/d) / (2 pi) = r for i gives i = d ln(L / (2 pi r)) / (2 ln b).
    """
    r = _number("rotations", rotations, low=0.0, low_open=True)
    d = _rotary_dim("rotary_dim", rotary_dim)
    L = _integer("original_length", original_length, low=1)
    return d * math.log(L / (2 * math.pi * r)) / (2 * math.log(_base(base)))


def yarn_correction_range(
    rotary_dim: int,
    base: float,
    original_length: int,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    truncate: bool = True,
) -> tuple[float, float]:
    """(low, high) pair indices of YaRN's ramp, as the YaRN code and transformers compute them.

    low = correction dim of beta_fast (pairs below it are kept), high = that of beta_slow (pairs above it are
    divided by s); floor(low)/ceil(high) when ``truncate``; then clamped to [0, d-1]. (The upper clamp is d-1 though
    the ramp runs over the d/2 pair indices: we keep it for parity; it only matters when high > d-1.)
    """
    fast = _number("beta_fast", beta_fast, low=0.0, low_open=True)
    slow = _number("beta_slow", beta_slow, low=0.0, low_open=True)
    if fast < slow:
        raise ValueError(f"beta_fast must be >= beta_slow, got beta_fast={beta_fast!r}, beta_slow={beta_slow!r}")
    if not isinstance(truncate, bool):
        raise ValueError(f"truncate must be a bool, got {truncate!r}")
    low = yarn_correction_dim(fast, rotary_dim, base, original_length)
    high = yarn_correction_dim(slow, rotary_dim, base, original_length)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, rotary_dim - 1)


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's sqrt(1/t) = 0.1 * mscale * ln s + 1 (1 for s <= 1); it multiplies q and k, the logits get its square."""
    s = _number("factor", factor, low=0.0, low_open=True)
    return 1.0 if s <= 1 else 0.1 * float(mscale) * math.log(s) + 1.0


def _yarn_attention_factor(
    factor: float, attention_factor: float | None, mscale: float | None, mscale_all_dim: float | None
) -> float:
    if attention_factor is not None:
        return _number("attention_factor", attention_factor, low=0.0, low_open=True)
    if mscale is not None:
        _number("mscale", mscale, low=0.0)
    if mscale_all_dim is not None:
        _number("mscale_all_dim", mscale_all_dim, low=0.0)
    # transformers uses the DeepSeek ratio only when both are set and non-zero, and silently ignores a lone one.
    if mscale and mscale_all_dim:
        return yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim)
    return yarn_mscale(factor)


def yarn_frequencies(
    rotary_dim: int,
    base: float,
    factor: float,
    original_length: int,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    truncate: bool = True,
    mscale: float | None = None,
    mscale_all_dim: float | None = None,
    attention_factor: float | None = None,
) -> Frequencies:
    """YaRN with transformers' semantics (the parity target).

    Pair i keeps theta_i below the correction range, gets theta_i / s above it, and a blend with weight linear in
    i inside it (``yarn_correction_range``; a zero-width range is widened by 0.001 as transformers does).
    Attention factor: ``attention_factor`` if given; else yarn_mscale(s, mscale) / yarn_mscale(s, mscale_all_dim)
    when both are set and non-zero (DeepSeek); else 0.1 ln s + 1.
    """
    theta, _ = default_frequencies(rotary_dim, base)
    s = _factor(factor)
    low, high = yarn_correction_range(rotary_dim, base, original_length, beta_fast, beta_slow, truncate)
    if low == high:
        high = high + 0.001
    # weight of the interpolated (theta/s) frequency, 0 for fast pairs, 1 for slow ones
    interp = ((torch.arange(rotary_dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0.0, 1.0)
    theta_new = theta / s * interp + theta * (1 - interp)
    return theta_new, _yarn_attention_factor(s, attention_factor, mscale, mscale_all_dim)


def dynamic_yarn_frequencies(
    rotary_dim: int,
    base: float,
    original_length: int,
    seq_len: int | None = None,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    truncate: bool = True,
    mscale: float | None = None,
    mscale_all_dim: float | None = None,
    attention_factor: float | None = None,
) -> Frequencies:
    """Dynamic YaRN: :func:`yarn_frequencies` with s = max(1, seq_len / L) (seq_len None -> s = 1, plain RoPE)."""
    L = _integer("original_length", original_length, low=1)
    n = _seq_len(seq_len) or L
    return yarn_frequencies(
        rotary_dim, base, max(1.0, n / L), L, beta_fast, beta_slow, truncate, mscale, mscale_all_dim, attention_factor
    )


def llama3_frequencies(
    rotary_dim: int,
    base: float,
    factor: float,
    original_length: int,
    low_freq_factor: float = 1.0,
    high_freq_factor: float = 4.0,
) -> Frequencies:
    """Llama 3.1 scaling: keep wavelengths < L/high_freq_factor, divide those > L/low_freq_factor by s, blend between.

    The blend weight is (L/wavelength - low)/(high - low) = (r_i - low)/(high - low): this *is* the published
    NTK-by-parts with alpha = low_freq_factor and beta = high_freq_factor. Llama 3.1: s=8, low=1, high=4, L=8192.
    """
    low = _number("low_freq_factor", low_freq_factor, low=0.0, low_open=True)
    high = _number("high_freq_factor", high_freq_factor, low=0.0, low_open=True)
    if not high > low:
        raise ValueError(
            f"high_freq_factor must be > low_freq_factor, got high={high_freq_factor!r}, low={low_freq_factor!r}"
        )
    return ntk_by_parts_frequencies(rotary_dim, base, factor, original_length, alpha=low, beta=high)


def longrope_attention_factor(factor: float, original_length: int) -> float:
    """LongRoPE's default attention factor sqrt(1 + ln s / ln L) (1 for s <= 1)."""
    s = _number("factor", factor, low=0.0, low_open=True)
    L = _integer("original_length", original_length, low=2)
    return 1.0 if s <= 1 else math.sqrt(1 + math.log(s) / math.log(L))


def longrope_frequencies(
    rotary_dim: int,
    base: float,
    short_factor: Sequence[float],
    long_factor: Sequence[float],
    original_length: int,
    seq_len: int | None = None,
    factor: float | None = None,
    attention_factor: float | None = None,
) -> Frequencies:
    """LongRoPE: theta_i / ext_i with ext = long_factor when seq_len > L, else short_factor (seq_len None -> short).

    Attention factor: ``attention_factor`` if given, else sqrt(1 + ln s / ln L) from ``factor`` (one is required;
    transformers falls back to max_position_embeddings / L for s, which is not in rope_parameters).
    """
    theta, _ = default_frequencies(rotary_dim, base)
    L = _integer("original_length", original_length, low=2)
    short = _per_pair("short_factor", short_factor, rotary_dim // 2)
    long = _per_pair("long_factor", long_factor, rotary_dim // 2)
    n = _seq_len(seq_len)
    ext = long if n is not None and n > L else short
    if attention_factor is not None:
        af = _number("attention_factor", attention_factor, low=0.0, low_open=True)
    elif factor is not None:
        af = longrope_attention_factor(_factor(factor), L)
    else:
        raise ValueError("longrope needs factor (s = extended / original length) or attention_factor")
    return theta / ext, af


def log_n_scale(positions: torch.Tensor | Sequence[int], original_length: int) -> torch.Tensor:
    """Per-query factor max(1, ln n / ln L) for Su's log-n attention scaling (kexue.fm/archives/8823).

    ``positions`` are 0-based token indices; n = position + 1 is the number of tokens the query sees (itself
    included), so the factor is exactly 1 up to and including the L-th token and grows as log_L n after it.
    Multiply q (before or after rotation) by it: the logits scale by it once. Returns float64, positions' shape.
    """
    L = _integer("original_length", original_length, low=2)
    pos = torch.as_tensor(positions)
    if pos.is_floating_point() or pos.is_complex() or pos.dtype == torch.bool:
        raise ValueError(f"positions must be integer token indices, got dtype {pos.dtype}")
    if pos.numel() and int(pos.min()) < 0:
        raise ValueError(f"positions must be >= 0 (0-based token indices), got min {int(pos.min())}")
    n = pos.to(torch.float64) + 1
    # exactly 1 for n <= L by construction: at n = L, torch's log(L) / math.log(L) is 1 only if both round alike
    return torch.where(n <= L, 1.0, torch.log(n) / math.log(L))


# ----------------------------------------------------------------------------------------------------------------
# transformers-style rope_parameters


_COMMON_KEYS = ("rope_type", "type", "rope_theta", "partial_rotary_factor")
_YARN_OPTIONAL = ("attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate")
# rope_type -> (required keys, optional keys) besides the common ones (rope_theta is required for every type)
_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "default": ((), ()),
    "linear": (("factor",), ()),
    "ntk": (("factor",), ()),
    "ntk_fixed": (("factor",), ()),
    "ntk_mixed": (("factor", "p"), ()),
    "dynamic": (("factor", "original_max_position_embeddings"), ()),
    "ntk_by_parts": (("factor", "original_max_position_embeddings"), ("alpha", "beta")),
    "yarn": (("factor", "original_max_position_embeddings"), _YARN_OPTIONAL),
    "dynamic_yarn": (("original_max_position_embeddings",), _YARN_OPTIONAL),
    "llama3": (("factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor"), ()),
    "longrope": (("short_factor", "long_factor", "original_max_position_embeddings"), ("factor", "attention_factor")),
}
assert tuple(_KEYS) == ROPE_TYPES

# What each key means, used in error messages and listed in frequencies()' docstring.
KEY_DOCS: dict[str, str] = {
    "rope_type": f"one of {ROPE_TYPES} (legacy name: 'type'; absent means 'default')",
    "rope_theta": "the base b, a number > 1",
    "partial_rotary_factor": "fraction of head_dim that is rotated, in (0, 1] (default 1)",
    "factor": "the scale s = extended length / original length, a number >= 1",
    "original_max_position_embeddings": "the training length L, an integer >= 2 "
    "(for 'dynamic' transformers reads config.max_position_embeddings: pass that value, or the config object)",
    "p": "ntk_mixed's exponent in theta_i exp(-a (i+1)^p), a number in [0, 1] (0 = linear, 1 = ntk_fixed)",
    "alpha": "ntk_by_parts' lower rotation bound (pairs turning fewer times over L are interpolated), > 0, default 1",
    "beta": "ntk_by_parts' upper rotation bound (pairs turning more times over L are kept), > alpha, default 32",
    "attention_factor": "the factor multiplying cos and sin, a number > 0 (default: the method's own)",
    "beta_fast": "YaRN's rotation count above which pairs are kept, a number > 0, default 32",
    "beta_slow": "YaRN's rotation count below which pairs are interpolated, 0 < beta_slow <= beta_fast, default 1",
    "mscale": "DeepSeek's numerator mscale for the attention factor, a number >= 0",
    "mscale_all_dim": "DeepSeek's denominator mscale for the attention factor, a number >= 0",
    "truncate": "whether YaRN floors/ceils its correction range, a bool, default True",
    "short_factor": "LongRoPE's per-pair divisors for seq_len <= L, a list of rotary_dim/2 numbers > 0",
    "long_factor": "LongRoPE's per-pair divisors for seq_len > L, a list of rotary_dim/2 numbers > 0",
    "low_freq_factor": "Llama 3's L/wavelength below which pairs are divided by s, a number > 0 (Llama 3.1: 1)",
    "high_freq_factor": "Llama 3's L/wavelength above which pairs are kept, > low_freq_factor (Llama 3.1: 4)",
}


def _bad(key: str, value: Any, why: str | None = None) -> ValueError:
    return ValueError(f"rope_parameters[{key!r}] must be {why or KEY_DOCS[key]}, got {value!r}")


def _key_number(params: Mapping[str, Any], key: str, *, low: float, low_open: bool = False, high: float | None = None):
    value = params.get(key)
    if value is None:
        return None
    if not _is_number(value) or float(value) < low or (low_open and float(value) == low):
        raise _bad(key, value)
    if high is not None and float(value) > high:
        raise _bad(key, value)
    return float(value)


def _rope_type(params: Mapping[str, Any]) -> str:
    new, old = params.get("rope_type"), params.get("type")
    if new is not None and old is not None and new != old:
        raise ValueError(
            f"rope_parameters['rope_type'] = {new!r} and the legacy rope_parameters['type'] = {old!r} disagree"
        )
    rope_type = new if new is not None else (old if old is not None else "default")
    if rope_type not in ROPE_TYPES:
        key = "rope_type" if new is not None else "type"
        raise ValueError(f"rope_parameters[{key!r}] must be one of {ROPE_TYPES}, got {rope_type!r}")
    return rope_type


def rotary_dim_of(head_dim: int, partial_rotary_factor: float = 1.0) -> int:
    """d = head_dim * partial_rotary_factor, which must be an even integer (the rotated features come in pairs)."""
    _integer("head_dim", head_dim, low=2)
    product = head_dim * _number("partial_rotary_factor", partial_rotary_factor, low=0.0, low_open=True, high=1.0)
    d = round(product)
    if abs(product - d) > 1e-9 or d < 2 or d % 2:
        raise ValueError(
            f"head_dim * partial_rotary_factor = {head_dim} * {partial_rotary_factor!r} = {product:g} must be an even "
            "integer >= 2 (the rotary dim)"
        )
    return d


def is_config_object(obj: Any) -> bool:
    """True for a transformers-style config *object* (not a dict): it has ``rope_parameters`` (transformers v5) or the
    legacy ``rope_scaling`` / ``rope_theta`` attributes. Duck-typed, so this module never imports transformers."""
    return not isinstance(obj, Mapping) and any(
        hasattr(obj, name) for name in ("rope_parameters", "rope_scaling", "rope_theta")
    )


def _config_int(config: Any, name: str) -> int | None:
    value = getattr(config, name, None)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"config.{name} must be a positive integer, got {value!r}")
    return value


def config_head_dim(config: Any) -> int:
    """The per-head size RoPE rotates (times partial_rotary_factor), as transformers reads it from a config.

    ``qk_rope_head_dim`` (MLA models such as DeepSeek-V3: only that part of the head is rotated) if present, else
    ``head_dim`` if set, else ``hidden_size // num_attention_heads``.
    """
    for name in ("qk_rope_head_dim", "head_dim"):
        value = _config_int(config, name)
        if value is not None:
            return value
    hidden, heads = _config_int(config, "hidden_size"), _config_int(config, "num_attention_heads")
    if hidden is None or heads is None:
        raise ValueError(
            "config must have head_dim (or qk_rope_head_dim, or hidden_size and num_attention_heads) to give the "
            "rotary dim; or pass head_dim="
        )
    return hidden // heads


def _layer_params(config: Any, layer_type: str | None) -> Mapping[str, Any]:
    """The rope parameters dict of ``config`` for ``layer_type`` (per-layer-type configs nest one dict per type)."""
    params = getattr(config, "rope_parameters", None)
    if params is None:  # transformers < 5: rope_scaling (may be None) next to rope_theta
        params = getattr(config, "rope_scaling", None) or {}
    if not isinstance(params, Mapping):
        raise ValueError(f"config.rope_parameters must be a dict, got {type(params).__name__}")
    declared = tuple(getattr(config, "layer_types", None) or ())
    nested = bool(params) and all(v is None or isinstance(v, Mapping) for v in params.values())
    if not nested:
        if layer_type is not None and layer_type not in declared:
            raise ValueError(
                f"layer_type must be None or one of config.layer_types {sorted(set(declared))} (the config has one "
                f"rope_parameters dict for every layer), got {layer_type!r}"
            )
        return params
    if layer_type is None:
        distinct = {repr(sorted(v.items())) if v is not None else "None" for v in params.values()}
        if len(distinct) > 1:
            raise ValueError(
                f"config.rope_parameters is nested per layer type with different parameters {sorted(params)}: "
                "pass layer_type= one of them"
            )
        layer_type = next(iter(params))
    if layer_type not in params:
        raise ValueError(f"layer_type must be one of {sorted(params)} (rope_parameters keys), got {layer_type!r}")
    if params[layer_type] is None:
        raise ValueError(f"config.rope_parameters[{layer_type!r}] is None: that layer type has no RoPE")
    return params[layer_type]


# rope types that read the original length L: the caller (a config, a model) fills it in when a dict omits it
USES_ORIGINAL_LENGTH: tuple[str, ...] = tuple(
    t for t, (required, optional) in _KEYS.items() if "original_max_position_embeddings" in required + optional
)


def pin_dynamic_length(params: dict[str, Any], L: int, source: str) -> None:
    """Set ``params``' L for rope_type 'dynamic', whose L comes from outside the dict (transformers:
    config.max_position_embeddings); a dict naming another L raises a ValueError naming ``source`` (e.g.
    ``"config.max_position_embeddings = 4096"``)."""
    given = params.get("original_max_position_embeddings")
    if given is not None and given != L:
        raise ValueError(f"rope_parameters['original_max_position_embeddings'] = {given!r} disagrees with {source}")
    params["original_max_position_embeddings"] = L


def config_rope_parameters(config: Any, *, layer_type: str | None = None) -> dict[str, Any]:
    """A complete ``rope_parameters`` dict from a transformers config object, reading the config fields as transformers
    5.23.0 does, so that ``frequencies(config_rope_parameters(config), config_head_dim(config))`` equals transformers.

    * ``rope_theta`` and ``partial_rotary_factor`` from the config's attributes when the dict lacks them;
    * ``original_max_position_embeddings`` (L) from ``config.original_max_position_embeddings`` (Phi-3 keeps it
      there), else ``config.max_position_embeddings``, for the types that read L;
    * ``dynamic``: transformers takes L from ``config.max_position_embeddings`` (the length the model runs at without
      scaling) - so do we;
    * ``yarn`` without ``factor``: s = max_position_embeddings / L; ``longrope`` without ``factor`` (Phi-3): the same
      ratio, used only for the attention factor sqrt(1 + ln s / ln L) (1 when s <= 1).

    Where two fields disagree (e.g. rope_parameters' L and config.original_max_position_embeddings) this raises a
    ValueError naming both; transformers warns or silently picks one.
    """
    params = dict(_layer_params(config, layer_type))
    if params.get("rope_theta") is None and getattr(config, "rope_theta", None) is not None:
        params["rope_theta"] = config.rope_theta
    if params.get("partial_rotary_factor") is None and getattr(config, "partial_rotary_factor", None) is not None:
        params["partial_rotary_factor"] = config.partial_rotary_factor
    rope_type = _rope_type(params)
    max_pos = _config_int(config, "max_position_embeddings")
    if rope_type == "dynamic":
        if max_pos is None:
            raise ValueError("config.max_position_embeddings is required for rope_type 'dynamic' (it is L there)")
        source = f"config.max_position_embeddings = {max_pos}, which transformers uses as L for 'dynamic'"
        pin_dynamic_length(params, max_pos, source)
    elif rope_type in USES_ORIGINAL_LENGTH:  # every other type that reads L
        from_config = _config_int(config, "original_max_position_embeddings")
        given = params.get("original_max_position_embeddings")
        if given is not None and from_config is not None and given != from_config:
            raise ValueError(
                f"rope_parameters['original_max_position_embeddings'] = {given!r} disagrees with "
                f"config.original_max_position_embeddings = {from_config}"
            )
        if given is None:
            given = from_config if from_config is not None else max_pos
            if given is None:
                raise ValueError(
                    f"rope_parameters['original_max_position_embeddings'] is required for rope_type {rope_type!r} "
                    "(or config.original_max_position_embeddings / config.max_position_embeddings)"
                )
            params["original_max_position_embeddings"] = given
        if rope_type in ("yarn", "longrope") and params.get("factor") is None and max_pos is not None:
            if not isinstance(given, int) or isinstance(given, bool) or given < 2:
                raise _bad("original_max_position_embeddings", given)
            implied = max_pos / given
            if rope_type == "yarn":
                params["factor"] = implied
            elif params.get("attention_factor") is None:
                # s <= 1 means no extension: transformers then uses attention factor 1
                if implied > 1:
                    params["factor"] = implied
                else:
                    params["attention_factor"] = 1.0
    return params


def frequencies(
    config_or_params: Any,
    head_dim: int | None = None,
    seq_len: int | None = None,
    *,
    layer_type: str | None = None,
) -> Frequencies:
    """Frequencies and attention factor from a transformers config object or a ``rope_parameters`` dict.

    Args:
        config_or_params: a config object (anything with ``rope_parameters``, or legacy ``rope_scaling`` /
            ``rope_theta``, that is not a dict - e.g. ``AutoConfig.from_pretrained(...)``), whose fields are read as
            transformers 5.23.0 reads them (:func:`config_rope_parameters`: L, LongRoPE's and YaRN's factor implied
            by max_position_embeddings / L when absent, Dynamic NTK's L = max_position_embeddings); or a
            ``rope_parameters`` dict, e.g. ``LlamaConfig(...).rope_parameters`` unchanged or written by hand. Keys
            (see ``KEY_DOCS``): rope_type (or legacy ``type``; both may be present if they agree), rope_theta
            (required), partial_rotary_factor, and per type:

            - default: -
            - linear, ntk, ntk_fixed: factor
            - ntk_mixed: factor, p
            - dynamic: factor, original_max_position_embeddings (L; transformers reads max_position_embeddings)
            - ntk_by_parts: factor, original_max_position_embeddings; optional alpha (1), beta (32)
            - yarn: factor, original_max_position_embeddings; optional attention_factor, beta_fast (32),
              beta_slow (1), mscale, mscale_all_dim, truncate (True)
            - dynamic_yarn: like yarn without factor (s = max(1, seq_len / L))
            - llama3: factor, original_max_position_embeddings, low_freq_factor, high_freq_factor
            - longrope: short_factor, long_factor, original_max_position_embeddings; factor or attention_factor

            A key whose value is None counts as absent (serialized configs carry such keys). Any other key, a
            missing required key, a wrong type or an out-of-range value raises ValueError naming the key.
        head_dim: the per-head size; the rotary dim is head_dim * partial_rotary_factor. Required with a dict; a
            config object gives its own (:func:`config_head_dim`: qk_rope_head_dim, head_dim, or
            hidden_size // num_attention_heads) unless this is given.
        seq_len: the current length n (dynamic, dynamic_yarn, longrope read it; others ignore it).
        layer_type: for parameters nested per layer type (e.g. {"full_attention": {...}, "sliding_attention":
            {...}}), which one; required when they differ. A config with one dict accepts any of its
            ``layer_types``.

    Returns:
        (inv_freq float64 of shape (rotary_dim/2,), attention_factor float).
    """
    if is_config_object(config_or_params):
        params = config_rope_parameters(config_or_params, layer_type=layer_type)
        return _frequencies_from_params(
            params, config_head_dim(config_or_params) if head_dim is None else head_dim, seq_len
        )
    params = config_or_params
    if layer_type is not None:
        if not isinstance(params, Mapping) or layer_type not in params or not isinstance(params[layer_type], Mapping):
            keys = sorted(params) if isinstance(params, Mapping) else []
            raise ValueError(f"layer_type must be one of the nested rope_parameters keys {keys}, got {layer_type!r}")
        params = params[layer_type]
    if head_dim is None:
        raise ValueError("head_dim is required with a rope_parameters dict (a config object carries its own)")
    return _frequencies_from_params(params, head_dim, seq_len)


def _frequencies_from_params(params: Mapping[str, Any], head_dim: int, seq_len: int | None = None) -> Frequencies:
    """:func:`frequencies` for a rope_parameters dict (the keys are documented there)."""
    if not isinstance(params, Mapping):
        raise ValueError(
            f"params must be a dict of rope parameters or a transformers config object, got {type(params).__name__}"
        )
    if params and all(isinstance(v, Mapping) for v in params.values()):
        raise ValueError(
            f"params looks nested per layer type (keys {sorted(params)}); pass layer_type= one of them, "
            f"or params[{next(iter(params))!r}]"
        )
    rope_type = _rope_type(params)
    required, optional = _KEYS[rope_type]
    allowed = set(_COMMON_KEYS) | set(required) | set(optional)
    unknown = sorted(k for k in params if k not in allowed)
    if unknown:
        raise ValueError(
            f"rope_parameters has unknown key(s) {unknown} for rope_type {rope_type!r}; allowed keys: {sorted(allowed)}"
        )
    for key in ("rope_theta", *required):
        if params.get(key) is None:
            raise ValueError(f"rope_parameters[{key!r}] is required for rope_type {rope_type!r}: {KEY_DOCS[key]}")
    seq_len = _seq_len(seq_len)

    base = _key_number(params, "rope_theta", low=1.0, low_open=True)
    prf = _key_number(params, "partial_rotary_factor", low=0.0, low_open=True, high=1.0)
    d = rotary_dim_of(head_dim, 1.0 if prf is None else prf)
    factor = _key_number(params, "factor", low=1.0)
    L = params.get("original_max_position_embeddings")
    if L is not None and (not isinstance(L, int) or isinstance(L, bool) or L < 2):
        raise _bad("original_max_position_embeddings", L)
    if rope_type in ("ntk", "ntk_fixed", "ntk_mixed", "dynamic") and d < 4:
        raise ValueError(f"rope_type {rope_type!r} needs a rotary dim >= 4 (d/(d-2)), got {d}")

    if rope_type == "default":
        return default_frequencies(d, base)
    if rope_type == "linear":
        return linear_frequencies(d, base, factor)
    if rope_type == "ntk":
        return ntk_frequencies(d, base, factor)
    if rope_type == "ntk_fixed":
        return ntk_fixed_frequencies(d, base, factor)
    if rope_type == "ntk_mixed":
        return ntk_mixed_frequencies(d, base, factor, _key_number(params, "p", low=0.0, high=1.0))
    if rope_type == "dynamic":
        return dynamic_ntk_frequencies(d, base, factor, L, seq_len)
    if rope_type == "ntk_by_parts":
        alpha = _key_number(params, "alpha", low=0.0, low_open=True)
        beta = _key_number(params, "beta", low=0.0, low_open=True)
        alpha, beta = 1.0 if alpha is None else alpha, 32.0 if beta is None else beta
        if not beta > alpha:
            raise _bad("beta", beta, f"> rope_parameters['alpha'] = {alpha:g}")
        return ntk_by_parts_frequencies(d, base, factor, L, alpha, beta)
    if rope_type in ("yarn", "dynamic_yarn"):
        fast = _key_number(params, "beta_fast", low=0.0, low_open=True)
        slow = _key_number(params, "beta_slow", low=0.0, low_open=True)
        fast, slow = 32.0 if fast is None else fast, 1.0 if slow is None else slow
        if fast < slow:
            raise _bad("beta_fast", fast, f">= rope_parameters['beta_slow'] = {slow:g} (defaults 32 and 1)")
        truncate = params.get("truncate")
        if truncate is not None and not isinstance(truncate, bool):
            raise _bad("truncate", truncate)
        extra = dict(
            beta_fast=fast,
            beta_slow=slow,
            truncate=True if truncate is None else truncate,
            mscale=_key_number(params, "mscale", low=0.0),
            mscale_all_dim=_key_number(params, "mscale_all_dim", low=0.0),
            attention_factor=_key_number(params, "attention_factor", low=0.0, low_open=True),
        )
        if rope_type == "yarn":
            return yarn_frequencies(d, base, factor, L, **extra)
        return dynamic_yarn_frequencies(d, base, L, seq_len, **extra)
    if rope_type == "llama3":
        low = _key_number(params, "low_freq_factor", low=0.0, low_open=True)
        high = _key_number(params, "high_freq_factor", low=0.0, low_open=True)
        if not high > low:
            raise _bad("high_freq_factor", high, f"> rope_parameters['low_freq_factor'] = {low:g}")
        return llama3_frequencies(d, base, factor, L, low, high)
    # longrope
    lists = {
        key: _per_pair(f"rope_parameters[{key!r}]", params[key], d // 2) for key in ("short_factor", "long_factor")
    }
    attention_factor = _key_number(params, "attention_factor", low=0.0, low_open=True)
    if factor is None and attention_factor is None:
        raise ValueError(
            "rope_parameters['factor'] (or 'attention_factor') is required for rope_type 'longrope': "
            "the attention factor sqrt(1 + ln s / ln L) needs s (or pass the transformers config object itself: "
            "frequencies(config) takes s = config.max_position_embeddings / L, as transformers does)"
        )
    return longrope_frequencies(
        d, base, lists["short_factor"], lists["long_factor"], L, seq_len, factor, attention_factor
    )
