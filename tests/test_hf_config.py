"""rope_lib.hf.apply/remove and the model's config (transformers 5.23.0, tiny random models, nothing downloaded): what
the config says while patched, save_pretrained / from_pretrained and rope_lib.hf.load, switching the attention
implementation, output_attentions, models sharing one config object, transformers' attention registries after
remove, and the sliding-window refusal."""

from __future__ import annotations

import copy
import gc
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")
from test_hf import VOCAB, T, ids, logits, tiny  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from transformers.masking_utils import AttentionMaskInterface  # noqa: E402

import rope_lib  # noqa: E402
from rope_lib import hf  # noqa: E402

# transformers' rotary module multiplies positions by inv_freq in float32, ours in float64: on these models (|logit|
# up to ~1) the two differ by at most 2.1e-6 absolute, 3.2e-6 relative to the largest logit (measured, every type)
F32_LOGITS = dict(rtol=0.0, atol=1e-5)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one thread is faster than two on a shared CPU (no OpenMP spin-waiting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def registries() -> tuple[dict, dict]:
    """Copies of transformers' global attention and attention-mask mappings."""
    return dict(transformers.AttentionInterface._global_mapping), dict(AttentionMaskInterface._global_mapping)


def config_state(config) -> dict:
    return {**config.to_dict(), "attn_implementation": config._attn_implementation}


# every transformers-native type, applied to a default-RoPE model with L = 16 and run at T = 48; "default" with
# another base, so that each one changes the logits (a config left as it was fails the round trip)
NATIVE = {
    "default": {"rope_type": "default", "rope_theta": 500.0},
    "linear": {"rope_type": "linear", "factor": 3.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0},
    "llama3": {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0},
    "longrope": {
        "rope_type": "longrope",
        "short_factor": [1.0 + 0.1 * i for i in range(8)],
        "long_factor": [1.0 + 2.0 * i for i in range(8)],
        "factor": 3.0,
    },
}


def test_native_covers_transformers_types():
    assert sorted(NATIVE) == sorted(rope_lib.TRANSFORMERS_ROPE_TYPES)


@pytest.mark.parametrize("name", list(NATIVE))
def test_native_type_round_trips_through_plain_transformers(name, tmp_path):
    model = tiny("llama", max_pos=16)
    x = ids()
    base_config, plain = model.config, logits(model, x)
    hf.apply(model, NATIVE[name])
    ours = logits(model, x)
    assert not torch.allclose(ours, plain, atol=1e-2)  # the method acts at T = 3L
    applied = hf.patched_parameters(model)
    assert model.config.rope_parameters["rope_type"] == name
    assert {k: v for k, v in model.config.rope_parameters.items()} == {
        k: v for k, v in applied.items() if not (name == "dynamic" and k == "original_max_position_embeddings")
    }  # transformers' 'dynamic' takes L from max_position_embeddings (16 here)
    assert model.config.rope_lib["rope_parameters"] == applied
    assert base_config.rope_parameters == {"rope_type": "default", "rope_theta": 10000.0}  # never modified
    model.save_pretrained(tmp_path)
    theirs = logits(AutoModelForCausalLM.from_pretrained(tmp_path), x)  # plain transformers, no rope_lib
    torch.testing.assert_close(theirs, ours, **F32_LOGITS)
    # through rope_lib: the very same computation, and remove() then gives the model from before apply
    loaded = hf.load(tmp_path)
    assert hf.patched_parameters(loaded) == applied
    assert torch.equal(logits(loaded, x), ours)
    hf.remove(loaded)
    assert loaded.config.rope_parameters == base_config.rope_parameters and not hasattr(loaded.config, "rope_lib")
    assert torch.equal(logits(loaded, x), plain)


ROPE_LIB_ONLY = {  # rope types transformers lacks, non-plain attention, and a native type transformers would read
    "ntk_fixed": dict(rope_parameters={"rope_type": "ntk_fixed", "factor": 4.0}),
    "ntk_mixed_log_n": dict(rope_parameters={"rope_type": "ntk_mixed", "factor": 4.0, "p": 0.75}, log_n=True),
    "dynamic_yarn": dict(rope_parameters={"rope_type": "dynamic_yarn"}),
    "leaky_rerope": dict(attention="rerope", window=8, leaky_k=4.0),  # default RoPE: native type, not plain
    "yarn_log_n": dict(rope_parameters={"rope_type": "yarn", "factor": 2.0}, log_n=True),
    # transformers' 'dynamic' reads L = max_position_embeddings = 16: with L = 8 it would compute something else
    "dynamic_other_length": dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0}, original_length=8),
}


@pytest.mark.parametrize("name", list(ROPE_LIB_ONLY))
def test_rope_lib_only_method_round_trips_through_load(name, tmp_path):
    model = tiny("qwen2", max_pos=16)
    x = ids()
    plain = logits(model, x)
    hf.apply(model, **ROPE_LIB_ONLY[name])
    ours = logits(model, x)
    assert not torch.allclose(ours, plain, atol=1e-2)
    # the config says rope_lib owns the positions, and records the call
    assert model.config.rope_parameters["rope_type"] == "rope_lib"
    record = model.config.rope_lib
    assert record["rope_parameters"] == hf.patched_parameters(model)
    kwargs = ROPE_LIB_ONLY[name]
    assert record["attention"] == kwargs.get("attention", "sdpa") and record["log_n"] == kwargs.get("log_n", False)
    model.save_pretrained(tmp_path)
    with pytest.raises(KeyError, match="rope_lib"):  # plain transformers refuses instead of dropping the method
        AutoModelForCausalLM.from_pretrained(tmp_path)
    loaded = hf.load(tmp_path)
    assert torch.equal(logits(loaded, x), ours)
    hf.remove(loaded)
    assert loaded.config.rope_parameters == {"rope_type": "default", "rope_theta": 10000.0}
    assert torch.equal(logits(loaded, x), plain)


def test_load_refuses_an_unpatched_save(tmp_path):
    tiny("llama", max_pos=16).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no 'rope_lib' record"):
        hf.load(tmp_path)


@pytest.mark.parametrize("name", ["ntk_fixed", "dynamic_yarn", "leaky_rerope"])
def test_remove_restores_the_config_object(name):
    model = tiny("llama", max_pos=16)
    config = model.config
    before = config_state(config)
    hf.apply(model, **ROPE_LIB_ONLY[name])
    assert model.config is not config and model.model.layers[0].self_attn.config is model.config
    assert config_state(config) == before  # apply never writes to the object the model came with
    hf.remove(model)
    holders = [m for m in model.modules() if "config" in vars(m)]
    assert holders and all(m.config is config for m in holders)
    assert config_state(config) == before


# ----------------------------------------------------------------------------------- attention implementation


FN_ROUTES = ["dynamic_yarn", "leaky_rerope", "yarn_log_n"]  # the routes that need rope_lib's attention function


@pytest.mark.parametrize("name", FN_ROUTES)
def test_set_attn_implementation_after_apply_raises(name):
    model = tiny("mistral", max_pos=16)
    x = ids()
    hf.apply(model, **ROPE_LIB_ONLY[name])
    ours = logits(model, x)
    for target in (model, model.model):  # both are PreTrainedModels with their own set_attn_implementation
        with pytest.raises(ValueError, match=r"rope_lib\.hf\.remove\(model\) first"):
            target.set_attn_implementation("eager")
    assert model.config._attn_implementation == "rope_lib"
    model.set_attn_implementation("rope_lib")  # no change: allowed
    assert torch.equal(logits(model, x), ours)
    # a switch that bypasses set_attn_implementation is caught at the next forward
    model.config._attn_implementation = "eager"
    with pytest.raises(ValueError, match=r"changed to 'eager'.*rope_lib\.hf\.remove\(model\) first"):
        model(x)
    with pytest.warns(UserWarning, match="attn_implementation"):  # remove drops that change, and says so
        hf.remove(model)
    assert model.config._attn_implementation == "sdpa"
    model.set_attn_implementation("eager")  # the unpatched model switches as usual


def test_static_route_keeps_the_method_under_another_attention():
    """Without log n a static type lives in the rotary module alone: any attention implementation serves it."""
    model = tiny("llama", max_pos=16)
    x = ids()
    hf.apply(model, rope_parameters={"rope_type": "ntk_fixed", "factor": 4.0})
    ours = logits(model, x)
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"
    torch.testing.assert_close(logits(model, x), ours, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", FN_ROUTES)
def test_output_attentions_raises(name):
    model = tiny("qwen3", max_pos=16)
    x = ids(n=20)
    hf.apply(model, **ROPE_LIB_ONLY[name])
    with pytest.raises(ValueError, match=r"output_attentions.*rope_lib\.hf\.remove\(model\) first"):
        model(x, output_attentions=True)
    hf.remove(model)
    model.set_attn_implementation("eager")
    assert len(model(x, output_attentions=True).attentions) == 2  # transformers' eager attention, unpatched


# ---------------------------------------------------------------------------------------- a shared config object


def twins(family: str = "llama"):
    """Two models built from one config object (transformers keeps the object: both hold it), same weights."""
    a = tiny(family, max_pos=16)
    b = type(a)(a.config).eval()
    b.load_state_dict(a.state_dict())
    assert a.config is b.config
    return a, b


@pytest.mark.parametrize("name", ["dynamic_yarn", "ntk_fixed"])
def test_models_sharing_a_config_stay_independent(name):
    a, b = twins()
    shared = a.config
    before = config_state(shared)
    x = ids()
    plain = logits(b, x)
    assert torch.equal(logits(a, x), plain)
    hf.apply(a, **ROPE_LIB_ONLY[name])
    patched = logits(a, x)
    assert not torch.allclose(patched, plain, atol=1e-2)
    assert torch.equal(logits(b, x), plain)  # b is untouched (it used to lose its attention implementation)
    assert b.config is shared and config_state(shared) == before
    hf.apply(b, rope_parameters={"rope_type": "linear", "factor": 2.0})
    linear = logits(b, x)
    hf.remove(a)
    assert torch.equal(logits(a, x), plain) and torch.equal(logits(b, x), linear)
    hf.apply(a, **ROPE_LIB_ONLY[name])
    hf.remove(b)
    assert torch.equal(logits(a, x), patched) and torch.equal(logits(b, x), plain)
    hf.remove(a)
    assert a.config is shared and b.config is shared and config_state(shared) == before


# ------------------------------------------------------------------------------------------------- registries


@pytest.mark.parametrize("first", ["a", "b"])
def test_registries_are_restored_when_the_last_model_is_removed(first):
    gc.collect()  # patched models other tests dropped without remove() release the entries when collected
    before = registries()
    assert "rope_lib" not in before[0] and "rope_lib" not in before[1]
    models = {"a": tiny("llama", max_pos=16), "b": tiny("qwen2", max_pos=16)}
    x = ids(n=20)
    hf.apply(models["a"], attention="rerope", window=8)
    hf.apply(models["b"], rope_parameters={"rope_type": "dynamic_yarn"})
    assert all("rope_lib" in mapping for mapping in registries())
    second = "b" if first == "a" else "a"
    hf.remove(models[first])
    assert all("rope_lib" in mapping for mapping in registries())  # the other model still needs them
    logits(models[second], x)
    hf.remove(models[second])
    assert registries() == before


def test_static_route_does_not_register():
    before = registries()
    model = hf.apply(tiny("llama", max_pos=16), rope_parameters={"rope_type": "ntk_fixed", "factor": 4.0})
    assert registries() == before
    hf.remove(model)
    assert registries() == before


@pytest.mark.parametrize("registry", ["attention", "mask"])
def test_a_foreign_rope_lib_entry_is_refused_and_kept(registry):
    def foreign(*args, **kwargs):
        raise AssertionError("not called")

    interface = transformers.AttentionInterface if registry == "attention" else AttentionMaskInterface
    before = registries()
    interface.register("rope_lib", foreign)
    try:
        model = tiny("llama", max_pos=16)
        with pytest.raises(ValueError, match="already has a 'rope_lib' entry"):
            hf.apply(model, rope_parameters={"rope_type": "dynamic_yarn"})
        assert not hasattr(model, "_rope_lib_patch") and model.config._attn_implementation == "sdpa"
        assert interface._global_mapping["rope_lib"] is foreign
        # a static type needs no registry entry: it is served, and remove() leaves the foreign entry alone
        hf.apply(model, rope_parameters={"rope_type": "ntk_fixed", "factor": 4.0})
        hf.remove(model)
        assert interface._global_mapping["rope_lib"] is foreign
    finally:
        del interface._global_mapping["rope_lib"]
    assert registries() == before


# ----------------------------------------------------------------------------------------------- sliding windows


def windowed(family: str, **fields):
    """A tiny model of ``family`` with extra config fields (sliding-window settings) set at construction."""
    model = tiny(family, max_pos=16)
    settings = {k: v for k, v in model.config.to_dict().items() if k != "layer_types"}  # recomputed from fields
    config = type(model.config)(**{**settings, **fields})
    twin = type(model)(config).eval()
    twin.load_state_dict(model.state_dict())
    return twin


RAW_KEY_ROUTES = {
    "dynamic": dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0}),
    "dynamic_yarn": dict(rope_parameters={"rope_type": "dynamic_yarn"}),
    "longrope": dict(
        rope_parameters={"rope_type": "longrope", "short_factor": [1.0] * 8, "long_factor": [2.0] * 8, "factor": 2.0}
    ),
    "rerope": dict(attention="rerope", window=4),
}


@pytest.mark.parametrize(
    "family, fields",
    [
        ("mistral", dict(sliding_window=8)),
        ("qwen2", dict(use_sliding_window=True, sliding_window=8, max_window_layers=1)),
        ("qwen3", dict(use_sliding_window=True, sliding_window=8, max_window_layers=0)),
    ],
)
@pytest.mark.parametrize("name", list(RAW_KEY_ROUTES))
def test_raw_key_routes_refuse_a_sliding_window_at_apply(family, fields, name):
    model = windowed(family, **fields)
    with pytest.raises(ValueError, match=r"sliding_window = 8 < max_position_embeddings = 16"):
        hf.apply(model, **RAW_KEY_ROUTES[name])
    assert not hasattr(model, "_rope_lib_patch") and model.config._attn_implementation == "sdpa"
    hf.apply(model, rope_parameters={"rope_type": "ntk_fixed", "factor": 2.0}, log_n=True)  # keys cached rotated


@pytest.mark.parametrize(
    "family, fields",
    [
        ("mistral", dict(sliding_window=None)),
        ("mistral", dict(sliding_window=4096)),  # longer than the model's length: never drops a key there
        ("qwen2", dict(use_sliding_window=False, sliding_window=8)),  # transformers ignores the window then
        ("qwen2", dict(use_sliding_window=True, sliding_window=8, max_window_layers=2)),  # no sliding layer
    ],
)
def test_inactive_sliding_window_is_served(family, fields):
    model = windowed(family, **fields)
    hf.apply(model, **RAW_KEY_ROUTES["dynamic_yarn"])
    x = ids(n=16, batch=1)
    with torch.no_grad():
        out = model(x[:, :12], use_cache=True)
        step = model(x[:, 12:13], past_key_values=out.past_key_values, use_cache=True).logits[:, -1]
    torch.testing.assert_close(step, logits(model, x[:, :13])[:, -1], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------- config edits


def test_remove_names_config_edits_it_drops(tmp_path):
    model = tiny("llama", max_pos=16)
    hf.apply(model, rope_parameters={"rope_type": "dynamic_yarn"})
    model.save_pretrained(tmp_path)  # transformers fills in architectures and dtype: not an edit
    prompt = ids(n=6, batch=1)
    model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=3, do_sample=False, pad_token_id=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hf.remove(model)
    hf.apply(model, rope_parameters={"rope_type": "dynamic_yarn"})
    model.config.use_cache = False
    with pytest.warns(UserWarning, match="use_cache"):
        hf.remove(model)
    assert model.config.use_cache is True


def test_deep_copy_of_a_patched_model_keeps_working():
    model = hf.apply(tiny("llama", max_pos=16), rope_parameters={"rope_type": "dynamic_yarn"})
    twin = copy.deepcopy(model)
    x = ids(n=T)
    ours = logits(model, x)
    hf.remove(model)  # the last registered model: the entries go, the copy registers again when it runs
    assert torch.equal(logits(twin, x), ours)
    hf.remove(twin)
    assert "rope_lib" not in registries()[0]
    assert logits(twin, x).shape == (2, T, VOCAB)
