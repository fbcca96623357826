"""rope_lib.experiments: registry, CLI errors, and the extrapolation JSON (on a tiny profile)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rope_lib.experiments import EXPERIMENTS, REGISTRY, run_experiment, write_json
from rope_lib.experiments import __main__ as cli
from rope_lib.experiments import extrapolation as ex


def test_registry():
    assert "extrapolation" in EXPERIMENTS and REGISTRY["extrapolation"] is ex.run


def test_cli_unknown_experiment_lists_allowed(capsys):
    assert cli.main(["no_such_experiment"]) == 2
    err = capsys.readouterr().err
    assert "no_such_experiment" in err and "extrapolation" in err


def test_cli_unknown_method_lists_allowed(capsys, tiny_profile):
    assert cli.main(["extrapolation", "--methods", "Baseline,NTK-new", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "NTK-new" in err and "YaRN" in err and "Dynamic NTK" in err
    assert not (tiny_profile / "results").exists()  # refused before any work


def test_full_profile_refuses_cpu():
    with pytest.raises(ValueError, match="GPU"):
        run_experiment("extrapolation", profile="full", device="cpu")
    with pytest.raises(ValueError, match="profile"):
        run_experiment("extrapolation", profile="huge", device="cpu")


def test_extrapolation_json(tiny_profile, capsys):
    assert cli.main(["extrapolation", "--device", "cpu"]) == 0
    path = tiny_profile / "results" / "smoke" / "extrapolation.json"
    assert capsys.readouterr().out.strip().endswith("extrapolation.json")
    r = json.loads(path.read_text())
    assert {"experiment", "profile", "seed", "device", "versions", "git_sha", "config", "training", "timings", "rows",
            "train_length_metrics"} <= set(r)
    assert {"torch", "numpy", "sympy", "python"} <= set(r["versions"])
    assert r["git_sha"] is None or len(r["git_sha"]) == 40
    assert {"train_wall_s", "train_tokens_per_s", "eval_s"} <= set(r["timings"])
    assert {"model", "model_log_n", "train", "eval", "corpus"} <= set(r["config"])
    expected = [ex.row_name(m, v) for v, ms in (("none", ex.METHODS), ("dagger", ex.METHODS), ("trained", ex.METHODS)) for m in ms]
    assert list(r["rows"]) == expected and len(expected) == 27
    cell = r["rows"]["NTK-mixed-log n-dagger"]["metrics"]["repeated"]["4"]
    assert {"acc", "loss", "last_window_loss", "acc_per_sample"} <= set(cell) and len(cell["acc_per_sample"]) == 3
    assert r["rows"]["YaRN"]["schemes"]["4"]["rope_parameters"]["factor"] == 4.0  # s = L'/L
    assert not list(path.parent.glob(".*.tmp"))
    # a second run reuses both trained models
    again = run_experiment("extrapolation", device="cpu", methods=["Baseline", "PI"], out=tiny_profile / "other")
    assert all(again["timings"]["train_cache_hit"].values())
    assert list(again["rows"]) == ["Baseline", "PI", "Baseline-log n-dagger", "PI-log n-dagger", "Baseline-log n", "PI-log n"]


def test_write_json_is_atomic(tmp_path):
    path = tmp_path / "r.json"
    write_json({"a": 1.0}, path)
    with pytest.raises(TypeError):
        write_json({"a": object()}, path)  # not serialisable: the old file stays, no temporary is left
    assert json.loads(path.read_text()) == {"a": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_rerope_json(tiny_profile, monkeypatch):
    from rope_lib.experiments import rerope as rx

    monkeypatch.setattr(rx, "SWEEP_MULT", 4)  # the tiny profile tests 2x and 4x only
    r = run_experiment("rerope", device="cpu", progress=False)
    assert json.loads((tiny_profile / "results" / "smoke" / "rerope.json").read_text())["experiment"] == "rerope"
    assert {"experiment", "schema", "profile", "seed", "device", "versions", "git_sha"} <= set(r)
    main, window, leak = (r["rows"][g] for g in ("main", "window", "leak"))
    assert {"ReRoPE", "Leaky ReRoPE-log n-dagger", "YaRN-log n"} <= set(main)
    assert main["ReRoPE"]["window"] == 8 and main["Leaky ReRoPE"]["window"] == 4 and main["Leaky ReRoPE"]["leaky_k"] == 16
    assert set(main["ReRoPE"]["metrics"]["repeated"]) == {"2", "4"}  # main rows at every test length
    assert set(window["ReRoPE-w16-log n"]["metrics"]["repeated"]) == {"4"}  # sweeps at SWEEP_MULT only
    assert [row["window"] for name, row in window.items() if name.endswith("log n")] == [2, 4, 6, 8, 12, 16]
    assert len(leak) == 2 * len(rx.LEAKS)
    # the main ReRoPE row (w = L/2, plain model) and the sweep's w = L/2 row score the same samples the same way
    for kind in ("repeated", "non_repeated"):
        got, want = window["ReRoPE-w8"]["metrics"][kind]["4"], main["ReRoPE"]["metrics"][kind]["4"]
        np.testing.assert_array_equal(got["acc_per_sample"], want["acc_per_sample"])
