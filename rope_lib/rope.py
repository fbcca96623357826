"""Rotary position embedding (RoPE): frequencies, angles, rotation in both layouts, layout conversion.

Notation (one for the whole companion): theta_i = b^(-2i/d), i = 0..d/2-1, base b, rotary dim d.

Two pairings of the d rotary features are in use and they are *not* interchangeable:

* ``"half_split"`` (Hugging Face / GPT-NeoX): pair i is (x[i], x[i + d/2]).
* ``"interleaved"`` (Meta's original LLaMA / GPT-J / RoFormer): pair i is (x[2i], x[2i + 1]).

Both rotate pair i by the angle m * theta_i at position m:
(x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos).  A checkpoint trained in one layout must have its q/k
projection rows permuted (:func:`convert_layout`) before it is used with the other.
"""

from __future__ import annotations

from typing import Literal

import torch

from . import _checks
from ._checks import compute_dtype

Layout = Literal["half_split", "interleaved"]
LAYOUTS: tuple[str, ...] = ("half_split", "interleaved")


def _check_even(name: str, value: int) -> None:
    if _checks.positive_int(name, value) % 2:
        raise ValueError(f"{name} must be a positive even integer, got {value!r}")


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def inv_freq(rotary_dim: int, base: float = 10000.0) -> torch.Tensor:
    """Per-pair angular frequencies theta_i = base^(-2i/rotary_dim), i = 0..rotary_dim/2-1, in float64.

    ``rotary_dim`` is the number of rotated features: the head dimension for full rotary, fewer for partial rotary
    (the pairs are spread over the rotated features only, which is what transformers does with
    ``partial_rotary_factor``).
    """
    _check_even("rotary_dim", rotary_dim)
    if not isinstance(base, (int, float)) or isinstance(base, bool) or not base > 1:
        raise ValueError(f"base must be a number > 1, got {base!r}")
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim
    return float(base) ** (-exponents)


def angles(positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotation angles m * theta_i, shape (*positions.shape, d/2), always float64.

    Float64 matters: at m = 10^6 a float32 product already carries a phase error of ~0.03 rad in the
    fastest pair, and bf16/fp16 products are useless (a known bug class in other implementations).
    """
    positions = torch.as_tensor(positions)
    return positions.to(torch.float64)[..., None] * torch.as_tensor(inv_freq).to(torch.float64)


def _check_rotary_input(x: torch.Tensor, inv_freq: torch.Tensor, layout: str) -> torch.Tensor:
    """The checks every RoPE entry point makes on x, inv_freq and layout; returns inv_freq as a 1-D tensor."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    _check_layout(layout)
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., seq, head_dim), got {tuple(x.shape)}")
    head_dim = x.shape[-1]
    _check_even("head_dim (x.shape[-1])", head_dim)
    inv_freq = torch.as_tensor(inv_freq)
    if inv_freq.dim() != 1:
        raise ValueError(f"inv_freq must be 1-D (rotary_dim/2,), got shape {tuple(inv_freq.shape)}")
    rotary_dim = 2 * inv_freq.shape[0]
    if rotary_dim == 0 or rotary_dim > head_dim:
        raise ValueError(f"rotary_dim = 2*len(inv_freq) = {rotary_dim} must be in [2, head_dim={head_dim}]")
    return inv_freq


def rotation_tables(
    theta: torch.Tensor, dtype: torch.dtype, attention_factor: float | torch.Tensor = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the float64 angles theta (..., seq, d/2), times ``attention_factor`` (a number, or a float64
    tensor broadcastable to theta: one factor per row), in the rotation's
    compute dtype (>= float32; :func:`rope_lib._checks.compute_dtype` of x's dtype): what :func:`rotate` takes.
    Computing them once and rotating many tensors with them (every layer's keys, say) gives the same bits as
    rotating each with :func:`apply_rope`."""
    dtype = compute_dtype(dtype)
    return (torch.cos(theta) * attention_factor).to(dtype), (torch.sin(theta) * attention_factor).to(dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: Layout = "half_split") -> torch.Tensor:
    """Rotate the first 2 * cos.shape[-1] features of x (..., seq, head_dim) by the tables of
    :func:`rotation_tables` (broadcastable to (..., seq, d/2)) in ``layout``; the rest pass through. The rotation
    runs in the tables' dtype and is rounded once to x's dtype."""
    rotary_dim = 2 * cos.shape[-1]
    rot, rest = x[..., :rotary_dim].to(cos.dtype), x[..., rotary_dim:]
    if layout == "half_split":
        x1, x2 = rot[..., : rotary_dim // 2], rot[..., rotary_dim // 2 :]
        out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    else:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    out = out.to(x.dtype)
    # positions may broadcast x's leading dims wider (one x for every batch): the pass-through part follows
    return torch.cat((out, rest.expand(*out.shape[:-1], rest.shape[-1])), dim=-1) if rest.shape[-1] else out


def _rotate(x: torch.Tensor, theta: torch.Tensor, layout: str, attention_factor: float = 1.0) -> torch.Tensor:
    """Rotate the first 2 * theta.shape[-1] features of x by the float64 angles theta (..., seq, d/2) in ``layout``;
    the rest pass through. The rotation runs in >= float32 and is rounded once to x's dtype."""
    cos, sin = rotation_tables(theta, x.dtype, attention_factor)
    return rotate(x, cos, sin, layout)


def apply_rope(
    x: torch.Tensor,
    positions: torch.Tensor,
    inv_freq: torch.Tensor,
    *,
    layout: Layout = "half_split",
    attention_factor: float = 1.0,
) -> torch.Tensor:
    """Rotate the first ``2 * len(inv_freq)`` features of ``x`` by their positions' angles.

    Args:
        x: (..., seq, head_dim), any floating dtype; the result has the same dtype and shape.
        positions: (seq,) or any shape broadcastable to x.shape[:-1] whose last dim is seq; integers or floats
            (floats are what position interpolation produces).
        inv_freq: (rotary_dim/2,) per-pair frequencies; rotary_dim < head_dim is partial rotary, the remaining
            features pass through unchanged.
        layout: "half_split" (HF/NeoX) or "interleaved" (Meta/GPT-J), see the module docstring.
        attention_factor: multiplies cos and sin (YaRN's temperature; the logits scale by its square).
    """
    inv_freq = _check_rotary_input(x, inv_freq, layout)
    positions = torch.as_tensor(positions, device=x.device)
    if positions.dim() == 0 or positions.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"positions must have last dimension seq = x.shape[-2] = {x.shape[-2]}, got shape {tuple(positions.shape)}"
        )

    theta = angles(positions, inv_freq.to(x.device))  # float64 (..., seq, d/2)
    return _rotate(x, theta, layout, attention_factor)


def layout_permutation(rotary_dim: int, src: Layout, dst: Layout) -> torch.Tensor:
    """Index ``p`` with ``y = x[..., p]`` turning features of layout ``src`` into layout ``dst``."""
    _check_even("rotary_dim", rotary_dim)
    _check_layout(src)
    _check_layout(dst)
    # interleaved position of pair i's two members: 2i and 2i+1; half_split position: i and i+half.
    to_half = torch.cat((torch.arange(0, rotary_dim, 2), torch.arange(1, rotary_dim, 2)))
    if src == dst:
        return torch.arange(rotary_dim)
    if (src, dst) == ("interleaved", "half_split"):
        return to_half
    return torch.argsort(to_half)  # the inverse permutation: half_split -> interleaved


def convert_layout(
    t: torch.Tensor,
    *,
    src: Layout,
    dst: Layout,
    head_dim: int | None = None,
    rotary_dim: int | None = None,
    dim: int = -1,
) -> torch.Tensor:
    """Convert q/k activations or projection weights between RoPE layouts.

    ``t.shape[dim]`` must be a multiple of ``head_dim`` (heads are contiguous, as in a ``q_proj`` weight's
    output rows: pass ``dim=0`` for a (n_heads*head_dim, hidden) weight). Within each head the first
    ``rotary_dim`` features (default: all) are permuted; the rest are left in place.

    Converting a checkpoint's W_q and W_k rows interleaved -> half_split makes
    ``apply_rope(x @ W.T, layout="half_split")`` equal to the permuted original: the logits are unchanged.
    """
    size = t.shape[dim]
    head_dim = size if head_dim is None else head_dim
    rotary_dim = head_dim if rotary_dim is None else rotary_dim
    _check_even("head_dim", head_dim)
    _check_even("rotary_dim", rotary_dim)
    if rotary_dim > head_dim:
        raise ValueError(f"rotary_dim={rotary_dim} must not exceed head_dim={head_dim}")
    if size % head_dim:
        raise ValueError(f"t.shape[{dim}] = {size} is not a multiple of head_dim = {head_dim}")
    perm = torch.cat((layout_permutation(rotary_dim, src, dst), torch.arange(rotary_dim, head_dim)))
    index = (perm[None, :] + head_dim * torch.arange(size // head_dim)[:, None]).flatten().to(t.device)
    return t.index_select(dim, index)
