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
# # 14 · After Su: the length-extension methods of 2024-2026 on one leaderboard
#
# Notebooks 04-08 put the methods up to 2023 through one harness: one small LM, the same training data, size and
# seeds, the same test windows, every claim decided on the training-seed level. Since then the field moved on, and
# several new methods are small changes to RoPE that a CPU-sized LM can test. Each is stated here in Su's language
# (what it does to the digits of the position, or to the relative positions a score sees), implemented once in
# `rope_lib` (`rope_lib.since_su`, the rope types `p_rope`, `hope`, `resonance`, and the small LM's options), trained
# on notebook 04's setting with its three seeds where it needs training, and scored on notebook 04's windows beside
# every earlier method: one leaderboard, with each paper's own headline claim decided by the seed-level rule.
#
# The methods (sources; what each is trained or run with here is in `rope_lib/companion/experiments/after_su.py`):
# PoSE (Zhu et al., arXiv:2309.10400: train in a short window whose position ids skip, so relative distances span the
# target length); p-RoPE (Barbero et al., arXiv:2410.06205: rotate only the fastest fraction $p$ of the pairs) and
# HoPE (Chen et al., arXiv:2410.21216: drop the pairs that do not complete a period within $L$); interleaved NoPE
# (Llama 4's iRoPE: no position in every 4th layer; RNoPE-SWA, arXiv:2501.18795) with Llama 4's attention temperature
# (transformers 5.23.0 `modeling_llama4`: $1 + 0.1\ln(\lfloor (n+1)/F \rfloor + 1)$ on the NoPE layers' queries);
# SSMax (Nakanishi, arXiv:2501.19399: logits times $s \ln n$); VO-RoPE (Su, <https://kexue.fm/archives/10862>: RoPE on
# the values, the inverse rotation on the output); Dual Chunk Attention (An et al., arXiv:2402.17463; Qwen2.5-1M,
# arXiv:2501.15383: chunked relative positions at inference, ReRoPE's family); Resonance RoPE (Wang et al.,
# arXiv:2403.00071: wavelengths rounded to integers).
#
# Notation: $\theta_i = b^{-2i/d}$, $i = 0..d/2-1$, wavelength $\lambda_i = 2\pi/\theta_i$, training length $L$, test
# length $L'$, position (1-based count of keys a query sees) $n$. *Remarks marked **(ours)** are this companion's,
# not the sources'.*

# %% [markdown]
# <!-- verdicts:start -->
# <!-- verdicts:end -->

# %% tags=["parameters"]
profile: str = "smoke"  # "smoke" (CPU, minutes, what is committed) or "full" (one GPU)
device: str = "auto"  # "auto" -> cuda when present, else cpu; or "cpu", "cuda", "cuda:N"
seed: int = 0  # every random draw in the notebook derives from it

# %%
import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch

import rope_lib
from rope_lib import since_su
from rope_lib.companion.experiments import after_su, harness, run_experiment
from rope_lib.companion.plotting import gap_plot, legend_outside, method_colour, savefig
from rope_lib.companion.report import Results, markdown_table, setup_notebook
from rope_lib.companion.verdicts import NOT_DECIDED, ClaimBook

setup_notebook(profile, device, seed)
model_cfg, _, _, eval_cfg = harness.settings(profile, seed)
L, d, base = model_cfg.train_length, model_cfg.head_dim, model_cfg.rope_base
mults = tuple(eval_cfg["multipliers"])

# %% [markdown]
# ## 1. The methods in Su's language
#
# **Fewer digits: p-RoPE and HoPE.** Su reads RoPE's $d/2$ angles as the digits of the position in base
# $\beta = b^{2/d}$ (notebook 02): pair $i$ is the $i$-th digit, turning once every $\lambda_i$ positions. A pair with
# $\theta_i = 0$ is a digit that never turns: its part of the score, $q^{(i)} \cdot k^{(i)}$, is the same at every
# relative position, a channel for content alone. p-RoPE keeps the fastest fraction $p$ of the digits and stops the
# rest; HoPE stops exactly the digits that never complete a period within $L$ (Su's "critical" digits, whose angles
# beyond $L$ were never seen). So both remove what Su's NTK-style methods rescale: the slow digits that cannot
# extrapolate. (HoPE's exact cut-off, period $> L$, is our reading of its abstract; we could not confirm it in the
# paper's method section.)

# %% tags=["derivation"]
m_, n_, th = sp.symbols("m n theta", real=True)
q1, q2, k1, k2 = sp.symbols("q1 q2 k1 k2", real=True)


def rot(angle):
    return sp.Matrix([[sp.cos(angle), -sp.sin(angle)], [sp.sin(angle), sp.cos(angle)]])


qv, kv = sp.Matrix([q1, q2]), sp.Matrix([k1, k2])
pair_score = ((rot(m_ * th) * qv).T * (rot(n_ * th) * kv))[0]
# a stopped digit (theta = 0): the pair's score is the plain dot product at every pair of positions
assert sp.simplify(pair_score.subs(th, 0) - (q1 * k1 + q2 * k2)) == 0
# a turning digit: the score depends on n - m only, so it changes with the relative position unless theta = 0
assert sp.simplify(sp.diff(pair_score, m_) + sp.diff(pair_score, n_)) == 0
assert sp.simplify(sp.diff(pair_score, n_).subs(th, 0)) == 0 and sp.simplify(sp.diff(pair_score, n_)) != 0

# %%
plain = rope_lib.inv_freq(d, base)
profiles = {
    "RoPE": plain,
    "p-RoPE (p = 0.75)": rope_lib.frequencies({"rope_type": "p_rope", "p": 0.75, "rope_theta": base}, d)[0],
    "HoPE": rope_lib.frequencies({"rope_type": "hope", "rope_theta": base, "original_max_position_embeddings": L}, d)[
        0
    ],
    "Resonance RoPE": rope_lib.frequencies({"rope_type": "resonance", "rope_theta": base}, d)[0],
}
turns = (L * plain / (2 * math.pi)).numpy()  # how many periods pair i completes within L
kept = {name: int((inv > 0).sum()) for name, inv in profiles.items()}
# HoPE keeps exactly the pairs that complete a period within L; p-RoPE the fastest floor(p d/2)
assert kept["HoPE"] == int((turns >= 1).sum()) and kept["p-RoPE (p = 0.75)"] == math.floor(0.75 * d / 2)
truncated = [name for name in profiles if name != "Resonance RoPE"]
assert all(torch.equal(profiles[name][: kept[name]], plain[: kept[name]]) for name in truncated)

# %% tags=["nbval-check-output"]
print(f"d = {d}, b = {base:g}, L = {L}: {d // 2} pairs; {int((turns >= 1).sum())} complete a period within L")
for name, count in kept.items():
    print(f"  {name:18s} rotates {count:2d} of {d // 2} pairs")

# %% [markdown]
# **Exact periods: Resonance RoPE.** Rounding every wavelength to an integer $\tilde\lambda_i$ makes each digit exactly
# periodic in the position: $R_{(m + \tilde\lambda_i)\tilde\theta_i} = R_{m\tilde\theta_i}$. Every pair whose
# period fits in $L$ then meets, at any position beyond $L$, only angles it met in training - exactly, not to within a
# fraction of a turn as with the irrational periods of RoPE. The slow pairs are unchanged in kind: they are Su's
# critical digits, and rounding does nothing for them.

# %%
res = profiles["Resonance RoPE"]
lam = 2 * math.pi / res.double()
assert torch.equal(lam.round(), torch.round(lam)) and float((lam - lam.round()).abs().max()) < 1e-9
fits = lam <= L
positions = torch.arange(16 * L, dtype=torch.float64)
angle = torch.remainder(positions[:, None] * res[None, :], 2 * math.pi)  # (positions, pairs)
# for every pair whose period fits in L, the angles beyond L are among those within L (to float64 rounding)
seen = angle[:L, fits]
unseen = angle[L:, fits]
gap = (unseen[:, None, :] - seen[None, :, :]).abs()
gap = torch.minimum(gap, 2 * math.pi - gap).amin(1).max()
assert float(gap) < 1e-9
rope_gap = torch.remainder(positions[:, None] * plain[None, :], 2 * math.pi)[:, fits]
rope_gap = (rope_gap[L:, None, :] - rope_gap[None, :L, :]).abs()
rope_gap = torch.minimum(rope_gap, 2 * math.pi - rope_gap).amin(1).max()

# %% tags=["nbval-check-output"]
print(f"{int(fits.sum())} pairs have a period <= L = {L}; at positions L..16L - 1 each meets only angles it met")
print(f"  within L (largest distance to a trained angle: Resonance < 1e-9 rad; RoPE {float(rope_gap):.2f} rad)")

# %% [markdown]
# **A temperature that grows with the length: Su's log n, SSMax, Llama 4.** Su's log n scaling (notebook 04)
# multiplies the query at position $n$ by $\log_L n$ (trained with it) or by $\max(1, \log_L n)$ (at test time only:
# "log n-dagger"), so that attention's entropy does not grow with the number of keys. SSMax multiplies the logits by
# $s\ln n$ with $s$ learned per head: with $s = 1/\ln L$ it is Su's trained $\log_L n$ exactly. Llama 4 tempers only
# its NoPE layers, by $1 + a\ln(\lfloor (n+1)/F\rfloor + 1)$: 1 up to $F$, then a staircase that grows like
# $a \ln (n/F)$, a tenth of Su's slope for $a = 0.1$.

# %% tags=["derivation"]
n_sym, L_sym, a_sym, F_sym = sp.symbols("n L a F", positive=True)
su_log_n = sp.log(n_sym) / sp.log(L_sym)
ssmax = (1 / sp.log(L_sym)) * sp.log(n_sym)
assert sp.simplify(ssmax - su_log_n) == 0
# Llama 4 without the floor, for n + 1 a multiple of F: 1 + a ln((n + 1)/F + 1); its slope in ln n tends to a
llama4_smooth = 1 + a_sym * sp.log((n_sym + 1) / F_sym + 1)
slope = sp.limit(sp.diff(llama4_smooth, n_sym) * n_sym, n_sym, sp.oo)
assert sp.simplify(slope - a_sym) == 0 and sp.simplify(sp.diff(su_log_n, n_sym) * n_sym - 1 / sp.log(L_sym)) == 0

# %%
n_axis = torch.arange(1, 16 * L + 1)
temperature = {
    "Su's log n (trained)": torch.log(n_axis.double()) / math.log(L),
    "Su's log n-dagger": rope_lib.log_n_scale(n_axis - 1, L),
    "SSMax, s = 1 / ln L": since_su.ssmax_scale(n_axis - 1, 1 / math.log(L)),
    "Llama 4, F = L": since_su.llama4_attention_temperature(n_axis - 1, floor_scale=L),
}
assert torch.allclose(temperature["SSMax, s = 1 / ln L"], temperature["Su's log n (trained)"], rtol=1e-12)
fig, ax = plt.subplots(figsize=(7.5, 3.8))
for (name, factor), style in zip(temperature.items(), ("-", "--", ":", "-")):
    ax.plot(n_axis.numpy(), factor.numpy(), style, lw=2 if "SSMax" in name else 1.5, label=name)
ax.axvline(L, color="0.5", lw=0.8)
ax.set_xscale("log", base=2)
ax.set(xlabel="keys seen n (log scale)", ylabel="query multiplier", title=f"Length-dependent temperatures, L = {L}")
legend_outside(ax)
savefig(fig, "14_temperatures", profile=profile, exact=True)
plt.show()

# %% [markdown]
# *Figure: SSMax at $s = 1/\ln L$ is Su's trained log n; Llama 4's staircase leaves every query up to $F$ alone and
# then grows a tenth as fast in $\ln n$.*
#
# **Relative positions by other routes: VO-RoPE, DCA, PoSE.** VO-RoPE rotates each value by its key's position $j$
# and the attention output back by the query's $i$: $o_i = R_i^\top \sum_j p_{ij} R_j v_j = \sum_j p_{ij} R_{j-i}
# v_j$, so the output, not the score, carries the relative position. Dual Chunk Attention remaps positions chunk by
# chunk (within a chunk the true distance; to the previous chunk the distance, clipped; further back a fixed query
# id), so no score uses a relative position above the chunk size, at any length: ReRoPE's idea (notebook 05)
# without its window. PoSE keeps the positions and changes what training sees: windows of $L$ tokens whose ids skip,
# so that relative distances up to the target length occur in training.

# %% tags=["derivation"]
i_sym, j_sym = sp.symbols("i j", real=True)
vo = rot(-i_sym * th) * rot(j_sym * th)
assert sp.simplify(vo - rot((j_sym - i_sym) * th)) == sp.zeros(2, 2)

# %%
chunk, local = 3 * L // 4, max(1, L // 16)
rel = since_su.dual_chunk_relative_position(16 * L, chunk, local)
causal = torch.ones(16 * L, 16 * L, dtype=torch.bool).tril()
assert int(rel[causal].max()) <= chunk < L and int(rel[causal].min()) >= 0
gen = torch.Generator().manual_seed(seed)
draws = [since_su.pose_position_ids(L, 4 * L, generator=gen) for _ in range(200)]
covered = torch.zeros(4 * L, dtype=torch.bool)
for ids in draws:
    covered[(ids[:, None] - ids[None, :]).clamp(min=0).unique()] = True
assert bool(covered.all())  # every distance 0..4L-1 occurs within 200 windows of L tokens

# %% tags=["nbval-check-output"]
print(f"DCA, chunk {chunk}, local window {local}: largest relative position at 16L = {int(rel[causal].max())} < L")
print(f"PoSE, windows of {L} ids spanning {4 * L}: 200 draws cover every distance 0..{4 * L - 1}")

# %% [markdown]
# ## 2. Trained and scored with the harness
#
# `run_experiment("after_su")` trains (or finds in the checkpoint cache) every new model for each of the 3 training
# seeds, with notebook 04's data, model size, steps and schedule, and scores every row at $L$ and at 2x-16x on each
# seed's own nested windows (the non-repeated set; the repeated set at $L$ and 8x), the windows notebooks 04 and 05
# score on. Not part of `make` (30 models: about half an hour on 2 cores): `make after-su` runs it and `make` replays
# the committed `results/<profile>/after_su.json` (the README says why). Run here without `ROPE_REPLAY_FROM`, it trains.

# %%
results = Results(run_experiment("after_su", profile=profile, device=device, seed=seed))
rows = results.rows
SEEDS = len(results.seeds)
claims = ClaimBook("14", profile)  # decides and records every claim below (results/<profile>/verdicts/14.json)
assert SEEDS == 3
# the earlier methods, scored on the same windows by notebooks 04 (frequency methods, log n) and 05 (ReRoPE)
extrapolation = Results(run_experiment("extrapolation", profile=profile, device=device, seed=seed))
rerope = Results(run_experiment("rerope", profile=profile, device=device, seed=seed))
assert extrapolation.files == rerope.files == results.files  # the very windows, seed by seed
earlier = {name: extrapolation.rows for name in extrapolation.rows} | {
    name: rerope.group("main") for name in ("ReRoPE", "Leaky ReRoPE")
}
# a row scored here and in notebook 04 (same model, scheme and windows) has the same per-window accuracies
for name in ("Baseline", "YaRN", "Baseline-log n"):
    for m in (1, *mults):
        here, there = rows.per_sample(name, "non_repeated", m), earlier[name].per_sample(name, "non_repeated", m)
        assert np.abs(here - there).max() < 1e-3, (name, m)  # 6 stored digits: 1e-4 points

# %% [markdown]
# ## 3. The leaderboard
#
# Next-byte accuracy (%) on the non-repeated windows, mean ± sd over the 3 training seeds, at the training length and
# beyond, without fine-tuning (PoSE and its control: 100 steps in windows of $L$), sorted by 8x: every method of
# notebook 04 on the plain model and with log n (test time, "-dagger"; trained), ReRoPE ($w = L/2$) and Leaky ReRoPE
# ($w = L/4$, $k = 16$) of notebook 05 (their numbers, read from those notebooks' results files), and the methods of
# this notebook (**new**).

# %%
board = dict(earlier) | {name: rows for name in rows}


def acc_row(name: str) -> list[str]:
    return [board[name].cell(name, "non_repeated", m) for m in (1, *mults)]


order = sorted(board, key=lambda name: -board[name].acc(name, "non_repeated", 8))
new_rows = {name for name in rows if rows[name].get("new")}
markdown_table(
    ["#", "row", "", "L", *(f"{m}L" for m in mults)],
    [[k, name, "new" if name in new_rows else "", *acc_row(name)] for k, name in enumerate(order, 1)],
)

# %%
PANELS = {
    "Su's best frequency methods and ReRoPE": ["Baseline", "YaRN", "Dynamic YaRN", "NTK-fixed-log n", "ReRoPE"],
    "fewer or exact digits": ["Baseline", "p-RoPE (p = 0.75)", "HoPE", "Resonance RoPE", "NoPE"],
    "NoPE layers and temperatures": ["Baseline", "iRoPE", "iRoPE + temperature", "Llama 4 temperature", "SSMax",
                                     "Baseline-log n"],
    "values, chunks, skipped ids": ["Baseline", "VO-RoPE (QKVO)", "VO-RoPE (VO only)", "DCA",
                                    f"PoSE (YaRN s = {after_su.POSE_EXTEND})",
                                    f"window fine-tune (YaRN s = {after_su.POSE_EXTEND})"],
}  # fmt: skip
assert all(r in board for group in PANELS.values() for r in group)
xs = [1, *mults]
fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True, sharey=True)
for ax, (question, names) in zip(axes.flat, PANELS.items()):
    for name in names:
        by_seed = np.column_stack([board[name].acc_by_seed(name, "non_repeated", m) for m in xs])
        colour, style = method_colour(name), "--" if name.endswith("log n") else "-"  # a log-n row: its method's colour
        ax.plot(xs, by_seed.mean(0), style, color=colour, marker="o", ms=3.5, label=name)
        ax.fill_between(xs, by_seed.min(0), by_seed.max(0), color=colour, alpha=0.15, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [f"{m}L" if m > 1 else "L" for m in xs])
    ax.set_title(question, fontsize=10)
    ax.legend(fontsize=9, loc="lower left")
for ax in axes[1]:
    ax.set_xlabel("test length (non-repeated)")
for ax in axes[:, 0]:
    ax.set_ylabel("next-byte accuracy (%)")
fig.suptitle(f"Trained at L = {L} bytes, tested longer (3 training seeds; band: min-max)")
savefig(fig, "14_leaderboard", profile=profile, exact=False)
plt.show()

# %% [markdown]
# ## 4. Each paper's headline claim, decided
#
# Each claim as its paper states it, at our scale: a gap in accuracy (points) or loss (nats) against the method the
# paper compares with, on the same windows, decided on the 3 training seeds (CONTRIBUTING.md). Where a paper's
# setting cannot be matched (model size, data, a fine-tuning budget), the row says what we ran instead.

# %%
STATED: dict[str, str] = {}  # filled from the run on record: claim id -> tier (or NOT_DECIDED)


def decide(cid, a, b, mult, direction=">", *, claim, source, loss=False, threshold=0.0):
    gap = rows.loss_gap(a, b, mult=mult) if loss else rows.gap(a, b, mult=mult)
    quantity = "loss gap (nats)" if loss else "accuracy gap (points)"
    v = claims.decide(
        cid, gap, direction, claim=claim, source=source, quantity=quantity, threshold=threshold,
        stated=STATED.get(cid, NOT_DECIDED),
    )  # fmt: skip
    if v.stated != NOT_DECIDED:
        assert v.holds, v
    return v


pose, window = f"PoSE (YaRN s = {after_su.POSE_EXTEND})", f"window fine-tune (YaRN s = {after_su.POSE_EXTEND})"
decided = [
    decide("14.pose-vs-window.4x", pose, window, 4, claim=f"{pose} - {window}, 4x",
           source="PoSE, arXiv:2309.10400"),
    decide("14.pose-vs-yarn.4x", pose, "YaRN", 4, claim=f"{pose} - YaRN (no fine-tuning), 4x",
           source="PoSE, arXiv:2309.10400"),
    decide("14.p-rope-vs-rope.L", "p-RoPE (p = 0.75)", "Baseline", 1, "<", loss=True,
           claim="p-RoPE - RoPE, loss at L", source="p-RoPE, arXiv:2410.06205"),
    decide("14.hope-vs-rope.8x", "HoPE", "Baseline", 8, claim="HoPE - RoPE, 8x", source="HoPE, arXiv:2410.21216"),
    decide("14.resonance-vs-rope.8x", "Resonance RoPE", "Baseline", 8, claim="Resonance RoPE - RoPE, 8x",
           source="Resonance RoPE, arXiv:2403.00071"),
    decide("14.irope-vs-rope.8x", "iRoPE", "Baseline", 8, claim="iRoPE - RoPE, 8x",
           source="Llama 4; RNoPE-SWA, arXiv:2501.18795"),
    decide("14.temperature-irope.8x", "iRoPE + temperature", "iRoPE", 8,
           claim="iRoPE with Llama 4's temperature - without, 8x", source="Llama 4 (transformers 5.23.0)"),
    decide("14.ssmax-vs-rope.8x", "SSMax", "Baseline", 8, claim="SSMax - RoPE, 8x", source="SSMax, arXiv:2501.19399"),
    decide("14.vo-vs-nope.L", "VO-RoPE (VO only)", "NoPE", 1, "<", loss=True,
           claim="VO-RoPE (VO only) - NoPE, loss at L", source="Su, kexue.fm/archives/10862"),
    decide("14.qk-vs-vo.L", "Baseline", "VO-RoPE (VO only)", 1, "<", loss=True,
           claim="RoPE (QK) - VO-RoPE (VO only), loss at L", source="Su, kexue.fm/archives/10862"),
    decide("14.qkvo-vs-qk.L", "VO-RoPE (QKVO)", "Baseline", 1, ">", loss=True,
           claim="VO-RoPE (QKVO) - RoPE (QK), loss at L", source="Su, kexue.fm/archives/10862"),
    decide("14.dca-vs-baseline.4x", "DCA", "Baseline", 4, claim="DCA - Baseline, 4x",
           source="Qwen2.5-1M, arXiv:2501.15383"),
]  # fmt: skip

# %%
fig, ax = plt.subplots(figsize=(9, 5.6))
gap_plot(ax, [dataclasses.asdict(v) for v in decided], labels=[v.claim for v in decided])
ax.set_xlabel("gap (points of accuracy; nats of loss for the loss claims)")
ax.set_title("Each paper's headline claim: estimate per seed, mean and seed-level 95% interval", fontsize=10)
savefig(fig, "14_headline_gaps", profile=profile, exact=False)
plt.show()
