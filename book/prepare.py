"""Prepare the book's source folder (`make book`): copies of README.md and the executed notebooks, never the originals.

    python book/prepare.py build/book

writes build/book/index.md (README.md plus a hidden toctree of the notebooks in numeric order), build/book/notebooks/
executed/NN_*.ipynb, and every local file README.md links to (figures, the notebooks' .py sources, results files) at
its own relative path, so README's links keep working inside the site. Only in the copies of the notebooks:

- the cell tagged "parameters" is collapsed (hide-cell), papermill's "injected-parameters" cell is removed, and a code
  cell that opens with imports and is mostly imports is collapsed to its outputs (hide-input): a page starts with the
  story, not with boilerplate;
- every image output gets a figure number and a caption (myst-nb's ``mystnb.figure`` cell metadata), the caption from
  the markdown heading the figure falls under plus its position in the notebook; a cell with several images, or with
  text outputs beside an image, is split into one cell per figure (myst-nb wraps every display output of a captioned
  cell in the figure), the extra cells with their (placeholder) input removed;
- display math ($$...$$) spanning several lines is joined into one line (see join_display_math);
- a line under the title links to the notebook's jupytext source, notebooks/NN_*.py.

Nothing is executed: the outputs are the committed ones.
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_ID = re.compile(r"^(\d+[a-z]?)_")
# [text](target) and ![alt](target) links with a relative target (no scheme, no anchor-only link)
LOCAL_LINK = re.compile(r"\]\((?!#|[a-zA-Z][a-zA-Z0-9+.-]*:)([^)\s#]+)(?:#[^)\s]*)?\)")


def notebook_key(path: Path) -> tuple[int, str]:
    """Numeric order: 01 < 02 < ... < 08a < 08b < 09 < ... < 13."""
    match = NOTEBOOK_ID.match(path.name)
    number = match.group(1) if match else path.stem
    digits = re.match(r"\d+", number)
    return (int(digits.group(0)) if digits else 10**6, number)


def is_image_output(output) -> bool:
    return output.get("output_type") in ("display_data", "execute_result") and any(
        key.startswith("image/") for key in output.get("data", {})
    )


def is_import_cell(source: str) -> bool:
    """A code cell that opens with imports and is at least half imports (an import wall, perhaps with setup)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:  # IPython magics: leave the cell alone
        return False
    if not body or not isinstance(body[0], (ast.Import, ast.ImportFrom)):
        return False
    imports = sum(isinstance(node, (ast.Import, ast.ImportFrom)) for node in body)
    return 2 * imports >= len(body)


def headings(markdown: str) -> list[str]:
    """The ATX headings of a markdown cell, in order, without their #s (fenced code skipped)."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6}\s", line):
            found.append(line.lstrip("#").strip())
    return found


def caption_text(heading: str, position: int, total: int, notebook: str) -> str:
    # "1. Title" would parse as an ordered list inside the caption: escape the number's dot
    heading = re.sub(r"^(\d+)\.", r"\1\\.", heading) if heading else f"Notebook {notebook}"
    return f"{heading} (notebook {notebook}, figure {position} of {total})"


def join_display_math(markdown: str) -> str:
    """Each $$...$$ on one line (outside fenced code). Written for Jupyter, which reads math before Markdown, a display
    block may continue on a line that Markdown reads otherwise (a line starting "+ " opens a list); joined, it is one
    display formula wherever it stands (myst_dmath_double_inline in conf.py)."""
    parts = re.split(r"(^[ \t]*(?:```|~~~).*?^[ \t]*(?:```|~~~)[^\n]*$)", markdown, flags=re.M | re.S)
    for i in range(0, len(parts), 2):  # even parts are outside fences
        parts[i] = re.sub(
            r"\$\$(.+?)\$\$",
            lambda m: "$$" + " ".join(line.strip() for line in m.group(1).splitlines()).strip() + "$$",
            parts[i],
            flags=re.S,
        )
    return "".join(parts)


def add_tags(cell, *tags: str) -> None:
    existing = list(cell.metadata.get("tags", []))
    cell.metadata["tags"] = existing + [t for t in tags if t not in existing]


def split_figure_cells(cell) -> list:
    """One cell per image output; consecutive non-image outputs stay together. The first piece keeps the source."""
    if not any(is_image_output(o) for o in cell.get("outputs", [])):
        return [cell]
    groups: list[list] = []
    for output in cell.outputs:
        if is_image_output(output) or not groups or is_image_output(groups[-1][0]):
            groups.append([output])
        else:
            groups[-1].append(output)
    pieces = []
    for i, outputs in enumerate(groups):
        # myst-nb skips a cell with an empty source: the extra pieces get a comment, hidden with their input
        piece = (
            copy.deepcopy(cell) if i == 0 else nbformat.v4.new_code_cell(source=f"# output {i + 1} of the cell above")
        )
        piece.outputs = outputs
        if i > 0:
            piece.execution_count = cell.get("execution_count")
            piece.metadata["tags"] = ["remove-input"]
            if "id" in cell:
                piece["id"] = f"{cell['id'][:56]}-fig{i}"
            else:
                piece.pop("id", None)
        pieces.append(piece)
    return pieces


def prepare_notebook(nb, notebook: str, source_link: str | None = None):
    """The book's copy of one executed notebook (``nb`` is left as it was)."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        cells.extend(split_figure_cells(cell) if cell.cell_type == "code" else [cell])
    total = sum(1 for c in cells if c.cell_type == "code" and any(is_image_output(o) for o in c.outputs))
    heading, position = "", 0
    for cell in cells:
        if cell.cell_type == "markdown":
            cell.source = join_display_math(cell.source)
            heading = (headings(cell.source) or [heading])[-1]
            continue
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            add_tags(cell, "remove-cell")
        elif "parameters" in tags:
            add_tags(cell, "hide-cell")
        elif is_import_cell(cell.source):
            add_tags(cell, "hide-input")
        if any(is_image_output(o) for o in cell.outputs):
            position += 1
            figure = {"caption": caption_text(heading, position, total, notebook), "name": f"fig-{notebook}-{position}"}
            cell.metadata.setdefault("mystnb", {})["figure"] = figure
    if source_link:
        shown = f"notebooks/{Path(source_link).name}"
        note = f"*Source:* [`{shown}`]({source_link}) (jupytext); this page is its executed copy."
        first = next((c for c in cells if c.cell_type == "markdown"), None)
        if first is not None and headings(first.source):
            lines = first.source.splitlines()
            title = next(i for i, line in enumerate(lines) if re.match(r"#{1,6}\s", line))
            first.source = "\n".join(lines[: title + 1] + ["", note, ""] + lines[title + 1 :])
        else:
            cells.insert(0, nbformat.v4.new_markdown_cell(note))
    nb.cells = cells
    return nb


def local_links(markdown: str) -> list[str]:
    return sorted({m.group(1) for m in LOCAL_LINK.finditer(markdown)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the book's source folder (build/book)")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    executed = sorted((ROOT / "notebooks" / "executed").glob("[0-9]*.ipynb"), key=notebook_key)
    executed = [p for p in executed if not p.name.endswith(".tmp.ipynb")]
    (out / "notebooks" / "executed").mkdir(parents=True, exist_ok=True)
    figures = 0
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        source = ROOT / "notebooks" / f"{path.stem}.py"
        link = None
        if source.exists():
            shutil.copy2(source, out / "notebooks" / source.name)
            link = f"../{source.name}"
        number = NOTEBOOK_ID.match(path.name).group(1) if NOTEBOOK_ID.match(path.name) else path.stem
        book_nb = prepare_notebook(nb, number, link)
        figures += sum("figure" in c.metadata.get("mystnb", {}) for c in book_nb.cells)
        nbformat.write(book_nb, out / "notebooks" / "executed" / path.name)

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    copied, missing = 0, []
    for target in local_links(readme):
        src = (ROOT / target).resolve()
        if not src.exists():
            missing.append(target)
        elif src.is_file() and src.is_relative_to(ROOT) and src.suffix != ".ipynb":
            dest = out / src.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
            copied += 1
    toctree = "\n".join(f"notebooks/executed/{p.stem}" for p in executed)
    index = f"{readme.rstrip()}\n\n```{{toctree}}\n:hidden:\n:maxdepth: 1\n:caption: Notebooks\n\n{toctree}\n```\n"
    (out / "index.md").write_text(index, encoding="utf-8")
    if missing:
        print(f"prepare: README.md links to files that do not exist: {', '.join(missing)}", file=sys.stderr)
    print(f"prepare: {len(executed)} notebooks ({figures} figures captioned), README + {copied} linked files -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
