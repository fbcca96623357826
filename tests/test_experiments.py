"""rope_lib.experiments: registry, CLI errors, and the extrapolation JSON (on a tiny profile)."""

from __future__ import annotations

import json

import pytest

from rope_lib.experiments import EXPERIMENTS, REGISTRY, run_experiment, write_json
from rope_lib.experiments import __main__ as cli
from rope_lib.experiments import extrapolation as ex

TINY = {
    "model": dict(d_model=32, n_layers=1, n_heads=2, head_dim=16, d_ff=48, train_length=16),
    "train": dict(steps=3, batch_size=4, lr=3e-3, warmup_steps=1, save_every=10),
    "multipliers": (2, 4),
    "n_samples": 3,
    "batch_tokens": 4096,
    "num_threads": 1,
}


@pytest.fixture()
def tiny_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("ROPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ROPE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setitem(ex.PROFILE_SETTINGS, "smoke", TINY)
    return tmp_path


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
