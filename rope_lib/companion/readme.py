"""The README's generated blocks, written from the committed records so that no measured number is typed by hand.

Hand-transcribed findings drift from the records they quote; here every number in the README's findings, its scale
table and its speed section is read from a file in ``results/``:

- ``verdicts``: how many claims each notebook states in each tier (:func:`rope_lib.companion.verdicts.summary`);
- ``checks``: how many exact checks of each analytic notebook reproduce (:func:`checks_block`, from
  ``results/smoke/checks/``);
- ``findings``: the headline claims of notebooks 04-08 (:data:`HEADLINES`: claim ids only), one bullet each, from
  ``results/smoke/verdicts/`` and the other machines' ``results/smoke/*-machine/verdicts/``;
- ``scale``: the same claims at every profile of :data:`PROFILES` (L = 64, 128, 512), from
  ``results/<profile>/verdicts/``;
- ``speed``: ``make bench``'s files, ``results/bench/rerope_*.json`` and ``results/bench/hf_routes_*.json``.

Each block sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in README.md.
``python -m rope_lib.companion.readme`` rewrites them (``make readme``); ``--check`` exits 1 with a diff when the
committed README differs from what it would write (``tests/test_readme.py`` runs the same check in ``make test``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .._checks import atomic_write
from . import verdicts as V
from .report import Leaderboard, Results
from .runtime import repo_root


@dataclass(frozen=True)
class Headline:
    """One headline claim: its id in the reference profile's records, a short label for the reader (optional), and
    whether the scale table shows it (``scale=False``: the findings list only)."""

    id: str
    label: str | None = None
    scale: bool = True


H = Headline

# The headline claims, grouped by the notebook field of their records, in reading order. Ids only: every number comes
# from the records. Renaming a claim in a notebook makes the README check fail naming the id: update it here.
HEADLINES: dict[str, tuple[Headline, ...]] = {
    "04": (
        H("04.pi-vs-baseline.8x", "PI without fine-tuning is below direct extrapolation"),
        H("04.ntk-vs-baseline.ntk-old.8x", "NTK beats direct extrapolation"),
        H("04.ntk-vs-baseline.ntk-aware.8x", "NTK beats direct extrapolation"),
        H("04.ntk-vs-baseline.ntk-fixed.8x", "NTK beats direct extrapolation"),
        H("04.ntk-vs-baseline.ntk-mixed.8x", "NTK beats direct extrapolation"),
        H("04.ntk-vs-baseline.ntk-aware.16x", "NTK beats direct extrapolation at 16x"),
        H("04.log-n-dagger.ntk-aware.8x", "log n-dagger helps NTK"),
        H("04.log-n-trained.baseline.8x", "trained log n helps Baseline"),
        H("04.log-n-trained.ntk-aware.8x", "trained log n helps an NTK row"),
        H("04.log-n-interaction.ntk-fixed.8x", "Su's log-n interaction: log n helps NTK more than Baseline"),
        H("04.log-n-interaction.ntk-mixed.8x", "Su's log-n interaction"),
        H("04.yarn-vs-ntk.ntk-aware.8x", "YaRN beats every NTK row"),
        H("04.dynamic-yarn-vs-yarn.8x", "Dynamic YaRN beats YaRN"),
        H("04.yarn-parts.temperature.8x", "YaRN's temperature"),
        H("04.yarn-parts.ramp-vs-ntk-aware.8x", "YaRN's ramp alone beats NTK-aware"),
        H("04.copy.baseline.8x", "a copy 4L back helps (Su's repeated column)"),
        H("04.copy.plain.at-l", "a copy L/2 back helps within L"),
    ),
    "05": (
        H("05.rerope-vs-yarn.8x", "ReRoPE beats the frequency methods"),
        H("05.leaky-rerope-vs-yarn.8x", "Leaky ReRoPE beats the frequency methods"),
        H("05.rerope-vs-ntk-fixed.8x", "ReRoPE beats the frequency methods"),
        H("05.rerope-log-n-dagger-vs-rerope.8x", "log n at test time helps ReRoPE"),
        H("05.rerope-log-n-vs-rerope.8x", "trained log n helps ReRoPE"),
        H("05.window.plain-model.band-vs-rest", "best window L/4..L/2"),
        H("05.window.plain-model.band-vs-w48", "best window L/4..L/2, against 3L/4"),
        H("05.window.log-n-model.band-vs-rest", "best window L/4..L/2"),
        H("05.window-l-collapse.plain-model", "w = L collapses below direct extrapolation"),
        H("05.window-l-collapse.log-n-model", "w = L collapses below direct extrapolation"),
        H("05.leak.w32.k16-vs-k8", "Leaky: k = 16 beats k = 8 (w = L/2)"),
        H("05.leak.w16.k64-vs-k16", "Leaky: k = 64 level with k = 16 (w = L/4)"),
        H("05.lower-loss.rerope.2x", "longer context, lower loss"),
        H("05.lower-loss.rerope-log-n.4x", "longer context, lower loss"),
        H("05.lower-loss-again.rerope.4x-vs-2x", "longer context, lower loss again"),
        H("05.lower-loss.rerope.16x", "longer context, lower loss"),
    ),
    "06": (
        H("06.a.8x.non-repeated.vs-baseline", "InvLeaky far above the baseline"),
        H("06.a.8x.non-repeated.vs-baseline-log-n", "InvLeaky far above the baseline"),
        H("06.vs-frequency.8x.non-repeated.vs-yarn-log-n", "InvLeaky against a frequency method"),
        H("06.vs-frequency.8x.non-repeated.vs-yarn", "InvLeaky against a frequency method"),
        H("06.b.8x.non-repeated.within-margin", "InvLeaky close to ReRoPE (within 1 point)"),
        H("06.c.train-length.non-repeated.below-log-n", "InvLeaky loses at the training length"),
        H("06.c.train-length.non-repeated.within-margin", "InvLeaky loses nothing at L (within 1 point)"),
        H("06.c.train-length.repeated.within-margin", "InvLeaky loses nothing at L (within 1 point)"),
        H("06.c.train-length.non-repeated.leaky-scheme-level", "under its own Leaky scheme, level at L"),
        H("06.beyond-r.second-doubling.non-repeated.invleaky", "InvLeaky beyond its trained range: an extra drop"),
    ),
    "07": (
        H("07.loss-within-5pct", "below the bound the text loss stays close (5%)"),
        H("07.loss-within-2pct", "below the bound the text loss stays close (2%)"),
        H("07.far-retrieval-falls", "below the bound long-range retrieval falls"),
        H("07.far-retrieval-falls-5pt", "below the bound long-range retrieval falls by 5 points"),
        H("07.near-retrieval-falls", "(ours) retrieval at short range falls too"),
        H("07.far-fall-beyond-near-fall", "the fall is a long-range one"),
        H("07.retrieval-cost-below-bound", "(ours) retrieval training costs text loss below the bound"),
        H("07.far-passkey.ntk-aware-vs-baseline.16x", "(ours) beyond L, methods retrieve far keys"),
        H("07.far-passkey.rerope-vs-baseline.16x", "(ours) beyond L, methods retrieve far keys"),
    ),
    "08": (
        H("08.pi-vs-extrapolation.100steps", "fine-tuned PI beats the pre-trained model at L'"),
        H("08.pi-vs-own-window.100steps", "fine-tuned PI below the original window"),
        H("08.yarn-vs-pi.at-lp.100steps", "YaRN needs no more steps than PI"),
        H("08.yarn-vs-pi.at-2lp.100steps", "YaRN (s = L'/L) better than PI at 2L'"),
        H("08.yarn-s-8.last-l.2lp-vs-lp", "YaRN with s covering 2L': more context keeps lowering the loss"),
        H("08.yarn-s-8-vs-direct.at-2lp.100steps", "YaRN with s covering 2L' beats plain fine-tuning at 2L'"),
        H("08.direct-vs-pi.at-lp.100steps", "direct fine-tuning is worse than PI (whole windows, L')"),
        H("08.direct-vs-pi.at-2lp.100steps", "direct fine-tuning is worse than PI (whole windows, 2L')"),
        H("08.direct-vs-pi.extension.100steps", "direct fine-tuning extends less than PI (from L on, net of before L)"),
        H("08.passkey.beyond-l.direct-vs-pi.100steps", "direct fine-tuning keeps less retrieval beyond L than PI"),
        H("08.passkey.k-max.direct-vs-pi.100steps", "direct fine-tuning has a smaller passkey k_max than PI"),
        H("08.pi-cost-at-l", "PI costs something at L"),
        H("08.pi-cost-at-l.little", "PI costs only a little at L"),
    ),
    # notebook 14: each paper's headline claim (smoke profile only: no scale column yet)
    "14": tuple(
        H(cid, label, scale=False)
        for cid, label in (
            ("14.pose-vs-window.4x", "PoSE's skipped ids extend the window"),
            ("14.pose-vs-yarn.4x", "PoSE fine-tuning beats no fine-tuning"),
            ("14.p-rope-vs-rope.L", "p-RoPE improves on RoPE"),
            ("14.hope-vs-rope.8x", "HoPE extrapolates better than RoPE"),
            ("14.resonance-vs-rope.8x", "Resonance RoPE extrapolates better than RoPE"),
            ("14.irope-vs-rope.8x", "interleaved NoPE layers extrapolate better"),
            ("14.temperature-irope.8x", "Llama 4's temperature helps at long context"),
            ("14.ssmax-vs-rope.8x", "SSMax extrapolates better than RoPE"),
            ("14.vo-vs-nope.L", "VO-RoPE alone beats NoPE"),
            ("14.qk-vs-vo.L", "RoPE on q, k beats VO-RoPE alone"),
            ("14.qkvo-vs-qk.L", "QKVO is slightly worse than QK"),
            ("14.dca-vs-baseline.4x", "DCA extends without training"),
        )
    ),
}

# The notebook each record group comes from (a record's "notebook" field; notebook 08b keeps the record id 08).
NOTEBOOKS: dict[str, tuple[str, str]] = {
    "04": ("04_train_short_test_long", "Train short, test long"),
    "05": ("05_rerope", "ReRoPE and Leaky ReRoPE"),
    "06": ("06_inverse_leaky_rerope", "InvLeaky ReRoPE"),
    "07": ("07_rope_base_bound", "The base bounds the context"),
    "08": ("08b_finetune_to_extend", "Extend by fine-tuning"),
    "14": ("14_after_su", "After Su: one leaderboard"),
}

# The notebooks whose claims are exact checks (derivations and computations, no training): their box is written from
# ``results/smoke/checks/<nb>.json`` (:class:`rope_lib.companion.verdicts.CheckBook`).
CHECKED: dict[str, tuple[str, str]] = {
    "01": ("01_rope_fundamentals", "RoPE fundamentals"),
    "02": ("02_rope_as_beta_base", "RoPE as a base-beta number"),
    "03": ("03_ntk_by_parts_and_yarn", "NTK-by-parts, YaRN, Dynamic, Llama 3, LongRoPE"),
    "08a": ("08a_position_interpolation", "Position Interpolation's bound"),
    "09": ("09_mla_decoupled_rope", "MLA and decoupled RoPE"),
    "10": ("10_attention_as_rnn", "Attention as an RNN"),
    "11": ("11_multimodal_rope", "Multimodal RoPE"),
    "12": ("12_transformers", "Every method in a transformers model"),
    "13": ("13_frequency_atlas", "A frequency atlas of shipped models"),
}


@dataclass(frozen=True)
class Profile:
    """A rung of the scale ladder: its name (``results/<name>/``) and training length L (the profile's setting in
    ``rope_lib.companion.experiments.harness.PROFILE_SETTINGS``; a unit test keeps the two equal)."""

    name: str
    L: int


PROFILES: tuple[Profile, ...] = (Profile("smoke", 64), Profile("medium", 128), Profile("full", 512))

NOT_RUN, NOT_RECORDED = "not run", "not recorded"
# Window sizes inside claim ids are absolute (smoke's "w16" is L/4): another profile records the same claim at the
# same fraction of its own L ("w32" at L = 128).
_WINDOW = re.compile(r"(?<![a-z0-9])w(\d+)(?![a-z0-9])")


def _marker(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"


def replace_block(text: str, name: str, block: str) -> str:
    """``text`` with everything between the ``name`` markers replaced by ``block`` (which ends with a newline)."""
    start, end = _marker(name)
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"README has no single {start.strip()} ... {end} block to rewrite")
    head, rest = text.split(start, 1)
    return head + start + block + end + rest.split(end, 1)[1]


def md(text: str) -> str:
    """Record text as Markdown prose: the characters Markdown would read as emphasis or code, escaped."""
    return re.sub(r"([\\`*_])", r"\\\1", text)


def cell(text: str) -> str:
    """Record text inside a Markdown table cell: also ``|``, which would end the cell."""
    return md(text).replace("|", "\\|")


def unit(record: dict) -> str:
    """The unit of a record's quantity: the last parenthesised part ("accuracy gap (points)" -> "points")."""
    m = re.search(r"\(([^()]*)\)\s*$", record["quantity"])
    return m.group(1) if m else record["quantity"]


def _decimals(*values: float) -> int:
    """Decimals that give the largest of ``values`` three significant digits (at least none)."""
    big = max((abs(v) for v in values if v), default=0.0)
    return 2 if big == 0 else max(0, 2 - math.floor(math.log10(big)))


def number(x: float, decimals: int) -> str:
    out = f"{x:+.{decimals}f}"
    return "0" if float(out) == 0 else out  # no "-0.00" / "+0.00"


def claim_line(rec: dict) -> str:
    """The record's claim with what it claims: "PI - Baseline, 8x non-repeated < 0 points"."""
    return f"{md(rec['claim'])} {rec['direction']} {rec['threshold']:.3g} {unit(rec)}"


def _stated(rec: dict, others: V.Others) -> str:
    if rec["stated"] != V.NOT_DECIDED:
        return f"**{rec['stated']}**"
    return f"**{V.NOT_DECIDED}** ({rec['tier']} here, {V.tiers_elsewhere(rec['id'], others)})"


def estimate(rec: dict) -> str:
    """Mean, seed-level interval and per-seed estimates: "-13.9 points [-21.6, -6.2], seeds -10.7, -14.1, -16.9"."""
    d = _decimals(rec["mean"], rec["seed_lo"], rec["seed_hi"], *rec["by_seed"])
    seeds = ", ".join(number(x, d) for x in rec["by_seed"])
    return (
        f"{number(rec['mean'], d)} {unit(rec)} [{number(rec['seed_lo'], d)}, {number(rec['seed_hi'], d)}], "
        f"seeds {seeds}"
    )


def _headline_record(records: dict[str, dict], cid: str, folder: Path) -> dict:
    if cid not in records:
        raise ValueError(
            f"headline claim {cid!r} is not recorded in {folder}: was it renamed? "
            "Update HEADLINES in rope_lib/companion/readme.py"
        )
    return records[cid]


def _notebook_title(nb: str, notebooks: dict[str, tuple[str, str]] = NOTEBOOKS) -> str:
    stem, title = notebooks.get(nb, (None, f"notebook {nb}"))
    return f"{nb}: {title}" if stem is None else f"{nb}: [{title}](notebooks/executed/{stem}.ipynb)"


def findings_block(
    records: dict[str, dict],
    others: V.Others,
    headlines: dict[str, tuple[Headline, ...]],
    folder: Path,
) -> str:
    """One bullet per headline claim, grouped by notebook: label, the record's claim, the stated verdict (with every
    run's tier when not decided), the mean with its seed-level interval and the per-seed estimates."""
    seeds = sorted({len(r["by_seed"]) for r in records.values()})
    elsewhere = ", ".join(f"{V.machine_label(n)}'s `{_relative(folder.parent / n / folder.name)}`" for n in others)
    lines = [
        "",
        f"Records: `{_relative(folder)}`; {elsewhere}. "
        "Each bullet: what the claim says, the record's claim (a difference and the side it is claimed on), the stated "
        f"verdict, then the mean over the {' or '.join(map(str, seeds))} training seeds, its seed-level 95% interval "
        "in brackets and each seed's estimate.",
    ]
    for nb, group in headlines.items():
        recs = [(h, _headline_record(records, h.id, folder)) for h in group]
        total = sum(r["notebook"] == nb for r in records.values())
        lines += ["", f"**{_notebook_title(nb)}** ({len(recs)} of its {total} claims):", ""]
        for h, rec in recs:
            label = f"{md(h.label)}: " if h.label else ""
            lines.append(f"- {label}{claim_line(rec)} - {_stated(rec, others)}: {estimate(rec)}")
    return "\n".join(lines[1:]) + "\n"


def _relative(path: Path) -> str:
    """``path`` from ``results/`` on, as the README names it (the records may live in a scratch folder in tests)."""
    parts = path.parts
    return "/".join(parts[parts.index("results") :] if "results" in parts else parts) + "/"


def id_at(cid: str, ref_L: int, L: int) -> str:
    """The id that a claim recorded at training length ``ref_L`` has at ``L`` (window sizes scale with L)."""

    def scaled(m: re.Match) -> str:
        w = int(m.group(1)) * L
        if w % ref_L:
            raise ValueError(f"window {m.group(0)!r} of claim {cid!r} has no counterpart at L = {L}")
        return f"w{w // ref_L}"

    return _WINDOW.sub(scaled, cid)


def _load(folder: Path) -> dict[str, dict] | None:
    return V.load(folder) if folder.is_dir() and any(folder.glob("*.json")) else None


def _profile_records(results: Path, p: Profile) -> tuple[dict[str, dict] | None, V.Others]:
    """(this profile's records or None when absent, its other machines' records by name: empty when none)."""
    return _load(results / p.name / "verdicts"), V.other_machines(results / p.name)


def _tier_counts(records: dict[str, dict]) -> str:
    tiers = [r["tier"] for r in records.values()]
    return ", ".join(f"{tiers.count(t)} {t}" for t in V.TIERS)


def scale_block(
    results: Path, headlines: dict[str, tuple[Headline, ...]], profiles: tuple[Profile, ...] = PROFILES
) -> str:
    """The headline claims (those with ``scale``) at every profile: the verdict and mean per training length, marked
    **changed** where the tier is not the reference profile's (the first of ``profiles``)."""
    ref = profiles[0]
    loaded = {p.name: _profile_records(results, p) for p in profiles}
    ref_records, ref_others = loaded[ref.name]
    if ref_records is None:
        raise ValueError(f"no verdict records in {results / ref.name / 'verdicts'}: the scale table starts there")
    lines = ["What each column shows (the mean over seeds follows in brackets, in the row's unit):", ""]
    for p in profiles:
        recs, others = loaded[p.name]
        where = f"`results/{p.name}/verdicts/`"
        if recs is None:
            lines.append(f"- L = {p.L} ({p.name}): {NOT_RUN} (no records in {where}).")
        elif others:
            machines = " and ".join(map(V.machine_label, others))
            lines.append(
                f"- L = {p.L} ({p.name}): the stated verdict, the tier on which {where}, {machines} "
                f"agree, else {V.NOT_DECIDED} with every run's tier. Tiers of all {len(recs)} claims: "
                f"{_tier_counts(recs)}."
            )
        else:
            lines.append(
                f"- L = {p.L} ({p.name}): the tier of its one run ({where}; no other machine, so no claim reads "
                f"{V.NOT_DECIDED}). Tiers of all {len(recs)} claims: {_tier_counts(recs)}."
            )
    lines += [
        "",
        f"**changed**: the tier is not L = {ref.L}'s (not any of its runs' tiers where L = {ref.L} is "
        f"{V.NOT_DECIDED}). Window sizes in claim ids are absolute (w16 is L/4 at L = {ref.L}): each column reads "
        "the claim at the same fraction of its own L.",
        "",
        "| notebook | finding | " + " | ".join(f"L = {p.L}" for p in profiles) + " |",
        "|---|---|" + "---|" * len(profiles),
    ]
    for nb, group in headlines.items():
        for h in group:
            if not h.scale:
                continue
            rec = _headline_record(ref_records, h.id, results / ref.name / "verdicts")
            if rec["stated"] != V.NOT_DECIDED:
                ref_tiers = {rec["stated"]}
            else:
                ref_tiers = {rec["tier"]} | {o[h.id]["tier"] for o in ref_others.values() if h.id in o}
            claim = f"{h.label}: {rec['claim']}" if h.label else rec["claim"]
            row = [nb, cell(f"{claim} {rec['direction']} {rec['threshold']:.3g} ({unit(rec)})")]
            for p in profiles:
                recs, others = loaded[p.name]
                row.append(_scale_cell(h.id, ref, p, recs, others, ref_tiers))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _scale_cell(
    cid: str,
    ref: Profile,
    p: Profile,
    recs: dict[str, dict] | None,
    others: V.Others,
    ref_tiers: set[str],
) -> str:
    if recs is None:
        return NOT_RUN
    rec = recs.get(id_at(cid, ref.L, p.L))
    if rec is None:
        return NOT_RECORDED
    if others and rec["stated"] == V.NOT_DECIDED:
        there = [o[rec["id"]]["tier"] if rec["id"] in o else NOT_RECORDED for o in others.values()]
        shown = f"{V.NOT_DECIDED}: " + " / ".join([rec["tier"], *there])
    else:
        shown = rec["stated"] if others else rec["tier"]
    body = cell(f"{shown} ({number(rec['mean'], _decimals(rec['mean']))})")
    return f"**changed**: {body}" if p != ref and rec["tier"] not in ref_tiers else body


def _ratio(x: float) -> str:
    return f"{x:.2f}x"


def _rerope_table(path: Path, d: dict) -> list[str]:
    shape = d.get("shape", {})
    head = (
        f"`results/bench/{path.name}`: ReRoPE attention, {d.get('pass', 'forward')} pass, {d.get('device')} "
        f"({d.get('cpu', '')}, {d.get('threads')} threads, torch {d.get('torch')}); batch {shape.get('batch')} x "
        f"{shape.get('heads')} heads x {shape.get('head_dim')}, {shape.get('dtype')}, w = {d.get('window')}, "
        f"k = {d.get('leaky_k'):g}. Each cell: the best time of {d.get('repeats')} (SDPA's in seconds, the others as a "
        f"multiple of it), and the peak memory: {d.get('memory_method', 'peak memory')}."
    )
    methods = list(dict.fromkeys(r["method"] for r in d["rows"]))
    sizes = list(dict.fromkeys(r["n"] for r in d["rows"]))
    by = {(r["n"], r["method"]): r for r in d["rows"]}
    lines = [head, "", "| tokens | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for n in sizes:
        row = [str(n)]
        for m in methods:
            r = by.get((n, m))
            if r is None:
                row.append("not run")
                continue
            time = f"{r['time_s']:.3g} s" if "time_vs_sdpa" not in r else _ratio(r["time_vs_sdpa"])
            row.append(f"{time}, {r['peak_mib']:.0f} MiB")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _hf_routes_table(path: Path, d: dict) -> list[str]:
    m = d.get("model", {})
    head = (
        f"`results/bench/{path.name}`: `rope_lib.hf` routes in a random Llama (hidden {m.get('hidden')}, "
        f"{m.get('layers')} layers, L = {m.get('L')}, {m.get('dtype')}), {d.get('device')} ({d.get('threads')} "
        f"threads, torch {d.get('torch')}, transformers {d.get('transformers')}). Each cell: best time (of "
        f"{d.get('repeats')}) as a multiple of the unpatched model's, and the target where one is set."
    )
    cases = list(dict.fromkeys((r["case"], r["size"]) for r in d["rows"]))
    routes = [r for r in dict.fromkeys(r["route"] for r in d["rows"]) if r != "plain"]
    by = {(r["route"], r["case"], r["size"]): r for r in d["rows"]}
    lines = [
        head,
        "",
        "| route | " + " | ".join(cell(f"{c} {s}") for c, s in cases) + " |",
        "|---|" + "---|" * len(cases),
    ]
    for route in routes:
        row = [cell(route)]
        for c, s in cases:
            r = by.get((route, c, s))
            if r is None:
                row.append("not run")
                continue
            target = ""
            if "target" in r:
                target = f" (target {r['target']:g}x: {'met' if r.get('meets_target') else 'missed'})"
            row.append(_ratio(r["ratio"]) + target)
        lines.append("| " + " | ".join(row) + " |")
    graph = d.get("fullgraph")
    if graph:
        ok = [cell(k) for k, v in graph.items() if v == "ok"]
        refused = [f"{cell(k)} ({cell(str(v).split(':', 1)[0])})" for k, v in graph.items() if v != "ok"]
        lines += [
            "",
            "`torch.compile(fullgraph=True)` traces "
            + (", ".join(ok) or "no route")
            + "; refused: "
            + (", ".join(refused) or "none")
            + ".",
        ]
    return lines


def speed_block(results: Path) -> str:
    """A table per benchmark file of ``make bench`` (``results/bench/rerope_*.json``, ``hf_routes_*.json``)."""
    bench = results / "bench"
    parts: list[list[str]] = []
    for pattern, table in (("rerope_*.json", _rerope_table), ("hf_routes_*.json", _hf_routes_table)):
        for path in sorted(bench.glob(pattern)):
            parts.append(table(path, json.loads(path.read_text(encoding="utf-8"))))
    if not parts:
        return "No benchmark recorded (`make bench` writes `results/bench/`).\n"
    devices = sorted({p.stem.split("_")[-1] for p in bench.glob("*_*.json") if p.stem != "pipeline"})
    if not any("cuda" in name for name in devices):
        parts.append(["No GPU run recorded (no `results/bench/*_cuda*.json`)."])
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


# The verdict box atop each trained-model notebook: a Markdown cell of its own between these markers, in the source
# (as jupytext comment lines) and in the executed notebook (as the cell's text), rewritten by `make readme`.
BOX_START, BOX_END = "<!-- verdicts:start -->", "<!-- verdicts:end -->"


# Width of the box's lines: a source line is "# " + this, within the linter's 120 characters.
BOX_WIDTH = 116


def verdict_box(
    nb: str, records: dict[str, dict], others: V.Others, headlines: tuple[Headline, ...], folder: Path
) -> str:
    """The Markdown of notebook ``nb``'s verdict box: its tier counts, then one bullet per headline claim (verdict,
    what the claim says, its source, the record's claim, our estimate), every number from the records; lines wrapped
    at :data:`BOX_WIDTH` (Markdown joins them again)."""
    recs = [r for r in records.values() if r["notebook"] == nb]
    if not recs:
        raise ValueError(f"notebook {nb}: no verdict records in {folder}")
    counts = ", ".join(f"{n} {t}" for t in V.STATED if (n := sum(r["stated"] == t for r in recs)))
    seeds = " or ".join(map(str, sorted({len(r["by_seed"]) for r in recs})))
    head = (
        f"**Verdicts** (generated by `make readme` from `{_relative(folder)}{nb}.json`; {seeds} training seeds, each "
        f"claim decided on the seed level, CONTRIBUTING.md). This notebook decides {len(recs)} claims: {counts}. "
        "Its headline claims, each with its verdict, the record's claim, and ours: the mean, its seed-level 95% "
        "interval and each seed's estimate:"
    )
    lines = textwrap.wrap(head, BOX_WIDTH, break_long_words=False, break_on_hyphens=False) + [""]
    for h in headlines:
        rec = _headline_record(records, h.id, folder)
        label = f"{md(h.label)} " if h.label else ""
        bullet = f"- {_stated(rec, others)}: {label}({md(rec['source'])}): {claim_line(rec)}; ours {estimate(rec)}."
        lines += textwrap.wrap(
            bullet, BOX_WIDTH, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
        )
    return "\n".join(lines)


def _replace_between(lines: list[str], start: str, end: str, block: list[str], where: str) -> list[str]:
    hits = [i for i, line in enumerate(lines) if line.strip() in (start, end)]
    if len(hits) != 2 or lines[hits[0]].strip() != start:
        raise ValueError(f"{where}: needs exactly one {start} ... {end} pair, each on a line of its own")
    return lines[: hits[0] + 1] + block + lines[hits[1] :]


def write_boxes(
    root: Path,
    records: dict[str, dict],
    others: V.Others,
    headlines: dict[str, tuple[Headline, ...]],
    folder: Path,
    notebooks: dict[str, tuple[str, str]] = NOTEBOOKS,
) -> dict[Path, tuple[str, str]]:
    """{file: (old text, new text)} for every notebook source and executed notebook whose verdict box would change.

    A box is prose: rewriting it in the executed notebook too changes no code and no output, so nothing is re-run.
    """
    boxes = {notebooks[nb][0]: verdict_box(nb, records, others, group, folder) for nb, group in headlines.items()}
    return rewrite_boxes(root, boxes)


def check_box(nb: str, checks: dict[str, dict], folder: Path) -> str:
    """The Markdown of notebook ``nb``'s box of exact checks (:class:`rope_lib.companion.verdicts.CheckBook`): its
    tier counts, then one bullet per check (tier, claim, source, ours against the source's number), every value from
    the records; lines wrapped at :data:`BOX_WIDTH`."""
    recs = [r for r in checks.values() if r["notebook"] == nb]
    if not recs:
        raise ValueError(f"notebook {nb}: no exact checks in {folder}")
    counts = ", ".join(f"{n} {t}" for t in V.CHECK_TIERS if (n := sum(r["stated"] == t for r in recs)))
    head = (
        f"**Verdicts** (generated by `make readme` from `{_relative(folder)}{nb}.json`). This notebook checks "
        f"{len(recs)} claims of its sources exactly: each is computed here and asserted, a derivation or a number, "
        f"with no training and so no seeds. {counts}:"
    )
    lines = textwrap.wrap(head, BOX_WIDTH, break_long_words=False, break_on_hyphens=False) + [""]
    for r in recs:
        if r["expected"] is None:
            ours = "holds" if r["ours"] else "does not hold"
        else:
            within = f" (within {r['tolerance']:.3g})" if r["tolerance"] else ""
            ours = f"ours {r['ours']:.6g}, expected {r['expected']:.6g}{within}"
        bullet = f"- **{r['stated']}**: {md(r['claim'])} ({md(r['source'])}): {md(r['quantity'])}: {ours}."
        lines += textwrap.wrap(
            bullet, BOX_WIDTH, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
        )
    return "\n".join(lines)


def write_check_boxes(
    root: Path, checks: dict[str, dict], folder: Path, notebooks: dict[str, tuple[str, str]] = CHECKED
) -> dict[Path, tuple[str, str]]:
    """As :func:`write_boxes`, for the notebooks whose claims are exact checks (:data:`CHECKED`)."""
    return rewrite_boxes(root, {stem: check_box(nb, checks, folder) for nb, (stem, _) in notebooks.items()})


def rewrite_boxes(root: Path, boxes: dict[str, str]) -> dict[Path, tuple[str, str]]:
    """{file: (old text, new text)} for every source ``notebooks/<stem>.py`` and executed notebook whose text between
    the box markers differs from ``boxes[stem]`` (Markdown)."""
    changed = {}
    for stem, text in boxes.items():
        box = text.split("\n")
        source = root / "notebooks" / f"{stem}.py"
        old = source.read_text(encoding="utf-8")
        commented = [f"# {line}" if line else "#" for line in box]
        new = "\n".join(_replace_between(old.split("\n"), f"# {BOX_START}", f"# {BOX_END}", commented, str(source)))
        if new != old:
            changed[source] = (old, new)
        executed = root / "notebooks" / "executed" / f"{stem}.ipynb"
        if not executed.is_file():
            continue
        import nbformat  # only where an executed notebook is rewritten

        old = executed.read_text(encoding="utf-8")
        notebook = nbformat.reads(old, as_version=4)
        cells = [c for c in notebook.cells if c.cell_type == "markdown" and BOX_START in c.source]
        if len(cells) != 1:
            raise ValueError(f"{executed}: needs exactly one Markdown cell with {BOX_START}: run `make`")
        cells[0].source = "\n".join(
            _replace_between(cells[0].source.split("\n"), BOX_START, BOX_END, box, str(executed))
        )
        new = nbformat.writes(notebook) + "\n"
        if new != old:
            changed[executed] = (old, new)
    return changed


def checks_block(checks: dict[str, dict], notebooks: dict[str, tuple[str, str]] = CHECKED) -> str:
    """The README's ``checks`` block: per notebook of exact checks, how many of them reproduce, and every one that
    does not, with its claim and source."""
    lines = ["| notebook | exact checks | reproduced | not reproduced |", "|---|---|---|---|"]
    for nb in notebooks:
        recs = [r for r in checks.values() if r["notebook"] == nb]
        if not recs:
            raise ValueError(f"notebook {nb}: no exact checks recorded (results/smoke/checks/{nb}.json): run `make`")
        n_ok = sum(r["tier"] == "reproduced" for r in recs)
        lines.append(f"| {_notebook_title(nb, notebooks)} | {len(recs)} | {n_ok} | {len(recs) - n_ok} |")
    failed = [r for r in checks.values() if r["tier"] != "reproduced"]
    lines += ["", f"Checks that do not reproduce ({len(failed)}):" if failed else "Every exact check reproduces."]
    lines += [f"- `{r['id']}` {md(r['claim'])} ({md(r['source'])}): {r['tier']}" for r in failed]
    return "\n".join(lines) + "\n"


# The leaderboard's sources, by a row's method (the results file's ``method``): where each method was published.
LEADERBOARD_SOURCES: dict[str, str] = {
    "Baseline": "RoPE (Su et al., arXiv:2104.09864)",
    "PI": "arXiv:2306.15595",
    "NTK-aware": "bloc97 (r/LocalLLaMA, 2023)",
    "NTK-old": "Su, kexue.fm/archives/9706",
    "NTK-fixed": "Su, kexue.fm/archives/9706",
    "NTK-mixed": "Su, kexue.fm/archives/9706",
    "NTK-by-parts": "YaRN, arXiv:2309.00071 §3.2",
    "YaRN": "arXiv:2309.00071",
    "YaRN (t = 1)": "YaRN without its temperature (ours)",
    "Dynamic NTK": "emozilla (r/LocalLLaMA, 2023); YaRN §3.3",
    "Dynamic YaRN": "YaRN, arXiv:2309.00071 §3.3",
    "ReRoPE": "Su, kexue.fm/archives/9708",
    "Leaky ReRoPE": "Su, kexue.fm/archives/9708",
    "p-RoPE (p = 0.75)": "arXiv:2410.06205",
    "HoPE": "arXiv:2410.21216",
    "Resonance RoPE": "arXiv:2403.00071",
    "NoPE": "no position encoding",
    "iRoPE": "Llama 4; arXiv:2501.18795",
    "SSMax": "arXiv:2501.19399",
    "VO-RoPE (QKVO)": "Su, kexue.fm/archives/10862",
    "VO-RoPE (VO only)": "Su, kexue.fm/archives/10862",
    "Llama 4": "Llama 4 (transformers 5.23.0)",
    "DCA": "arXiv:2402.17463; Qwen2.5-1M, arXiv:2501.15383",
    "PoSE (YaRN s = 4)": "arXiv:2309.10400",
    "window fine-tune (YaRN s = 4)": "PoSE's control (ours)",
}


def leaderboard_block(results: Path) -> str:
    """The README's ``leaderboard`` block: notebook 14's leaderboard, sorted by accuracy at 8x, each row with its
    source and its accuracy at L and every test length (mean ± sd over the training seeds), from the smoke profile's
    results files: ``after_su.json`` (the methods after Su), ``extrapolation.json`` (notebook 04's methods) and
    ``rerope.json`` (notebook 05's ReRoPE and Leaky ReRoPE), all scored on the same windows. Shown: every method on
    the plain model, Baseline with log n (test time and trained) and the rest; the other log-n rows are in the
    notebook."""
    folder = results / "smoke"
    data = {}
    for name in ("after_su", "extrapolation", "rerope"):
        path = folder / f"{name}.json"
        if not path.is_file():
            raise ValueError(f"{path} does not exist: run `make after-su` and `make` (notebook 14's leaderboard)")
        data[name] = Results(json.loads(path.read_text(encoding="utf-8")))
    ex, rerope, after = data["extrapolation"], data["rerope"], data["after_su"]
    board = Leaderboard(
        [(ex, ex.rows, None), (rerope, rerope.group("main"), ("ReRoPE", "Leaky ReRoPE")), (after, after.rows, None)]
    )
    mults = [1, *after.mults]
    # every method on the plain model, Baseline with log n too; the other log-n rows are in the notebook
    shown = [n for n in board if board.row(n).get("log_n", "none") == "none" or board.row(n)["method"] == "Baseline"]
    unknown = sorted({board.row(n).get("method") for n in shown} - set(LEADERBOARD_SOURCES))
    if unknown:
        raise ValueError(f"no source for the leaderboard's methods {unknown}: add them to LEADERBOARD_SOURCES")
    shown.sort(key=lambda n: -board.acc_by_seed(n, 8).mean())
    head = ["#", "row", "source", "new", *(("L" if m == 1 else f"{m}L") for m in mults)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, name in enumerate(shown, 1):
        row = board.row(name)
        cells = [str(rank), cell(name), cell(LEADERBOARD_SOURCES[row["method"]]), "new" if row.get("new") else ""]
        lines.append("| " + " | ".join([*cells, *(board.cell(name, m) for m in mults)]) + " |")
    note = (
        f"Next-byte accuracy (%) on the non-repeated windows, mean ± sd over {len(after.runs)} training seeds, trained "
        f"at L = {after.eval['train_length']} bytes, no fine-tuning (PoSE and its control: "
        f"100 steps in windows of L); sorted by 8x. From `{_relative(folder)}after_su.json`, `extrapolation.json` "
        "and `rerope.json`."
    )
    return note + "\n\n" + "\n".join(lines) + "\n"


def render(
    text: str,
    root: Path | None = None,
    headlines: dict[str, tuple[Headline, ...]] = HEADLINES,
    profiles: tuple[Profile, ...] = PROFILES,
) -> str:
    """``text`` (a README) with every generated block rewritten from the records under ``root/results``."""
    results = (repo_root() if root is None else Path(root)) / "results"
    ref = profiles[0]
    folder = results / ref.name / "verdicts"
    records, others = _profile_records(results, ref)
    if records is None:
        raise ValueError(f"no verdict records (*.json) in {folder}")
    if not others:
        raise ValueError(f"no other machine's verdict records (*.json) in {results / ref.name}/*-machine/verdicts")
    text = replace_block(text, "verdicts", V.summary(records, others))
    if _marker("leaderboard")[0] in text:  # as the checks block: a test's README may not have it
        text = replace_block(text, "leaderboard", leaderboard_block(results))
    if _marker("checks")[0] in text:  # a README without the block (a test's) has no exact checks to show
        text = replace_block(text, "checks", checks_block(V.load_checks(results / ref.name / "checks")))
    text = replace_block(text, "findings", findings_block(records, others, headlines, folder))
    text = replace_block(text, "scale", scale_block(results, headlines, profiles))
    return replace_block(text, "speed", speed_block(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rope_lib.companion.readme",
        description="Rewrite the README's generated blocks (verdicts, findings, scale, speed) and the notebooks' "
        "verdict boxes from results/.",
    )
    parser.add_argument("--readme", type=Path, default=None, help="the README to rewrite (default: the checkout's)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 with a diff if it would change")
    args = parser.parse_args(argv)
    root = repo_root()
    path = args.readme if args.readme is not None else root / "README.md"
    old = path.read_text(encoding="utf-8")
    new = render(old)
    changed = {path: (old, new)} if new != old else {}
    folder = root / "results" / PROFILES[0].name / "verdicts"
    records, others = _profile_records(root / "results", PROFILES[0])
    changed.update(write_boxes(root, records or {}, others, HEADLINES, folder))
    checks_folder = root / "results" / PROFILES[0].name / "checks"
    changed.update(write_check_boxes(root, V.load_checks(checks_folder), checks_folder))
    if args.check:
        if not changed:
            return 0
        for file, (before, after) in changed.items():
            diff = difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                f"{file} (committed)",
                f"{file} (generated)",
            )
            sys.stdout.writelines(diff)
        names = ", ".join(_display(f, root) for f in changed)
        print(f"{names}: differ from the records: run `make readme` (python -m rope_lib.companion.readme)")
        return 1
    for file, (_, after) in changed.items():
        atomic_write(file, lambda tmp, text=after: tmp.write_text(text, encoding="utf-8"))
        print(f"{_display(file, root)}: rewritten")
    if not changed:
        print("README.md and the verdict boxes: unchanged")
    return 0


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
