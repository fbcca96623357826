"""Each central derivation must be able to fail: with one constant changed, one of its asserts fires.

A notebook tags the cells of its central derivation `derivation`. This test runs the notebook's parameters cell,
its setup cell (the first code cell after the parameters) and then every `derivation` cell in order, once as
written (it must pass) and once with one constant changed (an assert must fire). A derivation rewritten so that it
compares an expression with itself, or asserts a literal, passes with the constant changed and fails here.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# (notebook stem, text found exactly once in its derivation cells, what it becomes): each change is of a constant
# the derivation depends on, not of an assert.
CASES = [
    # 07: the gap between a similar and a random key is 2 sigma^2 B_m; a similar key k* = q + 2 eps instead of
    # q + eps keeps the gap (eps has mean zero), so the change is to the variance's factor: sigma^2 -> 2 sigma^2
    # in the moment rule of q and k
    ("07_rope_base_bound", "2: mu**2 + sigma**2}", "2: mu**2 + 2 * sigma**2}"),
    # 08a: the Lagrange remainder a''(xi) (t - s)^2 / 2 of step (i)'s Taylor expansion, with 1/3 for 1/2
    ("08a_position_interpolation", "m / 2 * (t - s) ** 2", "m / 3 * (t - s) ** 2"),
    # 09: the shared rotated key taken at position 2i instead of i: the score stops depending on t - i only
    ("09_mla_decoupled_rope", "rope_row(i, th[:1])", "rope_row(2 * i, th[:1])"),
    # 11: RoPE-Tie's integer row stride w + 2 instead of w + 1: the text token after the image leaves the diagonal
    ("11_multimodal_rope", "integer = {s_: w + 1, t_: h + 1}", "integer = {s_: w + 2, t_: h + 1}"),
    # 14: VO-RoPE's output rotated forward by the query's position instead of back: no longer relative
    ("14_after_su", "vo = rot(-i_sym * th) * rot(j_sym * th)", "vo = rot(i_sym * th) * rot(j_sym * th)"),
]


def _derivation_source(stem: str) -> str:
    nb = jupytext.read(NOTEBOOKS / f"{stem}.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    tags = [set(c.metadata.get("tags", [])) for c in code]
    first = next(i for i, t in enumerate(tags) if "parameters" in t)
    cells = [code[first].source, code[first + 1].source]
    cells += [c.source for c, t in zip(code, tags) if "derivation" in t]
    assert len(cells) > 2, f"{stem}: no cell tagged 'derivation'"
    # a notebook's bare display() calls, and IPython's line magics, have no meaning outside a kernel
    return "\n\n".join("\n".join(ln for ln in c.splitlines() if not ln.startswith("%")) for c in cells)


@pytest.fixture(autouse=True)
def _scratch_outputs(tmp_path, monkeypatch):
    # a setup cell opens the notebook's CheckBook, and a run with a constant changed records a failing check:
    # records and figures go to a scratch folder, never over the committed ones
    monkeypatch.setenv("ROPE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("ROPE_FIGURES_DIR", str(tmp_path / "figures"))


def _run(source: str, stem: str) -> None:
    namespace = {"__name__": f"derivation_{stem}", "display": lambda *args, **kwargs: None}
    exec(compile(source, f"{stem}:derivation", "exec"), namespace)  # noqa: S102 - our own notebook's code


@pytest.mark.parametrize("stem, old, new", CASES, ids=[c[0] for c in CASES])
def test_derivation_passes_as_written(stem, old, new):
    _run(_derivation_source(stem), stem)


@pytest.mark.parametrize("stem, old, new", CASES, ids=[c[0] for c in CASES])
def test_derivation_fails_with_a_constant_changed(stem, old, new):
    source = _derivation_source(stem)
    assert source.count(old) == 1, f"{stem}: {old!r} must occur exactly once in the derivation cells"
    with pytest.raises(AssertionError):
        _run(source.replace(old, new), stem)


def test_every_listed_notebook_has_one_case():
    central = {"07_rope_base_bound", "08a_position_interpolation", "09_mla_decoupled_rope", "11_multimodal_rope"}
    assert {c[0] for c in CASES} >= central
