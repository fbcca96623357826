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
# # 08b · Extending the window by fine-tuning: PI, NTK-aware, YaRN and plain positions
#
# **The claims.** PI (Tables 3-4): fine-tuned with interpolated positions, LLaMA reaches its extended window in
# about 1000 steps, and after 200 steps its perplexity at the extended length is already below the original model's
# at its own window; fine-tuned with plain positions ("direct extrapolation") its effective window, measured by
# passkey retrieval (the largest distance $k_{\max}$ retrieved in at least 20% of samples), grows only from 2048 to
# 2560 in 10000 steps; interpolation costs a little at the original window (perplexity +0.01 to +0.05 on
# proof-pile, where it is near 2.8: 0.4-1.8%, 0.004-0.018 nats). YaRN (Table 5, fine-tuned rows): fewer steps than
# PI for the same result; and it "exhibits the capability to extrapolate beyond the limited context of a fine-tuning
# dataset" (abstract): its $s = 32$ model, fine-tuned on 64k-token sequences, is evaluated to 128k, a length its
# scale covers.
#
# Why PI's interpolated positions are safe at all (PI's Theorem 2.1, its ~600x and Fig. 2) is notebook 08a
# ([source](08a_position_interpolation.py) · [executed](executed/08a_position_interpolation.ipynb)); this notebook
# measures what fine-tuning with each position scheme does to the small LM of notebook 04.
#
# Sources: Chen, Wong, Chen, Tian, *Extending Context Window of Large Language Models via Positional
# Interpolation*, arXiv:2306.15595 (Tables 3-4, the cost at the original window); Peng, Quesnelle, Fan, Shippole,
# *YaRN: Efficient Context Window Extension of Large Language Models*, arXiv:2309.00071 (Table 5).
#
# Notation: training length $L$, fine-tuning (extended) length $L'$, scale $s = L'/L$.
# *Remarks marked **(ours)** are this companion's, not the sources'.*

# %% tags=["parameters"]
profile: str = "smoke"  # "smoke" (CPU, minutes, what is committed) or "full" (one GPU)
device: str = "auto"  # "auto" -> cuda when present, else cpu; or "cpu", "cuda", "cuda:N"
seed: int = 0  # every random draw in the notebook derives from it

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from rope_lib.companion.evaluate import bootstrap_difference
from rope_lib.companion.experiments import finetune, harness, run_experiment
from rope_lib.companion.plotting import savefig
from rope_lib.companion.report import Results, fmt_seeds, fmt_spread, format_gap, markdown_table, setup_notebook
from rope_lib.companion.verdicts import NOT_DECIDED, ClaimBook, slug

setup_notebook(profile, device, seed)

# %% [markdown]
# ## 1. Our setting
#
# The plain model of each of the 3 training seeds of notebook 04 ($L = 64$) is fine-tuned at $L' = 4L = 256$ bytes with
# each method's position scheme, tuned once to $s = L'/L = 4$: plain RoPE ("Direct"), PI, NTK-aware (bloc97) and YaRN;
# and YaRN with $s = 8$, which covers $2L'$ (YaRN's way past its fine-tuning data). Every method gets the same batches
# (the batch of step $t$ depends on the seed and $t$ only), steps, learning rate (a third of pre-training's), a 5-step
# warm-up and then a constant rate, so that the weights after $t$ steps of one run are those of a $t$-step run: the
# snapshots at 10, 25 and 50 steps and the end (100 steps; its bytes as a share of pre-training's are printed below) are
# four fine-tuning budgets. Each model is scored, with its scheme, at $L$, $L'$ and $2L'$ on the seed's own 21
# non-repeated test windows of notebook 04 (loss in nats per byte over every prediction of the window, and beyond $L$
# also over the bytes before position $L$ and from $L$ on separately); step 0 is the pre-trained model under the
# method's scheme, notebook 04's zero-shot row at 4x. The models are trained once by `make models` (the checkpoint
# cache); the same run without Jupyter: `python -m rope_lib.companion.experiments finetune --profile smoke`. Each claim
# is decided on the training-seed level, as in the other chapters: each seed gives one estimate (its mean over its
# windows), and the Student-t 95% interval over the seeds makes the claim "reproduced" (on the claimed side),
# "consistent" (across it, every seed on the claimed side), "reversed" (on the other side) or "not reproduced"; the
# bootstrap interval over seeds and test files is printed beside it as a description of the gap.

# %%
results = Results(run_experiment("finetune", profile=profile, device=device, seed=seed))  # the profile's threads
rows = results.rows
ft_cfg = results.config["finetune"]
L_TRAIN, EXTEND = results.train_length, ft_cfg["extend"]
STEPS = [0, *ft_cfg["snapshots"], ft_cfg["steps"]]
FINAL = STEPS[-1]
FT_METHODS = list(ft_cfg["methods"])
LENGTHS = {"L": 1, "L'": EXTEND, "2L'": 2 * EXTEND}  # multiples of the training length L
assert results.seeds == harness.training_seeds(profile, seed) and list(rows) == [
    f"{method} @ {step}" for method in FT_METHODS for step in STEPS
]
# the verdict record keeps the id "08" (results/<profile>/verdicts/08.json and its second-machine copy are keyed by it)
claims = ClaimBook("08", profile)  # prints each claim's line and records it
PI_SOURCE = "Chen et al., PI, arXiv:2306.15595"
YARN_SOURCE = "Peng et al., YaRN, arXiv:2309.00071, Table 5"
LOSS_GAP = "loss gap (nats/byte)"
# the lengths as parts of claim ids: L -> l, L' -> lp, 2L' -> 2lp
LENGTH_ID = {label: label.lower().replace("'", "p") for label in LENGTHS}


def loss_by_seed(method: str, step: int, mult: int) -> np.ndarray:
    """Mean loss (nats/byte) over the windows of each training seed, shape (seeds,)."""
    return rows.loss_per_sample(f"{method} @ {step}", "non_repeated", mult).mean(1)


def last_window_losses(method: str, step: int, mult: int) -> np.ndarray:
    """Per-window loss on the last L bytes at context mult x L, shape (seeds, windows); rows.difference pairs two."""
    return rows.last_window_loss_per_sample(f"{method} @ {step}", mult)


# %%
pre_cfg = results.config["train"]
ft_bytes = ft_cfg["steps"] * ft_cfg["batch_size"] * EXTEND * L_TRAIN
print(
    f"L = {L_TRAIN} -> L' = {EXTEND * L_TRAIN}; {ft_cfg['steps']} steps x {ft_cfg['batch_size']} x "
    f"{EXTEND * L_TRAIN} bytes = {ft_bytes} bytes, "
    f"{ft_bytes / (pre_cfg['steps'] * pre_cfg['batch_size'] * L_TRAIN):.0%} of pre-training's; "
    f"lr {ft_cfg['lr_fraction']:.3f} x pre-training's, snapshots {ft_cfg['snapshots']}"
)
for label, mult in LENGTHS.items():
    table = []
    for method in FT_METHODS:
        by_step = [loss_by_seed(method, step, mult) for step in STEPS]  # each (seeds,)
        table.append([method, *(fmt_spread(losses.mean(), losses.std(ddof=1), 3) for losses in by_step)])
    print(f"\nloss at {label} = {mult * L_TRAIN} bytes (nats/byte, mean ± sd over {rows.n_seeds} seeds)")
    display(markdown_table(["method", *(f"{step} steps" for step in STEPS)], table))

# %% [markdown]
# ## 2. The claims
#
# **Claim 1 (PI): fine-tuned PI beats the pre-trained model at $L'$, and soon beats its original window.** Two
# comparisons: PI after $t$ steps at $L'$ against the pre-trained model with plain RoPE at $L'$ (direct
# extrapolation); and, PI's Table 3 reading, the loss on the *same last $L$ bytes* with the context $L'$ (PI after $t$
# steps) against the context $L$ (the pre-trained model at its own window) - negative when the longer context is used.

# %%
# stated verdicts by fine-tuning steps (the smoke and medium budgets; the full profile's other budgets are not stated)
STATED_VS_EXTRAPOLATION = {10: "reversed", 25: "not reproduced", 50: "not reproduced", 100: "consistent"}
pi_verdicts = []
for step in STEPS[1:]:
    pi_verdicts.append(
        claims.decide(
            f"08.pi-vs-extrapolation.{step}steps",
            rows.loss_gap(f"PI @ {step}", "Direct @ 0", mult=EXTEND),
            "<",
            claim=f"PI after {step} steps - pre-trained with plain RoPE, loss at L'",
            source=f"{PI_SOURCE}, Table 3",
            quantity=LOSS_GAP,
            stated=STATED_VS_EXTRAPOLATION.get(step, NOT_DECIDED),
        )
    )
    pi_verdicts.append(
        claims.decide(
            f"08.pi-vs-own-window.{step}steps",
            rows.difference(last_window_losses("PI", step, EXTEND), last_window_losses("Direct", 0, 1)),
            "<",
            claim=f"PI after {step} steps at L' - pre-trained at L, loss on the last L bytes",
            source=f"{PI_SOURCE}, Table 3",
            quantity=LOSS_GAP,
            stated="reversed",
        )
    )

# %% [markdown]
# **Claim 1, against extrapolation: consistent after 100 steps, not reproduced after 25 and 50, reversed after 10.**
# After 100 steps PI is below the pre-trained model extrapolating at $L'$ by 0.16 nats (seeds −0.30, −0.10,
# −0.09): every seed ahead, but the seed-level interval [−0.46, +0.14] includes zero. After 50 steps (−0.07; seeds
# −0.20, +0.00, −0.03) and 25 steps (+0.08; seeds −0.02, +0.15, +0.13) the seeds fall on both sides of zero: not
# reproduced. After 10 steps PI is still worse (+0.28, interval [+0.03, +0.53]): reversed. **Against its own
# window: reversed at every budget.** On the same last $L$ bytes PI's loss with $L'$ of context stays above the
# pre-trained model's with $L$, on every seed: +0.51 after 10 steps, +0.32 after 25, +0.17 after 50 and +0.09 after
# 100 (interval [+0.05, +0.12]). PI's Table 3 finding (below the original window after 200 steps) does not appear
# within our 100 steps. Every fine-tuned model does use the longer context (the last table below: its own loss on
# the last $L$ bytes is lower at $L'$ than at $L$); PI starts from the worst point and has not caught up.

# %%
for v in pi_verdicts:
    if v.stated != NOT_DECIDED:  # a claim the runs on record decide differently is asserted neither way
        assert v.holds, v

# %% [markdown]
# **Claim 2 (PI): fine-tuning with plain positions extends the window far less than PI in the same steps.** PI
# measures the window by passkey retrieval (claim 5 below); by loss, "extends the window" is about the bytes the
# pre-trained model never reached - those at positions from $L$ on. Three readings, each Direct minus PI after the
# same steps (the claim says positive: Direct worse):
#
# * **(a) the loss over whole windows at $L'$ and $2L'$** - what a perplexity table reports; it mixes extension with
#   how well each model predicts at short range;
# * **(b) the loss at $L$**, on windows of $L$ bytes - no extension involved: the short-range part of (a);
# * **(c) extension itself**: on the same windows of $L'$ bytes, the gap on the bytes from position $L$ on minus the
#   gap on the bytes before it. A method that extends better gains beyond $L$ what it does not gain before $L$.

# %%
# stated verdicts of (c) by fine-tuning steps; after 100 steps: consistent here and on the second machine, not
# reproduced on the first machine
STATED_EXTENSION = {0: "consistent", 10: "not reproduced", 25: "consistent", 50: "consistent", 100: "not decided"}
direct_vs_pi_verdicts = []
for step in STEPS:
    for label in ("L'", "2L'"):
        direct_vs_pi_verdicts.append(
            claims.decide(
                f"08.direct-vs-pi.at-{LENGTH_ID[label]}.{step}steps",
                rows.loss_gap(f"Direct @ {step}", f"PI @ {step}", mult=LENGTHS[label]),
                ">",
                claim=f"Direct - PI after {step} steps, loss at {label}",
                source=f"{PI_SOURCE}, Table 4",
                quantity=LOSS_GAP,
                stated="reversed",
            )
        )
direct_vs_pi_at_l = {step: rows.loss_gap(f"Direct @ {step}", f"PI @ {step}", mult=1) for step in STEPS}


def part_gap(a: str, b: str, mult: int, part: str) -> np.ndarray:
    """Per-window loss of row a minus row b on one part of the windows at mult x L, shape (seeds, windows)."""
    return rows.loss_by_part(a, mult, part) - rows.loss_by_part(b, mult, part)


extension_gaps = {
    step: rows.difference(
        part_gap(f"Direct @ {step}", f"PI @ {step}", EXTEND, "beyond_L"),
        part_gap(f"Direct @ {step}", f"PI @ {step}", EXTEND, "within_L"),
    )
    for step in STEPS
}
extension_verdicts = [
    claims.decide(
        f"08.direct-vs-pi.extension.{step}steps",
        gap,
        ">",
        claim=f"Direct - PI after {step} steps, windows of L': loss from position L on minus before L",
        source=f"{PI_SOURCE}, Table 4",
        quantity=LOSS_GAP,
        stated=STATED_EXTENSION.get(step, NOT_DECIDED),
    )
    for step, gap in extension_gaps.items()
]
markdown_table(
    ["steps", "(a) at L'", "(a) at 2L'", "(b) at L", "(c) extension", "tier of (c)"],
    [
        [
            step,
            format_gap(rows.loss_gap(f"Direct @ {step}", f"PI @ {step}", mult=EXTEND)),
            format_gap(rows.loss_gap(f"Direct @ {step}", f"PI @ {step}", mult=2 * EXTEND)),
            format_gap(direct_vs_pi_at_l[step]),
            format_gap(extension_gaps[step]),
            v.tier,
        ]
        for step, v in zip(STEPS, extension_verdicts)
    ],
)

# %% [markdown]
# **(a) Reversed at every budget; (c) small, in PI's direction at most.** Over whole windows plain fine-tuning is
# *better* than PI at $L'$ and $2L'$ after every number of steps, on every seed, each seed-level interval entirely below
# zero (after 100 steps −0.10 at $L'$ and −0.23 at $2L'$). But (b) shows where that gap comes from: at $L$, where no
# extension is involved, Direct is ahead of PI by as much (−0.10 after 100 steps; −0.98, −0.42, −0.26, −0.15 at 0, 10,
# 25 and 50 steps, about halving with each doubling of steps, as the gap at $L'$ does). That is PI's deficit at short
# range after compressing every position 4x (notebook 04: PI is the worst zero-shot method here, since it moves the fast
# pairs this byte-level model leans on), not a difference in how far either window reaches. Extension itself, (c), is
# small: +0.35 before fine-tuning (every seed; consistent: PI's interpolated positions already serve the bytes beyond
# $L$ better, relative to its short range), then +0.05, +0.03, +0.02 and +0.01 after 10 to 100 steps - every seed in
# PI's favour after 25 and 50 steps (consistent), seeds on both sides after 10 (not reproduced), and after 100 not
# decided (every seed in PI's favour here and on the second machine: consistent; a seed at −0.00 on the first
# machine: not reproduced). So PI's claim,
# read as extension, is at most consistent here and fades with fine-tuning; the headline "plain positions beat PI" is
# PI's local deficit, which 100 steps (the share of pre-training's bytes printed in section 1) do not remove. Whether it
# holds at LLaMA's scale, where PI's comparison was made, is not tested here.

# %%
for v in direct_vs_pi_verdicts + extension_verdicts:
    if v.stated != NOT_DECIDED:
        assert v.holds, v

# %% [markdown]
# **Claim 3 (YaRN): no more steps than PI for the same loss at $L'$; and better than PI beyond $L'$ after
# fine-tuning.** YaRN minus PI at $L'$ after each number of steps (claimed $\le 0$), and at $2L'$ after the last.
# **Beyond the fine-tuning length**, YaRN's claim is for a scale that covers the evaluation length (its $s = 32$
# model, fine-tuned on 64k tokens, at 128k): YaRN with $s = 8$, fine-tuned at $L'$ like the others, at $2L'$ - its
# loss on the last $L$ bytes with $2L'$ of context against $L'$ (the longer context used, not harmful), and its
# loss at $2L'$ against PI's, plain fine-tuning's and YaRN's with $s = 4$ (which at $2L'$ is past its own scale).

# %%
yarn_vs_pi_verdicts = []
for step in STEPS:
    yarn_vs_pi_verdicts.append(
        claims.decide(
            f"08.yarn-vs-pi.at-lp.{step}steps",
            rows.loss_gap(f"YaRN @ {step}", f"PI @ {step}", mult=EXTEND),
            "<",
            claim=f"YaRN - PI after {step} steps, loss at L'",
            source=YARN_SOURCE,
            quantity=LOSS_GAP,
            stated="reproduced",
        )
    )
yarn_vs_pi_beyond = claims.decide(
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
# after 10, −0.28 after 25, −0.17 after 50, −0.10 after 100, interval [−0.12, −0.08]; after 10 steps it is where PI
# is after 100), and after fine-tuning it is better than PI at $2L'$ as well (−0.12, seeds −0.13, −0.08, −0.16;
# interval [−0.23, −0.02]).

# %%
for v in yarn_vs_pi_verdicts:
    if v.stated != NOT_DECIDED:
        assert v.holds, v
assert yarn_vs_pi_beyond.holds, yarn_vs_pi_beyond

# %%
# stated verdicts: the last-L-bytes claim, and against each other method at 2L'
STATED_WIDE = {"last-l": "reversed", "PI": "reproduced", "Direct": "reproduced", "YaRN": "reproduced"}
WIDE = next(m for m in FT_METHODS if m.startswith("YaRN (s = "))  # YaRN tuned to 2L'
wide_verdicts = [
    claims.decide(
        f"08.{slug(WIDE)}.last-l.2lp-vs-lp",
        rows.difference(last_window_losses(WIDE, FINAL, 2 * EXTEND), last_window_losses(WIDE, FINAL, EXTEND)),
        "<",
        claim=f"{WIDE} after {FINAL} steps, last L bytes: loss at 2L' - at L'",
        source=YARN_SOURCE.replace("Table 5", "abstract and its 128k evaluation"),
        quantity=LOSS_GAP,
        stated=STATED_WIDE.get("last-l", NOT_DECIDED),
    )
]
for other in ("PI", "Direct", "YaRN"):
    wide_verdicts.append(
        claims.decide(
            f"08.{slug(WIDE)}-vs-{slug(other)}.at-2lp.{FINAL}steps",
            rows.loss_gap(f"{WIDE} @ {FINAL}", f"{other} @ {FINAL}", mult=2 * EXTEND),
            "<",
            claim=f"{WIDE} - {other}, both after {FINAL} steps, loss at 2L'",
            source=YARN_SOURCE.replace("Table 5", "abstract and its 128k evaluation") if other != "YaRN" else "ours",
            quantity=LOSS_GAP,
            stated=STATED_WIDE.get(other, NOT_DECIDED),
        )
    )
wide_cost = rows.loss_gap(f"{WIDE} @ {FINAL}", f"YaRN @ {FINAL}", mult=EXTEND)
print(f"after {FINAL} steps, {WIDE} - YaRN at L' (what covering 2L' costs at L'): {format_gap(wide_cost)}")

# %% [markdown]
# **YaRN beyond $L'$: the scale decides.** With $s = L'/L$ (claim 3's first part) YaRN is ahead of PI at $2L'$
# (reproduced) but, past its own scale, its loss on the last $L$ bytes rises by +0.55 from $L'$ to $2L'$ (the last table
# of the notebook) and plain fine-tuning beats it at $2L'$ (printed there). With $s = 8$, which covers $2L'$, fine-tuned
# on the same $L'$-byte data, YaRN is the best model at $2L'$: ahead of plain fine-tuning (−0.03, every seed;
# reproduced), of PI (−0.27) and of YaRN with $s = 4$ (−0.15), at a cost of +0.01 at $L'$ (printed above). Its loss on
# the last $L$ bytes still rises from $L'$ to $2L'$, by +0.02 on every seed: "more context keeps lowering the loss" is
# reversed, though the rise is far smaller than with $s = 4$ (+0.55). YaRN's claim to extrapolate beyond its fine-tuning
# data holds in the sense that nothing breaks at twice the fine-tuning length when the scale covers it; the extra
# context is not used.

# %%
for v in wide_verdicts:
    if v.stated != NOT_DECIDED:
        assert v.holds, v

# %% [markdown]
# **Claim 4 (PI): interpolation costs a little at the original window.** The loss at $L$ of PI after the last step
# (with its scheme) minus the pre-trained model's at $L$; and minus plain fine-tuning's (the same extra training).

# %%
pi_cost_gap = rows.loss_gap(f"PI @ {FINAL}", "Direct @ 0", mult=1)
pi_cost = claims.decide(
    "08.pi-cost-at-l",
    pi_cost_gap,
    ">",
    claim=f"PI after {FINAL} steps - pre-trained, loss at L",
    source=f"{PI_SOURCE}, proof-pile at the original window",
    quantity=LOSS_GAP,
    stated="reproduced",
)
pi_cost_vs_direct = claims.decide(
    "08.pi-cost-at-l.vs-direct",
    rows.loss_gap(f"PI @ {FINAL}", f"Direct @ {FINAL}", mult=1),
    ">",
    claim=f"PI - Direct, both after {FINAL} steps, loss at L",
    source="ours",
    quantity=LOSS_GAP,
    stated="reproduced",
)
# PI's "a little": +0.01 to +0.05 on proof-pile's perplexity of about 2.8, i.e. 0.004-0.018 nats; our margin, 0.05
# nats, is nearly three times the top of that range
pi_cost_little = claims.decide(
    "08.pi-cost-at-l.little",
    pi_cost_gap,
    "<",
    threshold=0.05,
    claim=f"PI after {FINAL} steps - pre-trained, loss at L, within PI's 'a little'",
    source=f"{PI_SOURCE}, proof-pile at the original window",
    quantity=LOSS_GAP,
    stated="reversed",
)
direct_cost = rows.loss_gap(f"Direct @ {FINAL}", "Direct @ 0", mult=1)
print(f"at L: Direct fine-tuned - pre-trained {format_gap(direct_cost)} nats/byte (fine-tuning's own cost)")
print(f"PI's cost at L in perplexity: {np.expm1(pi_cost.mean):+.1%} (PI on proof-pile: +0.4% to +1.8%)")

# %% [markdown]
# **The cost: reproduced; "a little": reversed.** PI's model is worse at $L$ by +0.15 nats per byte after
# fine-tuning (seeds +0.12, +0.15, +0.17; interval [+0.08, +0.22]), and +0.10 worse than plain fine-tuning
# (interval [+0.06, +0.14]), which itself costs 0.05 at $L$ - in perplexity PI's cost is the percentage printed
# above, where PI reports +0.01 to +0.05 on proof-pile's perplexity of about 2.8 (0.4% to 1.8%, 0.004 to 0.018
# nats). The whole seed-level interval lies above our margin of 0.05 nats.

# %%
assert pi_cost.holds, pi_cost
assert pi_cost_vs_direct.holds, pi_cost_vs_direct
assert pi_cost_little.holds, pi_cost_little  # far above PI's "little" (at most 0.018 nats)

# %% [markdown]
# **Claim 5 (PI Table 4): the effective window by passkey retrieval.** A key is asked for at 16 distances spaced over
# $L'$ ($L'/16$ to $L' - 2$) in samples of $L'$ bytes (`rope_lib.companion.data.make_passkey_set`), 32 samples per
# distance and seed; $k_{\max}$ is PI's: the largest distance such that every distance up to it is retrieved in at
# least 20% of the samples. First the text models of the claims above, before and after fine-tuning:

# %%
passkey_cfg = results.config["eval"]["passkey"]
DISTANCES = np.array(passkey_cfg["distances"])


def passkey_correct(cells: list[dict]) -> np.ndarray:
    """Outcomes (1: retrieved) from one {distance: hits} dict per seed, shape (seeds, distances, samples)."""
    return np.array([[cell[str(k)] for k in DISTANCES] for cell in cells])


text_passkey = {
    (method, step): passkey_correct([run[f"{method} @ {step}"]["passkey"] for run in rows.runs])
    for method in FT_METHODS
    for step in (0, FINAL)
}
print(
    f"text models, passkey at L' = {passkey_cfg['length']}, {passkey_cfg['samples']} samples per distance and seed, "
    f"chance {passkey_cfg['chance']:.4f}: largest accuracy over methods, steps, distances and seeds = "
    f"{max(x.mean(-1).max() for x in text_passkey.values()):.3f}"
)

# %% [markdown]
# No text model retrieves any key at any distance - not at chance, at zero: trained on text only, they never predict
# the key bytes, which never occur in the corpus. So the test starts where PI's does, from a model that retrieves
# within its window: notebook 07's retrieval model (notebook 04's model fine-tuned for retrieval at $L$; every key
# within $L$ there but one in 16 at each of $m = 1..4$ on one seed), fine-tuned at $L'$ on text exactly as above
# (same steps, batches, learning rate) with plain positions, PI and YaRN ($s = 4$). Step 0 is the retrieval model
# itself under each method's scheme.

# %%
RETRIEVAL_METHODS = results.config["finetune"]["retrieval_methods"]
retrieval = {
    (method, step): passkey_correct([run["retrieval"][f"{method} @ {step}"] for run in results.runs])
    for method in RETRIEVAL_METHODS
    for step in (0, FINAL)
}


def k_max_by_seed(correct: np.ndarray) -> np.ndarray:
    """PI's k_max per seed (bytes) from outcomes of shape (seeds, distances, samples)."""
    return np.array([finetune.k_max(rates, DISTANCES, passkey_cfg["k_max_rate"]) for rates in correct.mean(-1)])


BEYOND = DISTANCES > L_TRAIN  # key distances the pre-trained model never saw


markdown_table(
    ["method", "steps", "k_max per seed", f"accuracy, distance <= L = {L_TRAIN}", "accuracy, distance > L"],
    [
        [
            method,
            step,
            ", ".join(str(k) for k in k_max_by_seed(correct)),
            fmt_seeds(100 * correct[:, ~BEYOND]),
            fmt_seeds(100 * correct[:, BEYOND]),
        ]
        for (method, step), correct in retrieval.items()
    ],
)

# %%
longest = passkey_cfg["length"] - 2


def retrieval_difference(a: str, b: str, mask: np.ndarray) -> dict:
    """Accuracy of a minus b after the last step over the distances in mask, paired sample by sample (the same texts
    and keys), bootstrapped over seeds and samples."""
    return bootstrap_difference(
        retrieval[(a, FINAL)][:, mask].mean(1), retrieval[(b, FINAL)][:, mask].mean(1), seed=results.seed
    )


STATED_PASSKEY = {"k-max": "not reproduced", "beyond-l": "consistent", "pi-reaches": "reproduced"}
passkey_verdicts = [
    claims.decide(
        f"08.passkey.k-max.direct-vs-pi.{FINAL}steps",
        {"by_seed": (k_max_by_seed(retrieval[("Direct", FINAL)]) - k_max_by_seed(retrieval[("PI", FINAL)])) / longest},
        "<",
        claim=f"k_max (Direct) - k_max (PI) after {FINAL} steps, as a fraction of L' - 2",
        source=f"{PI_SOURCE}, Table 4",
        quantity="k_max gap (fraction of L' - 2)",
        stated=STATED_PASSKEY.get("k-max", NOT_DECIDED),
    ),
    claims.decide(
        f"08.passkey.beyond-l.direct-vs-pi.{FINAL}steps",
        retrieval_difference("Direct", "PI", BEYOND),
        "<",
        claim=f"Direct - PI after {FINAL} steps, passkey accuracy at distances beyond L",
        source=f"{PI_SOURCE}, Table 4",
        quantity="passkey accuracy gap (fraction)",
        stated=STATED_PASSKEY.get("beyond-l", NOT_DECIDED),
    ),
    claims.decide(
        f"08.passkey.k-max.pi-reaches-lp.{FINAL}steps",
        {"by_seed": k_max_by_seed(retrieval[("PI", FINAL)]) / longest},
        ">",
        threshold=0.999,
        claim=f"k_max (PI) after {FINAL} steps reaches L' - 2",
        source=f"{PI_SOURCE}, Table 4",
        quantity="k_max (fraction of L' - 2)",
        stated=STATED_PASSKEY.get("pi-reaches", NOT_DECIDED),
    ),
]

# %%
fig, axes = plt.subplots(1, len(RETRIEVAL_METHODS), figsize=(12.0, 3.4), sharey=True)
for ax, method in zip(axes, RETRIEVAL_METHODS):
    for step, style in ((0, ":"), (FINAL, "-")):
        acc = retrieval[(method, step)].mean(-1)  # (seeds, distances)
        ax.plot(DISTANCES, acc.mean(0), style, marker="o", ms=3, color="#0072B2", label=f"{step} steps")
        ax.fill_between(DISTANCES, acc.min(0), acc.max(0), color="#0072B2", alpha=0.12, lw=0)
    ax.axvline(L_TRAIN, color="0.4", lw=0.8)
    ax.axhline(passkey_cfg["k_max_rate"], color="#D55E00", lw=0.8, ls="--", label="k_max rate (20%)")
    ax.set_title(method)
    ax.set_xlabel("key distance (bytes)")
axes[0].set_ylabel("passkey accuracy")
axes[0].legend(loc="lower left")
fig.suptitle(f"Retrieval model (L = {L_TRAIN}) fine-tuned on text at L' = {EXTEND * L_TRAIN}; line: L; band: seeds")
savefig(fig, "08_passkey_after_finetune", profile=profile, exact=False)
plt.show()

# %% [markdown]
# **$k_{\max}$ cannot separate the methods here; retrieval beyond $L$ does, in PI's direction.** Every model,
# before and after fine-tuning, retrieves at least 20% at every distance up to $L' - 2$, so $k_{\max} = L' - 2$ for
# all: PI reaches $L'$ (reproduced), and Direct's $k_{\max}$ is not below PI's (not reproduced). Already before
# fine-tuning the retrieval model finds keys beyond $L$ with plain positions (99% on average): a key that is the only
# byte of its kind needs no positional match (notebook 07), so this task measures whether retrieval is *kept*, not
# built. Fine-tuning on text keeps it under PI (91% beyond $L$ after 100 steps, about as within: 93%) and YaRN (98%),
# but plain positions lose it beyond $L$ (74%, per seed −0.09, −0.17, −0.26 against PI: every seed in PI's favour,
# the seed-level interval reaching across zero - consistent) while keeping it within $L$ (99%). In that sense the
# passkey test goes PI's way: text fine-tuning with plain positions narrows the window retrieval works in,
# interpolation does not.

# %%
assert max(x.mean(-1).max() for x in text_passkey.values()) == 0.0  # the text models retrieve nothing
for v in passkey_verdicts:
    if v.stated != NOT_DECIDED:
        assert v.holds, v

# %% [markdown]
# **(ours) Longer context, used.** Each fine-tuned model tuned to $s = L'/L$: its own loss on the last $L$ bytes,
# with $L'$ against $L$ of context, and with $2L'$ against $L'$ (beyond the fine-tuned length and its scale; YaRN
# with $s = 8$ is claim 3's):

# %%
# (ours) stated verdicts of "beyond L' the loss on the last L bytes rises", by method
# Direct: reproduced here and on the second machine, consistent on the first machine
STATED_BEYOND = {"Direct": "not decided", "PI": "reproduced", "NTK-aware": "reproduced", "YaRN": "reproduced"}
context_gaps, context_verdicts = {}, {}
for method in (m for m in FT_METHODS if m != WIDE):
    up_to_lp = rows.difference(last_window_losses(method, FINAL, EXTEND), last_window_losses(method, FINAL, 1))
    beyond_lp = rows.difference(
        last_window_losses(method, FINAL, 2 * EXTEND), last_window_losses(method, FINAL, EXTEND)
    )
    context_gaps[method] = (up_to_lp, beyond_lp)
    context_verdicts[method] = (
        claims.decide(
            f"08.context-used.{slug(method)}.lp-vs-l",
            up_to_lp,
            "<",
            claim=f"{method} after {FINAL} steps, last L bytes: loss at L' - at L",
            source="ours",
            quantity=LOSS_GAP,
            stated="reproduced",
        ),
        claims.decide(
            f"08.context-used.{slug(method)}.2lp-vs-lp",
            beyond_lp,
            ">",
            claim=f"{method} after {FINAL} steps, last L bytes: loss at 2L' - at L'",
            source="ours",
            quantity=LOSS_GAP,
            stated=STATED_BEYOND.get(method, NOT_DECIDED),
        ),
    )
markdown_table(
    ["method (after the last step)", "last L bytes: L' - L", "tier", "last L bytes: 2L' - L'", "tier"],
    [
        [
            method,
            format_gap(up_to_lp),
            context_verdicts[method][0].tier,
            format_gap(beyond_lp),
            context_verdicts[method][1].tier,
        ]
        for method, (up_to_lp, beyond_lp) in context_gaps.items()
    ],
)

# %% [markdown]
# **Up to $L'$: reproduced for all four.** Every fine-tuned model uses the context up to $L'$: the loss on the same
# bytes falls, on every seed (Direct −0.06, PI −0.06, NTK-aware −0.05, YaRN −0.05). **Beyond $L'$** the loss rises:
# reproduced for PI (+0.68, interval [+0.39, +0.97]), YaRN (+0.55, [+0.36, +0.73]) and NTK-aware (+0.16,
# [+0.03, +0.28]); for plain fine-tuning it rises least (+0.12, seeds +0.08, +0.11, +0.18; interval [+0.00, +0.25])
# and is not decided: reproduced here and on the second machine, consistent on the first machine. At $2L'$ plain
# fine-tuning is also better
# than YaRN with $s = 4$ (Direct − YaRN, printed below), which there runs past its own scale; YaRN with a scale that
# covers $2L'$ is claim 3's.

# %%
direct_vs_yarn = rows.loss_gap(f"Direct @ {FINAL}", f"YaRN @ {FINAL}", mult=2 * EXTEND)
print(f"after {FINAL} steps, Direct - YaRN at 2L': {format_gap(direct_vs_yarn)}")
for verdict_pair in context_verdicts.values():
    for v in verdict_pair:
        if v.stated != NOT_DECIDED:
            assert v.holds, v

# %% [markdown]
# ## 3. Loss against fine-tuning steps
#
# Mean of the seeds, band: lowest to highest seed.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13.0, 3.9), sharex=True)
colors = dict(zip(FT_METHODS, ["#000000", "#D55E00", "#0072B2", "#009E73", "#CC79A7"]))
for ax, (label, mult) in zip(axes, LENGTHS.items()):
    for method in FT_METHODS:
        seed_losses = np.stack([loss_by_seed(method, step, mult) for step in STEPS], axis=1)  # (seeds, steps)
        ax.plot(STEPS, seed_losses.mean(0), "-o", ms=3, color=colors[method], label=method)
        ax.fill_between(STEPS, seed_losses.min(0), seed_losses.max(0), color=colors[method], alpha=0.15, lw=0)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xticks(STEPS, [str(step) for step in STEPS])
    ax.set_xlabel("fine-tuning steps")
    ax.set_title(f"loss at {label} = {mult * L_TRAIN} bytes")
axes[0].set_ylabel("loss (nats/byte)")
axes[0].legend()
fig.suptitle(f"Fine-tuned at L' = {EXTEND * L_TRAIN} from L = {L_TRAIN} ({rows.n_seeds} seeds)")
savefig(fig, "08_finetune_loss_vs_steps", profile=profile, exact=False)
plt.show()
