"""The RoPE config doctor (rope_lib.doctor): its readings of the shipped configs in both transformers spellings, its
numbers against transformers 5.23.0 and against independent formulas, its warnings and its errors.

tests/data/doctor holds each config of rope_lib/companion/shipped_configs.py in both spellings; after editing a record,
rewrite them with ``_write_spellings()`` (``python -c "import tests.test_doctor as t; t._write_spellings()"``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rope_lib.base_bound import first_negative_bias, max_context_length
from rope_lib.companion import atlas
from rope_lib.companion.atlas import shipped_config, write_figure
from rope_lib.companion.hf_reference import config_file_frequencies
from rope_lib.companion.shipped_configs import SHIPPED
from rope_lib.companion.verdicts import slug
from rope_lib.doctor import diagnose, spell
from rope_lib.doctor.cli import main

FILES = Path(__file__).parent / "data" / "doctor"
NAMES = sorted(SHIPPED)


def _write_spellings() -> None:
    for name in NAMES:
        for version in ("v4", "v5"):
            text = json.dumps(spell(shipped_config(name), version), indent=1) + "\n"
            (FILES / f"{slug(name)}.{version}.json").write_text(text, encoding="utf-8")


def _cli_json(path: Path, capsys, *extra: str) -> dict:
    assert main([str(path), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", NAMES)
def test_committed_files_are_both_spellings_of_the_shipped_config(name):
    for version in ("v4", "v5"):
        on_disk = json.loads((FILES / f"{slug(name)}.{version}.json").read_text(encoding="utf-8"))
        assert on_disk == spell(shipped_config(name), version), f"{name} {version}: run _write_spellings()"


@pytest.mark.parametrize("name", NAMES)
def test_both_spellings_give_equal_answers(name, capsys):
    context = str(SHIPPED[name]["advertised_context"])
    v4 = _cli_json(FILES / f"{slug(name)}.v4.json", capsys, "--context", context)
    v5 = _cli_json(FILES / f"{slug(name)}.v5.json", capsys, "--context", context)
    assert v4["layers"] == v5["layers"]
    assert v4["readings"]["v5"] == v5["readings"]["v5"]
    assert v4["layers"], name


@pytest.mark.parametrize("name", NAMES)
def test_frequencies_match_transformers(name):
    raw = shipped_config(name)
    context = SHIPPED[name]["advertised_context"]
    report = diagnose(raw, context=context)
    for layer in report.layers.values():
        theirs, factor = config_file_frequencies(raw, None if layer.name == "all layers" else layer.name, context)
        ours = torch.from_numpy(layer.inv_freq_after).float().double()
        assert ((ours - theirs.double()).abs() / theirs.double()).max() < 1e-6, (name, layer.name)
        assert layer.attention_factor == pytest.approx(float(factor), rel=1e-12), (name, layer.name)


def test_llama3_bands_and_critical_pairs_from_the_published_rule():
    layer = diagnose(shipped_config("Llama-3.1-8B")).layers["all layers"]
    L, d = 8192, 128
    wavelength = 2 * math.pi * 500000.0 ** (np.arange(0, d, 2) / d)  # independent of the library
    expected = np.where(wavelength < L / 4, "kept", np.where(wavelength > L / 1, "interpolated", "blended"))
    assert layer.bands == expected.tolist()
    assert int(layer.critical.sum()) == int((wavelength > L).sum()) == 29
    # 131072 = 16 L but s = 8: the interpolated pairs reach angles twice past training
    assert int(layer.unseen.sum()) == int((wavelength > L).sum())
    assert int(diagnose(shipped_config("Llama-3.2-1B")).layers["all layers"].unseen.sum()) == 0  # s = 32 covers it


def test_interpolation_to_exactly_s_l_is_not_unseen():
    raw = {
        "model_type": "llama",
        "head_dim": 64,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 4.0},
    }
    layer = diagnose(raw).layers["all layers"]
    assert layer.original_length == 1024 and layer.original_length_source.startswith("implied")
    assert set(layer.bands) == {"interpolated"} and int(layer.unseen.sum()) == 0
    assert int(diagnose(raw, context=4100).layers["all layers"].unseen.sum()) > 0


def test_deepseek_attention_factor_and_softmax_correction():
    layer = diagnose(shipped_config("DeepSeek-V3")).layers["all layers"]
    assert layer.attention_factor == 1.0 and "mscale_all_dim" in layer.attention_factor_source
    assert layer.softmax_scale_factor == pytest.approx((0.1 * math.log(40) + 1) ** 2)
    assert layer.unrotated_dim == 128 and layer.bound_first_negative_whole_head is None


def test_base_bound_of_a_geometric_ladder_is_max_context_length():
    for base, d in ((10000.0, 128), (500000.0, 64)):
        theta = base ** (-np.arange(0, d, 2) / d)
        assert first_negative_bias(theta, limit=10**6) == max_context_length(base, d)
    assert first_negative_bias(np.array([1.0, 0.0, 0.0]), limit=100) is None  # unrotated pairs keep B_m > 0
    with pytest.raises(ValueError, match="inv_freq"):
        first_negative_bias([[1.0]], limit=10)


def test_bound_note_when_the_context_is_past_the_first_negative_bias():
    report = diagnose(shipped_config("Mistral-7B-v0.3"))
    layer = report.layers["all layers"]
    assert layer.bound_first_negative == max_context_length(1e6, 128) < layer.context
    assert any(w.kind == "note" and w.key == "rope_theta" for w in report.warnings)


def test_contradictions_warn_naming_the_key():
    raw = {**shipped_config("Qwen3-8B"), "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}
    report = diagnose(raw)
    said = {(w.key, w.kind) for w in report.warnings}
    assert ("rope_theta", "contradiction") in said
    assert report.layers["all layers"].base == 500000.0  # transformers 5.23: the dict's own value wins
    both = {**shipped_config("Llama-3.1-8B"), "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}
    assert ("rope_scaling", "contradiction") in {(w.key, w.kind) for w in diagnose(both).warnings}
    qwen = diagnose(shipped_config("Qwen3-8B-YaRN"))
    assert any(w.key == "rope_scaling.factor" and "40960 / 32768" in w.message for w in qwen.warnings)


def test_v5_only_file_warns_that_v4_readers_lose_the_base():
    report = diagnose(shipped_config("GLM-5.1"))
    assert any(w.kind == "spelling" and "rope_theta" in w.key for w in report.warnings)
    assert report.readings["v4"]["all layers"]["rope_theta"] == 10000.0
    assert report.layers["all layers"].base == 1e6


def test_gemma_layers_and_sliding_window():
    report = diagnose(shipped_config("Gemma-3-4b-it"))
    assert sorted(report.layers) == ["full_attention", "sliding_attention"]
    sliding = report.layers["sliding_attention"]
    assert sliding.base == 10000.0 and sliding.attended == 1024 and sliding.bound_covers_context
    with pytest.raises(ValueError, match="no v4 spelling"):
        spell(
            {
                "rope_parameters": {
                    "full_attention": {"rope_type": "default", "rope_theta": 1e6},
                    "sliding_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4},
                }
            },
            "v4",
        )


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"rope_theta": 0.5, "max_position_embeddings": 100, "head_dim": 8}, "rope_theta"),
        (
            {"rope_theta": 1e4, "max_position_embeddings": 100, "head_dim": 8, "rope_scaling": {"rope_type": "llama3"}},
            "factor",
        ),
        (
            {"rope_theta": 1e4, "max_position_embeddings": 100, "head_dim": 8, "rope_scaling": {"rope_type": "nope"}},
            "rope_type",
        ),
        ({"rope_theta": 1e4, "max_position_embeddings": 100, "head_dim": 8, "rope_scaling": [1]}, "rope_scaling"),
        ({"rope_theta": 1e4, "head_dim": 8}, "context"),
    ],
)
def test_bad_configs_exit_2_naming_the_key(raw, key, tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and key in err and "Traceback" not in err


def test_unreadable_files_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing.json")]) == 2
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    assert main([str(tmp_path / "broken.json")]) == 2
    assert "is not JSON" in capsys.readouterr().err


def test_text_report_and_figure(tmp_path, capsys):
    path = FILES / "deepseek-v3.v4.json"
    assert atlas.main([str(path), "--figure", str(tmp_path / "d.png")]) == 0
    out = capsys.readouterr().out
    assert "softmax scale x 1.8739" in out and "B_m < 0 first at m = " in out
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="figure path must end in"):
        write_figure(diagnose(path), tmp_path / "d.gif")
    assert atlas.main([str(path), "--figure", str(tmp_path / "d.gif")]) == 2
    assert "figure path must end in" in capsys.readouterr().err


def test_longrope_switch_and_factors():
    report = diagnose(shipped_config("Phi-3.5-mini-instruct"))
    layer = report.layers["all layers"]
    long_factor = np.asarray(SHIPPED["Phi-3.5-mini-instruct"]["config"]["rope_scaling"]["long_factor"])
    assert np.allclose(layer.divisor, long_factor, rtol=1e-12)  # beyond L: theta_i / long_factor_i
    assert set(layer.bands) <= {"kept", "rescaled"} and "n <= L = 4096" in layer.switch
    short = diagnose(shipped_config("Phi-3.5-mini-instruct"), context=4096).layers["all layers"]
    short_factor = np.asarray(SHIPPED["Phi-3.5-mini-instruct"]["config"]["rope_scaling"]["short_factor"])
    assert np.allclose(short.divisor, short_factor, rtol=1e-12)  # n = L still reads the short factors
    assert layer.factor_source.startswith("implied") and layer.attention_factor == pytest.approx(
        math.sqrt(1 + math.log(32) / math.log(4096))
    )
