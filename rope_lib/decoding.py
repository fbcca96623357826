"""Decoding with a cache of keys stored *before* rotation.

Standard RoPE caches rotated keys: cheap, but wrong whenever the rotation of an old key must change after it was
cached - Dynamic NTK / Dynamic YaRN (the base grows with the length, so old keys keep a stale base) and ReRoPE /
Leaky ReRoPE (a key's relative position to the newest query is clipped, so it changes every step). Both are exact
only if the cache holds raw keys and each step rotates them with the current frequencies / positions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ._checks import int_at_least, nonnegative_int, positive_int
from .rope import apply_rope
from .rope_parameters import frequencies


class RawKVCache:
    """Append-only cache of un-rotated keys and values, each (..., n_cached, head_dim)."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.keys is None else self.keys.shape[-2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add k, v of shape (..., new, head_dim) (un-rotated) and return all cached keys and values."""
        if k.shape[:-1] != v.shape[:-1] or k.dim() < 2:
            raise ValueError(
                "k and v must be (..., new, head_dim) with matching leading dims, "
                f"got {tuple(k.shape)}, {tuple(v.shape)}"
            )
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            if k.shape[:-2] != self.keys.shape[:-2] or k.shape[-1] != self.keys.shape[-1]:
                raise ValueError(f"k shape {tuple(k.shape)} does not match the cached keys {tuple(self.keys.shape)}")
            self.keys = torch.cat((self.keys, k), dim=-2)
            self.values = torch.cat((self.values, v), dim=-2)
        return self.keys, self.values


# ------------------------------------------------------------------- length-dependent frequencies while decoding


def dynamic_rope_step(
    cache: RawKVCache,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    params: Mapping[str, Any],
    *,
    layout: str = "half_split",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One prefill or decode step with frequencies for the *current* length, exact for any rope_type.

    Appends the un-rotated ``k``, ``v`` (..., new, head_dim) to ``cache``, then rotates every cached key (positions
    0..n-1) and the new queries ``q`` (..., new, head_dim; positions n-new..n-1) with
    ``frequencies(params, head_dim, seq_len=n)``, n = len(cache). Attending with the result equals the last ``new``
    rows of a full forward over all n tokens: prefill-then-decode is a full recompute, at the price of re-rotating
    the n cached keys per step.

    Returns (q_rot, keys_rot, values): shapes (..., new, head_dim), (..., n, head_dim), (..., n, head_dim).
    """
    if q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1] or q.shape[-2] != k.shape[-2]:
        raise ValueError(f"q and k must both be (..., new, head_dim), got {tuple(q.shape)} and {tuple(k.shape)}")
    keys, values = cache.append(k, v)
    n, new = len(cache), q.shape[-2]
    theta, af = frequencies(params, q.shape[-1], seq_len=n)
    positions = torch.arange(n, device=q.device)
    k_rot = apply_rope(keys, positions, theta, layout=layout, attention_factor=af)
    q_rot = apply_rope(q, positions[n - new :], theta, layout=layout, attention_factor=af)
    return q_rot, k_rot, values


def _causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention of the last q.shape[-2] positions over all k.shape[-2]; returns (output, logits)."""
    new, n = q.shape[-2], k.shape[-2]
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    row = torch.arange(n - new, n, device=q.device)[:, None]
    logits = logits.masked_fill(torch.arange(n, device=q.device)[None, :] > row, float("-inf"))
    return torch.softmax(logits, dim=-1) @ v, logits


def stale_cache_error(
    params: Mapping[str, Any],
    head_dim: int,
    prefill_len: int,
    total_len: int,
    *,
    heads: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """How far the rotate-once ("stale") KV cache drifts from a full recompute for length-dependent rope types.

    Random float64 q, k, v (``heads`` heads) are decoded three ways: (1) a full forward over the first t tokens for
    every t (the reference, last row); (2) :func:`dynamic_rope_step` with a raw-key cache; (3) the usual cache, as
    transformers decodes: each key rotated once with the frequencies of the length at which it was cached
    (the prefill with seq_len = prefill_len, token t with seq_len = t + 1), the query with the current ones.

    Returns max absolute differences from the reference over the decode steps:
    ``exact_output``/``exact_logit`` (should be ~1e-15) and ``stale_output``/``stale_logit``.
    """
    positive_int("prefill_len", prefill_len)
    int_at_least("total_len", total_len, prefill_len + 1)
    gen = torch.Generator().manual_seed(nonnegative_int("seed", seed))
    q, k, v = (torch.randn(heads, total_len, head_dim, generator=gen, dtype=torch.float64) for _ in range(3))

    exact_cache, stale_keys = RawKVCache(), []
    worst = dict.fromkeys(("exact_output", "exact_logit", "stale_output", "stale_logit"), 0.0)
    for start, stop in [(0, prefill_len)] + [(t, t + 1) for t in range(prefill_len, total_len)]:
        # reference: a full forward over tokens 0..stop-1, rows start..stop-1
        theta, af = frequencies(params, head_dim, seq_len=stop)
        pos = torch.arange(stop)
        ref_out, ref_logits = _causal_attention(
            apply_rope(q[:, start:stop], pos[start:], theta, attention_factor=af),
            apply_rope(k[:, :stop], pos, theta, attention_factor=af),
            v[:, :stop],
        )
        # exact: raw keys re-rotated every step
        q_rot, k_rot, values = dynamic_rope_step(
            exact_cache, q[:, start:stop], k[:, start:stop], v[:, start:stop], params
        )
        out, logits = _causal_attention(q_rot, k_rot, values)
        # stale: the new keys rotated now, the old ones kept as they were rotated
        stale_keys.append(apply_rope(k[:, start:stop], pos[start:], theta, attention_factor=af))
        s_out, s_logits = _causal_attention(q_rot, torch.cat(stale_keys, dim=-2), values)
        if start == 0:
            continue  # the prefill itself is identical by construction
        finite = torch.isfinite(ref_logits)
        for name, o, lg in (("exact", out, logits), ("stale", s_out, s_logits)):
            worst[f"{name}_output"] = max(worst[f"{name}_output"], float((o - ref_out).abs().max()))
            worst[f"{name}_logit"] = max(worst[f"{name}_logit"], float((lg - ref_logits)[finite].abs().max()))
    return worst
