"""rope_lib.companion.report: the notebooks' results reader, on a small hand-made results dict with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from rope_lib.companion.evaluate import bootstrap_difference
from rope_lib.companion.experiments import write_json
from rope_lib.companion.report import (
    Results,
    Rows,
    fmt,
    fmt_seeds,
    fmt_spread,
    format_gap,
    markdown_table,
    seeds_agreeing,
    setup_notebook,
)


def _summary(acc_per_sample, last_window_loss=2.0, loss_per_bin=None):
    out = {
        "acc": float(np.mean(acc_per_sample)),
        "acc_per_sample": list(acc_per_sample),
        "loss_per_sample": [3.0 - a for a in acc_per_sample],  # a known loss per sample, different for A and B
        "loss": 2.5,
        "last_window_loss": last_window_loss,
    }
    if loss_per_bin is not None:
        out["loss_per_bin"] = loss_per_bin
    return out


def _row(model, accs, **extra):
    return {
        "model": model,
        "log_n": "none",
        "metrics": {
            kind: {"2": _summary(accs, 2.1), "8": _summary(accs, 2.4, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])}
            for kind in ("repeated", "non_repeated")
        },
        **extra,
    }


DATA = {
    "seed": 3,
    "config": {"eval": {"train_length": 16, "multipliers": [2, 8], "position_bin": 2}},
    "train_length_metrics": {
        "plain": {
            "non_repeated": {"acc": 0.5, "last_window_loss": 1.9},
            "repeated": {"acc": 0.25, "last_window_loss": 1.8},
        }
    },
    "rows": {"A": _row("plain", [0.5, 0.6, 0.7, 0.8]), "B": _row("plain", [0.4, 0.5, 0.7, 0.6])},
}


def test_accessors_in_percent_and_points():
    res = Results(DATA)
    rows = res.rows
    assert res.train_length == 16 and res.mults == [2, 8]
    assert list(rows) == ["A", "B"] and "A" in rows and rows.model("B") == "plain"
    assert rows.acc("A", "non_repeated", 8) == pytest.approx(65.0)
    np.testing.assert_allclose(rows.per_sample("B", "repeated", 2), [[40.0, 50.0, 70.0, 60.0]])  # (seeds, samples)
    g = rows.gap("A", "B")
    want = bootstrap_difference(np.array([50.0, 60, 70, 80]), np.array([40.0, 50, 70, 60]), seed=3)
    assert g == want and g["diff"] == pytest.approx(10.0)
    assert res.train_length_acc("plain", "repeated") == pytest.approx(25.0)
    assert res.train_length_loss("plain") == 1.9 and rows.last_window_loss("A", 2) == 2.1


def test_position_loss_merges_bins_and_drops_the_incomplete_one():
    x, y = Results(DATA).rows.position_loss("A", bin_size=2, merge=2)
    np.testing.assert_allclose(y, [1.5, 3.5, 5.5])  # 7 bins -> 3 merged, the 7th dropped
    np.testing.assert_allclose(x, [2.0, 6.0, 10.0])  # centres of 4-byte bins


def test_errors_name_what_exists():
    rows = Results(DATA).rows
    with pytest.raises(KeyError, match="no row 'C'; rows: \\['A', 'B'\\]"):
        rows.acc("C", "repeated", 2)
    with pytest.raises(KeyError, match="has no 4x result; it has \\['2', '8'\\]"):
        rows.acc("A", "repeated", 4)
    grouped = Results({**DATA, "rows": {"main": DATA["rows"]}})
    with pytest.raises(ValueError, match="row groups \\['main'\\]"):
        grouped.rows
    assert grouped.group("main").acc("A", "repeated", 2) == pytest.approx(65.0)
    with pytest.raises(KeyError, match="no row group 'leak'"):
        grouped.group("leak")


def test_load_reads_the_results_file(tmp_path):
    write_json(DATA, tmp_path / "toy.json")
    assert Results.load("toy", out=tmp_path).rows.acc("B", "non_repeated", 8) == pytest.approx(55.0)


def test_table_and_formatting_helpers():
    md = markdown_table(["a", "b"], [[1, "x"], [2.5, ""]])
    assert md._repr_markdown_() == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 |  |"
    assert fmt(None) == "" and fmt(1.234) == "1.2" and fmt(1.234, 2) == "1.23"
    g = {"diff": 1.0, "lo": 0.25, "hi": 1.5}
    assert format_gap(g) == "+1.00 [+0.25, +1.50]"
    # seeds on axis 0: each seed's mean first (1.5, 3.5, 5.5), so the spread is between seeds, not between samples
    assert fmt_seeds(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), 2) == "3.50 ± 2.00"
    assert fmt_seeds([0.1, 0.3]) == fmt_spread(0.2, np.std([0.1, 0.3], ddof=1))
    with pytest.raises(ValueError, match="x: need shape"):
        fmt_seeds(np.array([1.0]))


def test_setup_notebook_checks_before_work():
    assert setup_notebook("smoke", "cpu", 0) is None
    with pytest.raises(ValueError, match="profile"):
        setup_notebook("huge", "cpu", 0)
    with pytest.raises(ValueError, match="device"):
        setup_notebook("smoke", "tpu", 0)


def _run(seed, a_accs, b_accs, files):
    return {
        "seed": seed,
        "config": {"eval": {"train_length": 16, "multipliers": [2, 8], "sample_files": files}},
        "train_length_metrics": {"plain": {"non_repeated": {"acc": 0.5 + seed / 10, "last_window_loss": 1.9}}},
        "rows": {"A": _row("plain", a_accs), "B": _row("plain", b_accs)},
    }


SEEDS = {
    "schema": 2,
    "seeds": [0, 1],
    "test_seed": 5,
    "config": {"eval": {"train_length": 16, "multipliers": [2, 8]}},
    "runs": [
        _run(0, [0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.7, 0.6], ["f1", "f1", "f2", "f3"]),
        _run(1, [0.3, 0.3, 0.4, 0.2], [0.3, 0.2, 0.1, 0.2], ["f4", "f5", "f6", "f7"]),
    ],
}


def test_rows_over_seeds_mean_spread_and_bootstrap_over_seeds_and_files():
    res = Results(SEEDS)
    rows = res.rows
    assert rows.n_seeds == 2 and res.seeds == [0, 1] and res.seed == 5
    np.testing.assert_allclose(rows.acc_by_seed("A", "repeated", 2), [65.0, 30.0])
    assert rows.acc("A", "repeated", 2) == pytest.approx(47.5)
    assert rows.spread("A", "repeated", 2) == pytest.approx(np.std([65.0, 30.0], ddof=1))
    assert rows.cell("A", "repeated", 2) == "47.5 ± 24.7"
    assert rows.per_sample("B", "repeated", 8).shape == (2, 4)
    g = rows.gap("A", "B", "repeated", 8)
    a, b = rows.per_sample("A", "repeated", 8), rows.per_sample("B", "repeated", 8)
    files = np.array([["f1", "f1", "f2", "f3"], ["f4", "f5", "f6", "f7"]])
    assert g == bootstrap_difference(a, b, groups=files, seed=5)
    assert g["by_seed"] == pytest.approx([10.0, 10.0]) and g["diff"] == pytest.approx(10.0)
    assert g != bootstrap_difference(a, b, seed=5)  # the files are used: f1 holds two samples of seed 0
    assert res.train_length_acc("plain", "non_repeated") == pytest.approx(55.0)
    x, by_seed = rows.position_loss_by_seed("A", bin_size=2, merge=2)
    assert by_seed.shape == (2, 3) and x.shape == (3,)
    # losses: per sample, (seeds, samples); their gap is bootstrapped with the same seeds and files as acc's
    la, lb = rows.loss_per_sample("A", "repeated", 8), rows.loss_per_sample("B", "repeated", 8)
    np.testing.assert_allclose(la, 3.0 - a / 100)
    lg = rows.loss_gap("A", "B", "repeated", 8)
    assert lg == bootstrap_difference(la, lb, groups=files, seed=5) and lg["diff"] == pytest.approx(-0.1)
    # any two arrays of the table (e.g. two rows at two lengths): the same resampling
    assert rows.difference(a, b) == g and rows.difference(la, lb) == lg


def test_bootstrap_resamples_seeds_and_files():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 1.0, (3, 20))
    zero = np.zeros_like(a)
    one_seed = bootstrap_difference(a[0], zero[0], seed=1)
    assert one_seed["by_seed"] == pytest.approx([a[0].mean()])
    # a seed that disagrees widens the interval past zero
    bad = a.copy()
    bad[2] -= 3.0
    good_g, bad_g = bootstrap_difference(a, zero), bootstrap_difference(bad, zero)
    assert good_g["lo"] > 0 and bad_g["lo"] < 0 < bad_g["hi"]
    assert seeds_agreeing(bootstrap_difference(bad, zero)) == "2/3 seeds"
    # files: two samples of one file move together, so the interval is at least as wide as with fewer files
    dup = np.repeat(a[0, :10], 2)  # one seed: the file part alone, sqrt(2) wider
    per_file = bootstrap_difference(dup, np.zeros_like(dup), groups=np.repeat(np.arange(10), 2))
    per_window = bootstrap_difference(dup, np.zeros_like(dup))
    assert per_file["se"] > 1.2 * per_window["se"]
    with pytest.raises(ValueError, match="groups must have the shape"):
        bootstrap_difference(a, zero, groups=np.zeros(5))
    assert fmt_spread(45.24, 1.26) == "45.2 ± 1.3"


def test_runs_must_have_the_same_rows():
    with pytest.raises(ValueError, match="run 1 has rows"):
        Rows([{"A": {}}, {"B": {}}])


def test_table_escapes_pipes_and_renders_as_html_markdown_and_text():
    t = markdown_table(["row", "max |diff|"], [["a", "1 < 2 & 3"], ["b|c", None]])
    md = t._repr_markdown_()
    assert md.splitlines()[0] == "| row | max \\|diff\\| |" and "| b\\|c |  |" in md  # still two columns
    assert all(line.count("|") - line.count("\\|") == 3 for line in md.splitlines())
    page = t._repr_html_()
    assert page.count("<tr>") == 3 and "<th>max |diff|</th>" in page and "<td>1 &lt; 2 &amp; 3</td>" in page
    text = repr(t)  # what a terminal or a plain-text export shows, not "<IPython.core.display.Markdown object>"
    assert text.splitlines() == ["row  max |diff|", "---  ----------", "a    1 < 2 & 3", "b|c"]


def test_table_drops_empty_and_constant_columns_and_states_the_constant():
    t = markdown_table(["m", "L", "Su", "acc"], [["a", 64, "", 1], ["b", 64, None, 2], ["c", 64, "", 3]])
    assert t.header == ["m", "acc"] and t.rows == [["a", "1"], ["b", "2"], ["c", "3"]]
    assert t.note == "Every row: L = 64." and t._repr_markdown_().endswith("\n\nEvery row: L = 64.")
    two = markdown_table(["m", "L"], [["a", 64], ["b", 64]])  # two rows: a repeated value is not yet a pattern
    assert two.header == ["m", "L"] and two.note == ""
    with pytest.raises(ValueError, match="rows: every row needs 2 cells"):
        markdown_table(["m", "L"], [["a"]])


def test_leaderboard_joins_tables_and_reads_a_model_score_at_l_where_a_row_has_none():
    from rope_lib.companion.report import Leaderboard, Results

    def run(acc_l, acc8, extra):
        rows = {"A": {"model": "plain", "metrics": {"non_repeated": {"8": {"acc": acc8}}}}} | extra
        config = {"eval": {"multipliers": [8]}}
        return {"rows": rows, "config": config, "train_length_metrics": {"plain": {"non_repeated": {"acc": acc_l}}}}

    b_row = {"B": {"model": "plain", "metrics": {"non_repeated": {"1": {"acc": 0.7}, "8": {"acc": 0.2}}}}}
    first = Results({"runs": [run(0.5, 0.3, b_row), run(0.6, 0.4, b_row)]})
    second = Results({"runs": [run(0.5, 0.9, {}), run(0.6, 0.9, {})]})
    board = Leaderboard([(first, first.rows, None), (second, second.rows, ("A",))])
    assert list(board) == ["A", "B"]
    np.testing.assert_allclose(board.acc_by_seed("A", 8), [90, 90])  # the later source's row replaces the earlier
    np.testing.assert_allclose(board.acc_by_seed("A", 1), [50, 60])  # no score of its own at L: its model's
    np.testing.assert_allclose(board.acc_by_seed("B", 1), [70, 70])  # its own score at L
    assert board.cell("A", 1) == fmt_spread(55.0, float(np.std([50, 60], ddof=1)))
    with pytest.raises(KeyError, match="no row 'C'"):
        Leaderboard([(first, first.rows, ("C",))])
