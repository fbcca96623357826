"""Notebook 13's atlas: the shipped configs as the doctor reads them (:func:`shipped_config`) and the doctor's figure,
one row per RoPE layer type (``python -m rope_lib.companion.atlas CONFIG.json [--context N] [--json] --figure PATH``:
the doctor's command line plus the figure).

Left: each pair's wavelength before and after scaling against the trained length L and the attended distance, the
pairs coloured by what the method does to them (kept, blended, interpolated, rescaled). Right: B_m of the scaled
frequencies (notebook 07's bias sum, here for any frequencies) on a log grid of distances, its first negative value
marked. Drawn with the companion's style and written by its plotting helper, so the bytes do not depend on the CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..doctor import Report
from ..doctor.cli import parser, report_or_exit, show
from .plotting import save_as, use_style
from .shipped_configs import SHIPPED

# one colour per band, the same in every figure
BAND_COLOURS = {"kept": "#1b7837", "blended": "#e08214", "interpolated": "#2166ac", "rescaled": "#762a83"}
_GRID = 600  # distances per B_m curve (log-spaced, integers)


def shipped_config(name: str) -> dict:
    """The config.json fields of ``SHIPPED[name]`` as transformers reads them: the published fields over the config
    class's defaults where the file leaves fields out (Gemma 3's ``implied_defaults``)."""
    if name not in SHIPPED:
        raise ValueError(f"name must be one of {sorted(SHIPPED)}, got {name!r}")
    record = SHIPPED[name]
    return {**record.get("implied_defaults", {}), **record["config"]}


def bias_curve(inv_freq: np.ndarray, last: int) -> tuple[np.ndarray, np.ndarray]:
    """(m, B_m) on a log grid of integer distances 1..last: B_m = sum_i cos(m theta_i)."""
    m = np.unique(np.round(np.geomspace(1, max(2, last), _GRID)).astype(np.int64))
    return m, np.cos(m[:, None].astype(np.float64) * inv_freq[None, :]).sum(1)


def _level(ax, y: float, text: str, colour: str, style: str) -> None:
    """A horizontal line at ``y`` with its label just above the left end."""
    ax.axhline(y, color=colour, ls=style, lw=0.9)
    ax.annotate(text, (0, y), xytext=(2, 2), textcoords="offset points", fontsize=8, color=colour)


def draw(report: Report, title: str | None = None) -> plt.Figure:
    """The doctor's figure for ``report``; ``title`` defaults to the report's source."""
    use_style()
    rows = list(report.layers.values())
    fig, axes = plt.subplots(len(rows), 2, figsize=(9.0, 2.9 * len(rows)), squeeze=False)
    for (ax_w, ax_b), layer in zip(axes, rows):
        pairs = np.arange(layer.pairs)
        bands = np.array(layer.bands)
        ax_w.plot(pairs, layer.wavelength_before, color="0.6", lw=1.2, label="before scaling")
        for band, colour in BAND_COLOURS.items():
            mask = bands == band
            if mask.any():
                ax_w.scatter(pairs[mask], layer.wavelength_after[mask], s=9, color=colour, label=band, zorder=3)
        _level(ax_w, layer.original_length, f"L = {layer.original_length}", "k", "--")
        if layer.attended != layer.original_length:
            _level(ax_w, layer.attended, f"attended {layer.attended}", "#b2182b", ":")
        ax_w.set_yscale("log")
        ax_w.set_xlabel("pair i")
        ax_w.set_ylabel("wavelength 2π/θ_i (positions)")
        ax_w.set_title(f"{layer.name}: {layer.rope_type}, base {layer.base:g}", fontsize=9)
        ax_w.legend(fontsize=8, loc="lower right", frameon=False)

        last = max(layer.bound_scanned // 4, 2 * layer.attended)
        m, b = bias_curve(layer.inv_freq_after, last)
        ax_b.plot(m, b, color="0.25", lw=0.8)
        ax_b.axhline(0, color="k", lw=0.6)
        ax_b.axvline(layer.attended, color="#b2182b", ls=":", lw=0.9, label=f"attended {layer.attended}")
        first = layer.bound_first_negative
        if first is not None and first <= last:
            value = float(np.cos(first * layer.inv_freq_after).sum())
            ax_b.plot([first], [value], "o", color="#b2182b", ms=5, label=f"first B_m < 0: m = {first}")
        ax_b.set_xscale("log")
        ax_b.set_xlabel("distance m")
        ax_b.set_ylabel("B_m (scaled frequencies)")
        ax_b.legend(fontsize=8, loc="lower left", frameon=False)
    fig.suptitle(title or report.source, fontsize=10)
    fig.tight_layout()
    return fig


def write_figure(report: Report, path: str | Path, title: str | None = None) -> Path:
    """Draw ``report`` and write it to ``path`` (.png, .svg or .pdf) with :func:`~.plotting.save_as`."""
    fig = draw(report, title)
    try:
        return save_as(fig, path)
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m rope_lib.companion.atlas")
    p.epilog = None
    p.add_argument("--figure", metavar="PATH", required=True, help="where to draw the report (.png, .svg or .pdf)")
    args = p.parse_args(argv)
    try:
        report = report_or_exit(args)
        write_figure(report, args.figure)
    except SystemExit as stop:
        return int(stop.code)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    show(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
