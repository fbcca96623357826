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
# # 01 · RoPE fundamentals: absolute rotations, relative scores
#
# **Claim reproduced.** Rotary position embedding multiplies each pair of query/key features by a rotation
# $R_{m\theta_i}$ that depends on the token's *absolute* position $m$, and the attention score then depends only on
# the *relative* position $n-m$: $\langle R_m q, R_n k\rangle = q^\top R_{n-m} k$. With $\theta_i = b^{-2i/d}$ the
# scores also show a long-term decay with distance.
# Sources: Su Jianlin, "Transformer升级之路：2、博采众长的旋转式位置编码" (<https://kexue.fm/archives/8265>);
# Su et al., *RoFormer*, arXiv:2104.09864, §3.3–3.4 (derivation and long-term decay).
#
# This notebook is the foundation the others build on. It fixes the notation used everywhere in the companion:
# $\theta_i = b^{-2i/d}$ for $i = 0..d/2-1$, base $b$, rotary dimension $d$, position $m$ (or $n$), training
# length $L$.
#
# *Remarks marked **(ours)** are this companion's, not the sources'.*

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

from rope_lib import apply_rope, convert_layout, inv_freq
from rope_lib.companion.plotting import savefig
from rope_lib.companion.report import setup_notebook

setup_notebook(profile, device, seed)
gen = torch.Generator().manual_seed(seed)

# %% [markdown]
# ## 1. One pair: a 2×2 rotation
#
# Take one pair of features $(x_1, x_2)$ and rotate it by the angle $m\theta$:
# $$R_m = \begin{pmatrix}\cos m\theta & -\sin m\theta\\ \sin m\theta & \cos m\theta\end{pmatrix}.$$
# Rotations compose by adding angles and are orthogonal, so $R_m^\top R_n = R_{n-m}$. That single identity is why an
# absolute encoding yields a relative score. We let sympy prove it rather than display it.

# %%
m, n, theta = sp.symbols("m n theta", real=True)
q1, q2, k1, k2 = sp.symbols("q_1 q_2 k_1 k_2", real=True)


def R(pos):
    return sp.Matrix([[sp.cos(pos * theta), -sp.sin(pos * theta)], [sp.sin(pos * theta), sp.cos(pos * theta)]])


q = sp.Matrix([q1, q2])
k = sp.Matrix([k1, k2])

# R_m^T R_n = R_{n-m}
assert sp.simplify(R(m).T * R(n) - R(n - m)) == sp.zeros(2, 2)
# R_m is orthogonal: R_m^T R_m = I (norms are preserved)
assert sp.simplify(R(m).T * R(m) - sp.eye(2)) == sp.zeros(2, 2)
# therefore the score depends on n - m only
score_mn = ((R(m) * q).T * (R(n) * k))[0]
score_rel = (q.T * R(n - m) * k)[0]
assert sp.simplify(score_mn - score_rel) == 0
sp.Eq(sp.Symbol(r"\langle R_m q, R_n k\rangle"), sp.simplify(score_rel))

# %% [markdown]
# ## 2. The complex-number form
#
# Read the pair as one complex number $z = x_1 + i x_2$. The rotation is multiplication by $e^{im\theta}$, and
# the score is the real part of $z_q e^{im\theta}\,\overline{z_k e^{in\theta}} = z_q \bar z_k e^{i(m-n)\theta}$ —
# which again contains only $m-n$. Su derives RoPE in this form (<https://kexue.fm/archives/8265>).

# %%
zq, zk = q1 + sp.I * q2, k1 + sp.I * k2
complex_score = sp.re(sp.expand_complex(zq * sp.exp(sp.I * m * theta) * sp.conjugate(zk * sp.exp(sp.I * n * theta))))
assert sp.simplify(complex_score - score_mn) == 0
# the same product written with the relative phase only
assert sp.simplify(sp.re(sp.expand_complex(zq * sp.conjugate(zk) * sp.exp(sp.I * (m - n) * theta))) - score_mn) == 0
print("Re[z_q e^{im theta} conj(z_k e^{in theta})] == <R_m q, R_n k>  (proved)")

# %% [markdown]
# ## 3. The $d$-dimensional form: a block-diagonal rotation
#
# A head of dimension $d$ is split into $d/2$ pairs, pair $i$ turning at its own frequency $\theta_i$. The full
# rotation $\mathcal{R}_m = \mathrm{diag}(R_{m\theta_0}, \dots, R_{m\theta_{d/2-1}})$ is block-diagonal, so the
# identity holds block by block. We check it for $d=6$ with symbolic, unrelated frequencies (nothing about
# $b^{-2i/d}$ is needed for relativity — the choice of $\theta_i$ only matters for decay and extrapolation).

# %%
d_sym = 6
thetas = sp.symbols(f"theta_0:{d_sym // 2}", positive=True)
qv = sp.Matrix(sp.symbols(f"q_0:{d_sym}", real=True))
kv = sp.Matrix(sp.symbols(f"k_0:{d_sym}", real=True))


def block_rotation(pos):
    blocks = [R(pos).subs(theta, t) for t in thetas]
    return sp.diag(*blocks)


lhs = ((block_rotation(m) * qv).T * (block_rotation(n) * kv))[0]
rhs = (qv.T * block_rotation(n - m) * kv)[0]
assert sp.simplify(sp.expand_trig(lhs - rhs)) == 0
assert sp.simplify(block_rotation(m).T * block_rotation(n) - block_rotation(n - m)) == sp.zeros(d_sym, d_sym)
print(f"d = {d_sym}: <R_m q, R_n k> == q^T R_(n-m) k  (proved block by block)")

# %% [markdown]
# **Which features form a pair is a convention, not math.** RoFormer and Meta's LLaMA pair neighbours
# $(x_{2i}, x_{2i+1})$ ("interleaved"); Hugging Face and GPT-NeoX pair $(x_i, x_{i+d/2})$ ("half-split"). Both are
# the block-diagonal rotation above after a permutation of the features, so a checkpoint moves between them by
# permuting the rows of $W_q$ and $W_k$ — `rope_lib.convert_layout` does this and its tests prove the logits are
# unchanged. **(ours)** Getting the pairing wrong does not crash anything: it silently produces a model that
# attends by the wrong relative positions, which is why we test it rather than document it.

# %% [markdown]
# ## 4. The implementation, checked against the derivation
#
# `rope_lib.apply_rope` computes the angles $m\theta_i$ in float64 and rotates in float32 (float64 for float64
# input), rounding once to the input dtype. We check the relative-position identity numerically at random
# positions up to $10^6$, in float32 and bf16.

# %%
head_dim = 128
head_thetas = inv_freq(head_dim)  # theta_i of the head: float64 tensor, (d/2,)
qx = torch.randn(256, head_dim, generator=gen, dtype=torch.float64)
kx = torch.randn(256, head_dim, generator=gen, dtype=torch.float64)
m_pos = torch.randint(0, 10**6, (256,), generator=gen)
n_pos = torch.randint(0, 10**6, (256,), generator=gen)


def scores(dtype, pos_q, pos_k):
    rq = apply_rope(qx.to(dtype)[:, None, :], pos_q[:, None], head_thetas)[:, 0].double()
    rk = apply_rope(kx.to(dtype)[:, None, :], pos_k[:, None], head_thetas)[:, 0].double()
    return (rq * rk).sum(-1)


exact_rel = scores(torch.float64, torch.zeros_like(m_pos), n_pos - m_pos)  # q at 0, k at n - m
norm = qx.norm(dim=-1) * kx.norm(dim=-1)
rel_err = {}
for dtype in (torch.float32, torch.bfloat16):
    rel_err[dtype] = ((scores(dtype, m_pos, n_pos) - exact_rel).abs() / norm).max().item()
# float32: rounding of the inputs and of a 128-term dot product; bf16: 8-bit mantissa on q and k.
assert rel_err[torch.float32] < 1e-6, rel_err
assert rel_err[torch.bfloat16] < 2e-2, rel_err


# What float64 angles buy: the same check with angles computed the naive way, positions * theta in the input dtype.
def naive_bf16_scores(pos_q, pos_k):
    def rot(x, pos):
        a = pos.to(torch.bfloat16)[:, None] * head_thetas.to(torch.bfloat16)
        x = x.to(torch.bfloat16)
        x1, x2 = x[:, : head_dim // 2], x[:, head_dim // 2 :]
        return torch.cat((x1 * a.cos() - x2 * a.sin(), x1 * a.sin() + x2 * a.cos()), -1).double()

    return (rot(qx, pos_q) * rot(kx, pos_k)).sum(-1)


naive_err = ((naive_bf16_scores(m_pos, n_pos) - exact_rel).abs() / norm).max().item()
assert naive_err > 10 * rel_err[torch.bfloat16]

# %% tags=["nbval-check-output"]
print("max |score error| / (|q||k|) at positions up to 1e6:")
print(f"  float32 input                      : {'< 1e-6' if rel_err[torch.float32] < 1e-6 else 'FAIL'}")
print(f"  bf16 input (rope_lib, fp64 angles) : {'< 2e-2' if rel_err[torch.bfloat16] < 2e-2 else 'FAIL'}")
print(f"  bf16 angles computed in bf16       : {'> 10x worse' if naive_err > 10 * rel_err[torch.bfloat16] else 'FAIL'}")

# %% [markdown]
# The naive bf16 version is not slightly worse, it is *wrong*: at $m \approx 10^6$ a bf16 product $m\theta_0$
# is only representable to within $\pm 2^{12}$ radians, so the fastest pairs get random phases. This is a known
# bug class in implementations that build the angle table in the model's dtype.
#
# Next: the two layouts agree after the permutation, and partial rotary leaves the tail untouched.

# %%
x = torch.randn(3, 10, head_dim, generator=gen, dtype=torch.float64)
pos = torch.arange(10) * 1013
y_inter = apply_rope(x, pos, head_thetas, layout="interleaved")
y_half = apply_rope(convert_layout(x, src="interleaved", dst="half_split"), pos, head_thetas, layout="half_split")
layout_gap = (convert_layout(y_inter, src="interleaved", dst="half_split") - y_half).abs().max().item()
assert layout_gap < 1e-12

rotary_dim = head_dim // 4  # e.g. partial_rotary_factor = 0.25
y_part = apply_rope(x, pos, inv_freq(rotary_dim))
assert torch.equal(y_part[..., rotary_dim:], x[..., rotary_dim:])
part_gap = (y_part[..., :rotary_dim] - apply_rope(x[..., :rotary_dim], pos, inv_freq(rotary_dim))).abs().max().item()
assert part_gap < 1e-12

# %% tags=["nbval-check-output"]
print(f"interleaved vs half-split after permutation: max gap {'< 1e-12' if layout_gap < 1e-12 else 'FAIL'}")
print(f"partial rotary ({rotary_dim}/{head_dim}): tail unchanged, head == full RoPE of the head: {part_gap < 1e-12}")

# %% [markdown]
# ## 5. Long-term decay (RoFormer §3.4.3)
#
# Write the score of one head as $\mathrm{Re}\sum_{i} h_i e^{i(m-n)\theta_i}$ with $h_i = z_{q,i}\bar z_{k,i}$.
# Abel summation with $S_j = \sum_{i<j} e^{i(m-n)\theta_i}$ gives
# $\left|\sum_i h_i e^{i(m-n)\theta_i}\right| \le \max_i |h_{i+1}-h_i| \sum_{j=1}^{d/2} |S_j|$, so
# $\frac{1}{d/2}\sum_j |S_j|$ is a *relative upper bound* on the score as a function of the distance $m-n$.
# RoFormer plots it for $d=128$, $b=10^4$ and observes that it decays. We first assert the summation-by-parts
# identity it rests on, then plot the bound for several bases.

# %%
J = 4
h = sp.symbols(f"h_0:{J + 1}")  # h_J = 0 closes the sum
e = sp.symbols(f"e_0:{J}")  # stands for e^{i(m-n)theta_i}
S = [sum(e[:j], sp.Integer(0)) for j in range(J + 1)]  # S_0 = 0, S_j = e_0 + ... + e_{j-1}
lhs_abel = sum(h[i] * e[i] for i in range(J))
rhs_abel = sum(S[j + 1] * (h[j] - h[j + 1]) for j in range(J))
assert sp.expand(lhs_abel - rhs_abel.subs(h[J], 0)) == 0
print("sum_i h_i e_i == sum_j S_{j+1} (h_j - h_{j+1})  with h_{d/2} = 0  (proved for d/2 = 4)")


# %%
def relative_upper_bound(distances: np.ndarray, d: int, base: float) -> np.ndarray:
    """(1/(d/2)) * sum_j |S_j|, S_j = sum_{i<j} exp(i * distance * theta_i)  (RoFormer's decay bound)."""
    th = inv_freq(d, base).numpy()
    phases = np.exp(1j * np.outer(distances, th))  # float64 / complex128
    partial_sums = np.cumsum(phases, axis=1)
    return np.abs(partial_sums).mean(axis=1)


d_decay = 128
distances = np.unique(np.round(np.logspace(0, 5, 600)).astype(np.int64))
decay_bases = [1e2, 1e4, 1e6]
decay = {b: relative_upper_bound(distances, d_decay, b) for b in decay_bases}

# The bound starts at (d/2 + 1)/2 at distance 0 (all phases equal 1) ...
assert math.isclose(relative_upper_bound(np.array([0]), d_decay, 1e4)[0], (d_decay / 2 + 1) / 2)
# ... and decays: far away it is a small fraction of its value at distance 1.
far = distances >= 1000
assert decay[1e4][far].max() < 0.5 * decay[1e4][0]
# A larger base decays more slowly (its low frequencies need longer distances to dephase).
mid = (distances >= 30) & (distances <= 300)
assert decay[1e6][mid].mean() > decay[1e4][mid].mean() > decay[1e2][mid].mean()

fig, ax = plt.subplots()
for b in decay_bases:
    ax.plot(distances, decay[b], label=f"b = {b:.0e}")
ax.set_xscale("log")
ax.set_xlabel("relative distance |m - n|")
ax.set_ylabel(r"relative upper bound $\frac{1}{d/2}\sum_j |S_j|$")
ax.set_title(f"RoPE long-term decay, d = {d_decay}")
ax.legend()
savefig(fig, "01_long_term_decay", profile=profile)
plt.show()

# %% tags=["nbval-check-output"]
for b in decay_bases:
    at = {dist: float(relative_upper_bound(np.array([dist]), d_decay, b)[0]) for dist in (1, 100, 10_000)}
    print(f"b = {b:.0e}: bound at distance 1 / 100 / 10000 = {at[1]:.2f} / {at[100]:.2f} / {at[10_000]:.2f}")

# %% [markdown]
# ## 6. Which pairs complete a turn within the training length?
#
# Pair $i$ has wavelength $\lambda_i = 2\pi/\theta_i = 2\pi b^{2i/d}$ tokens. If $\lambda_i < L$ the model saw the
# pair's whole circle during training; if $\lambda_i > L$ it only ever saw an arc, and a longer test sequence shows
# it angles it never saw. Every context-extension method in the later notebooks is a rule for treating these two
# groups differently: position interpolation squeezes all pairs, NTK-aware scaling mostly the slow ones,
# NTK-by-parts/YaRN only those with $\lambda_i > L$. **(ours)** This figure is the one to keep in mind.


# %%
def full_turn_pairs(d: int, base: float, length: int) -> int:
    """How many pairs have wavelength 2*pi/theta_i <= length (complete at least one full turn)."""
    return int((2 * math.pi / inv_freq(d, base) <= length).sum())


configs = [
    (128, 1e4, 4096, "Llama-2-like: d=128, b=1e4"),
    (128, 5e5, 8192, "Llama-3-like: d=128, b=5e5"),
    (64, 1e4, 512, "d=64, b=1e4"),
]
fig, ax = plt.subplots()
for d, b, L, label in configs:
    wavelength = 2 * math.pi / inv_freq(d, b).numpy()
    (line,) = ax.plot(np.arange(d // 2), wavelength, marker=".", label=label)
    ax.axhline(L, color=line.get_color(), linestyle="--", linewidth=1)
    ax.annotate(f"L = {L}", (d // 2 - 1, L), color=line.get_color(), fontsize=8, ha="right", va="bottom")
ax.set_yscale("log")
ax.set_xlabel("pair index i")
ax.set_ylabel(r"wavelength $2\pi/\theta_i$ (tokens)")
ax.set_title("Pairs below their dashed line complete a full turn within L")
ax.legend(loc="upper left")
savefig(fig, "01_wavelengths_vs_training_length", profile=profile)
plt.show()

# %% tags=["nbval-check-output"]
for d, b, L, label in configs:
    print(f"{label}, L = {L}: {full_turn_pairs(d, b, L)} of {d // 2} pairs complete a full turn")

# %% [markdown]
# ## Summary
#
# * Proved with sympy: $R_m^\top R_n = R_{n-m}$, the complex form, and the block-diagonal $d$-dimensional form, so
#   the score depends only on $n-m$ for any choice of frequencies.
# * Checked `rope_lib.apply_rope` against that identity at positions up to $10^6$: float32 to $10^{-6}$, bf16 to
#   bf16 rounding; computing the angles in bf16 instead is more than ten times worse.
# * Reproduced RoFormer's long-term decay of the relative upper bound, and showed that a larger base decays
#   more slowly.
# * For the Llama-2-like configuration, 46 of the 64 pairs complete a turn within $L = 4096$ (section 6, computed
#   there); the other 18, which only ever turned through an arc, are what context extension is about (notebooks
#   02–08).
