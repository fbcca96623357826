"""Figure files must not depend on last-bit float noise (different CPUs take different vector code paths).

The check: draw the same figure from data and from data * (1 + 1e-15) and compare the bytes of every format.
The control test shows the comparison can fail: without quantization the PNG of the same data differs.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.scale
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import rope_lib  # noqa: E402
from rope_lib.companion import plotting  # noqa: E402

PERTURBATIONS = (0.0, 1e-15, -1e-15, 3e-16)


def _ratio_curves() -> dict[str, np.ndarray]:
    # The per-pair interpolation factors of notebook 02 (d = 128, b = 1e4, s = 8): values that sit exactly on
    # 1 and 1/s, the case that flipped PNG pixels between two CPUs.
    d, base, s = 128, 10_000.0, 8.0
    theta = rope_lib.inv_freq(d, base)
    params = {
        "PI": {"rope_type": "linear", "rope_theta": base, "factor": s},
        "NTK-fixed": {"rope_type": "ntk_fixed", "rope_theta": base, "factor": s},
        "NTK-mixed": {"rope_type": "ntk_mixed", "rope_theta": base, "factor": s, "p": 0.625},
    }
    return {name: (rope_lib.frequencies(p, d)[0] / theta).numpy() for name, p in params.items()}


def _draw(eps: float, *, quantize: bool = True) -> dict[str, bytes]:
    plotting.use_style()
    curves = _ratio_curves()
    fig, (ax_log, ax_lin) = plt.subplots(1, 2, figsize=(8, 3))
    for name, r in curves.items():
        ax_log.plot(np.arange(r.size), r * (1 + eps), marker=".", label=name)
    ax_log.set_yscale("log")
    ax_log.annotate("1/s", (10.0, 0.125 * (1 + eps)))
    x = np.linspace(0.0, 1.0, 41)
    y = np.cos(2 * np.pi * x) * (1 + eps)  # crosses zero: noise around 0 must round to 0
    ax_lin.plot(x, y)
    ax_lin.fill_between(x, y - 0.1 * (1 + eps), y + 0.1, alpha=0.3)
    ax_lin.bar([0.25, 0.5, 0.75], np.array([0.3, 0.6, 0.9]) * (1 + eps), width=0.1, alpha=0.5)
    ax_lin.scatter(x[::5], y[::5] * (1 + eps), s=8)
    ax_lin.axvspan(0.1, 0.2 * (1 + eps), alpha=0.2)
    image_ax = fig.add_axes((0.8, 0.6, 0.1, 0.3))
    image_ax.imshow(np.outer(x[:8], x[:8]) * (1 + eps), interpolation="nearest")
    if quantize:
        plotting.quantize_figure(fig)
    out = {}
    for fmt in plotting.FORMATS:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, metadata=plotting._METADATA[fmt])
        out[fmt] = buf.getvalue()
    plt.close(fig)
    return out


@pytest.mark.parametrize("eps", PERTURBATIONS[1:])
def test_figure_bytes_do_not_depend_on_float_noise(eps):
    reference, perturbed = _draw(0.0), _draw(eps)
    for fmt in plotting.FORMATS:
        assert reference[fmt] == perturbed[fmt], f"{fmt} changed when the data moved by {eps:g} (relative)"


def test_control_without_quantization_the_png_changes(monkeypatch):
    # If this fails, the test above no longer exercises the failure it guards against: find new data.
    monkeypatch.setitem(matplotlib.scale._scale_mapping, "log", matplotlib.scale.LogScale)  # matplotlib's own
    assert _draw(0.0, quantize=False)["png"] != _draw(1e-15, quantize=False)["png"]


def test_savefig_quantizes_and_writes_identical_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ROPE_FIGURES_DIR", str(tmp_path / "a"))
    files = {}
    for eps, folder in ((0.0, "a"), (1e-15, "b")):
        monkeypatch.setenv("ROPE_FIGURES_DIR", str(tmp_path / folder))
        plotting.use_style()
        fig, ax = plt.subplots()
        for name, r in _ratio_curves().items():
            ax.plot(np.arange(r.size), r * (1 + eps), label=name)
        ax.set_yscale("log")
        files[folder] = {p.name: p.read_bytes() for p in plotting.savefig(fig, "ratio")}
        plt.close(fig)
    assert files["a"] == files["b"]
    assert sorted(files["a"]) == ["ratio.pdf", "ratio.png", "ratio.svg"]


def test_quantize_rounds_noise_and_keeps_values():
    one_below = np.nextafter(1.0, 0.0)
    assert plotting.quantize(np.array([one_below]), "log")[0] == 1.0
    assert plotting.quantize(np.array([one_below, 0.0]), "linear")[0] == 1.0
    # linear: noise around zero rounds to zero; log: tiny positive values keep their relative precision
    assert plotting.quantize(np.array([1.0, 3e-17, -2e-17]), "linear").tolist() == [1.0, 0.0, 0.0]
    tiny = plotting.quantize(np.array([1e5, 1.2345e-12]), "log")
    assert tiny[1] == pytest.approx(1.2345e-12, rel=1e-8)
    values = np.linspace(-3.0, 7.0, 1001)
    assert np.max(np.abs(plotting.quantize(values) - values)) <= 7.0 * 2.0**-plotting.KEPT_BITS
    masked = np.ma.array([1.0, 2.0, 3.0], mask=[False, True, False])
    assert plotting.quantize(masked).mask.tolist() == [False, True, False]
    assert plotting.quantize(["a", "b"]) == ["a", "b"]  # categories pass through
    nonfinite = plotting.quantize(np.array([np.nan, np.inf, 2.0]))
    assert np.isnan(nonfinite[0]) and nonfinite[1] == np.inf and nonfinite[2] == 2.0


def test_text_uses_matplotlibs_bundled_fonts_only(tmp_path):
    """A second "DejaVu Sans" elsewhere on the machine (Debian's fonts-dejavu has another release) must not be
    picked: which one matplotlib's font cache prefers differs between machines and cache histories."""
    import shutil

    from matplotlib import font_manager

    bundled = plotting.bundled_fonts_dir()
    impostor = tmp_path / "DejaVuSans.ttf"  # the same family at a "system" path, listed first
    shutil.copy(bundled / "DejaVuSans.ttf", impostor)
    manager = font_manager.fontManager
    saved = list(manager.ttflist)
    try:
        manager.addfont(str(impostor))
        manager.ttflist = [f for f in manager.ttflist if f.fname == str(impostor)] + saved
        manager.ttflist = [f for f in manager.ttflist if "DejaVuSans.ttf" not in f.fname or f.fname == str(impostor)]
        manager._findfont_cached.cache_clear()
        assert font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans")) == str(impostor)  # control
        plotting.use_style()
        family = matplotlib.rcParams["font.family"]
        chosen = font_manager.findfont(font_manager.FontProperties(family=family))
        assert chosen == str(bundled / "DejaVuSans.ttf")
        assert all(Path(f.fname).parent == bundled for f in manager.ttflist)
    finally:
        manager.ttflist = saved
        manager._findfont_cached.cache_clear()
        plotting.use_bundled_fonts()


_TRUE_LOG10 = np.log10


def _one_ulp_up(values, *args, **kwargs):
    # Stands in for another CPU's log10: numpy uses SVML on AVX-512 and the C library elsewhere.
    return np.nextafter(_TRUE_LOG10(values, *args, **kwargs), np.inf)


def test_log_axes_draw_through_the_portable_transform():
    plotting.use_style()
    fig, ax = plt.subplots()
    ax.loglog([1.0, 10.0], [1.0, 100.0])
    assert isinstance(ax.yaxis.get_transform(), plotting.PortableLogTransform)
    assert isinstance(ax.xaxis.get_transform(), plotting.PortableLogTransform)
    plt.close(fig)


def test_log_transform_absorbs_a_last_bit_difference_in_log10():
    values = np.geomspace(1.0, 2.0**20, 4001)  # includes exact powers of two, i.e. "nice" tick values
    here = plotting.PortableLogTransform(10)
    elsewhere = plotting.PortableLogTransform(10)
    elsewhere._log_funcs = {10: _one_ulp_up}
    assert np.array_equal(here.transform_non_affine(values), elsewhere.transform_non_affine(values))
    # control: matplotlib's own transform passes the difference on
    plain, plain_elsewhere = matplotlib.scale.LogTransform(10), matplotlib.scale.LogTransform(10)
    plain_elsewhere._log_funcs = {10: _one_ulp_up}
    assert not np.array_equal(plain.transform_non_affine(values), plain_elsewhere.transform_non_affine(values))
    # clipping and masking keep their meaning
    clipped = here.transform_non_affine(np.array([0.0, -1.0, 100.0]))
    assert clipped.tolist() == [-1000.0, -1000.0, 2.0]
    masked = plotting.PortableLogTransform(10, "mask").transform_non_affine(np.ma.array([1.0, 10.0], mask=[0, 1]))
    assert masked.mask.tolist() == [False, True]


def test_figure_bytes_do_not_depend_on_the_cpus_log10(monkeypatch):
    reference = _draw(0.0)
    monkeypatch.setattr(np, "log10", _one_ulp_up)  # read by every log transform built from here on
    assert _draw(0.0) == reference
