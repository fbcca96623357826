r"""ReRoPE and Leaky ReRoPE attention: a reference, a memory-efficient blockwise version, and a decode step.

Source: Su Jianlin, kexue.fm/archives/9708 (ReRoPE, Leaky ReRoPE) and 9728 (InvLeaky ReRoPE, k < 1).
Notation: theta_i = b^(-2i/d), rotary dim d, window w, leak k, query position i, key position j, r = i - j.

The idea
--------
RoPE makes the score depend on the relative position r only. Writing R_m for the rotation by the angles
m * theta (block-diagonal, R_a^T R_b = R_{b-a}), the RoPE score is

    (R_i q)^T (R_j k) = q^T R_{j-i} k                                       (relative position r = i - j)

ReRoPE replaces r by a *clipped* relative position p(r), so that a model trained at length L never sees a
relative position it has not seen in training:

    ReRoPE:        p(r) = min(r, w)
    Leaky ReRoPE:  p(r) = r                  if r < w
                   p(r) = w + (r - w) / k    if r >= w          (k > 1 leaks slowly; k = 1 is plain RoPE;
                                                                 k < 1 is Su's "InvLeaky" training variant)

p(r) is not of the form a(i) - b(j) for the whole matrix at once, so one score matrix computed from rotated q
and k cannot produce it. It *is* of that form inside each of two regions, so two score matrices suffice:

* inside the window (0 <= r < w): the ordinary RoPE score (R_i q)^T (R_j k).
* outside (r >= w), ReRoPE: (R_w q)^T k. By the identity above with a = w, b = 0 this is q^T R_{-w} k, exactly
  the score of a query at position w and a key at position 0: relative position w, whatever i and j are.
* outside, Leaky ReRoPE: (R_{(i-w)/k + w} q)^T (R_{j/k} k) = q^T R_{j/k - (i-w)/k - w} k, i.e. relative position
  (i - w)/k + w - j/k = w + (i - j - w)/k. The positions are fractional; RoPE's angles are defined for any
  real position (:func:`rope_lib.angles` computes them in float64).

Both formulas agree at r = w (both give w), so whether the boundary row belongs to the window does not matter.
The query-side rotation in the outside region depends only on i and the key-side only on j, which is what makes
the two-matrix trick (and the blockwise version below) possible.

Non-causal variant (``causal=False``): the same clipping applied to |r|, sign kept: p(r) = sign(r) min(|r|, w)
(Leaky: sign(r) (w + (|r| - w)/k) for |r| >= w). Keys ahead of the query by w or more use a third pair,
(R_{-w} q)^T k (Leaky: (R_{(i+w)/k - w} q)^T (R_{j/k} k)), whose relative position is -w (resp.
-(w + (j - i - w)/k)) by the same identity.

Why decoding needs raw keys
---------------------------
With plain RoPE a cached key R_j k never changes. With ReRoPE the newest query t sees key j at p(t - j): once
t - j >= w the key must be rotated by the clipped position relative to t, which moves every step. The cache must
therefore hold the keys *before* rotation (:class:`rope_lib.decoding.RawKVCache`), and each step rotates all of
them: score_j = q^T R_{-p(t-j)} k_j = (R_0 q)^T (R_{-p(t-j)} k_j). Re-rotating every cached key is an extra
O(n d) per step (plain RoPE rotates only the new key) and rules out caches of pre-rotated keys in fused kernels:
the price of ReRoPE at inference (Su's InvLeaky variant trains with leaks so that inference is plain RoPE).

Memory-efficient prefill
------------------------
:func:`rerope_attention_reference` builds both n x n score matrices and merges them with the window mask, as in
the post: O(n^2) memory. :func:`rerope_attention` never materialises an n x n matrix: for each query block it
walks the keys in chunks with an online softmax (running max m, running sum row_sum, accumulator rescaled by
exp(m_old - m_new)), like FlashAttention. Key chunks are cut at the window and causal boundaries, so

* chunks entirely outside the window (r >= w for every pair) compute only the clipped score,
* chunks entirely inside compute only the RoPE score,
* only the chunk straddling the boundary (width < query block) computes both and merges them,
* chunks above the causal diagonal are never visited.

The backward pass is a custom autograd function that recomputes each block from the saved log-sum-exp (as in
FlashAttention's backward) instead of checkpointing: training memory is O(n d) plus O(block_q x block_k), not
O(n^2), and each tile is recomputed once rather than re-running the whole forward under autograd.

Cost: ``make bench`` measures the blockwise forward (and forward + backward) against plain-RoPE
``scaled_dot_product_attention`` and the two-matrix reference, time and peak memory, into
results/bench/rerope_cpu.json; notebook 05 plots it and the README states the ratios. The extra memory of the
blockwise path grows linearly with the sequence, the reference's quadratically. The Python-level tile loop issues
about a dozen ops per tile, so on an *oversubscribed* CPU (more busy threads than cores) it suffers far more than
the single fused SDPA call from OpenMP spin-waiting; ``OMP_WAIT_POLICY=passive`` or fewer threads avoids that.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import torch

from . import _checks
from ._checks import compute_dtype
from .decoding import RawKVCache
from .rope import apply_rope

# the attention a position method runs in: plain softmax over RoPE-rotated q, k, or ReRoPE's (Leaky) windowed one
ATTENTIONS: tuple[str, ...] = ("sdpa", "rerope")

# Block sizes of the blockwise path, chosen by measurement (``benchmarks/rerope_bench.py --tune`` on 2 CPU
# threads): larger query blocks mean fewer Python-level steps, and among the block sizes that were equally fast we
# keep the smallest, so one score tile stays small (256 x 512 fp32 is 0.5 MiB per batch and head).
BLOCK_Q: int = 256
BLOCK_K: int = 512

# Test hook: when set, called with the shape of every score tile the blockwise path creates (forward and
# backward). tests/test_rerope.py uses it to check that the tiles stay bounded by the block sizes.
_TILE_HOOK: Callable[[tuple[int, ...]], None] | None = None

# region ids: which (query, key) rotation pair produces the score of a (i, j) pair
_IN, _PAST, _FUTURE = 0, 1, 2


# --------------------------------------------------------------------------------------------- validation


def _window(window) -> int:
    return _checks.positive_int("window", window)


def _check_inv_freq(inv_freq, head_dim: int) -> torch.Tensor:
    inv_freq = torch.as_tensor(inv_freq)
    if inv_freq.dim() != 1 or not 1 <= inv_freq.shape[0] <= head_dim // 2:
        raise ValueError(
            f"inv_freq must be 1-D with 1 <= len(inv_freq) <= head_dim/2 = {head_dim // 2} "
            f"(rotary_dim = 2*len(inv_freq)), got shape {tuple(inv_freq.shape)}"
        )
    return inv_freq


def _check_qkv(q, k, v) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {getattr(t, 'dtype', type(t))}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., seq, head_dim), got {tuple(t.shape)}")
    if q.shape != k.shape:
        raise ValueError(
            f"q and k must have the same shape (..., seq, head_dim), got q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            f"v must have shape (..., seq, head_dim_v) matching k {tuple(k.shape)} except the last dim, "
            f"got {tuple(v.shape)}"
        )
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise ValueError(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.device != k.device or q.device != v.device:
        raise ValueError(f"q, k and v must be on one device, got {q.device}, {k.device}, {v.device}")
    head_dim = q.shape[-1]
    if head_dim % 2:
        raise ValueError(f"head_dim (q.shape[-1]) must be even for RoPE, got {head_dim}")


def _scale_tensor(scale, q: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | float:
    """1/sqrt(d), a positive float, or a tensor broadcastable to (..., seq, 1) (per-query logit scale)."""
    if scale is None:
        return 1.0 / math.sqrt(q.shape[-1])
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        if not math.isfinite(float(scale)) or scale <= 0:
            raise ValueError(f"scale must be None, a finite number > 0, or a tensor, got {scale!r}")
        return float(scale)
    if isinstance(scale, torch.Tensor):
        target = (*q.shape[:-1], 1)
        try:
            ok = torch.broadcast_shapes(scale.shape, target) == torch.Size(target)
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"scale tensor must be broadcastable to (..., seq, 1) = {target}, got shape {tuple(scale.shape)}"
            )
        return scale.to(device=q.device, dtype=dtype)
    raise ValueError(f"scale must be None, a finite number > 0, or a tensor, got {type(scale).__name__}")


# ------------------------------------------------------------------------------------ rotated q/k variants


def _rotated_pairs(q, k, inv_freq, window: int, leaky_k: float | None, causal: bool, pos=None):
    """The (query, key) rotation pair of each region, (..., n, d) each, in q's dtype.

    Region _IN: (R_i q, R_j k); _PAST (r >= w): (R_w q, k) or Leaky (R_{(i-w)/k+w} q, R_{j/k} k);
    _FUTURE (r <= -w, non-causal only): (R_{-w} q, k) or Leaky (R_{(i+w)/k-w} q, R_{j/k} k).
    ``pos``: float64 positions (..., n) broadcastable to q.shape[:-1]; None is 0..n-1.
    """
    n = q.shape[-2]
    if pos is None:
        pos = torch.arange(n, device=q.device, dtype=torch.float64)
    q_in, k_in = apply_rope(q, pos, inv_freq), apply_rope(k, pos, inv_freq)
    if leaky_k is None:
        q_past = apply_rope(q, torch.full_like(pos, float(window)), inv_freq)
        k_far = k  # R_0 k
        q_future = apply_rope(q, torch.full_like(pos, -float(window)), inv_freq) if not causal else None
    else:
        q_past = apply_rope(q, (pos - window) / leaky_k + window, inv_freq)
        k_far = apply_rope(k, pos / leaky_k, inv_freq)
        q_future = apply_rope(q, (pos + window) / leaky_k - window, inv_freq) if not causal else None
    pairs = [(q_in, k_in), (q_past, k_far)]
    if not causal:
        pairs.append((q_future, k_far))
    return pairs


def _checked_pairs(q, k, v, inv_freq, window, leaky_k, causal, scale, pos=None):
    """Check the arguments of a full-matrix path (reference, flex) and rotate: (window, scale, v, rotation pairs),
    all in the compute dtype (``pos``: as in :func:`_rotated_pairs`)."""
    window, leaky_k = _window(window), _checks.leaky_k(leaky_k)
    _check_qkv(q, k, v)
    inv_freq = _check_inv_freq(inv_freq, q.shape[-1])
    dtype = compute_dtype(q.dtype)
    scale = _scale_tensor(scale, q, dtype)
    qf, kf, vf = q.to(dtype), k.to(dtype), v.to(dtype)
    return window, scale, vf, _rotated_pairs(qf, kf, inv_freq, window, leaky_k, bool(causal), pos)


def _key_padding_mask(key_padding_mask, shape: torch.Size, device: torch.device) -> torch.Tensor | None:
    """None, or the mask as a bool tensor expanded to ``shape`` = (..., n) (the leading dims and seq of q)."""
    if key_padding_mask is None:
        return None
    if not isinstance(key_padding_mask, torch.Tensor) or key_padding_mask.dtype != torch.bool:
        got = getattr(key_padding_mask, "dtype", type(key_padding_mask).__name__)
        raise ValueError(f"key_padding_mask must be None or a bool tensor (True = real key), got {got}")
    try:
        ok = torch.broadcast_shapes(key_padding_mask.shape, shape) == shape
    except RuntimeError:
        ok = False
    if not ok or key_padding_mask.dim() == 0 or key_padding_mask.shape[-1] != shape[-1]:
        raise ValueError(
            f"key_padding_mask must have shape (..., seq) broadcastable to {tuple(shape)} (last dim seq = "
            f"{shape[-1]}), got {tuple(key_padding_mask.shape)}"
        )
    if key_padding_mask.device != device:
        raise ValueError(f"key_padding_mask must be on q's device {device}, got {key_padding_mask.device}")
    return key_padding_mask.expand(shape)


def _real_positions(mask: torch.Tensor) -> torch.Tensor:
    """float64 positions (..., n): each real slot's count of real slots before it (padding slots get the position of
    the last real slot before them, -1 before the first; they are never attended to)."""
    return mask.cumsum(-1).to(torch.float64) - 1


def _compacted(attend, q, k, v, scale, mask: torch.Tensor) -> torch.Tensor:
    """Run ``attend(q, k, v, scale)`` on the real tokens only, rows grouped by their number of real tokens, and put
    the results back in their slots; padding query slots get 0.

    Removing the padding slots is what makes each row's real tokens sit at positions 0..n_b-1 with no hole: the
    kernels below assume contiguous positions, and a row with holes (a mask with False in the middle) is then
    exactly the same tokens without them.
    """
    lead, n, d, dv = q.shape[:-2], q.shape[-2], q.shape[-1], v.shape[-1]
    qf, kf, vf = q.reshape(-1, n, d), k.reshape(-1, n, d), v.reshape(-1, n, dv)
    mf = mask.reshape(-1, n)
    sf = scale.expand(*lead, n, 1).reshape(-1, n, 1) if isinstance(scale, torch.Tensor) else scale
    counts = mf.sum(-1)
    out = v.new_zeros(qf.shape[0], n, dv)
    for c in torch.unique(counts).tolist():
        if c == 0:
            continue  # no real token in these rows: nothing to attend to, the output stays 0
        rows = (counts == c).nonzero().flatten()
        # stable sort: real slots first, in their order; the first c are the real ones
        slots = torch.argsort((~mf[rows]).to(torch.int8), dim=-1, stable=True)[:, :c]

        def take(t, slots=slots, rows=rows):
            return t[rows].gather(1, slots[..., None].expand(-1, -1, t.shape[-1]))

        sc = take(sf) if isinstance(sf, torch.Tensor) else sf
        res = attend(take(qf), take(kf), take(vf), sc)
        piece = v.new_zeros(rows.shape[0], n, dv).scatter(1, slots[..., None].expand(-1, -1, dv), res)
        out = out.index_put((rows,), piece)  # out of place: differentiable
    return out.reshape(*lead, n, dv)


def _masked(fn, q, k, v, inv_freq, window, leaky_k, causal, scale, key_padding_mask, **kwargs) -> torch.Tensor:
    """``fn`` (a path without a mask) on the real tokens of each row, after checking every argument up front."""
    window, leaky_k = _window(window), _checks.leaky_k(leaky_k)
    _check_qkv(q, k, v)
    inv_freq = _check_inv_freq(inv_freq, q.shape[-1])
    mask = _key_padding_mask(key_padding_mask, q.shape[:-1], q.device)
    scale = _scale_tensor(scale, q, compute_dtype(q.dtype))

    def attend(qc, kc, vc, sc):
        return fn(qc, kc, vc, inv_freq, window=window, leaky_k=leaky_k, causal=causal, scale=sc, **kwargs)

    return _compacted(attend, q, k, v, scale, mask)


def rerope_relative_position(r: torch.Tensor, window: int, leaky_k: float | None = None) -> torch.Tensor:
    """The relative position p(r) ReRoPE scores a key r >= 0 tokens back at: min(r, w), or with ``leaky_k`` r inside
    the window and w + (r - w)/k beyond it (float ``r``; also what the decode step rotates cached keys by)."""
    far = torch.full_like(r, float(window)) if leaky_k is None else window + (r - window) / leaky_k
    return torch.where(r < window, r, far)


# ------------------------------------------------------------------------------------------ the reference


def rerope_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    inv_freq: torch.Tensor,
    *,
    window: int,
    leaky_k: float | None = None,
    causal: bool = True,
    scale=None,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Su's two-matrix ReRoPE / Leaky ReRoPE attention, O(seq^2) memory: the obvious version, kept for tests.

    Same arguments and result as :func:`rerope_attention` (without the block sizes). Computes the RoPE score
    matrix and the clipped score matrix in full, takes the first where i - j < w (|i - j| < w when non-causal) and
    the second elsewhere, masks, softmaxes, multiplies by v. With ``key_padding_mask`` it works on the padded
    tensors directly (positions = counts of real slots, padding columns -inf, padding rows 0), independently of the
    compaction the other paths use, so the tests compare two different constructions.
    """
    _check_qkv(q, k, v)
    mask = _key_padding_mask(key_padding_mask, q.shape[:-1], q.device)
    n = q.shape[-2]
    if mask is None:
        pos = torch.arange(n, device=q.device, dtype=torch.float64)
    else:
        pos = _real_positions(mask)
    window, scale, vf, pairs = _checked_pairs(q, k, v, inv_freq, window, leaky_k, causal, scale, pos)
    r = pos[..., :, None] - pos[..., None, :]  # i - j, counted in real tokens
    scores = [(qq @ kk.transpose(-1, -2)) for qq, kk in pairs]
    s = torch.where(r >= window, scores[_PAST], scores[_IN])
    if not causal:
        s = torch.where(r <= -window, scores[_FUTURE], s)
    s = s * scale
    idx = torch.arange(n, device=q.device)
    hidden = (idx[:, None] < idx[None, :]) if causal else torch.zeros(n, n, dtype=torch.bool, device=q.device)
    if mask is not None:
        hidden = hidden | ~mask[..., None, :]
        # a padding query, or one that sees no real key: output 0, and a finite row so softmax gives no NaN
        dead = ~mask | (~hidden).sum(-1).eq(0)
        hidden = hidden & ~dead[..., None]
    s = s.masked_fill(hidden, float("-inf"))
    if mask is not None:  # weight 0 times a non-finite padding value would still be NaN
        vf = vf.masked_fill(~mask[..., None], 0.0)
    out = torch.softmax(s, dim=-1) @ vf
    if mask is not None:
        out = out.masked_fill(dead[..., None], 0.0)
    return out.to(q.dtype)


# ---------------------------------------------------------------------------------------------- flex attention

IMPLEMENTATIONS: tuple[str, ...] = ("auto", "blockwise", "flex", "reference")


def _flex_region_mask(region: int, window: int, causal: bool):
    """flex_attention mask_mod of a region: _IN r < w (and r >= 0 causal, r > -w otherwise), _PAST r >= w,
    _FUTURE r <= -w; r = i - j. Together they cover the visible keys of every row exactly once."""

    def inside(b, h, i, j):
        r = i - j
        return (r < window) & ((r >= 0) if causal else (r > -window))

    def past(b, h, i, j):
        return (i - j) >= window

    def future(b, h, i, j):
        return (i - j) <= -window

    return (inside, past, future)[region]


def rerope_attention_flex(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    inv_freq: torch.Tensor,
    *,
    window: int,
    leaky_k: float | None = None,
    causal: bool = True,
    scale=None,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """ReRoPE / Leaky ReRoPE as two (three when non-causal) ``flex_attention`` calls merged by their log-sum-exps.

    Each call attends with one rotation pair of :func:`_rotated_pairs` under a block mask of its region (inside the
    window: rotated q and k; beyond it: R_w q against raw k, or Leaky's positions); the regions split the visible
    keys, so together they do one causal attention's work, where the two-matrix version computes two full score
    matrices. The partial results are merged exactly: lse = logaddexp(l1, l2), o = o1 e^(l1 - lse) + o2 e^(l2 - lse).
    On CUDA, under ``torch.compile``, flex_attention runs as a fused kernel; on a CPU it runs eagerly, materialising
    the scores, and (torch 2.13) has no backward there: correct values for tests, the blockwise path for CPU work.
    Same arguments and result as :func:`rerope_attention` (``key_padding_mask``: the real tokens of each row are
    gathered and attended without padding, as in the blockwise path). Not yet measured on a GPU (no GPU was
    available).
    """
    import warnings

    from torch.nn.attention.flex_attention import AuxRequest, create_block_mask, flex_attention

    if key_padding_mask is not None:
        return _masked(rerope_attention_flex, q, k, v, inv_freq, window, leaky_k, causal, scale, key_padding_mask)
    window, scale, vf, pairs = _checked_pairs(q, k, v, inv_freq, window, leaky_k, causal, scale)
    lead, n = q.shape[:-2], q.shape[-2]
    # flex_attention wants (batch, heads, seq, dim): fold every leading dim into the batch
    v4 = vf.reshape(-1, 1, n, vf.shape[-1])
    outs, lses = [], []
    for region, (qq, kk) in enumerate(pairs):
        if isinstance(scale, torch.Tensor):  # one scale per query: fold it into the queries
            qq, call_scale = qq * scale, 1.0
        else:
            call_scale = scale
        q4, k4 = qq.reshape(-1, 1, n, qq.shape[-1]), kk.reshape(-1, 1, n, kk.shape[-1])
        mask = create_block_mask(_flex_region_mask(region, window, bool(causal)), None, None, n, n, device=q.device)
        with warnings.catch_warnings():  # eager (uncompiled) flex warns that it is unfused; that is known here
            warnings.simplefilter("ignore", UserWarning)
            o, aux = flex_attention(q4, k4, v4, block_mask=mask, scale=call_scale, return_aux=AuxRequest(lse=True))
        lse = aux.lse
        outs.append(o)
        lses.append(lse)
    lse_all = lses[0]
    for lse in lses[1:]:
        lse_all = torch.logaddexp(lse_all, lse)
    out = sum(o * torch.exp(lse - lse_all).nan_to_num(0.0)[..., None] for o, lse in zip(outs, lses))
    return out.reshape(*lead, n, v.shape[-1]).to(q.dtype)


# ------------------------------------------------------------------------------------------ the blockwise


def _key_chunks(q0: int, q1: int, n: int, window: int, causal: bool, block_k: int):
    """Key ranges [k0, k1) for the query block [q0, q1), cut where a region boundary starts or ends.

    Cutting at q0-w+1 and q1-w (the band where the window boundary crosses the block) and at q0+1 (where the
    causal diagonal starts) keeps every other chunk in a single region with no mask.
    """
    end = q1 if causal else n
    cuts = {0, end, q0 - window + 1, q1 - window}  # the window boundary band
    if causal:
        cuts.add(q0 + 1)  # keys j <= q0 are visible to every row; the diagonal tile after needs the mask
    else:
        cuts |= {q0 + window, q1 + window - 1}  # the band where r = -w crosses the block
    cuts = sorted(c for c in cuts if 0 <= c <= end)
    for a, b in zip(cuts[:-1], cuts[1:]):
        for k0 in range(a, b, block_k):
            yield k0, min(k0 + block_k, b)


def _regions(q0: int, q1: int, k0: int, k1: int, window: int, causal: bool) -> tuple[list[int], bool]:
    """Which regions the tile [q0,q1) x [k0,k1) touches, and whether it needs the causal mask."""
    rmin, rmax = q0 - (k1 - 1), (q1 - 1) - k0
    regions = []
    if rmin < window and rmax > -window and (rmax >= 0 or not causal):
        regions.append(_IN)
    if rmax >= window:
        regions.append(_PAST)
    if not causal and rmin <= -window:
        regions.append(_FUTURE)
    return regions, causal and rmin < 0


def _tile_scores(pairs, q0, q1, k0, k1, window, causal, buf):
    """Scores of the tile [q0,q1) x [k0,k1): (B, q1-q0, k1-k0), masked entries -inf.

    Returns (s, regions, r): the regions the tile touches and r = i - j (None for single-region, unmasked tiles,
    the common case, whose scores are written into ``buf`` - a flat scratch buffer reused by every tile).
    """
    regions, need_mask = _regions(q0, q1, k0, k1, window, causal)
    B, nq, nk = pairs[0][0].shape[0], q1 - q0, k1 - k0
    if _TILE_HOOK is not None:
        _TILE_HOOK((B, nq, nk))
    s = buf[: B * nq * nk].view(B, nq, nk)
    g0 = regions[0]
    torch.bmm(pairs[g0][0][:, q0:q1], pairs[g0][1][:, k0:k1].transpose(-1, -2), out=s)
    if len(regions) == 1 and not need_mask:
        return s, regions, None
    dev = s.device
    r = torch.arange(q0, q1, device=dev)[:, None] - torch.arange(k0, k1, device=dev)[None, :]
    for g in regions[1:]:
        # regions[0] is _IN whenever a tile touches two regions (r takes every value between rmin and rmax)
        s_g = pairs[g][0][:, q0:q1] @ pairs[g][1][:, k0:k1].transpose(-1, -2)
        s = torch.where(r >= window if g == _PAST else r <= -window, s_g, s)
    if need_mask:
        s = s.masked_fill(r < 0, float("-inf"))
    return s, regions, r


def _region_mask(g: int, r: torch.Tensor, window: int) -> torch.Tensor:
    if g == _PAST:
        return r >= window
    if g == _FUTURE:
        return r <= -window
    return (r < window) & (r > -window)


# The CPU's fused attention kernel that also returns the log-sum-exp (private to torch, hence looked up, not
# assumed): it lets the forward run the pieces of ReRoPE attention that need no mask as fused calls and merge them.
_FUSED_CPU = getattr(getattr(torch.ops, "aten", None), "_scaled_dot_product_flash_attention_for_cpu", None)
# Query block of the fused forward; it must not exceed the window (see _forward_fused). Measured with
# benchmarks/hf_routes_bench.py on 2 CPU threads: 64 and 128 are equally fast, smaller blocks cost Python calls.
FUSED_BLOCK: int = 128
# Below this window the blocks get so small that the per-call cost outweighs the fused kernel: tiles instead.
FUSED_MIN_WINDOW: int = 32


def _fused_forward_applies(v: torch.Tensor, head_dim: int, window: int, causal: bool) -> bool:
    """The fused forward serves causal attention on a CPU whose torch has the kernel, with v as wide as q (the
    kernel's requirement) and a window of at least FUSED_MIN_WINDOW; everything else runs the tiles."""
    return (
        _FUSED_CPU is not None
        and causal
        and v.device.type == "cpu"
        and v.shape[-1] == head_dim
        and window >= FUSED_MIN_WINDOW
    )


def _attend_fused(q, k, v, causal: bool = False):
    """(out, lse (B, q, 1)) of softmax attention of (B, q, d) queries, already scaled, over (B, k, d) keys."""
    out, lse = _FUSED_CPU(q[:, None], k[:, None], v[:, None], is_causal=causal, scale=1.0)[:2]
    return out[:, 0], lse[:, 0, :, None]


def _forward_fused(pairs, v: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal forward (out, lse) by fused calls, for query blocks [q0, q1) of b <= w rows. Per block the keys split
    into four ranges, three of them in a single region for every row of the block, hence unmasked:

    * [0, q0 - w + 1): r >= w for every row - the clipped pair, one fused call;
    * [q0 - w + 1, q1 - w): the band where the window boundary crosses the block (< b keys) - both pairs, an
      explicit tile;
    * [q1 - w, q0): 0 < r < w for every row - the RoPE pair, one fused call;
    * [q0, q1): the diagonal square, r < b <= w - the RoPE pair, one fused causal call.

    The pieces are merged exactly by their log-sum-exps (lse = log sum e^lse_p, out = sum out_p e^(lse_p - lse)).
    """
    (q_in, k_in), (q_past, k_far) = pairs[_IN], pairs[_PAST]
    B, n, _ = v.shape
    out, lse = torch.empty_like(v), torch.empty(B, n, 1, dtype=v.dtype, device=v.device)
    block = min(FUSED_BLOCK, window)
    for q0 in range(0, n, block):
        q1 = min(q0 + block, n)
        rows = slice(q0, q1)
        pieces = [_attend_fused(q_in[:, rows], k_in[:, rows], v[:, rows], causal=True)]
        band0, band1 = max(0, q0 - window + 1), max(0, q1 - window)
        if band0 > 0:
            pieces.append(_attend_fused(q_past[:, rows], k_far[:, :band0], v[:, :band0]))
        if band1 > band0:
            s = torch.where(
                torch.arange(q0, q1, device=v.device)[:, None] - torch.arange(band0, band1, device=v.device) >= window,
                q_past[:, rows] @ k_far[:, band0:band1].transpose(-1, -2),
                q_in[:, rows] @ k_in[:, band0:band1].transpose(-1, -2),
            )
            m = s.amax(dim=-1, keepdim=True)
            p = torch.exp(s - m)
            total = p.sum(dim=-1, keepdim=True)
            pieces.append((p @ v[:, band0:band1] / total, m + torch.log(total)))
        if q0 > band1:
            pieces.append(_attend_fused(q_in[:, rows], k_in[:, band1:q0], v[:, band1:q0]))
        block_lse = torch.logsumexp(torch.cat([piece_lse for _, piece_lse in pieces], dim=-1), dim=-1, keepdim=True)
        out[:, rows] = sum(o * torch.exp(piece_lse - block_lse) for o, piece_lse in pieces)
        lse[:, rows] = block_lse
    return out, lse


class _BlockwiseReRoPE(torch.autograd.Function):
    """Online-softmax attention over precomputed (query, key) rotation pairs; FlashAttention-style backward.

    Inputs are (B, n, d) tensors in the compute dtype, the query of each pair already multiplied by the scale;
    ``flat`` = (q_in, k_in, q_past, k_past[, q_future, k_future]).
    """

    @staticmethod
    def forward(ctx, window, causal, block_q, block_k, v, *flat):
        pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        B, n, dv = v.shape
        ctx.config = (window, causal, block_q, block_k)
        if _fused_forward_applies(v, flat[0].shape[-1], window, causal) and _TILE_HOOK is None:
            out, lse = _forward_fused(pairs, v, window)
            ctx.save_for_backward(v, out, lse, *flat)
            return out
        out = torch.empty_like(v)
        lse = torch.empty(B, n, 1, dtype=v.dtype, device=v.device)
        buf = v.new_empty(B * min(block_q, n) * min(block_k, n))
        for q0 in range(0, n, block_q):
            q1 = min(q0 + block_q, n)
            m = row_sum = None
            acc = v.new_zeros(B, q1 - q0, dv)
            for k0, k1 in _key_chunks(q0, q1, n, window, causal, block_k):
                s, _, _ = _tile_scores(pairs, q0, q1, k0, k1, window, causal, buf)
                row_max = s.amax(dim=-1, keepdim=True)
                if m is None:
                    # the first chunk starts at key 0, which every row sees, so m is finite from here on
                    m = row_max
                    p = s.sub_(m).exp_()
                    row_sum = p.sum(dim=-1, keepdim=True)
                else:
                    m_new = torch.maximum(m, row_max)
                    corr = torch.exp(m - m_new)  # rescale what was accumulated under the old max
                    p = s.sub_(m_new).exp_()  # masked entries: exp(-inf) = 0
                    row_sum = row_sum.mul_(corr).add_(p.sum(dim=-1, keepdim=True))
                    acc.mul_(corr)
                    m = m_new
                acc.baddbmm_(p, v[:, k0:k1])
            out[:, q0:q1] = acc.div_(row_sum)
            lse[:, q0:q1] = m + torch.log(row_sum)
        ctx.save_for_backward(v, out, lse, *flat)
        return out

    @staticmethod
    def backward(ctx, d_out):
        v, out, lse, *flat = ctx.saved_tensors
        window, causal, block_q, block_k = ctx.config
        pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        B, n, _ = v.shape
        d_out = d_out.to(v.dtype)
        delta = (d_out * out).sum(dim=-1, keepdim=True)  # D_i = sum_c dO_ic O_ic
        dv = torch.zeros_like(v)
        dq = [torch.zeros_like(qq) for qq, _ in pairs]
        dk = [torch.zeros_like(kk) for _, kk in pairs]
        buf = v.new_empty(B * min(block_q, n) * min(block_k, n))
        for q0 in range(0, n, block_q):
            q1 = min(q0 + block_q, n)
            do_b, lse_b, delta_b = d_out[:, q0:q1], lse[:, q0:q1], delta[:, q0:q1]
            for k0, k1 in _key_chunks(q0, q1, n, window, causal, block_k):
                s, regions, r = _tile_scores(pairs, q0, q1, k0, k1, window, causal, buf)
                p = s.sub_(lse_b).exp_()  # this tile's softmax probabilities
                dv[:, k0:k1].baddbmm_(p.transpose(-1, -2), do_b)
                dp = torch.baddbmm(delta_b, do_b, v[:, k0:k1].transpose(-1, -2), alpha=1, beta=-1)  # dP - D
                ds = p.mul_(dp)  # dL/ds = P (dP - D)
                for g in regions:
                    ds_g = ds if len(regions) == 1 else ds * _region_mask(g, r, window)
                    dq[g][:, q0:q1].baddbmm_(ds_g, pairs[g][1][:, k0:k1])
                    dk[g][:, k0:k1].baddbmm_(ds_g.transpose(-1, -2), pairs[g][0][:, q0:q1])
        grads = []
        for dqg, dkg in zip(dq, dk):
            grads += [dqg, dkg]
        return (None, None, None, None, dv, *grads)


def rerope_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    inv_freq: torch.Tensor,
    *,
    window: int,
    leaky_k: float | None = None,
    causal: bool = True,
    scale=None,
    block_q: int = BLOCK_Q,
    block_k: int = BLOCK_K,
    implementation: str = "auto",
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """ReRoPE / Leaky ReRoPE attention (prefill), memory-efficient: no seq x seq tensor, forward or backward.

    Args:
        q, k: (..., seq, head_dim) *un-rotated* queries and keys (half-split layout), positions 0..seq-1; any
            leading batch/head dims, identical for q, k and v. head_dim even.
        v: (..., seq, head_dim_v).
        inv_freq: (rotary_dim/2,) frequencies, e.g. ``rope_lib.inv_freq(d)`` or from ``rope_lib.frequencies``;
            rotary_dim < head_dim is partial rotary (the remaining features are not rotated).
        window: w, a positive integer. Relative positions r = i - j < w keep their RoPE score; w >= seq is plain
            RoPE attention.
        leaky_k: None for ReRoPE (p = min(r, w)); a number k > 0 for Leaky ReRoPE (p = w + (r - w)/k for r >= w).
        causal: True (a query sees keys j <= i). False: bidirectional, clipping |r| with the sign kept (see the
            module docstring).
        scale: logit scale; None is 1/sqrt(head_dim); a positive float; or a tensor broadcastable to
            (..., seq, 1), one scale per query (log-n scaling: max(1, log(i+1)/log L)/sqrt(d) per row).
        implementation: "blockwise" (this module's online-softmax tiles, any device), "flex" (two or three
            ``flex_attention`` calls merged by log-sum-exp, :func:`rerope_attention_flex`; fused on CUDA, forward
            only on a CPU),
            "reference" (the two full score matrices, :func:`rerope_attention_reference`), or "auto": flex on
            CUDA, blockwise elsewhere.
        block_q, block_k: tile sizes of the blockwise path; a score tile holds prod(leading dims) x block_q x
            block_k numbers in the compute dtype (the defaults were picked by measurement, see BLOCK_Q). Beyond
            that, the extra memory is
            O(seq x head_dim): the rotated copies of q (two; three when non-causal) and k (one or two) and the
            output.
        key_padding_mask: None (every slot is a real token), or a bool tensor (..., seq) broadcastable to
            q.shape[:-1], True = real token (e.g. a tokenizer's attention_mask, (batch, 1, seq) for (batch, heads,
            seq, d) input). Padding slots are left out entirely: no query attends to them, and they take no position,
            so each row's real tokens sit at positions 0..n_b-1 in order (n_b = its number of True) - a left-,
            right- or middle-padded row gives exactly the attention of its real tokens alone. Padding query slots
            return 0. Costs one gather of q, k, v per distinct n_b in the batch.

    Returns:
        (..., seq, head_dim_v) in the dtype of q. Computation (rotation, scores, softmax, accumulation) runs in
        float32 (float64 for float64 input). Differentiable in q, k, v (and a tensor scale).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    if implementation == "auto":
        implementation = "flex" if isinstance(q, torch.Tensor) and q.is_cuda else "blockwise"
    if implementation != "blockwise":
        other = rerope_attention_flex if implementation == "flex" else rerope_attention_reference
        return other(
            q,
            k,
            v,
            inv_freq,
            window=window,
            leaky_k=leaky_k,
            causal=causal,
            scale=scale,
            key_padding_mask=key_padding_mask,
        )
    if key_padding_mask is not None:
        for name, b in (("block_q", block_q), ("block_k", block_k)):
            _checks.positive_int(name, b)
        return _masked(
            rerope_attention,
            q,
            k,
            v,
            inv_freq,
            window,
            leaky_k,
            causal,
            scale,
            key_padding_mask,
            block_q=block_q,
            block_k=block_k,
            implementation="blockwise",
        )
    window, leaky_k = _window(window), _checks.leaky_k(leaky_k)
    _check_qkv(q, k, v)
    inv_freq = _check_inv_freq(inv_freq, q.shape[-1])
    for name, b in (("block_q", block_q), ("block_k", block_k)):
        _checks.positive_int(name, b)
    dtype = compute_dtype(q.dtype)
    scale = _scale_tensor(scale, q, dtype)
    causal = bool(causal)
    lead, (n, d), dv = q.shape[:-2], q.shape[-2:], v.shape[-1]
    if n == 0:
        return v.new_zeros(v.shape)
    # Fold the scale into q before rotating (rotations are linear), so every tile's score comes out scaled.
    qs = q.to(dtype) * scale
    pairs = _rotated_pairs(qs, k.to(dtype), inv_freq, window, leaky_k, causal)
    flat = []
    for qq, kk in pairs:
        flat += [qq.reshape(-1, n, d), kk.reshape(-1, n, d)]
    out = _BlockwiseReRoPE.apply(window, causal, block_q, block_k, v.to(dtype).reshape(-1, n, dv), *flat)
    return out.reshape(*lead, n, dv).to(q.dtype)


# ------------------------------------------------------------------------------------------------ decoding


def rerope_decode_step(
    q: torch.Tensor,
    cache: RawKVCache,
    inv_freq: torch.Tensor,
    *,
    window: int,
    leaky_k: float | None = None,
    scale=None,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention output of the newest query against a cache of *raw* (un-rotated) keys, ReRoPE / Leaky ReRoPE.

    Order: append the newest position's un-rotated key and value to ``cache`` first, then call this; the query
    is at position t = len(cache) - 1 and sees every cached key (causal). Each cached key j is rotated by
    -p(t - j) and scored against the un-rotated q, which gives relative position p(t - j) (module docstring).

    Args:
        q: (..., 1, head_dim) un-rotated query of position t; leading dims as the cache's.
        cache: :class:`rope_lib.decoding.RawKVCache` holding keys (..., t+1, head_dim) and values.
        inv_freq, window, leaky_k: as in :func:`rerope_attention`.
        scale: None (1/sqrt(head_dim)), a positive float, or a tensor broadcastable to (..., 1, 1) - for log-n
            scaling pass the scale of row t.
        key_padding_mask: None (every cached slot is a real token), or a bool tensor (..., t+1) broadcastable to
            the cached keys' (..., t+1), True = real token. Padding slots are not attended to and take no position:
            key j is at relative distance (number of real slots in (j, t]), as in :func:`rerope_attention` with
            the same mask. If slot t itself is padding the query is padding too and its output is 0.

    Returns:
        (..., 1, head_dim_v) in q's dtype; equal, to float32 rounding, to row t of :func:`rerope_attention` over
        positions 0..t (with the same ``key_padding_mask``).
    """
    window, leaky_k = _window(window), _checks.leaky_k(leaky_k)
    if not isinstance(cache, RawKVCache):
        raise ValueError(f"cache must be a rope_lib.decoding.RawKVCache, got {type(cache).__name__}")
    if len(cache) == 0:
        raise ValueError("cache is empty: append the newest position's raw key and value before decoding it")
    keys, values = cache.keys, cache.values
    if not isinstance(q, torch.Tensor) or not q.is_floating_point() or q.dim() < 2 or q.shape[-2] != 1:
        got = getattr(q, "shape", type(q))
        raise ValueError(f"q must be a floating-point tensor of shape (..., 1, head_dim), got {got}")
    if q.shape[:-2] != keys.shape[:-2] or q.shape[-1] != keys.shape[-1]:
        raise ValueError(f"q shape {tuple(q.shape)} does not match the cached keys {tuple(keys.shape)}")
    if q.shape[-1] % 2:
        raise ValueError(f"head_dim (q.shape[-1]) must be even for RoPE, got {q.shape[-1]}")
    inv_freq = _check_inv_freq(inv_freq, q.shape[-1])
    dtype = compute_dtype(q.dtype)
    scale = _scale_tensor(scale, q, dtype)
    n = keys.shape[-2]
    mask = _key_padding_mask(key_padding_mask, keys.shape[:-1], keys.device)
    if mask is None:
        r = (n - 1) - torch.arange(n, device=keys.device, dtype=torch.float64)  # t - j >= 0
    else:
        pos = _real_positions(mask)
        r = (pos[..., -1:] - pos).clamp(min=0)  # real tokens between key j and t; padding slots are masked below
    k_rot = apply_rope(keys.to(dtype), -rerope_relative_position(r, window, leaky_k), inv_freq)
    s = (q.to(dtype) * scale) @ k_rot.transpose(-1, -2)  # (..., 1, n)
    if mask is None:
        return (torch.softmax(s, dim=-1) @ values.to(dtype)).to(q.dtype)
    dead = ~mask[..., -1:, None]  # (..., 1, 1): the query's own slot is padding
    hidden = ~mask[..., None, :] & ~dead  # a padding query keeps a finite row (no NaN); its output is zeroed
    values = values.to(dtype).masked_fill(~mask[..., None], 0.0)  # weight 0 times a non-finite value is still NaN
    out = torch.softmax(s.masked_fill(hidden, float("-inf")), dim=-1) @ values
    return out.masked_fill(dead, 0.0).to(q.dtype)


__all__ = [
    "rerope_attention",
    "rerope_attention_reference",
    "rerope_decode_step",
    "rerope_relative_position",
    "BLOCK_Q",
    "BLOCK_K",
]
