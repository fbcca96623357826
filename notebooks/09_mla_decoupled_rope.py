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
# # 09 · MLA and decoupled RoPE: why the rotary part gets its own shared key
#
# **Claim reproduced.** Multi-head latent attention (MLA) caches one latent vector $c_i = x_i W_{dkv}$ per token
# instead of per-head keys and values; at decode time the key up-projection $W_{uk}$ is folded into the query and the
# value up-projection $W_{uv}$ into the output, so attention runs in the latent space straight from the cache.
# RoPE breaks this folding: between $W_q$ and $W_{uk}^\top$ sits $\mathcal{R}_t\mathcal{R}_i^\top =
# \mathcal{R}_{t-i}$, which changes with the relative position, so no fixed matrix absorbs it. DeepSeek-V2's fix is
# *decoupled RoPE*: a few extra rotary dimensions per head ($d_r = 64$) whose key $\mathcal{R}_i (x_i W_{kr})$ is
# one vector shared by all heads and cached next to $c_i$. With $d_c = 512$ the cache is
# $d_c + d_r = 576$ elements per token and layer (Table 1 of the paper counts all $l$ layers; the counts here are
# Table 1's divided by $l$), as much as GQA with 2.25 groups at $d_h = 128$, against $2 n_h d_h = 32768$ for MHA with
# DeepSeek-V2's 128 heads.
#
# Sources: DeepSeek-AI, *DeepSeek-V2: A Strong, Economical, and Efficient Mixture-of-Experts Language Model*,
# arXiv:2405.04434 (§2.1.2-2.1.3 and Table 1: KV cache per token of MHA, GQA, MQA and MLA; §3.1.2 hyper-parameters);
# DeepSeek-AI, *DeepSeek-V3 Technical Report*, arXiv:2412.19437 (§4.2 hyper-parameters); Su Jianlin,
# "缓存与效果的极限拉扯：从MHA、MQA、GQA到MLA" (<https://kexue.fm/archives/10091>); Touvron et al., *Llama 2*,
# arXiv:2307.09288 (§2.2: GQA for the 70B model) and its released configurations (7B: 32 layers of 32 heads; 70B:
# 80 layers, 64 query heads, 8 key-value heads; $d_h = 128$).
# Reference implementation: Hugging Face transformers `DeepseekV3Attention` (version 5.23.0, pinned), checked
# numerically in section 5.
#
# Notation (row vectors, $y = xW$): hidden size $D$, heads $n_h$, latent $d_c$ (`kv_lora_rank`), per-head
# no-rope dim $d_n$ (`qk_nope_head_dim`), rope dim $d_r$ (`qk_rope_head_dim`), value dim $d_v$; $\mathcal{R}_m$ is
# RoPE at position $m$ with $\theta_i = b^{-2i/d_r}$. *Remarks marked **(ours)** are this companion's, not the
# sources'.*

# %% tags=["parameters"]
profile: str = "smoke"  # "smoke" (CPU, minutes, what is committed) or "full" (one GPU)
device: str = "auto"  # "auto" -> cuda when present, else cpu; or "cpu", "cuda", "cuda:N"
seed: int = 0  # every random draw in the notebook derives from it

# %%
import math
from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch

import rope_lib
from rope_lib.companion.plotting import savefig
from rope_lib.companion.report import setup_notebook
from rope_lib.mla import (
    MLAConfig,
    MLAWeights,
    deepseek_softmax_scale,
    gqa_equivalent_groups,
    kv_cache_bytes,
    kv_cache_elements,
    mla_attention,
    mla_attention_absorbed,
    mla_decode_cost,
    weights_from_deepseek_v3,
)

setup_notebook(profile, device, seed)  # analytic notebook: float64 on the CPU whatever the device
torch.set_num_threads(1)  # every tensor here is tiny: extra threads only add overhead (and jitter on shared CPUs)

# Published architecture sizes (sources in the title cell): LLaMA-2 from Meta's released configurations, DeepSeek
# from the V2 (§3.1.2: 60 layers) and V3 (§4.2: 61 layers) reports. d_h = 128 everywhere.
MODELS = {
    "LLaMA-2-7B (MHA)": dict(kind="mha", n_layers=32, n_heads=32, head_dim=128),
    "LLaMA-2-70B (GQA)": dict(kind="gqa", n_layers=80, n_heads=64, head_dim=128, n_kv_heads=8),
    # ours, for comparison: DeepSeek-V2's 128 heads of 128 with MHA's cache (the MHA of Table 1's formulas)
    "DeepSeek-V2 as MHA": dict(kind="mha", n_layers=60, n_heads=128, head_dim=128),
    "DeepSeek-V2 (MLA)": dict(kind="mla", n_layers=60, kv_lora_rank=512, rope_head_dim=64),
    "DeepSeek-V3 (MLA)": dict(kind="mla", n_layers=61, kv_lora_rank=512, rope_head_dim=64),
}
# DeepSeek-V2's MLA layer (§3.1.2): D = 5120, 128 heads, d_c = 512, d_c' = 1536, d_n = d_v = 128, d_r = 64
DEEPSEEK_V2 = MLAConfig(
    hidden_size=5120,
    n_heads=128,
    kv_lora_rank=512,
    qk_nope_head_dim=128,
    qk_rope_head_dim=64,
    v_head_dim=128,
    q_lora_rank=1536,
)
# DeepSeek-V2 Table 1's formulas per layer with §3.1.2's sizes: d_c + d_h^R = 512 + 64, 2 n_h d_h = 2 * 128 * 128;
# "GQA with only 2.25 groups" is Table 1's caption
PUBLISHED = dict(mla_elements=576, gqa_groups=2.25, mha_elements=32768)

# %% [markdown]
# ## 1. KV cache per token: MHA, GQA, MQA, MLA
#
# DeepSeek-V2 Table 1 counts the elements cached per token over all $l$ layers: $2 n_h d_h l$ (MHA), $2 n_g d_h l$
# (GQA with $n_g$ key-value groups), $2 d_h l$ (MQA), $(d_c + d_r) l$ (MLA; it writes $\approx \tfrac92 d_h l$, with
# $d_c = 4d_h$ and $d_r = d_h/2$). `rope_lib.mla.kv_cache_elements` returns the count of one layer, i.e. Table 1
# divided by $l$; `kv_cache_bytes` multiplies by the layers, the tokens and 2 bytes (bf16). The DeepSeek rows use the
# sizes of the DeepSeek-V2/V3 reports; the LLaMA-2 rows are not in DeepSeek's table: their sizes come from Meta's
# released Llama 2 configurations (7B: 32 layers of 32 heads, MHA; 70B: 80 layers, 64 query heads, 8 key-value
# heads), all with $d_h = 128$. The published numbers are checked against `rope_lib`:

# %%
per_layer = {name: kv_cache_elements(**{k: v for k, v in m.items() if k != "n_layers"}) for name, m in MODELS.items()}
mla_elems = per_layer["DeepSeek-V2 (MLA)"]
assert mla_elems == PUBLISHED["mla_elements"] == per_layer["DeepSeek-V3 (MLA)"]
assert gqa_equivalent_groups(mla_elems, 128) == PUBLISHED["gqa_groups"]
assert per_layer["DeepSeek-V2 as MHA"] == PUBLISHED["mha_elements"]
# Table 1's "(d_c + d_h^R) ~ 9/2 d_h" is exact whenever d_c = 4 d_h and d_h^R = d_h / 2: rope_lib at three head sizes
for d_h in (64, 128, 256):
    assert kv_cache_elements("mla", kv_lora_rank=4 * d_h, rope_head_dim=d_h // 2) == sp.Rational(9, 2) * d_h, d_h
# the same counts as GQA's extremes: n_g = n_h is MHA, n_g = 1 is MQA
assert kv_cache_elements("gqa", n_heads=128, head_dim=128, n_kv_heads=128) == per_layer["DeepSeek-V2 as MHA"]
assert kv_cache_elements("gqa", n_heads=128, head_dim=128, n_kv_heads=1) == kv_cache_elements("mqa", head_dim=128)
mha_over_mla = per_layer["DeepSeek-V2 as MHA"] / mla_elems
assert math.isclose(mha_over_mla, 512 / 9, rel_tol=1e-15)  # 2 * 128 * 128 / (512 + 64) = 512 / 9 = 56.89
# whole-model cache at 128K tokens, bf16 (quoted in the summary), exact: elements * layers * 2^17 tokens * 2 bytes
gib_128k = {
    name: kv_cache_bytes(per_layer[name], n_layers=m["n_layers"], context_length=2**17) / 2**30
    for name, m in MODELS.items()
}
assert gib_128k["LLaMA-2-7B (MHA)"] == 64  # 8192 elements * 32 layers * 2^18 bytes = 2^36 bytes
assert gib_128k["LLaMA-2-70B (GQA)"] == 40  # 2048 * 80 * 2^18 = 40 * 2^30
assert gib_128k["DeepSeek-V2 (MLA)"] == 8.4375  # 576 * 60 * 2^18 = 135/16 * 2^30

# %% tags=["nbval-check-output"]
CONTEXTS = (4096, 32768, 131072)
print(
    # columns as narrow as their headers, so that the table fits in 100 characters
    f"{'model':18s} {'elements/token/layer':>20s} {'GQA groups':>10s} {'KiB/token (bf16)':>16s}"
    + "".join(f"{'GiB @ ' + str(n // 1024) + 'K':>11s}" for n in CONTEXTS)
)
for name, m in MODELS.items():
    e = per_layer[name]
    per_token = kv_cache_bytes(e, n_layers=m["n_layers"], context_length=1)
    gib = [kv_cache_bytes(e, n_layers=m["n_layers"], context_length=n) / 2**30 for n in CONTEXTS]
    print(
        f"{name:18s} {e:20d} {gqa_equivalent_groups(e, 128):10.2f} {per_token / 1024:16.1f}"
        + "".join(f"{g:11.2f}" for g in gib)
    )
print(f"DeepSeek-V2: MLA caches {mha_over_mla:.1f}x less than MHA with the same 128 heads")

# %% [markdown]
# The whole-model cache (all layers, bf16, batch 1) against the context length:

# %%
fig, ax = plt.subplots(figsize=(6.4, 4.2))
lengths = np.array([2**k for k in range(10, 18)])
styles = {
    "LLaMA-2-7B (MHA)": dict(color="#0072B2", linestyle="-"),
    "LLaMA-2-70B (GQA)": dict(color="#009E73", linestyle="-"),
    "DeepSeek-V2 as MHA": dict(color="#999999", linestyle=":"),
    "DeepSeek-V2 (MLA)": dict(color="#D55E00", linestyle="-"),
    "DeepSeek-V3 (MLA)": dict(color="#E69F00", linestyle="--"),
}
for name, m in MODELS.items():
    gib = [kv_cache_bytes(per_layer[name], n_layers=m["n_layers"], context_length=int(n)) / 2**30 for n in lengths]
    label = f"{name}: {per_layer[name]} x {m['n_layers']} layers"
    ax.plot(lengths, gib, marker="o", markersize=3, label=label, **styles[name])
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xticks(lengths, [f"{n // 1024}K" for n in lengths])
ax.set_xlabel("context length (tokens)")
ax.set_ylabel("KV cache, all layers, bf16 (GiB)")
ax.set_title("KV cache per sequence (batch 1)")
ax.legend(loc="upper left")
savefig(fig, "09_kv_cache_vs_context", profile=profile, exact=True)
plt.show()

# %% [markdown]
# ## 2. Why RoPE does not fold into the latent, and how decoupling fixes it
#
# Small symbolic matrices: hidden size 3, latent $d_c = 2$, key dim $d_k = 4$ (two rotary pairs with frequencies
# $\theta_0, \theta_1$). Row-vector RoPE at position $m$ is $v \mapsto v\mathcal{R}_m$ with one
# $\begin{pmatrix}\cos m\theta & \sin m\theta\\ -\sin m\theta & \cos m\theta\end{pmatrix}$ block per pair
# (the pair $(v_1, v_2)$ goes to $(v_1\cos - v_2\sin,\; v_1\sin + v_2\cos)$, as in `rope_lib.apply_rope`).
#
# **Without RoPE** the score of head $h$ folds into one matrix per head (absorption):
# $q_t k_i^\top = x_t W_q (c_i W_{uk})^\top = x_t\,(W_q W_{uk}^\top)\,c_i^\top$, and
# $W_q W_{uk}^\top$ maps $x_t$ straight into the $d_c$-dimensional latent space. This is the associativity of the
# matrix product, true for any matrices, so it is not asserted on its own; it is the case $t - i = 0$ of the RoPE
# formula below, which is asserted (`M(0)` against `folded`). The cells tagged `derivation` are re-run by
# `tests/test_derivations_can_fail.py` with one constant changed, which must make an assert fire.


# %% tags=["derivation"]
def sym_matrix(name, rows, cols):
    return sp.Matrix(rows, cols, lambda r_, c_: sp.Symbol(f"{name}_{r_}{c_}", real=True))


t, i = sp.symbols("t i", integer=True)
th = sp.symbols("theta_0:2", positive=True)


def rope_row(m, freqs=th):
    """Row-vector RoPE matrix at position m: v -> v @ rope_row(m), one 2x2 block per frequency."""
    return sp.diag(*[sp.Matrix([[sp.cos(m * f), sp.sin(m * f)], [-sp.sin(m * f), sp.cos(m * f)]]) for f in freqs])


def is_zero(expr):
    """Zero after expanding the trig functions of sums and the products: polynomial identity in cos/sin."""
    return sp.expand(sp.expand_trig(sp.expand(expr))) == 0


x_t, x_i = sym_matrix("xt", 1, 3), sym_matrix("xi", 1, 3)
W_q, W_dkv, W_uk = sym_matrix("Wq", 3, 4), sym_matrix("Wdkv", 3, 2), sym_matrix("Wuk", 2, 4)
c_i = x_i * W_dkv  # the cached latent
q_t, k_i = x_t * W_q, c_i * W_uk

folded = W_q * W_uk.T  # one fixed (3 x 2) matrix per head: from the hidden space into the latent space
folded  # W_q W_uk^T: the per-head matrix that takes x_t into the latent space

# %% [markdown]
# **With RoPE** on the whole key: $q_t\mathcal{R}_t (k_i\mathcal{R}_i)^\top = x_t W_q \mathcal{R}_t\mathcal{R}_i^\top
# W_{uk}^\top c_i^\top = x_t W_q\mathcal{R}_{t-i}W_{uk}^\top c_i^\top$. The matrix between $x_t$ and $c_i$ is
# $M(t-i) = W_q\mathcal{R}_{t-i}W_{uk}^\top$: it depends on the relative position. This is the step of Su's post
# (<https://kexue.fm/archives/10091>, section "MLA", Part 2), checked here: $\mathcal{R}_t\mathcal{R}_i^\top =
# \mathcal{R}_{t-i}$, the score through $M(t-i)$, $M(0)$ = the folded matrix above, and
# $M(\delta) = \sum_p \cos(\delta\theta_p)A_p + \sin(\delta\theta_p)B_p$ with fixed $A_p, B_p$ and $B_p \ne 0$.

# %% tags=["derivation"]
assert all(is_zero(e) for e in rope_row(t) * rope_row(i).T - rope_row(t - i))  # R_t R_i^T = R_{t-i}
score_rope = (q_t * rope_row(t) * (k_i * rope_row(i)).T)[0]
assert is_zero(score_rope - (x_t * W_q * rope_row(t - i) * W_uk.T * c_i.T)[0])


def M(delta):
    return W_q * rope_row(delta) * W_uk.T


# at offset 0 RoPE's matrix reduces to the position-free absorption of the no-RoPE case
assert all(is_zero(e) for e in M(0) - folded)
# M(delta) = sum over pairs p of cos(delta theta_p) A_p + sin(delta theta_p) B_p with fixed A_p, B_p
delta = sp.symbols("delta", integer=True)
A = [W_q * sp.diag(*[sp.eye(2) if p == q else sp.zeros(2) for q in range(2)]) * W_uk.T for p in range(2)]
J = sp.Matrix([[0, 1], [-1, 0]])
B = [W_q * sp.diag(*[J if p == q else sp.zeros(2) for q in range(2)]) * W_uk.T for p in range(2)]
decomposed = sum((sp.cos(delta * th[p]) * A[p] + sp.sin(delta * th[p]) * B[p] for p in range(2)), sp.zeros(3, 2))
assert all(is_zero(e) for e in M(delta) - decomposed)
# B_p is not the zero matrix: its entries are non-zero polynomials in the weights, so M(delta) varies with delta
weight_symbols = sorted(W_q.free_symbols | W_uk.free_symbols, key=str)
assert all(not sp.Poly(B[p][0, 0], *weight_symbols).is_zero for p in range(2))
# concretely: the folded matrices for offsets 1 and 2 differ (exact rationals for the weights, theta = 1, 1/2)
rng = np.random.default_rng(seed)
numbers = {s_: sp.Rational(int(rng.integers(-9, 10)), 7) for s_ in weight_symbols}
gap_12 = (M(1) - M(2)).subs(numbers).subs({th[0]: 1, th[1]: sp.Rational(1, 2)})
gap_12_value = max(abs(float(v)) for v in gap_12)
assert gap_12_value > 0.1
gap_12.evalf(3)

# %% [markdown]
# So a cache of $c_i$ alone cannot serve RoPE attention without expanding every cached $c_i$ into per-head keys
# (the matrices for offsets 1 and 2 differ: above, and the count of differing entries is printed below).
# **Decoupled RoPE** splits each head's query and key into a no-rope part, which absorbs as before, and $d_r$ extra
# rotated dimensions whose key $k^R_i = (x_i W_{kr})\mathcal{R}_i$ is *one vector shared by every head*:
# $$q^h_t = [x_t W^h_{qn},\; x_t W^h_{qr}\mathcal{R}_t],\qquad k^h_i = [c_i W^h_{uk},\; k^R_i],$$
# $$q^h_t k^{h\top}_i = \underbrace{x_t (W^h_{qn} W^{h\top}_{uk})\, c_i^\top}_{\text{absorbed}}
# + \underbrace{x_t W^h_{qr}\mathcal{R}_{t-i} W_{kr}^\top x_i^\top}_{\text{rope part}}.$$
# The split into the two parts is block multiplication and associativity (true for any matrices, not asserted);
# the cache per token is $(c_i, k^R_i)$, $d_c + d_r$ elements built from $x_i$, $W_{dkv}$ and $W_{kr}$ only, so it has
# no head index by construction. What can fail, and is asserted for two heads ($d_n = 2$, $d_r = 2$ with frequency
# $\theta_0$): the rope part against the shared cached key equals $x_t W^h_{qr}\mathcal{R}_{t-i} W_{kr}^\top
# x_i^\top$, and the whole training-form score at positions $(t, i)$ equals the one at $(t - i, 0)$, i.e. it depends
# on the positions only through $t - i$. That the absorbed computation from the cache gives the same attention as
# the training form is checked numerically on `rope_lib`'s two implementations in section 3.

# %% tags=["derivation"]
W_kr = sym_matrix("Wkr", 3, 2)  # shared by all heads
k_rope_i = x_i * W_kr * rope_row(i, th[:1])  # cached
cache_i = (c_i, k_rope_i)
relative_residuals = []
for h in range(2):
    W_qn, W_ukh, W_qr = sym_matrix(f"Wqn{h}", 3, 2), sym_matrix(f"Wuk{h}", 2, 2), sym_matrix(f"Wqr{h}", 3, 2)
    q_full = sp.Matrix.hstack(x_t * W_qn, x_t * W_qr * rope_row(t, th[:1]))
    k_full = sp.Matrix.hstack(c_i * W_ukh, k_rope_i)  # training form: expand the key per head
    score_full = (q_full * k_full.T)[0]
    rope_part = (x_t * W_qr * rope_row(t, th[:1]) * cache_i[1].T)[0]  # against the shared cached key
    assert is_zero(rope_part - (x_t * W_qr * rope_row(t - i, th[:1]) * W_kr.T * x_i.T)[0])  # relative: t - i
    # positions (t, i) and (t - i, 0) give the same score: only the offset enters
    shifted = score_full.subs({t: t - i, i: 0}, simultaneous=True)
    relative_residuals.append(sp.expand(sp.expand_trig(sp.expand(score_full - shifted))))
    assert relative_residuals[-1] == 0

# %% tags=["nbval-check-output"]
n_changed = sum(1 for v in gap_12 if v != 0)
print("sin coefficients of M(delta) (polynomials in the weights, not zero):")
print(f"  B_0[0,0]: {B[0][0, 0]}")
print(f"  B_1[0,0]: {B[1][0, 0]}")
print(f"M(1) - M(2) on rational test weights: {n_changed} of {len(gap_12)} entries differ, largest {gap_12_value:.3f}")
print(f"decoupled RoPE, score(t, i) - score(t - i, 0) per head, expanded: {relative_residuals}")

# %% [markdown]
# ## 3. The two forms in `rope_lib`, numerically
#
# `rope_lib.mla.mla_attention` is the training form (expand $k^h_i = [c_iW^h_{uk}, k^R_i]$ and $v^h_i = c_iW^h_{uv}$,
# then attention); `mla_attention_absorbed` is the decode form (scores $= (q^h_{n,t}W^{h\top}_{uk})\,c_i^\top +
# q^h_{r,t}\,k^{R\top}_i$ against the cache, output $= (\sum_i p_i c_i)\,W^h_{uv}W^h_o$). Rotation through
# `rope_lib.apply_rope` with float64 angles, DeepSeek's interleaved layout. In float64 the two agree (max difference
# at most $10^{-10}$, asserted; the differences are printed below), for a prefill of the whole sequence and for
# token-by-token decoding from the latent cache:

# %%
SMALL = MLAConfig(
    hidden_size=128, n_heads=8, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, q_lora_rank=96
)
N_TOK = 48
weights = MLAWeights.random(SMALL, seed=seed)
gen = torch.Generator().manual_seed(seed)
x = torch.randn(1, N_TOK, SMALL.hidden_size, generator=gen, dtype=torch.float64)
pos = torch.arange(N_TOK) + 100  # any offset: only t - i matters
theta = rope_lib.inv_freq(SMALL.qk_rope_head_dim)
train64 = mla_attention(x, weights, pos, theta)
prefill64, cache = mla_attention_absorbed(x, weights, pos, theta)
outs, cache = [], None
for k_ in range(N_TOK):
    o, cache = mla_attention_absorbed(x[:, k_ : k_ + 1], weights, pos[k_ : k_ + 1], theta, cache=cache)
    outs.append(o)
decode64 = torch.cat(outs, dim=1)
err_prefill = (train64 - prefill64).abs().max().item()
err_decode = (train64 - decode64).abs().max().item()
assert err_prefill <= 1e-10 and err_decode <= 1e-10, (err_prefill, err_decode)
assert cache[0].shape == (1, N_TOK, 64) and cache[1].shape == (1, N_TOK, 16)  # d_c + d_r = 80 per token

# %% tags=["nbval-check-output"]
print(f"float64, {N_TOK} tokens, {SMALL.n_heads} heads, d_c = {SMALL.kv_lora_rank}, d_r = {SMALL.qk_rope_head_dim}:")
print(
    f"  cache per token: training form {SMALL.cache_elements('training')} elements (per-head keys and values),\n"
    f"  absorbed form {cache[0].shape[-1] + cache[1].shape[-1]} (c_i and k_r,i as returned)"
)

# %%
# the float64 rounding differences themselves (machine-dependent, so not in the checked cell above)
print(f"  max |training - absorbed prefill| = {err_prefill:.1e}, max |training - absorbed decode| = {err_decode:.1e}")

# %% [markdown]
# **Precision.** Su Jianlin (<https://kexue.fm/archives/10091>, section "MLA", the remarks at the end of Part 1) on
# merging $W_q^{(s)}W_k^{(s)\top}$ into one matrix:
# "合并成一个矩阵的恒等变换，理论上只有在无限精度下才成立，实际上如果我们使用单精度尤其是BF16的话，
# 经过变换后的精度损失往往还是挺明显的" (the identity that merges them into one matrix holds, in theory, only in
# infinite precision; in practice, in single precision and above all in BF16, the precision lost after the
# transformation is often quite noticeable). His following remark is that one usually computes
# $(x_tW_q^{(s)})W_k^{(s)\top}$ in sequence instead, which also loses less precision; that sequential form is what
# `mla_attention_absorbed` does ($q_n W_{uk}^\top$, never the merged matrix), so what is measured here is that form,
# not the merged one. **(ours)** In bf16 the training form and the absorbed form round different intermediate
# products ($c_iW_{uk}$ in one, $q_nW_{uk}^\top$ in the other), so they differ by rounding. Both forms run in bf16
# (weights and inputs rounded to bf16, matmuls in bf16, softmax in float32) and are compared with the float64 result
# on the same rounded inputs, relative to the largest output:

# %%
w16, x16 = weights.to(torch.bfloat16), x.to(torch.bfloat16)
train16 = mla_attention(x16, w16, pos, theta).double()
absorbed16 = mla_attention_absorbed(x16, w16, pos, theta)[0].double()
ref = mla_attention(x16.double(), w16.to(torch.float64), pos, theta)  # same rounded inputs, exact arithmetic
norm = ref.abs().max().item()
bf16_gap = {
    "training bf16 vs float64": (train16 - ref).abs().max().item() / norm,
    "absorbed bf16 vs float64": (absorbed16 - ref).abs().max().item() / norm,
    "training bf16 vs absorbed bf16": (train16 - absorbed16).abs().max().item() / norm,
}
eps_bf16 = torch.finfo(torch.bfloat16).eps
# sanity only: nonzero, and of the order of bf16 rounding (a few ulps at 2^-7 = 0.0078), not of the outputs
assert 0 < bf16_gap["training bf16 vs absorbed bf16"] < 8 * eps_bf16, bf16_gap
assert all(v < 8 * eps_bf16 for v in bf16_gap.values()), bf16_gap
# the gap between the forms is of the order of each form's own error (not much smaller, not much larger)
own = max(bf16_gap["training bf16 vs float64"], bf16_gap["absorbed bf16 vs float64"])
assert own / 3 < bf16_gap["training bf16 vs absorbed bf16"] < 3 * own, bf16_gap
for name, v in bf16_gap.items():
    print(f"{name:32s} max |difference| / max |output| = {v:.1e}  ({v / eps_bf16:.2f} bf16 eps)")

# %% [markdown]
# **(ours)** The gap between the forms is of the size of each form's own bf16 error (within a factor 3, asserted;
# of the order of one bf16 epsilon relative to the outputs, see the printed values): neither form is the "exact" one
# in bf16, they are two different roundings of the same function. This is one layer of random weights; Su's remark
# on errors that grow over many layers is not tested here. The numbers are not tagged for exact re-checking: bf16
# matmul kernels differ between CPUs.
#
# ## 4. Decode cost of the forms
#
# One decode step of one DeepSeek-V2 layer (batch 1; a multiply-add counts 2 FLOPs; norms, RoPE and softmax left
# out), from `rope_lib.mla.mla_decode_cost`. *training*: cache the expanded per-head keys and values; *training,
# latent cache*: cache $(c_i, k^R_i)$ but expand every cached latent again at each step; *absorbed*: attend in the
# latent space.

# %% tags=["nbval-check-output"]
forms = ("training", "training_latent_cache", "absorbed")
costs = {(f, n): mla_decode_cost(DEEPSEEK_V2, n, f) for f in forms for n in CONTEXTS}
# two tables (per cached token, then per context), so that no line is wider than 100 characters
print(f"{'form':22s} {'elements/token':>15s} {'FLOPs/cached token':>19s} {'FLOP per cached byte':>21s}")
for f in forms:
    c0 = costs[(f, CONTEXTS[0])]
    intensity = c0["flops_per_cached_token"] / (2 * c0["cache_elements_per_token"])
    print(f"{f:22s} {c0['cache_elements_per_token']:15d} {c0['flops_per_cached_token']:19d} {intensity:21.1f}")
print()
print(f"{'form':22s}" + "".join(f"{'MiB, GFLOP @ ' + str(n // 1024) + 'K':>21s}" for n in CONTEXTS))
for f in forms:
    cells = "".join(
        f"{costs[(f, n)]['cache_bytes'] / 2**20:11.1f}, {costs[(f, n)]['flops'] / 1e9:8.2f}" for n in CONTEXTS
    )
    print(f"{f:22s}{cells}")

# %%
tr, lat, ab = (costs[(f, CONTEXTS[-1])] for f in forms)
# the per-token counts against formulas written out from DeepSeek-V2's sizes (§3.1.2): n_h = 128, d_n = d_v = 128,
# d_r = 64, d_c = 512. Training form: MHA with a 192-dim key and a 128-dim value per head. Absorbed form: MQA with one
# shared 576-dim key and a 512-dim value (the latent itself), as Su writes (kexue.fm/archives/10091, "MLA", Part 3:
# at decode the Q/K head size becomes d_c + d_r and the V head size d_c). Latent cache: the training form plus the
# expansion of every cached latent into all heads' k_nope and v, 2 d_c n_h (d_n + d_v).
assert (tr["cache_elements_per_token"], ab["cache_elements_per_token"]) == (128 * (192 + 128), 512 + 64)
assert tr["flops_per_cached_token"] == 2 * 128 * 192 + 2 * 128 * 128
assert ab["flops_per_cached_token"] == 2 * 128 * 576 + 2 * 128 * 512
assert lat["flops_per_cached_token"] == 2 * 512 * 128 * (128 + 128) + tr["flops_per_cached_token"]
# the ratios quoted below, exact: cache 40960 / 576 = 640/9, FLOPs 278528 / 81920 = 17/5, per byte 278528 / 1152
cache_ratio = Fraction(tr["cache_bytes"], ab["cache_bytes"])
flop_ratio = Fraction(ab["flops_per_cached_token"], tr["flops_per_cached_token"])
# FLOPs per byte of cache read: per-token FLOPs over per-token bytes (bf16: 2 bytes an element)
per_byte = {
    f: Fraction(c["flops_per_cached_token"], 2 * c["cache_elements_per_token"]) for f, c in zip(forms, (tr, lat, ab))
}
assert (cache_ratio, flop_ratio) == (Fraction(640, 9), Fraction(17, 5))
assert (per_byte["absorbed"], per_byte["training"]) == (Fraction(2176, 9), 1)
latent_over = {
    f: Fraction(lat["flops_per_cached_token"], c["flops_per_cached_token"]) for f, c in zip(forms, (tr, lat, ab))
}

# %% tags=["nbval-check-output"]
print(f"expanded cache / latent cache (bytes per token)            : {float(cache_ratio):.1f}x")
print(f"absorbed / training FLOPs per cached token                 : {float(flop_ratio):.2f}x")
print(
    f"FLOPs per byte of cache read: absorbed {float(per_byte['absorbed']):.1f}, training {float(per_byte['training'])}"
)
print(
    f"training with a latent cache, FLOPs per cached token       : {float(latent_over['absorbed']):.1f}x the absorbed "
    "form's,"
)
print(f"{'':61s}{float(latent_over['training']):.1f}x the training form's")  # under the line above

# %% [markdown]
# The absorbed form reads 71.1× fewer bytes per cached token than the expanded cache and does 3.40× more arithmetic
# per cached token (printed above); per byte read it does 241.8 FLOPs instead of 1 **(ours: arithmetic; whether that
# makes decode compute-bound depends on the hardware and the batch)**. As Su writes (<https://kexue.fm/archives/10091>,
# "MLA", Part 3), the decode form is MQA, here with a shared 576-dimensional key ($[c_i, k^R_i]$) and a
# 512-dimensional value ($c_i$ itself), which is why the cache holds the key and the value only once, and its
# decoding arithmetic grows while the cache shrinks. Expanding the latent cache at every step instead (the training
# form fed from a latent cache; transformers 5.23.0's `DeepseekV3Attention.forward` updates its cache with the latents
# and then calls `expand_kv` on the whole cache, i.e. this form) adds $2 d_c n_h (d_n + d_v)$ FLOPs per cached token
# to the training form's, 120.8× the absorbed form's arithmetic per cached token (printed above).
#
# ## 5. Parity with transformers' DeepSeek-V3 attention
#
# transformers 5.23.0 (the pinned version) `DeepseekV3Attention`, on a tiny random config with YaRN
# (`factor` 4, `mscale` 1, `mscale_all_dim` 0.8: cos/sin carry the ratio of the two mscales, the logit scale
# carries $\text{mscale}(s, \text{mscale\_all\_dim})^2$), DeepSeek's interleaved layout (`rope_interleave=True`), with
# and without a query latent (module, its random weights and both ways of running it:
# `rope_lib.companion.hf_reference`, the adapters `tests/test_mla.py` uses too). Its weights are read into ours by
# `weights_from_deepseek_v3`; its frequencies come from its own rotary module and are compared with
# `rope_lib.frequencies` on the same `rope_parameters`.

# %%
import transformers  # noqa: E402

from rope_lib.companion import hf_reference  # noqa: E402

# hf_reference follows transformers 5.23.0 (pinned in constraints.txt); the version in use is printed below
parity = {}
for q_lora_rank in (None, 12):
    config, attn, rotary = hf_reference.deepseek_v3_attention(q_lora_rank, rope_interleave=True, seed=seed)
    n_hf = 20
    x_hf = torch.randn(2, n_hf, 32, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    pos_hf = torch.arange(n_hf)
    inv, af = rope_lib.frequencies(config.rope_parameters, config.qk_rope_head_dim)
    assert torch.allclose(rotary.inv_freq.double(), inv, rtol=1e-6, atol=0)  # theirs is float32
    assert math.isclose(rotary.attention_scaling, af, rel_tol=1e-12)
    scale = deepseek_softmax_scale(config.qk_head_dim, config.rope_parameters)
    assert math.isclose(attn.scaling, scale, rel_tol=1e-12)
    w_hf = weights_from_deepseek_v3(attn)
    kw = dict(layout="interleaved", attention_factor=af, scale=scale)
    ours_tr = mla_attention(x_hf, w_hf, pos_hf, inv, **kw)
    ours_ab = mla_attention_absorbed(x_hf, w_hf, pos_hf, inv, **kw)[0]
    as_is = hf_reference.deepseek_v3_output(attn, rotary, x_hf, pos_hf)  # float32 cos/sin, RMSNorm and softmax inside
    # float64 cos/sin from rope_lib.angles, RMSNorm without its float32 cast, SDPA (attn stays patched)
    float64_all = hf_reference.deepseek_v3_float64_output(attn, x_hf, pos_hf, inv, af)
    parity[q_lora_rank] = {
        "module as is (relative)": ((ours_tr - as_is).abs().max() / as_is.abs().max()).item(),
        "float32 steps replaced": (ours_tr - float64_all).abs().max().item(),
        "our absorbed form vs it": (ours_ab - float64_all).abs().max().item(),
    }
    assert parity[q_lora_rank]["module as is (relative)"] <= 1e-6, parity
    assert parity[q_lora_rank]["float32 steps replaced"] <= 1e-12, parity
    assert parity[q_lora_rank]["our absorbed form vs it"] <= 1e-10, parity

# %%
# the measured gaps (rounding, machine-dependent: not a checked cell); each was asserted against its bound above
print(f"transformers {transformers.__version__} DeepseekV3Attention vs rope_lib.mla (YaRN, interleaved):")
bounds = {"module as is (relative)": 1e-6, "float32 steps replaced": 1e-12, "our absorbed form vs it": 1e-10}
for q_lora_rank, gaps in parity.items():
    print(f"  q_lora_rank={q_lora_rank}:")  # one gap a line: all three on one line are 158 characters
    for k, v in gaps.items():
        print(f"    {k} {v:.1e} (bound {bounds[k]:.0e})")

# %% [markdown]
# As it ships, the module computes cos/sin, the RMSNorms and the softmax in float32, which limits the agreement to
# float32 rounding (below $10^{-6}$ of the largest output). Feeding it float64 cos/sin from `rope_lib.angles`,
# running SDPA and removing the float32 cast from its RMSNorm (`hf_reference.deepseek_v3_float64_output`) leaves only
# float64 rounding between it and our training form
# ($\le 10^{-12}$), so the weight layout (`kv_a_proj_with_mqa` = $[W_{dkv} | W_{kr}]$, `kv_b_proj` = per head
# $[W_{uk} | W_{uv}]$), the interleaved rotation, the YaRN attention factor on the rope part only and the
# $\text{mscale\_all\_dim}^2$ logit scale all match. **(ours)** transformers' `apply_rotary_pos_emb_interleave`
# returns the rotated features de-interleaved (evens first); scores are unchanged because queries and keys are
# permuted alike, which is why our interleaved output (pairs kept in place) gives the same attention.
#
# ## 6. Published vs reproduced, and the claims
#
# Published (DeepSeek-V2 Table 1's formulas divided by $l$, with the sizes of §3.1.2; the 2.25 groups and the
# $\approx 9/2\,d_h$ are Table 1's own), against `rope_lib`'s counts, printed side by side below:
#
# | quantity (per token and layer) | published |
# |---|---|
# | MHA, $n_h = 128$, $d_h = 128$ | $2n_hd_h$ = 32768 |
# | MLA, $d_c + d_r$ | 512 + 64 = 576 |
# | MLA as GQA groups at $d_h = 128$ | 2.25 |
# | MLA in units of $d_h$ | $\approx 9/2$ |

# %%
reproduced = {
    "MHA, n_h = d_h = 128": kv_cache_elements("mha", n_heads=128, head_dim=128),
    "MLA, d_c + d_r": DEEPSEEK_V2.cache_elements("absorbed"),
    "MLA as GQA groups at d_h = 128": gqa_equivalent_groups(DEEPSEEK_V2.cache_elements("absorbed"), 128),
    "MLA in units of d_h": Fraction(DEEPSEEK_V2.cache_elements("absorbed"), 128),
}
published = {
    "MHA, n_h = d_h = 128": PUBLISHED["mha_elements"],
    "MLA, d_c + d_r": PUBLISHED["mla_elements"],
    "MLA as GQA groups at d_h = 128": PUBLISHED["gqa_groups"],
    "MLA in units of d_h": Fraction(9, 2),  # Table 1's "~ 9/2 d_h"
}
assert reproduced == published, (reproduced, published)
# MLA's cache sits between MQA (2 d_h = 256) and LLaMA-2-70B's GQA (8 groups: 2048)
assert kv_cache_elements("mqa", head_dim=128) < reproduced["MLA, d_c + d_r"] < per_layer["LLaMA-2-70B (GQA)"]

# %% tags=["nbval-check-output"]
print(f"{'per token and layer':32s} {'published':>10s} {'rope_lib':>10s}")
for key, value in reproduced.items():
    print(f"{key:32s} {str(published[key]):>10s} {str(value):>10s}")
print(
    f"MQA {kv_cache_elements('mqa', head_dim=128)} < MLA {reproduced['MLA, d_c + d_r']} < "
    f"LLaMA-2-70B's GQA {per_layer['LLaMA-2-70B (GQA)']} elements per token and layer"
)

# %% [markdown]
# The other claims are asserted where they are shown: RoPE on the latent key cannot be absorbed (section 2: the
# folded matrix is $M(t-i)$ with $B_p \ne 0$, and $M(1) \ne M(2)$ on test weights); the decoupled key restores
# absorption (section 2: the rope part and the whole score depend on $t - i$ only; section 3: `rope_lib`'s training
# and absorbed forms agree to $10^{-10}$ in float64, prefill and token-by-token decode); in bf16 the two forms differ
# by rounding, by about as much as each differs from float64 (section 3, one layer of random weights).

# %% [markdown]
# ## Summary
#
# * KV cache per token and layer (DeepSeek-V2 Table 1 divided by the number of layers $l$, computed by
#   `rope_lib.mla.kv_cache_elements`; the LLaMA-2 sizes from Meta's Llama 2 configurations): LLaMA-2-7B 8192 (MHA),
#   LLaMA-2-70B 2048 (GQA, 8 groups), DeepSeek-V2/V3 576 (MLA) = 2.25 GQA groups, 56.9× less than MHA with the same
#   128 heads (32768). At 128K tokens, bf16, all layers: 64 GiB (LLaMA-2-7B), 40 GiB (LLaMA-2-70B), 8.44 GiB
#   (DeepSeek-V2).
# * sympy: without RoPE the score is $x_t (W_qW_{uk}^\top) c_i^\top$, one matrix per head; with RoPE the matrix is
#   $W_q\mathcal{R}_{t-i}W_{uk}^\top = \sum_p \cos(\delta\theta_p)A_p + \sin(\delta\theta_p)B_p$ with $B_p \ne 0$, so
#   it varies with $t-i$; decoupled RoPE splits the score into an absorbed part and a rope part against one shared
#   cached key whose score depends on $t - i$ only, and the cache $(c_i, k^R_i)$ has no head index.
# * `rope_lib.mla`: training form == absorbed form (prefill and token-by-token decode) to $10^{-10}$ in float64; in
#   bf16 they differ by rounding, about as much as each differs from float64 (one layer, random weights). Su
#   (kexue.fm/archives/10091, quoted in section 3) writes that the merged matrix $W_qW_k^\top$ is exact only in
#   infinite precision; `rope_lib` uses the sequential form, which he says loses less.
# * Decode, DeepSeek-V2 layer: the absorbed form caches 71.1× fewer bytes than expanded keys and values and does
#   3.40× more FLOPs per cached token (MQA with a 576-dim key and a 512-dim value); expanding the latent cache at
#   every step costs 120.8× the absorbed form's FLOPs per cached token.
# * Parity with transformers 5.23.0 `DeepseekV3Attention` (YaRN with mscale/mscale_all_dim, interleaved rope, with
#   and without a query latent): within $10^{-12}$ once its float32 steps are replaced, within $10^{-6}$ (relative,
#   float32 rounding) as shipped.
