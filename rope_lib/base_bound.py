"""The RoPE base lower bound: B_m = sum_i cos(m theta_i), the smallest base keeping it non-negative, and the inverse.

Men et al., *Base of RoPE Bounds Context Length* (arXiv:2405.14591), and Su Jianlin,
"Transformer升级之路：18、RoPE的底数选择原则" (https://kexue.fm/archives/10122): with q, k* = q + eps
similar tokens and k a random one, the expected attention gap at relative distance m is 2 sigma^2 B_m (sigma^2 the
per-feature variance), so "similar tokens get more attention at every distance up to L" asks

    B_m = sum_{i=0}^{d/2-1} cos(m theta_i) >= 0  for every integer m in 0..L-1,   theta_i = b^(-2i/d).

A context of L tokens has relative distances 0..L-1: that is Su's inequality and his code (``f(np.arange(L), b)``;
the paper writes m in [0, L], which changes none of Su's d = 128 entries beyond the fourth digit here).
``base_lower_bound`` is the smallest base that satisfies it (on Su's refining grid),
``max_context_length`` the largest L a base satisfies it for. B_m >= 0 is *not* monotone in the base (a feasible
base can have an infeasible larger neighbour), which is why bisection is wrong and a grid is searched.

Every decision uses B_m in float64, summed as :func:`rope_bias_sum` sums it: a B_m within about 1e-12 of zero (never
met on the grids here) could be decided either way by rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import _checks

__all__ = [
    "BaseSearch",
    "base_lower_bound",
    "base_lower_bound_on_grid",
    "base_search",
    "first_negative_bias",
    "max_context_length",
    "rope_bias_sum",
]

_EPS = float(np.finfo(np.float64).eps)
_DIRECT_MAX = 4096  # scans this short evaluate every cos directly; longer ones use the block tables below
_TABLE = 1024  # at most this many rows in a base's cos/sin table (offsets j = 0..K-1) in the long scans
_DIRECT_TABLE = 128  # tables up to this many rows are evaluated directly
_MAX_ROWS = 1 << 18  # positions per matrix product once the scan has grown
_BLOCK, _SUB = 2048, 256  # grid bases whose thetas are computed together / tried together against the witnesses
_RECENT = 16  # most recent witnesses tried on every block before any scan
_NEAR, _WINDOW = 8, 128  # a base that survives them is tried at m - 64..m + 63 for the 8 latest witnesses m


def _head_dim(head_dim) -> int:
    d = _checks.positive_int("head_dim", head_dim)
    if d % 2:
        raise ValueError(f"head_dim must be a positive even integer (RoPE rotates pairs), got {head_dim!r}")
    return d


def _thetas(bases: torch.Tensor, d: int) -> torch.Tensor:
    """theta_i = b^(-2i/d) for each base, shape (*bases.shape, d/2), float64 (the formula of rope_lib.inv_freq)."""
    exponents = torch.arange(0, d, 2, dtype=torch.float64) / d
    return torch.pow(bases.to(torch.float64)[..., None], -exponents)


def _bias(m: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """B_m = sum_i cos(m theta_i); m (...,) broadcasts against theta (..., d/2) without its last axis."""
    return torch.cos(m.to(torch.float64)[..., None] * theta).sum(-1)


def rope_bias_sum(m, base: float, head_dim: int):
    """B_{m,theta} = sum_{i=0}^{d/2-1} cos(m theta_i), theta_i = base^(-2i/d), in float64.

    ``m``: a number or an array-like of finite numbers (relative positions; any real m, B is even in m). Returns a
    float for a scalar ``m``, else a float64 numpy array of ``m``'s shape. ``head_dim`` is the rotary dim d (even).
    """
    d = _head_dim(head_dim)
    b = _checks.finite_number("base", base, above=1)
    scalar = np.ndim(m) == 0
    try:
        arr = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"m must be a finite number or an array-like of finite numbers, got {m!r}") from None
    if not np.all(np.isfinite(arr)) or isinstance(m, bool):
        raise ValueError(f"m must be a finite number or an array-like of finite numbers, got {m!r}")
    out = _bias(torch.from_numpy(arr.copy()), _thetas(torch.tensor(b), d)).numpy()
    return float(out) if scalar else out


def _offset_table(theta: torch.Tensor, K: int) -> torch.Tensor:
    """(2 (d/2), K) table [cos(j theta_i); -sin(j theta_i)], j = 0..K-1, by doubling (log2 K rounds, no K d cosines).

    Rows j in [n, 2n) are rows [0, n) rotated by n theta, with exp(i n theta) evaluated directly each round: the
    error is a few ulps per round, far inside the tolerance the scans allow for.
    """
    if K <= _DIRECT_TABLE:  # one shot is cheaper than the rounds' overhead
        a = torch.arange(K, dtype=torch.float64)[:, None] * theta
        return torch.cat((torch.cos(a), -torch.sin(a)), dim=1).T.contiguous()
    rows = torch.ones((1, theta.numel()), dtype=torch.complex128)
    while rows.shape[0] < K:
        n = rows.shape[0]
        rows = torch.cat((rows, rows * torch.polar(torch.ones_like(theta), n * theta)), dim=0)
    rows = rows[:K]
    return torch.cat((rows.real, -rows.imag), dim=1).T.contiguous()


def _negative_in_windows(
    theta: torch.Tensor, starts: torch.Tensor, table: torch.Tensor, hi: int, *, smallest: bool = True
) -> int | None:
    """An m <= hi in the windows starts[g] + 0..K-1 with B_m < 0 (the smallest one if ``smallest``), or None.

    B_{s+j} = sum_i cos(s theta_i) cos(j theta_i) - sin(s theta_i) sin(j theta_i): one matrix product instead of
    d/2 cosines per position. It rounds differently from the direct sum (angles s theta + j theta and a doubled
    table), by less than ``tol``, so only positions it puts below ``tol`` can be negative; those are re-evaluated
    directly (in increasing m, or most negative first when any m will do) and the answer is the direct sum's.
    """
    K = table.shape[1]
    a = starts.to(torch.float64)[:, None] * theta
    values = (torch.cat((torch.cos(a), torch.sin(a)), dim=1) @ table).reshape(-1)  # (G K,)
    ms = (starts[:, None] + torch.arange(K)).reshape(-1)
    tol = theta.numel() * (4.0 * (int(starts.max()) + K) + 4.0 * theta.numel() + 64.0) * _EPS
    keep = (values < tol) & (ms <= hi) & (ms >= 0)
    cand, cand_values = ms[keep], values[keep]
    order = torch.argsort(cand) if smallest else torch.argsort(cand_values)
    for part in torch.split(cand[order], 16):  # the first candidate is nearly always negative: verify lazily
        neg = torch.nonzero(_bias(part, theta) < 0)
        if neg.numel():
            return int(part[neg[0, 0]])
    return None


def _first_negative(theta: torch.Tensor, hi: int, lo: int = 0, *, smallest: bool = True) -> int | None:
    """The smallest m in lo..hi with B_m < 0 for one base (theta: (d/2,)), or None.

    With ``smallest=False``: the most negative B_m of the first stretch that has one (a deeper witness fails more
    neighbouring bases). Early exit: the stretch scanned per matrix product doubles from 4096 positions up to 2^18.
    """
    if hi - lo < _DIRECT_MAX:
        ms = torch.arange(lo, hi + 1)
        values = _bias(ms, theta)
        if smallest:
            neg = torch.nonzero(values < 0)
            return int(ms[neg[0, 0]]) if neg.numel() else None
        k = int(torch.argmin(values))
        return int(ms[k]) if values[k] < 0 else None
    table = _offset_table(theta, _TABLE)
    s, chunks = lo, _DIRECT_MAX // _TABLE
    while s <= hi:
        m = _negative_in_windows(theta, s + _TABLE * torch.arange(chunks), table, hi, smallest=smallest)
        if m is not None:
            return m
        s, chunks = s + chunks * _TABLE, min(2 * chunks, _MAX_ROWS // _TABLE)
    return None


def max_context_length(base: float, head_dim: int = 128, *, limit: int = 2**31) -> int:
    """The largest context length L with B_m >= 0 at every distance m = 0..L-1: the first m with B_m < 0.

    B_m keeps a negative value somewhere for every base (it is almost periodic with mean 0 and B_0 = d/2 > 0), so
    the answer is finite; the scan stops at ``limit`` and raises ValueError if B_m >= 0 all the way there.
    """
    d = _head_dim(head_dim)
    b = _checks.finite_number("base", base, above=1)
    limit = _checks.positive_int("limit", limit)
    m = _first_negative(_thetas(torch.tensor(b), d), limit)
    if m is None:
        raise ValueError(f"B_m >= 0 for every m up to limit={limit} (base={b:g}, head_dim={d}): pass a larger limit")
    return m


def first_negative_bias(inv_freq, *, limit: int) -> int | None:
    """The first distance m in 0..limit with B_m = sum_i cos(m theta_i) < 0 for any frequencies, or None.

    :func:`max_context_length` asks this of a geometric ladder; a scaled config's frequencies (YaRN, Llama 3,
    LongRoPE...) are not one, so the doctor asks it of ``inv_freq`` itself (any 1-D array-like of finite numbers >= 0;
    a zero frequency is an unrotated pair, which adds cos 0 = 1 at every distance).
    """
    limit = _checks.positive_int("limit", limit)
    try:
        theta = torch.as_tensor(np.asarray(inv_freq, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"inv_freq must be a 1-D array-like of finite numbers >= 0, got {inv_freq!r}") from None
    if theta.ndim != 1 or theta.numel() == 0 or not bool(torch.isfinite(theta).all()) or bool((theta < 0).any()):
        raise ValueError(
            f"inv_freq must be a non-empty 1-D array-like of finite numbers >= 0, got shape {tuple(theta.shape)}"
        )
    return _first_negative(theta, limit)


def _smallest_feasible(grid: np.ndarray, L: int, d: int, witnesses: list[int]) -> int | None:
    """Index of the smallest base of ``grid`` (ascending) with B_m >= 0 on m = 0..L, or None if there is none.

    Exactly "test each grid point in order, return the first that passes", made fast by *witnesses*: a base fails
    as soon as one m <= L has B_m < 0, and neighbouring bases mostly fail at the same m (or one a few positions away),
    so every m found is tried on the following bases before any of them is scanned. A base is only ever declared
    failing on a directly evaluated B_m < 0, and passing after a complete scan of 0..L, so the shortcut changes the
    cost, never the answer. ``witnesses`` (m values found so far, most recent last) is extended in place.
    """
    for start in range(0, grid.size, _BLOCK):
        bases = torch.from_numpy(grid[start : start + _BLOCK])
        index = torch.nonzero(bases > 1)[:, 0]  # grid points <= 1 are not RoPE bases (theta would not decay)
        theta_block = _thetas(bases[index], d)
        for sub in range(0, index.numel(), _SUB):
            theta = theta_block[sub : sub + _SUB]
            alive = torch.arange(theta.shape[0])
            for w in reversed(witnesses[-_RECENT:]):
                if not alive.numel():
                    break
                alive = alive[_bias(torch.tensor(w), theta[alive]) >= 0]
            while alive.numel():
                j, rest = alive[0], alive[1:]
                # before scanning base j: the positions around the latest witnesses (cheap, and usually enough)
                near = torch.tensor(sorted({max(0, w - _WINDOW // 2) for w in witnesses[-_NEAR:]}), dtype=torch.long)
                m = None
                if near.numel():
                    m = _negative_in_windows(theta[j], near, _offset_table(theta[j], _WINDOW), L, smallest=False)
                if m is None:
                    # any m <= L will do: look from the latest witness on first (this base's first negative is
                    # usually a little beyond its neighbour's), then below it
                    anchor = min(witnesses[-1], L) if witnesses else 0
                    m = _first_negative(theta[j], L, anchor, smallest=False)
                    if m is None and anchor > 0:
                        m = _first_negative(theta[j], anchor - 1, smallest=False)
                    if m is None:
                        return start + int(index[sub + j])  # every smaller grid point has failed
                witnesses.append(m)
                alive = rest[_bias(torch.tensor(m), theta[rest]) >= 0]
    return None


@dataclass(frozen=True)
class BaseSearch:
    """Result of Su's refining grid search (:func:`base_search`).

    base: the smallest point of the last grid with B_m >= 0 on m = 0..L-1 (so base >= the true infimum).
    step: that grid's spacing; every positive multiple of ``step`` below ``base`` (and above 1) fails.
    levels: the base after each level (levels[0] is the start, 1000 L unless it had to be raised).
    """

    base: float
    step: float
    levels: tuple[float, ...]


def base_search(context_length: int, head_dim: int = 128, *, levels: int = 5, start: float = 1000.0) -> BaseSearch:
    """Su's refining grid search for the smallest base with B_m >= 0 on m = 0..L-1 (https://kexue.fm/archives/10122).

    Start from B = start * L (Su: 1000 L, feasible for d = 128 up to L = 10^6; if it is not feasible, as for small
    head dims, B is multiplied by 10 until it is, at most 12 times, else ValueError). For k = 1..levels, the grid
    ``np.linspace(0, 1, 10**k + 1)[1:] * B`` (Su's own expression, so the grid points are the same floats) is tested
    in increasing order and B becomes its smallest point that satisfies the condition (B itself does, so one always
    exists). Grid points <= 1 are skipped.

    What it guarantees (exactly, up to the float64 rounding of B_m): the returned base b = j h satisfies the
    condition, and every multiple i h, 1 <= i < j (with i h > 1), fails it, where h = B_{levels-1} / 10^levels is the
    last grid's step (``BaseSearch.step``; relative to b about 1e-5 for 5 levels). What it does not: a feasible base
    between two grid points below b (B_m >= 0 holds on a union of intervals of b; one shorter than h can be missed
    entirely), so b can exceed the true infimum b* = inf{b : condition holds} by more than h; b >= b* always.

    Each grid is tested without skipping a point; :func:`_smallest_feasible` only makes the failing points cheap to
    establish. L = 1024 x 2^n reproduces Su's d = 128 row at two digits except 512k (5.94e7 against his 5.8e7; see
    notebook 07). The result depends on the grid, not only on b*: starting from 1000 (L - 1) instead moves that
    entry to 5.85e7.
    """
    L = _checks.positive_int("context_length", context_length)
    d = _head_dim(head_dim)
    levels = _checks.positive_int("levels", levels)
    hi = L - 1  # the largest distance in a context of L tokens
    B = _checks.finite_number("start", start, above=0) * L
    witnesses: list[int] = []
    for _ in range(12):
        if B > 1 and _first_negative(_thetas(torch.tensor(B), d), hi) is None:
            break
        B *= 10.0
    else:
        raise ValueError(
            f"no base up to {B / 10:.3g} keeps B_m >= 0 on m = 0..{hi} with head_dim={d}: context_length={L} is out of "
            f"reach for this head_dim (head_dim=2 has B_2 = cos 2 < 0 for every base: L <= 2 only)"
        )
    history, step = [B], B
    for k in range(1, levels + 1):
        grid = np.linspace(0.0, 1.0, 10**k + 1)[1:] * B
        step = B / 10**k
        found = _smallest_feasible(grid, hi, d, witnesses)
        assert found is not None  # the last grid point is B itself, which passes
        B = float(grid[found])
        history.append(B)
    return BaseSearch(base=B, step=step, levels=tuple(history))


def base_lower_bound(context_length: int, head_dim: int = 128, *, levels: int = 5, start: float = 1000.0) -> float:
    """The smallest base with B_m >= 0 at every distance m = 0..context_length-1, by Su's refining grid search.

    ``base_search(...).base``; see :func:`base_search` for the resolution it guarantees (the last grid's step, about
    1e-5 of the result) and what it does not (a feasible base between grid points).
    """
    return base_search(context_length, head_dim, levels=levels, start=start).base


def base_lower_bound_on_grid(context_length: int, bases, head_dim: int = 128) -> float | None:
    """The smallest of the given ``bases`` (any order) with B_m >= 0 on m = 0..L-1, or None if none has it.

    The "inverse" method the paper's authors described to Su: take candidate bases, compute how long each one keeps
    B_m >= 0, keep the smallest that reaches L. Its answer depends on the candidates: a coarse set misses the
    narrow feasible intervals Su's finer grid finds.
    """
    L = _checks.positive_int("context_length", context_length)
    d = _head_dim(head_dim)
    values = sorted({_checks.finite_number("bases", b, above=1) for b in np.ravel(np.asarray(bases, dtype=object))})
    if not values:
        raise ValueError("bases must hold at least one number > 1, got none")
    found = _smallest_feasible(np.asarray(values, dtype=np.float64), L - 1, d, [])
    return None if found is None else values[found]
