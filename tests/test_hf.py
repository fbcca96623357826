"""rope_lib with transformers (pinned 5.23.0): config objects into rope_lib.frequencies, rope_lib.hf.apply/remove on
tiny random Llama-family models, and export_llama. Config dicts are written here: nothing is downloaded."""

from __future__ import annotations

import math
import types

import pytest
import torch

import rope_lib
from rope_lib import scaling as S

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    DeepseekV3Config,
    Gemma3TextConfig,
    GptOssConfig,
    LlamaConfig,
    Qwen2Config,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding  # noqa: E402
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from rope_lib.companion.hf_reference import apply_scheme, chunked_logits, module_frequencies, phi3_longrope_config  # noqa: E402

hf_logging.set_verbosity_error()

F32_RTOL = 1e-6  # transformers computes inv_freq in float32; ours is float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one thread is faster than two on a shared CPU (no OpenMP spin-waiting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_parity(ours, theirs, where, unscaled=None):
    """Relative difference < 1e-6 (to the result, or to the unscaled theta_i where transformers' float32 ramp
    weight is magnified by s - see tests/test_scaling.py) and equal attention factors."""
    (inv, af), (inv_hf, af_hf) = ours, theirs
    assert inv.dtype == torch.float64, where
    assert inv.shape == inv_hf.shape, where
    diff = (inv - inv_hf.double()).abs()
    rel = (diff / (inv_hf.double().abs() if unscaled is None else unscaled)).max().item()
    assert rel < F32_RTOL, f"{where}: max relative difference {rel:.3g}"
    assert math.isclose(af, float(af_hf), rel_tol=1e-12), f"{where}: attention factor {af} vs {af_hf}"


# ------------------------------------------------------------------------------------------------------------------
# real model configs (sizes and rope fields as in the models' published config.json; factors of our own where long)


def llama31():
    return LlamaConfig(
        hidden_size=4096,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )


def qwen25_yarn():
    # Qwen2.5's model card: add {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768} (legacy key)
    return Qwen2Config(
        hidden_size=3584,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
    )


def gpt_oss():
    return GptOssConfig(
        hidden_size=2880,
        num_attention_heads=64,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        rope_parameters={
            "rope_type": "yarn",
            "rope_theta": 150000.0,
            "factor": 32.0,
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "truncate": False,
            "original_max_position_embeddings": 4096,
        },
    )


def dynamic_llama():
    return LlamaConfig(
        hidden_size=2048,
        num_attention_heads=16,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
    )


def deepseek_v3(**extra):
    params = {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 40.0,
        "original_max_position_embeddings": 4096,
        "beta_fast": 32,
        "beta_slow": 1,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
    }
    params.update(extra)  # a None factor stays as a key: transformers then takes max_position_embeddings / L
    return DeepseekV3Config(
        hidden_size=7168,
        num_attention_heads=128,
        qk_rope_head_dim=64,
        qk_nope_head_dim=128,
        max_position_embeddings=163840,
        rope_parameters=params,
    )


def test_config_llama31():
    config = llama31()
    assert_parity(rope_lib.frequencies(config), ROPE_INIT_FUNCTIONS["llama3"](config), "llama3.1")
    emb = LlamaRotaryEmbedding(config)
    assert_parity(rope_lib.frequencies(config), (emb.inv_freq, emb.attention_scaling), "llama3.1 module")


def test_config_qwen25_yarn_legacy_rope_scaling():
    config = qwen25_yarn()
    ours = rope_lib.frequencies(config)
    assert ours[1] == pytest.approx(0.1 * math.log(4.0) + 1)  # YaRN's mscale at s = 4
    assert_parity(ours, ROPE_INIT_FUNCTIONS["yarn"](config), "qwen2.5 yarn")


def test_config_phi3_longrope_without_factor():
    config = phi3_longrope_config()
    assert config.rope_parameters.get("factor") is None
    # the dict alone cannot give the attention factor (the failure); the config object can
    with pytest.raises(ValueError, match="factor"):
        rope_lib.frequencies(config.rope_parameters, 96)
    L, s = 4096, 131072 / 4096
    for n in (100, 4096, 4097, 20000):
        inv, af = rope_lib.frequencies(config, seq_len=n)
        assert af == pytest.approx(math.sqrt(1 + math.log(s) / math.log(L)), rel=1e-12)
        assert_parity((inv, af), module_frequencies(Phi3RotaryEmbedding(config), n, 96), f"phi3 n={n}")
    short, long = rope_lib.frequencies(config, seq_len=4096)[0], rope_lib.frequencies(config, seq_len=4097)[0]
    assert not torch.equal(short, long)  # the switch at L happens (and is checked above against transformers)


def test_config_gpt_oss_yarn_no_truncate():
    config = gpt_oss()
    unscaled = rope_lib.inv_freq(64, 150000.0)
    assert_parity(rope_lib.frequencies(config), ROPE_INIT_FUNCTIONS["yarn"](config), "gpt-oss", unscaled)
    # flat rope_parameters, two declared layer types: either may be named, both give the same (one dict, the same
    # call: bitwise)
    for layer_type in ("sliding_attention", "full_attention"):
        assert torch.equal(rope_lib.frequencies(config, layer_type=layer_type)[0], rope_lib.frequencies(config)[0])
    with pytest.raises(ValueError, match="layer_type"):
        rope_lib.frequencies(config, layer_type="chunked_attention")


def test_config_dynamic_reads_max_position_embeddings():
    config = dynamic_llama()
    for n in (None, 1000, 4096, 5000, 16384):
        theirs = ROPE_INIT_FUNCTIONS["dynamic"](config, seq_len=n)
        assert_parity(rope_lib.frequencies(config, seq_len=n), theirs, f"dynamic n={n}")
        if n is not None:
            module = module_frequencies(LlamaRotaryEmbedding(config), n, 128)
            assert_parity(rope_lib.frequencies(config, seq_len=n), module, f"dynamic module n={n}")
    # n > L changes the base (the parity above would hold trivially if it did not)
    assert not torch.equal(rope_lib.frequencies(config, seq_len=8192)[0], rope_lib.frequencies(config)[0])
    bad = dynamic_llama()
    bad.rope_parameters["original_max_position_embeddings"] = 2048
    with pytest.raises(ValueError, match="max_position_embeddings"):
        rope_lib.frequencies(bad)


@pytest.mark.parametrize(
    "extra",
    [{}, {"mscale": 0.707, "mscale_all_dim": 1.0}, {"factor": None, "mscale": 1.0, "mscale_all_dim": 0.8}],
    ids=["v3", "v2-lite-mscale", "factor-from-lengths"],
)
def test_config_deepseek_v3_yarn_mscale(extra):
    config = deepseek_v3(**extra)
    ours = rope_lib.frequencies(config)
    assert ours[0].shape == (32,)  # qk_rope_head_dim 64, not hidden_size / heads
    assert_parity(ours, ROPE_INIT_FUNCTIONS["yarn"](config), f"deepseek {extra}")
    if extra.get("mscale") == 0.707:
        s = 40.0
        assert ours[1] == pytest.approx((0.1 * 0.707 * math.log(s) + 1) / (0.1 * math.log(s) + 1), rel=1e-12)


def test_config_nested_per_layer_type():
    config = Gemma3TextConfig(
        hidden_size=256,
        num_attention_heads=4,
        head_dim=64,
        num_hidden_layers=2,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
    )
    full = rope_lib.frequencies(config, layer_type="full_attention")
    assert_parity(full, ROPE_INIT_FUNCTIONS["linear"](config, layer_type="full_attention"), "gemma3 full")
    sliding = rope_lib.frequencies(config, layer_type="sliding_attention")
    torch.testing.assert_close(sliding[0], rope_lib.inv_freq(64, 10000.0), rtol=0, atol=0)  # the same call: bitwise
    with pytest.raises(ValueError, match="layer_type"):
        rope_lib.frequencies(config)  # ambiguous: two different dicts
    with pytest.raises(ValueError, match="layer_type"):
        rope_lib.frequencies(config, layer_type="global")
    # a nested dict works the same way with layer_type (the same dict and call: bitwise), and still refuses without it
    nested = {k: dict(v) for k, v in config.rope_parameters.items()}
    assert torch.equal(rope_lib.frequencies(nested, 64, layer_type="full_attention")[0], full[0])
    with pytest.raises(ValueError, match="nested"):
        rope_lib.frequencies(nested, 64)


def test_duck_typed_legacy_config_without_transformers_types():
    """scaling.py never imports transformers: any object with the attributes works (legacy rope_scaling too).

    Each config resolves to the very call it is compared with (same function, same float arguments): bitwise."""
    cfg = types.SimpleNamespace(
        rope_theta=10000.0,
        rope_scaling={"type": "ntk_fixed", "factor": 4.0},
        hidden_size=256,
        num_attention_heads=4,
        max_position_embeddings=512,
    )
    torch.testing.assert_close(
        rope_lib.frequencies(cfg)[0], rope_lib.ntk_fixed_frequencies(64, 10000.0, 4.0)[0], rtol=0, atol=0
    )
    plain = types.SimpleNamespace(rope_theta=500.0, rope_scaling=None, head_dim=16)
    torch.testing.assert_close(rope_lib.frequencies(plain)[0], rope_lib.inv_freq(16, 500.0), rtol=0, atol=0)
    # our own types read L from the config when rope_parameters lacks it
    dy = types.SimpleNamespace(
        rope_parameters={"rope_type": "dynamic_yarn", "rope_theta": 1e4}, head_dim=32, max_position_embeddings=128
    )
    torch.testing.assert_close(
        rope_lib.frequencies(dy, seq_len=512)[0],
        rope_lib.frequencies(
            {"rope_type": "dynamic_yarn", "rope_theta": 1e4, "original_max_position_embeddings": 128}, 32, seq_len=512
        )[0],
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: types.SimpleNamespace(rope_parameters={"rope_type": "default", "rope_theta": 1e4}), "head_dim"),
        (lambda: types.SimpleNamespace(rope_parameters={"rope_type": "default"}, head_dim=8), "rope_theta"),
        (lambda: types.SimpleNamespace(rope_parameters=[1, 2], head_dim=8), "rope_parameters"),
        (
            lambda: types.SimpleNamespace(
                rope_parameters={"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0}, head_dim=8
            ),
            "original_max_position_embeddings",
        ),
        (
            lambda: types.SimpleNamespace(
                rope_parameters={"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}, head_dim=8
            ),
            "max_position_embeddings",
        ),
        (
            lambda: types.SimpleNamespace(
                rope_parameters={
                    "rope_type": "llama3",
                    "rope_theta": 1e4,
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192,
                },
                original_max_position_embeddings=4096,
                head_dim=8,
            ),
            "original_max_position_embeddings",
        ),
        (
            lambda: types.SimpleNamespace(rope_parameters={"rope_type": "magic", "rope_theta": 1e4}, head_dim=8),
            "rope_type",
        ),
        (
            lambda: types.SimpleNamespace(
                rope_parameters={"rope_type": "linear", "rope_theta": 1e4, "factor": 0.5}, head_dim=8
            ),
            "factor",
        ),
        (
            lambda: types.SimpleNamespace(rope_parameters={"rope_type": "default", "rope_theta": 1e4}, head_dim=-4),
            "head_dim",
        ),
        (
            lambda: types.SimpleNamespace(
                rope_parameters={"rope_type": "default", "rope_theta": 1e4}, head_dim=8, max_position_embeddings=True
            ),
            "max_position_embeddings",
        ),
    ],
)
def test_bad_configs_raise_naming_the_key(make, match):
    cfg = make()
    with pytest.raises(ValueError, match=match):
        rope_lib.frequencies(cfg)


def test_dict_input_unchanged_and_needs_head_dim():
    params = {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0, "original_max_position_embeddings": 256}
    # the dict resolves to this very call (defaults included): bitwise
    assert torch.equal(rope_lib.frequencies(params, 64)[0], S.yarn_frequencies(64, 1e4, 4.0, 256)[0])
    with pytest.raises(ValueError, match="head_dim"):
        rope_lib.frequencies(params)


# ------------------------------------------------------------------------------------------------------------------
# rope_lib.hf.apply / remove on tiny random models

from rope_lib import hf  # noqa: E402
from rope_lib.companion.export import export_llama, llama_config_dict  # noqa: E402
from rope_lib.companion.model import ModelConfig, PositionScheme, RoPELM  # noqa: E402

VOCAB, T = 128, 48  # T > every L below, so the scaling methods act


def tiny(
    family: str = "llama",
    rope_parameters=None,
    *,
    max_pos: int = 32,
    seed: int = 0,
    dtype=torch.float32,
    layers=2,
    **config,
):
    """A seeded random model (2 layers, hidden 64, 4 heads of 16, 2 KV heads: GQA) of the given family; ``config``:
    further config keyword arguments."""
    from transformers import (
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2ForCausalLM,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    kwargs = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=max_pos,
        rope_parameters=dict(rope_parameters or {"rope_type": "default", "rope_theta": 10000.0}),
        tie_word_embeddings=False,
        **config,
    )
    config_cls, model_cls = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "mistral": (MistralConfig, MistralForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "qwen3": (Qwen3Config, Qwen3ForCausalLM),
    }[family]
    torch.manual_seed(seed)
    model = model_cls(config_cls(**kwargs))
    with torch.no_grad():  # transformers' init is std 0.02: scale up so positions visibly matter in the logits
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3 if "embed" in name or "proj" in name else 0.02)
    return model.to(dtype).eval()


def ids(seed: int = 1, n: int = T, batch: int = 2) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def logits(model, x):
    return model(x).logits


NATIVE = {  # transformers' own types, L = 16, run at T = 48
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 3.0},
    "dynamic": {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
    "yarn": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16},
    "llama3": {
        "rope_type": "llama3",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    },
    "longrope": {
        "rope_type": "longrope",
        "rope_theta": 10000.0,
        "short_factor": [1.0 + 0.1 * i for i in range(8)],
        "long_factor": [1.0 + 2.0 * i for i in range(8)],
        "original_max_position_embeddings": 16,
    },
}


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "qwen3"])
@pytest.mark.parametrize("name", list(NATIVE))
def test_native_types_equal_transformers(family, name):
    """The model's own rope parameters through rope_lib (apply with None) give transformers' logits."""
    model = tiny(family, NATIVE[name], max_pos=16 if name == "dynamic" else 64)
    x = ids()
    theirs = logits(model, x)
    hf.apply(model)
    ours = logits(model, x)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=2e-4)
    # the route: length-dependent types keep raw keys (identity rotary), the others use our rotary module
    rotary = type(model.model.rotary_emb)
    assert rotary is (hf.IdentityRotary if name in hf.LENGTH_DEPENDENT else hf.StaticRotary)
    hf.remove(model)
    assert torch.equal(logits(model, x), theirs)  # the very modules back, same input and threads: bitwise


ROUTES = {
    "ntk_fixed": dict(rope_parameters={"rope_type": "ntk_fixed", "factor": 4.0}),
    "ntk_mixed_log_n": dict(rope_parameters={"rope_type": "ntk_mixed", "factor": 4.0, "p": 0.75}, log_n=True),
    "dynamic_yarn": dict(rope_parameters={"rope_type": "dynamic_yarn"}),
    "rerope": dict(attention="rerope", window=8),
    "leaky_rerope_log_n": dict(attention="rerope", window=8, leaky_k=4.0, log_n=True),
    "yarn_rerope": dict(rope_parameters={"rope_type": "yarn", "factor": 2.0}, attention="rerope", window=12),
}


@pytest.mark.parametrize("name", list(ROUTES))
def test_remove_restores_bit_identical(name):
    model = tiny("qwen2", max_pos=16)
    x = ids()
    before = logits(model, x)
    rotary, impl = model.model.rotary_emb, model.config._attn_implementation
    hf.apply(model, **ROUTES[name])
    patched = logits(model, x)
    assert not torch.allclose(patched, before, atol=1e-3)  # the method changes something at T = 3L
    hf.remove(model)
    assert model.model.rotary_emb is rotary and model.config._attn_implementation == impl
    assert not hasattr(model, "_rope_lib_patch")
    assert all(not hasattr(layer.self_attn, "_rope_lib_patch") for layer in model.model.layers)
    assert torch.equal(logits(model, x), before)  # the very modules back, same input and threads: bitwise


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "qwen3"])
def test_rerope_window_covering_the_sequence_is_plain_rope(family):
    model = tiny(family, max_pos=16)
    x = ids()
    plain = logits(model, x)
    hf.apply(model, attention="rerope", window=T)
    torch.testing.assert_close(logits(model, x), plain, rtol=1e-4, atol=2e-4)
    hf.remove(model)
    hf.apply(model, attention="rerope", window=T // 4)
    assert not torch.allclose(logits(model, x), plain, atol=1e-3)


def our_lm(seed: int = 0, train_length: int = 16) -> RoPELM:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=VOCAB,
        d_model=64,
        n_layers=2,
        n_heads=4,
        head_dim=16,
        d_ff=96,
        train_length=train_length,
        rope_base=10000.0,
        init_std=0.3,
    )
    return RoPELM(cfg).eval()


SCHEMES = {  # every rope_lib type and attention, compared with rope_lib's own model at T = 3L
    "default": PositionScheme(),
    "linear": PositionScheme({"rope_type": "linear", "factor": 3.0}),
    "ntk": PositionScheme({"rope_type": "ntk", "factor": 3.0}),
    "ntk_fixed": PositionScheme({"rope_type": "ntk_fixed", "factor": 3.0}),
    "ntk_mixed": PositionScheme({"rope_type": "ntk_mixed", "factor": 3.0, "p": 0.625}),
    "dynamic": PositionScheme({"rope_type": "dynamic", "factor": 1.0}),
    "ntk_by_parts": PositionScheme({"rope_type": "ntk_by_parts", "factor": 3.0, "alpha": 1.0, "beta": 8.0}),
    "yarn": PositionScheme({"rope_type": "yarn", "factor": 3.0}),
    "dynamic_yarn": PositionScheme({"rope_type": "dynamic_yarn"}),
    "llama3": PositionScheme({"rope_type": "llama3", "factor": 3.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}),
    "longrope": PositionScheme(
        {"rope_type": "longrope", "short_factor": [1.0] * 8, "long_factor": [1.0 + i for i in range(8)], "factor": 3.0}
    ),
    "p_rope": PositionScheme({"rope_type": "p_rope", "p": 0.5}),
    "hope": PositionScheme({"rope_type": "hope"}),  # L = 16 from the model on both sides
    "resonance": PositionScheme({"rope_type": "resonance"}),
    "log_n": PositionScheme(log_n=True),
    "yarn_log_n": PositionScheme({"rope_type": "yarn", "factor": 3.0}, log_n=True),
    "dynamic_log_n": PositionScheme({"rope_type": "dynamic", "factor": 1.0}, log_n=True),
    "rerope": PositionScheme(attention="rerope", window=6),
    "leaky_rerope": PositionScheme(attention="rerope", window=6, leaky_k=3.0),
    "rerope_log_n": PositionScheme(attention="rerope", window=6, log_n=True),
}
assert {s.rope_type for s in SCHEMES.values()} == set(rope_lib.ROPE_TYPES)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from transformers import LlamaForCausalLM

    lm = our_lm()
    path = export_llama(lm, tmp_path_factory.mktemp("export") / "tiny-llama")
    return lm, LlamaForCausalLM.from_pretrained(path).eval()


def test_export_round_trip(exported, tmp_path):
    lm, llama = exported
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(logits(llama, x), lm(x), rtol=1e-4, atol=1e-4)
    assert llama.config.max_position_embeddings == lm.cfg.train_length
    assert (
        llama.config.tie_word_embeddings
        and llama.lm_head.weight.data_ptr() == llama.model.embed_tokens.weight.data_ptr()
    )
    # re-export over an existing folder replaces it whole; no temporary is left behind
    path = tmp_path / "again"
    export_llama(lm, path)
    export_llama(our_lm(seed=1), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]
    assert {p.name for p in path.iterdir()} >= {"config.json", "model.safetensors"}


def test_export_refuses_what_llama_cannot_express():
    for change in (dict(train_log_n=True), dict(mlp="gelu"), dict(norm="layernorm")):
        torch.manual_seed(0)
        lm = RoPELM(ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=1, n_heads=2, head_dim=16, d_ff=32, **change))
        with pytest.raises(ValueError, match=next(iter(change))):
            llama_config_dict(lm)
    with pytest.raises(ValueError, match="RoPELM"):
        export_llama(torch.nn.Linear(2, 2), "unused")


@pytest.mark.parametrize("name", list(SCHEMES))
def test_every_method_equals_rope_lib_model(exported, name):
    lm, llama = exported
    scheme, x = SCHEMES[name], ids(n=T)
    with torch.no_grad():
        ours = lm(x, scheme)
    apply_scheme(llama, scheme)
    try:
        torch.testing.assert_close(logits(llama, x), ours, rtol=1e-4, atol=2e-4)
    finally:
        hf.remove(llama)


@torch.no_grad()
def cached_decode_logits(model, x, prefill: int):
    """Logits of positions prefill-1..n-1: a prefill, then one token at a time with the KV cache."""
    out = model(x[:, :prefill], use_cache=True)
    rows, cache = [out.logits[:, -1]], out.past_key_values
    for t in range(prefill, x.shape[1]):
        out = model(x[:, t : t + 1], past_key_values=cache, use_cache=True)
        rows.append(out.logits[:, -1])
        cache = out.past_key_values
    return torch.stack(rows, dim=1)


@torch.no_grad()
def recompute_logits(model, x, prefill: int):
    """The same positions, each from a full forward over its prefix (no cache)."""
    return torch.stack([model(x[:, : t + 1]).logits[:, -1] for t in range(prefill - 1, x.shape[1])], dim=1)


DECODE = {
    "dynamic": dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0}),
    "dynamic_yarn_log_n": dict(rope_parameters={"rope_type": "dynamic_yarn"}, log_n=True),
    "longrope": dict(
        rope_parameters={
            "rope_type": "longrope",
            "short_factor": [1.0] * 8,
            "long_factor": [1.0 + i for i in range(8)],
            "factor": 3.0,
        }
    ),
    "ntk_fixed_log_n": dict(rope_parameters={"rope_type": "ntk_fixed", "factor": 3.0}, log_n=True),
    "rerope": dict(attention="rerope", window=6),
    "leaky_rerope_log_n": dict(attention="rerope", window=6, leaky_k=2.0, log_n=True),
}


@pytest.mark.parametrize("name", list(DECODE))
def test_cached_decode_equals_full_recompute(name):
    """Raw keys in the cache, rotated on read: with one layer every decode step equals a full forward over the prefix
    (the rotate-once cache of transformers' own dynamic type does not: next test). Length-independent methods
    (ReRoPE, static types) equal it with any number of layers."""
    layers = 1 if name in ("dynamic", "dynamic_yarn_log_n", "longrope") else 2
    model = tiny("llama", max_pos=16, dtype=torch.float64, layers=layers)
    hf.apply(model, **DECODE[name])
    x = ids(n=40, batch=1)
    torch.testing.assert_close(cached_decode_logits(model, x, 12), recompute_logits(model, x, 12), rtol=1e-9, atol=1e-9)


def test_transformers_own_dynamic_cache_is_stale():
    """The failure the raw-key route avoids: transformers' dynamic type decodes with keys rotated at old bases."""
    model = tiny(
        "llama",
        {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
        max_pos=16,
        dtype=torch.float64,
        layers=1,
    )
    x = ids(n=40, batch=1)
    gap = (cached_decode_logits(model, x, 12) - recompute_logits(model, x, 12)).abs().max().item()
    assert gap > 1e-3


@pytest.mark.parametrize("rope_parameters", [{"rope_type": "dynamic", "factor": 1.0}, {"rope_type": "dynamic_yarn"}])
@pytest.mark.parametrize("per_doubling", [4, 10**6])
def test_multilayer_dynamic_decode_equals_rope_lib_decoder_evaluation(exported, rope_parameters, per_doubling):
    """With several layers a decoder's earlier hidden states were computed at earlier lengths, so no cache equals a
    full recompute; the raw-key cache gives exactly what rope_lib's PositionScheme(dynamic_blocks=m) evaluates
    (blocks of the decoder, edges ceil(L 2^(j/m)); m = 10^6 is one token per step)."""
    from rope_lib.companion.model import dynamic_block_edges

    lm, llama = exported
    x = ids(n=T)
    scheme = PositionScheme(rope_parameters, dynamic_blocks=per_doubling)
    edges = dynamic_block_edges(lm.cfg.train_length, T, per_doubling)
    with torch.no_grad():
        ours = lm(x, scheme)
    hf.apply(llama, rope_parameters)
    try:
        torch.testing.assert_close(chunked_logits(llama, x, edges), ours, rtol=1e-4, atol=2e-4)
    finally:
        hf.remove(llama)


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "qwen3"])
@pytest.mark.parametrize("name", ["rerope", "leaky_rerope_log_n", "ntk_fixed_log_n", "dynamic_yarn_log_n"])
def test_generate_with_cache_equals_stepwise_argmax(family, name):
    # one layer for the length-dependent type: there a full recompute is what the cache reproduces (see above)
    model = tiny(family, max_pos=16, dtype=torch.float64, layers=1 if name.startswith("dynamic") else 2)
    hf.apply(model, **DECODE[name])
    prompt = ids(seed=3, n=14, batch=2)
    with torch.no_grad():
        generated = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=18,
            do_sample=False,
            use_cache=True,
            pad_token_id=0,
        )
        seq = prompt
        for _ in range(18):
            nxt = model(seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat((seq, nxt), dim=1)
    assert torch.equal(generated, seq)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(attention="flash"), "attention"),
        (dict(attention="rerope"), "window"),
        (dict(attention="rerope", window=0), "window"),
        (dict(window=8), "window"),
        (dict(leaky_k=2.0), "leaky_k"),
        (dict(attention="rerope", window=8, leaky_k=0.0), "leaky_k"),
        (dict(log_n="yes"), "log_n"),
        (dict(original_length=1), "original_length"),
        (dict(rope_parameters={"rope_type": "bogus"}), "rope_type"),
        (dict(rope_parameters={"factor": 2.0}), "rope_type"),
        (dict(rope_parameters={"rope_type": "linear"}), "factor"),
        (dict(rope_parameters={"rope_type": "yarn", "factor": 2.0, "betta_fast": 3}), "betta_fast"),
        (dict(rope_parameters=[("rope_type", "linear")]), "rope_parameters"),
        (dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0}, attention="rerope", window=4), "static"),
        (
            dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 99}),
            "original_max_position_embeddings",
        ),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    model = tiny("llama", max_pos=16)
    with pytest.raises(ValueError, match=match):
        hf.apply(model, **kwargs)
    assert not hasattr(model, "_rope_lib_patch")  # nothing half-applied


def test_unsupported_models_and_misuse_raise():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB))
    with pytest.raises(ValueError, match="gpt2.*llama"):
        hf.apply(gpt2)
    model = tiny("llama", max_pos=16)
    with pytest.raises(ValueError, match="not patched"):
        hf.remove(model)
    hf.apply(model, attention="rerope", window=4)
    with pytest.raises(ValueError, match="already"):
        hf.apply(model)
    # position_ids the attention mask does not imply are refused on the raw-key routes (a constant shift is accepted
    # by ReRoPE without log n, which sees only differences: tests/test_hf_padding.py)
    with pytest.raises(ValueError, match="position_ids"):
        model(ids(), position_ids=torch.arange(T)[None] * 2)
    hf.remove(model)
    assert model(ids(), position_ids=torch.arange(T)[None] + 5).logits.shape == (2, T, VOCAB)


def test_import_error_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("no transformers here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    # rope_lib is not on PyPI: the advice must be a command that works (transformers itself, or a clone's extra)
    with pytest.raises(
        ImportError, match=r"pip install 'transformers>=5\.6,<6' \(or, in a clone of rope_lib: pip install '\.\[hf\]'\)"
    ):
        hf.apply(torch.nn.Linear(2, 2))


def test_too_old_transformers_is_refused_naming_both_versions(monkeypatch):
    import re

    # the module hf imports now: importing some transformers submodules replaces sys.modules["transformers"], so this
    # file's module-level `transformers` may be a stale object
    import transformers as current

    for old in ("5.5.4", "5.0.0", "4.57.6"):
        monkeypatch.setattr(current, "__version__", old)
        expected = rf"needs transformers>=5\.6,<6 \(tested with .*\), but transformers {re.escape(old)} is installed"
        with pytest.raises(ImportError, match=expected):
            hf.apply(torch.nn.Linear(2, 2))
    for new in ("5.6.0", "5.6.0.dev0", "5.10.1", "5.23.0"):  # the minimum (and its pre-release) and later pass
        monkeypatch.setattr(current, "__version__", new)
        assert hf._transformers() is current
