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
# proof-pile). YaRN (Table 5, fine-tuned rows): fewer steps than PI for the same result, and it keeps extrapolating
# beyond the length it was fine-tuned at.
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

from rope_lib.companion.experiments import harness, run_experiment
from rope_lib.companion.plotting import savefig
from rope_lib.companion.report import Results, fmt_spread, format_gap, markdown_table, setup_notebook
from rope_lib.companion.verdicts import NOT_DECIDED, ClaimBook, slug

setup_notebook(profile, device, seed)

# %% [markdown]
# ## 1. Our setting
#
# The plain model of each of the 3 training seeds of notebook 04 ($L = 64$) is fine-tuned at
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
print(
    f"L = {L_TRAIN} -> L' = {EXTEND * L_TRAIN}; {ft_cfg['steps']} steps x {ft_cfg['batch_size']} x "
    f"{EXTEND * L_TRAIN} bytes, lr {ft_cfg['lr_fraction']:.3f} x pre-training's, snapshots {ft_cfg['snapshots']}"
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
# −0.09): every seed ahead, but the seed-level interval [−0.46, +0.13] includes zero. After 50 steps (−0.07; seeds
# −0.20, +0.00, −0.03) and 25 steps (+0.08; seeds −0.02, +0.15, +0.13) the seeds fall on both sides of zero: not
# reproduced. After 10 steps PI is still worse (+0.28, interval [+0.03, +0.52]): reversed. **Against its own
# window: reversed at every budget.** On the same last $L$ bytes PI's loss with $L'$ of context stays above the
# pre-trained model's with $L$, on every seed: +0.51 after 10 steps, +0.32 after 25, +0.17 after 50 and +0.09 after
# 100 (interval [+0.05, +0.13]). PI's Table 3 finding (below the original window after 200 steps) does not appear
# within our 100 steps. Every fine-tuned model does use the longer context (the last table below: its own loss on
# the last $L$ bytes is lower at $L'$ than at $L$); PI starts from the worst point and has not caught up.

# %%
for v in pi_verdicts:
    if v.stated != NOT_DECIDED:  # a claim the two machines decide differently is asserted neither way
        assert v.holds, v

# %% [markdown]
# **Claim 2 (PI): fine-tuning with plain positions extends the window far less than PI in the same steps.** PI's
# measure is passkey retrieval; ours is the loss at $L'$ and at $2L'$ after the same steps (Direct minus PI; the
# claim says positive).

# %%
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
for v in direct_vs_pi_verdicts:
    if v.stated != NOT_DECIDED:
        assert v.holds, v

# %% [markdown]
# **Claim 3 (YaRN): no more steps than PI for the same loss at $L'$; and better than PI beyond $L'$ after
# fine-tuning.** YaRN minus PI at $L'$ after each number of steps (claimed $\le 0$), and at $2L'$ after the last.

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
# after 10, −0.28 after 25, −0.17 after 50, −0.10 after 100, interval [−0.12, −0.09]; after 10 steps it is where PI
# is after 100), and after fine-tuning it is better than PI at $2L'$ as well (−0.12, seeds −0.13, −0.08, −0.16;
# interval [−0.23, −0.02]).

# %%
for v in yarn_vs_pi_verdicts:
    if v.stated != NOT_DECIDED:
        assert v.holds, v
assert yarn_vs_pi_beyond.holds, yarn_vs_pi_beyond

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
# PI's "a little" is under 0.01 nats (+0.01 to +0.05 on a perplexity near 7); the margin allows five times that
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

# %% [markdown]
# **The cost: reproduced; "a little": reversed.** PI's model is worse at $L$ by +0.15 nats per byte after
# fine-tuning (seeds +0.12, +0.15, +0.17; interval [+0.08, +0.22]), and +0.10 worse than plain fine-tuning
# (interval [+0.07, +0.14]), which itself costs 0.05 at $L$: about 16% in perplexity, where PI reports +0.01 to
# +0.05 on a perplexity near 7 (under 1%). The whole seed-level interval lies above our margin of 0.05 nats.

# %%
assert pi_cost.holds, pi_cost
assert pi_cost_vs_direct.holds, pi_cost_vs_direct
assert pi_cost_little.holds, pi_cost_little  # far above PI's "little" (under 0.01 nats)

# %% [markdown]
# **Claim 5 (PI Table 4): the effective window by passkey retrieval.** Accuracy of retrieving a key at distances
# $L'/16$ to $L' - 2$ in samples of $L'$ bytes (`rope_lib.companion.data.make_passkey_set`), for the pre-trained model
# and after the last step.

# %%
passkey_cfg = results.config["eval"]["passkey"]
passkey_acc = np.array(
    [
        [
            np.mean([np.mean(run[f"{method} @ {step}"]["passkey"][str(distance)]) for run in rows.runs])
            for distance in passkey_cfg["distances"]
        ]
        for method in FT_METHODS
        for step in (0, FINAL)
    ]
)
print(
    f"passkey accuracy at L' = {passkey_cfg['length']}, distances {passkey_cfg['distances']}, "
    f"{passkey_cfg['samples']} samples each, "
    f"chance {passkey_cfg['chance']:.4f}: max over methods, steps, distances and seeds = {passkey_acc.max():.3f}"
)

# %% [markdown]
# **Not measurable here.** No model retrieves any key at any distance - not at chance, at zero: these models were
# trained on text only and never predict the key bytes, which never occur in the corpus. $k_{\max}$ is undefined, so
# PI's Table 4 and the passkey half of claim 2 cannot be tested at this scale; retrieval takes training of its own
# (notebook 07, section 5, fine-tunes retrieval models for it), which these models have not had.

# %%
assert passkey_acc.max() == 0.0

# %% [markdown]
# **(ours) Longer context, used.** Each fine-tuned model's own loss on the last $L$ bytes, with $L'$ against $L$ of
# context, and with $2L'$ against $L'$ (beyond the fine-tuned length):

# %%
# (ours) stated verdicts of "beyond L' the loss on the last L bytes rises", by method
# Direct: consistent here, reproduced on the second machine
STATED_BEYOND = {"Direct": "not decided", "PI": "reproduced", "NTK-aware": "reproduced", "YaRN": "reproduced"}
context_gaps, context_verdicts = {}, {}
for method in FT_METHODS:
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
# reproduced for PI (+0.68, interval [+0.38, +0.97]), YaRN (+0.55, [+0.37, +0.72]) and NTK-aware (+0.16,
# [+0.03, +0.28]); for plain fine-tuning it rises least (+0.13, seeds +0.08, +0.11, +0.19; interval [−0.01, +0.26])
# and is not decided: consistent here, reproduced on the second machine. At $2L'$ plain fine-tuning is also better
# than YaRN (Direct − YaRN, printed below).

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
colors = dict(zip(FT_METHODS, ["#000000", "#D55E00", "#0072B2", "#009E73"]))
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
