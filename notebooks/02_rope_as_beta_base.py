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
# # 02 · RoPE as a base-β number: position interpolation, NTK-aware scaling and the mixed radix
#
# **Claim reproduced.** Read RoPE's $d/2$ angles as the digits of the position written in base
# $\beta = b^{2/d}$. To reach $s$ times longer contexts without training, *position interpolation* (PI) divides
# every digit by $s$, squeezing even the fastest one; *NTK-aware* scaling instead enlarges the base so that only the
# slow digits are squeezed, which gives the new base $b\,s^{d/(d-2)}$. Su then "fixes" NTK-aware scaling by
# spreading the factor evenly over all $d/2$ digits and generalises both to a *mixed radix* family with exponent
# $p$, whose ends are PI ($p = 0$) and NTK-fixed ($p = 1$).
#
# Sources: Su Jianlin, "Transformer升级之路：10、RoPE是一种β进制编码" (<https://kexue.fm/archives/9675>) and
# "Transformer升级之路：11、将β进制位置进行到底" (<https://kexue.fm/archives/9706>); Chen et al., *Extending Context
# Window of Large Language Models via Positional Interpolation*, arXiv:2306.15595; the NTK-aware base is bloc97's
# (reddit r/LocalLLaMA, 2023), derived here as Su does.
#
# Notation: $\theta_i = b^{-2i/d}$, $i = 0..d/2-1$ (pair $i$ is digit $m = i+1$), base $b$, rotary dim $d$, scale
# $s$ (Su writes $k$), training length $L$. *Remarks marked **(ours)** are this companion's, not the sources'.*

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
from rope_lib import scaling
from rope_lib.companion.plotting import savefig
from rope_lib.companion.report import setup_notebook

setup_notebook(profile, device, seed)  # analytic notebook: float64 on the CPU whatever the device

# The configuration of Su's posts: head size d = 128, base 1e4, scale s = 8 (train 512, test 4096);
# his LLaMA-2 patch uses k = 12, p = 0.75; his GAU runs p = 0.625.
D, BASE, S_SU = 128, 10_000.0, 8.0
P_GAU, K_LLAMA2, P_LLAMA2 = 0.625, 12.0, 0.75

# %% [markdown]
# ## 1. Positions as base-β digits
#
# In base $\beta$ the $m$-th digit (from the right, $m = 1, 2, \dots$) of an integer $n$ is
# $\lfloor n/\beta^{m-1}\rfloor \bmod \beta$: it is fixed by the *fractional part* of $n/\beta^{m}$, i.e. by a
# phase. RoPE stores exactly such phases: pair $i$ carries $\cos, \sin$ of
# $n\theta_i = n\,b^{-2i/d} = n/\beta^{i}$ with $\beta = b^{2/d}$. So RoPE writes $n$ in base $\beta$, with
# cos/sin in place of the floor-and-mod (they are continuous, which is what lets the model compare digits), one
# digit per pair, fastest digit first. For $d = 128$, $b = 10^4$: $\beta = 10^{1/16} \approx 1.155$.

# %%
b, d, s, n = sp.symbols("b d s n", positive=True)
i, m = sp.symbols("i m", nonnegative=True)
beta = b ** (2 / d)
theta_i = b ** (-2 * i / d)
assert sp.simplify(theta_i - beta ** (-i)) == 0  # theta_i = beta^(-i): pair i is the digit m = i + 1

# the digit/phase correspondence, checked exhaustively for base 10 and 4 digits
for number in range(10_000):
    for digit in range(4):
        phase = (number / 10 ** (digit + 1)) % 1.0  # fraction of a turn of the "angle" n / beta^(m)
        assert math.floor(10 * phase + 1e-9) == (number // 10**digit) % 10
print(f"beta = b^(2/d) = {BASE ** (2 / D):.6f} for d = {D}, b = {BASE:g}; digit <-> phase checked for 0..9999")

# %% [markdown]
# ## 2. Two ways to write larger numbers with the same digits
#
# A model trained on $n < L$ has seen every value of its fast digits but only small values of its slow digits.
# To accept $n < sL$:
#
# * **PI** (interpolation): write $n/s$ instead of $n$. Every digit becomes $n/(s\beta^{i})$: all $d/2$ pairs are
#   divided by $s$, including the fastest, whose neighbouring positions now differ by $1/s$ of what was trained.
# * **NTK-aware** (change of base): keep $n$, enlarge the base $\beta \to \beta\lambda$ so that the *slowest*
#   digit at $sL$ stays within what it saw at $L$ — the same demand PI meets for that digit. Solve for $\lambda$:
#   $$\frac{n}{(\beta\lambda)^{d/2-1}} = \frac{n/s}{\beta^{d/2-1}}.$$


# %%
def same_log(lhs, rhs):
    """lhs == rhs for positive expressions, via log(lhs) - log(rhs) == 0 (all symbols here are positive, so
    expanding logs of powers is valid; sympy will not do it for symbolic exponents unless told)."""
    return sp.simplify(sp.expand_log(sp.log(lhs) - sp.log(rhs), force=True)) == 0


slowest = d / 2 - 1  # exponent of the last pair, i = d/2 - 1
# take logs of both sides (both positive): a linear equation in ell = log(lambda)
ell = sp.symbols("ell", real=True)
ell_sol = sp.solve(sp.Eq(-slowest * (sp.log(beta) + ell), -sp.log(s) - slowest * sp.log(beta)), ell)
assert len(ell_sol) == 1 and sp.simplify(ell_sol[0] - 2 * sp.log(s) / (d - 2)) == 0
lam_sol = s ** (2 / (d - 2))  # lambda = exp(ell)
new_b = (beta * lam_sol) ** (d / 2)  # b' = beta'^(d/2)
assert same_log(new_b, b * s ** (d / (d - 2)))  # b' = b s^(d/(d-2))
# consequences, from the solved base (not from the formula typed again): the slowest pair is PI's
theta_ntk = new_b ** (-2 * i / d)
assert same_log(theta_ntk.subs(i, d / 2 - 1), theta_i.subs(i, d / 2 - 1) / s)
assert same_log(theta_ntk / theta_i, s ** (-2 * i / (d - 2)))  # the geometric blend in between
sp.Eq(sp.Symbol("b'"), b * s ** (d / (d - 2)))

# %% [markdown]
# So NTK-aware scaling is plain RoPE with base $b' = b\,s^{d/(d-2)}$: it *extrapolates* the fast digits (no change
# at $i = 0$), *interpolates* the slowest one exactly as PI does, and blends geometrically in between:
# $\theta'_i/\theta_i = s^{-2i/(d-2)}$.
#
# ## 3. NTK-fixed and the mixed radix (archives/9706)
#
# Su's "fixed" version counts the digits $m = 1..d/2$ and gives each the same extra radix $\lambda = s^{2/d}$:
# $$\theta'_m = \frac{1}{\lambda(\beta\lambda)^{m-1}} = \theta_{m-1}\,s^{-2m/d},$$
# so after $d/2$ digits the factor is exactly $s$ (PI at the slowest pair) and the fastest pair is divided by the
# small $s^{2/d}$. The *mixed radix* lets the stretch differ per digit: digit $m$'s cumulative stretch is
# $\lambda_1\cdots\lambda_m = e^{a m^p}$, with $a$ fixed by requiring the full factor $s$ at the last digit,
# $a (d/2)^p = \ln s$:
# $$\theta'_i = \theta_i\,e^{-a (i+1)^p}.$$
#
# Su's table row "NTK-RoPE-old" is not the base above: 9706 writes it with the same $\lambda = s^{2/d}$ for the whole
# base, i.e. base $b\,s$ (9675 calls the two nearly equal; at $d = 32$ they differ, $8\cdot10^4$ vs $9.2\cdot10^4$ for
# $b = 10^4$, $s = 8$). Under that reading NTK-fixed is exactly NTK-old shifted by one digit: NTK-fixed treats pair
# $i$ as NTK-old treats pair $i+1$ (asserted below). We keep both: **NTK-aware** = bloc97's $b\,s^{d/(d-2)}$,
# **NTK-old** = Su's $b\,s$.

# %%
p, a = sp.symbols("p a", positive=True)
lam_fixed = s ** (2 / d)
theta_fixed = 1 / (lam_fixed * (beta * lam_fixed) ** (m - 1))
assert same_log(theta_fixed, theta_i.subs(i, m - 1) * s ** (-2 * m / d))
assert same_log(theta_fixed.subs(m, d / 2), theta_i.subs(i, d / 2 - 1) / s)  # PI at the slowest pair
# Su's NTK-old row: base b*s. NTK-fixed's pair i (digit m = i + 1) is scaled as NTK-old scales pair i + 1
theta_ntk_old = (b * s) ** (-2 * i / d)
assert same_log(theta_fixed.subs(m, i + 1) / theta_i, (theta_ntk_old / theta_i).subs(i, i + 1))
assert not same_log(theta_ntk_old, theta_ntk)  # and it is not bloc97's NTK-aware base

a_sol = sp.solve(sp.Eq(a * (d / 2) ** p, sp.log(s)), a)[0]
cumulative = sp.exp(a_sol * m**p)  # lambda_1 ... lambda_m
# (the last digit is then divided by exactly s: that is the equation a was solved from, so it is not re-asserted)
# limits: p = 1 is NTK-fixed, p -> 0 is PI (every digit divided by s)
assert same_log(cumulative.subs(p, 1), lam_fixed**m)
assert sp.simplify(sp.limit(cumulative, p, 0) - s) == 0
# the per-digit radix stretch lambda_m = exp(a (m^p - (m-1)^p)) shrinks with m when p < 1
stretch = sp.exp(a * (m**p - (m - 1) ** p))
assert sp.simplify(sp.diff(m**p - (m - 1) ** p, m).subs({p: sp.Rational(5, 8), m: 3})) < 0
sp.Eq(sp.Symbol("rho"), sp.exp(-a_sol * (i + 1) ** p))  # rho = theta'_i / theta_i

# %% [markdown]
# For $0 < p < 1$, $x^p > x$ on $(0, 1)$ with $x = m/(d/2)$, so the mixed radix squeezes every digit more than
# NTK-fixed and less than PI; the per-digit stretch $\lambda_m$ is largest for the fast digits and decays with $m$.
#
# ## 4. `rope_lib` against the formulas
#
# Each method is one function in `rope_lib.scaling`, reachable by name through `rope_lib.frequencies`. We evaluate
# the sympy expressions above at Su's configuration and compare pair by pair, in float64.

# %%
idx = np.arange(D // 2)
subs = {b: BASE, d: D}


def sym_profile(expr, var, values):
    """Evaluate a sympy per-pair expression (in i, or in the digit m = i+1) in float64 at d = D, b = BASE."""
    f = sp.lambdify(var, expr.subs({**subs, **values}), "numpy")
    x = idx.astype(np.float64) + (0.0 if var == i else 1.0)
    return torch.tensor(np.broadcast_to(np.asarray(f(x), dtype=np.float64), (D // 2,)).copy())


theta = rope_lib.inv_freq(D, BASE)
mixed = theta_i.subs(i, m - 1) / cumulative
closed = {
    "PI": sym_profile(theta_i / s, i, {s: S_SU}),
    "NTK-aware": sym_profile(theta_ntk, i, {s: S_SU}),
    "NTK-old (Su, base b·s)": sym_profile(theta_ntk_old, i, {s: S_SU}),
    "NTK-fixed": sym_profile(theta_fixed, m, {s: S_SU}),
    "NTK-mixed p=0.625": sym_profile(mixed, m, {s: S_SU, p: P_GAU}),
    "Su LLaMA-2 patch k=12, p=0.75": sym_profile(mixed, m, {s: K_LLAMA2, p: P_LLAMA2}),
}
params = {
    "PI": {"rope_type": "linear", "rope_theta": BASE, "factor": S_SU},
    "NTK-aware": {"rope_type": "ntk", "rope_theta": BASE, "factor": S_SU},
    "NTK-old (Su, base b·s)": {"rope_type": "default", "rope_theta": BASE * S_SU},
    "NTK-fixed": {"rope_type": "ntk_fixed", "rope_theta": BASE, "factor": S_SU},
    "NTK-mixed p=0.625": {"rope_type": "ntk_mixed", "rope_theta": BASE, "factor": S_SU, "p": P_GAU},
    "Su LLaMA-2 patch k=12, p=0.75": {"rope_type": "ntk_mixed", "rope_theta": BASE, "factor": K_LLAMA2, "p": P_LLAMA2},
}
ours = {name: rope_lib.frequencies(params[name], D)[0] for name in params}
gaps = {name: ((ours[name] - closed[name]).abs() / closed[name]).max().item() for name in params}
assert max(gaps.values()) < 1e-12, gaps
assert math.isclose(scaling.ntk_base(D, BASE, S_SU), BASE * S_SU ** (D / (D - 2)), rel_tol=1e-14)
# the limits of the family, on the implementation
for s_val in (2.0, S_SU, K_LLAMA2):
    fixed = scaling.ntk_fixed_frequencies(D, BASE, s_val)[0]
    pi = scaling.linear_frequencies(D, BASE, s_val)[0]
    assert torch.allclose(scaling.ntk_mixed_frequencies(D, BASE, s_val, 1.0)[0], fixed, rtol=1e-14, atol=0)
    assert torch.allclose(scaling.ntk_mixed_frequencies(D, BASE, s_val, 0.0)[0], pi, rtol=1e-14, atol=0)

# %% tags=["nbval-check-output"]
for name, gap in gaps.items():
    print(f"{name:30s} rope_lib vs sympy: max relative gap {'< 1e-12' if gap < 1e-12 else 'FAIL'}")
print(f"NTK-aware base for d={D}, b={BASE:g}, s={S_SU:g}: b' = {scaling.ntk_base(D, BASE, S_SU):,.1f}")

# %% [markdown]
# **Against transformers.** transformers has PI (`linear`) but no static NTK-aware type; its `dynamic` type is
# NTK-aware with a base recomputed from the current length $n$, and with `factor = 1` its scale is $n/L$. So
# the static NTK base for $s$ is transformers' `dynamic` at $n = sL$ **(ours)**. Both agree with `rope_lib` to
# float32 rounding (transformers computes in float32).

# %%
from transformers import LlamaConfig  # noqa: E402
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402

L_SU = 512
cfg_pi = LlamaConfig(
    head_dim=D,
    hidden_size=4 * D,
    num_attention_heads=4,
    max_position_embeddings=L_SU,
    rope_parameters={"rope_type": "linear", "rope_theta": BASE, "factor": S_SU},
)
cfg_dyn = LlamaConfig(
    head_dim=D,
    hidden_size=4 * D,
    num_attention_heads=4,
    max_position_embeddings=L_SU,
    rope_parameters={"rope_type": "dynamic", "rope_theta": BASE, "factor": 1.0},
)
hf_pi, _ = ROPE_INIT_FUNCTIONS["linear"](cfg_pi)
hf_ntk, _ = ROPE_INIT_FUNCTIONS["dynamic"](cfg_dyn, seq_len=int(S_SU * L_SU))


def rel_f32(x64, x32):
    return ((x64.float().double() - x32.double()).abs() / x32.double()).max().item()


hf_gap = {
    "PI vs linear": rel_f32(ours["PI"], hf_pi),
    "NTK-aware vs dynamic(factor 1, n = sL)": rel_f32(ours["NTK-aware"], hf_ntk),
}
assert max(hf_gap.values()) < 1e-6, hf_gap

# %% tags=["nbval-check-output"]
for name, gap in hf_gap.items():
    print(f"transformers {name}: max relative difference {'< 1e-6' if gap < 1e-6 else 'FAIL'}")

# %% [markdown]
# ## 5. Figure: how much each pair is interpolated
#
# The whole family is one picture: the per-pair ratio $\theta'_i/\theta_i$ (1 = extrapolated as trained,
# $1/s$ = interpolated as PI).

# %%
ratio = {name: (ours[name] / theta).numpy() for name in ours}
styles = {
    "PI": "-",
    "NTK-aware": "-",
    "NTK-old (Su, base b·s)": "-.",
    "NTK-fixed": "--",
    "NTK-mixed p=0.625": "-",
    "Su LLaMA-2 patch k=12, p=0.75": ":",
}
labels = {"PI": f"PI (every pair 1/s = 1/{S_SU:g})"}
fig, ax = plt.subplots()
for name, r in ratio.items():
    ax.plot(idx, r, styles[name], label=labels.get(name, name))
ax.set_yscale("log")
ax.set_xlabel("pair index i (digit m = i + 1; fast to slow)")
ax.set_ylabel(r"interpolation factor $\theta'_i/\theta_i$")
ax.set_title(f"Per-pair scaling, d = {D}, b = {BASE:.0e}, s = {S_SU:g} (k = 12 for the LLaMA-2 patch)")
ax.legend(loc="upper right")
savefig(fig, "02_interpolation_factor", profile=profile, exact=True)
plt.show()

# %% tags=["nbval-check-output"]
show = [0, 16, 32, 48, 63]
print("theta'_i / theta_i at pair i =", show)
for name, r in ratio.items():
    print(f"  {name:30s} " + "  ".join(f"{r[k]:.4f}" for k in show))

# %% [markdown]
# ## 6. Published vs reproduced, and the claims
#
# Su's GAU results (WuDao, train 512, test 4096 = 8×, no fine-tuning; next-token accuracy, %, from archives/9706):
#
# | method | 4096 repeated | 4096 non-repeated |
# |---|---|---|
# | Baseline (direct extrapolation) | 24.17 | 23.16 |
# | PI-RoPE | 15.04 | 13.54 |
# | NTK-RoPE-old (base $b\,s$) | 51.28 | 39.27 |
# | NTK-RoPE-fixed | 51.86 | 39.61 |
# | NTK-RoPE-mixed ($p$ = 0.625) | 53.09 | 40.12 |
#
# These are trained-model numbers; this notebook reproduces the *mechanism* analytically (notebook 04 makes the
# trained comparison at our scale). What the posts claim about the mechanism, asserted:

# %%
r_pi, r_ntk_aware, r_fix, r_mix = (ratio[k] for k in ("PI", "NTK-aware", "NTK-fixed", "NTK-mixed p=0.625"))
r_ntk_old = ratio["NTK-old (Su, base b·s)"]
# PI squeezes every digit by s, the fastest included
assert np.allclose(r_pi, 1 / S_SU, rtol=1e-14)
# NTK-aware leaves the fastest digit as trained and squeezes the slowest exactly as PI
assert r_ntk_aware[0] == 1.0 and math.isclose(r_ntk_aware[-1], 1 / S_SU, rel_tol=1e-12)
# NTK-fixed and every mixed radix also end exactly at PI's slowest digit ...
assert all(math.isclose(r[-1], 1 / S_SU, rel_tol=1e-12) for r in (r_fix, r_mix))
# ... and keep the fast digits nearly as trained: NTK-fixed divides the fastest by s^(2/d) only
assert math.isclose(r_fix[0], S_SU ** (-2 / D), rel_tol=1e-12)
# The family is ordered pair by pair: PI <= mixed(p) <= fixed, and mixed decreases with p -> 0 towards PI
assert np.all(r_pi <= r_mix * (1 + 1e-12)) and np.all(r_mix <= r_fix * (1 + 1e-12))
r_mix_by_p = [(scaling.ntk_mixed_frequencies(D, BASE, S_SU, pv)[0] / theta).numpy() for pv in (0.25, 0.5, 0.75, 1.0)]
assert all(np.all(lo <= hi * (1 + 1e-12)) for lo, hi in zip(r_mix_by_p, r_mix_by_p[1:]))
# Every NTK variant interpolates the slow digits and extrapolates the fast ones: the ratio falls monotonically
assert all(np.all(np.diff(r) <= 1e-15) for r in (r_ntk_aware, r_ntk_old, r_fix, r_mix))
# Su's NTK-old keeps the fastest pair too, and NTK-fixed is it shifted by one digit (pair i as NTK-old's pair i + 1)
assert r_ntk_old[0] == 1.0 and np.allclose(r_fix[:-1], r_ntk_old[1:], rtol=1e-12, atol=0)

# the numbers quoted in the remark below
assert (round(r_ntk_aware[32], 2), round(r_fix[32], 2), round(r_mix[32], 2)) == (0.35, 0.34, 0.25)

# %% tags=["nbval-check-output"]
claims = {
    "PI divides every pair by s": bool(np.allclose(r_pi, 1 / S_SU, rtol=1e-14)),
    "NTK-aware keeps the fastest pair, matches PI at the slowest": r_ntk_aware[0] == 1.0
    and math.isclose(r_ntk_aware[-1], 1 / S_SU, rel_tol=1e-12),
    "NTK-fixed / mixed match PI at the slowest pair": all(
        math.isclose(r[-1], 1 / S_SU, rel_tol=1e-12) for r in (r_fix, r_mix)
    ),
    "NTK-fixed = Su's NTK-old (base b s) shifted by one digit": bool(
        np.allclose(r_fix[:-1], r_ntk_old[1:], rtol=1e-12)
    ),
    "ordering PI <= mixed(p) <= fixed, monotone in p": bool(
        np.all(r_pi <= r_mix * (1 + 1e-12)) and np.all(r_mix <= r_fix * (1 + 1e-12))
    ),
}
print("claims (analytic), each computed above:")
for claim, holds in claims.items():
    print(f"  {claim:58s}: {holds}")

# %% [markdown]
# **(ours)** Where the variants differ most is the middle of the spectrum: at pair 32 of 64, NTK-aware keeps
# $s^{-64/126} \approx 0.35$ of the frequency, NTK-fixed $s^{-66/128} \approx 0.34$ (Su's NTK-old shifted by one
# digit), the $p = 0.625$ mixed radix only $\approx 0.25$ (asserted above). The mixed radix buys its better
# accuracy in Su's table by interpolating the middle digits harder, i.e. by moving towards PI for pairs whose
# wavelengths are comparable to the training length. Notebook 03 shows the other way of drawing this line: by how
# many turns each pair makes within $L$ (NTK-by-parts, YaRN, Llama 3).
#
# ## Summary
#
# * Proved with sympy: RoPE's angles are base-$\beta$ digits with $\beta = b^{2/d}$; matching the slowest digit to
#   PI gives the NTK-aware base $b\,s^{d/(d-2)}$; NTK-fixed is $\theta_i s^{-2(i+1)/d}$; the mixed radix
#   $\theta_i e^{-a(i+1)^p}$ with $a(d/2)^p = \ln s$ has PI ($p=0$) and NTK-fixed ($p=1$) as its ends.
# * `rope_lib.frequencies` agrees with every closed form to $10^{-12}$ and with transformers (PI, and NTK-aware as
#   `dynamic` at $n = sL$) to float32 rounding.
# * The analytic claims hold: PI squeezes all digits, NTK variants keep the fast ones and match PI at the slowest,
#   and the mixed radix sits between PI and NTK-fixed, pair by pair.
