"""rope_lib.since_su's frequency methods as rope types of rope_lib.frequencies ("p_rope", "hope", "resonance"): each
against frequencies built here from theta_i by index arithmetic (not by calling the method a second time), every bad
key refused by name with the allowed values, a config object, the doctor, and rope_lib.hf.apply on a tiny Llama."""

from __future__ import annotations

import json
import math
import re
import types

import pytest
import torch

import rope_lib
from rope_lib import rope_parameters as P
from rope_lib import since_su as S
from rope_lib.doctor import diagnose

BASE, D = 1e4, 32  # rotary dim 32: 16 pairs, wavelengths 2 pi b^(2i/d) = 6.28, 11.2, 19.9, 35.3, 62.8, 112, ...


def _params(rope_type: str, **keys) -> dict:
    return {"rope_type": rope_type, "rope_theta": BASE, **keys}


# ------------------------------------------------------------------------------------------------------------------
# the frequencies


@pytest.mark.parametrize("p, kept", [(0.75, 12), (0.25, 4), (0.5, 8), (1.0, 16), (0.0, 0), (0.99, 15)])
def test_p_rope_type_zeroes_the_lowest_pairs(p, kept):
    expected = rope_lib.inv_freq(D, BASE)
    expected[kept:] = 0.0  # kept = floor(p * 16), written out in the table
    inv, af = rope_lib.frequencies(_params("p_rope", p=p), D)
    assert inv.dtype == torch.float64 and af == 1.0
    assert torch.equal(inv, expected)
    assert torch.equal(inv, S.p_rope_frequencies(D, BASE, p))
    # the pairs are counted over the rotary dim, head_dim * partial_rotary_factor
    inv, _ = rope_lib.frequencies(_params("p_rope", p=p, partial_rotary_factor=0.5), 2 * D)
    assert torch.equal(inv, expected)


@pytest.mark.parametrize("L, kept", [(64, 5), (7, 1), (2, 0), (10**6, 16)])
def test_hope_type_keeps_the_pairs_with_a_period_within_L(L, kept):
    # 2 pi b^(2i/d) <= L  <=>  i <= (d/2) ln(L / 2 pi) / ln b: the count of kept pairs in closed form
    bound = (D / 2) * math.log(L / (2 * math.pi)) / math.log(BASE)
    assert min(max(math.floor(bound) + 1, 0), D // 2) == kept
    expected = rope_lib.inv_freq(D, BASE)
    expected[kept:] = 0.0
    inv, af = rope_lib.frequencies(_params("hope", original_max_position_embeddings=L), D)
    assert af == 1.0 and torch.equal(inv, expected)
    assert torch.equal(inv, S.hope_frequencies(D, BASE, L))


def test_resonance_type_rounds_every_wavelength_or_only_those_within_L():
    theta = rope_lib.inv_freq(D, BASE).tolist()
    rounded = [2 * math.pi / round(2 * math.pi / t) for t in theta]  # Python's round: half to even, as torch's
    inv, af = rope_lib.frequencies(_params("resonance"), D)
    assert af == 1.0 and inv.dtype == torch.float64
    # to one ulp: torch divides a scalar by a tensor through the reciprocal
    assert inv.tolist() == pytest.approx(rounded, rel=1e-15, abs=0.0)
    assert [round(2 * math.pi / t) for t in inv.tolist()] == [round(2 * math.pi / t) for t in theta]  # integers
    assert torch.equal(inv, S.resonance_frequencies(D, BASE))
    # with L = 64 only the pairs of period <= 64 (i = 0..4: 6.28 .. 62.8) are rounded, the others bit for bit theta_i
    inv, _ = rope_lib.frequencies(_params("resonance", original_max_position_embeddings=64), D)
    assert inv.tolist() == pytest.approx(rounded[:5] + theta[5:], rel=1e-15, abs=0.0)
    assert inv[5:].tolist() == theta[5:]
    assert torch.equal(inv, S.resonance_frequencies(D, BASE, 64))


def test_types_are_listed_as_rope_lib_types():
    for rope_type in ("p_rope", "hope", "resonance"):
        assert rope_type in rope_lib.ROPE_TYPES
        assert rope_type not in rope_lib.TRANSFORMERS_ROPE_TYPES
    # hope needs L, so a config or model fills it in; resonance's L is an opt-in, never filled in
    assert "hope" in P.USES_ORIGINAL_LENGTH and "resonance" not in P.USES_ORIGINAL_LENGTH
    assert P._KEYS["p_rope"] == (("p",), ())
    assert P._KEYS["hope"] == (("original_max_position_embeddings",), ())
    assert P._KEYS["resonance"] == ((), ("original_max_position_embeddings",))


# ------------------------------------------------------------------------------------------------------------------
# bad keys: a ValueError naming the key and what it allows

P_ALLOWED = "rope_parameters['p'] must be a number in [0, 1]"
L_ALLOWED = "rope_parameters['original_max_position_embeddings'] must be the training length L, an integer >= 2"
THETA_ALLOWED = "rope_parameters['rope_theta'] must be the base b, a number > 1"


@pytest.mark.parametrize(
    "params, head_dim, message",
    [
        (_params("p_rope"), D, "rope_parameters['p'] is required for rope_type 'p_rope': a number in [0, 1]"),
        (_params("p_rope", p=1.5), D, P_ALLOWED),
        (_params("p_rope", p=-0.1), D, P_ALLOWED),
        (_params("p_rope", p=True), D, P_ALLOWED),
        (_params("p_rope", p="0.5"), D, P_ALLOWED),
        (_params("p_rope", p=math.nan), D, P_ALLOWED),
        (_params("p_rope", p=0.5, factor=2.0), D, "unknown key(s) ['factor'] for rope_type 'p_rope'; allowed keys: "),
        (_params("p_rope", p=0.5, rope_theta=1.0), D, THETA_ALLOWED),
        (_params("p_rope", p=0.5, partial_rotary_factor=0.3), D, "head_dim * partial_rotary_factor"),
        (
            _params("hope"),
            D,
            "rope_parameters['original_max_position_embeddings'] is required for rope_type 'hope': the training length",
        ),
        (_params("hope", original_max_position_embeddings=1), D, L_ALLOWED),
        (_params("hope", original_max_position_embeddings=64.5), D, L_ALLOWED),
        (_params("hope", original_max_position_embeddings=True), D, L_ALLOWED),
        (_params("hope", original_max_position_embeddings=64, p=0.5), D, "unknown key(s) ['p'] for rope_type 'hope'"),
        (_params("hope", original_max_position_embeddings=64, rope_theta="1e4"), D, THETA_ALLOWED),
        (_params("resonance", original_max_position_embeddings=0), D, L_ALLOWED),
        (_params("resonance", original_max_position_embeddings="64"), D, L_ALLOWED),
        (_params("resonance", factor=2.0), D, "unknown key(s) ['factor'] for rope_type 'resonance'"),
        (_params("resonance", rope_theta=-3.0), D, THETA_ALLOWED),
        (_params("resonance"), 7, "head_dim"),
        (_params("p-rope"), D, "rope_parameters['rope_type'] must be one of"),
    ],
)
def test_bad_keys_raise_naming_the_key_and_the_allowed_values(params, head_dim, message):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        rope_lib.frequencies(params, head_dim)
    text = str(err.value)
    if "unknown key" in text:  # the allowed keys are listed
        assert all(key in text for key in ("rope_theta", "partial_rotary_factor"))
    if "rope_type'] must be" in text:
        assert all(name in text for name in ("p_rope", "hope", "resonance"))


def test_p_message_says_what_p_means_for_p_rope():
    with pytest.raises(ValueError) as err:
        rope_lib.frequencies(_params("p_rope", p=2.0), D)
    assert "for p_rope the fraction of pairs rotated" in str(err.value) and "got 2.0" in str(err.value)


# ------------------------------------------------------------------------------------------------------------------
# config objects: hope reads L from the model, resonance does not


def test_config_object_fills_L_for_hope_and_not_for_resonance():
    def config(rope_type: str) -> types.SimpleNamespace:
        return types.SimpleNamespace(
            rope_parameters=_params(rope_type), head_dim=D, max_position_embeddings=64, hidden_size=4 * D
        )

    inv, _ = rope_lib.frequencies(config("hope"))
    assert torch.equal(inv, S.hope_frequencies(D, BASE, 64))
    assert P.config_rope_parameters(config("hope"))["original_max_position_embeddings"] == 64
    inv, _ = rope_lib.frequencies(config("resonance"))
    assert torch.equal(inv, S.resonance_frequencies(D, BASE))  # every pair rounded, as published
    assert "original_max_position_embeddings" not in P.config_rope_parameters(config("resonance"))


# ------------------------------------------------------------------------------------------------------------------
# the doctor


def _doctor_config(rope_scaling: dict) -> dict:
    return {
        "model_type": "llama",
        "head_dim": D,
        "max_position_embeddings": 64,
        "rope_theta": BASE,
        "rope_scaling": rope_scaling,
    }


@pytest.mark.parametrize(
    "rope_scaling, bands",
    [
        ({"rope_type": "p_rope", "p": 0.75}, ["kept"] * 12 + ["unrotated"] * 4),
        ({"rope_type": "p_rope", "p": 0.0}, ["unrotated"] * 16),
        ({"rope_type": "hope"}, ["kept"] * 5 + ["unrotated"] * 11),  # L = max_position_embeddings = 64
        ({"rope_type": "resonance"}, None),
    ],
)
def test_doctor_reports_the_new_types(rope_scaling, bands, recwarn):
    report = diagnose(_doctor_config(rope_scaling), context=256)
    layer = report.layers["all layers"]
    assert layer.rope_type == rope_scaling["rope_type"]
    expected, _ = rope_lib.frequencies({**rope_scaling, "rope_theta": BASE, **_L(rope_scaling)}, D)
    assert torch.equal(torch.from_numpy(layer.inv_freq_after), expected)
    if bands is not None:
        assert layer.bands == bands
    else:
        assert "unrotated" not in layer.bands
    assert int(layer.unrotated.sum()) == (bands or []).count("unrotated")
    # strict JSON (no Infinity for the unrotated pairs' wavelength and divisor) and a text report
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["layers"]["all layers"]["unrotated_pairs"] == int(layer.unrotated.sum())
    assert f"rope_type {rope_scaling['rope_type']!r}" in report.text()
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # no division-by-zero warnings


def _L(rope_scaling: dict) -> dict:
    return {"original_max_position_embeddings": 64} if rope_scaling["rope_type"] == "hope" else {}


def test_doctor_refuses_a_bad_p_naming_the_key():
    with pytest.raises(ValueError, match=re.escape(P_ALLOWED)):
        diagnose(_doctor_config({"rope_type": "p_rope", "p": 2}))


# ------------------------------------------------------------------------------------------------------------------
# rope_lib.hf.apply


@pytest.fixture(scope="module")
def tiny_llama():
    pytest.importorskip("transformers")
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=32,
        rope_parameters={"rope_type": "default", "rope_theta": BASE},
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # transformers' init (std 0.02) hides the positions in the logits: scale up, as test_hf
        for name, w in model.named_parameters():
            if w.dim() == 2:
                w.normal_(0, 0.3 if "embed" in name or "proj" in name else 0.02)
    return model.eval()


def test_hf_apply_p_rope_equals_transformers_rotary_with_the_same_frequencies(tiny_llama):
    from rope_lib import hf

    model = tiny_llama
    x = torch.randint(0, 64, (2, 40), generator=torch.Generator().manual_seed(1))
    expected = rope_lib.inv_freq(16, BASE)
    expected[4:] = 0.0  # p = 0.5 of the 8 pairs of a 16-dim head: pairs 0..3 rotate
    with torch.no_grad():
        plain = model(x).logits
    hf.apply(model, {"rope_type": "p_rope", "p": 0.5})
    try:
        rotary = model.model.rotary_emb
        assert isinstance(rotary, hf.StaticRotary)
        assert torch.equal(rotary.inv_freq_f64, expected) and rotary.attention_factor == 1.0
        # transformers has no p_rope: the config says so, and a saved copy cannot load unpatched
        assert model.config.rope_parameters["rope_type"] == hf.CONFIG_KEY
        assert model.config.rope_lib["rope_parameters"]["p"] == 0.5
        with torch.no_grad():
            ours = model(x).logits
    finally:
        hf.remove(model)
    # the direct computation: transformers' own rotary module with its inv_freq buffer set to p-RoPE's frequencies
    own = model.model.rotary_emb
    saved = own.inv_freq.clone()
    try:
        with torch.no_grad():
            own.inv_freq.copy_(expected.to(own.inv_freq.dtype))
            theirs = model(x).logits
    finally:
        own.inv_freq.copy_(saved)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=2e-4)
    assert not torch.allclose(ours, plain, atol=1e-3)  # zeroing half the pairs changes the logits


def test_hf_apply_fills_L_for_hope_not_for_resonance(tiny_llama):
    from rope_lib import hf

    for rope_parameters, expected in (
        ({"rope_type": "hope"}, S.hope_frequencies(16, BASE, 32)),  # L = max_position_embeddings = 32
        ({"rope_type": "resonance"}, S.resonance_frequencies(16, BASE)),
        ({"rope_type": "resonance", "original_max_position_embeddings": 20}, S.resonance_frequencies(16, BASE, 20)),
    ):
        hf.apply(tiny_llama, rope_parameters)
        try:
            assert torch.equal(tiny_llama.model.rotary_emb.inv_freq_f64, expected), rope_parameters
        finally:
            hf.remove(tiny_llama)
