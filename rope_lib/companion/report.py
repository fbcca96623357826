"""Reading experiment results in notebooks: one setup call, one results reader, one table helper.

``setup_notebook(profile, device, seed)`` is the first code cell of every notebook (style, checks, seeds).
:class:`Results` reads ``results/<profile>/<name>.json`` (or takes the dict ``run_experiment`` returned: one run
per training seed) and answers the questions every table and claim cell asks: a row's accuracy at a test length
(mean over seeds, with the seed spread), per-sample accuracies, the gap between two rows bootstrapped over seeds
and test files, the loss by position, the loss on the last L bytes. Accuracies are in percent, gaps in points.

The gaps' bootstrap intervals describe a difference; claims are decided on the training-seed level by
:mod:`rope_lib.companion.verdicts` (CONTRIBUTING.md), from the per-seed estimates every gap dict carries (``by_seed``).
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .evaluate import bootstrap_difference
from .experiments.common import load_results
from .plotting import use_style
from .runtime import check_profile, pick_device, seed_everything


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
    """A table of evaluated rows over training seeds: one ``{row name: {"model", "metrics": {kind: {mult: summary}},
    ...}}`` per seed, in seed order (each seed scored on its own test windows).

    Numbers are means over seeds (:meth:`acc`, :meth:`last_window_loss`), with the seed spread (:meth:`spread`)
    and the per-seed values (:meth:`acc_by_seed`); gaps are bootstrapped over seeds and windows (:meth:`gap`).
    ``seed`` seeds the bootstrap, so every interval a notebook prints is reproducible.
    """

    def __init__(self, runs: Sequence[dict] | dict, *, seed: int = 0, files: Sequence[Sequence[str]] | None = None):
        self.runs = [runs] if isinstance(runs, dict) else list(runs)
        if not self.runs:
            raise ValueError("Rows needs at least one run")
        names = list(self.runs[0])
        for i, run in enumerate(self.runs[1:], 1):
            if list(run) != names:
                raise ValueError(f"run {i} has rows {list(run)}, run 0 has {names}")
        self.raw, self.seed, self.files = self.runs[0], seed, files

    @property
    def n_seeds(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __contains__(self, name: object) -> bool:
        return name in self.raw

    def __getitem__(self, name: str) -> dict:
        """The first seed's row (its model, method, window, schemes: the same in every seed)."""
        return self._row(name)

    def _row(self, name: str, run: int = 0) -> dict:
        if name not in self.raw:
            raise KeyError(f"no row {name!r}; rows: {list(self.raw)}")
        return self.runs[run][name]

    def _cells(self, name: str, kind: str, mult: int) -> list[dict]:
        cells = []
        for run in range(self.n_seeds):
            by_mult = self._row(name, run)["metrics"][kind]
            if str(mult) not in by_mult:
                raise KeyError(f"row {name!r} has no {mult}x result; it has {sorted(by_mult, key=int)}")
            cells.append(by_mult[str(mult)])
        return cells

    def _stack(self, name: str, kind: str, mult: int, key: str) -> np.ndarray:
        return np.asarray([c[key] for c in self._cells(name, kind, mult)], dtype=np.float64)

    def _groups(self, shape: tuple[int, ...]) -> np.ndarray | None:
        if self.files is None:
            return None
        return np.asarray([list(f) for f in self.files]).reshape(shape)

    def model(self, name: str) -> str:
        """The trained model a row ran on ("plain", "log_n", or an extra variant)."""
        return self._row(name)["model"]

    def acc_by_seed(self, name: str, kind: str, mult: int) -> np.ndarray:
        """Accuracy (%) of row ``name`` per training seed, on test set ``kind`` at ``mult`` x the training length."""
        return 100 * self._stack(name, kind, mult, "acc")

    def acc(self, name: str, kind: str, mult: int) -> float:
        """Accuracy (%), mean over training seeds."""
        return float(self.acc_by_seed(name, kind, mult).mean())

    def spread(self, name: str, kind: str, mult: int) -> float:
        """Standard deviation of the accuracy (%) over training seeds (0 for one seed)."""
        by_seed = self.acc_by_seed(name, kind, mult)
        return float(by_seed.std(ddof=1)) if by_seed.size > 1 else 0.0

    def cell(self, name: str, kind: str, mult: int, digits: int = 1) -> str:
        """A table cell: the mean accuracy over seeds and its seed spread, ``45.2 ± 1.3``."""
        return fmt_spread(self.acc(name, kind, mult), self.spread(name, kind, mult), digits)

    def per_sample(self, name: str, kind: str, mult: int) -> np.ndarray:
        """Per-sample accuracies (%), shape (seeds, samples): rows are paired sample by sample within a seed."""
        return 100 * self._stack(name, kind, mult, "acc_per_sample")

    def gap(self, a: str, b: str, kind: str = "non_repeated", mult: int = 8) -> dict:
        """acc(a) - acc(b) in points, bootstrapped over seeds and their test files: diff, lo, hi, se, by_seed."""
        pa, pb = self.per_sample(a, kind, mult), self.per_sample(b, kind, mult)
        return bootstrap_difference(pa, pb, groups=self._groups(pa.shape), seed=self.seed)

    def difference(self, a: np.ndarray, b: np.ndarray) -> dict:
        """a - b for two (seeds, samples) arrays of this table (e.g. two rows at two lengths), bootstrapped like
        :meth:`gap`: diff, lo, hi, se, by_seed."""
        return bootstrap_difference(a, b, groups=self._groups(np.shape(a)), seed=self.seed)

    def loss_per_sample(self, name: str, kind: str, mult: int) -> np.ndarray:
        """Per-sample loss (nats per byte, all predictions of the sample), shape (seeds, samples)."""
        return self._stack(name, kind, mult, "loss_per_sample")

    def loss_by_part(self, name: str, mult: int, part: str, kind: str = "non_repeated") -> np.ndarray:
        """Per-sample loss (nats per byte) on the bytes before position L (``part="within_L"``) or from L on
        (``"beyond_L"``) of the windows at ``mult`` x L, shape (seeds, samples); rows evaluated with ``split_at_L``."""
        if part not in ("within_L", "beyond_L"):
            raise ValueError(f"part must be one of ['within_L', 'beyond_L'], got {part!r}")
        key = f"{part}_loss_per_sample"
        if any(key not in c for c in self._cells(name, kind, mult)):
            raise ValueError(f"row {name!r} at {mult}x has no {key}: it was not evaluated with split_at_L=True")
        return self._stack(name, kind, mult, key)

    def loss_gap(self, a: str, b: str, kind: str = "non_repeated", mult: int = 8) -> dict:
        """loss(a) - loss(b) in nats per byte on the same windows, bootstrapped like :meth:`gap`."""
        return self.difference(self.loss_per_sample(a, kind, mult), self.loss_per_sample(b, kind, mult))

    def last_window_loss(self, name: str, mult: int, kind: str = "non_repeated") -> float:
        """Loss (nats) on the last L bytes at context ``mult`` x L (Su's "longer context, lower loss"), seed mean."""
        return float(self._stack(name, kind, mult, "last_window_loss").mean())

    def last_window_loss_per_sample(self, name: str, mult: int, kind: str = "non_repeated") -> np.ndarray:
        """Per-sample loss (nats) on the last L bytes at context ``mult`` x L, shape (seeds, samples)."""
        return self._stack(name, kind, mult, "last_window_loss_per_sample")

    def loss_change(self, name: str, mult: int, base_mult: int = 1, kind: str = "non_repeated") -> dict:
        """Last-L-bytes loss at context ``mult`` x L minus at ``base_mult`` x L (nats), bootstrapped like gap."""
        a = self.last_window_loss_per_sample(name, mult, kind)
        b = self.last_window_loss_per_sample(name, base_mult, kind)
        return bootstrap_difference(a, b, groups=self._groups(a.shape), seed=self.seed)

    def position_loss(
        self, name: str, *, bin_size: int, merge: int = 1, kind: str = "non_repeated", mult: int = 8
    ) -> tuple[np.ndarray, np.ndarray]:
        """(bin centres, mean loss over seeds) by position at ``mult`` x L, ``merge`` stored bins in one."""
        x, by_seed = self.position_loss_by_seed(name, bin_size=bin_size, merge=merge, kind=kind, mult=mult)
        return x, by_seed.mean(0)

    def position_loss_by_seed(
        self, name: str, *, bin_size: int, merge: int = 1, kind: str = "non_repeated", mult: int = 8
    ) -> tuple[np.ndarray, np.ndarray]:
        """(bin centres, loss by position per seed, shape (seeds, bins)): for a mean-and-band figure."""
        lp = self._stack(name, kind, mult, "loss_per_bin")
        lp = lp[:, : lp.shape[1] // merge * merge].reshape(lp.shape[0], -1, merge).mean(2)
        return (np.arange(lp.shape[1]) + 0.5) * bin_size * merge, lp


class Results:
    """An experiment's results file: one run per training seed (``runs``), read through :class:`Rows`.

    ``rows`` is its table (or ``group(name)`` for experiments with several). A single-seed file of the older
    layout (no ``runs``) reads as one run.
    """

    def __init__(self, data: dict) -> None:
        self.data = data
        self.runs: list[dict] = list(data["runs"]) if "runs" in data else [data]
        self.seeds: list[int] = [int(r.get("seed", 0)) for r in self.runs]
        self.seed = int(data.get("test_seed", self.seeds[0]))

    @classmethod
    def load(cls, name: str, profile: str = "smoke", out: str | Path | None = None) -> Results:
        return cls(load_results(name, profile, out))

    def __getitem__(self, key: str):
        return self.data[key]

    @property
    def config(self) -> dict:
        return self.data["config"]

    @property
    def eval(self) -> dict:
        return self.config["eval"]

    @property
    def train_length(self) -> int:
        return int(self.eval["train_length"])

    @property
    def mults(self) -> list[int]:
        return list(self.eval["multipliers"])

    @property
    def files(self) -> list[list[str]] | None:
        """The test file of every sample, per seed (None in files that did not record them)."""
        files = [r["config"]["eval"].get("sample_files") for r in self.runs]
        return None if any(f is None for f in files) else files

    def by_seed(self, key: str) -> list:
        """``run[key]`` of every seed's run, in seed order (e.g. "training", "timings", "coverage")."""
        return [r[key] for r in self.runs]

    @property
    def rows(self) -> Rows:
        first = self.runs[0]["rows"]
        if first and all(isinstance(v, dict) and "metrics" not in v for v in first.values()):
            raise ValueError(f"this results file has row groups {list(first)}: use .group(name)")
        return Rows([r["rows"] for r in self.runs], seed=self.seed, files=self.files)

    def group(self, name: str) -> Rows:
        groups = self.runs[0]["rows"]
        if name not in groups:
            raise KeyError(f"no row group {name!r}; groups: {list(groups)}")
        return Rows([r["rows"][name] for r in self.runs], seed=self.seed, files=self.files)

    def train_length_acc_by_seed(self, model: str, kind: str, source: str = "train_length_metrics") -> np.ndarray:
        """Accuracy (%) of a trained model at the training length, per seed (plain RoPE unless ``source`` says)."""
        return 100 * np.asarray([r[source][model][kind]["acc"] for r in self.runs], dtype=np.float64)

    def train_length_acc(self, model: str, kind: str, source: str = "train_length_metrics") -> float:
        """Accuracy (%) of a trained model at the training length, mean over seeds."""
        return float(self.train_length_acc_by_seed(model, kind, source).mean())

    def train_length_loss(self, model: str, kind: str = "non_repeated") -> float:
        """Loss on the last L bytes at context L (the first point of the "longer context" curve), seed mean."""
        return float(np.mean([r["train_length_metrics"][model][kind]["last_window_loss"] for r in self.runs]))


def fmt(x: float | None, digits: int = 1) -> str:
    """A number for a table cell: fixed digits, empty for None."""
    return "" if x is None else f"{x:.{digits}f}"


class Table:
    """A table that renders everywhere: HTML for Jupyter and the book, Markdown for Markdown viewers, aligned plain
    text for a terminal or a plain-text export (a bare ``Markdown`` object falls back to its repr there).

    Cells are ``str()`` of what was given; ``|`` is escaped in Markdown and ``<&>`` in HTML, so a header such as
    "max |diff|" cannot break the table. ``note`` is a line printed under it.
    """

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence[str]], note: str = "") -> None:
        self.header, self.rows, self.note = list(header), [list(r) for r in rows], note

    def _repr_markdown_(self) -> str:
        def line(cells):
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        text = "\n".join([line(self.header), "|" + "---|" * len(self.header), *map(line, self.rows)])
        return text + (f"\n\n{self.note}" if self.note else "")

    def _repr_html_(self) -> str:
        def row(tag, cells):
            return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"

        body = "".join(row("td", r) for r in self.rows)
        note = f"<p>{html.escape(self.note)}</p>" if self.note else ""
        return f"<table><thead>{row('th', self.header)}</thead><tbody>{body}</tbody></table>{note}"

    def __repr__(self) -> str:
        widths = [max(len(c) for c in col) for col in zip(self.header, *self.rows)]

        def line(cells):
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

        lines = [line(self.header), "  ".join("-" * w for w in widths), *map(line, self.rows)]
        return "\n".join(lines + ([self.note] if self.note else []))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """A :class:`Table` from a header and rows of cells (``str()`` of each; None is an empty cell).

    Columns empty in every row are dropped; with 3 or more rows, a column holding the same value in every row is
    dropped too and stated once in the note under the table ("Every row: ..."), so the columns that remain differ.
    """
    header = [str(h) for h in header]
    cells = [["" if c is None else str(c) for c in r] for r in rows]
    for r in cells:
        if len(r) != len(header):
            raise ValueError(f"rows: every row needs {len(header)} cells (the header's), got {len(r)}: {r}")
    keep, constant = [], []
    for j, name in enumerate(header):
        column = [r[j] for r in cells]
        if cells and not any(column):
            continue
        if len(cells) >= 3 and len(set(column)) == 1:
            constant.append(f"{name} = {column[0]}")
            continue
        keep.append(j)
    note = "Every row: " + "; ".join(constant) + "." if constant else ""
    return Table([header[j] for j in keep], [[r[j] for j in keep] for r in cells], note)


def fmt_spread(mean: float, sd: float, digits: int = 1) -> str:
    """``45.2 ± 1.3``: a mean over seeds and its seed standard deviation."""
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def fmt_seeds(x, digits: int = 1) -> str:
    """``45.2 ± 1.3`` for ``x`` of shape (seeds, ...): each seed's mean over the other axes, then their mean and
    seed standard deviation (the spread between training runs, not between samples)."""
    x = np.asarray(x, dtype=float)
    if x.ndim < 1 or x.shape[0] < 2:
        raise ValueError(f"x: need shape (seeds, ...) with at least 2 seeds, got shape {x.shape}")
    per_seed = x.reshape(x.shape[0], -1).mean(1)
    return fmt_spread(per_seed.mean(), per_seed.std(ddof=1), digits)


def format_gap(g: dict) -> str:
    """``+1.23 [+0.45, +2.01]`` for a gap dict from :meth:`Rows.gap`."""
    return f"{g['diff']:+.2f} [{g['lo']:+.2f}, {g['hi']:+.2f}]"


def seeds_agreeing(g: dict, direction: str = ">") -> str:
    """``2/3 seeds``: how many per-seed differences lie on the given side of zero (a description for tables)."""
    by_seed = np.asarray(g["by_seed"])
    hits = int((by_seed > 0).sum() if direction == ">" else (by_seed < 0).sum())
    return f"{hits}/{by_seed.size} seeds"


class Leaderboard:
    """Rows of several results files, scored on the same windows, read as one table (notebook 14, the README).

    ``sources``: (results file, its table, the row names to take or None for all); a later source's row replaces an
    earlier one of the same name. A row without a score of its own at the training length (notebook 04 scores L once
    per model: every one of its methods is plain RoPE there) reads its model's score at L.
    """

    def __init__(self, sources: Sequence[tuple[Results, Rows, Sequence[str] | None]]) -> None:
        self._where: dict[str, tuple[Results, Rows]] = {}
        for results, table, names in sources:
            for name in table if names is None else names:
                table[name]  # noqa: B018 - a KeyError naming the rows now, not at the first read
                self._where[name] = (results, table)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def row(self, name: str) -> dict:
        """The row's first-seed entry (model, method, schemes, ...)."""
        return self._where[name][1][name]

    def acc_by_seed(self, name: str, mult: int, kind: str = "non_repeated") -> np.ndarray:
        """Accuracy (%) of row ``name`` per training seed at ``mult`` x the training length."""
        results, table = self._where[name]
        if mult == 1 and "1" not in table[name]["metrics"][kind]:
            return results.train_length_acc_by_seed(table.model(name), kind)
        return table.acc_by_seed(name, kind, mult)

    def cell(self, name: str, mult: int, kind: str = "non_repeated", digits: int = 1) -> str:
        """``mean ± sd`` over the seeds, as :meth:`Rows.cell`."""
        by_seed = self.acc_by_seed(name, mult, kind)
        return fmt_spread(by_seed.mean(), by_seed.std(ddof=1) if by_seed.size > 1 else 0.0, digits)
