"""Attention as a recurrence (rope_lib/recurrent.py): equal to SDPA, stable where the plain sums overflow, and
decoding without a KV cache equal to decoding with one."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rope_lib.companion.decoders import (
    greedy_decode_cached,
    greedy_decode_recompute,
    recurrent_block_evaluations,
    recurrent_state_numbers,
)
from rope_lib.companion.model import ModelConfig, RoPELM
from rope_lib.recurrent import kv_cache_size, recurrent_attention, rnn_state_size

torch.set_num_threads(1)  # tiny tensors


def _qkv(shape, d_v=None, dtype=torch.float64, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    *lead, n, d = shape
    q, k = (torch.randn(*lead, n, d, generator=g, dtype=torch.float64) * spread for _ in range(2))
    v = torch.randn(*lead, n, d if d_v is None else d_v, generator=g, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


@pytest.mark.parametrize("shape", [(1, 4), (5, 8), (2, 3, 17, 8), (2, 33, 16)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_recurrence_equals_causal_sdpa(shape, dtype):
    q, k, v = _qkv(shape, dtype=dtype, seed=len(shape))
    got = recurrent_attention(q, k, v)
    assert got.dtype == dtype and got.shape == v.shape
    want = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True)
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


def test_last_queries_value_width_and_scale():
    """n_q < n queries are the last positions (a decode step); d_v may differ from d; scale is honoured."""
    q, k, v = _qkv((2, 12, 8), d_v=5, seed=3)
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3)
    for n_q in (1, 4, 12):
        torch.testing.assert_close(recurrent_attention(q[:, -n_q:], k, v, scale=0.3), full[:, -n_q:])
    # the plain (unstable) sums agree too while the scores are small
    torch.testing.assert_close(recurrent_attention(q, k, v, stable=False), recurrent_attention(q, k, v))


@pytest.mark.parametrize("dtype, spread", [(torch.float64, 20.0), (torch.float32, 6.0)])
def test_stable_form_survives_logits_that_overflow_the_plain_sums(dtype, spread):
    q, k, v = _qkv((2, 24, 16), dtype=dtype, seed=5, spread=spread)
    scores = (q.double() @ k.double().transpose(-1, -2)) / 4
    # past e^709 (float64) / e^88 (float32) the plain sums hold inf
    assert float(scores.tril().max()) > (709 if dtype == torch.float64 else 88)
    plain = recurrent_attention(q, k, v, stable=False)
    assert not torch.isfinite(plain).all()
    # independent float64 reference: explicit masked softmax
    mask = torch.ones(24, 24, dtype=torch.bool).tril()
    want = torch.softmax(scores.masked_fill(~mask, -math.inf), dim=-1) @ v.double()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(recurrent_attention(q, k, v).double(), want, rtol=tol, atol=tol)


def _tiny_model(n_layers=2, seed=0):
    torch.manual_seed(seed)
    # a large init spreads the logits, so greedy choices are not near-ties decided by rounding; float64 weights
    # leave the logits' float32 rounding as the only difference between the decoders
    cfg = ModelConfig(d_model=16, n_layers=n_layers, n_heads=2, head_dim=8, d_ff=24, train_length=8, init_std=0.5)
    return RoPELM(cfg).double().eval()


def test_cached_decoder_equals_the_models_forward():
    model = _tiny_model()
    prompt = torch.tensor([3, 250, 17, 17, 90])
    res = greedy_decode_cached(model, prompt, 12)
    full = torch.cat((prompt, res.tokens))
    with torch.no_grad():
        want = model(full[None])[0, prompt.numel() - 1 : -1]  # the logits each new token was chosen from
    torch.testing.assert_close(res.logits, want, rtol=1e-5, atol=1e-7 * float(want.abs().max()))
    assert torch.equal(res.tokens, want.argmax(-1))
    # the cache: 2 (k, v) x layers x heads x head_dim numbers per position held
    per_position = 2 * 2 * 2 * 8
    assert res.state_numbers == [per_position * (prompt.numel() + i) for i in range(12)]


@pytest.mark.parametrize("method", ["forward", "recurrent"])
def test_recompute_decoders_equal_the_cached_one(method):
    model = _tiny_model(n_layers=3, seed=1)
    prompt = torch.tensor([65, 66, 67])
    cached = greedy_decode_cached(model, prompt, 6)
    res = greedy_decode_recompute(model, prompt, 6, method=method)
    assert torch.equal(res.tokens, cached.tokens)
    torch.testing.assert_close(res.logits, cached.logits, rtol=1e-5, atol=1e-7 * float(cached.logits.abs().max()))
    if method == "forward":
        assert res.state_numbers == [0] * 6
    else:
        # constant: per layer the residual (16), q and y (2 x 2 heads x 8) and m, z (2 x 2 heads)
        assert res.state_numbers == [3 * (16 + 32 + 4)] * 6 == [recurrent_state_numbers(3, 16, 2, 8)] * 6


def test_recurrent_state_is_one_frame_per_open_layer():
    """Position t reaches min(t + 1, layers) nested frames, then stays there: constant in t."""
    model = _tiny_model(n_layers=3, seed=3)
    res = greedy_decode_recompute(model, torch.tensor([7]), 5, method="recurrent")
    per_layer = 16 + 2 * 2 * 8 + 2 * 2
    assert res.state_numbers == [min(t + 1, 3) * per_layer for t in range(5)]


def _evaluations(layer: int, t: int) -> int:
    # the recursion the decoder follows, counted directly
    return 0 if layer == 0 else 1 + sum(_evaluations(layer - 1, s) for s in range(t + 1))


def test_block_evaluations_follow_the_binomial():
    model = _tiny_model(n_layers=3, seed=2)
    res = greedy_decode_recompute(model, torch.tensor([1, 2, 3, 4]), 3, method="recurrent")
    assert res.block_evaluations == [_evaluations(3, t) for t in (3, 4, 5)]
    for layers in range(1, 5):
        for t in range(8):
            assert recurrent_block_evaluations(layers, t) == _evaluations(layers, t)


def test_capacity_counts():
    # Su's figures: LLaMA-2-70B (hidden 8192, 80 layers) holds about a million numbers
    assert rnn_state_size(8192, 80) == 1_310_720 and round(math.log10(rnn_state_size(8192, 80))) == 6
    # for multi-head attention this is exactly one position of KV cache
    assert rnn_state_size(4096, 32) == kv_cache_size(32, 32, 128, 1)
    assert kv_cache_size(80, 8, 128, 0) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"q": torch.zeros(2, 4, 8, dtype=torch.long)}, "q must be a floating-point"),
        ({"k": torch.zeros(2, 5, 8)}, "q, k, v must be"),
        ({"v": torch.zeros(3, 4, 8)}, "q, k, v must be"),
        ({"q": torch.zeros(2, 6, 8), "k": torch.zeros(2, 4, 8)}, "q must hold between 1 and n = 4"),
        ({"scale": 0.0}, "scale must be a finite number > 0"),
        ({"scale": math.nan}, "scale must be a finite number > 0"),
        ({"stable": 1}, "stable must be True or False"),
    ],
)
def test_recurrent_attention_refuses_bad_arguments(kwargs, match):
    args = {"q": torch.zeros(2, 4, 8), "k": torch.zeros(2, 4, 8), "v": torch.zeros(2, 4, 8), **kwargs}
    with pytest.raises(ValueError, match=match):
        recurrent_attention(args.pop("q"), args.pop("k"), args.pop("v"), **args)


def test_decoders_refuse_bad_arguments():
    model = _tiny_model(n_layers=1)
    good = torch.tensor([1, 2])
    for bad, match in [
        (torch.zeros(1, 2, dtype=torch.long), "prompt must be a 1-D"),
        (torch.zeros(0, dtype=torch.long), "prompt must be a 1-D"),
        (torch.tensor([0.5, 1.0]), "prompt must be a 1-D"),
        (torch.tensor([1, 256]), r"prompt token ids must lie in \[0, 256\)"),
    ]:
        with pytest.raises(ValueError, match=match):
            greedy_decode_cached(model, bad, 2)
    with pytest.raises(ValueError, match="n_new must be a positive integer"):
        greedy_decode_recompute(model, good, 0)
    with pytest.raises(ValueError, match="method must be one of"):
        greedy_decode_recompute(model, good, 1, method="cached")
    with pytest.raises(ValueError, match="model must be a rope_lib.companion.model.RoPELM"):
        greedy_decode_cached(torch.nn.Linear(2, 2), good, 1)
    log_n = RoPELM(ModelConfig(d_model=8, n_layers=1, n_heads=1, head_dim=8, d_ff=8, train_log_n=True))
    with pytest.raises(ValueError, match="train_log_n must be False"):
        greedy_decode_recompute(log_n, good, 1)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        rnn_state_size(0, 2)
    with pytest.raises(ValueError, match="position must be a non-negative integer"):
        recurrent_block_evaluations(2, -1)
    with pytest.raises(ValueError, match="length must be a non-negative integer"):
        kv_cache_size(2, 2, 8, -1)
