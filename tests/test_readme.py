"""Every ```python block of README.md runs as written: each in a fresh namespace, in a scratch folder, on one torch
thread, and, on the pinned transformers, without a warning from it (a misread config, e.g. an implied factor, is only
a warning there).

Where a block loads a model or config from the hub (``from_pretrained("owner/name")``), a tiny random model of the
same family, written into the scratch folder, stands in for it (``STAND_INS``): nothing is downloaded, and the README
keeps the name a reader would use. A block naming a hub model without a stand-in here fails, saying so."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
HUB_NAME = re.compile(r"""from_pretrained\(\s*["']([\w.-]+/[\w.-]+)["']""")


def tiny_qwen2(folder: Path) -> None:
    """For Qwen/Qwen2.5-0.5B: its family and rope (default, theta 1e6, L = 32768), 2 layers of width 64."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,  # as the real tokenizer has one: generate() has no pad token to warn about
    )
    Qwen2ForCausalLM(config).save_pretrained(folder)


STAND_INS = {"Qwen/Qwen2.5-0.5B": tiny_qwen2}


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


BLOCKS = _blocks()


def test_readme_has_python_blocks_and_every_stand_in_is_used():
    assert len(BLOCKS) >= 3
    named = {name for _, code in BLOCKS for name in HUB_NAME.findall(code)}
    assert set(STAND_INS) <= named, f"stand-ins no README block uses: {set(STAND_INS) - named}"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_python_block_runs(line, code, tmp_path, monkeypatch):
    if "transformers" in code:
        pytest.importorskip("transformers")
    for name in HUB_NAME.findall(code):
        assert name in STAND_INS, f"README.md:{line} loads {name!r}: add a tiny stand-in for it to STAND_INS"
        folder = tmp_path / "stand-ins" / name.replace("/", "--")
        if not folder.exists():
            STAND_INS[name](folder)
        code = re.sub(rf"""(["']){re.escape(name)}\1""", repr(str(folder)), code)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    collect = None
    if "transformers" in code:
        # transformers logs through its own root logger, which does not propagate; another test may have silenced it
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_warning()
        collect = _Collect()
        hf_logging.get_logger("transformers").addHandler(collect)
    try:
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
    finally:
        torch.set_num_threads(threads)
        if collect is not None:
            hf_logging.get_logger("transformers").removeHandler(collect)
            hf_logging.set_verbosity(verbosity)
    if collect is not None and _pinned_transformers():
        # only on the pinned release: others warn of things of their own (5.6: a pad token equal to eos in generate)
        assert not collect.records, [r.getMessage() for r in collect.records]


def _pinned_transformers() -> bool:
    import transformers

    from rope_lib.hf import TRANSFORMERS_VERSION

    return transformers.__version__ == TRANSFORMERS_VERSION
