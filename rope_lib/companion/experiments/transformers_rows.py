"""Rows of notebooks 04 and 05 re-scored through transformers (notebook 12).

Per training seed: the plain model of notebook 04, exported as a ``LlamaForCausalLM`` (:func:`export_llama`), gets
each row's method with ``rope_lib.hf.apply`` (:func:`hf_reference.apply_scheme`) and scores the seed's own test
windows at :data:`MULT` x L (non-repeated set, the windows the extrapolation and rerope experiments scored). A
length-dependent row (Dynamic YaRN) is fed block by block through transformers' own KV cache
(:func:`hf_reference.chunked_logits`, blocks at :func:`dynamic_block_edges`): the decoder its PositionScheme
describes. The notebook compares these per-window accuracies with the ones the two experiments stored.

transformers is imported inside :func:`run` only: the rest of the companion works without it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from ..export import export_llama
from ..model import PositionScheme, dynamic_block_edges
from .common import register
from .harness import Harness, finish, rerope_scheme, run_seeds, scheme_for

NAME = "transformers"
MULT = 8  # the column re-scored: 8x the training length, non-repeated test set
FREQUENCY_ROWS: tuple[str, ...] = ("Baseline", "NTK-fixed", "YaRN", "Dynamic YaRN")  # notebook 04's rows
REROPE_ROW = "ReRoPE"  # notebook 05's main row, window L/2


def row_schemes(L: int, base: float, head_dim: int, mult: int = MULT) -> dict[str, PositionScheme]:
    """{row: its PositionScheme at ``mult`` x L}, as the extrapolation and rerope experiments evaluate the rows."""
    schemes = {name: scheme_for(name, float(mult), L, base, head_dim) for name in FREQUENCY_ROWS}
    schemes[REROPE_ROW] = rerope_scheme(L // 2)
    return schemes


@torch.no_grad()
def transformers_acc_per_sample(llama, scheme: PositionScheme, windows: torch.Tensor, L: int) -> np.ndarray:
    """Per-window next-byte accuracy (%) of the transformers model patched with ``scheme`` (patch removed after)."""
    from ... import hf
    from ..hf_reference import apply_scheme, chunked_logits

    inputs, targets = windows[:, :-1], windows[:, 1:]
    apply_scheme(llama, scheme)
    try:
        if scheme.dynamic_blocks is None:
            logits = llama(inputs).logits
        else:
            logits = chunked_logits(llama, inputs, dynamic_block_edges(L, inputs.shape[1], scheme.dynamic_blocks))
    finally:
        hf.remove(llama)
    return 100 * (logits.argmax(-1) == targets).double().mean(1).cpu().numpy()


def _one_seed(h: Harness) -> dict:
    from transformers import LlamaForCausalLM

    mult = MULT if MULT in h.mults else max(h.mults)  # a test profile may stop short of 8x
    windows = h.tests["non_repeated"][mult].to(h.device)
    with tempfile.TemporaryDirectory() as folder:
        path = export_llama(h.trained["plain"][0], Path(folder) / "plain")
        llama = LlamaForCausalLM.from_pretrained(path).to(h.device).eval()
    schemes = row_schemes(h.L, h.base, h.head_dim, mult)
    rows = {name: transformers_acc_per_sample(llama, s, windows, h.L).tolist() for name, s in schemes.items()}
    config = {"eval": h.eval_config(multiplier=mult, rows={name: s.to_dict() for name, s in schemes.items()})}
    return finish(NAME, h, config=config, acc_per_sample=rows)


@register(NAME)
def run(profile: str = "smoke", device: str | None = None, seed: int = 0, out=None, *, progress: bool = True) -> dict:
    """For every training seed: notebook 04's plain model through transformers with each row's method, per-window
    accuracy at MULT x L on the seed's own windows; writes ``<out>/transformers.json``."""
    return run_seeds(NAME, profile, device, seed, out, _one_seed, progress=progress)
