"""rope_lib.score_bounds: the score against a direct sum, the fit against known coefficients and PI's Fig. 2
behaviour, Theorem 2.1 (the proof's bound on random cases; the printed one fails on a constructed case), B(s)
against its definition, the ~600x ratio, errors."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
import torch

import rope_lib
from rope_lib.score_bounds import (
    attention_score,
    bound_ratio,
    extrapolation_sum,
    fit_attention_score,
    interpolation_bound,
    interpolation_error,
)


@pytest.fixture(autouse=True)
def one_thread():
    # small products and one 2048 x 128 SVD: extra threads only add overhead (and contention on shared CPUs)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def loop_score(h, s: float, base: float) -> float:
    d = 2 * len(h)
    return sum((hj * cmath.exp(1j * s * base ** (-2 * j / d))).real for j, hj in enumerate(h))


def loop_b(s: float, d: int, base: float) -> float:
    total, partial = 0.0, 0j
    for j in range(d // 2):
        partial += cmath.exp(1j * s * base ** (-2 * j / d))
        total += abs(partial)
    return total


def random_h(rng, d: int) -> np.ndarray:
    return rng.standard_normal(d // 2) + 1j * rng.standard_normal(d // 2)


def test_public_names():
    for name in (
        "attention_score",
        "bound_ratio",
        "extrapolation_sum",
        "fit_attention_score",
        "interpolation_bound",
        "interpolation_error",
    ):
        assert getattr(rope_lib, name) is getattr(rope_lib.score_bounds, name)


@pytest.mark.parametrize("d, base", [(8, 10.0), (128, 1e4), (64, 5e5)])
def test_score_matches_direct_sum(d, base):
    rng = np.random.default_rng(d)
    h = random_h(rng, d)
    s = np.array([[0.0, 0.5, 1.0, 7.25], [-3.0, 2047.0, 2048.5, 1e5 + 0.125]])
    got = attention_score(h, s, base)
    assert got.shape == s.shape and got.dtype == np.float64
    want = np.array([[loop_score(h, float(x), base) for x in row] for row in s])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10 * np.abs(h).sum())
    assert float(attention_score(h, 3.0, base)) == pytest.approx(loop_score(h, 3.0, base), rel=1e-12)


def test_fit_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    for d, base, positions in [(8, 10.0, np.arange(200.0)), (16, 100.0, np.arange(0.0, 300.0, 0.5))]:
        h_true = random_h(rng, d)
        target = attention_score(h_true, positions, base)
        if positions[1] == 1.0:  # the default grid is 0..n-1
            h = fit_attention_score(target, d, base)
        else:
            h = fit_attention_score(target, d, base, positions=positions)
        assert h.shape == (d // 2,) and h.dtype == np.complex128
        np.testing.assert_allclose(h, h_true, rtol=0, atol=1e-8)


def test_fit_is_least_squares_and_ridge_shrinks():
    rng = np.random.default_rng(2)
    d, base, s = 8, 10.0, np.arange(100.0)
    y = rng.standard_normal(s.size)
    h = fit_attention_score(y, d, base)
    th = base ** (-np.arange(0, d, 2) / d)
    X = np.concatenate((np.cos(np.outer(s, th)), -np.sin(np.outer(s, th))), axis=1)
    residual = attention_score(h, s, base) - y
    np.testing.assert_allclose(X.T @ residual, 0, atol=1e-9)  # the normal equations hold: a least-squares solution
    norms = [np.linalg.norm(fit_attention_score(y, d, base, ridge=r)) for r in (0.0, 1e-4, 1e-2, 1.0)]
    assert all(a > b for a, b in zip(norms, norms[1:]))
    # ridge lam = ridge * sigma_max^2: the filtered solution solves (X^T X + lam I) c = X^T y
    lam = 1e-2 * np.linalg.norm(X, 2) ** 2
    c = np.linalg.solve(X.T @ X + lam * np.eye(d), X.T @ y)
    np.testing.assert_allclose(fit_attention_score(y, d, base, ridge=1e-2), c[: d // 2] + 1j * c[d // 2 :], atol=1e-12)


def test_fig2_fit_explodes_beyond_L_not_in_between():
    # PI's Fig. 2 setting (appendix C.1): d = 128, c = 1e4, Gaussian targets at s = 0..L-1, L = 2048, no ridge
    d, base, L = 128, 1e4, 2048
    y = np.random.default_rng(0).standard_normal(L)
    h = fit_attention_score(y, d, base)
    inside = np.abs(attention_score(h, np.arange(L), base)).max()
    beyond = np.abs(attention_score(h, np.arange(L, 2 * L), base)).max()
    halves = np.abs(attention_score(h, np.arange(L - 1) + 0.5, base)).max()
    assert inside < 2 and beyond > 1000 * inside and halves < 2 * inside
    # PI's remark: a ridge keeps the extrapolated values comparable with those inside
    h_ridge = fit_attention_score(y, d, base, ridge=1e-4)
    assert np.abs(attention_score(h_ridge, np.arange(L, 2 * L), base)).max() < 5 * inside


def test_interpolation_error_is_the_gap_to_the_chord():
    rng = np.random.default_rng(3)
    h = random_h(rng, 16)
    s1, s2, s = 4.0, 6.0, np.array([4.0, 4.5, 5.2, 6.0])
    lam = (s - s1) / (s2 - s1)
    want = [
        loop_score(h, x, 100.0) - ((1 - t) * loop_score(h, s1, 100.0) + t * loop_score(h, s2, 100.0))
        for x, t in zip(s, lam)
    ]
    np.testing.assert_allclose(interpolation_error(h, s, s1, s2, 100.0), want, atol=1e-12)
    assert interpolation_error(h, s, s1, s2, 100.0)[[0, -1]] == pytest.approx([0, 0], abs=1e-12)  # exact at the ends


@pytest.mark.parametrize("d, base", [(16, 100.0), (64, 1e4), (128, 1e4), (128, 5e5)])
def test_proof_bound_holds_on_random_cases(d, base):
    rng = np.random.default_rng(d + int(base))
    for _ in range(20):
        h = random_h(rng, d)
        width = rng.choice([0.25, 1.0, 3.0])
        s1 = rng.uniform(0, 5000, size=200)
        s = s1 + rng.uniform(0, width, size=200)
        err = np.abs(interpolation_error(h, s, s1, s1 + width, base))
        bound = interpolation_bound(np.abs(h).max(), s, s1, s1 + width, d, base, form="sum")
        assert np.all(err <= bound * (1 + 1e-9) + 1e-12)


def test_printed_bound_fails_where_the_proof_bound_is_tight():
    # h_j = exp(-i s* theta_j) lines every term up at s*: a''(s*) = -sum theta_j^2, the most a'' can be with |h_j| = 1
    d, base, s_star = 128, 1e4, 1000.5
    theta = base ** (-np.arange(0, d, 2) / d)
    h = np.exp(-1j * s_star * theta)
    err = float(interpolation_error(h, s_star, s_star - 0.5, s_star + 0.5, base))
    assert err == pytest.approx(np.sum(1 - np.cos(theta / 2)), rel=1e-9)  # closed form at the midpoint
    paper = float(interpolation_bound(1.0, s_star, s_star - 0.5, s_star + 0.5, d, base))
    proof = float(interpolation_bound(1.0, s_star, s_star - 0.5, s_star + 0.5, d, base, form="sum"))
    assert paper == pytest.approx(d / (32 * math.log(base)))
    assert 1.13 < err / paper < 1.14  # PI's Eq. 5 is exceeded by 13.7%
    assert 0.98 < err / proof <= 1  # the proof's bound holds, within 1.2% of the error


@pytest.mark.parametrize("d, base", [(16, 100.0), (128, 1e4)])
def test_extrapolation_sum_matches_definition(d, base):
    s = np.array([0.0, 1.0, 17.5, 3643.0, 70508.0])
    np.testing.assert_allclose(extrapolation_sum(s, d, base), [loop_b(x, d, base) for x in s], rtol=1e-12)
    assert extrapolation_sum(0.0, d, base) == pytest.approx((d // 2) * (d // 2 + 1) / 2)  # |A_k(0)| = k
    big = np.arange(20_000.0)  # more than one block
    np.testing.assert_allclose(
        extrapolation_sum(big, d, base)[[0, 9000, 19_999]],
        [loop_b(x, d, base) for x in (0.0, 9000.0, 19_999.0)],
        rtol=1e-11,
    )


def test_bound_ratio():
    ratio = bound_ratio()
    assert ratio == pytest.approx(64 * math.log(1e4))  # 2 d / (d / (32 ln c))
    assert round(32 * math.log(1e4), 2) == 294.73 and round(ratio, -2) == 600  # PI: "2 x 294.73 ~ 600"
    b_min = min(loop_b(float(x), 128, 1e4) for x in range(0, 4096, 7))
    assert bound_ratio(max_distance=4096) <= 2 * b_min / (128 / (32 * math.log(1e4))) * (1 + 1e-12)
    assert bound_ratio(max_distance=4096) > ratio  # on [0, 2L) B(s) stays above d, as PI's appendix B shows
    theta = 1e4 ** (-np.arange(64) / 64)
    assert bound_ratio(form="sum") == pytest.approx(2 * 128 / (np.sum(theta**2) / 8))
    assert bound_ratio(16, 100.0) == pytest.approx(64 * math.log(100.0))  # d cancels


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: attention_score([], [1.0]), "h must be"),
        (lambda: attention_score(np.ones((2, 2)), [1.0]), "h must be"),
        (lambda: attention_score([1 + 1j, np.nan], [1.0]), "h must be"),
        (lambda: attention_score(["a"], [1.0]), "h must be"),
        (lambda: attention_score([1.0], [np.inf]), "s must be"),
        (lambda: attention_score([1.0], "x"), "s must be"),
        (lambda: attention_score([1.0], [1.0], base=1.0), "base must be"),
        (lambda: attention_score([1.0], [1.0], base=True), "base must be"),
        (lambda: fit_attention_score(np.ones(5), 7), "head_dim must be a positive even"),
        (lambda: fit_attention_score(np.ones(5), 0), "head_dim must be"),
        (lambda: fit_attention_score(np.ones(5), -4), "head_dim must be"),
        (lambda: fit_attention_score(np.ones(5), 8.0), "head_dim must be"),
        (lambda: fit_attention_score(np.ones(5), 8, 0.5), "base must be"),
        (lambda: fit_attention_score([], 8), "target must be"),
        (lambda: fit_attention_score(np.ones((2, 3)), 8), "target must be"),
        (lambda: fit_attention_score(np.ones(5), 8, positions=np.arange(4)), "positions must have"),
        (lambda: fit_attention_score(np.ones(5), 8, ridge=-1.0), "ridge must be"),
        (lambda: fit_attention_score(np.ones(5), 8, ridge=float("nan")), "ridge must be"),
        (lambda: interpolation_error([1.0], 0.5, 1.0, 0.0), "s1 must be < s2"),
        (lambda: interpolation_error([1.0], 2.0, 0.0, 1.0), "s must lie in"),
        (lambda: interpolation_error([1.0], np.ones(3), np.zeros(2), 2.0), "must broadcast"),
        (lambda: interpolation_bound(-1.0, 0.5, 0.0, 1.0), "max_abs_h must be"),
        (lambda: interpolation_bound(1.0, 0.5, 0.0, 1.0, form="tight"), "form must be one of"),
        (lambda: interpolation_bound(1.0, 0.5, 0.0, 1.0, head_dim=3), "head_dim must be"),
        (lambda: extrapolation_sum(1.0, 128, 1e4 * 0), "base must be"),
        (lambda: bound_ratio(max_distance=0), "max_distance must be"),
        (lambda: bound_ratio(max_distance=2.5), "max_distance must be"),
        (lambda: bound_ratio(head_dim=5), "head_dim must be"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
