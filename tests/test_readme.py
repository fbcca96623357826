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

from rope_lib.companion import verdicts as V

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


# The README's generated blocks (rope_lib.companion.readme): committed text = what the records give, and the rendering
# itself on a tiny synthetic records folder.


def test_readme_generated_blocks_match_the_records():
    """README.md's verdicts, findings, scale and speed blocks are what `make readme` writes from results/: a renamed
    headline claim fails here naming its id, a changed record fails with the diff to commit."""
    import difflib

    from rope_lib.companion import readme as R

    text = README.read_text(encoding="utf-8")
    new = R.render(text, README.parent)
    diff = "".join(difflib.unified_diff(text.splitlines(True), new.splitlines(True), "README.md", "generated"))
    assert new == text, f"README.md differs from the records: run `make readme`\n{diff}"


def test_profiles_and_notebooks_match_the_repository():
    from rope_lib.companion import readme as R
    from rope_lib.companion.experiments.harness import PROFILE_SETTINGS

    assert {p.name: p.L for p in R.PROFILES} == {
        name: s["model"]["train_length"] for name, s in PROFILE_SETTINGS.items()
    }
    assert list(R.HEADLINES) == list(R.NOTEBOOKS)
    for stem, _ in R.NOTEBOOKS.values():
        assert (README.parent / "notebooks" / f"{stem}.py").is_file(), stem
    ids = [h.id for group in R.HEADLINES.values() for h in group]
    assert len(ids) == len(set(ids)), "a headline listed twice"
    for nb, group in R.HEADLINES.items():
        assert all(h.id.startswith(f"{nb}.") for h in group), nb


def _claim(cid, tier, *, stated=None, mean=1.0, claim=None, quantity="accuracy gap (points)"):
    return {
        "id": cid,
        "notebook": cid.split(".")[0],
        "claim": claim or f"claim {cid}",
        "source": "ours",
        "quantity": quantity,
        "direction": ">",
        "threshold": 0.0,
        "by_seed": [mean - 0.5, mean, mean + 0.5],
        "mean": mean,
        "seed_lo": mean - 2.0,
        "seed_hi": mean + 2.0,
        "boot_lo": None,
        "boot_hi": None,
        "tier": tier,
        "stated": stated or tier,
    }


def _records(folder, claims):
    import json

    folder.mkdir(parents=True, exist_ok=True)
    by_nb = {}
    for c in claims:
        by_nb.setdefault(c["notebook"], []).append(c)
    for nb, cs in by_nb.items():
        (folder / f"{nb}.json").write_text(json.dumps({"notebook": nb, "claims": cs}), encoding="utf-8")


def _synthetic(tmp_path, *, medium=True):
    """smoke (with a second machine) and, unless ``medium`` is False, medium records; no full profile."""
    res = tmp_path / "results"
    _records(
        res / "smoke" / "verdicts",
        [
            _claim("99.a", "reproduced", mean=3.0, claim="A | B"),
            _claim("99.b.w16", "consistent", mean=0.25, quantity="loss change (nats)"),
            _claim("99.c", "not reproduced", stated="not decided", mean=-0.5),
        ],
    )
    _records(
        res / "smoke" / "second-machine" / "verdicts",
        [_claim("99.a", "reproduced"), _claim("99.b.w16", "consistent"), _claim("99.c", "consistent")],
    )
    if medium:
        # 99.b's window doubles with L; 99.c is missing at L = 128
        _records(res / "medium" / "verdicts", [_claim("99.a", "reversed", mean=-2.0), _claim("99.b.w32", "consistent")])
    return res


def _headlines(*ids):
    from rope_lib.companion import readme as R

    return {"99": tuple(R.Headline(i, label="label" if i == "99.a" else None) for i in ids)}


def test_scale_table_marks_changes_missing_claims_and_profiles_not_run(tmp_path):
    from rope_lib.companion import readme as R

    res = _synthetic(tmp_path)
    text = R.scale_block(res, _headlines("99.a", "99.b.w16", "99.c"))
    a, b, c = (line for line in text.splitlines() if line.startswith("| 99 |"))
    assert "label: A \\| B > 0 (points)" in a  # a "|" inside a cell is escaped
    assert "| reproduced (+3.00) | **changed**: reversed (-2.00) | not run |" in a
    assert "| consistent (+0.250) | consistent (+1.00) | not run |" in b  # w16 at L = 64 is w32 at L = 128
    assert "| not decided: not reproduced / consistent (-0.500) | not recorded | not run |" in c
    assert "L = 512 (full): not run" in text and "no other machine" in text


def test_scale_table_changed_against_both_tiers_of_an_undecided_claim(tmp_path):
    from rope_lib.companion import readme as R

    res = _synthetic(tmp_path)
    _records(res / "medium" / "verdicts", [_claim("99.c", "consistent"), _claim("99.a", "reproduced", mean=3.0)])
    rows = R.scale_block(res, _headlines("99.a", "99.c")).splitlines()
    assert rows[-2].endswith("| reproduced (+3.00) | reproduced (+3.00) | not run |")  # same tier: unmarked
    assert rows[-1].endswith("| consistent (+1.00) | not run |")  # one of L = 64's two tiers: not a change
    _records(res / "medium" / "verdicts", [_claim("99.c", "reversed")])
    assert (
        R.scale_block(res, _headlines("99.c")).splitlines()[-1].endswith("| **changed**: reversed (+1.00) | not run |")
    )


def test_a_profile_without_records_reads_not_run(tmp_path):
    from rope_lib.companion import readme as R

    res = _synthetic(tmp_path, medium=False)
    row = R.scale_block(res, _headlines("99.a")).splitlines()[-1]
    assert row.endswith("| reproduced (+3.00) | not run | not run |")


def test_a_missing_headline_id_is_an_error_naming_it_and_the_folder(tmp_path):
    from rope_lib.companion import readme as R

    res = _synthetic(tmp_path)
    readme = "<!-- verdicts:start -->\n<!-- verdicts:end -->\n<!-- findings:start -->\n<!-- findings:end -->\n"
    readme += "<!-- scale:start -->\n<!-- scale:end -->\n<!-- speed:start -->\n<!-- speed:end -->\n"
    with pytest.raises(ValueError, match=r"'99\.renamed' is not recorded in .*results/smoke/verdicts.*HEADLINES"):
        R.render(readme, tmp_path, headlines=_headlines("99.a", "99.renamed"))
    with pytest.raises(ValueError, match=r"'99\.renamed' is not recorded"):
        R.scale_block(res, _headlines("99.renamed"))


def test_findings_bullets_and_the_whole_render(tmp_path):
    from rope_lib.companion import readme as R

    _synthetic(tmp_path)
    readme = "intro\n<!-- verdicts:start -->\nold\n<!-- verdicts:end -->\nmiddle\n<!-- findings:start -->\nold\n"
    readme += "<!-- findings:end -->\n<!-- scale:start -->\n<!-- scale:end -->\n<!-- speed:start -->\nold\n"
    readme += "<!-- speed:end -->\nend\n"
    out = R.render(readme, tmp_path, headlines=_headlines("99.a", "99.b.w16", "99.c"))
    assert out.startswith("intro\n<!-- verdicts:start -->\n| notebook |") and out.endswith("<!-- speed:end -->\nend\n")
    assert "old" not in out and R.render(out, tmp_path, headlines=_headlines("99.a", "99.b.w16", "99.c")) == out
    assert "- label: A | B > 0 points - **reproduced**: +3.00 points [+1.00, +5.00], seeds +2.50, +3.00, +3.50" in out
    assert "> 0 nats - **consistent**: +0.25 nats [-1.75, +2.25], seeds -0.25, +0.25, +0.75" in out
    assert "**not decided** (not reproduced here, consistent on the second machine)" in out
    assert "No benchmark recorded" in out
    with pytest.raises(ValueError, match="no single <!-- speed:start -->"):
        R.render(readme.replace("<!-- speed:end -->\n", ""), tmp_path, headlines=_headlines("99.a"))


def test_window_sizes_in_ids_scale_with_L():
    from rope_lib.companion import readme as R

    assert R.id_at("05.window.plain-model.band-vs-w8", 64, 128) == "05.window.plain-model.band-vs-w16"
    assert R.id_at("05.leak.w16.k64-vs-k16", 64, 512) == "05.leak.w128.k64-vs-k16"
    assert R.id_at("05.window.plain-model.w8-vs-w64", 64, 128) == "05.window.plain-model.w16-vs-w128"
    assert R.id_at("06.a.8x.non-repeated.vs-baseline", 64, 128) == "06.a.8x.non-repeated.vs-baseline"
    with pytest.raises(ValueError, match="no counterpart"):
        R.id_at("05.leak.w3.k16-vs-k8", 64, 32)


def test_check_mode_exits_non_zero_with_a_diff(tmp_path, capsys):
    from rope_lib.companion import readme as R

    stale = tmp_path / "README.md"
    stale.write_text(README.read_text(encoding="utf-8").replace("<!-- scale:start -->\n", "<!-- scale:start -->\nx\n"))
    assert R.main(["--readme", str(stale), "--check"]) == 1
    out = capsys.readouterr().out
    assert "\n-x\n" in out and "make readme" in out
    assert R.main(["--readme", str(README), "--check"]) == 0


# The verdict box atop notebooks 04-08b: generated from the records, in the source and the executed notebook alike.


def test_notebook_verdict_boxes_match_the_records():
    from rope_lib.companion import readme as R

    root = README.parent
    records, others = R._profile_records(root / "results", R.PROFILES[0])
    folder = root / "results" / R.PROFILES[0].name / "verdicts"
    stale = R.write_boxes(root, records, others, R.HEADLINES, folder)
    checks = root / "results" / R.PROFILES[0].name / "checks"
    stale.update(R.write_check_boxes(root, V.load_checks(checks), checks))
    assert not stale, f"verdict boxes differ from the records in {sorted(p.name for p in stale)}: run `make readme`"


def test_every_notebook_has_a_box_from_records():
    from rope_lib.companion import readme as R

    assert not set(R.NOTEBOOKS) & set(R.CHECKED)
    stems = sorted(stem for stem, _ in [*R.NOTEBOOKS.values(), *R.CHECKED.values()])
    assert stems == sorted(p.stem for p in (README.parent / "notebooks").glob("[0-9]*.py"))


def test_check_box_states_each_check(tmp_path):
    from rope_lib.companion import readme as R

    book = V.CheckBook("99", out=tmp_path / "results" / "smoke")
    book.check("99.a", 576, expected=576, claim="MLA caches 576 numbers", source="DeepSeek-V2", quantity="elements")
    book.check("99.b", False, claim="Theorem *2.1*", source="PI", quantity="bound", stated="not reproduced")
    folder = tmp_path / "results" / "smoke" / "checks"
    box = R.check_box("99", V.load_checks(folder), folder)
    flat = " ".join(box.split("\n"))
    assert flat.startswith("**Verdicts** (generated by `make readme` from `results/smoke/checks/99.json`)")
    assert "checks 2 claims of its sources exactly" in flat and "1 reproduced, 1 not reproduced:" in flat
    assert "- **reproduced**: MLA caches 576 numbers (DeepSeek-V2): elements: ours 576, expected 576." in flat
    assert "- **not reproduced**: Theorem \\*2.1\\* (PI): bound: does not hold." in flat
    assert max(map(len, box.split("\n"))) <= R.BOX_WIDTH
    with pytest.raises(ValueError, match="notebook 98: no exact checks"):
        R.check_box("98", V.load_checks(folder), folder)


def test_no_notebook_opens_with_a_hand_written_verdict():
    # the box says what the records say; a typed "Claim reproduced." above it went stale once already (issue 26)
    import re

    from rope_lib.companion import readme as R

    typed = re.compile(r"\*\*Claims? (reproduced|not reproduced|reversed)|^# \*\*Verdict", re.IGNORECASE | re.MULTILINE)
    for stem, _ in [*R.NOTEBOOKS.values(), *R.CHECKED.values()]:
        text = (README.parent / "notebooks" / f"{stem}.py").read_text(encoding="utf-8")
        intro = text.split("# %%", 2)[1]  # the first cell: title and introduction
        assert not typed.search(intro), f"{stem}: a hand-written verdict in the introduction; the box carries it"
        box = text.index(f"# {R.BOX_START}")
        assert box < text.index("# %%", text.index("# %%") + 1) + 40, f"{stem}: the verdict box is not the 2nd cell"


def test_verdict_box_rewrites_source_and_executed_notebook_alike(tmp_path):
    import nbformat

    from rope_lib.companion import readme as R

    res = _synthetic(tmp_path, medium=False)
    (tmp_path / "notebooks" / "executed").mkdir(parents=True)
    source = tmp_path / "notebooks" / "99_toy.py"
    source.write_text(
        f"# %% [markdown]\n# intro\n\n# %% [markdown]\n# {R.BOX_START}\n# old\n# {R.BOX_END}\n\n# %%\nx = 1\n"
    )
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(f"{R.BOX_START}\nold\n{R.BOX_END}"), nbformat.v4.new_code_cell("x = 1")]
    )
    executed = tmp_path / "notebooks" / "executed" / "99_toy.ipynb"
    executed.write_text(nbformat.writes(nb) + "\n")
    records, others = R._profile_records(res, R.PROFILES[0])
    args = (
        tmp_path,
        records,
        others,
        _headlines("99.a", "99.c"),
        res / "smoke" / "verdicts",
        {"99": ("99_toy", "Toy")},
    )
    changed = R.write_boxes(*args)
    assert set(changed) == {source, executed}
    new_source = changed[source][1]
    assert "# old" not in new_source and new_source.endswith(f"# {R.BOX_END}\n\n# %%\nx = 1\n")
    flat = " ".join(line[2:].strip() for line in new_source.split("\n")[5:-4])  # the box, Markdown-joined
    assert "This notebook decides 3 claims: 1 reproduced, 1 consistent, 1 not decided." in flat
    assert "- **reproduced**: label (ours): A | B > 0 points; ours +3.00 points [+1.00, +5.00], seeds +2.50, " in flat
    assert "- **not decided** (not reproduced here, consistent on the second machine): (ours): claim 99.c" in flat
    assert max(map(len, new_source.split("\n"))) <= 120  # within the linter's line length
    box = nbformat.reads(changed[executed][1], as_version=4).cells[0].source
    assert box.startswith(R.BOX_START) and box.endswith(R.BOX_END) and "old" not in box
    assert [line[2:] if len(line) > 1 else "" for line in new_source.split("\n")[4:-4]] == box.split("\n")
    for path, (_, text) in changed.items():
        path.write_text(text)
    assert R.write_boxes(*args) == {}  # rewriting is idempotent
    source.write_text(source.read_text().replace(f"# {R.BOX_END}\n", ""))
    with pytest.raises(ValueError, match="99_toy.py: needs exactly one # <!-- verdicts:start -->"):
        R.write_boxes(*args)


def test_checks_block_counts_each_notebook_and_lists_what_does_not_reproduce(tmp_path):
    from rope_lib.companion import readme as R

    book = V.CheckBook("99", out=tmp_path)
    book.check("99.a", True, claim="A holds", source="paper", quantity="identity", quiet=True)
    book.check("99.b", False, claim="B | bound", source="paper", quantity="q", stated="not reproduced", quiet=True)
    checks = V.load_checks(tmp_path / "checks")
    block = R.checks_block(checks, {"99": ("99_toy", "Toy")})
    assert "| 99: [Toy](notebooks/executed/99_toy.ipynb) | 2 | 1 | 1 |" in block
    assert "Checks that do not reproduce (1):\n- `99.b` B | bound (paper): not reproduced" in block
    with pytest.raises(ValueError, match="notebook 98: no exact checks recorded"):
        R.checks_block(checks, {"98": ("98_other", "Other")})


def test_leaderboard_block_joins_the_three_results_files_and_sorts_by_8x(tmp_path):
    import json as _json

    from rope_lib.companion import readme as R

    def row(acc8, method, **info):
        by_mult = {m: {"acc": a} for m, a in (("1", 0.5), ("2", 0.45), ("8", acc8))}
        return {"method": method, **info, "metrics": {"non_repeated": by_mult}}

    def runs(rows_by_seed):
        config = {"eval": {"multipliers": [2, 8], "train_length": 64}}  # the file's and every run's, as written
        return {
            "runs": [{"rows": r, "config": config} for r in rows_by_seed],
            "config": config,
        }

    seeds = range(3)
    files = {
        "extrapolation": runs(
            [{"Baseline": row(0.30 + s / 100, "Baseline", log_n="none"),
              "YaRN-log n": row(0.9, "YaRN", log_n="trained")} for s in seeds]
        ),
        "rerope": runs([{"main": {"ReRoPE": row(0.50, "ReRoPE"), "Leaky ReRoPE": row(0.49, "Leaky ReRoPE")}}
                        for _ in seeds]),
        "after_su": runs([{"DCA": row(0.40, "DCA", new=True)} for _ in seeds]),
    }  # fmt: skip
    (tmp_path / "smoke").mkdir()
    for name, data in files.items():
        (tmp_path / "smoke" / f"{name}.json").write_text(_json.dumps(data))
    block = R.leaderboard_block(tmp_path)
    table = [ln for ln in block.splitlines() if ln.startswith("| ") and not ln.startswith("| #")]
    assert [ln.split(" | ")[1] for ln in table] == [
        "ReRoPE",
        "Leaky ReRoPE",
        "DCA",
        "Baseline",
    ]  # YaRN-log n: not shown
    assert table[2].startswith("| 3 | DCA | arXiv:2402.17463; Qwen2.5-1M, arXiv:2501.15383 | new | 50.0 ± 0.0")
    assert table[3].endswith("| 31.0 ± 1.0 |")  # Baseline at 8x: 30, 31, 32 over the seeds
    (tmp_path / "smoke" / "rerope.json").unlink()
    with pytest.raises(ValueError, match="rerope.json does not exist: run `make after-su` and `make`"):
        R.leaderboard_block(tmp_path)
