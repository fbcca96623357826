"""Wall time of the README's commands on a fresh clone, recorded in ``results/bench/pipeline.json``.

The procedure every change is checked with before it lands, timed:

1. ``git clone`` of this checkout's HEAD (committed files only) into a temporary folder;
2. ``CI=true bash .ci/run`` there, before anything else (it builds the virtual environment, then lint, unit
   tests, nbval and the figure check against the committed figures);
3. ``make`` there, from an empty cache (the checkpoints and evaluations CI cached are removed first, so nothing
   is reused), step by step: the shared models (``make models``), then every notebook (``make nb N=NN``), each
   timed on its own - their sum is what ``make`` costs on a fresh clone;
4. ``git status --porcelain`` there: the committed files that ``make`` changed (expected: timing fields only).

Budgets (2 cores): ``.ci/run`` and ``make`` each <= 30 min, every notebook <= 5 min; the JSON records each
number beside its budget. Other processes on the machine slow every step: run it on an idle machine. Usage::

    python benchmarks/pipeline_timings.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = {"ci": 30 * 60, "make": 30 * 60, "notebook": 5 * 60}


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, check=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default=None, help="clone into this (new) folder and keep it")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench" / "pipeline.json"))
    args = parser.parse_args()
    tmp = None if args.keep else tempfile.mkdtemp(prefix="rope-fresh-")
    fresh = Path(args.keep) if args.keep else Path(tmp) / "fresh"
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(fresh)], check=True)
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=fresh, capture_output=True, text=True).stdout.strip()
        ci_s = timed(["bash", ".ci/run"], fresh, {"CI": "true"})
        shutil.rmtree(fresh / ".cache", ignore_errors=True)
        for stamp in (fresh / "build").glob("models-*.stamp"):
            stamp.unlink()
        models_s = timed(["make", "models"], fresh)
        notebooks = {}
        for src in sorted((fresh / "notebooks").glob("[0-9][0-9]_*.py")):
            notebooks[src.stem] = timed(["make", "nb", f"N={src.stem[:2]}"], fresh)
        changed = subprocess.run(
            ["git", "status", "--porcelain"], cwd=fresh, capture_output=True, text=True, check=True
        ).stdout.split("\n")
        make_s = models_s + sum(notebooks.values())
        result = {
            "git_sha": sha,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "budget_s": BUDGET_S,
            "ci_run_s": round(ci_s, 1),
            "make_s": round(make_s, 1),
            "make_models_s": round(models_s, 1),
            "notebook_s": {k: round(v, 1) for k, v in notebooks.items()},
            "within_budget": {
                "ci": ci_s <= BUDGET_S["ci"],
                "make": make_s <= BUDGET_S["make"],
                "every_notebook": all(v <= BUDGET_S["notebook"] for v in notebooks.values()),
            },
            "changed_by_make": sorted(line[3:] for line in changed if line.strip()),
        }
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0 if all(result["within_budget"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
