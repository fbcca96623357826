"""The registry of experiments, name checks, provenance (versions, git SHA) and atomic JSON output."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..._checks import atomic_write
from ..runtime import check_profile, pick_device, repo_root, results_dir

# name -> function(profile, device, seed, out, **options) -> results dict (it also writes out/<name>.json)
REGISTRY: dict[str, Callable[..., dict]] = {}
# name -> {list option ("methods", "variants"): the names it accepts}: what the CLI offers and checks per experiment.
LIST_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {}
# name -> function(profile, seed) -> {variant: (model config, training config)}: the models an experiment trains
# beyond the two every experiment shares (``python -m rope_lib.companion.experiments train`` trains them all up front).
EXTRA_MODELS: dict[str, Callable[[str, int], dict]] = {}


def register(
    name: str,
    *,
    list_options: dict[str, Iterable[str]] | None = None,
    models: Callable[[str, int], dict] | None = None,
) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Decorator adding an experiment ``fn(profile, device, seed, out, **options) -> dict`` to :data:`REGISTRY`.

    ``list_options`` declares the keyword arguments of ``fn`` that take a subset of names (e.g. ``methods``) and the
    names allowed for each; the command line offers ``--<option>`` only for experiments that declare it.
    ``models(profile, seed)`` declares the extra models a default run trains per training seed.
    """

    def deco(fn: Callable[..., dict]) -> Callable[..., dict]:
        if name in REGISTRY:
            raise ValueError(f"experiment {name!r} is registered twice")
        REGISTRY[name] = fn
        LIST_OPTIONS[name] = {opt: tuple(names) for opt, names in (list_options or {}).items()}
        if models is not None:
            EXTRA_MODELS[name] = models
        return fn

    return deco


def check_names(kind: str, names: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """Return ``names`` as a list, or raise ValueError naming the unknown ones and listing the allowed names."""
    names, allowed = list(names), list(allowed)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}; allowed {kind}: {allowed}")
    if not names:
        raise ValueError(f"at least one {kind} is needed; allowed {kind}: {allowed}")
    return names


def run_experiment(
    name: str, profile: str = "smoke", device: str | None = None, seed: int = 0, out=None, **options
) -> dict:
    """Run a registered experiment by name; ``out`` defaults to ``rope_lib.results_dir(profile)``.

    Returns the results as written to ``<out>/<name>.json`` (read back: floats rounded as stored, keys as strings),
    so a notebook sees the same numbers whether it ran the experiment or replays the file.

    With the environment variable ``ROPE_REPLAY_FROM`` set to a results folder (``make test`` sets it to the
    committed ``results/``), nothing is trained or evaluated: ``<ROPE_REPLAY_FROM>/<profile>/<name>.json`` is checked
    to come from this checkout's code (:func:`replay`) and copied to the output path.
    """
    check_names("experiment", [name], sorted(REGISTRY))
    check_profile(profile)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    pick_device(device)  # refuse a bad device before any work
    replay_from = os.environ.get(REPLAY_ENV)
    if replay_from:
        return replay(name, profile, seed, Path(replay_from), out, **options)
    REGISTRY[name](profile=profile, device=device, seed=seed, out=out, **options)
    return load_results(name, profile, out)


# Set to a results folder: run_experiment replays the files there instead of training and evaluating.
REPLAY_ENV = "ROPE_REPLAY_FROM"

# Modules that only present results (tables, figures, verdict records, the README): no score depends on them, so
# editing them neither discards the cached evaluations nor makes the committed results stale. Relative to the
# rope_lib package; tests/test_structure.py checks that no other module imports one.
PRESENTATION_MODULES = frozenset(
    {
        "companion/report.py",
        "companion/plotting.py",
        "companion/verdicts.py",
        "companion/readme.py",
        "companion/atlas.py",
    }
)


@functools.cache
def code_digest() -> str:
    """SHA-256 of every rope_lib source file outside :data:`PRESENTATION_MODULES`, names and bytes.

    One rule rather than tracking which module feeds which number: a change anywhere a score could come from
    changes it. It keys the evaluation cache and is written into every results file (``"code"``).
    """
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]  # the rope_lib package: library and companion alike
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name not in PRESENTATION_MODULES:
            h.update(name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def replay(name: str, profile: str, seed: int, source: Path, out=None, **options) -> dict:
    """The committed results of experiment ``name``, checked and copied to ``<out>/<name>.json``.

    Refused (ValueError, naming the file and what to run) unless the file exists, holds this profile and seed, and
    was written by code whose :func:`code_digest` equals this checkout's: results of older code are stale.
    A run restricted to some rows (``methods=``, ``variants=``) cannot be replayed from a file of all rows.
    """
    path = source / profile / f"{name}.json"
    fix = f"run `make` (or the experiment, unset {REPLAY_ENV}) and commit results/{profile}/"
    restricted = sorted(opt for opt in options if opt in LIST_OPTIONS[name] and options[opt] is not None)
    if restricted:
        raise ValueError(f"{REPLAY_ENV} replays whole results files; --{restricted[0]} restricts the rows: unset it")
    if not path.is_file():
        raise ValueError(f"{REPLAY_ENV}: {path} does not exist: {fix}")
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    found = (data.get("profile"), data.get("test_seed"))
    if found != (profile, seed):
        raise ValueError(
            f"{REPLAY_ENV}: {path} holds profile {found[0]!r}, seed {found[1]!r}; asked for {profile!r}, seed {seed}"
        )
    if data.get("code") != code_digest():
        raise ValueError(
            f"{REPLAY_ENV}: {path} is stale: written by rope_lib code {str(data.get('code'))[:12]}, this checkout is "
            f"{code_digest()[:12]}: {fix}"
        )
    target = output_path(name, profile, out)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.resolve() != path.resolve():
        atomic_write(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return data


def output_path(name: str, profile: str, out: str | Path | None) -> Path:
    return (results_dir(profile) if out is None else Path(out)) / f"{name}.json"


def package_versions() -> dict[str, str | None]:
    """Versions of python and the packages whose numerics the results depend on."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "sympy", "rope-lib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def git_sha() -> str | None:
    """HEAD of the checkout holding rope_lib, or None without git (an installed copy, no git binary)."""
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = res.stdout.strip()
    return sha if res.returncode == 0 and len(sha) == 40 else None


def jsonable(obj: Any, digits: int = 6) -> Any:
    """numpy/torch scalars and arrays -> JSON types; floats rounded to ``digits`` significant digits (NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, digits) for v in obj]
    if hasattr(obj, "detach"):  # torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), digits)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return None if not math.isfinite(x) else float(f"{x:.{digits}g}")
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


_NUMBER_LIST = re.compile(r"\[\s*((?:(?:-?[0-9][0-9.eE+-]*|null|true|false),?\s*)+)\]")


def write_json(obj: dict, path: str | Path) -> Path:
    """Write ``obj`` as JSON atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(jsonable(obj), indent=1, sort_keys=False)  # fails before anything is written
    # a list of numbers on one line: per-sample arrays would otherwise take a line (and its indent) per number
    text = _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_results(name: str, profile: str = "smoke", out: str | Path | None = None) -> dict:
    """Read ``<out or results_dir(profile)>/<name>.json``."""
    with open(output_path(name, profile, out), encoding="utf-8") as fh:
        return json.load(fh)
