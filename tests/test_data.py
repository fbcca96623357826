"""rope_lib.companion.data: the pinned sympy corpus, its split by file, the checksum, own folders, Su's test sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rope_lib.companion import data


def test_split_is_by_file_disjoint_and_deterministic(corpus):
    names = {s: {rel for rel, _ in corpus.files[s]} for s in data.SPLITS}
    assert all(names.values())
    assert not names["train"] & names["validation"]
    assert not names["train"] & names["test"]
    assert not names["validation"] & names["test"]
    for split, rels in names.items():
        assert all(data.split_of(rel) == split for rel in rels)  # a file's split depends on its path only
    again = data._load(None, None, True)  # bypass the per-process memo: a fresh read gives the same corpus
    assert again.digest == corpus.digest == data.SYMPY_SHA256
    assert {s: [r for r, _ in again.files[s]] for s in data.SPLITS} == {s: sorted(v) for s, v in names.items()}
    n_files = sum(len(v) for v in names.values())
    assert 0.85 < len(names["train"]) / n_files < 0.95


def test_checksum_mismatch_names_the_version_and_the_way_out(monkeypatch):
    monkeypatch.setattr(data, "SYMPY_SHA256", "0" * 64)
    data._default_corpus.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"sympy==1\.14\.0.*verify=False"):
            data.load_corpus()
        assert data.load_corpus(verify=False).digest != "0" * 64
    finally:
        data._default_corpus.cache_clear()


def test_own_folder(tmp_path):
    for i in range(40):
        sub = tmp_path / ("pkg" if i % 2 else "docs")
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    (tmp_path / ".hidden.txt").write_text("never read")
    (tmp_path / "notes.md").write_text("markdown " * 50)
    c = data.load_corpus(tmp_path)
    rels = [r for s in data.SPLITS for r, _ in c.files[s]]
    assert len(rels) == 41 and ".hidden.txt" not in rels and "docs/f0.txt" in rels
    assert c.name == tmp_path.name
    only_txt = data.load_corpus(tmp_path, suffixes=(".txt",))
    assert sum(len(v) for v in only_txt.files.values()) == 40
    stream = c.stream("train")
    assert stream.dtype == np.uint8 and (stream == data.DOC_SEPARATOR).sum() == len(c.files["train"])
    with pytest.raises(ValueError, match="root"):
        data.load_corpus(tmp_path / "missing")
    with pytest.raises(ValueError, match="no files"):
        data.load_corpus(tmp_path, suffixes=(".rst",))
    with pytest.raises(ValueError, match="suffixes"):
        data.load_corpus(tmp_path, suffixes=".txt")


def test_test_sets(corpus):
    L, n = 32, 5
    nr = data.make_test_set(corpus, "non_repeated", 4 * L, n, seed=3, max_length=16 * L)
    rep = data.make_test_set(corpus, "repeated", 4 * L, n, seed=3, max_length=16 * L)
    assert nr.shape == rep.shape == (n, 4 * L) and nr.dtype == rep.dtype == torch.int64
    assert torch.equal(rep[:, : 2 * L], rep[:, 2 * L :])  # the second half repeats the first
    assert torch.equal(rep[:, 2 * L :], nr[:, 2 * L :])  # ... and is the end of the natural window
    longest = data.make_test_set(corpus, "non_repeated", 16 * L, n, seed=3)
    assert torch.equal(longest[:, -4 * L :], nr)  # nested: shorter lengths are suffixes of the same windows
    assert torch.equal(nr, data.make_test_set(corpus, "non_repeated", 4 * L, n, seed=3, max_length=16 * L))
    assert not torch.equal(nr, data.make_test_set(corpus, "non_repeated", 4 * L, n, seed=4, max_length=16 * L))
    # natural text: each sample is a contiguous piece of one test file
    test_bytes = [bytes(arr) for _, arr in corpus.files["test"]]
    for row in longest:
        piece = bytes(row.tolist())
        assert any(piece in b for b in test_bytes)
    with pytest.raises(ValueError, match="even"):
        data.make_test_set(corpus, "repeated", 33, 2)
    with pytest.raises(ValueError, match="kind"):
        data.make_test_set(corpus, "shuffled", 32, 2)
    with pytest.raises(ValueError, match="length"):
        data.make_test_set(corpus, "non_repeated", 64, 2, max_length=32)


def test_too_few_windows_warns_and_returns_all(tmp_path):
    for i in range(30):
        (tmp_path / f"f{i}.txt").write_bytes(bytes([65 + i % 26]) * 100)
    c = data.load_corpus(tmp_path)
    available = sum(arr.size // 40 for _, arr in c.files["train"])
    with pytest.warns(UserWarning, match="only"):
        x = data.make_test_set(c, "non_repeated", 40, 10_000, split="train")
    assert x.shape == (available, 40)
    with pytest.raises(ValueError, match="no train file"):
        data.make_test_set(c, "non_repeated", 200, 1, split="train")


def test_train_batch(corpus):
    stream = corpus.stream("validation")
    a = data.train_batch(stream, 4, 16, np.random.default_rng([0, 7]))
    b = data.train_batch(stream, 4, 16, np.random.default_rng([0, 7]))
    assert a.shape == (4, 17) and a.dtype == torch.int64 and torch.equal(a, b)
    assert int(a.max()) < data.VOCAB_SIZE


def test_training_overlap_finds_verbatim_pieces_only():
    from rope_lib.companion.data import Corpus, training_overlap

    rng = np.random.default_rng(0)
    shared = rng.integers(1, 256, 8, dtype=np.uint8)
    train_file = np.concatenate([rng.integers(1, 256, 100, dtype=np.uint8), shared, rng.integers(1, 256, 50)])
    corpus = Corpus("toy", "0", {"train": (("a.py", train_file.astype(np.uint8)),), "validation": (), "test": ()})
    fresh = rng.integers(1, 256, 8, dtype=np.uint8)
    samples = np.stack([np.concatenate([shared, fresh, fresh, fresh]), np.concatenate([fresh, fresh, fresh, shared])])
    assert training_overlap(corpus, samples, chunk=8) == pytest.approx(2 / 8)  # 2 of the 8 aligned pieces
    assert training_overlap(corpus, samples[:, 1:9], chunk=8) == 0.0  # shifted: no aligned piece is in training
    with pytest.raises(ValueError, match="power of two"):
        training_overlap(corpus, samples, chunk=12)
