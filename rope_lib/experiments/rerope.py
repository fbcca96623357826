"""ReRoPE and Leaky ReRoPE on the notebook-04 models, without fine-tuning (notebook 05; kexue.fm/archives/9708).

Same models (same checkpoints, through :func:`extrapolation.train_models`), same test samples and the same
evaluation as notebook 04, so every row is comparable with that table. Three groups of rows:

* ``main``: ReRoPE (w = L/2, Su's w256 at L = 512) and Leaky ReRoPE (w = L/4, k = 16), each without log n, with
  log n-dagger and on the log-n-trained model, beside Baseline, NTK-fixed and YaRN - at every test length, so the
  "longer context, lower loss" curve (loss on the last L tokens as the context grows) covers every method.
* ``window``: the window sweep w = L/8 .. L (w = L clips only beyond the training
  length) on both models, at 8x only (Su's sweep).
* ``leak``: the leak sweep k = 64, 32, 16, 8 at w = L/4 and L/2 on the log-n model, at 8x only.
"""

from __future__ import annotations

import functools
import time

from ..data import load_corpus
from ..model import PositionScheme
from .common import experiment_device, output_path, register, results_header, write_json
from .extrapolation import (
    evaluate_rows,
    fixed_scheme,
    make_test_sets,
    profile_threads,
    row_name,
    settings,
    train_models,
    tuned_scheme,
)

NAME = "rerope"
COMPARED_METHODS: tuple[str, ...] = ("Baseline", "NTK-fixed", "YaRN")
WINDOW_FRACTIONS: tuple[float, ...] = (1 / 8, 1 / 4, 3 / 8, 1 / 2, 3 / 4, 1.0)  # Su: 64..512 at L = 512
LEAKS: tuple[float, ...] = (64.0, 32.0, 16.0, 8.0)
SWEEP_MULT = 8  # Su's sweeps are at 8x (train 512, test 4096)

# Su's 8x numbers (REFERENCES.md section 1, kexue.fm/archives/9708), accuracy % (repeated, non-repeated),
# keyed by window as a fraction of L.
SU_WINDOW_LOG_N = {1 / 8: (84.38, 48.14), 1 / 4: (85.47, 48.87), 1 / 2: (85.12, 49.07), 3 / 4: (83.24, 48.62), 1.0: (15.84, 10.83)}
SU_WINDOW_PLAIN = {1 / 8: (69.39, 45.19), 1 / 4: (76.11, 47.82), 1 / 2: (77.90, 48.48), 3 / 4: (70.72, 48.15), 1.0: (7.09, 8.25)}
SU_LEAK_LOG_N = {
    (1 / 4, 64.0): (85.29, 48.96), (1 / 4, 32.0): (85.31, 49.03), (1 / 4, 16.0): (85.15, 49.10), (1 / 4, 8.0): (80.00, 48.11),
    (1 / 2, 64.0): (84.60, 49.03), (1 / 2, 32.0): (84.30, 48.97), (1 / 2, 16.0): (83.59, 48.87), (1 / 2, 8.0): (69.80, 45.72),
}
SU_MAIN = {"ReRoPE": (77.90, 48.48), "ReRoPE-log n-dagger": (82.40, 48.85), "ReRoPE-log n": (85.12, 49.07)}


def rerope_scheme(window: int, leaky_k: float | None = None, *, dagger: bool = False) -> PositionScheme:
    """ReRoPE (or Leaky ReRoPE) attention with the model's own base; ``dagger``: log n at test time only."""
    return PositionScheme({"rope_type": "default"}, log_n=dagger, attention="rerope", window=window, leaky_k=leaky_k)


def _rows(L: int, base: float, d: int) -> dict[str, list]:
    main, window, leak = [], [], []
    variant_of = {"none": "plain", "dagger": "plain", "trained": "log_n"}
    for log_n, variant in variant_of.items():
        for method in COMPARED_METHODS:
            at = functools.partial(tuned_scheme, method, L=L, base=base, d=d, dagger=log_n == "dagger")
            main.append((row_name(method, log_n), variant, at, {"method": method, "log_n": log_n}))
        for label, w, k in (("ReRoPE", L // 2, None), ("Leaky ReRoPE", L // 4, 16.0)):
            at = functools.partial(fixed_scheme, rerope_scheme(w, k, dagger=log_n == "dagger"))
            main.append((row_name(label, log_n), variant, at, {"method": label, "log_n": log_n, "window": w, "leaky_k": k}))
    for frac in WINDOW_FRACTIONS:
        w = max(1, round(frac * L))
        for log_n in ("none", "trained"):
            at = functools.partial(fixed_scheme, rerope_scheme(w))
            info = {"window": w, "window_fraction": frac, "log_n": log_n}
            window.append((f"ReRoPE-w{w}" + ("-log n" if log_n == "trained" else ""), variant_of[log_n], at, info))
    for frac in (1 / 4, 1 / 2):
        w = round(frac * L)
        for k in LEAKS:
            at = functools.partial(fixed_scheme, rerope_scheme(w, k))
            info = {"window": w, "window_fraction": frac, "leaky_k": k, "log_n": "trained"}
            leak.append((f"Leaky ReRoPE-w{w}-k{k:g}-log n", "log_n", at, info))
    return {"main": main, "window": window, "leak": leak}


@register(NAME)
def run(profile: str = "smoke", device: str | None = None, seed: int = 0, out=None, *, progress: bool = True) -> dict:
    """Evaluate ReRoPE / Leaky ReRoPE rows and sweeps on the notebook-04 models; writes ``<out>/rerope.json``."""
    dev = experiment_device(profile, device)
    model_cfg, _, _, ev = settings(profile, seed)
    L, base, d = model_cfg.train_length, model_cfg.rope_base, model_cfg.head_dim
    mults = tuple(ev["multipliers"])
    t_start = time.perf_counter()
    with profile_threads(ev["num_threads"]):
        corpus = load_corpus()
        trained = train_models(profile, dev, seed, corpus=corpus, progress=progress)
        tests = make_test_sets(corpus, L, mults, ev["n_samples"], seed)
        at_sweep = {kind: {m: t for m, t in by_mult.items() if m in (1, SWEEP_MULT)} for kind, by_mult in tests.items()}
        groups = _rows(L, base, d)
        rows = {
            group: evaluate_rows(trained, tests if group == "main" else at_sweep, jobs, L=L,
                                 batch_tokens=ev["batch_tokens"], progress=progress)
            for group, jobs in groups.items()
        }
    results = {
        **results_header(NAME, profile, seed, dev),
        "config": {
            "model": model_cfg.to_dict(),
            "eval": {
                "train_length": L,
                "multipliers": list(mults),
                "sweep_multiplier": SWEEP_MULT,
                "n_samples": ev["n_samples"],
                "window_fractions": list(WINDOW_FRACTIONS),
                "leaks": list(LEAKS),
                "num_threads": ev["num_threads"],
                "samples": "identical to the extrapolation experiment (same seed, nested windows)",
            },
        },
        "timings": {"total_s": time.perf_counter() - t_start},
        "rows": rows,
    }
    write_json(results, output_path(NAME, profile, out))
    return results
