"""Multimodal RoPE: RoPE-2D, Su's RoPE-Tie positions, and Qwen2-VL's M-RoPE position ids and sectioned rotation.

All three give each token a *tuple* of positions and rotate every rotary pair by the position on the axis that pair
is assigned to (:func:`apply_rope_axes`). They differ in two choices:

* which pairs follow which axis: RoPE-2D splits the pairs between two axes (``split="alternate"``: even pairs x,
  odd pairs y; ``split="halves"``: first half x, second half y), M-RoPE cuts them into three contiguous sections
  (temporal, height, width; ``mrope_section``, Qwen2-VL's is (16, 24, 24) for 64 pairs);
* which positions the tokens get: :func:`rope_tie_positions` (2 axes) and :func:`mrope_position_ids` (3 axes).

A text token always gets the same position on every axis, so on text every scheme is a RoPE-1D; which one
depends on the frequencies (:func:`rope_2d_inv_freq`): with the text model's theta_i = b^(-2i/d) on the pairs
(``split="alternate"``, and M-RoPE) it is exactly the text model's RoPE-1D.

Token layouts are sequences of items ``("text", n)`` (n tokens), ``("image", h, w)`` (an h x w grid: h rows,
w columns) and, for M-RoPE, ``("video", t, h, w)``. Image tokens are listed row by row (row-major), as Qwen2-VL
orders them.

Sources: Su Jianlin, "Transformer升级之路：17、多模态位置编码的简单思考" (RoPE-Tie,
https://kexue.fm/archives/10040) and "Transformer升级之路：4、二维位置的旋转式位置编码" (RoPE-2D,
https://kexue.fm/archives/8397); Wang et al., *Qwen2-VL*, arXiv:2409.12191 (M-RoPE). Parity target for M-RoPE:
Hugging Face transformers' Qwen2-VL ``get_rope_index`` and rotary embedding (the pinned version; tests compare).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Literal

import torch

from . import _checks
from .rope import Layout, _check_rotary_input, _rotate
from .rope import inv_freq as _inv_freq

PairSplit = Literal["alternate", "halves"]
PAIR_SPLITS: tuple[str, ...] = ("alternate", "halves")
MROPE_ADVANCES: tuple[str, ...] = ("hw", "thw")
QWEN2_VL_MROPE_SECTION: tuple[int, int, int] = (16, 24, 24)  # Qwen2-VL's text config (head_dim 128 = 64 pairs)

_ROPE_TIE_KINDS = {"text": ("n",), "image": ("h", "w")}
_MROPE_KINDS = {"text": ("n",), "image": ("h", "w"), "video": ("t", "h", "w")}


# --------------------------------------------------------------------------------------------------------------
# rotation by per-axis positions
# --------------------------------------------------------------------------------------------------------------


def apply_rope_axes(
    x: torch.Tensor,
    positions: torch.Tensor,
    inv_freq: torch.Tensor,
    pair_axes: torch.Tensor | Sequence[int],
    *,
    layout: Layout = "half_split",
) -> torch.Tensor:
    """Rotate pair i of ``x`` by ``positions[..., pair_axes[i]] * inv_freq[i]``: RoPE with one position per axis.

    Args:
        x: (..., seq, head_dim), floating; the result has its dtype and shape.
        positions: (..., seq, n_axes), integers or floats, broadcastable against x.shape[:-1] once the last dim is
            used up (e.g. (seq, n_axes) for every batch and head).
        inv_freq: (rotary_dim/2,) per-pair frequencies, as :func:`rope_lib.inv_freq`; rotary_dim < head_dim is
            partial rotary (the remaining features pass through).
        pair_axes: (rotary_dim/2,) integers in [0, n_axes): the axis each pair follows.
        layout: pairing of the features, "half_split" (pair i = (x[i], x[i + d/2]), HF) or "interleaved".

    Angles are formed in float64 (as in :func:`rope_lib.apply_rope`); the rotation runs in >= float32.
    With every ``pair_axes`` entry equal (or every axis holding the same position) this is ``apply_rope``.
    """
    inv_freq = _check_rotary_input(x, inv_freq, layout)
    n_pairs = inv_freq.shape[0]
    positions = torch.as_tensor(positions, device=x.device)
    if positions.dim() < 2 or positions.shape[-2] != x.shape[-2]:
        raise ValueError(f"positions must have shape (..., seq={x.shape[-2]}, n_axes), got {tuple(positions.shape)}")
    n_axes = positions.shape[-1]
    pair_axes = torch.as_tensor(pair_axes)
    if pair_axes.shape != (n_pairs,) or pair_axes.is_floating_point() or pair_axes.is_complex():
        raise ValueError(f"pair_axes must be {n_pairs} integers (one per pair), got {pair_axes!r}")
    if n_pairs and not (0 <= int(pair_axes.min()) and int(pair_axes.max()) < n_axes):
        raise ValueError(f"pair_axes must lie in [0, positions.shape[-1] = {n_axes}), got {pair_axes.tolist()}")

    # float64 angles: each pair's position on its own axis times its frequency
    per_pair = positions.to(torch.float64).index_select(-1, pair_axes.to(device=x.device, dtype=torch.long))
    theta = per_pair * inv_freq.to(device=x.device, dtype=torch.float64)
    return _rotate(x, theta, layout)


def _n_pairs(inv_freq: torch.Tensor) -> int:
    inv_freq = torch.as_tensor(inv_freq)
    if inv_freq.dim() != 1 or inv_freq.shape[0] == 0:
        raise ValueError(f"inv_freq must be 1-D (rotary_dim/2,) and non-empty, got shape {tuple(inv_freq.shape)}")
    return inv_freq.shape[0]


def rope_2d_pair_axes(n_pairs: int, split: PairSplit = "alternate") -> torch.Tensor:
    """Axis (0 = x, 1 = y) of each of ``n_pairs`` rotary pairs for RoPE-2D, a LongTensor of length ``n_pairs``.

    ``"alternate"``: pair i follows x if i is even, y if odd. ``"halves"``: pairs 0..n/2-1 follow x, the rest y.
    ``n_pairs`` must be even so that each axis gets half of the pairs. See :func:`rope_2d_inv_freq` for the
    frequencies each convention goes with.
    """
    n_pairs = _checks.positive_int("n_pairs", n_pairs)
    if n_pairs % 2:
        raise ValueError(f"n_pairs must be even (half of the pairs per axis), got {n_pairs}")
    if split == "alternate":
        return torch.arange(n_pairs) % 2
    if split == "halves":
        return (torch.arange(n_pairs) >= n_pairs // 2).long()
    raise ValueError(f"split must be one of {PAIR_SPLITS}, got {split!r}")


def rope_2d_inv_freq(head_dim: int, base: float = 10000.0, *, split: PairSplit = "alternate") -> torch.Tensor:
    """The per-pair frequencies (head_dim/2,) float64 of the two RoPE-2D conventions.

    ``"alternate"``: the text model's own theta_i = b^(-2i/d), i = 0..d/2-1, pairs alternating x, y. Each axis
    gets every other frequency (fast to slow), and at x = y every pair turns with its standard theta_i, so text at
    (n, n) is *exactly* the text model's RoPE-1D.
    ``"halves"``: axial RoPE-2D as in ViTs (Su's RoPE-2D built from two RoPE-1D of dimension d/2): the first half
    of the pairs is RoPE-1D(d/2) on x, the second half RoPE-1D(d/2) on y, both with b^(-4j/d), j = 0..d/4-1.
    At x = y this is RoPE-1D with the frequencies b^(-4j/d), each twice: not the text model's RoPE-1D.
    ``head_dim`` must be a multiple of 4 (an even number of pairs).
    """
    head_dim = _checks.positive_int("head_dim", head_dim)
    if head_dim % 4:
        raise ValueError(f"head_dim must be a positive multiple of 4 for RoPE-2D, got {head_dim}")
    if split == "alternate":
        return _inv_freq(head_dim, base)
    if split == "halves":
        half = _inv_freq(head_dim // 2, base)
        return torch.cat((half, half))
    raise ValueError(f"split must be one of {PAIR_SPLITS}, got {split!r}")


def apply_rope_2d(
    x: torch.Tensor,
    positions: torch.Tensor,
    inv_freq: torch.Tensor,
    *,
    split: PairSplit = "alternate",
    layout: Layout = "half_split",
) -> torch.Tensor:
    """RoPE-2D: half of the rotary pairs rotate by the x position, half by the y position.

    ``x`` (..., seq, head_dim); ``positions`` (..., seq, 2) holding (x, y) per token (integers or floats, e.g.
    :func:`rope_tie_positions`); ``inv_freq`` (rotary_dim/2,) with an even length, normally
    ``rope_2d_inv_freq(rotary_dim, base, split=split)``; ``split`` chooses which pairs follow which axis
    (:func:`rope_2d_pair_axes`). The score of q at p and k at p' depends only on p' - p.
    """
    n_pairs = _n_pairs(inv_freq)
    if n_pairs % 2:
        raise ValueError(f"len(inv_freq) must be even for RoPE-2D (half of the pairs per axis), got {n_pairs}")
    positions = torch.as_tensor(positions)
    if positions.dim() < 2 or positions.shape[-1] != 2:
        raise ValueError(f"positions must have shape (..., seq, 2) holding (x, y), got {tuple(positions.shape)}")
    return apply_rope_axes(x, positions, inv_freq, rope_2d_pair_axes(n_pairs, split), layout=layout)


# --------------------------------------------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------------------------------------------


def _check_token_layout(layout: Any, kinds: dict[str, tuple[str, ...]]) -> list[tuple[str, tuple[int, ...]]]:
    """``layout`` as [(kind, sizes)], or a ValueError naming the offending item and what is allowed."""
    forms = " | ".join(f"({k!r}, {', '.join(f)})" for k, f in kinds.items())
    if isinstance(layout, (str, bytes)) or not isinstance(layout, Sequence) or len(layout) == 0:
        raise ValueError(f"layout must be a non-empty sequence of items {forms}, got {layout!r}")
    items = []
    for i, item in enumerate(layout):
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) == 0:
            raise ValueError(f"layout[{i}] must be one of {forms}, got {item!r}")
        kind = item[0]
        if kind not in kinds:
            raise ValueError(f"layout[{i}] kind must be one of {tuple(kinds)}, got {kind!r}")
        fields = kinds[kind]
        if len(item) != 1 + len(fields):
            want = f"({kind!r}, {', '.join(fields)})"
            raise ValueError(f"layout[{i}] must be {want} ({1 + len(fields)} entries), got {item!r}")
        sizes = tuple(_checks.positive_int(f"layout[{i}] {kind} {f}", v) for f, v in zip(fields, item[1:]))
        items.append((kind, sizes))
    return items


def layout_token_kinds(layout: Sequence[tuple]) -> list[str]:
    """The kind ("text", "image", "video") of every token of a layout, in sequence order (for labels and masks).

    Sizes are counted as given (an M-RoPE image of h x w *patches* before merging is h*w/merge^2 tokens: use
    :func:`mrope_token_kinds` for those).
    """
    items = _check_token_layout(layout, _MROPE_KINDS)
    out: list[str] = []
    for kind, sizes in items:
        count = 1
        for v in sizes:
            count *= v
        out += [kind] * count
    return out


# --------------------------------------------------------------------------------------------------------------
# RoPE-Tie (Su, kexue.fm/archives/10040)
# --------------------------------------------------------------------------------------------------------------


def _rope_tie(layout: Any, integer: bool) -> tuple[list[tuple[Any, Any]], Any]:
    """(positions as exact ints or Fractions, the cursor after the layout)."""
    items = _check_token_layout(layout, _ROPE_TIE_KINDS)
    # The cursor is the 1-D position the next text token would get. Text fills it; an image is anchored at the
    # (possibly virtual) text token just before the cursor. One rule covers an image at the start (anchored at
    # -1, the same virtual token that puts the first text token at 0) and two images back to back (the second is
    # anchored where a text token between them would sit), and makes positions shift-covariant: a layout placed
    # after another gets its own positions plus the first one's length (tested).
    cursor: Any = 0
    out: list[tuple[Any, Any]] = []
    for kind, sizes in items:
        if kind == "text":
            (n,) = sizes
            out += [(cursor + j, cursor + j) for j in range(n)]
            cursor += n
            continue
        h, w = sizes
        if integer:
            s, t = w + 1, h + 1
        else:  # Su's non-integer variant: the image then takes exactly h*w positions, like flattened patches
            s, t = Fraction(w * h + 1, h + 1), Fraction(w * h + 1, w + 1)
        anchor = cursor - 1
        out += [(anchor + r * s, anchor + c * t) for r in range(1, h + 1) for c in range(1, w + 1)]
        cursor = anchor + (h + 1) * s  # = anchor + (w + 1) * t: the next text token is back on the diagonal
    return out, cursor


def rope_tie_positions(layout: Sequence[tuple], *, integer: bool = True) -> torch.Tensor:
    """RoPE-Tie 2-D positions (x, y) of every token of ``layout``, shape (N, 2).

    ``layout``: items ``("text", n)`` and ``("image", h, w)`` (h rows, w columns of patches, listed row by row).
    A text token at 1-D position n gets (n, n). An image whose anchor (the text token before it) is at (L, L)
    puts patch (r, c), r = 1..h, c = 1..w, at (L + r*s, L + c*t) with s = w + 1, t = h + 1, and the text after it
    starts at L + (w + 1)(h + 1): the image advances the 1-D position by (w + 1)(h + 1) - 1 = wh + w + h.
    ``integer=False`` is Su's non-integer variant s = (wh + 1)/(h + 1), t = (wh + 1)/(w + 1), in which the image
    advances it by exactly wh (as many as its patches); the positions are then float64.

    Choices of ours: an image at the very start is anchored at (-1, -1), the
    virtual token before position 0; an image right after another image is anchored at (c - 1, c - 1), c being
    where a text token after the first image would start. Both follow from one rule (an image is anchored just
    before the running 1-D position), which makes the positions of ``A + B`` those of ``A`` followed by those of
    ``B`` shifted by :func:`rope_tie_length` of ``A``.

    Returns an int64 tensor (``integer=True``) or a float64 tensor (``integer=False``).
    Raises ValueError naming the item for an empty layout, an unknown kind, a wrong number of entries or a
    non-positive size.
    """
    if not isinstance(integer, bool):
        raise ValueError(f"integer must be True or False, got {integer!r}")
    pos, _ = _rope_tie(layout, integer)
    if integer:
        return torch.tensor(pos, dtype=torch.long)
    return torch.tensor([(float(a), float(b)) for a, b in pos], dtype=torch.float64)


def rope_tie_length(layout: Sequence[tuple], *, integer: bool = True) -> int | float:
    """The 1-D position at which a text token after ``layout`` would start under RoPE-Tie (an int, or a float for
    ``integer=False``): the layout's length as text around it sees it."""
    if not isinstance(integer, bool):
        raise ValueError(f"integer must be True or False, got {integer!r}")
    _, cursor = _rope_tie(layout, integer)
    return int(cursor) if integer else float(cursor)


# --------------------------------------------------------------------------------------------------------------
# M-RoPE (Qwen2-VL)
# --------------------------------------------------------------------------------------------------------------


def _mrope_items(layout: Any, spatial_merge_size: int) -> list[tuple[str, tuple[int, ...]]]:
    sms = _checks.positive_int("spatial_merge_size", spatial_merge_size)
    items = _check_token_layout(layout, _MROPE_KINDS)
    for i, (kind, sizes) in enumerate(items):
        if kind != "text" and (sizes[-2] % sms or sizes[-1] % sms):
            raise ValueError(
                f"layout[{i}] {kind} h and w must be multiples of spatial_merge_size = {sms} (the patch grid before "
                f"merging, as in image_grid_thw), got h = {sizes[-2]}, w = {sizes[-1]}"
            )
    return items


def mrope_position_ids(layout: Sequence[tuple], *, spatial_merge_size: int = 2, advance: str = "hw") -> torch.Tensor:
    """Qwen2-VL's M-RoPE position ids (temporal, height, width) of every token of ``layout``, shape (N, 3) int64.

    ``layout``: items ``("text", n)``, ``("image", h, w)`` and ``("video", t, h, w)``, where (t, h, w) is the
    grid as in ``image_grid_thw`` / ``video_grid_thw``: patches *before* the spatial merge, so the item holds
    t * (h/m) * (w/m) tokens with m = ``spatial_merge_size`` (h and w must be multiples of m; an image is t = 1).
    Vision tokens are ordered t, then row, then column.

    A running 1-D position p starts at 0. Text tokens get (p, p, p), p += 1 each. A vision item's token at frame
    f, merged row r, merged column c (all 0-based) gets (p + f, p + r, p + c), and then p advances by
    ``max(h, w)/m`` (``advance="hw"``: what the pinned transformers (5.x) does) or by ``max(t, h/m, w/m)``
    (``advance="thw"``: one past the largest id so far, as the Qwen2-VL release and transformers 4.x do). The two
    differ only for a video with more frames than merged rows and columns.

    transformers' ``position_ids[:, b]`` (shape (3, N)) is this tensor transposed; its ``rope_deltas`` is
    ``ids.max() + 1 - N``.
    """
    if advance not in MROPE_ADVANCES:
        raise ValueError(f"advance must be one of {MROPE_ADVANCES}, got {advance!r}")
    sms = _checks.positive_int("spatial_merge_size", spatial_merge_size)
    items = _mrope_items(layout, sms)
    p = 0
    chunks = []
    for kind, sizes in items:
        if kind == "text":
            (n,) = sizes
            chunks.append((p + torch.arange(n)).unsqueeze(-1).expand(n, 3))
            p += n
            continue
        t, h, w = (1, *sizes) if kind == "image" else sizes
        gh, gw = h // sms, w // sms
        f, r, c = torch.meshgrid(torch.arange(t), torch.arange(gh), torch.arange(gw), indexing="ij")
        chunks.append(p + torch.stack((f, r, c), dim=-1).reshape(-1, 3))
        p += max(gh, gw) if advance == "hw" else max(t, gh, gw)
    return torch.cat(chunks).to(torch.long)


def mrope_token_kinds(layout: Sequence[tuple], *, spatial_merge_size: int = 2) -> list[str]:
    """The kind of every token that :func:`mrope_position_ids` lays out (vision items after the spatial merge)."""
    sms = _checks.positive_int("spatial_merge_size", spatial_merge_size)
    out: list[str] = []
    for kind, sizes in _mrope_items(layout, sms):
        if kind == "text":
            out += ["text"] * sizes[0]
        else:
            t = 1 if kind == "image" else sizes[0]
            out += [kind] * (t * (sizes[-2] // sms) * (sizes[-1] // sms))
    return out


def mrope_pair_axes(mrope_section: Sequence[int]) -> torch.Tensor:
    """Axis (0 = temporal, 1 = height, 2 = width) of every rotary pair under M-RoPE, a LongTensor.

    ``mrope_section`` = (n_t, n_h, n_w) pair counts (non-negative integers): the first n_t pairs (the fastest
    frequencies) follow the temporal id, the next n_h the height id, the last n_w the width id. Their sum is the
    number of pairs, rotary_dim/2 (Qwen2-VL: (16, 24, 24) for head_dim 128).
    """
    if isinstance(mrope_section, (str, bytes)) or not isinstance(mrope_section, Sequence) or len(mrope_section) != 3:
        raise ValueError(f"mrope_section must be three pair counts (temporal, height, width), got {mrope_section!r}")
    counts = [_checks.nonnegative_int(f"mrope_section[{i}]", v) for i, v in enumerate(mrope_section)]
    if sum(counts) == 0:
        raise ValueError(f"mrope_section must hold at least one pair, got {mrope_section!r}")
    return torch.repeat_interleave(torch.arange(3), torch.tensor(counts))


def apply_mrope(
    x: torch.Tensor,
    positions: torch.Tensor,
    inv_freq: torch.Tensor,
    mrope_section: Sequence[int] = QWEN2_VL_MROPE_SECTION,
    *,
    layout: Layout = "half_split",
) -> torch.Tensor:
    """M-RoPE: rotate ``x`` (..., seq, head_dim) by the (temporal, height, width) ids ``positions`` (..., seq, 3),
    pair i by the id of its section (:func:`mrope_pair_axes`); ``sum(mrope_section)`` must equal ``len(inv_freq)``.
    """
    axes = mrope_pair_axes(mrope_section)
    n_pairs = _n_pairs(inv_freq)
    if axes.shape[0] != n_pairs:
        raise ValueError(f"sum(mrope_section) = {axes.shape[0]} must equal len(inv_freq) = {n_pairs}")
    positions = torch.as_tensor(positions)
    if positions.dim() < 2 or positions.shape[-1] != 3:
        raise ValueError(f"positions must have shape (..., seq, 3) holding (t, h, w) ids, got {tuple(positions.shape)}")
    return apply_rope_axes(x, positions, inv_freq, axes, layout=layout)
