"""transformers as the reference: the adapters that build its configs and modules, run them and read their numbers,
written once for the unit tests and the notebooks that compare rope_lib with it.

Every adapter follows the semantics of transformers 5.23.0, the version pinned in constraints.txt (and
``rope_lib.hf.TRANSFORMERS_VERSION``): config objects that standardize a ``rope_parameters`` dict (v5), the
``ROPE_INIT_FUNCTIONS`` registry, and the Qwen2-VL, DeepSeek-V3 and Phi-3 modules as that release ships them.
Another release may move or rename what is read here; the tests that use these adapters then fail, which is the
point.

Machinery, not library: this module imports transformers at module level, so it is imported only where transformers
is installed (the [notebooks] and [test] extras); ``import rope_lib`` never reaches it.

- rope frequencies (notebook 03, tests/test_scaling.py): :func:`llama_config`, :func:`rope_init_frequencies`,
  :func:`float32_relative_gap`;
- DeepSeek-V3 attention (notebook 09, tests/test_mla.py): :func:`deepseek_v3_attention`,
  :func:`deepseek_v3_output`, :func:`deepseek_v3_float64_output`;
- Qwen2-VL M-RoPE (notebook 11, tests/test_multimodal.py): :func:`qwen2_vl_token_types`,
  :func:`qwen2_vl_rope_index`, :func:`qwen2_vl_rotary`, :func:`qwen2_vl_rotate`;
- config objects and patched models (notebook 12): :func:`phi3_longrope_config`, :func:`module_frequencies`,
  :func:`apply_scheme`, :func:`chunked_logits`;
- shipped config files (notebook 13, tests/test_doctor.py): :func:`config_file_frequencies`.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Sequence

import torch
from transformers import AutoConfig, DeepseekV3Config, LlamaConfig, Phi3Config
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.auto.configuration_auto import model_type_to_module_name
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3Attention, DeepseekV3RotaryEmbedding
from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXRotaryEmbedding
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.qwen2_vl import modeling_qwen2_vl as qwen2_vl
from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLTextConfig

from .. import hf
from ..rope import angles
from .model import PositionScheme

# ------------------------------------------------------------------------------------------------ rope frequencies


def llama_config(rope_parameters: dict, head_dim: int, max_position_embeddings: int) -> LlamaConfig:
    """A ``LlamaConfig`` (4 heads of ``head_dim``) built the transformers v5 way, from a ``rope_parameters`` dict.

    Why a config object: transformers 5.23.0's rope functions read ``head_dim``, ``partial_rotary_factor`` and, for
    ``dynamic``, the original length L (``max_position_embeddings``) from a config, and the config standardizes
    the dict on the way in (fills ``rope_type`` / ``rope_theta``, reads a legacy ``type``). So
    ``config.rope_parameters`` is what a user of transformers holds, and what rope_lib is compared on.
    """
    return LlamaConfig(
        hidden_size=4 * head_dim,
        num_attention_heads=4,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        rope_parameters=dict(rope_parameters),
    )


def rope_init_frequencies(config, seq_len: int | None = None) -> tuple[torch.Tensor, float]:
    """transformers' own frequencies for ``config``: ``(inv_freq (rotary_dim/2,) float32, attention factor)``.

    ``ROPE_INIT_FUNCTIONS[rope_type](config, seq_len=seq_len)`` (transformers 5.23.0); ``seq_len`` is the current
    length of the length-dependent types (``dynamic``, ``longrope``). The "default" type is not in that registry:
    it is each model's ``compute_default_rope_parameters``, Llama's for a whole rotary head (Llama's ignores
    ``partial_rotary_factor``), GPT-NeoX's for a partial one.
    """
    rope_type = config.rope_parameters["rope_type"]
    if rope_type == "default":
        fn = LlamaRotaryEmbedding.compute_default_rope_parameters
        if config.rope_parameters.get("partial_rotary_factor", 1.0) != 1.0:
            fn = GPTNeoXRotaryEmbedding.compute_default_rope_parameters
        return fn(config)
    return ROPE_INIT_FUNCTIONS[rope_type](config, seq_len=seq_len)


# model types transformers does not ship whose files name a shipped architecture (Kimi K2 is DeepSeek-V3's)
_ARCHITECTURE_OF = {"kimi_k2": "deepseek_v3"}


def config_file_frequencies(
    raw: dict, layer_type: str | None = None, seq_len: int | None = None
) -> tuple[torch.Tensor, float]:
    """transformers' own ``(inv_freq float32, attention factor)`` for a config.json dict ``raw`` (its
    ``model_type``'s config class reads the file, v4 or v5 spelling, as ``from_pretrained`` would).

    The scaled types through ``ROPE_INIT_FUNCTIONS`` (``seq_len``: the current length of the length-dependent
    ones); "default" through the model's own rotary class (``compute_default_rope_parameters``), since each model has
    its own. ``layer_type``: the entry of a per-layer-type ``rope_parameters`` (Gemma 3), None for one dict.
    """
    model_type = _ARCHITECTURE_OF.get(raw["model_type"], raw["model_type"])
    config = AutoConfig.for_model(model_type, **{k: v for k, v in raw.items() if k != "model_type"})
    nested = layer_type is not None and isinstance(config.rope_parameters.get(layer_type), dict)
    params = config.rope_parameters[layer_type] if nested else config.rope_parameters
    if params["rope_type"] != "default":
        return ROPE_INIT_FUNCTIONS[params["rope_type"]](
            config, seq_len=seq_len, layer_type=layer_type if nested else None
        )
    module = importlib.import_module(
        f"transformers.models.{model_type_to_module_name(model_type)}.modeling_{model_type_to_module_name(model_type)}"
    )
    rotary = [getattr(module, n) for n in sorted(dir(module)) if n.endswith("RotaryEmbedding") and "Vision" not in n]
    compute = rotary[0].compute_default_rope_parameters
    return compute(config, layer_type=layer_type) if nested else compute(config)


def float32_relative_gap(ours: torch.Tensor, theirs: torch.Tensor, unscaled: torch.Tensor | None = None) -> float:
    """max |ours rounded to float32 - theirs| / |theirs| (or / ``unscaled``, the pairs' unscaled theta_i).

    transformers computes ``inv_freq`` in float32, so our float64 frequencies (any shape) are rounded to float32
    first; what remains is its float32 arithmetic, about 1e-7 relative. ``unscaled`` is for YaRN without truncation,
    where transformers 5.23.0 rounds its fractional ramp weight to float32 and the blend theta/s * w + theta (1 - w)
    magnifies that rounding by up to s relative to the result.
    """
    diff = (ours.to(torch.float32).double() - theirs.double()).abs()
    return (diff / (theirs.double().abs() if unscaled is None else unscaled)).max().item()


# ----------------------------------------------------------------------------------------------- DeepSeek-V3 (MLA)


def deepseek_v3_attention(q_lora_rank: int | None = None, rope_interleave: bool = True, seed: int = 0):
    """A tiny random transformers ``DeepseekV3Attention`` (layer 0, float64, eval) and its rotary module.

    Returns ``(config, attention, rotary)``. Sizes: hidden 32, 4 heads, latent ``kv_lora_rank`` 16, no-rope and rope
    head dims 8 and 8, value dim 6, query latent ``q_lora_rank`` (None: no query latent). Rope: YaRN, ``factor`` 4
    from L = 16, with DeepSeek's two mscales (``mscale`` 1, ``mscale_all_dim`` 0.8), so cos/sin carry the ratio
    of the two and the logit scale carries mscale(s, mscale_all_dim)^2. Every parameter, the norms' weights too (a
    swapped norm then shows), is drawn from N(0, 0.3^2) after ``torch.manual_seed(seed)``: the global generator is
    reseeded. The eager attention, as transformers 5.23.0 builds it from this config.
    """
    rope_parameters = {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 16,
        "mscale": 1.0,
        "mscale_all_dim": 0.8,
    }
    config = DeepseekV3Config(
        hidden_size=32,
        num_attention_heads=4,
        num_key_value_heads=4,
        kv_lora_rank=16,
        q_lora_rank=q_lora_rank,
        qk_nope_head_dim=8,
        qk_rope_head_dim=8,
        v_head_dim=6,
        max_position_embeddings=64,
        rope_parameters=rope_parameters,
        rope_interleave=rope_interleave,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    attention = DeepseekV3Attention(config, layer_idx=0).double().eval()
    with torch.no_grad():
        for p in attention.parameters():
            p.normal_(0.0, 0.3)
    return config, attention, DeepseekV3RotaryEmbedding(config)


@torch.no_grad()
def deepseek_v3_output(attention, rotary, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The module as it ships: ``attention(x, rotary(x, positions), causal mask)``, output (batch, n, hidden).

    ``x`` (batch, n, hidden) float64, ``positions`` (n,) int. Its float32 cos/sin, RMSNorm and softmax (transformers
    5.23.0) limit any agreement with a float64 computation to float32 rounding.
    """
    n = x.shape[1]
    mask = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)[None, None]
    return attention(x, rotary(x, positions[None]), mask)[0]


def _rms_norm_float64(self, hidden):
    # transformers 5.23.0's DeepseekV3RMSNorm formula without its cast to float32
    return self.weight * hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)


@torch.no_grad()
def deepseek_v3_float64_output(
    attention, x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor, attention_factor: float
) -> torch.Tensor:
    """The module with its float32 steps replaced, output (batch, n, hidden) float64.

    Why: with cos/sin, RMSNorm and softmax in float64, everything else (weight layout, rope layout, the YaRN factor
    on the rope part, the mscale_all_dim^2 logit scale) must agree with rope_lib's MLA to float64 rounding. So:
    float64 cos/sin of ``rope_lib.angles(positions, inv_freq)`` times ``attention_factor``, in transformers'
    convention ``cat(freqs, freqs)``; its RMSNorms' forward replaced by the same formula minus the float32 cast; and
    SDPA (float64 softmax, causal when no mask is given) instead of eager. ``x`` (batch, n, hidden) float64,
    ``positions`` (n,) int, ``inv_freq`` (rope_head_dim/2,) float64.

    The module stays patched (norms and attention implementation): build a fresh one for anything else.
    """
    theta = angles(positions, inv_freq)
    emb = torch.cat((theta, theta), dim=-1)[None]
    for norm in (attention.kv_a_layernorm, attention.q_a_layernorm):
        if norm is not None:
            norm.forward = types.MethodType(_rms_norm_float64, norm)
    attention.config._attn_implementation = "sdpa"
    return attention(x, (emb.cos() * attention_factor, emb.sin() * attention_factor), None)[0]


# ------------------------------------------------------------------------------------------------ Qwen2-VL (M-RoPE)

_TOKEN_TYPE = {"text": 0, "image": 1, "video": 2}  # transformers' mm_token_type_ids codes


def qwen2_vl_token_types(layout: Sequence[tuple], spatial_merge_size: int = 2) -> list[int]:
    """The ``mm_token_type_ids`` row of a layout: 0 per text token, 1 / 2 per merged image / video token.

    ``layout`` as ``rope_lib.multimodal.mrope_position_ids`` takes it: ``("text", n)``, ``("image", h, w)``,
    ``("video", t, h, w)`` with h, w the patch grid before the merge (as ``image_grid_thw`` holds it). Built here from
    the grid sizes alone, independently of rope_lib, so that it can check rope_lib's own token kinds.
    """
    row = []
    for item in layout:
        if item[0] == "text":
            row += [0] * item[1]
            continue
        t, h, w = (1, *item[1:]) if item[0] == "image" else item[1:]
        row += [_TOKEN_TYPE[item[0]]] * (t * h * w // spatial_merge_size**2)
    return row


def qwen2_vl_rope_index(layouts: Sequence[Sequence[tuple]], spatial_merge_size: int = 2):
    """transformers' Qwen2-VL ``get_rope_index`` on synthetic inputs built from layouts (a left-padded batch).

    Returns ``(ids (3, batch, width) long, deltas (batch, 1) long, attention_mask (batch, width) long)``; padding
    positions are where the mask is 0. Why a stand-in: transformers 5.23.0's method reads only
    ``config.vision_config.spatial_merge_size`` and ``get_vision_position_ids`` from the model, so it runs on a
    namespace holding those two instead of a built Qwen2-VL model; the token ids themselves are not read (zeros).
    """
    stub = types.SimpleNamespace(
        config=types.SimpleNamespace(vision_config=types.SimpleNamespace(spatial_merge_size=spatial_merge_size))
    )
    stub.get_vision_position_ids = lambda *a, **k: qwen2_vl.Qwen2VLModel.get_vision_position_ids(stub, *a, **k)
    rows, images, videos = [], [], []
    for layout in layouts:
        rows.append(qwen2_vl_token_types(layout, spatial_merge_size))
        for item in layout:
            if item[0] == "image":
                images.append([1, *item[1:]])
            elif item[0] == "video":
                videos.append(list(item[1:]))
    width = max(map(len, rows))
    token_types = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    ids, deltas = qwen2_vl.Qwen2VLModel.get_rope_index(
        stub,
        torch.zeros_like(token_types),
        token_types,
        torch.tensor(images) if images else None,
        torch.tensor(videos) if videos else None,
        attention_mask=mask,
    )
    return ids, deltas, mask


def qwen2_vl_rotary(head_dim: int, rope_theta: float, mrope_section: Sequence[int]):
    """transformers' ``Qwen2VLRotaryEmbedding`` for 2 heads of ``head_dim``, base ``rope_theta``, and
    ``mrope_section`` (pairs per temporal / height / width axis), default rope type (float32 ``inv_freq``)."""
    config = Qwen2VLTextConfig(
        hidden_size=2 * head_dim,
        num_attention_heads=2,
        head_dim=head_dim,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta, "mrope_section": list(mrope_section)},
    )
    return qwen2_vl.Qwen2VLRotaryEmbedding(config)


def qwen2_vl_rotate(rotary, q: torch.Tensor, k: torch.Tensor, ids: torch.Tensor):
    """q and k (batch, heads, seq, head_dim) rotated by transformers' M-RoPE: ``(q, k)`` in their dtype.

    ``ids`` (seq, 3) long as ``rope_lib.multimodal.mrope_position_ids`` gives them; transformers 5.23.0's rotary
    module wants them as (3, batch, seq), and forms cos/sin in float32 before ``apply_rotary_pos_emb``.
    """
    cos, sin = rotary(q, ids.T[:, None, :])
    return qwen2_vl.apply_rotary_pos_emb(q, k, cos, sin)


# ------------------------------------------------------------------------------- config objects and patched models


def phi3_longrope_config() -> Phi3Config:
    """A Phi-3-mini-128k-style LongRoPE config: head_dim 96 (48 pairs), L = 4096 in
    ``config.original_max_position_embeddings``, extended to 131072, and no ``factor`` (transformers 5.23.0 then
    takes s = 131072 / 4096 for the attention factor). The sizes are Phi-3-mini's (arXiv:2404.14219); the
    short/long factors are ours (48 values each: the rule is checked, not Phi-3's search result)."""
    return Phi3Config(
        hidden_size=3072,
        num_attention_heads=32,
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        rope_theta=10000.0,
        rope_parameters={
            "rope_type": "longrope",
            "short_factor": [1.0 + 0.01 * i for i in range(48)],
            "long_factor": [1.0 + 1.5 * i for i in range(48)],
        },
    )


def module_frequencies(rotary, seq_len: int, head_dim: int) -> tuple[torch.Tensor, float]:
    """``(inv_freq (head_dim/2,) float32, attention scaling)`` of a transformers rotary module after a forward over
    positions 0..seq_len-1: its length-dependent types (Dynamic NTK, LongRoPE's short/long switch) update their
    frequencies inside that forward in transformers 5.23.0, not at construction."""
    rotary(torch.zeros(1, 1, head_dim), torch.arange(seq_len)[None])
    return rotary.inv_freq, rotary.attention_scaling


def apply_scheme(model, scheme: PositionScheme):
    """``rope_lib.hf.apply`` with the fields of a ``rope_lib.companion.model.PositionScheme``: the same method in a
    transformers model as in the companion's own LM. Undo with ``rope_lib.hf.remove(model)``."""
    return hf.apply(
        model,
        scheme.rope_parameters,
        attention=scheme.attention,
        window=scheme.window,
        leaky_k=scheme.leaky_k,
        log_n=scheme.log_n,
    )


@torch.no_grad()
def chunked_logits(model, x: torch.Tensor, edges: Sequence[int]) -> torch.Tensor:
    """Logits (batch, edges[-1] - edges[0], vocab) of ``x`` (batch, T) long fed in blocks [edges[i], edges[i+1])
    through the model's own KV cache (``past_key_values``, ``use_cache=True``).

    With ``rope_lib.hf.apply`` of a length-dependent method the cache holds raw keys, so blocks at the edges of
    ``rope_lib.companion.model.dynamic_block_edges`` give the decoder that ``PositionScheme.dynamic_blocks``
    evaluates.
    """
    out, rows = None, []
    for a, b in zip(edges[:-1], edges[1:]):
        out = model(x[:, a:b], past_key_values=None if out is None else out.past_key_values, use_cache=True)
        rows.append(out.logits)
    return torch.cat(rows, dim=1)
