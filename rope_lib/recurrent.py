r"""Causal attention as a recurrence (an RNN whose state per query is O(1)), and decoding without a KV cache.

Su Jianlin, "时空之章：将Attention视为平方复杂度的RNN" (<https://kexue.fm/archives/10017>): for one query q,
scanning the keys t = 1..n,

    (y_t, z_t) = (y_{t-1}, z_{t-1}) + e^{q.k_t} (v_t, 1),        o = y_n / z_n,

is exactly softmax attention. The stable form keeps a running max m_t = max(m_{t-1}, q.k_t) and stores
y_t e^{-m_t}, z_t e^{-m_t} instead (the "online softmax"): each step rescales the old state by e^{m_{t-1} - m_t}
<= 1 and adds e^{q.k_t - m_t} <= 1, so nothing overflows, and the rescaling cancels in y/z.


The greedy decoders that run this recurrence inside the companion's small LM (Su's O(1)-state decoder, next
to a cached one) live in :mod:`rope_lib.companion.decoders`.
"""

from __future__ import annotations

import math

import torch

from . import _checks

# --------------------------------------------------------------------------------------------- the recurrence


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
            raise ValueError(f"{name} must be a floating-point tensor of shape (..., seq, dim), got {x!r:.80}")
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-1] != v.shape[:-1] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "q, k, v must be (..., n_q, d), (..., n, d), (..., n, d_v) with equal leading dims, "
            f"got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if not 1 <= q.shape[-2] <= k.shape[-2]:
        raise ValueError(f"q must hold between 1 and n = {k.shape[-2]} queries (the last ones), got {q.shape[-2]}")


def recurrent_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float | None = None, stable: bool = True
) -> torch.Tensor:
    """Causal softmax attention computed by the recurrence, one key position at a time.

    Args:
        q: (..., n_q, d) queries at the *last* n_q positions n - n_q .. n - 1 (n_q = n: every position).
        k: (..., n, d) keys (already rotated, if RoPE is used); v: (..., n, d_v) values.
        scale: factor on q.k (default 1/sqrt(d), as SDPA).
        stable: True -> running max m_t (online softmax); False -> the plain sums of e^{score}, which overflow
            once a score exceeds ~88 (float32) or ~709 (float64).

    Returns:
        (..., n_q, d_v) in the dtype of q; the state (float64 for float64 input, else float32) is (m, y, z) per
        query: d_v + 2 numbers, whatever n.
    """
    _check_qkv(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else _checks.finite_number("scale", scale, above=0)
    if not isinstance(stable, bool):
        raise ValueError(f"stable must be True or False, got {stable!r}")
    out_dtype, dtype = q.dtype, _checks.compute_dtype(q.dtype)
    q, k, v = (x.to(dtype) for x in (q, k, v))
    n_q, n = q.shape[-2], k.shape[-2]
    offset = n - n_q  # query row i sits at position offset + i
    # Key 0 is seen by every query: it starts the state, so m is finite from the first step on.
    s = (q @ k[..., 0, :, None]) * scale  # (..., n_q, 1)
    if stable:
        m, y, z = s, v[..., :1, :].expand(*q.shape[:-1], v.shape[-1]).clone(), torch.ones_like(s)
    else:
        e = torch.exp(s)
        m, y, z = None, e * v[..., :1, :], e
    for t in range(1, n):
        first = max(0, t - offset)  # queries at positions >= t see key t: a suffix of the rows
        s = (q[..., first:, :] @ k[..., t, :, None]) * scale
        vt = v[..., t : t + 1, :]
        if stable:
            m_new = torch.maximum(m[..., first:, :], s)
            rescale = torch.exp(m[..., first:, :] - m_new)  # <= 1: the old sums, re-expressed against the new max
            p = torch.exp(s - m_new)  # <= 1
            y[..., first:, :] = y[..., first:, :] * rescale + p * vt
            z[..., first:, :] = z[..., first:, :] * rescale + p
            m[..., first:, :] = m_new
        else:
            e = torch.exp(s)
            y[..., first:, :] = y[..., first:, :] + e * vt
            z[..., first:, :] = z[..., first:, :] + e
    return (y / z).to(out_dtype)


# ------------------------------------------------------------------------------------------------ capacity


def rnn_state_size(hidden_size: int, num_layers: int) -> int:
    """Su's estimate of attention's state as an RNN (kexue.fm/archives/10017): 2 x hidden_size x num_layers numbers
    (per layer, the query side's vector and the accumulator y, both hidden_size wide)."""
    return 2 * _checks.positive_int("hidden_size", hidden_size) * _checks.positive_int("num_layers", num_layers)


def kv_cache_size(num_layers: int, num_kv_heads: int, head_dim: int, length: int) -> int:
    """Numbers in a KV cache of ``length`` positions: 2 (k and v) x layers x kv heads x head_dim x length."""
    args = {"num_layers": num_layers, "num_kv_heads": num_kv_heads, "head_dim": head_dim}
    num_layers, num_kv_heads, head_dim = (_checks.positive_int(k, v) for k, v in args.items())
    return 2 * num_layers * num_kv_heads * head_dim * _checks.nonnegative_int("length", length)


__all__ = ["kv_cache_size", "recurrent_attention", "rnn_state_size"]
