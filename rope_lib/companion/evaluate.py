"""Per-token metrics of a trained LM under a position scheme, and the statistics notebook 04 reports.

* :func:`token_metrics` - next-token loss and accuracy per position and per sample, batched by a token budget so
  a 16L evaluation fits in a few hundred MB (SDPA on CPU never materialises the T x T attention matrix).
* :func:`last_window_loss` - Su's "longer context, lower loss" protocol (kexue.fm/archives/9948): the loss on the
  same last L tokens while the context grows L, 2L, 4L...; with nested test sets
  (``rope_lib.companion.data.make_test_set`` with ``max_length``) it is read off the per-position losses of each test
  length, at no extra cost.
* :func:`passkey_hits` / :func:`passkey_accuracy` - passkey retrieval (samples from
  :func:`rope_lib.companion.data.make_passkey_set`): does the greedy answer at the question equal the key inserted
  earlier.
* :func:`bootstrap_difference` - paired bootstrap over evaluation samples: a confidence interval for the accuracy
  difference of two methods scored on the same samples.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .data import PASSKEY_QUERY, PASSKEY_SYMBOLS
from .model import PositionScheme, RoPELM
from .runtime import autocast


@torch.no_grad()
def token_metrics(
    model: RoPELM,
    tokens: torch.Tensor,
    scheme: PositionScheme | None = None,
    *,
    batch_tokens: int = 65536,
    amp: bool = True,
) -> dict:
    """Next-token loss (nats) and accuracy of ``model`` on ``tokens`` under ``scheme``.

    Args:
        tokens: (n_samples, T) int64; position t predicts token t + 1, so T - 1 predictions per sample.
        batch_tokens: samples per forward = max(1, batch_tokens // T) (bounds memory at long T).

    Returns:
        dict of numpy float64 arrays and floats: ``loss_per_position`` / ``acc_per_position`` (T-1,) averaged
        over samples; ``loss_per_sample`` / ``acc_per_sample`` (n,) averaged over positions; ``loss_matrix``
        (n, T-1) the loss of every prediction and ``hit_matrix`` (n, T-1) whether its argmax was right (0/1);
        ``loss`` and ``acc`` averaged over all predictions.
    """
    if tokens.dim() != 2 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must have shape (n_samples, T >= 2), got {tuple(tokens.shape)}")
    device = next(model.parameters()).device
    model.eval()
    n, T = tokens.shape
    per_batch = max(1, batch_tokens // T)
    losses, hits = [], []
    for i in range(0, n, per_batch):
        x = tokens[i : i + per_batch].to(device)
        with autocast(device, amp):
            logits = model(x[:, :-1], scheme)
        target = x[:, 1:]
        loss = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none")
        losses.append(loss.double().cpu())
        hits.append((logits.argmax(-1) == target).double().cpu())
    loss, hit = torch.cat(losses).numpy(), torch.cat(hits).numpy()
    return {
        "loss_per_position": loss.mean(0),
        "acc_per_position": hit.mean(0),
        "loss_per_sample": loss.mean(1),
        "loss_matrix": loss,
        "hit_matrix": hit,
        "acc_per_sample": hit.mean(1),
        "loss": float(loss.mean()),
        "acc": float(hit.mean()),
    }


def last_window_loss(loss_per_position: np.ndarray, train_length: int) -> float:
    """Mean loss of the last ``train_length - 1`` predictions (the same tokens at every nested test length)."""
    loss_per_position = np.asarray(loss_per_position)
    if train_length < 2 or loss_per_position.shape[-1] < train_length - 1:
        raise ValueError(
            f"train_length must be in [2, T], got {train_length} for T - 1 = {loss_per_position.shape[-1]}"
        )
    return float(loss_per_position[..., -(train_length - 1) :].mean())


def bootstrap_difference(
    a: np.ndarray,
    b: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Paired bootstrap of mean(a) - mean(b) over training seeds and test samples.

    ``a``, ``b``: per-sample values of two methods (e.g. accuracies), shape (N,) for one training seed or (S, N)
    for S seeds, row s holding seed s's own test samples; a column pairs the two methods on the same text, so text
    difficulty cancels. Two stages per bootstrap draw: S seeds drawn with replacement (training noise), then for each
    seed drawn, its samples with replacement (test-text noise) - or, with ``groups`` (same shape: the file of each
    sample), its files, every sample of a drawn file together (samples of one file are not independent).

    Returns ``{"diff", "lo", "hi", "se", "by_seed"}``: the observed difference (mean over seeds of the per-seed
    means), the percentile interval at ``level``, the bootstrap standard error and the per-seed differences.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (1, 2) or a.shape[-1] < 2:
        raise ValueError(
            f"a and b must be arrays of the same shape (N,) or (seeds, N) with N >= 2, got {a.shape} and {b.shape}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    d = (a - b).reshape(-1, a.shape[-1])
    n_seeds = d.shape[0]
    if groups is None:
        labels = np.broadcast_to(np.arange(d.shape[1]), d.shape)
    elif np.size(groups) != a.size:
        raise ValueError(f"groups must have the shape of a {a.shape}, got {np.shape(groups)}")
    else:
        labels = np.asarray(groups).reshape(-1, a.shape[-1])
    rng = np.random.default_rng(seed)
    # stage 2 first: for every seed, n_boot x n_seeds resamples of its files (one per slot it may be drawn into)
    per_seed = np.empty((n_seeds, n_boot, n_seeds))
    for s in range(n_seeds):
        _, inverse = np.unique(labels[s], return_inverse=True)
        sums = np.bincount(inverse, weights=d[s])
        counts = np.bincount(inverse).astype(np.float64)
        idx = rng.integers(0, sums.size, size=(n_boot, n_seeds, sums.size))
        per_seed[s] = sums[idx].sum(-1) / counts[idx].sum(-1)
    # stage 1: which seed fills each slot
    slots = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    boots = per_seed[slots, np.arange(n_boot)[:, None], np.arange(n_seeds)[None, :]].mean(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    by_seed = d.mean(1)
    return {
        "diff": float(by_seed.mean()),
        "lo": float(lo),
        "hi": float(hi),
        "se": float(boots.std(ddof=1)),
        "by_seed": [float(x) for x in by_seed],
    }


def passkey_rows_cosine(model: RoPELM) -> float:
    """Mean pairwise cosine similarity of the embedding rows of QUERY and the 16 key symbols (17 rows, 136 pairs).

    None of these bytes occurs in the corpus: a text model only ever pushes their (tied) output logits down, the same
    way for each, so the rows drift together - the reason the retrieval recipe re-draws them
    (:class:`rope_lib.companion.train.PasskeyTask`'s ``reinit_norm``).
    """
    rows = model.embed.weight.detach()[torch.tensor([PASSKEY_QUERY, *PASSKEY_SYMBOLS])].double()
    unit = rows / rows.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    n = cos.shape[0]
    return float((cos.sum() - cos.diagonal().sum()) / (n * (n - 1)))


def passkey_hits(
    model: RoPELM,
    samples: torch.Tensor,
    scheme: PositionScheme | None = None,
    *,
    batch_tokens: int = 65536,
    amp: bool = True,
) -> np.ndarray:
    """1.0 where ``model``'s greedy answer to a passkey sample is its key, else 0.0 (chance: 1/16).

    ``samples``: (..., T) from :func:`rope_lib.companion.data.make_passkey_set` (QUERY at T - 2, the key at T - 1).
    Returns a float64 array of the leading shape.
    """
    if samples.dim() < 2 or samples.shape[-1] < 3:
        raise ValueError(f"samples must have shape (..., T) with T >= 3, got {tuple(samples.shape)}")
    if not bool((samples[..., -2] == PASSKEY_QUERY).all()):
        raise ValueError("samples are not passkey samples: the byte before the answer must be PASSKEY_QUERY")
    flat = samples.reshape(-1, samples.shape[-1])
    hit = token_metrics(model, flat, scheme, batch_tokens=batch_tokens, amp=amp)["hit_matrix"][:, -1]  # the answer
    return hit.reshape(samples.shape[:-1])


def passkey_accuracy(model: RoPELM, samples: torch.Tensor, scheme: PositionScheme | None = None, **kwargs) -> float:
    """Fraction of passkey ``samples`` whose key ``model`` retrieves (greedy); see :func:`passkey_hits`."""
    return float(passkey_hits(model, samples, scheme, **kwargs).mean())
