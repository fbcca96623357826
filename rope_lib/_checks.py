"""Private helpers every module shares: argument checks (one wording for each error), the compute dtype, and
atomic file writes. Errors name the argument and the allowed values; nothing here imports another rope_lib module.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def int_at_least(name: str, value: Any, low: int) -> int:
    """``value`` as an int if it is an integer >= ``low`` (bools refused), else a ValueError naming ``name``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        what = "a positive integer" if low == 1 else ("a non-negative integer" if low == 0 else f"an integer >= {low}")
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int if it is an integer >= 1 (bools refused), else a ValueError naming ``name``."""
    return int_at_least(name, value, 1)


def nonnegative_int(name: str, value: Any) -> int:
    """``value`` as an int if it is an integer >= 0 (bools refused), else a ValueError naming ``name``."""
    return int_at_least(name, value, 0)


def finite_number(name: str, value: Any, *, above: float | None = None, at_least: float | None = None) -> float:
    """``value`` as a float if it is a finite real (bools refused) and > ``above`` / >= ``at_least``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok and above is not None:
        ok = value > above
    if ok and at_least is not None:
        ok = value >= at_least
    if not ok:
        bound = f" > {above:g}" if above is not None else (f" >= {at_least:g}" if at_least is not None else "")
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def non_empty_text(name: str, value: Any) -> str:
    """``value`` if it is a string with something besides whitespace, else a ValueError naming ``name``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def leaky_k(value: Any) -> float | None:
    """Leaky ReRoPE's leak: None (plain ReRoPE) or a finite number > 0; the one check for every entry point."""
    if value is None:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)) and value > 0
    if not ok:
        raise ValueError(f"leaky_k must be None (ReRoPE) or a finite number > 0 (Leaky ReRoPE), got {value!r}")
    return float(value)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """At least float32 for rotations, scores and accumulators; float64 input stays float64.

    Rounding once at the end makes bf16 input match a float64 reference to bf16 rounding, instead of accumulating
    extra roundings (and an online softmax in bf16 would compound them).
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary name in the same folder, then rename it to ``path``.

    A failure leaves the old file (if any) and no temporary behind: nothing half-written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
