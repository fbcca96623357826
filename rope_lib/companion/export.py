"""The companion's small LM (:class:`rope_lib.companion.model.RoPELM`) as a transformers ``LlamaForCausalLM``:
same weights, same logits (half-split RoPE = transformers' rotate_half, so no permutation). Needs transformers
(the ``[hf]`` extra); notebook 12 re-scores notebook 04's models through it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from ..hf import _transformers
from .model import RoPELM


def llama_config_dict(model: RoPELM) -> dict:
    """The ``LlamaConfig`` keyword arguments that describe a :class:`rope_lib.companion.model.RoPELM` exactly.

    Raises ValueError for what Llama cannot express: a GELU MLP, LayerNorm, or ``train_log_n`` (Su's unclipped
    log_L(n) query factor, applied at every position in training; ``apply(..., log_n=True)`` is the clipped
    max(1, log_L n) of an ordinary model, a different function).
    """
    if not isinstance(model, RoPELM):
        raise ValueError(f"model must be a rope_lib.companion.model.RoPELM, got {type(model).__name__}")
    cfg = model.cfg
    for field, value, allowed in (("mlp", cfg.mlp, "swiglu"), ("norm", cfg.norm, "rmsnorm")):
        if value != allowed:
            raise ValueError(f"LlamaForCausalLM needs ModelConfig.{field} = {allowed!r}, got {value!r}")
    if cfg.train_log_n:
        raise ValueError(
            "ModelConfig.train_log_n=True (unclipped log_L(n) query factor at every position) cannot be expressed by "
            "LlamaForCausalLM, nor by rope_lib.hf.apply(log_n=True), which is the clipped max(1, log_L n)"
        )
    return dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        head_dim=cfg.head_dim,
        hidden_act="silu",
        max_position_embeddings=cfg.train_length,  # L: what Dynamic NTK and log n read as the original length
        rms_norm_eps=model.norm.eps,
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg.rope_base)},
        tie_word_embeddings=cfg.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def llama_state_dict(model: RoPELM) -> dict[str, torch.Tensor]:
    """RoPELM weights under LlamaForCausalLM's names: the fused qkv split into q/k/v (rows q | k | v, heads
    contiguous, half-split layout = transformers' rotate_half, so no permutation), SwiGLU's up into gate | up."""
    cfg = model.cfg
    hd, ff = cfg.n_heads * cfg.head_dim, cfg.d_ff
    out = {"model.embed_tokens.weight": model.embed.weight, "model.norm.weight": model.norm.weight}
    for i, block in enumerate(model.blocks):
        p = f"model.layers.{i}."
        qkv = block.attn.qkv.weight
        out[p + "self_attn.q_proj.weight"] = qkv[:hd]
        out[p + "self_attn.k_proj.weight"] = qkv[hd : 2 * hd]
        out[p + "self_attn.v_proj.weight"] = qkv[2 * hd :]
        out[p + "self_attn.o_proj.weight"] = block.attn.out.weight
        up = block.mlp.up.weight  # SwiGLU: h.chunk(2) -> silu(first) * second
        out[p + "mlp.gate_proj.weight"] = up[:ff]
        out[p + "mlp.up_proj.weight"] = up[ff:]
        out[p + "mlp.down_proj.weight"] = block.mlp.down.weight
        out[p + "input_layernorm.weight"] = block.norm1.weight
        out[p + "post_attention_layernorm.weight"] = block.norm2.weight
    out["lm_head.weight"] = model.embed.weight if model.head is None else model.head.weight
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in out.items()}


def to_llama(model: RoPELM):
    """A ``LlamaForCausalLM`` (float32, CPU, eval mode) with the RoPELM's weights; same logits (half-split RoPE)."""
    _transformers()
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**llama_config_dict(model))
    llama = LlamaForCausalLM(config)
    with torch.no_grad():
        missing, unexpected = llama.load_state_dict(llama_state_dict(model), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:  # lm_head is tied to the embedding when tied
        raise RuntimeError(f"weight names do not match LlamaForCausalLM: missing {missing}, unexpected {unexpected}")
    return llama.eval()


def export_llama(model: RoPELM, path: str | os.PathLike) -> Path:
    """Write ``model`` as a transformers ``LlamaForCausalLM`` folder (config.json + model.safetensors).

    Written atomically: into a temporary sibling folder, then renamed to ``path`` (an existing folder there is
    replaced only after the new one is complete): nothing half-written. ``LlamaForCausalLM.from_pretrained(path)``
    gives the model's logits (float32). Returns ``path``.
    """
    path = Path(path)
    llama = to_llama(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    old = path.with_name(f".{path.name}.old")
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        llama.save_pretrained(tmp, safe_serialization=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


__all__ = ["export_llama", "llama_config_dict", "llama_state_dict", "to_llama"]
