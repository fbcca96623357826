"""Seeding, device choice and the repository paths every notebook and experiment resolves from here.

Notebooks run with ``--cwd notebooks/executed``; nothing may depend on the working directory, so paths are
resolved from the package location (editable install) and can be redirected by environment variables:
``ROPE_FIGURES_DIR`` and ``ROPE_RESULTS_DIR`` (``make test`` points them at a scratch folder so validation never
touches the committed figures and results), ``ROPE_CACHE_DIR`` (trained checkpoints).
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import numpy as np
import torch

PROFILES: tuple[str, ...] = ("smoke", "medium", "full")


def repo_root() -> Path:
    """The checkout holding rope_lib (found by its pyproject.toml); the working directory when installed elsewhere."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "rope_lib").is_dir():
            return candidate
    return Path.cwd()


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


def _profile_dir(env: str, default: Path, profile: str) -> Path:
    check_profile(profile)
    override = os.environ.get(env)
    base = Path(override) if override else default
    # smoke outputs sit at the top of figures/ (they are what the README shows); no other profile overwrites them.
    return base if profile == "smoke" else base / profile


def figures_dir(profile: str = "smoke") -> Path:
    return _profile_dir("ROPE_FIGURES_DIR", repo_root() / "figures", profile)


def results_dir(profile: str = "smoke") -> Path:
    check_profile(profile)
    override = os.environ.get("ROPE_RESULTS_DIR")
    return (Path(override) if override else repo_root() / "results") / profile


def cache_dir() -> Path:
    """Git-ignored folder for trained checkpoints, shared by notebooks and the CLI."""
    override = os.environ.get("ROPE_CACHE_DIR")
    return Path(override) if override else repo_root() / ".cache"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(device: str | None = None) -> torch.device:
    """``None`` or ``"auto"`` -> cuda when present, else cpu; otherwise the named device (checked to exist)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be None, 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available here")
    return chosen


@contextlib.contextmanager
def torch_threads(num_threads: int | None):
    """Fix torch's CPU thread count for the duration (None: leave it); the smoke profile uses 2 for determinism."""
    old = torch.get_num_threads()
    try:
        if num_threads:
            torch.set_num_threads(num_threads)
        yield
    finally:
        torch.set_num_threads(old)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (when enabled), a no-op elsewhere."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
