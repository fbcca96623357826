"""Decoding with a cache of keys stored *before* rotation.

Standard RoPE caches rotated keys: cheap, but wrong whenever the rotation of an old key must change after it was
cached - Dynamic NTK / Dynamic YaRN (the base grows with the length, so old keys keep a stale base) and ReRoPE /
Leaky ReRoPE (a key's relative position to the newest query is clipped, so it changes every step). Both are exact
only if the cache holds raw keys and each step rotates them with the current frequencies / positions.
"""

from __future__ import annotations

import torch


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
            raise ValueError(f"k and v must be (..., new, head_dim) with matching leading dims, got {tuple(k.shape)}, {tuple(v.shape)}")
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            if k.shape[:-2] != self.keys.shape[:-2] or k.shape[-1] != self.keys.shape[-1]:
                raise ValueError(f"k shape {tuple(k.shape)} does not match the cached keys {tuple(self.keys.shape)}")
            self.keys = torch.cat((self.keys, k), dim=-2)
            self.values = torch.cat((self.values, v), dim=-2)
        return self.keys, self.values
