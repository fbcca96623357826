"""rope_lib.report: the notebooks' results reader, on a small hand-made results dict whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from rope_lib.evaluate import bootstrap_difference
from rope_lib.experiments import write_json
from rope_lib.report import Results, excludes_zero, fmt, format_gap, markdown_table, setup_notebook


def _summary(acc_per_sample, last_window_loss=2.0, loss_per_bin=None):
    out = {
        "acc": float(np.mean(acc_per_sample)),
        "acc_per_sample": list(acc_per_sample),
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
    np.testing.assert_allclose(rows.per_sample("B", "repeated", 2), [40.0, 50.0, 70.0, 60.0])
    g = rows.gap("A", "B")
    want = bootstrap_difference(np.array([50.0, 60, 70, 80]), np.array([40.0, 50, 70, 60]), seed=3)
    assert g == pytest.approx(want) and g["diff"] == pytest.approx(10.0)
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
    assert md.data == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 |  |"
    assert fmt(None) == "" and fmt(1.234) == "1.2" and fmt(1.234, 2) == "1.23"
    g = {"diff": 1.0, "lo": 0.25, "hi": 1.5}
    assert format_gap(g) == "+1.00 [+0.25, +1.50]" and excludes_zero(g)
    assert not excludes_zero({"diff": 0.1, "lo": -0.2, "hi": 0.4})


def test_setup_notebook_checks_before_work():
    assert setup_notebook("smoke", "cpu", 0) is None
    with pytest.raises(ValueError, match="profile"):
        setup_notebook("huge", "cpu", 0)
    with pytest.raises(ValueError, match="device"):
        setup_notebook("smoke", "tpu", 0)
