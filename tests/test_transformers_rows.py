"""The transformers experiment (notebook 12): the rows of notebooks 04 and 05 re-scored through a transformers
LlamaForCausalLM give the per-window accuracies the extrapolation and rerope experiments store (tiny profile)."""

import numpy as np
import pytest

pytest.importorskip("transformers")

from rope_lib.companion.experiments import run_experiment  # noqa: E402
from rope_lib.companion.experiments import transformers_rows as tr  # noqa: E402
from rope_lib.companion.report import Results  # noqa: E402


def test_rows_through_transformers_equal_the_stored_rows(tiny_profile, monkeypatch):
    from rope_lib.companion.experiments import harness, rerope_eval

    monkeypatch.setattr(rerope_eval, "SWEEP_MULT", 4)  # the tiny profile tests 2x and 4x only
    # trained long enough that its predictions depend on the context (3 steps predict one byte everywhere)
    tiny = harness.PROFILE_SETTINGS["smoke"]
    train = {**tiny["train"], "steps": 120, "warmup_steps": 5, "lr": 1e-2, "save_every": 200}
    monkeypatch.setitem(harness.PROFILE_SETTINGS, "smoke", {**tiny, "train": train, "n_samples": 4})
    ex = Results(run_experiment("extrapolation", device="cpu", progress=False, methods=list(tr.FREQUENCY_ROWS)))
    rr = Results(run_experiment("rerope", device="cpu", progress=False))
    hf = Results(run_experiment("transformers", device="cpu", progress=False))
    mult = hf.config["eval"]["multiplier"]
    assert mult == max(ex.mults) and hf.files == ex.files == rr.files and hf.seeds == ex.seeds
    assert set(hf.runs[0]["acc_per_sample"]) == {*tr.FREQUENCY_ROWS, tr.REROPE_ROW}
    stored = {name: ex.rows.per_sample(name, "non_repeated", mult) for name in tr.FREQUENCY_ROWS}
    stored[tr.REROPE_ROW] = rr.group("main").per_sample("ReRoPE", "non_repeated", mult)
    for name, want in stored.items():
        got = np.array([run["acc_per_sample"][name] for run in hf.runs])
        assert got.shape == want.shape and got.shape[0] == len(hf.seeds)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3, err_msg=name)  # the JSON keeps 6 digits
    # the rows differ from each other: a route that ignored the scheme would give Baseline's numbers everywhere
    baseline = np.array([run["acc_per_sample"]["Baseline"] for run in hf.runs])
    assert any(not np.array_equal(np.array([r["acc_per_sample"][n] for r in hf.runs]), baseline) for n in stored)
