"""The registry of experiments, name checks, provenance (versions, git SHA) and atomic JSON output."""

from __future__ import annotations

import json
import math
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
    """Run a registered experiment by name; ``out`` defaults to ``rope_lib.results_dir(profile)``."""
    check_names("experiment", [name], sorted(REGISTRY))
    check_profile(profile)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    pick_device(device)  # refuse a bad device before any work
    return REGISTRY[name](profile=profile, device=device, seed=seed, out=out, **options)


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
