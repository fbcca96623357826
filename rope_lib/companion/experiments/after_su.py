"""After Su: the length-extension methods of 2024-2026 on notebook 04's model and windows, one leaderboard (nb 14).

Every method below is scored on the same nested test windows as notebooks 04 and 05 (the harness's windows of each
training seed), so every per-window accuracy is paired with those of the methods up to 2023 in notebook 04's and 05's
results files (:data:`~rope_lib.companion.experiments.harness.METHODS`, ReRoPE and Leaky ReRoPE). Each new method
is what it changes in the small LM, trained with notebook 04's data, size, steps and seeds:

========================  ===========================================================================================
row                       what is trained, and how it is tested
========================  ===========================================================================================
p-RoPE (p = 0.75)         RoPE on the fastest 3/4 of the pairs, the rest unrotated (Barbero et al., arXiv 2410.06205)
HoPE                      the pairs whose period exceeds L unrotated (Chen et al., arXiv 2410.21216)
Resonance RoPE            every wavelength rounded to an integer (Wang et al., arXiv 2403.00071)
NoPE                      no position encoding at all (the reference the next rows interleave with)
iRoPE                     no position encoding in every 4th block (Llama 4; RNoPE-SWA, arXiv 2501.18795)
iRoPE + temperature       the same, Llama 4's attention temperature on its NoPE block at test time
Llama 4 temperature       the plain model, the temperature on every block at test time (ours: it has no NoPE block)
SSMax                     queries times s_h ln n, s_h learned per head (Nakanishi, arXiv 2501.19399)
VO-RoPE (QKVO), (VO)      values rotated by their position, outputs back by theirs; with / without RoPE on q, k
                          (Su, kexue.fm/archives/10862)
DCA                       the plain model with Dual Chunk Attention at test time (Qwen2.5-1M, arXiv 2501.15383)
PoSE (YaRN s = 4)         the plain model fine-tuned in windows of L whose position ids skip to span 4L, YaRN s = 4
                          (Zhu et al., arXiv 2309.10400); "window fine-tune" the same steps without skipping
========================  ===========================================================================================

Scale rules: the new trained rows run their own scheme at every length (nothing to tune); DCA's chunk is 3L/4 with a
local window of L/16 (ChunkLlama's defaults: the largest relative position stays below L); Llama 4's temperature
takes floor_scale = L (Llama 4's 8192 is its own chunk length; ours: the length the model was trained at).

Not run by ``make`` (30 models: about half an hour on 2 CPU cores): ``make after-su`` trains and scores, and notebook 14
reads the committed ``results/<profile>/after_su.json`` (``rope_lib.companion.experiments.common.replay``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ...since_su import nope_layers
from ..data import load_corpus
from ..model import ModelConfig, PositionScheme
from ..train import FineTune, TrainConfig, config_key
from .common import check_names, register
from .harness import Harness, at_every_length, finish, method_rows, run_seeds, scheme_for, shared_models

NAME = "after_su"

# PoSE's target and the fine-tuning budget: notebook 08b's (100 steps of 2048 tokens at a third of pre-training's
# rate), in windows of L instead of 4L, so PoSE sees a quarter of the positions' span per window and the same tokens.
POSE_EXTEND = 4
FINETUNE = dict(steps=100, lr_fraction=1 / 3, warmup_steps=5)


def trained_variants(model_cfg: ModelConfig) -> dict[str, tuple[ModelConfig, PositionScheme]]:
    """{variant: (model config, training scheme)} of the methods trained from scratch, from notebook 04's model."""
    freq = {
        "p_rope": {"rope_type": "p_rope", "p": 0.75},
        "hope": {"rope_type": "hope"},
        "resonance": {"rope_type": "resonance"},
    }
    out = {v: (model_cfg, PositionScheme(params)) for v, params in freq.items()}
    plain = PositionScheme()
    out["nope"] = (replace(model_cfg, rotate="none"), plain)
    out["irope"] = (replace(model_cfg, nope_layers=nope_layers(model_cfg.n_layers, 4)), plain)
    out["ssmax"] = (replace(model_cfg, ssmax=True), plain)
    out["qkvo"] = (replace(model_cfg, rotate="qkvo"), plain)
    out["vo"] = (replace(model_cfg, rotate="vo"), plain)
    return out


VARIANTS: tuple[str, ...] = (*trained_variants(ModelConfig()), "pose", "window_ft")


def pose_scheme(model_cfg: ModelConfig) -> PositionScheme:
    """YaRN with s = POSE_EXTEND, the interpolation PoSE is combined with in its paper (Table 2: Linear, NTK, YaRN)."""
    L = model_cfg.train_length
    return scheme_for("YaRN", float(POSE_EXTEND), L, model_cfg.rope_base, model_cfg.head_dim)


def models(profile: str, seed: int, variants: Sequence[str] = VARIANTS) -> dict[str, tuple[ModelConfig, TrainConfig]]:
    """{variant: (model config, training config)} of training seed ``seed``: the from-scratch variants with notebook
    04's training run, and PoSE and its control fine-tuned from notebook 04's plain model of the same seed."""
    model_cfg, pre = shared_models(profile, seed)["plain"]
    out = {v: (m, replace(pre, scheme=s)) for v, (m, s) in trained_variants(model_cfg).items() if v in variants}
    parent = config_key(model_cfg, pre, load_corpus().digest)
    ft = replace(
        pre,
        steps=FINETUNE["steps"],
        lr=pre.lr * FINETUNE["lr_fraction"],
        min_lr_ratio=1.0,
        warmup_steps=FINETUNE["warmup_steps"],
        save_every=FINETUNE["steps"],
        scheme=pose_scheme(model_cfg),
        finetune=FineTune(init_from=parent),  # windows of L, the pre-training batch
    )
    L = model_cfg.train_length
    if "pose" in variants:
        out["pose"] = (model_cfg, replace(ft, pose_target=POSE_EXTEND * L))
    if "window_ft" in variants:
        out["window_ft"] = (model_cfg, ft)
    return out


def rows(h: Harness, variants: Sequence[str]) -> list:
    """The new methods' rows, and the earlier rows their papers compare with (Baseline and YaRN on the plain model,
    Baseline trained with log n). The rest of the leaderboard, every earlier method on the same windows, is in
    notebook 04's and 05's results files (``extrapolation``, ``rerope``): scoring them again would double this
    experiment's evaluation for the same numbers."""
    L, base, d = h.L, h.base, h.head_dim
    out = method_rows(["Baseline", "YaRN"], ["none"], L=L, base=base, d=d)
    out += method_rows(["Baseline"], ["trained"], L=L, base=base, d=d)
    trained = trained_variants(h.model)
    names = {
        "p_rope": "p-RoPE (p = 0.75)",
        "hope": "HoPE",
        "resonance": "Resonance RoPE",
        "nope": "NoPE",
        "irope": "iRoPE",
        "ssmax": "SSMax",
        "qkvo": "VO-RoPE (QKVO)",
        "vo": "VO-RoPE (VO only)",
    }
    for v in (v for v in names if v in variants):
        out.append((names[v], v, at_every_length(trained[v][1]), {"method": names[v], "new": True}))
    temperature = PositionScheme(temperature_floor=L)
    if "irope" in variants:
        out.append(("iRoPE + temperature", "irope", at_every_length(temperature), {"method": "iRoPE", "new": True}))
    out.append(("Llama 4 temperature", "plain", at_every_length(temperature), {"method": "Llama 4", "new": True}))
    dca = PositionScheme(attention="dca", chunk_size=3 * L // 4, local_window=max(1, L // 16))
    out.append(("DCA", "plain", at_every_length(dca), {"method": "DCA", "new": True}))
    for v, name in (
        ("pose", f"PoSE (YaRN s = {POSE_EXTEND})"),
        ("window_ft", f"window fine-tune (YaRN s = {POSE_EXTEND})"),
    ):
        if v in variants:
            out.append((name, v, at_every_length(pose_scheme(h.model)), {"method": name, "new": True}))
    return out


@register(NAME, list_options={"variants": VARIANTS})
def run(
    profile: str = "smoke",
    device: str | None = None,
    seed: int = 0,
    out=None,
    *,
    variants: Sequence[str] | None = None,
    progress: bool = True,
) -> dict:
    """For every training seed: train (or load) the variants, score every row at L and 2L-16L on the seed's windows
    (the repeated set at L and 8x, as notebook 04); write ``<out>/after_su.json`` (one run per seed)."""
    variants = check_names("variants", list(VARIANTS) if variants is None else variants, VARIANTS)

    def one_seed(h: Harness) -> dict:
        repeated = [m for m in h.mults if m == 8]  # a profile without 8x: the repeated set at L only
        scored = h.evaluate(rows(h, variants), train_length=True, repeated_mults=repeated)
        config = {
            "eval": h.eval_config(
                scale_rule="new trained rows: their own scheme at every length; frequency methods tuned to L'/L",
                pose={"target": POSE_EXTEND * h.L, "finetune": FINETUNE},
            ),
            "variants": list(variants),
        }
        return finish(NAME, h, config=config, rows=scored)

    return run_seeds(
        NAME,
        profile,
        device,
        seed,
        out,
        one_seed,
        extra_models=lambda s: models(profile, s, variants),
        progress=progress,
    )
