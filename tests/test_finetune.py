"""Fine-tuning in rope_lib.companion.train (length, init_from, snapshots) and the finetune experiment's configs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from rope_lib.companion.data import load_corpus
from rope_lib.companion.model import ModelConfig, PositionScheme
from rope_lib.companion.train import FineTune, TrainConfig, config_key, load_snapshot, snapshot_path, train

MODEL = ModelConfig(d_model=32, n_layers=1, n_heads=2, head_dim=16, d_ff=48, train_length=16)
PRE = TrainConfig(steps=4, batch_size=4, lr=3e-3, warmup_steps=1, save_every=4, num_threads=1)
PI = PositionScheme({"rope_type": "linear", "factor": 2.0})


def _weights(model) -> list[torch.Tensor]:
    return [t.clone() for t in model.state_dict().values()]


def _same(a, b) -> bool:
    # bitwise on purpose: a resumed run replays the same ops on the same shapes (one thread), so it must match
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _finetune_cfg(parent_key: str, snapshots: tuple[int, ...] = (), **kw) -> TrainConfig:
    start = FineTune(init_from=parent_key, length=32, snapshots=snapshots)
    base = dict(steps=6, warmup_steps=1, min_lr_ratio=1.0, lr=1e-3, finetune=start, scheme=PI)
    return replace(PRE, **{**base, **kw})


def test_pretraining_keys_unchanged_by_the_new_fields():
    d = PRE.to_dict()
    assert not {"length", "init_from", "snapshots"} & set(d)  # absent when unset: every cached key stays valid
    ft = replace(PRE, finetune=FineTune("a" * 64, length=32, snapshots=(1, 2)))
    assert (
        ft.to_dict()["snapshots"] == [1, 2] and ft.to_dict()["length"] == 32 and ft.to_dict()["init_from"] == "a" * 64
    )
    longer = replace(PRE, finetune=FineTune("a" * 64, length=32))
    other = replace(PRE, finetune=FineTune("b" * 64))
    keys = {config_key(MODEL, c, "x") for c in (PRE, longer, other, ft)}
    assert len(keys) == 4


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(length=1), "length must be >= 2"),
        (dict(length=0), "length"),
        (dict(length=2.5), "length"),
        (dict(init_from="abc"), "init_from must be a checkpoint key"),
        (dict(init_from=7), "init_from must be a checkpoint key"),
        (dict(snapshots=(4,)), r"finetune.snapshots must lie in \[1, steps=4\)"),
        (dict(snapshots=(2, 1)), "snapshots must be a tuple of increasing ints"),
        (dict(snapshots=(0,)), "snapshots"),
        (dict(snapshots=[1]), "snapshots"),
        (dict(snapshots=(True,)), "snapshots"),
    ],
)
def test_bad_finetune_fields_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        replace(PRE, finetune=FineTune(**{"init_from": "a" * 64, **kw}))
    with pytest.raises(ValueError, match="finetune must be a FineTune or None"):
        replace(PRE, finetune={"init_from": "a" * 64})


def test_finetune_starts_from_the_parent_and_trains_at_its_length(cache, corpus):
    parent, meta = train(MODEL, PRE, corpus=corpus, device="cpu", progress=False)
    start = _weights(parent)
    cfg = _finetune_cfg(meta["key"], steps=3, snapshots=(1,))
    child, cmeta = train(MODEL, cfg, corpus=corpus, device="cpu", progress=False)
    assert cmeta["complete"] and cmeta["tokens_seen"] == 3 * 4 * 32  # batches of `length`, not train_length
    assert not _same(start, _weights(child)) and _same(start, _weights(parent))  # the parent is untouched
    one = load_snapshot(MODEL, cfg, corpus, 1)
    # the snapshot after 1 step is the parent plus one AdamW step: every weight within a few lr of the parent's
    drift = max((a - b).abs().max().item() for a, b in zip(start, _weights(one)))
    assert 0 < drift <= 3 * cfg.lr
    # a model from scratch (same seed, same data: batches of 32) is not what fine-tuning continues from
    scratch_model = replace(MODEL, train_length=32)
    scratch, _ = train(scratch_model, replace(cfg, finetune=None), corpus=corpus, device="cpu", progress=False)
    assert not _same(_weights(scratch), _weights(child))
    # validation at the fine-tuning length, under the fine-tuning scheme
    assert cmeta["val_loss"] != meta["val_loss"]


def test_snapshots_are_shorter_runs_and_resume_is_exact(cache, corpus):
    _, meta = train(MODEL, PRE, corpus=corpus, device="cpu", progress=False)
    cfg = _finetune_cfg(meta["key"], snapshots=(2, 4))
    ref, _ = train(MODEL, cfg, corpus=corpus, device="cpu", progress=False, use_cache=False)
    # interrupted after 3 steps (snapshot 2 already written), then resumed to the end
    part, pmeta = train(MODEL, cfg, corpus=corpus, device="cpu", progress=False, max_steps_this_call=3)
    assert not pmeta["complete"] and snapshot_path(MODEL, cfg, corpus, 2).is_file()
    full, fmeta = train(MODEL, cfg, corpus=corpus, device="cpu", progress=False)
    assert fmeta["resumed_from"] == 3 and _same(_weights(ref), _weights(full))
    # with a constant lr after warm-up, the weights after 2 steps of this run are those of a 2-step run
    short, _ = train(
        MODEL,
        replace(cfg, steps=2, finetune=replace(cfg.finetune, snapshots=())),
        corpus=corpus,
        device="cpu",
        progress=False,
    )
    assert _same(_weights(load_snapshot(MODEL, cfg, corpus, 2)), _weights(short))
    assert not _same(_weights(load_snapshot(MODEL, cfg, corpus, 4)), _weights(short))
    folder = snapshot_path(MODEL, cfg, corpus, 2).parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "final.pt",
        "snapshot_0000002.pt",
        "snapshot_0000004.pt",
    ]


def test_finetune_errors(cache, corpus):
    missing = _finetune_cfg("f" * 64)
    with pytest.raises(FileNotFoundError, match="init_from: no trained model"):
        train(MODEL, missing, corpus=corpus, device="cpu", progress=False)
    _, meta = train(MODEL, PRE, corpus=corpus, device="cpu", progress=False)
    other = replace(MODEL, d_ff=64)
    with pytest.raises(ValueError, match="init_from: the checkpoint's model config"):
        train(other, _finetune_cfg(meta["key"]), corpus=corpus, device="cpu", progress=False)
    cfg = _finetune_cfg(meta["key"], snapshots=(2,))
    with pytest.raises(ValueError, match=r"step must be one of train_cfg.snapshots \(2,\)"):
        load_snapshot(MODEL, cfg, corpus, 3)
    with pytest.raises(FileNotFoundError, match="no snapshot at step 2"):
        load_snapshot(MODEL, cfg, corpus, 2)


def test_experiment_configs_are_fair():
    from rope_lib.companion.experiments import finetune as ft
    from rope_lib.companion.experiments.harness import retrieval_model

    configs = ft.finetune_configs("smoke", 0)
    text = [f"ft-{m}" for m in ft.METHODS]
    from_retrieval = [f"rft-{m}" for m in ft.RETRIEVAL_METHODS]
    assert list(configs) == [*text, "retrieval", *from_retrieval]
    trains = [configs[k][1] for k in text]
    assert all(m == configs["ft-Direct"][0] for m, _ in configs.values())  # one architecture: notebook 04's
    # the same data, steps, lr, schedule and seed for every method; only the position scheme differs
    same = [{k: v for k, v in t.to_dict().items() if k != "scheme"} for t in trains]
    assert all(s == same[0] for s in same) and len({t.scheme.key() for t in trains}) == len(trains)
    t = trains[0]
    model = next(iter(configs.values()))[0]
    assert t.sequence_length(model) == ft.EXTEND * model.train_length and t.min_lr_ratio == 1.0
    assert configs["ft-Direct"][1].scheme.rope_type == "default" and configs["ft-PI"][1].scheme.rope_type == "linear"
    assert configs["ft-YaRN"][1].scheme.rope_parameters["factor"] == ft.EXTEND
    assert configs[f"ft-{ft.YARN_WIDE}"][1].scheme.rope_parameters["factor"] == 2 * ft.EXTEND
    # the retrieval path: notebook 07's retrieval model at notebook 04's base, then the same text fine-tuning (no
    # passkey task, no snapshots) as the text model of the same method, from that model instead
    assert configs["retrieval"] == retrieval_model("smoke", 0, model.rope_base)
    retrieval_key = config_key(*configs["retrieval"], load_corpus().digest)
    for m in ft.RETRIEVAL_METHODS:
        r, f = configs[f"rft-{m}"][1], configs[f"ft-{m}"][1]
        assert r.finetune.init_from == retrieval_key and r.task is None and r.snapshots == ()
        assert replace(r, finetune=replace(r.finetune, snapshots=f.finetune.snapshots, init_from="x" * 20)) == replace(
            f, finetune=replace(f.finetune, init_from="x" * 20)
        )


@pytest.mark.parametrize(
    "rates, expected",
    [([0.5, 0.2, 0.1, 1.0], 20), ([0.19, 1.0, 1.0, 1.0], 0), ([1.0, 1.0, 1.0, 0.2], 40), ([0.3, 0.0, 0.9, 0.9], 10)],
)
def test_k_max_is_the_largest_distance_with_every_shorter_one_retrieved(rates, expected):
    from rope_lib.companion.experiments.finetune import k_max

    assert k_max(rates, [10, 20, 30, 40]) == expected
