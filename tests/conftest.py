"""Shared fixtures: a tiny experiment profile that trains in seconds, in a throw-away cache and results folder."""

from __future__ import annotations

import pytest

from rope_lib.data import load_corpus
from rope_lib.experiments import harness as hx

# Small enough to train a few steps in a unit test; same keys as hx.PROFILE_SETTINGS["smoke"].
TINY_PROFILE = {
    "model": dict(d_model=32, n_layers=1, n_heads=2, head_dim=16, d_ff=48, train_length=16),
    "train": dict(steps=3, batch_size=4, lr=3e-3, warmup_steps=1, save_every=10),
    "multipliers": (2, 4),
    "n_samples": 3,
    "seeds": 2,
    "batch_tokens": 4096,
    "num_threads": 1,
}


@pytest.fixture(scope="module")
def corpus():
    """The default corpus (the pinned sympy sources), read once per test module."""
    return load_corpus()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A throw-away checkpoint and evaluation cache under tmp_path (returned)."""
    monkeypatch.setenv("ROPE_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture()
def tiny_profile(tmp_path, monkeypatch):
    """The "smoke" profile replaced by TINY_PROFILE, with caches and results under tmp_path (returned)."""
    monkeypatch.setenv("ROPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ROPE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setitem(hx.PROFILE_SETTINGS, "smoke", TINY_PROFILE)
    return tmp_path
