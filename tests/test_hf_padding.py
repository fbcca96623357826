"""rope_lib.hf with padding: on every route that runs rope_lib's attention function (dynamic, dynamic_yarn, longrope,
attention="rerope", log_n) a padded row gives the logits of its real tokens alone - forward with left, right and
middle padding, cached prefill + decode, and batched left-padded ``generate`` - and position_ids that disagree with
the mask are refused in one short line. Every comparison is against the unpadded run of the same tokens."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
import test_hf  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from rope_lib import hf  # noqa: E402

hf_logging.set_verbosity_error()

VOCAB, L = test_hf.VOCAB, 16  # sequences below run to ~2-3 L, so every method acts
ATOL = 1e-4  # float32 logits of size ~1 (padding only reorders nothing: the same sums in the same order, up to SDPA)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one thread is faster than two on a shared CPU (no OpenMP spin-waiting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(family: str = "llama", *, dtype=torch.float32, layers: int = 2, seed: int = 0):
    """test_hf's seeded random model of the family (hidden 64, 4 heads of 16, 2 KV heads: GQA) at L = 16, without an
    end-of-sequence token: generate runs every step, so no row stops early and the comparisons are like for like."""
    return test_hf.tiny(family, max_pos=L, seed=seed, dtype=dtype, layers=layers, eos_token_id=None)


def ids(n: int, seed: int) -> torch.Tensor:
    return torch.randint(1, VOCAB, (1, n), generator=torch.Generator().manual_seed(seed))


ROUTES = {
    "static_log_n": dict(rope_parameters={"rope_type": "ntk_fixed", "factor": 4.0}, log_n=True),
    "dynamic": dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0}),
    "dynamic_yarn": dict(rope_parameters={"rope_type": "dynamic_yarn"}),
    "longrope": dict(
        rope_parameters={
            "rope_type": "longrope",
            "short_factor": [1.0] * 8,
            "long_factor": [1.0 + i for i in range(8)],
            "factor": 3.0,
        }
    ),
    "rerope": dict(attention="rerope", window=6),
    "leaky_rerope_log_n": dict(attention="rerope", window=6, leaky_k=2.0, log_n=True),
    "yarn_rerope": dict(rope_parameters={"rope_type": "yarn", "factor": 2.0}, attention="rerope", window=5),
}
IDENTITY = [name for name in ROUTES if name != "static_log_n"]  # raw keys in the cache, positions from the mask
FAMILIES = ["llama", "mistral", "qwen2", "qwen3"]


def patched(name: str, family: str = "llama", **kwargs):
    return hf.apply(tiny(family, **kwargs), **ROUTES[name])


def pad_batch(prompts: list[torch.Tensor], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of the prompts padded to the longest with token 0 on ``side``."""
    width = max(p.shape[1] for p in prompts)
    rows, masks = [], []
    for p in prompts:
        pad = torch.zeros(1, width - p.shape[1], dtype=torch.long)
        ones, zeros = torch.ones_like(p), torch.zeros_like(pad)
        rows.append(torch.cat((pad, p) if side == "left" else (p, pad), dim=1))
        masks.append(torch.cat((zeros, ones) if side == "left" else (ones, zeros), dim=1))
    return torch.cat(rows), torch.cat(masks)


def real(t: torch.Tensor, mask_row: torch.Tensor) -> torch.Tensor:
    """The real slots of one row (batch dim kept)."""
    return t[:, mask_row.bool()]


# ------------------------------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", list(ROUTES))
def test_padded_forward_equals_unpadded(name, family):
    """Two prompts of different lengths, one within L and one beyond (so per-row n_b differs and LongRoPE's
    short/long switch differs), padded left and right: each row's real logits are those of the prompt alone."""
    model = patched(name, family)
    prompts = [ids(13, seed=1), ids(34, seed=2)]
    with torch.no_grad():
        alone = [model(p).logits for p in prompts]
        for side in ("left", "right"):
            x, mask = pad_batch(prompts, side)
            out = model(x, attention_mask=mask).logits
            for b, want in enumerate(alone):
                torch.testing.assert_close(real(out[b : b + 1], mask[b]), want, rtol=0, atol=ATOL)
        # the padding matters on this route: read as real tokens, the same left pads change the logits
        x, mask = pad_batch(prompts, "left")
        unmasked = model(x).logits[:1, x.shape[1] - prompts[0].shape[1] :]
    assert (unmasked - alone[0]).abs().max() > 1e-3


@pytest.mark.parametrize("name", list(ROUTES))
def test_masked_middle_tokens_change_the_logits(name):
    """Masking tokens 10-19 changes every later logit (ReRoPE ignored the mask before: a difference of exactly 0);
    on the raw-key routes the row is then exactly its other tokens alone (positions count real tokens)."""
    model = patched(name)
    x = ids(40, seed=3)
    mask = torch.ones_like(x)
    mask[:, 10:20] = 0
    with torch.no_grad():
        full = model(x).logits
        holed = model(x, attention_mask=mask).logits
        alone = model(real(x, mask[0])).logits
    assert (holed[:, 20:] - full[:, 20:]).abs().amin(dim=-1).max() > 1e-4  # not one row left unchanged
    assert (holed[:, 20:] - full[:, 20:]).abs().max() > 1e-2
    if name not in ("dynamic", "dynamic_yarn", "longrope"):  # (their frequencies follow the row's length n_b)
        torch.testing.assert_close(holed[:, :10], full[:, :10], rtol=0, atol=ATOL)  # the causal past is untouched
    if name in IDENTITY:
        torch.testing.assert_close(real(holed, mask[0]), alone, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ["dynamic", "rerope", "leaky_rerope_log_n"])
def test_additive_float_4d_mask_is_read_like_the_boolean_one(name):
    """A caller's own 4-D additive mask (0 = attend, the dtype's minimum = blocked) reaches the attention function as
    given; its padding is read from it."""
    model = patched(name)
    prompts = [ids(20, seed=4), ids(31, seed=5)]
    x, mask = pad_batch(prompts, "left")
    n = x.shape[1]
    allowed = torch.ones(n, n, dtype=torch.bool).tril()[None, None] & mask.bool()[:, None, None, :]
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    with torch.no_grad():
        out = model(x, attention_mask=additive).logits
        want = model(prompts[0]).logits
    torch.testing.assert_close(real(out[:1], mask[0]), want, rtol=0, atol=ATOL)


# ------------------------------------------------------------------------------------------------ cached decoding


@torch.no_grad()
def decode_logits(model, x: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Prefill x (with its mask), then feed the argmax token by token through the KV cache, the mask growing by a
    real slot each step and no position_ids (transformers' default): the logits of every step (batch, steps, V)."""
    out = model(x, attention_mask=mask, use_cache=True)
    last = (mask * torch.arange(mask.shape[1])).argmax(-1)  # each row's last real slot (right padding: not the end)
    rows = [out.logits[torch.arange(x.shape[0]), last]]
    for _ in range(steps):
        nxt = rows[-1].argmax(-1, keepdim=True)
        mask = torch.cat((mask, torch.ones_like(nxt)), dim=1)
        out = model(nxt, attention_mask=mask, past_key_values=out.past_key_values, use_cache=True)
        rows.append(out.logits[:, -1])
    return torch.stack(rows, dim=1)


@pytest.mark.parametrize(
    "name, side", [(name, "left") for name in ROUTES] + [(name, "right") for name in ("dynamic", "rerope", "longrope")]
)
def test_cached_decode_with_padding_equals_unpadded(name, side):
    """Prefill a padded batch, decode 14 steps: each row's logits are those of its prompt decoded alone. (Right
    padding then decoding is checked on raw-key routes: a static rotary follows transformers' slot positions.)"""
    model = patched(name, dtype=torch.float64)
    prompts = [ids(9, seed=6), ids(17, seed=7)]
    x, mask = pad_batch(prompts, side)
    got = decode_logits(model, x, mask, steps=14)
    for b, p in enumerate(prompts):
        want = decode_logits(model, p, torch.ones_like(p), steps=14)
        torch.testing.assert_close(got[b : b + 1], want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", list(ROUTES))
def test_left_padded_generate_equals_each_prompt_alone(name, family):
    """Batched greedy generate with left padding (generate computes position_ids from the mask) equals each prompt
    generated alone, past L = 16."""
    model = patched(name, family, dtype=torch.float64)
    prompts = [ids(10, seed=8), ids(17, seed=9), ids(13, seed=10)]
    x, mask = pad_batch(prompts, "left")
    kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        batched = model.generate(x, attention_mask=mask, **kw)
        for b, p in enumerate(prompts):
            alone = model.generate(p, attention_mask=torch.ones_like(p), **kw)
            assert torch.equal(batched[b : b + 1, x.shape[1] - p.shape[1] :], alone), f"row {b}"


@pytest.mark.parametrize("name", list(ROUTES))
def test_static_cache_generate_equals_dynamic_cache(name):
    """A static cache passes its empty future slots too (no query sees them; for a prefill without padding
    transformers passes no mask at all): the function drops them, so greedy generate is the same as with the dynamic
    cache, padded or not."""
    model = patched(name, dtype=torch.float64)
    x, mask = pad_batch([ids(9, seed=18), ids(14, seed=19)], "left")
    kw = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        for xb, mb in ((x, mask), (x[1:], mask[1:])):
            dynamic = model.generate(xb, attention_mask=mb, **kw)
            assert torch.equal(model.generate(xb, attention_mask=mb, cache_implementation="static", **kw), dynamic)


# ---------------------------------------------------------------------------------------------------- position_ids


@pytest.mark.parametrize("name", list(ROUTES))
def test_position_ids_from_the_mask_are_accepted(name):
    """position_ids = cumsum(mask) - 1 (what generate passes, pads at 0) give the same logits as none."""
    model = patched(name)
    x, mask = pad_batch([ids(15, seed=11), ids(29, seed=12)], "left")
    position_ids = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    with torch.no_grad():
        torch.testing.assert_close(
            model(x, attention_mask=mask, position_ids=position_ids).logits,
            model(x, attention_mask=mask).logits,
            rtol=0,
            atol=ATOL,
        )


@pytest.mark.parametrize("name", list(ROUTES))
def test_shifted_position_ids(name):
    """A constant shift: ReRoPE without log n sees only differences (accepted, the same logits); the frequencies of
    the length-dependent types and log n depend on the absolute real position (refused, in one short line)."""
    model = patched(name)
    x = ids(300, seed=13)
    shifted = torch.arange(300)[None] + 5
    with torch.no_grad():
        if name in ("rerope", "yarn_rerope"):
            torch.testing.assert_close(model(x, position_ids=shifted).logits, model(x).logits, rtol=0, atol=ATOL)
            return
        with pytest.raises(ValueError, match="position_ids") as err:
            model(x, position_ids=shifted)
    message = str(err.value)
    assert "\n" not in message and len(message) < 300, message  # no dump of the 300 positions
    assert "got 5 at row 0, query 0, expected 0" in message


def test_static_rope_without_log_n_keeps_custom_position_ids():
    """The static route without log n never runs the attention function: position_ids work as in transformers."""
    model = hf.apply(tiny(), {"rope_type": "ntk_fixed", "factor": 4.0})
    x = ids(30, seed=14)
    with torch.no_grad():
        plain, shifted = model(x).logits, model(x, position_ids=torch.arange(30)[None] + 7).logits
    torch.testing.assert_close(shifted, plain, rtol=0, atol=ATOL)  # RoPE is shift-invariant


@pytest.mark.parametrize("name", ["dynamic", "rerope", "static_log_n"])
def test_packed_or_reordered_position_ids_are_refused(name):
    """Positions the mask does not imply (two packed sequences, a row of positions not counting its real tokens)
    are refused on the raw-key routes - never silently used."""
    model = patched(name)
    x = ids(30, seed=15)
    packed = torch.cat((torch.arange(15), torch.arange(15)))[None]
    with pytest.raises(ValueError, match="position_ids"), torch.no_grad():
        model(x, position_ids=packed)
    xb, mask = pad_batch([ids(20, seed=16), ids(30, seed=17)], "left")
    wrong = torch.arange(30)[None].expand(2, 30) * 2
    with pytest.raises(ValueError, match="position_ids"), torch.no_grad():
        model(xb, attention_mask=mask, position_ids=wrong)


def test_sliding_window_cache_that_dropped_keys_is_refused():
    """log_n on a sliding-window model: once the cache has dropped keys the mask no longer counts the real position;
    refused (at apply, or at the first such step), never served with a wrong log n."""
    model = tiny("mistral")
    model.config.sliding_window = 8
    x = ids(6, seed=20)
    with pytest.raises(ValueError, match="sliding"), torch.no_grad():
        hf.apply(model, log_n=True)
        model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=10, do_sample=False, pad_token_id=0)
