"""transformers-style RoPE configs into frequencies: :func:`frequencies` and the reader of ``rope_parameters``.

A ``rope_parameters`` dict (transformers v5's ``config.rope_parameters``, or legacy ``rope_scaling`` plus
``rope_theta``) names a method by its ``rope_type``; :func:`frequencies` reads the dict, or a whole transformers config
object (:func:`config_rope_parameters`: the fields transformers takes from the config, such as L and LongRoPE's s), and
calls that method of :mod:`rope_lib.scaling` (or, for ``p_rope``, ``hope`` and ``resonance``, of
:mod:`rope_lib.since_su`). Types with the same name as transformers' (``TRANSFORMERS_ROPE_TYPES``) give transformers'
frequencies; the others (``ntk``, ``ntk_fixed``, ``ntk_mixed``, ``ntk_by_parts``, ``dynamic_yarn``, ``p_rope``,
``hope``, ``resonance``) are ours.

The methods own their arguments: which rope type calls which method, with which keys and which defaults, is the table
``_BUILDERS``, whose keys are read off each method's signature (an argument without a default is a required key, one
with a default an optional key that takes that default when absent or None). The methods' checks refuse bad values;
this module re-raises their :class:`rope_lib.scaling.ArgumentError` under the key's name, with the key's meaning from
``KEY_DOCS``. It checks only what belongs to a config: the rope type, unknown and missing keys, the rotary dim from
head_dim and partial_rotary_factor, L as an integer >= 2, the few per-type rules in the table (a rotary dim >= 4 for
the NTK family, LongRoPE's s), and the config object's own fields.

Imports :mod:`rope_lib.scaling` and :mod:`rope_lib.since_su` (never the reverse) and never transformers: config
objects are duck-typed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .scaling import (
    ArgumentError,
    Frequencies,
    _integer,
    _number,
    _seq_len,
    default_frequencies,
    dynamic_ntk_frequencies,
    dynamic_yarn_frequencies,
    linear_frequencies,
    llama3_frequencies,
    longrope_frequencies,
    ntk_by_parts_frequencies,
    ntk_fixed_frequencies,
    ntk_frequencies,
    ntk_mixed_frequencies,
    yarn_frequencies,
)
from .since_su import hope_method, p_rope_method, resonance_method

# ----------------------------------------------------------------------------------------------------------------
# rope type -> method: the table

# the method arguments read from a key of another name; every other argument is read from the key of its own name
_KEY_OF_ARGUMENT = {"base": "rope_theta", "original_length": "original_max_position_embeddings"}
# the method arguments that are not keys: the reader passes them (the rotary dim from head_dim and
# partial_rotary_factor, seq_len from the caller)
_NOT_KEYS = ("rotary_dim", "seq_len")


class _Builder:
    """How a rope_parameters dict becomes a call of ``method``.

    The keys read are ``method``'s arguments (``_KEY_OF_ARGUMENT`` renames two; ``_NOT_KEYS`` are passed by the
    reader): an argument without a default is a required key, one with a default an optional key, left to that
    default when absent or None. The rest says what a config demands beyond the method:

    * ``also_required``: optional arguments a config must still give (transformers requires them);
    * ``min_rotary_dim``: the smallest rotary dim the config reader accepts for this type;
    * ``check``: a requirement on the dict as a whole, called with it before the method;
    * ``quote_defaults``: a refusal of one optional key against another also quotes both keys' defaults, since
      either may be absent from the dict (YaRN's message for beta_fast < beta_slow says "(defaults 32 and 1)").
    """

    def __init__(
        self,
        method: Callable[..., Frequencies],
        *,
        also_required: tuple[str, ...] = (),
        min_rotary_dim: int = 2,
        check: Callable[[Mapping[str, Any]], None] | None = None,
        quote_defaults: bool = False,
    ) -> None:
        self.method = method
        self.min_rotary_dim = min_rotary_dim
        self.check = check
        self.quote_defaults = quote_defaults
        parameters = inspect.signature(method).parameters
        self.reads_seq_len = "seq_len" in parameters
        # method argument -> rope_parameters key
        self.keys = {name: _KEY_OF_ARGUMENT.get(name, name) for name in parameters if name not in _NOT_KEYS}
        unknown = set(also_required) - set(self.keys.values())
        assert not unknown, f"{method.__name__} has no argument for the key(s) {sorted(unknown)}"
        # optional key -> the method's default for it
        self.defaults = {
            key: parameters[name].default
            for name, key in self.keys.items()
            if parameters[name].default is not inspect.Parameter.empty and key not in also_required
        }
        self.required = tuple(key for key in self.keys.values() if key not in self.defaults)
        self.optional = tuple(self.defaults)


def _longrope_needs_s(params: Mapping[str, Any]) -> None:
    # longrope_frequencies refuses the same, but only a config reader can point at the config object
    if params.get("factor") is None and params.get("attention_factor") is None:
        raise ValueError(
            "rope_parameters['factor'] (or 'attention_factor') is required for rope_type 'longrope': "
            "the attention factor sqrt(1 + ln s / ln L) needs s (or pass the transformers config object itself: "
            "frequencies(config) takes s = config.max_position_embeddings / L, as transformers does)"
        )


# rope_type -> how to call its method. min_rotary_dim 4 for the NTK family: d/(d-2) in ntk and dynamic needs d > 2
# (their methods refuse d = 2 too), and Su's fixed and mixed variants are held to the same.
_BUILDERS: dict[str, _Builder] = {
    "default": _Builder(default_frequencies),
    "linear": _Builder(linear_frequencies),
    "ntk": _Builder(ntk_frequencies, min_rotary_dim=4),
    "ntk_fixed": _Builder(ntk_fixed_frequencies, min_rotary_dim=4),
    "ntk_mixed": _Builder(ntk_mixed_frequencies, min_rotary_dim=4),
    "dynamic": _Builder(dynamic_ntk_frequencies, min_rotary_dim=4),
    "ntk_by_parts": _Builder(ntk_by_parts_frequencies),
    "yarn": _Builder(yarn_frequencies, quote_defaults=True),
    "dynamic_yarn": _Builder(dynamic_yarn_frequencies, quote_defaults=True),
    # transformers requires both, though Llama 3.1's 1 and 4 are llama3_frequencies' defaults
    "llama3": _Builder(llama3_frequencies, also_required=("low_freq_factor", "high_freq_factor")),
    "longrope": _Builder(longrope_frequencies, check=_longrope_needs_s),
    # the methods published after Su's series that are per-pair frequencies (rope_lib.since_su)
    "p_rope": _Builder(p_rope_method),
    "hope": _Builder(hope_method),
    "resonance": _Builder(resonance_method),
}

ROPE_TYPES: tuple[str, ...] = tuple(_BUILDERS)
# The types transformers also has (``ROPE_INIT_FUNCTIONS`` plus the models' own "default"); tested for parity.
TRANSFORMERS_ROPE_TYPES: tuple[str, ...] = ("default", "linear", "dynamic", "yarn", "llama3", "longrope")

# keys every type accepts (rope_theta, read as the method's base, is also required by every type)
_COMMON_KEYS = ("rope_type", "type", "rope_theta", "partial_rotary_factor")
# rope_type -> (required keys, optional keys) besides the common ones
_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    rope_type: (tuple(k for k in b.required if k not in _COMMON_KEYS), b.optional) for rope_type, b in _BUILDERS.items()
}
# rope types that need the original length L: the caller (a config, a model) fills it in when a dict omits it. Only
# the types that require it: where L is optional ('resonance': absent means the published method, every pair rounded)
# filling in the model's length would silently switch to another variant.
USES_ORIGINAL_LENGTH: tuple[str, ...] = tuple(
    t for t, (required, _) in _KEYS.items() if "original_max_position_embeddings" in required
)


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


def _shown(value: Any) -> str:
    """A default as the messages write it: 32.0 -> "32", True -> "True"."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _default(function: Callable[..., Any], argument: str) -> str:
    return _shown(inspect.signature(function).parameters[argument].default)


# What each key means, used in error messages and listed in frequencies()' docstring. The defaults quoted are read
# from the signatures that own them.
KEY_DOCS: dict[str, str] = {
    "rope_type": f"one of {ROPE_TYPES} (legacy name: 'type'; absent means 'default')",
    "rope_theta": "the base b, a number > 1",
    "partial_rotary_factor": "fraction of head_dim that is rotated, in (0, 1] "
    f"(default {_default(rotary_dim_of, 'partial_rotary_factor')})",
    "factor": "the scale s = extended length / original length, a number >= 1",
    "original_max_position_embeddings": "the training length L, an integer >= 2 "
    "(for 'dynamic' transformers reads config.max_position_embeddings: pass that value, or the config object; "
    "optional for 'resonance': only the pairs with period <= L are rounded, absent rounds every pair)",
    # One key for two methods: both papers call it p and both take [0, 1], and the builders read a key off the method's
    # argument of that name, so p_rope's own key would need an argument named otherwise than in the paper. The two
    # meanings never meet (a dict has one rope_type), and the message below states both.
    "p": "a number in [0, 1]: for ntk_mixed the exponent in theta_i exp(-a (i+1)^p) (0 = linear, 1 = ntk_fixed); "
    "for p_rope the fraction of pairs rotated, the highest frequencies (1 = default RoPE, 0 = no rotation)",
    "alpha": "ntk_by_parts' lower rotation bound (pairs turning fewer times over L are interpolated), > 0, "
    f"default {_default(ntk_by_parts_frequencies, 'alpha')}",
    "beta": "ntk_by_parts' upper rotation bound (pairs turning more times over L are kept), > alpha, "
    f"default {_default(ntk_by_parts_frequencies, 'beta')}",
    "attention_factor": "the factor multiplying cos and sin, a number > 0 (default: the method's own)",
    "beta_fast": "YaRN's rotation count above which pairs are kept, a number > 0, "
    f"default {_default(yarn_frequencies, 'beta_fast')}",
    "beta_slow": "YaRN's rotation count below which pairs are interpolated, 0 < beta_slow <= beta_fast, "
    f"default {_default(yarn_frequencies, 'beta_slow')}",
    "mscale": "DeepSeek's numerator mscale for the attention factor, a number >= 0",
    "mscale_all_dim": "DeepSeek's denominator mscale for the attention factor, a number >= 0",
    "truncate": "whether YaRN floors/ceils its correction range, a bool, "
    f"default {_default(yarn_frequencies, 'truncate')}",
    "short_factor": "LongRoPE's per-pair divisors for seq_len <= L, a list of rotary_dim/2 numbers > 0",
    "long_factor": "LongRoPE's per-pair divisors for seq_len > L, a list of rotary_dim/2 numbers > 0",
    "low_freq_factor": "Llama 3's L/wavelength below which pairs are divided by s, a number > 0 (Llama 3.1: 1)",
    "high_freq_factor": "Llama 3's L/wavelength above which pairs are kept, > low_freq_factor (Llama 3.1: 4)",
}
# every key a method reads is documented (a new method argument needs its entry here)
assert set(KEY_DOCS) == {"rope_type", "partial_rotary_factor"} | {
    key for b in _BUILDERS.values() for key in b.keys.values()
}


# ----------------------------------------------------------------------------------------------------------------
# errors under the key's name


def _bad(key: str, value: Any, why: str | None = None) -> ValueError:
    return ValueError(f"rope_parameters[{key!r}] must be {why or KEY_DOCS[key]}, got {value!r}")


def _said_as_key(err: ArgumentError, keys: Mapping[str, str], defaults: Mapping[str, Any] | None = None) -> ValueError:
    """``err``, a method's refusal of an argument, said of the key it was read from (``keys``: argument -> key);
    ``err`` itself when that argument was not read from a key (it is then the reader's own, e.g. head_dim).
    ``defaults`` (optional key -> default): quoted when two optional keys are refused against each other."""
    key = keys.get(err.argument)
    if key is None:
        return err
    if err.detail is not None:  # the detail says more than the key's meaning (a list's length)
        return ValueError(f"rope_parameters[{key!r}] {err.detail}")
    if err.bound is None:
        return _bad(key, err.value)
    op, other, other_value = err.bound
    other_key = keys.get(other)
    if other_key is None:
        return err
    why = f"{op} rope_parameters[{other_key!r}] = {other_value:g}"
    if defaults is not None and key in defaults and other_key in defaults:  # either may be absent: say what was assumed
        why += f" (defaults {_shown(defaults[key])} and {_shown(defaults[other_key])})"
    return _bad(key, err.value, why)


def _original_length(value: Any) -> int:
    # a config's L is an integer >= 2 for every type; the methods accept L >= 1, except longrope (ln L > 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        raise _bad("original_max_position_embeddings", value)
    return value


# ----------------------------------------------------------------------------------------------------------------
# config objects


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
            implied = max_pos / _original_length(given)
            if rope_type == "yarn":
                params["factor"] = implied
            elif params.get("attention_factor") is None:
                # s <= 1 means no extension: transformers then uses attention factor 1
                if implied > 1:
                    params["factor"] = implied
                else:
                    params["attention_factor"] = 1.0
    return params


# ----------------------------------------------------------------------------------------------------------------
# frequencies


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
            - ntk_by_parts: factor, original_max_position_embeddings; optional alpha, beta
            - yarn: factor, original_max_position_embeddings; optional attention_factor, beta_fast, beta_slow,
              mscale, mscale_all_dim, truncate
            - dynamic_yarn: like yarn without factor (s = max(1, seq_len / L))
            - llama3: factor, original_max_position_embeddings, low_freq_factor, high_freq_factor
            - longrope: short_factor, long_factor, original_max_position_embeddings; factor or attention_factor
            - p_rope: p (the fraction of pairs rotated, the highest frequencies; the others get theta = 0)
            - hope: original_max_position_embeddings (pairs with period > L get theta = 0)
            - resonance: optional original_max_position_embeddings (absent: every wavelength rounded; L: only the
              pairs with period <= L; never filled in from a config object's length)

            Each type calls its method of :mod:`rope_lib.scaling` or :mod:`rope_lib.since_su` (``_BUILDERS``; those
            modules' docstrings list them with their sources), an absent optional key taking the method's default
            (``KEY_DOCS`` quotes it). A key whose value is None counts as absent (serialized configs carry such
            keys). Any other key, a missing required key, a wrong type or an out-of-range value raises ValueError
            naming the key.
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
    """:func:`frequencies` for a rope_parameters dict (the keys are documented there): the checks of a config, then
    the call of the rope type's method (``_BUILDERS``), whose refusals are re-raised under the key's name."""
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
    builder = _BUILDERS[rope_type]
    allowed = set(_COMMON_KEYS) | set(builder.keys.values())
    unknown = sorted(k for k in params if k not in allowed)
    if unknown:
        raise ValueError(
            f"rope_parameters has unknown key(s) {unknown} for rope_type {rope_type!r}; allowed keys: {sorted(allowed)}"
        )
    for key in builder.required:  # rope_theta first: every method's base comes right after rotary_dim
        if params.get(key) is None:
            raise ValueError(f"rope_parameters[{key!r}] is required for rope_type {rope_type!r}: {KEY_DOCS[key]}")
    if builder.check is not None:
        builder.check(params)
    seq_len = _seq_len(seq_len)  # checked for every type, read by the length-dependent ones

    prf = params.get("partial_rotary_factor")
    try:
        d = rotary_dim_of(head_dim) if prf is None else rotary_dim_of(head_dim, prf)
    except ArgumentError as err:
        said = _said_as_key(err, {"partial_rotary_factor": "partial_rotary_factor"})
        if said is err:
            raise
        raise said from None
    if params.get("original_max_position_embeddings") is not None:
        _original_length(params["original_max_position_embeddings"])
    if d < builder.min_rotary_dim:
        raise ValueError(f"rope_type {rope_type!r} needs a rotary dim >= {builder.min_rotary_dim} (d/(d-2)), got {d}")

    # absent and None keys are left out, so that the method's own defaults apply
    arguments = {name: params[key] for name, key in builder.keys.items() if params.get(key) is not None}
    if builder.reads_seq_len:
        arguments["seq_len"] = seq_len
    try:
        return builder.method(d, **arguments)
    except ArgumentError as err:
        said = _said_as_key(err, builder.keys, builder.defaults if builder.quote_defaults else None)
        if said is err:
            raise
        raise said from None
