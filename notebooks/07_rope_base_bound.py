# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · The base of RoPE bounds the context length
#
# **Claim reproduced.** If a token similar to the query ($k^* = q + \varepsilon$) is to get more attention than a
# random one *on average* at every relative distance $m$ up to the context length, then
# $B_m = \sum_{i=0}^{d/2-1}\cos(m\theta_i) \ge 0$ for $m = 0, \dots, L-1$, with $\theta_i = b^{-2i/d}$. That fails
# for a small base: each context length $L$ has a lower bound $b^*(L)$ on the base, growing faster than $L$
# over $1k$–$512k$ at $d = 128$ (the paper fits $L^{1.63}$ to 1k–1M), and in the $d\to\infty$ limit $b \gtrsim L/x_0$,
# $x_0 = 0.6165$ the first zero of $\mathrm{Ci}$. Partial rotation (half the pairs unrotated) removes the bound.
#
# Sources: Men, Xu, Wang, Zhang, Lin, Han, Chen, *Base of RoPE Bounds Context Length*, arXiv:2405.14591 (Table 1:
# bases of popular models; Table 2: the lower bound by context length); Su Jianlin, "Transformer升级之路：18、RoPE
# 的底数选择原则" (<https://kexue.fm/archives/10122>): the derivation with a mean, the refining grid search, his
# recomputed row, the $\mathrm{Ci}$ asymptotics and the partial-rotation remark.
#
# Notation: $\theta_i = b^{-2i/d}$, base $b$, head (rotary) dim $d$, context length $L$, relative distance $m$.
# *Remarks marked **(ours)** are this companion's, not the sources'.*

# %% tags=["parameters"]
profile: str = "smoke"  # "smoke" (CPU, minutes, what is committed) or "full" (one GPU)
device: str = "auto"  # "auto" -> cuda when present, else cpu; or "cpu", "cuda", "cuda:N"
seed: int = 0  # every random draw in the notebook derives from it

# %%
import math

import matplotlib.pyplot as plt
import mpmath
import numpy as np
import sympy as sp
import torch

import rope_lib
from rope_lib.base_bound import (
    base_lower_bound,
    base_lower_bound_on_grid,
    base_search,
    max_context_length,
    rope_bias_sum,
)
from rope_lib.companion.plotting import savefig, use_style
from rope_lib.companion.report import setup_notebook

setup_notebook(profile, device, seed)  # analytic notebook: float64 on the CPU whatever the device
torch.set_num_threads(1)  # the searches are many small products: extra threads only add overhead

D = 128  # Llama's head dim, the paper's and Su's setting
# the d = 128 table: every length of the paper in the full profile; in smoke up to 128k (the notebook's budget is
# 6 minutes: smoke profile, 2 cores), which already holds both kinds of disagreement with the paper (2k and 128k) -
# the longer rows take ~30 s more
TABLE_K = (1, 2, 4, 8, 16, 32, 64, 128) + (() if profile == "smoke" else (256, 512, 1024))

# %% [markdown]
# ## 1. Where $B_m$ comes from
#
# Su's version of the paper's argument: the components of $q$ are i.i.d. with mean $\mu$ and variance $\sigma^2$, a
# random key $k$ is independent of $q$ with the same distribution, a similar key is $k^* = q + \varepsilon$ with
# $\varepsilon$ independent, zero mean. Then
# $\mathbb{E}[q^\top R_m k^*] - \mathbb{E}[q^\top R_m k] = 2\sigma^2 \sum_i \cos(m\theta_i) = 2\sigma^2 B_m$.
# First with explicit rotation matrices for $d = 2, 4, 6$, the expectation taken monomial by monomial from the
# moment rules (independent factors; $\mathbb{E}[x] = \mu$, $\mathbb{E}[x^2] = \mu^2 + \sigma^2$ for $q$ and $k$;
# $\mathbb{E}[\varepsilon_j] = 0$):

# %% tags=["derivation"]
mu, sigma, tau, m_s = sp.symbols("mu sigma tau m", real=True)


def expectation(expr, q_syms, k_syms, e_syms):
    """E[expr] for a polynomial in independent q_j, k_j (mean mu, variance sigma^2) and eps_j (mean 0, var tau^2)."""
    moments = {}
    for x in (*q_syms, *k_syms):
        moments[x] = {1: mu, 2: mu**2 + sigma**2}
    for x in e_syms:
        moments[x] = {1: 0, 2: tau**2}
    poly = sp.Poly(sp.expand(expr), *moments)
    total = 0
    for powers, coeff in poly.terms():
        term = coeff
        for x, p in zip(moments, powers):
            if p:
                term *= moments[x][p]
        total += term
    return sp.expand(total)


def rotation(d, thetas):
    blocks = [sp.Matrix([[sp.cos(m_s * t), -sp.sin(m_s * t)], [sp.sin(m_s * t), sp.cos(m_s * t)]]) for t in thetas]
    return sp.diag(*blocks)


for d_small in (2, 4, 6):
    th = sp.symbols(f"theta0:{d_small // 2}", positive=True)
    qs, ks, es = (sp.symbols(f"{n}0:{d_small}", real=True) for n in ("q", "k", "e"))
    q, k, e = sp.Matrix(qs), sp.Matrix(ks), sp.Matrix(es)
    R = rotation(d_small, th)
    gap = expectation((q.T * R * (q + e))[0] - (q.T * R * k)[0], qs, ks, es)
    assert sp.simplify(gap - 2 * sigma**2 * sum(sp.cos(m_s * t) for t in th)) == 0, (d_small, gap)
    assert not gap.has(mu) and not gap.has(tau)  # the mean and the perturbation's size drop out
gap

# %% [markdown]
# For any $d$: the gap is $\mathbb{E}[q^\top A q] - \mathbb{E}[q]^\top A\,\mathbb{E}[k] = \sigma^2 \operatorname{tr} A$
# for every matrix $A$ (the $\mu^2$ terms cancel, the diagonal keeps $\sigma^2$), and the trace of RoPE's
# block-diagonal $R_m$ is the sum of its $2\times 2$ blocks' traces, $2\cos(m\theta_i)$ each (by construction of
# the symbolic blocks; checked against the matrices `rope_lib` builds in the next cell):

# %% tags=["derivation"]
qs, ks = sp.symbols("q0:4", real=True), sp.symbols("k0:4", real=True)
A = sp.Matrix(4, 4, sp.symbols("a0:16", real=True))  # a generic matrix
q, k = sp.Matrix(qs), sp.Matrix(ks)
lhs = expectation((q.T * A * q)[0], qs, ks, ()) - expectation((q.T * A * k)[0], qs, ks, ())
assert sp.simplify(lhs - sigma**2 * A.trace()) == 0
sp.Eq(sp.Symbol("E gap"), 2 * sigma**2 * sp.Symbol("B_m"))

# %% [markdown]
# `rope_bias_sum(m, b, d)` is $B_m$ in float64; against the trace of the rotation matrices `rope_lib` builds
# (`apply_rope` on the identity), for a few positions:

# %%
eye = torch.eye(D, dtype=torch.float64)
for base in (1e4, 5e5):
    for m in (0, 1, 100, 4_097, 1_000_003):
        R_cols = rope_lib.apply_rope(eye, torch.full((D,), m), rope_lib.inv_freq(D, base))  # row j = R_m e_j
        assert math.isclose(float(R_cols.diagonal().sum()), 2 * rope_bias_sum(m, base, D), abs_tol=1e-9)

# %% [markdown]
# ## 2. Su's continuous approximation and the $O(L)$ scaling
#
# Replacing the sum by an integral over $t = 2i/d$, $B_m \approx \frac d2\int_0^1 \cos(m b^{-t})\,dt$, and the
# substitution $u = m b^{-t}$ gives $\frac d2\,\frac{\mathrm{Ci}(m) - \mathrm{Ci}(m/b)}{\ln b}$. Checked by
# differentiating the antiderivative:

# %% tags=["derivation"]
t, u, bb, mm, x = sp.symbols("t u b m x", positive=True)
F = -sp.Ci(mm * bb ** (-t)) / sp.log(bb)  # candidate antiderivative of cos(m b^-t) in t
assert sp.simplify(sp.diff(F, t) - sp.cos(mm * bb ** (-t))) == 0
closed = (sp.Ci(mm) - sp.Ci(mm / bb)) / sp.log(bb)
# the same through the substitution: dt = -du / (u ln b), limits m -> m/b
assert sp.simplify(sp.integrate(sp.cos(u) / (u * sp.log(bb)), (u, mm / bb, mm)) - closed) == 0
# and against the integral evaluated numerically (mpmath quadrature in t), at points where the sum's terms oscillate
# (the integrand turns about m / (2 pi) times over t in [0, 1]: enough quadrature intervals for each)
for m_val, b_val, pieces in ((3, 10, 64), (50, 1e4, 64), (1_000, 1e4, 256), (5_000, 1e6, 512)):
    quad = mpmath.quad(lambda t_: mpmath.cos(m_val * mpmath.mpf(b_val) ** (-t_)), mpmath.linspace(0, 1, pieces + 1))
    assert abs(float(closed.subs({mm: m_val, bb: b_val}).evalf(30)) - float(quad)) < 1e-10, (m_val, b_val)
sp.Eq(sp.Symbol("B_m"), D / 2 * closed)

# %%
x0 = float(mpmath.findroot(mpmath.ci, 0.6))
assert abs(x0 - 0.6165) < 5e-5 and abs(float(mpmath.ci(x0))) < 1e-14
xs = np.linspace(1e-3, math.pi / 2, 400)
ci_vals = np.array([float(mpmath.ci(v)) for v in xs])
assert (ci_vals[xs < x0] < 0).all() and (ci_vals[xs > x0] > 0).all()  # the only sign change below pi/2


def bias_sum_continuous(m, base, d=D):
    """Su's continuous approximation of B_m: (d/2) (Ci(m) - Ci(m/b)) / ln b."""
    return d / 2 * float(mpmath.ci(m) - mpmath.ci(m / base)) / math.log(base)


approx_rows = []
for base in (1e4, 1e6):
    for m in (1, 10, 100, 1_000, 10_000):
        approx_rows.append((base, m, rope_bias_sum(m, base, D), bias_sum_continuous(m, base)))
worst_gap = max(abs(exact - approx) for _, _, exact, approx in approx_rows)
assert worst_gap < 3, worst_gap

# %% tags=["nbval-check-output"]
print(f"first zero of Ci: x0 = {x0:.4f};  L / x0 = {1 / x0:.3f} L")
print(f"{'base':>7s} {'m':>6s} {'B_m exact':>10s} {'(d/2)(Ci(m)-Ci(m/b))/ln b':>27s}")
for base, m, exact, approx in approx_rows:
    print(f"{base:7.0e} {m:6d} {exact:10.3f} {approx:27.3f}")
print(f"largest |exact - approximation| above: {worst_gap:.2f} (of d/2 = {D // 2})")

# %% [markdown]
# At $m \ge 1$, $|\mathrm{Ci}(m)| \le 1/2$ is the small term, so $B_m \ge 0$ asks roughly $\mathrm{Ci}(m/b) \le 0$,
# i.e. $m/b \le x_0$ for every $m < L$: $b \gtrsim L/x_0 \approx 1.62\,L$. The approximation tracks the exact
# sum within 3 (of $B_0 = 64$) at these points; it is the $d\to\infty$ limit, whose oscillations are smoother than
# the finite sum's, so the exact bounds below lie above $L/x_0$.
#
# **Partial rotation.** If only half the pairs rotate (Su's remark; partial rotation is used in practice, e.g.
# GPT-NeoX-20B rotates a quarter of each head's dimensions and MLA's heads 64 of 192), the other half has
# $\theta = 0$ and $B_m = \sum_{i<d/4} \left(1 + \cos(m b^{-4i/d})\right) \ge 0$ for every $m$ and $b$: no bound.
# Each term is a square, $1 + \cos x = 2\cos^2(x/2)$; numerically, the unrotated pairs add $d/4$ and the rotated
# ones are a $d/2$-dim RoPE with the same base (checked against the sum of squares, term by term):

# %%
assert sp.simplify(1 + sp.cos(x) - 2 * sp.cos(x / 2) ** 2) == 0
ms = np.arange(0, 200_001)
partial_min = {}
for base in (10.0, 1e4, 1e6):
    rotated = rope_bias_sum(ms, base, D // 2)  # theta_i = b^(-2i/(d/2)) = b^(-4i/d), i < d/4
    partial = rotated + D // 4  # d/4 unrotated pairs: cos(0) = 1 each
    # the same sum written as 2 sum cos^2(m theta_i / 2) with theta_i = b^(-4i/d), evaluated on its own
    squares = 2 * (np.cos(np.outer(ms[:5000], base ** (-4 * np.arange(D // 4) / D)) / 2) ** 2).sum(1)
    np.testing.assert_allclose(partial[:5000], squares, atol=1e-9)
    partial_min[base] = (partial.min(), max_context_length(base, D))
assert all(full_L < 200_001 for _, full_L in partial_min.values())  # full rotation fails inside the range

# %% tags=["nbval-check-output"]
print("half the pairs unrotated, d = 128: min of B_m over m = 0..200000   (full rotation: first m with B_m < 0)")
for base, (pmin, full_L) in partial_min.items():
    print(f"  b = {base:7.0e}: {pmin:6.3f}   ({full_L})")

# %% [markdown]
# ## 3. The table: the smallest base for each context length, $d = 128$
#
# $B_m \ge 0$ is not monotone in $b$ (a base can pass while a larger one fails), so bisection is wrong. Su's search:
# start at $B = 1000L$; for $k = 1..5$ split $[0, B]$ into $10^k$ parts and keep the smallest point that passes.
# `base_lower_bound` runs exactly that (every grid point decided; failing points are established cheaply by reusing
# the distances at which neighbouring bases fail). Its guarantee: the result passes and every multiple of the last
# grid's step below it fails; a feasible interval narrower than that step could still hide below it.
#
# "1k" is 1024 and the distances are $m = 0..L-1$, as in Su's code (`bmin(1024 * 128)`, `f(np.arange(L), b)`).

# %%
PAPER = {
    1: 4.3e3,
    2: 1.6e4,
    4: 2.7e4,
    8: 8.4e4,
    16: 3.1e5,
    32: 6.4e5,
    64: 2.1e6,
    128: 7.8e6,
    256: 3.6e7,
    512: 6.4e7,
    1024: 5.1e8,
}  # Men et al. Table 2
SU = {
    1: 4.3e3,
    2: 1.2e4,
    4: 2.7e4,
    8: 8.4e4,
    16: 2.3e5,
    32: 6.3e5,
    64: 2.1e6,
    128: 4.9e6,
    256: 2.4e7,
    512: 5.8e7,
    1024: 6.5e7,
}  # kexue.fm/archives/10122, recomputed with a finer grid


def two_significant_digits(v):
    """v rounded to the two significant digits both sources print."""
    return float(f"{v:.1e}")


searches = {length_k: base_search(1024 * length_k, D) for length_k in TABLE_K}
ours = {length_k: r.base for length_k, r in searches.items()}
NOT_REPRODUCED = {512: 5.9e7}  # ours, where it is not Su's printed value (full profile only; see below)
# Su's row, to his digits
assert all(two_significant_digits(ours[n]) == NOT_REPRODUCED.get(n, SU[n]) for n in TABLE_K)

# the inverse: each bound keeps B_m >= 0 up to L, the grid point just below it does not
for length_k, r in searches.items():
    assert max_context_length(r.base, D) >= 1024 * length_k > max_context_length(r.base - r.step, D)
    assert r.base >= 1024 * length_k / x0  # above the d -> infinity asymptote
ratios = [ours[length_k] / (1024 * length_k) for length_k in TABLE_K if length_k <= 512]
assert all(r1 < r2 for r1, r2 in zip(ratios, ratios[1:]))  # b*/L grows: faster than linear up to 512k
if 1024 in ours:
    assert ours[1024] < 1.2 * ours[512]  # ... but not to 1M

# reading "1k" as 1000: 1k would give 4.2e3, not the 4.3e3 both sources print
assert two_significant_digits(base_lower_bound(1000)) == 4.2e3

# %% [markdown]
# Where the paper differs (2k, 16k, 32k, 128k and beyond) Su's explanation (kexue.fm/archives/10122) is the search: the
# paper's numbers come from computing, for a set of bases, the longest context each keeps $B_m \ge 0$, and taking the
# smallest base reaching each $L$; a coarse set of bases misses the narrow feasible intervals. **(ours)** Testing that
# with the coarsest natural set, the two-significant-digit bases $1.0\cdot10^e, 1.1\cdot10^e, \dots, 9.9\cdot10^e$ (and
# "1k" = 1000 this time), `base_lower_bound_on_grid` returns the paper's number exactly at 1k, 2k, 4k, 8k, 64k and 128k
# — including both entries where Su's finer search went down (2k: 1.6e4, 128k: 7.8e6). It does not give the paper's 16k,
# 32k or the entries beyond 128k: the candidate set the authors used is not known, and this one explains 6 of 11.

# %%
two_digit_bases = [mantissa * 10.0 ** (e - 1) for e in range(2, 10) for mantissa in range(10, 100)]
coarse = {length_k: base_lower_bound_on_grid(1000 * length_k, two_digit_bases, D) for length_k in PAPER}
coarse_matches = [length_k for length_k in PAPER if two_significant_digits(coarse[length_k]) == PAPER[length_k]]
assert coarse_matches == [1, 2, 4, 8, 64, 128], coarse_matches


def why_they_differ(length_k):
    """The last column of the table: why ours, Su's and the paper's bound differ at L = length_k x 1024."""
    # Su's value where this profile does not compute the row
    fine = two_significant_digits(ours[length_k]) if length_k in ours else SU[length_k]
    if length_k in ours and fine != SU[length_k]:
        return "ours vs Su: not reproduced (see below)"
    if fine == PAPER[length_k]:
        return "same"
    if length_k in coarse_matches:
        return "paper: coarse set of bases (the 2-digit set gives it)"
    return "paper: another coarse search (the 2-digit set does not give it)"


# %% tags=["nbval-check-output"]
print(f"d = {D}; L = 1024 k for ours and Su's; the 2-digit column uses L = 1000 k")
print(f"{'L':>5s} {'ours':>10s} {'Su':>7s} {'paper':>7s} {'2-digit set':>11s}  {'L/x0':>7s}  where they differ")
for length_k in PAPER:
    ours_cell = f"{ours[length_k]:10.4g}" if length_k in ours else f"{'-':>10s}"
    print(
        f"{length_k:4d}k {ours_cell} {SU[length_k]:7.1e} {PAPER[length_k]:7.1e} {coarse[length_k]:11.1e}  "
        f"{1024 * length_k / x0:7.1e}  {why_they_differ(length_k)}"
    )

# %% [markdown]
# Reproduced: Su's row to the two digits he prints at every length computed here, except 512k (full profile only):
# this search gives $5.94\times10^7$ where Su prints $5.8\times10^7$. We have not found why; one untested
# candidate **(ours)** is precision, since his JAX code runs in float32 unless told otherwise, and at
# $m \approx 5\cdot10^5$ a float32 angle $m\theta_0$ is off by up to 0.03 rad. The bounds sit well above the
# $d\to\infty$ estimate $L/x_0$ and grow faster than $L$ up to 512k (Su's 1M entry, and ours, is only about 1.1
# times the 512k one). Figures: $B_m$ for a few bases, and the
# bound against $L$.

# %%
use_style()
fig, ax = plt.subplots(figsize=(7.0, 4.2))
m_plot = np.unique(np.round(np.logspace(0, 6.3, 2500)).astype(np.int64))
for base, color in ((1e4, "#0072B2"), (8.4e4, "#009E73"), (5e5, "#D55E00"), (5e6, "#CC79A7")):
    ax.plot(
        m_plot,
        rope_bias_sum(m_plot, base, D),
        color=color,
        linewidth=0.8,
        label=f"b = {base:.1e}: B_m >= 0 up to m = {max_context_length(base, D) - 1}",
    )
ax.axhline(0, color="0.3", linewidth=0.8)
ax.set_xscale("log")
ax.set_xlabel("relative distance m")
ax.set_ylabel(r"$B_m = \sum_i \cos(m\theta_i)$")
ax.set_title(f"d = {D}: the sum turns negative later for a larger base")
ax.legend(loc="lower left")
savefig(fig, "07_bias_sum", profile=profile, exact=True)
plt.show()

# %%
fig, ax = plt.subplots(figsize=(6.4, 4.4))
Ls = np.array([1024 * length_k for length_k in PAPER], dtype=float)
ax.plot(Ls, [PAPER[length_k] for length_k in PAPER], "s", color="#D55E00", label="Men et al. Table 2", markersize=6)
ax.plot(Ls, [SU[length_k] for length_k in SU], "o", color="#0072B2", label="Su (finer grid)", markersize=6, mfc="none")
ax.plot(
    [1024 * length_k for length_k in ours],
    list(ours.values()),
    "x",
    color="k",
    label="ours (Su's search)",
    markersize=6,
)
ax.plot(Ls, Ls / x0, "--", color="0.4", label=r"$L/x_0$ ($d\to\infty$)")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("context length L")
ax.set_ylabel("smallest base b with B_m >= 0 on m < L")
ax.set_title(f"d = {D}")
ax.legend(loc="upper left")
savefig(fig, "07_base_bound", profile=profile, exact=True)
plt.show()

# %% [markdown]
# ## 4. Popular models against the bound
#
# Base, context length and head dim as published (model configs on the Hugging Face Hub and the papers): the
# paper's Table 1 (Llama-7B, Llama2-7B, Llama3-8B, Mistral-7B-v0.2, Baichuan2-7B), plus Llama-3.1-8B
# (`rope_theta` 5e5, 128k through its `llama3` rope scaling from 8k), Qwen2.5-7B (`rope_theta` 1e6, 32k; head dim
# 3584/28 = 128) and Mistral-7B-v0.1 (`rope_theta` 1e4, context 8k with a 4k sliding window; Jiang et al.,
# arXiv:2310.06825, Table 1). Every one has $d = 128$. "Keeps $B_m \ge 0$ to" is `max_context_length(b)`.

# %%
MODELS = [  # (name, base, context length, note)
    ("Llama-7B", 1e4, 2048, "paper Table 1"),
    ("Llama2-7B", 1e4, 4096, "paper Table 1"),
    ("Baichuan2-7B", 1e4, 4096, "paper Table 1"),
    ("Mistral-7B-v0.1", 1e4, 8192, "config; 4k sliding window"),
    ("Llama3-8B", 5e5, 8192, "paper Table 1"),
    ("Mistral-7B-v0.2", 1e6, 32768, "paper Table 1"),
    ("Qwen2.5-7B", 1e6, 32768, "config"),
    ("Llama-3.1-8B", 5e5, 131072, "config; llama3 scaling x8"),
]
bound_for = {context: ours[context // 1024] for _, _, context, _ in MODELS}  # every context here is a row of the table
nonnegative_to_by_base = {base: max_context_length(base, D) for _, base, _, _ in MODELS}
above = {name: base >= bound_for[context] for name, base, context, _ in MODELS}
holds = {name: nonnegative_to_by_base[base] >= context for name, base, context, _ in MODELS}
assert [n for n, ok in above.items() if not ok] == [
    "Llama-7B",
    "Llama2-7B",
    "Baichuan2-7B",
    "Mistral-7B-v0.1",
    "Llama-3.1-8B",
]
assert [n for n, ok in holds.items() if ok] == ["Llama3-8B"]  # B_m >= 0 on the whole context: only Llama 3
assert (
    above["Mistral-7B-v0.2"] and nonnegative_to_by_base[1e6] == 27115 < 32768
)  # above the bound, yet B_m < 0 at m = 27115
assert round(5e5 / bound_for[8192]) == 6 and nonnegative_to_by_base[5e5] == 18438

# %% tags=["nbval-check-output"]
print(f"{'model':16s} {'base':>7s} {'L':>7s} {'bound':>8s} {'base':>6s} {'B_m >= 0':>9s} {'on m < L':>9s}  source")
print(f"{'':16s} {'':7s} {'':7s} {'':8s} {'vs':>6s} {'for m <':>9s}")
for name, base, context, note in MODELS:
    side, ok = "above" if above[name] else "below", str(holds[name])
    print(
        f"{name:16s} {base:7.0e} {context:7d} {bound_for[context]:8.2e} {side:>6s} "
        f"{nonnegative_to_by_base[base]:9d} {ok:>9s}  {note}"
    )

# %% [markdown]
# The base-1e4 generation sits below the bound at its own training length (the paper's point: such models can
# still reach low perplexity, but retrieval over the whole window suffers); Llama 3's 5e5 at 8k is six times the
# bound (Su finds it generous) and keeps $B_m \ge 0$ to $m = 18437$. **(ours)** Being above the bound is not the
# same as satisfying the condition, because the condition is not monotone in $b$: Mistral-7B-v0.2's and
# Qwen2.5's $10^6$ is above the 32k bound ($6.3\times10^5$), yet $B_{27115} < 0$ — the smallest base is a bound, not
# a threshold. Llama-3.1's 128k rests on its rope scaling, not on its base.
#
# ### The small LM of this companion's experiments
#
# The smoke model (`rope_lib.companion.experiments.harness`, `PROFILE_SETTINGS["smoke"]["model"]`) has head dim 32 and
# trains at $L = 64$ with base 1e4. Its bound, and how far a few bases keep $B_m \ge 0$ at $d = 32$. **(ours)** The
# model's base is 30 times its bound and keeps $B_m \ge 0$ beyond $4L$ but not to $8L$: the longer test lengths
# of the extrapolation experiments reach distances where $B_m < 0$.

# %%
from rope_lib.companion.experiments.harness import PROFILE_SETTINGS  # noqa: E402

SMOKE = PROFILE_SETTINGS["smoke"]["model"]
d_lm, L_lm, b_lm = SMOKE["head_dim"], SMOKE["train_length"], SMOKE["rope_base"]
smoke_search = base_search(L_lm, d_lm)
lm_keeps = {base: max_context_length(base, d_lm) for base in (10.0, 30.0, 100.0, 300.0, 1e3, 1e4)}
assert (
    max_context_length(smoke_search.base, d_lm)
    >= L_lm
    > max_context_length(smoke_search.base - smoke_search.step, d_lm)
)
assert round(b_lm / smoke_search.base, -1) == 30 and 4 * L_lm < lm_keeps[b_lm] < 8 * L_lm  # 1e4 covers 4L, not 8L

# %% tags=["nbval-check-output"]
print(f"smoke model: head_dim {d_lm}, L = {L_lm}, base {b_lm:.0e}")
print(f"base_lower_bound({L_lm}, {d_lm}) = {smoke_search.base:.2f}   (last grid step {smoke_search.step:.1e})")
for base, keep in lm_keeps.items():
    print(f"  b = {base:7.0e}: B_m >= 0 for m < {keep}")

# %% [markdown]
# ## 5. Retrieval against the base, trained: the paper's claim at our scale
#
# The claim is about retrieval: below the bound a model keeps a good loss but loses long-range retrieval. We test it
# with passkey retrieval (`rope_lib.companion.data.make_passkey_set`, `rope_lib.companion.evaluate.passkey_hits`): $L$
# bytes of test text with one key byte (one of 16 symbols that never occur in the text) inserted $m$ bytes before a
# question byte at the end; the answer is the key, greedy, exact (chance 1/16). Per training seed and per base
# (`python -m rope_lib.companion.experiments base_bound`; `rope_lib.companion.experiments.base_bound`):
#
# * a **text model**: notebook 04's plain model with only the base changed (same data, steps, schedule; the base-1e4
#   one *is* notebook 04's). Its loss at $L$ is the "perplexity" side of the claim. It never saw a key.
# * a **retrieval model**: the text model fine-tuned for 160 steps on passkey rows (the filler is still text, so it
#   keeps modelling language), with a recipe found on these models: the embedding rows of the question and key bytes
#   re-drawn at random (pre-training leaves the 17 never-seen bytes nearly parallel - their mean pairwise cosine is
#   printed below - so no head can tell one key from another), the answer byte's loss weighted 10x, and a
#   curriculum on the key's distance ($m \le 4$, then $\le 16$, then all). Its passkey accuracy at every
#   $m = 1..L-2$ is the retrieval side.
#
# Bases: 10, which keeps $B_m \ge 0$ only for $m < 5$ (30 times below the bound 315 of section 4), and 1e4 (30 times
# above; $B_m \ge 0$ to $m = 473$, beyond $7L$).

# %%
from IPython.display import display  # noqa: E402

from rope_lib.companion.evaluate import bootstrap_difference  # noqa: E402
from rope_lib.companion.experiments import base_bound as base_bound_experiment  # noqa: E402
from rope_lib.companion.experiments import harness, run_experiment  # noqa: E402
from rope_lib.companion.report import Results, fmt_seeds, markdown_table  # noqa: E402
from rope_lib.companion.runtime import repo_root  # noqa: E402
from rope_lib.companion.verdicts import NOT_DECIDED, ClaimBook, seed_interval, slug  # noqa: E402

results = Results(run_experiment("base_bound", profile=profile, device=device, seed=seed))  # the profile's threads
claims = ClaimBook("07", profile)  # every claim of this section is decided and recorded through it
bound_cfg = results.config["base_bound"]
BASES = [base_bound_experiment.base_label(b) for b in bound_cfg["bases"]]
LOW, HIGH = BASES[0], BASES[-1]  # the lowest base (below the bound) and 1e4 (above)
L_LM, D_LM = results.train_length, bound_cfg["head_dim"]  # the smoke model's in smoke (section 4); larger elsewhere
DIST = np.array(results.eval["passkey"]["distances"])
FAR = DIST >= L_LM // 2  # "long range": the key in the first half of the window
assert results.seeds == harness.training_seeds(profile, seed) and list(DIST) == list(range(1, L_LM - 1))
assert bound_cfg["bound"] == base_lower_bound(L_LM, D_LM) and float(LOW) < bound_cfg["bound"] < float(HIGH)


def passkey_correct(base: str, kind: str) -> np.ndarray:
    """Passkey outcomes (1: key retrieved) of the text or retrieval model, shape (seeds, distances, samples); the same
    samples per seed."""
    return np.array([[run["bases"][base][kind]["passkey"][str(m)] for m in DIST] for run in results.runs])


def text_loss(base: str, kind: str) -> np.ndarray:
    """Loss (nats/byte) at L of the text or retrieval model on each seed's test windows, shape (seeds, windows)."""
    return np.array([run["bases"][base][kind]["loss_per_sample"] for run in results.runs])


def loss_difference(a: np.ndarray, b: np.ndarray) -> dict:
    """a - b for two (seeds, windows) arrays of per-window loss, paired window by window and bootstrapped over seeds
    and the test file of each window (as Rows.difference, which this results file has no rows for)."""
    return bootstrap_difference(a, b, groups=np.array(results.files), seed=results.seed)


def passkey_difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired over each seed's passkey samples (each from its own test file), bootstrapped over seeds and samples."""
    return bootstrap_difference(a, b, seed=results.seed)


table = []
for base in BASES:
    nonnegative_to = results.runs[0]["bases"][base]["keeps_bias_sum_nonnegative_to"]
    retrieval_correct = passkey_correct(base, "retrieval")
    table.append(
        [
            base,
            f"m < {nonnegative_to}",
            fmt_seeds(text_loss(base, "text"), 3),
            fmt_seeds(text_loss(base, "retrieval"), 3),
            fmt_seeds(passkey_correct(base, "text"), 3),
            fmt_seeds(retrieval_correct[:, DIST <= L_LM // 4], 3),
            fmt_seeds(retrieval_correct[:, FAR], 3),
        ]
    )
print(
    f"L = {L_LM}, d = {D_LM}, bound {bound_cfg['bound']:.0f}; mean ± sd over {len(results.seeds)} seeds "
    f"(passkey: {retrieval_correct.shape[-1]} samples per distance and seed)"
)
cosines = {
    (base, kind): [run["bases"][base][kind]["passkey_rows_cosine"] for run in results.runs]
    for base in BASES
    for kind in ("text", "retrieval")
}
for (base, kind), by_seed in cosines.items():
    print(
        f"base {base}, {kind} model: mean pairwise cosine of the 17 never-seen bytes' embedding rows "
        f"{', '.join(f'{c:.3f}' for c in by_seed)} (per seed)"
    )
display(
    markdown_table(
        [
            "base",
            "B_m >= 0 for",
            "loss at L: text model",
            "retrieval model",
            "passkey: text model",
            "retrieval, m <= L/4",
            f"retrieval, m >= {L_LM // 2}",
        ],
        table,
    )
)

# %%
fig, ax = plt.subplots(figsize=(7.0, 4.0))
for base, color in zip(BASES, ("#D55E00", "#0072B2", "#009E73", "#CC79A7")):
    acc = passkey_correct(base, "retrieval").mean(-1)  # (seeds, distances)
    for row in acc:
        ax.plot(DIST, row, color=color, linewidth=0.6, alpha=0.45)
    nonnegative_to = results.runs[0]["bases"][base]["keeps_bias_sum_nonnegative_to"]
    ax.plot(DIST, acc.mean(0), color=color, linewidth=1.6, label=f"b = {base} (B_m >= 0 for m < {nonnegative_to})")
    if nonnegative_to < DIST[-1]:
        ax.axvline(nonnegative_to, color=color, linestyle=":", linewidth=1.0)
ax.axhline(1 / 16, color="0.4", linestyle="--", linewidth=0.8, label="chance (1/16)")
ax.set_ylim(-0.02, 1.05)
ax.set_xlabel("key distance m (bytes before the question)")
ax.set_ylabel("passkey accuracy (retrieval model)")
ax.set_title(f"L = {L_LM}, d = {D_LM}: seeds thin, mean thick")
ax.legend(loc="lower left")
savefig(fig, "07_passkey_by_base", profile=profile, exact=False)
plt.show()

# %% [markdown]
# **Claim 1 (the paper): below the bound the loss stays close to the best base's.** The paper gives no number for
# "close"; we print the text models' gap (base 10 minus 1e4) and decide it against two margins of our choosing, 2%
# and 5% in perplexity ($\ln 1.02$ and $\ln 1.05$ nats/byte), each as "gap < margin". Every claim here is decided on
# the training-seed level: one gap per seed, and the Student-t 95% interval over seeds gives the tier (reproduced,
# consistent, not reproduced, reversed); the bootstrap interval over seeds and test files is printed beside it.
#
# **Claim 2 (the paper): below the bound long-range retrieval falls.** Retrieval model at 1e4 minus at the low base,
# passkey accuracy at the distances $m \ge L/2$: its sign, and whether the fall reaches 5 points (our margin: one
# miss in twenty; the paper's falls are of a different order). A fall that is the paper's is a *long-range* one: we
# also decide the fall at short range ($m \le L/4$) and the long-range fall minus the short-range one, sample by
# sample (the same texts at every distance).
#
# **(ours) Claim 3: learning retrieval costs more text loss below the bound.** The retrieval model's text loss minus
# its text model's, at the low base minus at 1e4 (observed $> 0$).

# %%
RETRIEVAL_MARGIN = 0.05  # accuracy: a fall of at least 5 points counts as "retrieval falls"
loss_low_high = loss_difference(text_loss(LOW, "text"), text_loss(HIGH, "text"))
margins = {"2%": math.log(1.02), "5%": math.log(1.05)}  # perplexity ratio -> nats/byte
far_gap = passkey_difference(
    passkey_correct(HIGH, "retrieval")[:, FAR].mean(1), passkey_correct(LOW, "retrieval")[:, FAR].mean(1)
)
far_acc = {base: 100 * passkey_correct(base, "retrieval")[:, FAR].mean() for base in (LOW, HIGH)}
NEAR = DIST <= L_LM // 4  # short range: where a fall would not be the long-range one the paper describes
near_gap = passkey_difference(
    passkey_correct(HIGH, "retrieval")[:, NEAR].mean(1), passkey_correct(LOW, "retrieval")[:, NEAR].mean(1)
)
# the fall at long range beyond the one at short range, sample by sample (the same texts at every distance)
fall_by_sample = {
    name: passkey_correct(HIGH, "retrieval")[:, mask].mean(1) - passkey_correct(LOW, "retrieval")[:, mask].mean(1)
    for name, mask in (("far", FAR), ("near", NEAR))
}
far_beyond_near = passkey_difference(fall_by_sample["far"], fall_by_sample["near"])
cost_gap = loss_difference(
    text_loss(LOW, "retrieval") - text_loss(LOW, "text"), text_loss(HIGH, "retrieval") - text_loss(HIGH, "text")
)
LOSS_QUANTITY = "text loss gap at L (nats/byte)"
SOURCE = "Men et al., arXiv:2405.14591 (the paper)"
v_within5 = claims.decide(
    "07.loss-within-5pct",
    loss_low_high,
    "<",
    threshold=margins["5%"],
    claim=f"1. text loss at L, base {LOW} - base {HIGH}, within 5% perplexity",
    source=SOURCE,
    quantity=LOSS_QUANTITY,
    stated="consistent",
)
v_within2 = claims.decide(
    "07.loss-within-2pct",
    loss_low_high,
    "<",
    threshold=margins["2%"],
    claim=f"1. text loss at L, base {LOW} - base {HIGH}, within 2% perplexity",
    source=SOURCE,
    quantity=LOSS_QUANTITY,
    stated="not reproduced",
)
print(
    f"2. passkey at m >= {L_LM // 2} (retrieval models): base {HIGH} {far_acc[HIGH]:.1f}%, "
    f"base {LOW} {far_acc[LOW]:.1f}%"
)
v_far_sign = claims.decide(
    "07.far-retrieval-falls",
    far_gap,
    ">",
    claim=f"2. passkey at m >= {L_LM // 2}, base {HIGH} - base {LOW}, falls",
    source=SOURCE,
    quantity="passkey accuracy gap (fraction)",
    stated="consistent",
)
v_far_fall = claims.decide(
    "07.far-retrieval-falls-5pt",
    far_gap,
    ">",
    threshold=RETRIEVAL_MARGIN,
    claim=f"2. passkey at m >= {L_LM // 2}, base {HIGH} - base {LOW}, falls by >= 5 points",
    source=SOURCE,
    quantity="passkey accuracy gap (fraction)",
    stated="reversed",
)
v_near_sign = claims.decide(
    "07.near-retrieval-falls",
    near_gap,
    ">",
    claim=f"2. passkey at m <= {L_LM // 4}, base {HIGH} - base {LOW}, falls",
    source="ours",
    quantity="passkey accuracy gap (fraction)",
    stated="not reproduced",
)
v_far_beyond_near = claims.decide(
    "07.far-fall-beyond-near-fall",
    far_beyond_near,
    ">",
    claim=f"2. the fall (base {HIGH} - base {LOW}) at m >= {L_LM // 2} minus the fall at m <= {L_LM // 4}",
    source=SOURCE,
    quantity="passkey accuracy gap (fraction)",
    stated="consistent",
)
v_cost = claims.decide(
    "07.retrieval-cost-below-bound",
    cost_gap,
    ">",
    claim=f"3. text-loss cost of retrieval training, base {LOW} - base {HIGH}",
    source="ours",
    quantity="loss change (nats/byte)",
    stated="reproduced",
)

# %% [markdown]
# **Claim 1: not shown at either margin.** The base-10 text model's loss is above the base-1e4 model's on every
# seed (+0.00, +0.02, +0.03 nats/byte; mean +0.02; the claim lines above). With a 5% margin ($\ln 1.05 = 0.049$)
# every seed is inside it, but the seed-level interval [−0.02, +0.06] reaches past it: consistent, which is not
# "reproduced" - three seeds do not show that the loss stays within 5%. With 2% ($0.020$) the seeds fall on both
# sides: not reproduced. The loss does not visibly break down at a base 30 times below the bound; how close it stays
# is not resolved here.
#
# **Claim 2: a small fall, not the paper's.** The base-10 retrieval model finds the key at every distance, the
# longest included; at $m \ge L/2$ it retrieves 98.4% of the keys where the base-1e4 model retrieves 100.0%. The fall
# is +0.02 (seeds +0.00, +0.03, +0.02; the first a fall of 0.4 points): every seed falls, but the seed-level interval
# [−0.01, +0.04] includes zero - consistent; and that whole interval lies below 5 points, so a 5-point fall is
# reversed. At short range ($m \le L/4$) nothing falls here (base 10 retrieves every key on every seed; base 1e4
# misses one key in 16 at each of $m = 1..4$ on the third seed, −0.02: not reproduced), so the long-range fall minus
# the short-range one is the long-range fall itself on the first two seeds and a little more on the third (+0.02;
# seeds +0.00, +0.03, +0.03; [−0.02, +0.06]) - consistent. Nothing changes where $B_m$ turns
# negative (the dotted line at $m = 5$ in the figure). **Claim 3 (ours): reproduced.** What the low base does cost is
# language modelling: the same retrieval fine-tuning raises the base-10 model's text loss by +0.45 nats/byte more
# than the base-1e4 model's (seeds +0.40, +0.47, +0.49; seed-level interval [+0.33, +0.57]). The re-drawn rows do
# what they are for: the text models' 17 never-seen rows are nearly parallel (mean cosine 0.98 on every seed, printed
# above), the retrieval models' nearly orthogonal.
#
# What this task can and cannot show **(ours)**: the key is the only byte of its kind in the window, so a head that
# attends roughly uniformly still carries it (its value stands out of the average), and the answer needs no
# similarity match between the question and the key - the match that $B_m$ is about. The paper's retrieval (a
# passkey of digits in ordinary text, found by what surrounds it) needs that match; with digit keys no training run
# of this model learned retrieval at all. So the small fall measured here is on a task that cannot exercise $B_m$:
# this section shows that a base far below the bound does not stop a unique key from being found, not that the
# paper's bound is wrong, and not that its mechanism causes the fall.
#
# **Second scale** (medium profile, $L = 128$, bound 1029, so base 10 is 100 times below it; its committed results,
# `results/medium/base_bound.json`, printed below with the same seed-level intervals): the fall is larger there and
# appears at short range too, with a spread across seeds that leaves the long-range excess undecided.

# %%
medium = repo_root() / "results" / "medium"
if (medium / "base_bound.json").is_file():
    res_m = Results.load("base_bound", "medium", out=medium)
    dist_m, L_m = np.array(res_m.eval["passkey"]["distances"]), res_m.train_length
    bases_m = list(res_m.runs[0]["bases"])

    def medium_correct(base: str) -> np.ndarray:
        """The medium retrieval models' passkey outcomes, shape (seeds, distances, samples)."""
        return np.array([[run["bases"][base]["retrieval"]["passkey"][str(m)] for m in dist_m] for run in res_m.runs])

    def medium_fall(mask: np.ndarray) -> np.ndarray:
        """Per seed and sample: accuracy at base 1e4 minus at the lowest base, over the distances in mask."""
        return medium_correct(bases_m[-1])[:, mask].mean(1) - medium_correct(bases_m[0])[:, mask].mean(1)

    ranges = {f"m >= {L_m // 2}": dist_m >= L_m // 2, f"m <= {L_m // 4}": dist_m <= L_m // 4}
    for label, mask in ranges.items():
        falls = medium_fall(mask).mean(1)
        mean, lo, hi = seed_interval(list(falls))
        low_acc = 100 * medium_correct(bases_m[0])[:, mask].mean((1, 2))
        print(
            f"L = {L_m}, {label}: fall {100 * mean:+.1f} points (per seed "
            f"{', '.join(f'{100 * f:+.1f}' for f in falls)}; seed-level interval [{100 * lo:+.1f}, {100 * hi:+.1f}]); "
            f"base {bases_m[0]} retrieves {', '.join(f'{a:.1f}%' for a in low_acc)}"
        )
    excess = (medium_fall(dist_m >= L_m // 2) - medium_fall(dist_m <= L_m // 4)).mean(1)
    mean, lo, hi = seed_interval(list(excess))
    print(
        f"L = {L_m}, long-range fall minus short-range fall: {100 * mean:+.1f} points (per seed "
        f"{', '.join(f'{100 * f:+.1f}' for f in excess)}; [{100 * lo:+.1f}, {100 * hi:+.1f}])"
    )

# %% [markdown]
# At $L = 128$ the long-range fall is +3.1 points (per seed +2.3, +6.4, +0.5), every seed again, and there is a
# short-range one, +2.3 (base 10 retrieves 95.5-99.6% at $m \le L/4$): the fall is not confined to long range, and
# the long-range excess is of either sign across seeds (+0.7; per seed −2.2, +6.1, −1.7). Twice the length gives a
# larger fall, on a task that cannot exercise $B_m$ - not the paper's long-range collapse.

# %%
assert v_within5.holds, v_within5  # within 5% perplexity
assert v_within2.holds, v_within2  # but not within 2%
assert v_far_sign.holds, v_far_sign  # the sign of the fall
assert v_far_fall.holds, v_far_fall  # no fall of 5 points
assert v_near_sign.holds, v_near_sign  # no fall at short range (L = 64)
assert v_far_beyond_near.holds, v_far_beyond_near  # the long-range fall exceeds the short-range one on every seed
assert v_cost.holds, v_cost  # (ours) retrieval costs more text loss below the bound

# %% [markdown]
# ### Passkey beyond $L$: which extension methods keep retrieval
#
# The base-1e4 retrieval model at $L$ and at 2x-16x, without fine-tuning, each frequency method tuned to
# $s = L'/L$ (Dynamic YaRN per token) and ReRoPE with $w = L/2$: accuracy by test length and by the key's distance as
# a fraction of the longest one a sample holds ($L' - 2$), mean over seeds.

# %%
heat_cfg = results.eval["heatmap"]
H_METHODS, H_MULTS, FRACS = heat_cfg["methods"], heat_cfg["multipliers"], heat_cfg["distance_fractions"]


def heatmap_correct(method: str, mult: int) -> np.ndarray:
    """Passkey outcomes (1: key retrieved) at mult x L, shape (seeds, distances, samples); distances increasing."""
    cell = [run["heatmap"][method][str(mult)] for run in results.runs]
    return np.array([[c[k] for k in sorted(c, key=int)] for c in cell])


fig, axes = plt.subplots(1, len(H_METHODS), figsize=(12.0, 3.2), sharey=True)
for ax, method in zip(axes, H_METHODS):
    grid = np.stack([heatmap_correct(method, mult).mean((0, 2)) for mult in H_MULTS], axis=1)  # (distances, mults)
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(len(H_MULTS)), [f"{m}x" for m in H_MULTS])
    ax.set_title(method)
    ax.set_xlabel("test length")
axes[0].set_yticks(range(len(FRACS)), [f"{f:.2g}" for f in FRACS])
axes[0].set_ylabel("key distance / (L' - 2)")
fig.colorbar(im, ax=axes, shrink=0.85, label="passkey accuracy")
fig.suptitle(f"base-1e4 retrieval model trained at L = {L_LM} (chance 1/16)", y=1.02)
savefig(fig, "07_passkey_heatmap", profile=profile, exact=False)
plt.show()

# %% [markdown]
# **(ours) Claim 4: at 16x, with the key in the far half of the window (distance at least half the longest; the
# fractions 1/2, 3/4 and 1 above), every extension method retrieves more often than plain RoPE.** Decided per method
# on the seed level (method minus Baseline, each sample's mean over those distances, one mean per seed; the bootstrap
# over seeds and samples printed beside it).

# %%
TOP_MULT = max(H_MULTS)
far_half = [i for i, f in enumerate(FRACS) if f >= 0.5]
far_keys = {m: heatmap_correct(m, TOP_MULT)[:, far_half].mean(1) for m in H_METHODS}  # (seeds, samples)
far_half_gaps = {m: passkey_difference(far_keys[m], far_keys["Baseline"]) for m in H_METHODS if m != "Baseline"}
print(
    f"{TOP_MULT}x, key in the far half: Baseline retrieves {100 * far_keys['Baseline'].mean():.0f}% "
    f"(per seed {', '.join(f'{100 * v:.0f}%' for v in far_keys['Baseline'].mean(1))})"
)
# NTK-aware: consistent here and on the second machine, reproduced on the first machine
STATED_FAR_HALF = {
    "NTK-aware": "not decided",
    "YaRN": "reproduced",
    "Dynamic YaRN": "reproduced",
    "ReRoPE": "reproduced",
}
far_half_verdicts = {
    m: claims.decide(
        f"07.far-passkey.{slug(m)}-vs-baseline.{TOP_MULT}x",
        g,
        ">",
        claim=f"{m} - Baseline, passkey at {TOP_MULT}x, key in the far half",
        source="ours",
        quantity="passkey accuracy gap (fraction)",
        stated=STATED_FAR_HALF[m],
    )
    for m, g in far_half_gaps.items()
}

# %% [markdown]
# **(ours) Reproduced for YaRN, Dynamic YaRN and ReRoPE; not decided for NTK-aware.** At 16x plain RoPE finds
# about a third of the keys in the far half (32%; per seed 37%, 8%, 50%); YaRN and Dynamic YaRN find all of them:
# +0.68 each (seeds +0.62, +0.92, +0.50; seed-level interval [+0.15, +1.21]), ReRoPE all but one key in 24 on the
# third seed: +0.67 (seeds +0.62, +0.92, +0.46; [+0.09, +1.24]); reproduced on all three runs.
# NTK-aware finds most: +0.39 (seeds +0.54, +0.58, +0.04; [−0.36, +1.14]), consistent here and on the second
# machine but reproduced on the first machine, so not decided. The loss-based ranking of notebooks 04-05 holds for
# retrieval; NTK-aware is ahead of plain RoPE on every seed here (on the third by one key in 24), where its next-byte
# accuracy gain at 8x was not reproduced (notebook 04). The
# key at the very start of a window is also the first byte the model reads, so the far-end row mixes distance with
# a first-position effect; the claim averages the far half for that reason.

# %%
for v in far_half_verdicts.values():
    if v.stated != NOT_DECIDED:  # a claim the runs on record decide differently is asserted neither way
        assert v.holds, v
