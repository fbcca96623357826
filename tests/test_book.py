"""book/prepare.py on a tiny synthetic notebook: which cells it hides, how it captions figures (no Sphinx needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("book_prepare", ROOT / "book" / "prepare.py")
prepare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prepare)

PNG = "iVBORw0KGgo="  # content is never decoded here


def _image():
    return nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})


def _stream(text: str):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def _notebook():
    v4 = nbformat.v4
    params = v4.new_code_cell('profile = "smoke"', metadata={"tags": ["parameters"]})
    injected = v4.new_code_cell('# Parameters\nprofile = "smoke"\n', metadata={"tags": ["injected-parameters"]})
    imports = v4.new_code_cell("import math\n\nimport numpy as np\n\nsetup(profile)\n")
    work = v4.new_code_cell("x = 1\nprint(x)")
    work.outputs = [_stream("1\n")]
    one = v4.new_code_cell("plot()")
    one.outputs = [_image()]
    several = v4.new_code_cell("print('a'); plot(); plot()")
    several.outputs = [_stream("a\n"), _image(), _image()]
    cells = [
        v4.new_markdown_cell("# 07 · A title\n\nIntro."),
        params,
        injected,
        imports,
        v4.new_markdown_cell("## 1. First section\n\nText with $$a\n+ b$$ in it."),
        work,
        one,
        v4.new_markdown_cell("## 2. Second $x$ section"),
        several,
    ]
    return v4.new_notebook(cells=cells)


@pytest.fixture(scope="module")
def book_nb():
    return prepare.prepare_notebook(_notebook(), "07", "../07_title.py")


def _tags(cell):
    return cell.metadata.get("tags", [])


def test_boilerplate_cells_are_hidden(book_nb):
    by_source = {c.source.splitlines()[0]: c for c in book_nb.cells if c.cell_type == "code" and c.source}
    assert "hide-cell" in _tags(by_source['profile = "smoke"'])
    assert "remove-cell" in _tags(by_source["# Parameters"])
    assert "hide-input" in _tags(by_source["import math"])
    assert not _tags(by_source["x = 1"])  # a cell that computes and prints is left as it is


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nfrom pathlib import Path", True),
        ("import os\nimport sys\nsetup()", True),
        ("x = 1\nimport os", False),  # imports, but not first
        ("import os\na = 1\nb = 2\nc = 3", False),  # mostly work
        ("%matplotlib inline\nimport os", False),  # magics: not Python, left alone
    ],
)
def test_import_cell_detection(source, expected):
    assert prepare.is_import_cell(source) is expected


def test_every_image_becomes_a_numbered_captioned_figure(book_nb):
    figures = [c for c in book_nb.cells if "figure" in c.metadata.get("mystnb", {})]
    assert [f.metadata["mystnb"]["figure"]["name"] for f in figures] == ["fig-07-1", "fig-07-2", "fig-07-3"]
    captions = [f.metadata["mystnb"]["figure"]["caption"] for f in figures]
    assert captions[0] == "1\\. First section (notebook 07, figure 1 of 3)"  # the dot escaped: not a list
    assert captions[2] == "2\\. Second $x$ section (notebook 07, figure 3 of 3)"
    for f in figures:  # one image per captioned cell, nothing else wrapped into the figure
        assert [prepare.is_image_output(o) for o in f.outputs] == [True]


def test_cell_with_several_images_is_split(book_nb):
    sources = [c.source for c in book_nb.cells if c.cell_type == "code"]
    start = sources.index("print('a'); plot(); plot()")
    pieces = [c for c in book_nb.cells if c.cell_type == "code"][start:]
    assert len(pieces) == 3
    assert [o.output_type for o in pieces[0].outputs] == ["stream"]
    assert "figure" not in pieces[0].metadata.get("mystnb", {})
    for piece in pieces[1:]:
        assert piece.source.strip() and "remove-input" in _tags(piece)  # empty cells are skipped by myst-nb
    assert len({c.get("id") for c in book_nb.cells}) == len(book_nb.cells)
    nbformat.validate(book_nb)


def test_source_link_under_title_and_display_math_joined(book_nb):
    title = book_nb.cells[0].source.splitlines()
    assert title[0] == "# 07 · A title"
    assert "[`notebooks/07_title.py`](../07_title.py)" in book_nb.cells[0].source
    section = next(c for c in book_nb.cells if c.cell_type == "markdown" and "First section" in c.source)
    assert "$$a + b$$" in section.source


def test_the_original_is_left_alone():
    nb = _notebook()
    before = nbformat.writes(nb)
    prepare.prepare_notebook(nb, "07", "../07_title.py")
    assert nbformat.writes(nb) == before


def test_numeric_order():
    names = ["13_x.ipynb", "08b_x.ipynb", "02_x.ipynb", "08a_x.ipynb", "10_x.ipynb"]
    ordered = sorted((Path(n) for n in names), key=prepare.notebook_key)
    assert [p.name[:3] for p in ordered] == ["02_", "08a", "08b", "10_", "13_"]


def test_fenced_display_math_left_alone():
    text = "```\n$$a\nb$$\n```\n$$c\nd$$"
    assert prepare.join_display_math(text) == "```\n$$a\nb$$\n```\n$$c d$$"
