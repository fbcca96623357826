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
# # 12 · Every method in a transformers model: config objects in, `rope_lib.hf`, the recipe
#
# **Claim.** The methods of this companion are not tied to its small LM. (1) `rope_lib.frequencies` takes a
# transformers config object as it comes and gives transformers' frequencies for every rope type, including a
# Phi-3-style LongRoPE config without `factor`, whose attention factor needs `max_position_embeddings` - a field the
# `rope_parameters` dict alone does not carry. (2) `rope_lib.hf.apply` puts any of our methods (NTK-fixed, YaRN,
# Dynamic YaRN, log n, ReRoPE, ...) into a Llama-family transformers model in place, and `remove` undoes it.
# (3) Exported as a `LlamaForCausalLM`, the notebook-04 model re-scores a slice of the extrapolation table through
# transformers with *the same per-window accuracies* as rope_lib's own model: Baseline, NTK-fixed, YaRN and Dynamic
# YaRN from notebook 04 and ReRoPE from notebook 05, at 8x the training length, on every training seed. What (3)
# tests is the export and the patching (`rope_lib.hf.apply`): every re-scored row, Baseline included, runs
# rope_lib's own frequencies or attention function inside transformers' Llama, not transformers' own rope types.
# transformers' native rope code is the reference only in (1) (Phi-3's rotary module), in the export check of
# section 2 and in the plain-RoPE generation of section 4 (the exported model's own rotary module, rope type
# "default").
#
# Sources: Hugging Face transformers 5.23.0 (pinned; `modeling_rope_utils`, `AttentionInterface`), whose rope types
# are the parity target; the monkey patches this replaces: Su Jianlin's ReRoPE patch (github.com/bojone/rerope,
# kexue.fm/archives/9708) and the YaRN repository's (github.com/jquesnelle/yarn), both written against
# transformers 4.31 and broken by its later releases; Phi-3 (arXiv:2404.14219) for LongRoPE's config layout.
#
# *Remarks marked **(ours)** are this companion's, not the sources'.*

# %% tags=["parameters"]
profile: str = "smoke"  # "smoke" (CPU, minutes, what is committed) or "full" (one GPU)
device: str = "auto"  # "auto" -> cuda when present, else cpu; or "cpu", "cuda", "cuda:N"
seed: int = 0  # every random draw in the notebook derives from it

# %%
import math
import tempfile
import textwrap
import warnings
from pathlib import Path

# transformers' progress bars import tqdm.auto, which warns in a kernel without ipywidgets (bars are off anyway)
warnings.filterwarnings("ignore", message="IProgress not found")

import matplotlib.pyplot as plt
import numpy as np
import torch
from transformers import LlamaForCausalLM
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding
from transformers.utils import logging as hf_logging

import rope_lib
from rope_lib import hf
from rope_lib.companion.data import load_corpus
from rope_lib.companion.experiments import harness, run_experiment, transformers_rows
from rope_lib.companion.export import export_llama
from rope_lib.companion.hf_reference import module_frequencies, phi3_longrope_config
from rope_lib.companion.plotting import savefig
from rope_lib.companion.report import Results, markdown_table, setup_notebook
from rope_lib.companion.runtime import pick_device, torch_threads
from rope_lib.companion.train import train

setup_notebook(profile, device, seed)
hf_logging.set_verbosity_error()  # transformers warns about Phi-3's missing factor; that case is the point here

model_cfg, _, _, eval_cfg = harness.settings(profile, seed)
L, base, d = model_cfg.train_length, model_cfg.rope_base, model_cfg.head_dim
MULT = 8  # the column re-scored: 8x the training length, non-repeated test set
dev = pick_device(device)

# %% [markdown]
# ## 1. A config object in: LongRoPE without `factor`
#
# Phi-3-mini-128k keeps its training length in `config.original_max_position_embeddings` (4096), extends to
# `max_position_embeddings` (131072), and has no `factor`: transformers takes $s$ = 131072 / 4096 = 32 for the
# attention factor $\sqrt{1 + \ln s / \ln L}$. From `config.rope_parameters` alone that ratio is unknown, so the dict
# path refuses; the config object goes in unchanged. The config is `rope_lib.companion.hf_reference`'s
# `phi3_longrope_config` (the config `tests/test_hf.py` checks too): Phi-3-mini's sizes (head dim 96, $b = 10^4$), with
# short/long factors of ours (Phi-3's 48 values are not needed to check the rule).

# %%
phi3 = phi3_longrope_config()
try:
    rope_lib.frequencies(phi3.rope_parameters, 96)
    refusal = ""
except ValueError as err:
    refusal = str(err)
assert "'factor'" in refusal, refusal

phi3_rows = []
for n in (4096, 4097):  # the short factors up to L, the long ones beyond
    inv, af = rope_lib.frequencies(phi3, seq_len=n)
    # transformers switches short/long inside the rotary module's forward: read after one over n positions
    hf_inv, hf_af = module_frequencies(Phi3RotaryEmbedding(phi3), n, 96)
    rel = ((inv - hf_inv.double()).abs() / hf_inv.double()).max().item()
    assert rel < 1e-6 and math.isclose(af, hf_af, rel_tol=1e-12)
    phi3_rows.append((n, f"{af:.6f}", f"{1 / inv[-1].item():.1f}"))
expected_af = math.sqrt(1 + math.log(131072 / 4096) / math.log(4096))
assert math.isclose(rope_lib.frequencies(phi3)[1], expected_af, rel_tol=1e-12)

# %% tags=["nbval-check-output"]
print("the rope_parameters dict alone is refused:")
print(textwrap.fill(refusal.split(":")[0], width=100, initial_indent="  ", subsequent_indent="  "))
print(f"sqrt(1 + ln 32 / ln 4096) = {expected_af:.6f}")
markdown_table(["seq_len", "attention factor", "slowest wavelength / 2 pi"], phi3_rows)

# %% [markdown]
# The same reader handles other real configs (each checked against transformers in `tests/test_hf.py`):
# Llama 3.1 (`llama3`), Qwen2.5 with the legacy `rope_scaling` (YaRN), gpt-oss (YaRN, `truncate: false`), a Dynamic
# NTK config (whose $L$ transformers takes from `max_position_embeddings`), DeepSeek-V3 (YaRN with `mscale` /
# `mscale_all_dim`, rotary dim `qk_rope_head_dim`), and configs nested per layer type, where `layer_type=` picks one.
# Where transformers only warns about a bad config, `rope_lib` raises a ValueError naming the key.
#
# ## 2. The notebook-04 model as a `LlamaForCausalLM`
#
# Our LM is a Llama in all but names: RMSNorm (eps $10^{-6}$), SwiGLU, tied embeddings, no biases, and RoPE in the
# half-split layout, which is transformers' `rotate_half`, so no row permutation is needed. `export_llama` splits the
# fused q/k/v and gate/up weights and writes `config.json` + `model.safetensors` atomically (a temporary folder, then
# a rename); the training length goes into `max_position_embeddings`, the $L$ that Dynamic NTK and log n read.
# (A model trained with log n, `train_log_n`, is refused: Llama has no unclipped $\log_L n$ query factor.)

# %%
with torch_threads(eval_cfg["num_threads"]):
    corpus = load_corpus()
    plain_model, plain_training = harness.shared_models(profile, seed)["plain"]  # notebook 04's model, seed 0
    lm = train(plain_model, plain_training, corpus=corpus, device=dev, progress=False)[0].eval()

export_dir = tempfile.TemporaryDirectory()
path = export_llama(lm, Path(export_dir.name) / "rope-companion-04-plain")
llama = LlamaForCausalLM.from_pretrained(path).to(dev).eval()
print(sorted(p.name for p in path.iterdir()))
print(f"{sum(t.numel() for t in lm.parameters()):,} parameters")

# %%
probe = torch.tensor([list(b"The quick brown fox jumps over the lazy dog. " * 4)], device=dev)
with torch.no_grad():
    logit_gap = (llama(probe).logits - lm(probe)).abs().max().item()
assert logit_gap < 1e-4
print(f"max |logit difference| on {probe.shape[1]} bytes: {logit_gap:.1e}")  # float32 rounding: not an nbval check

# %% [markdown]
# ## 3. Re-scoring notebook 04's 8x column through transformers
#
# The `transformers` experiment (`rope_lib.companion.experiments.transformers_rows`) takes every training seed's
# plain model through this export and scores the seed's own test windows at $8L$ (the windows the extrapolation and
# rerope experiments scored) with each row's scheme: every static method tuned to $s = 8$, Dynamic YaRN evaluated as
# a decoder with a cache of un-rotated keys (8 query blocks per doubling of the length; `rope_lib.companion.model`),
# ReRoPE with $w = L/2$ (notebook 05). Through transformers, a row is one `hf.apply(llama, rope_parameters, ...)`
# (`hf_reference.apply_scheme` passes it the row's `PositionScheme` fields), a forward, and `hf.remove`. For the
# static rows (Baseline, NTK-fixed, YaRN) `apply` swaps in a rotary module whose cos/sin come from
# `rope_lib.frequencies`; Dynamic YaRN and ReRoPE run rope_lib's registered attention function. So this compares
# rope_lib's model with rope_lib's methods inside transformers' Llama layers: it tests the export and the patching,
# not transformers' implementations of rope types. Of the five rows only Baseline ("default") and YaRN have a
# transformers type (for those types `tests/test_hf.py`, `test_native_types_equal_transformers`, compares the logits
# of a model patched by rope_lib with those of the same model on transformers' own rotary module); NTK-fixed,
# Dynamic YaRN and ReRoPE exist in rope_lib only. Dynamic YaRN's blocks are fed one after the other through
# transformers' own KV cache (`hf_reference.chunked_logits`): `apply` made the rotary module the identity, so the
# cache holds raw keys, and the registered attention function rotates the queries and all cached keys with the
# frequencies for the current length - exactly the decoder that notebook 04's row describes. Here the per-window
# accuracies it wrote are compared with the ones notebooks 04 and 05 stored.


# %%
def stored(name: str) -> Results:
    """The results notebooks 04 / 05 wrote; run the experiment (evaluation-cached) only where they are missing."""
    try:
        return Results.load(name, profile)
    except FileNotFoundError:
        return Results(run_experiment(name, profile=profile, device=device, seed=seed, progress=False))


extrapolation, rerope = stored("extrapolation"), stored("rerope")
through_hf = Results(run_experiment("transformers", profile=profile, device=device, seed=seed, progress=False))
assert through_hf.seeds == extrapolation.seeds == rerope.seeds and through_hf.seed == extrapolation.seed == seed
assert through_hf.files == extrapolation.files == rerope.files  # the very windows every seed was scored on
assert through_hf.config["eval"]["multiplier"] == MULT

ROWS = {  # row -> stored per-window accuracies (%), shape (seeds, windows)
    **{name: extrapolation.rows.per_sample(name, "non_repeated", MULT) for name in transformers_rows.FREQUENCY_ROWS},
    "ReRoPE": rerope.group("main").per_sample("ReRoPE", "non_repeated", MULT),
}
assert rerope.group("main")["ReRoPE"]["window"] == L // 2
rescored = {name: np.array([run["acc_per_sample"][name] for run in through_hf.runs]) for name in ROWS}
print(f"{len(through_hf.seeds)} seeds x {rescored['Baseline'].shape[1]} windows of {MULT}L = {MULT * L} bytes")

# %% [markdown]
# The tolerance: the results JSON stores each window's accuracy with 6 significant digits, i.e. to $10^{-4}$ points
# here, so the per-window numbers must agree to $10^{-3}$ points. One flipped prediction out of $8L - 1 = 511$ would
# move a window by 0.2 points: agreement at $10^{-3}$ means every one of the argmaxes is the same.

# %%
table = []
for name, want in ROWS.items():
    gap = np.abs(rescored[name] - want).max()
    assert gap < 1e-3, (name, gap)
    table.append((name, f"{want.mean():.2f}", f"{rescored[name].mean():.2f}", f"{gap:.1e}"))
markdown_table(
    ["row (8x, non-repeated, every seed)", "rope_lib (stored) %", "transformers %", "largest per-window diff"], table
)

# %%
fig, ax = plt.subplots(figsize=(5.2, 4.2))
for name, want in ROWS.items():
    ax.scatter(want.ravel(), rescored[name].ravel(), s=14, label=name)
lims = [min(v.min() for v in rescored.values()) - 2, max(v.max() for v in rescored.values()) + 2]
ax.plot(lims, lims, color="0.6", lw=0.8, zorder=0)
ax.set(
    xlim=lims,
    ylim=lims,
    xlabel="rope_lib's own model (stored, %)",
    ylabel="transformers + rope_lib.hf (%)",
    title=f"Per-window accuracy at {MULT}L, {len(through_hf.seeds)} seeds",
)
ax.legend(fontsize=7, loc="upper left")
savefig(fig, "12_rescored_windows", profile=profile, exact=False)
plt.show()

# %% [markdown]
# ## 4. Greedy generation past $L$, with and without ReRoPE
#
# A prompt of $2L$ bytes from a test window, then $3L$ bytes generated greedily with `model.generate` and its KV
# cache, so the text runs to $5L$. Plain RoPE (the model as exported) against ReRoPE ($w = L/2$) patched in: on the
# ReRoPE route the cache holds raw keys and each decode step re-rotates them by the clipped relative positions
# (`rope_lib.rerope_decode_step`); that this equals a full prefill at every step is asserted below.

# %%
with torch_threads(eval_cfg["num_threads"]):  # seed 0's windows, as the experiments drew them (part 0 of the seeds')
    tests, files = harness.make_test_sets(
        corpus, L, tuple(extrapolation.mults), eval_cfg["n_samples"], seed, part=0, parts=len(extrapolation.seeds)
    )
assert files == extrapolation.files[0]
windows = tests["non_repeated"][MULT].to(dev)
prompt = windows[:1, : 2 * L]
truth = windows[0, 2 * L : 5 * L].tolist()
NEW = 3 * L


@torch.no_grad()
def greedy(model) -> list[int]:
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=NEW,
        do_sample=False,
        use_cache=True,
        pad_token_id=0,
    )
    return out[0, prompt.shape[1] :].tolist()


with torch_threads(eval_cfg["num_threads"]):
    plain_text = greedy(llama)
    hf.apply(llama, attention="rerope", window=L // 2)
    rerope_text = greedy(llama)
    with torch.no_grad():  # the cached decode equals a full ReRoPE prefill at every step (first L new bytes)
        seq = prompt
        for _ in range(L):
            seq = torch.cat((seq, llama(seq).logits[:, -1:].argmax(-1)), dim=1)
    assert seq[0, prompt.shape[1] :].tolist() == rerope_text[:L]
    hf.remove(llama)


def show(tokens: list[int]) -> str:
    return bytes(tokens).decode("utf-8", errors="replace").replace("\n", " ⏎ ")


print("prompt (end):", show(prompt[0, -L:].tolist()))
for label, text in (("plain RoPE", plain_text), (f"ReRoPE w={L // 2}", rerope_text), ("the text", truth)):
    print(f"\n--- {label}")
    for start in range(0, NEW, L):
        print(f"  [{2 * L + start:4d}..] {show(text[start : start + L])}")

# %% [markdown]
# Neither continuation is the text: this is a small byte-level model (its parameter count is printed in section 2),
# and greedy decoding of such a model soon repeats itself. The side by side is shown, not scored - nothing is
# counted here: it is what each scheme does with positions past $L$ (from $2L$ on), where plain RoPE meets relative
# positions it never trained on and ReRoPE none beyond $w$. The accuracy comparison over all windows is the table
# above (and notebook 05).
#
# ## 5. The recipe
#
# For any `LlamaForCausalLM`, `MistralForCausalLM`, `Qwen2ForCausalLM` or `Qwen3ForCausalLM` (other architectures
# are refused with a ValueError naming their `model_type`). `rope_theta` and $L$ default to the model's config
# (`original_max_position_embeddings`, else `max_position_embeddings`); `original_length=` overrides $L$. Run here on
# the exported model:

# %%
ids = windows[:2, : 4 * L]
with torch.no_grad():
    before = llama(ids).logits

# --- copy from here ---------------------------------------------------------------------------------------------
# from transformers import AutoModelForCausalLM
# from rope_lib import hf
# llama = AutoModelForCausalLM.from_pretrained("your/llama-family-model")
hf.apply(llama, {"rope_type": "yarn", "factor": 4.0})  # any rope_lib.ROPE_TYPES, e.g. ntk_fixed, ntk_mixed
hf.remove(llama)  # the original rotary module and attention implementation come back
hf.apply(llama, {"rope_type": "dynamic_yarn"}, log_n=True)  # length-dependent: raw-key cache, exact decoding
hf.remove(llama)
hf.apply(llama, attention="rerope", window=L // 2)  # ReRoPE; leaky_k=16.0 for Leaky ReRoPE
# out = llama.generate(input_ids, max_new_tokens=256)  # prefill blockwise, decode with the raw-key cache
hf.remove(llama)
# --- to here ----------------------------------------------------------------------------------------------------

with torch.no_grad():
    assert torch.equal(llama(ids).logits, before)  # remove() restores the model bit for bit
export_dir.cleanup()

# %% [markdown]
# ## What this shows, and its limits
#
# * Config objects: equal to transformers for every rope type on real configs (checked in `tests/test_hf.py`), and
#   LongRoPE without `factor` works.
# * The five re-scored rows equal rope_lib's own numbers window by window on every seed (the table): the export and
#   `hf.apply` reproduce rope_lib's model inside transformers. They run rope_lib's frequencies and attention
#   functions, so they say nothing about transformers' own rope types (compared in `tests/test_hf.py`). The other
#   rows of notebooks 04-06 go through the same three routes (rotary module, raw-key attention function, ReRoPE
#   function), each tested against rope_lib's model for every rope type in `tests/test_hf.py`.
# * **(ours)** With several layers, no KV cache reproduces a *full recompute* of a length-dependent method (Dynamic
#   NTK/YaRN, LongRoPE's switch): the cached hidden states of earlier tokens were computed at earlier lengths. What the
#   raw-key cache gives exactly is the decoder that notebook 04 evaluates (`PositionScheme.dynamic_blocks`); with one
#   layer it is the full recompute, where transformers' own rotate-once cache drifts (`tests/test_hf.py`).
# * Limits: the raw-key routes (length-dependent types, ReRoPE) assume positions $0..n-1$ - left padding, custom
#   `position_ids` and sliding-window caches that drop keys are refused, not silently mis-rotated; partial rotary is
#   refused (the Llama family rotates whole heads). ReRoPE re-rotates every cached key at every step, its known cost
#   (notebook 05).
