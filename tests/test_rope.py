"""rope_lib core: frequencies, rotation in both layouts, precision, partial rotary, layout conversion, errors."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import ulps_close

from rope_lib import apply_rope, convert_layout, inv_freq
from rope_lib.companion import plotting, runtime


def reference_rope(x: torch.Tensor, positions, theta: torch.Tensor, layout: str = "half_split") -> torch.Tensor:
    """Float64 complex-number RoPE: pair (a, b) is a + ib, multiplied by e^{i m theta}."""
    x = x.to(torch.float64)
    d = 2 * theta.shape[0]
    rot, rest = x[..., :d], x[..., d:]
    if layout == "half_split":
        z = torch.complex(rot[..., : d // 2], rot[..., d // 2 :])
    else:
        z = torch.complex(rot[..., 0::2], rot[..., 1::2])
    m = torch.as_tensor(positions, dtype=torch.float64)[..., None]
    z = z * torch.exp(1j * (m * theta.to(torch.float64)))
    if layout == "half_split":
        out = torch.cat((z.real, z.imag), dim=-1)
    else:
        out = torch.stack((z.real, z.imag), dim=-1).flatten(-2)
    return torch.cat((out, rest), dim=-1)


def test_inv_freq_values():
    f = inv_freq(8, base=10000.0)
    assert f.dtype == torch.float64
    expected = torch.tensor([10000.0 ** (-2 * i / 8) for i in range(4)], dtype=torch.float64)
    ulps_close(f, expected, ulps=4, scale=0)  # torch's pow (vectorised or scalar by width) vs Python's: ~1 ulp each


@pytest.mark.parametrize("layout", ["half_split", "interleaved"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_apply_rope_matches_complex_reference(layout, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 16, generator=g, dtype=torch.float64)
    pos = torch.tensor([0, 1, 5, 100, 4096, 65535, 10**6])
    got = apply_rope(x.to(dtype), pos, inv_freq(16), layout=layout)
    assert got.dtype == dtype and got.shape == x.shape
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got.double(), reference_rope(x, pos, inv_freq(16), layout), rtol=tol, atol=tol)


def test_rotation_preserves_norm_and_position_zero_is_identity():
    x = torch.randn(5, 32, dtype=torch.float64)
    torch.testing.assert_close(apply_rope(x, torch.zeros(5, dtype=torch.long), inv_freq(32)), x)
    y = apply_rope(x, torch.arange(5) * 977, inv_freq(32))
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))


def test_relative_position_invariance():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 64, generator=g, dtype=torch.float64)
    theta = inv_freq(64)
    for m, n in [(3, 10), (123_456, 123_463), (999_990, 999_997)]:
        score = (apply_rope(q[None], torch.tensor([m]), theta) * apply_rope(k[None], torch.tensor([n]), theta)).sum()
        base = (apply_rope(q[None], torch.tensor([0]), theta) * apply_rope(k[None], torch.tensor([n - m]), theta)).sum()
        assert math.isclose(score.item(), base.item(), rel_tol=1e-9, abs_tol=1e-9)


def test_bf16_at_position_one_million_matches_float64_to_bf16_rounding():
    g = torch.Generator().manual_seed(2)
    x64 = torch.randn(4, 128, generator=g, dtype=torch.float64)
    xb = x64.to(torch.bfloat16)
    pos = torch.tensor([1_000_000, 1_000_001, 999_999, 2_000_000])
    got = apply_rope(xb, pos, inv_freq(128))
    ref = reference_rope(xb.double(), pos, inv_freq(128))  # same bf16 input, exact rotation
    assert got.dtype == torch.bfloat16
    # bf16 has an 8-bit mantissa: the only error allowed is the final rounding (half an ulp, relative 2^-9),
    # plus the float32 rotation (negligible). A phase error would show up as O(1) errors.
    err = (got.double() - ref).abs()
    ulp = torch.finfo(torch.bfloat16).eps * ref.abs().clamp_min(torch.finfo(torch.bfloat16).tiny)
    assert (err <= ulp).all(), f"max error {err.max():.3g} exceeds bf16 rounding"
    # and the naive way (angles in bf16) is far off: this is the bug class the float64 angles avoid.
    naive_angle = (pos.to(torch.bfloat16)[:, None] * inv_freq(128).to(torch.bfloat16)).double()
    assert (naive_angle - pos.double()[:, None] * inv_freq(128)).abs().max() > 100


def test_float_positions_are_interpolated():
    x = torch.randn(3, 8, dtype=torch.float64)
    pos = torch.tensor([0.5, 1.25, 7.75], dtype=torch.float64)
    torch.testing.assert_close(apply_rope(x, pos, inv_freq(8)), reference_rope(x, pos, inv_freq(8)))


def test_partial_rotary_passes_rest_through():
    x = torch.randn(2, 5, 64, dtype=torch.float64)
    theta = inv_freq(16)  # rotary_dim 16 of 64
    y = apply_rope(x, torch.arange(5), theta)
    torch.testing.assert_close(y[..., 16:], x[..., 16:], rtol=0, atol=0)  # copied untouched: bitwise
    torch.testing.assert_close(y, reference_rope(x, torch.arange(5), theta))


def test_attention_factor_scales_cos_and_sin():
    x = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(
        apply_rope(x, torch.arange(3), inv_freq(8), attention_factor=1.5),
        1.5 * apply_rope(x, torch.arange(3), inv_freq(8)),
    )


def test_batched_positions_broadcast():
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    pos = torch.tensor([[0, 1, 2, 3], [10, 11, 12, 13]])
    y = apply_rope(x, pos, inv_freq(8))
    torch.testing.assert_close(y[1], apply_rope(x[1], pos[1], inv_freq(8)))


@pytest.mark.parametrize("rotary_dim", [8, 16])
def test_layout_conversion_roundtrip_and_equivalence(rotary_dim):
    head_dim, heads = 16, 3
    x = torch.randn(5, heads * head_dim, dtype=torch.float64)
    pos = torch.arange(5) * 31
    theta = inv_freq(rotary_dim)
    # rotate interleaved activations, then convert == convert, then rotate half-split
    xi = x.view(5, heads, head_dim).transpose(0, 1)
    conv = convert_layout(x, src="interleaved", dst="half_split", head_dim=head_dim, rotary_dim=rotary_dim)
    a = convert_layout(
        apply_rope(xi, pos, theta, layout="interleaved").transpose(0, 1).reshape(5, -1),
        src="interleaved",
        dst="half_split",
        head_dim=head_dim,
        rotary_dim=rotary_dim,
    )
    b = apply_rope(conv.view(5, heads, head_dim).transpose(0, 1), pos, theta).transpose(0, 1).reshape(5, -1)
    torch.testing.assert_close(a, b)
    back = convert_layout(conv, src="half_split", dst="interleaved", head_dim=head_dim, rotary_dim=rotary_dim)
    torch.testing.assert_close(back, x, rtol=0, atol=0)  # two index permutations, no arithmetic: bitwise


def test_converted_weights_give_the_same_logits():
    heads, head_dim, hidden = 2, 8, 12
    wq, wk = torch.randn(2, heads * head_dim, hidden, dtype=torch.float64)
    h = torch.randn(6, hidden, dtype=torch.float64)
    pos, theta = torch.arange(6), inv_freq(head_dim)

    def logits(wq, wk, layout):
        q = (h @ wq.T).view(6, heads, head_dim).transpose(0, 1)
        k = (h @ wk.T).view(6, heads, head_dim).transpose(0, 1)
        return apply_rope(q, pos, theta, layout=layout) @ apply_rope(k, pos, theta, layout=layout).transpose(-1, -2)

    conv = lambda w: convert_layout(w, src="interleaved", dst="half_split", head_dim=head_dim, dim=0)  # noqa: E731
    torch.testing.assert_close(logits(wq, wk, "interleaved"), logits(conv(wq), conv(wk), "half_split"))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: inv_freq(7), "rotary_dim"),
        (lambda: inv_freq(0), "rotary_dim"),
        (lambda: inv_freq(8, base=1.0), "base"),
        (lambda: inv_freq(8, base=-3), "base"),
        (lambda: apply_rope(torch.randn(4, 7), torch.arange(4), inv_freq(6)), "head_dim"),
        (lambda: apply_rope(torch.randn(4, 8), torch.arange(4), inv_freq(16)), "rotary_dim"),
        (lambda: apply_rope(torch.randn(4, 8), torch.arange(5), inv_freq(8)), "positions"),
        (lambda: apply_rope(torch.randn(4, 8), torch.arange(4), inv_freq(8), layout="neox"), "layout"),
        (lambda: apply_rope(torch.arange(32).view(4, 8), torch.arange(4), inv_freq(8)), "floating"),
        (lambda: convert_layout(torch.randn(10), src="half_split", dst="interleaved", head_dim=4), "multiple"),
        (
            lambda: convert_layout(torch.randn(8), src="half_split", dst="interleaved", head_dim=4, rotary_dim=6),
            "rotary_dim",
        ),
        (lambda: convert_layout(torch.randn(8), src="half", dst="interleaved"), "layout"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_paths_and_profiles(tmp_path, monkeypatch):
    assert (runtime.repo_root() / "pyproject.toml").is_file()
    monkeypatch.setenv("ROPE_FIGURES_DIR", str(tmp_path))
    assert runtime.figures_dir("full") == tmp_path / "full"
    assert runtime.figures_dir("medium") == tmp_path / "medium" and runtime.figures_dir("smoke") == tmp_path
    with pytest.raises(ValueError, match="profile"):
        runtime.figures_dir("large")
    with pytest.raises(ValueError, match="device"):
        runtime.pick_device("tpu:0")
    assert runtime.pick_device("cpu").type == "cpu"
    assert (
        runtime.pick_device("auto")
        == runtime.pick_device(None)
        == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )


def test_savefig_is_deterministic(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("ROPE_FIGURES_DIR", str(tmp_path))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    plotting.use_style()

    def draw():
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [1, 0, 2], label="a")
        ax.legend()
        paths = plotting.savefig(fig, "t", exact=False)
        plt.close(fig)
        return {p.suffix: p.read_bytes() for p in paths}

    first, second = draw(), draw()
    assert set(first) == {".svg", ".pdf", ".png"} and first == second
    assert b"Date" not in first[".svg"].split(b"</metadata>")[0].split(b"<metadata>")[-1]
    assert "t.png" in (tmp_path / "inexact.txt").read_text()
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ValueError, match="name"):
        plotting.savefig(plt.figure(), "../escape")
