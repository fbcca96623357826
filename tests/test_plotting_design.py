"""The figure design helpers of rope_lib.companion.plotting: one colour per method, legends outside, gap plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from rope_lib.companion import plotting as P  # noqa: E402
from rope_lib.companion.experiments import harness  # noqa: E402


def test_every_method_of_the_experiments_has_its_own_colour():
    assert set(harness.METHODS) <= set(P.METHOD_COLOURS), set(harness.METHODS) - set(P.METHOD_COLOURS)
    shown_together = [m for m in P.METHOD_COLOURS if m != "Direct"]  # Direct is plain RoPE: the Baseline's colour
    colours = [P.METHOD_COLOURS[m] for m in shown_together]
    assert len(set(colours)) == len(colours), "two methods share a colour"


def test_variants_keep_their_methods_colour_and_unknown_names_are_refused():
    assert (
        P.method_colour("NTK-aware-log n-dagger") == P.method_colour("NTK-aware-log n") == P.method_colour("NTK-aware")
    )
    assert P.method_colour("YaRN (s = 8)") != P.method_colour("YaRN")  # its own row in notebook 08b
    with pytest.raises(ValueError, match="name: no colour for method 'NTK-new'; known methods: \\['Baseline'"):
        P.method_colour("NTK-new")


def _record(mean, tier, by_seed=(0.5, 1.0, 1.5), threshold=0.0):
    return {
        "claim": f"c{mean}",
        "mean": mean,
        "seed_lo": mean - 1,
        "seed_hi": mean + 1,
        "by_seed": list(by_seed),
        "threshold": threshold,
        "tier": tier,
    }


def test_gap_plot_draws_each_claim_against_its_threshold():
    fig, ax = plt.subplots()
    P.gap_plot(ax, [_record(2.0, "reproduced"), _record(-0.5, "not reproduced")], labels=["first", "second"])
    ticks = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks())}
    assert ticks["first"] > ticks["second"]  # top to bottom in the order given
    assert [a.get_text() for a in ax.texts] == ["reproduced", "not reproduced"]
    means = [line for line in ax.lines if line.get_marker() == "D"]
    assert [tuple(m.get_xdata()) for m in means] == [(2.0,), (-0.5,)]
    assert means[0].get_color() == P.TIER_COLOURS["reproduced"]
    assert any(tuple(line.get_xdata()) == (0.0, 0.0) for line in ax.lines)  # the threshold line
    plt.close(fig)
    fig, ax = plt.subplots()
    P.gap_plot(ax, [{**_record(1.0, "consistent"), "stated": "not decided"}])  # undecided across machines: say so
    assert [a.get_text() for a in ax.texts] == ["consistent here (not decided)"]
    plt.close(fig)


@pytest.mark.parametrize(
    "records, labels, match",
    [
        ([], None, "records: at least one"),
        ([_record(1.0, "reproduced")], ["a", "b"], "labels: one per record"),
        ([_record(1.0, "reproduced"), _record(1.0, "reproduced", threshold=1.0)], None, "one threshold"),
    ],
)
def test_gap_plot_refuses_bad_input(records, labels, match):
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=match):
        P.gap_plot(ax, records, labels)
    plt.close(fig)


def test_legend_outside_sits_right_of_the_axes_at_9_pt():
    fig, ax = plt.subplots()
    ax.plot([0, 1], label="a")
    legend = P.legend_outside(ax)
    fig.canvas.draw()
    assert legend.get_window_extent().x0 > ax.get_window_extent().x1
    assert all(t.get_fontsize() == 9 for t in legend.get_texts())
    plt.close(fig)
