"""Multi-head latent attention (MLA) with decoupled RoPE: KV-cache accounting, the training form and the absorbed
decode form.

Sources: DeepSeek-AI, *DeepSeek-V2*, arXiv:2405.04434 (§2.1, Table 1); Su Jianlin, "缓存与效果的极限拉扯：从MHA、MQA、
GQA到MLA" (<https://kexue.fm/archives/10091>).

Row-vector convention (y = x @ W), one layer, heads h = 1..n_h:

* latent  c_i = norm(x_i W_dkv)                       (d_c = kv_lora_rank; this is what MLA caches)
* keys    k_i^h = [c_i W_uk^h, R_i (x_i W_kr)]        (d_nope + d_r; the rotated part is one key shared by all heads)
* values  v_i^h = c_i W_uv^h                          (d_v)
* queries q_t^h = [q_t W_qn^h, R_t (q_t W_qr^h)]       q_t = x_t, or norm(x_t W_dq) with a query latent (q_lora_rank)
* output  o_t = sum_h softmax_i(scale * q_t^h . k_i^h) v_i^h W_o^h

Training form: expand k and v per head from c, then ordinary attention. Absorbed form: the no-rope score is
(q_t W_qn^h) (c_i W_uk^h)^T = (q_t W_qn^h W_uk^h^T) c_i^T, so W_uk moves to the query side and the scores are taken
against the cached c_i directly; likewise sum_i p_i c_i W_uv^h = (sum_i p_i c_i) W_uv^h, so W_uv moves to the output
side. The rope part cannot be absorbed (R_t R_i^T = R_{t-i} sits between the two matrices), which is why it is a
separate, small, shared key: the cache per token is d_c + d_r elements instead of 2 n_h d_h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from . import _checks
from .rope import LAYOUTS, Layout, apply_rope
from .scaling import yarn_mscale

KINDS: tuple[str, ...] = ("mha", "mqa", "gqa", "mla")
FORMS: tuple[str, ...] = ("training", "training_latent_cache", "absorbed")


# --------------------------------------------------------------------------------------------------------------
# KV-cache accounting
# --------------------------------------------------------------------------------------------------------------


def kv_cache_elements(
    kind: str,
    *,
    n_heads: int | None = None,
    head_dim: int | None = None,
    n_kv_heads: int | None = None,
    kv_lora_rank: int | None = None,
    rope_head_dim: int | None = None,
) -> int:
    """Elements cached per token per layer (DeepSeek-V2 Table 1).

    * ``"mha"``: 2 n_heads head_dim (a key and a value per head); needs n_heads, head_dim.
    * ``"mqa"``: 2 head_dim (one key and value shared by all heads); needs head_dim (n_heads optional).
    * ``"gqa"``: 2 n_kv_heads head_dim; needs n_heads, head_dim, n_kv_heads (n_heads a multiple of n_kv_heads).
    * ``"mla"``: kv_lora_rank + rope_head_dim (the latent c_i and the shared rotated key); needs both (n_heads
      optional). head_dim does not enter the MLA cache, so passing it is refused rather than silently ignored.

    An argument the kind does not use (other than n_heads) raises ValueError, so that a mistyped kind cannot return
    a number for a different architecture.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    given = {
        "n_heads": n_heads,
        "head_dim": head_dim,
        "n_kv_heads": n_kv_heads,
        "kv_lora_rank": kv_lora_rank,
        "rope_head_dim": rope_head_dim,
    }
    required = {
        "mha": ("n_heads", "head_dim"),
        "mqa": ("head_dim",),
        "gqa": ("n_heads", "head_dim", "n_kv_heads"),
        "mla": ("kv_lora_rank", "rope_head_dim"),
    }[kind]
    for name, value in given.items():
        if value is None:
            if name in required:
                raise ValueError(f"{name} is required for kind={kind!r} (needs {', '.join(required)})")
            continue
        if name not in required and name != "n_heads":
            raise ValueError(f"{name} does not apply to kind={kind!r}, which uses {', '.join(required)}; got {value!r}")
        _checks.positive_int(name, value)
    if kind == "mha":
        return 2 * n_heads * head_dim
    if kind == "mqa":
        return 2 * head_dim
    if kind == "gqa":
        if n_heads % n_kv_heads:
            raise ValueError(f"n_kv_heads must divide n_heads = {n_heads}, got {n_kv_heads!r}")
        return 2 * n_kv_heads * head_dim
    return kv_lora_rank + rope_head_dim


def gqa_equivalent_groups(elements: int, head_dim: int) -> float:
    """How many GQA key-value groups of size ``head_dim`` cache the same number of elements: elements / (2 head_dim)."""
    return _checks.positive_int("elements", elements) / (2 * _checks.positive_int("head_dim", head_dim))


def kv_cache_bytes(
    elements_per_token_layer: int, *, n_layers: int, context_length: int, bytes_per_element: int = 2, batch: int = 1
) -> int:
    """Bytes of KV cache for ``batch`` sequences of ``context_length`` tokens over ``n_layers`` layers (bf16: 2)."""
    return (
        _checks.positive_int("elements_per_token_layer", elements_per_token_layer)
        * _checks.positive_int("n_layers", n_layers)
        * _checks.nonnegative_int("context_length", context_length)
        * _checks.positive_int("bytes_per_element", bytes_per_element)
        * _checks.positive_int("batch", batch)
    )


# --------------------------------------------------------------------------------------------------------------
# Configuration and weights
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLAConfig:
    """Sizes of one MLA layer (DeepSeek-V2 §2.1 names in brackets)."""

    hidden_size: int  # model width D (d)
    n_heads: int  # attention heads (n_h)
    kv_lora_rank: int  # latent size cached per token (d_c)
    qk_nope_head_dim: int  # per-head key/query part without position (d_h)
    qk_rope_head_dim: int  # per-head rotated query part = the shared rotated key (d_h^R)
    v_head_dim: int  # per-head value size (d_h)
    q_lora_rank: int | None = None  # query latent size (d_c'); None: queries straight from x

    def __post_init__(self) -> None:
        for name in ("hidden_size", "n_heads", "kv_lora_rank", "qk_nope_head_dim", "v_head_dim"):
            _checks.positive_int(name, getattr(self, name))
        if _checks.positive_int("qk_rope_head_dim", self.qk_rope_head_dim) % 2:
            raise ValueError(f"qk_rope_head_dim must be a positive even integer, got {self.qk_rope_head_dim!r}")
        if self.q_lora_rank is not None:
            _checks.positive_int("q_lora_rank", self.q_lora_rank)

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def cache_elements(self, form: str = "absorbed") -> int:
        """Elements cached per token for ``form``: per-head K and V ("training") or c_i and k_r (the other two)."""
        _check_form(form)
        if form == "training":
            return self.n_heads * (self.qk_head_dim + self.v_head_dim)
        return kv_cache_elements("mla", kv_lora_rank=self.kv_lora_rank, rope_head_dim=self.qk_rope_head_dim)


def _check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")


@dataclass
class MLAWeights:
    """Weights of one MLA layer, row-vector convention (y = x @ W), heads on their own axis.

    Shapes (D = hidden_size, h = n_heads, r = q_lora_rank or D):
        w_dq (D, q_lora_rank) or None; q_norm (q_lora_rank,) or None (RMSNorm weight on the query latent)
        w_q (r, h, qk_nope_head_dim + qk_rope_head_dim): per head [no-rope part | rope part]
        w_dkv (D, kv_lora_rank); kv_norm (kv_lora_rank,) or None (RMSNorm weight on c_i)
        w_kr (D, qk_rope_head_dim): the shared key before rotation
        w_uk (h, kv_lora_rank, qk_nope_head_dim); w_uv (h, kv_lora_rank, v_head_dim)
        w_o (h, v_head_dim, D)
    """

    w_q: torch.Tensor
    w_dkv: torch.Tensor
    w_kr: torch.Tensor
    w_uk: torch.Tensor
    w_uv: torch.Tensor
    w_o: torch.Tensor
    w_dq: torch.Tensor | None = None
    q_norm: torch.Tensor | None = None
    kv_norm: torch.Tensor | None = None
    norm_eps: float = 1e-6

    @property
    def config(self) -> MLAConfig:
        """The sizes, read off the shapes (and checked for consistency)."""
        h, d_c, d_nope = self.w_uk.shape
        cfg = MLAConfig(
            hidden_size=self.w_dkv.shape[0],
            n_heads=h,
            kv_lora_rank=d_c,
            qk_nope_head_dim=d_nope,
            qk_rope_head_dim=self.w_kr.shape[1],
            v_head_dim=self.w_uv.shape[2],
            q_lora_rank=None if self.w_dq is None else self.w_dq.shape[1],
        )
        r = cfg.hidden_size if cfg.q_lora_rank is None else cfg.q_lora_rank
        D = cfg.hidden_size
        expected = {
            "w_q": (r, h, cfg.qk_head_dim),
            "w_dkv": (D, d_c),
            "w_kr": (D, cfg.qk_rope_head_dim),
            "w_uk": (h, d_c, d_nope),
            "w_uv": (h, d_c, cfg.v_head_dim),
            "w_o": (h, cfg.v_head_dim, D),
        }
        if self.w_dq is not None:
            expected["w_dq"] = (D, r)
        if self.q_norm is not None:
            if self.w_dq is None:
                raise ValueError("q_norm needs w_dq: the query norm acts on the query latent")
            expected["q_norm"] = (r,)
        if self.kv_norm is not None:
            expected["kv_norm"] = (d_c,)
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"{name} must have shape {shape} (from w_uk, w_dkv, w_kr, w_uv, w_dq), got {got}")
        return cfg

    def to(self, dtype: torch.dtype) -> MLAWeights:
        """A copy with every tensor cast to ``dtype``."""
        cast = {k: (v.to(dtype) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return MLAWeights(**cast)

    @classmethod
    def random(cls, config: MLAConfig, *, seed: int = 0, dtype: torch.dtype = torch.float64, norms: bool = True):
        """Random weights with 1/sqrt(fan-in) scale (so activations stay O(1)); norms: RMSNorm weights near 1."""
        g = torch.Generator().manual_seed(_checks.nonnegative_int("seed", seed))
        D, h, d_c = config.hidden_size, config.n_heads, config.kv_lora_rank
        r = D if config.q_lora_rank is None else config.q_lora_rank

        def w(*shape: int, fan_in: int) -> torch.Tensor:
            return (torch.randn(*shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in)).to(dtype)

        def norm_weight(n: int) -> torch.Tensor | None:
            return (1 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)).to(dtype) if norms else None

        q_lora = config.q_lora_rank is not None
        return cls(
            w_q=w(r, h, config.qk_head_dim, fan_in=r),
            w_dkv=w(D, d_c, fan_in=D),
            w_kr=w(D, config.qk_rope_head_dim, fan_in=D),
            w_uk=w(h, d_c, config.qk_nope_head_dim, fan_in=d_c),
            w_uv=w(h, d_c, config.v_head_dim, fan_in=d_c),
            w_o=w(h, config.v_head_dim, D, fan_in=h * config.v_head_dim),
            w_dq=w(D, r, fan_in=D) if q_lora else None,
            q_norm=norm_weight(r) if q_lora else None,
            kv_norm=norm_weight(d_c),
        )


def weights_from_deepseek_v3(module: Any) -> MLAWeights:
    """Our weights from a transformers ``DeepseekV3Attention`` (or DeepSeek-V2-style) module, without biases.

    transformers stores ``nn.Linear`` weights as (out, in); ``kv_a_proj_with_mqa`` outputs [c | k_r] and
    ``kv_b_proj`` outputs per head [k_nope | v]. The layout of the rope features (interleaved or half-split) is kept
    as stored: pass the matching ``layout`` to the attention functions.
    """
    for name in ("kv_a_proj_with_mqa", "kv_b_proj", "o_proj"):
        if getattr(getattr(module, name, None), "bias", None) is not None:
            raise ValueError(f"module.{name} has a bias; MLAWeights has none (attention_bias must be False)")
    h, d_c = module.num_heads, module.kv_lora_rank
    d_nope, d_r, d_v = module.qk_nope_head_dim, module.qk_rope_head_dim, module.v_head_dim
    with torch.no_grad():
        if module.q_lora_rank is None:
            w_q, w_dq, q_norm = module.q_proj.weight.T, None, None
        else:
            w_q, w_dq, q_norm = module.q_b_proj.weight.T, module.q_a_proj.weight.T, module.q_a_layernorm.weight
        w_a = module.kv_a_proj_with_mqa.weight.T  # (D, d_c + d_r)
        w_b = module.kv_b_proj.weight.view(h, d_nope + d_v, d_c).transpose(1, 2)  # (h, d_c, d_nope + d_v)
        eps = module.kv_a_layernorm.variance_epsilon
        weights = MLAWeights(
            w_q=w_q.reshape(w_q.shape[0], h, d_nope + d_r).clone(),
            w_dkv=w_a[:, :d_c].clone(),
            w_kr=w_a[:, d_c:].clone(),
            w_uk=w_b[..., :d_nope].clone(),
            w_uv=w_b[..., d_nope:].clone(),
            w_o=module.o_proj.weight.T.reshape(h, d_v, -1).clone(),
            w_dq=None if w_dq is None else w_dq.clone(),
            q_norm=None if q_norm is None else q_norm.detach().clone(),
            kv_norm=module.kv_a_layernorm.weight.detach().clone(),
            norm_eps=float(eps),
        )
    weights.config  # noqa: B018 - shape check
    return weights


def deepseek_softmax_scale(qk_head_dim: int, rope_parameters: dict | None = None) -> float:
    """DeepSeek's logit scale: qk_head_dim^-1/2, times mscale(s, mscale_all_dim)^2 under YaRN with mscale_all_dim.

    (The other YaRN factor, mscale / mscale_all_dim, multiplies cos and sin, i.e. the rope part only; that is
    ``rope_lib.frequencies``'s attention factor.)
    """
    scale = _checks.positive_int("qk_head_dim", qk_head_dim) ** -0.5
    params = rope_parameters or {}
    if params.get("rope_type", "default") != "default" and params.get("mscale_all_dim"):
        m = yarn_mscale(
            _checks.finite_number("factor", params.get("factor"), at_least=1.0),
            _checks.finite_number("mscale_all_dim", params["mscale_all_dim"], at_least=0.0),
        )
        scale *= m * m
    return scale


# --------------------------------------------------------------------------------------------------------------
# The two forms
# --------------------------------------------------------------------------------------------------------------


def _rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    if weight is None:
        return x
    xf = x.to(_checks.compute_dtype(x.dtype))
    return (weight.to(xf.dtype) * xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _check_inputs(x: torch.Tensor, weights: MLAWeights, positions: Any, layout: str) -> tuple[MLAConfig, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a floating-point tensor of shape (batch, seq, hidden_size), got {got}")
    if not isinstance(weights, MLAWeights):
        raise ValueError(f"weights must be an MLAWeights, got {type(weights).__name__}")
    cfg = weights.config
    if x.shape[-1] != cfg.hidden_size:
        raise ValueError(f"x.shape[-1] must be hidden_size = {cfg.hidden_size}, got {x.shape[-1]}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    positions = torch.as_tensor(positions)
    if positions.shape != (x.shape[1],):
        raise ValueError(f"positions must have shape (seq,) = ({x.shape[1]},), got {tuple(positions.shape)}")
    return cfg, positions


def _queries(x, weights, cfg, positions, inv_freq, layout, attention_factor):
    """q_nope (b, h, s, d_nope) and the rotated q_rope (b, h, s, d_r)."""
    q_in = x if weights.w_dq is None else _rms_norm(x @ weights.w_dq, weights.q_norm, weights.norm_eps)
    q = torch.einsum("bsr,rhe->bhse", q_in, weights.w_q)
    q_nope, q_rope = q.split([cfg.qk_nope_head_dim, cfg.qk_rope_head_dim], dim=-1)
    return q_nope, apply_rope(q_rope, positions, inv_freq, layout=layout, attention_factor=attention_factor)


def mla_latents(
    x: torch.Tensor,
    weights: MLAWeights,
    positions: torch.Tensor,
    inv_freq: torch.Tensor,
    *,
    layout: Layout = "interleaved",
    attention_factor: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What MLA caches for tokens x at ``positions``: c (batch, seq, d_c), rotated shared key (batch, seq, d_r)."""
    _check_inputs(x, weights, positions, layout)
    c = _rms_norm(x @ weights.w_dkv, weights.kv_norm, weights.norm_eps)
    k_r = apply_rope(x @ weights.w_kr, positions, inv_freq, layout=layout, attention_factor=attention_factor)
    return c, k_r


def _attend(scores: torch.Tensor, n_new: int, causal: bool) -> torch.Tensor:
    """Softmax over keys in float32 or wider; with ``causal`` the s queries are the last s of the n keys."""
    n = scores.shape[-1]
    if causal:
        q_index = torch.arange(n - n_new, n, device=scores.device)[:, None]
        scores = scores.masked_fill(torch.arange(n, device=scores.device)[None, :] > q_index, float("-inf"))
    return torch.softmax(scores.to(_checks.compute_dtype(scores.dtype)), dim=-1)


def mla_attention(
    x: torch.Tensor,
    weights: MLAWeights,
    positions: torch.Tensor,
    inv_freq: torch.Tensor,
    *,
    layout: Layout = "interleaved",
    attention_factor: float = 1.0,
    scale: float | None = None,
    causal: bool = True,
) -> torch.Tensor:
    """MLA in its training form: per-head keys [c_i W_uk^h, k_r(i)] and values c_i W_uv^h, then plain attention.

    Args:
        x: (batch, seq, hidden_size), any floating dtype; matmuls run in that dtype, softmax in >= float32.
        positions: (seq,) positions of the tokens (integers or floats); angles in float64 (``apply_rope``).
        inv_freq: (qk_rope_head_dim/2,) frequencies, e.g. from ``rope_lib.frequencies``.
        layout: pairing of the rope features ("interleaved" is DeepSeek's checkpoint layout).
        attention_factor: multiplies cos and sin of the rope part (YaRN's mscale ratio).
        scale: logit scale; default qk_head_dim^-1/2 (``deepseek_softmax_scale`` adds YaRN's mscale_all_dim).
    Returns:
        (batch, seq, hidden_size) in x's dtype.
    """
    cfg, positions = _check_inputs(x, weights, positions, layout)
    scale = cfg.qk_head_dim**-0.5 if scale is None else _checks.finite_number("scale", scale, above=0.0)
    q_nope, q_rope = _queries(x, weights, cfg, positions, inv_freq, layout, attention_factor)
    c, k_r = mla_latents(x, weights, positions, inv_freq, layout=layout, attention_factor=attention_factor)
    k_nope = torch.einsum("bnc,hce->bhne", c, weights.w_uk)
    v = torch.einsum("bnc,hcv->bhnv", c, weights.w_uv)
    k = torch.cat((k_nope, k_r[:, None].expand(-1, cfg.n_heads, -1, -1)), dim=-1)  # the rope key is shared
    q = torch.cat((q_nope, q_rope), dim=-1)
    p = _attend((q @ k.transpose(-1, -2)) * scale, x.shape[1], causal).to(x.dtype)
    return torch.einsum("bhsv,hvd->bsd", p @ v, weights.w_o)


def mla_attention_absorbed(
    x: torch.Tensor,
    weights: MLAWeights,
    positions: torch.Tensor,
    inv_freq: torch.Tensor,
    *,
    cache: tuple[torch.Tensor, torch.Tensor] | None = None,
    layout: Layout = "interleaved",
    attention_factor: float = 1.0,
    scale: float | None = None,
    causal: bool = True,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """MLA in its absorbed (decode) form: attention in the latent space from a cache of (c_i, rotated k_r(i)).

    W_uk is applied to the query (q_nope^h W_uk^h^T, d_c per head) and W_uv after the weighted sum of latents, so the
    cache holds d_c + d_r elements per token and no per-head key or value is ever formed.

    Args:
        x: (batch, s, hidden_size) the new tokens (s = 1 for one decode step; s = seq for a prefill).
        positions: (s,) their positions.
        cache: (c, k_r) of the previous tokens, shapes (batch, n_prev, d_c) and (batch, n_prev, d_r), or None.
        causal: the s new tokens are the last s of the n = n_prev + s keys; query j sees keys 0..n_prev + j.
        Others as in :func:`mla_attention`.
    Returns:
        (output (batch, s, hidden_size), new cache (c, k_r) with the s new tokens appended).
    """
    cfg, positions = _check_inputs(x, weights, positions, layout)
    scale = cfg.qk_head_dim**-0.5 if scale is None else _checks.finite_number("scale", scale, above=0.0)
    c_new, k_r_new = mla_latents(x, weights, positions, inv_freq, layout=layout, attention_factor=attention_factor)
    if cache is None:
        c, k_r = c_new, k_r_new
    else:
        c_old, k_r_old = cache
        ok = c_old.dim() == 3 and c_old.shape[0] == x.shape[0] and c_old.shape[2] == cfg.kv_lora_rank
        ok = ok and k_r_old.dim() == 3 and k_r_old.shape[:2] == c_old.shape[:2]
        ok = ok and k_r_old.shape[2] == cfg.qk_rope_head_dim
        if not ok:
            raise ValueError(
                f"cache must be (c (batch, n, {cfg.kv_lora_rank}), k_r (batch, n, {cfg.qk_rope_head_dim})) with "
                f"batch {x.shape[0]}, got {tuple(c_old.shape)} and {tuple(k_r_old.shape)}"
            )
        c, k_r = torch.cat((c_old, c_new), dim=1), torch.cat((k_r_old, k_r_new), dim=1)
    q_nope, q_rope = _queries(x, weights, cfg, positions, inv_freq, layout, attention_factor)
    q_latent = torch.einsum("bhse,hce->bhsc", q_nope, weights.w_uk)  # W_uk folded into the query
    scores = torch.einsum("bhsc,bnc->bhsn", q_latent, c) + torch.einsum("bhsr,bnr->bhsn", q_rope, k_r)
    p = _attend(scores * scale, x.shape[1], causal).to(x.dtype)
    o_latent = torch.einsum("bhsn,bnc->bhsc", p, c)
    o = torch.einsum("bhsc,hcv->bhsv", o_latent, weights.w_uv)  # W_uv folded into the output side
    return torch.einsum("bhsv,hvd->bsd", o, weights.w_o), (c, k_r)


# --------------------------------------------------------------------------------------------------------------
# Decode cost
# --------------------------------------------------------------------------------------------------------------


def mla_decode_cost(
    config: MLAConfig, context_length: int, form: str = "absorbed", *, bytes_per_element: int = 2
) -> dict[str, int]:
    """Cache and FLOPs of one decode step of one layer, batch 1, with ``context_length`` tokens cached (new one
    included). A multiply-add counts 2 FLOPs; norms, RoPE and softmax (O(h n) or less) are left out.

    Forms:
        * "training": cache the per-head keys and values (h (d_nope + d_r + d_v) per token); the new token's
          latent is expanded once.
        * "training_latent_cache": cache (c, k_r) but expand every cached latent into keys and values at every
          step (what a plain implementation of the training form with a latent cache does).
        * "absorbed": cache (c, k_r) and attend in the latent space (W_uk on the query, W_uv after the sum).

    Returns a dict: cache_elements_per_token, cache_bytes (context_length tokens), flops, flops_per_cached_token
    (the part that grows with context), flops_fixed.
    """
    _check_form(form)
    if not isinstance(config, MLAConfig):
        raise ValueError(f"config must be an MLAConfig, got {type(config).__name__}")
    n = _checks.positive_int("context_length", context_length)
    _checks.positive_int("bytes_per_element", bytes_per_element)
    D, h, d_c = config.hidden_size, config.n_heads, config.kv_lora_rank
    d_nope, d_r, d_v = config.qk_nope_head_dim, config.qk_rope_head_dim, config.v_head_dim
    if config.q_lora_rank is None:
        q_proj = 2 * D * h * (d_nope + d_r)
    else:
        q_proj = 2 * D * config.q_lora_rank + 2 * config.q_lora_rank * h * (d_nope + d_r)
    fixed = q_proj + 2 * D * (d_c + d_r) + 2 * h * d_v * D  # queries, the new latent and shared key, output proj.
    expand = 2 * d_c * h * (d_nope + d_v)  # one latent -> all heads' k_nope and v
    if form == "training":
        fixed += expand
        per_token = 2 * h * (d_nope + d_r) + 2 * h * d_v  # scores + weighted values
    elif form == "training_latent_cache":
        per_token = expand + 2 * h * (d_nope + d_r) + 2 * h * d_v
    else:
        fixed += 2 * h * d_nope * d_c + 2 * h * d_c * d_v  # W_uk on the query, W_uv after the sum
        per_token = 2 * h * (d_c + d_r) + 2 * h * d_c  # scores against (c, k_r) + weighted latents
    elements = config.cache_elements(form)
    return {
        "cache_elements_per_token": elements,
        "cache_bytes": elements * n * bytes_per_element,
        "flops": fixed + per_token * n,
        "flops_per_cached_token": per_token,
        "flops_fixed": fixed,
    }
