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
# # 05 · ReRoPE and Leaky ReRoPE: clipped relative positions, exact and memory-efficient
#
# **Claim reproduced.** Clipping the relative position at a window $w$ (ReRoPE: $\min(i-j, w)$), or letting it
# grow slowly beyond the window (Leaky ReRoPE: $w + (i-j-w)/k$), extrapolates far better without fine-tuning than
# any frequency-scaling method, to the point that the loss on a fixed stretch of text *falls* as the context grows
# ("longer context, lower loss"). Su's best window is about $L/4$ to $L/2$; $w = L$, which clips only beyond the
# training length, fails.
# Sources: Su Jianlin, kexue.fm/archives/9708 (ReRoPE, window and leak sweeps), 9728 (inverse Leaky),
# 9948 ("longer context, lower loss"); bojone/rerope README (LLaMA2-13B losses).
#
# Su's table (8x, GAU ~100M, train 512 / test 4096, accuracy %, repeated / non-repeated):
# NTK-RoPE-fixed 51.86 / 39.61, NTK-RoPE-log n-fixed 62.85 / 44.14, ReRoPE-w256 77.90 / 48.48,
# ReRoPE-w256-log n 85.12 / 49.07; window sweep (log n): w64 84.38/48.14, w128 85.47/48.87, w256 85.12/49.07,
# w384 83.24/48.62, w512 (= L) 15.84/10.83.
#
# The price, which this notebook also measures: prefill needs two score matrices (one with ordinary RoPE, one with
# the clipped position), and every decoding step must re-rotate every cached key, because a key's relative position
# to the newest query changes - so the cache must hold keys *before* rotation.
#
# *Remarks marked **(ours)** are this companion's, not the sources'.*

# %% tags=["parameters"]
profile: str = "smoke"  # "smoke" (CPU, minutes, what is committed) or "full" (one GPU)
device: str = "auto"  # "auto" -> cuda when present, else cpu; or "cpu", "cuda", "cuda:N"
seed: int = 0  # every random draw in the notebook derives from it

# %%
import matplotlib.pyplot as plt
import sympy as sp
import torch

import rope_lib
from rope_lib.report import setup_notebook

setup_notebook(profile, device, seed)

# %% [markdown]
# ## 1. Relative-position matrices
#
# For a causal sequence, entry $(i, j)$, $j \le i$, is the relative position the score between query $i$ and key
# $j$ is computed at. RoPE uses $i-j$; ReRoPE clips it at $w$; Leaky ReRoPE keeps $i-j$ inside the window and lets it
# grow with slope $1/k$ outside, so the largest relative position at length $L' = sL$ is $w + (sL-1-w)/k$ instead of
# $sL-1$. It stays inside the trained range (at most $L-1$) only if $k \ge (sL-1-w)/(L-1-w)$: the choice $k = s$
# reaches $L - 1 + (w+1)(1-1/s)$, a little beyond it (both asserted below, and checked against `rope_lib`).

# %%
i, j = sp.symbols("i j", integer=True, nonnegative=True)
w_s, leak_s = sp.symbols("w k", positive=True)  # symbolic; the numeric window comes later


def rel_rope(a, b):
    return a - b


def rel_rerope(a, b, window):
    return sp.Min(a - b, window)


def rel_leaky(a, b, window, leak):
    return sp.Piecewise((a - b, a - b < window), (window + (a - b - window) / leak, True))


n_show, w_show, k_show = 8, 3, 2
show = {
    "RoPE": sp.Matrix(n_show, n_show, lambda a, b: rel_rope(a, b) if b <= a else 0),
    "ReRoPE, w = 3": sp.Matrix(n_show, n_show, lambda a, b: rel_rerope(a, b, w_show) if b <= a else 0),
    "Leaky ReRoPE, w = 3, k = 2": sp.Matrix(
        n_show,
        n_show,
        lambda a, b: rel_leaky(sp.Integer(a), sp.Integer(b), w_show, sp.Integer(k_show)) if b <= a else 0,
    ),
}
# the three agree inside the window and differ only beyond it
inside = [(a, b) for a in range(n_show) for b in range(a + 1) if a - b < w_show]
assert all(
    show["RoPE"][a, b] == show["ReRoPE, w = 3"][a, b] == show["Leaky ReRoPE, w = 3, k = 2"][a, b] for a, b in inside
)
assert max(show["ReRoPE, w = 3"]) == w_show
assert max(show["Leaky ReRoPE, w = 3, k = 2"]) == w_show + sp.Rational(n_show - 1 - w_show, k_show)
show["Leaky ReRoPE, w = 3, k = 2"]

# %%
# The reach of Leaky ReRoPE at test length sL, and when it stays within the trained range 0..L-1.
LL_, ss_ = sp.symbols("L s", positive=True)
reach_s = w_s + (ss_ * LL_ - 1 - w_s) / leak_s
k_min_s = (ss_ * LL_ - 1 - w_s) / (LL_ - 1 - w_s)
# at k = k_min_s the reach is exactly L - 1, and it decreases in k (so k >= k_min_s is the condition, for w < L - 1)
assert sp.simplify(reach_s.subs(leak_s, k_min_s) - (LL_ - 1)) == 0
assert sp.simplify(sp.diff(reach_s, leak_s) + (ss_ * LL_ - 1 - w_s) / leak_s**2) == 0
# k = s overshoots by (w + 1)(1 - 1/s) > 0 for s > 1
assert sp.simplify(reach_s.subs(leak_s, ss_) - (LL_ - 1) - (w_s + 1) * (1 - 1 / ss_)) == 0
# rope_lib agrees: the largest relative position it uses at sL, for L = 64, w = L/4, s = 8 and both leaks
for k_num in (8.0, float(k_min_s.subs({LL_: 64, ss_: 8, w_s: 16}))):
    p_max = rope_lib.rerope_relative_position(torch.arange(8 * 64, dtype=torch.float64), 16, k_num).max().item()
    assert abs(p_max - float(reach_s.subs({LL_: 64, ss_: 8, w_s: 16, leak_s: k_num}))) < 1e-9
k_min_num = float(k_min_s.subs({LL_: 64, ss_: 8, w_s: 16}))
print(f"k >= (sL-1-w)/(L-1-w) keeps the reach within L-1; at L = 64, w = 16, s = 8: k >= {k_min_num:.3f}")

# %% [markdown]
# ## 2. Two score matrices are enough
#
# With one pair and frequency $\theta$, $\langle R_a q, R_b k\rangle = q^\top R_{b-a} k$ (notebook 01), so the score
# "at relative position $r$" is $q^\top R_{-r} k$. ReRoPE needs $r = w$ for every $(i, j)$ outside the window - and
# that is a single matrix product of *rotated-by-$w$ queries* with *un-rotated keys*: $(R_w q_i)^\top k_j$.
# Leaky ReRoPE rotates the queries by $(i-w)/k + w$ and the keys by $j/k$, which puts every pair at
# $w + (i-j-w)/k$. We assert both with sympy.

# %%
theta_s = sp.symbols("theta", positive=True)
q1, q2, k1, k2 = sp.symbols("q_1 q_2 k_1 k_2", real=True)
q_s = sp.Matrix([q1, q2])
k_s = sp.Matrix([k1, k2])


def R(angle_pos, th=theta_s):
    """The 2x2 rotation by angle_pos * th (the symbolic frequency theta_s unless given)."""
    return sp.Matrix(
        [[sp.cos(angle_pos * th), -sp.sin(angle_pos * th)], [sp.sin(angle_pos * th), sp.cos(angle_pos * th)]]
    )


def score_at(r):
    """The RoPE score of q and k when their relative position (query minus key) is r."""
    return (q_s.T * R(-r) * k_s)[0]


# ordinary RoPE: rotating by absolute positions gives the score at i - j
assert sp.simplify(((R(i) * q_s).T * (R(j) * k_s))[0] - score_at(i - j)) == 0
# ReRoPE's second matrix: (R_w q)^T k is the score at relative position w, for every j
assert sp.simplify(((R(w_s) * q_s).T * k_s)[0] - score_at(w_s)) == 0
# Leaky ReRoPE's second matrix: (R_{(i-w)/k + w} q)^T (R_{j/k} k) is the score at w + (i - j - w)/k
leaky_second = ((R((i - w_s) / leak_s + w_s) * q_s).T * (R(j / leak_s) * k_s))[0]
assert sp.simplify(leaky_second - score_at(w_s + (i - j - w_s) / leak_s)) == 0
print("(R_w q)^T k = score at r = w;  (R_{(i-w)/k+w} q)^T (R_{j/k} k) = score at r = w + (i-j-w)/k  (proved)")

# %% [markdown]
# ## 3. The decode step
#
# When token $i$ is decoded, its query is new and every key $j < i$ is old. In ordinary RoPE the cached key
# $R_j k_j$ never changes. Under ReRoPE the score needs $r(i-j) = \min(i-j, w)$, which changes with $i$ for the
# keys inside the window. The exact step therefore keeps the **raw** keys $k_j$ and computes
# $q_i^\top R_{-r(i-j)} k_j$, i.e. rotates each cached key by $-r(i-j)$ and leaves the query un-rotated. That this
# equals the prefill score is the identity of section 2 read the other way round ($q^\top R_{-r} k$ *is* the score at
# $r$), so there is nothing new to prove symbolically; what can go wrong is the implementation, and section 4 checks
# it: `rope_lib.rerope_decode_step`, token by token from a cache of raw keys, against the prefill.

# %% [markdown]
# ## 4. The implementation, checked against the definition
#
# `rope_lib.rerope_attention` is the memory-efficient version: it walks over query and key blocks with an online
# softmax and computes both score matrices only for the blocks that straddle the window boundary. It is checked here
# against `rope_lib.rerope_attention_reference` (the two full matrices of the post), against plain RoPE attention
# when $w \ge$ seq, and decode-by-decode against prefill. (The unit tests do the same over random shapes, windows and
# leaks, forward and gradient.)

# %%
g = torch.Generator().manual_seed(seed)
head_dim, seq, window = 32, 97, 20
theta = rope_lib.inv_freq(head_dim)
q, k, v = (torch.randn(2, 3, seq, head_dim, generator=g) for _ in range(3))
checks = {}
for leak in (None, 4.0):
    fast = rope_lib.rerope_attention(q, k, v, theta, window=window, leaky_k=leak)
    ref = rope_lib.rerope_attention_reference(q, k, v, theta, window=window, leaky_k=leak)
    checks[f"blockwise == reference (leaky_k={leak})"] = (fast - ref).abs().max().item() < 1e-5

positions = torch.arange(seq)
plain = torch.nn.functional.scaled_dot_product_attention(
    rope_lib.apply_rope(q, positions, theta), rope_lib.apply_rope(k, positions, theta), v, is_causal=True
)
wide = rope_lib.rerope_attention(q, k, v, theta, window=seq)
checks["window >= seq == plain RoPE attention"] = (wide - plain).abs().max().item() < 1e-5

prefill = rope_lib.rerope_attention(q, k, v, theta, window=window, leaky_k=4.0)
cache = rope_lib.RawKVCache()
steps = []
for t in range(seq):
    cache.append(k[..., t : t + 1, :], v[..., t : t + 1, :])
    steps.append(rope_lib.rerope_decode_step(q[..., t : t + 1, :], cache, theta, window=window, leaky_k=4.0))
checks["token-by-token decoding == prefill (Leaky)"] = (torch.cat(steps, dim=-2) - prefill).abs().max().item() < 1e-5
assert all(checks.values()), checks

# %% tags=["nbval-check-output"]
for name, ok in checks.items():
    print(f"{name:45s}: {ok}")

# %% [markdown]
# ## 5. The experiment: ReRoPE on the models of notebook 04
#
# The same two byte-level models as notebook 04 (trained at $L = 64$ with plain RoPE, one of them with log n in
# training; loaded from the checkpoint cache when notebook 04 already trained them), the same test samples, no
# fine-tuning. Main rows at 2x-16x: ReRoPE with $w = L/2$ (Su's w256 at $L = 512$), Leaky ReRoPE with $w = L/4$,
# $k = 16$, and for comparison Baseline, NTK-fixed and YaRN - each without log n, with log n at test time only
# (dagger) and on the model trained with log n. Then Su's two sweeps at 8x: the window $w = L/8 .. L$ and the leak
# $k = 64 .. 8$.

# %%
from rope_lib.experiments import references, run_experiment
from rope_lib.experiments import rerope_eval as rx
from rope_lib.report import Results, excludes_zero, format_gap, markdown_table

results = Results(run_experiment("rerope", profile=profile, device=device, seed=seed))
L, mults = results.train_length, results.mults
main, window_rows, leak_rows = (results.group(g) for g in ("main", "window", "leak"))


# %% [markdown]
# ### Main table (accuracy %, repeated / non-repeated; Su's 8x numbers at train 512 / test 4096 in the last column)

# %%
SU = {**references.SU_8X, **references.SU_REROPE_MAIN}


def rep_nonrep(rows, name: str, mult: int) -> str:
    return f"{rows.acc(name, 'repeated', mult):.1f} / {rows.acc(name, 'non_repeated', mult):.1f}"


def su_cell(su) -> str:
    return "%.2f / %.2f" % su if su else "-"


markdown_table(
    ["method", *(f"{m}x ({m * L})" for m in mults), "Su 8x"],
    [[name, *(rep_nonrep(main, name, m) for m in mults), su_cell(SU.get(name))] for name in main],
)

# %% [markdown]
# ### Claims at 8x, non-repeated (95% paired-bootstrap intervals over test samples, in points)

# %%
PAIRS = [
    ("ReRoPE", "YaRN"),
    ("ReRoPE", "NTK-fixed"),
    ("Leaky ReRoPE", "YaRN"),
    ("ReRoPE-log n", "NTK-fixed-log n"),
    ("ReRoPE-log n-dagger", "ReRoPE"),
    ("ReRoPE-log n", "ReRoPE"),
]
claims = {f"{a} - {b}": main.gap(a, b) for a, b in PAIRS}
for name, c in claims.items():
    print(f"{name:32s}: {c['diff']:+6.2f}  [{c['lo']:+6.2f}, {c['hi']:+6.2f}]")

# %% [markdown]
# **Claim 1: ReRoPE and Leaky ReRoPE extrapolate better than every frequency-scaling method.** Su: ReRoPE-w256
# 48.48 vs YaRN 47.45 and NTK-fixed 39.61 (non-repeated, 8x). Asserted: ReRoPE beats YaRN and NTK-fixed, Leaky
# ReRoPE beats YaRN, with intervals above zero; and on the log-n model ReRoPE beats NTK-fixed.

# %%
for name in ("ReRoPE - YaRN", "ReRoPE - NTK-fixed", "Leaky ReRoPE - YaRN", "ReRoPE-log n - NTK-fixed-log n"):
    assert claims[name]["lo"] > 0, (name, claims[name])

# %% [markdown]
# **Claim 2: log n helps ReRoPE** (Su: 48.48 -> 48.85 dagger -> 49.07 trained; gains under one point). Decided by
# the one rule (the interval must exclude zero): log n-dagger, on the same model, is **reproduced** (about +0.9);
# the trained log n model's gain over the plain model (about +0.8) has an interval that includes zero, so it is
# **not reproduced** here - a comparison across two trained models, whose noise these intervals do not even cover.

# %%
assert claims["ReRoPE-log n-dagger - ReRoPE"]["lo"] > 0
assert claims["ReRoPE-log n - ReRoPE"]["lo"] <= 0  # not reproduced at this scale, asserted as it stands

# %% [markdown]
# ### Window sweep (8x, accuracy %, repeated / non-repeated)

# %%
table = []
for frac in rx.WINDOW_FRACTIONS:
    w = max(1, round(frac * L))
    su_p, su_l = references.SU_WINDOW_PLAIN.get(frac), references.SU_WINDOW_LOG_N.get(frac)
    table.append([w, f"{frac:.3g}", rep_nonrep(window_rows, f"ReRoPE-w{w}", 8), su_cell(su_p),
                  rep_nonrep(window_rows, f"ReRoPE-w{w}-log n", 8), su_cell(su_l)])
markdown_table(["w", "w / L", "plain model", "Su (no log n)", "log-n model", "Su (log n)"], table)

# %%
windows = [max(1, round(f * L)) for f in rx.WINDOW_FRACTIONS]
sweep_nr = {w: window_rows.acc(f"ReRoPE-w{w}", "non_repeated", 8) for w in windows}
# Each model's best window against every other window (8x, non-repeated, paired intervals): which windows are
# clearly worse, which cannot be told apart from the best.
sweep = {}
for suffix in ("", "-log n"):
    accs = {w: window_rows.acc(f"ReRoPE-w{w}{suffix}", "non_repeated", 8) for w in windows}
    top = max(accs, key=accs.get)
    vs = {w: window_rows.gap(f"ReRoPE-w{top}{suffix}", f"ReRoPE-w{w}{suffix}") for w in windows if w != top}
    sweep[suffix or "plain"] = (top, vs)
    tied = [w for w, g in vs.items() if not excludes_zero(g)]
    print(f"{'plain model' if not suffix else 'log-n model'}: best w = {top} ({top / L:.3g} L); "
          f"indistinguishable from it: {[f'{w / L:.3g} L' for w in tied] or 'none'}")
    for w, g in vs.items():
        print(f"    best - (w = {w / L:.3g} L): {format_gap(g)}")

# %% [markdown]
# **Claim 3: the best window is about $L/4$ to $L/2$.** By the one rule: on the plain model, **reproduced** - the
# best window lies in $[L/4, L/2]$, every window it cannot be told apart from lies there too, and it is clearly
# better than $w = L/8$, $3L/4$ and $L$. On the log-n model **not reproduced**: every window from $L/4$ to $L$ is
# within noise of the best, only $L/8$ is clearly worse (asserted as it stands).
# **Claim 4: $w = L$ fails** (Su: 7.09 / 8.25 without log n, worse than direct extrapolation) - see the text after
# the assert for what we see.

# %%
top, vs = sweep["plain"]
assert L / 4 <= top <= L / 2, top
assert all(L / 4 <= w <= L / 2 for w, g in vs.items() if not excludes_zero(g)), vs
assert all(vs[w]["lo"] > 0 for w in (round(L / 8), round(3 * L / 4), L) if w in vs)
top_log, vs_log = sweep["-log n"]
if round(L / 8) in vs_log:
    assert vs_log[round(L / 8)]["lo"] > 0
if L in vs_log:  # (if w = L were the best itself, it would trivially be "within noise")
    assert not excludes_zero(vs_log[L])  # log-n model: w = L within noise of the best - the non-reproduction

# %% [markdown]
# **(ours) $w = L$ does not fail here.** Clipping at $w = L$ leaves the model a little worse than the best window,
# but far better than direct extrapolation (compare the Baseline row of the main table). Su's $w = 512$ row
# collapses below the baseline; at our scale it does not reproduce: the README's findings say so, and the cell below
# asserts the non-reproduction as it stands (if a change makes $w = L$ collapse, the assert fails and this text must
# be rewritten). One plausible reason: relative position $L$ itself was never seen in training (the largest
# is $L-1$), and in our small byte-level model the score at one unseen position applied to every distant key is
# nearly as harmless as at $L-1$; in Su's GAU the same position apparently is not.

# %%
assert sweep_nr[L] > main.acc("Baseline", "non_repeated", 8)  # w = L stays above direct extrapolation (Su: below)

# %% [markdown]
# ### Leak sweep (8x, log-n model, accuracy %, repeated / non-repeated)

# %%
table = []
for (frac, k_leak), su in references.SU_LEAK_LOG_N.items():
    w = round(frac * L)
    name = f"Leaky ReRoPE-w{w}-k{k_leak:g}-log n"
    table.append([f"{w} (L/{round(1 / frac)})", f"{k_leak:g}", rep_nonrep(leak_rows, name, 8), su_cell(su)])
markdown_table(["w", "k", "here", "Su"], table)

# %%
leak_nr = [leak_rows.acc(n, "non_repeated", 8) for n in leak_rows]
leak_spread = max(leak_nr) - min(leak_nr)
rerope_log = window_rows.acc(f"ReRoPE-w{L // 4}-log n", "non_repeated", 8)
print(f"spread of the leak sweep (non-repeated): {leak_spread:.2f} points; ReRoPE-w{L // 4}-log n: {rerope_log:.1f}")
k8_drop = {
    w: leak_rows.acc(f"Leaky ReRoPE-w{w}-k16-log n", "non_repeated", 8)
    - leak_rows.acc(f"Leaky ReRoPE-w{w}-k8-log n", "non_repeated", 8)
    for w in (L // 4, L // 2)
}
su_leak = references.SU_LEAK_LOG_N
su_drop = [su_leak[(f, 16.0)][1] - su_leak[(f, 8.0)][1] for f in (1 / 4, 1 / 2)]
print(
    "drop from k = 16 to k = 8 (non-repeated, points): "
    + ", ".join(f"w = {w}: {x:+.2f}" for w, x in k8_drop.items())
    + f"  (Su: {su_drop[0]:+.2f}, {su_drop[1]:+.2f})"
)

# %% [markdown]
# Su's leak sweep is nearly flat for $k \ge 16$ and drops at $k = 8$, most for the larger window. The largest
# relative position Leaky ReRoPE uses at test length $L'$ is $w + (L'-1-w)/k$; the printout below gives it at 8x as
# a multiple of $L$ (above 1 means positions the model never saw in training):

# %%
for frac in (1 / 4, 1 / 2):
    w = round(frac * L)
    reach = {k_leak: (w + (8 * L - 1 - w) / k_leak) / L for k_leak in rx.LEAKS}
    print(
        f"w = {w}: largest relative position / L at 8x for k = "
        + ", ".join(f"{k:g}: {r:.2f}" for k, r in reach.items())
    )

# %% [markdown]
# At $k = 8$ both windows reach beyond $L$ (1.2L and 1.4L), which is where Su's accuracy drops. Ours stays
# flat within the spread printed above: this model tolerates relative positions 20-40% past its training length, so the
# $k = 8$ drop does not reproduce at 8x here (asserted as it stands in the next cell: under one point at $w = L/2$,
# where Su loses three). **(ours)** At 16x, Leaky ReRoPE with $k = 16$ (reach again about
# $1.2L$, but with eight times as many keys beyond $L$) does fall behind ReRoPE (main table, and the loss curve in
# section 6); we leave open why the same overshoot costs more there - tuning $k$ to the test length, as Su does,
# avoids it.

# %%
assert k8_drop[L // 2] < 1, k8_drop  # Su's drop at w = L/2 is 3.15 points; ours is absent (non-reproduction guard)

# %% [markdown]
# ## 6. Longer context, lower loss? (kexue.fm/archives/9948) - the headline picture
#
# Su's protocol: the loss on the *same* last $L$ bytes of each sample while the context grows from $L$ (the
# training length) to 16L, for every method of the main table. A method that keeps long-range information useful
# makes the curve fall below its value at $L$. Su's own numbers (LLaMA2-13B, bojone/rerope README, loss on the last
# 4096 tokens, training length 4096) are printed first: only ReRoPE's loss falls, 1.4996 -> 1.4267 -> 1.4001.

# %% tags=["nbval-check-output"]
su_lw = references.SU_LLAMA2_13B_LAST_WINDOW_LOSS
for name, by_len in su_lw.items():
    print(f"Su, LLaMA2-13B, {name:18s} " + "  ".join(f"{n}: {v if v is not None else '-'}" for n, v in by_len.items()))

# %%
xs = [1, *mults]  # main rows are also scored at L (ReRoPE clips inside L: w = L/2)
curve = {name: [main.last_window_loss(name, m) for m in xs] for name in main}
fig, ax = plt.subplots(figsize=(7.5, 4.4))
styles = {"none": "-", "dagger": ":", "trained": "--"}
palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
colors = dict(zip(["Baseline", "NTK-fixed", "YaRN", "ReRoPE", "Leaky ReRoPE"], palette))
for name in main:
    row = main[name]
    ax.plot(xs, curve[name], styles[row["log_n"]], color=colors[row["method"]], marker="o", ms=3, label=name)
ax.set_xscale("log", base=2)
ax.set_xticks(xs, ["L" if m == 1 else f"{m}L" for m in xs])
ax.set_xlabel("context length")
ax.set_ylabel(f"loss on the last {L} bytes (nats)")
ax.set_title("Longer context, lower loss? (non-repeated; dotted: log n-dagger, dashed: trained with log n)")
ax.legend(fontsize=6.5, ncol=3)
rope_lib.savefig(fig, "05_longer_context_loss", profile=profile, exact=False)
plt.show()

# %% [markdown]
# The change of that loss from context $L$ to each longer context, per row: a paired bootstrap over the test samples
# (every context scores the same bytes of the same samples), 95% intervals, in nats. Negative = lower loss with more
# context. (12 samples and one training seed: the intervals cover the choice of test text only.)

# %%
change = {name: {m: main.loss_change(name, m, base_mult=1) for m in mults} for name in main}
markdown_table(
    ["row", "loss at L", *(f"{m}L − L" for m in mults)],
    [[name, f"{curve[name][0]:.3f}", *(format_gap(change[name][m]) for m in mults)] for name in main],
)

# %% [markdown]
# **Claim 5: with ReRoPE, longer context gives lower loss.** Reproduced at 2L: the loss on the last $L$ bytes falls
# below its value at $L$ for ReRoPE on both models and with log n-dagger, intervals below zero (asserted), and with
# log n it stays below $L$ up to 4L; every frequency-scaling row instead rises from 4L on (asserted). **Not
# reproduced beyond 4L**: by 16L the ReRoPE curves are back at (or above) their value at $L$ (asserted as it stands,
# a non-reproduction guard), where Su's keeps falling from 4k to 16k. Our 0.8M-parameter byte-level model, trained
# on under a million bytes, finds little more to use 8L back.

# %%
RE_ROWS = ("ReRoPE", "ReRoPE-log n-dagger", "ReRoPE-log n")
for name in RE_ROWS:
    assert change[name][2]["hi"] < 0, (name, change[name][2])  # lower loss at 2L than at L
for name in main:
    if main[name]["method"] in ("Baseline", "NTK-fixed", "YaRN"):
        assert all(change[name][m]["lo"] > 0 for m in mults if m >= 4), name  # frequency methods: higher loss
assert all(change[name][16]["hi"] >= 0 for name in RE_ROWS)  # not lower at 16L: the non-reproduction above

# %% [markdown]
# ## 7. Cost: prefill time and peak memory (from `make bench`)
#
# `benchmarks/rerope_bench.py` times the reference (two full score matrices, as in the post), the blockwise
# version and plain RoPE with PyTorch's SDPA, forward pass, batch 1, 4 heads, head_dim 128, fp32, 2 CPU threads, best
# of several rounds, each case in a fresh process for its peak-memory reading. The committed JSON is plotted here;
# `make bench` regenerates it (and a CUDA one when a GPU is present).

# %%
import json  # noqa: E402

bench = json.loads((rope_lib.repo_root() / "results" / "bench" / "rerope_cpu.json").read_text())
by = {}
for r in bench["rows"]:
    by.setdefault(r["method"], {})[r["n"]] = r
fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
for method, label in (
    ("sdpa", "plain RoPE + SDPA"),
    ("blockwise", "ReRoPE blockwise"),
    ("leaky", "Leaky ReRoPE blockwise"),
    ("reference", "ReRoPE reference (2 full matrices)"),
):
    ns = sorted(by[method])
    ax_t.plot(ns, [by[method][n]["time_s"] for n in ns], marker="o", label=label)
    ax_m.plot(ns, [by[method][n]["peak_mib"] for n in ns], marker="o", label=label)
for ax, ylabel in ((ax_t, "forward time (s)"), (ax_m, "peak memory above baseline (MiB)")):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length")
    ax.set_ylabel(ylabel)
ax_t.legend(fontsize=7)
fig.suptitle(f"ReRoPE prefill cost on CPU ({bench['threads']} threads, torch {bench['torch']})")
rope_lib.savefig(fig, "05_rerope_cost", profile=profile)
plt.show()

# %% tags=["nbval-check-output"]
n_max = max(by["blockwise"])
ratio_8k = by["blockwise"][8192]["time_s"] / by["sdpa"][8192]["time_s"]
mem_growth = by["blockwise"][n_max]["peak_mib"] / by["blockwise"][n_max // 2]["peak_mib"]
print(f"blockwise / SDPA time at 8192 tokens: {ratio_8k:.2f}x (target <= 2.5x)")
print(
    f"blockwise peak memory, {n_max} vs {n_max // 2} tokens: {mem_growth:.2f}x (a {n_max}^2 score matrix would be 4x)"
)
print(f"reference peak memory at 8192 tokens: {by['reference'][8192]['peak_mib'] / 1024:.1f} GiB")
assert ratio_8k <= 2.5 and mem_growth < 3

# %% [markdown]
# ## Summary
#
# * Proved with sympy: $(R_w q)^\top k$ is the score at relative position $w$; Leaky's rotations
#   $R_{(i-w)/k+w}$ and $R_{j/k}$ give $w + (i-j-w)/k$; the decode step with raw cached keys equals prefill.
# * `rope_lib.rerope_attention` (blockwise, online softmax, never an $n \times n$ matrix) equals the two-matrix
#   reference, reduces to plain RoPE when $w \ge n$, and decodes token by token exactly.
# * Reproduced at 8x: ReRoPE and Leaky ReRoPE beat every frequency-scaling method, with intervals clear of zero;
#   on the plain model the best window lies in $[L/4, L/2]$ (on the log-n model every window from $L/4$ to $L$ is
#   within noise of the best); log n-dagger adds a small, clear gain.
# * Reproduced at 2L: with ReRoPE the loss on the last $L$ bytes is lower with more context (it falls below its
#   value at $L$), while every frequency-scaling method's rises.
# * Not reproduced at this scale: $w = L$ collapsing below the baseline, and the loss still falling at 8L-16L (the
#   ReRoPE curves come back to their value at $L$). Both are in the README's findings.
