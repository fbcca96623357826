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
# **Claims.** Clipping the relative position at a window $w$ (ReRoPE: $\min(i-j, w)$), or letting it grow slowly
# beyond the window (Leaky ReRoPE: $w + (i-j-w)/k$), extrapolates far better without fine-tuning than any
# frequency-scaling method, to the point that the loss on a fixed stretch of text *falls* as the context grows
# ("longer context, lower loss"). Su's best window is about $L/4$ to $L/2$; $w = L$, which clips only beyond the
# training length, fails. Over 3 training seeds here: the first claim reproduces; "longer context, lower loss" holds
# from $L$ to $2L$ (reproduced for four of the six ReRoPE and Leaky ReRoPE rows, consistent for the other two) and
# beyond that only at $4L$ for ReRoPE on the model trained with log n; the best window shows only as a plateau from
# $L/4$ to $3L/4$; and $w = L$ is below the windows $L/4 .. L/2$ taken together on every seed, within noise, and
# does not collapse (details in sections 5 and 6).
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
from rope_lib.companion.plotting import savefig
from rope_lib.companion.report import setup_notebook
from rope_lib.companion.runtime import repo_root

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
L_s, s_s = sp.symbols("L s", positive=True)
reach_s = w_s + (s_s * L_s - 1 - w_s) / leak_s
k_min_s = (s_s * L_s - 1 - w_s) / (L_s - 1 - w_s)
# at k = k_min_s the reach is exactly L - 1, and it decreases in k (so k >= k_min_s is the condition, for w < L - 1)
assert sp.simplify(reach_s.subs(leak_s, k_min_s) - (L_s - 1)) == 0
assert sp.simplify(sp.diff(reach_s, leak_s) + (s_s * L_s - 1 - w_s) / leak_s**2) == 0
# k = s overshoots by (w + 1)(1 - 1/s) > 0 for s > 1
assert sp.simplify(reach_s.subs(leak_s, s_s) - (L_s - 1) - (w_s + 1) * (1 - 1 / s_s)) == 0
# rope_lib agrees: the largest relative position it uses at sL, for L = 64, w = L/4, s = 8 and both leaks
for k_num in (8.0, float(k_min_s.subs({L_s: 64, s_s: 8, w_s: 16}))):
    p_max = rope_lib.rerope_relative_position(torch.arange(8 * 64, dtype=torch.float64), 16, k_num).max().item()
    assert abs(p_max - float(reach_s.subs({L_s: 64, s_s: 8, w_s: 16, leak_s: k_num}))) < 1e-9
k_min_num = float(k_min_s.subs({L_s: 64, s_s: 8, w_s: 16}))
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
gen = torch.Generator().manual_seed(seed)
head_dim, seq, window = 32, 97, 20
theta = rope_lib.inv_freq(head_dim)
q, k, v = (torch.randn(2, 3, seq, head_dim, generator=gen) for _ in range(3))
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
# training; three training seeds each, trained once by `make models` and loaded from the checkpoint cache), the
# same test windows (21 per seed, one per test file, none shared between seeds), no fine-tuning. Main rows at
# $L$ and 2x-16x: ReRoPE with $w = L/2$ (Su's w256 at $L = 512$), Leaky ReRoPE with $w = L/4$, $k = 16$, and for
# comparison Baseline, NTK-fixed and YaRN - each without log n, with log n at test time only (dagger) and on the
# model trained with log n. Then Su's two sweeps at 8x: the window $w = L/8 .. L$ and the leak $k = 64 .. 8$.
# Every claim below is decided on the training-seed level: each seed gives one estimate (its mean over its test
# windows), and the Student-t 95% interval over the 3 seeds gives the tier - reproduced (the interval on the claimed
# side of zero), consistent (every seed on the claimed side, the interval reaching across), reversed (the interval on
# the other side) or not reproduced; the interval bootstrapped over seeds and test files is printed as a description.

# %%
import numpy as np

from rope_lib.companion.experiments import references, rerope_eval, run_experiment
from rope_lib.companion.report import Results, format_gap, markdown_table
from rope_lib.companion.verdicts import ClaimBook, slug

results = Results(run_experiment("rerope", profile=profile, device=device, seed=seed))
L, mults = results.train_length, results.mults
main, window_rows, leak_rows = (results.group(group) for group in ("main", "window", "leak"))
# every difference of two (seeds, windows) arrays below goes through Rows.difference: paired window by window,
# bootstrapped over seeds and the test file of each window
n_windows = len(results.files[0])
print(f"{main.n_seeds} training seeds {results.seeds}, {n_windows} test windows each, L = {L}")
claims = ClaimBook("05", profile)
SU_REROPE, SU_LONGER = "Su, kexue.fm/archives/9708", "Su, kexue.fm/archives/9948"  # the claims' sources


def rep_nonrep(rows, name: str, mult: int) -> str:
    """A table cell: accuracy (%) on the repeated / non-repeated test sets, each mean ± sd over seeds."""
    return f"{rows.cell(name, 'repeated', mult)} / {rows.cell(name, 'non_repeated', mult)}"


def su_cell(su) -> str:
    """A table cell: Su's (repeated, non-repeated) pair, or "-" where he gives none."""
    return "%.2f / %.2f" % su if su else "-"


# %% [markdown]
# ### Main table (accuracy %, repeated / non-repeated, mean ± sd over 3 training seeds, 21 test windows each; Su's
# 8x numbers at train 512 / test 4096 in the last column)

# %%
SU = {**references.SU_8X, **references.SU_REROPE_MAIN}
markdown_table(
    ["method", *(f"{m}x ({m * L})" for m in mults), "Su 8x"],
    [[name, *(rep_nonrep(main, name, m) for m in mults), su_cell(SU.get(name))] for name in main],
)

# %% [markdown]
# ### Claims at 8x, non-repeated (gap in points: mean, per seed, 95% seed interval, bootstrap interval, tier)

# %%
STATED_8X = {  # the stated verdict of each claim "a - b > 0"
    ("ReRoPE", "YaRN"): "reproduced",
    ("ReRoPE", "NTK-fixed"): "reproduced",
    ("Leaky ReRoPE", "YaRN"): "reproduced",
    ("ReRoPE-log n", "NTK-fixed-log n"): "reproduced",
    ("ReRoPE-log n-dagger", "ReRoPE"): "reproduced",
    ("ReRoPE-log n", "ReRoPE"): "consistent",
}
verdicts_8x = {}
for (a, b), stated in STATED_8X.items():
    verdicts_8x[a, b] = claims.decide(
        f"05.{slug(a)}-vs-{slug(b)}.8x",
        main.gap(a, b),
        ">",
        claim=f"{a} - {b}, 8x non-repeated",
        source=SU_REROPE,
        stated=stated,
    )

# %% [markdown]
# **Claim 1: ReRoPE and Leaky ReRoPE extrapolate better than every frequency-scaling method.** Su: ReRoPE-w256
# 48.48 vs YaRN 47.45 and NTK-fixed 39.61 (non-repeated, 8x). **Reproduced**, on every seed: ReRoPE beats YaRN by
# +6.01 points (seed interval [+5.18, +6.83]) and NTK-fixed by +11.12 ([+7.03, +15.22]), Leaky ReRoPE beats YaRN by
# +6.53 ([+4.66, +8.40]), and on the log-n model ReRoPE beats NTK-fixed by +10.93 ([+6.59, +15.28]).
#
# **Claim 2: log n helps ReRoPE** (Su: 48.48 -> 48.85 dagger -> 49.07 trained; gains under one point). log n-dagger,
# on the same models: **reproduced**, +0.99 points on every seed (seed interval [+0.38, +1.61]). The models trained
# with log n against the plain ones: **consistent** - every seed ahead, but the seed-level interval includes zero
# (+0.83, seeds +0.28 / +1.54 / +0.68, interval [-0.76, +2.43]).

# %%
for v in verdicts_8x.values():
    if v.stated != "not decided":  # a decided claim: this run gives the stated tier
        assert v.holds, v

# %% [markdown]
# ### Window sweep (8x, accuracy %, repeated / non-repeated, mean ± sd over 3 training seeds, 21 test windows each)

# %%
windows = [max(1, round(f * L)) for f in rerope_eval.WINDOW_FRACTIONS]
table = []
for frac, w in zip(rerope_eval.WINDOW_FRACTIONS, windows):
    su_plain, su_log_n = references.SU_WINDOW_PLAIN.get(frac), references.SU_WINDOW_LOG_N.get(frac)
    table.append(
        [
            w,
            f"{frac:.3g}",
            rep_nonrep(window_rows, f"ReRoPE-w{w}", 8),
            su_cell(su_plain),
            rep_nonrep(window_rows, f"ReRoPE-w{w}-log n", 8),
            su_cell(su_log_n),
        ]
    )
markdown_table(["w", "w / L", "plain model", "Su (no log n)", "log-n model", "Su (log n)"], table)

# %% [markdown]
# Su's reading of this sweep is that the best window lies between $L/4$ and $L/2$. The largest of six noisy means
# cannot decide that, so the windows are compared by intervals (8x, non-repeated, on both models): the mean of
# the in-band windows $L/4$, $3L/8$, $L/2$ (per test window, so the comparison stays paired) against each window
# outside the band and against the mean of all three, and every window against $w = L$.

# %%
BAND = [w for w in windows if L / 4 <= w <= L / 2]
OUTSIDE = [w for w in windows if w not in BAND]
MODELS = {"plain model": "", "log-n model": "-log n"}
FRAC = dict(zip(windows, rerope_eval.WINDOW_FRACTIONS))  # w -> w / L, the key of the stated verdicts below
# stated verdicts (claims "> 0"), by model: the band against the rest, the band against each window outside it, and
# each window against w = L (windows by w / L)
STATED_REST = {"plain model": "reproduced", "log-n model": "consistent"}
STATED_OUT = {
    "plain model": {1 / 8: "reproduced", 3 / 4: "not reproduced", 1.0: "consistent"},
    "log-n model": {1 / 8: "consistent", 3 / 4: "not reproduced", 1.0: "consistent"},
}
STATED_VS_L = {
    "plain model": {
        1 / 8: "not reproduced",
        1 / 4: "consistent",
        3 / 8: "consistent",
        1 / 2: "consistent",
        3 / 4: "consistent",
    },
    "log-n model": {
        1 / 8: "not reproduced",
        1 / 4: "not reproduced",
        3 / 8: "not reproduced",
        1 / 2: "consistent",
        3 / 4: "consistent",
    },
}
sweep = {}
for model_name, suffix in MODELS.items():
    acc = {w: window_rows.per_sample(f"ReRoPE-w{w}{suffix}", "non_repeated", 8) for w in windows}
    band = np.mean([acc[w] for w in BAND], axis=0)  # (seeds, samples)
    vs_rest = claims.decide(
        f"05.window.{slug(model_name)}.band-vs-rest",
        window_rows.difference(band, np.mean([acc[w] for w in OUTSIDE], axis=0)),
        ">",
        claim=f"{model_name}: band (L/4..L/2) - rest, 8x",
        source=SU_REROPE,
        stated=STATED_REST[model_name],
    )
    vs_out = {}
    for w in OUTSIDE:
        vs_out[w] = claims.decide(
            f"05.window.{slug(model_name)}.band-vs-w{w}",
            window_rows.difference(band, acc[w]),
            ">",
            claim=f"{model_name}: band (L/4..L/2) - (w = {w / L:.3g} L), 8x",
            source=SU_REROPE,
            stated=STATED_OUT[model_name][FRAC[w]],
        )
    vs_L = {}
    for w in windows:
        if w != L:
            vs_L[w] = claims.decide(
                f"05.window.{slug(model_name)}.w{w}-vs-w{L}",
                window_rows.gap(f"ReRoPE-w{w}{suffix}", f"ReRoPE-w{L}{suffix}"),
                ">",
                claim=f"{model_name}: (w = {w / L:.3g} L) - (w = L), 8x",
                source=SU_REROPE,
                stated=STATED_VS_L[model_name][FRAC[w]],
            )
    sweep[model_name] = {"vs_out": vs_out, "vs_rest": vs_rest, "vs_L": vs_L}

# %% [markdown]
# **Claim 3: the best window is $L/4$ to $L/2$.** **Not reproduced** as stated, on either model, because the band
# does not beat $w = 3L/4$: **not reproduced** on both models (plain -0.13, log-n +0.12; the seeds on both sides of
# zero). Against the other outside windows, on the plain model the band beats $w = L/8$ (+5.15, seed interval
# [+1.99, +8.31]) and the mean of the three outside windows (+3.72, [+0.22, +7.22]): **reproduced**; it is ahead of
# $w = L$ on every seed, +6.15, but the seed-level interval [-2.74, +15.03] includes zero: **consistent**. On the
# log-n model all three are **consistent** - every seed ahead, but the seed-level interval includes zero: $w = L/8$
# +2.14 ([-0.25, +4.54]), $w = L$ +1.36 ([-1.99, +4.70]), the rest +1.21 ([-0.82, +3.23]). What the data show is a
# plateau from $L/4$ to $3L/4$ with $L/8$ and $L$ below it (reproduced only for $L/8$ on the plain model).
#
# **Claim 4: $w = L$ is worse than the other windows** (Su: 7.09 / 8.25 without log n, far below every other window).
# On the plain model every window from $L/4$ to $3L/4$ is ahead of $w = L$ by about 6 points (+5.78 to +6.76) on
# every seed, with seed-level intervals that include zero: **consistent**; $L/8$ is **not reproduced** (+0.99, the
# seeds on both sides). On the log-n model $L/2$ (+1.61) and $3L/4$ (+1.24) are **consistent**, while $L/8$ (-0.79,
# below $w = L$ on every seed, within noise), $L/4$ (+1.01) and $3L/8$ (+1.44) are **not reproduced** (for the last
# two, the seeds on both sides). Taken together, the in-band windows are ahead of $w = L$ on every seed on both
# models (claim 3): **consistent**, and by far less than in Su's table.

# %%
for model_sweep in sweep.values():
    for v in [model_sweep["vs_rest"], *model_sweep["vs_out"].values(), *model_sweep["vs_L"].values()]:
        if v.stated != "not decided":  # a decided claim: this run gives the stated tier
            assert v.holds, v

# %% [markdown]
# **(ours) $w = L$ does not collapse here.** Su's $w = 512$ rows fall far below direct extrapolation (his
# Baseline, 24.17 / 23.16). Ours stay above it on both models, on every seed (below: $w = L$ minus the Baseline row
# of the same model at 8x; Su's direction is $< 0$). Su's collapse is **reversed** on the log-n model ($w = L$ above
# Baseline by +9.78, seed interval [+3.04, +16.51]; our claim "above Baseline" **reproduced**) and **not reproduced**
# on the plain model (+6.77, interval [-11.67, +25.22]; our claim "above Baseline" **consistent**: every seed above,
# but the seed-level interval includes zero); the cell asserts these tiers. On the plain model
# $w = L$ is the least stable row of the sweep (seed sd about 5 points, printed in the table). One plausible reason:
# relative position $L$ itself was never seen in training (the largest is $L-1$), and in our small byte-level model
# the score at one unseen position applied to every distant key is nearly as harmless as at $L-1$; in Su's GAU the
# same position apparently is not.

# %%
STATED_COLLAPSE = {"plain model": "not reproduced", "log-n model": "reversed"}  # Su: w = L below Baseline (< 0)
STATED_ABOVE = {"plain model": "consistent", "log-n model": "reproduced"}  # (ours): w = L above Baseline (> 0)
wl_vs_base = {}
for model_name, suffix in MODELS.items():
    w_l_minus_baseline = main.difference(
        window_rows.per_sample(f"ReRoPE-w{L}{suffix}", "non_repeated", 8),
        main.per_sample("Baseline" + suffix, "non_repeated", 8),
    )
    wl_vs_base[model_name] = (
        claims.decide(
            f"05.window-l-collapse.{slug(model_name)}",
            w_l_minus_baseline,
            "<",
            claim=f"{model_name}: (w = L) - Baseline, 8x",
            source=SU_REROPE,
            stated=STATED_COLLAPSE[model_name],
        ),
        claims.decide(
            f"05.window-l-above-baseline.{slug(model_name)}",
            w_l_minus_baseline,
            ">",
            claim=f"{model_name}: (w = L) - Baseline, 8x",
            source="ours",
            stated=STATED_ABOVE[model_name],
        ),
    )
for collapse, above in wl_vs_base.values():
    for v in (collapse, above):
        if v.stated != "not decided":  # a decided claim: this run gives the stated tier
            assert v.holds, v

# %% [markdown]
# ### Leak sweep (8x, log-n model, accuracy %, repeated / non-repeated, mean ± sd over 3 training seeds)

# %%
table = []
for (frac, k_leak), su in references.SU_LEAK_LOG_N.items():
    w = round(frac * L)
    name = f"Leaky ReRoPE-w{w}-k{k_leak:g}-log n"
    table.append([f"{w} (L/{round(1 / frac)})", f"{k_leak:g}", rep_nonrep(leak_rows, name, 8), su_cell(su)])
markdown_table(["w", "k", "here", "Su"], table)

# %% [markdown]
# Su's leak sweep is nearly flat for $k \ge 16$ and drops at $k = 8$, most for the larger window (non-repeated:
# -0.99 points at $w = L/4$, -3.15 at $w = L/2$). The largest relative position Leaky ReRoPE uses at test length
# $L'$ is $w + (L'-1-w)/k$; the printout gives it at 8x as a multiple of $L$ (the trained range ends at $(L-1)/L$),
# then the claimed drop from $k = 16$ to $k = 8$ by the rule:

# %%
for frac in (1 / 4, 1 / 2):
    w = round(frac * L)
    reach = {k_leak: (w + (8 * L - 1 - w) / k_leak) / L for k_leak in rerope_eval.LEAKS}
    print(
        f"w = {w}: largest relative position / L at 8x for k = "
        + ", ".join(f"{k:g}: {r:.2f}" for k, r in reach.items())
    )
k8_drop = {w: leak_rows.gap(f"Leaky ReRoPE-w{w}-k16-log n", f"Leaky ReRoPE-w{w}-k8-log n") for w in (L // 4, L // 2)}
k_flat = {w: leak_rows.gap(f"Leaky ReRoPE-w{w}-k64-log n", f"Leaky ReRoPE-w{w}-k16-log n") for w in (L // 4, L // 2)}
STATED_K8 = {L // 4: "not reproduced", L // 2: "consistent"}  # Su: (k = 16) - (k = 8) > 0, by window
# Su: about 0 from k = 64 to k = 16; decided as the claim "(k = 64) - (k = 16) > 0", for which flat is "not reproduced"
# (at w = L/4 the runs differ: reversed here and on the second machine, not reproduced on the first one)
STATED_K64 = {L // 4: "not decided", L // 2: "not reproduced"}
leak_verdicts = []
for w in k8_drop:
    leak_verdicts.append(
        claims.decide(
            f"05.leak.w{w}.k16-vs-k8",
            k8_drop[w],
            ">",
            claim=f"w = {w}: (k = 16) - (k = 8), 8x log-n model",
            source=SU_REROPE,
            stated=STATED_K8[w],
        )
    )
    leak_verdicts.append(
        claims.decide(
            f"05.leak.w{w}.k64-vs-k16",
            k_flat[w],
            ">",
            claim=f"w = {w}: (k = 64) - (k = 16), 8x log-n model (Su: about 0)",
            source=SU_REROPE,
            stated=STATED_K64[w],
        )
    )

# %% [markdown]
# Su's drop from $k = 16$ to $k = 8$: at $w = L/2$ (reach 1.44L at $k = 8$) **consistent** - every seed drops, but
# the seed-level interval includes zero (+0.64 points, where Su loses 3.15; seed interval [-0.42, +1.70]); at
# $w = L/4$ (reach 1.22L) **not reproduced** (+0.09, the seeds on both sides; Su: 0.99). As in Su's sweep, the drop
# is larger for the larger window, whose reach goes further past $L$. Between $k = 64$ and $k = 16$: at $w = L/2$
# no difference (**not reproduced** as a gain: -0.07, the seeds on both sides, interval [-1.15, +1.00]; Su: flat
# there too); at $w = L/4$ **not decided** - reversed here and on the second machine, not reproduced on the first
# machine: here, as on the second machine, $k = 64$ is decidedly below $k = 16$ (-0.20, seed interval
# [-0.32, -0.09]); on the first machine it is below on every seed, within noise (-0.16, seed interval
# [-0.36, +0.03]) (Su, non-repeated: 48.96 at $k = 64$, 49.10 at $k = 16$).

# %%
for v in leak_verdicts:
    if v.stated != "not decided":  # a decided claim: this run gives the stated tier
        assert v.holds, v

# %% [markdown]
# ## 6. Longer context, lower loss? (kexue.fm/archives/9948) - the headline picture
#
# Su's protocol: the loss on the *same* last $L$ bytes of each sample while the context grows from $L$ (the
# training length) to 16L, for every method of the main table. A method that keeps long-range information useful
# makes the curve fall below its value at $L$. Su's own numbers (LLaMA2-13B, bojone/rerope README, loss on the last
# 4096 tokens, training length 4096; right panel): ReRoPE's loss falls, 1.4996 -> 1.4267 -> 1.4001, from RoPE's
# value at $L$; NTK-RoPE's falls too, from a higher start (it changes the model at $L$ as well); RoPE's explodes.
# Left: ours. Both panels plot the change from the loss at context $L$ (each seed's own test windows score the same
# bytes at every context, so the change is paired): the mean over 3 training seeds (21 test windows each), the band
# spanning the seeds.

# %% tags=["nbval-check-output"]
su_lw = references.SU_LLAMA2_13B_LAST_WINDOW_LOSS
for name, by_len in su_lw.items():
    print(f"Su, LLaMA2-13B, {name:18s} " + "  ".join(f"{n}: {v if v is not None else '-'}" for n, v in by_len.items()))

# %%
contexts = [1, *mults]  # main rows are also scored at L (ReRoPE clips inside L: w = L/2)
# loss on the last L bytes, mean over each seed's windows: (seeds, contexts)
last_window_by_seed = {
    name: np.stack([main.last_window_loss_per_sample(name, m).mean(1) for m in contexts], 1) for name in main
}
rise = {name: by_context - by_context[:, :1] for name, by_context in last_window_by_seed.items()}  # change from L
fig, (ax, ax_su) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [3, 2]}, sharey=True)
styles = {"none": "-", "dagger": ":", "trained": "--"}
palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
colors = dict(zip(["Baseline", "NTK-fixed", "YaRN", "ReRoPE", "Leaky ReRoPE"], palette))
for name in main:
    row, color = main[name], colors[main[name]["method"]]
    ax.plot(contexts, rise[name].mean(0), styles[row["log_n"]], color=color, marker="o", ms=3, label=name)
    ax.fill_between(contexts, rise[name].min(0), rise[name].max(0), color=color, alpha=0.2, lw=0)
ax.set_xscale("log", base=2)
ax.set_xticks(contexts, ["L" if m == 1 else f"{m}L" for m in contexts])
ax.set_xlabel("context length")
ax.set_ylabel("loss on the last L bytes minus at context L (nats)")
ax.set_title(f"ours, L = {L} bytes (non-repeated; dotted: log n-dagger, dashed: trained with log n)", fontsize=8.5)
ax.legend(fontsize=6, ncol=3, loc="upper left")
su_colors = {"RoPE": colors["Baseline"], "NTK-RoPE (static)": colors["NTK-fixed"], "ReRoPE": colors["ReRoPE"]}
su_len = list(next(iter(su_lw.values())))
for name, by_len in su_lw.items():
    points = [(n, v - by_len[su_len[0]]) for n, v in by_len.items() if v is not None]
    ax_su.plot([n for n, _ in points], [v for _, v in points], marker="o", ms=3, color=su_colors[name], label=name)
ax_su.set_xscale("log", base=2)
ax_su.set_xticks(su_len, ["4k (L)", "8k (2L)", "16k (4L)"])
ax_su.set_xlabel("context length (tokens)")
ax_su.set_title("Su, LLaMA2-13B, L = 4096 tokens (bojone/rerope README)", fontsize=8.5)
ax_su.legend(fontsize=7, loc="upper left")
for panel in (ax, ax_su):
    panel.set_yscale("symlog", linthresh=0.1)  # linear within +-0.1 nats (the ReRoPE dip), logarithmic beyond
    panel.axhline(0, color="0.5", lw=0.8)
ax.set_ylim(-0.2, 30)  # room for the legend and for Su's RoPE (+7.36 at 8k)
fig.suptitle("Longer context, lower loss? (below 0: lower loss on the same bytes than with context L)")
savefig(fig, "05_longer_context_loss", profile=profile, exact=False)
plt.show()

# %% [markdown]
# The change of that loss from context $L$ to each longer context, per row, in nats (negative = lower loss with
# more context): bootstrapped over the 3 training seeds and their test files (every context scores the same bytes
# of the same windows, so the difference is paired), 95% intervals. The loss at $L$ is the seed mean ± sd.

# %%
change = {name: {m: main.loss_change(name, m, base_mult=1) for m in mults} for name in main}
loss_at_L = {name: last_window_by_seed[name][:, 0] for name in main}
markdown_table(
    ["row", "loss at L", *(f"{m}L − L" for m in mults)],
    [
        [
            name,
            f"{loss_at_L[name].mean():.3f} ± {loss_at_L[name].std(ddof=1):.3f}",
            *(format_gap(change[name][m]) for m in mults),
        ]
        for name in main
    ],
)

# %% [markdown]
# Decided on the seed level, row by row, as the claim "lower than at $L$": at which longer contexts is the loss on
# the last $L$ bytes lower than at $L$ (reproduced: the seed interval below zero), and at which higher (reversed)?

# %%
# stated verdicts of "the loss on the last L bytes at mL - at L < 0", by row and m
STATED_LOWER = {
    "Baseline": {2: "not reproduced", 4: "reversed", 8: "reversed", 16: "reversed"},
    "NTK-fixed": {2: "reversed", 4: "reversed", 8: "reversed", 16: "reversed"},
    "YaRN": {2: "reversed", 4: "reversed", 8: "reversed", 16: "reversed"},
    "ReRoPE": {2: "reproduced", 4: "not reproduced", 8: "reversed", 16: "reversed"},
    "Leaky ReRoPE": {2: "reproduced", 4: "not reproduced", 8: "reversed", 16: "reversed"},
    "Baseline-log n-dagger": {2: "not reproduced", 4: "not reproduced", 8: "reversed", 16: "reversed"},
    "NTK-fixed-log n-dagger": {2: "reversed", 4: "reversed", 8: "reversed", 16: "reversed"},
    "YaRN-log n-dagger": {2: "reversed", 4: "reversed", 8: "reversed", 16: "reversed"},
    "ReRoPE-log n-dagger": {2: "reproduced", 4: "consistent", 8: "not reproduced", 16: "not reproduced"},
    "Leaky ReRoPE-log n-dagger": {2: "consistent", 4: "not reproduced", 8: "not reproduced", 16: "reversed"},
    "Baseline-log n": {2: "not reproduced", 4: "reversed", 8: "reversed", 16: "reversed"},
    "NTK-fixed-log n": {2: "not reproduced", 4: "reversed", 8: "reversed", 16: "reversed"},
    "YaRN-log n": {2: "reversed", 4: "reversed", 8: "reversed", 16: "reversed"},
    "ReRoPE-log n": {2: "reproduced", 4: "reproduced", 8: "not reproduced", 16: "reversed"},
    "Leaky ReRoPE-log n": {2: "consistent", 4: "consistent", 8: "not reproduced", 16: "reversed"},
}
RE_ROWS = ("ReRoPE", "ReRoPE-log n-dagger", "ReRoPE-log n")
lower = {}
for name in main:
    for m in mults:
        lower[name, m] = claims.decide(
            f"05.lower-loss.{slug(name)}.{m}x",
            change[name][m],
            "<",
            claim=f"{name}: loss on the last L bytes at {m}L - at L",
            source=SU_LONGER,
            quantity="loss change (nats)",
            stated=STATED_LOWER[name][m],
            quiet=not (name in RE_ROWS and m in (2, 4)),  # every row's tiers are summarised below
        )
print('every row, "loss at mL lower than at L" (reproduced: lower; reversed: higher):')
for name in main:
    print(f"{name:26s} " + "  ".join(f"{m}L: {lower[name, m].tier:14s}" for m in mults).rstrip())
STATED_AGAIN = {"ReRoPE": "reversed", "ReRoPE-log n-dagger": "reversed", "ReRoPE-log n": "not reproduced"}
again = {}
for name in RE_ROWS:  # Su: 16k below 8k
    again[name] = claims.decide(
        f"05.lower-loss-again.{slug(name)}.4x-vs-2x",
        main.loss_change(name, 4, base_mult=2),
        "<",
        claim=f"{name}: loss on the last L bytes at 4L - at 2L",
        source=SU_LONGER,
        quantity="loss change (nats)",
        stated=STATED_AGAIN[name],
    )

# %% [markdown]
# **Claim 5: with ReRoPE, longer context gives lower loss.** At 2L: **reproduced** - the loss on the last $L$
# bytes falls below its value at $L$ for every ReRoPE and Leaky ReRoPE row, on every seed, by 0.03-0.04 nats:
# reproduced for ReRoPE, ReRoPE-log n-dagger, ReRoPE-log n and Leaky ReRoPE, **consistent** (every seed lower, but
# the seed-level interval includes zero) for Leaky ReRoPE-log n-dagger and Leaky ReRoPE-log n. The frequency-scaling
# rows rise instead: at 2L **reversed** (decidedly higher) for NTK-fixed, NTK-fixed-log n-dagger and the three YaRN
# rows, higher on every seed but within noise for the three Baseline rows, split for NTK-fixed-log n (one seed
# lower); at 4L reversed for all but Baseline-log n-dagger; at 8L and 16L reversed for all.
# Beyond 2L: **not reproduced**. Su's loss falls again from 8k to 16k; ours rises again from 2L to 4L: **reversed**
# for ReRoPE (+0.04) and ReRoPE-log n-dagger (+0.02), higher on every seed but within noise for ReRoPE-log n (+0.02,
# not reproduced). At 4L only ReRoPE-log n is still below its value at $L$ (-0.02, seed interval [-0.03, -0.00]:
# reproduced); ReRoPE-log n-dagger and Leaky ReRoPE-log n are **consistent** (every seed lower, but the seed-level
# interval includes zero), the other three not reproduced. At 16L the loss is decidedly above its value at $L$
# (reversed) for every ReRoPE and Leaky ReRoPE row but ReRoPE-log n-dagger (above on every seed, within noise). Our
# 0.8M-parameter byte-level model, trained on under a million bytes, finds little to use more than 2L back.

# %%
for v in [*lower.values(), *again.values()]:
    if v.stated != "not decided":  # a decided claim: this run gives the stated tier
        assert v.holds, v

# %% [markdown]
# **(ours) Leaky ReRoPE with $k = 16$ falls behind ReRoPE at 16x.** At 16x its largest relative position is about
# $1.23L$ (at 8x, $0.73L$), with many keys past $L$. Its loss on the last $L$ bytes at 16L is higher than ReRoPE's
# on every seed of all three rows (+0.19 no log n, +0.13 log n-dagger, +0.10 log n), and its accuracy lower on every
# seed of the two log-n rows (ReRoPE ahead by +0.40 and +0.42 points): all five **consistent** - every seed behind,
# but the seed-level interval includes zero. On the plain model the accuracy gap is **not reproduced** (+0.36, one
# seed on the other side). A leak chosen for the test length, $k \ge (sL-1-w)/(L-1-w)$ (section 1; about 21.4 here
# at 16x), keeps the reach inside $L - 1$.

# %%
STATED_16X = {  # by row: (loss at 16L, Leaky - ReRoPE > 0; accuracy at 16x, ReRoPE - Leaky > 0)
    "": ("consistent", "not reproduced"),
    "-log n-dagger": ("consistent", "consistent"),
    "-log n": ("consistent", "consistent"),
}
leaky16 = {}
for suffix, (stated_loss, stated_acc) in STATED_16X.items():
    leaky_minus_rerope_loss = main.difference(
        main.last_window_loss_per_sample(f"Leaky ReRoPE{suffix}", 16),
        main.last_window_loss_per_sample(f"ReRoPE{suffix}", 16),
    )
    row = suffix.lstrip("-") or "no log n"
    leaky16[suffix] = (
        claims.decide(
            f"05.leaky-behind-rerope.{slug(row)}.16x.loss",
            leaky_minus_rerope_loss,
            ">",
            claim=f"{row}: loss on the last L bytes at 16L, Leaky - ReRoPE",
            source="ours",
            quantity="loss gap (nats)",
            stated=stated_loss,
        ),
        claims.decide(
            f"05.leaky-behind-rerope.{slug(row)}.16x.acc",
            main.gap(f"ReRoPE{suffix}", f"Leaky ReRoPE{suffix}", mult=16),
            ">",
            claim=f"{row}: accuracy at 16x, ReRoPE - Leaky",
            source="ours",
            stated=stated_acc,
        ),
    )
for pair in leaky16.values():
    for v in pair:
        if v.stated != "not decided":  # a decided claim: this run gives the stated tier
            assert v.holds, v

# %% [markdown]
# ## 7. Cost: prefill time and peak memory (from `make bench`)
#
# `benchmarks/rerope_bench.py` times the reference (two full score matrices, as in the post), the blockwise
# version and plain RoPE with PyTorch's SDPA, forward pass, batch 1, 4 heads, head_dim 128, fp32, 2 CPU threads, best
# of several rounds, each case in a fresh process for its peak-memory reading. The committed JSON is plotted here;
# `make bench` regenerates it (and a CUDA one when a GPU is present).

# %%
import json

bench = json.loads((repo_root() / "results" / "bench" / "rerope_cpu.json").read_text())
bench_by_method = {}
for bench_row in bench["rows"]:
    bench_by_method.setdefault(bench_row["method"], {})[bench_row["n"]] = bench_row
fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
for method, label in (
    ("sdpa", "plain RoPE + SDPA"),
    ("blockwise", "ReRoPE blockwise"),
    ("leaky", "Leaky ReRoPE blockwise"),
    ("reference", "ReRoPE reference (2 full matrices)"),
):
    ns = sorted(bench_by_method[method])
    ax_t.plot(ns, [bench_by_method[method][n]["time_s"] for n in ns], marker="o", label=label)
    ax_m.plot(ns, [bench_by_method[method][n]["peak_mib"] for n in ns], marker="o", label=label)
for ax, ylabel in ((ax_t, "forward time (s)"), (ax_m, "peak memory above baseline (MiB)")):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length")
    ax.set_ylabel(ylabel)
ax_t.legend(fontsize=7)
fig.suptitle(f"ReRoPE prefill cost on CPU ({bench['threads']} threads, torch {bench['torch']})")
savefig(fig, "05_rerope_cost", profile=profile)
plt.show()

# %% tags=["nbval-check-output"]
n_max = max(bench_by_method["blockwise"])
ratio_8k = bench_by_method["blockwise"][8192]["time_s"] / bench_by_method["sdpa"][8192]["time_s"]
mem_growth = bench_by_method["blockwise"][n_max]["peak_mib"] / bench_by_method["blockwise"][n_max // 2]["peak_mib"]
print(f"blockwise / SDPA time at 8192 tokens: {ratio_8k:.2f}x (target <= 2.5x)")
print(
    f"blockwise peak memory, {n_max} vs {n_max // 2} tokens: {mem_growth:.2f}x (a {n_max}^2 score matrix would be 4x)"
)
print(f"reference peak memory at 8192 tokens: {bench_by_method['reference'][8192]['peak_mib'] / 1024:.1f} GiB")
assert ratio_8k <= 2.5 and mem_growth < 3

# %% [markdown]
# ## Summary
#
# * Proved with sympy: $(R_w q)^\top k$ is the score at relative position $w$; Leaky's rotations
#   $R_{(i-w)/k+w}$ and $R_{j/k}$ give $w + (i-j-w)/k$; Leaky ReRoPE stays within the trained range at $sL$ only
#   if $k \ge (sL-1-w)/(L-1-w)$ ($k = s$ overshoots by $(w+1)(1-1/s)$).
# * `rope_lib.rerope_attention` (blockwise, online softmax, never an $n \times n$ matrix) equals the two-matrix
#   reference, reduces to plain RoPE when $w \ge n$, and decodes token by token exactly from a cache of raw keys.
# * Reproduced at 8x over 3 training seeds (21 test windows each): ReRoPE and Leaky ReRoPE beat every
#   frequency-scaling method (ReRoPE - YaRN +6.01 points, ReRoPE - NTK-fixed +11.12); log n at test time (dagger)
#   helps ReRoPE (+0.99).
# * Reproduced at 2L: with ReRoPE (all three rows) and Leaky ReRoPE the loss on the last $L$ bytes is lower than at
#   $L$ (consistent for Leaky ReRoPE-log n-dagger and Leaky ReRoPE-log n), while NTK-fixed's and YaRN's rise
#   (reversed, but for NTK-fixed-log n; the Baseline rows higher on every seed, within noise); on the model trained
#   with log n, ReRoPE is still lower at 4L.
# * Consistent (every seed on the claimed side, the seed-level interval including zero): log n trained into the
#   model helps ReRoPE (+0.83); the $k = 8$ drop of Leaky ReRoPE at $w = L/2$ (+0.64, much smaller than Su's);
#   $w = L$ below the $L/4 .. L/2$ windows taken together; Leaky ReRoPE with $k = 16$ behind ReRoPE at 16x in loss
#   (all three rows) and accuracy (the two log-n rows).
# * Not reproduced at this scale: the best window in $L/4 .. L/2$ ($3L/4$ is as good), $w = L$ collapsing below
#   direct extrapolation (reversed on the log-n model, where $w = L$ is decidedly above Baseline), the $k = 8$ drop
#   at $w = L/4$, and the loss still falling beyond 2L (from 2L to 4L it rises again: reversed for ReRoPE and
#   ReRoPE-log n-dagger).
# * Not decided (the runs on record - this machine, and an Intel machine with AVX-512 and with AVX2 kernels - give
#   different tiers): whether Leaky ReRoPE at $w = L/4$ (log-n model, 8x) loses from $k = 16$ to $k = 64$ (reversed
#   here and on the second machine, not reproduced on the first machine).
