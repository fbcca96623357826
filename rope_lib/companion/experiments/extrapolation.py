"""Train short, test long: Su's length-extrapolation table on a small byte-level LM (notebook 04).

Two models are trained at length L with plain RoPE: one without and one with log n in training
(``ModelConfig.train_log_n``; Su's "-log n" rows). Each is then evaluated, *without fine-tuning*, at
L' = 2L, 4L, 8L, 16L on natural text (Su's non-repeated set; his repeated set, a half-length sample repeated,
at 8x only, as in his table) with every method of :data:`METHODS`; the model trained without log n also with
"log n-dagger" (log n at test time only).

Scale rule: every static method is tuned to the test length, s = L'/L, as in Su's table (his 4096/512 runs use
k = 8). The dynamic methods (Dynamic NTK, Dynamic YaRN) choose their scale from the length each token sees,
s = max(1, n/L), evaluated as a decoder with a cache of un-rotated keys would (``PositionScheme.dynamic_blocks``):
positions up to L are not scaled at all. (A plain forward over the whole sequence would use s = L'/L for every
position and coincide with the static method; see :mod:`rope_lib.companion.model`.)

Test samples are nested (``rope_lib.companion.data.make_test_set(max_length=16L)``): every test length scores the last
L' bytes of the same windows, so the loss on the last L tokens, read at each length, is Su's "longer context, lower
loss" curve (kexue.fm/archives/9948) for free.

Does the model copy? (:func:`copy_test`): per seed, ``copy`` holds the per-window accuracy on the first and on the
second half of each window, for both models at L and for Baseline and YaRN at 8x, on both test sets. The second half
of a repeated window repeats its first half and holds the same bytes, at the same positions, as the second half of
the non-repeated window.

The shared pieces (profiles, the method table, training, test sets, row evaluation) live in
:mod:`rope_lib.companion.experiments.harness`; Su's numbers in :mod:`rope_lib.companion.experiments.references`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data import TEST_SETS
from ..evaluate import token_metrics
from .common import check_names, register
from .harness import LOG_N_VARIANTS, METHOD_NOTES, METHODS, Harness, finish, method_rows, run_seeds, scheme_for

NAME = "extrapolation"
# Su's table has the repeated set at 8x only; scoring it at the other lengths too would cost a third more of this
# experiment's evaluation, mostly at 16x (notebook 04's budget: 6 minutes, smoke profile, 2 cores), for columns
# nothing is decided on.
REPEATED_MULTS: tuple[int, ...] = (8,)
# The copy test (notebook 04, "Does the model copy?"): both models at L, and these rows (plain model) at COPY_MULT.
COPY_ROWS: tuple[str, ...] = ("Baseline", "YaRN")
COPY_MULT = 8


def copy_halves(model, samples, scheme, acc_per_sample, *, batch_tokens: int) -> dict:
    """Per-window accuracy (%) on the first and on the second half of each window's tokens.

    Why: the second half of a repeated window is a verbatim copy of its first half, and the same bytes at the same
    positions as the second half of the non-repeated window; comparing second halves across the two sets asks
    whether the model copies. Prediction t scores token t + 1, so with ``split = T/2 - 1`` the first half scores
    tokens 1 .. T/2 - 1 and the second half tokens T/2 .. T - 1.

    Args:
        model: a trained model; samples: (n, T) int64; scheme: its PositionScheme (None: plain RoPE).
        acc_per_sample: (n,) the accuracy (fraction) the experiment stores for these windows; the halves,
            weighted by their token counts, must give it back (raises AssertionError otherwise).

    Returns:
        {"first_half_acc_pct": (n,) float64, "second_half_acc_pct": (n,) float64}.
    """
    hit = token_metrics(model, samples, scheme, batch_tokens=batch_tokens)["hit_matrix"]  # (n, T - 1) of 0/1
    n_pred = hit.shape[1]
    split = (n_pred + 1) // 2 - 1
    first, second = 100 * hit[:, :split].mean(1), 100 * hit[:, split:].mean(1)
    recombined = (split * first + (n_pred - split) * second) / n_pred
    # 1e-3 points: the evaluation cache keeps 6 significant digits; one token of a window moves it by > 0.01 points
    np.testing.assert_allclose(recombined, 100 * np.asarray(acc_per_sample), rtol=0, atol=1e-3)
    return {"first_half_acc_pct": first, "second_half_acc_pct": second}


def copy_test(h: Harness, train_length_metrics: dict, rows: dict, *, at_mult: bool) -> dict:
    """{what: {kind: :func:`copy_halves`}} for notebook 04's copy test, on one seed's own windows: what = "plain"
    and "log_n" (the two models at L, where the copy stands L/2 back) and, if ``at_mult`` (both test sets were scored
    at COPY_MULT), the COPY_ROWS rows at COPY_MULT (the copy 4L back at 8x). Checked against the scores the
    experiment stores for the same windows (``train_length_metrics``, ``rows``)."""
    jobs = {variant: (variant, 1, None, train_length_metrics[variant]) for variant in ("plain", "log_n")}
    for method in (m for m in COPY_ROWS if at_mult and m in rows):  # a --methods subset may lack a row
        scheme = scheme_for(method, COPY_MULT, h.L, h.base, h.head_dim)
        by_kind = {kind: rows[method]["metrics"][kind][str(COPY_MULT)] for kind in TEST_SETS}
        jobs[method] = (rows[method]["model"], COPY_MULT, scheme, by_kind)
    return {
        what: {
            kind: copy_halves(
                h.trained[variant][0],
                h.tests[kind][mult],
                scheme,
                stored[kind]["acc_per_sample"],
                batch_tokens=h.batch_tokens,
            )
            for kind in TEST_SETS
        }
        for what, (variant, mult, scheme, stored) in jobs.items()
    }


@register(NAME, list_options={"methods": METHODS})
def run(
    profile: str = "smoke",
    device: str | None = None,
    seed: int = 0,
    out=None,
    *,
    methods: Sequence[str] | None = None,
    progress: bool = True,
) -> dict:
    """For every training seed: train (or load) both models, evaluate every method on the seed's own test windows
    and run the copy test (:func:`copy_test`); write ``<out>/extrapolation.json`` (one run per seed); returns the dict.

    Args:
        profile: "smoke" (CPU, minutes) or "full" (one GPU; refused on CPU).
        device: None -> cuda when present, else cpu.
        seed: the first training seed (init, batch order; the profile's ``seeds`` run seed, seed + 1, ...) and the
            test-window seed.
        out: output folder (default ``rope_lib.results_dir(profile)``).
        methods: subset of :data:`~rope_lib.companion.experiments.harness.METHODS` (default all, in table order).
        progress: tqdm bars (silenced by ``TQDM_DISABLE=1``).
    """
    methods = check_names("methods", list(METHODS) if methods is None else methods, METHODS)

    def one_seed(h: Harness) -> dict:
        repeated = [m for m in h.mults if m in REPEATED_MULTS]  # a profile without 8x: the repeated set at L only
        at_L = h.at_train_length()
        train_length_metrics = {variant: h.score(variant, at_L) for variant in h.trained}
        rows = h.evaluate(
            method_rows(methods, LOG_N_VARIANTS, L=h.L, base=h.base, d=h.head_dim), repeated_mults=repeated
        )
        scale_rule = "static methods: s = L'/L (tuned to the test length, as Su); dynamic: s = max(1, n/L) per token"
        config = {
            "eval": h.eval_config(
                scale_rule=scale_rule,
                methods={m: METHOD_NOTES[m] for m in methods},
                repeated_multipliers=repeated,
            )
        }
        copy = copy_test(h, train_length_metrics, rows, at_mult=COPY_MULT in repeated)
        return finish(NAME, h, config=config, train_length_metrics=train_length_metrics, rows=rows, copy=copy)

    return run_seeds(NAME, profile, device, seed, out, one_seed, progress=progress)
