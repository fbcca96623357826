"""Command line of the experiments.

``python -m rope_lib.companion.experiments NAME --profile smoke|full [--out DIR] [--device D] [--seed N]``.

``NAME`` = ``train`` trains (or finds in the checkpoint cache) every model of every training seed that the
experiments share, so that the notebooks which read them only evaluate.

Experiments that run a choice of rows declare it (``register(..., list_options=...)``): ``--methods`` for
extrapolation, ``--variants`` for inverse_leaky. ``--list`` prints every experiment with its names. Every error is
one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import sys

from ..runtime import PROFILES
from . import EXTRA_MODELS, LIST_OPTIONS, REGISTRY, run_experiment
from .common import check_names, output_path
from .harness import train_all

TRAIN = "train"  # not an experiment: trains every model the experiments share


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints the whole usage first; one line is enough
        self.exit(2, f"error: {message} (see --help)\n")


def _catalogue() -> str:
    lines = []
    for name in sorted(REGISTRY):
        opts = LIST_OPTIONS.get(name, {})
        desc = "; ".join(f"--{opt}: {', '.join(names)}" for opt, names in opts.items()) or "no list options"
        lines.append(f"  {name}: {desc}")
    return "experiments and the names their options accept:\n" + "\n".join(lines)


def _split(value: str) -> list[str]:
    return [m.strip() for m in value.split(",") if m.strip()]


def main(argv: list[str] | None = None) -> int:
    option_names = sorted({opt for opts in LIST_OPTIONS.values() for opt in opts})
    parser = _OneLineParser(
        prog="python -m rope_lib.companion.experiments",
        description="Run an experiment and write <out>/<name>.json.",
        epilog=_catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "experiment", nargs="?", help=f"one of: {', '.join(sorted(REGISTRY))}; or {TRAIN} (every shared model)"
    )
    parser.add_argument("--list", action="store_true", help="print the experiments and their method/variant names")
    parser.add_argument("--profile", default="smoke", help=f"one of {PROFILES} (default smoke; full needs a GPU)")
    parser.add_argument("--out", default=None, help="output folder (default results/<profile>)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default auto: cuda when present)")
    parser.add_argument("--seed", type=int, default=0, help="first training seed and test-window seed (default 0)")
    for opt in option_names:
        users = [n for n in sorted(REGISTRY) if opt in LIST_OPTIONS.get(n, {})]
        parser.add_argument(
            f"--{opt}", default=None, help=f"comma-separated {opt} ({', '.join(users)} only; default all)"
        )
    args = parser.parse_args(argv)
    if args.list:
        print(_catalogue())
        return 0
    if args.experiment is None:
        parser.error("the experiment name is required; one of: " + ", ".join(sorted(REGISTRY)))
    try:
        if args.experiment == TRAIN:
            return _train(args)
        check_names("experiment", [args.experiment], sorted(REGISTRY))
        accepted = LIST_OPTIONS[args.experiment]
        options = {}
        for opt in option_names:
            value = getattr(args, opt)
            if value is None:
                continue
            if opt not in accepted:
                takes = ", ".join(f"--{o}" for o in accepted) or "no list options"
                raise ValueError(f"experiment {args.experiment!r} does not take --{opt} (it takes {takes})")
            options[opt] = check_names(opt, _split(value), accepted[opt])
        run_experiment(
            args.experiment, profile=args.profile, device=args.device, seed=args.seed, out=args.out, **options
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(output_path(args.experiment, args.profile, args.out))
    return 0


def _train(args) -> int:
    if args.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {args.seed}")
    extra = [functools.partial(fn, args.profile) for fn in EXTRA_MODELS.values()]
    for m in train_all(args.profile, args.device, args.seed, extra):
        print(f"seed {m['seed']} {m['variant']}: {'cached' if m['cache_hit'] else 'trained'} ({m['key'][:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
