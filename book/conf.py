"""Sphinx configuration of the book (`make book`): the committed executed notebooks rendered, never re-executed.

Sources are the copies book/prepare.py writes into build/book/ (sphinx-build -c book build/book ...).
"""

project = "rope-companion"
author = "rope-companion"
copyright = "rope-companion authors"

extensions = [
    "myst_nb",
    # MathJax 3 shipped inside the package and copied into _static/mathjax: math renders offline, no CDN
    "sphinx-mathjax-offline",
]

root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "**.tmp.ipynb"]

# The outputs are the committed ones: nothing runs at build time.
nb_execution_mode = "off"
nb_merge_streams = True
# Markdown outputs (the notebooks' tables) parsed as MyST, which has pipe tables; myst-nb's default, commonmark, not.
nb_render_markdown_format = "myst"
# $...$ / $$...$$ in README and the notebooks' markdown; GitHub-style anchors for in-page links.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# $$...$$ inside a paragraph or a list item (as Jupyter allows) is display math, not two empty inline formulas.
myst_dmath_double_inline = True
# Figures captioned by prepare.py get a number ("Fig. N").
numfig = True
# README and the notebooks were written for GitHub: some relative links point outside the book (rope_lib/, tests/).
suppress_warnings = ["myst.xref_missing", "myst.header"]

html_theme = "sphinx_book_theme"
html_title = "rope-companion"
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
}
html_show_sourcelink = False
html_last_updated_fmt = None


def setup(app):
    # MathJax on every page, not only on pages with math: the navigation's titles carry math (notebook 06's $k < 1$).
    app.set_html_assets_policy("always")
