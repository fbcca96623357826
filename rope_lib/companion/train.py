"""Training loop for :class:`rope_lib.companion.model.RoPELM`, with a checkpoint cache shared by notebooks and the CLI.

A trained model is stored under ``rope_lib.cache_dir() / "checkpoints" / <key>`` where the key hashes everything
that determines the result: the model config, the training config (including the training position scheme) and
the corpus checksum. The same configuration therefore trains once; notebook 04, the experiments CLI and later
notebooks reuse it. Training saves every ``save_every`` steps and resumes from the latest save, so an
interrupted run loses at most that many steps; the batch of step t depends only on (seed, t), so a resumed run
sees the same batches as an uninterrupted one.

The checkpoint metadata records the wall time and the training throughput (tokens per second); they are the
only machine-dependent entries and the notebooks never print them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import _checks
from .data import (
    PASSKEY_FORMAT,
    PASSKEY_QUERY,
    PASSKEY_SYMBOLS,
    Corpus,
    load_corpus,
    make_test_set,
    passkey_batch,
    train_batch,
)
from .model import ModelConfig, PositionScheme, RoPELM
from .runtime import autocast, cache_dir, pick_device, torch_threads

CHECKPOINT_FORMAT = 1  # bump when the checkpoint layout or the training loop's semantics change


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (one comment per field). The sequence length is the model's ``train_length``."""

    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # sequences per step
    lr: float = 3e-3  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # the cosine schedule decays to lr * min_lr_ratio
    warmup_steps: int = 50  # linear warmup from 0 to lr
    weight_decay: float = 0.1  # decoupled weight decay, applied to matrices only (not norms)
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.95  # AdamW beta2
    grad_clip: float = 1.0  # max global grad norm
    seed: int = 0  # init and batch order
    scheme: PositionScheme = field(default_factory=PositionScheme)  # training position scheme (e.g. Leaky ReRoPE)
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU, where float32 is faster for these sizes)
    compile: bool = False  # torch.compile the model on CUDA (ignored on CPU)
    save_every: int = 200  # checkpoint period in steps (not part of the cache key)
    num_threads: int | None = None  # torch threads during training (None: leave as is; not part of the key)
    # Fraction of training sequences that carry a passkey (rope_lib.companion.data.passkey_batch): retrieval models. 0
    # (plain text) leaves the cache key of every text-only model as it was before this field existed.
    passkey_fraction: float = 0.0
    # Fine-tuning (notebook 08). Each field below enters the cache key only when set, so every pre-training key is
    # unchanged. ``length``: sequence length of the training batches (None: the model's train_length, which stays
    # the "original length" every scaling method and log n refer to). ``init_from``: the cache key of a trained
    # model whose weights this run starts from (a fresh optimizer). ``snapshots``: steps after which the weights are
    # also kept (:func:`load_snapshot`), so one run gives the model at several fine-tuning budgets.
    length: int | None = None
    init_from: str | None = None
    snapshots: tuple[int, ...] = ()
    # Retrieval training (notebook 07; each in the cache key only when set). A model pre-trained on text has never
    # seen QUERY or a key symbol, and with tied embeddings every never-seen byte gets the same push-down gradient:
    # the 17 rows end nearly parallel (cosine ~0.98), and no attention head can tell one key from another.
    # ``passkey_reinit_norm``: with init_from, re-draw those rows as random vectors of this norm (seeded by ``seed``).
    # ``passkey_answer_weight``: the loss adds this times the cross-entropy of the answer bytes (one byte of 64 in a
    # row, otherwise drowned by the text). ``passkey_curriculum``: (until step, largest key distance) pairs,
    # increasing in both; from the last step on, every distance a row can hold.
    passkey_reinit_norm: float = 0.0
    passkey_answer_weight: float = 0.0
    passkey_curriculum: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "save_every"):
            _checks.positive_int(name, getattr(self, name))
        if not isinstance(self.warmup_steps, int) or not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be an int in [0, steps={self.steps}], got {self.warmup_steps!r}")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"lr must be > 0 and min_lr_ratio in [0, 1], got {self.lr!r}, {self.min_lr_ratio!r}")
        frac = self.passkey_fraction
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac <= 1:
            raise ValueError(f"passkey_fraction must be a number in [0, 1], got {self.passkey_fraction!r}")
        if not isinstance(self.scheme, PositionScheme):
            raise ValueError(f"scheme must be a PositionScheme, got {type(self.scheme).__name__}")
        if self.scheme.log_n or self.scheme.dynamic_blocks is not None:
            raise ValueError("the training scheme takes no log_n (use ModelConfig.train_log_n) and no dynamic_blocks")
        if self.length is not None:
            _checks.positive_int("length", self.length)
            if self.length < 2:
                raise ValueError(f"length must be >= 2 (one prediction needs two tokens), got {self.length}")
        if self.init_from is not None and (not isinstance(self.init_from, str) or len(self.init_from) < 20):
            raise ValueError(f"init_from must be a checkpoint key (hex, >= 20 characters), got {self.init_from!r}")
        snaps = self.snapshots
        if (
            not isinstance(snaps, tuple)
            or any(isinstance(k, bool) or not isinstance(k, int) for k in snaps)
            or (list(snaps) != sorted(set(snaps)) or (snaps and not 1 <= snaps[0] <= snaps[-1] < self.steps))
        ):
            raise ValueError(f"snapshots must be a tuple of increasing ints in [1, steps={self.steps}), got {snaps!r}")
        for name in ("passkey_reinit_norm", "passkey_answer_weight"):
            _checks.finite_number(name, getattr(self, name), at_least=0.0)
        uses_keys = self.passkey_reinit_norm or self.passkey_answer_weight or self.passkey_curriculum
        if uses_keys and not self.passkey_fraction:
            raise ValueError(
                "passkey_reinit_norm, passkey_answer_weight and passkey_curriculum need passkey_fraction > 0"
            )
        if self.passkey_reinit_norm and self.init_from is None:
            raise ValueError("passkey_reinit_norm re-draws rows of a pre-trained model: it needs init_from")
        cur = self.passkey_curriculum
        ok = isinstance(cur, tuple) and all(
            isinstance(c, tuple) and len(c) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in c)
            for c in cur
        )
        if (
            not ok
            or any(c[0] < 1 or c[1] < 1 for c in cur)
            or any(a[0] >= b[0] or a[1] >= b[1] for a, b in zip(cur, cur[1:]))
        ):
            raise ValueError(
                "passkey_curriculum must be a tuple of (until step, largest distance) int pairs, both >= 1 and "
                f"increasing, got {cur!r}"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scheme"] = self.scheme.to_dict()
        if self.passkey_fraction:
            d["passkey_format"] = PASSKEY_FORMAT  # a new task layout is new training data: a new cache key
        else:
            del d["passkey_fraction"]
        optional = (
            "length",
            "init_from",
            "snapshots",
            "passkey_reinit_norm",
            "passkey_answer_weight",
            "passkey_curriculum",
        )
        for name in optional:  # absent when unset: earlier keys are unchanged
            if not d[name]:
                del d[name]
            elif name in ("snapshots", "passkey_curriculum"):
                d[name] = [list(c) if isinstance(c, tuple) else c for c in d[name]]
        return d

    def max_passkey_distance(self, step: int) -> int | None:
        """The largest key distance the curriculum allows at ``step`` (None: any)."""
        for until, distance in self.passkey_curriculum:
            if step < until:
                return distance
        return None


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine to lr * min_lr_ratio."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def config_key(model_cfg: ModelConfig, train_cfg: TrainConfig, corpus_digest: str) -> str:
    """sha256 of everything that determines the trained weights (not save_every/num_threads/device)."""
    t = train_cfg.to_dict()
    t.pop("save_every")
    t.pop("num_threads")
    blob = json.dumps(
        {"format": CHECKPOINT_FORMAT, "model": model_cfg.to_dict(), "train": t, "data": corpus_digest}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _checkpoint_folder(key: str) -> Path:
    """The cache folder of the trained model with cache key ``key``."""
    return cache_dir() / "checkpoints" / key[:20]


def checkpoint_dir(model_cfg: ModelConfig, train_cfg: TrainConfig, corpus: Corpus) -> Path:
    return _checkpoint_folder(config_key(model_cfg, train_cfg, corpus.digest))


def _atomic_save(obj: Any, path: Path) -> None:
    _checks.atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _latest_step_file(folder: Path) -> Path | None:
    files = sorted(folder.glob("step_*.pt"))
    return files[-1] if files else None


def _optimizer(model: RoPELM, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


@contextlib.contextmanager
def _torch_settings(num_threads: int | None, deterministic: bool):
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch_threads(num_threads):
        try:
            if deterministic:
                torch.use_deterministic_algorithms(True, warn_only=True)
            yield
        finally:
            torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


@torch.no_grad()
def validation_metrics(
    model: RoPELM,
    corpus: Corpus,
    *,
    n_samples: int = 32,
    seed: int = 0,
    amp: bool = True,
    length: int | None = None,
    scheme: PositionScheme | None = None,
) -> dict:
    """Loss (nats/byte) and accuracy on validation windows of ``length`` (default the model's training length)
    under ``scheme`` (default plain RoPE; a fine-tuned model is validated at its fine-tuning length and scheme)."""
    device = next(model.parameters()).device
    L = model.cfg.train_length if length is None else length
    x = make_test_set(corpus, "non_repeated", L + 1, n_samples, seed=seed, split="validation").to(device)
    with autocast(device, amp):
        logits = model(x[:, :-1], scheme)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))
    acc = (logits.argmax(-1) == x[:, 1:]).float().mean()
    return {"val_loss": float(loss), "val_acc": float(acc)}


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[RoPELM, dict]:
    """Load a ``final.pt`` written by :func:`train`: (model in eval mode on ``device``, metadata)."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    model = RoPELM(ModelConfig(**blob["model_config"]))
    model.load_state_dict(blob["model"])
    return model.to(pick_device(str(device)) if isinstance(device, str) else device).eval(), blob["meta"]


def snapshot_path(model_cfg: ModelConfig, train_cfg: TrainConfig, corpus: Corpus, step: int) -> Path:
    """Where :func:`train` keeps the weights after ``step`` (one of ``train_cfg.snapshots``)."""
    if step not in train_cfg.snapshots:
        raise ValueError(f"step must be one of train_cfg.snapshots {train_cfg.snapshots}, got {step!r}")
    return checkpoint_dir(model_cfg, train_cfg, corpus) / f"snapshot_{step:07d}.pt"


def load_snapshot(
    model_cfg: ModelConfig, train_cfg: TrainConfig, corpus: Corpus, step: int, device: torch.device | str = "cpu"
) -> RoPELM:
    """The model of a trained run after ``step`` steps (in eval mode), from its cache folder; train it first."""
    path = snapshot_path(model_cfg, train_cfg, corpus, step)
    if not path.is_file():
        raise FileNotFoundError(f"no snapshot at step {step} in the cache ({path.parent.name}): run train() first")
    model = RoPELM(model_cfg)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(pick_device(str(device)) if isinstance(device, str) else device).eval()


def _initial_weights(train_cfg: TrainConfig, model_cfg: ModelConfig) -> dict | None:
    """The state dict fine-tuning starts from (``init_from``), checked to be the same architecture; with
    ``passkey_reinit_norm`` the embedding rows of QUERY and the key symbols are re-drawn (see TrainConfig)."""
    if train_cfg.init_from is None:
        return None
    parent = _checkpoint_folder(train_cfg.init_from) / "final.pt"
    if not parent.is_file():
        raise FileNotFoundError(f"init_from: no trained model {train_cfg.init_from[:20]} in the cache; train it first")
    blob = torch.load(parent, map_location="cpu", weights_only=False)
    if blob["model_config"] != model_cfg.to_dict():
        raise ValueError(f"init_from: the checkpoint's model config {blob['model_config']} differs from model_cfg")
    state = blob["model"]
    if train_cfg.passkey_reinit_norm:
        rows = torch.tensor([PASSKEY_QUERY, *PASSKEY_SYMBOLS])
        weight = state["embed.weight"].clone()
        fresh = torch.randn(len(rows), weight.shape[1], generator=torch.Generator().manual_seed(train_cfg.seed))
        weight[rows] = (fresh * (train_cfg.passkey_reinit_norm / fresh.norm(dim=1, keepdim=True))).to(weight.dtype)
        state = {**state, "embed.weight": weight}
    return state


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    corpus: Corpus | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    use_cache: bool = True,
    max_steps_this_call: int | None = None,
) -> tuple[RoPELM, dict]:
    """Train (or load from the checkpoint cache) a model; returns (model in eval mode, metadata).

    Args:
        model_cfg, train_cfg: what to train; their hash (with the corpus checksum) is the cache key.
        corpus: training data (default: :func:`rope_lib.companion.data.load_corpus`, the pinned sympy sources).
        device: None -> cuda when present, else cpu.
        progress: tqdm bar (``tqdm.auto``; silenced by ``TQDM_DISABLE=1``).
        use_cache: False trains from scratch in a temporary run and writes nothing to the cache.
        max_steps_this_call: stop after this many steps (saving a resumable checkpoint); for tests and for
            splitting a long run into sessions. The returned metadata then has ``"complete": False``.

    Metadata keys: key, cache_hit, complete, steps, tokens_seen, wall_time_s (all sessions), tokens_per_s,
    loss_curve [(step, loss)], val_loss, val_acc, n_parameters, device, resumed_from.
    """
    from tqdm.auto import tqdm

    corpus = load_corpus() if corpus is None else corpus
    dev = device if isinstance(device, torch.device) else pick_device(device)
    key = config_key(model_cfg, train_cfg, corpus.digest)
    folder = _checkpoint_folder(key)
    final = folder / "final.pt"
    if use_cache and final.is_file():
        model, meta = load_checkpoint(final, dev)
        return model, {**meta, "cache_hit": True}

    with _torch_settings(train_cfg.num_threads, deterministic=dev.type == "cpu"):
        torch.manual_seed(train_cfg.seed)
        model = RoPELM(model_cfg)
        init = _initial_weights(train_cfg, model_cfg)
        if init is not None:
            model.load_state_dict(init)
        model = model.to(dev)
        opt = _optimizer(model, train_cfg)
        start, elapsed, curve, resumed_from = 0, 0.0, [], None
        latest = _latest_step_file(folder) if use_cache else None
        if latest is not None:
            state = torch.load(latest, map_location=dev, weights_only=False)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start, elapsed, curve = state["step"], state["elapsed"], state["curve"]
            resumed_from = start
        if use_cache:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.json").write_text(
                json.dumps(
                    {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "data": corpus.summary()}, indent=1
                )
            )
        # torch.compile only for CUDA training (the CPU smoke profile stays eager); evaluation always runs eagerly,
        # since every test length and scheme would trigger a recompilation.
        fwd = torch.compile(model) if (train_cfg.compile and dev.type == "cuda") else model
        stream = corpus.stream("train")
        L = model_cfg.train_length if train_cfg.length is None else train_cfg.length
        B = train_cfg.batch_size
        stop = train_cfg.steps if max_steps_this_call is None else min(train_cfg.steps, start + max_steps_this_call)
        log_every = max(1, train_cfg.steps // 100)
        model.train()
        t0, session_start = time.perf_counter(), start
        # progress=False forces the bar off; otherwise tqdm decides (TQDM_DISABLE=1 in the environment turns it off).
        bar = tqdm(
            total=train_cfg.steps, initial=start, desc="train", leave=False, **({} if progress else {"disable": True})
        )
        running = None
        for step in range(start, stop):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, train_cfg)
            rng = np.random.default_rng([train_cfg.seed, step])
            if train_cfg.passkey_fraction:
                max_distance = train_cfg.max_passkey_distance(step)
                x = passkey_batch(stream, B, L, rng, train_cfg.passkey_fraction, max_distance=max_distance)
            else:
                x = train_batch(stream, B, L, rng)
            x = x.to(dev, non_blocking=True)
            with autocast(dev, train_cfg.amp):
                try:
                    logits = fwd(x[:, :-1], train_cfg.scheme)
                except Exception as err:  # noqa: BLE001 - only a failing first compiled call is recovered
                    if fwd is model or step != start:
                        raise
                    warnings.warn(
                        f"torch.compile failed ({type(err).__name__}: {err}); training without it", stacklevel=2
                    )
                    fwd = model
                    logits = fwd(x[:, :-1], train_cfg.scheme)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))
            if train_cfg.passkey_answer_weight:
                asked = x[:, -2] == PASSKEY_QUERY  # rows that carry a passkey (QUERY never occurs in the text)
                if asked.any():
                    answer = F.cross_entropy(logits[asked, -1].float(), x[asked, -1])
                    loss = loss + train_cfg.passkey_answer_weight * answer
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            opt.step()
            value = float(loss.detach())
            running = value if running is None else 0.9 * running + 0.1 * value
            if (step + 1) % log_every == 0 or step + 1 == train_cfg.steps:
                curve.append((step + 1, round(running, 4)))
                bar.set_postfix(loss=f"{running:.3f}")
            bar.update(1)
            done = step + 1
            if use_cache and done in train_cfg.snapshots:
                _checks.atomic_write(folder / f"snapshot_{done:07d}.pt", lambda t: torch.save(model.state_dict(), t))
            if use_cache and (done % train_cfg.save_every == 0 or done == stop) and done < train_cfg.steps:
                state = {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "step": done,
                    "elapsed": elapsed + time.perf_counter() - t0,
                    "curve": curve,
                }
                _atomic_save(state, folder / f"step_{done:07d}.pt")
                for old in folder.glob("step_*.pt"):  # keep only the newest resume point
                    if old.name != f"step_{done:07d}.pt":
                        old.unlink(missing_ok=True)
        bar.close()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        session = time.perf_counter() - t0
        done = stop
        model.eval()
        meta = {
            "key": key,
            "cache_hit": False,
            "complete": done == train_cfg.steps,
            "steps": done,
            "tokens_seen": done * B * L,
            "wall_time_s": round(elapsed + session, 3),
            "tokens_per_s": round((done - session_start) * B * L / max(session, 1e-9), 1),
            "loss_curve": curve,
            "n_parameters": model.num_parameters(),
            "device": str(dev),
            "resumed_from": resumed_from,
        }
        if meta["complete"]:
            # pre-training validates at L with plain RoPE (as it always has); fine-tuning at its length and scheme
            scheme = train_cfg.scheme if train_cfg.init_from else None
            val = validation_metrics(model, corpus, seed=train_cfg.seed, amp=train_cfg.amp, length=L, scheme=scheme)
            meta.update(val)
            if use_cache:
                blob = {"model": model.state_dict(), "model_config": model_cfg.to_dict(), "meta": meta}
                _atomic_save(blob, final)
                for old in folder.glob("step_*.pt"):
                    old.unlink(missing_ok=True)
    return model, meta


def with_steps(cfg: TrainConfig, steps: int) -> TrainConfig:
    """A copy of ``cfg`` with ``steps`` (warmup clipped to it): convenient for tiny test runs."""
    return replace(cfg, steps=steps, warmup_steps=min(cfg.warmup_steps, steps))
