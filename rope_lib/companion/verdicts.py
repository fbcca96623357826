"""Claim verdicts decided on the training-seed level, and one record per claim (CONTRIBUTING.md, "Verdicts").

Why the seed level: training turns a CPU's rounding into what is in effect another draw of training noise, so a
verdict must hold for the seeds as a sample of training runs, not for the particular weights one machine produced.
Each training seed gives one estimate (the mean over its own test windows); the verdict reads the Student-t 95%
interval over those estimates:

- ``reproduced``: the interval lies entirely on the claimed side of the threshold (0 unless the claim has a margin);
- ``consistent``: every seed's estimate is on the claimed side, but the interval reaches across the threshold;
- ``reversed``: the interval lies entirely on the other side;
- ``not reproduced``: anything else (seeds on both sides, or every seed on the other side within noise).

A notebook states each verdict next to its claim (``stated``): one of the tiers above when every run on record
agrees, ``not decided`` when they do not. The runs: the committed one (``results/<profile>/verdicts/``) and the other
machines' (``results/<profile>/<name>-machine/verdicts/``: ``make second-machine`` writes ``second-machine``; an
earlier committed run from another CPU is kept as a machine of its own, e.g. ``first-machine``, see the README of its
folder). :class:`ClaimBook` prints one line per claim and records it in ``results/<profile>/verdicts/<notebook>.json``;
``python -m rope_lib.companion.verdicts`` compares the folders claim by claim.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .._checks import atomic_write, finite_number, non_empty_text, positive_int
from .experiments.common import write_json
from .runtime import results_dir

TIERS = ("reproduced", "consistent", "not reproduced", "reversed")
NOT_DECIDED = "not decided"
STATED = (*TIERS, NOT_DECIDED)
DIRECTIONS = (">", "<")
LEVEL = 0.95
# The widest printed line: a verdict line wraps there (the book and a terminal show it without wrapping a number).
LINE_WIDTH = 100


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df`` degrees of freedom (closed form: Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:  # odd: 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)), the series ending at cos^(df-3)
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 3) // 2 + 1):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + (s * math.cos(theta) * total if df > 1 else 0.0))
    term, total = 1.0, 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...), ending at cos^(df-2)
    for k in range(1, (df - 2) // 2 + 1):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` >= 1 degrees of freedom, by bisection on the CDF."""
    if not 0.5 < p < 1:
        raise ValueError(f"p must be in (0.5, 1), got {p!r}")
    df = positive_int("df", df)
    mass = 2 * p - 1  # P(|T| < t) at the p quantile
    lo, hi = 0.0, 1.0
    while _t_two_sided_mass(hi, df) < mass:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_two_sided_mass(mid, df) < mass else (lo, mid)
    return (lo + hi) / 2


def seed_interval(by_seed, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, lo, hi): the Student-t ``level`` interval of the mean of the per-seed estimates (needs >= 2 seeds)."""
    x = np.asarray(by_seed, dtype=np.float64)
    if x.ndim != 1 or x.size < 2 or not np.isfinite(x).all():
        raise ValueError(f"by_seed must be a 1-d array of >= 2 finite per-seed estimates, got {by_seed!r}")
    mean = float(x.mean())
    half = t_quantile((1 + level) / 2, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def tier(by_seed, direction: str = ">", threshold: float = 0.0, level: float = LEVEL) -> str:
    """The seed-level tier of the claim "estimate ``direction`` ``threshold``" (module docstring)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    sign = 1.0 if direction == ">" else -1.0
    # in claimed units: > 0 means on the claimed side of the threshold
    x = sign * (np.asarray(by_seed, dtype=np.float64) - threshold)
    _, lo, hi = seed_interval(x, level)
    if lo > 0:
        return "reproduced"
    if hi < 0:
        return "reversed"
    return "consistent" if bool((x > 0).all()) else "not reproduced"


def slug(name: str) -> str:
    """A row, model or test-set name as part of a claim id: "YaRN (t = 1)-log n" -> "yarn-t-1-log-n"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def sign_tier(gap: dict) -> str:
    """The seed-level tier of "the difference has the sign of its mean" (a description, not a claim): "> 0: ..."."""
    direction = ">" if float(np.mean(gap["by_seed"])) >= 0 else "<"
    return f"{direction} 0: {tier(gap['by_seed'], direction)}"


@dataclass(frozen=True)
class Verdict:
    """One decided claim, as recorded (see :class:`ClaimBook`); ``holds``: this run's tier is the stated one."""

    id: str
    notebook: str
    claim: str
    source: str
    quantity: str
    direction: str
    threshold: float
    by_seed: list[float]
    mean: float
    seed_lo: float
    seed_hi: float
    boot_lo: float | None
    boot_hi: float | None
    tier: str
    stated: str

    @property
    def holds(self) -> bool:
        """Whether this run decides the claim as the notebook states it (never for a claim stated "not decided")."""
        return self.tier == self.stated

    def line(self) -> str:
        """The claim, its estimate, per-seed values, intervals and tier, wrapped at :data:`LINE_WIDTH` between
        words and never inside a number or an interval (continuation lines indented by 4)."""
        seeds = " ".join(f"{x:+.2f}" for x in self.by_seed)
        parts = [*self.claim.split(), f"({self.direction} {self.threshold:g}):", f"{self.mean:+.2f},"]
        parts += [f"seeds {seeds},", f"95% seed interval [{self.seed_lo:+.2f}, {self.seed_hi:+.2f}]"]
        if self.boot_lo is not None:
            parts[-1] += ","
            parts.append(f"bootstrap [{self.boot_lo:+.2f}, {self.boot_hi:+.2f}]")
        parts.append(f"-> {self.tier}" + ("" if self.holds else f" (stated: {self.stated})"))
        lines = [parts[0]]
        for part in parts[1:]:
            if len(lines[-1]) + 1 + len(part) <= LINE_WIDTH:
                lines[-1] += " " + part
            else:
                lines.append("    " + part)
        return "\n".join(lines)


class _Book:
    """A notebook's record file ``<results_dir(profile) or out>/<FOLDER>/<notebook>.json``, rewritten (atomically)
    after every record, so it always holds exactly what this run has recorded so far; a new book starts it afresh."""

    FOLDER, KEY = "", ""  # the records' folder; the key of the file's list of records

    def __init__(self, notebook: str, profile: str = "smoke", out: str | Path | None = None) -> None:
        self.notebook = non_empty_text("notebook", notebook)
        folder = results_dir(profile) if out is None else Path(out)
        self.path = folder / self.FOLDER / f"{notebook}.json"
        self.records: dict = {}
        self._write()

    def _common(self, id: str, claim: str, source: str, quantity: str) -> dict:
        """The fields every record has, checked: id, notebook, claim, source, quantity."""
        texts = {"claim": claim, "source": source, "quantity": quantity}
        return {"id": id, "notebook": self.notebook} | {k: non_empty_text(k, v) for k, v in texts.items()}

    def _keep(self, record, quiet: bool):
        """Record ``record`` (a :class:`Verdict` or :class:`Check`) under its id, rewrite the file, print its line."""
        self.records[record.id] = record
        self._write()
        if not quiet:
            print(record.line())
        return record

    def _write(self) -> None:
        # write_json rounds every float to 6 significant digits: records are compared by tier, not by their last bits
        write_json({"notebook": self.notebook, self.KEY: [asdict(r) for r in self.records.values()]}, self.path)


class ClaimBook(_Book):
    """The verdicts of one notebook: :meth:`decide` prints a claim's line and records it in
    ``<results_dir(profile) or out>/verdicts/<notebook>.json``."""

    FOLDER, KEY = "verdicts", "claims"

    def decide(
        self,
        id: str,
        gap: dict,
        direction: str = ">",
        *,
        claim: str,
        stated: str,
        source: str = "ours",
        quantity: str = "accuracy gap (points)",
        threshold: float = 0.0,
        quiet: bool = False,
    ) -> Verdict:
        """Decide the claim "``gap`` ``direction`` ``threshold``" on its per-seed estimates (``gap["by_seed"]``).

        ``gap``: a dict from :meth:`rope_lib.companion.report.Rows.gap` / ``bootstrap_difference`` (its bootstrap
        interval ``lo``/``hi`` is recorded beside the seed-level one) or any ``{"by_seed": [...]}``. ``stated``: the
        verdict the notebook's text gives, one of :data:`STATED`. ``threshold`` states a margin (e.g. "no worse than one
        point": ``">"`` with ``threshold=-1``). Prints the claim's line unless ``quiet``; returns the :class:`Verdict`
        (assert ``v.holds`` in the claim cell for a decided claim).
        """
        non_empty_text("id", id)
        before = self.records.get(id)
        if before is not None and (before.claim, before.direction, before.threshold) != (claim, direction, threshold):
            # re-running a cell in Jupyter re-decides its claims (the record is replaced); two claims, one id is a bug
            raise ValueError(f"claim id {id!r} is decided twice in notebook {self.notebook!r}, for two claims")
        if stated not in STATED:
            raise ValueError(f"stated must be one of {STATED}, got {stated!r}")
        if not isinstance(gap, dict) or "by_seed" not in gap:
            raise ValueError(f"gap must be a dict with per-seed estimates under 'by_seed', got {gap!r}")
        threshold = finite_number("threshold", threshold)
        by_seed = [float(x) for x in gap["by_seed"]]
        mean, lo, hi = seed_interval(by_seed)
        v = Verdict(
            **self._common(id, claim, source, quantity),
            direction=direction,
            threshold=threshold,
            by_seed=by_seed,
            mean=mean,
            seed_lo=lo,
            seed_hi=hi,
            boot_lo=None if "lo" not in gap else float(gap["lo"]),
            boot_hi=None if "hi" not in gap else float(gap["hi"]),
            tier=tier(by_seed, direction, threshold),
            stated=stated,
        )
        return self._keep(v, quiet)


# Tiers of an exact check: a derivation or a computation holds or it does not (no training, no seeds, no machine).
CHECK_TIERS = ("reproduced", "not reproduced")


@dataclass(frozen=True)
class Check:
    """One claim checked exactly (a derivation or a computation, no training), as recorded by :class:`CheckBook`.

    ``ours`` is what this notebook computes; ``expected`` the source's number (None for a yes/no check, where ``ours``
    is True when the claim holds); ``tolerance`` the absolute difference allowed between the two.
    """

    id: str
    notebook: str
    claim: str
    source: str
    quantity: str
    ours: float | bool
    expected: float | None
    tolerance: float
    tier: str
    stated: str

    @property
    def holds(self) -> bool:
        return self.tier == self.stated

    def line(self) -> str:
        """The claim, ours against the source's number, and the tier, wrapped at :data:`LINE_WIDTH`."""
        if self.expected is None:
            found = "holds" if self.ours else "does not hold"
        else:
            within = f" (within {self.tolerance:.3g})" if self.tolerance else ""
            found = f"ours {self.ours:.6g}, expected {self.expected:.6g}{within}"
        text = f"{self.claim} [{self.quantity}]: {found} -> {self.tier}"
        text += "" if self.holds else f" (stated: {self.stated})"
        return textwrap.fill(text, LINE_WIDTH, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)


class CheckBook(_Book):
    """The exact checks of one notebook: :meth:`check` prints a claim's line and records it in
    ``<results_dir(profile) or out>/checks/<notebook>.json``.

    Kept apart from the verdict records: an exact check does not depend on training seeds or on a CPU's rounding, so
    it is neither decided on the seed level nor compared between machines. ``make readme`` writes each notebook's box
    from this file.
    """

    FOLDER, KEY = "checks", "checks"

    def check(
        self,
        id: str,
        ours,
        *,
        claim: str,
        source: str,
        quantity: str,
        expected: float | None = None,
        tolerance: float = 0.0,
        stated: str = "reproduced",
        quiet: bool = False,
    ) -> Check:
        """Check the claim and record it: with ``expected`` None, ``ours`` is a bool (True: the claim holds);
        otherwise ``ours`` and ``expected`` are numbers and the claim holds when ``|ours - expected| <= tolerance``.

        ``ours`` must be computed independently of ``expected`` (an assert that cannot fail is a defect,
        CONTRIBUTING.md). ``stated``: the tier the notebook's text gives, one of :data:`CHECK_TIERS`. Returns the
        :class:`Check`; assert ``c.holds`` in the claim cell.
        """
        non_empty_text("id", id)
        before = self.records.get(id)
        if before is not None and before.claim != claim:
            raise ValueError(f"claim id {id!r} is checked twice in notebook {self.notebook!r}, for two claims")
        if stated not in CHECK_TIERS:
            raise ValueError(f"stated must be one of {CHECK_TIERS}, got {stated!r}")
        tolerance = finite_number("tolerance", tolerance, at_least=0)
        if expected is None:
            if not isinstance(ours, (bool, np.bool_)):
                raise ValueError(f"ours must be a bool when expected is None (a yes/no check), got {ours!r}")
            ours = bool(ours)
            holds = ours
        else:
            expected = finite_number("expected", expected)
            ours = finite_number("ours", ours)
            holds = abs(ours - expected) <= tolerance
        c = Check(
            **self._common(id, claim, source, quantity),
            ours=ours,
            expected=expected,
            tolerance=tolerance,
            tier=CHECK_TIERS[0] if holds else CHECK_TIERS[1],
            stated=stated,
        )
        return self._keep(c, quiet)


def _read_records(files, book: type[_Book], what: str) -> dict[str, dict]:
    """The records of ``files`` (a book's ``<notebook>.json``), by id; an id recorded twice is refused."""
    out: dict[str, dict] = {}
    for f in files:
        for rec in json.loads(f.read_text(encoding="utf-8"))[book.KEY]:
            if rec["id"] in out:
                raise ValueError(f"{what} id {rec['id']!r} is recorded twice ({f.name})")
            out[rec["id"]] = rec
    return out


def load_checks(folder: str | Path) -> dict[str, dict]:
    """Every exact check recorded under ``folder`` (a ``checks`` folder of ``<notebook>.json``), by claim id."""
    return _read_records(sorted(Path(folder).glob("*.json")), CheckBook, "check")


def load(folder: str | Path) -> dict[str, dict]:
    """Every claim record under ``folder`` (a ``verdicts`` folder of ``<notebook>.json`` files), by claim id."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ValueError(f"no verdict records (*.json) in {folder}")
    return _read_records(files, ClaimBook, "claim")


# The other runs of a profile, by name ("second-machine"): {claim id: record} each.
Others = dict[str, dict[str, dict]]


def other_machines(profile_dir: str | Path) -> Others:
    """Every other machine's records under ``profile_dir`` (``results/<profile>``): its ``*-machine/verdicts``
    folders, by folder name, in name order (empty when there is none)."""
    folders = sorted(Path(profile_dir).glob("*-machine/verdicts"))
    return {f.parent.name: load(f) for f in folders if any(f.glob("*.json"))}


def machine_label(name: str) -> str:
    """ "second-machine" -> "the second machine": how the text names a run."""
    return "the " + name.replace("-", " ")


def tiers_elsewhere(cid: str, others: Others) -> str:
    """ "consistent on the second machine, not reproduced on the first machine": a claim's tier on every other run."""
    return ", ".join(
        f"{others[n][cid]['tier'] if cid in others[n] else 'not recorded'} on {machine_label(n)}" for n in others
    )


def compare(committed: dict[str, dict], others: Others) -> tuple[list[str], list[str]]:
    """(report lines, problems) for the committed run's records against every other run's (``others``, by name).

    A problem is what makes a verdict machine-dependent as stated: a claim stated as a tier that any run decides
    otherwise, a claim stated "not decided" on which every run agrees (it is decided: state it), or a claim that a
    run did not record. One exception: a notebook that another run never ran (none of its claims there, e.g. a new
    notebook not yet retrained on another machine) may be on record in the committed run only, with every claim
    stated "not decided": a tier is stated only once another machine agrees.
    """
    if not others:
        raise ValueError("others: need at least one other run's records to compare with")
    lines, problems = [], []
    ran = {n: {r["notebook"] for r in recs.values()} for n, recs in others.items()}
    for cid in sorted(set(committed).union(*others.values())):
        missing = [n for n in others if cid not in others[n]] + ([] if cid in committed else ["the committed run"])
        not_run = cid in committed and all(committed[cid]["notebook"] not in ran[n] for n in missing)
        if missing and not_run:
            if committed[cid]["stated"] != NOT_DECIDED:
                problems.append(
                    f"{cid}: stated {committed[cid]['stated']}, but its notebook has not run on "
                    f"{', '.join(map(machine_label, missing))}: state it not decided until another machine agrees"
                )
            continue
        if missing:
            problems.append(f"{cid}: not recorded in {', '.join(missing)}")
            continue
        a = committed[cid]
        tiers = {a["tier"], *(others[n][cid]["tier"] for n in others)}
        if len(tiers) > 1:
            lines.append(f"{cid}: committed {a['tier']}, {tiers_elsewhere(cid, others)} (stated: {a['stated']})")
        if a["stated"] in TIERS and tiers != {a["stated"]}:
            problems.append(f"{cid}: stated {a['stated']}, committed {a['tier']}, {tiers_elsewhere(cid, others)}")
        if a["stated"] == NOT_DECIDED and len(tiers) == 1:
            problems.append(f"{cid}: stated {NOT_DECIDED}, but every run says {a['tier']}")
    return lines, problems


def summary(committed: dict[str, dict], others: Others) -> str:
    """A Markdown summary of the stated verdicts per notebook (how many claims in each tier), then every claim stated
    "not decided" with every run's tier: the block the README shows between its ``verdicts`` markers."""
    notebooks = sorted({r["notebook"] for r in committed.values()})
    head = ["notebook", "claims", *STATED]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for nb in notebooks:
        stated = [r["stated"] for r in committed.values() if r["notebook"] == nb]
        lines.append("| " + " | ".join([nb, str(len(stated)), *(str(stated.count(t)) for t in STATED)]) + " |")
    undecided = [r for r in committed.values() if r["stated"] == NOT_DECIDED]
    runs = ", ".join(["the committed run", *map(machine_label, others)])
    lines += ["", f"Not decided ({len(undecided)}: the runs on record, {runs}, give different tiers):"]
    lines += [
        f"- `{r['id']}` {r['claim']}: {r['tier']} here, {tiers_elsewhere(r['id'], others)}"
        for r in sorted(undecided, key=lambda r: r["id"])
    ]
    return "\n".join(lines) + "\n"


README_START, README_END = "<!-- verdicts:start -->\n", "<!-- verdicts:end -->"


def write_summary(path: Path, block: str) -> None:
    """Replace the text between the ``verdicts`` markers of ``path`` (a README) with ``block``, atomically."""
    text = path.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise ValueError(f"{path} has no {README_START.strip()} ... {README_END} block to rewrite")
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    new = head + README_START + block + README_END + tail
    atomic_write(path, lambda tmp: tmp.write_text(new, encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rope_lib.companion.verdicts",
        description="Compare the verdict records of the committed run with other runs (other machines' numerics).",
    )
    parser.add_argument("committed", type=Path, help="verdicts folder of the committed run (results/smoke/verdicts)")
    parser.add_argument(
        "others",
        type=Path,
        nargs="+",
        help="verdicts folder of each other run (results/smoke/<name>-machine/verdicts; named by its parent folder)",
    )
    parser.add_argument("--summary", action="store_true", help="print the README's Markdown summary instead")
    parser.add_argument("--readme", type=Path, help="also rewrite the summary between this file's verdicts markers")
    args = parser.parse_args(argv)
    committed = load(args.committed)
    others = {}
    for folder in args.others:
        name = folder.resolve().parent.name
        if name in others:
            raise ValueError(f"others: two folders named by {name!r}: {folder}")
        others[name] = load(folder)
    if args.summary:
        print(summary(committed, others), end="")
        return 0
    if args.readme is not None:
        write_summary(args.readme, summary(committed, others))
    lines, problems = compare(committed, others)
    print(f"{len(committed)} claims; {len(lines)} differ in tier between the {len(others) + 1} runs")
    for line in lines:
        print("  " + line)
    for p in problems:
        print("PROBLEM " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
