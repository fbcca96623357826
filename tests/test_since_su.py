"""rope_lib.since_su: the methods after Su's series (p-RoPE, HoPE, Resonance RoPE, PoSE, SSMax, Llama 4's temperature
and NoPE layers, VO-RoPE, Dual Chunk Attention), each against a reference written independently (a loop or a closed
form computed another way), the edge cases that define the method, and the refusal of bad arguments."""

from __future__ import annotations

import math

import pytest
import torch

import rope_lib
from rope_lib import since_su as S

# ------------------------------------------------------------------------------------------------------------------
# p-RoPE


def _theta(d: int, base: float, i: int) -> float:
    return base ** (-2.0 * i / d)


@pytest.mark.parametrize("d, p, kept", [(64, 0.75, 24), (64, 0.25, 8), (10, 0.3, 1), (100, 0.58, 29), (8, 0.5, 2)])
def test_p_rope_keeps_the_highest_frequencies(d, p, kept):
    theta = S.p_rope_frequencies(d, 500.0, p)
    assert theta.dtype == torch.float64 and theta.shape == (d // 2,)
    expected = [_theta(d, 500.0, i) if i < kept else 0.0 for i in range(d // 2)]
    assert theta.tolist() == pytest.approx(expected, rel=1e-15, abs=0.0)
    assert int((theta > 0).sum()) == kept


def test_p_rope_ends_are_rope_and_nope():
    assert torch.equal(S.p_rope_frequencies(32, 10000.0, 1.0), rope_lib.inv_freq(32, 10000.0))
    assert torch.equal(S.p_rope_frequencies(32, 10000.0, 0.0), torch.zeros(16, dtype=torch.float64))
    # a zero frequency leaves its pair unrotated: apply_rope passes it through at any position
    x = torch.randn(1, 3, 8, dtype=torch.float64)
    out = rope_lib.apply_rope(x, torch.tensor([0, 5, 1000]), S.p_rope_frequencies(8, 10000.0, 0.5))
    assert torch.equal(out[..., [2, 3, 6, 7]], x[..., [2, 3, 6, 7]])  # half-split pairs 2, 3 are (2, 6), (3, 7)
    assert not torch.allclose(out[..., [1, 5]], x[..., [1, 5]])


# ------------------------------------------------------------------------------------------------------------------
# HoPE


@pytest.mark.parametrize("d, base, L", [(64, 10000.0, 512), (128, 500000.0, 4096), (16, 10000.0, 64)])
def test_hope_keeps_pairs_whose_period_fits_the_training_length(d, base, L):
    theta = S.hope_frequencies(d, base, L)
    assert theta.dtype == torch.float64 and theta.shape == (d // 2,)
    for i in range(d // 2):
        period = 2 * math.pi * base ** (2.0 * i / d)
        assert theta[i].item() == (pytest.approx(_theta(d, base, i), rel=1e-15) if period <= L else 0.0), i
    assert 0 < int((theta > 0).sum()) < d // 2  # these cases cut inside the band


def test_hope_extremes():
    d = 16
    assert torch.equal(S.hope_frequencies(d, 10000.0, 10**9), rope_lib.inv_freq(d, 10000.0))  # every period fits
    assert torch.equal(S.hope_frequencies(d, 10000.0, 6), torch.zeros(d // 2, dtype=torch.float64))  # 2 pi > 6
    assert S.hope_frequencies(d, 10000.0, 7)[0] == 1.0  # period 2 pi <= 7: the fastest pair is kept


# ------------------------------------------------------------------------------------------------------------------
# Resonance RoPE


def test_resonance_rounds_every_wavelength_by_default():
    d, base = 64, 10000.0
    theta = S.resonance_frequencies(d, base)
    for i in range(d // 2):
        wavelength = round(2 * math.pi * base ** (2.0 * i / d))
        assert theta[i].item() == pytest.approx(2 * math.pi / wavelength, rel=1e-14)
        assert abs(2 * math.pi / theta[i].item() - wavelength) < 1e-9 * wavelength
    assert not torch.allclose(theta, rope_lib.inv_freq(d, base), rtol=1e-6)  # rounding moved them


def test_resonance_with_a_training_length_rounds_only_pre_critical_pairs():
    d, base, L = 64, 10000.0, 200
    theta, plain = S.resonance_frequencies(d, base, L), rope_lib.inv_freq(d, base)
    pre = [i for i in range(d // 2) if 2 * math.pi * base ** (2.0 * i / d) <= L]
    assert 0 < len(pre) < d // 2
    for i in range(d // 2):
        wavelength = 2 * math.pi / theta[i].item()
        if i in pre:
            assert abs(wavelength - round(wavelength)) < 1e-9 and theta[i] != plain[i]
        else:
            assert theta[i] == plain[i]  # bit for bit
    assert torch.equal(theta[pre], S.resonance_frequencies(d, base)[pre])


# ------------------------------------------------------------------------------------------------------------------
# PoSE


def _chunks(ids: torch.Tensor) -> list[list[int]]:
    """Maximal runs of consecutive ids."""
    out = [[int(ids[0])]]
    for a, b in zip(ids[:-1].tolist(), ids[1:].tolist()):
        if b == a + 1:
            out[-1].append(b)
        else:
            out.append([b])
    return out


@pytest.mark.parametrize("window, target, n_chunks", [(16, 64, 2), (16, 64, 3), (9, 9, 2), (12, 100, 4), (5, 50, 1)])
def test_pose_ids_are_increasing_start_at_zero_and_stay_below_the_target(window, target, n_chunks):
    g = torch.Generator().manual_seed(window + target + n_chunks)
    for _ in range(200):
        ids = S.pose_position_ids(window, target, n_chunks, generator=g)
        assert ids.dtype == torch.int64 and ids.shape == (window,)
        assert ids[0] == 0  # the first chunk is not shifted (u_0 = 0)
        assert bool((ids[1:] > ids[:-1]).all()) and ids[-1] < target
        assert len(_chunks(ids)) <= n_chunks
    if target == window:  # no room to skip: the ids are the plain ones
        assert torch.equal(ids, torch.arange(window))


def test_pose_first_chunk_length_and_bias_follow_the_authors_code():
    # train_pose.py: first chunk length uniform on 1..(w+1)//2, second chunk's bias uniform on 0..T-w
    w, T = 9, 30
    g = torch.Generator().manual_seed(1)
    firsts, biases = set(), set()
    for _ in range(1500):
        ids = S.pose_position_ids(w, T, 2, generator=g)
        jumps = [k for k in range(1, w) if ids[k] != ids[k - 1] + 1]
        assert len(jumps) <= 1
        if jumps:  # the first chunk is ids[:cut], the second carries the bias ids[cut] - cut
            firsts.add(jumps[0])
            biases.add(int(ids[jumps[0]]) - jumps[0])
        else:  # bias 0: the two chunks are contiguous and the cut cannot be seen
            biases.add(0)
    assert firsts == set(range(1, (w + 1) // 2 + 1))
    assert biases == set(range(0, T - w + 1))


def test_pose_covers_every_relative_distance_up_to_the_target():
    w, T = 8, 40
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(600):
        ids = S.pose_position_ids(w, T, 2, generator=g)
        seen.update((ids[:, None] - ids[None, :]).flatten().tolist())
    assert {r for r in seen if r >= 0} == set(range(T))


def test_pose_is_deterministic_given_a_generator():
    def draw(seed: int) -> torch.Tensor:
        return S.pose_position_ids(16, 256, 3, torch.Generator().manual_seed(seed))

    assert torch.equal(draw(7), draw(7))
    assert any(not torch.equal(draw(7), draw(s)) for s in range(8, 12))


# ------------------------------------------------------------------------------------------------------------------
# SSMax and Llama 4's temperature and NoPE layers


def test_ssmax_is_s_log_n_with_n_keys_seen():
    positions = torch.tensor([[0, 1, 2], [9, 99, 4095]])
    out = S.ssmax_scale(positions, 0.43)
    assert out.dtype == torch.float64 and out.shape == (2, 3)
    expected = [[0.43 * math.log(m + 1) for m in row] for row in positions.tolist()]
    assert out.tolist() == [pytest.approx(row, rel=1e-14) for row in expected]
    assert S.ssmax_scale(0, 5.0).item() == 0.0  # one key: nothing to sharpen
    assert S.ssmax_scale(torch.tensor([3.0]), -1.0).item() == pytest.approx(-math.log(4), rel=1e-15)


def test_llama4_temperature_matches_its_formula():
    positions = list(range(0, 40)) + [8190, 8191, 16382, 16383, 10**6]
    out = S.llama4_attention_temperature(torch.tensor(positions))
    assert out.dtype == torch.float64
    for m, t in zip(positions, out.tolist()):
        assert t == pytest.approx(math.log(math.floor((m + 1) / 8192) + 1) * 0.1 + 1, rel=1e-15), m
    small = S.llama4_attention_temperature(torch.arange(20), floor_scale=8, attn_scale=0.5)
    assert torch.equal(small[:7], torch.ones(7, dtype=torch.float64))  # m < floor_scale - 1: no change
    assert small[7].item() == pytest.approx(1 + 0.5 * math.log(2), rel=1e-15)  # m + 1 = 8: the first step
    assert small[15].item() == pytest.approx(1 + 0.5 * math.log(3), rel=1e-15)
    assert out[positions.index(8190)] == 1.0 and out[positions.index(8191)] > 1.0


def test_nope_layers_are_every_fourth_counting_from_one():
    # transformers' Llama4TextConfig default: no_rope_layers[i] = int((i + 1) % 4 != 0), a 0 marks a NoPE layer
    flags = [int((i + 1) % 4 != 0) for i in range(48)]
    assert S.nope_layers(48) == tuple(i for i, use_rope in enumerate(flags) if not use_rope)
    assert S.nope_layers(48)[:3] == (3, 7, 11) and len(S.nope_layers(48)) == 12
    assert S.nope_layers(10, every=3) == (2, 5, 8)
    assert S.nope_layers(3) == () and S.nope_layers(5, every=1) == (0, 1, 2, 3, 4)


# ------------------------------------------------------------------------------------------------------------------
# VO-RoPE


def _rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Half-split rotation of one vector x (d,) by per-pair angles (d/2,), written out pair by pair."""
    h = x.shape[-1] // 2
    out = x.clone()
    for p in range(h):
        c, s = math.cos(angle[p]), math.sin(angle[p])
        out[p], out[p + h] = c * x[p] - s * x[p + h], s * x[p] + c * x[p + h]
    return out


def _vo_reference(q, k, v, theta, positions, causal, rotate_qk):
    """o_i = sum_j p_ij R_{j-i} v_j with p from (R_i q_i).(R_j k_j) (or q_i.k_j), by loops over i and j."""
    n, d = q.shape
    out = torch.zeros_like(v)
    for i in range(n):
        logits = []
        for j in range(n):
            if causal and j > i:
                logits.append(-math.inf)
                continue
            qi = _rotate(q[i], positions[i] * theta) if rotate_qk else q[i]
            kj = _rotate(k[j], positions[j] * theta) if rotate_qk else k[j]
            logits.append(float(qi @ kj) / math.sqrt(d))
        top = max(logits)
        weights = [math.exp(z - top) for z in logits]
        total = sum(weights)
        for j in range(n):
            if weights[j]:
                out[i] += weights[j] / total * _rotate(v[j], (positions[j] - positions[i]) * theta)
    return out


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("rotate_qk", [True, False])
def test_vo_rope_equals_the_relative_sum(causal, rotate_qk):
    torch.manual_seed(0)
    n, d = 6, 8
    q, k, v = (torch.randn(n, d, dtype=torch.float64) for _ in range(3))
    theta = rope_lib.inv_freq(d, 100.0)
    positions = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    out = S.vo_rope_attention(q, k, v, theta, causal=causal, rotate_qk=rotate_qk)
    ref = _vo_reference(q, k, v, theta, positions, causal, rotate_qk)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    hidden = torch.ones(n, n).triu(1).bool() if causal else torch.zeros(n, n, dtype=torch.bool)
    plain = torch.softmax(((q @ k.T) / math.sqrt(d)).masked_fill(hidden, -math.inf), -1) @ v
    if not rotate_qk:  # same weights as plain attention; only the value rotation differs
        assert not torch.allclose(out, plain, atol=1e-3)


def test_vo_rope_depends_on_relative_positions_only():
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, 7, 8, dtype=torch.float64) for _ in range(3))
    theta = rope_lib.inv_freq(8, 10000.0)
    base = S.vo_rope_attention(q, k, v, theta)
    shifted = S.vo_rope_attention(q, k, v, theta, positions=torch.arange(7) + 1234)
    torch.testing.assert_close(shifted, base, rtol=1e-10, atol=1e-10)
    stretched = S.vo_rope_attention(q, k, v, theta, positions=torch.arange(7) * 2)  # relative positions change
    assert not torch.allclose(stretched, base, atol=1e-4)


def test_vo_rope_helpers_invert_each_other_and_zero_frequencies_give_plain_attention():
    torch.manual_seed(2)
    x = torch.randn(4, 5, 16, dtype=torch.float64)
    theta, pos = rope_lib.inv_freq(12, 10000.0), torch.arange(5) + 3  # partial rotary: 12 of 16 features
    torch.testing.assert_close(S.unrotate_output(S.rotate_values(x, pos, theta), pos, theta), x)
    q, k, v = (torch.randn(5, 16, dtype=torch.float64) for _ in range(3))
    none = torch.zeros(8, dtype=torch.float64)
    scores = (q @ k.T / 4.0).masked_fill(torch.ones(5, 5).triu(1).bool(), -math.inf)
    torch.testing.assert_close(S.vo_rope_attention(q, k, v, none), torch.softmax(scores, -1) @ v)


def test_vo_rope_keeps_the_input_dtype():
    q = torch.randn(4, 8, dtype=torch.bfloat16)
    out = S.vo_rope_attention(q, q, q, rope_lib.inv_freq(8))
    assert out.dtype == torch.bfloat16 and out.shape == (4, 8)


# ------------------------------------------------------------------------------------------------------------------
# Dual Chunk Attention


# seq 10, chunk_size 4, local_window 1: chunk_len 3, chunks {0,1,2} {3,4,5} {6,7,8} {9}; key index j mod 3;
# successive-chunk query index min(i mod 3 + 3, 4); inter-chunk query index min(2*3 - 1, 4) = 4. Lower triangle:
HAND = [
    [0],
    [1, 0],
    [2, 1, 0],
    [3, 2, 1, 0],  # succ: query index 3 -> 3-0, 3-1, 3-2 (the true distances)
    [4, 3, 2, 1, 0],  # succ: 4 - (0,1,2) = true distances
    [4, 3, 2, 2, 1, 0],  # succ clipped: min(5, 4) = 4; true distances would be 5, 4, 3
    [4, 3, 2, 3, 2, 1, 0],  # inter (chunk 0): 4 - (0,1,2); succ (chunk 1): 3 - (0,1,2)
    [4, 3, 2, 4, 3, 2, 1, 0],
    [4, 3, 2, 4, 3, 2, 2, 1, 0],
    [4, 3, 2, 4, 3, 2, 3, 2, 1, 0],
]


def test_dual_chunk_matches_a_hand_computed_example():
    rel = S.dual_chunk_relative_position(10, 4, 1)
    assert rel.dtype == torch.int64 and rel.shape == (10, 10)
    for i, row in enumerate(HAND):
        assert rel[i, : i + 1].tolist() == row, i
    assert torch.equal(rel.triu(1), (torch.arange(10)[:, None] - torch.arange(10)[None, :]).triu(1))


def _dca_reference(n: int, chunk_size: int, w: int) -> list[list[int]]:
    """The three query index lists of the paper (P_q^Intra, P_q^Succ, P_q^Inter) and P_k, then P_q - P_k."""
    s = chunk_size - w  # tokens per chunk
    p_k = [j % s for j in range(n)]
    p_intra = [i % s for i in range(n)]
    p_succ = [min(s + i % s, chunk_size) for i in range(n)]
    p_inter = [min(2 * s - 1, chunk_size)] * n
    out = []
    for i in range(n):
        row = []
        for j in range(i + 1):
            behind = i // s - j // s
            p_q = p_intra if behind == 0 else (p_succ if behind == 1 else p_inter)
            row.append(p_q[i] - p_k[j])
        out.append(row)
    return out


@pytest.mark.parametrize("n, chunk_size, w", [(50, 12, 3), (64, 16, 0), (40, 9, 5), (7, 20, 4), (33, 8, 7)])
def test_dual_chunk_properties(n, chunk_size, w):
    rel = S.dual_chunk_relative_position(n, chunk_size, w)
    ref = _dca_reference(n, chunk_size, w)
    assert [rel[i, : i + 1].tolist() for i in range(n)] == ref
    visible = torch.ones(n, n).tril().bool()
    true = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    s = chunk_size - w
    same_chunk = (torch.arange(n)[:, None] // s) == (torch.arange(n)[None, :] // s)
    assert torch.equal(rel[same_chunk & visible], true[same_chunk & visible])  # intra-chunk: plain i - j
    assert int(rel[visible].min()) == 0 and bool((rel[visible] <= true[visible]).all())
    # never past chunk_size (so below any pretraining length > chunk_size); once an inter-chunk query exists the
    # largest is its index, min(2 chunk_len - 1, chunk_size), seen by the key at the start of chunk 0
    assert int(rel[visible].max()) <= chunk_size
    if n > 2 * s:
        assert int(rel[visible].max()) == min(2 * s - 1, chunk_size)
    # the first w + 1 queries of a chunk see the previous chunk at the true distance (locality kept)
    for i in range(s, n):
        if i % s <= w:
            prev = range((i // s - 1) * s, (i // s) * s)
            assert [int(rel[i, j]) for j in prev] == [i - j for j in prev]


def test_dual_chunk_without_local_window_uses_chunks_of_chunk_size():
    rel = S.dual_chunk_relative_position(12, 4, 0)
    assert rel[5, 4].item() == 1 and rel[4, 3].item() == 1  # successive chunk: min(0 + 4, 4) - (3 mod 4) = 1
    assert rel[8, 0].item() == 4 and rel[11, 3].item() == 1  # inter-chunk: min(2*4 - 1, 4) - (j mod 4)


# ------------------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: S.p_rope_frequencies(7, 10000.0, 0.5), "head_dim"),
        (lambda: S.p_rope_frequencies(0), "head_dim"),
        (lambda: S.p_rope_frequencies(8, 1.0, 0.5), "base"),
        (lambda: S.p_rope_frequencies(8, 10000.0, 1.5), "p"),
        (lambda: S.p_rope_frequencies(8, 10000.0, -0.1), "p"),
        (lambda: S.p_rope_frequencies(8, 10000.0, float("nan")), "p"),
        (lambda: S.hope_frequencies(8, 10000.0, 0), "train_length"),
        (lambda: S.hope_frequencies(8, "1e4", 64), "base"),
        (lambda: S.hope_frequencies(True, 10000.0, 64), "head_dim"),
        (lambda: S.resonance_frequencies(8, 10000.0, 2.5), "train_length"),
        (lambda: S.resonance_frequencies(-2), "head_dim"),
        (lambda: S.pose_position_ids(0, 10), "window"),
        (lambda: S.pose_position_ids(8, 7), "target_length"),
        (lambda: S.pose_position_ids(3, 10, 4), "window"),
        (lambda: S.pose_position_ids(8, 16, 0), "n_chunks"),
        (lambda: S.pose_position_ids(8, 16, 2, generator=0), "generator"),
        (lambda: S.ssmax_scale(torch.tensor([-1, 2]), 1.0), "positions"),
        (lambda: S.ssmax_scale(torch.tensor([1.0, float("inf")]), 1.0), "positions"),
        (lambda: S.ssmax_scale(torch.tensor([True]), 1.0), "positions"),
        (lambda: S.ssmax_scale([1, 2], float("inf")), "s"),
        (lambda: S.llama4_attention_temperature([1, 2], floor_scale=0), "floor_scale"),
        (lambda: S.llama4_attention_temperature([1, 2], attn_scale=None), "attn_scale"),
        (lambda: S.llama4_attention_temperature("abc"), "positions"),
        (lambda: S.nope_layers(0), "n_layers"),
        (lambda: S.nope_layers(8, every=0), "every"),
        (lambda: S.dual_chunk_relative_position(0, 4), "seq_len"),
        (lambda: S.dual_chunk_relative_position(8, 0), "chunk_size"),
        (lambda: S.dual_chunk_relative_position(8, 4, 4), "local_window"),
        (lambda: S.dual_chunk_relative_position(8, 4, -1), "local_window"),
    ],
)
def test_bad_arguments_are_refused_by_name(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


def test_vo_rope_refuses_bad_tensors_by_name():
    q, theta = torch.randn(4, 8), rope_lib.inv_freq(8)
    with pytest.raises(ValueError, match=r"\bq\b"):
        S.vo_rope_attention(q.long(), q, q, theta)
    with pytest.raises(ValueError, match=r"q and k"):
        S.vo_rope_attention(q, torch.randn(5, 8), q, theta)
    with pytest.raises(ValueError, match=r"\bv\b"):
        S.vo_rope_attention(q, q, torch.randn(3, 8), theta)
    with pytest.raises(ValueError, match=r"\bpositions\b"):
        S.vo_rope_attention(q, q, q, theta, positions=torch.arange(3))
    with pytest.raises(ValueError, match=r"\bscale\b"):
        S.vo_rope_attention(q, q, q, theta, scale=-1.0)
    with pytest.raises(ValueError, match=r"\bcausal\b"):
        S.vo_rope_attention(q, q, q, theta, causal=1)
    with pytest.raises(ValueError, match=r"inv_freq"):
        S.vo_rope_attention(q, q, q, rope_lib.inv_freq(16))
