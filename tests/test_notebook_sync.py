"""Each committed executed notebook must run the code of its source: edit the .py, then `make`."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9]*.py"))


def _code_cells(nb) -> list[str]:
    # papermill's injected cell carries the profile's values; it is the only cell allowed to differ.
    return [
        c.source.strip()
        for c in nb.cells
        if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])
    ]


def test_there_are_notebooks():
    assert SOURCES, "no notebooks/NN_*.py sources found"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_executed_notebook_matches_source(source: Path):
    executed = ROOT / "notebooks" / "executed" / f"{source.stem}.ipynb"
    assert executed.exists(), f"{executed.name} missing: run `make`"
    expected = _code_cells(jupytext.read(source))
    got = _code_cells(nbformat.read(executed, as_version=4))
    assert got == expected, f"{executed.name} is stale: its code differs from {source.name}; run `make`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_executed_notebook_ran_cleanly(source: Path):
    nb = nbformat.read(ROOT / "notebooks" / "executed" / f"{source.stem}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "every code cell must have been executed"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"executed notebook has error outputs: {[e.get('ename') for e in errors]}"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters' (papermill injects the profile after it)"


# Committed outputs must not carry where they were made: a warning printed with its file's path, a temp folder.
_MACHINE_PATH = re.compile(r"(/home/|/root/|/Users/|/work/|/tmp/|site-packages|\\Users\\)")


def _output_texts(nb) -> list[str]:
    texts = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            if o.get("output_type") == "stream":
                texts.append(o.get("text", ""))
            for mime in ("text/plain", "text/markdown", "text/html"):
                texts.append(o.get("data", {}).get(mime, ""))
    return texts


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_executed_outputs_name_no_local_path(source: Path):
    nb = nbformat.read(ROOT / "notebooks" / "executed" / f"{source.stem}.ipynb", as_version=4)
    hits = [m.group(0) + "..." for t in _output_texts(nb) for m in [_MACHINE_PATH.search(t)] if m]
    assert not hits, f"{source.stem}: outputs name a local path: {hits[:3]}"


def test_local_path_pattern_catches_a_warning_line():
    line = "/srv/x/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found."
    assert _MACHINE_PATH.search(line) and _MACHINE_PATH.search("see C:\\Users\\me") and not _MACHINE_PATH.search("a/b")


def _as_lab_leaves_it(nb) -> None:
    # What JupyterLab adds once the kernel is up: the kernel's spec and language_info.
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    nb.metadata["kernelspec"] = {"display_name": spec.display_name, "language": spec.language, "name": "python3"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.99.0", "file_extension": ".py"}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_saving_a_source_from_lab_changes_nothing(source: Path):
    """Lab saves through jupytext with notebooks/jupytext.toml: the file must come back byte for byte."""
    from jupytext.config import load_jupytext_config

    nb = jupytext.read(source)
    _as_lab_leaves_it(nb)
    config = load_jupytext_config(str(source))
    assert config is not None, "notebooks/jupytext.toml is missing"
    assert jupytext.writes(nb, fmt="py:percent", config=config) == source.read_text(encoding="utf-8")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_executed_notebook_kernelspec_matches_the_kernel(source: Path):
    """Otherwise Lab marks the executed notebook modified as soon as its kernel starts."""
    from jupyter_client.kernelspec import KernelSpecManager

    nb = nbformat.read(ROOT / "notebooks" / "executed" / f"{source.stem}.ipynb", as_version=4)
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert nb.metadata["kernelspec"] == {
        "display_name": spec.display_name,
        "language": spec.language,
        "name": "python3",
    }


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_assert_hides_a_printed_line(source: Path):
    """`make medium` / `make full` strip asserts (python -O) and keep every printed verdict: a function that prints
    must be called as a statement, never inside an assert."""
    import ast

    tree = ast.parse("\n".join(_code_cells(jupytext.read(source))))
    printing = {
        f.name
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef)
        and any(isinstance(c, ast.Call) and getattr(c.func, "id", None) == "print" for c in ast.walk(f))
    }
    hidden = [
        (a.lineno, c.func.id)
        for a in ast.walk(tree)
        if isinstance(a, ast.Assert)
        for c in ast.walk(a)
        if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in printing | {"print"}
    ]
    assert not hidden, f"{source.name}: asserts that call printing functions (line in code cells, name): {hidden}"
