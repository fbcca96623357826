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
# $d_c + d_r = 576$ elements per token and layer, as much as GQA with 2.25 groups at $d_h = 128$, against
# $2 n_h d_h = 32768$ for MHA with DeepSeek-V2's 128 heads.
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

# Published architecture sizes (sources in the title cell). d_h = 128 everywhere.
MODELS = {
    "LLaMA-2-7B (MHA)": dict(kind="mha", n_layers=32, n_heads=32, head_dim=128),
    "LLaMA-2-70B (GQA)": dict(kind="gqa", n_layers=80, n_heads=64, head_dim=128, n_kv_heads=8),
    "DeepSeek-V2 as MHA": dict(kind="mha", n_layers=60, n_heads=128, head_dim=128),  # Table 1's baseline
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
PUBLISHED = dict(mla_elements=576, gqa_groups=2.25, mha_elements=32768)  # DeepSeek-V2 Table 1 / kexue.fm 10091

# %% [markdown]
# ## 1. KV cache per token: MHA, GQA, MQA, MLA
#
# DeepSeek-V2 Table 1 counts the elements cached per token and layer: $2 n_h d_h$ (MHA), $2 n_g d_h$ (GQA with
# $n_g$ key-value groups), $2 d_h$ (MQA), $d_c + d_r$ (MLA; it writes $\approx \tfrac92 d_h$, with $d_c = 4d_h$ and
# $d_r = d_h/2$). `rope_lib.mla.kv_cache_elements` implements the four counts; the published numbers are checked
# against it:

# %%
per_layer = {name: kv_cache_elements(**{k: v for k, v in m.items() if k != "n_layers"}) for name, m in MODELS.items()}
mla_elems = per_layer["DeepSeek-V2 (MLA)"]
assert mla_elems == PUBLISHED["mla_elements"] == per_layer["DeepSeek-V3 (MLA)"]
assert gqa_equivalent_groups(mla_elems, 128) == PUBLISHED["gqa_groups"]
assert per_layer["DeepSeek-V2 as MHA"] == PUBLISHED["mha_elements"]
assert mla_elems == sp.Rational(9, 2) * 128  # Table 1's 9/2 d_h is exact for d_c = 4 d_h, d_r = d_h / 2
# the same counts as GQA's extremes: n_g = n_h is MHA, n_g = 1 is MQA
assert kv_cache_elements("gqa", n_heads=128, head_dim=128, n_kv_heads=128) == per_layer["DeepSeek-V2 as MHA"]
assert kv_cache_elements("gqa", n_heads=128, head_dim=128, n_kv_heads=1) == kv_cache_elements("mqa", head_dim=128)
mha_over_mla = per_layer["DeepSeek-V2 as MHA"] / mla_elems
assert round(mha_over_mla, 1) == 56.9
# whole-model cache at 128K tokens, bf16 (quoted in the summary): 64, 40 and 8.4 GiB
gib_128k = {
    name: kv_cache_bytes(per_layer[name], n_layers=m["n_layers"], context_length=2**17) / 2**30
    for name, m in MODELS.items()
}
assert (gib_128k["LLaMA-2-7B (MHA)"], gib_128k["LLaMA-2-70B (GQA)"]) == (64, 40)
assert round(gib_128k["DeepSeek-V2 (MLA)"], 1) == 8.4

# %% tags=["nbval-check-output"]
CONTEXTS = (4096, 32768, 131072)
print(
    f"{'model':20s} {'elements/token/layer':>21s} {'GQA groups':>11s} {'KiB/token (bf16)':>17s}"
    + "".join(f"{'GiB @ ' + str(n // 1024) + 'K':>12s}" for n in CONTEXTS)
)
for name, m in MODELS.items():
    e = per_layer[name]
    per_token = kv_cache_bytes(e, n_layers=m["n_layers"], context_length=1)
    gib = [kv_cache_bytes(e, n_layers=m["n_layers"], context_length=n) / 2**30 for n in CONTEXTS]
    print(
        f"{name:20s} {e:21d} {gqa_equivalent_groups(e, 128):11.2f} {per_token / 1024:17.1f}"
        + "".join(f"{g:12.2f}" for g in gib)
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
# $W_q W_{uk}^\top$ maps $x_t$ straight into the $d_c$-dimensional latent space.


# %%
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

folded = W_q * W_uk.T  # one fixed matrix per head
assert folded.shape == (3, 2)  # from the hidden space into the latent space
assert sp.expand((q_t * k_i.T)[0] - (x_t * folded * c_i.T)[0]) == 0
folded  # W_q W_uk^T: the per-head matrix that takes x_t into the latent space

# %% [markdown]
# **With RoPE** on the whole key: $q_t\mathcal{R}_t (k_i\mathcal{R}_i)^\top = x_t W_q \mathcal{R}_t\mathcal{R}_i^\top
# W_{uk}^\top c_i^\top = x_t W_q\mathcal{R}_{t-i}W_{uk}^\top c_i^\top$. The matrix between $x_t$ and $c_i$ is
# $M(t-i) = W_q\mathcal{R}_{t-i}W_{uk}^\top$: it depends on the relative position.

# %%
assert all(is_zero(e) for e in rope_row(t) * rope_row(i).T - rope_row(t - i))  # R_t R_i^T = R_{t-i}
score_rope = (q_t * rope_row(t) * (k_i * rope_row(i)).T)[0]
assert is_zero(score_rope - (x_t * W_q * rope_row(t - i) * W_uk.T * c_i.T)[0])


def M(delta):
    return W_q * rope_row(delta) * W_uk.T


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
# (the matrix for offset 1 and the one for offset 2 differ entry by entry above). **Decoupled RoPE** splits each
# head's query and key into a no-rope part, which absorbs as before, and $d_r$ extra rotated dimensions whose key
# $k^R_i = (x_i W_{kr})\mathcal{R}_i$ is *one vector shared by every head*:
# $$q^h_t = [x_t W^h_{qn},\; x_t W^h_{qr}\mathcal{R}_t],\qquad k^h_i = [c_i W^h_{uk},\; k^R_i],$$
# $$q^h_t k^{h\top}_i = \underbrace{x_t (W^h_{qn} W^{h\top}_{uk})\, c_i^\top}_{\text{absorbed}}
# + \underbrace{x_t W^h_{qr}\mathcal{R}_{t-i} W_{kr}^\top x_i^\top}_{\text{rope part}}.$$
# The cache per token is $(c_i, k^R_i)$: $d_c + d_r$ elements, no head index. Checked for two heads
# ($d_n = 2$, $d_r = 2$ with frequency $\theta_0$):

# %%
W_kr = sym_matrix("Wkr", 3, 2)  # shared by all heads
k_rope_i = x_i * W_kr * rope_row(i, th[:1])  # cached
cache_i = (c_i, k_rope_i)
head_symbols = set()
for h in range(2):
    W_qn, W_ukh, W_qr = sym_matrix(f"Wqn{h}", 3, 2), sym_matrix(f"Wuk{h}", 2, 2), sym_matrix(f"Wqr{h}", 3, 2)
    head_symbols |= W_qn.free_symbols | W_ukh.free_symbols | W_qr.free_symbols
    q_full = sp.Matrix.hstack(x_t * W_qn, x_t * W_qr * rope_row(t, th[:1]))
    k_full = sp.Matrix.hstack(c_i * W_ukh, k_rope_i)  # training form: expand the key per head
    score_full = (q_full * k_full.T)[0]
    absorbed = (x_t * (W_qn * W_ukh.T) * cache_i[0].T)[0]  # query folded into the latent space
    rope_part = (x_t * W_qr * rope_row(t, th[:1]) * cache_i[1].T)[0]  # against the shared cached key
    assert is_zero(score_full - (absorbed + rope_part))
    assert is_zero(rope_part - (x_t * W_qr * rope_row(t - i, th[:1]) * W_kr.T * x_i.T)[0])  # relative: t - i
# nothing in the cache belongs to a head
assert not (cache_i[0].free_symbols | cache_i[1].free_symbols) & head_symbols

# %% tags=["nbval-check-output"]
print("absorption without RoPE: q k^T = x_t (W_q W_uk^T) c_i^T                      : True")
print("with RoPE the folded matrix W_q R_(t-i) W_uk^T depends on t - i               : True")
print(f"  max |M(1) - M(2)| entry on rational test weights                             : {gap_12_value:.3f}")
print("decoupled RoPE: score = absorbed part + rope part, cache (c_i, k_r,i) head-free : True")

# %% [markdown]
# ## 3. The two forms in `rope_lib`, numerically
#
# `rope_lib.mla.mla_attention` is the training form (expand $k^h_i = [c_iW^h_{uk}, k^R_i]$ and $v^h_i = c_iW^h_{uv}$,
# then attention); `mla_attention_absorbed` is the decode form (scores $= (q^h_{n,t}W^{h\top}_{uk})\,c_i^\top +
# q^h_{r,t}\,k^{R\top}_i$ against the cache, output $= (\sum_i p_i c_i)\,W^h_{uv}W^h_o$). Rotation through
# `rope_lib.apply_rope` with float64 angles, DeepSeek's interleaved layout. In float64 the two agree, for a prefill
# of the whole sequence and for token-by-token decoding from the latent cache:

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
print(f"  training form vs absorbed prefill : {'<= 1e-10' if err_prefill <= 1e-10 else 'FAIL'}")
print(f"  training form vs absorbed decode  : {'<= 1e-10' if err_decode <= 1e-10 else 'FAIL'}")
print(
    f"  cache per token: training {SMALL.cache_elements('training')} elements, absorbed "
    f"{SMALL.cache_elements('absorbed')}"
)

# %% [markdown]
# **Su's caveat:** absorption is exact in infinite precision only. In bf16 the two forms round different
# intermediate products ($c_iW_{uk}$ in one, $q_nW_{uk}^\top$ in the other), so they differ by rounding. Both forms
# run in bf16 (weights and inputs rounded to bf16, matmuls in bf16, softmax in float32) and are compared with the
# float64 result, relative to the largest output:

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
# The gap between the forms is of the size of each form's own bf16 error (a fraction of one bf16 epsilon, relative
# to the outputs): neither form is the "exact" one in bf16, they are two different roundings of the same function.
# The numbers are not tagged for exact re-checking: bf16 matmul kernels differ between CPUs.
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
print(
    f"{'form':22s} {'elements/token':>15s} {'FLOPs/cached token':>19s} {'FLOP per cached byte':>21s}"
    + "".join(f"{'MiB, GFLOP @ ' + str(n // 1024) + 'K':>21s}" for n in CONTEXTS)
)
for f in forms:
    c0 = costs[(f, CONTEXTS[0])]
    intensity = c0["flops_per_cached_token"] / (2 * c0["cache_elements_per_token"])
    cells = "".join(
        f"{costs[(f, n)]['cache_bytes'] / 2**20:11.1f}, {costs[(f, n)]['flops'] / 1e9:8.2f}" for n in CONTEXTS
    )
    print(f"{f:22s} {c0['cache_elements_per_token']:15d} {c0['flops_per_cached_token']:19d} {intensity:21.1f}{cells}")

# %%
tr, lat, ab = (costs[(f, CONTEXTS[-1])] for f in forms)
cache_ratio = tr["cache_bytes"] / ab["cache_bytes"]
flop_ratio = ab["flops_per_cached_token"] / tr["flops_per_cached_token"]
assert round(cache_ratio, 1) == 71.1 and round(flop_ratio, 1) == 3.4
intensity = {
    f: costs[(f, CONTEXTS[-1])]["flops_per_cached_token"] / costs[(f, CONTEXTS[-1])]["cache_bytes"] * CONTEXTS[-1]
    for f in forms
}  # FLOPs per byte of cache read
assert round(intensity["absorbed"]) == 242 and intensity["training"] == 1.0
assert lat["flops"] > 10 * max(ab["flops"], tr["flops"])  # re-expanding every latent at every step: worst of both
# Su (10091): at decode MLA is MQA with one shared 576-dim key and a 512-dim value (the latent itself)
h = DEEPSEEK_V2.n_heads
assert ab["flops_per_cached_token"] == 2 * h * 576 + 2 * h * 512

# %% [markdown]
# The absorbed form reads 71× fewer bytes per cached token than the expanded cache and does 3.4× more arithmetic
# per cached token; per byte read it does 242 FLOPs instead of 1 **(ours: arithmetic; whether that makes decode
# compute-bound depends on the hardware and the batch)**. As Su notes, the decode form is MQA with a shared
# 576-dimensional key ($[c_i, k^R_i]$) and a 512-dimensional value ($c_i$ itself), which is why the cache holds the
# key and the value only once. Expanding the latent cache at every step instead (the training form fed from a
# latent cache, which is how transformers' `DeepseekV3Attention` decodes) costs
# $2 d_c n_h (d_n + d_v)$ FLOPs per cached token, an order of magnitude more than either.
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

# %% tags=["nbval-check-output"]
print(f"transformers {transformers.__version__} DeepseekV3Attention vs rope_lib.mla (YaRN, interleaved):")
bounds = {"module as is (relative)": 1e-6, "float32 steps replaced": 1e-12, "our absorbed form vs it": 1e-10}
for q_lora_rank, gaps in parity.items():
    cells = ", ".join(f"{k} {'<=' if v <= bounds[k] else '>'} {bounds[k]:.0e}" for k, v in gaps.items())
    print(f"  q_lora_rank={q_lora_rank}: {cells}")

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
# | quantity (per token, per layer) | published | `rope_lib` |
# |---|---|---|
# | MHA, $n_h = 128$, $d_h = 128$ | $2n_hd_h$ = 32768 | 32768 |
# | MLA, $d_c + d_r$ | 512 + 64 = 576 | 576 |
# | MLA as GQA groups at $d_h = 128$ | 2.25 | 2.25 |
# | MLA in units of $d_h$ (Table 1) | $\approx 9/2$ | exactly 9/2 |

# %%
assert kv_cache_elements("mha", n_heads=128, head_dim=128) == PUBLISHED["mha_elements"]
assert kv_cache_elements("mla", kv_lora_rank=512, rope_head_dim=64) == PUBLISHED["mla_elements"]
assert gqa_equivalent_groups(kv_cache_elements("mla", kv_lora_rank=512, rope_head_dim=64), 128) == 2.25
assert DEEPSEEK_V2.cache_elements("absorbed") == PUBLISHED["mla_elements"]
# MLA's cache sits between MQA (2 d_h = 256) and LLaMA-2-70B's GQA (8 groups: 2048)
assert kv_cache_elements("mqa", head_dim=128) < PUBLISHED["mla_elements"] < per_layer["LLaMA-2-70B (GQA)"]
# RoPE breaks absorption (section 2: B_p != 0, M(1) != M(2)); decoupled RoPE restores it (section 2 and 3)
assert gap_12_value > 0.1 and err_prefill <= 1e-10 and err_decode <= 1e-10
# Su's caveat: the forms are equal in exact arithmetic only
assert bf16_gap["training bf16 vs absorbed bf16"] > 0

# %% tags=["nbval-check-output"]
claims = [
    f"MHA with 128 heads of 128 caches {PUBLISHED['mha_elements']} elements per token and layer",
    f"MLA caches d_c + d_r = {PUBLISHED['mla_elements']} = {PUBLISHED['gqa_groups']} GQA groups at d_h = 128",
    "RoPE on the latent key cannot be absorbed (the folded matrix depends on t - i)",
    "decoupled RoPE: training form == absorbed form (float64, <= 1e-10)",
    "in bf16 the two forms differ by rounding (nonzero, below 8 bf16 eps)",
]
print("claims (each asserted in the cell above):")
for claim in claims:
    print(f"  {claim:80s}: True")

# %% [markdown]
# ## Summary
#
# * KV cache per token and layer (DeepSeek-V2 Table 1, computed by `rope_lib.mla.kv_cache_elements`): LLaMA-2-7B
#   8192 (MHA), LLaMA-2-70B 2048 (GQA, 8 groups), DeepSeek-V2/V3 576 (MLA) = 2.25 GQA groups, 57× less than MHA
#   with the same 128 heads (32768). At 128K tokens, bf16: 64 GiB (LLaMA-2-7B), 40 GiB (LLaMA-2-70B), 8.4 GiB
#   (DeepSeek-V2).
# * sympy: without RoPE the score is $x_t (W_qW_{uk}^\top) c_i^\top$, one matrix per head; with RoPE the matrix is
#   $W_q\mathcal{R}_{t-i}W_{uk}^\top = \sum_p \cos(\delta\theta_p)A_p + \sin(\delta\theta_p)B_p$ with $B_p \ne 0$, so
#   it varies with $t-i$; decoupled RoPE splits the score into an absorbed part and a rope part against one shared
#   cached key, and the cache $(c_i, k^R_i)$ has no head index.
# * `rope_lib.mla`: training form == absorbed form (prefill and token-by-token decode) to $10^{-10}$ in float64; in
#   bf16 they differ by rounding, about as much as each differs from float64 (Su's "exact only in infinite
#   precision").
# * Decode, DeepSeek-V2 layer: the absorbed form caches 71× fewer bytes than expanded keys and values and does 3.4×
#   more FLOPs per cached token (MQA with a 576-dim key and a 512-dim value).
# * Parity with transformers 5.23.0 `DeepseekV3Attention` (YaRN with mscale/mscale_all_dim, interleaved rope, with
#   and without a query latent): $10^{-12}$ once its float32 steps are replaced, float32 rounding as shipped.
