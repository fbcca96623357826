"""ReRoPE and Leaky ReRoPE on the notebook-04 models, without fine-tuning (notebook 05; kexue.fm/archives/9708).

Same models (same checkpoints, through the harness), same test samples and the same
evaluation as notebook 04, so every row is comparable with that table. Three groups of rows:

* ``main``: ReRoPE (w = L/2, Su's w256 at L = 512) and Leaky ReRoPE (w = L/4, k = 16), each without log n, with
  log n-dagger and on the log-n-trained model, beside Baseline, NTK-fixed and YaRN - at every test length, so the
  "longer context, lower loss" curve (loss on the last L tokens as the context grows) covers every method.
* ``window``: the window sweep w = L/8 .. L (w = L clips only beyond the training
  length) on both models, at 8x only (Su's sweep).
* ``leak``: the leak sweep k = 64, 32, 16, 8 at w = L/4 and L/2 on the log-n model, at 8x only.
"""

from __future__ import annotations

from .common import register
from .harness import (
    MODEL_OF_LOG_N,
    Harness,
    Row,
    at_every_length,
    finish,
    method_rows,
    rerope_scheme,
    row_name,
    run_seeds,
)

NAME = "rerope"
COMPARED_METHODS: tuple[str, ...] = ("Baseline", "NTK-fixed", "YaRN")
WINDOW_FRACTIONS: tuple[float, ...] = (1 / 8, 1 / 4, 3 / 8, 1 / 2, 3 / 4, 1.0)  # Su: 64..512 at L = 512
LEAKS: tuple[float, ...] = (64.0, 32.0, 16.0, 8.0)
SWEEP_MULT = 8  # Su's sweeps are at 8x (train 512, test 4096)


def _rows(L: int, base: float, d: int) -> dict[str, list[Row]]:
    main, window, leak = [], [], []
    for log_n, variant in MODEL_OF_LOG_N.items():
        main += method_rows(COMPARED_METHODS, [log_n], L=L, base=base, d=d)
        for label, w, k in (("ReRoPE", L // 2, None), ("Leaky ReRoPE", L // 4, 16.0)):
            at = at_every_length(rerope_scheme(w, k, dagger=log_n == "dagger"))
            info = {"method": label, "log_n": log_n, "window": w, "leaky_k": k}
            main.append((row_name(label, log_n), variant, at, info))
    for frac in WINDOW_FRACTIONS:
        w = max(1, round(frac * L))
        for log_n in ("none", "trained"):
            at = at_every_length(rerope_scheme(w))
            info = {"window": w, "window_fraction": frac, "log_n": log_n}
            window.append((f"ReRoPE-w{w}" + ("-log n" if log_n == "trained" else ""), MODEL_OF_LOG_N[log_n], at, info))
    for frac in (1 / 4, 1 / 2):
        w = round(frac * L)
        for k in LEAKS:
            at = at_every_length(rerope_scheme(w, k))
            info = {"window": w, "window_fraction": frac, "leaky_k": k, "log_n": "trained"}
            leak.append((f"Leaky ReRoPE-w{w}-k{k:g}-log n", "log_n", at, info))
    return {"main": main, "window": window, "leak": leak}


@register(NAME)
def run(profile: str = "smoke", device: str | None = None, seed: int = 0, out=None, *, progress: bool = True) -> dict:
    """Evaluate ReRoPE / Leaky ReRoPE rows and sweeps on the notebook-04 models; writes ``<out>/rerope.json``."""

    def one_seed(h: Harness) -> dict:
        groups = _rows(h.L, h.base, h.head_dim)
        rows = {
            # main rows also at L: ReRoPE clips inside the training length, and the longer-context curve starts there
            group: h.evaluate(jobs, train_length=True) if group == "main" else h.evaluate(jobs, mults=[SWEEP_MULT])
            for group, jobs in groups.items()
        }
        config = {
            "eval": h.eval_config(
                sweep_multiplier=SWEEP_MULT,
                window_fractions=list(WINDOW_FRACTIONS),
                leaks=list(LEAKS),
                samples="identical to the extrapolation experiment (same seeds, nested windows)",
            )
        }
        return finish(NAME, h, config=config, rows=rows)

    return run_seeds(NAME, profile, device, seed, out, one_seed, progress=progress)
