"""rope_lib.base_bound: B_m against its definition, the grid search against a plain re-implementation of Su's
procedure and against its documented guarantee, the inverse, Su's d = 128 row, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rope_lib
from rope_lib.base_bound import (
    base_lower_bound,
    base_lower_bound_on_grid,
    base_search,
    max_context_length,
    rope_bias_sum,
)


def loop_bias(m: float, base: float, d: int) -> float:
    return sum(math.cos(m * base ** (-2 * i / d)) for i in range(d // 2))


def passes(bases: np.ndarray, L: int, d: int) -> np.ndarray:
    """For each base: B_m >= 0 at every distance m = 0..L-1, every cosine evaluated (no shortcut)."""
    th = np.asarray(bases, dtype=np.float64)[:, None] ** (-2.0 * np.arange(d // 2) / d)
    m = np.arange(L, dtype=np.float64)
    out = np.empty(th.shape[0], dtype=bool)
    for s in range(0, th.shape[0], 512):
        out[s : s + 512] = (np.cos(m[None, :, None] * th[s : s + 512, None, :]).sum(-1) >= 0).all(axis=1)
    return out


def naive_su(L: int, d: int, levels: int) -> float:
    """Su's procedure as he states it (plus the documented start rule): every grid point tested in full."""
    B = 1000.0 * L
    while not passes(np.array([B]), L, d)[0]:  # 1000 L is not always enough for small head dims
        B *= 10
    for k in range(1, levels + 1):
        bs = np.linspace(0, 1, 10**k + 1)[1:] * B
        bs = bs[bs > 1]
        ok = passes(bs, L, d)
        assert ok[-1]
        B = float(bs[np.argmax(ok)])
    return B


@pytest.fixture(autouse=True)
def one_thread():
    # the scans are many small products: extra threads only add overhead (and contention on shared CPUs)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_bias_sum_matches_its_definition():
    for d, base in [(8, 10.0), (16, 500.0), (128, 1e4), (128, 5e5)]:
        ms = [0, 1, 2, 7, 100, 12_345, 1_000_003]
        got = rope_bias_sum(ms, base, d)
        assert got.dtype == np.float64 and got.shape == (7,)
        np.testing.assert_allclose(got, [loop_bias(m, base, d) for m in ms], rtol=0, atol=1e-9)
    scalar = rope_bias_sum(3, 1e4, 128)
    assert isinstance(scalar, float) and math.isclose(scalar, loop_bias(3, 1e4, 128), abs_tol=1e-12)
    assert rope_bias_sum(0, 2.0, 64) == 32.0  # every cosine is 1 at m = 0
    grid = rope_bias_sum(np.arange(6).reshape(2, 3), 100.0, 8)
    assert grid.shape == (2, 3) and math.isclose(grid[1, 2], loop_bias(5, 100.0, 8), abs_tol=1e-12)


def test_bias_sum_uses_the_library_frequencies():
    theta = rope_lib.inv_freq(16, 777.0)
    m = 12_345.0
    assert math.isclose(rope_bias_sum(m, 777.0, 16), float(torch.cos(m * theta).sum()), abs_tol=1e-12)


@pytest.mark.parametrize("d, L", [(8, 20), (8, 57), (16, 150), (16, 200)])
def test_search_equals_su_procedure_evaluated_in_full(d, L):
    r = base_search(L, d, levels=3)
    assert r.base == naive_su(L, d, 3)  # both pick a point of the same float grid (same expression): exact
    assert r.levels[-1] == r.base and len(r.levels) == 4


def test_documented_resolution_holds():
    # the returned base passes, and every multiple of the last grid's step below it (and above 1) fails
    d, L = 8, 40
    r = base_search(L, d)
    assert passes(np.array([r.base]), L, d)[0]
    j = round(r.base / r.step)
    assert math.isclose(j * r.step, r.base, rel_tol=1e-12)
    below = np.arange(1, j) * r.step
    assert not passes(below[below > 1], L, d).any()
    assert r.step == r.levels[-2] / 10**5  # the library's own expression B / 10**k: exact


def test_bound_is_not_monotone_so_bisection_would_fail():
    # d = 128, L = 2048: Su's bound 1.16e4 passes while the larger 1.2e4 fails at m = 1554
    b = base_lower_bound(2048)
    assert 1.15e4 < b < 1.2e4 and passes(np.array([b]), 2048, 128)[0]
    assert max_context_length(1.2e4) == 1554 < 2048
    assert rope_bias_sum(1554, 1.2e4, 128) < 0 <= rope_bias_sum(np.arange(1554), 1.2e4, 128).min()


@pytest.mark.parametrize("d, L", [(8, 57), (16, 200)])
def test_max_context_length_is_the_inverse(d, L):
    r = base_search(L, d)
    assert max_context_length(r.base, d) >= L
    assert max_context_length(r.base - r.step, d) < L


@pytest.mark.parametrize("base, d", [(4.3e3, 128), (2.3e5, 128), (4.9e6, 128), (50.0, 8), (1e6, 16)])
def test_max_context_length_against_a_direct_scan(base, d):
    th = base ** (-2.0 * np.arange(d // 2) / d)
    first = None
    for s in range(0, 10**7, 20_000):  # plain chunks of direct cosines, stopping at the first negative sum
        neg = np.nonzero(np.cos(np.arange(s, s + 20_000, dtype=np.float64)[:, None] * th).sum(1) < 0)[0]
        if neg.size:
            first = s + int(neg[0])
            break
    assert first is not None and max_context_length(base, d) == first


def test_grid_inverse_method_against_brute_force():
    d, L = 16, 120
    cands = np.array([k * 10.0**e for e in range(1, 4) for k in range(10, 100)]) / 10
    cands = cands[cands > 1]
    ok = passes(cands, L, d)
    assert base_lower_bound_on_grid(L, cands[::-1], d) == float(cands[np.argmax(ok)])
    assert base_lower_bound_on_grid(10**6, [2.0, 3.0], 8) is None


SU_ROW = {1: 4.3e3, 2: 1.2e4, 4: 2.7e4, 8: 8.4e4, 16: 2.3e5, 32: 6.3e5, 128: 4.9e6}  # kexue.fm/archives/10122


@pytest.mark.parametrize("k, su", list(SU_ROW.items()), ids=[f"{k}k" for k in SU_ROW])
def test_su_d128_row(k, su):
    # L = 1024 k (Su's code: bmin(1024 * 128)); 64k and beyond 128k run in notebook 07 (slower)
    assert float(f"{base_lower_bound(1024 * k):.1e}") == su


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: rope_bias_sum(1, 1e4, 7), "head_dim must be a positive even integer"),
        (lambda: rope_bias_sum(1, 1e4, 0), "head_dim must be a positive integer"),
        (lambda: rope_bias_sum(1, 1e4, True), "head_dim must be a positive integer"),
        (lambda: rope_bias_sum(1, 1.0, 8), "base must be a finite number > 1"),
        (lambda: rope_bias_sum(1, math.inf, 8), "base must be a finite number > 1"),
        (lambda: rope_bias_sum([1, math.nan], 10.0, 8), "m must be a finite number"),
        (lambda: rope_bias_sum("a", 10.0, 8), "m must be a finite number"),
        (lambda: max_context_length(0.5), "base must be a finite number > 1"),
        (lambda: max_context_length(1e4, 9), "head_dim must be a positive even integer"),
        (lambda: max_context_length(1e4, limit=0), "limit must be a positive integer"),
        (lambda: max_context_length(1e9, limit=100), "pass a larger limit"),
        (lambda: base_lower_bound(0), "context_length must be a positive integer"),
        (lambda: base_lower_bound(2.5), "context_length must be a positive integer"),
        (lambda: base_lower_bound(100, -2), "head_dim must be a positive integer"),
        (lambda: base_lower_bound(100, 2), "out of reach"),
        (lambda: base_lower_bound(100, levels=0), "levels must be a positive integer"),
        (lambda: base_lower_bound_on_grid(100, [0.5, 1.0]), "bases must be a finite number > 1"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
