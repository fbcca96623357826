"""rope_lib.companion.experiments: registry, CLI errors, and the extrapolation JSON (on a tiny profile)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from rope_lib.companion.experiments import EXPERIMENTS, REGISTRY, run_experiment, write_json
from rope_lib.companion.experiments import __main__ as cli
from rope_lib.companion.experiments import extrapolation as ex
from rope_lib.companion.experiments import harness as hx
from rope_lib.companion.experiments.common import REPLAY_ENV, code_digest


def test_registry():
    assert "extrapolation" in EXPERIMENTS and REGISTRY["extrapolation"] is ex.run


def test_cli_unknown_experiment_lists_allowed(capsys):
    assert cli.main(["no_such_experiment"]) == 2
    err = capsys.readouterr().err
    assert "no_such_experiment" in err and "extrapolation" in err


def test_cli_unknown_method_lists_allowed(capsys, tiny_profile):
    assert cli.main(["extrapolation", "--methods", "Baseline,NTK-new", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "NTK-new" in err and "YaRN" in err and "Dynamic NTK" in err
    assert not (tiny_profile / "results").exists()  # refused before any work


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["rerope", "--methods", "Foo"], "'rerope' does not take --methods (it takes no list options)"),
        (["inverse_leaky", "--methods", "Foo"], "'inverse_leaky' does not take --methods (it takes --variants)"),
        (
            ["inverse_leaky", "--variants", "Foo"],
            "unknown variants ['Foo']; allowed variants: ['invleaky', 'invleaky_b']",
        ),
        (["extrapolation", "--variants", "invleaky"], "'extrapolation' does not take --variants (it takes --methods)"),
        (["extrapolation", "--methods", ","], "at least one methods is needed"),
        ([], "the experiment name is required; one of: after_su, base_bound, extrapolation, finetune, inverse_leaky"),
        (["extrapolation", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
        (["extrapolation", "--seed", "-1"], "seed must be a non-negative integer, got -1"),
        (["extrapolation", "--bogus"], "unrecognized arguments: --bogus"),
        (["extrapolation", "--profile", "huge"], "profile must be one of ('smoke', 'medium', 'full'), got 'huge'"),
        (["extrapolation", "--device", "tpu"], "device must be None, 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
        (["extrapolation", "--profile", "full", "--device", "cpu"], "profile 'full' needs a GPU"),
    ],
)
def test_cli_errors_are_one_line_exit_2(argv, expected, capsys, tiny_profile):
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors exit from inside parse_args
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], captured.err
    assert not (tiny_profile / "results").exists()  # refused before any work


def test_cli_list_and_help_show_every_experiments_names(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "extrapolation: --methods: Baseline, PI, NTK-aware, NTK-old" in out and "Dynamic YaRN" in out
    assert "inverse_leaky: --variants: invleaky, invleaky_b" in out and "rerope: no list options" in out
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    assert "--variants" in help_text and "NTK-by-parts" in help_text and "invleaky_b" in help_text


def test_every_declared_list_option_is_a_keyword_of_run():
    import inspect

    from rope_lib.companion.experiments import LIST_OPTIONS

    for name, opts in LIST_OPTIONS.items():
        params = inspect.signature(REGISTRY[name]).parameters
        assert set(opts) <= set(params), (name, opts)


def test_full_profile_refuses_cpu():
    with pytest.raises(ValueError, match="GPU"):
        run_experiment("extrapolation", profile="full", device="cpu")
    with pytest.raises(ValueError, match="profile"):
        run_experiment("extrapolation", profile="huge", device="cpu")


def test_extrapolation_json(tiny_profile, capsys, monkeypatch):
    assert cli.main(["extrapolation", "--device", "cpu"]) == 0
    path = tiny_profile / "results" / "smoke" / "extrapolation.json"
    assert capsys.readouterr().out.strip().endswith("extrapolation.json")
    r = json.loads(path.read_text())
    assert {"experiment", "profile", "seeds", "test_seed", "device", "versions", "git_sha", "config", "runs"} <= set(r)
    assert {"torch", "numpy", "sympy", "python"} <= set(r["versions"])
    assert r["git_sha"] is None or len(r["git_sha"]) == 40
    assert r["seeds"] == [0, 1] and [run["seed"] for run in r["runs"]] == [0, 1]  # the tiny profile's 2 seeds
    run0, run1 = r["runs"]
    assert {"config", "training", "timings", "rows", "train_length_metrics"} <= set(run0)
    assert {"train_wall_s", "train_tokens_per_s", "eval_s"} <= set(run0["timings"])
    assert {"model", "model_log_n", "train", "eval", "corpus"} <= set(r["config"])
    assert run0["config"]["train"]["seed"] == 0 and run1["config"]["train"]["seed"] == 1
    assert run0["training"]["plain"]["key"] != run1["training"]["plain"]["key"]  # another seed, another model
    # each seed has its own test windows, from different files
    files0, files1 = (run["config"]["eval"]["sample_files"] for run in r["runs"])
    assert len(files0) == len(files1) == 3 and not set(files0) & set(files1)
    expected = [hx.row_name(m, v) for v in ("none", "dagger", "trained") for m in hx.METHODS]
    assert list(run0["rows"]) == list(run1["rows"]) == expected and len(expected) == 3 * 11
    cell = run0["rows"]["NTK-mixed-log n-dagger"]["metrics"]["non_repeated"]["4"]
    assert {"acc", "loss", "last_window_loss", "acc_per_sample"} <= set(cell) and len(cell["acc_per_sample"]) == 3
    # Su's repeated column is at 8x only; the tiny profile (2x, 4x) scores the repeated set at no multiplier
    assert run0["config"]["eval"]["repeated_multipliers"] == []
    assert all(
        row["metrics"]["repeated"] == {} and list(row["metrics"]["non_repeated"]) == ["2", "4"]
        for row in run0["rows"].values()
    )
    assert run0["rows"]["YaRN"]["schemes"]["4"]["rope_parameters"]["factor"] == 4.0  # s = L'/L
    assert not list(path.parent.glob(".*.tmp"))
    # a second run reuses every trained model; with 4x in REPEATED_MULTS the repeated set is scored there only
    monkeypatch.setattr(ex, "REPEATED_MULTS", (4, 8))
    again = run_experiment("extrapolation", device="cpu", methods=["Baseline", "PI"], out=tiny_profile / "other")
    assert again["runs"][0]["config"]["eval"]["repeated_multipliers"] == [4]
    assert all(list(row["metrics"]["repeated"]) == ["4"] for row in again["runs"][0]["rows"].values())
    assert all(all(run["timings"]["train_cache_hit"].values()) for run in again["runs"])
    assert list(again["runs"][1]["rows"]) == [
        "Baseline",
        "PI",
        "Baseline-log n-dagger",
        "PI-log n-dagger",
        "Baseline-log n",
        "PI-log n",
    ]


def test_write_json_is_atomic(tmp_path):
    path = tmp_path / "r.json"
    write_json({"a": 1.0}, path)
    with pytest.raises(TypeError):
        write_json({"a": object()}, path)  # not serialisable: the old file stays, no temporary is left
    assert json.loads(path.read_text()) == {"a": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_rerope_json(tiny_profile, monkeypatch):
    from rope_lib.companion.experiments import rerope_eval as rx

    monkeypatch.setattr(rx, "SWEEP_MULT", 4)  # the tiny profile tests 2x and 4x only
    r = run_experiment("rerope", device="cpu", progress=False)
    assert json.loads((tiny_profile / "results" / "smoke" / "rerope.json").read_text())["experiment"] == "rerope"
    assert {"experiment", "schema", "profile", "seeds", "device", "versions", "git_sha"} <= set(r)
    main, window, leak = (r["runs"][0]["rows"][g] for g in ("main", "window", "leak"))
    assert {"ReRoPE", "Leaky ReRoPE-log n-dagger", "YaRN-log n"} <= set(main)
    assert (
        main["ReRoPE"]["window"] == 8 and main["Leaky ReRoPE"]["window"] == 4 and main["Leaky ReRoPE"]["leaky_k"] == 16
    )
    assert set(main["ReRoPE"]["metrics"]["repeated"]) == {"1", "2", "4"}  # main rows at L and every test length
    assert set(window["ReRoPE-w16-log n"]["metrics"]["repeated"]) == {"4"}  # sweeps at SWEEP_MULT only
    assert [row["window"] for name, row in window.items() if name.endswith("log n")] == [2, 4, 6, 8, 12, 16]
    assert len(leak) == 2 * len(rx.LEAKS)
    # the main ReRoPE row (w = L/2, plain model) and the sweep's w = L/2 row score the same samples the same way
    # (same model, scheme, samples and batch: the same computation, or its cached result - exact by construction)
    for kind in ("repeated", "non_repeated"):
        got, want = window["ReRoPE-w8"]["metrics"][kind]["4"], main["ReRoPE"]["metrics"][kind]["4"]
        np.testing.assert_array_equal(got["acc_per_sample"], want["acc_per_sample"])


def test_base_bound_json_and_models(tiny_profile, monkeypatch, corpus):
    from rope_lib.base_bound import max_context_length
    from rope_lib.companion.experiments import base_bound as bb
    from rope_lib.companion.train import config_key

    monkeypatch.setitem(bb.SETTINGS, "smoke", {"bases": (10.0, 1e4)})
    monkeypatch.setitem(hx.RETRIEVAL_BUDGET, "smoke", {"steps": 4, "curriculum": ((2, 3),)})
    configs = bb.retrieval_configs("smoke", 0)
    assert list(configs) == ["text-b10", "retrieval-b10", "text-b10000", "retrieval-b10000"]
    plain_model, plain_train = hx.shared_models("smoke", 0)["plain"]
    assert configs["text-b10000"] == (plain_model, plain_train)  # base 1e4: notebook 04's model, same cache key
    for base in ("10", "10000"):
        text_model, text_train = configs[f"text-b{base}"]
        model, cfg = configs[f"retrieval-b{base}"]
        assert model == text_model and model.rope_base == float(base)
        assert cfg.finetune.init_from == config_key(text_model, text_train, corpus.digest)  # from its own base
        assert cfg.task.fraction == 1.0 and cfg.task.curriculum == ((2, 3),) and cfg.steps == 4
    r = run_experiment("base_bound", device="cpu", progress=False)
    written = json.loads((tiny_profile / "results" / "smoke" / "base_bound.json").read_text())
    assert written["experiment"] == "base_bound" and list(written["runs"][1]["bases"]) == ["10", "10000"]
    L = r["config"]["eval"]["train_length"]
    run = r["runs"][1]
    assert list(run["bases"]) == ["10", "10000"]
    for base, entry in run["bases"].items():
        assert entry["keeps_bias_sum_nonnegative_to"] == max_context_length(float(base), 16)
        assert list(entry["retrieval"]["passkey"]) == [str(m) for m in range(1, L - 1)]
        assert all(len(v) == bb.PASSKEY_SAMPLES for v in entry["text"]["passkey"].values())
        assert len(entry["text"]["loss_per_sample"]) == len(run["config"]["eval"]["sample_files"])
    assert list(run["heatmap"]) == list(bb.HEATMAP_METHODS)
    assert list(run["heatmap"]["ReRoPE"]) == ["1", "2", "4"]  # L and the tiny profile's test lengths
    top = run["heatmap"]["YaRN"]["4"]
    assert list(top) == [str(m) for m in bb._distances(4 * L, bb.HEATMAP_FRACTIONS)] and str(4 * L - 2) in top
    assert set(run["training"]) >= {"text-b10", "retrieval-b10000"}


def test_full_profile_code_path_at_toy_size(tiny_profile, monkeypatch):
    """Every experiment's *full*-profile code path, on the CPU at toy size: the settings the full profile reads
    (compile on, no thread pinning, every InvLeaky variant), its output folders (results/full), its JSON.

    The full profile is refused on a CPU by design; here the device check is replaced, not the code under it.
    """
    import torch

    from rope_lib.companion.experiments import base_bound as bb
    from rope_lib.companion.experiments import finetune as ft
    from rope_lib.companion.experiments import inverse_leaky as il
    from rope_lib.companion.experiments import rerope_eval as rx

    toy_full = {**hx.PROFILE_SETTINGS["smoke"], "num_threads": None}  # the tiny profile, as conftest installs it
    toy_full["train"] = {**toy_full["train"], "compile": True}  # as in the full profile (compiles on CUDA only)
    monkeypatch.setitem(hx.PROFILE_SETTINGS, "full", toy_full)
    monkeypatch.setattr(hx, "experiment_device", lambda profile, device: torch.device("cpu"))
    monkeypatch.setattr(rx, "SWEEP_MULT", 4)  # the toy profile tests 2x and 4x only
    monkeypatch.setattr(ft, "EXTEND", 2)  # fine-tune to 2L, score at L, 2L, 4L
    monkeypatch.setitem(ft.SETTINGS, "full", {**ft.SETTINGS["full"], "steps": 3, "warmup_steps": 1, "snapshots": (1,)})
    monkeypatch.setitem(bb.SETTINGS, "full", {"bases": (10.0, 1e4)})
    monkeypatch.setitem(hx.RETRIEVAL_BUDGET, "full", {"steps": 3, "curriculum": ((1, 2),)})
    monkeypatch.setitem(il.TIMING, "rounds", 1)
    monkeypatch.setitem(il.TIMING, "steps_per_round", 1)
    monkeypatch.setitem(il.TIMING, "warmup_steps", 0)
    for name in EXPERIMENTS:
        r = run_experiment(name, profile="full", device="cpu", progress=False)
        path = tiny_profile / "results" / "full" / f"{name}.json"
        assert path.exists() and json.loads(path.read_text())["profile"] == "full" == r["profile"]
        assert r["config"]["train"]["compile"] is True and r["config"]["eval"]["num_threads"] is None
    assert json.loads((tiny_profile / "results" / "full" / "inverse_leaky.json").read_text())["config"][
        "variants"
    ] == list(il.DEFAULT_VARIANTS["full"])
    assert not (tiny_profile / "results" / "smoke").exists()  # the full profile never writes the smoke outputs
    _check_finetune_json(json.loads((tiny_profile / "results" / "full" / "finetune.json").read_text()), ft)


def _check_finetune_json(results: dict, ft) -> None:
    """The split at L and the retrieval path of notebook 08b's results file."""
    L, run = results["config"]["eval"]["train_length"], results["runs"][0]
    for mult in (ft.EXTEND, 2 * ft.EXTEND):  # beyond L: (L - 1) predictions before L, the rest from L on
        m = run["rows"]["PI @ 0"]["metrics"]["non_repeated"][str(mult)]
        T = mult * L
        whole = np.array(m["within_L_loss_per_sample"]) * (L - 1) + np.array(m["beyond_L_loss_per_sample"]) * (T - L)
        np.testing.assert_allclose(whole / (T - 1), m["loss_per_sample"], rtol=1e-5)
    assert "within_L_loss_per_sample" not in run["rows"]["PI @ 0"]["metrics"]["non_repeated"]["1"]
    steps = results["config"]["finetune"]["steps"]
    assert list(run["retrieval"]) == [f"{m} @ {s}" for m in ft.RETRIEVAL_METHODS for s in (0, steps)]
    distances = results["config"]["eval"]["passkey"]["distances"]
    assert distances[-1] == ft.EXTEND * L - 2 and distances == sorted(set(distances))  # spaced, the longest last
    for hits in run["retrieval"].values():
        assert list(hits) == [str(d) for d in distances] and all(len(h) == ft.PASSKEY_SAMPLES for h in hits.values())


def test_evaluations_are_cached_exactly_and_keyed_by_what_they_depend_on(tiny_profile):
    from rope_lib.companion.model import PositionScheme

    with hx.prepare("smoke", "cpu", 0, progress=False) as h:
        sets = h.at_train_length()
        entry = h.trained["plain"]
        first = hx.score_sets(entry, sets, None, L=h.L, batch_tokens=h.batch_tokens)
        cached = list((tiny_profile / "cache" / "eval").glob("*.json"))
        assert len(cached) == 2  # one per test set
        again = hx.score_sets(entry, sets, None, L=h.L, batch_tokens=h.batch_tokens)
        assert again == first  # floats stored exactly
        # another scheme, other samples, another model: new entries, not the cached ones
        hx.score_sets(entry, sets, PositionScheme({"rope_type": "linear", "factor": 2.0}), L=h.L, batch_tokens=4096)
        other = {k: v.roll(1, dims=1) for k, v in sets.items()}
        hx.score_sets(entry, other, None, L=h.L, batch_tokens=h.batch_tokens)
        hx.score_sets(h.trained["log_n"], sets, None, L=h.L, batch_tokens=h.batch_tokens)
        assert len(list((tiny_profile / "cache" / "eval").glob("*.json"))) == 8
        # a model outside the checkpoint cache (no key) is never cached
        model, meta = entry
        hx.score_sets((model, {**meta, "key": None}), other, None, L=h.L, batch_tokens=h.batch_tokens)
        assert len(list((tiny_profile / "cache" / "eval").glob("*.json"))) == 8


def test_harness_evaluate_checks_multiplier_lists(tiny_profile):
    with hx.prepare("smoke", "cpu", 0, progress=False) as h:
        for option in ("mults", "repeated_mults"):
            with pytest.raises(ValueError, match=rf"unknown {option} \[8\]; allowed {option}: \[2, 4\]"):
                h.evaluate([], **{option: [8]})


def _committed(root, name="rerope", **fields):
    """A results file as `make` commits it under root/smoke/, current for this checkout unless fields say otherwise."""
    data = {"experiment": name, "profile": "smoke", "test_seed": 0, "code": code_digest(), "runs": [{"seed": 0}]}
    data.update(fields)
    path = root / "smoke" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) + "\n", encoding="utf-8")
    return data, path


def test_replay_copies_a_current_results_file_and_trains_nothing(tiny_profile, monkeypatch):
    data, path = _committed(tiny_profile / "committed")
    monkeypatch.setenv(REPLAY_ENV, str(tiny_profile / "committed"))
    assert run_experiment("rerope", device="cpu") == data
    assert (tiny_profile / "results" / "smoke" / "rerope.json").read_bytes() == path.read_bytes()
    assert not (tiny_profile / "cache").exists()  # nothing trained, nothing scored


@pytest.mark.parametrize(
    "fields, options, expected",
    [
        ({"code": "0" * 64}, {}, r"rerope\.json is stale: written by rope_lib code 000000000000, this checkout is "),
        ({"code": None}, {}, r"is stale: written by rope_lib code None"),
        ({"test_seed": 3}, {}, r"holds profile 'smoke', seed 3; asked for 'smoke', seed 0"),
        ({"profile": "medium"}, {}, r"holds profile 'medium', seed 0"),
        ({}, {"methods": ["Baseline"]}, r"replays whole results files; --methods restricts the rows"),
    ],
)
def test_replay_refuses_stale_or_foreign_files(tiny_profile, monkeypatch, fields, options, expected):
    name = "extrapolation" if options else "rerope"
    _committed(tiny_profile / "committed", name, **fields)
    monkeypatch.setenv(REPLAY_ENV, str(tiny_profile / "committed"))
    with pytest.raises(ValueError, match=expected):
        run_experiment(name, device="cpu", **options)
    assert not (tiny_profile / "results").exists() and not (tiny_profile / "cache").exists()


def test_replay_names_the_missing_file_and_the_fix(tiny_profile, monkeypatch):
    monkeypatch.setenv(REPLAY_ENV, str(tiny_profile / "committed"))
    with pytest.raises(ValueError, match=r"committed/smoke/finetune\.json does not exist: run `make`"):
        run_experiment("finetune", device="cpu")


def test_code_digest_follows_scoring_code_only(tmp_path, monkeypatch):
    # a copy of the package: editing a module a score comes from changes the digest, editing a presentation module
    # does not (the digest is cached per process, so each state is measured in a fresh call on the copy)
    import shutil

    import rope_lib
    from rope_lib.companion.experiments import common

    root = Path(rope_lib.__file__).parent
    copy = tmp_path / "rope_lib"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(common, "__file__", str(copy / "companion" / "experiments" / "common.py"))

    def digest():
        common.code_digest.cache_clear()
        return common.code_digest()

    try:
        first = digest()
        assert first == code_digest.__wrapped__()  # the copy is byte for byte the package
        (copy / "companion" / "report.py").write_text("# only a table changed\n", encoding="utf-8")
        assert digest() == first
        with open(copy / "scaling.py", "a", encoding="utf-8") as fh:
            fh.write("\n# a scoring module changed\n")
        assert digest() != first
    finally:
        common.code_digest.cache_clear()


def test_committed_smoke_results_come_from_this_code():
    # `make test` replays these files in the trained-model notebooks; a change to rope_lib's scoring code makes them
    # stale until `make` re-runs the experiments (this test says so before nbval does, an hour sooner)
    from rope_lib.companion.runtime import repo_root

    committed = sorted((repo_root() / "results" / "smoke").glob("*.json"))
    experiments = [p for p in committed if json.loads(p.read_text(encoding="utf-8")).get("experiment") in REGISTRY]
    assert {p.stem for p in experiments} == set(EXPERIMENTS)
    stale = [p.name for p in experiments if json.loads(p.read_text(encoding="utf-8")).get("code") != code_digest()]
    assert not stale, f"results/smoke/ {', '.join(stale)}: written by other rope_lib code; run `make`, commit them"


def test_after_su_json(tiny_profile, monkeypatch):
    from rope_lib.companion.experiments import after_su as asu

    monkeypatch.setitem(asu.FINETUNE, "steps", 3)
    monkeypatch.setitem(asu.FINETUNE, "warmup_steps", 1)
    r = run_experiment("after_su", device="cpu", progress=False)
    assert json.loads((tiny_profile / "results" / "smoke" / "after_su.json").read_text())["experiment"] == "after_su"
    rows = r["runs"][0]["rows"]
    new = [name for name, row in rows.items() if row.get("new")]
    assert set(rows) - set(new) == {"Baseline", "YaRN", "Baseline-log n"}  # the rest: notebooks 04 and 05
    assert {"p-RoPE (p = 0.75)", "HoPE", "Resonance RoPE", "NoPE", "SSMax", "DCA", "Llama 4 temperature"} <= set(new)
    assert rows["DCA"]["schemes"]["4"]["attention"] == "dca" and rows["DCA"]["model"] == "plain"
    assert rows["p-RoPE (p = 0.75)"]["schemes"]["2"]["rope_parameters"] == {"rope_type": "p_rope", "p": 0.75}
    assert set(rows["HoPE"]["metrics"]["non_repeated"]) == {"1", "2", "4"}  # at L and every test length
    # PoSE and its control: the same fine-tuning of the plain model, only PoSE's ids skip
    models = asu.models("smoke", 0)
    pose, window = models["pose"][1], models["window_ft"][1]
    assert pose.pose_target == asu.POSE_EXTEND * 16 and window.pose_target is None
    assert dataclasses.replace(pose, pose_target=None) == window and pose.finetune is not None
    assert models["irope"][0].nope_layers == () and models["vo"][0].rotate == "vo"  # the tiny model has one block
    with pytest.raises(ValueError, match="unknown variants"):
        run_experiment("after_su", device="cpu", variants=["vo", "alibi"])
