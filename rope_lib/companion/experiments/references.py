"""Every published number the experiments and notebooks compare with, each with its source.

Su's small-model tables (kexue.fm/archives 9706, 9708, 9728, 9859): a ~100M-parameter GAU language model trained
at L = 512 on Chinese text and tested at 4096 (8x) without fine-tuning; per-token next-token accuracy in %.
"repeated": a sample followed by itself; "non-repeated": natural long text (the column Su says to trust).
"-log n": trained with the log n attention scale; "-log n-dagger": log n at test time only. Su's data, code and
hyper-parameters are unpublished, so the notebooks compare orderings and gaps, never absolute values.
"""

from __future__ import annotations

# Accuracy at the training length 512, by how the model was trained (9706's table: every row of the plain model
# reads 49.41, every row of the log-n model 49.40).
SU_TRAIN_ACC: dict[str, float] = {"none": 49.41, "trained": 49.40}

# 8x (repeated, non-repeated). Baseline, PI and NTK rows: the table of 9706 (also in 9708). YaRN rows: 9859
# ("Baseline-YaRN", "Baseline-log n-YaRN"), whose own NTK row reads 60.57 / 42.20 (a different NTK setting).
SU_8X: dict[str, tuple[float, float]] = {
    "Baseline": (24.17, 23.16),
    "Baseline-log n": (24.60, 24.02),
    "PI": (15.04, 13.54),
    "PI-log n": (14.99, 16.51),
    "NTK-old": (51.28, 39.27),
    "NTK-old-log n": (61.71, 43.75),
    "NTK-fixed": (51.86, 39.61),
    "NTK-fixed-log n-dagger": (55.94, 41.11),
    "NTK-fixed-log n": (62.85, 44.14),
    "NTK-mixed": (53.09, 40.12),
    "NTK-mixed-log n-dagger": (59.11, 42.38),
    "NTK-mixed-log n": (68.91, 45.41),
    "YaRN": (80.10, 47.45),
    "YaRN-log n": (82.57, 46.52),
}

# ReRoPE-w256 (w = L/2) rows of 9708's table, 8x (repeated, non-repeated).
SU_REROPE_MAIN: dict[str, tuple[float, float]] = {
    "ReRoPE": (77.90, 48.48),
    "ReRoPE-log n-dagger": (82.40, 48.85),
    "ReRoPE-log n": (85.12, 49.07),
}

# 9708's window sweep at 8x, keyed by the window as a fraction of L (w64 .. w512 at L = 512).
SU_WINDOW_LOG_N: dict[float, tuple[float, float]] = {
    1 / 8: (84.38, 48.14),
    1 / 4: (85.47, 48.87),
    1 / 2: (85.12, 49.07),
    3 / 4: (83.24, 48.62),
    1.0: (15.84, 10.83),
}
SU_WINDOW_PLAIN: dict[float, tuple[float, float]] = {
    1 / 8: (69.39, 45.19),
    1 / 4: (76.11, 47.82),
    1 / 2: (77.90, 48.48),
    3 / 4: (70.72, 48.15),
    1.0: (7.09, 8.25),
}

# 9708's Leaky ReRoPE-log n sweep at 8x, keyed by (window as a fraction of L, leak k).
SU_LEAK_LOG_N: dict[tuple[float, float], tuple[float, float]] = {
    (1 / 4, 64.0): (85.29, 48.96),
    (1 / 4, 32.0): (85.31, 49.03),
    (1 / 4, 16.0): (85.15, 49.10),
    (1 / 4, 8.0): (80.00, 48.11),
    (1 / 2, 64.0): (84.60, 49.03),
    (1 / 2, 32.0): (84.30, 48.97),
    (1 / 2, 16.0): (83.59, 48.87),
    (1 / 2, 8.0): (69.80, 45.72),
}

# 9728 (InvLeaky ReRoPE), (accuracy at 512, 8x repeated, 8x non-repeated): "InvLeaky ReRoPE-w128-log n" and the
# "-b8" variant with base b * 8.
SU_INVLEAKY: dict[str, tuple[float, float, float]] = {
    "invleaky": (49.38, 82.25, 48.32),
    "invleaky_b": (49.62, 81.15, 48.85),
}
# The ReRoPE rows 9728 compares InvLeaky with, as (accuracy at 512, 8x repeated, 8x non-repeated): w128 from 9708's
# window sweep (49.40: the log-n model at L), w256 the main ReRoPE-log n row.
SU_REROPE_W_QUARTER_LOG_N: tuple[float, float, float] = (49.40, 85.47, 48.87)
SU_REROPE_W_HALF_LOG_N: tuple[float, float, float] = (49.40, 85.12, 49.07)
# 9728: seconds per 1000 training steps, plain RoPE vs Leaky ReRoPE (+6%).
SU_TRAINING_SECONDS: dict[str, float] = {"rope": 330.0, "leaky": 350.0}

# Su's "longer context, lower loss" numbers for LLaMA2-13B (bojone/rerope README; loss on the same last 4096 tokens,
# fp16), keyed by context length; None where the README has no value. RoPE's training length is 4096.
SU_LLAMA2_13B_LAST_WINDOW_LOSS: dict[str, dict[int, float | None]] = {
    "RoPE": {4096: 1.4967, 8192: 8.8615, 16384: None},
    "NTK-RoPE (static)": {4096: 1.6081, 8192: 1.5417, 16384: 1.5163},
    "ReRoPE": {4096: 1.4996, 8192: 1.4267, 16384: 1.4001},
}
