"""rope_lib.scaling (the methods) and rope_lib.rope_parameters (the config reader): parity with transformers, the
closed forms of notebooks 02/03, validation, dynamic decoding."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch
from conftest import ulps_close

import rope_lib
from rope_lib import decoding
from rope_lib import rope_parameters as P
from rope_lib import scaling as S

# ------------------------------------------------------------------------------------------------------------------
# parity with transformers' ROPE_INIT_FUNCTIONS (and the models' own "default"), through the adapters notebook 03
# uses too (rope_lib.companion.hf_reference: llama_config, rope_init_frequencies, float32_relative_gap)

transformers = pytest.importorskip("transformers")
from transformers import GPTNeoXConfig, LlamaConfig  # noqa: E402
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from rope_lib.companion.hf_reference import float32_relative_gap, llama_config, rope_init_frequencies  # noqa: E402

hf_logging.set_verbosity_error()  # transformers warns (not raises) on e.g. factor 1 with llama3; keep the log short

HEAD_DIMS = (64, 128)
PARTIAL = (1.0, 0.5)
BASES = (1e4, 5e5, 1e6)
FACTORS = (1.0, 2.5, 8.0, 64.0)
LENGTHS = (2048, 8192, 131072)
GRID = list(itertools.product(PARTIAL, BASES, FACTORS, LENGTHS))
F32_RTOL = 1e-6  # transformers computes inv_freq in float32; we compare our float64 rounded to float32


def assert_parity(ours, theirs, where, unscaled=None):
    """|ours - transformers| < 1e-6 relative to the result, and to the pair's unscaled theta_i when given.

    For YaRN without truncation the result-relative check is replaced by the theta-relative one: transformers rounds
    its non-integer ramp weight to float32, and where the weight is close to 1 the blend theta/s * w + theta (1 - w)
    inherits that rounding magnified by up to s (measured: 4.4e-6 at s = 64; our float64 value is the exact one).
    """
    (inv, af), (inv_hf, af_hf) = ours, theirs
    assert inv.dtype == torch.float64, where
    assert inv.shape == inv_hf.shape, where
    rel = float32_relative_gap(inv, inv_hf, unscaled)
    what = "relative difference" if unscaled is None else "difference relative to theta_i"
    assert rel < F32_RTOL, f"{where}: max {what} {rel:.3g}"
    assert math.isclose(af, float(af_hf), rel_tol=1e-12), f"{where}: attention factor {af} vs {af_hf}"


def run_grid(rope_type, head_dim, make_params, *, max_pos, seq_lens=(None,), dynamic=False):
    checked = 0
    for prf, base, factor, L in GRID:
        params = {"rope_type": rope_type, "rope_theta": base, "partial_rotary_factor": prf}
        params.update(make_params(factor, L, int(head_dim * prf)))
        config = llama_config(params, head_dim, max_pos(factor, L))
        ours_params = dict(config.rope_parameters)  # what a user passes: the standardized dict, unchanged
        if dynamic:  # transformers reads L from max_position_embeddings; rope_lib from the dict
            ours_params["original_max_position_embeddings"] = config.max_position_embeddings
        for seq_len in seq_lens:
            n = None if seq_len is None else seq_len(L)
            where = f"{rope_type} d={head_dim} prf={prf} b={base:g} s={factor} L={L} seq_len={n}"
            unscaled = None
            if rope_type == "yarn" and params.get("truncate") is False:
                unscaled = rope_lib.inv_freq(int(head_dim * prf), base)
            assert_parity(
                P.frequencies(ours_params, head_dim, seq_len=n), rope_init_frequencies(config, n), where, unscaled
            )
            checked += 1
    return checked


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_parity_default(head_dim):
    # the default type ignores factor; one pass over the grid's (prf, base) pairs suffices
    for prf, base in itertools.product(PARTIAL, BASES):
        params = {"rope_type": "default", "rope_theta": base, "partial_rotary_factor": prf}
        if prf == 1.0:
            config = llama_config(params, head_dim, 4096)
        else:
            config = GPTNeoXConfig(hidden_size=4 * head_dim, num_attention_heads=4, rope_parameters=dict(params))
        assert_parity(
            P.frequencies(dict(config.rope_parameters), head_dim),
            rope_init_frequencies(config),
            f"default {prf} {base}",
        )


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_parity_linear(head_dim):
    assert run_grid("linear", head_dim, lambda s, L, d: {"factor": s}, max_pos=lambda s, L: L) == len(GRID)


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_parity_dynamic(head_dim):
    # max_position_embeddings = L so that transformers' and rope_lib's "original length" agree
    seq_lens = (None, lambda L: L // 2, lambda L: L, lambda L: L + 1, lambda L: 3 * L + 7)
    n = run_grid(
        "dynamic", head_dim, lambda s, L, d: {"factor": s}, max_pos=lambda s, L: L, seq_lens=seq_lens, dynamic=True
    )
    assert n == len(GRID) * len(seq_lens)


@pytest.mark.parametrize("truncate", [True, False])
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_parity_yarn(head_dim, truncate):
    def params(s, L, d):
        return {"factor": s, "original_max_position_embeddings": L, "truncate": truncate}

    assert run_grid("yarn", head_dim, params, max_pos=lambda s, L: int(s * L)) == len(GRID)


@pytest.mark.parametrize(
    "extra",
    [
        {"beta_fast": 64, "beta_slow": 2},
        {"beta_fast": 8.0, "beta_slow": 8.0},  # zero-width range: transformers widens it by 0.001
        {"beta_fast": 1e6, "beta_slow": 1e-3},  # both ends clamped
        {"attention_factor": 0.75},
        {"mscale": 0.707, "mscale_all_dim": 0.707},  # DeepSeek-V2: ratio 1
        {"mscale": 1.0, "mscale_all_dim": 0.5},
        {"mscale": 1.0},  # a lone mscale is ignored by transformers; so by us
    ],
    ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()),
)
def test_parity_yarn_options(extra):
    for truncate, (prf, base, factor, L) in itertools.product((True, False), GRID[::5]):
        params = {
            "rope_type": "yarn",
            "rope_theta": base,
            "partial_rotary_factor": prf,
            "factor": factor,
            "original_max_position_embeddings": L,
            "truncate": truncate,
            **extra,
        }
        config = llama_config(params, 128, int(factor * L))
        unscaled = None if truncate else rope_lib.inv_freq(int(128 * prf), base)
        assert_parity(
            P.frequencies(dict(config.rope_parameters), 128), rope_init_frequencies(config), f"yarn {params}", unscaled
        )


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_parity_llama3(head_dim):
    def params(s, L, d):
        return {"factor": s, "original_max_position_embeddings": L, "low_freq_factor": 1.0, "high_freq_factor": 4.0}

    assert run_grid("llama3", head_dim, params, max_pos=lambda s, L: int(s * L)) == len(GRID)
    # other (low, high) pairs, incl. non-integers
    for low, high in ((0.5, 2.0), (2.0, 16.0), (1.0, 1.5)):
        p = {
            "rope_type": "llama3",
            "rope_theta": 5e5,
            "factor": 8.0,
            "original_max_position_embeddings": 8192,
            "low_freq_factor": low,
            "high_freq_factor": high,
        }
        config = llama_config(p, head_dim, 65536)
        assert_parity(
            P.frequencies(dict(config.rope_parameters), head_dim), rope_init_frequencies(config), f"llama3 {p}"
        )


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_parity_longrope(head_dim):
    rng = random.Random(head_dim)

    def params(s, L, d):
        return {
            "factor": s,
            "original_max_position_embeddings": L,
            "short_factor": [rng.uniform(1.0, 2.0) for _ in range(d // 2)],
            "long_factor": [rng.uniform(1.0, s + 1.0) for _ in range(d // 2)],
        }

    seq_lens = (None, lambda L: L, lambda L: L + 1, lambda L: 4 * L)
    n = run_grid("longrope", head_dim, params, max_pos=lambda s, L: int(s * L), seq_lens=seq_lens)
    assert n == len(GRID) * len(seq_lens)


def test_llama_config_dicts_pass_unchanged():
    # transformers v5 fills rope_theta / rope_type; a legacy rope_scaling keeps 'type' next to 'rope_type'
    for kwargs in (
        {},
        {"rope_theta": 5e5, "partial_rotary_factor": 0.5},
        {"rope_scaling": {"type": "linear", "factor": 2.0}},
        {
            "rope_parameters": {"rope_type": "yarn", "factor": 4.0}
        },  # original length filled from max_position_embeddings
        {
            "rope_parameters": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "rope_theta": 5e5,
                "original_max_position_embeddings": 8192,
            },
            "max_position_embeddings": 131072,
        },
    ):
        config = LlamaConfig(**kwargs)
        head_dim = config.head_dim
        inv, af = rope_lib.frequencies(config.rope_parameters, head_dim)
        rope_type = config.rope_parameters["rope_type"]
        if not (rope_type == "default" and config.rope_parameters.get("partial_rotary_factor", 1.0) != 1.0):
            assert_parity((inv, af), rope_init_frequencies(config), str(kwargs))


def test_dynamic_matches_transformers_decoding_schedule():
    """transformers' rotary module recomputes dynamic frequencies with seq_len = max(position)+1 = our seq_len."""
    L, factor = 64, 4.0
    config = llama_config({"rope_type": "dynamic", "rope_theta": 1e4, "factor": factor}, 64, L)
    emb = LlamaRotaryEmbedding(config)
    params = {**config.rope_parameters, "original_max_position_embeddings": L}
    x = torch.zeros(1, 1, 64)
    emb(x, torch.arange(80)[None])  # prefill of 80 tokens
    assert_parity((P.frequencies(params, 64, seq_len=80)[0], 1.0), (emb.inv_freq, 1.0), "prefill")
    for t in (80, 81, 120):  # decode steps: one new position each
        emb(x, torch.tensor([[t]]))
        assert_parity((P.frequencies(params, 64, seq_len=t + 1)[0], 1.0), (emb.inv_freq, 1.0), f"decode t={t}")


# ------------------------------------------------------------------------------------------------------------------
# closed forms used in notebooks 02 and 03

D, B = 128, 1e4


def theta(d=D, b=B):
    return rope_lib.inv_freq(d, b)


@pytest.mark.parametrize("s", [1.0, 2.0, 8.0, 12.0, 64.0])
def test_ntk_family_limits(s):
    pi, _ = S.linear_frequencies(D, B, s)
    fixed, _ = S.ntk_fixed_frequencies(D, B, s)
    torch.testing.assert_close(S.ntk_mixed_frequencies(D, B, s, 1.0)[0], fixed, rtol=1e-14, atol=0)
    torch.testing.assert_close(S.ntk_mixed_frequencies(D, B, s, 0.0)[0], pi, rtol=1e-14, atol=0)
    # continuity at both ends (p -> 1 and p -> 0)
    torch.testing.assert_close(S.ntk_mixed_frequencies(D, B, s, 1 - 1e-9)[0], fixed, rtol=1e-7, atol=0)
    torch.testing.assert_close(S.ntk_mixed_frequencies(D, B, s, 1e-9)[0], pi, rtol=1e-7, atol=0)


@pytest.mark.parametrize("s", [2.0, 8.0, 64.0])
def test_ntk_closed_forms(s):
    t = theta()
    ntk, _ = S.ntk_frequencies(D, B, s)
    fixed, _ = S.ntk_fixed_frequencies(D, B, s)
    pi, _ = S.linear_frequencies(D, B, s)
    # NTK-aware (bloc97; not Su's NTK-RoPE-old, base b s): base b s^(d/(d-2)) makes the lowest pair exactly PI's and
    # keeps the highest
    assert math.isclose(ntk[-1].item(), pi[-1].item(), rel_tol=1e-12)
    assert ntk[0].item() == 1.0  # b'^(-0) = 1: pow(x, 0) is exactly 1 in every libm
    # NTK-fixed: theta_m = 1 / (lambda (beta lambda)^(m-1)), beta = b^(2/d), lambda = s^(2/d), m = 1..d/2
    beta, lam = B ** (2 / D), s ** (2 / D)
    closed = torch.tensor([1 / (lam * (beta * lam) ** (m - 1)) for m in range(1, D // 2 + 1)], dtype=torch.float64)
    torch.testing.assert_close(fixed, closed, rtol=1e-12, atol=0)
    assert math.isclose(fixed[-1].item(), pi[-1].item(), rel_tol=1e-12)
    # every NTK variant sits between PI and no scaling, pair by pair
    for f in (ntk, fixed, S.ntk_mixed_frequencies(D, B, s, 0.625)[0]):
        assert bool(((f <= t * (1 + 1e-12)) & (f >= pi * (1 - 1e-12))).all())


def test_su_llama2_patch_mixed():
    # Su's LLaMA-2 patch: k = 12, p = 0.75, inv_freq_i = b^(-2i/d) exp(-a (i+1)^p), a (d/2)^p = ln k
    a = math.log(12) / (D / 2) ** 0.75
    closed = torch.tensor(
        [B ** (-2 * i / D) * math.exp(-a * (i + 1) ** 0.75) for i in range(D // 2)], dtype=torch.float64
    )
    torch.testing.assert_close(S.ntk_mixed_frequencies(D, B, 12.0, 0.75)[0], closed, rtol=1e-12, atol=0)


def test_yarn_correction_dims_llama2():
    # notebook 03 solves L b^(-2i/d) / (2 pi) = r for i: i = d ln(L / (2 pi r)) / (2 ln b)
    L = 4096
    for r in (32.0, 1.0):
        i = S.yarn_correction_dim(r, D, B, L)
        assert math.isclose(i, D * math.log(L / (2 * math.pi * r)) / (2 * math.log(B)), rel_tol=1e-14)
        assert math.isclose(L * B ** (-2 * i / D) / (2 * math.pi), r, rel_tol=1e-12)
    assert S.yarn_correction_range(D, B, L) == (20, 46)  # floor(20.94), ceil(45.03)
    low, high = S.yarn_correction_range(D, B, L, truncate=False)
    assert 20.9 < low < 21.0 and 45.0 < high < 45.1
    # Llama-3-like (b = 5e5, L = 8192): the slow end is past the last pair, so clamped... to d-1 (not d/2-1)
    low3, high3 = S.yarn_correction_range(D, 5e5, 8192, truncate=False)
    assert 0 < low3 < high3 < D - 1


def test_yarn_pieces():
    s, L = 8.0, 4096
    t = theta()
    inv, af = S.yarn_frequencies(D, B, s, L)
    assert math.isclose(af, 0.1 * math.log(s) + 1, rel_tol=1e-14)
    torch.testing.assert_close(inv[:20], t[:20], rtol=0, atol=0)  # below the range: kept (theta * 1 + theta/s * 0)
    ulps_close(inv[46:], t[46:] / s, ulps=2, scale=0)  # above it: interpolated (t / s on a 64- vs an 18-vector)
    inv1, af1 = S.yarn_frequencies(D, B, 1.0, L)
    ulps_close(inv1, t, ulps=4, scale=0)  # theta w + theta (1 - w) rounds each product and the sum
    assert af1 == 1.0  # the literal 1.0 yarn_mscale returns for s <= 1
    _, af_ds = S.yarn_frequencies(D, B, 40.0, L, mscale=1.0, mscale_all_dim=0.5)
    assert math.isclose(af_ds, (0.1 * math.log(40) + 1) / (0.05 * math.log(40) + 1), rel_tol=1e-14)


def test_llama3_is_published_ntk_by_parts():
    for base, L, s, low, high in ((5e5, 8192, 8.0, 1.0, 4.0), (1e4, 4096, 16.0, 0.5, 3.0)):
        a = S.llama3_frequencies(D, base, s, L, low, high)
        b = S.ntk_by_parts_frequencies(D, base, s, L, alpha=low, beta=high)
        torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)  # llama3 calls ntk_by_parts with these very arguments
        # and the ramp is linear in rotations r = L theta / (2 pi)
        r = S.rotations(D, base, L)
        gamma = ((r - low) / (high - low)).clamp(0, 1)
        torch.testing.assert_close(
            a[0], (1 - gamma) * rope_lib.inv_freq(D, base) / s + gamma * rope_lib.inv_freq(D, base)
        )


def test_ntk_by_parts_vs_yarn_ramp():
    # same ends, different middle: published ramp linear in r, YaRN's code linear in the index (log r)
    s, L = 8.0, 4096
    by_parts, af = S.ntk_by_parts_frequencies(D, B, s, L)
    yarn, _ = S.yarn_frequencies(D, B, s, L, truncate=False, attention_factor=1.0)
    assert af == 1.0
    r = S.rotations(D, B, L)
    outside = (r > 32) | (r < 1)
    torch.testing.assert_close(by_parts[outside], yarn[outside], rtol=1e-14, atol=0)
    assert (by_parts / yarn).sub(1).abs().max() > 0.1  # they really differ inside the ramp
    assert bool((by_parts <= yarn * (1 + 1e-12)).all())  # the published ramp interpolates more


def test_dynamic_closed_forms():
    L, s = 4096, 8.0
    t = theta()
    for n in (None, 1, L // 2, L):
        torch.testing.assert_close(S.dynamic_ntk_frequencies(D, B, s, L, n)[0], t, rtol=1e-15, atol=0)
    # factor 1: the NTK scale in effect is n / L; factor s: s n / L - (s - 1) (s + 1 at n = 2L, not 2)
    for k in (2, 8):
        torch.testing.assert_close(
            S.dynamic_ntk_frequencies(D, B, 1.0, L, k * L)[0], S.ntk_frequencies(D, B, k)[0], rtol=1e-13, atol=0
        )
    torch.testing.assert_close(
        S.dynamic_ntk_frequencies(D, B, s, L, 2 * L)[0], S.ntk_frequencies(D, B, s + 1)[0], rtol=1e-13, atol=0
    )
    y = S.dynamic_yarn_frequencies(D, B, L, seq_len=int(s * L))
    ys = S.yarn_frequencies(D, B, s, L)
    # s = 8L / L = 8.0 exactly: dynamic_yarn makes the very call yarn_frequencies(D, B, 8.0, L) makes, bitwise
    torch.testing.assert_close(y[0], ys[0], rtol=0, atol=0)
    assert y[1] == ys[1]
    assert S.dynamic_yarn_frequencies(D, B, L, seq_len=L)[1] == 1.0  # s = 1: the literal 1.0 of yarn_mscale


def test_longrope_switch():
    L, d = 4096, 64
    short, long = [1.0] * (d // 2), [float(i + 1) for i in range(d // 2)]
    t = rope_lib.inv_freq(d, B)
    for n, expect in ((None, short), (L, short), (L + 1, long)):
        inv, af = S.longrope_frequencies(d, B, short, long, L, seq_len=n, factor=16.0)
        # the library's own ops on the same shapes (inv_freq, then one division by the float64 factors): bitwise
        torch.testing.assert_close(inv, t / torch.tensor(expect, dtype=torch.float64), rtol=0, atol=0)
        assert math.isclose(af, math.sqrt(1 + math.log(16) / math.log(L)), rel_tol=1e-14)


def test_log_n_scale():
    L = 512
    pos = torch.arange(0, L * L + 5)
    f = S.log_n_scale(pos, L)
    assert f.dtype == torch.float64 and f.shape == pos.shape
    assert bool((f[:L] == 1).all())  # n = position + 1 <= L: exactly 1 by construction (no log taken there)
    assert math.isclose(f[L].item(), math.log(L + 1) / math.log(L), rel_tol=1e-14)
    assert math.isclose(f[L * L - 1].item(), 2.0, rel_tol=1e-14)
    with pytest.raises(ValueError, match="positions"):
        S.log_n_scale(torch.tensor([-1]), L)
    with pytest.raises(ValueError, match="original_length"):
        S.log_n_scale(pos, 1)


def test_partial_rotary_uses_rotary_dim():
    inv, _ = P.frequencies({"rope_theta": 1e4, "partial_rotary_factor": 0.25}, 128)
    # spread over d = 32, not 128: default_frequencies calls inv_freq(32, 1e4) itself, so bitwise
    torch.testing.assert_close(inv, rope_lib.inv_freq(32, 1e4), rtol=0, atol=0)


def test_exported_names():
    assert set(P.TRANSFORMERS_ROPE_TYPES) <= set(rope_lib.ROPE_TYPES)
    assert rope_lib.frequencies is P.frequencies
    for rope_type in rope_lib.ROPE_TYPES:  # every type is reachable through frequencies()
        params = {
            "rope_type": rope_type,
            "rope_theta": 1e4,
            "factor": 4.0,
            "original_max_position_embeddings": 1024,
            "p": 0.5,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "short_factor": [1.0] * 32,
            "long_factor": [2.0] * 32,
        }
        required, optional = P._KEYS[rope_type]
        params = {k: v for k, v in params.items() if k in ("rope_type", "rope_theta", *required, *optional)}
        inv, af = rope_lib.frequencies(params, 64, seq_len=2048)
        assert inv.shape == (32,) and inv.dtype == torch.float64 and af > 0


# ------------------------------------------------------------------------------------------------------------------
# validation: ValueError naming the key

YARN = {"rope_type": "yarn", "rope_theta": 1e4, "factor": 8.0, "original_max_position_embeddings": 4096}
LLAMA3 = {
    "rope_type": "llama3",
    "rope_theta": 5e5,
    "factor": 8.0,
    "original_max_position_embeddings": 8192,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
}
LONG = {
    "rope_type": "longrope",
    "rope_theta": 1e4,
    "factor": 8.0,
    "original_max_position_embeddings": 4096,
    "short_factor": [1.0] * 32,
    "long_factor": [2.0] * 32,
}


@pytest.mark.parametrize(
    "params, head_dim, key",
    [
        ({"rope_type": "linear", "factor": 2.0}, 64, "rope_theta"),  # missing base
        ({"rope_type": "linear", "rope_theta": 1e4}, 64, "factor"),  # missing factor
        ({"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}, 64, "original_max_position_embeddings"),
        ({"rope_type": "ntk_mixed", "rope_theta": 1e4, "factor": 2.0}, 64, "'p'"),
        ({**LONG, "short_factor": None}, 64, "short_factor"),  # None counts as missing
        ({"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0, "attention_factor": 1.0}, 64, "attention_factor"),
        ({"rope_type": "default", "rope_theta": 1e4, "factor": 2.0}, 64, "factor"),  # unknown for this type
        ({**YARN, "alpha": 1.0}, 64, "alpha"),
        ({**YARN, "mrope_section": [16, 24, 24]}, 64, "mrope_section"),
        ({"rope_type": "linear", "rope_theta": 1e4, "factor": "2"}, 64, "factor"),  # wrong type
        ({"rope_type": "linear", "rope_theta": 1e4, "factor": True}, 64, "factor"),
        ({"rope_type": "default", "rope_theta": "1e4"}, 64, "rope_theta"),
        ({"rope_type": "default", "rope_theta": 1.0}, 64, "rope_theta"),
        ({**YARN, "original_max_position_embeddings": 4096.0}, 64, "original_max_position_embeddings"),
        ({**YARN, "truncate": "false"}, 64, "truncate"),
        ({**YARN, "attention_factor": 0.0}, 64, "attention_factor"),
        ({**YARN, "mscale": -1.0}, 64, "mscale"),
        ({**YARN, "mscale_all_dim": "1"}, 64, "mscale_all_dim"),
        ({"rope_type": "linear", "rope_theta": 1e4, "factor": 0.5}, 64, "factor"),  # factor < 1
        ({**YARN, "factor": 0.9}, 64, "factor"),
        ({**YARN, "beta_fast": 1.0, "beta_slow": 2.0}, 64, "beta_fast"),
        ({**YARN, "beta_fast": 0.5}, 64, "beta_fast"),  # below the default beta_slow = 1
        ({**YARN, "beta_slow": 0}, 64, "beta_slow"),
        ({**LLAMA3, "high_freq_factor": 1.0}, 64, "high_freq_factor"),  # equal
        ({**LLAMA3, "high_freq_factor": 0.5}, 64, "high_freq_factor"),  # below
        ({**LLAMA3, "low_freq_factor": -1.0}, 64, "low_freq_factor"),
        ({**LONG, "short_factor": [1.0] * 31}, 64, "short_factor"),  # list lengths != rotary_dim / 2
        ({**LONG, "long_factor": [1.0] * 64}, 64, "long_factor"),
        ({**LONG, "partial_rotary_factor": 0.5}, 64, "short_factor"),  # 32 entries, but d/2 = 16
        ({**LONG, "long_factor": [1.0] * 31 + ["x"]}, 64, "long_factor"),
        ({**LONG, "long_factor": [1.0] * 31 + [0.0]}, 64, "long_factor"),
        ({**LONG, "factor": None}, 64, "factor"),  # longrope needs factor or attention_factor
        ({"rope_type": "longrop", "rope_theta": 1e4}, 64, "rope_type"),  # unknown type
        ({"type": "magic", "rope_theta": 1e4}, 64, "type"),
        ({"rope_type": "linear", "type": "dynamic", "rope_theta": 1e4, "factor": 2.0}, 64, "type"),  # disagree
        ({"rope_theta": 1e4, "partial_rotary_factor": 0.0}, 64, "partial_rotary_factor"),
        ({"rope_theta": 1e4, "partial_rotary_factor": 1.5}, 64, "partial_rotary_factor"),
        ({"rope_theta": 1e4, "partial_rotary_factor": 0.3}, 64, "partial_rotary_factor"),  # 19.2 not an integer
        ({"rope_theta": 1e4, "partial_rotary_factor": 0.5}, 66, "partial_rotary_factor"),  # d = 33, odd
        ({"rope_type": "ntk_mixed", "rope_theta": 1e4, "factor": 2.0, "p": 1.5}, 64, "'p'"),
        (
            {
                "rope_type": "ntk_by_parts",
                "rope_theta": 1e4,
                "factor": 2.0,
                "original_max_position_embeddings": 512,
                "alpha": 4.0,
                "beta": 2.0,
            },
            64,
            "beta",
        ),
        ({"rope_type": "ntk", "rope_theta": 1e4, "factor": 2.0}, 2, "rotary dim"),  # d/(d-2)
        ({"rope_theta": 1e4}, 63, "head_dim"),
        ({"rope_theta": 1e4}, 64.0, "head_dim"),
    ],
)
def test_validation_errors(params, head_dim, key):
    with pytest.raises(ValueError, match=key) as err:
        P.frequencies(params, head_dim)
    if "'" not in key and " " not in key:
        assert key in str(err.value)


def test_validation_errors_message_lists_allowed():
    with pytest.raises(ValueError) as err:
        P.frequencies({"rope_type": "rerope", "rope_theta": 1e4}, 64)
    for name in P.ROPE_TYPES:
        assert name in str(err.value)
    with pytest.raises(ValueError) as err:
        P.frequencies({**YARN, "beta": 1.0}, 64)
    for name in ("beta_fast", "beta_slow", "truncate", "mscale_all_dim"):
        assert name in str(err.value)


def test_validation_other_arguments():
    with pytest.raises(ValueError, match="seq_len"):
        P.frequencies(YARN, 64, seq_len=0)
    with pytest.raises(ValueError, match="seq_len"):
        P.frequencies(YARN, 64, seq_len=10.5)
    with pytest.raises(ValueError, match="params"):
        P.frequencies([("rope_theta", 1e4)], 64)
    with pytest.raises(ValueError, match="full_attention"):
        P.frequencies({"full_attention": {"rope_theta": 1e4}, "sliding_attention": {"rope_theta": 1e4}}, 64)
    with pytest.raises(ValueError, match="p"):
        S.ntk_mixed_frequencies(64, 1e4, 2.0, -0.1)
    with pytest.raises(ValueError, match="beta_fast"):
        S.yarn_correction_range(64, 1e4, 4096, beta_fast=1, beta_slow=2)


def test_none_values_count_as_absent():
    with_nones = {
        **YARN,
        "attention_factor": None,
        "mscale": None,
        "mscale_all_dim": None,
        "beta_fast": None,
        "beta_slow": None,
        "truncate": None,
        "partial_rotary_factor": None,
    }
    a, b = P.frequencies(with_nones, 128), P.frequencies(YARN, 128)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)  # the same call with the same defaults: bitwise
    assert a[1] == b[1]


# ------------------------------------------------------------------------------------------------------------------
# dynamic decoding with a raw-key cache


DYN = {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 4.0, "original_max_position_embeddings": 32}


@pytest.mark.parametrize(
    "params",
    [
        DYN,
        {"rope_type": "dynamic_yarn", "rope_theta": 1e4, "original_max_position_embeddings": 32},
        {**LONG, "original_max_position_embeddings": 32, "short_factor": [1.0] * 16, "long_factor": [3.0] * 16},
    ],
    ids=["dynamic", "dynamic_yarn", "longrope"],
)
def test_raw_cache_decoding_is_exact_stale_is_not(params):
    err = decoding.stale_cache_error(params, 32, prefill_len=24, total_len=64, heads=2)
    assert err["exact_output"] < 1e-12 and err["exact_logit"] < 1e-12
    assert err["stale_logit"] > 1e-2  # the keys keep an outdated base / factors once the length crosses L


def test_stale_cache_harmless_for_static_types():
    err = decoding.stale_cache_error(
        {**YARN, "original_max_position_embeddings": 32}, 32, prefill_len=24, total_len=48, heads=2
    )
    assert max(err.values()) < 1e-12


def test_dynamic_rope_step_against_full_forward():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 50, 32, dtype=torch.float64) for _ in range(3))
    cache = rope_lib.decoding.RawKVCache()
    q_rot, k_rot, values = decoding.dynamic_rope_step(cache, q[:, :40], k[:, :40], v[:, :40], DYN)
    assert len(cache) == 40 and q_rot.shape == (2, 40, 32) and k_rot.shape == (2, 40, 32)
    for t in range(40, 50):
        q_rot, k_rot, values = decoding.dynamic_rope_step(cache, q[:, t : t + 1], k[:, t : t + 1], v[:, t : t + 1], DYN)
        inv, af = P.frequencies(DYN, 32, seq_len=t + 1)
        pos = torch.arange(t + 1)
        torch.testing.assert_close(k_rot, rope_lib.apply_rope(k[:, : t + 1], pos, inv, attention_factor=af))
        torch.testing.assert_close(q_rot, rope_lib.apply_rope(q[:, t : t + 1], pos[t:], inv, attention_factor=af))
        torch.testing.assert_close(values, v[:, : t + 1])
    with pytest.raises(ValueError, match="q and k"):
        decoding.dynamic_rope_step(cache, q[:, :2], k[:, :1], v[:, :1], DYN)
