"""Every rope_lib position method inside a transformers causal LM of the Llama family, and our small LM exported as one.

Needs transformers (pinned: 5.23.0, in the ``test`` extra: ``pip install 'rope-lib[test]'``); imported lazily, so
``import rope_lib`` never needs it. Import this submodule explicitly: ``from rope_lib import hf``.

``apply(model, rope_parameters, ...)`` patches a loaded ``LlamaForCausalLM`` / ``MistralForCausalLM`` /
``Qwen2ForCausalLM`` / ``Qwen3ForCausalLM`` in place; ``remove(model)`` restores the exact original modules and
config. Three routes, chosen from the method:

* static frequency methods (every rope type whose frequencies do not depend on the length: default, linear, ntk,
  ntk_fixed, ntk_mixed, ntk_by_parts, yarn, llama3): the model's rotary module is replaced by one whose cos/sin come
  from :func:`rope_lib.frequencies` with float64 angles (transformers multiplies in float32). Keys are cached rotated,
  as usual - exact, since a key's rotation never changes.
* length-dependent methods (dynamic, dynamic_yarn, longrope): the rotary module becomes the identity, so the KV cache
  holds *un-rotated* keys, and an attention function registered in transformers' ``AttentionInterface`` (name
  ``"rope_lib"``) rotates the queries and every cached key with the frequencies for the current length n = number of
  keys, then calls transformers' SDPA attention - what :func:`rope_lib.dynamic_rope_step` does with a
  :class:`rope_lib.RawKVCache`. Each attention layer then decodes exactly as a full recompute would; transformers'
  own rotate-once cache keeps old keys at a stale base (:func:`rope_lib.stale_cache_error` measures it). With
  several layers the cached hidden states of earlier tokens were computed at earlier lengths (true of any cache),
  so prefill-then-decode equals rope_lib's decoder evaluation ``PositionScheme(dynamic_blocks=...)``, not a
  single forward over the whole sequence (tests/test_hf.py checks both).
* ``attention="rerope"`` (ReRoPE, Leaky ReRoPE with ``leaky_k``): identity rotary again (raw keys in the cache, as
  Su's patch does, kexue.fm/archives/9708), and the registered function runs :func:`rope_lib.rerope_attention` for a
  prefill (blockwise, never an n x n matrix) and :func:`rope_lib.rerope_decode_step` for one new token.

``log_n=True`` multiplies each query by max(1, ln n / ln L) (n = its 1-based position, :func:`rope_lib.log_n_scale`),
in the registered attention function. The identity-rotary routes take key positions 0..n-1: left padding and
custom ``position_ids`` are refused there (a ValueError), as is a sliding-window cache that has dropped keys.

The companion's small LM is exported as a ``LlamaForCausalLM`` by :mod:`rope_lib.companion.export`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import _checks
from .decoding import RawKVCache
from .rerope import ATTENTIONS, rerope_attention, rerope_decode_step
from .rope import angles, apply_rope
from .scaling import (
    ROPE_TYPES,
    USES_ORIGINAL_LENGTH,
    config_head_dim,
    config_rope_parameters,
    frequencies,
    log_n_scale,
    pin_dynamic_length,
)

TRANSFORMERS_VERSION = "5.23.0"  # the version this module is tested with (constraints.txt)
SUPPORTED_MODEL_TYPES: tuple[str, ...] = ("llama", "mistral", "qwen2", "qwen3")
# rope types whose frequencies depend on the current length: their keys must be cached un-rotated
LENGTH_DEPENDENT: tuple[str, ...] = ("dynamic", "dynamic_yarn", "longrope")
ATTENTION_NAME = "rope_lib"  # the key of our function in transformers' AttentionInterface


def _transformers():
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise ImportError(
            f"rope_lib.hf needs transformers (tested with {TRANSFORMERS_VERSION}): "
            f"pip install 'rope-lib[test]' or pip install transformers=={TRANSFORMERS_VERSION}"
        ) from err
    return transformers


# ------------------------------------------------------------------------------------------------ rotary modules


class StaticRotary(nn.Module):
    """Drop-in for a Llama-family rotary module: (cos, sin), each (batch, seq, head_dim) in x's dtype, half-split
    layout, angles position * theta_i in float64 (the model's own module multiplies in float32), times the method's
    attention factor."""

    def __init__(self, inv_freq: torch.Tensor, attention_factor: float) -> None:
        super().__init__()
        self.inv_freq_f64 = inv_freq.to(torch.float64)  # a plain attribute: no buffer, so state_dict is unchanged
        self.attention_factor = float(attention_factor)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = angles(position_ids, self.inv_freq_f64.to(position_ids.device))  # float64 (batch, seq, d/2)
        theta = torch.cat((theta, theta), dim=-1)
        cos, sin = torch.cos(theta) * self.attention_factor, torch.sin(theta) * self.attention_factor
        return cos.to(x.dtype), sin.to(x.dtype)


class IdentityRotary(nn.Module):
    """cos = 1, sin = 0: q and k leave the model's rotation unchanged (q * 1 + rotate_half(q) * 0 = q exactly), so the
    KV cache receives raw keys and the registered attention function does the rotation."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.head_dim = head_dim

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (*position_ids.shape, self.head_dim)
        return torch.ones(shape, dtype=x.dtype, device=x.device), torch.zeros(shape, dtype=x.dtype, device=x.device)


# ------------------------------------------------------------------------------------------------------ the patch


@dataclass
class _Patch:
    """What apply() changed (to undo it) and what the attention function needs."""

    params: dict
    route: str  # "static", "length", "rerope"
    head_dim: int
    original_length: int
    log_n: bool
    window: int | None
    leaky_k: float | None
    inv_freq: torch.Tensor | None  # static frequencies (static and rerope routes)
    attention_factor: float
    old_rotary: nn.Module
    old_attn_implementation: Any
    uses_attention_fn: bool


def _decoder(model: nn.Module):
    """The model's inner decoder (``model.model``) after checking it is a supported Llama-family causal LM."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"model_type {model_type!r} is not supported by rope_lib.hf; supported: {SUPPORTED_MODEL_TYPES} "
            "(causal LMs sharing Llama's rotary module and attention-function interface)"
        )
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(getattr(inner, "rotary_emb", None), nn.Module) or not layers:
        raise ValueError(
            f"model (model_type {model_type!r}) must be a *ForCausalLM with .model.rotary_emb and .model.layers"
        )
    if inner.config is not config:
        raise ValueError("model.model.config must be model.config (one shared config, as transformers builds it)")
    return inner


def _original_length(config: Any, params: Mapping[str, Any]) -> int:
    """L: the rope parameters' original length if they carry one, else config.original_max_position_embeddings,
    else config.max_position_embeddings."""
    for value in (
        params.get("original_max_position_embeddings"),
        getattr(config, "original_max_position_embeddings", None),
        getattr(config, "max_position_embeddings", None),
    ):
        if value is not None:
            return _checks.positive_int("original length", value, low=2)
    raise ValueError("original_length is required: the config has no max_position_embeddings")


def _resolve_params(config: Any, rope_parameters, original_length: int | None) -> tuple[dict, int]:
    """A complete rope_parameters dict (rope_theta, L filled in from the model) and L."""
    own = config_rope_parameters(config)
    if rope_parameters is None:
        params = dict(own)
    else:
        if not isinstance(rope_parameters, Mapping):
            raise ValueError(f"rope_parameters must be None or a dict, got {type(rope_parameters).__name__}")
        params = dict(rope_parameters)
        params.setdefault("rope_theta", own["rope_theta"])
        if "rope_type" not in params and "type" not in params:
            raise ValueError(f"rope_parameters needs a 'rope_type' key (one of {ROPE_TYPES}), got {params!r}")
    L = _original_length(config, own) if original_length is None else original_length
    L = _checks.positive_int("original_length", L, low=2)
    rope_type = params.get("rope_type", params.get("type"))
    if rope_type == "dynamic":
        pin_dynamic_length(params, L, f"original_length (or the model's length) = {L}")
    elif rope_type in USES_ORIGINAL_LENGTH:
        params.setdefault("original_max_position_embeddings", L)
    return params, L


def apply(
    model: nn.Module,
    rope_parameters: Mapping[str, Any] | None = None,
    *,
    attention: str = "sdpa",
    window: int | None = None,
    leaky_k: float | None = None,
    log_n: bool = False,
    original_length: int | None = None,
) -> nn.Module:
    """Put a rope_lib position method into a Llama-family transformers causal LM, in place (undo: :func:`remove`).

    Args:
        model: a loaded ``LlamaForCausalLM``, ``MistralForCausalLM``, ``Qwen2ForCausalLM`` or ``Qwen3ForCausalLM``
            (any dtype/device); others raise ValueError naming their model_type.
        rope_parameters: a rope_parameters dict of any rope type in :data:`rope_lib.ROPE_TYPES` (e.g.
            ``{"rope_type": "ntk_fixed", "factor": 8.0}``); ``rope_theta`` defaults to the model's and
            ``original_max_position_embeddings`` to L (below). None keeps the model's own parameters.
        attention: "sdpa" (RoPE, then transformers' SDPA attention) or "rerope" (ReRoPE; needs ``window``).
        window: ReRoPE window w, a positive integer (only with attention="rerope").
        leaky_k: Leaky ReRoPE leak k > 0 (only with attention="rerope"); None is plain ReRoPE.
        log_n: multiply the query at 1-based position n by max(1, ln n / ln L).
        original_length: the training length L of the model (for the methods and log n); default: the
            parameters' original_max_position_embeddings, else config.original_max_position_embeddings, else
            config.max_position_embeddings.

    Returns:
        ``model`` itself. Its logits are (batch, seq, vocab) as before, in the model's dtype.
    """
    _transformers()
    inner = _decoder(model)
    if getattr(model, "_rope_lib_patch", None) is not None:
        raise ValueError("rope_lib.hf.apply was already applied to this model: call rope_lib.hf.remove(model) first")
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
    if not isinstance(log_n, bool):
        raise ValueError(f"log_n must be a bool, got {log_n!r}")
    if original_length is not None:
        _checks.positive_int("original_length", original_length, low=2)
    if attention == "rerope":
        window = _checks.positive_int("window", window)
        leaky_k = _checks.leaky_k(leaky_k)
    elif window is not None or leaky_k is not None:
        raise ValueError("window and leaky_k are only allowed with attention='rerope'")
    config = model.config
    params, L = _resolve_params(config, rope_parameters, original_length)
    head_dim = config_head_dim(config)
    inv, af = frequencies(params, head_dim, seq_len=L)  # validates every key now, not at the first forward
    if inv.shape[0] * 2 != head_dim:
        raise ValueError(
            f"rope_lib.hf rotates the whole head (Llama family): partial_rotary_factor must be 1, got rotary dim "
            f"{2 * inv.shape[0]} of head_dim {head_dim}"
        )
    rope_type = params.get("rope_type", params.get("type"))
    if attention == "rerope":
        if rope_type in LENGTH_DEPENDENT:
            raise ValueError(f"attention='rerope' takes a static rope_type, not one of {LENGTH_DEPENDENT}")
        route = "rerope"
    else:
        route = "length" if rope_type in LENGTH_DEPENDENT else "static"
    uses_fn = route != "static" or log_n
    patch = _Patch(
        params=params,
        route=route,
        head_dim=head_dim,
        original_length=L,
        log_n=log_n,
        window=window,
        leaky_k=leaky_k,
        inv_freq=None if route == "length" else inv,
        attention_factor=float(af),
        old_rotary=inner.rotary_emb,
        old_attn_implementation=config._attn_implementation_internal,
        uses_attention_fn=uses_fn,
    )
    if uses_fn:
        _register()
    device = next(model.parameters()).device
    inner.rotary_emb = StaticRotary(inv, af) if route == "static" else IdentityRotary(head_dim)
    inner.rotary_emb.to(device)
    for layer in inner.layers:
        layer.self_attn._rope_lib_patch = patch
    if uses_fn:
        config._attn_implementation_internal = ATTENTION_NAME
    model._rope_lib_patch = patch
    return model


def remove(model: nn.Module) -> nn.Module:
    """Undo :func:`apply`: the original rotary module object and attention implementation come back (logits are then
    bit-identical to before apply). Raises ValueError if the model is not patched."""
    patch = getattr(model, "_rope_lib_patch", None)
    if patch is None:
        raise ValueError("model is not patched by rope_lib.hf.apply (nothing to remove)")
    inner = _decoder(model)
    inner.rotary_emb = patch.old_rotary
    model.config._attn_implementation_internal = patch.old_attn_implementation
    for layer in inner.layers:
        del layer.self_attn._rope_lib_patch
    del model._rope_lib_patch
    return model


def patched_parameters(model: nn.Module) -> dict | None:
    """The complete rope_parameters dict a model was patched with (None if it is not patched)."""
    patch = getattr(model, "_rope_lib_patch", None)
    return None if patch is None else dict(patch.params)


# ------------------------------------------------------------------------------------------ the attention function


def _register() -> None:
    transformers = _transformers()
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    transformers.AttentionInterface.register(ATTENTION_NAME, _attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)  # the same masks as "sdpa": we delegate to it


def _sdpa(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _check_positions(position_ids, n: int, q_len: int) -> None:
    """The identity-rotary routes rotate keys at positions 0..n-1 and the queries at n-q_len..n-1."""
    if position_ids is None:
        return
    expected = torch.arange(n - q_len, n, device=position_ids.device)
    if position_ids.shape[-1] != q_len or not bool((position_ids == expected).all()):
        raise ValueError(
            "rope_lib.hf (length-dependent rope types and attention='rerope') needs positions 0..n-1 with n the number "
            f"of cached keys ({n}); got position_ids {position_ids.tolist()} - left padding, custom position_ids or a "
            "sliding-window cache that dropped keys are not supported here"
        )


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function: query (batch, heads, q_len, head_dim), key/value (batch, kv_heads, n, head_dim)
    (all cached keys, un-rotated on the identity-rotary routes). Returns (output (batch, q_len, heads, head_dim),
    None)."""
    patch: _Patch | None = getattr(module, "_rope_lib_patch", None)
    if patch is None:
        raise ValueError(
            f"attention implementation {ATTENTION_NAME!r} is set but the module was not patched: use rope_lib.hf.apply"
        )
    q_len, n = query.shape[-2], key.shape[-2]
    position_ids = kwargs.get("position_ids")
    if patch.route == "static":
        q_pos = position_ids if position_ids is not None else torch.arange(n - q_len, n, device=query.device)[None]
    else:
        _check_positions(position_ids, n, q_len)
        q_pos = torch.arange(n - q_len, n, device=query.device)[None]
    q_scale = None
    if patch.log_n:
        q_scale = log_n_scale(q_pos, patch.original_length)[:, None, :, None]  # float64 (batch or 1, 1, q_len, 1)
    if patch.route == "rerope":
        return _rerope(module, query, key, value, patch, q_scale, scaling, kwargs.get("sliding_window"))
    if patch.route == "length":
        inv, af = frequencies(patch.params, patch.head_dim, seq_len=n)  # the frequencies for the current length
        positions = torch.arange(n, device=query.device)
        query = apply_rope(query, positions[n - q_len :], inv, attention_factor=af)
        key = apply_rope(key, positions, inv, attention_factor=af)
    if q_scale is not None:
        query = (query.to(torch.float64 if query.dtype == torch.float64 else torch.float32) * q_scale).to(query.dtype)
    return _sdpa(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)


def _rerope(module, query, key, value, patch: _Patch, q_scale, scaling, sliding_window):
    from transformers.integrations.sdpa_attention import repeat_kv

    q_len, n = query.shape[-2], key.shape[-2]
    if sliding_window is not None and n > sliding_window:
        raise ValueError(f"attention='rerope' does not combine with a sliding window ({sliding_window} < {n} keys)")
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    if patch.attention_factor != 1.0:  # it multiplies cos and sin of q and k; rotations are linear
        query, key = query * patch.attention_factor, key * patch.attention_factor
    scale = module.head_dim**-0.5 if scaling is None else float(scaling)
    if q_scale is not None:
        scale = (q_scale * scale).to(query.device)
    inv, w, k = patch.inv_freq, patch.window, patch.leaky_k
    if q_len == n:  # prefill: blockwise, no n x n tensor
        out = rerope_attention(query, key, value, inv, window=w, leaky_k=k, causal=True, scale=scale)
    else:  # decode (q_len 1) or a chunk after a cached prefix: one row at a time against the raw keys
        rows = []
        for i in range(q_len):
            t = n - q_len + i
            cache = RawKVCache()
            cache.append(key[..., : t + 1, :], value[..., : t + 1, :])
            row_scale = scale if not isinstance(scale, torch.Tensor) else scale[..., i : i + 1, :]
            rows.append(rerope_decode_step(query[..., i : i + 1, :], cache, inv, window=w, leaky_k=k, scale=row_scale))
        out = torch.cat(rows, dim=-2)
    return out.transpose(1, 2).contiguous(), None


__all__ = [
    "ATTENTIONS",
    "LENGTH_DEPENDENT",
    "SUPPORTED_MODEL_TYPES",
    "TRANSFORMERS_VERSION",
    "IdentityRotary",
    "StaticRotary",
    "apply",
    "patched_parameters",
    "remove",
]
