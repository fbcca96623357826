"""Multimodal RoPE: RoPE-2D against a complex-number reference, RoPE-Tie positions against hand-worked examples and
their laws, M-RoPE position ids and rotation against transformers' Qwen2-VL (the pinned version)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from conftest import ulps_close

from rope_lib import apply_rope, inv_freq
from rope_lib.multimodal import (
    QWEN2_VL_MROPE_SECTION,
    apply_mrope,
    apply_rope_2d,
    apply_rope_axes,
    layout_token_kinds,
    mrope_pair_axes,
    mrope_position_ids,
    mrope_token_kinds,
    rope_2d_inv_freq,
    rope_2d_pair_axes,
    rope_tie_length,
    rope_tie_positions,
)

torch.set_num_threads(1)  # tiny tensors


def reference_rope_axes(x, positions, theta, axis_of_pair, layout="half_split"):
    """Float64 complex reference: pair i is a + ib, multiplied by e^{i p[axis(i)] theta_i}."""
    x = x.to(torch.float64)
    d = 2 * len(theta)
    rot, rest = x[..., :d], x[..., d:]
    z = (
        torch.complex(rot[..., : d // 2], rot[..., d // 2 :])
        if layout == "half_split"
        else torch.complex(rot[..., 0::2], rot[..., 1::2])
    )
    p = torch.as_tensor(positions, dtype=torch.float64)
    angle = torch.stack([p[..., a] * float(th) for a, th in zip(axis_of_pair, theta.tolist())], dim=-1)
    z = z * torch.exp(1j * angle)
    out = torch.cat((z.real, z.imag), -1) if layout == "half_split" else torch.stack((z.real, z.imag), -1).flatten(-2)
    return torch.cat((out, rest), dim=-1)


# ------------------------------------------------------------------------------------------------ RoPE-2D


def test_pair_axes_and_frequencies():
    assert rope_2d_pair_axes(6, "alternate").tolist() == [0, 1, 0, 1, 0, 1]
    assert rope_2d_pair_axes(6, "halves").tolist() == [0, 0, 0, 1, 1, 1]
    b = 10000.0
    torch.testing.assert_close(rope_2d_inv_freq(8, b), torch.tensor([b ** (-i / 4) for i in range(4)]).double())
    halves = torch.tensor([b ** (-4 * j / 8) for j in range(2)] * 2, dtype=torch.float64)
    ulps_close(rope_2d_inv_freq(8, b, split="halves"), halves, ulps=4, scale=0)  # torch's pow vs Python's


@pytest.mark.parametrize("split", ["alternate", "halves"])
@pytest.mark.parametrize("layout", ["half_split", "interleaved"])
def test_rope_2d_matches_complex_reference(split, layout):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 16, generator=g, dtype=torch.float64)
    pos = torch.tensor([[0, 0], [3, 7], [7, 3], [100, 2], [5, 4096]])
    theta = rope_2d_inv_freq(16, split=split)
    axes = [i % 2 for i in range(8)] if split == "alternate" else [0] * 4 + [1] * 4
    got = apply_rope_2d(x, pos, theta, split=split, layout=layout)
    torch.testing.assert_close(got, reference_rope_axes(x, pos, theta, axes, layout), rtol=1e-12, atol=1e-12)


def test_rope_2d_score_depends_only_on_the_2d_offset():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 1, 32, generator=g, dtype=torch.float64)
    theta = rope_2d_inv_freq(32)

    def score(pq, pk):
        return (apply_rope_2d(q, torch.tensor([pq]), theta) * apply_rope_2d(k, torch.tensor([pk]), theta)).sum().item()

    for pq, pk in [((3, 5), (10, 1)), ((1000, 2), (1007, -2)), ((-4, 60), (3, 56))]:
        shifted = score((0, 0), (pk[0] - pq[0], pk[1] - pq[1]))
        assert math.isclose(score(pq, pk), shifted, rel_tol=1e-9, abs_tol=1e-9)
    # and it is not blind to either axis: moving k along x alone, or y alone, changes the score
    assert abs(score((0, 0), (1, 0)) - score((0, 0), (0, 0))) > 1e-3
    assert abs(score((0, 0), (0, 1)) - score((0, 0), (0, 0))) > 1e-3


def test_text_on_the_diagonal_is_rope_1d():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 6, 16, generator=g, dtype=torch.float64)
    n = torch.tensor([0, 1, 2, 50, 999, 12345])
    diag = torch.stack((n, n), -1)
    # alternating split with the text model's frequencies: the text model's RoPE-1D, to the bit (both form the same
    # (6, 8) float64 angles n * theta_i by one correctly rounded product each, then run the same _rotate on them)
    assert torch.equal(apply_rope_2d(x, diag, rope_2d_inv_freq(16)), apply_rope(x, n, inv_freq(16)))
    # axial halves: a RoPE-1D too, but with the frequencies b^(-4j/d) twice, not the text model's
    axial = apply_rope_2d(x, diag, rope_2d_inv_freq(16, split="halves"), split="halves")
    twice = torch.cat((inv_freq(8), inv_freq(8)))
    torch.testing.assert_close(axial, apply_rope(x, n, twice), rtol=1e-12, atol=1e-12)
    assert (axial - apply_rope(x, n, inv_freq(16))).abs().max() > 0.1


def test_apply_rope_axes_partial_rotary_and_broadcast():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 4, 12, generator=g, dtype=torch.float32)  # batch, heads, seq, head_dim
    pos = torch.tensor([[0, 1, 2], [4, 4, 4], [9, 1, 7], [2, 8, 5]])  # (seq, 3): shared by batch and heads
    theta = inv_freq(8)
    axes = [2, 0, 1, 2]
    got = apply_rope_axes(x, pos, theta, axes)
    assert got.dtype == torch.float32 and got.shape == x.shape
    torch.testing.assert_close(got[..., 8:], x[..., 8:], rtol=0, atol=0)  # partial rotary: the tail untouched
    torch.testing.assert_close(got.double(), reference_rope_axes(x, pos, theta, axes), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: apply_rope_2d(torch.zeros(3, 8), torch.zeros(3, 3), inv_freq(8)), r"\(\.\.\., seq, 2\)"),
        (lambda: apply_rope_2d(torch.zeros(3, 8), torch.zeros(4, 2), inv_freq(8)), "seq=3"),
        (lambda: apply_rope_2d(torch.zeros(3, 6), torch.zeros(3, 2), inv_freq(6)), "must be even"),
        (lambda: apply_rope_2d(torch.zeros(3, 8), torch.zeros(3, 2), inv_freq(8), split="diag"), "split must be"),
        (lambda: apply_rope_2d(torch.zeros(3, 8, dtype=torch.long), torch.zeros(3, 2), inv_freq(8)), "floating"),
        (lambda: apply_rope_2d(torch.zeros(3, 8), torch.zeros(3, 2), inv_freq(8), layout="x"), "layout must be"),
        (lambda: apply_rope_axes(torch.zeros(3, 8), torch.zeros(3, 2), inv_freq(8), [0, 1, 2, 0]), "pair_axes"),
        (lambda: apply_rope_axes(torch.zeros(3, 8), torch.zeros(3, 2), inv_freq(8), [0, 1]), "pair_axes"),
        (lambda: rope_2d_inv_freq(6), "multiple of 4"),
        (lambda: rope_2d_pair_axes(3), "even"),
    ],
)
def test_rope_2d_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------------------ RoPE-Tie


def test_rope_tie_hand_example():
    # text "a b", a 2-row x 3-column image, text "c". The image's anchor is b at (1, 1); s = w + 1 = 4,
    # t = h + 1 = 3; patch (r, c) at (1 + 4r, 1 + 3c); the next text token at 1 + 4 * 3 = 13.
    got = rope_tie_positions([("text", 2), ("image", 2, 3), ("text", 1)])
    expected = [[0, 0], [1, 1], [5, 4], [5, 7], [5, 10], [9, 4], [9, 7], [9, 10], [13, 13]]
    assert got.dtype == torch.long and got.tolist() == expected
    assert rope_tie_length([("text", 2), ("image", 2, 3)]) == 13


def test_rope_tie_non_integer_hand_example():
    # same layout, s = (wh + 1)/(h + 1) = 7/3, t = (wh + 1)/(w + 1) = 7/4; the image takes wh = 6 positions
    got = rope_tie_positions([("text", 2), ("image", 2, 3), ("text", 1)], integer=False)
    s, t = Fraction(7, 3), Fraction(7, 4)
    expected = [(0, 0), (1, 1)] + [(1 + r * s, 1 + c * t) for r in (1, 2) for c in (1, 2, 3)] + [(8, 8)]
    assert got.dtype == torch.float64
    assert got.tolist() == [[float(a), float(b)] for a, b in expected]
    assert rope_tie_length([("text", 2), ("image", 2, 3)], integer=False) == 8.0


@pytest.mark.parametrize("integer", [True, False])
def test_rope_tie_image_advances_text_by_its_span(integer):
    for h in range(1, 6):
        for w in range(1, 6):
            advance = rope_tie_length([("text", 3), ("image", h, w)], integer=integer) - 3
            assert advance == ((w + 1) * (h + 1) - 1 if integer else w * h)
            pos = rope_tie_positions([("text", 3), ("image", h, w), ("text", 1)], integer=integer)
            # the last patch sits one step (s, t) before the next text token, as the first sits after the anchor
            step_in = pos[3] - pos[2]
            step_out = pos[-1] - pos[-2]
            torch.testing.assert_close(step_in, step_out, rtol=0, atol=1e-12)


def test_rope_tie_within_image_offsets_depend_only_on_row_and_column_steps():
    h, w = 3, 4
    for prefix in (1, 5):
        pos = rope_tie_positions([("text", prefix), ("image", h, w)])[prefix:].view(h, w, 2)
        # one row down: +(w + 1) on x, nothing on y; one column right: nothing on x, +(h + 1) on y
        assert torch.equal(pos[1:] - pos[:-1], torch.tensor([w + 1, 0]).expand(h - 1, w, 2))
        assert torch.equal(pos[:, 1:] - pos[:, :-1], torch.tensor([0, h + 1]).expand(h, w - 1, 2))


def test_rope_tie_start_and_back_to_back_images():
    # an image at the very start is anchored at the virtual token -1: patch (r, c) at (-1 + 3r, -1 + 2c)
    assert rope_tie_positions([("image", 1, 2)]).tolist() == [[2, 1], [2, 3]]
    assert rope_tie_length([("image", 1, 2)]) == 5  # = -1 + (w + 1)(h + 1)
    # back to back: the second image is anchored at 5 - 1 = 4, where a text token between them would sit
    both = rope_tie_positions([("image", 1, 2), ("image", 2, 1)])
    assert both.tolist() == [[2, 1], [2, 3], [6, 7], [8, 7]]
    assert len({tuple(p) for p in both.tolist()}) == len(both)  # no two tokens share a position


@pytest.mark.parametrize("integer", [True, False])
def test_rope_tie_concatenation_is_a_shift(integer):
    # positions(A + B) = positions(A) followed by positions(B) + length(A), for any A and B
    a = [("text", 2), ("image", 2, 3)]
    for b in ([("image", 1, 4), ("text", 3)], [("text", 1), ("image", 3, 2)], [("image", 2, 2)]):
        whole = rope_tie_positions(a + b, integer=integer)
        na = len(rope_tie_positions(a, integer=integer))
        # exact ints / Fractions converted once to float64: the prefix is the same floats, bitwise
        torch.testing.assert_close(whole[:na], rope_tie_positions(a, integer=integer), rtol=0, atol=0)
        shifted = rope_tie_positions(b, integer=integer) + rope_tie_length(a, integer=integer)
        torch.testing.assert_close(whole[na:], shifted, rtol=0, atol=1e-12)


def test_rope_tie_text_only_is_the_diagonal():
    assert torch.equal(rope_tie_positions([("text", 7)]), torch.arange(7)[:, None].expand(7, 2))
    assert torch.equal(rope_tie_positions([("text", 3), ("text", 4)]), rope_tie_positions([("text", 7)]))


@pytest.mark.parametrize(
    "layout, match",
    [
        ([], r"layout must be a non-empty sequence"),
        ("text", r"layout must be a non-empty sequence"),
        ([("text", 2), ("image", 0, 3)], r"layout\[1\] image h must be a positive integer, got 0"),
        ([("image", 2, -1)], r"layout\[0\] image w must be a positive integer, got -1"),
        ([("text", 0)], r"layout\[0\] text n must be a positive integer"),
        ([("text", 1.5)], r"layout\[0\] text n must be a positive integer"),
        ([("text", 2), ("audio", 3)], r"layout\[1\] kind must be one of \('text', 'image'\), got 'audio'"),
        ([("text", 2), ("image", 3)], r"layout\[1\] must be \('image', h, w\)"),
        ([("text", 2, 3)], r"layout\[0\] must be \('text', n\)"),
        ([("text", 2), 5], r"layout\[1\] must be one of"),
        ([("video", 2, 4, 4)], r"layout\[0\] kind must be one of \('text', 'image'\)"),
    ],
)
def test_rope_tie_bad_layouts(layout, match):
    with pytest.raises(ValueError, match=match):
        rope_tie_positions(layout)


def test_rope_tie_integer_flag_checked():
    with pytest.raises(ValueError, match="integer must be True or False"):
        rope_tie_positions([("text", 1)], integer=1)


def test_layout_token_kinds():
    assert layout_token_kinds([("text", 2), ("image", 1, 2), ("text", 1)]) == ["text"] * 2 + ["image"] * 2 + ["text"]


# ------------------------------------------------------------------------------------------------ M-RoPE


@pytest.fixture(scope="module")
def hf_reference():
    """rope_lib.companion.hf_reference: transformers' Qwen2-VL position ids (get_rope_index) and rotary embedding, the
    adapters notebook 11 uses too."""
    pytest.importorskip("transformers")
    from rope_lib.companion import hf_reference

    return hf_reference


MROPE_LAYOUTS = {
    "text only": [("text", 9)],
    "image": [("text", 3), ("image", 4, 6), ("text", 2)],
    "image first": [("image", 6, 4), ("text", 3)],
    "video": [("text", 2), ("video", 3, 4, 4), ("text", 2)],
    "long video": [("text", 1), ("video", 6, 2, 4), ("text", 2)],  # more frames than merged rows/columns
    "mixed": [("text", 2), ("image", 2, 8), ("text", 1), ("video", 2, 6, 4), ("text", 3), ("image", 4, 4)],
    "image then video": [("text", 1), ("image", 4, 2), ("video", 2, 2, 2), ("text", 1)],
}


@pytest.mark.parametrize("name", list(MROPE_LAYOUTS))
def test_mrope_position_ids_match_transformers(hf_reference, name):
    layout = MROPE_LAYOUTS[name]
    ids, deltas, _ = hf_reference.qwen2_vl_rope_index([layout])
    ours = mrope_position_ids(layout)
    assert ours.dtype == torch.long
    assert torch.equal(ours.T, ids[:, 0]), name
    assert int(ours.max()) + 1 - len(ours) == int(deltas[0, 0])
    kinds = [("text", "image", "video")[c] for c in hf_reference.qwen2_vl_token_types(layout)]
    assert mrope_token_kinds(layout) == kinds


def test_mrope_position_ids_match_transformers_in_a_left_padded_batch(hf_reference):
    layouts = [MROPE_LAYOUTS["mixed"], MROPE_LAYOUTS["image"], MROPE_LAYOUTS["text only"]]
    ids, deltas, mask = hf_reference.qwen2_vl_rope_index(layouts)
    for b, layout in enumerate(layouts):
        assert torch.equal(mrope_position_ids(layout).T, ids[:, b, mask[b].bool()])


def test_mrope_merge_size_one_matches_transformers(hf_reference):
    layout = [("text", 2), ("image", 3, 5), ("text", 1), ("video", 2, 2, 3)]
    ids, _, _ = hf_reference.qwen2_vl_rope_index([layout], spatial_merge_size=1)
    assert torch.equal(mrope_position_ids(layout, spatial_merge_size=1).T, ids[:, 0])


def test_mrope_hand_example_and_advance_rule():
    # text "a b" at 0, 1; a 2-frame video of 2 x 4 merged patches from 2; text after it at 2 + max(2, 4) = 6
    ids = mrope_position_ids([("text", 2), ("video", 2, 4, 8), ("text", 1)])
    video = [[2 + f, 2 + r, 2 + c] for f in range(2) for r in range(2) for c in range(4)]
    assert ids.tolist() == [[0, 0, 0], [1, 1, 1], *video, [6, 6, 6]]
    # a 7-frame video of 1 x 2: transformers 5.x resumes text at 2 + 2, inside the temporal ids 2..8;
    # the original rule resumes one past the largest id, 2 + 7
    long = [("text", 2), ("video", 7, 2, 4), ("text", 1)]
    assert mrope_position_ids(long)[-1].tolist() == [4, 4, 4]
    assert mrope_position_ids(long, advance="thw")[-1].tolist() == [9, 9, 9]
    assert torch.equal(mrope_position_ids(long, advance="thw")[:-1], mrope_position_ids(long)[:-1])


def test_mrope_back_to_back_images_are_two_grids():
    # transformers groups equal consecutive token types, so it cannot tell two adjacent images apart (Qwen2-VL's
    # processor always puts vision start/end tokens around them); ours takes items as given
    ids = mrope_position_ids([("image", 2, 4), ("image", 2, 2)])
    assert ids.tolist() == [[0, 0, 0], [0, 0, 1], [2, 2, 2]]


def test_mrope_text_only_is_rope_1d():
    ids = mrope_position_ids([("text", 5)])
    assert torch.equal(ids, torch.arange(5)[:, None].expand(5, 3))
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 5, 32, generator=g, dtype=torch.float64)
    # the same (5, 16) float64 angles (one correctly rounded product each) through the same _rotate: bitwise
    assert torch.equal(apply_mrope(x, ids, inv_freq(32), (4, 6, 6)), apply_rope(x, torch.arange(5), inv_freq(32)))


def test_mrope_pair_axes():
    assert mrope_pair_axes((2, 1, 3)).tolist() == [0, 0, 1, 2, 2, 2]
    assert mrope_pair_axes((0, 2, 2)).tolist() == [1, 1, 2, 2]
    assert mrope_pair_axes(QWEN2_VL_MROPE_SECTION).bincount().tolist() == [16, 24, 24]


@pytest.mark.parametrize("section", [(4, 6, 6), (2, 7, 7), (16, 0, 0)])
def test_apply_mrope_matches_transformers(hf_reference, section):
    head_dim = 32
    rotary = hf_reference.qwen2_vl_rotary(head_dim, 10000.0, section)
    layout = MROPE_LAYOUTS["mixed"]
    ids = mrope_position_ids(layout)  # (seq, 3)
    g = torch.Generator().manual_seed(5)
    qx, kx = (torch.randn(1, 2, len(ids), head_dim, generator=g) for _ in range(2))
    q_hf, k_hf = hf_reference.qwen2_vl_rotate(rotary, qx, kx, ids)
    # same frequencies as transformers (float32 there), so only its float32 cos/sin separate the two
    theta = rotary.inv_freq.double()
    q_ours, k_ours = (apply_mrope(t.double(), ids, theta, section) for t in (qx, kx))
    torch.testing.assert_close(q_ours, q_hf.double(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k_ours, k_hf.double(), rtol=1e-5, atol=1e-5)
    # and with rope_lib's float64 frequencies: the difference is transformers' float32 angles
    q64 = apply_mrope(qx.double(), ids, inv_freq(head_dim), section)
    torch.testing.assert_close(q64, q_hf.double(), rtol=1e-4, atol=1e-4)


def test_mrope_image_scores_depend_only_on_row_and_column_offsets():
    g = torch.Generator().manual_seed(6)
    q, k = torch.randn(2, 1, 32, generator=g, dtype=torch.float64)
    theta, section = inv_freq(32), (4, 6, 6)
    for prefix in (1, 4):
        ids = mrope_position_ids([("text", prefix), ("image", 6, 8)])[prefix:].view(3, 4, 3)

        def score(a, b):
            return (apply_mrope(q, ids[a][None], theta, section) * apply_mrope(k, ids[b][None], theta, section)).sum()

        assert math.isclose(score((0, 0), (1, 2)), score((1, 1), (2, 3)), rel_tol=1e-9)
        assert abs(score((0, 0), (1, 2)) - score((0, 0), (2, 1))) > 1e-3  # rows and columns are not confused


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: mrope_position_ids([("image", 3, 4)]), r"layout\[0\] image h and w must be multiples"),
        (lambda: mrope_position_ids([("text", 2), ("video", 0, 4, 4)]), r"layout\[1\] video t must be a positive"),
        (lambda: mrope_position_ids([("video", 4, 4)]), r"layout\[0\] must be \('video', t, h, w\)"),
        (lambda: mrope_position_ids([]), "non-empty"),
        (lambda: mrope_position_ids([("text", 2)], spatial_merge_size=0), "spatial_merge_size must be a positive"),
        (lambda: mrope_position_ids([("text", 2)], advance="t"), "advance must be one of"),
        (lambda: mrope_pair_axes((4, 4)), "three pair counts"),
        (lambda: mrope_pair_axes((4, -1, 4)), r"mrope_section\[1\] must be a non-negative integer"),
        (lambda: apply_mrope(torch.zeros(2, 8), torch.zeros(2, 3), inv_freq(8), (1, 1, 1)), "must equal len"),
        (lambda: apply_mrope(torch.zeros(2, 8), torch.zeros(2, 2), inv_freq(8), (2, 1, 1)), r"\(\.\.\., seq, 3\)"),
    ],
)
def test_mrope_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
