"""One style and one ``savefig`` that writes deterministic SVG, PDF and PNG.

Determinism needs three things: a fixed ``svg.hashsalt`` (in ``paper.mplstyle``), no dates or tool versions in
the file metadata (set below), and ``SOURCE_DATE_EPOCH=0`` in the environment (the Makefile exports it).

Figures drawn from *trained models* can differ in their last bits between CPUs, so ``savefig(..., exact=False)``
records them as such: ``make test`` compares analytic figures byte for byte and only checks that the others were
regenerated (their numbers are checked with a tolerance by the notebooks' claim cells).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from .utils import figures_dir

STYLE = str(Path(__file__).with_name("paper.mplstyle"))
FORMATS = ("svg", "pdf", "png")
INEXACT_LIST = "inexact.txt"  # written only into a ROPE_FIGURES_DIR scratch folder, read by the figure check

_METADATA = {
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
    "png": {"Software": None},
}


def use_style() -> None:
    """Set up a notebook session: the companion's style, PNG inline figures (nbval skips PNG, not SVG), and no
    environment noise in committed outputs - tqdm's "IProgress not found" warning (it carries a local path) and
    fontTools' note about the zero timestamp that SOURCE_DATE_EPOCH=0 puts into PDF fonts."""
    warnings.filterwarnings("ignore", message="IProgress not found")
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    plt.style.use(STYLE)
    try:  # only inside IPython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except Exception:  # noqa: BLE001 - not in a notebook: nothing to configure
        pass


def savefig(fig: matplotlib.figure.Figure, name: str, *, profile: str = "smoke", exact: bool = True) -> list[Path]:
    """Write ``name``.svg/.pdf/.png into figures/ (figures/full/ for the full profile); returns the paths.

    ``exact=False`` marks a figure drawn from trained-model numbers (see module docstring).
    Each file is written to a temporary name and renamed, so a failure leaves no half-written figure.
    """
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"name must be a plain file stem without folders, got {name!r}")
    out_dir = figures_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{name}.{fmt}"
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            fig.savefig(tmp, format=fmt, metadata=_METADATA[fmt])
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        paths.append(path)
    if not exact and os.environ.get("ROPE_FIGURES_DIR"):
        with open(out_dir / INEXACT_LIST, "a", encoding="utf-8") as fh:
            fh.write("\n".join(p.name for p in paths) + "\n")
    return paths
