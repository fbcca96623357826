"""A small decoder-only byte LM with RoPE, whose position scheme is chosen at *evaluation* time.

There are no learned absolute positions: position enters only through the rotation of q and k (half-split
layout, angles m * theta_i computed in float64 by :func:`rope_lib.angles`), so a model trained with plain RoPE
at length L can be evaluated at L' > L with any frequency-scaling method, with log n, or with ReRoPE, by passing
a :class:`PositionScheme` to ``forward``. The model's own ``rope_base`` and ``train_length`` fill
``rope_theta`` (and, for the types that read it, ``original_max_position_embeddings``) when a scheme omits them.

log n (kexue.fm/archives/8823; Su's tables, 9706):

* ``ModelConfig.train_log_n=True`` is Su's "-log n" rows: during training the query at 1-based position n is
  multiplied by log_L(n) = log n / log L, *not clipped* (so positions n < L get a factor < 1; n = 1 gets 0,
  harmless since the first query sees one key). Such a model always runs with this factor, also at test time,
  where n > L gives factors > 1. Su's "-log n" models train with the scale log_512(n)/sqrt(d) at L = 512
  (kexue.fm/archives/8823, 9706); we keep that one formula everywhere, so the model sees at test time exactly the
  function it was trained with.
* ``PositionScheme(log_n=True)`` on a model trained without it is "log n-dagger": the query is multiplied by
  max(1, log_L n) (:func:`rope_lib.log_n_scale`), which leaves every position n <= L untouched.

Dynamic methods (``rope_type`` "dynamic" / "dynamic_yarn") take their scale from the sequence length. A plain
forward over a whole sequence of length T uses ``frequencies(params, d, seq_len=T)`` for every position: one
scale s = T/L for the whole sequence, so it equals the static method tuned to T, and positions < L are scaled
too, which no decoder would do. ``PositionScheme(dynamic_blocks=m)`` evaluates what a decoder with a cache of
un-rotated keys computes (:mod:`rope_lib.decoding`): queries are processed in blocks (all queries n <= L form
one unscaled block; beyond L, m blocks per doubling of the length, edges ceil(L 2^(j/m))), each block rotating
itself *and all earlier keys* with the frequencies for seq_len = the block's end. Each query's length is thus
rounded up by less than a factor 2^(1/m) (9% for m = 8); a large m (blocks of one token) is exact
token-by-token dynamic decoding.

The methods after Su's series (notebook 14; the functions in :mod:`rope_lib.since_su`): frequency types are rope
types (``p_rope``, ``hope``, ``resonance``) a model is trained and tested with through its scheme; the model's own
options are ``ModelConfig.nope_layers`` (blocks without position, Llama 4's iRoPE), ``rotate`` (Su's VO-RoPE, or
NoPE) and ``ssmax`` (learned s ln n on the queries); the scheme's are ``attention="dca"`` (Dual Chunk Attention) and
``temperature_floor`` (Llama 4's attention temperature); ``forward(..., positions=ids)`` rotates by skipped ids
(PoSE's training windows, ``TrainConfig.pose_target``).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks
from ..rerope import ATTENTIONS, rerope_attention
from ..rope import angles
from ..rope_parameters import USES_ORIGINAL_LENGTH, frequencies
from ..scaling import log_n_scale
from ..since_su import dual_chunk_position_ids, llama4_attention_temperature

NORMS: tuple[str, ...] = ("rmsnorm", "layernorm")
MLPS: tuple[str, ...] = ("swiglu", "gelu")
DYNAMIC_TYPES: tuple[str, ...] = ("dynamic", "dynamic_yarn")
# ModelConfig.rotate: which vectors RoPE rotates. "qkvo" and "vo" rotate each value by its key's position and the
# attention output back by the query's (Su's VO-RoPE): the output then depends on relative positions only.
ROTATE: tuple[str, ...] = ("qk", "qkvo", "vo", "none")
# PositionScheme.attention: the library's two (rerope.ATTENTIONS) and Dual Chunk Attention, which the small LM runs.
SCHEME_ATTENTIONS: tuple[str, ...] = (*ATTENTIONS, "dca")
# Fields added after the first checkpoints, with their defaults (ModelConfig.to_dict leaves them out at these).
_LATER_FIELDS: dict[str, Any] = {"nope_layers": (), "rotate": "qk", "ssmax": False}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and choices of :class:`RoPELM` (one comment per field)."""

    vocab_size: int = 256  # byte-level tokens
    d_model: int = 128  # residual stream width
    n_layers: int = 4  # transformer blocks
    n_heads: int = 4  # attention heads
    head_dim: int = 32  # per-head width; all of it rotates, so this is the rotary dim d
    d_ff: int = 352  # MLP hidden width (each of the two input branches for SwiGLU)
    mlp: str = "swiglu"  # "swiglu" or "gelu"
    norm: str = "rmsnorm"  # "rmsnorm" or "layernorm"; pre-norm blocks plus a final norm
    tie_embeddings: bool = True  # output projection shares the input embedding matrix
    rope_base: float = 10000.0  # base b of theta_i = b^(-2i/d)
    train_length: int = 128  # training length L: the original length of every scaling method and of log n
    train_log_n: bool = False  # Su's "-log n": q times log_L(n), unclipped, in training and always at test
    init_std: float = 0.02  # std of the normal init (output projections of each block get std / sqrt(2 n_layers))
    # Architectures after Su's series (notebook 14); the defaults are the model above, and to_dict() leaves a field at
    # its default out, so every checkpoint key written before these fields existed is unchanged.
    nope_layers: tuple[int, ...] = ()  # blocks with no position encoding at all (Llama 4's iRoPE: every 4th)
    rotate: str = "qk"  # what RoPE rotates: "qk"; "qkvo" / "vo" (Su's VO-RoPE, kexue.fm/archives/10862); "none" (NoPE)
    ssmax: bool = False  # SSMax (arXiv 2501.19399): each head's queries times s_h log n, s_h learned (per layer)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "head_dim", "d_ff", "train_length"):
            _checks.positive_int(name, getattr(self, name))
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even (RoPE rotates pairs), got {self.head_dim}")
        if self.mlp not in MLPS:
            raise ValueError(f"mlp must be one of {MLPS}, got {self.mlp!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not self.rope_base > 1:
            raise ValueError(f"rope_base must be > 1, got {self.rope_base!r}")
        if self.train_length < 2:
            raise ValueError(f"train_length must be >= 2 (log_L needs L > 1), got {self.train_length}")
        layers = tuple(self.nope_layers) if isinstance(self.nope_layers, (list, tuple)) else None
        ints = layers is not None and all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in layers)
        if not ints or any(not 0 <= i < self.n_layers for i in layers):
            raise ValueError(
                f"nope_layers must be a sequence of block indices in [0, {self.n_layers}), got {self.nope_layers!r}"
            )
        if len(set(layers)) != len(layers):
            raise ValueError(f"nope_layers lists a block twice: {self.nope_layers!r}")
        object.__setattr__(self, "nope_layers", tuple(sorted(layers)))  # a config read back from JSON has a list
        if self.rotate not in ROTATE:
            raise ValueError(f"rotate must be one of {ROTATE}, got {self.rotate!r}")
        if not isinstance(self.ssmax, bool):
            raise ValueError(f"ssmax must be a bool, got {self.ssmax!r}")
        if self.ssmax and self.train_log_n:
            raise ValueError("ssmax and train_log_n both scale the queries by log n: choose one")

    def to_dict(self) -> dict:
        d = asdict(self)
        # the later fields are left out at their defaults: the cache key of every earlier model stays as it was
        for name in _LATER_FIELDS:
            if d[name] == _LATER_FIELDS[name]:
                del d[name]
            elif name == "nope_layers":
                d[name] = list(d[name])
        return d


@dataclass(frozen=True)
class PositionScheme:
    """How positions enter attention; chosen per forward call (training or evaluation).

    Attributes:
        rope_parameters: transformers-style dict read by :func:`rope_lib.frequencies`, e.g.
            ``{"rope_type": "yarn", "factor": 8.0}``; ``rope_theta`` and (for the types that read it)
            ``original_max_position_embeddings`` default to the model's ``rope_base`` and ``train_length``.
        log_n: multiply the query by max(1, log_L n) ("log n-dagger"; ignored by a model trained with log n, which
            always applies its own unclipped factor).
        attention: "sdpa" (RoPE on q and k, then causal scaled-dot-product attention) or "rerope"
            (:func:`rope_lib.rerope_attention`: ReRoPE, or Leaky ReRoPE when ``leaky_k`` is given).
        window: ReRoPE window w (required for "rerope", not allowed for "sdpa").
        leaky_k: Leaky ReRoPE leak k (relative positions beyond w grow by 1/k per token); None is plain ReRoPE.
            k < 1 is allowed (Su's inverse Leaky ReRoPE is trained with k < 1).
        dynamic_blocks: dynamic rope types only: None -> one scale for the whole sequence (seq_len = T);
            m -> decoder-style evaluation, m query blocks per doubling of the length (see the module docstring).
        chunk_size, local_window: Dual Chunk Attention (``attention="dca"``, Qwen2.5-1M; ChunkLlama): relative
            positions remapped chunk by chunk so none exceeds ``chunk_size`` (:func:`rope_lib.since_su.
            dual_chunk_relative_position`); required for "dca", not allowed otherwise (local_window default 0).
        temperature_floor: Llama 4's attention temperature with this ``floor_scale`` (queries times
            1 + 0.1 log(floor((n + 1) / floor_scale) + 1), :func:`rope_lib.since_su.llama4_attention_temperature`),
            on the NoPE layers of a model that has some (as Llama 4 does), else on every layer; None: off.
    """

    rope_parameters: Mapping[str, Any] = field(default_factory=lambda: {"rope_type": "default"})
    log_n: bool = False
    attention: str = "sdpa"
    window: int | None = None
    leaky_k: float | None = None
    dynamic_blocks: int | None = None
    chunk_size: int | None = None
    local_window: int | None = None
    temperature_floor: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rope_parameters, Mapping):
            raise ValueError(f"rope_parameters must be a dict, got {type(self.rope_parameters).__name__}")
        # A private copy: later changes to the caller's dict must not change a scheme used as a cache key.
        object.__setattr__(self, "rope_parameters", dict(self.rope_parameters))
        if "rope_type" not in self.rope_parameters and "type" not in self.rope_parameters:
            raise ValueError(f"rope_parameters needs a 'rope_type' key, got {dict(self.rope_parameters)!r}")
        if self.attention not in SCHEME_ATTENTIONS:
            raise ValueError(f"attention must be one of {SCHEME_ATTENTIONS}, got {self.attention!r}")
        if self.attention == "rerope":
            _checks.positive_int("window", self.window)
            _checks.leaky_k(self.leaky_k)  # the same check as rerope_attention's
            if self.dynamic_blocks is not None or self.rope_type in DYNAMIC_TYPES:
                raise ValueError("attention='rerope' takes a static rope_type and no dynamic_blocks")
        elif self.window is not None or self.leaky_k is not None:
            raise ValueError("window and leaky_k are only allowed with attention='rerope'")
        if self.attention == "dca":
            _checks.positive_int("chunk_size", self.chunk_size)
            lw = _checks.nonnegative_int("local_window", 0 if self.local_window is None else self.local_window)
            if lw >= self.chunk_size:
                raise ValueError(f"local_window must be < chunk_size ({self.chunk_size}), got {lw}")
            if self.dynamic_blocks is not None or self.rope_type in DYNAMIC_TYPES:
                raise ValueError("attention='dca' takes a static rope_type and no dynamic_blocks")
        elif self.chunk_size is not None or self.local_window is not None:
            raise ValueError("chunk_size and local_window are only allowed with attention='dca'")
        if self.temperature_floor is not None:
            _checks.positive_int("temperature_floor", self.temperature_floor)
        if self.dynamic_blocks is not None:
            _checks.positive_int("dynamic_blocks", self.dynamic_blocks)
            if self.rope_type not in DYNAMIC_TYPES:
                raise ValueError(f"dynamic_blocks needs rope_type in {DYNAMIC_TYPES}, got {self.rope_type!r}")

    @property
    def rope_type(self) -> str:
        return self.rope_parameters.get("rope_type", self.rope_parameters.get("type"))

    def to_dict(self) -> dict:
        d = {
            "rope_parameters": dict(self.rope_parameters),
            "log_n": self.log_n,
            "attention": self.attention,
            "window": self.window,
            "leaky_k": self.leaky_k,
            "dynamic_blocks": self.dynamic_blocks,
        }
        # the later options only when set: a scheme without them keys caches exactly as before they existed
        later = ("chunk_size", "local_window", "temperature_floor")
        return d | {k: getattr(self, k) for k in later if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PositionScheme:
        return cls(**d)

    def key(self) -> str:
        """Canonical JSON: equal schemes give equal keys (used for caches and hashes)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def __hash__(self) -> int:
        return hash(self.key())


ROPE = PositionScheme()  # plain RoPE, the training scheme of every model in notebook 04


def dynamic_block_edges(L: int, T: int, per_doubling: int) -> list[int]:
    """Query-block edges [0, L, ceil(L 2^(1/m)), ceil(L 2^(2/m)), ..., T] (strictly increasing, m = per_doubling)."""
    edges, j = [0, min(L, T)], 1
    while edges[-1] < T:
        e = min(T, max(edges[-1] + 1, math.ceil(L * 2 ** (j / per_doubling) - 1e-9)))
        edges.append(e)
        j += 1
    return edges


def rope_tables(
    inv_freq: torch.Tensor, attention_factor: float, length: int, device=None, *, positions: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed tables ``(cos2, sin2)``, each (length, d) float32, for :func:`rotate_half_split`.

    cos2 = [cos, cos] * f and sin2 = [-sin, sin] * f with angles m * theta_i in float64 and f the attention
    factor; building them once per (length, scheme) saves recomputing float64 angles in every layer. The positions
    m are 0..length-1, or ``positions`` (a 1-D tensor of ids: PoSE's skipped ones, DCA's remapped ones).
    """
    m = torch.arange(length) if positions is None else torch.as_tensor(positions)
    theta = angles(m, torch.as_tensor(inv_freq, dtype=torch.float64))  # float64 (length, d/2)
    cos, sin = torch.cos(theta) * attention_factor, torch.sin(theta) * attention_factor
    cos2, sin2 = torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)
    return cos2.to(device=device, dtype=torch.float32), sin2.to(device=device, dtype=torch.float32)


def rotate_half_split(x: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor) -> torch.Tensor:
    """Half-split RoPE of x (..., seq, d) with tables from :func:`rope_tables`; same dtype out.

    Equals ``rope_lib.apply_rope(x, positions, inv_freq, attention_factor=f)`` (a test checks it):
    (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), written as x * cos2 + [x2, x1] * sin2.
    """
    half = x.shape[-1] // 2
    xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
    swapped = torch.cat((xf[..., half:], xf[..., :half]), dim=-1)
    return (xf * cos2.to(xf.dtype) + swapped * sin2.to(xf.dtype)).to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.kind = cfg.mlp
        n_in = 2 * cfg.d_ff if cfg.mlp == "swiglu" else cfg.d_ff
        self.up = nn.Linear(cfg.d_model, n_in, bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.kind == "swiglu":
            gate, val = h.chunk(2, dim=-1)
            h = F.silu(gate) * val
        else:
            h = F.gelu(h)
        return self.down(h)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int = 0) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.n_heads * cfg.head_dim, bias=False)
        self.out = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)
        # what this layer rotates: nothing in a NoPE layer (iRoPE) or a NoPE model, else the model's choice
        self.rotate = "none" if layer in cfg.nope_layers else cfg.rotate
        # SSMax's s per head, starting at 1 / ln L so that s ln n = 1 at n = L (ours: the paper leaves the start open)
        self.ssmax_s = nn.Parameter(torch.full((cfg.n_heads,), 1 / math.log(cfg.train_length))) if cfg.ssmax else None

    def forward(self, x: torch.Tensor, pos: _PositionState) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, H, T, hd)
        if self.ssmax_s is not None:  # (H, 1, 1) x (T, 1): query n scaled by s_h ln n, n = keys it sees
            q = q * (self.ssmax_s[:, None, None] * pos.log_keys_seen).to(q.dtype)
        y = pos.attend(q, k, v, self.rotate)
        return self.out(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int = 0) -> None:
        super().__init__()
        norm = RMSNorm if cfg.norm == "rmsnorm" else nn.LayerNorm
        self.norm1, self.norm2 = norm(cfg.d_model), norm(cfg.d_model)
        self.attn, self.mlp = Attention(cfg, layer), MLP(cfg)

    def forward(self, x: torch.Tensor, pos: _PositionState) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))


class _PositionState:
    """Everything position-dependent for one forward of length T under one scheme, shared by all layers."""

    def __init__(
        self, model: RoPELM, scheme: PositionScheme, T: int, device: torch.device, positions: torch.Tensor | None
    ) -> None:
        cfg = model.cfg
        self.model, self.scheme, self.T, self.device = model, scheme, T, device
        self.params = {"rope_theta": cfg.rope_base}
        if scheme.rope_type in USES_ORIGINAL_LENGTH:
            self.params["original_max_position_embeddings"] = cfg.train_length
        self.params.update(scheme.rope_parameters)
        self.sm_scale = 1.0 / math.sqrt(cfg.head_dim)
        index = torch.arange(T)  # where a token sits in the sequence; ``positions`` (PoSE) only moves its rotation
        if positions is not None and (scheme.attention != "sdpa" or scheme.dynamic_blocks is not None):
            raise ValueError("positions (PoSE's skipped ids) work with attention='sdpa' and a static rope_type only")
        if cfg.rotate in ("qkvo", "vo") and (scheme.attention != "sdpa" or scheme.dynamic_blocks is not None):
            raise ValueError(f"a model with rotate={cfg.rotate!r} runs attention='sdpa' with a static rope_type only")
        if cfg.train_log_n:
            qs = torch.log(index.double() + 1) / math.log(cfg.train_length)  # unclipped log_L(n), n = index + 1
        elif scheme.log_n:
            qs = log_n_scale(index, cfg.train_length)  # max(1, log_L n)
        else:
            qs = None
        q_scale = None if qs is None else qs.to(device=device, dtype=torch.float32)[:, None]  # (T, 1)
        self.q_scale = q_scale
        # SSMax's ln n, n = the number of keys query n sees (index + 1), and Llama 4's temperature, both (T, 1)
        self.log_keys_seen = torch.log(index.float() + 1).to(device)[:, None] if cfg.ssmax else None
        self.temperature = None
        if scheme.temperature_floor is not None:
            temp = llama4_attention_temperature(index, floor_scale=scheme.temperature_floor)
            self.temperature = temp.to(device=device, dtype=torch.float32)[:, None]
        # Llama 4 tempers the NoPE layers only; a model without NoPE layers gets it on every layer (ours)
        self.tempered = ("none",) if cfg.nope_layers else tuple(ROTATE)
        # Everything below is built once per forward and shared by all layers, so attend() is tensor ops only.
        if scheme.attention == "rerope":
            _, _, inv, af = model._rope_tables(self.params, T, T, device)
            self.inv, self.af = inv.to(device), af
            self.scale = self.sm_scale if q_scale is None else q_scale * self.sm_scale
            self.path = "rerope"
        elif scheme.attention == "dca":
            _, _, inv, af = model._rope_tables(self.params, T, T, device)
            self.af = af
            self.dca = _DualChunk(inv, T, scheme.chunk_size, scheme.local_window or 0, device)
            self.path = "dca"
        elif scheme.dynamic_blocks is not None and T > cfg.train_length:
            # Queries [a, b) see keys [0, b), all rotated with the frequencies for seq_len = b (raw-key cache).
            self.blocks = []
            edges = dynamic_block_edges(cfg.train_length, T, scheme.dynamic_blocks)
            for a, b in zip(edges[:-1], edges[1:]):
                cos, sin, _, _ = model._rope_tables(self.params, b, b, device)
                cq, sq = _fold(cos[a:b], sin[a:b], None if q_scale is None else q_scale[a:b])
                mask = torch.ones(b - a, b, dtype=torch.bool, device=device).tril(diagonal=a)
                self.blocks.append((a, b, cq, sq, cos, sin, mask))
            self.path = "dynamic_blocks"
        else:
            if positions is None:
                self.cos, self.sin, _, af = model._rope_tables(self.params, T, T, device)
            else:  # PoSE: the ids skip, so the tables are built for them (not cached: they change every step)
                inv, af = frequencies(dict(self.params), cfg.head_dim, seq_len=T)
                self.cos, self.sin = rope_tables(torch.as_tensor(inv, dtype=torch.float64), float(af), 0, device,
                                                 positions=positions)  # fmt: skip
            self.cos_q, self.sin_q = _fold(self.cos, self.sin, q_scale)
            if cfg.rotate in ("qkvo", "vo"):  # values and outputs turn by the angles alone, not the attention factor
                self.cos_v, self.sin_v = self.cos / af, self.sin / af
            self.path = "sdpa"

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rotate: str = "qk") -> torch.Tensor:
        """Causal attention of (B, H, T, hd) un-rotated q, k and v under the scheme, rotating what ``rotate`` says
        (a layer's :attr:`Attention.rotate`)."""
        if self.temperature is not None and rotate in self.tempered:
            q = q * self.temperature
        if rotate in ("none", "vo"):  # no position in the scores: log n still scales the queries
            qs = q if self.q_scale is None else q * self.q_scale
            if rotate == "none":
                return F.scaled_dot_product_attention(qs, k, v, is_causal=True, scale=self.sm_scale)
            v = rotate_half_split(v, self.cos_v, self.sin_v)  # Su's VO-RoPE: R_j v_j, then R_i^T o_i
            o = F.scaled_dot_product_attention(qs, k, v, is_causal=True, scale=self.sm_scale)
            return rotate_half_split(o, self.cos_v, -self.sin_v)
        if self.path == "rerope":
            if self.af != 1.0:  # the attention factor multiplies cos and sin, i.e. q and k (rotation is linear)
                q, k = q * self.af, k * self.af
            s = self.scheme
            return rerope_attention(
                q, k, v, self.inv, window=s.window, leaky_k=s.leaky_k, causal=True, scale=self.scale
            )
        if self.path == "dca":
            if self.af != 1.0:
                q, k = q * self.af, k * self.af
            return self.dca.attend(q if self.q_scale is None else q * self.q_scale, k, v, self.sm_scale)
        if self.path == "dynamic_blocks":
            outs = []
            for a, b, cq, sq, cos, sin, mask in self.blocks:
                qb = rotate_half_split(q[..., a:b, :], cq, sq)
                kb = rotate_half_split(k[..., :b, :], cos, sin)
                outs.append(F.scaled_dot_product_attention(qb, kb, v[..., :b, :], attn_mask=mask, scale=self.sm_scale))
            return torch.cat(outs, dim=-2)
        q = rotate_half_split(q, self.cos_q, self.sin_q)
        k = rotate_half_split(k, self.cos, self.sin)
        if rotate == "qk":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.sm_scale)
        v = rotate_half_split(v, self.cos_v, self.sin_v)  # "qkvo"
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.sm_scale)
        return rotate_half_split(o, self.cos_v, -self.sin_v)


class _DualChunk:
    """Dual Chunk Attention's scores for one length: each query rotated at its three remapped ids (same chunk,
    previous chunk, earlier chunks), the keys at theirs, and each (query, key) pair scored with the id its chunks
    call for (:func:`rope_lib.since_su.dual_chunk_position_ids`); a test checks every score's relative position
    against :func:`rope_lib.since_su.dual_chunk_relative_position`."""

    def __init__(self, inv: torch.Tensor, T: int, chunk_size: int, local_window: int, device: torch.device) -> None:
        ids = dual_chunk_position_ids(T, chunk_size, local_window)
        self.tables = {
            name: rope_tables(inv, 1.0, 0, device, positions=ids[name])
            for name in ("intra", "successive", "inter", "key")
        }
        chunk = ids["chunk"].to(device)
        apart = chunk[:, None] - chunk[None, :]  # (T, T): how many chunks back the key is
        self.apart, self.causal = apart, torch.ones(T, T, dtype=torch.bool, device=device).tril()

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        kr = rotate_half_split(k, *self.tables["key"]).transpose(-1, -2)
        scores = None
        for name, which in (("intra", self.apart == 0), ("successive", self.apart == 1), ("inter", self.apart >= 2)):
            part = rotate_half_split(q, *self.tables[name]) @ kr
            scores = part.masked_fill(~which, 0.0) if scores is None else torch.where(which, part, scores)
        scores = (scores * scale).masked_fill(~self.causal, float("-inf"))
        return torch.softmax(scores.float(), dim=-1).to(v.dtype) @ v


def _fold(cos: torch.Tensor, sin: torch.Tensor, q_scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    # A per-position query factor (log n) folded into q's rotation tables: R_m q * f = q * (f cos) + swap(q) * (f sin).
    return (cos, sin) if q_scale is None else (cos * q_scale, sin * q_scale)


class RoPELM(nn.Module):
    """Decoder-only LM: byte embedding -> pre-norm blocks (RoPE attention + MLP) -> norm -> logits."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model) if cfg.norm == "rmsnorm" else nn.LayerNorm(cfg.d_model)
        self.head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._tables: dict[tuple, tuple] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if p.dim() == 2:
                # Residual-branch outputs scaled down so the residual stream's variance does not grow with depth.
                scale = 1 / math.sqrt(2 * self.cfg.n_layers) if name.endswith(("out.weight", "down.weight")) else 1.0
                nn.init.normal_(p, mean=0.0, std=std * scale)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _rope_tables(self, params: dict, length: int, seq_len: int, device: torch.device):
        """(cos2, sin2) tables (length, d) with the attention factor folded in, inv_freq float64, factor; cached."""
        key = (json.dumps(params, sort_keys=True), length, seq_len, str(device))
        hit = self._tables.get(key)
        if hit is None:
            inv, af = frequencies(dict(params), self.cfg.head_dim, seq_len=seq_len)
            inv = torch.as_tensor(inv, dtype=torch.float64)
            cos2, sin2 = rope_tables(inv, float(af), length, device)
            if len(self._tables) > 256:  # bounded: many lengths x schemes in one evaluation sweep
                self._tables.clear()
            hit = self._tables[key] = (cos2, sin2, inv, float(af))
        return hit

    def forward(
        self, idx: torch.Tensor, scheme: PositionScheme | None = None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits for every position.

        Args:
            idx: (batch, seq) int64 token ids (bytes).
            scheme: position scheme (default: plain RoPE, :data:`ROPE`).
            positions: (seq,) increasing integer position ids that RoPE rotates by instead of 0..seq-1 (PoSE's
                skipped ids, :func:`rope_lib.since_su.pose_position_ids`), the same for every row; None: 0..seq-1.

        Returns:
            (batch, seq, vocab) logits in float32.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (batch, seq), got {tuple(idx.shape)}")
        scheme = ROPE if scheme is None else scheme
        if not isinstance(scheme, PositionScheme):
            raise ValueError(f"scheme must be a PositionScheme, got {type(scheme).__name__}")
        if positions is not None:
            positions = torch.as_tensor(positions)
            if positions.shape != (idx.shape[1],) or positions.dtype.is_floating_point or positions.dtype == torch.bool:
                raise ValueError(
                    f"positions must be ({idx.shape[1]},) integer ids, got {positions.dtype} {tuple(positions.shape)}"
                )
            if positions.numel() > 1 and not bool((positions[1:] > positions[:-1]).all()):
                raise ValueError("positions must be strictly increasing")
        pos = _PositionState(self, scheme, idx.shape[1], idx.device, positions)
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, pos)
        x = self.norm(x)
        w = self.embed.weight if self.head is None else self.head.weight
        return F.linear(x, w).float()
