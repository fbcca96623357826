"""Command line: ``python -m rope_lib.experiments NAME --profile smoke|full [--out DIR] [--device D] [--seed N]``."""

from __future__ import annotations

import argparse
import sys

from ..utils import PROFILES
from . import REGISTRY, run_experiment
from .common import output_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rope_lib.experiments",
        description=f"Run an experiment and write <out>/<name>.json. Experiments: {', '.join(sorted(REGISTRY))}.",
    )
    parser.add_argument("experiment", help=f"one of: {', '.join(sorted(REGISTRY))}")
    parser.add_argument("--profile", default="smoke", help=f"one of {PROFILES} (default smoke; full needs a GPU)")
    parser.add_argument("--out", default=None, help="output folder (default results/<profile>)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default auto: cuda when present)")
    parser.add_argument("--seed", type=int, default=0, help="seed for training and test samples (default 0)")
    parser.add_argument("--methods", default=None, help="comma-separated method names (default: all)")
    args = parser.parse_args(argv)
    options = {}
    if args.methods is not None:
        options["methods"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        run_experiment(args.experiment, profile=args.profile, device=args.device, seed=args.seed, out=args.out, **options)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(output_path(args.experiment, args.profile, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
