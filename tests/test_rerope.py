"""ReRoPE / Leaky ReRoPE: the definition p(r), reference vs blockwise (values and gradients), plain-RoPE limits,
bf16, decoding from raw keys, argument errors, and that the blockwise path never builds a seq x seq tensor."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

import rope_lib
from rope_lib import apply_rope, inv_freq, rerope_attention, rerope_attention_reference, rerope_decode_step
from rope_lib import rerope as rerope_mod
from rope_lib.decoding import RawKVCache


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These tests run thousands of tiny ops; on a shared 2-core machine intra-op threading only adds
    # synchronisation stalls (5-10x slower), so run them single-threaded and restore the setting afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def qkv(lead, n, d, dv=None, dtype=torch.float32, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    shapes = [(*lead, n, d), (*lead, n, d), (*lead, n, dv or d)]
    return [torch.randn(s, generator=g, dtype=torch.float64).to(dtype).requires_grad_(requires_grad) for s in shapes]


def p_of_r(r: float, window: int, leak, causal: bool = True) -> float:
    """Su's effective relative position, written out directly from the post (sign kept when non-causal)."""
    a = abs(r) if not causal else r
    p = a if a < window else (window if leak is None else window + (a - window) / leak)
    return math.copysign(p, r) if not causal else p


def brute_force(q, k, v, f, window, leak, causal, scale):
    """Score of every (i, j) pair on its own: q_i against k_j rotated by -p(i - j). Float64, loops; tiny sizes only."""
    n, d = q.shape[-2:]
    s = torch.empty(*q.shape[:-1], n, dtype=torch.float64)
    for i in range(n):
        p = torch.tensor([p_of_r(i - j, window, leak, causal) for j in range(n)], dtype=torch.float64)
        k_rot = apply_rope(k.double(), -p, f)  # (R_0 q)^T (R_{-p} k) has relative position p
        s[..., i, :] = (q.double()[..., i : i + 1, :] @ k_rot.transpose(-1, -2))[..., 0, :]
    s = s * scale
    if causal:
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, -1) @ v.double()


def plain_rope_sdpa(q, k, v, f, causal=True):
    pos = torch.arange(q.shape[-2])
    return F.scaled_dot_product_attention(apply_rope(q, pos, f), apply_rope(k, pos, f), v, is_causal=causal)


# ----------------------------------------------------------------------------------------- the definition


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("leak", [None, 3.0, 0.5])
@pytest.mark.parametrize("window", [1, 3, 6, 20])
def test_reference_is_sus_definition(window, leak, causal):
    """The two-matrix merge equals scoring each pair at p(r) = min(r, w) / w + (r - w)/k (and |r| non-causal)."""
    q, k, v = qkv((2,), 9, 8, dtype=torch.float64, seed=window)
    f = inv_freq(8)
    got = rerope_attention_reference(q, k, v, f, window=window, leaky_k=leak, causal=causal)
    want = brute_force(q, k, v, f, window, leak, causal, 1 / math.sqrt(8))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------- blockwise vs reference


def _random_cases(count: int, seed: int = 1234):
    rng = random.Random(seed)
    cases = []
    for c in range(count):
        n = rng.choice([1, 2, 5, 17, 33, 64, 70, 101])
        d = rng.choice([8, 16, 32])
        cases.append(
            dict(
                lead=rng.choice([(), (3,), (2, 2)]),
                n=n,
                d=d,
                dv=rng.choice([d, 6]),
                rotary=rng.choice([d, d // 2]),  # partial rotary half the time
                window=rng.randint(1, n + 2),
                leak=rng.choice([None, None, 2.0, 7.5, 16.0, 64.0]),
                causal=rng.random() < 0.8,
                block_q=rng.choice([4, 7, 16, 32]),
                block_k=rng.choice([3, 8, 29, 64]),
                per_query_scale=rng.random() < 0.3,
                seed=c,
            )
        )
    return cases


def _case_id(c) -> str:
    return "n{n}-w{window}-k{leak}-c{causal}-b{block_q}x{block_k}".format(**c)


@pytest.mark.parametrize("case", _random_cases(40), ids=_case_id)
def test_blockwise_matches_reference_fp32(case):
    c = case
    q, k, v = qkv(c["lead"], c["n"], c["d"], c["dv"], seed=c["seed"], requires_grad=True)
    f = inv_freq(c["rotary"])
    scale = None
    if c["per_query_scale"]:  # log-n style: max(1, log n / log L) / sqrt(d), one per query row
        pos = torch.arange(1, c["n"] + 1, dtype=torch.float32)
        scale = (torch.clamp(torch.log(pos) / math.log(4), min=1.0) / math.sqrt(c["d"]))[:, None]
    kw = dict(window=c["window"], leaky_k=c["leak"], causal=c["causal"], scale=scale)
    got = rerope_attention(q, k, v, f, block_q=c["block_q"], block_k=c["block_k"], **kw)
    want = rerope_attention_reference(q, k, v, f, **kw)
    assert got.shape == want.shape == v.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(got)
    g_got = torch.autograd.grad(got, (q, k, v), grad_out)
    g_want = torch.autograd.grad(want, (q, k, v), grad_out)
    for name, a, b in zip("qkv", g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"d{name}: {m}")


@pytest.mark.parametrize("case", [c for c in _random_cases(40) if c["causal"]][:12], ids=_case_id)
def test_fused_forward_equals_the_tiles(case, monkeypatch):
    """On a CPU the causal forward runs as fused pieces merged by log-sum-exp (rerope._forward_fused); the tiles
    are the other construction of the same attention. Windows are raised to >= 32 so the fused path applies."""
    import rope_lib.rerope as R

    if R._FUSED_CPU is None:
        pytest.skip("this torch has no fused CPU attention with log-sum-exp")
    c = dict(case, window=max(case["window"], 32), dv=case["d"])
    q, k, v = qkv(c["lead"], c["n"], c["d"], c["dv"], seed=c["seed"], requires_grad=True)
    f, kw = inv_freq(c["rotary"]), dict(window=c["window"], leaky_k=c["leak"], causal=True)
    calls = []
    monkeypatch.setattr(R, "_forward_fused", lambda *a, _f=R._forward_fused: calls.append(1) or _f(*a))
    fused = rerope_attention(q, k, v, f, **kw)
    assert calls, "the fused forward did not run"
    monkeypatch.setattr(R, "FUSED_MIN_WINDOW", 10**9)
    tiles = rerope_attention(q, k, v, f, **kw)
    torch.testing.assert_close(fused, tiles, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(fused)  # the backward recomputes from the forward's log-sum-exp: it must agree too
    for a, b in zip(torch.autograd.grad(fused, (q, k, v), grad_out), torch.autograd.grad(tiles, (q, k, v), grad_out)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("leak", [None, 2.0, 64.0])
def test_every_window_fp32(leak):
    """All windows 1..seq (and beyond) on one shape whose length is not a multiple of the blocks."""
    n = 23
    q, k, v = qkv((2,), n, 8, seed=5, requires_grad=True)
    f = inv_freq(8)
    for window in range(1, n + 2):
        got = rerope_attention(q, k, v, f, window=window, leaky_k=leak, block_q=5, block_k=4)
        want = rerope_attention_reference(q, k, v, f, window=window, leaky_k=leak)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        g_got = torch.autograd.grad(got.square().sum(), (q, k, v))
        g_want = torch.autograd.grad(want.square().sum(), (q, k, v))
        for a, b in zip(g_got, g_want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_gradcheck_float64():
    q, k, v = qkv((), 7, 4, dtype=torch.float64, seed=3, requires_grad=True)
    f = inv_freq(4)
    for leak, causal in [(4.0, True), (2.0, False)]:

        def fn(q, k, v, leak=leak, causal=causal):
            return rerope_attention(q, k, v, f, window=2, leaky_k=leak, causal=causal, block_q=3, block_k=2)

        assert torch.autograd.gradcheck(fn, (q, k, v))


def test_scale_tensor_gets_gradient():
    q, k, v = qkv((), 20, 8, seed=2)
    s1 = torch.full((20, 1), 0.3, requires_grad=True)
    s2 = torch.full((20, 1), 0.3, requires_grad=True)
    a = rerope_attention(q, k, v, inv_freq(8), window=4, scale=s1, block_q=8, block_k=8)
    b = rerope_attention_reference(q, k, v, inv_freq(8), window=4, scale=s2)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    (ga,), (gb,) = torch.autograd.grad(a.sum(), s1), torch.autograd.grad(b.sum(), s2)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------ plain-RoPE limits


@pytest.mark.parametrize("leak", [None, 8.0])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window_factor", [1, 3])
def test_window_at_least_seq_is_plain_rope(leak, causal, window_factor):
    n = 45
    q, k, v = qkv((2, 3), n, 16, seed=7)
    f = inv_freq(16)
    want = plain_rope_sdpa(q, k, v, f, causal=causal)
    for fn in (rerope_attention, rerope_attention_reference):
        got = fn(q, k, v, f, window=window_factor * n, leaky_k=leak, causal=causal)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_leak_one_is_plain_rope_for_any_window():
    """k = 1: w + (r - w)/1 = r, nothing is clipped."""
    q, k, v = qkv((2,), 40, 16, seed=8)
    f = inv_freq(16)
    want = plain_rope_sdpa(q, k, v, f)
    for window in (1, 5, 39):
        got = rerope_attention(q, k, v, f, window=window, leaky_k=1.0, block_q=16, block_k=8)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_window_one_rerope_ignores_distance():
    """ReRoPE with w = 1: every past key is scored at relative position 1, so permuting the past keys (with their
    values) leaves the newest query's output unchanged."""
    q, k, v = qkv((), 12, 8, seed=9)
    f = inv_freq(8)
    perm = torch.cat((torch.randperm(11, generator=torch.Generator().manual_seed(0)), torch.tensor([11])))
    a = rerope_attention(q, k, v, f, window=1)[-1]
    b = rerope_attention(q, k[perm], v[perm], f, window=1)[-1]
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------ bf16


@pytest.mark.parametrize("leak", [None, 16.0])
def test_bf16_close_to_fp32(leak):
    q, k, v = qkv((2, 2), 130, 32, seed=11)
    qb, kb, vb = (t.to(torch.bfloat16).requires_grad_() for t in (q, k, v))
    f = inv_freq(32)
    out = rerope_attention(qb, kb, vb, f, window=16, leaky_k=leak, block_q=32, block_k=64)
    assert out.dtype == torch.bfloat16
    # same (bf16-rounded) inputs in fp32: the only difference left is the final rounding to bf16
    want = rerope_attention_reference(qb.float(), kb.float(), vb.float(), f, window=16, leaky_k=leak)
    torch.testing.assert_close(out.float(), want, rtol=1.6e-2, atol=1e-2)
    out.float().square().sum().backward()
    assert qb.grad.dtype == torch.bfloat16 and torch.isfinite(qb.grad.float()).all()


# ---------------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("log_n", [False, True])
@pytest.mark.parametrize("leak", [None, 4.0])
def test_decode_reproduces_prefill(leak, log_n):
    n, d, window, train_len = 40, 16, 6, 10
    q, k, v = qkv((2, 3), n, d, seed=13)
    f = inv_freq(d)
    scale = None
    if log_n:  # max(1, log n / log L) / sqrt(d), n = number of tokens the query sees
        log_n = torch.log(torch.arange(1, n + 1.0)) / math.log(train_len)
        scale = (torch.clamp(log_n, min=1.0) / math.sqrt(d))[:, None]
    prefill = rerope_attention(q, k, v, f, window=window, leaky_k=leak, scale=scale, block_q=16, block_k=8)
    cache = RawKVCache()
    for t in range(n):
        cache.append(k[..., t : t + 1, :], v[..., t : t + 1, :])  # raw keys, appended before the step
        step_scale = None if scale is None else scale[t : t + 1]
        out = rerope_decode_step(q[..., t : t + 1, :], cache, f, window=window, leaky_k=leak, scale=step_scale)
        torch.testing.assert_close(out, prefill[..., t : t + 1, :], rtol=1e-5, atol=1e-6)


def test_rotated_key_cache_would_be_wrong():
    """Why the cache holds raw keys: rotating each key once at its own position (the plain-RoPE cache) gives plain
    RoPE scores, which differ from ReRoPE as soon as a key falls outside the window."""
    n, d = 20, 8
    q, k, v = qkv((), n, d, seed=14)
    f = inv_freq(d)
    rerope_last = rerope_attention(q, k, v, f, window=4)[-1]
    rope_last = plain_rope_sdpa(q, k, v, f)[-1]
    assert (rerope_last - rope_last).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(window=0), "window"),
        (dict(window=-3), "window"),
        (dict(window=2.5), "window"),
        (dict(window=4.0), "window"),
        (dict(window=True), "window"),
        (dict(window="4"), "window"),
        (dict(window=4, leaky_k=0), "leaky_k"),
        (dict(window=4, leaky_k=-2.0), "leaky_k"),
        (dict(window=4, leaky_k=float("nan")), "leaky_k"),
        (dict(window=4, leaky_k=float("inf")), "leaky_k"),
        (dict(window=4, scale=-1.0), "scale"),
        (dict(window=4, scale=torch.ones(7)), "scale"),
        (dict(window=4, scale="big"), "scale"),
    ],
)
def test_bad_arguments(kwargs, match):
    q, k, v = qkv((2,), 6, 8)
    for fn in (rerope_attention, rerope_attention_reference):
        with pytest.raises(ValueError, match=match):
            fn(q, k, v, inv_freq(8), **kwargs)


def test_bad_shapes():
    f = inv_freq(8)
    q, k, v = qkv((2,), 6, 8)
    for fn in (rerope_attention, rerope_attention_reference):
        with pytest.raises(ValueError, match="q and k"):
            fn(q, k[..., :5, :], v, f, window=2)
        with pytest.raises(ValueError, match="v must"):
            fn(q, k, v[..., :5, :], f, window=2)
        with pytest.raises(ValueError, match="head_dim"):
            fn(q[..., :7], k[..., :7], v, inv_freq(6)[:3], window=2)
        with pytest.raises(ValueError, match="inv_freq"):
            fn(q, k, v, inv_freq(10), window=2)
        with pytest.raises(ValueError, match="dtype"):
            fn(q, k.double(), v, f, window=2)
        with pytest.raises(ValueError, match="q must"):
            fn(q.long(), k, v, f, window=2)
    with pytest.raises(ValueError, match="block_q"):
        rerope_attention(q, k, v, f, window=2, block_q=0)


def test_decode_bad_arguments():
    f = inv_freq(8)
    q, k, v = qkv((2,), 3, 8)
    cache = RawKVCache()
    with pytest.raises(ValueError, match="cache"):
        rerope_decode_step(q[..., :1, :], cache, f, window=2)
    cache.append(k, v)
    with pytest.raises(ValueError, match="q must"):
        rerope_decode_step(q[..., :2, :], cache, f, window=2)
    with pytest.raises(ValueError, match="window"):
        rerope_decode_step(q[..., :1, :], cache, f, window=0)
    with pytest.raises(ValueError, match="leaky_k"):
        rerope_decode_step(q[..., :1, :], cache, f, window=2, leaky_k=0.0)
    with pytest.raises(ValueError, match="cache"):
        rerope_decode_step(q[..., :1, :], {"keys": k}, f, window=2)


# ---------------------------------------------------------------------------------------- memory bounds


def test_tiles_stay_within_block_sizes(monkeypatch):
    seen = []
    monkeypatch.setattr(rerope_mod, "_TILE_HOOK", seen.append)
    q, k, v = qkv((2,), 300, 8, requires_grad=True)
    out = rerope_attention(q, k, v, inv_freq(8), window=37, leaky_k=4.0, block_q=32, block_k=64)
    n_forward = len(seen)
    out.sum().backward()
    assert n_forward > 0 and len(seen) == 2 * n_forward  # the backward recomputes the same tiles
    assert max(s[1] for s in seen) <= 32 and max(s[2] for s in seen) <= 64
    # causal: tiles above the diagonal are skipped, so fewer than the full grid's key columns are visited
    assert sum(s[1] * s[2] for s in seen[:n_forward]) < 0.6 * 300 * 300


def test_no_seq_by_seq_tensor_anywhere():
    """Spy on every aten op (forward and backward): no intermediate has seq*seq elements per batch entry."""
    dispatch = pytest.importorskip("torch.utils._python_dispatch")

    class Largest(dispatch.TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self.numel = max(self.numel, t.numel())
            return out

    n, batch = 512, 2
    q, k, v = qkv((batch,), n, 8, requires_grad=True)
    f = inv_freq(8)
    with Largest() as spy:
        out = rerope_attention(q, k, v, f, window=50, leaky_k=8.0, block_q=64, block_k=128)
        out.sum().backward()
    assert spy.numel <= batch * 64 * 128 < batch * n * n / 8
    with Largest() as control:  # the spy does see an n x n matrix when one is made
        rerope_attention_reference(q.detach(), k.detach(), v.detach(), f, window=50)
    assert control.numel >= batch * n * n


def test_exported():
    assert rope_lib.rerope_attention is rerope_attention
    assert rope_lib.rerope_attention_reference is rerope_attention_reference
    assert rope_lib.rerope_decode_step is rerope_decode_step
    assert rope_lib.rerope_relative_position is rerope_mod.rerope_relative_position


@pytest.mark.parametrize("leak", [None, 0.25, 3.0])
@pytest.mark.parametrize("window", [1, 4, 9])
def test_relative_position_is_the_definition(window, leak):
    r = torch.arange(40, dtype=torch.float64)
    got = rerope_mod.rerope_relative_position(r, window, leak)
    want = torch.tensor([p_of_r(int(x), window, leak, True) for x in r], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------- flex_attention path


@pytest.mark.parametrize("case", _random_cases(24), ids=_case_id)
def test_flex_matches_reference(case):
    """The flex path (eager on CPU: flex_attention's merged log-sum-exps) against the two-matrix reference.

    Forward only: torch 2.13's flex_attention has no backward on CPU (it raises); its gradient is CUDA's to test.
    """
    c = case
    q, k, v = qkv(c["lead"], c["n"], c["d"], c["dv"], seed=c["seed"])
    f = inv_freq(c["rotary"])
    scale = None
    if c["per_query_scale"]:
        pos = torch.arange(1, c["n"] + 1, dtype=torch.float32)
        scale = (torch.clamp(torch.log(pos) / math.log(4), min=1.0) / math.sqrt(c["d"]))[:, None]
    kw = dict(window=c["window"], leaky_k=c["leak"], causal=c["causal"], scale=scale)
    got = rerope_attention(q, k, v, f, implementation="flex", **kw)
    want = rerope_attention_reference(q, k, v, f, **kw)
    assert got.shape == want.shape == v.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("leak", [None, 4.0])
def test_flex_float64_equals_the_definition(causal, leak):
    q, k, v = qkv((2,), 19, 8, dtype=torch.float64, seed=5)
    f = inv_freq(8)
    got = rope_lib.rerope_attention_flex(q, k, v, f, window=4, leaky_k=leak, causal=causal)
    want = brute_force(q, k, v, f, 4, leak, causal, 1 / math.sqrt(8))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_implementation_choice():
    q, k, v = qkv((1, 2), 33, 8, seed=2)
    f = inv_freq(8)
    auto = rerope_attention(q, k, v, f, window=5)  # CPU: auto is the blockwise path (the same code: bitwise)
    assert torch.equal(auto, rerope_attention(q, k, v, f, window=5, implementation="blockwise"))
    assert torch.equal(
        rerope_attention(q, k, v, f, window=5, implementation="reference"),
        rerope_attention_reference(q, k, v, f, window=5),
    )
    with pytest.raises(ValueError, match=r"implementation must be one of \('auto', 'blockwise', 'flex', 'reference'\)"):
        rerope_attention(q, k, v, f, window=5, implementation="triton")
    with pytest.raises(ValueError, match="leaky_k"):
        rerope_attention(q, k, v, f, window=5, leaky_k=0.0, implementation="flex")


# ------------------------------------------------------------------------------------------- key padding mask


def random_mask(lead, n, seed):
    """A bool (..., n) mask with left, right and middle padding and one row of all real tokens."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(*lead, n, generator=g) > 0.3
    flat = mask.view(-1, n)
    flat[0] = True
    if flat.shape[0] > 1:
        flat[1, : n // 3] = False  # left padding
    if flat.shape[0] > 2:
        flat[2, -(n // 4) :] = False  # right padding
    return mask


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("leak", [None, 3.0])
def test_masked_equals_the_real_tokens_alone(causal, leak):
    """Each row with padding gives, at its real slots, the attention of its real tokens alone (brute force, float64,
    an independent construction); padding slots give 0."""
    q, k, v = qkv((4,), 17, 8, dtype=torch.float64, seed=21)
    f = inv_freq(8)
    mask = random_mask((4,), 17, seed=3)
    for impl in ("blockwise", "reference"):
        got = rerope_attention(
            q, k, v, f, window=3, leaky_k=leak, causal=causal, key_padding_mask=mask, implementation=impl, block_q=4
        )
        for b in range(4):
            m = mask[b]
            alone = brute_force(q[b, m], k[b, m], v[b, m], f, 3, leak, causal, 1 / math.sqrt(8))
            torch.testing.assert_close(got[b, m], alone, rtol=1e-12, atol=1e-12)
            assert torch.equal(got[b, ~m], torch.zeros_like(got[b, ~m]))


@pytest.mark.parametrize("seed", range(6))
def test_masked_blockwise_matches_masked_reference(seed):
    """Random masks, shapes, windows, leaks, per-query scales: the blockwise path (compacted real tokens) against the
    reference (which masks the full matrices in place), values and gradients."""
    rng = random.Random(seed)
    lead, n = rng.choice([(3,), (2, 2)]), rng.randint(5, 40)
    causal, leak, window = rng.random() < 0.7, rng.choice([None, 2.0, 0.5]), rng.randint(1, 8)
    q, k, v = qkv(lead, n, 8, seed=seed, requires_grad=True)
    f = inv_freq(8)
    mask = random_mask(lead, n, seed)
    scale = (torch.rand(n, 1, generator=torch.Generator().manual_seed(seed)) + 0.5) / math.sqrt(8)
    kw = dict(window=window, leaky_k=leak, causal=causal, scale=scale, key_padding_mask=mask)
    got = rerope_attention(q, k, v, f, block_q=rng.choice([3, 8, 256]), block_k=rng.choice([2, 5, 512]), **kw)
    want = rerope_attention_reference(q, k, v, f, **kw)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, (q, k, v), grad_out), torch.autograd.grad(want, (q, k, v), grad_out)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_masked_keys_get_zero_weight():
    """Changing the keys and values at padding slots changes nothing; changing a real one does."""
    q, k, v = qkv((2, 2), 20, 8, seed=4)
    f = inv_freq(8)
    mask = random_mask((2, 1), 20, seed=1)  # one mask per batch row, broadcast over the heads
    k2, v2 = k.clone(), v.clone()
    pad = ~mask.expand(2, 2, 20)
    k2[pad], v2[pad] = 100.0, float("nan")  # a NaN would surface if a padding value got any weight, even 0 * NaN
    for impl in ("blockwise", "reference", "flex"):
        a = rerope_attention(q, k, v, f, window=4, key_padding_mask=mask, implementation=impl)
        b = rerope_attention(q, k2, v2, f, window=4, key_padding_mask=mask, implementation=impl)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, equal_nan=False)
    real = mask[0, 0].nonzero()[0, 0]
    k2[0, 0, real] += 1.0
    v2 = v.clone()
    b = rerope_attention(q, k2, v2, f, window=4, key_padding_mask=mask)
    assert (a - b).abs().max() > 1e-4


def test_all_true_mask_is_no_mask():
    q, k, v = qkv((2,), 15, 8, seed=6)
    f = inv_freq(8)
    full = torch.ones(2, 15, dtype=torch.bool)
    for impl in ("blockwise", "reference", "flex"):
        torch.testing.assert_close(
            rerope_attention(q, k, v, f, window=4, key_padding_mask=full, implementation=impl),
            rerope_attention(q, k, v, f, window=4, implementation=impl),
            rtol=1e-6,
            atol=1e-6,
        )


@pytest.mark.parametrize("leak", [None, 4.0])
def test_flex_masked_matches_reference(leak):
    q, k, v = qkv((3,), 23, 8, seed=8)
    f = inv_freq(8)
    mask = random_mask((3,), 23, seed=8)
    for causal in (True, False):
        kw = dict(window=5, leaky_k=leak, causal=causal, key_padding_mask=mask)
        torch.testing.assert_close(
            rope_lib.rerope_attention_flex(q, k, v, f, **kw),
            rerope_attention_reference(q, k, v, f, **kw),
            rtol=1e-5,
            atol=1e-5,
        )


@pytest.mark.parametrize("leak", [None, 4.0])
def test_masked_decode_reproduces_masked_prefill(leak):
    """Decoding slot t from raw keys under the mask (..., t+1) gives row t of the masked prefill; a padding slot
    gives 0."""
    n, d = 30, 8
    q, k, v = qkv((3, 2), n, d, seed=9)
    f = inv_freq(d)
    mask = random_mask((3, 1), n, seed=9)
    scale = (torch.rand(n, 1, generator=torch.Generator().manual_seed(2)) + 0.5) / math.sqrt(d)
    prefill = rerope_attention(q, k, v, f, window=5, leaky_k=leak, scale=scale, key_padding_mask=mask)
    for t in range(n):
        cache = RawKVCache()
        cache.append(k[..., : t + 1, :], v[..., : t + 1, :])
        out = rerope_decode_step(
            q[..., t : t + 1, :], cache, f, window=5, leaky_k=leak, scale=scale[t], key_padding_mask=mask[..., : t + 1]
        )
        torch.testing.assert_close(out, prefill[..., t : t + 1, :], rtol=1e-5, atol=1e-6)


def test_key_padding_mask_bad_arguments():
    f = inv_freq(8)
    q, k, v = qkv((2,), 6, 8)
    for impl in ("blockwise", "reference", "flex"):
        for bad, what in (
            (torch.ones(2, 6), "bool"),
            ([[True] * 6] * 2, "bool"),
            (torch.ones(2, 5, dtype=torch.bool), r"\(2, 6\)"),
            (torch.ones(3, 6, dtype=torch.bool), "broadcastable"),
            (torch.tensor(True), "seq"),
        ):
            with pytest.raises(ValueError, match=f"key_padding_mask.*{what}"):
                rerope_attention(q, k, v, f, window=2, key_padding_mask=bad, implementation=impl)
    cache = RawKVCache()
    cache.append(k, v)
    with pytest.raises(ValueError, match="key_padding_mask"):
        rerope_decode_step(q[..., :1, :], cache, f, window=2, key_padding_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_padding_mask"):
        rerope_decode_step(q[..., :1, :], cache, f, window=2, key_padding_mask=torch.ones(2, 6))
