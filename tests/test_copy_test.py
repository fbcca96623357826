"""The copy test of the extrapolation experiment (notebook 04, "Does the model copy?"): accuracy on each half of a
window, split where the second half's tokens begin, and the per-seed "copy" entry of the results file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_PROFILE

from rope_lib.companion.experiments import extrapolation as ex
from rope_lib.companion.experiments import harness as hx
from rope_lib.companion.experiments import run_experiment

NEVER = 255  # a byte the test windows below never hold: an oracle that predicts it is wrong there


class CopyHalfBack(torch.nn.Module):
    """A "model" that predicts token t + 1 as the token T/2 before it (a perfect copier of a repeated window) and
    NEVER where no such token exists (the first half): token_metrics calls it like RoPELM, (n, T - 1) -> logits."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))  # token_metrics reads the device from the parameters

    def forward(self, idx: torch.Tensor, scheme=None) -> torch.Tensor:
        n_pred = idx.shape[1]
        half = (n_pred + 1) // 2  # T/2
        guess = torch.full_like(idx, NEVER)
        guess[:, half - 1 :] = idx[:, : n_pred - half + 1]  # prediction t (token t + 1) <- token t + 1 - T/2
        return F.one_hot(guess, 256).float()


def test_a_repeated_window_is_split_where_its_copy_begins():
    T = 16
    first = torch.randint(0, NEVER, (5, T // 2), generator=torch.Generator().manual_seed(0))
    repeated = torch.cat([first, first], dim=1)  # the second half repeats the first, as in the repeated test set
    # a copier gets every token of the second half (T/2 .. T-1) right and none of the first half's (1 .. T/2-1),
    # so the halves are exactly 0 and 100: a split one prediction off either way would move one of them
    stored = np.full(5, (T // 2) / (T - 1))  # T/2 hits of T - 1 predictions, as acc_per_sample holds it
    halves = ex.copy_halves(CopyHalfBack(), repeated, None, stored, batch_tokens=4096)
    assert set(halves) == {"first_half_acc_pct", "second_half_acc_pct"}
    np.testing.assert_array_equal(halves["first_half_acc_pct"], np.zeros(5))
    np.testing.assert_array_equal(halves["second_half_acc_pct"], np.full(5, 100.0))
    # the halves must recombine to the stored per-window accuracy: one token off is refused
    with pytest.raises(AssertionError):
        ex.copy_halves(CopyHalfBack(), repeated, None, stored + 1 / (T - 1), batch_tokens=4096)


def test_the_experiment_writes_the_halves_of_every_seed(tiny_profile, monkeypatch):
    # the tiny model at 8x (= 128 bytes) too, so that the rows' part of the copy test runs
    monkeypatch.setitem(hx.PROFILE_SETTINGS, "smoke", {**TINY_PROFILE, "multipliers": (8,)})
    r = run_experiment("extrapolation", device="cpu", methods=["Baseline", "YaRN"], progress=False)
    written = json.loads((tiny_profile / "results" / "smoke" / "extrapolation.json").read_text())
    n, L = TINY_PROFILE["n_samples"], TINY_PROFILE["model"]["train_length"]
    for run, run_written in zip(r["runs"], written["runs"], strict=True):
        assert list(run["copy"]) == ["plain", "log_n", *ex.COPY_ROWS] == list(run_written["copy"])
        for what, by_kind in run["copy"].items():
            at_L = what in ("plain", "log_n")  # the models at L; the rows at 8x
            T = L if at_L else 8 * L
            for kind in ("repeated", "non_repeated"):
                cell = run["train_length_metrics"][what][kind] if at_L else run["rows"][what]["metrics"][kind]["8"]
                first, second = (np.asarray(by_kind[kind][k]) for k in ("first_half_acc_pct", "second_half_acc_pct"))
                assert first.shape == second.shape == (n,)
                # first half: the predictions of tokens 1 .. T/2 - 1; second half: of tokens T/2 .. T - 1
                recombined = (first * (T // 2 - 1) + second * (T // 2)) / (T - 1)
                # run_experiment returns the file as written, 6 significant digits a value: compare to that precision
                np.testing.assert_allclose(recombined, 100 * np.asarray(cell["acc_per_sample"]), rtol=1e-5)
                assert len(run_written["copy"][what][kind]["second_half_acc_pct"]) == n
    # a method subset without a copy row, or a profile without 8x: only what can be scored
    partial = run_experiment(
        "extrapolation", device="cpu", methods=["Baseline"], out=tiny_profile / "b", progress=False
    )
    assert list(partial["runs"][0]["copy"]) == ["plain", "log_n", "Baseline"]
    monkeypatch.setitem(hx.PROFILE_SETTINGS, "smoke", TINY_PROFILE)  # 2x and 4x
    no_8x = run_experiment(
        "extrapolation", device="cpu", methods=["Baseline", "YaRN"], out=tiny_profile / "c", progress=False
    )
    assert list(no_8x["runs"][0]["copy"]) == ["plain", "log_n"]
