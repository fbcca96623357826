"""The RoPE config doctor: what a transformers ``config.json`` does to each frequency pair, and whether it can hold
the context it is asked for.

:func:`diagnose` reads a config (a file, a dict, or a transformers config object's ``to_dict()``) twice - as
transformers 4.x reads it (``rope_theta`` + ``rope_scaling``) and as transformers 5.23 does (``rope_parameters``,
legacy fields folded in) - warns where the two readings differ or where fields contradict each other (each warning
names the key), and reports for each RoPE layer type:

* what is read: base, head and rotary dims, the trained length L, the factor s (given or implied), the attention
  factor and how it was resolved (given / DeepSeek's mscale ratio / 0.1 ln s + 1 / LongRoPE's sqrt(1 + ln s / ln L));
* per pair i: the wavelength 2 pi / theta_i before and after scaling, the divisor theta_before / theta_after the
  method applies (1: kept, s: interpolated, between: blended, another value: the method's own, e.g. NTK's per-digit
  factor or LongRoPE's rescale factors; a pair the method leaves unrotated, theta_after = 0 as in p-RoPE and HoPE,
  has an infinite wavelength and divisor, written null in the JSON), and whether the pair completed a period within
  L (the "critical" pairs did not) or sees at the target context an angle it never saw in training;
* the base bound (notebook 07): the first distance m where B_m = sum_i cos(m theta_i), computed for the *scaled*
  frequencies, turns negative, against the target context (and, for partial rotary or MLA heads, with the unrotated
  features counted: each adds cos 0 = 1);
* for the length-dependent types (Dynamic NTK, LongRoPE): where the frequencies switch, and what a cached key holds.

``python -m rope_lib.doctor CONFIG.json [--context N] [--json] [--figure PATH]`` prints the same (``__main__``).

The frequencies are :func:`rope_lib.frequencies` of the completed ``rope_parameters`` (tested against transformers'
own for every rope type it has). Nothing here imports transformers.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _checks
from ..base_bound import first_negative_bias
from ..mla import deepseek_softmax_scale
from ..rope_parameters import config_head_dim, config_rope_parameters, frequencies, rotary_dim_of

__all__ = ["Layer", "Report", "Finding", "diagnose", "read_config", "spell"]

# the base transformers' Llama-family classes use when a config names none (each model class has its own default)
_TRANSFORMERS_DEFAULT_THETA = 10000.0
# fields that belong to the rope reading besides the rope dicts themselves
_TOP_LEVEL = ("rope_theta", "partial_rotary_factor", "original_max_position_embeddings", "rope_local_base_freq")
# a relative tolerance for "this divisor is 1" / "this divisor is s": far above float64 rounding of the methods
_SAME = 1e-9
# the base-bound scan stops at this many times the target context (B_m has turned negative well before, or the
# bound covers the context by far)
_BOUND_SCAN = 16


@dataclass(frozen=True)
class Finding:
    """One thing a reader of the config should know: the ``key`` it is about, and ``kind``:

    * ``"contradiction"``: two fields of the file say different things; transformers 5.23 uses one of them (named);
    * ``"spelling"``: readers of the other transformers spelling (v4 ``rope_scaling``/``rope_theta``, v5
      ``rope_parameters``) read something else from this file;
    * ``"note"``: a reading worth knowing that is not a conflict (a sliding window, an advertised context past the
      base bound).
    """

    key: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.key}: {self.message}"


@dataclass
class Layer:
    """The doctor's reading of one RoPE layer type (``name``: "all layers", or a ``layer_types`` entry)."""

    name: str
    rope_type: str
    base: float
    head_dim: int  # the part of the head RoPE acts on (qk_rope_head_dim for MLA)
    rotary_dim: int
    unrotated_dim: int  # features of the same q.k product that are not rotated (partial rotary, MLA's nope part)
    original_length: int  # L: the length the model was trained at
    original_length_source: str
    factor: float | None
    factor_source: str
    attention_factor: float
    attention_factor_source: str
    softmax_scale_factor: float | None  # MLA models multiply the softmax scale by mscale(s, mscale_all_dim)^2
    context: int  # the target context
    attended: int  # the longest distance this layer attends at the target context (a sliding window caps it)
    inv_freq_before: np.ndarray  # theta_i of the base, float64 (pairs,)
    inv_freq_after: np.ndarray  # the scaled theta_i at the target context
    switch: str | None  # for the length-dependent types: where the frequencies change, and what a cache then holds
    bound_first_negative: int | None  # first m with B_m < 0 (scaled frequencies), None if none up to bound_scanned
    bound_first_negative_whole_head: int | None  # the same with the unrotated features counted
    bound_scanned: int

    @property
    def pairs(self) -> int:
        return self.inv_freq_before.size

    @property
    def wavelength_before(self) -> np.ndarray:
        return 2 * math.pi / self.inv_freq_before

    @property
    def unrotated(self) -> np.ndarray:
        """Pairs the method does not rotate at all (theta_after = 0: p-RoPE's and HoPE's low frequencies)."""
        return self.inv_freq_after == 0

    @property
    def wavelength_after(self) -> np.ndarray:
        """2 pi / theta_after; inf for an unrotated pair (it never completes a period)."""
        with np.errstate(divide="ignore"):
            return 2 * math.pi / self.inv_freq_after

    @property
    def divisor(self) -> np.ndarray:
        """theta_before / theta_after per pair: 1 kept, s interpolated, inf unrotated."""
        with np.errstate(divide="ignore"):
            return self.inv_freq_before / self.inv_freq_after

    @property
    def bands(self) -> list[str]:
        """Per pair: "unrotated" (theta_after = 0), "kept" (divisor 1), "interpolated" (divisor s), "blended"
        (strictly between 1 and s), or "rescaled" (any other divisor: NTK's change of base beyond s, LongRoPE's
        factors, Resonance RoPE's rounded wavelengths, no s to compare with)."""
        out = []
        for q, still in zip(self.divisor, self.unrotated):
            if still:
                out.append("unrotated")
            elif abs(q - 1) <= _SAME:
                out.append("kept")
            elif self.rope_type == "longrope":  # per-pair factors of their own: s does not bound them
                out.append("rescaled")
            elif self.factor is not None and abs(q - self.factor) <= _SAME * self.factor:
                out.append("interpolated")
            elif self.factor is not None and 1 < q < self.factor:
                out.append("blended")
            else:
                out.append("rescaled")
        return out

    @property
    def critical(self) -> np.ndarray:
        """Pairs whose wavelength exceeds L: they never completed a period in training (Su's "critical" digits)."""
        return self.wavelength_before > self.original_length

    @property
    def unseen(self) -> np.ndarray:
        """Pairs that reach, at the longest attended distance, an angle they never reached within L in training:
        (attended - 1) theta_after > L theta_before while (L - 1) theta_before is under one period."""
        # past the angle of position L, not L - 1: interpolation by s = context / L maps position sL - 1 to
        # L - 1/s, which is within one position of training and is not counted
        trained = (self.original_length - 1) * self.inv_freq_before
        reach = (self.attended - 1) * self.inv_freq_after
        return (trained < 2 * math.pi) & (reach > self.original_length * self.inv_freq_before * (1 + _SAME))

    @property
    def bound_covers_context(self) -> bool:
        return self.bound_first_negative is None or self.bound_first_negative >= self.attended

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rope_type": self.rope_type,
            "base": self.base,
            "head_dim": self.head_dim,
            "rotary_dim": self.rotary_dim,
            "unrotated_dim": self.unrotated_dim,
            "original_length": self.original_length,
            "original_length_source": self.original_length_source,
            "factor": self.factor,
            "factor_source": self.factor_source,
            "attention_factor": self.attention_factor,
            "attention_factor_source": self.attention_factor_source,
            "softmax_scale_factor": self.softmax_scale_factor,
            "context": self.context,
            "attended": self.attended,
            "switch": self.switch,
            "critical_pairs": int(self.critical.sum()),
            "unrotated_pairs": int(self.unrotated.sum()),
            "unseen_angle_pairs": int(self.unseen.sum()),
            "bound_first_negative": self.bound_first_negative,
            "bound_first_negative_whole_head": self.bound_first_negative_whole_head,
            "bound_scanned": self.bound_scanned,
            "bound_covers_context": self.bound_covers_context,
            "pairs": [
                {
                    "pair": i,
                    "wavelength_before": float(self.wavelength_before[i]),
                    # null for an unrotated pair: strict JSON has no Infinity
                    "wavelength_after": None if self.unrotated[i] else float(self.wavelength_after[i]),
                    "divisor": None if self.unrotated[i] else float(self.divisor[i]),
                    "band": band,
                    "critical": bool(self.critical[i]),
                    "unseen": bool(self.unseen[i]),
                }
                for i, band in enumerate(self.bands)
            ],
        }

    def text(self) -> str:
        bands = self.bands
        runs = _runs(bands)
        lines = [
            f"{self.name}: rope_type {self.rope_type!r}, base {self.base:g}, rotary dim {self.rotary_dim} of "
            f"{self.head_dim}"
            + (f" (+{self.unrotated_dim} unrotated)" if self.unrotated_dim else "")
            + f", L = {self.original_length} ({self.original_length_source})",
            f"  factor: {_g(self.factor)} ({self.factor_source}); attention factor {self.attention_factor:.4f} "
            f"({self.attention_factor_source})",
        ]
        if self.softmax_scale_factor is not None:
            lines.append(
                f"  softmax scale x {self.softmax_scale_factor:.4f} (MLA attention: mscale(s, mscale_all_dim)^2)"
            )
        lines.append(f"  pairs: {self.pairs}; " + ", ".join(f"{band} {a}-{b}" for band, a, b in runs))
        rotated = self.wavelength_after[~self.unrotated]
        after = f"{_g(rotated.min())}..{_g(rotated.max())}" if rotated.size else "none (no pair rotated)"
        if rotated.size and rotated.size < self.pairs:
            after += f" ({self.pairs - rotated.size} pairs unrotated)"
        lines.append(
            f"  wavelengths {_g(self.wavelength_before.min())}..{_g(self.wavelength_before.max())} before, "
            f"{after} after scaling"
        )
        attended = f"{self.attended}" + (" (sliding window)" if self.attended < self.context else "")
        lines.append(
            f"  critical pairs (wavelength > L = {self.original_length}): {int(self.critical.sum())}; pairs at "
            f"unseen angles at distance {attended}: {int(self.unseen.sum())}"
        )
        first = self.bound_first_negative
        bound = (
            f"B_m >= 0 up to m = {self.bound_scanned} (scanned)" if first is None else f"B_m < 0 first at m = {first}"
        )
        verdict = "covers" if self.bound_covers_context else "does NOT cover"
        lines.append(f"  base bound: {bound}: {verdict} the attended distance {self.attended}")
        if self.unrotated_dim:
            whole = self.bound_first_negative_whole_head
            if self.unrotated_dim // 2 >= self.pairs:
                said = "B_m > 0 at every m (at least as many unrotated features as rotated ones)"
            elif whole is None:
                said = f"B_m >= 0 up to m = {self.bound_scanned}"
            else:
                said = f"B_m < 0 first at m = {whole}"
            lines.append(f"    with the unrotated features counted: {said}")
        if self.switch:
            lines.append(f"  switch: {self.switch}")
        return "\n".join(lines)


@dataclass
class Report:
    """What :func:`diagnose` found: the readings, the warnings, and one :class:`Layer` per RoPE layer type."""

    source: str
    model_type: str | None
    context: int
    layers: dict[str, Layer]
    warnings: list[Finding] = field(default_factory=list)
    readings: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"v4": {layer: params}, "v5": {...}}

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "model_type": self.model_type,
            "context": self.context,
            "warnings": [vars(w) for w in self.warnings],
            "readings": self.readings,
            "layers": {name: layer.to_dict() for name, layer in self.layers.items()},
        }

    def text(self) -> str:
        head = f"{self.source}" + (f" (model_type {self.model_type!r})" if self.model_type else "")
        parts = [f"{head}: target context {self.context}"]
        parts += [layer.text() for layer in self.layers.values()]
        parts += [f"warning {w}" for w in self.warnings] or ["no warnings"]
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.text()


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _brief(params: Mapping[str, Any] | None) -> str:
    """A parameters dict for a message, long lists (LongRoPE's factors) as their length."""
    if params is None:
        return "no such layer type"
    shown = {k: (f"[{len(v)} numbers]" if isinstance(v, list) and len(v) > 4 else v) for k, v in params.items()}
    return (
        "{"
        + ", ".join(
            f"{k!r}: {v if isinstance(v, str) and v.startswith('[') else repr(v)}" for k, v in sorted(shown.items())
        )
        + "}"
    )


def _runs(bands: list[str]) -> list[tuple[str, int, int]]:
    """[(band, first pair, last pair)] for consecutive equal bands."""
    out: list[tuple[str, int, int]] = []
    for i, band in enumerate(bands):
        if out and out[-1][0] == band:
            out[-1] = (band, out[-1][1], i)
        else:
            out.append((band, i, i))
    return out


# ----------------------------------------------------------------------------------------------------------------
# reading


def read_config(config: Any) -> tuple[dict[str, Any], str]:
    """(the config as a dict, a name for it) from a path to a config.json, a dict, or an object with ``to_dict()``.
    A multimodal config whose RoPE lives in ``text_config`` (Gemma 3, Qwen2-VL) is read from there."""
    if isinstance(config, (str, Path)):
        path = Path(config)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ValueError(f"config: cannot read {str(path)!r}: {err.strerror or err}") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"config: {str(path)!r} is not JSON ({err.msg}, line {err.lineno})") from None
        source = path.name
    elif isinstance(config, Mapping):
        raw, source = dict(config), "config dict"
    elif hasattr(config, "to_dict"):
        raw, source = config.to_dict(), type(config).__name__
    else:
        raise ValueError(
            f"config must be a path to a config.json, a dict or a config object, got {type(config).__name__}"
        )
    if not isinstance(raw, dict):
        raise ValueError(f"config: the top level must be a JSON object, got {type(raw).__name__}")
    text = raw.get("text_config")
    if isinstance(text, Mapping) and not any(k in raw for k in ("rope_theta", "rope_scaling", "rope_parameters")):
        raw = {**text, "model_type": text.get("model_type", raw.get("model_type"))}
    return raw, source


def _nested(params: Mapping[str, Any]) -> bool:
    return bool(params) and all(v is None or isinstance(v, Mapping) for v in params.values())


def _flat_dict(raw: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"config[{key!r}] must be a dict or null, got {type(value).__name__}")
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in value.items()}


def _theta(raw: Mapping[str, Any], warnings: list[Finding], reading: str) -> float:
    theta = raw.get("rope_theta")
    if theta is None:
        warnings.append(
            Finding(
                "rope_theta",
                "spelling",
                f"the {reading} reading finds no rope_theta; transformers then uses the model class's default "
                f"({_TRANSFORMERS_DEFAULT_THETA:g} for the Llama family), which is assumed here",
            )
        )
        return _TRANSFORMERS_DEFAULT_THETA
    return theta


def _v4_reading(raw: Mapping[str, Any], warnings: list[Finding]) -> dict[str, dict[str, Any]]:
    """transformers 4.x: ``rope_scaling`` (or nothing) next to ``rope_theta``; ``rope_parameters`` is unknown to it.
    Gemma 3's ``rope_local_base_freq`` is the sliding layers' base, the scaling applies to the global layers only."""
    scaling = _flat_dict(raw, "rope_scaling") or {}
    params = {**scaling, "rope_theta": _theta(raw, warnings, "v4")}
    params.setdefault("rope_type", params.pop("type", "default"))
    params.pop("type", None)
    if raw.get("partial_rotary_factor") is not None:
        params.setdefault("partial_rotary_factor", raw["partial_rotary_factor"])
    if raw.get("rope_local_base_freq") is not None:
        return {
            "full_attention": params,
            "sliding_attention": {"rope_type": "default", "rope_theta": raw["rope_local_base_freq"]},
        }
    return {"all layers": params}


def _v5_reading(raw: Mapping[str, Any], warnings: list[Finding]) -> dict[str, dict[str, Any]]:
    """transformers 5.23 (``convert_rope_params_to_dict`` / ``standardize_rope_params``): ``rope_scaling`` wins over
    ``rope_parameters`` when a file has both; the dict's own rope_theta and partial_rotary_factor win over the
    top-level fields; a nested dict holds one entry per layer type (None: that type has no RoPE)."""
    scaling, params = _flat_dict(raw, "rope_scaling"), _flat_dict(raw, "rope_parameters")
    chosen = scaling if scaling else (params or {})
    if raw.get("rope_local_base_freq") is not None and not _nested(chosen):  # Gemma 3, legacy fields
        chosen = {
            "full_attention": chosen,
            "sliding_attention": {"rope_type": "default", "rope_theta": raw["rope_local_base_freq"]},
        }
    layers = {k: v for k, v in chosen.items() if v is not None} if _nested(chosen) else {"all layers": chosen}
    out = {}
    for name, p in layers.items():
        p = dict(p)
        if p.get("rope_theta") is None:
            p["rope_theta"] = _theta(raw, warnings, "v5")
        if raw.get("partial_rotary_factor") is not None:
            p.setdefault("partial_rotary_factor", raw["partial_rotary_factor"])
        p.setdefault("rope_type", p.pop("type", "default"))
        p.pop("type", None)
        out[name] = p
    return out


def _compare_spellings(raw: Mapping[str, Any], warnings: list[Finding]) -> None:
    """Warnings for the fields two spellings of one file give differently."""
    scaling, params = _flat_dict(raw, "rope_scaling"), _flat_dict(raw, "rope_parameters")
    if scaling and params:
        flat = params if not _nested(params) else None
        if flat is None or any(flat.get(k) != v for k, v in scaling.items() if k != "type"):
            warnings.append(
                Finding(
                    "rope_scaling",
                    "contradiction",
                    f"the file has both rope_scaling {scaling} and rope_parameters {params}, which differ; "
                    "transformers 5.23 uses rope_scaling, a reader of rope_parameters only uses the other",
                )
            )
    for name, p in (params or {}).items() if params and _nested(params) else [("", params or {})]:
        if not isinstance(p, Mapping):
            continue
        where = f"rope_parameters[{name!r}]" if name else "rope_parameters"
        for key in ("rope_theta", "partial_rotary_factor"):
            inner, outer = p.get(key), raw.get(key)
            if inner is not None and outer is not None and inner != outer:
                warnings.append(
                    Finding(
                        key,
                        "contradiction",
                        f"{where}[{key!r}] = {inner!r} but the top-level {key} = {outer!r}; transformers 5.23 uses "
                        f"{inner!r} (the dict's), readers of the top-level field use {outer!r}",
                    )
                )


def _namespace(raw: Mapping[str, Any], params: Mapping[str, Any]) -> types.SimpleNamespace:
    """A duck-typed config object for :func:`config_rope_parameters` with this layer's ``params``."""
    fields = {
        k: raw[k]
        for k in (
            "max_position_embeddings",
            "original_max_position_embeddings",
            "head_dim",
            "qk_rope_head_dim",
            "hidden_size",
            "num_attention_heads",
        )
        if k in raw
    }
    return types.SimpleNamespace(**fields, rope_parameters=dict(params))


def spell(config: Any, version: str) -> dict[str, Any]:
    """``config`` rewritten in one transformers spelling, everything else kept: ``version="v5"`` puts the RoPE fields
    into ``rope_parameters`` (nested per layer type where there are several); ``"v4"`` into ``rope_theta`` +
    ``rope_scaling`` (+ Gemma 3's ``rope_local_base_freq``). Both read back to the same parameters (tested)."""
    if version not in ("v4", "v5"):
        raise ValueError(f"version must be one of ('v4', 'v5'), got {version!r}")
    raw, _ = read_config(config)
    layers = _v5_reading(raw, [])
    out = {k: v for k, v in raw.items() if k not in ("rope_scaling", "rope_parameters", *_TOP_LEVEL[:2], _TOP_LEVEL[3])}
    if "original_max_position_embeddings" in raw:  # Phi-3 keeps L at the top level in both spellings
        out["original_max_position_embeddings"] = raw["original_max_position_embeddings"]
    if version == "v5":
        out["rope_parameters"] = layers["all layers"] if list(layers) == ["all layers"] else layers
        return out
    if list(layers) == ["all layers"]:
        global_params = dict(layers["all layers"])
    elif (
        set(layers) == {"full_attention", "sliding_attention"}
        and set(layers["sliding_attention"])
        == {
            "rope_type",
            "rope_theta",
        }
        and layers["sliding_attention"]["rope_type"] == "default"
    ):
        global_params = dict(layers["full_attention"])
        out["rope_local_base_freq"] = layers["sliding_attention"]["rope_theta"]
    else:
        raise ValueError(
            f"rope_parameters: per-layer-type parameters {sorted(layers)} have no v4 spelling (v4 knows one dict, "
            "and Gemma 3's rope_local_base_freq for default-RoPE sliding layers)"
        )
    out["rope_theta"] = global_params.pop("rope_theta")
    if "partial_rotary_factor" in global_params:
        out["partial_rotary_factor"] = global_params.pop("partial_rotary_factor")
    out["rope_scaling"] = None if global_params == {"rope_type": "default"} else global_params
    return out


# ----------------------------------------------------------------------------------------------------------------
# diagnosis


def _attention_factor_source(rope_type: str, p: Mapping[str, Any]) -> str:
    if p.get("attention_factor") is not None:
        return "attention_factor given"
    if rope_type in ("yarn", "dynamic_yarn"):
        if p.get("mscale") and p.get("mscale_all_dim"):
            return "mscale(s, mscale) / mscale(s, mscale_all_dim), DeepSeek's ratio"
        return "0.1 ln s + 1 (YaRN's default)"
    if rope_type == "longrope":
        return "sqrt(1 + ln s / ln L) (LongRoPE's default)"
    return "not used by this type (1)"


def _switch(rope_type: str, L: int) -> str | None:
    if rope_type == "dynamic":
        return (
            f"the base grows with the running length n once n > L = {L}; a KV cache of rotated keys keeps each key's "
            "rotation from the length at which it was cached, so past the switch a cache mixes frequencies (exact "
            "only with raw keys re-rotated: rope_lib.dynamic_rope_step)"
        )
    if rope_type == "longrope":
        return (
            f"short_factor while the sequence length n <= L = {L}, long_factor once n > L (transformers: n > "
            "original_max_position_embeddings, Phi-3's rule); a prompt of n <= L that grows past L keeps its cached "
            "keys rotated with the short factors"
        )
    if rope_type == "dynamic_yarn":
        return f"s = max(1, n / L) with the running length n, L = {L}: the same cache caveat as Dynamic NTK"
    return None


def _layer(raw: Mapping[str, Any], name: str, params: dict[str, Any], context: int, warnings: list[Finding]) -> Layer:
    ns = _namespace(raw, params)
    complete = config_rope_parameters(ns)
    head_dim = config_head_dim(ns)
    rope_type = complete["rope_type"]
    inv_after, attention_factor = frequencies(complete, head_dim, seq_len=context)
    prf = complete.get("partial_rotary_factor")
    rotary_dim = rotary_dim_of(head_dim) if prf is None else rotary_dim_of(head_dim, prf)
    before_params = {"rope_type": "default", "rope_theta": complete["rope_theta"]}
    if prf is not None:
        before_params["partial_rotary_factor"] = prf
    inv_before, _ = frequencies(before_params, head_dim)
    max_pos = raw.get("max_position_embeddings")
    given = params.get("factor") is not None
    factor = complete.get("factor")
    if complete.get("original_max_position_embeddings") is not None:
        L = complete["original_max_position_embeddings"]
        L_source = "given" if params.get("original_max_position_embeddings") is not None else "config fields"
        if rope_type == "dynamic":
            L_source = "max_position_embeddings, as transformers reads it for 'dynamic'"
    elif max_pos is not None and factor is not None:  # linear and the NTK family carry s but no L
        L, L_source = round(max_pos / factor), "implied: max_position_embeddings / factor"
    elif max_pos is not None:
        L, L_source = max_pos, "max_position_embeddings"
    else:
        L, L_source = context, "the target context (the config names no length)"
    if rope_type in ("default",):
        factor_source = "no scaling"
    elif factor is None:
        factor_source = "not used by this type"
    elif given:
        factor_source = "given"
    else:
        factor_source = "implied: max_position_embeddings / L"
    if rope_type in ("yarn",) and given and max_pos is not None and L and abs(max_pos / L - factor) > 1e-9 * factor:
        warnings.append(
            Finding(
                f"{'rope_scaling' if raw.get('rope_scaling') else 'rope_parameters'}.factor",
                "contradiction",
                f"factor = {factor:g} but max_position_embeddings / original_max_position_embeddings = {max_pos} / "
                f"{L} = {max_pos / L:g}; transformers uses the factor given, engines that derive s from the "
                "lengths (or cap the context at max_position_embeddings) do not",
            )
        )
    unrotated = head_dim - rotary_dim
    if "qk_rope_head_dim" in raw:
        unrotated += _checks.nonnegative_int("qk_nope_head_dim", raw.get("qk_nope_head_dim") or 0)
    softmax = None
    if "qk_rope_head_dim" in raw and rope_type == "yarn" and complete.get("mscale_all_dim"):
        qk_head_dim = head_dim + unrotated  # MLA's query-key head: the nope part and the rope part
        softmax = deepseek_softmax_scale(qk_head_dim, complete) * math.sqrt(qk_head_dim)
    attended = context
    window = raw.get("sliding_window")
    if name == "sliding_attention" and isinstance(window, int) and 0 < window < context:
        attended = window
    after = inv_after.numpy().astype(np.float64)
    scanned = _BOUND_SCAN * attended
    first = first_negative_bias(after, limit=scanned)
    whole = None
    if 0 < unrotated // 2 < after.size:  # with at least as many unrotated pairs as rotated ones, B_m >= 0 always
        whole = first_negative_bias(np.concatenate([after, np.zeros(unrotated // 2)]), limit=scanned)
    return Layer(
        name=name,
        rope_type=rope_type,
        base=float(complete["rope_theta"]),
        head_dim=head_dim,
        rotary_dim=rotary_dim,
        unrotated_dim=unrotated,
        original_length=int(L),
        original_length_source=L_source,
        factor=None if factor is None else float(factor),
        factor_source=factor_source,
        attention_factor=float(attention_factor),
        attention_factor_source=_attention_factor_source(rope_type, complete),
        softmax_scale_factor=softmax,
        context=context,
        attended=attended,
        inv_freq_before=inv_before.numpy().astype(np.float64),
        inv_freq_after=after,
        switch=_switch(rope_type, int(L)),
        bound_first_negative=first,
        bound_first_negative_whole_head=whole,
        bound_scanned=scanned,
    )


def _plain(readings: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {k: p[k] for k in sorted(p)} for name, p in readings.items()}


def diagnose(config: Any, *, context: int | None = None) -> Report:
    """The doctor's :class:`Report` for ``config`` (a config.json path, a dict, or a config object) at the target
    ``context`` (default: the config's max_position_embeddings).

    Bad values raise ValueError naming the key (the checks of :func:`rope_lib.frequencies`); contradictions between
    fields and between the v4 and v5 readings become warnings naming the key. The analysis follows transformers 5.23's
    reading; where the v4 reading gives other parameters, a warning says which.
    """
    raw, source = read_config(config)
    if context is None:
        context = raw.get("max_position_embeddings")
        if context is None:
            raise ValueError("context: the config has no max_position_embeddings; pass context= (--context N)")
    context = _checks.int_at_least("context", context, 2)
    warnings: list[Finding] = []
    v5 = _v5_reading(raw, warnings)
    v4 = _v4_reading(raw, [])  # the theta warning is said once, by the v5 reading
    _compare_spellings(raw, warnings)
    if _plain(v4) != _plain(v5):
        for name in sorted(set(v4) | set(v5)):
            a, b = v4.get(name), v5.get(name)
            if a != b:
                keys = sorted(k for k in set(a or {}) | set(b or {}) if (a or {}).get(k) != (b or {}).get(k))
                warnings.append(
                    Finding(
                        f"{name}: {', '.join(keys) or 'layer types'}",
                        "spelling",
                        f"transformers 4.x reads {_brief(a)}, transformers 5.23 reads {_brief(b)}",
                    )
                )
    layers = {}
    for name, params in v5.items():
        try:
            layers[name] = _layer(raw, name, params, context, warnings)
        except ValueError as err:
            where = "" if name == "all layers" else f" (layer type {name!r})"
            raise ValueError(f"{err}{where}") from None
    window, types_ = raw.get("sliding_window"), raw.get("layer_types")
    types_ = types_ if isinstance(types_, list) else []
    if list(layers) == ["all layers"] and "sliding_attention" in types_ and isinstance(window, int) and window > 0:
        warnings.append(
            Finding(
                "layer_types",
                "note",
                f"{types_.count('sliding_attention')} of {len(types_)} layers are sliding_attention with "
                f"sliding_window = {window}: they attend at most {window} positions back (same RoPE parameters); "
                "the report is for the full-attention layers",
            )
        )
    for layer in layers.values():
        if not layer.bound_covers_context:
            warnings.append(
                Finding(
                    "rope_theta",
                    "note",
                    f"{layer.name}: B_m of the scaled frequencies turns negative at m = {layer.bound_first_negative}, "
                    f"inside the attended distance {layer.attended} (the base bound of notebook 07: a loss of "
                    "discrimination between similar and random keys at long range, not a cliff)",
                )
            )
    return Report(
        source=source,
        model_type=raw.get("model_type"),
        context=context,
        layers=layers,
        warnings=warnings,
        readings={"v4": _plain(v4), "v5": _plain(v5)},
    )
