"""MLA: KV-cache accounting, training form == absorbed form, decode cost, and parity with transformers' DeepSeek-V3
attention (transformers 5.23.0, the version pinned in constraints.txt)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import ulps_close

import rope_lib
from rope_lib.mla import (
    MLAConfig,
    MLAWeights,
    deepseek_softmax_scale,
    gqa_equivalent_groups,
    kv_cache_bytes,
    kv_cache_elements,
    mla_attention,
    mla_attention_absorbed,
    mla_decode_cost,
    mla_latents,
    weights_from_deepseek_v3,
)

torch.set_num_threads(1)  # tiny tensors

TINY = MLAConfig(hidden_size=24, n_heads=3, kv_lora_rank=10, qk_nope_head_dim=6, qk_rope_head_dim=4, v_head_dim=5)
TINY_QLORA = MLAConfig(**{**TINY.__dict__, "q_lora_rank": 7})
DEEPSEEK_V2 = MLAConfig(5120, 128, 512, 128, 64, 128, q_lora_rank=1536)  # DeepSeek-V2 §3.1.2 hyper-parameters


# ---------------------------------------------------------------------------------------------------- cache counts


@pytest.mark.parametrize(
    "kind, kwargs, expected",
    [
        ("mha", dict(n_heads=32, head_dim=128), 2 * 32 * 128),  # LLaMA-2-7B: 8192
        ("mha", dict(n_heads=128, head_dim=128), 32768),  # DeepSeek-V2's heads as MHA (its Table 1 baseline)
        ("gqa", dict(n_heads=64, head_dim=128, n_kv_heads=8), 2048),  # LLaMA-2-70B
        ("mqa", dict(head_dim=128), 256),
        ("mqa", dict(n_heads=32, head_dim=128), 256),  # n_heads does not change MQA's cache
        ("mla", dict(kv_lora_rank=512, rope_head_dim=64), 576),  # DeepSeek-V2/V3
        ("mla", dict(n_heads=128, kv_lora_rank=512, rope_head_dim=64), 576),
    ],
)
def test_kv_cache_elements_hand_cases(kind, kwargs, expected):
    assert kv_cache_elements(kind, **kwargs) == expected


def test_gqa_spans_mha_and_mqa():
    for h, d in [(8, 64), (32, 128)]:
        mha = kv_cache_elements("mha", n_heads=h, head_dim=d)
        assert kv_cache_elements("gqa", n_heads=h, head_dim=d, n_kv_heads=h) == mha
        assert kv_cache_elements("gqa", n_heads=h, head_dim=d, n_kv_heads=1) == kv_cache_elements("mqa", head_dim=d)


def test_mla_is_two_and_a_quarter_gqa_groups():
    mla = kv_cache_elements("mla", kv_lora_rank=512, rope_head_dim=64)
    assert gqa_equivalent_groups(mla, 128) == 2.25
    # DeepSeek-V2 Table 1 writes MLA as (d_c + d_h^R) l ~ 9/2 d_h l with d_c = 4 d_h, d_h^R = d_h / 2
    assert mla == 4 * 128 + 128 // 2 == 9 * 128 // 2


def test_kv_cache_bytes():
    # LLaMA-2-7B, 4096 tokens, bf16: 0.5 MiB per token, 2 GiB in all
    per = kv_cache_elements("mha", n_heads=32, head_dim=128)
    assert kv_cache_bytes(per, n_layers=32, context_length=4096) == 2 * 2**30
    assert kv_cache_bytes(per, n_layers=32, context_length=4096, bytes_per_element=1, batch=3) == 3 * 2**30
    assert kv_cache_bytes(per, n_layers=32, context_length=0) == 0


@pytest.mark.parametrize(
    "kind, kwargs, match",
    [
        ("mha", dict(n_heads=32), "head_dim is required for kind='mha'"),
        ("gqa", dict(n_heads=32, head_dim=128), "n_kv_heads is required"),
        ("gqa", dict(n_heads=32, head_dim=128, n_kv_heads=5), "n_kv_heads must divide n_heads"),
        ("mla", dict(kv_lora_rank=512), "rope_head_dim is required"),
        ("mla", dict(kv_lora_rank=512, rope_head_dim=64, head_dim=128), "head_dim does not apply to kind='mla'"),
        ("mha", dict(n_heads=32, head_dim=128, kv_lora_rank=512), "kv_lora_rank does not apply"),
        ("mqa", dict(head_dim=128, n_kv_heads=1), "n_kv_heads does not apply"),
        ("mha", dict(n_heads=0, head_dim=128), "n_heads must be a positive integer"),
        ("mha", dict(n_heads=32, head_dim=12.0), "head_dim must be a positive integer"),
        ("MLA", dict(kv_lora_rank=512, rope_head_dim=64), r"kind must be one of \('mha', 'mqa', 'gqa', 'mla'\)"),
    ],
)
def test_kv_cache_elements_errors(kind, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kv_cache_elements(kind, **kwargs)


def test_accounting_errors():
    with pytest.raises(ValueError, match="head_dim must be a positive integer"):
        gqa_equivalent_groups(576, 0)
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        kv_cache_bytes(576, n_layers=0, context_length=10)
    with pytest.raises(ValueError, match="qk_rope_head_dim must be a positive even integer"):
        MLAConfig(24, 3, 10, 6, 5, 5)
    with pytest.raises(ValueError, match="q_lora_rank must be a positive integer"):
        MLAConfig(24, 3, 10, 6, 4, 5, q_lora_rank=0)


# ---------------------------------------------------------------------------------------------------- decode cost


def test_decode_cost_hand_computed_tiny():
    cfg = MLAConfig(hidden_size=2, n_heads=1, kv_lora_rank=1, qk_nope_head_dim=1, qk_rope_head_dim=2, v_head_dim=1)
    # by hand, multiply-add = 2 FLOPs: q 2*2*3 = 12, latent + key 2*2*3 = 12, output 2*1*2 = 4 -> fixed 28;
    # expanding one latent 2*1*(1+1) = 4; scores 2*3 = 6 and values 2*1 = 2 per cached token.
    n = 5
    tr = mla_decode_cost(cfg, n, "training")
    assert (tr["flops_fixed"], tr["flops_per_cached_token"], tr["flops"]) == (28 + 4, 8, 32 + 8 * n)
    assert tr["cache_elements_per_token"] == 1 * (3 + 1) and tr["cache_bytes"] == 4 * n * 2
    lat = mla_decode_cost(cfg, n, "training_latent_cache")
    assert (lat["flops_fixed"], lat["flops_per_cached_token"]) == (28, 4 + 8)
    # absorbed: W_uk on the query 2*1*1*1 = 2, W_uv after 2*1*1*1 = 2; scores 2*(1+2) = 6, latents 2*1 = 2
    ab = mla_decode_cost(cfg, n, "absorbed", bytes_per_element=4)
    assert (ab["flops_fixed"], ab["flops_per_cached_token"]) == (28 + 4, 8)
    assert ab["cache_elements_per_token"] == 3 and ab["cache_bytes"] == 3 * n * 4


def test_decode_cost_deepseek_v2():
    ab, tr = (mla_decode_cost(DEEPSEEK_V2, 4096, f) for f in ("absorbed", "training"))
    assert ab["cache_elements_per_token"] == 576 and tr["cache_elements_per_token"] == 128 * (192 + 128)
    # per cached token: absorbed reads 576 elements and does h (2*576 + 2*512) FLOPs; training h (2*192 + 2*128)
    assert ab["flops_per_cached_token"] == 128 * (2 * 576 + 2 * 512)
    assert tr["flops_per_cached_token"] == 128 * (2 * 192 + 2 * 128)
    with pytest.raises(ValueError, match="form must be one of"):
        mla_decode_cost(DEEPSEEK_V2, 10, "decode")
    with pytest.raises(ValueError, match="context_length must be a positive integer"):
        mla_decode_cost(DEEPSEEK_V2, 0)


def test_deepseek_softmax_scale_hand_values():
    assert deepseek_softmax_scale(192) == 192**-0.5
    assert deepseek_softmax_scale(192, {"rope_type": "default", "rope_theta": 1e4}) == 192**-0.5
    # DeepSeek-V2's released YaRN settings: factor 40, mscale = mscale_all_dim = 0.707
    yarn = {"rope_type": "yarn", "rope_theta": 1e4, "factor": 40.0, "mscale": 0.707, "mscale_all_dim": 0.707}
    assert math.isclose(deepseek_softmax_scale(192, yarn), (0.1 * 0.707 * math.log(40) + 1) ** 2 / math.sqrt(192))
    assert deepseek_softmax_scale(192, {**yarn, "mscale_all_dim": 0}) == 192**-0.5  # 0 means "not set"
    with pytest.raises(ValueError, match="qk_head_dim must be a positive integer"):
        deepseek_softmax_scale(0)
    with pytest.raises(ValueError, match="factor must be a finite number >= 1"):
        deepseek_softmax_scale(192, {"rope_type": "yarn", "mscale_all_dim": 1.0})


# ---------------------------------------------------------------------------------------------------- the two forms


def naive_mla(x, w: MLAWeights, positions, theta, layout, scale):
    """Token-by-token, head-by-head reference in float64, rotation by complex multiplication."""

    def rot(v, m):  # v (d_r,), rotate pair i by m * theta_i
        if layout == "interleaved":
            z = torch.complex(v[0::2], v[1::2]) * torch.exp(1j * m * theta)
            return torch.stack((z.real, z.imag), -1).flatten()
        half = v.shape[0] // 2
        z = torch.complex(v[:half], v[half:]) * torch.exp(1j * m * theta)
        return torch.cat((z.real, z.imag))

    def rms(v, g):
        return v if g is None else g * v / torch.sqrt((v * v).mean() + w.norm_eps)

    cfg = w.config
    b, n, _ = x.shape
    out = torch.zeros(b, n, cfg.hidden_size, dtype=torch.float64)
    for bi in range(b):
        c = [rms(x[bi, i] @ w.w_dkv, w.kv_norm) for i in range(n)]
        kr = [rot(x[bi, i] @ w.w_kr, float(positions[i])) for i in range(n)]
        for t in range(n):
            qin = x[bi, t] if w.w_dq is None else rms(x[bi, t] @ w.w_dq, w.q_norm)
            for h in range(cfg.n_heads):
                q = qin @ w.w_q[:, h]
                qn, qr = q[: cfg.qk_nope_head_dim], rot(q[cfg.qk_nope_head_dim :], float(positions[t]))
                s = torch.stack([(qn @ (c[i] @ w.w_uk[h]) + qr @ kr[i]) * scale for i in range(t + 1)])
                p = torch.softmax(s, 0)
                o = sum(p[i] * (c[i] @ w.w_uv[h]) for i in range(t + 1))
                out[bi, t] += o @ w.w_o[h]
    return out


@pytest.mark.parametrize("cfg", [TINY, TINY_QLORA], ids=["q_from_x", "q_lora"])
@pytest.mark.parametrize("layout", ["interleaved", "half_split"])
def test_training_form_matches_naive_reference(cfg, layout):
    w = MLAWeights.random(cfg, seed=1)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 6, cfg.hidden_size, generator=g, dtype=torch.float64)
    pos = torch.tensor([3, 4, 5, 9, 10, 40])
    theta = rope_lib.inv_freq(cfg.qk_rope_head_dim)
    ours = mla_attention(x, w, pos, theta, layout=layout)
    ref = naive_mla(x, w, pos, theta, layout, cfg.qk_head_dim**-0.5)
    assert ours.shape == (2, 6, cfg.hidden_size) and ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cfg", [TINY, TINY_QLORA], ids=["q_from_x", "q_lora"])
@pytest.mark.parametrize("layout", ["interleaved", "half_split"])
def test_absorbed_equals_training_float64(cfg, layout):
    w = MLAWeights.random(cfg, seed=3)
    g = torch.Generator().manual_seed(4)
    n = 11
    x = torch.randn(2, n, cfg.hidden_size, generator=g, dtype=torch.float64)
    pos = torch.arange(n) + 1000
    theta, kw = rope_lib.inv_freq(cfg.qk_rope_head_dim), dict(layout=layout, attention_factor=1.1, scale=0.3)
    train = mla_attention(x, w, pos, theta, **kw)
    prefill, (c, k_r) = mla_attention_absorbed(x, w, pos, theta, **kw)
    assert c.shape == (2, n, cfg.kv_lora_rank) and k_r.shape == (2, n, cfg.qk_rope_head_dim)
    assert (train - prefill).abs().max() <= 1e-10
    # decode: a prefill of 4, then one token at a time from the latent cache
    out, cache = mla_attention_absorbed(x[:, :4], w, pos[:4], theta, **kw)
    steps = [out]
    for t in range(4, n):
        out, cache = mla_attention_absorbed(x[:, t : t + 1], w, pos[t : t + 1], theta, cache=cache, **kw)
        steps.append(out)
    assert cache[0].shape == (2, n, cfg.kv_lora_rank)
    assert (torch.cat(steps, 1) - train).abs().max() <= 1e-10
    # the cache is what mla_latents gives for the whole sequence, to float64 rounding: it was built 4 + 1 + 1 ...
    # tokens at a time, so its matmuls ran over other row counts (other BLAS kernels, other summation order; an
    # AVX-512 Xeon measured 8.9e-16 = 4 eps) - not bitwise, but a few ulps, where a wrong rotation would be O(1)
    latents = mla_latents(x, w, pos, theta, layout=layout, attention_factor=1.1)
    ulps_close(cache, latents)


def test_output_depends_on_relative_positions_only():
    w = MLAWeights.random(TINY_QLORA, seed=5)
    x = torch.randn(1, 7, TINY.hidden_size, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    theta = rope_lib.inv_freq(TINY.qk_rope_head_dim)
    a = mla_attention(x, w, torch.arange(7), theta)
    b = mla_attention(x, w, torch.arange(7) + 12345, theta)
    c = mla_attention(x, w, torch.arange(7) * 2, theta)
    assert (a - b).abs().max() < 1e-10 and (a - c).abs().max() > 1e-3  # shift-invariant, not scale-invariant


def test_bf16_forms_run_in_bf16_and_stay_close():
    w = MLAWeights.random(TINY, seed=7)
    x = torch.randn(1, 9, TINY.hidden_size, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    theta, pos = rope_lib.inv_freq(TINY.qk_rope_head_dim), torch.arange(9)
    ref = mla_attention(x, w, pos, theta)
    tr = mla_attention(x.bfloat16(), w.to(torch.bfloat16), pos, theta)
    ab = mla_attention_absorbed(x.bfloat16(), w.to(torch.bfloat16), pos, theta)[0]
    assert tr.dtype == ab.dtype == torch.bfloat16
    scale = ref.abs().max()
    for out in (tr, ab):
        assert (out.double() - ref).abs().max() < 0.05 * scale
    assert (tr.double() - ab.double()).abs().max() > 0  # different rounding order: equal only in exact arithmetic


def test_shape_and_argument_errors():
    w = MLAWeights.random(TINY, seed=0)
    theta, x = rope_lib.inv_freq(4), torch.zeros(1, 3, TINY.hidden_size, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor of shape \(batch, seq, hidden_size\)"):
        mla_attention(x[0], w, torch.arange(3), theta)
    with pytest.raises(ValueError, match="x.shape\\[-1\\] must be hidden_size = 24"):
        mla_attention(x[..., :5], w, torch.arange(3), theta)
    with pytest.raises(ValueError, match=r"positions must have shape \(seq,\)"):
        mla_attention(x, w, torch.arange(4), theta)
    with pytest.raises(ValueError, match="layout must be one of"):
        mla_attention(x, w, torch.arange(3), theta, layout="neox")
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        mla_attention(x, w, torch.arange(3), theta, scale=0.0)
    with pytest.raises(ValueError, match="cache must be"):
        mla_attention_absorbed(x, w, torch.arange(3), theta, cache=(torch.zeros(1, 2, 9), torch.zeros(1, 2, 4)))
    bad = MLAWeights.random(TINY, seed=0)
    bad.w_o = bad.w_o[:, :, :5]
    with pytest.raises(ValueError, match=r"w_o must have shape \(3, 5, 24\)"):
        mla_attention(x, bad, torch.arange(3), theta)


# ---------------------------------------------------------------------------------------------------- transformers

# The module, its random weights (YaRN with DeepSeek's two mscales: cos/sin get the mscale ratio, the logits
# mscale_all_dim^2) and both ways of running it come from rope_lib.companion.hf_reference, which notebook 09 uses too.
transformers = pytest.importorskip("transformers", reason="transformers is not installed: no DeepSeek-V3 parity check")
from rope_lib.companion.hf_reference import (  # noqa: E402
    deepseek_v3_attention,
    deepseek_v3_float64_output,
    deepseek_v3_output,
)


@pytest.mark.parametrize("q_lora_rank", [None, 12])
@pytest.mark.parametrize("interleave", [True, False])
def test_parity_with_transformers_deepseek_v3(q_lora_rank, interleave):
    config, attn, rotary = deepseek_v3_attention(q_lora_rank, interleave)
    n = 20
    x = torch.randn(2, n, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pos = torch.arange(n)
    inv, af = rope_lib.frequencies(config.rope_parameters, config.qk_rope_head_dim)
    # their frequencies (float32) and attention factor = ours
    assert torch.allclose(rotary.inv_freq.double(), inv, rtol=1e-6, atol=0)
    assert math.isclose(rotary.attention_scaling, af, rel_tol=1e-12) and af != 1.0
    scale = deepseek_softmax_scale(config.qk_head_dim, config.rope_parameters)
    assert math.isclose(attn.scaling, scale, rel_tol=1e-12)
    assert math.isclose(scale, 16**-0.5 * (0.1 * 0.8 * math.log(4.0) + 1) ** 2, rel_tol=1e-12)  # by hand

    w = weights_from_deepseek_v3(attn)
    layout = "interleaved" if interleave else "half_split"
    ours = mla_attention(x, w, pos, inv, layout=layout, attention_factor=af, scale=scale)
    # 1. the module as it is: its float32 cos/sin, RMSNorm and softmax limit the agreement to float32 rounding
    theirs = deepseek_v3_output(attn, rotary, x, pos)
    assert (ours - theirs).abs().max() <= 1e-6 * theirs.abs().max()
    # 2. its float32 steps replaced: float64 cos/sin from rope_lib's angles, SDPA (float64 softmax), and an RMSNorm
    #    with the same formula as theirs minus the float32 cast; everything else (weight layout, rope layout,
    #    scale, mscale) must then agree to float64 rounding.
    exact = deepseek_v3_float64_output(attn, x, pos, inv, af)
    assert (ours - exact).abs().max() <= 1e-12
    # and our absorbed decode form reproduces their training-style module
    absorbed = mla_attention_absorbed(x, w, pos, inv, layout=layout, attention_factor=af, scale=scale)[0]
    assert (absorbed - exact).abs().max() <= 1e-10


def test_weights_from_deepseek_v3_layout():
    config, attn, _ = deepseek_v3_attention(None, True)
    w = weights_from_deepseek_v3(attn)
    assert w.config == MLAConfig(32, 4, 16, 8, 8, 6, None)
    # c_i W_uk^h is their kv_b_proj's rows h*(8+6) .. h*(8+6)+8 applied to c
    c = torch.randn(16, dtype=torch.float64)
    kv = attn.kv_b_proj(c).view(4, 14)
    torch.testing.assert_close(torch.einsum("c,hce->he", c, w.w_uk), kv[:, :8], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(torch.einsum("c,hcv->hv", c, w.w_uv), kv[:, 8:], rtol=1e-14, atol=1e-14)
