"""Training loop for :class:`rope_lib.companion.model.RoPELM`, with a checkpoint cache shared by notebooks and the CLI.

A trained model is stored under ``rope_lib.cache_dir() / "checkpoints" / <key>`` where the key hashes everything
that determines the result: the model config, the training config (including the training position scheme, the
fine-tuning start and the task) and the corpus checksum. The same configuration therefore trains once; notebook 04,
the experiments CLI and later notebooks reuse it. Training saves every ``save_every`` steps and resumes from the
latest save, so an interrupted run loses at most that many steps; the batch of step t depends only on (seed, t), so
a resumed run sees the same batches as an uninterrupted one.

:func:`train` is a short loop over named steps: :func:`_start_or_resume`, ``_Task.batch`` (the batch at a step),
``_Task.loss``, :func:`_save_resume_point`, :func:`_finish`. What is trained on is the task's business: plain text by
default, or :class:`PasskeyTask` (retrieval rows with their own batch and loss); where it starts is
:class:`FineTune`'s (a trained model's weights).

The checkpoint metadata records the wall time and the training throughput (tokens per second); they are the
only machine-dependent entries and the notebooks never print them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import _checks
from ..since_su import pose_position_ids
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class FineTune:
    """Start from a trained model instead of random weights (notebooks 07 and 08b), with a fresh optimizer.

    ``init_from``: the cache key of the trained model (:func:`config_key`). ``length``: sequence length of the
    training batches (None: the model's train_length, which stays the "original length" every scaling method and
    log n refer to). ``snapshots``: steps after which the weights are also kept (:func:`load_snapshot`), so one run
    gives the model at several fine-tuning budgets.
    """

    init_from: str
    length: int | None = None
    snapshots: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.init_from, str) or len(self.init_from) < 20:
            raise ValueError(f"init_from must be a checkpoint key (hex, >= 20 characters), got {self.init_from!r}")
        if self.length is not None:
            _checks.positive_int("length", self.length)
            if self.length < 2:
                raise ValueError(f"length must be >= 2 (one prediction needs two tokens), got {self.length}")
        snaps = self.snapshots
        if not isinstance(snaps, tuple) or not all(_is_int(k) for k in snaps) or list(snaps) != sorted(set(snaps)):
            raise ValueError(f"snapshots must be a tuple of increasing ints, got {snaps!r}")


@dataclass(frozen=True)
class PasskeyTask:
    """Retrieval training (notebook 07): a ``fraction`` of the rows carry a passkey (:func:`data.passkey_batch`).

    A model pre-trained on text has never seen QUERY or a key symbol, and with tied embeddings every never-seen byte
    gets the same push-down gradient: the 17 rows end nearly parallel (notebook 07 prints their mean cosine,
    :func:`rope_lib.companion.evaluate.passkey_rows_cosine`), and no attention head can tell
    one key from another. ``reinit_norm``: when fine-tuning, re-draw those rows as random vectors of this norm
    (seeded by the training seed). ``answer_weight``: the loss adds this times the cross-entropy of the answer bytes
    (one byte of 64 in a row, otherwise drowned by the text). ``curriculum``: (until step, largest key distance)
    pairs, increasing in both; from the last step on, every distance a row can hold.
    """

    fraction: float
    reinit_norm: float = 0.0
    answer_weight: float = 0.0
    curriculum: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        frac = self.fraction
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
            raise ValueError(f"fraction must be a number in (0, 1], got {frac!r}")
        for name in ("reinit_norm", "answer_weight"):
            _checks.finite_number(name, getattr(self, name), at_least=0.0)
        cur = self.curriculum
        pairs = isinstance(cur, tuple) and all(
            isinstance(c, tuple) and len(c) == 2 and all(map(_is_int, c)) for c in cur
        )
        if (
            not pairs
            or any(c[0] < 1 or c[1] < 1 for c in cur)
            or any(a[0] >= b[0] or a[1] >= b[1] for a, b in zip(cur, cur[1:]))
        ):
            raise ValueError(
                "curriculum must be a tuple of (until step, largest distance) int pairs, both >= 1 and "
                f"increasing, got {cur!r}"
            )

    def max_distance(self, step: int) -> int | None:
        """The largest key distance the curriculum allows at ``step`` (None: any)."""
        for until, distance in self.curriculum:
            if step < until:
                return distance
        return None

    def key_fields(self) -> dict:
        """The task's entries of the cache key, in the flat layout keys have always had (unset ones absent)."""
        d = {"passkey_fraction": self.fraction, "passkey_format": PASSKEY_FORMAT}  # a new layout: new training data
        if self.reinit_norm:
            d["passkey_reinit_norm"] = self.reinit_norm
        if self.answer_weight:
            d["passkey_answer_weight"] = self.answer_weight
        if self.curriculum:
            d["passkey_curriculum"] = [list(c) for c in self.curriculum]
        return d


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (one comment per field), plus where training starts and what it trains on.

    The sequence length is the model's ``train_length`` (or ``finetune.length``).
    """

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
    finetune: FineTune | None = None  # None: random initial weights (seeded by ``seed``)
    task: PasskeyTask | None = None  # None: next-byte prediction on plain text
    # PoSE (arXiv 2309.10400): each step's window gets skipped position ids spanning this target length (one draw per
    # step, shared by the batch's rows: ours, the paper draws per sequence); None: ids 0..length-1
    pose_target: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "save_every"):
            _checks.positive_int(name, getattr(self, name))
        if not _is_int(self.warmup_steps) or not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be an int in [0, steps={self.steps}], got {self.warmup_steps!r}")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"lr must be > 0 and min_lr_ratio in [0, 1], got {self.lr!r}, {self.min_lr_ratio!r}")
        if not isinstance(self.scheme, PositionScheme):
            raise ValueError(f"scheme must be a PositionScheme, got {type(self.scheme).__name__}")
        if self.scheme.log_n or self.scheme.dynamic_blocks is not None:
            raise ValueError("the training scheme takes no log_n (use ModelConfig.train_log_n) and no dynamic_blocks")
        for name, kind in (("finetune", FineTune), ("task", PasskeyTask)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"{name} must be a {kind.__name__} or None, got {type(value).__name__}")
        snaps = self.snapshots
        if snaps and not 1 <= snaps[0] <= snaps[-1] < self.steps:
            raise ValueError(f"finetune.snapshots must lie in [1, steps={self.steps}), got {snaps!r}")
        if self.task is not None and self.task.reinit_norm and self.finetune is None:
            raise ValueError("task.reinit_norm re-draws rows of a trained model: it needs finetune")
        if self.pose_target is not None:
            _checks.int_at_least("pose_target", self.pose_target, 2)
            if self.scheme.attention != "sdpa" or self.task is not None:
                raise ValueError("pose_target trains plain text with attention='sdpa' (PoSE moves RoPE's ids only)")

    @property
    def snapshots(self) -> tuple[int, ...]:
        return () if self.finetune is None else self.finetune.snapshots

    def sequence_length(self, model_cfg: ModelConfig) -> int:
        """The sequence length of the training batches."""
        own = None if self.finetune is None else self.finetune.length
        return model_cfg.train_length if own is None else own

    def to_dict(self) -> dict:
        """The settings as the cache key reads them: flat, with unset fine-tuning and task entries absent, so every
        key written before those options existed is unchanged (tests/data/checkpoint_keys.json pins them)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("finetune", "task")}
        d["scheme"] = self.scheme.to_dict()
        if self.pose_target is None:  # absent unless set, as the other later options
            del d["pose_target"]
        if self.task is not None:
            d.update(self.task.key_fields())
        if self.finetune is not None:
            ft = self.finetune
            d.update({"init_from": ft.init_from} | ({"length": ft.length} if ft.length else {}))
            if ft.snapshots:
                d["snapshots"] = list(ft.snapshots)
        return d


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


def _to(model: RoPELM, device: torch.device | str) -> RoPELM:
    return model.to(pick_device(str(device)) if isinstance(device, str) else device).eval()


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[RoPELM, dict]:
    """Load a ``final.pt`` written by :func:`train`: (model in eval mode on ``device``, metadata)."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    model = RoPELM(ModelConfig(**blob["model_config"]))
    model.load_state_dict(blob["model"])
    return _to(model, device), blob["meta"]


def snapshot_path(model_cfg: ModelConfig, train_cfg: TrainConfig, corpus: Corpus, step: int) -> Path:
    """Where :func:`train` keeps the weights after ``step`` (one of ``train_cfg.finetune.snapshots``)."""
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
    return _to(model, device)


# ------------------------------------------------------------------------------------------- the steps of train()


class _Task:
    """What a step trains on: the batch at a step (a function of (seed, step) only) and its loss."""

    def __init__(self, train_cfg: TrainConfig, corpus: Corpus, length: int) -> None:
        self.cfg, self.stream, self.length = train_cfg, corpus.stream("train"), length
        self.passkey = train_cfg.task

    def batch(self, step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.cfg.seed, step])
        B, L, task = self.cfg.batch_size, self.length, self.passkey
        if task is None:
            return train_batch(self.stream, B, L, rng)
        return passkey_batch(self.stream, B, L, rng, task.fraction, max_distance=task.max_distance(step))

    def positions(self, step: int, length: int) -> torch.Tensor | None:
        """PoSE's position ids of step ``step``'s window (``length`` tokens), a function of (seed, step) only, so a
        resumed run draws the same ones; None without ``pose_target``."""
        if self.cfg.pose_target is None:
            return None
        gen = torch.Generator().manual_seed(int(np.random.default_rng([self.cfg.seed, step, 1]).integers(2**62)))
        return pose_position_ids(length, self.cfg.pose_target, generator=gen)

    def loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))
        if self.passkey is not None and self.passkey.answer_weight:
            asked = x[:, -2] == PASSKEY_QUERY  # rows that carry a passkey (QUERY never occurs in the text)
            if asked.any():
                answer = F.cross_entropy(logits[asked, -1].float(), x[asked, -1])
                loss = loss + self.passkey.answer_weight * answer
        return loss


def _initial_weights(train_cfg: TrainConfig, model_cfg: ModelConfig) -> dict | None:
    """The state dict fine-tuning starts from (``finetune.init_from``), checked to be the same architecture; with
    ``task.reinit_norm`` the embedding rows of QUERY and the key symbols are re-drawn (see :class:`PasskeyTask`)."""
    if train_cfg.finetune is None:
        return None
    key = train_cfg.finetune.init_from
    parent = _checkpoint_folder(key) / "final.pt"
    if not parent.is_file():
        raise FileNotFoundError(f"init_from: no trained model {key[:20]} in the cache; train it first")
    blob = torch.load(parent, map_location="cpu", weights_only=False)
    if blob["model_config"] != model_cfg.to_dict():
        raise ValueError(f"init_from: the checkpoint's model config {blob['model_config']} differs from model_cfg")
    state, norm = blob["model"], (0.0 if train_cfg.task is None else train_cfg.task.reinit_norm)
    if norm:
        rows = torch.tensor([PASSKEY_QUERY, *PASSKEY_SYMBOLS])
        weight = state["embed.weight"].clone()
        fresh = torch.randn(len(rows), weight.shape[1], generator=torch.Generator().manual_seed(train_cfg.seed))
        weight[rows] = (fresh * (norm / fresh.norm(dim=1, keepdim=True))).to(weight.dtype)
        state = {**state, "embed.weight": weight}
    return state


@dataclass
class _Progress:
    """Where a run stands: the next step, wall time of earlier sessions, the loss curve, the step it resumed from."""

    step: int = 0
    elapsed: float = 0.0
    curve: list = field(default_factory=list)
    resumed_from: int | None = None
    running: float | None = None  # the smoothed loss the curve records

    def record(self, done: int, loss: float, steps: int, bar) -> None:
        """Step ``done`` ended with ``loss``: smooth it; every 1% of ``steps`` (and at the end) add it to the curve."""
        self.step = done
        self.running = loss if self.running is None else 0.9 * self.running + 0.1 * loss
        if done % max(1, steps // 100) == 0 or done == steps:
            self.curve.append((done, round(self.running, 4)))
            bar.set_postfix(loss=f"{self.running:.3f}")
        bar.update(1)


def _start_or_resume(model_cfg, train_cfg, folder: Path | None, dev) -> tuple[RoPELM, torch.optim.Optimizer, _Progress]:
    """Fresh weights (or a fine-tuning start), then the newest resume point in ``folder`` if there is one."""
    torch.manual_seed(train_cfg.seed)
    model = RoPELM(model_cfg)
    init = _initial_weights(train_cfg, model_cfg)
    if init is not None:
        model.load_state_dict(init)
    model = model.to(dev)
    opt = _optimizer(model, train_cfg)
    points = sorted(folder.glob("step_*.pt")) if folder is not None else []
    if not points:
        return model, opt, _Progress()
    state = torch.load(points[-1], map_location=dev, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return model, opt, _Progress(state["step"], state["elapsed"], state["curve"], resumed_from=state["step"])


class _Forward:
    """The model's forward, compiled on CUDA when asked; a compile that fails on the first call falls back to eager.

    Evaluation always runs eagerly: every test length and scheme would trigger a recompilation.
    """

    def __init__(self, model: RoPELM, train_cfg: TrainConfig, dev: torch.device) -> None:
        self.model, self.scheme = model, train_cfg.scheme
        self.compiled = torch.compile(model) if (train_cfg.compile and dev.type == "cuda") else None
        self.tried = False

    def __call__(self, inputs: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        if positions is not None:  # PoSE: new ids every step, which a compiled graph would recompile for
            return self.model(inputs, self.scheme, positions)
        if self.compiled is None:
            return self.model(inputs, self.scheme)
        first, self.tried = not self.tried, True
        try:
            return self.compiled(inputs, self.scheme)
        except Exception as err:  # noqa: BLE001 - only a failing first compiled call is recovered
            if not first:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); training without it", stacklevel=3)
            self.compiled = None
            return self.model(inputs, self.scheme)


def _update(model: RoPELM, opt: torch.optim.Optimizer, loss: torch.Tensor, train_cfg: TrainConfig, step: int) -> float:
    """One optimizer step at the schedule's learning rate, gradients clipped; returns the loss as a number."""
    for group in opt.param_groups:
        group["lr"] = lr_at(step, train_cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
    opt.step()
    return float(loss.detach())


def _save_resume_point(folder: Path, model, opt, done: int, elapsed: float, curve: list) -> None:
    """Model and optimizer after ``done`` steps; only the newest resume point is kept."""
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": done,
        "elapsed": elapsed,
        "curve": curve,
    }
    _atomic_save(state, folder / f"step_{done:07d}.pt")
    for old in folder.glob("step_*.pt"):
        if old.name != f"step_{done:07d}.pt":
            old.unlink(missing_ok=True)


def _write_config(folder: Path, model_cfg: ModelConfig, train_cfg: TrainConfig, corpus: Corpus) -> None:
    """A readable record of what the folder holds (the key alone says nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "data": corpus.summary()}
    (folder / "config.json").write_text(json.dumps(record, indent=1))


def _finish(model, model_cfg, train_cfg, corpus, run: _Progress, first: int, session: float, key, dev, folder) -> dict:
    """Metadata of the run; a complete run is validated and, with a cache folder, saved as ``final.pt``."""
    length = train_cfg.sequence_length(model_cfg)
    tokens, done = train_cfg.batch_size * length, run.step
    meta = {
        "key": key,
        "cache_hit": False,
        "complete": done == train_cfg.steps,
        "steps": done,
        "tokens_seen": done * tokens,
        "wall_time_s": round(run.elapsed + session, 3),
        "tokens_per_s": round((done - first) * tokens / max(session, 1e-9), 1),
        "loss_curve": run.curve,
        "n_parameters": model.num_parameters(),
        "device": str(dev),
        "resumed_from": run.resumed_from,
    }
    if not meta["complete"]:
        return meta
    # pre-training validates at L with plain RoPE (as it always has); fine-tuning at its length and scheme
    scheme = train_cfg.scheme if train_cfg.finetune is not None else None
    meta.update(validation_metrics(model, corpus, seed=train_cfg.seed, amp=train_cfg.amp, length=length, scheme=scheme))
    if folder is not None:
        _atomic_save(
            {"model": model.state_dict(), "model_config": model_cfg.to_dict(), "meta": meta}, folder / "final.pt"
        )
        for old in folder.glob("step_*.pt"):
            old.unlink(missing_ok=True)
    return meta


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
    folder = _checkpoint_folder(key) if use_cache else None
    if folder is not None and (folder / "final.pt").is_file():
        model, meta = load_checkpoint(folder / "final.pt", dev)
        return model, {**meta, "cache_hit": True}

    with _torch_settings(train_cfg.num_threads, deterministic=dev.type == "cpu"):
        model, opt, run = _start_or_resume(model_cfg, train_cfg, folder, dev)
        if folder is not None:
            _write_config(folder, model_cfg, train_cfg, corpus)
        task, forward = _Task(train_cfg, corpus, train_cfg.sequence_length(model_cfg)), _Forward(model, train_cfg, dev)
        first = run.step
        stop = train_cfg.steps if max_steps_this_call is None else min(train_cfg.steps, first + max_steps_this_call)
        # progress=False forces the bar off; otherwise tqdm decides (TQDM_DISABLE=1 in the environment turns it off).
        bar = tqdm(
            total=train_cfg.steps, initial=first, desc="train", leave=False, **({} if progress else {"disable": True})
        )
        model.train()
        t0 = time.perf_counter()
        for step in range(first, stop):
            x = task.batch(step).to(dev, non_blocking=True)
            with autocast(dev, train_cfg.amp):
                logits = forward(x[:, :-1], task.positions(step, x.shape[1] - 1))
            run.record(step + 1, _update(model, opt, task.loss(logits, x), train_cfg, step), train_cfg.steps, bar)
            if folder is not None and run.step in train_cfg.snapshots:
                _checks.atomic_write(
                    folder / f"snapshot_{run.step:07d}.pt", lambda t: torch.save(model.state_dict(), t)
                )
            if (
                folder is not None
                and (run.step % train_cfg.save_every == 0 or run.step == stop)
                and run.step < train_cfg.steps
            ):
                _save_resume_point(folder, model, opt, run.step, run.elapsed + time.perf_counter() - t0, run.curve)
        bar.close()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        model.eval()
        meta = _finish(model, model_cfg, train_cfg, corpus, run, first, time.perf_counter() - t0, key, dev, folder)
    return model, meta


def with_steps(cfg: TrainConfig, steps: int) -> TrainConfig:
    """A copy of ``cfg`` with ``steps`` (warmup clipped to it): convenient for tiny test runs."""
    return replace(cfg, steps=steps, warmup_steps=min(cfg.warmup_steps, steps))
