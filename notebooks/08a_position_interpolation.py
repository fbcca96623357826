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
# # 08 · Extending the window by fine-tuning: why Position Interpolation interpolates
#
# **Claims reproduced (sections 1-2).** Position Interpolation (PI) reads position $m$ of a model extended from
# $L$ to $L'$ as $mL/L'$, so the model only meets relative positions inside its training range, most of them
# between integers. PI's Theorem 2.1: between two integer distances $s_1 \le s \le s_2$ the RoPE attention score
# leaves its chord by at most $d\,\max_j|h_j|\,(s-s_1)(s_2-s)/(8\ln c)$, "at least $2\cdot 294.73 \sim 600\times$
# smaller" than the bound on the score itself at an unseen distance. PI's Fig. 2: a score fitted by least squares to
# values on $[0, L]$ stays in range at interpolated positions and reaches huge values beyond $L$. Section 3 (the
# fine-tuning experiment: PI, NTK-aware, YaRN and plain fine-tuning) states its own claims.
#
# Sources: Chen, Wong, Chen, Tian, *Extending Context Window of Large Language Models via Positional
# Interpolation*, arXiv:2306.15595 (§2.2 Eq. 3 and Fig. 2; §2.3 Theorem 2.1, Eqs. 5-8; appendix A: the proof;
# appendix B, Fig. 5: $B(s)/d$; appendix C.1: the setting of Fig. 2); Su, Lu, Pan, Wen, Liu, *RoFormer*,
# arXiv:2104.09864 (§3.4.3: the bound PI compares with).
#
# Notation: $\theta_j = c^{-2j/d}$, $j = 0..d/2-1$ ($c$ is the base $b$ of the other chapters), head dim $d$,
# training length $L$, relative position $s$. *Remarks marked **(ours)** are this companion's, not the sources'.*

# %% tags=["parameters"]
profile: str = "smoke"  # "smoke" (CPU, minutes, what is committed) or "full" (one GPU)
device: str = "auto"  # "auto" -> cuda when present, else cpu; or "cpu", "cuda", "cuda:N"
seed: int = 0  # every random draw in the notebook derives from it

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch

import rope_lib
from rope_lib.companion.plotting import savefig, use_style
from rope_lib.companion.report import setup_notebook
from rope_lib.score_bounds import (
    attention_score,
    bound_ratio,
    extrapolation_sum,
    fit_attention_score,
    interpolation_bound,
    interpolation_error,
)

setup_notebook(profile, device, seed)  # sections 1-2 are analytic: float64 on the CPU whatever the device
torch.set_num_threads(1)  # small products and one 2048 x 128 SVD per fit: extra threads only add overhead

D, C, L = 128, 10_000.0, 2048  # PI's setting (Fig. 2, appendix B): LLaMA-7B, d = 4096/32, base 1e4, window 2048
THETA = rope_lib.inv_freq(D, C).numpy()

# %% [markdown]
# ## 1. Why interpolation is safe and extrapolation is not (PI Theorem 2.1)
#
# For a query $q$ and a key $k$ at relative position $s$, RoPE's score is (PI Eq. 3)
# $a(s) = \mathrm{Re}\sum_{j=0}^{d/2-1} h_j e^{\mathrm{i}s\theta_j}$ with
# $h_j = (q_{2j} + \mathrm{i}q_{2j+1})(k_{2j} - \mathrm{i}k_{2j+1})$. Pre-training pins $a$ at the integer
# distances $0..L-1$; PI asks for $a$ between them. **Theorem 2.1** (PI Eq. 5): for $s_1 \le s \le s_2$,
# $$|a(s) - a_\text{linear}(s)| \le d\,\Big(\max_j|h_j|\Big)\,\frac{(s-s_1)(s_2-s)}{8\ln c},\qquad
# a_\text{linear}(s) = (1-\lambda)a(s_1) + \lambda a(s_2),\ \lambda = \frac{s-s_1}{s_2-s_1}.$$
# The proof (PI appendix A) in four steps, each checked below: (i) Taylor expansions give the chord error in terms
# of $a''$; (ii) $|a''| \le \sum_j |h_j|\theta_j^2$; (iii) a geometric sum; (iv) a bound on that sum.
#
# **(i)** Expand $a(s_1)$ and $a(s_2)$ around $s$ with Lagrange remainders $a''(\xi_1)$, $a''(\xi_2)$; the
# chord's error is then PI's Eq. 11, and with $|a''| \le M$ it is at most $\frac M2 (s-s_1)(s_2-s)$ (Eq. 16),
# whose largest value on a unit step is $M/8$, at the midpoint:

# %%
s, s1, s2 = sp.symbols("s s_1 s_2", real=True)
a0, a1, m1, m2, M = sp.symbols("a a' a''_1 a''_2 M", real=True)  # a(s), a'(s), a''(xi_1), a''(xi_2), sup |a''|
lam = (s - s1) / (s2 - s1)


def taylor(t, m, sign=1):
    """a(t) expanded at s with remainder m = a''(xi)."""
    return a0 + a1 * sign * (t - s) + m / 2 * (t - s) ** 2


R = a0 - ((1 - lam) * taylor(s1, m1) + lam * taylor(s2, m2))
R_paper = -(s - s1) * (s - s2) / (2 * (s1 - s2)) * (m1 * (s - s1) - m2 * (s - s2))  # PI Eq. 11 as printed
assert sp.simplify(R - R_paper) == 0
# PI's Eqs. 9-10 print a'(s)(s - s_1) where Taylor has a'(s)(s_1 - s): the first-order terms cancel either way
R_as_printed = a0 - ((1 - lam) * taylor(s1, m1, sign=-1) + lam * taylor(s2, m2, sign=-1))
assert sp.simplify(R_as_printed - R_paper) == 0
# |m1|, |m2| <= M: the bracket of Eq. 11 is at most M (s - s1) + M (s2 - s) = M (s2 - s1)
worst = (s - s1) * (s2 - s) / (2 * (s2 - s1)) * (M * (s - s1) + M * (s2 - s))
assert sp.simplify(worst - M / 2 * (s - s1) * (s2 - s)) == 0
step = (s - s1) * (s1 + 1 - s)  # (s - s1)(s2 - s) on a unit step
peak = sp.solve(sp.diff(step, s), s)
assert peak == [s1 + sp.Rational(1, 2)] and sp.simplify(step.subs(s, peak[0]) - sp.Rational(1, 4)) == 0
assert sp.diff(step, s, 2) < 0  # a maximum
sp.Eq(sp.Symbol("a(s) - a_linear(s)"), sp.factor(R))

# %% [markdown]
# **(ii)-(iii)** Each basis function $\phi_j(s) = e^{\mathrm{i}s\theta_j}$ has $\phi_j'' = -\theta_j^2\phi_j$ and
# $|\phi_j| = 1$, so $|a''(s)| \le \sum_j |h_j|\theta_j^2 \le \max_j|h_j|\sum_j\theta_j^2$ (PI Eqs. 12-13), and
# $\theta_j^2 = r^j$ with $r = c^{-4/d}$, $r^{d/2} = c^{-2}$: the sum is geometric,
# $S_2 = \sum_{j=0}^{d/2-1}\theta_j^2 = \frac{1-c^{-2}}{1-c^{-4/d}} \le \frac{1}{1-c^{-4/d}}$.

# %%
th = sp.symbols("theta", positive=True)
phi = sp.exp(sp.I * s * th)
assert sp.simplify(sp.diff(phi, s, 2) + th**2 * phi) == 0 and sp.simplify(sp.Abs(phi) - 1) == 0
c, d, r = sp.symbols("c d r", positive=True)
j, n = sp.symbols("j n", integer=True, nonnegative=True)
assert sp.simplify((1 - r) * sp.summation(r**j, (j, 0, n - 1)) - (1 - r**n)) == 0  # the geometric sum
assert sp.simplify((c ** (-2 * j / d)) ** 2 - (c ** (-4 / d)) ** j) == 0  # theta_j^2 = r^j
assert sp.simplify((c ** (-4 / d)) ** (d / 2) - c**-2) == 0  # r^(d/2) = c^-2
S2 = (1 - c**-2) / (1 - c ** (-4 / d))
at = {c: C, d: D}
s2_value = float(S2.subs(at))
assert math.isclose(s2_value, float(np.sum(THETA**2)), rel_tol=1e-12)  # against the library's frequencies
sp.Eq(sp.Symbol("S_2"), S2)

# %% [markdown]
# **(iv)** PI then writes "when $x<0$ and $c>1$, $c^x \le 1 + x\ln c$", so that $1 - c^{-4/d} \ge \frac 4d\ln c$
# and $S_2 \le \frac{d}{4\ln c}$ (Eq. 14), which gives Eq. 5. **(ours)** That inequality is reversed:
# $f(x) = c^x - 1 - x\ln c$ has $f(0) = f'(0) = 0$ and $f'' = (\ln c)^2 c^x > 0$, so $f \ge 0$, i.e.
# $c^x \ge 1 + x\ln c$ for every $x$, and the geometric sum is *larger* than $d/(4\ln c)$. The same convexity at
# $y = \frac4d\ln c > 0$ ($e^{y} \ge 1 + y$, so $c^{-4/d} \le \frac{1}{1+y}$, and $\frac1{1-z}$ grows with $z$)
# gives a closed form that does hold: $S_2 \le \frac{1}{1 - 1/(1+y)} = 1 + \frac{d}{4\ln c}$.

# %%
x, y = sp.symbols("x y", real=True)
f = c**x - 1 - x * sp.log(c)
assert f.subs(x, 0) == 0 and sp.diff(f, x).subs(x, 0) == 0
assert sp.simplify(sp.diff(f, x, 2) - sp.log(c) ** 2 * c**x) == 0  # positive: f is convex, its minimum f(0) = 0
assert sp.simplify(1 / (1 - 1 / (1 + y)) - (1 + 1 / y)) == 0
paper_sum = float((d / (4 * sp.log(c))).subs(at))  # PI Eq. 14's right-hand side
closed_sum = float((1 + d / (4 * sp.log(c))).subs(at))
assert C ** (-4 / D) > 1 - 4 / D * math.log(C)  # the printed inequality fails at the x the proof uses
assert paper_sum < s2_value <= closed_sum  # S_2 exceeds PI's bound on it and respects the closed form

# numeric check of the library against the symbolic bounds, per unit max|h|: PI's Eq. 5 and the proof's S_2 / 2
paper_coef = float((d / (8 * sp.log(c))).subs(at))
for point, lo, hi in [(0.5, 0, 1), (0.25, 0, 1), (1000.3, 1000, 1001), (3.0, 2, 5)]:
    width = (point - lo) * (hi - point)
    assert math.isclose(float(interpolation_bound(1.0, point, lo, hi, D, C)), paper_coef * width, rel_tol=1e-12)
    got = float(interpolation_bound(1.0, point, lo, hi, D, C, form="sum"))
    assert math.isclose(got, s2_value / 2 * width, rel_tol=1e-12)

# %% tags=["nbval-check-output"]
print(f"d = {D}, c = {C:.0e}")
print(f"  S_2 = sum_j theta_j^2 = (1 - c^-2) / (1 - c^(-4/d)) = {s2_value:.4f}")
print(f"  PI Eq. 14, d / (4 ln c)                            = {paper_sum:.4f}   (smaller: not a bound on S_2)")
print(f"  valid closed form, 1 + d / (4 ln c)                = {closed_sum:.4f}")
print("bound on |a(s) - a_linear(s)| at the midpoint of a unit step, per unit max_j |h_j|:")
print(f"  PI Eq. 7, d / (32 ln c) = d / {32 * math.log(C):.2f}           = {paper_coef / 4:.4f}")
print(f"  the proof's own bound, S_2 / 8                     = {s2_value / 8:.4f}")
print(f"  closed form, d / (32 ln c) + 1/8                   = {closed_sum / 8:.4f}")

# %% [markdown]
# **Is Eq. 5 itself false, or only its proof?** A counterexample settles it. With $h_j = e^{-\mathrm{i}s^*\theta_j}$
# ($|h_j| = 1$; any complex $h_j$ comes from some pair of $q$ and $k$ components), $a(s) = \sum_j\cos((s-s^*)\theta_j)$:
# every term peaks at $s^*$ and $a''(s^*) = -S_2$, the most $|a''|$ can be when $\max_j|h_j| = 1$. On the step
# $[s^* - \frac12, s^* + \frac12]$ the chord's error at the midpoint is $\sum_j\left(1 - \cos\frac{\theta_j}{2}\right)$:

# %%
t = sp.symbols("t", real=True)
term = sp.cos((t - s) * th)  # one term of a(t) for h_j = exp(-i s theta_j), s playing s*
assert (
    sp.simplify(
        term.subs(t, s)
        - (term.subs(t, s - sp.Rational(1, 2)) + term.subs(t, s + sp.Rational(1, 2))) / 2
        - (1 - sp.cos(th / 2))
    )
    == 0
)

S_STAR = 1000.5  # any s* gives the same numbers: the score only depends on s - s*
h_aligned = np.exp(-1j * S_STAR * THETA)
worst_err = float(interpolation_error(h_aligned, S_STAR, S_STAR - 0.5, S_STAR + 0.5, C))
assert math.isclose(worst_err, float(np.sum(1 - np.cos(THETA / 2))), rel_tol=1e-9)
eq5 = float(interpolation_bound(1.0, S_STAR, S_STAR - 0.5, S_STAR + 0.5, D, C))
proof_bound = float(interpolation_bound(1.0, S_STAR, S_STAR - 0.5, S_STAR + 0.5, D, C, form="sum"))
assert worst_err > 1.1 * eq5  # Theorem 2.1 as printed fails, by more than 10%
assert 0.98 * proof_bound < worst_err <= proof_bound  # the proof's S_2 bound holds and is tight to 2%

# random coefficients: even the printed bound holds (their phases do not line up)
rng = np.random.default_rng(seed)
ratios_random = []
for _ in range(200):
    h_rand = rng.standard_normal(D // 2) + 1j * rng.standard_normal(D // 2)
    lo = rng.integers(0, 10 * L, size=64).astype(float)
    pts = lo + rng.uniform(0, 1, size=64)
    err = np.abs(interpolation_error(h_rand, pts, lo, lo + 1, C))
    ratios_random.append(float(np.max(err / interpolation_bound(np.abs(h_rand).max(), pts, lo, lo + 1, D, C))))
assert max(ratios_random) < 1

# %% tags=["nbval-check-output"]
print(f"h_j = exp(-i s* theta_j), d = {D}, c = {C:.0e}: |a - a_linear| at the midpoint of a unit step")
print(f"  measured                 {worst_err:.4f}")
print(f"  PI Eq. 5 (printed)       {eq5:.4f}   measured / bound = {worst_err / eq5:.3f}")
print(f"  the proof's S_2 bound    {proof_bound:.4f}   measured / bound = {worst_err / proof_bound:.3f}")
print(f"  small-step limit of measured / Eq. 5: S_2 / (d / (4 ln c)) = {s2_value / paper_sum:.3f}")
print(f"random Gaussian h (200 draws, 64 points each): largest |a - a_linear| / Eq. 5 = {max(ratios_random):.2f}")

# %% [markdown]
# **Not reproduced as printed (ours).** Theorem 2.1 is false at PI's own setting: the aligned coefficients exceed
# Eq. 5 by 14% (15% in the limit of a short step), because the proof's last step uses $c^x \le 1 + x\ln c$, which
# points the other way. What the proof does establish is the same statement with $S_2/2$ in place of
# $d/(8\ln c)$ (or, in closed form, $d/(8\ln c) + \frac12$), and that bound is tight: the aligned case reaches 99%
# of it. The error is in the constant, not in the order of magnitude, so PI's argument survives; random Gaussian
# coefficients stay below even the printed bound (at most about half of it).
#
# **The ~600x.** The bound PI compares with is RoFormer's, for any distance (PI Eq. 8):
# $|a(s)| \le 2\max_j|h_j|\,B(s)$ with $B(s) = \sum_{k=0}^{d/2-1}|A_{k+1}(s)|$,
# $A_k(s) = \sum_{j<k}e^{\mathrm{i}s\theta_j}$. PI: "numerically [$B(s)$] is at least larger than $d$" (appendix B
# plots $B(s)/d$ for $s < 2L = 4096$), so the ratio of the two bounds is at least
# $2d \big/ \frac{d}{32\ln c} = 64\ln c$:

# %%
ratio_sym = sp.simplify(2 * d / (d / (32 * sp.log(c))))
assert sp.simplify(ratio_sym - 64 * sp.log(c)) == 0
paper_ratio = bound_ratio(D, C)
assert math.isclose(paper_ratio, float(ratio_sym.subs(at)), rel_tol=1e-12)
assert round(32 * math.log(C), 2) == 294.73  # PI Eq. 7's "d max|h| / 294.73"
assert round(paper_ratio, -2) == 600  # PI: "2 * 294.73 ~ 600": 589.5, within the paper's one significant digit

s_long = np.arange(200_000)  # out to 100 L: the distances a 32x-extended model would meet
B = extrapolation_sum(s_long, D, C)
first_below = int(np.argmax(B < D))
assert B[: 2 * L].min() > D  # PI's premise holds on the range its Fig. 5 plots ...
assert 2 * L < first_below < 3 * L and B.min() < 0.6 * D  # ... and fails soon after it
ratios = {
    (premise, form): bound_ratio(D, C, max_distance=md, form=form)
    for premise, md in (("B(s) >= d (PI)", None), ("min B, s < 2L", 2 * L), ("min B, s < 200000", s_long.size))
    for form in ("paper", "sum")
}
assert ratios[("min B, s < 2L", "paper")] > paper_ratio > ratios[("min B, s < 200000", "paper")] > 300

# %% tags=["nbval-check-output"]
print(f"min B(s)/d: s < 2L = {2 * L}: {B[: 2 * L].min() / D:.3f};  s < 200000: {B.min() / D:.3f} (at s = {B.argmin()})")
print(f"first s with B(s) < d: {first_below};  share of s < 200000 with B(s) < d: {np.mean(B < D):.1%}")
print(f"{'extrapolation side':22s} {'vs Eq. 7 (paper)':>17s} {'vs S_2/8 (proof)':>17s}")
for premise in ("B(s) >= d (PI)", "min B, s < 2L", "min B, s < 200000"):
    print(f"{premise:22s} {ratios[(premise, 'paper')]:17.1f} {ratios[(premise, 'sum')]:17.1f}")

# %% [markdown]
# Reproduced: $64\ln 10^4 = 589.5$, PI's "~600". On $s < 2L$, the range of PI's Fig. 5, $B(s)$ indeed stays above
# $d$ (minimum $1.12\,d$), so the ratio there is at least 658. **(ours)** Beyond it the premise fails: $B(s) < d$
# first at $s = 4861$ and at 2.4% of distances below $2\cdot10^5$ (minimum $0.59\,d$), which lowers the ratio to 348;
# with the proof's valid constant the three ratios are 512, 572 and 302. Hundreds of times either way. Note also
# what the two bounds bound: the chord error, against the score itself. An interpolated score is at most
# $\max(|a(s_1)|, |a(s_2)|)$ plus the chord error, and it is pre-training that keeps $a(s_1)$, $a(s_2)$ in range.
#
# The aligned case against both bounds, and $B(s)/d$ (PI's Fig. 5, here to $4L$):

# %%
use_style()
fig, (ax_l, ax_r) = plt.subplots(1, 2, figsize=(11.0, 4.0))
grid = np.linspace(S_STAR - 0.5, S_STAR + 0.5, 201)
ax_l.plot(
    grid - S_STAR,
    np.abs(interpolation_error(h_aligned, grid, S_STAR - 0.5, S_STAR + 0.5, C)),
    color="k",
    label=r"$|a(s) - a_\mathrm{linear}(s)|$, aligned $h$",
)
ax_l.plot(
    grid - S_STAR,
    interpolation_bound(1.0, grid, S_STAR - 0.5, S_STAR + 0.5, D, C),
    "--",
    color="#D55E00",
    label=r"PI Eq. 5: $d(s-s_1)(s_2-s)/(8\ln c)$",
)
ax_l.plot(
    grid - S_STAR,
    interpolation_bound(1.0, grid, S_STAR - 0.5, S_STAR + 0.5, D, C, form="sum"),
    ":",
    color="#0072B2",
    label=r"proof's bound: $S_2(s-s_1)(s_2-s)/2$",
)
ax_l.set_xlabel(r"$s - s^*$ (between the grid points $s^* \pm 1/2$)")
ax_l.set_ylabel(r"per unit $\max_j |h_j|$")
ax_l.set_title(f"d = {D}, c = 1e4: the printed bound is exceeded")
ax_l.legend(loc="lower center")
s_fig = np.arange(4 * L)
ax_r.plot(s_fig, B[: 4 * L] / D, color="k", linewidth=0.6)
ax_r.axhline(1.0, color="0.4", linestyle="--", linewidth=0.8)
ax_r.axvline(2 * L, color="#D55E00", linestyle=":", linewidth=0.8, label="2L: the end of PI's Fig. 5")
ax_r.set_yscale("log")
ax_r.set_xlabel("relative position s")
ax_r.set_ylabel("B(s) / d")
ax_r.set_title(f"RoFormer's sum: B(s) < d from s = {first_below}")
ax_r.legend(loc="upper right")
savefig(fig, "08_interpolation_bound", profile=profile, exact=True)
plt.show()

# %% [markdown]
# ## 2. Fig. 2 reproduced: fitted inside, extrapolated beyond, interpolated in between
#
# PI's setting (appendix C.1): $d = 128$, $c = 10^4$, $L = 2048$; the targets are independent standard normal
# values at $s = 0..L-1$ (random points, not a smooth function: the paper's code draws them with `torch.randn`),
# fitted by ordinary least squares (its `eps = 0`) with the $d$ real coefficients $(\mathrm{Re}\,h,
# \mathrm{Im}\,h)$; then evaluated on $[0, 2L)$ and at $s = 25..75$ in steps of $1/8$. Ours: the same, in float64,
# with the minimum-norm least-squares solution through an SVD (`fit_attention_score`) where the paper solves the
# normal equations in float32.
#
# **(ours)** The problem is nearly singular: the slow pairs ($\theta_j L \ll 1$) are nearly collinear on $[0, L)$,
# and the basis' condition number is $10^{16}$ or more (its smallest singular values are at float64's rounding
# level). The least-squares coefficients are then huge, and their exact
# size (hence how far the extrapolation goes) is set by rounding: the paper's float32 solve shows values "beyond
# 8000", our float64 one reaches $10^9$-$10^{11}$. Only orders of magnitude are stable, so the claims below are
# stated in orders of magnitude, and the figure is saved with `exact=False` (its last bits can differ between CPUs).
# PI: "we do not cherry pick at all: almost every learned curve ... has the extrapolation issue"; the claims are
# checked on 20 independent targets. PI's last remark of §2.3, that a ridge penalty keeps the extrapolated values
# comparable with those inside, is checked with a ridge of $10^{-4}\sigma_\max^2$.

# %%
N_TARGETS = 20
RIDGE = 1e-4  # lam = RIDGE * sigma_max^2 (fit_attention_score): the penalty of PI's regularisation remark
pos_in, pos_out, pos_half = np.arange(L), np.arange(L, 2 * L), np.arange(L - 1) + 0.5

angle = torch.arange(L, dtype=torch.float64)[:, None] * torch.from_numpy(THETA)
sv = torch.linalg.svdvals(torch.cat((torch.cos(angle), -torch.sin(angle)), dim=1))
cond = float(sv[0] / sv[-1])
assert cond > 1e12  # numerically singular in float32, barely resolved in float64

targets = np.random.default_rng(seed).standard_normal((N_TARGETS, L))
fits = []
for y_target in targets:
    h = fit_attention_score(y_target, D, C)
    h_ridge = fit_attention_score(y_target, D, C, ridge=RIDGE)
    k = np.arange(L - 1.0)
    fits.append(
        {
            "h": h,
            "inside": np.abs(attention_score(h, pos_in, C)).max(),
            "beyond": np.abs(attention_score(h, pos_out, C)).max(),
            "half": np.abs(attention_score(h, pos_half, C)).max(),
            "rms": float(np.sqrt(np.mean((attention_score(h, pos_in, C) - y_target) ** 2))),
            "chord_err": np.abs(interpolation_error(h, pos_half, k, k + 1, C)),
            "chord_bound": interpolation_bound(np.abs(h).max(), pos_half, k, k + 1, D, C, form="sum"),
            "chord_bound_eq5": interpolation_bound(np.abs(h).max(), pos_half, k, k + 1, D, C),
            "ridge_inside": np.abs(attention_score(h_ridge, pos_in, C)).max(),
            "ridge_beyond": np.abs(attention_score(h_ridge, pos_out, C)).max(),
            "h_ridge": h_ridge,
        }
    )
blowup = np.array([fi["beyond"] / fi["inside"] for fi in fits])
half_vs_in = np.array([fi["half"] / fi["inside"] for fi in fits])
ridge_blowup = np.array([fi["ridge_beyond"] / fi["ridge_inside"] for fi in fits])

# %%
# claims, on every target: in range inside [0, L) (PI: "approximately within [-1, 1]")
assert all(fi["inside"] < 2 for fi in fits)
# extrapolation exceeds the fitted range by orders of magnitude (PI: from ~1 to beyond 8000)
assert blowup.min() > 1e4
# interpolated (half-integer) values stay within a small multiple of the fitted range
assert half_vs_in.max() < 1.5
# the bound holds at every interpolated point: the proof's form, and PI's Eq. 5 (13% smaller) too
assert all(np.all(fi["chord_err"] <= fi["chord_bound"]) for fi in fits)
assert all(np.all(fi["chord_err"] <= fi["chord_bound_eq5"]) for fi in fits)
# ... but is vacuous here: it scales with max|h|, which the fit makes huge
assert min(np.abs(fi["h"]).max() for fi in fits) > 1e6
# PI's ridge remark: with the penalty, beyond L stays comparable with inside
assert ridge_blowup.max() < 5

# %%
f0 = fits[0]
print(f"basis [0, L) x (d real columns): condition number ~1e{round(math.log10(cond))}")
print(
    f"{N_TARGETS} targets; fitted |a| inside [0, L): {min(fi['inside'] for fi in fits):.2f} .. "
    f"{max(fi['inside'] for fi in fits):.2f}; rms residual {np.mean([fi['rms'] for fi in fits]):.2f} (targets: 1)"
)
print(
    f"max |a| on [L, 2L) / max |a| on [0, L): 1e{math.log10(blowup.min()):.0f} .. 1e{math.log10(blowup.max()):.0f}"
    f" (median 1e{math.log10(np.median(blowup)):.0f})"
)
print(f"max |a| at half-integers / max |a| at integers: {half_vs_in.min():.2f} .. {half_vs_in.max():.2f}")
print(
    f"largest |a - a_linear| at a half-integer: {max(fi['chord_err'].max() for fi in fits):.3f};"
    f" its bound (proof's form): >= {min(fi['chord_bound'].min() for fi in fits):.1e} (max|h| >= "
    f"{min(np.abs(fi['h']).max() for fi in fits):.0e})"
)
print(f"with the ridge: max |a| on [L, 2L) / on [0, L): {ridge_blowup.min():.2f} .. {ridge_blowup.max():.2f}")

# %% [markdown]
# Reproduced, on all 20 targets: the fit stays within about $\pm1$ on $[0, L)$ and its values beyond $L$ are
# $10^9$-$10^{11}$ times larger (the paper's float32 fit: thousands; the direction and the orders of magnitude
# agree, the size is the solver's rounding); at the half-integers the fitted score stays within the range of its
# integer values. The bound holds at every half-integer, and PI's ridge remark reproduces (beyond $L$ the ridge
# fit stays within a few times its range inside).
#
# **(ours)** For these fits Theorem 2.1 explains nothing: $\max_j|h_j| > 10^6$ makes its bound millions of times
# larger than the chord errors it bounds (at most a few hundredths). What keeps the interpolated values small is that
# the huge coefficients sit on slow pairs whose combination is smooth on $[0, L)$ (the fit's $|a''|$ is small
# there), not $\max_j|h_j|$. The theorem is informative for coefficients of moderate size; this fit's
# coefficients are set by a nearly singular solve, so Fig. 2 illustrates what extrapolation *can* do, not what a
# trained model's scores do beyond $L$ (section 3 and notebook 04 measure that).

# %%
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13.0, 3.9))
y0 = targets[0]
a_in = attention_score(f0["h"], pos_in, C)
ax1.scatter(pos_in, y0, s=1.5, color="#0072B2", alpha=0.5, label="targets (N(0, 1))")
ax1.plot(pos_in, a_in, color="#D55E00", linewidth=1.0, label="least-squares fit a(s)")
ax1.set_xlabel("relative position s")
ax1.set_ylabel("attention score a(s)")
ax1.set_title(f"fit on [0, L), d = {D}, L = {L}")
ax1.legend(loc="lower right")
s_all = np.arange(2 * L)
ax2.plot(s_all, np.abs(attention_score(f0["h"], s_all, C)), color="#D55E00", linewidth=0.8, label="least squares")
ax2.plot(
    s_all, np.abs(attention_score(f0["h_ridge"], s_all, C)), color="#009E73", linewidth=0.8, label=f"ridge {RIDGE:g}"
)
ax2.axvline(L, color="k", linestyle="--", linewidth=0.6)
ax2.set_yscale("log")
ax2.set_xlabel("relative position s")
ax2.set_ylabel("|a(s)|")
ax2.set_title("extrapolation beyond L")
ax2.legend(loc="upper left")
s_fine = np.arange(25, 75, 0.125)
for i in range(25, 76):
    ax3.axvline(i, color="0.7", linestyle=":", linewidth=0.5)
ax3.plot(s_fine, attention_score(f0["h"], s_fine, C), color="#D55E00", linewidth=1.0)
ax3.plot(np.arange(25, 76), attention_score(f0["h"], np.arange(25, 76), C), "o", color="k", markersize=2.5)
ax3.set_xlabel("relative position s (dotted: integers)")
ax3.set_title("interpolation: steps of 1/8")
savefig(fig, "08_fig2_fit", profile=profile, exact=False)
plt.show()

# %% [markdown]
# ## 3. Fine-tuning to extend: PI, NTK-aware, YaRN and plain positions
#
# **The claims.** PI (Tables 3-4): fine-tuned with interpolated positions, LLaMA reaches its extended window in
# about 1000 steps, and after 200 steps its perplexity at the extended length is already below the original model's
# at its own window; fine-tuned with plain positions ("direct extrapolation") its effective window, measured by
# passkey retrieval (the largest distance $k_{\max}$ retrieved in at least 20% of samples), grows only from 2048 to
# 2560 in 10000 steps; interpolation costs a little at the original window (perplexity +0.01 to +0.05 on
# proof-pile). YaRN (Table 5, fine-tuned rows): fewer steps than PI for the same result, and it keeps extrapolating
# beyond the length it was fine-tuned at.
#
# **Our setting.** The plain model of each of the 3 training seeds of notebook 04 ($L = 64$) is fine-tuned at
# $L' = 4L = 256$ bytes with each method's position scheme, tuned once to $s = L'/L = 4$: plain RoPE ("Direct"),
# PI, NTK-aware (bloc97) and YaRN. Every method gets the same batches (the batch of step $t$ depends on the seed and
# $t$ only), steps, learning rate (a third of pre-training's), a 5-step warm-up and then a constant rate, so that the
# weights after $t$ steps of one run are those of a $t$-step run: the snapshots at 10, 25 and 50 steps and the end
# (100 steps, 205k bytes, 29% of pre-training's bytes) are four fine-tuning budgets. Each model is scored, with its
# scheme, at $L$, $L'$ and $2L'$ on the seed's own 21 non-repeated test windows of notebook 04 (loss in nats per
# byte over every prediction of the window); step 0 is the pre-trained model under the method's scheme, notebook
# 04's zero-shot row at 4x. The models are trained once by `make models` (the checkpoint cache); the same run
# without Jupyter: `python -m rope_lib.companion.experiments finetune --profile smoke`. Each claim is decided on the
# training-seed level, as in the other chapters: each seed gives one estimate (its mean over its windows), and the
# Student-t 95% interval over the seeds makes the claim "reproduced" (on the claimed side), "consistent" (across it,
# every seed on the claimed side), "reversed" (on the other side) or "not reproduced"; the bootstrap interval over seeds
# and test files is printed beside it as a description of the gap.

# %%
from IPython.display import display

from rope_lib.companion.experiments import harness, run_experiment
from rope_lib.companion.report import Results, fmt_spread, format_gap, markdown_table
from rope_lib.companion.verdicts import NOT_DECIDED, ClaimBook

results = Results(run_experiment("finetune", profile=profile, device=device, seed=seed))  # the profile's threads
rows = results.rows
ft_cfg = results.config["finetune"]
L_TRAIN, EXTEND = results.train_length, ft_cfg["extend"]
STEPS = [0, *ft_cfg["snapshots"], ft_cfg["steps"]]
FINAL = STEPS[-1]
FT_METHODS = list(ft_cfg["methods"])
LENGTHS = {"L": 1, "L'": EXTEND, "2L'": 2 * EXTEND}  # multiples of the training length L
assert results.seeds == harness.training_seeds(profile, seed) and list(rows) == [
    f"{m} @ {t}" for m in FT_METHODS for t in STEPS
]
claims = ClaimBook("08", profile)  # prints each claim's line, records it in results/<profile>/verdicts/08.json
PI_SOURCE = "Chen et al., PI, arXiv:2306.15595"
YARN_SOURCE = "Peng et al., YaRN, arXiv:2309.00071, Table 5"
LOSS_GAP = "loss gap (nats/byte)"
AT = {label: label.lower().replace("'", "p") for label in LENGTHS}  # id parts: L -> l, L' -> lp, 2L' -> 2lp


def loss_by_seed(method: str, step: int, mult: int) -> np.ndarray:
    """Mean loss (nats/byte) over the windows of each training seed, shape (seeds,)."""
    return rows.loss_per_sample(f"{method} @ {step}", "non_repeated", mult).mean(1)


def last_l(method: str, step: int, mult: int) -> np.ndarray:
    """Per-window loss on the last L bytes at context mult x L, shape (seeds, windows)."""
    return rows.last_window_loss_per_sample(f"{method} @ {step}", mult)


gap_of = rows.difference  # a - b per window, bootstrapped over seeds and test files like every gap here


# %%
print(
    f"L = {L_TRAIN} -> L' = {EXTEND * L_TRAIN}; {ft_cfg['steps']} steps x {ft_cfg['batch_size']} x "
    f"{EXTEND * L_TRAIN} bytes, lr {ft_cfg['lr_fraction']:.3f} x pre-training's, snapshots {ft_cfg['snapshots']}"
)
for label, mult in LENGTHS.items():
    table = [
        [m, *(fmt_spread(loss_by_seed(m, t, mult).mean(), loss_by_seed(m, t, mult).std(ddof=1), 3) for t in STEPS)]
        for m in FT_METHODS
    ]
    print(f"\nloss at {label} = {mult * L_TRAIN} bytes (nats/byte, mean ± sd over {rows.n_seeds} seeds)")
    display(markdown_table(["method", *(f"{t} steps" for t in STEPS)], table))

# %% [markdown]
# **Claim 1 (PI): fine-tuned PI beats the pre-trained model at $L'$, and soon beats its original window.** Two
# comparisons: PI after $t$ steps at $L'$ against the pre-trained model with plain RoPE at $L'$ (direct
# extrapolation); and, PI's Table 3 reading, the loss on the *same last $L$ bytes* with the context $L'$ (PI after $t$
# steps) against the context $L$ (the pre-trained model at its own window) - negative when the longer context is used.

# %%
# stated verdicts by fine-tuning steps (the smoke and medium budgets; the full profile's other budgets are not stated)
STATED_VS_EXTRAPOLATION = {10: "reversed", 25: "not reproduced", 50: "not reproduced", 100: "consistent"}
claim1 = []
for t in STEPS[1:]:
    claim1.append(
        claims.decide(
            f"08.pi-vs-extrapolation.{t}steps",
            rows.loss_gap(f"PI @ {t}", "Direct @ 0", mult=EXTEND),
            "<",
            claim=f"PI after {t} steps - pre-trained with plain RoPE, loss at L'",
            source=f"{PI_SOURCE}, Table 3",
            quantity=LOSS_GAP,
            stated=STATED_VS_EXTRAPOLATION.get(t, NOT_DECIDED),
        )
    )
    claim1.append(
        claims.decide(
            f"08.pi-vs-own-window.{t}steps",
            gap_of(last_l("PI", t, EXTEND), last_l("Direct", 0, 1)),
            "<",
            claim=f"PI after {t} steps at L' - pre-trained at L, loss on the last L bytes",
            source=f"{PI_SOURCE}, Table 3",
            quantity=LOSS_GAP,
            stated="reversed",
        )
    )

# %% [markdown]
# **Claim 1, against extrapolation: consistent after 100 steps, not reproduced after 25 and 50, reversed after 10.**
# After 100 steps PI is below the pre-trained model extrapolating at $L'$ by 0.16 nats (seeds −0.30, −0.10,
# −0.09): every seed ahead, but the seed-level interval [−0.46, +0.13] includes zero. After 50 steps (−0.07; seeds
# −0.20, +0.00, −0.03) and 25 steps (+0.08; seeds −0.02, +0.15, +0.13) the seeds fall on both sides of zero: not
# reproduced. After 10 steps PI is still worse (+0.28, interval [+0.03, +0.52]): reversed. **Against its own
# window: reversed at every budget.** On the same last $L$ bytes PI's loss with $L'$ of context stays above the
# pre-trained model's with $L$, on every seed: +0.51 after 10 steps, +0.32 after 25, +0.17 after 50 and +0.09 after
# 100 (interval [+0.05, +0.13]). PI's Table 3 finding (below the original window after 200 steps) does not appear
# within our 100 steps. Every fine-tuned model does use the longer context (section's last table: its own loss on
# the last $L$ bytes is lower at $L'$ than at $L$); PI starts from the worst point and has not caught up.

# %%
for v in claim1:
    if v.stated != NOT_DECIDED:  # a claim the two machines decide differently is asserted neither way
        assert v.holds, v

# %% [markdown]
# **Claim 2 (PI): fine-tuning with plain positions extends the window far less than PI in the same steps.** PI's
# measure is passkey retrieval; ours is the loss at $L'$ and at $2L'$ after the same steps (Direct minus PI; the
# claim says positive).

# %%
claim2 = []
for t in STEPS:
    for label in ("L'", "2L'"):
        claim2.append(
            claims.decide(
                f"08.direct-vs-pi.at-{AT[label]}.{t}steps",
                rows.loss_gap(f"Direct @ {t}", f"PI @ {t}", mult=LENGTHS[label]),
                ">",
                claim=f"Direct - PI after {t} steps, loss at {label}",
                source=f"{PI_SOURCE}, Table 4",
                quantity=LOSS_GAP,
                stated="reversed",
            )
        )

# %% [markdown]
# **Reversed at every budget.** Fine-tuning with plain positions is *better* than PI at $L'$ and at $2L'$ after
# every number of steps, on every seed, each seed-level interval entirely below zero (after 100 steps: −0.10 nats
# at $L'$, interval [−0.11, −0.09], and −0.23 at $2L'$, interval [−0.35, −0.11]).
# Our model starts 0.77 nats worse at $L'$ under PI than with plain positions (notebook 04: PI is the worst
# zero-shot method here, since it compresses the fast pairs this byte-level model leans on), and 100 steps do not
# close that. PI's comparison is at LLaMA scale, 1000 steps being a vanishing fraction of pre-training; ours spends
# 29% of pre-training's bytes. Scale between $L = 64$ and $L = 128$ does not explain it: the medium profile
# (`results/medium/finetune.json`, the README's scale table; $L = 128 \to 512$, 3 seeds x 10 windows; not decided
# on the seed level here) gives the same sign at every budget (after 100 steps −0.07 at $L'$ and −0.35 at $2L'$).
# Whether it holds at LLaMA's scale, where PI's own comparison was made, is not tested here.

# %%
for v in claim2:
    if v.stated != NOT_DECIDED:
        assert v.holds, v

# %% [markdown]
# **Claim 3 (YaRN): no more steps than PI for the same loss at $L'$; and better than PI beyond $L'$ after
# fine-tuning.** YaRN minus PI at $L'$ after each number of steps (claimed $\le 0$), and at $2L'$ after the last.

# %%
claim3 = []
for t in STEPS:
    claim3.append(
        claims.decide(
            f"08.yarn-vs-pi.at-lp.{t}steps",
            rows.loss_gap(f"YaRN @ {t}", f"PI @ {t}", mult=EXTEND),
            "<",
            claim=f"YaRN - PI after {t} steps, loss at L'",
            source=YARN_SOURCE,
            quantity=LOSS_GAP,
            stated="reproduced",
        )
    )
beyond = claims.decide(
    f"08.yarn-vs-pi.at-2lp.{FINAL}steps",
    rows.loss_gap(f"YaRN @ {FINAL}", f"PI @ {FINAL}", mult=2 * EXTEND),
    "<",
    claim=f"YaRN - PI after {FINAL} steps, loss at 2L'",
    source=YARN_SOURCE,
    quantity=LOSS_GAP,
    stated="reproduced",
)

# %% [markdown]
# **Reproduced.** YaRN is below PI at $L'$ after every number of steps, on every seed (−0.91 at step 0, −0.45
# after 10, −0.28 after 25, −0.17 after 50, −0.10 after 100, interval [−0.12, −0.09]; after 10 steps it is where PI
# is after 100), and after fine-tuning it is better than PI at $2L'$ as well (−0.12, seeds −0.13, −0.08, −0.16;
# interval [−0.23, −0.02]).

# %%
for v in claim3:
    if v.stated != NOT_DECIDED:
        assert v.holds, v
assert beyond.holds, beyond

# %% [markdown]
# **Claim 4 (PI): interpolation costs a little at the original window.** The loss at $L$ of PI after the last step
# (with its scheme) minus the pre-trained model's at $L$; and minus plain fine-tuning's (the same extra training).

# %%
cost_gap = rows.loss_gap(f"PI @ {FINAL}", "Direct @ 0", mult=1)
cost = claims.decide(
    "08.pi-cost-at-l",
    cost_gap,
    ">",
    claim=f"PI after {FINAL} steps - pre-trained, loss at L",
    source=f"{PI_SOURCE}, proof-pile at the original window",
    quantity=LOSS_GAP,
    stated="reproduced",
)
cost_vs_direct = claims.decide(
    "08.pi-cost-at-l.vs-direct",
    rows.loss_gap(f"PI @ {FINAL}", f"Direct @ {FINAL}", mult=1),
    ">",
    claim=f"PI - Direct, both after {FINAL} steps, loss at L",
    source="ours",
    quantity=LOSS_GAP,
    stated="reproduced",
)
# PI's "a little" is under 0.01 nats (+0.01 to +0.05 on a perplexity near 7); the margin allows five times that
cost_little = claims.decide(
    "08.pi-cost-at-l.little",
    cost_gap,
    "<",
    threshold=0.05,
    claim=f"PI after {FINAL} steps - pre-trained, loss at L, within PI's 'a little'",
    source=f"{PI_SOURCE}, proof-pile at the original window",
    quantity=LOSS_GAP,
    stated="reversed",
)
direct_cost = rows.loss_gap(f"Direct @ {FINAL}", "Direct @ 0", mult=1)
print(f"at L: Direct fine-tuned - pre-trained {format_gap(direct_cost)} nats/byte (fine-tuning's own cost)")

# %% [markdown]
# **The cost: reproduced; "a little": reversed.** PI's model is worse at $L$ by +0.15 nats per byte after
# fine-tuning (seeds +0.12, +0.15, +0.17; interval [+0.08, +0.22]), and +0.10 worse than plain fine-tuning
# (interval [+0.07, +0.14]), which itself costs 0.05 at $L$: about 16% in perplexity, where PI reports +0.01 to
# +0.05 on a perplexity near 7 (under 1%). The whole seed-level interval lies above our margin of 0.05 nats.

# %%
assert cost.holds, cost
assert cost_vs_direct.holds, cost_vs_direct
assert cost_little.holds, cost_little  # far above PI's "little" (under 0.01 nats)

# %% [markdown]
# **Claim 5 (PI Table 4): the effective window by passkey retrieval.** Accuracy of retrieving a key at distances
# $L'/16$ to $L' - 2$ in samples of $L'$ bytes (`rope_lib.companion.data.make_passkey_set`), for the pre-trained model
# and after the last step.

# %%
pk = results.config["eval"]["passkey"]
passkey = np.array(
    [
        [np.mean([np.mean(run[f"{m} @ {t}"]["passkey"][str(k)]) for run in rows.runs]) for k in pk["distances"]]
        for m in FT_METHODS
        for t in (0, FINAL)
    ]
)
print(
    f"passkey accuracy at L' = {pk['length']}, distances {pk['distances']}, {pk['samples']} samples each, "
    f"chance {pk['chance']:.4f}: max over methods, steps, distances and seeds = {passkey.max():.3f}"
)

# %% [markdown]
# **Not measurable here.** No model retrieves any key at any distance - not at chance, at zero: these models were
# trained on text only and never predict the key bytes, which never occur in the corpus. $k_{\max}$ is undefined, so
# PI's Table 4 and the passkey half of claim 2 cannot be tested at this scale; notebook 07 records why retrieval
# models are not built yet.

# %%
assert passkey.max() == 0.0

# %% [markdown]
# **(ours) Longer context, used.** Each fine-tuned model's own loss on the last $L$ bytes, with $L'$ against $L$ of
# context, and with $2L'$ against $L'$ (beyond the fine-tuned length):

# %%
# (ours) stated verdicts of "beyond L' the loss on the last L bytes rises", by method
# Direct: consistent here, reproduced on the second machine
STATED_BEYOND = {"Direct": "not decided", "PI": "reproduced", "NTK-aware": "reproduced", "YaRN": "reproduced"}
used, used_verdicts = {}, {}
for m in FT_METHODS:
    a = gap_of(last_l(m, FINAL, EXTEND), last_l(m, FINAL, 1))
    b = gap_of(last_l(m, FINAL, 2 * EXTEND), last_l(m, FINAL, EXTEND))
    used[m] = (a, b)
    used_verdicts[m] = (
        claims.decide(
            f"08.context-used.{m.lower()}.lp-vs-l",
            a,
            "<",
            claim=f"{m} after {FINAL} steps, last L bytes: loss at L' - at L",
            source="ours",
            quantity=LOSS_GAP,
            stated="reproduced",
        ),
        claims.decide(
            f"08.context-used.{m.lower()}.2lp-vs-lp",
            b,
            ">",
            claim=f"{m} after {FINAL} steps, last L bytes: loss at 2L' - at L'",
            source="ours",
            quantity=LOSS_GAP,
            stated=STATED_BEYOND.get(m, NOT_DECIDED),
        ),
    )
markdown_table(
    ["method (after the last step)", "last L bytes: L' - L", "tier", "last L bytes: 2L' - L'", "tier"],
    [
        [m, format_gap(a), used_verdicts[m][0].tier, format_gap(b), used_verdicts[m][1].tier]
        for m, (a, b) in used.items()
    ],
)

# %% [markdown]
# **Up to $L'$: reproduced for all four.** Every fine-tuned model uses the context up to $L'$: the loss on the same
# bytes falls, on every seed (Direct −0.06, PI −0.06, NTK-aware −0.05, YaRN −0.05). **Beyond $L'$** the loss rises:
# reproduced for PI (+0.68, interval [+0.38, +0.97]), YaRN (+0.55, [+0.37, +0.72]) and NTK-aware (+0.16,
# [+0.03, +0.28]); for plain fine-tuning it rises least (+0.13, seeds +0.08, +0.11, +0.19; interval [−0.01, +0.26])
# and is not decided: consistent here, reproduced on the second machine. At $2L'$ plain fine-tuning is also better
# than YaRN (printed with claim 2's numbers: Direct − YaRN below).

# %%
direct_vs_yarn = rows.loss_gap(f"Direct @ {FINAL}", f"YaRN @ {FINAL}", mult=2 * EXTEND)
print(f"after {FINAL} steps, Direct - YaRN at 2L': {format_gap(direct_vs_yarn)}")
for pair in used_verdicts.values():
    for v in pair:
        if v.stated != NOT_DECIDED:
            assert v.holds, v

# %% [markdown]
# Loss against fine-tuning steps (mean of the seeds, band: lowest to highest seed):

# %%
fig, axes = plt.subplots(1, 3, figsize=(13.0, 3.9), sharex=True)
colors = dict(zip(FT_METHODS, ["#000000", "#D55E00", "#0072B2", "#009E73"]))
for ax, (label, mult) in zip(axes, LENGTHS.items()):
    for m in FT_METHODS:
        by_seed = np.stack([loss_by_seed(m, t, mult) for t in STEPS], axis=1)  # (seeds, steps)
        ax.plot(STEPS, by_seed.mean(0), "-o", ms=3, color=colors[m], label=m)
        ax.fill_between(STEPS, by_seed.min(0), by_seed.max(0), color=colors[m], alpha=0.15, lw=0)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xticks(STEPS, [str(t) for t in STEPS])
    ax.set_xlabel("fine-tuning steps")
    ax.set_title(f"loss at {label} = {mult * L_TRAIN} bytes")
axes[0].set_ylabel("loss (nats/byte)")
axes[0].legend()
fig.suptitle(f"Fine-tuned at L' = {EXTEND * L_TRAIN} from L = {L_TRAIN} ({rows.n_seeds} seeds)")
savefig(fig, "08_finetune_loss_vs_steps", profile=profile, exact=False)
plt.show()
