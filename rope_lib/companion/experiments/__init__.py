"""Experiments: one function per experiment, registered by name, each writing ``<out>/<name>.json``.

Use from Python (notebooks)::

    from rope_lib.companion.experiments import run_experiment
    results = run_experiment("extrapolation", profile="smoke")

or from a shell, without Jupyter::

    python -m rope_lib.companion.experiments extrapolation --profile smoke --out results/smoke

A new experiment is a module with a function decorated by ``@register("name")`` taking
``(profile, device, seed, out, **options)`` and returning its results dict; import it below.
"""

from . import (
    after_su,  # noqa: E402,F401  (registers "after_su")
    base_bound,  # noqa: E402,F401  (registers "base_bound")
    extrapolation,  # noqa: E402,F401  (registers "extrapolation")
    finetune,  # noqa: E402,F401  (registers "finetune")
    inverse_leaky,  # noqa: E402,F401  (registers "inverse_leaky")
    rerope_eval,  # noqa: E402,F401  (registers "rerope")
    transformers_rows,  # noqa: E402,F401  (registers "transformers")
)
from .common import (
    EXTRA_MODELS,
    LIST_OPTIONS,
    REGISTRY,
    check_names,
    git_sha,
    load_results,
    package_versions,
    register,
    run_experiment,
    write_json,
)

EXPERIMENTS: tuple[str, ...] = tuple(sorted(REGISTRY))

__all__ = [
    "EXPERIMENTS",
    "EXTRA_MODELS",
    "LIST_OPTIONS",
    "REGISTRY",
    "check_names",
    "git_sha",
    "load_results",
    "package_versions",
    "register",
    "run_experiment",
    "write_json",
]
