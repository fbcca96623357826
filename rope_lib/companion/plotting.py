"""One style and one ``savefig`` that writes deterministic SVG, PDF and PNG.

Determinism needs three things: a fixed ``svg.hashsalt`` (in ``paper.mplstyle``), no dates or tool versions in
the file metadata (set below), and ``SOURCE_DATE_EPOCH=0`` in the environment (the Makefile exports it).

The bytes must not depend on the CPU either. The same formula evaluated on two CPUs can differ in the last bit
(torch and numpy pick different vector code paths), and antialiasing turns a one-ulp change of a point that sits
exactly on a "nice" value (1, 1/s, a tick) into a different pixel. So ``savefig`` first rounds every plotted
coordinate, view limit and image value to ``KEPT_BITS`` significant bits (``quantize_figure``): about 1e-9 of
the value, a million times above float64 noise and a million times below a pixel. Both machines then draw the
same numbers. Log axes keep relative precision (rounded mantissa); linear axes an absolute step tied to the
largest magnitude in the array, so noise around zero rounds to zero.

Rounding the data is not enough on a log axis: matplotlib takes ``np.log10`` of every coordinate while drawing,
and numpy computes it with SVML on AVX-512 CPUs and with the C library elsewhere, which differ in the last bit
(one dashed line of 07_base_bound.png moved 12 pixels by one grey level between an Intel and an AMD machine).
Importing this module therefore registers a ``"log"`` scale whose transform rounds its output the same way
(``PortableLogTransform``); it is matplotlib's own in every other respect.

Figures drawn from *trained models* can differ in their last bits between CPUs, so ``savefig(..., exact=False)``
records them as such: ``make test`` compares analytic figures byte for byte and only checks that the others were
regenerated (their numbers are checked with a tolerance by the notebooks' claim cells).
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.scale
import numpy as np
from matplotlib.image import AxesImage
from matplotlib.patches import Polygon, Rectangle
from matplotlib.text import Annotation

from .._checks import atomic_write
from .runtime import figures_dir

STYLE = str(Path(__file__).with_name("paper.mplstyle"))
FORMATS = ("svg", "pdf", "png")
INEXACT_LIST = "inexact.txt"  # written only into a ROPE_FIGURES_DIR scratch folder, read by the figure check

# Significant bits kept by quantize_figure: 2^-30 ~ 1e-9 relative. Float64 noise is ~1e-16, so a noisy value
# lands on a rounding boundary with probability ~1e-7; a 1000-pixel axis moves by at most ~1e-6 pixel.
KEPT_BITS = 30

_METADATA = {
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
    "png": {"Software": None},
}


def bundled_fonts_dir() -> Path:
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def use_bundled_fonts() -> None:
    """Draw text only with the fonts that ship inside matplotlib (pinned by its version), never system fonts.

    A machine with Debian's fonts-dejavu has a second "DejaVu Sans" of another release, with other glyph widths;
    which of the two matplotlib picks depends on its font cache, so figure bytes (tight bounding boxes, text
    paths) would depend on the machine and on the cache's history. Restricting the font list to the bundled files
    makes them depend on the matplotlib version alone.
    """
    from matplotlib import font_manager

    bundled = bundled_fonts_dir()
    manager = font_manager.fontManager
    known = {Path(f.fname).name for f in manager.ttflist if Path(f.fname).parent == bundled}
    if len(known) == len(manager.ttflist) and known >= {p.name for p in bundled.glob("*.ttf")}:
        return  # already restricted (every savefig calls this): keep matplotlib's font caches warm
    for path in sorted(bundled.glob("*.ttf")):
        if path.name not in known:
            manager.addfont(str(path))
    manager.ttflist = [f for f in manager.ttflist if Path(f.fname).parent == bundled]
    manager._findfont_cached.cache_clear()  # forget lookups made before the list was restricted
    font_manager._get_font.cache_clear()


def use_style() -> None:
    """Set up a notebook session: the companion's style, PNG inline figures (nbval skips PNG, not SVG), and no
    environment noise in committed outputs - tqdm's "IProgress not found" warning (it carries a local path) and
    fontTools' note about the zero timestamp that SOURCE_DATE_EPOCH=0 puts into PDF fonts."""
    warnings.filterwarnings("ignore", message="IProgress not found")
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    use_bundled_fonts()
    plt.style.use(STYLE)
    try:  # only inside IPython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except Exception:  # noqa: BLE001 - not in a notebook: nothing to configure
        pass


def _round_relative(values: np.ndarray, bits: int = KEPT_BITS) -> np.ndarray:
    # frexp/ldexp and scaling by powers of two are exact, so the result depends only on the rounded mantissa.
    mantissa, exponent = np.frexp(values)
    return np.ldexp(np.round(mantissa * 2.0**bits) / 2.0**bits, exponent)


def _round_absolute(values: np.ndarray) -> np.ndarray:
    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0 or finite.max() == 0:
        return values
    # The step comes from the largest magnitude, itself rounded to 8 bits so that 0.9999999999999999 and 1.0
    # give the same step.
    exponent = int(np.frexp(_round_relative(finite.max(), bits=8))[1])
    step = 2.0 ** (exponent - KEPT_BITS)
    return np.round(values / step) * step


class PortableLogTransform(matplotlib.scale.LogTransform):
    """matplotlib's log transform with its output (in decades) rounded to a step of 2^-KEPT_BITS decades.

    The rounding absorbs the last-bit difference between numpy's vectorized log (SVML on AVX-512) and the C
    library's (~1e-15 decades, so a point lands on a rounding boundary with probability ~1e-6); a 1000-pixel
    decade moves by ~1e-6 pixel. The step is absolute, not relative, because it is a position on the axis: log 1
    must round to 0 whichever side of 0 the last bit falls. Masked, clipped (-1000) and non-finite outputs keep
    their meaning.
    """

    def transform_non_affine(self, values):
        out = super().transform_non_affine(values)
        step = 2.0**-KEPT_BITS  # a power of two: scaling by it is exact
        with np.errstate(invalid="ignore"):
            if np.ma.isMaskedArray(out):
                return np.ma.array(np.round(np.ma.getdata(out) / step) * step, mask=np.ma.getmask(out))
            return np.round(np.asarray(out, dtype=np.float64) / step) * step


class _PortableLogScale(matplotlib.scale.LogScale):
    # Registered under matplotlib's own name, so ax.set_yscale("log"), loglog and semilogy all draw through it.
    name = "log"

    def __init__(self, *, base: float = 10, subs=None, nonpositive: str = "clip"):
        super().__init__(base=base, subs=subs, nonpositive=nonpositive)
        self._transform = PortableLogTransform(base, nonpositive)


matplotlib.scale.register_scale(_PortableLogScale)


def quantize(values, scale: str = "linear"):
    """``values`` rounded to ``KEPT_BITS`` significant bits: relative on a log axis, absolute on any other.

    Non-numeric data (categories, dates as objects) is returned unchanged; masks are kept.
    """
    mask = np.ma.getmask(values) if np.ma.isMaskedArray(values) else None
    try:
        data = np.array(np.ma.getdata(values), dtype=np.float64)
    except (TypeError, ValueError):
        return values
    rounded = _round_relative(data) if scale == "log" else _round_absolute(data)
    return np.ma.array(rounded, mask=mask) if mask is not None else rounded


def _quantize_axes(ax: matplotlib.axes.Axes) -> None:
    xs, ys = ax.get_xscale(), ax.get_yscale()

    def both(xy: np.ndarray) -> np.ndarray:
        xy = np.array(xy, dtype=np.float64).reshape(-1, 2)
        return np.column_stack([quantize(xy[:, 0], xs), quantize(xy[:, 1], ys)])

    # Limits first: reading them resolves autoscaling, which used the unrounded data.
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    for line in ax.lines:
        line.set_data(quantize(line.get_xdata(orig=True), xs), quantize(line.get_ydata(orig=True), ys))
    for coll in ax.collections:
        offsets = coll.get_offsets()
        if len(offsets):
            coll.set_offsets(both(offsets))
        for path in coll.get_paths():
            if len(path.vertices) and path.vertices.flags.writeable:
                path.vertices[:] = both(path.vertices)
        if coll.get_array() is not None:
            coll.set_array(quantize(coll.get_array()))
    for patch in ax.patches:
        if isinstance(patch, Rectangle):
            x, y = quantize(np.array([patch.get_x()]), xs)[0], quantize(np.array([patch.get_y()]), ys)[0]
            w, h = quantize(np.array([patch.get_width()]))[0], quantize(np.array([patch.get_height()]))[0]
            patch.set_bounds(x, y, w, h)
        elif isinstance(patch, Polygon):
            patch.set_xy(both(patch.get_xy()))
    for image in ax.images:
        if isinstance(image, AxesImage) and image.get_array() is not None:
            image.set_data(quantize(image.get_array()))
    for text in ax.texts:
        if isinstance(text, Annotation):
            text.xy = tuple(both(text.xy)[0])
        text.set_position(tuple(both(text.get_position())[0]))
    ax.set_xlim(*quantize(np.array(xlim), xs), auto=None)
    ax.set_ylim(*quantize(np.array(ylim), ys), auto=None)


def quantize_figure(fig: matplotlib.figure.Figure) -> None:
    """Round everything plotted on ``fig`` (in place) so that its files do not depend on last-bit float noise.

    Covers lines, collections (fill_between, scatter, line collections), rectangles and polygons (bar, axvspan),
    images, text and annotation positions, and the view limits of every axes. The drawing does not visibly
    change (see ``KEPT_BITS``).
    """
    for ax in fig.axes:
        _quantize_axes(ax)


def save_as(fig: matplotlib.figure.Figure, path: str | Path) -> Path:
    """Write ``fig`` to one file of the caller's choosing (.svg, .pdf or .png), data rounded and metadata fixed as
    in :func:`savefig`, atomically (the doctor's ``--figure``); returns the path."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"figure path must end in one of {tuple('.' + f for f in FORMATS)}, got {str(path)!r}")
    use_bundled_fonts()
    quantize_figure(fig)
    return atomic_write(path, functools.partial(fig.savefig, format=fmt, metadata=_METADATA[fmt]))


def savefig(fig: matplotlib.figure.Figure, name: str, *, profile: str = "smoke", exact: bool = True) -> list[Path]:
    """Write ``name``.svg/.pdf/.png into figures/ (figures/full/ for the full profile); returns the paths.

    The plotted data are rounded first (``quantize_figure``), so the bytes do not depend on the CPU.
    ``exact=False`` marks a figure drawn from trained-model numbers (see module docstring).
    Each file is written to a temporary name and renamed, so a failure leaves no half-written figure.
    """
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"name must be a plain file stem without folders, got {name!r}")
    use_bundled_fonts()  # also for callers that drew without use_style()
    quantize_figure(fig)
    out_dir = figures_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        write = functools.partial(fig.savefig, format=fmt, metadata=_METADATA[fmt])
        paths.append(atomic_write(out_dir / f"{name}.{fmt}", write))
    if not exact and os.environ.get("ROPE_FIGURES_DIR"):
        with open(out_dir / INEXACT_LIST, "a", encoding="utf-8") as fh:
            fh.write("\n".join(p.name for p in paths) + "\n")
    return paths


# One colour per method in every figure of the companion (Okabe-Ito and Paul Tol's colour-blind-safe sets), so that a
# method reads the same in notebook 04's and notebook 08's figures; variants of a method (log n, log n-dagger) keep its
# colour and differ by line style. Direct fine-tuning is plain RoPE, the Baseline's colour.
METHOD_COLOURS: dict[str, str] = {
    "Baseline": "#000000",
    "PI": "#999999",
    "NTK-old": "#56B4E9",
    "NTK-aware": "#0072B2",
    "NTK-fixed": "#009E73",
    "NTK-mixed": "#44AA99",
    "NTK-by-parts": "#E69F00",
    "YaRN": "#D55E00",
    "YaRN (t = 1)": "#F4A582",
    "YaRN (s = 8)": "#882255",
    "Dynamic NTK": "#CC79A7",
    "Dynamic YaRN": "#AA4499",
    "ReRoPE": "#117733",
    "Leaky ReRoPE": "#999933",
    "InvLeaky ReRoPE": "#332288",
    "Direct": "#000000",
    # the methods after Su (notebook 14), from Paul Tol's bright, vibrant and light sets
    "p-RoPE (p = 0.75)": "#DDCC77",
    "HoPE": "#CC6677",
    "Resonance RoPE": "#88CCEE",
    "NoPE": "#BBBBBB",
    "iRoPE": "#4477AA",
    "iRoPE + temperature": "#66CCEE",
    "Llama 4 temperature": "#EE6677",
    "SSMax": "#EE7733",
    "VO-RoPE (QKVO)": "#009988",
    "VO-RoPE (VO only)": "#33BBEE",
    "DCA": "#EE3377",
    "PoSE (YaRN s = 4)": "#0077BB",
    "window fine-tune (YaRN s = 4)": "#AAAA00",
}
# Row-name suffixes of a method's variants (rope_lib.companion.experiments.harness.row_name), longest first.
_VARIANT_SUFFIXES = ("-log n-dagger", "-log n", " (log n)")
# Tier -> colour of a gap plot's marker: decided for (blue), against (vermilion), undecided (grey).
TIER_COLOURS = {"reproduced": "#0072B2", "consistent": "#56B4E9", "not reproduced": "#999999", "reversed": "#D55E00"}


def method_colour(name: str) -> str:
    """The colour of method ``name`` or of a variant row of it ("NTK-aware-log n-dagger" -> NTK-aware's colour).

    An unknown method is refused (ValueError listing the known ones) rather than given a colour another method has.
    """
    if name in METHOD_COLOURS:
        return METHOD_COLOURS[name]
    for suffix in _VARIANT_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in METHOD_COLOURS:
            return METHOD_COLOURS[name[: -len(suffix)]]
    raise ValueError(f"name: no colour for method {name!r}; known methods: {sorted(METHOD_COLOURS)}")


def legend_outside(ax: matplotlib.axes.Axes, **kwargs) -> matplotlib.legend.Legend:
    """A legend right of the axes, outside the data, at a readable 9 pt (``savefig``'s tight box keeps it)."""
    return ax.legend(
        **{"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "fontsize": 9, "borderaxespad": 0, **kwargs}
    )


def gap_plot(ax: matplotlib.axes.Axes, records: list[dict], labels: list[str] | None = None) -> None:
    """A verdict at a glance, one row per claim: each seed's estimate (dots), the mean (diamond, coloured by the
    tier) and its seed-level 95% interval (bar), against the claim's threshold (dashed line); right of the axes, the
    tier, with the stated verdict beside it where they differ ("consistent here (not decided)").

    ``records`` are verdict records (``rope_lib.companion.verdicts``: by_seed, mean, seed_lo, seed_hi, threshold,
    tier, claim); ``labels`` (default: each record's claim) name the rows, top to bottom. All records must share a
    threshold, so that one line marks it.
    """
    if not records:
        raise ValueError("records: at least one verdict record is needed")
    labels = [r["claim"] for r in records] if labels is None else list(labels)
    if len(labels) != len(records):
        raise ValueError(f"labels: one per record ({len(records)}), got {len(labels)}")
    thresholds = {float(r["threshold"]) for r in records}
    if len(thresholds) != 1:
        raise ValueError(f"records: one threshold for the whole plot, got {sorted(thresholds)}")
    ys = np.arange(len(records))[::-1]
    for y, r in zip(ys, records):
        colour = TIER_COLOURS.get(r["tier"], "#999999")
        ax.plot([r["seed_lo"], r["seed_hi"]], [y, y], color=colour, lw=2.5, solid_capstyle="butt")
        ax.plot(r["by_seed"], [y] * len(r["by_seed"]), "o", color="0.35", ms=3.5, mfc="white", mew=0.9)
        ax.plot([r["mean"]], [y], "D", color=colour, ms=6)
        stated = r.get("stated", r["tier"])
        ax.annotate(
            r["tier"] if stated == r["tier"] else f"{r['tier']} here ({stated})",
            (1.0, y),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8.5,
            color=colour,
        )
    ax.axvline(thresholds.pop(), color="0.3", lw=0.9, ls="--")
    ax.set_yticks(ys, labels)
    ax.set_ylim(-0.7, len(records) - 0.3)
    ax.grid(axis="y", visible=False)
