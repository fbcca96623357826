"""Passkey retrieval: the sample layout (rope_lib.companion.data), the training mixture, and the scorer
(rope_lib.companion.evaluate)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from rope_lib.companion import data
from rope_lib.companion.evaluate import passkey_accuracy, passkey_hits
from rope_lib.companion.model import ModelConfig
from rope_lib.companion.train import FineTune, PasskeyTask, TrainConfig, config_key, train

MODEL = ModelConfig(d_model=32, n_layers=1, n_heads=2, head_dim=16, d_ff=48, train_length=16)


def test_insert_passkey_layout():
    window = np.arange(100, 120)  # 20 distinct "text" bytes, so every byte's origin can be traced
    for distance in (1, 7, 18):
        out = data.insert_passkey(window, 3, distance)
        T, q, p = 20, 18, 18 - distance
        symbol = data.PASSKEY_SYMBOLS[3]
        assert out.shape == window.shape and out.dtype == window.dtype
        assert out[p] == symbol and out[q] == data.PASSKEY_QUERY and out[q + 1] == symbol
        filler = np.delete(out, [p, q, q + 1])
        np.testing.assert_array_equal(filler, window[: T - 3])  # the text keeps its order, only its tail is cut
        assert list(out).count(symbol) == 2


def test_insert_passkey_batch_and_errors():
    windows = np.tile(np.arange(50, 66), (3, 1))
    out = data.insert_passkey(windows, [0, 5, 15], [1, 2, 14])
    for row, (k, d) in zip(out, [(0, 1), (5, 2), (15, 14)]):
        np.testing.assert_array_equal(row, data.insert_passkey(windows[0], k, d))
    with pytest.raises(ValueError, match="distance"):
        data.insert_passkey(windows[0], 0, 15)
    with pytest.raises(ValueError, match="distance"):
        data.insert_passkey(windows[0], 0, 0)
    with pytest.raises(ValueError, match="key"):
        data.insert_passkey(windows[0], 16, 3)
    with pytest.raises(ValueError, match="length"):
        data.passkey_distances(2)


def test_passkey_bytes_never_occur_in_the_corpus(corpus):
    # the premise of the task: the key and the question are findable only where they were inserted
    for split in data.SPLITS:
        counts = np.bincount(corpus.stream(split), minlength=256)
        assert counts[[data.PASSKEY_QUERY, *data.PASSKEY_SYMBOLS]].sum() == 0


def test_make_passkey_set_is_paired_and_deterministic(corpus):
    s, files = data.make_passkey_set(corpus, 48, [1, 20, 46], 5, seed=3)
    again, files2 = data.make_passkey_set(corpus, 48, [1, 20, 46], 5, seed=3)
    assert s.shape == (3, 5, 48) and s.dtype == torch.int64 and torch.equal(s, again) and files == files2
    assert len(files) == 5
    keys = s[:, :, -1]
    assert torch.equal(keys[0], keys[1]) and torch.equal(keys[0], keys[2])  # same key at every distance
    for i, d in enumerate([1, 20, 46]):
        assert torch.equal(s[i, :, 46 - d], keys[0]) and bool((s[i, :, -2] == data.PASSKEY_QUERY).all())
    other, _ = data.make_passkey_set(corpus, 48, [1], 5, seed=4)
    assert not torch.equal(other[0], s[0])
    with pytest.raises(ValueError, match="distances"):
        data.make_passkey_set(corpus, 48, [47], 5)
    with pytest.raises(ValueError, match="split"):
        data.make_passkey_set(corpus, 48, [1], 5, split="dev")


def test_passkey_batch_mixture(corpus):
    stream = corpus.stream("train")
    plain = data.train_batch(stream, 64, 32, np.random.default_rng(7))
    none = data.passkey_batch(stream, 64, 32, np.random.default_rng(7), 0.0)
    assert torch.equal(plain, none)  # fraction 0 is plain text, byte for byte
    mixed = data.passkey_batch(stream, 400, 32, np.random.default_rng(8), 0.5)
    asked = mixed[:, -2] == data.PASSKEY_QUERY
    assert mixed.shape == (400, 33) and 0.4 < float(asked.float().mean()) < 0.6
    keyed = mixed[asked]
    assert all(int(row[-1]) in data.PASSKEY_SYMBOLS and int((row == row[-1]).sum()) == 2 for row in keyed)
    distances = [int(31 - np.flatnonzero(row.numpy() == int(row[-1]))[0]) for row in keyed]
    assert min(distances) >= 1 and max(distances) <= 31 and len(set(distances)) > 10  # spread over the range


class _Oracle(nn.Module):
    """Logits that name the first key symbol in the input (or one fixed symbol): a scorer test with known answers."""

    def __init__(self, fixed: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.fixed = fixed

    def forward(self, idx, scheme=None):
        logits = torch.zeros(*idx.shape, 256)
        for b in range(idx.shape[0]):
            found = [int(t) for t in idx[b] if int(t) in data.PASSKEY_SYMBOLS]
            logits[b, -1, self.fixed if self.fixed is not None else found[0]] = 1.0
        return logits


def test_passkey_hits_scores_the_answer_only(corpus):
    s, _ = data.make_passkey_set(corpus, 40, [3, 30], 16, seed=1)
    assert passkey_hits(_Oracle(), s).shape == (2, 16)
    assert passkey_accuracy(_Oracle(), s) == 1.0
    fixed = data.PASSKEY_SYMBOLS[int(s[0, 0, -1]) - data.PASSKEY_SYMBOLS[0]]
    expected = (s[..., -1] == fixed).double().numpy()
    np.testing.assert_array_equal(passkey_hits(_Oracle(fixed), s, batch_tokens=40), expected)  # one per forward
    with pytest.raises(ValueError, match="PASSKEY_QUERY"):
        passkey_hits(_Oracle(), data.make_test_set(corpus, "non_repeated", 40, 2))


def test_passkey_training_has_its_own_cache_key(tmp_path, monkeypatch, corpus):
    monkeypatch.setenv("ROPE_CACHE_DIR", str(tmp_path))
    model = ModelConfig(d_model=32, n_layers=1, n_heads=2, head_dim=16, d_ff=48, train_length=16)
    text = TrainConfig(steps=2, batch_size=4, warmup_steps=0, num_threads=1)
    keyed = replace(text, task=PasskeyTask(fraction=0.5))
    assert "passkey_fraction" not in text.to_dict()  # text-only models keep the keys they always had
    assert config_key(model, text, "d") != config_key(model, keyed, "d")
    _, meta = train(model, keyed, corpus=corpus, device="cpu", progress=False)
    assert meta["complete"] and np.isfinite(meta["val_loss"])
    for bad in (0.0, -0.1, 1.5, "half", True):
        with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
            PasskeyTask(fraction=bad)


def test_passkey_batch_curriculum_caps_the_distance(corpus):
    stream = corpus.stream("train")
    capped = data.passkey_batch(stream, 200, 32, np.random.default_rng(3), 1.0, max_distance=4)
    distances = [int(31 - np.flatnonzero(row.numpy() == int(row[-1]))[0]) for row in capped]
    assert set(distances) == {1, 2, 3, 4}  # every allowed distance drawn, none beyond
    free = data.passkey_batch(stream, 200, 32, np.random.default_rng(3), 1.0, max_distance=100)
    assert torch.equal(free, data.passkey_batch(stream, 200, 32, np.random.default_rng(3), 1.0))  # cap above range
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="max_distance"):
            data.passkey_batch(stream, 4, 32, np.random.default_rng(0), 1.0, max_distance=bad)


RETRIEVAL = PasskeyTask(fraction=1.0, reinit_norm=0.8, answer_weight=10.0, curriculum=((2, 4), (4, 8)))


def test_retrieval_fields_enter_the_key_only_when_set():
    text = TrainConfig(steps=6, warmup_steps=0)
    keyed = replace(text, task=PasskeyTask(fraction=1.0))
    assert keyed.to_dict()["passkey_fraction"] == 1.0 and "passkey_format" in keyed.to_dict()
    assert not {"passkey_reinit_norm", "passkey_answer_weight", "passkey_curriculum"} & set(keyed.to_dict())
    full = replace(keyed, finetune=FineTune("a" * 64), task=RETRIEVAL)
    assert full.to_dict()["passkey_curriculum"] == [[2, 4], [4, 8]]
    weighted = replace(keyed, task=PasskeyTask(fraction=1.0, answer_weight=1.0))
    keys = {config_key(MODEL, c, "d") for c in (keyed, weighted, full)}
    assert len(keys) == 3
    assert [RETRIEVAL.max_distance(t) for t in (0, 1, 2, 3, 4, 5)] == [4, 4, 8, 8, None, None]


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(answer_weight=-1.0), "answer_weight must be a finite number >= 0"),
        (dict(reinit_norm=float("inf")), "reinit_norm must be a finite"),
        (dict(answer_weight=True), "answer_weight"),
        (dict(curriculum=((4, 8), (2, 16))), "curriculum must be a tuple"),
        (dict(curriculum=((2, 8), (4, 8))), "increasing"),
        (dict(curriculum=((0, 8),)), "curriculum"),
        (dict(curriculum=[(2, 8)]), "curriculum"),
        (dict(curriculum=((2, 8.0),)), "curriculum"),
    ],
)
def test_bad_retrieval_fields_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        PasskeyTask(**{"fraction": 1.0, **kw})


def test_reinit_needs_a_finetune_start_and_task_must_be_a_passkey_task():
    with pytest.raises(ValueError, match="task.reinit_norm re-draws rows of a trained model: it needs finetune"):
        TrainConfig(task=PasskeyTask(fraction=1.0, reinit_norm=1.0))
    with pytest.raises(ValueError, match="task must be a PasskeyTask or None"):
        TrainConfig(task={"fraction": 1.0})


def test_reinit_redraws_only_the_passkey_rows_and_the_answer_weight_counts(tmp_path, monkeypatch, corpus):
    monkeypatch.setenv("ROPE_CACHE_DIR", str(tmp_path))
    text = TrainConfig(steps=3, batch_size=4, warmup_steps=0, num_threads=1)
    parent, meta = train(MODEL, text, corpus=corpus, device="cpu", progress=False)
    before = parent.embed.weight.detach().clone()
    start = FineTune(init_from=meta["key"])
    kw = dict(steps=1, lr=1e-9, finetune=start)  # lr ~0: the weights as initialised
    reinit = PasskeyTask(fraction=1.0, reinit_norm=0.8)
    child, _ = train(MODEL, replace(text, **kw, task=reinit), corpus=corpus, device="cpu", progress=False)
    after = child.embed.weight.detach()
    rows = [data.PASSKEY_QUERY, *data.PASSKEY_SYMBOLS]
    others = [i for i in range(after.shape[0]) if i not in rows]
    torch.testing.assert_close(after[others], before[others], rtol=0, atol=1e-6)
    torch.testing.assert_close(after[rows].norm(dim=1), torch.full((len(rows),), 0.8), rtol=0, atol=1e-4)
    cos = torch.nn.functional.cosine_similarity(after[rows][:, None], after[rows][None], dim=-1)
    assert cos[~torch.eye(len(rows), dtype=torch.bool)].abs().max() < 0.9  # no longer one shared direction
    # the answer weight changes the update: same data and start, different weights after one step
    kw = dict(steps=1, lr=1e-2, finetune=start)
    plain_task, weighted_task = PasskeyTask(fraction=1.0), PasskeyTask(fraction=1.0, answer_weight=10.0)
    plain, _ = train(
        MODEL, replace(text, **kw, task=plain_task), corpus=corpus, device="cpu", progress=False, use_cache=False
    )
    weighted, _ = train(
        MODEL,
        replace(text, **kw, task=weighted_task),
        corpus=corpus,
        device="cpu",
        progress=False,
        use_cache=False,
    )
    assert not torch.equal(plain.embed.weight, weighted.embed.weight)


def test_passkey_rows_cosine_reads_the_query_and_key_rows_only():
    from rope_lib.companion.evaluate import passkey_rows_cosine
    from rope_lib.companion.model import RoPELM

    model = RoPELM(ModelConfig(vocab_size=256, d_model=32, n_layers=1, n_heads=2, head_dim=16, d_ff=32))
    rows = [data.PASSKEY_QUERY, *data.PASSKEY_SYMBOLS]
    with torch.no_grad():
        model.embed.weight[rows] = torch.randn(32)  # one vector, 17 times: parallel
        model.embed.weight[1] = -model.embed.weight[1]  # another byte: not read
    assert passkey_rows_cosine(model) == pytest.approx(1.0, abs=1e-12)
    with torch.no_grad():
        model.embed.weight[rows] = torch.eye(32)[: len(rows)]  # orthogonal
        model.embed.weight[rows[0]] = -model.embed.weight[rows[1]]  # one pair opposite: cos -1
    assert passkey_rows_cosine(model) == pytest.approx(-1 / (17 * 16 / 2), abs=1e-12)
