"""Shared fixtures: a tiny experiment profile that trains in seconds, in a throw-away cache and results folder; and
``ulps_close``, the comparison for two computations of the same floating-point values that round differently."""

from __future__ import annotations

import pytest
import torch

from rope_lib.companion.data import load_corpus
from rope_lib.companion.experiments import harness as hx

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


def ulps_close(actual, expected, ulps: float = 8, *, scale: float | None = None, msg: str | None = None) -> None:
    """Assert ``actual`` equals ``expected`` up to ``ulps`` units of rounding (eps) of their floating dtype.

    For the same values computed two ways that round differently: other shapes or batching (a matmul over one row
    and over many rows take different BLAS kernels), another operation order, vectorised vs scalar math, another
    library. Bitwise equality is promised by no BLAS or libm there; a few ulps is what the numerics give, while a
    real bug (a wrong rotation sign, a swapped pair) moves values by O(1) and still fails.

    rtol = ulps * eps and atol = ulps * eps * scale, eps = finfo(dtype).eps. ``scale`` (default
    max(1, max|expected|)) is the magnitude of the compared values: a sum rounds relative to its terms, so an element
    that cancels to near zero still carries an absolute error of that size. ``scale=0`` gives a purely relative
    comparison (products and powers of positive numbers, where nothing cancels). Tensors or numpy arrays of the same
    dtype and shape (a plain number takes actual's dtype), or (nested) tuples/lists of them, each compared with
    its own scale.
    """
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), (
            f"expected a sequence of {len(expected)}, got {type(actual).__name__}"
        )
        for a, e in zip(actual, expected):
            ulps_close(a, e, ulps, scale=scale, msg=msg)
        return
    actual = torch.as_tensor(actual)  # numpy arrays too (their dtype kept)
    expected = torch.as_tensor(expected, dtype=actual.dtype if isinstance(expected, (int, float)) else None)
    if not expected.is_floating_point():
        raise TypeError(f"ulps_close compares floating-point values, got {expected.dtype}: compare integers exactly")
    eps = torch.finfo(expected.dtype).eps
    if scale is None:
        scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=ulps * eps, atol=ulps * eps * scale, msg=msg)
