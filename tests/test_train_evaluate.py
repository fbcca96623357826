"""rope_lib.companion.train (checkpoint cache, resume, schedule) and rope_lib.companion.evaluate (metrics,
bootstrap)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rope_lib.companion.data import make_test_set
from rope_lib.companion.evaluate import bootstrap_difference, last_window_loss, token_metrics
from rope_lib.companion.model import ModelConfig, PositionScheme
from rope_lib.companion.train import TrainConfig, config_key, lr_at, train

MODEL = ModelConfig(d_model=32, n_layers=1, n_heads=2, head_dim=16, d_ff=48, train_length=16)
TRAIN = TrainConfig(steps=6, batch_size=4, lr=3e-3, warmup_steps=2, save_every=2, num_threads=1)


def _same_weights(a, b) -> bool:
    # bitwise on purpose: a cache hit or a resumed run replays the same ops on the same shapes (one thread)
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_cache_hit(cache, corpus):
    m1, meta1 = train(MODEL, TRAIN, corpus=corpus, device="cpu", progress=False)
    assert not meta1["cache_hit"] and meta1["complete"] and meta1["steps"] == 6
    assert meta1["tokens_seen"] == 6 * 4 * 16 and meta1["tokens_per_s"] > 0 and meta1["wall_time_s"] > 0
    assert {"val_loss", "val_acc", "loss_curve", "n_parameters"} <= set(meta1)
    m2, meta2 = train(MODEL, TRAIN, corpus=corpus, device="cpu", progress=False)
    assert meta2["cache_hit"] and meta2["key"] == meta1["key"] and _same_weights(m1, m2)
    folder = next((cache / "checkpoints").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "final.pt"]  # resume points removed


def test_resume_equals_uninterrupted(cache, corpus):
    ref, _ = train(MODEL, TRAIN, corpus=corpus, device="cpu", progress=False, use_cache=False)
    part, meta = train(MODEL, TRAIN, corpus=corpus, device="cpu", progress=False, max_steps_this_call=3)
    assert not meta["complete"] and meta["steps"] == 3
    assert list((cache / "checkpoints").glob("*/step_0000003.pt"))
    full, meta = train(MODEL, TRAIN, corpus=corpus, device="cpu", progress=False)
    assert meta["resumed_from"] == 3 and meta["complete"] and not meta["cache_hit"]
    assert _same_weights(ref, full)


def test_key_covers_what_changes_the_weights():
    k = config_key(MODEL, TRAIN, "digest")
    assert k == config_key(MODEL, TrainConfig(**{**TRAIN.__dict__, "save_every": 5, "num_threads": 2}), "digest")
    assert k != config_key(MODEL, TrainConfig(**{**TRAIN.__dict__, "seed": 1}), "digest")
    assert k != config_key(ModelConfig(**{**MODEL.__dict__, "train_log_n": True}), TRAIN, "digest")
    leaky = PositionScheme(attention="rerope", window=4, leaky_k=0.5)
    assert k != config_key(MODEL, TrainConfig(**{**TRAIN.__dict__, "scheme": leaky}), "digest")
    assert k != config_key(MODEL, TRAIN, "other corpus")


def test_train_config_validation_and_schedule():
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="log_n"):
        TrainConfig(scheme=PositionScheme(log_n=True))
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) == pytest.approx(0.1, abs=1e-3) and lr_at(10, cfg) > lr_at(50, cfg) > lr_at(90, cfg)


def test_leaky_rerope_training(cache, corpus):
    cfg = TrainConfig(
        **{**TRAIN.__dict__, "steps": 2, "scheme": PositionScheme(attention="rerope", window=4, leaky_k=0.5)}
    )
    _, meta = train(MODEL, cfg, corpus=corpus, device="cpu", progress=False)
    assert meta["complete"] and np.isfinite(meta["val_loss"])


def test_token_metrics_and_batching(cache, corpus):
    model, _ = train(MODEL, TRAIN, corpus=corpus, device="cpu", progress=False)
    x = make_test_set(corpus, "non_repeated", 64, 3, max_length=256)
    scheme = PositionScheme({"rope_type": "ntk", "factor": 4.0})
    a = token_metrics(model, x, scheme, batch_tokens=1)  # one sample per forward
    b = token_metrics(model, x, scheme)
    assert a["loss_per_position"].shape == a["acc_per_position"].shape == (63,)
    assert a["acc_per_sample"].shape == (3,) and 0 <= a["acc"] <= 1
    np.testing.assert_allclose(a["loss_per_position"], b["loss_per_position"], rtol=1e-5)
    assert a["acc"] == pytest.approx(float(np.mean(a["acc_per_sample"])))
    assert a["hit_matrix"].shape == a["loss_matrix"].shape == (3, 63) and set(np.unique(a["hit_matrix"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(a["hit_matrix"].mean(1), a["acc_per_sample"])  # the same numpy mean: bitwise
    argmax = model(x[:, :-1], scheme).argmax(-1)  # the hits are the argmax's, prediction by prediction
    np.testing.assert_array_equal(a["hit_matrix"], (argmax == x[:, 1:]).double().numpy())
    assert last_window_loss(a["loss_per_position"], 16) == pytest.approx(float(a["loss_per_position"][-15:].mean()))
    with pytest.raises(ValueError, match="tokens"):
        token_metrics(model, x[0], scheme)


def test_bootstrap_difference():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.3, 0.6, 50)
    same = bootstrap_difference(a, a)
    assert same["diff"] == same["lo"] == same["hi"] == 0.0  # a - a is exactly 0 in every draw
    shifted = bootstrap_difference(a + 0.05, a)
    assert shifted["lo"] == pytest.approx(0.05) and shifted["hi"] == pytest.approx(0.05)  # paired: text cancels
    noisy = bootstrap_difference(a + rng.normal(0.02, 0.01, 50), a, seed=1)
    assert noisy["lo"] < noisy["diff"] < noisy["hi"] and noisy["lo"] > 0 and noisy["se"] > 0
    with pytest.raises(ValueError, match="same shape"):
        bootstrap_difference(a, a[:10])
