"""Position Interpolation's analysis: the attention score as a function of relative position, its least-squares fit
(PI's Fig. 2), the interpolation bound (PI's Theorem 2.1) and the extrapolation-side sum it is compared with.

Chen, Wong, Chen, Tian, *Extending Context Window of Large Language Models via Positional Interpolation*
(arXiv:2306.15595), section 2 and appendices A-C. With h_j = (q_2j + i q_2j+1)(k_2j - i k_2j+1) the RoPE score of a
query and a key at relative position s is (PI Eq. 3)

    a(s) = Re sum_{j=0}^{d/2-1} h_j exp(i s theta_j),    theta_j = c^(-2j/d)   (c: the base, ``base`` here).

Theorem 2.1 bounds the gap between a(s) and its linear interpolation between two grid points s1 <= s <= s2:

    |a(s) - a_linear(s)| <= d max_j|h_j| (s - s1)(s2 - s) / (8 ln c).

Its proof (appendix A) bounds |a''| by max_j|h_j| sum_j theta_j^2 = max_j|h_j| (1 - c^-2) / (1 - c^(-4/d)), and then
uses c^x <= 1 + x ln c for x < 0 to replace the geometric sum by d / (4 ln c). That inequality is reversed
(c^x is convex: c^x >= 1 + x ln c), so the sum is *larger* than d / (4 ln c) (3.998 against 3.474 at d = 128,
c = 1e4) and Eq. 5 is not a bound for every h; ``interpolation_bound(form="sum")`` keeps the geometric sum, the
bound the proof does establish. The extrapolation side (PI Eq. 8, from RoFormer section 3.4.3) is
|a(s)| <= 2 max_j|h_j| B(s), B(s) = sum_{k=0}^{d/2-1} |A_{k+1}(s)|, A_k(s) = sum_{j<k} exp(i s theta_j).

Inputs and outputs are float64 / complex128 numpy arrays (computed in float64, products and SVD with torch); theta
comes from :func:`rope_lib.rope.inv_freq` (one formula for the frequencies).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from . import _checks
from .rope import inv_freq

__all__ = [
    "attention_score",
    "bound_ratio",
    "extrapolation_sum",
    "fit_attention_score",
    "interpolation_bound",
    "interpolation_error",
]

FORMS = ("paper", "sum")  # interpolation_bound's forms: PI's Eq. 5 as printed, and the geometric sum its proof has
_CHUNK = 8192  # positions per block in extrapolation_sum: (chunk, d/2) complex cumulative sums stay small


def _head_dim(head_dim) -> int:
    d = _checks.positive_int("head_dim", head_dim)
    if d % 2:
        raise ValueError(f"head_dim must be a positive even integer (RoPE rotates pairs), got {head_dim!r}")
    return d


def _thetas(head_dim: int, base) -> np.ndarray:
    """theta_j = base^(-2j/d), j = 0..d/2-1, float64 (shape (d/2,))."""
    b = _checks.finite_number("base", base, above=1)
    return inv_freq(_head_dim(head_dim), b).numpy()


def _real_array(name: str, value) -> np.ndarray:
    """``value`` as a float64 array of finite reals (any shape), else a ValueError naming ``name``."""
    bad = isinstance(value, bool) or (isinstance(value, np.ndarray) and value.dtype.kind not in "iuf")
    try:
        arr = np.array(value, dtype=np.float64)  # a copy: torch.from_numpy needs a writable array
    except (TypeError, ValueError):
        bad = True
    if bad or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite real number or an array-like of finite reals, got {value!r}")
    return arr


def _coefficients(h) -> np.ndarray:
    """``h`` as a non-empty 1-D complex128 array of finite values (one coefficient per rotated pair)."""
    try:
        arr = np.asarray(h, dtype=np.complex128)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"h must be a non-empty 1-D array of finite complex coefficients (d/2 of them), got {h!r}")
    return arr


def _basis(s: np.ndarray, theta: np.ndarray) -> torch.Tensor:
    """Real design matrix (n, d) with a(s) = basis @ [Re h, Im h]: columns cos(s theta_j), then -sin(s theta_j).

    torch, not numpy, for the products and the SVD: they then follow torch's thread setting (numpy's BLAS threads
    cannot be set from Python, and on a busy shared machine its default threading slows a small SVD down badly).
    """
    angle = torch.from_numpy(s)[:, None] * torch.from_numpy(theta)
    return torch.cat((torch.cos(angle), -torch.sin(angle)), dim=1)


def attention_score(h, s, base: float = 10000.0) -> np.ndarray:
    """a(s) = Re sum_j h_j exp(i s theta_j), theta_j = base^(-2j/d), d = 2 len(h) (PI Eq. 3).

    ``h``: complex coefficients, shape (d/2,); ``s``: relative positions, any shape (real, not only integers).
    Returns float64 of ``s``'s shape (a float64 0-d array for a scalar ``s``).
    """
    coeffs = _coefficients(h)
    theta = _thetas(2 * coeffs.size, base)
    pos = _real_array("s", s)
    flat = pos.reshape(-1)
    out = _basis(flat, theta) @ torch.from_numpy(np.concatenate((coeffs.real, coeffs.imag)))
    return out.numpy().reshape(pos.shape)


def fit_attention_score(
    target, head_dim: int = 128, base: float = 10000.0, *, positions=None, ridge: float = 0.0
) -> np.ndarray:
    """Least-squares coefficients h of a(s) for ``target`` values at ``positions`` (PI's Fig. 2 fit).

    ``target``: shape (n,), float; ``positions``: shape (n,), default 0..n-1 (PI's integer grid on [0, L), L = n).
    Minimises sum_i (a(s_i) - target_i)^2 + lam sum_j |h_j|^2 with lam = ``ridge`` * sigma_max^2, sigma_max the
    largest singular value of the (n, d) real basis: a ridge relative to the basis' scale means the same for any n.
    ``ridge=0`` is PI's setting (its code's ``eps = 0``): the minimum-norm least-squares solution, singular values
    below n * float64-eps * sigma_max dropped (numpy.linalg.lstsq's default). At d = 128, c = 1e4, L = 2048 the basis'
    condition number is ~1e16 (its slow columns are nearly collinear on [0, L)), so with ``ridge=0`` the size of the
    coefficients, and of the fitted function beyond L, is set by rounding: only its order of magnitude means
    something. Returns complex128 h, shape (head_dim/2,).
    """
    theta = _thetas(head_dim, base)
    y = _real_array("target", target)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"target must be a non-empty 1-D array of finite reals, got shape {y.shape}")
    if positions is None:
        s = np.arange(y.size, dtype=np.float64)
    else:
        s = _real_array("positions", positions)
        if s.shape != y.shape:
            raise ValueError(f"positions must have target's shape {y.shape}, got {s.shape}")
    lam = _checks.finite_number("ridge", ridge, at_least=0)
    u, sig, vt = torch.linalg.svd(_basis(s, theta), full_matrices=False)
    if lam > 0:
        gain = sig / (sig**2 + lam * sig[0] ** 2)  # Tikhonov filter: sigma / (sigma^2 + lam)
    else:
        keep = sig > max(s.size, sig.numel()) * torch.finfo(torch.float64).eps * sig[0]
        gain = torch.where(keep, 1.0 / torch.where(keep, sig, 1.0), 0.0)
    coef = (vt.T @ (gain * (u.T @ torch.from_numpy(y)))).numpy()
    half = theta.size
    return coef[:half] + 1j * coef[half:]


def _interval(s, s1, s2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos, lo, hi = _real_array("s", s), _real_array("s1", s1), _real_array("s2", s2)
    try:
        pos, lo, hi = np.broadcast_arrays(pos, lo, hi)
    except ValueError:
        shapes = f"{pos.shape}, {lo.shape}, {hi.shape}"
        raise ValueError(f"s, s1 and s2 must broadcast together, got shapes {shapes}") from None
    if not np.all(lo < hi):
        raise ValueError("s1 must be < s2 (the two grid points the interpolation is between)")
    if not np.all((lo <= pos) & (pos <= hi)):
        raise ValueError("s must lie in [s1, s2] (Theorem 2.1 is about interpolation, not extrapolation)")
    return pos, lo, hi


def interpolation_error(h, s, s1, s2, base: float = 10000.0) -> np.ndarray:
    """a(s) - a_linear(s), a_linear the linear interpolation of a between s1 and s2 (PI Eq. 6), for s1 <= s <= s2.

    ``h``: complex (d/2,); ``s``, ``s1``, ``s2``: real, broadcast together (e.g. s = k + 1/2 between k and k + 1).
    Returns float64 of the broadcast shape.
    """
    pos, lo, hi = _interval(s, s1, s2)
    lam = (pos - lo) / (hi - lo)
    linear = (1 - lam) * attention_score(h, lo, base) + lam * attention_score(h, hi, base)
    return attention_score(h, pos, base) - linear


def interpolation_bound(
    max_abs_h: float, s, s1, s2, head_dim: int = 128, base: float = 10000.0, *, form: str = "paper"
) -> np.ndarray:
    """The bound on |a(s) - a_linear(s)| for s1 <= s <= s2 and coefficients with max_j |h_j| = ``max_abs_h``.

    ``form="paper"``: PI's Eq. 5, d max|h| (s - s1)(s2 - s) / (8 ln c). Not valid for every h (module docstring: its
    last step uses a reversed inequality; a counterexample at d = 128 is in notebook 08a and the tests).
    ``form="sum"``: max|h| (s - s1)(s2 - s) / 2 * sum_j theta_j^2, the bound the proof establishes (the geometric
    sum (1 - c^-2)/(1 - c^(-4/d)) kept as it is). ``s``, ``s1``, ``s2`` broadcast; returns float64 of that shape.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    m = _checks.finite_number("max_abs_h", max_abs_h, at_least=0)
    theta = _thetas(head_dim, base)
    pos, lo, hi = _interval(s, s1, s2)
    if form == "paper":
        per_unit = theta.size * 2 / (8 * math.log(base))  # d / (8 ln c)
    else:
        per_unit = float(np.sum(theta**2)) / 2
    return m * per_unit * (pos - lo) * (hi - pos)


def extrapolation_sum(s, head_dim: int = 128, base: float = 10000.0) -> np.ndarray:
    """B(s) = sum_{k=0}^{d/2-1} |A_{k+1}(s)|, A_k(s) = sum_{j=0}^{k-1} exp(i s theta_j) (PI Eq. 8 and appendix B).

    The extrapolation bound is |a(s)| <= 2 max_j|h_j| B(s). ``s``: real, any shape; returns float64 of its shape.
    """
    theta = _thetas(head_dim, base)
    pos = _real_array("s", s)
    flat = pos.reshape(-1)
    out = np.empty(flat.shape, dtype=np.float64)
    for start in range(0, flat.size, _CHUNK):
        part = flat[start : start + _CHUNK]
        partial = np.cumsum(np.exp(1j * part[:, None] * theta), axis=1)  # A_1 .. A_{d/2}
        out[start : start + _CHUNK] = np.abs(partial).sum(axis=1)
    return out.reshape(pos.shape)


def bound_ratio(head_dim: int = 128, base: float = 10000.0, *, max_distance=None, form: str = "paper") -> float:
    """How many times the extrapolation bound exceeds the interpolation bound, both per unit max_j|h_j|.

    Interpolation: the bound at its worst on a unit grid step, (s - s1)(s2 - s) = 1/4 (PI Eq. 7 for ``form="paper"``:
    d / (32 ln c)). Extrapolation: 2 min_s B(s), with min_s B(s) = d by default, PI's "numerically at least larger
    than d" (then the paper form gives 64 ln c, PI's "2 x 294.73 ~ 600"), or the minimum of :func:`extrapolation_sum`
    over the integer distances 0..``max_distance``-1 when that is given. Returns a float.
    """
    d = _head_dim(head_dim)
    if max_distance is None:
        b_min = float(d)
    else:
        if not isinstance(max_distance, numbers.Integral) or isinstance(max_distance, bool) or max_distance < 1:
            raise ValueError(f"max_distance must be None or a positive integer, got {max_distance!r}")
        b_min = float(extrapolation_sum(np.arange(int(max_distance)), d, base).min())
    interp = float(interpolation_bound(1.0, 0.5, 0.0, 1.0, d, base, form=form))
    return 2 * b_min / interp
