"""rope_lib.companion.hf_reference, the transformers adapters shared by the tests and the notebooks: the version its
docstrings name is the pinned one, every adapter is documented and used, and the inputs it builds by hand are right.
(Each adapter's parity use is tested where it is used: tests/test_scaling.py, test_mla.py, test_multimodal.py.)"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
from rope_lib.companion import hf_reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = sorted(
    name
    for name, obj in vars(hf_reference).items()
    if inspect.isfunction(obj) and obj.__module__ == hf_reference.__name__ and not name.startswith("_")
)


def test_the_version_named_is_the_pinned_one():
    pinned = re.search(r"^transformers==([\d.]+)$", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    named = set(re.findall(r"transformers (\d+\.\d+\.\d+)", inspect.getsource(hf_reference)))
    assert named == {pinned}, f"hf_reference names transformers {sorted(named)}; constraints.txt pins {pinned}"


@pytest.mark.parametrize("name", ADAPTERS)
def test_every_adapter_is_documented_and_used(name):
    assert f":func:`{name}`" in hf_reference.__doc__, f"{name} is missing from the module docstring's list"
    assert (getattr(hf_reference, name).__doc__ or "").strip(), f"{name} has no docstring"
    users = [
        p.relative_to(ROOT)
        for p in [*(ROOT / "notebooks").glob("[0-9]*.py"), *(ROOT / "tests").glob("test_*.py")]
        if p.name != Path(__file__).name and re.search(rf"\b{name}\b", p.read_text(encoding="utf-8"))
    ]
    assert users, f"no notebook or test uses hf_reference.{name}: delete it"


def test_qwen2_vl_token_types_by_hand():
    # 2 text tokens, a 4 x 6 image (6 merged tokens), a 2-frame 2 x 2 video (2 merged tokens), 1 text token
    layout = [("text", 2), ("image", 4, 6), ("video", 2, 2, 2), ("text", 1)]
    assert hf_reference.qwen2_vl_token_types(layout) == [0, 0] + [1] * 6 + [2] * 2 + [0]
    assert hf_reference.qwen2_vl_token_types(layout, spatial_merge_size=1) == [0, 0] + [1] * 24 + [2] * 8 + [0]


def test_qwen2_vl_rope_index_left_pads_a_batch():
    ids, deltas, mask = hf_reference.qwen2_vl_rope_index([[("text", 3)], [("text", 1)]])
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert ids.shape == (3, 2, 3) and deltas.shape == (2, 1)
    assert ids[:, 0].tolist() == [[0, 1, 2]] * 3 and ids[:, 1, -1].tolist() == [0, 0, 0]


def test_deepseek_v3_attention_is_reproducible():
    (_, a, _), (_, b, _) = (
        hf_reference.deepseek_v3_attention(12, seed=3),
        hf_reference.deepseek_v3_attention(12, seed=3),
    )
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert p.dtype == torch.float64 and torch.equal(p, q), name
    assert a.q_a_layernorm is not None and hf_reference.deepseek_v3_attention(None)[1].q_a_layernorm is None
