"""No executed notebook prints a line wider than 100 characters.

A reader sees the outputs in the rendered notebook, on a code host and in a terminal: a longer line wraps inside a
number there, or scrolls sideways. Tables and formulas are exempt only where they render (HTML, Markdown or LaTeX beside
the text); what is printed as text, verdict lines included, must fit.
"""

from __future__ import annotations

import json

import pytest

from rope_lib.companion.runtime import repo_root
from rope_lib.companion.verdicts import LINE_WIDTH

EXECUTED = sorted((repo_root() / "notebooks" / "executed").glob("*.ipynb"))


def printed_lines(output: dict) -> list[str]:
    """The text lines a reader sees for one output (text/plain only where nothing richer renders)."""
    if output.get("output_type") == "stream":
        return "".join(output.get("text", "")).splitlines()
    data = output.get("data", {})
    rich = {"text/html", "text/markdown", "text/latex", "image/png", "image/svg+xml"}  # rendered, not read as text
    if "text/plain" in data and not rich & set(data):
        return "".join(data["text/plain"]).splitlines()
    return []


def test_width_is_one_number_for_the_whole_companion():
    assert LINE_WIDTH == 100


def test_printed_lines_reads_streams_and_plain_text_but_not_rendered_tables():
    assert printed_lines({"output_type": "stream", "text": ["a\n", "bb\n"]}) == ["a", "bb"]
    table = {"output_type": "display_data", "data": {"text/plain": "x" * 300, "text/html": "<table/>"}}
    assert printed_lines(table) == []
    result = {"output_type": "execute_result", "data": {"text/plain": ["(1, 2)"]}}
    assert printed_lines(result) == ["(1, 2)"]


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_no_printed_line_is_wider_than_100_characters(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    wide = [
        f"cell {i}: {len(line)} chars: {line[:60]}..."
        for i, cell in enumerate(cells)
        for output in cell.get("outputs", [])
        for line in printed_lines(output)
        if len(line) > LINE_WIDTH
    ]
    assert not wide, f"{path.name}: {len(wide)} printed lines over {LINE_WIDTH} characters:\n" + "\n".join(wide[:10])
