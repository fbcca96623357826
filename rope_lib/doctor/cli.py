"""The doctor's command line, ``python -m rope_lib.doctor CONFIG.json [--context N] [--json]``: the report of a
transformers config file (see :mod:`rope_lib.doctor`). Exit status 0 with or without warnings, 2 on a config it
cannot read (the message names the key).

The figure of the same report is drawn by the companion, which has the plotting helper (matplotlib, the
``[notebooks]`` extra): ``python -m rope_lib.companion.atlas CONFIG.json [--context N] --figure PATH`` takes the same
arguments (:func:`parser`), so the library never imports the companion.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import Report, diagnose


def parser(prog: str = "python -m rope_lib.doctor") -> argparse.ArgumentParser:
    """The doctor's command line (the companion's figure command adds ``--figure`` to it)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="What a transformers config does to each RoPE frequency pair, and whether it holds a context.",
        epilog="The report as a figure: python -m rope_lib.companion.atlas CONFIG.json --figure PATH",
    )
    p.add_argument("config", help="a config.json (transformers v4 rope_scaling or v5 rope_parameters spelling)")
    p.add_argument("--context", type=int, default=None, help="target context (default: max_position_embeddings)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    return p


def report_or_exit(args: argparse.Namespace) -> Report:
    """:func:`diagnose` for parsed arguments; a config it cannot read prints one line naming the key and exits 2."""
    try:
        return diagnose(args.config, context=args.context)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def show(report: Report, as_json: bool) -> None:
    print(json.dumps(report.to_dict(), indent=1) if as_json else report.text())


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        show(report_or_exit(args), args.json)
    except SystemExit as stop:
        return int(stop.code)
    return 0
