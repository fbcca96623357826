"""Every RoPE frequency-scaling method, one small function each.

Notation (the companion's): theta_i = b^(-2i/d), i = 0..d/2-1, base b, *rotary* dim d, scale s, training
(original) length L, current length n.  Every method returns ``(inv_freq, attention_factor)``:

* ``inv_freq``: float64 tensor of shape (d/2,), the per-pair angular frequencies to rotate with;
* ``attention_factor``: float multiplying cos and sin of both q and k (so the logits scale by its square),
  exactly what ``rope_lib.apply_rope(..., attention_factor=)`` and transformers' ``attention_scaling`` do.

``d`` is the rotary dim, ``head_dim * partial_rotary_factor``: the frequencies are spread over the rotated
features only (transformers does the same; computing them over head_dim is a known bug class).

This module takes plain arguments and reads no config. :mod:`rope_lib.rope_parameters` reads transformers-style
``rope_parameters`` dicts and config objects and calls the method its ``rope_type`` names (``rope_lib.frequencies``);
the methods, by that name, with the source of each formula:

=================  ==================================================================================
``default``        theta_i (Su, RoFormer)
``linear``         Positional Interpolation, theta_i / s (Chen et al. 2023, arXiv 2306.15595)
``ntk``            NTK-aware: base b * s^(d/(d-2)) (bloc97; Su, kexue.fm/archives/9675). Not Su's
                   "NTK-RoPE-old" row (archives/9706), which scales the base by s itself: base b * s
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

Each method checks its own arguments (and every argument it is given, even one it ends up not using) and raises
:class:`ArgumentError` naming the argument, so that the config reader re-raises it under the config key's name
instead of checking the keys a second time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import torch

from ._checks import int_at_least
from .rope import inv_freq

Frequencies = tuple[torch.Tensor, float]


# ----------------------------------------------------------------------------------------------------------------
# argument checks (each names the argument; rope_lib.rope_parameters re-raises them under the config key's name)


class ArgumentError(ValueError):
    """A method's refusal of one argument: a ValueError whose message names the argument, carrying what a caller that
    holds the argument under another name (:mod:`rope_lib.rope_parameters`: a config key) needs to say it in its words.

    Attributes:
        argument: the parameter's name in the method's signature.
        value: the value refused, as it was passed.
        detail: the message after the argument's name, when it says more than the allowed range (a list's length).
        bound: ``(op, other, other_value)`` when the argument is refused against another argument, e.g.
            ``(">", "alpha", 1.0)`` for a beta that must be > alpha = 1; else None.
    """

    def __init__(
        self,
        message: str,
        argument: str,
        value: Any,
        *,
        detail: str | None = None,
        bound: tuple[str, str, float] | None = None,
    ) -> None:
        super().__init__(message)
        self.argument, self.value, self.detail, self.bound = argument, value, detail, bound


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _number(
    name: str, value: Any, *, low: float | None = None, low_open: bool = False, high: float | None = None
) -> float:
    if not _is_number(value):
        raise ArgumentError(f"{name} must be a finite number, got {value!r}", name, value)
    number = float(value)
    if low is not None and (number < low or (low_open and number == low)):
        raise ArgumentError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {number!r}", name, value)
    if high is not None and number > high:
        raise ArgumentError(f"{name} must be <= {high:g}, got {number!r}", name, value)
    return number


def _integer(name: str, value: Any, *, low: int) -> int:
    try:
        return int_at_least(name, value, low)
    except ValueError as err:  # the shared wording, raised as this module's error
        raise ArgumentError(str(err), name, value) from None


def _rotary_dim(name: str, value: Any, *, low: int = 2) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or value % 2:
        raise ArgumentError(f"{name} must be an even integer >= {low}, got {value!r}", name, value)
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
    def refused(detail: str) -> ArgumentError:
        return ArgumentError(f"{name} {detail}", name, values, detail=detail)

    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, str) or not all(_is_number(v) for v in values):
        raise refused(f"must be a list of numbers, got {values!r}")
    if len(values) != pairs:
        raise refused(f"must have rotary_dim/2 = {pairs} entries (one per pair), got {len(values)}")
    if any(float(v) <= 0 for v in values):
        raise refused(f"entries must be > 0, got {list(values)!r}")
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
    """NTK-aware scaling (bloc97): plain RoPE with base b * s^(d/(d-2)).

    Not the "NTK-RoPE-old" of Su's tables (kexue.fm/archives/9706): that row scales the base by s itself, base b * s.
    """
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
        raise ArgumentError(
            f"beta must be > alpha, got alpha={alpha!r}, beta={beta!r}", "beta", beta, bound=(">", "alpha", alpha)
        )
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
        raise ArgumentError(
            f"beta_fast must be >= beta_slow, got beta_fast={beta_fast!r}, beta_slow={beta_slow!r}",
            "beta_fast",
            fast,
            bound=(">=", "beta_slow", slow),
        )
    if not isinstance(truncate, bool):
        raise ArgumentError(f"truncate must be a bool, got {truncate!r}", "truncate", truncate)
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
    # mscale and mscale_all_dim are checked even when attention_factor overrides them: a bad value is refused, not
    # silently ignored
    if mscale is not None:
        _number("mscale", mscale, low=0.0)
    if mscale_all_dim is not None:
        _number("mscale_all_dim", mscale_all_dim, low=0.0)
    if attention_factor is not None:
        return _number("attention_factor", attention_factor, low=0.0, low_open=True)
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
        raise ArgumentError(
            f"high_freq_factor must be > low_freq_factor, got high={high_freq_factor!r}, low={low_freq_factor!r}",
            "high_freq_factor",
            high,
            bound=(">", "low_freq_factor", low),
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
    s = None if factor is None else _factor(factor)  # checked even when attention_factor overrides it
    if attention_factor is not None:
        af = _number("attention_factor", attention_factor, low=0.0, low_open=True)
    elif s is not None:
        af = longrope_attention_factor(s, L)
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
