"""Byte-level corpus for the train-short-test-long experiments, and Su's two test sets.

The default corpus is the Python source of the installed sympy release (a pinned dependency, so every machine
with the pinned environment sees the same bytes; no download). Tokens are raw bytes (vocabulary 256), so there
is no tokenizer to version.

* Split: **by file**, from a hash of each file's relative path (``train`` / ``validation`` / ``test``), so no
  test text was ever seen in training, and the split of a file never changes when other files are added.
* Check: the assembled default corpus must match :data:`SYMPY_SHA256` (recorded for :data:`SYMPY_VERSION`);
  otherwise a ``ValueError`` says which version is expected and how to proceed (``verify=False``, or a folder
  of your own text files via ``root=``).
* Test sets (Su, kexue.fm/archives/9706): ``"non_repeated"`` - contiguous natural text of the test length;
  ``"repeated"`` - a sample of half the test length followed by itself (the second half repeats the first).
  Windows come from the test files at least that long, several non-overlapping windows per long file (drawn
  round-robin over files, so many files are represented); when fewer windows exist than asked for, all are used
  and a warning says so. With sympy 1.14.0 the test split (77 files) holds 1115 windows of 1024 bytes (64 files)
  and 115 of 8192 bytes (44 files), more than either profile needs.

Reading and hashing the ~26 MB of sympy sources takes well under a second, so nothing is cached on disk; the
default corpus is read once per process.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import _checks

SYMPY_VERSION = "1.14.0"
# sha256 of the assembled default corpus (see `_digest`): every *.py file under the sympy package, sorted by
# relative path. Recorded with sympy==1.14.0 as installed from its wheel.
SYMPY_SHA256 = "983524a04f09c75f3fea9dfb5bc9c94f1b2faf4f5f7afbd90d2ead7477ed1d93"

SPLITS: tuple[str, ...] = ("train", "validation", "test")
TEST_SETS: tuple[str, ...] = ("non_repeated", "repeated")
VOCAB_SIZE = 256
# Fractions of files per split, in hash order (train, validation, test).
SPLIT_FRACTIONS: tuple[float, float, float] = (0.90, 0.05, 0.05)
DOC_SEPARATOR = 0  # byte 0 (NUL, absent from source text) separates files in the training stream


@dataclass(frozen=True)
class Corpus:
    """Files of one corpus, split by file.

    Attributes:
        name: "sympy-<version>" for the default corpus, else the folder's name.
        digest: sha256 of the assembled corpus (all splits).
        files: split name -> tuple of (relative path, uint8 array of the file's bytes), sorted by path.
    """

    name: str
    digest: str
    files: dict[str, tuple[tuple[str, np.ndarray], ...]]

    def stream(self, split: str) -> np.ndarray:
        """All files of ``split`` concatenated (uint8, 1-D), each followed by :data:`DOC_SEPARATOR`."""
        _check_choice("split", split, SPLITS)
        parts = []
        for _, arr in self.files[split]:
            parts.extend((arr, np.array([DOC_SEPARATOR], dtype=np.uint8)))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)

    def n_bytes(self, split: str) -> int:
        _check_choice("split", split, SPLITS)
        return int(sum(arr.size for _, arr in self.files[split]))

    def summary(self) -> dict:
        """Counts per split (files, bytes) and the digest: machine-independent, fit for JSON."""
        return {
            "name": self.name,
            "sha256": self.digest,
            "splits": {s: {"files": len(self.files[s]), "bytes": self.n_bytes(s)} for s in SPLITS},
        }


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def split_of(relpath: str) -> str:
    """Split of a file from the sha256 of its relative POSIX path (stable under adding or removing files)."""
    h = int.from_bytes(hashlib.sha256(relpath.encode("utf-8")).digest()[:8], "big") / 2.0**64
    edge = 0.0
    for name, fraction in zip(SPLITS, SPLIT_FRACTIONS):
        edge += fraction
        if h < edge:
            return name
    return SPLITS[-1]


def _digest(items: list[tuple[str, bytes]]) -> str:
    # Path, length and content of every file, in path order: renames, edits and reorderings all change it.
    h = hashlib.sha256()
    for rel, data in items:
        h.update(rel.encode("utf-8") + b"\0" + str(len(data)).encode() + b"\0")
        h.update(data)
    return h.hexdigest()


def _sympy_root() -> tuple[Path, str]:
    # Locate the package without importing it (importing sympy costs about a second).
    spec = importlib.util.find_spec("sympy")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("root=None needs the sympy package installed; pass root='path/to/your/text/folder' instead")
    return Path(list(spec.submodule_search_locations)[0]).resolve(), importlib.metadata.version("sympy")


def _read_files(folder: Path, suffixes: tuple[str, ...] | None) -> list[tuple[str, bytes]]:
    items = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        rel_dir = Path(dirpath).relative_to(folder).as_posix()
        for fname in filenames:
            if fname.startswith(".") or (suffixes is not None and not fname.endswith(suffixes)):
                continue
            path = os.path.join(dirpath, fname)
            if os.path.isfile(path):
                with open(path, "rb") as fh:
                    items.append((fname if rel_dir == "." else f"{rel_dir}/{fname}", fh.read()))
    items.sort(key=lambda it: it[0])
    return items


def load_corpus(
    root: str | Path | None = None, *, suffixes: tuple[str, ...] | None = None, verify: bool = True
) -> Corpus:
    """Read a corpus of text files, split by file.

    Args:
        root: ``None`` -> the installed sympy package's ``*.py`` files (checked against :data:`SYMPY_SHA256`);
            otherwise a folder of your own text files (read recursively; hidden files and folders skipped).
        suffixes: file-name endings to keep, e.g. ``(".py", ".txt")``; default ``(".py",)`` for sympy and every
            file for your own folder.
        verify: for the default corpus, raise ``ValueError`` if its checksum differs from the recorded one.

    Returns:
        :class:`Corpus` with every split's files as uint8 arrays.
    """
    if root is None:
        # The default corpus is read once per process (the arrays are read-only, so sharing them is safe).
        return _default_corpus(None if suffixes is None else tuple(suffixes), bool(verify))
    return _load(root, suffixes, verify)


@functools.lru_cache(maxsize=4)
def _default_corpus(suffixes: tuple[str, ...] | None, verify: bool) -> Corpus:
    return _load(None, suffixes, verify)


def _load(root: str | Path | None, suffixes: tuple[str, ...] | None, verify: bool) -> Corpus:
    if root is None:
        folder, version = _sympy_root()
        name = f"sympy-{version}"
        suffixes = (".py",) if suffixes is None else suffixes
    else:
        folder = Path(root)
        if not folder.is_dir():
            raise ValueError(f"root must be an existing folder of text files, got {str(root)!r}")
        name, version = folder.name, None
    if suffixes is not None and (isinstance(suffixes, str) or not all(isinstance(s, str) for s in suffixes)):
        raise ValueError(f"suffixes must be a tuple of strings such as ('.py', '.txt'), got {suffixes!r}")

    items = _read_files(folder, None if suffixes is None else tuple(suffixes))
    if not items:
        raise ValueError(f"root {str(folder)!r} holds no files ending in {suffixes}")
    digest = _digest(items)
    if root is None and verify and digest != SYMPY_SHA256:
        found = (
            f"found sympy=={version}" if version != SYMPY_VERSION else f"the installed sympy=={version} files differ"
        )
        raise ValueError(
            f"the sympy corpus checksum does not match: expected sympy=={SYMPY_VERSION} "
            f"(sha256 {SYMPY_SHA256[:12]}...), "
            f"{found} (sha256 {digest[:12]}...). Install sympy=={SYMPY_VERSION} to reproduce the recorded results, "
            "or call load_corpus(verify=False) to use the installed sympy anyway, or "
            "load_corpus(root='path/to/your/text/folder') for your own corpus."
        )
    files: dict[str, list] = {s: [] for s in SPLITS}
    for rel, data in items:
        files[split_of(rel)].append((rel, np.frombuffer(data, dtype=np.uint8)))
    return Corpus(name=name, digest=digest, files={s: tuple(v) for s, v in files.items()})


def train_batch(stream: np.ndarray, batch_size: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    """``batch_size`` random windows of ``length + 1`` bytes from ``stream``: (batch, length + 1) int64.

    Inputs are ``x[:, :-1]``, targets ``x[:, 1:]``. Windows may cross file boundaries (marked by byte 0).
    """
    if stream.size < length + 2:
        raise ValueError(f"stream of {stream.size} bytes is too short for windows of length {length}")
    starts = rng.integers(0, stream.size - length - 1, size=batch_size)
    idx = starts[:, None] + np.arange(length + 1)[None, :]
    return torch.from_numpy(stream[idx].astype(np.int64))


def _windows(corpus: Corpus, split: str, length: int, n_samples: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """n non-overlapping contiguous windows of ``length`` bytes from the files of ``split`` at least that long.

    Every long-enough file is cut into ``len // length`` aligned windows at a random phase; windows are then
    drawn without replacement, round-robin over files in a random order (so many files are represented before
    any file gives a second window). If fewer windows exist than asked, all are returned with a warning.
    """
    rng = np.random.default_rng([seed, length, 7919])
    per_file = []
    for rel, arr in corpus.files[split]:
        if arr.size < length:
            continue
        count = arr.size // length
        phase = int(rng.integers(0, arr.size - count * length + 1))
        starts = phase + length * rng.permutation(count)
        per_file.append((rel, arr, list(starts)))
    if not per_file:
        raise ValueError(f"no {split} file is at least {length} bytes long; use a shorter test length")
    order = rng.permutation(len(per_file))
    chosen: list[tuple[str, np.ndarray, int]] = []
    while len(chosen) < n_samples and any(per_file[i][2] for i in order):
        for i in order:
            rel, arr, starts = per_file[i]
            if starts and len(chosen) < n_samples:
                chosen.append((rel, arr, int(starts.pop())))
    if len(chosen) < n_samples:
        warnings.warn(
            f"only {len(chosen)} windows of {length} bytes exist in the {split} split; using all of them "
            f"instead of {n_samples}",
            stacklevel=3,
        )
    out = np.stack([arr[s : s + length] for _, arr, s in chosen])
    return out, [rel for rel, _, _ in chosen]


def make_test_set(
    corpus: Corpus,
    kind: str,
    length: int,
    n_samples: int,
    *,
    seed: int = 0,
    max_length: int | None = None,
    split: str = "test",
    return_files: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, list[str]]:
    """Su's test sets as int64 tensors of shape (n_samples, length) (with ``return_files``: and each sample's file).

    Args:
        kind: "non_repeated" (natural text: a contiguous window of a test file) or "repeated" (a window of
            ``length // 2`` bytes, then the same bytes again: the second half repeats the first exactly).
        length: test length L' (even for "repeated").
        max_length: the samples are drawn once at this length (default ``length``) and every shorter test
            length uses their *last* ``length`` bytes. Drawing at the longest test length makes the test sets
            nested: each sample's last L tokens are the same at every test length, which is what the "longer
            context, lower loss" protocol needs, and the methods see the same text at every length.
        seed: the same seed gives the same samples on every machine.
        return_files: also return the relative path of the file each sample comes from (for a bootstrap that
            resamples files rather than windows).
    """
    _check_choice("kind", kind, TEST_SETS)
    _check_choice("split", split, SPLITS)
    max_length = length if max_length is None else max_length
    if not isinstance(length, int) or length < 2 or max_length < length:
        raise ValueError(f"length must be an int in [2, max_length={max_length}], got {length!r}")
    if kind == "repeated" and length % 2:
        raise ValueError(f"length must be even for the repeated test set, got {length}")
    base, files = _windows(corpus, split, max_length, n_samples, seed)
    if kind == "non_repeated":
        out = base[:, max_length - length :]
    else:
        half = base[:, max_length - length // 2 :]
        out = np.concatenate([half, half], axis=1)
    samples = torch.from_numpy(np.ascontiguousarray(out).astype(np.int64))
    return (samples, files) if return_files else samples


def _chunk_hashes(stream: np.ndarray, chunk: int) -> np.ndarray:
    # Polynomial hash (mod 2^64, by uint64 overflow) of every `chunk`-byte substring of `stream` (chunk a power of 2),
    # by doubling: hash(2m bytes at i) = hash(m at i) * P^m + hash(m at i + m), log2(chunk) passes over the stream.
    # A collision between different substrings has probability ~n^2 / 2^64, negligible at these sizes.
    h = stream.astype(np.uint64)
    step = np.uint64(1099511628211)
    with np.errstate(over="ignore"):
        m = 1
        while m < chunk:
            h = h[:-m] * step + h[m:]
            step = step * step
            m *= 2
    return h


def training_overlap(corpus: Corpus, samples: torch.Tensor | np.ndarray, *, chunk: int = 64) -> float:
    """Fraction of the ``chunk``-byte pieces of ``samples`` (each sample cut into consecutive pieces) that occur
    verbatim somewhere in the training split: boilerplate (licence headers, imports) that a split by file cannot
    keep out of the test text.

    Args:
        samples: (n, T) bytes as integers (e.g. a test set from :func:`make_test_set`).
        chunk: piece length in bytes, a power of two >= 8 (so that a match is text, not a common word).
    """
    if not isinstance(chunk, int) or chunk < 8 or chunk & (chunk - 1):
        raise ValueError(f"chunk must be a power of two >= 8, got {chunk!r}")
    x = np.asarray(samples).astype(np.uint8)
    if x.ndim != 2 or x.shape[1] < chunk:
        raise ValueError(f"samples must be (n, T) with T >= chunk = {chunk}, got shape {x.shape}")
    pieces = np.ascontiguousarray(x[:, : x.shape[1] // chunk * chunk]).reshape(-1)
    test = _chunk_hashes(pieces, chunk)[::chunk]  # the aligned pieces only
    train = _chunk_hashes(corpus.stream("train"), chunk)
    seen = np.unique(train[np.isin(train, test)])  # the small set is sorted, not the 24M training hashes
    return float(np.isin(test, seen).mean())


# ------------------------------------------------------------------------------------------ passkey retrieval
# The passkey task (Mohtashami & Jaggi, Landmark Attention; the PI and YaRN papers' k_max) in bytes. A sample of
# T bytes is filler text with a key inserted at a chosen distance before a question at the very end:
#
#     [filler ...] KEY [filler ...] QUERY KEY
#                  ^ p              ^ q = T - 2, distance = q - p
#
# The key is one of 16 symbols (bytes 0x10-0x1F) and QUERY is byte 0x02; none of them occurs in the corpus text, so
# the model answers only by finding the one earlier key byte: the content match a query makes with a similar key at
# distance m, the mechanism the base bound is about (Men et al. 2024; kexue.fm/archives/10122). Why not digits: a
# key of ordinary digit bytes needs an induction head (find the marker, copy what follows it), and the smoke model
# (0.84M parameters, 0.7M training tokens) forms none: trained on a 100% passkey mixture it stayed at chance (1/10
# per digit) at every distance. Chance here is 1/16. The answer is the last byte: a model reads sample[:-1] and the
# prediction at QUERY is its greedy answer.
PASSKEY_QUERY = 2
PASSKEY_FORMAT = 2  # bump when the layout above changes (it is part of a retrieval model's cache key)
PASSKEY_SYMBOLS: tuple[int, ...] = tuple(range(0x10, 0x20))


def passkey_distances(length: int) -> tuple[int, int]:
    """(smallest, largest) key distance a passkey sample of ``length`` bytes can hold: (1, length - 2)."""
    if not isinstance(length, int) or isinstance(length, bool) or length < 3:
        raise ValueError(f"length must be an int >= 3 for a passkey sample, got {length!r}")
    return 1, length - 2


def insert_passkey(window: np.ndarray, key: np.ndarray | int, distance: np.ndarray | int) -> np.ndarray:
    """The passkey sample made from ``window`` (T bytes of text; its first T - 3 bytes are the filler).

    Args:
        window: (T,) or (batch, T) bytes as integers; the result has the same shape and dtype (a new array).
        key: index of the key symbol in :data:`PASSKEY_SYMBOLS` (0-15), one or one per row.
        distance: position of QUERY minus position of the key, in ``passkey_distances(T)``, one or one per row.
    """
    window = np.asarray(window)
    w = window.reshape(-1, window.shape[-1])
    n, T = w.shape
    lo, hi = passkey_distances(T)
    key = np.broadcast_to(np.asarray(key, dtype=np.int64).reshape(-1), (n,))
    dist = np.broadcast_to(np.asarray(distance, dtype=np.int64).reshape(-1), (n,))
    if key.min() < 0 or key.max() >= len(PASSKEY_SYMBOLS):
        raise ValueError(f"key must index PASSKEY_SYMBOLS (0..{len(PASSKEY_SYMBOLS) - 1}), got {key.tolist()}")
    if dist.min() < lo or dist.max() > hi:
        raise ValueError(f"distance must be in [{lo}, {hi}] for samples of {T} bytes, got {dist.tolist()}")
    q = T - 2
    p = q - dist  # (n,) key positions
    cols = np.arange(T)[None, :]
    # every filler byte moves one place right from the key on: source column = col - (col > p), up to q
    src = np.minimum(cols - (cols > p[:, None]), q - 1)
    out = np.take_along_axis(w, np.broadcast_to(src, (n, T)), axis=1).copy()
    symbol = np.asarray(PASSKEY_SYMBOLS, dtype=out.dtype)[key]
    out[np.arange(n), p] = symbol
    out[:, q] = PASSKEY_QUERY
    out[:, q + 1] = symbol
    return out.reshape(window.shape)


def make_passkey_set(
    corpus: Corpus,
    length: int,
    distances: Sequence[int],
    n_samples: int,
    *,
    seed: int = 0,
    split: str = "test",
) -> tuple[torch.Tensor, list[str]]:
    """Passkey samples: ((len(distances), n_samples, length) int64, the file each sample's filler comes from).

    Every distance uses the same ``n_samples`` filler windows (drawn as :func:`make_test_set` draws its windows from
    ``split``) and the same keys, so accuracies at two distances, or under two position schemes, are paired on the
    same text. The same seed gives the same samples on every machine.
    """
    _check_choice("split", split, SPLITS)
    lo, hi = passkey_distances(length)
    distances = [int(d) for d in distances]
    if not distances or min(distances) < lo or max(distances) > hi:
        raise ValueError(f"distances must be a non-empty list in [{lo}, {hi}] for length {length}, got {distances}")
    windows, files = _windows(corpus, split, length, n_samples, seed)
    keys = np.random.default_rng([seed, length, 104729]).integers(0, len(PASSKEY_SYMBOLS), size=windows.shape[0])
    out = np.stack([insert_passkey(windows, keys, d) for d in distances])
    return torch.from_numpy(out.astype(np.int64)), files


def passkey_batch(
    stream: np.ndarray,
    batch_size: int,
    length: int,
    rng: np.random.Generator,
    fraction: float,
    *,
    max_distance: int | None = None,
) -> torch.Tensor:
    """A training batch like :func:`train_batch` ((batch, length + 1) int64) in which about ``fraction`` of the rows
    carry a passkey: a random key at a random distance (uniform over every distance the row can hold, or up to
    ``max_distance``: a curriculum's early steps), asked for at the row's end. The other rows are plain text, so the
    model keeps learning the language as well."""
    x = train_batch(stream, batch_size, length, rng).numpy()
    rows = np.flatnonzero(rng.random(batch_size) < fraction)
    if max_distance is not None:
        _checks.positive_int("max_distance", max_distance)
    if rows.size:
        lo, hi = passkey_distances(length + 1)
        hi = hi if max_distance is None else min(hi, max_distance)
        keys = rng.integers(0, len(PASSKEY_SYMBOLS), size=rows.size)
        x[rows] = insert_passkey(x[rows], keys, rng.integers(lo, hi + 1, size=rows.size))
    return torch.from_numpy(x)
