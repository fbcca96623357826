"""The small LM's options for the methods after Su's series (notebook 14): each against an independent reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rope_lib import apply_rope, inv_freq
from rope_lib.companion.model import ModelConfig, PositionScheme, RoPELM, rope_tables, rotate_half_split
from rope_lib.companion.train import TrainConfig, _Task
from rope_lib.since_su import dual_chunk_relative_position, llama4_attention_temperature, vo_rope_attention

SMALL = dict(d_model=32, n_layers=2, n_heads=2, head_dim=16, d_ff=48, train_length=16)


def _model(**kw) -> RoPELM:
    torch.manual_seed(0)
    return RoPELM(ModelConfig(**(SMALL | kw))).eval()


def _qkv(seed=0, T=24, d=16):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 2, T, d, generator=g) for _ in range(3))


def _state(model, scheme, T):
    from rope_lib.companion.model import _PositionState

    return _PositionState(model, scheme, T, torch.device("cpu"), None)


def test_configs_before_these_options_keep_their_keys():
    assert set(ModelConfig().to_dict()) == {
        "vocab_size", "d_model", "n_layers", "n_heads", "head_dim", "d_ff", "mlp", "norm", "tie_embeddings",
        "rope_base", "train_length", "train_log_n", "init_std",
    }  # fmt: skip
    assert "chunk_size" not in PositionScheme().to_dict() and "pose_target" not in TrainConfig().to_dict()
    d = ModelConfig(nope_layers=[3, 1], rotate="qkvo", ssmax=True).to_dict()
    assert (d["nope_layers"], d["rotate"], d["ssmax"]) == ([1, 3], "qkvo", True)
    assert ModelConfig(**d) == ModelConfig(nope_layers=(1, 3), rotate="qkvo", ssmax=True)  # read back from JSON


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"nope_layers": (4,)}, r"nope_layers must be a sequence of block indices in \[0, 4\)"),
        ({"nope_layers": (1, 1)}, "nope_layers lists a block twice"),
        ({"nope_layers": 3}, "nope_layers must be a sequence"),
        ({"rotate": "k"}, r"rotate must be one of \('qk', 'qkvo', 'vo', 'none'\)"),
        ({"ssmax": 1}, "ssmax must be a bool"),
        ({"ssmax": True, "train_log_n": True}, "ssmax and train_log_n"),
    ],
)
def test_model_config_refuses_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kw)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"attention": "dca"}, "chunk_size must be a positive integer"),
        ({"attention": "dca", "chunk_size": 8, "local_window": 8}, "local_window must be < chunk_size"),
        ({"chunk_size": 8}, "chunk_size and local_window are only allowed with attention='dca'"),
        ({"temperature_floor": 0}, "temperature_floor must be a positive integer"),
        ({"attention": "flash"}, r"attention must be one of \('sdpa', 'rerope', 'dca'\)"),
    ],
)
def test_position_scheme_refuses_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        PositionScheme(**kw)


def test_dual_chunk_attention_scores_each_pair_at_its_remapped_relative_position():
    model, T, chunk, local = _model(), 23, 8, 2
    q, k, v = _qkv(T=T)
    out = _state(model, PositionScheme(attention="dca", chunk_size=chunk, local_window=local), T).attend(q, k, v)
    # reference: every (i, j) scored directly at rel[i, j], rotating q by rel and k by 0 (q^T R_{-rel}... as RoPE does)
    rel = dual_chunk_relative_position(T, chunk, local)
    inv = inv_freq(16, 1e4)
    scores = torch.full((T, T), float("-inf"))
    for i in range(T):
        for j in range(i + 1):
            qi = apply_rope(q[0, 0, i : i + 1].double(), torch.tensor([float(rel[i, j])]), inv)
            scores[i, j] = float(qi[0] @ k[0, 0, j].double()) / 4.0
    want = torch.softmax(scores.double(), -1) @ v[0, 0].double()
    assert torch.allclose(out[0, 0].double(), want, atol=1e-5)
    assert int(rel.max()) <= chunk  # no relative position beyond the chunk size, however long the sequence


def test_dual_chunk_attention_within_one_chunk_is_plain_rope():
    model, T = _model(), 12
    x = torch.randint(0, 256, (2, T))
    dca = model(x, PositionScheme(attention="dca", chunk_size=T + 4, local_window=4))  # chunk_len = T: one chunk
    assert torch.allclose(dca, model(x), atol=1e-5)


@pytest.mark.parametrize("rotate", ["qkvo", "vo"])
def test_vo_rope_layer_equals_the_library_function(rotate):
    model, T = _model(rotate=rotate), 24
    q, k, v = _qkv(T=T)
    out = _state(model, PositionScheme(), T).attend(q, k, v, rotate)
    want = vo_rope_attention(q, k, v, inv_freq(16, 1e4), scale=0.25, rotate_qk=rotate == "qkvo")
    assert torch.allclose(out, want, atol=1e-5)


def test_vo_rope_ignores_the_attention_factor_of_the_scheme():
    # YaRN's factor scales q and k (the logits); the values and outputs turn by the bare angles
    model, T = _model(rotate="vo"), 24
    q, k, v = _qkv(T=T)
    yarn = PositionScheme(rope_parameters={"rope_type": "yarn", "factor": 2.0})
    plain = _state(model, PositionScheme(), T).attend(q, k, v, "vo")
    scaled = _state(model, yarn, T)
    ref = vo_rope_attention(q, k, v, _yarn_inv(), scale=0.25, rotate_qk=False)
    assert torch.allclose(scaled.attend(q, k, v, "vo"), ref, atol=1e-5) and not torch.allclose(plain, ref, atol=1e-3)


def _yarn_inv():
    from rope_lib import frequencies

    return frequencies(
        {"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4, "original_max_position_embeddings": 16}, 16
    )[0]


def test_nope_layers_and_a_nope_model_attend_without_positions():
    x = torch.randint(0, 256, (2, 20))
    every = _model(nope_layers=(0, 1))
    nope = _model(rotate="none")
    nope.load_state_dict(every.state_dict())
    assert torch.equal(every(x), nope(x))
    q, k, v = _qkv(T=20)
    out = _state(nope, PositionScheme(), 20).attend(q, k, v, "none")
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.25), atol=1e-6)
    assert float((_model()(x) - every(x)).abs().max().detach()) > 1e-5  # the same weights with RoPE score otherwise


def test_ssmax_scales_each_query_by_s_log_n():
    model = _model(ssmax=True)
    attn = model.blocks[0].attn
    assert torch.allclose(attn.ssmax_s, torch.full((2,), 1 / math.log(16)))  # s ln L = 1 at the start
    with torch.no_grad():
        attn.ssmax_s.copy_(torch.tensor([0.5, 2.0]))
    T = 10
    h = torch.randn(1, T, 32)
    state = _state(model, PositionScheme(), T)
    q, k, v = attn.qkv(h).view(1, T, 3, 2, 16).permute(2, 0, 3, 1, 4)
    n = torch.arange(1, T + 1, dtype=torch.float64)
    scale = torch.stack([0.5 * torch.log(n), 2.0 * torch.log(n)])[None, :, :, None].float()  # (1, H, T, 1)
    want = attn.out(state.attend(q * scale, k, v, "qk").transpose(1, 2).reshape(1, T, 32))
    assert torch.allclose(attn(h, state), want, atol=1e-6)


def test_llama4_temperature_on_nope_layers_only_and_identity_below_the_floor():
    x = torch.randint(0, 256, (1, 40))
    model = _model(nope_layers=(1,))
    assert torch.equal(model(x[:, :15]), model(x[:, :15], PositionScheme(temperature_floor=16)))  # < floor - 1
    assert not torch.allclose(model(x), model(x, PositionScheme(temperature_floor=16)))
    state = _state(model, PositionScheme(temperature_floor=16), 40)
    assert torch.allclose(state.temperature[:, 0].double(), llama4_attention_temperature(torch.arange(40), 16))
    q, k, v = _qkv(T=40)
    assert torch.equal(state.attend(q, k, v, "qk"), _state(model, PositionScheme(), 40).attend(q, k, v, "qk"))


def test_pose_positions_rotate_by_the_given_ids():
    model, x = _model(), torch.randint(0, 256, (2, 12))
    assert torch.equal(model(x, positions=torch.arange(12)), model(x))
    ids = torch.tensor([0, 1, 2, 3, 4, 30, 31, 32, 33, 34, 35, 36])
    cos, sin = rope_tables(inv_freq(16, 1e4), 1.0, 0, positions=ids)
    q = torch.randn(1, 1, 12, 16)
    assert torch.allclose(rotate_half_split(q, cos, sin), apply_rope(q, ids, inv_freq(16, 1e4)), atol=1e-6)
    with pytest.raises(ValueError, match="strictly increasing"):
        model(x, positions=torch.tensor([0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10]))
    with pytest.raises(ValueError, match="positions must be"):
        model(x, positions=torch.arange(11))
    with pytest.raises(ValueError, match="attention='sdpa'"):
        model(x, PositionScheme(attention="rerope", window=4), positions=torch.arange(12))


def test_pose_training_draws_ids_per_step_that_span_the_target(corpus):
    cfg = TrainConfig(steps=4, batch_size=2, pose_target=64, warmup_steps=1)
    task = _Task(cfg, corpus, 16)
    a, b = task.positions(0, 16), task.positions(1, 16)
    assert torch.equal(a, task.positions(0, 16)) and not torch.equal(a, b)  # a function of (seed, step)
    assert int(a[0]) == 0 and bool((a[1:] > a[:-1]).all()) and int(a[-1]) < 64
    assert _Task(TrainConfig(), corpus, 16).positions(0, 16) is None
    with pytest.raises(ValueError, match="pose_target trains plain text"):
        TrainConfig(pose_target=64, scheme=PositionScheme(attention="rerope", window=4))
