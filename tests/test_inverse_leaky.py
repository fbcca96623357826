"""rope_lib.companion.experiments.inverse_leaky: Su's InvLeaky ReRoPE recipe, coverage of the test range, the JSON.

The JSON test runs on the tiny profile."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rope_lib.companion.experiments import EXPERIMENTS, REGISTRY, run_experiment
from rope_lib.companion.experiments import harness as hx
from rope_lib.companion.experiments import inverse_leaky as il
from rope_lib.companion.model import PositionScheme


@pytest.fixture()
def tiny_timed(tiny_profile, monkeypatch):
    """The tiny profile with a training-step timing of a few steps."""
    monkeypatch.setitem(il.TIMING, "rounds", 2)
    monkeypatch.setitem(il.TIMING, "steps_per_round", 1)
    monkeypatch.setitem(il.TIMING, "warmup_steps", 1)
    return tiny_profile


def test_registry():
    assert "inverse_leaky" in EXPERIMENTS and REGISTRY["inverse_leaky"] is il.run


def test_su_recipe_and_validation():
    assert il.invleaky_window(512) == 128 and il.invleaky_leak(8) == 1 / 16  # Su: L = 512, s = 8 -> w128, k = 1/16
    for bad in (3, 0, 4.0, True):
        with pytest.raises(ValueError, match="train_length"):
            il.invleaky_window(bad)
    for bad in (0.5, 0, float("inf"), "16", True):
        with pytest.raises(ValueError, match="scale"):
            il.invleaky_leak(bad)


@pytest.mark.parametrize("s", [1, 2, 3, 8, 16, 32])
def test_trained_range_covers_the_test_length(s):
    # w + (L-1-w)/k >= sL - 1 for every L >= 4 (notebook 06 derives the bound L > 8s/(1+2s) < 4)
    for L in range(4, 600):
        p = il.trained_relative_positions(L, il.invleaky_window(L), il.invleaky_leak(s))
        assert p.max() >= s * L - 1, (L, s)


def test_trained_positions_dense_inside_sparse_outside():
    L, s = 64, 16
    w, k = il.invleaky_window(L), il.invleaky_leak(s)
    p = il.trained_relative_positions(L, w, k)
    np.testing.assert_array_equal(p[:w], np.arange(w))  # r itself (whole numbers in float64) inside the window
    np.testing.assert_allclose(np.diff(p[w:]), 2 * s)  # every 2s-th position beyond the window
    test = np.arange(s * L)
    dist = np.abs(test[:, None] - p[None, :]).min(1)
    assert dist.max() <= s  # every test position is within half a spacing of a trained one


def test_configs_match_notebook_04_budget():
    _, model_log_n, train_cfg, _ = hx.settings("smoke", 0)
    cfgs = il.invleaky_configs("smoke", 0, 16, il.VARIANTS)  # the 16x recipe: k = 1/32
    (m, t), (mb, tb) = cfgs["invleaky"], cfgs["invleaky_b"]
    assert m == model_log_n and m.train_log_n
    assert mb.rope_base == 16 * model_log_n.rope_base and mb.train_length == model_log_n.train_length
    assert t == tb and t.steps == train_cfg.steps and t.batch_size == train_cfg.batch_size and t.seed == train_cfg.seed
    assert t.scheme == PositionScheme(attention="rerope", window=16, leaky_k=1 / 32)
    with pytest.raises(ValueError, match="invleaky_b"):
        il.invleaky_configs("smoke", 0, 16, ["invleaky_c"])
    assert il.row_label("invleaky_b", 16, 16.0) == "InvLeaky ReRoPE-w16-b16-log n"


def test_full_profile_refuses_cpu():
    with pytest.raises(ValueError, match="GPU"):
        run_experiment("inverse_leaky", profile="full", device="cpu")


def test_inverse_leaky_json(tiny_timed):
    r = run_experiment("inverse_leaky", device="cpu", variants=list(il.VARIANTS), progress=False)
    path = tiny_timed / "results" / "smoke" / "inverse_leaky.json"
    assert json.loads(path.read_text())["experiment"] == "inverse_leaky"
    c = r["config"]
    assert c["scale"] == 8 and c["window"] == 4 and c["leaky_k"] == 1 / 16  # Su's 8x recipe, w = L/4
    assert r["seeds"] == [0, 1]
    first, second = r["runs"]
    cov = first["coverage"]
    assert cov["max_trained_relative_position"] == 4 + (16 - 1 - 4) * 16  # w + (L-1-w)/k
    assert cov["max_test_relative_position"] == {"2": 31, "4": 63}
    r = first  # the per-seed sections, as before
    expected = [
        "Baseline",
        "NTK-fixed",
        "YaRN",
        "Baseline-log n",
        "NTK-fixed-log n",
        "YaRN-log n",
        "ReRoPE-w4-log n",
        "InvLeaky ReRoPE-w4-log n",
        "InvLeaky ReRoPE-w4-b8-log n",
    ]
    assert list(r["rows"]) == expected
    for name in expected[-2:]:  # inference with plain RoPE (SDPA) at every length
        assert all(PositionScheme.from_dict(sch) == PositionScheme() for sch in r["rows"][name]["schemes"].values())
    assert r["rows"]["InvLeaky ReRoPE-w4-b8-log n"]["rope_base"] == 8 * 10000.0
    assert r["rows"]["ReRoPE-w4-log n"]["model"] == "log_n"
    cell = r["rows"]["InvLeaky ReRoPE-w4-log n"]["metrics"]["repeated"]["4"]
    assert len(cell["acc_per_sample"]) == 3
    assert set(r["train_length_metrics"]) == {"plain", "log_n", "invleaky", "invleaky_b"}
    wide = r["train_length_wide"]
    assert set(wide["metrics"]) == {
        "plain",
        "log_n",
        "invleaky",
        "invleaky_b",
        "invleaky (training scheme)",
        "invleaky_b (training scheme)",
    }
    assert (
        len(wide["metrics"]["invleaky"]["repeated"]["acc_per_sample"]) == wide["n_samples"] == il.TRAIN_LENGTH_SAMPLES
    )
    keys = {v: r["training"][v]["key"] for v in r["training"]}
    assert len(set(keys.values())) == 4  # four distinct checkpoints
    o = r["training_overhead"]
    assert o["ratio"] > 0 and len(o["s_per_step"]["rope"]) == len(o["s_per_step"]["leaky"]) == 2
    assert second["training_overhead"] is None  # measured once per run, not per seed
    assert second["training"]["invleaky"]["key"] not in keys.values()  # each seed trains its own InvLeaky model
    # a second run reuses every trained model
    again = run_experiment("inverse_leaky", device="cpu", timing=False, out=tiny_timed / "other", progress=False)
    assert all(all(run["timings"]["train_cache_hit"].values()) for run in again["runs"])
    assert again["runs"][0]["training_overhead"] is None
    assert list(again["runs"][0]["rows"])[-1] == "InvLeaky ReRoPE-w4-log n"  # smoke default: the main variant only
