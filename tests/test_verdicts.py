"""The seed-level decision rule, the claim records, and the committed verdicts checked against both machines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rope_lib.companion import verdicts as V
from rope_lib.companion.runtime import repo_root

# Two-sided 95% critical values of Student's t (0.975 quantiles), as tabulated in Abramowitz & Stegun, Table 26.10.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 10: 2.228, 30: 2.042}


@pytest.mark.parametrize("df, want", sorted(T_975.items()))
def test_t_quantile_matches_the_table(df, want):
    assert V.t_quantile(0.975, df) == pytest.approx(want, abs=5e-4)


def test_t_quantile_tends_to_the_normal_and_is_monotone():
    assert V.t_quantile(0.975, 2000) == pytest.approx(1.95996, abs=2e-3)  # the normal's 0.975 quantile
    qs = [V.t_quantile(p, 3) for p in (0.6, 0.75, 0.9, 0.975, 0.995)]
    assert all(a < b for a, b in zip(qs, qs[1:]))
    # the CDF's closed form against a numerical integral of the density (df = 3 and 4: odd and even series)
    for df in (3, 4):
        t = np.linspace(0, V.t_quantile(0.975, df), 200001)
        dens = (
            math.gamma((df + 1) / 2)
            / (math.sqrt(df * math.pi) * math.gamma(df / 2))
            * (1 + t**2 / df) ** (-(df + 1) / 2)
        )
        assert 2 * np.trapezoid(dens, t) == pytest.approx(0.95, abs=1e-8)


@pytest.mark.parametrize("bad", [dict(p=0.5, df=2), dict(p=1.0, df=2), dict(p=0.975, df=0), dict(p=0.975, df=2.0)])
def test_t_quantile_refuses_bad_arguments(bad):
    with pytest.raises(ValueError, match="p must|df must"):
        V.t_quantile(**bad)


def test_seed_interval_is_the_t_interval():
    mean, lo, hi = V.seed_interval([1.0, 2.0, 3.0])
    half = V.t_quantile(0.975, 2) * 1.0 / math.sqrt(3)
    assert (mean, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    with pytest.raises(ValueError, match="by_seed"):
        V.seed_interval([1.0])
    with pytest.raises(ValueError, match="by_seed"):
        V.seed_interval([1.0, float("nan")])


@pytest.mark.parametrize(
    "by_seed, direction, threshold, want",
    [
        ([3.0, 3.1, 2.9], ">", 0.0, "reproduced"),
        ([1.0, 2.0, 3.0], ">", 0.0, "consistent"),  # all positive, interval [-0.48, 4.48]
        ([-1.0, 2.0, 3.0], ">", 0.0, "not reproduced"),
        ([-1.0, -2.0, -3.0], ">", 0.0, "not reproduced"),  # all on the other side, but within noise
        ([-3.0, -3.1, -2.9], ">", 0.0, "reversed"),
        ([-3.0, -3.1, -2.9], "<", 0.0, "reproduced"),
        ([-1.0, -2.0, -3.0], "<", 0.0, "consistent"),
        ([0.5, 0.6, 0.4], ">", -1.0, "reproduced"),  # no worse than one point
        ([-0.5, -0.6, -0.4], ">", -1.0, "reproduced"),
        ([-1.5, -1.6, -1.4], ">", -1.0, "reversed"),
        ([4.0, 4.1, 3.9], "<", 5.0, "reproduced"),  # within 5
    ],
)
def test_tiers(by_seed, direction, threshold, want):
    assert V.tier(by_seed, direction, threshold) == want


def test_tier_refuses_a_bad_direction():
    with pytest.raises(ValueError, match="direction must be one of"):
        V.tier([1.0, 2.0], ">=")


def test_claim_book_records_every_claim(tmp_path, capsys):
    book = V.ClaimBook("99", out=tmp_path)
    assert json.loads(book.path.read_text())["claims"] == []  # a new book starts the record afresh
    g = {"diff": 3.0, "lo": 2.5, "hi": 3.5, "by_seed": [3.0, 3.1, 2.9]}
    v = book.decide("99.a", g, ">", claim="A - B", stated="reproduced", source="Su")
    assert v.holds and v.tier == "reproduced" and "A - B" in capsys.readouterr().out
    w = book.decide("99.b", {"by_seed": [1.0, -1.0, 2.0]}, "<", claim="C - D", stated="not decided", quiet=True)
    assert not w.holds and w.boot_lo is None and capsys.readouterr().out == ""
    recs = json.loads(book.path.read_text())["claims"]
    assert [r["id"] for r in recs] == ["99.a", "99.b"]
    assert recs[0]["by_seed"] == [3.0, 3.1, 2.9] and recs[0]["tier"] == "reproduced" and recs[0]["boot_lo"] == 2.5
    assert V.load(tmp_path / "verdicts") == {r["id"]: r for r in recs}
    V.ClaimBook("99", out=tmp_path)  # re-running the notebook replaces its records
    assert json.loads(book.path.read_text())["claims"] == []


def test_verdict_line_wraps_between_words_never_inside_a_number(tmp_path, capsys):
    book = V.ClaimBook("99", out=tmp_path)
    g = {"diff": 3.0, "lo": 2.5, "hi": 3.5, "by_seed": [3.0, 3.1, 2.9, 3.05, 2.95]}
    claim = "a long claim about the accuracy of one method against another at eight times the training length"
    v = book.decide("99.a", g, ">", claim=claim, stated="not reproduced", source="Su")
    out = capsys.readouterr().out.rstrip("\n")
    lines = out.splitlines()
    assert len(lines) >= 2 and all(len(line) <= V.LINE_WIDTH for line in lines)
    assert all(line.startswith("    ") for line in lines[1:])
    joined = " ".join(line.strip() for line in lines)  # unwrapped, the line reads as one
    assert joined.startswith(claim + " (> 0): +3.00, seeds +3.00 +3.10 +2.90 +3.05 +2.95,")
    assert "95% seed interval [" in joined and "bootstrap [+2.50, +3.50]" in joined
    assert joined.endswith(f"-> {v.tier} (stated: not reproduced)")
    assert all(line.count("[") == line.count("]") for line in lines)  # no interval split across lines
    short = book.decide("99.b", {"by_seed": [1.0, 1.1, 0.9]}, ">", claim="A - B", stated="reproduced", quiet=True)
    assert "\n" not in short.line()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(stated="probably"), "stated must be one of"),
        (dict(direction="="), "direction must be one of"),
        (dict(threshold=float("inf")), "threshold must be a finite number"),
        (dict(claim=""), "claim must be a non-empty string"),
    ],
)
def test_claim_book_refuses_bad_claims(tmp_path, kwargs, match):
    book = V.ClaimBook("99", out=tmp_path)
    args = dict(claim="A - B", stated="reproduced") | kwargs
    direction = args.pop("direction", ">")
    with pytest.raises(ValueError, match=match):
        book.decide("99.a", {"by_seed": [1.0, 2.0, 3.0]}, direction, **args)
    assert json.loads(book.path.read_text())["claims"] == []  # nothing recorded for a refused claim


def test_claim_book_refuses_one_id_for_two_claims_and_a_gap_without_seeds(tmp_path):
    book = V.ClaimBook("99", out=tmp_path)
    book.decide("99.a", {"by_seed": [1.0, 2.0, 3.0]}, claim="A", stated="consistent", quiet=True)
    again = book.decide("99.a", {"by_seed": [3.0, 3.1, 2.9]}, claim="A", stated="reproduced", quiet=True)
    assert list(book.records.values()) == [again]  # a re-run cell replaces its record
    with pytest.raises(ValueError, match="decided twice"):
        book.decide("99.a", {"by_seed": [1.0, 2.0, 3.0]}, claim="B", stated="consistent")
    with pytest.raises(ValueError, match="by_seed"):
        book.decide("99.b", {"diff": 1.0}, claim="B", stated="consistent")


def _rec(cid, tier, stated, notebook="04"):
    return {"id": cid, "tier": tier, "stated": stated, "notebook": notebook}


def test_compare_flags_every_machine_dependent_statement():
    committed = {
        "a": _rec("a", "reproduced", "reproduced"),  # agrees: fine
        "b": _rec("b", "reproduced", "reproduced"),  # flips on the other machine but stated as decided: a problem
        "c": _rec("c", "consistent", "not decided"),  # flips and is stated not decided: fine
        "d": _rec("d", "consistent", "not decided"),  # does not flip, yet stated not decided: a problem
        "e": _rec("e", "reversed", "reversed"),  # only in the committed run: a problem
    }
    other = {k: dict(v) for k, v in committed.items() if k != "e"}
    other["b"]["tier"] = "consistent"
    other["c"]["tier"] = "not reproduced"
    lines, problems = V.compare(committed, {"second-machine": other})
    assert [ln.split(":")[0] for ln in lines] == ["b", "c"]
    assert [p.split(":")[0] for p in problems] == ["b", "d", "e"]
    # a third run: "d" flips there, so "not decided" is now right for it; "a" flips there and becomes a problem
    third = {k: dict(v) for k, v in committed.items()}
    third["d"]["tier"] = "reversed"
    third["a"]["tier"] = "consistent"
    lines, problems = V.compare(committed, {"first-machine": third, "second-machine": other})
    assert [p.split(":")[0] for p in problems] == ["a", "b", "e"]
    assert (
        "a: stated reproduced, committed reproduced, consistent on the first machine, reproduced on the second"
        in (problems[0])
    )
    assert "e: not recorded in second-machine" in problems[2]
    with pytest.raises(ValueError, match="others: need at least one"):
        V.compare(committed, {})


def test_a_notebook_no_other_machine_ran_is_stated_not_decided():
    committed = {
        "a": _rec("a", "reproduced", "reproduced"),
        "n1": _rec("n1", "reproduced", "not decided", notebook="14"),  # committed run only, not decided: fine
        "n2": _rec("n2", "reversed", "reversed", notebook="14"),  # committed run only, stated as decided: a problem
    }
    other = {"a": dict(committed["a"])}
    lines, problems = V.compare(committed, {"second-machine": other})
    assert lines == [] and len(problems) == 1
    assert problems[0].startswith("n2: stated reversed, but its notebook has not run on the second machine")
    other["n1"] = dict(committed["n1"])  # once notebook 14 runs there, a missing claim is a problem again
    assert [p.split(":")[0] for p in V.compare(committed, {"second-machine": other})[1]] == ["n1", "n2"]


def test_main_exits_non_zero_on_a_problem(tmp_path, capsys):
    for name, tier in (("one", "reproduced"), ("two", "consistent")):
        book = V.ClaimBook("99", out=tmp_path / name)
        book.decide(
            "99.a",
            {"by_seed": [3.0, 3.1, 2.9] if tier == "reproduced" else [1.0, 2.0, 3.0]},
            claim="A",
            stated="reproduced",
            quiet=True,
        )
    assert V.main([str(tmp_path / "one" / "verdicts"), str(tmp_path / "one" / "verdicts")]) == 0
    assert V.main([str(tmp_path / "one" / "verdicts"), str(tmp_path / "two" / "verdicts")]) == 1
    assert "PROBLEM 99.a" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no verdict records"):
        V.load(tmp_path)


TRAINED_NOTEBOOKS = ("04", "05", "06", "07", "08", "14")


def test_committed_verdicts_hold_on_every_machine():
    """Every stated verdict of the committed smoke run against the other machines' runs (the first machine's, the
    emulated second machine of `make second-machine`): a claim stated as a tier has that tier in every run; one
    stated "not decided" differs between them."""
    here = repo_root() / "results" / "smoke" / "verdicts"
    assert sorted(p.stem for p in here.glob("*.json")) == list(TRAINED_NOTEBOOKS)
    committed, others = V.load(here), V.other_machines(here.parent)
    assert committed, "no claims recorded"
    assert sorted(others) == ["first-machine", "second-machine"]
    _, problems = V.compare(committed, others)
    assert not problems, "\n".join(problems)


def test_summary_counts_stated_verdicts_and_lists_the_undecided():
    committed = {
        "a": _rec("a", "reproduced", "reproduced") | {"notebook": "04", "claim": "A"},
        "b": _rec("b", "consistent", "not decided") | {"notebook": "04", "claim": "B"},
        "c": _rec("c", "reversed", "reversed") | {"notebook": "05", "claim": "C"},
    }
    other = {k: dict(v) for k, v in committed.items()}
    other["b"]["tier"] = "not reproduced"
    text = V.summary(committed, {"second-machine": other})
    assert "| 04 | 2 | 1 | 0 | 0 | 0 | 1 |" in text and "| 05 | 1 | 0 | 0 | 0 | 1 | 0 |" in text
    assert "- `b` B: consistent here, not reproduced on the second machine" in text
    text = V.summary(committed, {"first-machine": committed, "second-machine": other})
    assert "the committed run, the first machine, the second machine, give different tiers" in text
    assert "- `b` B: consistent here, consistent on the first machine, not reproduced on the second machine" in text


def test_readme_shows_the_committed_summary():
    """The README's verdict summary is generated (`python -m rope_lib.companion.verdicts ... --summary`), never by
    hand."""
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    start, end = V.README_START, V.README_END
    assert start in readme and end in readme, "README.md lacks the verdicts block"
    block = readme.split(start, 1)[1].split(end, 1)[0]
    here = repo_root() / "results" / "smoke" / "verdicts"
    assert block == V.summary(V.load(here), V.other_machines(here.parent))


def test_write_summary_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{V.README_START}old\n{V.README_END}\nrest\n")
    V.write_summary(readme, "new\n")
    assert readme.read_text() == f"intro\n{V.README_START}new\n{V.README_END}\nrest\n"
    (tmp_path / "other.md").write_text("no block\n")
    with pytest.raises(ValueError, match="no <!-- verdicts:start -->"):
        V.write_summary(tmp_path / "other.md", "new\n")


# Exact checks (CheckBook): derivations and computations, no seeds; the box atop notebooks 01-03, 08a, 09-13.


def test_check_book_decides_by_the_value_and_records_every_check(tmp_path, capsys):
    book = V.CheckBook("99", out=tmp_path)
    yes = book.check("99.a", 576, expected=576, claim="cache per token", source="paper", quantity="elements")
    near = book.check("99.b", 1.0 + 1e-13, expected=1.0, tolerance=1e-12, claim="B", source="s", quantity="q")
    off = book.check("99.c", 575, expected=576, claim="C", source="s", quantity="q", stated="not reproduced")
    false = book.check("99.d", 1 > 2, claim="D", source="s", quantity="identity")
    tiers = (yes.tier, near.tier, off.tier, false.tier)
    assert tiers == ("reproduced", "reproduced", "not reproduced", "not reproduced")
    assert yes.holds and near.holds and off.holds and not false.holds
    out = capsys.readouterr().out
    assert "cache per token [elements]: ours 576, expected 576 -> reproduced" in out
    assert "D [identity]: does not hold -> not reproduced (stated: reproduced)" in out
    recs = V.load_checks(tmp_path / "checks")
    assert list(recs) == ["99.a", "99.b", "99.c", "99.d"] and recs["99.d"]["ours"] is False
    assert recs["99.c"]["expected"] == 576 and recs["99.c"]["tier"] == "not reproduced"
    V.CheckBook("99", out=tmp_path)  # a new book starts the file afresh
    assert V.load_checks(tmp_path / "checks") == {}


@pytest.mark.parametrize(
    ("ours", "kwargs", "match"),
    [
        (1.0, {}, "ours must be a bool"),
        (True, {"expected": 1.0}, "ours must be a finite number"),
        (1.0, {"expected": float("nan")}, "expected must be a finite number"),
        (1.0, {"expected": 1.0, "tolerance": -1}, "tolerance must be a finite number >= 0"),
        (True, {"stated": "consistent"}, "stated must be one of"),
        (True, {"claim": " "}, "claim must be a non-empty string"),
    ],
)
def test_check_book_refuses_bad_checks(tmp_path, ours, kwargs, match):
    args = {"claim": "A", "source": "s", "quantity": "q"} | kwargs
    with pytest.raises(ValueError, match=match):
        V.CheckBook("99", out=tmp_path).check("99.a", ours, **args)


def test_check_book_refuses_one_id_for_two_claims(tmp_path):
    book = V.CheckBook("99", out=tmp_path)
    book.check("99.a", True, claim="A", source="s", quantity="q", quiet=True)
    book.check("99.a", True, claim="A", source="s", quantity="q", quiet=True)  # a re-run cell: replaced
    with pytest.raises(ValueError, match="checked twice"):
        book.check("99.a", True, claim="B", source="s", quantity="q", quiet=True)


def test_committed_checks_hold():
    """Every committed exact check has the tier its notebook states, and every notebook without verdict records
    has checks (the box atop it is written from them)."""
    from rope_lib.companion import readme as R

    folder = repo_root() / "results" / "smoke" / "checks"
    recs = V.load_checks(folder)
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(R.CHECKED)
    wrong = [r["id"] for r in recs.values() if r["tier"] != r["stated"]]
    assert not wrong, wrong
    for nb in R.CHECKED:
        assert any(r["notebook"] == nb for r in recs.values()), nb
