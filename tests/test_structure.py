"""The library's shape: a layered import graph (no cycle), experiments that share only the harness, one check for
each argument, and no pointer to files outside the repository."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

import rope_lib
from rope_lib import _checks
from rope_lib.companion.model import PositionScheme

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rope_lib"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """rope_lib modules imported by ``path`` (absolute and relative imports, at any depth)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        out.update(c for c in candidates if c.startswith("rope_lib"))
    return out


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: {m for m in _imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def test_import_graph_has_no_cycle():
    # package __init__ files re-export; the layering that matters is between the modules themselves
    graph = {n: {m for m in deps if not MODULES[m].name == "__init__.py"} for n, deps in GRAPH.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(trail + [node, dep])}")
            if dep not in state:
                visit(dep, trail + [node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


@pytest.mark.parametrize(
    "low, high",
    [
        ("rope_lib.companion.evaluate", "rope_lib.companion.train"),  # evaluation needs no trainer
        ("rope_lib.scaling", "rope_lib.decoding"),  # decoding builds on the frequencies, not the other way
        ("rope_lib.rope", "rope_lib.scaling"),
        ("rope_lib.scaling", "rope_lib.rope_parameters"),  # the config reader calls the methods, not the other way
        ("rope_lib._checks", "rope_lib.companion.runtime"),
    ],
)
def test_lower_modules_do_not_import_higher_ones(low, high):
    assert high not in GRAPH[low], f"{low} imports {high}"


# entry points (``python -m ...``) sit above everything: the doctor's CLI may draw with the companion's plotting
ENTRY_POINTS = sorted(n for n in MODULES if n.endswith(".__main__"))
LIBRARY = sorted(n for n in MODULES if not n.startswith("rope_lib.companion") and n not in ENTRY_POINTS)
COMPANION = sorted(n for n in MODULES if n.startswith("rope_lib.companion"))


def test_library_and_companion_are_separate_rooms():
    """The library users import (torch and numpy) never reaches into the companion's machinery; the companion builds
    on the library."""
    assert len(LIBRARY) >= 12 and len(COMPANION) >= 12
    for name in LIBRARY:
        up = {m for m in GRAPH[name] if m.startswith("rope_lib.companion")}
        assert not up, f"library module {name} imports the companion's {sorted(up)}"
    assert any(m in LIBRARY for name in COMPANION for m in GRAPH[name])
    importers = {name for name, deps in GRAPH.items() if deps & set(ENTRY_POINTS)}
    assert not importers, f"an entry point is imported by {sorted(importers)}: nothing may build on one"


def test_top_level_names_are_library_names():
    for name in rope_lib.__all__:
        module = getattr(rope_lib, name).__module__ if callable(getattr(rope_lib, name)) else None
        assert module is None or not module.startswith("rope_lib.companion"), f"rope_lib.{name} comes from {module}"
    assert not {"repo_root", "results_dir", "savefig", "check_profile", "pick_device"} & set(rope_lib.__all__)


def test_no_experiment_imports_another():
    shared = {
        "rope_lib.companion.experiments.common",
        "rope_lib.companion.experiments.harness",
        "rope_lib.companion.experiments.references",
    }
    experiments = [n for n in MODULES if n.startswith("rope_lib.companion.experiments.") and n not in shared]
    experiments = [n for n in experiments if not n.endswith("__main__")]
    assert len(experiments) >= 3
    for name in experiments:
        siblings = {m for m in GRAPH[name] if m.startswith("rope_lib.companion.experiments.")} - shared
        assert not siblings, f"{name} imports {siblings}: shared pieces belong in the harness"


def test_presentation_modules_feed_no_score():
    # the code digest leaves these modules out (editing a table must not discard every cached score or make the
    # committed results stale): that is only sound while each exists and no other module imports one (an entry point
    # may: nothing imports it)
    from rope_lib.companion.experiments.common import PRESENTATION_MODULES

    presentation = {_module_name(PACKAGE / name) for name in PRESENTATION_MODULES}
    assert presentation <= set(MODULES), presentation - set(MODULES)
    scoring = [name for name in GRAPH if name not in presentation and not name.endswith(".__main__")]
    feeding = {(name, dep) for name in scoring for dep in GRAPH[name] & presentation}
    assert not feeding, f"a module outside the presentation set imports one in it: {sorted(feeding)}"


def test_no_pointer_to_files_outside_the_repository():
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "notebooks").glob("*.py"), *(ROOT / "tests").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for needle in ("REFERENCES.md", "DESIGN.md", "../shared"):
            if path.name == "test_structure.py":
                continue
            assert needle not in text, f"{path.relative_to(ROOT)} points at {needle}, which is not in the repository"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3", None])
def test_positive_int_refuses(bad):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        _checks.positive_int("n", bad)


def test_positive_int_bounds_and_wording():
    assert _checks.positive_int("n", 3) == 3
    assert _checks.nonnegative_int("n", 0) == 0
    with pytest.raises(ValueError, match="must be a non-negative integer"):
        _checks.nonnegative_int("n", -1)
    with pytest.raises(ValueError, match="must be an integer >= 4"):
        _checks.int_at_least("n", 3, 4)


@pytest.mark.parametrize("bad", [0, -2.0, math.inf, math.nan, True, "16"])
def test_leaky_k_is_checked_alike_everywhere(bad):
    """PositionScheme and rerope_attention share one check: what one refuses, the other refuses."""
    with pytest.raises(ValueError, match="leaky_k"):
        PositionScheme(attention="rerope", window=4, leaky_k=bad)
    import torch

    q = torch.zeros(1, 4, 8)
    with pytest.raises(ValueError, match="leaky_k"):
        rope_lib.rerope_attention(q, q, q, rope_lib.inv_freq(8), window=2, leaky_k=bad)


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    path = tmp_path / "out.txt"
    _checks.atomic_write(path, lambda tmp: tmp.write_text("old"))

    def failing(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        _checks.atomic_write(path, failing)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
