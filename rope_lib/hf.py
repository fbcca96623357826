"""Every rope_lib position method inside a transformers causal LM of the Llama family.

Needs transformers >= 5.6 (the ``[hf]`` extra: ``pip install '.[hf]'`` in a clone; tested with 5.23.0, the pinned
version, and 5.6-5.25 by tests/test_hf.py); imported lazily, so
``import rope_lib`` never needs it. Import this submodule explicitly: ``from rope_lib import hf``.

``apply(model, rope_parameters, ...)`` patches a loaded ``LlamaForCausalLM`` / ``MistralForCausalLM`` /
``Qwen2ForCausalLM`` / ``Qwen3ForCausalLM`` in place; ``remove(model)`` puts back the very rotary module and config
object the model had (see "The config" below). Three routes, chosen from the method:

* static frequency methods (every rope type whose frequencies do not depend on the length: default, linear, ntk,
  ntk_fixed, ntk_mixed, ntk_by_parts, yarn, llama3, p_rope, hope, resonance; a pair with theta = 0 gets cos 1, sin 0
  and is not rotated): the model's rotary module is replaced by one whose cos/sin come
  from :func:`rope_lib.frequencies` with float64 angles (transformers multiplies in float32). Keys are cached rotated,
  as usual - exact, since a key's rotation never changes.
* length-dependent methods (dynamic, dynamic_yarn, longrope): the rotary module becomes the identity, so the KV cache
  holds *un-rotated* keys, and an attention function registered in transformers' ``AttentionInterface`` (name
  ``"rope_lib"``) rotates the queries and every cached key with the frequencies for the current length n = the
  row's number of real (unpadded) keys, then calls transformers' SDPA attention - what
  :func:`rope_lib.dynamic_rope_step` does with a :class:`rope_lib.RawKVCache`. Each attention layer then decodes
  exactly as a full recompute would; transformers' own rotate-once cache keeps old keys at a stale base
  (:func:`rope_lib.stale_cache_error` measures it). With several layers the cached hidden states of earlier tokens
  were computed at earlier lengths (true of any cache), so prefill-then-decode equals rope_lib's decoder evaluation
  ``PositionScheme(dynamic_blocks=...)``, not a single forward over the whole sequence (tests/test_hf.py checks both).
* ``attention="rerope"`` (ReRoPE, Leaky ReRoPE with ``leaky_k``): identity rotary again (raw keys in the cache, as
  Su's patch does, kexue.fm/archives/9708), and the registered function runs :func:`rope_lib.rerope_attention` for a
  prefill (blockwise, never an n x n matrix) and :func:`rope_lib.rerope_decode_step` for one new token.

``log_n=True`` multiplies each query by max(1, ln n / ln L) (n = its 1-based position, :func:`rope_lib.log_n_scale`),
in the registered attention function.

Padding. Wherever the registered function runs (the identity-rotary routes, and any route with ``log_n``), positions
come from the attention mask, row by row: the keys the mask lets through are the row's real tokens, at positions
0..n_b-1 in order (padding takes no position), the length-dependent frequencies use that row's n_b, log n the query's
real 1-based position, and ReRoPE leaves padding keys out. So a left-, right- or middle-padded row gives the logits
of its real tokens alone, in a forward, in cached prefill + decode and in batched ``generate`` (on the static route
with log_n the rotation itself still follows transformers' slot positions, which is the same for left and right
padding). The padding is read from the 4-D mask the function receives (bool from transformers, or a caller's
additive float mask; None means no padding). ``position_ids`` are accepted when they are transformers' default
(slots n-q_len..n-1, what the model fills in when none are given) or equal, at the real tokens, to what the mask
implies (cumsum(mask) - 1, what ``generate`` passes); ReRoPE without log_n also accepts a constant shift per row (it
sees only differences). Anything else - packed sequences, gaps, a shift where n_b or log n depends on it, a
sliding-window cache that has dropped keys - is refused with a one-line ValueError naming ``position_ids``, as is a
cached step whose newest token is padding (``attention_mask``). A static cache works (its empty future slots, which
no query sees, are dropped). A static rope without log_n never runs the function and takes ``position_ids`` as
transformers does.

The config. ``apply`` gives the model its own copy of its config (every submodule that held the config holds the
copy; the object the model came with, perhaps shared with another model, is never written to) and records there what
it applied: ``config.rope_lib`` holds the call (rope parameters, attention, window, leaky_k, log_n, L, and the model's
own rope parameters), and ``config.rope_parameters`` is the applied dict when plain transformers computes the same
frequencies from it - a type of :data:`rope_lib.TRANSFORMERS_ROPE_TYPES`, attention="sdpa", no log_n, and
transformers' reading of the config giving back the same parameters (for "dynamic": L = max_position_embeddings).
Then ``save_pretrained`` and plain ``AutoModelForCausalLM.from_pretrained`` round-trip the model (logits to float32
rounding of the angles; transformers decodes a length-dependent type with its rotate-once cache). Any other method is
written as ``rope_parameters = {"rope_type": "rope_lib", "rope_theta": ...}``, which plain ``from_pretrained``
refuses (KeyError 'rope_lib') instead of loading the unpatched model; :func:`load` loads it and applies the recorded
method again. On the routes that use the registered function the config's attention implementation is "rope_lib":
``set_attn_implementation`` to anything else, another implementation written into the config, and
``output_attentions=True`` raise a ValueError that says to call :func:`remove` first. A raw-key route on a model
whose sliding window is shorter than max_position_embeddings (its cache drops keys) is refused by ``apply``.
``remove`` puts the original config object back (changes made to the copy meanwhile are dropped, with a warning
naming them); the "rope_lib" entries in transformers' ``AttentionInterface`` / ``AttentionMaskInterface`` go when the
last patched model is removed or garbage-collected, and an entry of that name someone else registered is never
overwritten or removed.

The companion's small LM is exported as a ``LlamaForCausalLM`` by :mod:`rope_lib.companion.export`.
"""

from __future__ import annotations

import copy
import logging
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import TRANSFORMERS_ROPE_TYPES, _checks
from .decoding import RawKVCache
from .rerope import ATTENTIONS, rerope_attention, rerope_decode_step
from .rope import angles, rotation_tables
from .rope_parameters import (
    ROPE_TYPES,
    USES_ORIGINAL_LENGTH,
    config_head_dim,
    config_rope_parameters,
    frequencies,
    pin_dynamic_length,
)
from .scaling import log_n_scale

TRANSFORMERS_VERSION = "5.23.0"  # the version this module is tested with (constraints.txt)
# The oldest transformers supported: tests/test_hf.py passes from 5.6.0 (measured; 5.0-5.5 fail it). pyproject's [hf]
# extra states the same bound; older releases would fail deep inside a forward (masking_utils, rope_parameters).
_TRANSFORMERS_MIN = "5.6"
SUPPORTED_MODEL_TYPES: tuple[str, ...] = ("llama", "mistral", "qwen2", "qwen3")
# rope types whose frequencies depend on the current length: their keys must be cached un-rotated
LENGTH_DEPENDENT: tuple[str, ...] = ("dynamic", "dynamic_yarn", "longrope")
ATTENTION_NAME = "rope_lib"  # the key of our function in transformers' AttentionInterface
# the config attribute apply() writes (the applied method, for load()), and config.rope_parameters' rope_type where
# plain transformers cannot express the method (its from_pretrained then fails instead of dropping the method)
CONFIG_KEY = "rope_lib"


def _transformers():
    """transformers, imported on first use (rope_lib itself needs torch and numpy only), or an ImportError that says
    how to install it. rope_lib is not on PyPI, so the advice is transformers itself, or the [hf] extra of a clone."""
    import re

    needed = f"transformers>={_TRANSFORMERS_MIN},<6"
    install = f"pip install '{needed}' (or, in a clone of rope_lib: pip install '.[hf]')"
    try:
        import transformers
    except ImportError as err:
        raise ImportError(f"rope_lib.hf needs {needed} (tested with {TRANSFORMERS_VERSION}): {install}") from err
    # Refuse an old release here, with its version, rather than fail later on a missing transformers module.
    found = re.match(r"(\d+)\.(\d+)", transformers.__version__)
    if found and tuple(map(int, found.groups())) < tuple(map(int, _TRANSFORMERS_MIN.split("."))):
        raise ImportError(
            f"rope_lib.hf needs {needed} (tested with {TRANSFORMERS_VERSION}), but transformers "
            f"{transformers.__version__} is installed: {install}"
        )
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
    old_config: Any  # the config object the model had before apply, never modified: remove() puts it back
    config: Any  # the model's own copy while patched, which says what was applied
    config_snapshot: dict  # config.to_dict() right after apply: remove() warns about later edits it drops
    uses_attention_fn: bool
    guard: Any  # handle of the decoder's forward pre-hook (attention-function routes), None otherwise
    # What every layer of one forward shares (mask reading, positions, rotation tables), computed by its first layer;
    # emptied by the decoder's pre-hook before each forward, so nothing outlives the tensors it was read from.
    per_forward: dict = field(default_factory=dict)
    # the length route's rotation tables of positions 0..N-1 for the last frequencies used: (key, inv_freq, cos, sin)
    tables: tuple | None = None


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
            return _checks.int_at_least("original length", value, 2)
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
    L = _checks.int_at_least("original_length", L, 2)
    rope_type = params.get("rope_type", params.get("type"))
    if rope_type == "dynamic":
        pin_dynamic_length(params, L, f"original_length (or the model's length) = {L}")
    elif rope_type in USES_ORIGINAL_LENGTH:
        params.setdefault("original_max_position_embeddings", L)
    return params, L


def _sliding_window(config: Any) -> int | None:
    """The sliding window some layer attends within, as transformers 5.23.0 reads the config (None: every layer
    attends to all keys): Mistral applies ``sliding_window`` to every layer; Qwen2/Qwen3 set it to None unless
    ``use_sliding_window``, and then apply it to the layers that ``layer_types`` marks "sliding_attention"."""
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if window is None or (layer_types is not None and "sliding_attention" not in layer_types):
        return None
    return window


def _config_as_applied(config: Any, params: dict, plain: bool) -> dict:
    """What ``config.rope_parameters`` says while patched: ``params`` as transformers reads them, when plain
    transformers computes the same frequencies from them (a native rope type, plain attention, and transformers'
    reading of the config - e.g. L of 'dynamic' = max_position_embeddings - giving back ``params``); otherwise a
    rope type transformers does not have, so that a saved copy fails to load without rope_lib instead of loading
    the unpatched model."""
    rope_type = params.get("rope_type", params.get("type"))
    if plain and rope_type in TRANSFORMERS_ROPE_TYPES:
        native = {k: v for k, v in params.items() if v is not None and k != "type"}
        native["rope_type"] = rope_type
        if rope_type == "dynamic":  # transformers takes L from max_position_embeddings and warns about the key
            native.pop("original_max_position_embeddings", None)
        probe = copy.copy(config)
        probe.rope_parameters = native
        try:
            read = config_rope_parameters(probe)
        except ValueError:  # e.g. the model's own original_max_position_embeddings disagrees with params'
            read = None
        if read is not None and _same_parameters(read, params):
            return native
    return {"rope_type": CONFIG_KEY, "rope_theta": params["rope_theta"]}


def _same_parameters(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def canonical(p):
        out = {k: v for k, v in p.items() if v is not None and k != "type"}
        out["rope_type"] = p.get("rope_type", p.get("type"))
        return out

    return canonical(a) == canonical(b)


def _swap_config(model: nn.Module, old: Any, new: Any) -> None:
    """Point every submodule attribute that holds ``old`` (the model, the decoder, attention and MLP modules each keep
    a reference to the one config) at ``new``."""
    for module in model.modules():
        for name, value in list(vars(module).items()):
            if value is old:
                module.__dict__[name] = new


def _config_state(config: Any) -> dict:
    """What save_pretrained writes, and the attention implementation (which it does not), less the keys
    save_pretrained fills in itself (losing those at remove() loses nothing)."""
    state = {**config.to_dict(), "attn_implementation": config._attn_implementation}
    for key in ("architectures", "dtype", "transformers_version"):
        state.pop(key, None)
    return state


def _refuse_attn_switch(attn_implementation, *args, **kwargs) -> None:
    """Replaces a patched model's ``set_attn_implementation`` on the attention-function routes: any other
    implementation would call transformers' attention directly, with the identity rotary module (no position
    encoding at all) or without log n."""
    requested = attn_implementation.get("") if isinstance(attn_implementation, Mapping) else attn_implementation
    if requested in (None, ATTENTION_NAME):
        return
    raise ValueError(
        f"set_attn_implementation({attn_implementation!r}) would bypass rope_lib's attention function, which this "
        "model's position method needs: call rope_lib.hf.remove(model) first (then switch, and apply again)"
    )


def _guard(decoder: nn.Module, args, kwargs) -> None:
    """Forward pre-hook of a patched decoder on the attention-function routes: refuse to run when the attention
    implementation was switched away from ours (a direct config write, a sub-model's set_attn_implementation) or
    attention weights are asked for, instead of computing something else without a word."""
    config = decoder.config
    if config._attn_implementation != ATTENTION_NAME:
        raise ValueError(
            f"the attention implementation was changed to {config._attn_implementation!r} after rope_lib.hf.apply, "
            "which drops the patched position method: call rope_lib.hf.remove(model) first"
        )
    if kwargs.get("output_attentions", getattr(config, "output_attentions", False)):
        raise ValueError(
            "output_attentions=True needs transformers' eager attention, which cannot run the position method "
            "rope_lib.hf.apply patched in: call rope_lib.hf.remove(model) first"
        )
    _register(decoder)  # a copy of a patched model (copy.deepcopy) keeps the registration alive too
    decoder.layers[0].self_attn._rope_lib_patch.per_forward.clear()


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

    The model gets its own copy of its config (a config object shared with another model is never modified), which
    says what was applied: ``config.rope_lib`` records the call (see :func:`load`) and ``config.rope_parameters`` is
    the applied dict where plain transformers computes the same frequencies from it (see the module docstring), else
    ``{"rope_type": "rope_lib", "rope_theta": ...}``. On the attention-function routes (length-dependent types,
    attention="rerope", log_n) the config's attention implementation becomes "rope_lib";
    ``set_attn_implementation`` to another one raises a ValueError, and so does the next forward after another one was
    written into the config, or with ``output_attentions=True``.

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

    Raises:
        ValueError: bad arguments (naming them); a model already patched; a raw-key route (length-dependent types,
            attention="rerope") on a model whose config has a sliding window shorter than max_position_embeddings
            (its cache drops keys); a "rope_lib" entry in transformers' attention registries that is not ours.
            Nothing is changed then.

    Returns:
        ``model`` itself. Its logits are (batch, seq, vocab) as before, in the model's dtype.
    """
    _transformers()
    inner = _decoder(model)
    if getattr(model, "_rope_lib_patch", None) is not None:
        raise ValueError("rope_lib.hf.apply was already applied to this model: call rope_lib.hf.remove(model) first")
    window, leaky_k = _check_apply_arguments(attention, window, leaky_k, log_n, original_length)
    config = model.config
    params, L = _resolve_params(config, rope_parameters, original_length)
    head_dim = config_head_dim(config)
    inv, af = frequencies(params, head_dim, seq_len=L)  # validates every key now, not at the first forward
    if inv.shape[0] * 2 != head_dim:
        raise ValueError(
            f"rope_lib.hf rotates the whole head (Llama family): partial_rotary_factor must be 1, got rotary dim "
            f"{2 * inv.shape[0]} of head_dim {head_dim}"
        )
    route = _route(config, params, attention)
    uses_fn = route != "static" or log_n
    if uses_fn:
        _check_registries()  # before changing anything
    record = {"attention": attention, "window": window, "leaky_k": leaky_k, "log_n": log_n, "original_length": L}
    patched = _patched_config(config, params, record, plain=attention == "sdpa" and not log_n, uses_fn=uses_fn)
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
        old_config=config,
        config=patched,
        config_snapshot=_config_state(patched),
        uses_attention_fn=uses_fn,
        guard=None,
    )
    _install(model, inner, patch, StaticRotary(inv, af) if route == "static" else IdentityRotary(head_dim))
    return model


def _check_apply_arguments(attention, window, leaky_k, log_n, original_length) -> tuple[int | None, float | None]:
    """:func:`apply`'s argument checks (each error names its argument); returns the checked (window, leaky_k)."""
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
    if not isinstance(log_n, bool):
        raise ValueError(f"log_n must be a bool, got {log_n!r}")
    if original_length is not None:
        _checks.int_at_least("original_length", original_length, 2)
    if attention == "rerope":
        return _checks.positive_int("window", window), _checks.leaky_k(leaky_k)
    if window is not None or leaky_k is not None:
        raise ValueError("window and leaky_k are only allowed with attention='rerope'")
    return None, None


def _route(config, params: dict, attention: str) -> str:
    """ "static" (frequencies fixed: the model's own attention), "length" (frequencies depend on the length) or
    "rerope"; the raw-key routes are refused on a sliding-window cache, which drops the keys they re-rotate."""
    rope_type = params.get("rope_type", params.get("type"))
    if attention == "rerope":
        if rope_type in LENGTH_DEPENDENT:
            raise ValueError(f"attention='rerope' takes a static rope_type, not one of {LENGTH_DEPENDENT}")
        route = "rerope"
    else:
        route = "length" if rope_type in LENGTH_DEPENDENT else "static"
    sliding = _sliding_window(config)
    if route != "static" and sliding is not None and sliding < config.max_position_embeddings:
        raise ValueError(
            f"rope_lib.hf cannot serve {'attention=rerope' if route == 'rerope' else repr(rope_type)} on a model with "
            f"a sliding window (config.sliding_window = {sliding} < max_position_embeddings = "
            f"{config.max_position_embeddings}): its keys are cached un-rotated and a sliding-window cache drops them "
            "(a static rope_type is served)"
        )
    return route


def _patched_config(config, params: dict, record: dict, *, plain: bool, uses_fn: bool):
    """The model's own copy of ``config`` (a config shared with another model stays as it is), saying what was
    applied: ``rope_parameters`` as applied and the call under ``config.rope_lib`` (see :func:`load`)."""
    patched = copy.deepcopy(config)
    patched.rope_parameters = _config_as_applied(config, params, plain=plain)
    full = {"rope_parameters": copy.deepcopy(params), **record}
    full["base_rope_parameters"] = copy.deepcopy(config.rope_parameters)
    setattr(patched, CONFIG_KEY, full)
    if uses_fn:
        patched._attn_implementation_internal = ATTENTION_NAME
    return patched


def _install(model: nn.Module, inner: nn.Module, patch: _Patch, rotary: nn.Module) -> None:
    """Swap in the rotary module and the config, mark every attention layer, and on the attention-function routes
    register the function, the guard and the refusal of another attention implementation."""
    inner.rotary_emb = rotary.to(next(model.parameters()).device)
    _swap_config(model, patch.old_config, patch.config)
    for layer in inner.layers:
        layer.self_attn._rope_lib_patch = patch
    if patch.uses_attention_fn:
        _register(inner)
        patch.guard = inner.register_forward_pre_hook(_guard, with_kwargs=True)
        for module in (model, inner):  # both are PreTrainedModels with their own set_attn_implementation
            module.__dict__["set_attn_implementation"] = _refuse_attn_switch
    model._rope_lib_patch = patch


def remove(model: nn.Module) -> nn.Module:
    """Undo :func:`apply`: the original rotary module object and config object come back (the config was never
    modified: its rope_parameters and attention implementation are those from before apply), and so does
    ``set_attn_implementation``; logits are then bit-identical to before apply. The "rope_lib" entries in
    transformers' AttentionInterface / AttentionMaskInterface go when the last patched model is removed or
    garbage-collected (entries someone else registered are left alone).

    Changes made to ``model.config`` while patched (other than apply's) are not carried over: a UserWarning names
    them. Raises ValueError if the model is not patched."""
    patch = getattr(model, "_rope_lib_patch", None)
    if patch is None:
        raise ValueError("model is not patched by rope_lib.hf.apply (nothing to remove)")
    inner = _decoder(model)
    now, then = _config_state(patch.config), patch.config_snapshot
    edited = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k))
    inner.rotary_emb = patch.old_rotary
    _swap_config(model, patch.config, patch.old_config)
    for layer in inner.layers:
        del layer.self_attn._rope_lib_patch
    if patch.guard is not None:
        patch.guard.remove()
    for module in (model, inner):
        module.__dict__.pop("set_attn_implementation", None)
    del model._rope_lib_patch
    if patch.uses_attention_fn:
        _unregister(inner)
    if edited:
        warnings.warn(
            f"model.config was changed while patched ({', '.join(edited)}): rope_lib.hf.remove restored the config "
            "from before apply, without those changes",
            UserWarning,
            stacklevel=2,
        )
    return model


def patched_parameters(model: nn.Module) -> dict | None:
    """The complete rope_parameters dict a model was patched with (None if it is not patched)."""
    patch = getattr(model, "_rope_lib_patch", None)
    return None if patch is None else dict(patch.params)


# config.rope_lib's keys: what load() passes back to apply(), and the model's own rope parameters to build it with
_RECORD_KEYS = ("rope_parameters", "attention", "window", "leaky_k", "log_n", "original_length", "base_rope_parameters")
# from_pretrained's keyword arguments that locate config.json (load reads it first)
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "subfolder", "token")


def load(path, **from_pretrained_kwargs) -> nn.Module:
    """Load a model saved (``save_pretrained``) while patched by :func:`apply`, patched the same way.

    Reads ``config.rope_lib`` (the record apply wrote), builds the model with its own rope parameters from before
    apply (``AutoModelForCausalLM.from_pretrained(path, config=..., **from_pretrained_kwargs)``) and applies the
    recorded method, so that :func:`remove` then gives the unpatched model. Methods plain transformers cannot express
    (rope_lib-only types, attention="rerope", log_n, a native type transformers would read with another L) are saved
    with ``rope_parameters = {"rope_type": "rope_lib", ...}``, which plain ``from_pretrained`` refuses (a KeyError
    'rope_lib'); this is how to load them. A native method loads either way (here: rope_lib's float64 angles and, for
    length-dependent types, its raw-key cache).

    Raises:
        ValueError: the config has no (or an incomplete) ``rope_lib`` record.
    """
    transformers = _transformers()
    kwargs = dict(from_pretrained_kwargs)
    config = kwargs.pop("config", None)
    if config is None:
        hub = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
        # transformers logs that it cannot validate rope_type 'rope_lib' (the marker above): expected here
        rope_logger = logging.getLogger("transformers.modeling_rope_utils")
        quiet = lambda record: repr(CONFIG_KEY) not in record.getMessage()  # noqa: E731
        rope_logger.addFilter(quiet)
        try:
            config = transformers.AutoConfig.from_pretrained(path, **hub)
        finally:
            rope_logger.removeFilter(quiet)
    record = getattr(config, CONFIG_KEY, None)
    if not isinstance(record, Mapping):
        raise ValueError(
            f"the config of {str(path)!r} has no {CONFIG_KEY!r} record (not saved from a model patched by "
            "rope_lib.hf.apply): load it with transformers.AutoModelForCausalLM.from_pretrained"
        )
    missing = [k for k in _RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"config.{CONFIG_KEY} of {str(path)!r} lacks {missing} (it needs {_RECORD_KEYS})")
    config = copy.deepcopy(config)  # a config the caller passed in stays as it is
    delattr(config, CONFIG_KEY)
    config.rope_parameters = copy.deepcopy(record["base_rope_parameters"])
    model = transformers.AutoModelForCausalLM.from_pretrained(path, config=config, **kwargs)
    return apply(
        model,
        record["rope_parameters"],
        attention=record["attention"],
        window=record["window"],
        leaky_k=record["leaky_k"],
        log_n=record["log_n"],
        original_length=record["original_length"],
    )


# ------------------------------------------------------------------------------------------ the attention function


_USERS: weakref.WeakSet = weakref.WeakSet()  # decoders of patched models that call our attention function
_INSERTED: set[str] = set()  # the registries (by name) whose "rope_lib" entry this module put there


def _registries() -> list[tuple[str, dict, Any]]:
    """(name, transformers' global mapping, the function we put under ATTENTION_NAME) for the attention and mask
    registries (transformers has no unregister: we edit the class-wide mappings its register() writes)."""
    transformers = _transformers()
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    return [
        ("AttentionInterface", transformers.AttentionInterface._global_mapping, _attention),
        ("AttentionMaskInterface", AttentionMaskInterface._global_mapping, sdpa_mask),  # the masks of "sdpa"
    ]


def _check_registries() -> None:
    for name, mapping, ours in _registries():
        if mapping.get(ATTENTION_NAME, ours) is not ours:
            raise ValueError(
                f"transformers' {name} already has a {ATTENTION_NAME!r} entry that is not rope_lib.hf's "
                f"({mapping[ATTENTION_NAME]!r}): rope_lib.hf needs that name"
            )


def _register(decoder: nn.Module) -> None:
    """Our attention function (and SDPA's masks) under ATTENTION_NAME, for as long as a patched decoder uses them."""
    _check_registries()
    for name, mapping, ours in _registries():
        if ATTENTION_NAME not in mapping:
            mapping[ATTENTION_NAME] = ours
            _INSERTED.add(name)
    if decoder not in _USERS:
        _USERS.add(decoder)
        weakref.finalize(decoder, _release).atexit = False  # a patched model dropped without remove() counts too


def _unregister(decoder: nn.Module) -> None:
    _USERS.discard(decoder)
    _release()


def _release() -> None:
    """When no patched decoder is left, remove the entries this module inserted (and only those)."""
    if any(True for _ in _USERS):  # iterating skips decoders being collected, which len() may still count
        return
    for name, mapping, ours in _registries():
        if name in _INSERTED and mapping.get(ATTENTION_NAME) is ours:
            del mapping[ATTENTION_NAME]
        _INSERTED.discard(name)


def _sdpa(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _key_validity(attention_mask, batch: int, n: int) -> torch.Tensor | None:
    """(batch, n) bool, True where key slot j holds a real token, read from the mask transformers passes to the
    attention function; None when every slot is real.

    transformers builds the mask with ``sdpa_mask`` (registered for our name): a bool (batch, 1, q_len, n) tensor,
    True = attend, or None when there is no padding and causality alone describes it (then every key is real). A
    caller's own 4-D mask reaches us as given, possibly additive float (0 = attend, a large negative number = not).
    A real key is visible to at least one query row (its own row, at the latest), a padding key to none, so "any
    row lets it through" is the key's validity - also under a sliding-window mask.
    """
    if attention_mask is None:
        return None
    mask = attention_mask
    if mask.dim() != 4:
        raise ValueError(
            f"attention_mask reaching rope_lib's attention must be 4-D (batch, heads, q_len, n) or None, got shape "
            f"{tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:  # additive: "blocked" is -inf or the dtype's minimum, "attend" 0 or a finite bias
        mask = mask > torch.finfo(mask.dtype).min / 2
    valid = mask.any(dim=-2).any(dim=1).expand(batch, n)
    return None if bool(valid.all()) else valid


def _used_slots(attention_mask, valid: torch.Tensor | None, q_len: int, n: int) -> int:
    """How many leading cache slots hold tokens. The attention function assumes the queries are the newest q_len of
    them (a DynamicCache); a static cache also passes its empty future slots, which no query sees."""
    if q_len == n:
        return n  # a prefill without a cache, or into an empty dynamic one: trailing padding is padding
    if attention_mask is None:
        # transformers skips the mask with 1 < q_len < n only for a prefill into an empty static cache (its
        # _ignore_causal_mask_sdpa): the queries fill slots 0..q_len-1, the rest are empty
        return q_len if q_len > 1 else n
    if valid is None:
        return n
    used = int(valid.any(dim=0).nonzero().max()) + 1 if bool(valid.any()) else n
    return max(used, q_len)


def _positions(valid: torch.Tensor | None, batch: int, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Each key slot's position (batch, n) int64 - its count of real keys before it, so a row's real tokens sit at
    0..n_b-1 whatever padding surrounds them (padding slots: the last real position before them, 0 at the start;
    they are masked) - and each row's number of real keys n_b (batch,)."""
    if valid is None:
        return torch.arange(n, device=device).expand(batch, n), torch.full((batch,), n, device=device)
    count = valid.cumsum(-1)
    return (count - 1).clamp(min=0), count[:, -1]


def _check_positions(
    position_ids, q_pos: torch.Tensor, q_real: torch.Tensor | None, n: int, shift_ok: bool, sliding: bool = False
) -> None:
    """Refuse position_ids that disagree with the positions rope_lib reads from the mask (``q_pos``, (batch, q_len),
    compared at the real queries ``q_real``). Accepted: transformers' default n-q_len..n-1 (what the model fills in
    when the caller gives none), exactly ``q_pos`` (what ``generate`` computes from the mask), and, when
    ``shift_ok``, ``q_pos`` plus one constant per row (ReRoPE without log n sees only differences). ``sliding``: the
    layer has a sliding window, whose cache drops old keys - the likely cause of a mismatch, said in the message."""
    if position_ids is None:
        return
    batch, q_len = q_pos.shape
    what = "position_ids must be transformers' default or the attention_mask's positions (cumsum - 1)"
    if position_ids.dim() != 2 or position_ids.shape[-1] != q_len or position_ids.shape[0] not in (1, batch):
        raise ValueError(f"{what}, shape (batch, {q_len}); got shape {tuple(position_ids.shape)}")
    pid = position_ids.to(q_pos.device).expand(batch, q_len)
    if bool((pid == torch.arange(n - q_len, n, device=pid.device)).all()):
        return
    diff = pid - q_pos
    real = torch.ones_like(diff, dtype=torch.bool) if q_real is None else q_real
    if shift_ok:  # subtract each row's shift at its first real query
        first = real.to(torch.int8).argmax(dim=-1, keepdim=True)
        diff = diff - diff.gather(-1, first)
    bad = (diff != 0) & real
    if bool(bad.any()):
        b, i = (int(x) for x in bad.nonzero()[0])
        raise ValueError(
            f"{what} on rope_lib's raw-key routes (dynamic, dynamic_yarn, longrope, attention='rerope', log_n); got "
            f"{int(pid[b, i])} at row {b}, query {i}, expected {int(q_pos[b, i])}"
            + (" (a sliding-window cache that dropped keys cannot be served)" if sliding else "")
        )


def _whole_head(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # whole-head tables (cos | cos, -sin | sin): a half-split rotation is then x * cos2 + swap_halves(x) * sin2, four
    # ops per layer instead of nine (x1 cos + x2 (-sin) is x1 cos - x2 sin to the bit)
    return torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)


def _row_tables(
    patch: _Patch, pos: torch.Tensor | None, n_b: torch.Tensor, n: int, dtype, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-head rotation tables (batch or 1, 1, n, head_dim) for key positions pos (batch, n) - None: 0..n-1 in
    every row - each row with the frequencies for its own length n_b (one frequencies() call per distinct length)."""
    if pos is None:  # no padding: every row is 0..n-1 at length n
        inv, af = frequencies(patch.params, patch.head_dim, seq_len=max(n, 1))
        return _plain_tables(patch, inv, af, n, dtype, device)
    lengths = torch.unique(n_b).tolist()
    theta = torch.empty(pos.shape[0], 1, pos.shape[1], patch.head_dim // 2, dtype=torch.float64, device=device)
    factor = torch.empty(pos.shape[0], 1, 1, 1, dtype=torch.float64, device=device)
    for length in lengths:
        rows = (n_b == length).nonzero().flatten()
        inv, af = frequencies(patch.params, patch.head_dim, seq_len=max(int(length), 1))
        theta[rows] = angles(pos[rows][:, None, :], inv.to(device))
        factor[rows] = af
    return _whole_head(*rotation_tables(theta, dtype, factor))


def _plain_tables(patch: _Patch, inv: torch.Tensor, af: float, n: int, dtype, device):
    """Tables of positions 0..n-1, kept on the patch and reused by later forwards while the frequencies stay the same
    (Dynamic NTK/YaRN up to L, LongRoPE on either side of L): decoding then slices instead of recomputing them."""
    kept = patch.tables
    same = kept is not None and kept[0] == (dtype, device, af) and torch.equal(kept[1], inv)
    if not same or kept[2].shape[-2] < n:
        # the same frequencies at a longer length: grow by doubling, so decoding recomputes O(log n) times
        size = max(n, 2 * kept[2].shape[-2]) if same else n
        theta = angles(torch.arange(size, device=device), inv.to(device))
        kept = patch.tables = ((dtype, device, af), inv, *_whole_head(*rotation_tables(theta, dtype, af)))
    return kept[2][None, None, :n], kept[3][None, None, :n]


def _rotate_whole(x: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor) -> torch.Tensor:
    """Half-split rotation of the whole head by whole-head tables (see _read_positions), in the tables' dtype,
    rounded once to x's dtype: the same bits as :func:`rope_lib.rope.rotate`."""
    half = x.shape[-1] // 2
    y = x.to(cos2.dtype)
    return (y * cos2 + torch.cat((y[..., half:], y[..., :half]), dim=-1) * sin2).to(x.dtype)


def _read_positions(patch: _Patch, attention_mask, position_ids, sliding, batch: int, q_len: int, n: int, query):
    """The layer-independent part of the attention function, computed once per forward (the first layer) and
    shared: (used slots, key validity or None, the mask trimmed to the used slots, log n's query scale or None, the
    length route's ((cos, sin) of the queries, (cos, sin) of the keys) or None)."""
    valid = _key_validity(attention_mask, batch, n)
    used = _used_slots(attention_mask, valid, q_len, n)
    if used < n:  # a static cache: drop its empty future slots, so the queries are the newest slots
        attention_mask = None if attention_mask is None else attention_mask[..., :used]
        valid = None if valid is None or bool(valid[:, :used].all()) else valid[:, :used]
        n = used
    if valid is not None and q_len < n and not bool(valid[:, -1].all()):
        raise ValueError(
            "attention_mask: on rope_lib's raw-key routes a step after a cached prefix must end in a real token in "
            "every row (the newest cache slot); a padded continuation is not supported"
        )
    pos, n_b = _positions(valid, batch, n, query.device)
    q_pos = pos[:, n - q_len :]
    q_real = None if valid is None else valid[:, n - q_len :]
    # a static rotary without log n never gets here; ReRoPE's scores depend on position differences only
    shift_ok = patch.route == "rerope" and not patch.log_n
    _check_positions(position_ids, q_pos, q_real, n, shift_ok, sliding is not None)
    q_scale = None
    if patch.log_n:
        q_scale = log_n_scale(q_pos, patch.original_length)[:, None, :, None]  # float64 (batch, 1, q_len, 1)
    tables = None
    if patch.route == "length":
        cos2, sin2 = _row_tables(patch, None if valid is None else pos, n_b, n, query.dtype, query.device)
        tables = (cos2[..., n - q_len :, :], sin2[..., n - q_len :, :]), (cos2, sin2)
    return used, valid, attention_mask, q_scale, tables


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function: query (batch, heads, q_len, head_dim), key/value (batch, kv_heads, n, head_dim)
    (all cached keys, un-rotated on the identity-rotary routes; the queries are the last q_len slots). Returns
    (output (batch, q_len, heads, head_dim), None).

    Padding (from ``attention_mask``) is honoured per row: the real keys of row b sit at positions 0..n_b-1, the
    length-dependent frequencies use n_b, and log n uses each query's real 1-based position."""
    patch: _Patch | None = getattr(module, "_rope_lib_patch", None)
    if patch is None:
        raise ValueError(
            f"attention implementation {ATTENTION_NAME!r} is set but the module was not patched: use rope_lib.hf.apply"
        )
    batch, q_len, n = query.shape[0], query.shape[-2], key.shape[-2]
    position_ids, sliding = kwargs.get("position_ids"), kwargs.get("sliding_window")
    # every layer of a forward sees the same mask object and lengths: read them once (a sliding-window layer gets
    # its own mask object, hence its own entry)
    memo_key = (id(attention_mask), id(position_ids), batch, q_len, n)
    shared = patch.per_forward.get(memo_key)
    if shared is None:
        shared = _read_positions(patch, attention_mask, position_ids, sliding, batch, q_len, n, query)
        patch.per_forward[memo_key] = shared
    used, valid, attention_mask, q_scale, tables = shared
    if used < n:  # a static cache: drop its empty future slots, so the queries are the newest slots
        key, value = key[..., :used, :], value[..., :used, :]
    if patch.route == "rerope":
        return _rerope(module, query, key, value, patch, q_scale, scaling, kwargs.get("sliding_window"), valid)
    if patch.route == "length":  # the frequencies for each row's current length, as tables shared by the layers
        (cos_q, sin_q), (cos_k, sin_k) = tables
        query, key = _rotate_whole(query, cos_q, sin_q), _rotate_whole(key, cos_k, sin_k)
    if q_scale is not None:
        query = (query.to(torch.float64 if query.dtype == torch.float64 else torch.float32) * q_scale).to(query.dtype)
    return _sdpa(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)


def _rerope(module, query, key, value, patch: _Patch, q_scale, scaling, sliding_window, valid):
    """ReRoPE over raw keys; ``valid`` (batch, n) bool or None: the real key slots (padding takes no position)."""
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
    kpm = None if valid is None else valid[:, None, :]  # (batch, 1, n): the same for every head
    if q_len == n:  # prefill: blockwise, no n x n tensor
        out = rerope_attention(
            query, key, value, inv, window=w, leaky_k=k, causal=True, scale=scale, key_padding_mask=kpm
        )
    else:  # decode (q_len 1) or a chunk after a cached prefix: one row at a time against the raw keys
        rows = []
        for i in range(q_len):
            t = n - q_len + i
            cache = RawKVCache()
            cache.append(key[..., : t + 1, :], value[..., : t + 1, :])
            row_scale = scale if not isinstance(scale, torch.Tensor) else scale[..., i : i + 1, :]
            row_mask = None if kpm is None else kpm[..., : t + 1]
            rows.append(
                rerope_decode_step(
                    query[..., i : i + 1, :],
                    cache,
                    inv,
                    window=w,
                    leaky_k=k,
                    scale=row_scale,
                    key_padding_mask=row_mask,
                )
            )
        out = torch.cat(rows, dim=-2)
    return out.transpose(1, 2).contiguous(), None


__all__ = [
    "ATTENTIONS",
    "CONFIG_KEY",
    "LENGTH_DEPENDENT",
    "SUPPORTED_MODEL_TYPES",
    "TRANSFORMERS_VERSION",
    "IdentityRotary",
    "StaticRotary",
    "apply",
    "load",
    "patched_parameters",
    "remove",
]
