"""What installing rope_lib brings in: the library needs torch and numpy only, the extras cover what the rest imports.

- `import rope_lib` and `from rope_lib import hf` (in a fresh interpreter) import nothing beyond torch, numpy and the
  standard library: no matplotlib, sympy, tqdm, yaml or transformers (those are the extras' business);
- pyproject's core dependencies are exactly torch and numpy, and every import in rope_lib/*.py is stdlib, torch, numpy
  or rope_lib itself, transformers only inside functions of hf.py (imported on first use);
- the extras: [hf]'s lower bound is hf.py's minimum, and core + [notebooks] (+ [test] for tests/) provide every
  third-party module the companion, the notebooks and the tests import.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the suite's venv is 3.11
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
CORE = {"torch", "numpy"}
COMPANION_DEPENDENCIES = ("matplotlib", "sympy", "tqdm", "yaml", "transformers")


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def _names(requirements: list[str]) -> set[str]:
    return {_name(r) for r in requirements}


def test_import_rope_lib_imports_no_companion_dependency():
    # A fresh interpreter: this one has long imported everything. What torch and numpy import themselves is the
    # baseline (torch.hub imports tqdm when it is installed), so only what rope_lib adds is judged.
    code = (
        "import json, sys\n"
        "import numpy, torch\n"
        "before = set(sys.modules)\n"
        "import rope_lib\n"
        "from rope_lib import hf\n"
        "import rope_lib.doctor\n"
        "print(json.dumps({'before': sorted(before), 'after': sorted(sys.modules)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.splitlines()[-1])
    added = set(seen["after"]) - set(seen["before"])
    tops = {m.split(".")[0] for m in added}
    assert not tops & set(COMPANION_DEPENDENCIES), sorted(tops & set(COMPANION_DEPENDENCIES))
    assert tops <= set(sys.stdlib_module_names) | CORE | {"rope_lib"}, sorted(tops)
    assert not any(m.startswith("rope_lib.companion") for m in added)
    # torch does not import these either, so they are absent altogether (tqdm may come with torch.hub)
    for name in ("matplotlib", "sympy", "yaml", "transformers"):
        assert name not in seen["after"], name


def test_core_dependencies_are_torch_and_numpy():
    assert _names(PROJECT["dependencies"]) == CORE


def _imports(tree: ast.AST):
    """(top-level module name, inside a function?) for every absolute import in ``tree``."""

    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                yield from ((a.name.split(".")[0], in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                yield child.module.split(".")[0], in_function
            yield from walk(child, inner)

    yield from walk(tree, False)


# the library's modules (the doctor is a library subpackage); rope_lib/companion is not one of them
LIBRARY = sorted([*(ROOT / "rope_lib").glob("*.py"), *(ROOT / "rope_lib" / "doctor").glob("*.py")])


@pytest.mark.parametrize("path", LIBRARY, ids=[p.relative_to(ROOT / "rope_lib").as_posix() for p in LIBRARY])
def test_library_imports_only_stdlib_torch_numpy(path):
    allowed = set(sys.stdlib_module_names) | CORE | {"rope_lib"}
    for module, in_function in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if path.name == "hf.py" and module == "transformers":
            assert in_function, "hf.py imports transformers at module level: `from rope_lib import hf` would need it"
            continue
        assert module in allowed, f"{path.name} imports {module}: not a core dependency (add it to an extra instead)"


def _requirement(extra: str, name: str) -> str:
    (found,) = [r for r in PROJECT["optional-dependencies"][extra] if _name(r) == name]
    return found


def _lower_bound(requirement: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.search(r">=\s*([\d.]+)", requirement).group(1).split("."))


def test_hf_extra_matches_the_runtime_check():
    from rope_lib import hf

    assert PROJECT["optional-dependencies"]["hf"] == [f"transformers>={hf._TRANSFORMERS_MIN},<6"]
    hf_min = _lower_bound(_requirement("hf", "transformers"))
    for extra in ("notebooks", "test"):  # their transformers is at least [hf]'s, with the same upper bound
        requirement = _requirement(extra, "transformers")
        assert _lower_bound(requirement) >= hf_min and requirement.endswith(",<6"), (extra, requirement)
    pinned = re.search(r"^transformers==([\d.]+)$", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    assert tuple(map(int, pinned.split("."))) >= _lower_bound(_requirement("notebooks", "transformers"))
    assert hf.TRANSFORMERS_VERSION == pinned


# Import names that are not their distribution's name, or come with another distribution of an extra.
PROVIDED_BY = {
    "IPython": "ipykernel",
    "matplotlib_inline": "ipykernel",
    "jupyter_client": "ipykernel",
    "mpmath": "sympy",
    "yaml": "pyyaml",
}


def _third_party(paths) -> dict[str, str]:
    local = {p.stem for p in paths} | {"rope_lib"}  # conftest, and tests that import another test module
    found = {}
    for path in paths:
        for module, _ in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if module not in sys.stdlib_module_names and module not in local:
                found.setdefault(module, str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize(
    "where, extras",
    [
        ("rope_lib/companion", ("notebooks",)),
        ("notebooks", ("notebooks",)),
        ("tests", ("notebooks", "test")),  # the Makefile installs '.[notebooks,test]'
    ],
)
def test_extras_cover_every_import(where, extras):
    paths = [p for p in sorted((ROOT / where).rglob("*.py")) if "executed" not in p.parts]
    # lab_check.py is `make lab-check`'s, which installs playwright itself
    paths = [p for p in paths if p.name != "lab_check.py"]
    provided = CORE | set().union(*(_names(PROJECT["optional-dependencies"][e]) for e in extras))
    missing = {
        module: where_from
        for module, where_from in _third_party(paths).items()
        if PROVIDED_BY.get(module, module).lower().replace("_", "-") not in provided
    }
    assert not missing, f"imported but in no extra of {extras}: {missing}"


def test_makefile_installs_the_extras_the_suite_needs():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"pip install .*-c constraints\.txt -e \"\.\[notebooks,test\]\"", makefile)
