"""Reading experiment results in notebooks: one setup call, one results reader, one Markdown table helper.

``setup_notebook(profile, device, seed)`` is the first code cell of every notebook (style, checks, seeds).
:class:`Results` reads ``results/<profile>/<name>.json`` (or takes the dict ``run_experiment`` returned) and
answers the questions every table and claim cell asks: accuracy of a row at a test length, per-sample accuracies,
a paired-bootstrap gap between two rows, the loss by position, the loss on the last L bytes. Accuracies are in
percent, gaps in points.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .evaluate import bootstrap_difference
from .experiments.common import load_results
from .plotting import use_style
from .utils import check_profile, pick_device, seed_everything


def setup_notebook(profile: str, device: str | None, seed: int) -> None:
    """The companion's figure style, the profile checked, every generator seeded.

    ``device`` is only checked here ("auto"/None, "cpu", "cuda", "cuda:N"; a device that is not there is refused
    before any work); the experiments resolve it themselves. Returns nothing, so that a setup cell ending with this
    call prints nothing.
    """
    use_style()
    check_profile(profile)
    pick_device(device)
    seed_everything(seed)


class Rows:
    """A table of evaluated rows, ``{row name: {"model", "metrics": {kind: {mult: summary}}, ...}}``.

    ``seed`` seeds the bootstrap of :meth:`gap`, so every interval a notebook prints is reproducible.
    """

    def __init__(self, rows: dict, *, seed: int = 0) -> None:
        self.raw, self.seed = rows, seed

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __contains__(self, name: object) -> bool:
        return name in self.raw

    def __getitem__(self, name: str) -> dict:
        return self._row(name)

    def _row(self, name: str) -> dict:
        if name not in self.raw:
            raise KeyError(f"no row {name!r}; rows: {list(self.raw)}")
        return self.raw[name]

    def _cell(self, name: str, kind: str, mult: int) -> dict:
        by_mult = self._row(name)["metrics"][kind]
        if str(mult) not in by_mult:
            raise KeyError(f"row {name!r} has no {mult}x result; it has {sorted(by_mult, key=int)}")
        return by_mult[str(mult)]

    def model(self, name: str) -> str:
        """The trained model a row ran on ("plain", "log_n", or an extra variant)."""
        return self._row(name)["model"]

    def acc(self, name: str, kind: str, mult: int) -> float:
        """Accuracy (%) of row ``name`` on test set ``kind`` at ``mult`` times the training length."""
        return 100 * self._cell(name, kind, mult)["acc"]

    def per_sample(self, name: str, kind: str, mult: int) -> np.ndarray:
        """Per-sample accuracies (%) of a row, in sample order (rows are paired sample by sample)."""
        return 100 * np.asarray(self._cell(name, kind, mult)["acc_per_sample"], dtype=np.float64)

    def gap(self, a: str, b: str, kind: str = "non_repeated", mult: int = 8) -> dict:
        """Paired bootstrap of acc(a) - acc(b) over the shared test samples, in points: diff, lo, hi, se."""
        return bootstrap_difference(self.per_sample(a, kind, mult), self.per_sample(b, kind, mult), seed=self.seed)

    def last_window_loss(self, name: str, mult: int, kind: str = "non_repeated") -> float:
        """Loss (nats) on the last L bytes at context ``mult`` x L (Su's "longer context, lower loss")."""
        return self._cell(name, kind, mult)["last_window_loss"]

    def last_window_loss_per_sample(self, name: str, mult: int, kind: str = "non_repeated") -> np.ndarray:
        """Per-sample loss (nats) on the last L bytes at context ``mult`` x L, in sample order."""
        return np.asarray(self._cell(name, kind, mult)["last_window_loss_per_sample"], dtype=np.float64)

    def loss_change(self, name: str, mult: int, base_mult: int = 1, kind: str = "non_repeated") -> dict:
        """Paired bootstrap of the last-L-bytes loss at context ``mult`` x L minus at ``base_mult`` x L (nats)."""
        return bootstrap_difference(
            self.last_window_loss_per_sample(name, mult, kind),
            self.last_window_loss_per_sample(name, base_mult, kind),
            seed=self.seed,
        )

    def position_loss(
        self, name: str, *, bin_size: int, merge: int = 1, kind: str = "non_repeated", mult: int = 8
    ) -> tuple[np.ndarray, np.ndarray]:
        """(bin centres, mean loss) by position at ``mult`` x L, ``merge`` stored bins of ``bin_size`` bytes in one."""
        lp = np.asarray(self._cell(name, kind, mult)["loss_per_bin"], dtype=np.float64)
        lp = lp[: lp.size // merge * merge].reshape(-1, merge).mean(1)
        return (np.arange(lp.size) + 0.5) * bin_size * merge, lp


class Results:
    """An experiment's results file. ``rows`` is its table (or ``group(name)`` for experiments with several)."""

    def __init__(self, data: dict) -> None:
        self.data = data
        self.seed = int(data.get("seed", 0))

    @classmethod
    def load(cls, name: str, profile: str = "smoke", out: str | Path | None = None) -> Results:
        return cls(load_results(name, profile, out))

    def __getitem__(self, key: str):
        return self.data[key]

    @property
    def eval(self) -> dict:
        return self.data["config"]["eval"]

    @property
    def train_length(self) -> int:
        return int(self.eval["train_length"])

    @property
    def mults(self) -> list[int]:
        return list(self.eval["multipliers"])

    @property
    def rows(self) -> Rows:
        rows = self.data["rows"]
        if rows and all(isinstance(v, dict) and "metrics" not in v for v in rows.values()):
            raise ValueError(f"this results file has row groups {list(rows)}: use .group(name)")
        return Rows(rows, seed=self.seed)

    def group(self, name: str) -> Rows:
        groups = self.data["rows"]
        if name not in groups:
            raise KeyError(f"no row group {name!r}; groups: {list(groups)}")
        return Rows(groups[name], seed=self.seed)

    def train_length_acc(self, model: str, kind: str, source: str = "train_length_metrics") -> float:
        """Accuracy (%) of a trained model at the training length (plain RoPE unless ``source`` says otherwise)."""
        return 100 * self.data[source][model][kind]["acc"]

    def train_length_loss(self, model: str, kind: str = "non_repeated") -> float:
        """Loss on the last L bytes at context L (the first point of the "longer context" curve)."""
        return self.data["train_length_metrics"][model][kind]["last_window_loss"]


def fmt(x: float | None, digits: int = 1) -> str:
    """A number for a table cell: fixed digits, empty for None."""
    return "" if x is None else f"{x:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]):
    """A Markdown table (rendered by Jupyter) from a header and rows of cells (str() of each)."""
    from IPython.display import Markdown

    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, cells)) + " |" for cells in rows]
    return Markdown("\n".join(lines))


def format_gap(g: dict) -> str:
    """``+1.23 [+0.45, +2.01]`` for a gap dict from :meth:`Rows.gap`."""
    return f"{g['diff']:+.2f} [{g['lo']:+.2f}, {g['hi']:+.2f}]"


def excludes_zero(g: dict) -> bool:
    """Whether a gap's interval excludes 0."""
    return g["lo"] > 0 or g["hi"] < 0
