"""Greedy decoders for the companion's small LM (:class:`rope_lib.companion.model.RoPELM`, plain RoPE, batch 1):
with a KV cache, and without one - Su's O(1)-state recurrent decoder built on the recurrence of
:mod:`rope_lib.recurrent` (notebook 10).

* :func:`greedy_decode_cached` - the usual decoder: a cache of *rotated* keys and values per layer, which grows by
  one entry per token.
* :func:`greedy_decode_recompute` with ``method="forward"`` - no cache: each step runs the model's own forward over
  the whole prefix (nothing kept between steps but the tokens; the forward's activations are transient, O(n)).
* :func:`greedy_decode_recompute` with ``method="recurrent"`` - Su's O(1)-memory decoder: the residual stream of
  layer l at position t is recomputed from the tokens by streaming every key s <= t through the recurrence, each
  key's own residual recomputed the same way one layer down. The live state is, per layer, the query side's
  residual, q and the accumulators (m, y, z): constant in the length. The price is time: the number of block
  evaluations for one position t of an l-layer model is C(t + l, l - 1) (:func:`recurrent_block_evaluations`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .. import _checks
from ..rope import inv_freq
from .model import RoPELM, rope_tables, rotate_half_split

RECOMPUTE_METHODS: tuple[str, ...] = ("forward", "recurrent")


# ------------------------------------------------------------------------------------------ decoding helpers


@dataclass
class DecodeResult:
    """What a greedy decoder returns.

    Attributes:
        tokens: (n_new,) int64, the generated tokens.
        logits: (n_new, vocab) float32, the logits each generated token was chosen from.
        state_numbers: per generated token, how many numbers the decoder held to produce it: the KV cache for
            :func:`greedy_decode_cached`, the peak live recurrent state for ``method="recurrent"``, 0 for
            ``method="forward"`` (it keeps nothing between steps; its forward's activations are transient).
        seconds: per generated token, CPU time of this process (``time.process_time``, all its threads) spent on the
            step that produced it; other processes on a shared machine do not count, as they would in wall time.
            The first one includes the prefill.
        block_evaluations: per generated token, transformer-block evaluations spent on it.
    """

    tokens: torch.Tensor
    logits: torch.Tensor
    state_numbers: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    block_evaluations: list[int] = field(default_factory=list)


def _check_decode_args(model, prompt, n_new) -> torch.Tensor:
    if not isinstance(model, RoPELM):
        raise ValueError(f"model must be a rope_lib.companion.model.RoPELM, got {type(model).__name__}")
    if model.cfg.train_log_n:
        raise ValueError("model.cfg.train_log_n must be False: these decoders implement plain RoPE attention only")
    _checks.positive_int("n_new", n_new)
    prompt = torch.as_tensor(prompt)
    vocab = model.cfg.vocab_size
    if prompt.dim() != 1 or prompt.numel() < 1 or prompt.is_floating_point() or prompt.dtype == torch.bool:
        raise ValueError(f"prompt must be a 1-D sequence of at least one integer token id, got {prompt!r:.80}")
    lo, hi = int(prompt.min()), int(prompt.max())
    if lo < 0 or hi >= vocab:
        raise ValueError(f"prompt token ids must lie in [0, {vocab}), got min {lo}, max {hi}")
    return prompt.to(torch.long)


def _tables(model: RoPELM, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    # Plain RoPE: theta_i = b^(-2i/d) does not depend on the length, so one table serves every step.
    return rope_tables(inv_freq(model.cfg.head_dim, model.cfg.rope_base), 1.0, length, device)


def _project(block, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotated q, k and v (B, H, T, hd) of block ``block`` for its input x (B, T, d_model) at the table rows."""
    attn = block.attn
    B, T, _ = x.shape
    q, k, v = attn.qkv(block.norm1(x)).view(B, T, 3, attn.n_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    return rotate_half_split(q, cos, sin), rotate_half_split(k, cos, sin), v


def _finish_block(block, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Residual update of block ``block`` given its attention output y (B, H, T, hd)."""
    B, H, T, hd = y.shape
    x = x + block.attn.out(y.transpose(1, 2).reshape(B, T, H * hd))
    return x + block.mlp(block.norm2(x))


def _logits(model: RoPELM, x: torch.Tensor) -> torch.Tensor:
    w = model.embed.weight if model.head is None else model.head.weight
    return F.linear(model.norm(x), w).float()


# --------------------------------------------------------------------------------------------- cached decoder


def greedy_decode_cached(model: RoPELM, prompt, n_new: int) -> DecodeResult:
    """Greedy decoding with a KV cache of rotated keys (and values), one list per layer.

    A prefill runs the prompt (causal SDPA), then each step embeds one token, rotates its q and k at its position,
    appends k and v to every layer's cache and attends with the single query over all cached keys. The cache holds
    2 x n_layers x n_heads x head_dim numbers per position, the usual linear growth.
    """
    prompt = _check_decode_args(model, prompt, n_new)
    cfg, dev = model.cfg, model.embed.weight.device
    cos, sin = _tables(model, prompt.numel() + n_new, dev)
    scale = 1.0 / math.sqrt(cfg.head_dim)
    cache: list[tuple[torch.Tensor, torch.Tensor]] = []
    res = DecodeResult(torch.empty(n_new, dtype=torch.long), torch.empty(n_new, cfg.vocab_size))
    with torch.no_grad():
        start = time.process_time()
        n0 = prompt.numel()
        x = model.embed(prompt.to(dev)[None])
        for block in model.blocks:
            q, k, v = _project(block, x, cos[:n0], sin[:n0])
            cache.append((k, v))
            x = _finish_block(block, x, F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale))
        logits = _logits(model, x[:, -1])[0]
        for i in range(n_new):
            if i:
                start, pos = time.process_time(), n0 + i - 1  # the token chosen last step sits at n0 + i - 1
                x = model.embed(res.tokens[i - 1 : i].to(dev))[None]  # (1, 1, d_model)
                for layer, block in enumerate(model.blocks):
                    q, k, v = _project(block, x, cos[pos : pos + 1], sin[pos : pos + 1])
                    keys, values = (torch.cat((c, new), dim=-2) for c, new in zip(cache[layer], (k, v)))
                    cache[layer] = (keys, values)
                    # one query, the last position: it sees every cached key, so no mask
                    x = _finish_block(block, x, F.scaled_dot_product_attention(q, keys, values, scale=scale))
                logits = _logits(model, x[:, -1])[0]
            res.logits[i] = logits
            res.tokens[i] = int(torch.argmax(logits))
            res.seconds.append(time.process_time() - start)
            res.state_numbers.append(sum(k.numel() + v.numel() for k, v in cache))
            res.block_evaluations.append(cfg.n_layers * (n0 if i == 0 else 1))
    return res


# -------------------------------------------------------------------------------------------- recompute decoders


def recurrent_block_evaluations(n_layers: int, position: int) -> int:
    """Block evaluations the recurrent decoder spends on the top layer at ``position`` t (0-based): C(t + l, l - 1).

    E(l, t) = 1 + sum_{s <= t} E(l - 1, s), E(0, t) = 0 (an embedding lookup): the query side's residual is
    computed once and reused as key t, every earlier key's residual is recomputed one layer down.
    """
    n_layers = _checks.positive_int("n_layers", n_layers)
    position = _checks.nonnegative_int("position", position)
    return math.comb(position + n_layers, n_layers - 1)


def recurrent_state_numbers(n_layers: int, d_model: int, n_heads: int, head_dim: int) -> int:
    """Numbers the recurrent decoder keeps live at its deepest point: per layer the query side's residual
    (d_model), its rotated query and the accumulator y (n_heads x head_dim each), m and z (n_heads each).

    Position t opens min(t + 1, n_layers) nested frames: from t = n_layers - 1 on, one per layer, whatever t.
    """
    args = {"n_layers": n_layers, "d_model": d_model, "n_heads": n_heads, "head_dim": head_dim}
    n_layers, d_model, n_heads, head_dim = (_checks.positive_int(k, v) for k, v in args.items())
    return n_layers * (d_model + 2 * n_heads * head_dim + 2 * n_heads)


class _Recurrent:
    """Su's decoder for one sequence: residuals recomputed from the tokens, keys streamed through the recurrence."""

    def __init__(self, model: RoPELM, tokens: torch.Tensor) -> None:
        self.model, self.tokens = model, tokens
        self.cos, self.sin = _tables(model, tokens.numel(), model.embed.weight.device)
        self.scale = 1.0 / math.sqrt(model.cfg.head_dim)
        self.live = 0  # numbers held by the frames now open
        self.peak = 0
        self.evaluations = 0

    def key_value(self, block, x: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated k and v (H, hd) of one key at position s; the query rows of the projection are skipped."""
        attn = block.attn
        width = attn.n_heads * attn.head_dim
        kv = F.linear(block.norm1(x[0, 0]), attn.qkv.weight[width:]).view(2, attn.n_heads, attn.head_dim)
        return rotate_half_split(kv[0], self.cos[s], self.sin[s]), kv[1]

    def hidden(self, layer: int, t: int) -> torch.Tensor:
        """Residual stream (1, 1, d_model) after ``layer`` blocks at position t."""
        if layer == 0:
            return self.model.embed(self.tokens[t : t + 1])[None]
        block = self.model.blocks[layer - 1]
        x = self.hidden(layer - 1, t)  # the query side's residual; it is also key t
        rows = slice(t, t + 1)
        q, k, v = _project(block, x, self.cos[rows], self.sin[rows])
        q = q[0, :, 0]  # (H, hd)
        self.evaluations += 1
        own = k[0, :, 0], v[0, :, 0]  # key t is the query's own position: its k, v came with q
        # the state per head: m (H, 1) from -inf, so the first key sets it (e^{-inf} = 0 drops the empty sums),
        # y (H, hd) and z (H, 1) from zero
        m = torch.full((q.shape[0], 1), -math.inf, dtype=q.dtype, device=q.device)
        y, z = torch.zeros_like(q), torch.zeros_like(m)
        # while deeper frames run, this frame holds its residual, q and (m, y, z): counted from the tensors
        # themselves (one key's residual, k and v are transient and not counted)
        held = sum(a.numel() for a in (x, q, m, y, z))
        self.live += held
        self.peak = max(self.peak, self.live)
        for s in range(t + 1):
            ks, vs = self.key_value(block, self.hidden(layer - 1, s), s) if s < t else own  # (H, hd) each
            score = (q * ks).sum(-1, keepdim=True) * self.scale  # (H, 1)
            m_new = torch.maximum(m, score)
            rescale, p = torch.exp(m - m_new), torch.exp(score - m_new)
            m, y, z = m_new, y * rescale + p * vs, z * rescale + p
        self.live -= held
        return _finish_block(block, x, (y / z)[None, :, None, :])


def greedy_decode_recompute(model: RoPELM, prompt, n_new: int, *, method: str = "forward") -> DecodeResult:
    """Greedy decoding with no KV cache: every layer's k and v are recomputed from the tokens at every step.

    Args:
        method: "forward" - the model's own forward over the whole prefix each step (O(n) transient activations,
            O(n^2) attention work per token); "recurrent" - Su's O(1)-state decoder (see the module docstring):
            :func:`recurrent_block_evaluations` block evaluations per token, which grows like t^(l-1), so keep the
            prefix short.
    """
    prompt = _check_decode_args(model, prompt, n_new)
    if method not in RECOMPUTE_METHODS:
        raise ValueError(f"method must be one of {RECOMPUTE_METHODS}, got {method!r}")
    cfg, dev = model.cfg, model.embed.weight.device
    tokens = prompt.to(dev)
    res = DecodeResult(torch.empty(n_new, dtype=torch.long), torch.empty(n_new, cfg.vocab_size))
    with torch.no_grad():
        for i in range(n_new):
            start = time.process_time()
            if method == "forward":
                logits = model(tokens[None])[0, -1]
                held, evaluations = 0, cfg.n_layers * tokens.numel()
            else:
                rec = _Recurrent(model, tokens)
                logits = _logits(model, rec.hidden(cfg.n_layers, tokens.numel() - 1)[:, -1])[0]
                held, evaluations = rec.peak, rec.evaluations
            res.logits[i] = logits
            res.tokens[i] = int(torch.argmax(logits))
            res.seconds.append(time.process_time() - start)
            res.state_numbers.append(held)
            res.block_evaluations.append(evaluations)
            tokens = torch.cat((tokens, res.tokens[i : i + 1].to(dev)))
    return res


__all__ = [
    "DecodeResult",
    "RECOMPUTE_METHODS",
    "greedy_decode_cached",
    "greedy_decode_recompute",
    "recurrent_block_evaluations",
    "recurrent_state_numbers",
]
