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
# # 04 · Train short, test long: Su's length-extrapolation table on a small LM
#
# **Claim reproduced.** Su Jianlin trained a ~100M-parameter language model at length $L = 512$ and evaluated it,
# *without fine-tuning*, at $L' = 4096 = 8L$ with every position trick of the day, reporting per-token next-token
# accuracy on two test sets: *repeated* (a sample of $L'/2$ tokens followed by itself) and *non-repeated* (natural
# long text; "the column to trust"). His qualitative findings at 8x, non-repeated set:
#
# 1. Positional Interpolation without fine-tuning does **not** beat direct extrapolation (PI 13.54 vs Baseline 23.16).
# 2. NTK-aware scaling **beats** direct extrapolation (NTK-RoPE-old 39.27, -fixed 39.61, -mixed 40.12).
# 3. **log n** improves NTK, trained in ("-log n": 43.75 / 44.14 / 45.41) or added at test time only
#    ("log n-dagger": 41.11 / 42.38).
# 4. **YaRN** is at least as good as NTK-aware (Baseline-YaRN 47.45 vs Baseline-NTK 42.20).
#
# Sources: Su, "Transformer升级之路" 11 and 12 (<https://kexue.fm/archives/9706>, <https://kexue.fm/archives/9708>:
# the table, the two test sets, log n and log n-dagger), 15, "Key归一化助力长度外推"
# (<https://kexue.fm/archives/9859>: the YaRN rows);
# Peng et al., *YaRN*, arXiv:2309.00071 (NTK-by-parts, YaRN, dynamic scaling); Chen et al., *Positional
# Interpolation*, arXiv:2306.15595. Su's data, code and hyper-parameters are unpublished, so we compare orderings
# and gaps, not absolute accuracies.
#
# **Our setting.** A small byte-level decoder (`rope_lib.companion.model`) trained on the Python sources of the pinned
# sympy release (`rope_lib.companion.data`: split by file, checksummed), at a short training length, then evaluated at
# 2x to 16x the training length with every method, on the non-repeated set (the repeated set at 8x only, Su's column).
# Two models are trained per training seed: one plain, one with log n in training. Every number below is over 3 training
# seeds, each scored on its own 21 test windows. The whole notebook runs on a 2-core CPU in minutes (`profile="smoke"`;
# the models come from the checkpoint cache); `profile="full"` is the GPU version ($L = 512$, test to 8192).
#
# *Remarks marked **(ours)** are this companion's, not the sources'.*

# %% tags=["parameters"]
profile: str = "smoke"  # "smoke" (CPU, minutes, what is committed) or "full" (one GPU)
device: str = "auto"  # "auto" -> cuda when present, else cpu; or "cpu", "cuda", "cuda:N"
seed: int = 0  # every random draw in the notebook derives from it

# %%
import functools
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

from rope_lib.companion.data import load_corpus, make_test_set, training_overlap
from rope_lib.companion.evaluate import bootstrap_difference
from rope_lib.companion.experiments import extrapolation, harness, references, run_experiment
from rope_lib.companion.plotting import savefig
from rope_lib.companion.report import Results, fmt, fmt_spread, format_gap, markdown_table, setup_notebook
from rope_lib.companion.verdicts import ClaimBook, sign_tier, slug
from rope_lib.scaling import rotations

setup_notebook(profile, device, seed)
model_cfg, model_log_n_cfg, train_cfg, eval_cfg = harness.settings(profile, seed)
L, d, base = model_cfg.train_length, model_cfg.head_dim, model_cfg.rope_base
mults = tuple(eval_cfg["multipliers"])
METHODS = list(harness.METHODS)
SEEDS = harness.training_seeds(profile, seed)

# %% tags=["nbval-check-output"]
print(f"profile {profile}: train length L = {L}, test lengths {[m * L for m in mults]}")
print(
    f"model: {model_cfg.n_layers} layers, d_model {model_cfg.d_model}, {model_cfg.n_heads} heads x head_dim {d}, "
    f"{model_cfg.mlp} MLP {model_cfg.d_ff}, {model_cfg.norm}, base {base:g}, tied embeddings {model_cfg.tie_embeddings}"
)
print(
    f"training: {train_cfg.steps} steps x {train_cfg.batch_size} sequences x {L} bytes = "
    f"{train_cfg.steps * train_cfg.batch_size * L:,} bytes per model; "
    f"evaluation: {len(SEEDS)} training seeds {SEEDS}, each on its own {eval_cfg['n_samples']} test windows "
    "(one per test file) per test set and length"
)

# %% [markdown]
# ## 1. Why a short training length is the interesting regime (sympy)
#
# Pair $i$ turns $r_i = L\theta_i / (2\pi)$ times over the training length. Pairs with $r_i \ge 1$ have seen every
# angle in training; pairs with $r_i < 1$ have only seen an arc of their circle, and at $L' > L$ they reach angles
# the model never saw. Those low-frequency pairs are what every method below treats differently: PI compresses all
# pairs, NTK-aware mostly the slow ones, NTK-by-parts/YaRN *only* the slow ones. The boundary pair solves
# $r_i = 1$:
# $$i^\* = \frac{d \ln(L/2\pi)}{2\ln b}.$$
# Two more identities used below: NTK-aware's base $b' = b\,s^{d/(d-2)}$ turns the *slowest* pair exactly as PI does
# ($\theta'_{d/2-1} = \theta_{d/2-1}/s$); log n's factor $\log_L n$ equals 1 at $n = L$, so "log n-dagger"
# ($\max(1, \log_L n)$, test time only) changes nothing up to the training length.

# %%
i, dd, bb, LL, s, n = sp.symbols("i d b L s n", positive=True)
r_i = LL * bb ** (-2 * i / dd) / (2 * sp.pi)
i_star = dd * sp.log(LL / (2 * sp.pi)) / (2 * sp.log(bb))
assert sp.simplify(r_i.subs(i, i_star) - 1) == 0  # the boundary pair turns exactly once over L
assert sp.simplify(sp.diff(r_i, i) + r_i * 2 * sp.log(bb) / dd) == 0  # r_i falls with i: pairs below i* turn more

theta_slowest = bb ** (-2 * (dd / 2 - 1) / dd)
theta_ntk_slowest = (bb * s ** (dd / (dd - 2))) ** (-2 * (dd / 2 - 1) / dd)
assert (
    sp.simplify(sp.powdenest(sp.expand_power_base(theta_ntk_slowest, force=True), force=True) - theta_slowest / s) == 0
)

log_L = sp.log(n) / sp.log(LL)
assert sp.simplify(log_L.subs(n, LL) - 1) == 0  # log n factor is 1 at the training length
sp.Eq(sp.Symbol("i^*"), i_star)

# %% [markdown]
# Numerically, for this profile (`rope_lib.scaling.rotations` against the formula):

# %% tags=["nbval-check-output"]
r_num = rotations(d, base, L).numpy()
i_idx = np.arange(d // 2)
r_formula = np.array([float(r_i.subs({LL: L, bb: base, dd: d, i: int(k)})) for k in i_idx])
np.testing.assert_allclose(r_num, r_formula, rtol=1e-12)
i_star_num = float(i_star.subs({LL: L, bb: base, dd: d}))
full_turn = i_idx[r_num >= 1]
print(f"d/2 = {d // 2} pairs; i* = {i_star_num:.2f}")
print(
    f"pairs completing at least one turn within L = {L}: i = {full_turn.min()}..{full_turn.max()} "
    f"({full_turn.size} pairs)"
)
print(
    f"pairs that never complete a turn within L: i = {full_turn.max() + 1}..{d // 2 - 1} "
    f"({d // 2 - full_turn.size} pairs)"
)
print("turns over L per pair:", np.array2string(r_num, precision=2, max_line_width=100))

# %% [markdown]
# At $L = 64$ and $d = 32$ most pairs (11 of 16) never complete a turn in training; at Su's $L = 512$ with
# $d = 128$ it is about half of them. **(ours)** One consequence matters for YaRN's family: the fastest pair turns
# only $L/2\pi \approx 10$ times over $L = 64$, fewer than the $\beta = 32$ rotations above which NTK-by-parts
# leaves a pair alone. The *published* NTK-by-parts ramp (linear in $r$) therefore interpolates every pair at least
# partly at this length, while YaRN as implemented in its code and in `transformers` (ramp in the pair index between
# the correction dims, clamped at 0) still keeps the fastest pair intact; notebook 03 compares the two ramps.

# %% [markdown]
# ## 2. The methods, each defined once
#
# Each method is a `PositionScheme` factory of (scale $s$, $L$, base $b$, head dim $d$) in
# `rope_lib.companion.experiments.harness.METHODS`. **Scale rule:** static methods are tuned to the test length,
# $s = L'/L$, as in Su's table (his 4096/512 runs use $k = 8$). The dynamic methods pick $s = \max(1, n/L)$ for the
# length $n$ each token sees, evaluated as a decoder with a cache of *un-rotated* keys would: positions up to $L$ are
# not scaled, later queries are processed in blocks (8 per doubling of the length) and each block re-rotates all
# earlier keys with its own frequencies. **(ours)** A plain forward over the whole sequence would instead use
# $s = L'/L$ for every position, making Dynamic NTK identical to NTK-aware; the per-token evaluation is what makes the
# dynamic rows differ. Each method is also run with log n-dagger and on the model trained with log n.
#
# Two NTK rows: **NTK-old** is Su's table row (9706: $\lambda = s^{2/d}$, i.e. base $b\,s$), **NTK-aware** is
# bloc97's base $b\,s^{d/(d-2)}$ (notebook 02 derives both). **YaRN (t = 1)** is YaRN's frequencies without its
# temperature, to separate what the ramp and the temperature each contribute.

# %%
for name, note in harness.METHOD_NOTES.items():
    print(f"{name:13s} {note}")

# %% [markdown]
# ## 3. The experiment
#
# `run_experiment("extrapolation", ...)` trains both models of every training seed (or loads them from the
# checkpoint cache, keyed by a hash of the full configuration), evaluates every method at every test length on the
# non-repeated set and at 8x on the repeated set (Su's table has it at 8x only; every length would cost a third more
# of this notebook's run, mostly at 16x, for columns no claim uses), and writes
# `results/<profile>/extrapolation.json`: one run per seed, with the configuration, package versions, git SHA,
# device and timings. The same run is available without Jupyter:
# `python -m rope_lib.companion.experiments extrapolation --profile smoke`.
#
# **Test data.** Each training seed is scored on its own 21 windows of 16L bytes, one per test file: 63 files in
# all, none shared between seeds, and the test split shares no file with training. The test sets are *nested*:
# every test length scores the last $L'$ bytes of the same windows. The *repeated* set at length $L'$ is the last
# $L'/2$ bytes of the window followed by the same bytes again, so **the copy distance is always exactly $L'/2$**
# ($L/2 = 32$ bytes at $L$, $4L$ at 8x). Su describes his set as test texts repeated up to 4096 tokens, which we read
# as the second half repeating the first; his construction is unpublished, and if his texts were shorter and
# repeated several times, his copies would stand closer than $L'/2$ (possibly inside the training length), an
# easier task. So our repeated column need not be his.
#
# **(ours)** A split by file cannot keep boilerplate (licence headers, common imports, docstring templates) out of
# the test text. The fraction of aligned 64-byte pieces of the 63 test windows found verbatim in the training split:

# %%
corpus = load_corpus()
test_windows = make_test_set(corpus, "non_repeated", 16 * L, len(SEEDS) * eval_cfg["n_samples"], seed=seed)
overlap = training_overlap(corpus, test_windows, chunk=64)
print(
    f"{test_windows.shape[0]} test windows x {test_windows.shape[1]} bytes: {100 * overlap:.1f}% of the 64-byte "
    "pieces occur verbatim in the training text"
)

# %% [markdown]
# About one piece in twenty is shared boilerplate: the models have seen a small part of the test text, the same
# part for every method, so it shifts absolute accuracies a little and cancels in the paired gaps below.

# %%
results = Results(run_experiment("extrapolation", profile=profile, device=device, seed=seed))
rows = results.rows
assert results.seeds == SEEDS
claims = ClaimBook("04", profile)  # decides and records every claim below (results/<profile>/verdicts/04.json)

for variant in ("plain", "log_n"):
    val_loss = np.array([t[variant]["val_loss"] for t in results.by_seed("training")])
    val_acc = 100 * np.array([t[variant]["val_acc"] for t in results.by_seed("training")])
    at_l = {kind: results.train_length_acc_by_seed(variant, kind) for kind in ("non_repeated", "repeated")}
    print(
        f"model {variant:5s}: validation loss {fmt_spread(val_loss.mean(), val_loss.std(ddof=1), 3)} nats/byte, "
        f"accuracy {fmt_spread(val_acc.mean(), val_acc.std(ddof=1))}% at L; test accuracy at L: "
        f"non-repeated {fmt_spread(at_l['non_repeated'].mean(), at_l['non_repeated'].std(ddof=1))}%, "
        f"repeated {fmt_spread(at_l['repeated'].mean(), at_l['repeated'].std(ddof=1))}%"
    )

# %% [markdown]
# ## 4. Reproduced table beside Su's
#
# Per-token next-token accuracy (%), **mean ± sd over 3 training seeds, 21 test windows each**. "L" is the training
# length (every method is plain RoPE there). Su's columns are his 8x numbers (train 512, test 4096); he has no 4x or
# 16x column, and no NTK-aware (bloc97), NTK-by-parts, YaRN (t = 1) or dynamic rows. **NTK-old** is Su's
# "NTK-RoPE-old" row (base $b\,s$); **NTK-aware** is bloc97's base $b\,s^{d/(d-2)}$, which his table does not have.
# Our "-log n" rows come from the second model of each seed, trained with log n.

# %%
REPEATED_MULTS = results.eval["repeated_multipliers"]  # the repeated set is scored at L and these (8x) only
COLUMNS = [
    (kind, m)
    for m in mults
    if m >= 4
    for kind in ("repeated", "non_repeated")
    if kind == "non_repeated" or m in REPEATED_MULTS
]
header = ["method", "L", *(f"{m}x {'rep' if kind == 'repeated' else 'non-rep'}" for kind, m in COLUMNS)]
header += ["Su L", "Su 8x rep", "Su 8x non-rep"]
table = []
for row in rows:
    su = references.SU_8X.get(row)
    at_l = results.train_length_acc_by_seed(rows.model(row), "non_repeated")
    cells = [row, fmt_spread(at_l.mean(), at_l.std(ddof=1)), *(rows.cell(row, kind, m) for kind, m in COLUMNS)]
    su_train = references.SU_TRAIN_ACC["trained" if rows[row]["log_n"] == "trained" else "none"]
    cells += [fmt(su_train) if su else "", fmt(su[0]) if su else "", fmt(su[1]) if su else ""]
    table.append(cells)
markdown_table(header, table)

# %% [markdown]
# ## 5. How large are the gaps, and do they hold for every seed?
#
# Every method of a seed is scored on the same test windows, so a gap is a *paired* per-window difference. Its 95%
# interval comes from a two-stage bootstrap (`Rows.gap`, 2000 draws): training seeds drawn with replacement, then
# each drawn seed's test files. The interval therefore covers both the noise of training (another seed gives
# another model) and the choice of test text; it describes the gap. Claims are decided on the training-seed level
# (`rope_lib.companion.verdicts`): each seed's mean difference over its own windows is one estimate, and the Student-t
# 95% interval over the 3 seeds gives the tier: reproduced (the interval on the claimed side of zero), consistent (every
# seed on that side, the interval reaching across zero), reversed (the interval on the other side) or not reproduced.
# The last column gives that tier for the sign of the mean difference.

# %%
NTK_ROWS = ("NTK-old", "NTK-aware", "NTK-fixed", "NTK-mixed")
COMPARISONS = [
    ("PI", "Baseline"),
    *((method, "Baseline") for method in NTK_ROWS),
    ("NTK-old", "NTK-aware"),
    ("NTK-mixed", "NTK-fixed"),
    *((f"{method}-log n-dagger", method) for method in NTK_ROWS),
    ("Baseline-log n", "Baseline"),
    *((f"{method}-log n", method) for method in NTK_ROWS),
    *(("YaRN", method) for method in NTK_ROWS),
    ("YaRN", "YaRN (t = 1)"),
    *(("YaRN (t = 1)", method) for method in NTK_ROWS),
    ("YaRN (t = 1)", "NTK-by-parts"),
    ("Dynamic YaRN", "YaRN"),
    ("NTK-by-parts", "Baseline"),
]
gaps = {(a, b): rows.gap(a, b, "non_repeated", 8) for a, b in COMPARISONS}
markdown_table(
    ["8x, non-repeated", "difference (points) [95% bootstrap interval]", "per seed", "seed-level tier"],
    [
        [f"{a} − {b}", format_gap(g), " ".join(f"{x:+.2f}" for x in g["by_seed"]), sign_tier(g)]
        for (a, b), g in gaps.items()
    ],
)

# %% [markdown]
# ## 6. Claims
#
# Each of Su's claims is decided at 8x on the non-repeated set (his column) by the seed-level rule above; every
# claim cell prints, per claim, the mean gap, the per-seed gaps, the 95% seed interval, the bootstrap interval and
# the tier, and asserts the tier the text states (a claim that does not reproduce is stated as such, never asserted
# in a weaker form). A claim whose tier differs between the runs on record (this machine, and an Intel machine with
# AVX-512 and with AVX2 kernels: other CPU numerics, the same seeds retrained) is stated *not decided* and asserted
# neither way.


# %%
SU_TABLE, SU_YARN, SU_LONGER = (f"Su, kexue.fm/archives/{n}" for n in (9706, 9859, 9948))  # the claims' sources

# %% [markdown]
# **Claim 1: PI without fine-tuning does not beat direct extrapolation.** Reproduced: PI trails the baseline by
# 13.79 points at 8x, on every seed (−10.69, −14.16, −16.51; seed interval [−21.06, −6.51]). Dividing every
# frequency by $s$ also compresses the fast pairs the model uses to tell neighbouring bytes apart, so local prediction
# breaks (the loss-vs-position figure: PI is worse from the very first positions).

# %%
v = claims.decide(
    "04.pi-vs-baseline.8x",
    rows.gap("PI", "Baseline"),
    "<",
    claim="PI - Baseline, 8x non-repeated",
    source=SU_TABLE,
    stated="reproduced",
)
assert v.holds, v

# %% [markdown]
# **Claim 2: NTK-aware scaling beats direct extrapolation.** **At 8x (Su's column) it is reproduced for no NTK
# row:** not reproduced for NTK-old (+0.71 points; seeds +3.69, −0.28, −1.29), NTK-aware (+1.43; +3.83, +0.80,
# −0.34) and NTK-mixed (−0.43; +2.38, −1.90, −1.77), and **not decided** for NTK-fixed (+1.55; +4.46, +0.04,
# +0.14): consistent here and on the second machine, not reproduced on the first machine. Every NTK row is ahead
# by 2.4 to 4.5 points on seed 0 but within 2 points of the baseline, either way, on seeds 1 and 2 (printed below):
# seeds 1 and 2 trained baselines that extrapolate to 8x better than seed 0's. **(ours)** At 16x NTK-old, NTK-aware
# and NTK-fixed beat the baseline, reproduced (+3.14, +4.03, +3.27 points); at 4x the same three are consistent:
# every seed ahead (+2.61, +3.12, +2.79), but the seed-level interval includes zero. NTK-mixed is not reproduced at
# 4x (+0.77; seeds +3.03, −0.62, −0.09) and not decided at 16x (+1.15; not reproduced here and on the second
# machine, consistent on the first machine). At our scale the finding is reproduced at 16x for three of the four
# rows, not at Su's own 8x.

# %%
STATED_NTK = {  # the stated tier of "NTK row - Baseline > 0", by (row, test length / L)
    ("NTK-old", 4): "consistent",
    ("NTK-aware", 4): "consistent",
    ("NTK-fixed", 4): "consistent",
    ("NTK-mixed", 4): "not reproduced",
    ("NTK-old", 8): "not reproduced",
    ("NTK-aware", 8): "not reproduced",
    ("NTK-fixed", 8): "not decided",  # consistent here and on the second machine, not reproduced on the first machine
    ("NTK-mixed", 8): "not reproduced",
    ("NTK-old", 16): "reproduced",
    ("NTK-aware", 16): "reproduced",
    ("NTK-fixed", 16): "reproduced",
    ("NTK-mixed", 16): "not decided",  # not reproduced here and on the second machine, consistent on the first machine
}
for mult in (4, 8, 16):
    for method in NTK_ROWS:
        v = claims.decide(
            f"04.ntk-vs-baseline.{slug(method)}.{mult}x",
            rows.gap(method, "Baseline", "non_repeated", mult),
            ">",
            claim=f"{method} - Baseline, {mult}x non-repeated",
            source=SU_TABLE if mult == 8 else "ours",  # Su's claim is at 8x; 4x and 16x are ours
            stated=STATED_NTK[method, mult],
        )
        if v.stated != "not decided":
            assert v.holds, v

# %% [markdown]
# **(ours) The NTK rows among themselves.** bloc97's NTK-aware (base $b\,s^{d/(d-2)}$, slightly more interpolation
# of the slow pairs) is ahead of Su's NTK-old (base $b\,s$) at 8x by 0.72 points: consistent, every seed ahead
# (NTK-old − NTK-aware −0.14, −1.08, −0.95), but the seed-level interval includes zero. NTK-mixed, which also
# compresses the fast pairs, trails NTK-fixed by 1.98 points on every seed (−2.09, −1.94, −1.91): reproduced.

# %%
v = claims.decide(
    "04.ntk-old-vs-ntk-aware.8x",
    rows.gap("NTK-old", "NTK-aware"),
    "<",
    claim="NTK-old - NTK-aware, 8x non-repeated",
    stated="consistent",
)
assert v.holds, v
v = claims.decide(
    "04.ntk-mixed-vs-ntk-fixed.8x",
    rows.gap("NTK-mixed", "NTK-fixed"),
    "<",
    claim="NTK-mixed - NTK-fixed, 8x non-repeated",
    stated="reproduced",
)
assert v.holds, v

# %% [markdown]
# **Claim 3: log n improves NTK.**
#
# *log n-dagger* (log n at test time only, same model) helps every NTK row on every seed: **reproduced for NTK-old
# (+1.12 points) and NTK-fixed (+1.06)**; consistent for NTK-aware (+1.05; seeds +0.59, +1.59, +0.96) and NTK-mixed
# (+0.56; seeds +0.07, +0.81, +0.79): every seed ahead, but the seed-level interval includes zero.

# %%
STATED_DAGGER = {  # the stated tier of "NTK-x-log n-dagger - NTK-x > 0"
    "NTK-old": "reproduced",
    "NTK-aware": "consistent",
    "NTK-fixed": "reproduced",
    "NTK-mixed": "consistent",
}
for method in NTK_ROWS:
    v = claims.decide(
        f"04.log-n-dagger.{slug(method)}.8x",
        rows.gap(f"{method}-log n-dagger", method),
        ">",
        claim=f"{method}-log n-dagger - {method}, 8x non-repeated",
        source=SU_TABLE,
        stated=STATED_DAGGER[method],
    )
    if v.stated != "not decided":
        assert v.holds, v

# %% [markdown]
# *Trained log n* (the second model of each seed): it lifts the plain Baseline by 2.12 points, consistent: every
# seed ahead (+4.39, +0.78, +1.18), but the seed-level interval includes zero. **For no NTK row is the lift
# reproduced** (not reproduced for all four): each is about +1 point (+1.02 to +1.42), with one seed of three behind.
# And Su's finding is an *interaction*: log n helps NTK far more than the baseline (his Baseline gains
# +0.86, the NTK rows +4.5 to +5.3). The difference-in-differences per NTK row, (NTK-x-log n − NTK-x) −
# (Baseline-log n − Baseline) per test window, has a **negative mean for all four rows** here (NTK-old −0.92,
# NTK-aware −0.70, NTK-fixed −1.10, NTK-mixed −1.07): **reversed for NTK-mixed** (seeds −1.12, −0.91, −1.18; seed
# interval [−1.42, −0.72]) and not reproduced for the other three (NTK-old and NTK-fixed below zero on every seed,
# their seed intervals reaching across zero; NTK-aware +0.23 on one seed). Trained log n helps the baseline *more*
# than the NTK rows: the interaction does not reproduce, and for NTK-mixed it points the other way.

# %%
v = claims.decide(
    "04.log-n-trained.baseline.8x",
    rows.gap("Baseline-log n", "Baseline"),
    ">",
    claim="Baseline-log n - Baseline, 8x non-repeated",
    source=SU_TABLE,
    stated="consistent",
)
assert v.holds, v
STATED_TRAINED = {  # the stated tier of "NTK-x-log n - NTK-x > 0"
    "NTK-old": "not reproduced",
    "NTK-aware": "not reproduced",
    "NTK-fixed": "not reproduced",
    "NTK-mixed": "not reproduced",
}
for method in NTK_ROWS:
    v = claims.decide(
        f"04.log-n-trained.{slug(method)}.8x",
        rows.gap(f"{method}-log n", method),
        ">",
        claim=f"{method}-log n - {method}, 8x non-repeated",
        source=SU_TABLE,
        stated=STATED_TRAINED[method],
    )
    if v.stated != "not decided":
        assert v.holds, v


def acc_per_window_8x(row: str) -> np.ndarray:
    """Per-window accuracy (%) at 8x, non-repeated, shape (seeds, windows)."""
    return rows.per_sample(row, "non_repeated", 8)


baseline_gain = acc_per_window_8x("Baseline-log n") - acc_per_window_8x("Baseline")
did = {
    m: bootstrap_difference(acc_per_window_8x(f"{m}-log n") - acc_per_window_8x(m), baseline_gain, seed=results.seed)
    for m in NTK_ROWS
}
su = references.SU_8X  # Su's interaction from his non-repeated column (no NTK-aware row in his table)
su_did = {
    m: (su[f"{m}-log n"][1] - su[m][1]) - (su["Baseline-log n"][1] - su["Baseline"][1])
    for m in NTK_ROWS
    if f"{m}-log n" in su
}
STATED_DID = {  # the stated tier of Su's interaction "> 0" (his +3.6 to +4.4), per NTK row
    "NTK-old": "not reproduced",
    "NTK-aware": "not reproduced",
    "NTK-fixed": "not reproduced",
    "NTK-mixed": "reversed",
}
for m, g in did.items():
    su_text = f"{su_did[m]:+.2f}" if m in su_did else "-"
    v = claims.decide(
        f"04.log-n-interaction.{slug(m)}.8x",
        g,
        ">",
        claim=f"log n interaction, ({m}-log n - {m}) - (Baseline-log n - Baseline), 8x non-repeated (Su: {su_text})",
        source=SU_TABLE,
        quantity="difference in differences of accuracy (points)",
        stated=STATED_DID[m],
    )
    if v.stated != "not decided":
        assert v.holds, v

# %% [markdown]
# **Claim 4: YaRN is at least as good as NTK-aware.** At 8x YaRN is ahead of every NTK row on every seed:
# **reproduced against NTK-old (+5.95 points), NTK-fixed (+5.12) and NTK-mixed (+7.09)**; against NTK-aware
# consistent: +5.23, every seed ahead (+7.97, +3.66, +4.06), but the seed-level interval includes zero
# ([−0.68, +11.14]). Dynamic YaRN beats YaRN by 3.16 more, on every seed: reproduced.

# %%
STATED_YARN = {  # the stated tier of "YaRN - NTK-x > 0"
    "NTK-old": "reproduced",
    "NTK-aware": "consistent",
    "NTK-fixed": "reproduced",
    "NTK-mixed": "reproduced",
}
for method in NTK_ROWS:
    v = claims.decide(
        f"04.yarn-vs-ntk.{slug(method)}.8x",
        rows.gap("YaRN", method),
        ">",
        claim=f"YaRN - {method}, 8x non-repeated",
        source=SU_YARN,
        stated=STATED_YARN[method],
    )
    if v.stated != "not decided":
        assert v.holds, v
v = claims.decide(
    "04.dynamic-yarn-vs-yarn.8x",
    rows.gap("Dynamic YaRN", "YaRN"),
    ">",
    claim="Dynamic YaRN - YaRN, 8x non-repeated",
    stated="reproduced",
)
assert v.holds, v

# %% [markdown]
# **(ours) What makes YaRN the best static method: its ramp or its temperature?** YaRN (t = 1) has YaRN's
# frequencies (the ramp in the pair index) without the temperature. So YaRN − YaRN (t = 1) is the temperature's
# share, YaRN (t = 1) − NTK-aware what the ramp alone gives over NTK-aware, and YaRN (t = 1) − NTK-by-parts the
# index ramp against the published ramp in rotations (which interpolates every pair at $L = 64$, section 1). At
# each length (printed below): the temperature helps on every seed, and more the longer the test: +0.97 points at 4x
# (consistent: the seed-level interval includes zero), +1.88 at 8x and +3.28 at 16x (reproduced). The ramp alone is
# ahead of NTK-aware on every seed only at 8x (+3.35, consistent); at 4x (+0.88) and 16x (+0.11) it is not
# reproduced. The index ramp beats the published ramp at every length (+13.22, +12.20, +8.74 at 4x, 8x, 16x):
# reproduced. YaRN itself is ahead of NTK-aware on every seed at every length (+1.85, +5.23, +3.39), consistent, the
# seed-level interval including zero each time. So the data do not say the ramp is what makes YaRN the best: at our
# scale its lead over NTK-aware comes from both, and at 16x almost all from the temperature.

# %%
YARN_PARTS = {  # id part -> the gap a - b: the temperature's share, the ramps, and YaRN against NTK-aware
    "temperature": ("YaRN", "YaRN (t = 1)"),
    "ramp-vs-ntk-aware": ("YaRN (t = 1)", "NTK-aware"),
    "index-ramp-vs-rotation-ramp": ("YaRN (t = 1)", "NTK-by-parts"),
    "yarn-vs-ntk-aware": ("YaRN", "NTK-aware"),
}
STATED_PARTS = {  # the stated tier of "a - b > 0", by (id part, test length / L)
    ("temperature", 4): "consistent",
    ("ramp-vs-ntk-aware", 4): "not reproduced",
    ("index-ramp-vs-rotation-ramp", 4): "reproduced",
    ("yarn-vs-ntk-aware", 4): "consistent",
    ("temperature", 8): "reproduced",
    ("ramp-vs-ntk-aware", 8): "consistent",
    ("index-ramp-vs-rotation-ramp", 8): "reproduced",
    ("yarn-vs-ntk-aware", 8): "consistent",
    ("temperature", 16): "reproduced",
    ("ramp-vs-ntk-aware", 16): "not reproduced",
    ("index-ramp-vs-rotation-ramp", 16): "reproduced",
    ("yarn-vs-ntk-aware", 16): "consistent",
}
for mult in (4, 8, 16):
    for part, (a, b) in YARN_PARTS.items():
        v = claims.decide(
            f"04.yarn-parts.{part}.{mult}x",
            rows.gap(a, b, "non_repeated", mult),
            ">",
            claim=f"{a} - {b}, {mult}x non-repeated",
            stated=STATED_PARTS[part, mult],
        )
        if v.stated != "not decided":
            assert v.holds, v

# %% [markdown]
# ## 7. Figures
#
# Accuracy against test length for every method (solid: trained without log n; dashed: the same method on the model
# trained with log n): the mean over the 3 training seeds, the band spans the lowest to the highest seed. The
# repeated set is scored at $L$ and 8x only.

# %%
colors = dict(zip(METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 2))
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
for ax, kind in zip(axes, ("non_repeated", "repeated")):
    kind_mults = list(mults) if kind == "non_repeated" else list(REPEATED_MULTS)
    kind_xs = [1, *kind_mults]
    for method in METHODS:
        for variant, style in (("none", "-"), ("trained", "--")):
            row = harness.row_name(method, variant)
            at_l = results.train_length_acc_by_seed(rows.model(row), kind)
            by_seed = np.column_stack([at_l] + [rows.acc_by_seed(row, kind, m) for m in kind_mults])  # (seeds, lengths)
            ax.plot(
                kind_xs,
                by_seed.mean(0),
                style,
                color=colors[method],
                marker="o",
                ms=3,
                label=method if variant == "none" else None,
            )
            ax.fill_between(kind_xs, by_seed.min(0), by_seed.max(0), color=colors[method], alpha=0.15, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, *mults], [f"{m}L" if m > 1 else "L" for m in [1, *mults]])
    ax.set_xlabel("test length L'")
    ax.set_title(kind.replace("_", "-") + " test set")
axes[0].set_ylabel("next-token accuracy (%)")
axes[1].legend(fontsize=7, ncol=2, loc="lower left")
fig.suptitle(f"Train at L = {L}, test longer without fine-tuning (mean of 3 seeds, band: min-max; dashed: log n)")
savefig(fig, "04_accuracy_vs_length", profile=profile, exact=False)
plt.show()

# %% [markdown]
# Loss against position at 8x (non-repeated, averaged over windows in bins of L/2 bytes; mean of the seeds, band
# min..max). Inside the first $L$ positions the methods that compress the fast pairs (PI most, then NTK-by-parts and
# NTK-mixed) already lose, while the rest stay close to the baseline (YaRN slightly above it: its temperature sharpens
# every logit); beyond $L$ every method degrades with distance, YaRN and Dynamic YaRN most slowly.

# %%
# The JSON keeps L/8-byte bins; merge 4 into one.
position_loss = functools.partial(rows.position_loss_by_seed, bin_size=results.eval["position_bin"], merge=4)


def plot_band(ax, x, by_seed, style="-", **kw):
    ax.plot(x, by_seed.mean(0), style, **kw)
    ax.fill_between(x, by_seed.min(0), by_seed.max(0), color=kw["color"], alpha=0.2, lw=0)


shown = ["Baseline", "PI", "NTK-old", "NTK-mixed", "NTK-by-parts", "YaRN", "Dynamic NTK", "Dynamic YaRN"]
fig, ax = plt.subplots(figsize=(8, 4.2))
for method in shown:
    plot_band(ax, *position_loss(method), color=colors[method], marker="o", ms=3, label=method)
plot_band(ax, *position_loss("NTK-old-log n"), "--", color=colors["NTK-old"], label="NTK-old-log n (trained)")
ax.axvline(L, color="0.5", lw=0.8)
ax.set_xlabel("position in the 8L-byte sample")
ax.set_ylabel("next-byte loss (nats)")
ax.set_title(f"Loss by position at 8x = {8 * L} bytes (training length {L} marked; 3 seeds)")
ax.legend(fontsize=7, ncol=2)
savefig(fig, "04_loss_vs_position_8x", profile=profile, exact=False)
plt.show()

# %% [markdown]
# **Longer context, lower loss?** (Su, <https://kexue.fm/archives/9948>). The loss on the *same* last $L$ bytes
# while the context grows from $L$ to 16L (each method tuned to the context length). A method that keeps long-range
# information useful would make this curve fall.


# %%
def loss_at_l(model: str) -> np.ndarray:
    """Per-window loss (nats) on the last L bytes at context L (plain RoPE), shape (seeds, windows)."""
    return np.array(
        [run["train_length_metrics"][model]["non_repeated"]["last_window_loss_per_sample"] for run in results.runs]
    )


xs = [1, *mults]  # context lengths, in units of L
fig, ax = plt.subplots(figsize=(7, 4.2))
for method in shown + ["NTK-old-log n", "YaRN-log n"]:
    by_seed = np.column_stack(
        [loss_at_l(rows.model(method)).mean(1)] + [rows.last_window_loss_per_sample(method, m).mean(1) for m in mults]
    )
    style = "--" if method.endswith("log n") else "-"
    plot_band(ax, xs, by_seed, style, color=colors[method.removesuffix("-log n")], marker="o", ms=3, label=method)
ax.set_xscale("log", base=2)
ax.set_xticks(xs, [f"{m}L" if m > 1 else "L" for m in xs])
ax.set_xlabel("context length")
ax.set_ylabel(f"loss on the last {L} bytes (nats)")
ax.set_title("Longer context, lower loss? (non-repeated, 3 seeds)")
ax.legend(fontsize=7, ncol=2)
savefig(fig, "04_longer_context_loss", profile=profile, exact=False)
plt.show()

# %% [markdown]
# Per row: the change of that loss from context $L$ to $2L$ and to $16L$ (nats, same windows, with its interval
# bootstrapped over seeds and windows); then Su's claim "the loss falls" for every row and context length, decided by
# the seed-level rule (section 5), summarised per context length. The loss falls (reproduced or consistent) for no
# row at any context length. From $L$ to $2L$ it rises (reversed) for 17 of the 33 rows and is not reproduced for
# the other 16; to $4L$ it rises for 32 rows (Baseline-log n-dagger: not reproduced); to $8L$ and $16L$ it rises
# for all 33.

# %%
loss_change = {
    (row, m): bootstrap_difference(
        rows.last_window_loss_per_sample(row, m), loss_at_l(rows.model(row)), seed=results.seed
    )
    for row in rows
    for m in mults
}
for row in ("Baseline", "NTK-aware", "YaRN", "Dynamic YaRN", "NTK-aware-log n", "Dynamic NTK-log n"):
    print(
        f"{row:18s} loss change vs context L: 2L {format_gap(loss_change[(row, 2)])}, "
        f"16L {format_gap(loss_change[(row, 16)])}"
    )
# the stated tier of "the loss falls" (claimed "<") where it is not "reversed" (the loss rises), by (row, context / L)
STATED_LONGER = {
    ("Baseline", 2): "not reproduced",
    ("NTK-aware", 2): "not reproduced",
    ("NTK-old", 2): "not reproduced",
    ("Dynamic NTK", 2): "not reproduced",
    ("Dynamic YaRN", 2): "not reproduced",
    ("Baseline-log n-dagger", 2): "not reproduced",
    ("NTK-aware-log n-dagger", 2): "not reproduced",
    ("NTK-old-log n-dagger", 2): "not reproduced",
    ("Dynamic NTK-log n-dagger", 2): "not reproduced",
    ("Dynamic YaRN-log n-dagger", 2): "not reproduced",
    ("Baseline-log n", 2): "not reproduced",
    ("NTK-aware-log n", 2): "not reproduced",
    ("NTK-old-log n", 2): "not reproduced",
    ("NTK-fixed-log n", 2): "not reproduced",
    ("Dynamic NTK-log n", 2): "not reproduced",
    ("Dynamic YaRN-log n", 2): "not reproduced",
    ("Baseline-log n-dagger", 4): "not reproduced",
}
loss_verdicts = {
    (row, m): claims.decide(
        f"04.longer-context.{slug(row)}.{m}x",
        g,
        "<",
        claim=f"{row}: loss on the last L bytes, context {m}L minus context L",
        source=SU_LONGER,
        quantity="loss change (nats)",
        stated=STATED_LONGER.get((row, m), "reversed"),
        quiet=True,
    )
    for (row, m), g in loss_change.items()
}
for m in mults:
    counts = Counter(loss_verdicts[row, m].tier for row in rows)
    print(
        f"the loss falls from context L to {m:2d}L (claimed < 0), seed level: "
        + ", ".join(f"{n} rows {t}" for t, n in counts.most_common())
    )
falling = sorted({row for (row, m), v in loss_verdicts.items() if v.tier in ("reproduced", "consistent")})
print("rows whose loss on the last L bytes falls (every seed) at some context > L:", falling or "none")
for v in loss_verdicts.values():
    if v.stated != "not decided":
        assert v.holds, v

# %% [markdown]
# **Does the model copy?** Su's repeated column gains 30+ points over the non-repeated one: his model copies the
# repeated half. The experiment tests it directly (`extrapolation.copy_test`), with every seed's trained models on
# that seed's test windows. The control is exact: the second half of a repeated sample is the same bytes, at the
# same positions, as the second half of the non-repeated sample of that window; only what precedes them differs
# (a verbatim copy vs the natural text). Per window: accuracy on the second half with the copy minus without it.
#
# * *Within L*: at the training length the copy stands $L/2 = 32$ bytes back. Also printed: second half minus first
#   half of the repeated sample, a comparison that mixes in the effect of position as well.
# * *At 8x*: the copy stands $4L$ back (Baseline and YaRN on the plain model).


# %%
def half_acc(what: str, kind: str, second: bool) -> np.ndarray:
    """Per-window accuracy (%) on the first or the second half of the window's tokens, shape (seeds, windows).

    Prediction t scores token t + 1, so the second half's tokens are T/2 .. T-1; the experiment
    (`extrapolation.copy_halves`) checked that the two halves recombine to the per-window accuracy it stores.
    """
    key = "second_half_acc_pct" if second else "first_half_acc_pct"
    return np.array([run["copy"][what][kind][key] for run in results.runs])


STATED_COPY = {  # the stated tiers of "with the copy minus without > 0" and "repeated second minus first half > 0"
    "plain": ("reversed", "not reproduced"),
    "log_n": ("reversed", "reversed"),
    "Baseline": ("not reproduced", "reversed"),
    "YaRN": ("not reproduced", "reversed"),
}
copy_verdicts = []
for what in ("plain", "log_n", *extrapolation.COPY_ROWS):
    within_l = what in ("plain", "log_n")  # the two models at L; the rows at 8x
    where, at = ("at L (copy L/2 back)", "at-l") if within_l else ("at 8x (copy 4L back)", "8x")
    second_with_copy = half_acc(what, "repeated", second=True)
    g = bootstrap_difference(second_with_copy, half_acc(what, "non_repeated", second=True), seed=results.seed)
    g_half = bootstrap_difference(second_with_copy, half_acc(what, "repeated", second=False), seed=results.seed)
    copy_verdicts.append(
        claims.decide(
            f"04.copy.{slug(what)}.{at}",
            g,
            ">",
            claim=f"{what} {where}: second half with the copy minus without",
            source=SU_TABLE,
            stated=STATED_COPY[what][0],
        )
    )
    copy_verdicts.append(
        claims.decide(
            f"04.copy-halves.{slug(what)}.{at}",
            g_half,
            ">",
            claim=f"{what} {where}: repeated second minus first half",
            source=SU_TABLE,
            stated=STATED_COPY[what][1],
        )
    )

# %% [markdown]
# **Not reproduced: the model does not copy, neither $4L$ back at 8x nor $L/2$ back inside the training length.**
# At 8x, a copy $4L$ back changes nothing: not reproduced for the Baseline (+0.53 points; seeds −0.22, +1.13, +0.69)
# and YaRN (−0.64; seeds −0.52, −1.62, +0.20). At $L$ the repeated second half is predicted *worse* than the same
# bytes in natural context, reversed for both models (plain −3.47, seeds −3.42, −3.42, −3.57; log n −3.77, seeds
# −3.57, −3.87, −3.87), and worse than the repeated first half on every seed: reversed for the log n model (−2.15;
# seed interval [−4.08, −0.21]), not reproduced for the plain one (−1.46; seeds −1.50, −2.52, −0.34, the seed
# interval reaching across zero). The model gains nothing from having just seen the very bytes it must predict, and
# loses the natural text that preceded them. At 8x the repeated second half is also below the first (Baseline −12.53,
# YaRN −4.45: reversed), which mixes in the loss of accuracy with position beyond $L$.

# %%
for v in copy_verdicts:  # no copying gain (Su's model: 30+ points)
    if v.stated != "not decided":
        assert v.holds, v

# %% [markdown]
# ## 8. Summary
#
# Over 3 training seeds, 21 test windows each; "reproduced" needs the whole Student-t 95% interval over the seeds'
# estimates on the claimed side of zero ("consistent": every seed on that side, the interval reaching across zero;
# "not decided": the runs on record (this machine, and an Intel machine with AVX-512 and with AVX2 kernels) give
# different tiers, so nothing is asserted).
#
# | Su's claim (8x, non-repeated) | here (mean gap, points) |
# |---|---|
# | PI does not beat direct extrapolation | reproduced (−13.79, every seed) |
# | NTK beats direct extrapolation | not reproduced: NTK-old, -aware, -mixed; not decided: NTK-fixed |
# | log n-dagger improves NTK | reproduced: NTK-old +1.12, -fixed +1.06; consistent: -aware +1.05, -mixed +0.56 |
# | trained log n improves NTK | not reproduced, any NTK row (+1.02 to +1.42); Baseline: consistent (+2.12) |
# | log n helps NTK more than Baseline | reversed: NTK-mixed (−1.07); not reproduced: the other three |
# | YaRN at least as good as NTK | reproduced: NTK-old, -fixed, -mixed (+5.12 to +7.09); consistent: NTK-aware (+5.23) |
# | longer context, lower loss (9948) | reproduced for no row; at 8L and 16L reversed (the loss rises) for all 33 |
# | the model copies (repeated set) | not reproduced at 8x (copy 4L back); reversed at L (copy L/2 back) |
#
# NTK-fixed − Baseline at 8x (+1.55) is consistent here and on the second machine, not reproduced on the first
# machine. **(ours)** At 16x NTK-old, NTK-aware and NTK-fixed beat the baseline, reproduced (+3.14 to +4.03);
# NTK-mixed is not decided there (+1.15: not reproduced here and on the second machine, consistent on the first
# machine). At 4x the three are consistent (+2.61 to +3.12), NTK-mixed not reproduced (+0.77).
#
# **(ours)** NTK-aware (bloc97) is ahead of Su's NTK-old at 8x by 0.72 points, consistent; Dynamic YaRN beats YaRN by
# 3.16, reproduced. YaRN's temperature helps on every seed, more the longer the test: consistent at 4x (+0.97),
# reproduced at 8x (+1.88) and 16x (+3.28), nearly all of YaRN's +3.39 over NTK-aware at 16x; the ramp alone is
# ahead of NTK-aware on every seed only at 8x (+3.35, consistent), not reproduced at 4x and 16x.
#
# **Remarks (ours).**
# - *Repeated vs non-repeated.* Su's repeated set rewards a model that can copy; his best rows gain 30+ points there.
#   Ours copies at neither distance we test ($4L$ at 8x, $L/2$ at $L$; section 7), so the two test sets give similar
#   numbers and the same ordering of methods. Our repeated set copies at a fixed distance $L'/2$ (section 3); Su's
#   construction is unpublished and may put copies closer.
# - *NTK-by-parts as published* (ramp linear in rotations, $\alpha = 1$, $\beta = 32$) fails at $L = 64$ because
#   no pair turns 32 times over $L$ (section 1): it is 7.41 points below the baseline at 8x, on every seed. YaRN's
#   code ramps in the pair index and keeps the fastest pair, and works (claim 4 separates its ramp from its
#   temperature).
# - *Longer context, lower loss* holds for no frequency-scaling row here: the loss on the last $L$ bytes falls for no
#   row as the context grows beyond $L$, and at 8L and 16L it rises for every row. With ReRoPE it does fall, from $L$
#   to $2L$ (notebook 05, section 6).
# - *Noise.* The intervals cover the training seed *and* the test files. The seed matters most: the Baseline's 8x
#   accuracy spans several points across seeds, more than most gaps between methods, which is why no NTK-vs-Baseline
#   or trained-log-n gap is reproduced at 8x, and why two claims (NTK-fixed − Baseline at 8x, NTK-mixed −
#   Baseline at 16x) change tier when the same seeds are retrained on another CPU numerics. Gaps between rows of the
#   *same* model and seed (log n-dagger, YaRN's temperature, Dynamic YaRN) have every seed on the same side. The
#   `full` profile (train 512, test to 8192, one GPU) is the place to check the rest; it has not yet been run on a
#   GPU.
