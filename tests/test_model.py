"""rope_lib.companion.model: shapes, causality, RoPE parity with apply_rope, position schemes switched at evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from rope_lib import apply_rope, inv_freq
from rope_lib.companion.model import (
    ROPE,
    ModelConfig,
    PositionScheme,
    RoPELM,
    dynamic_block_edges,
    rope_tables,
    rotate_half_split,
)

L = 16


def tiny(seed: int = 0, **kw) -> RoPELM:
    torch.manual_seed(seed)
    cfg = ModelConfig(**{**dict(d_model=32, n_layers=2, n_heads=2, head_dim=16, d_ff=48, train_length=L), **kw})
    return RoPELM(cfg).eval()


def tokens(n: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, T), generator=torch.Generator().manual_seed(seed))


SCHEMES = {
    "rope": ROPE,
    "pi": PositionScheme({"rope_type": "linear", "factor": 4.0}),
    "yarn-dagger": PositionScheme({"rope_type": "yarn", "factor": 4.0}, log_n=True),
    "dynamic-blocks": PositionScheme({"rope_type": "dynamic", "factor": 1.0}, dynamic_blocks=4),
    "dynamic-yarn-whole": PositionScheme({"rope_type": "dynamic_yarn"}),
    "rerope": PositionScheme(attention="rerope", window=6),
    "leaky": PositionScheme(attention="rerope", window=6, leaky_k=4.0, log_n=True),
}


@pytest.mark.parametrize("kw", [{}, dict(mlp="gelu", norm="layernorm", tie_embeddings=False), dict(train_log_n=True)])
def test_forward_shape_and_dtype(kw):
    m = tiny(**kw)
    out = m(tokens(3, 2 * L))
    assert out.shape == (3, 2 * L, 256) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    names = [n for n, _ in m.named_parameters()]
    assert not any("pos" in n for n in names)  # no learned absolute positions
    assert ("head.weight" in names) == (not m.cfg.tie_embeddings)


@pytest.mark.parametrize("name", list(SCHEMES))
def test_causal(name):
    m, x = tiny(), tokens(2, 3 * L)
    y = x.clone()
    y[:, 30:] = (y[:, 30:] + 1) % 256
    with torch.no_grad():
        a, b = m(x, SCHEMES[name]), m(y, SCHEMES[name])
    torch.testing.assert_close(a[:, :30], b[:, :30], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a[:, 30:], b[:, 30:])


def test_rotation_matches_apply_rope():
    x = torch.randn(2, 3, 40, 16, dtype=torch.float64)
    inv = inv_freq(16, 500.0) / 3
    cos2, sin2 = rope_tables(inv, 1.3, 40)
    ref = apply_rope(x, torch.arange(40), inv, attention_factor=1.3)
    torch.testing.assert_close(rotate_half_split(x, cos2.double(), sin2.double()), ref, rtol=1e-6, atol=1e-6)
    xf = x.float()
    torch.testing.assert_close(
        rotate_half_split(xf, cos2, sin2), apply_rope(xf, torch.arange(40), inv, attention_factor=1.3)
    )


def test_schemes_switch_at_evaluation_time():
    m, x = tiny(), tokens(2, 4 * L)
    with torch.no_grad():
        base = m(x)
        assert torch.equal(base, m(x, ROPE))  # None means ROPE: the same forward, bitwise
        pi1 = m(x, PositionScheme({"rope_type": "linear", "factor": 1.0}))
        pi4 = m(x, SCHEMES["pi"])
        ntk = m(x, PositionScheme({"rope_type": "ntk", "factor": 4.0}))
    torch.testing.assert_close(pi1, base)
    assert not torch.allclose(pi4, base) and not torch.allclose(ntk, base) and not torch.allclose(pi4, ntk)


def test_log_n():
    m, x = tiny(), tokens(2, L)
    with torch.no_grad():
        # dagger: max(1, log_L n) is 1 up to position L, so nothing changes within the training length ...
        torch.testing.assert_close(m(x, PositionScheme(log_n=True)), m(x))
        # ... and changes logits beyond it
        y = tokens(2, 3 * L)
        assert not torch.allclose(m(y, PositionScheme(log_n=True))[:, L:], m(y)[:, L:])
        # trained log n: the unclipped log_L(n) is always on (also inside L), whatever the scheme says
        m2 = tiny(train_log_n=True)
        m2.load_state_dict(m.state_dict())
        assert not torch.allclose(m2(x)[:, 1:], m(x)[:, 1:])
        torch.testing.assert_close(m2(x, PositionScheme(log_n=True)), m2(x))
        torch.testing.assert_close(m2(x)[:, 0], m(x)[:, 0])  # position 0 attends to itself only


def test_rerope_window_covering_the_sequence_is_plain_rope():
    m, x = tiny(), tokens(2, 2 * L)
    with torch.no_grad():
        torch.testing.assert_close(m(x, PositionScheme(attention="rerope", window=2 * L)), m(x), rtol=1e-4, atol=1e-4)
        yarn = {"rope_type": "yarn", "factor": 2.0}  # attention factor folded into q and k for ReRoPE
        torch.testing.assert_close(
            m(x, PositionScheme(yarn, attention="rerope", window=2 * L)),
            m(x, PositionScheme(yarn)),
            rtol=1e-4,
            atol=1e-4,
        )


def test_dynamic_blocks_are_decoder_exact_for_one_layer():
    # With one layer the hidden states feeding attention are embeddings, so token t of a decoder with raw keys
    # equals the last row of a full forward over x[:t+1] with seq_len = t+1. Blocks of one token are exact.
    m, x = tiny(n_layers=1), tokens(1, 3 * L)
    params = {"rope_type": "dynamic", "factor": 1.0}
    with torch.no_grad():
        blocked = m(x, PositionScheme(params, dynamic_blocks=10_000))
        for t in (0, L - 1, L, L + 5, 3 * L - 1):
            ref = m(x[:, : t + 1], PositionScheme(params))[:, -1]
            torch.testing.assert_close(blocked[:, t], ref, rtol=1e-5, atol=1e-5)
        whole = m(x, PositionScheme(params))
        torch.testing.assert_close(blocked[:, :L], m(x[:, :L]), rtol=1e-5, atol=1e-5)  # unscaled up to L
        assert not torch.allclose(blocked[:, L:-1], whole[:, L:-1])  # a whole-sequence scale differs


def test_dynamic_block_edges():
    e = dynamic_block_edges(64, 1024, 8)
    assert e[:2] == [0, 64] and e[-1] == 1024 and all(b > a for a, b in zip(e, e[1:]))
    assert len(e) == 2 + 4 * 8  # four doublings, eight blocks each
    # the first query of a block sees n = a + 1 tokens and is rotated for seq_len = b: rounded up by < 2^(1/8)
    assert all(b / (a + 1) < 2 ** (1 / 8) for a, b in zip(e[1:], e[2:]))
    assert dynamic_block_edges(64, 50, 8) == [0, 50]


def test_scheme_validation_and_keys():
    with pytest.raises(ValueError, match="attention"):
        PositionScheme(attention="flash")
    with pytest.raises(ValueError, match="window"):
        PositionScheme(window=8)
    with pytest.raises(ValueError, match="window"):
        PositionScheme(attention="rerope")
    with pytest.raises(ValueError, match="leaky_k"):
        PositionScheme(attention="rerope", window=4, leaky_k=-1.0)
    with pytest.raises(ValueError, match="dynamic_blocks"):
        PositionScheme({"rope_type": "ntk", "factor": 2.0}, dynamic_blocks=4)
    with pytest.raises(ValueError, match="rope_type"):
        PositionScheme({"factor": 2.0})
    params = {"rope_type": "linear", "factor": 2.0}
    s = PositionScheme(params)
    params["factor"] = 3.0  # the scheme keeps its own copy
    assert s.rope_parameters["factor"] == 2.0
    assert PositionScheme.from_dict(s.to_dict()) == s and hash(s) == hash(
        PositionScheme({"rope_type": "linear", "factor": 2.0})
    )
    with pytest.raises(ValueError, match="mlp"):
        ModelConfig(mlp="relu")
    with pytest.raises(ValueError, match="head_dim"):
        ModelConfig(head_dim=15)
    with pytest.raises(ValueError, match="idx"):
        tiny()(torch.zeros(4, dtype=torch.long))


def test_inv_leaky_training_scheme_has_gradients():
    m = tiny().train()
    scheme = PositionScheme(attention="rerope", window=L // 4, leaky_k=0.5)  # Su's inverse leak, k < 1
    x = tokens(2, L + 1)
    loss = torch.nn.functional.cross_entropy(m(x[:, :-1], scheme).transpose(1, 2), x[:, 1:])
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
