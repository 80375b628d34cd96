"""Gap charts: the data is the engine's figures, and the PNG draws exactly that data.

No image snapshots: the tests read what was handed to matplotlib (bar heights, line
data, labels) and check the PNG's signature, size and that it is not blank.
"""

from __future__ import annotations

import dataclasses
import io
import math
import struct
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from matplotlib.image import imread
from matplotlib.patches import Rectangle

from sop_core import charts
from sop_core import formatting as fmt
from sop_core.charts import GapHistory, GapSeries, SnapshotMark, Step, StepKind
from sop_core.filters import parse_filters, resolve
from sop_core.gaps import GapQuery, GapResult, compute_gap, gap_with_pvm, price_volume_mix
from sop_core.loading import PlanningTable, normalise
from sop_core.periods import month
from tests.readback import read_back

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def table(rows: list[dict[str, object]]) -> PlanningTable:
    names = list(rows[0])
    return normalise(pa.table({n: [r.get(n) for r in rows] for n in names}), source="test")


def sample_result(sample_table: PlanningTable, text: str = "region=EU category=Snacks"
                  ) -> tuple[GapQuery, GapResult]:
    query = resolve(parse_filters(text), sample_table)
    return query, gap_with_pvm(sample_table, query, explain=True)[0]


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk comes first
    return width, height


def pixels(png: bytes) -> np.ndarray:
    return imread(io.BytesIO(png), format="png")[:, :, :3]


def share_of(image: np.ndarray, colour: str) -> float:
    """Share of pixels of exactly this colour (bars are drawn flat)."""
    rgb = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return float(np.all(np.abs(image - rgb) < 2 / 255, axis=2).mean())


def bars_drawn(figure) -> list[Rectangle]:  # type: ignore[no-untyped-def]
    [axes] = figure.axes
    return [p for p in axes.patches if isinstance(p, Rectangle)]


def many_members(gaps: list[float]) -> PlanningTable:
    """One month, one member per gap (plan 1,000 each), as of that month."""
    return table([{"period": "2026-01", "customer": f"C{i:02d}", "plan": 1000.0,
                   "forecast": 1000.0, "actual": 1000.0 + g} for i, g in enumerate(gaps)])


# --------------------------------------------------------------------------- bridge data

def test_bridge_steps_go_from_plan_to_latest_view_through_each_driver(
        sample_table: PlanningTable) -> None:
    _, result = sample_result(sample_table)
    steps = charts.bridge_steps(result)
    assert [s.label for s in steps] == ["Plan", "E-commerce", "Retail", "Wholesale",
                                        "Latest view"]
    assert [s.kind for s in steps] == [StepKind.TOTAL, *[StepKind.DELTA] * 3, StepKind.TOTAL]
    assert steps[0].value == result.plan and steps[-1].value == result.outlook
    assert [s.value for s in steps[1:-1]] == [d.gap for d in result.drivers]
    assert round(math.fsum(s.value for s in steps[1:-1]), 2) == round(result.gap, 2)
    assert round(steps[0].value + math.fsum(s.value for s in steps[1:-1]), 2) == \
        round(result.outlook, 2)


def test_small_members_are_grouped_as_other_and_the_bridge_still_closes() -> None:
    gaps = [-300.0, -120.5, 80.25, -50.0, -40.0, 30.0, -20.0, -10.0, 5.0, -2.0, -1.0, 0.5]
    data = many_members(gaps)
    result = compute_gap(data, GapQuery(by="customer"))
    steps = charts.bridge_steps(result, max_bars=8)
    deltas = steps[1:-1]
    assert len(deltas) == 8
    # The seven largest movers by |gap|, in the engine's order (direction first)…
    largest = sorted(result.drivers, key=lambda d: -abs(d.gap))[:7]
    assert [s.label for s in deltas[:-1]] == [d.member for d in result.drivers
                                              if d in largest]
    # …and the five others as one bar whose value is their sum, to the cent.
    other = deltas[-1]
    assert (other.label, other.members) == ("Other (5)", 5)
    assert round(other.value, 2) == round(5.0 - 2.0 - 1.0 + 0.5 - 10.0, 2)
    assert round(result.plan + math.fsum(s.value for s in deltas), 2) == round(result.outlook, 2)
    assert round(math.fsum(s.value for s in deltas), 2) == round(result.gap, 2) == \
        round(sum(gaps), 2)


def test_members_that_barely_move_are_grouped_only_when_there_are_several() -> None:
    two_tiny = compute_gap(many_members([-500.0, -300.0, 200.0, 1.0, -2.0]),
                           GapQuery(by="customer"))
    labels = [s.label for s in charts.bridge_steps(two_tiny)]
    assert labels == ["Plan", "C00", "C01", "C02", "Other (2)", "Latest view"]
    one_tiny = compute_gap(many_members([-500.0, -300.0, 200.0, 1.0]), GapQuery(by="customer"))
    assert [s.label for s in charts.bridge_steps(one_tiny)] == [
        "Plan", "C00", "C01", "C02", "C03", "Latest view"]


def test_many_equal_members_show_the_first_seven_and_group_the_rest() -> None:
    result = compute_gap(many_members([-10.0] * 60), GapQuery(by="customer"))
    steps = charts.bridge_steps(result)
    assert [s.label for s in steps[1:-1]] == [f"C{i:02d}" for i in range(7)] + ["Other (53)"]
    assert round(steps[-2].value, 2) == -530.0


def test_without_drivers_the_bridge_is_plan_gap_latest_view(
        sample_table: PlanningTable) -> None:
    query = resolve(parse_filters("region=EU"), sample_table)
    result = compute_gap(sample_table, query)
    steps = charts.bridge_steps(result)
    assert [(s.label, s.value) for s in steps] == [
        ("Plan", result.plan), ("Gap", result.gap), ("Latest view", result.outlook)]


def test_bars_start_where_the_previous_step_left_off() -> None:
    steps = [Step("Plan", 1000.0, StepKind.TOTAL), Step("A", -300.0, StepKind.DELTA),
             Step("B", 50.0, StepKind.DELTA), Step("C", 0.2, StepKind.DELTA),
             Step("Latest view", 750.2, StepKind.TOTAL)]
    bars = charts.bridge_bars(steps)
    assert [(b.bottom, b.height) for b in bars] == [
        (0.0, 1000.0), (1000.0, -300.0), (700.0, 50.0), (750.0, 0.2), (0.0, 750.2)]
    assert [b.colour for b in bars] == [charts.TOTAL, charts.DECREASE, charts.INCREASE,
                                        charts.MUTED, charts.TOTAL]
    assert [b.text for b in bars] == ["1.00K", "-300", "+50", "0", "750"]
    assert bars[-2].top == pytest.approx(bars[-1].top)


def test_pvm_steps_split_the_revenue_gap(sample_table: PlanningTable) -> None:
    query, result = sample_result(sample_table, "region=EU")
    pvm = price_volume_mix(sample_table, query)
    assert pvm is not None
    steps = charts.pvm_steps(pvm, result.plan, result.outlook)
    assert [(s.label, s.value) for s in steps] == [
        ("Plan", result.plan), ("Price", pvm.price), ("Volume", pvm.volume),
        ("Mix", pvm.mix), ("Latest view", result.outlook)]
    assert round(result.plan + pvm.price + pvm.volume + pvm.mix, 2) == round(result.outlook, 2)


# --------------------------------------------------------------------------- trend data

def test_trend_series_adds_up_to_the_engines_plan_and_latest_view(
        sample_table: PlanningTable) -> None:
    query, _ = sample_result(sample_table)
    result = compute_gap(sample_table, query)
    trend = charts.trend_series(sample_table, query)
    assert trend.months == tuple(range(month(2026, 1), month(2026, 12) + 1))
    assert trend.as_of == sample_table.as_of == month(2026, 8)
    assert round(math.fsum(trend.plan), 2) == round(result.plan, 2)
    assert round(math.fsum(trend.outlook), 2) == round(result.outlook, 2)
    assert round(trend.gap, 2) == round(result.gap, 2)
    closed = [m <= trend.as_of for m in trend.months]
    assert all((a is not None) == c for a, c in zip(trend.actual, closed, strict=True))
    assert all(f is not None for f in trend.forecast)
    for i, is_closed in enumerate(closed):  # the outlook is the actual, then the forecast
        assert trend.outlook[i] == pytest.approx(
            trend.actual[i] if is_closed else trend.forecast[i])


def test_trend_of_a_small_table_by_hand() -> None:
    data = table([
        {"period": "2026-01", "region": "EU", "plan": 100.0, "forecast": 90.0, "actual": 95.0},
        {"period": "2026-01", "region": "NA", "plan": 50.0, "forecast": 50.0, "actual": 60.0},
        {"period": "2026-02", "region": "EU", "plan": 100.0, "forecast": 110.0, "actual": None},
        {"period": "2026-03", "region": "NA", "plan": 50.0, "forecast": None, "actual": None},
    ])
    trend = charts.trend_series(data, GapQuery(horizon="2026-Q1"))
    assert trend.plan == (150.0, 100.0, 50.0)
    assert trend.actual == (155.0, None, None)
    assert trend.forecast == (140.0, 110.0, None)
    assert trend.outlook == (155.0, 110.0, 0.0)  # a missing forecast counts as 0
    lines = charts.trend_lines(trend)
    assert np.isnan(lines.actual[1:]).all() and lines.actual[0] == 155.0
    assert lines.forecast[0] == 155.0  # the forecast line starts at the last actual
    assert lines.forecast[1] == 110.0 and np.isnan(lines.forecast[2])


# --------------------------------------------------------------------------- drawing

def test_the_bridge_png_draws_exactly_the_steps(sample_table: PlanningTable) -> None:
    _, result = sample_result(sample_table)
    steps = charts.bridge_steps(result)
    figure = charts.bridge_figure(steps, "Gap -12.5%", "region=EU · category=Snacks")
    drawn = bars_drawn(figure)
    bars = charts.bridge_bars(steps)
    assert [(r.get_y(), r.get_height()) for r in drawn] == [(b.bottom, b.height) for b in bars]
    # The heights handed to matplotlib are the engine's figures.
    assert [r.get_height() for r in drawn] == [
        result.plan, *[d.gap for d in result.drivers], result.outlook]
    [axes] = figure.axes
    labels = [t.get_text() for t in axes.texts]
    assert labels == ["3.70M", "-371K", "-83.1K", "-9.79K", "3.24M"]
    assert [t.get_text() for t in axes.get_xticklabels()] == [
        "Plan", "E-commerce", "Retail", "Wholesale", "Latest view"]
    assert figure.get_suptitle() == "Gap -12.5%"

    png = charts.render_bridge(steps, "Gap -12.5%", "region=EU · category=Snacks")
    assert png_size(png) == charts.BRIDGE_SIZE == (1200, 675)
    image = pixels(png)
    assert image.shape == (675, 1200, 3)
    assert (image < 0.9).any(axis=2).mean() > 0.05  # not blank
    assert share_of(image, charts.DECREASE) > 0.01  # the red contributions are there
    assert share_of(image, charts.TOTAL) > 0.01
    assert share_of(image, charts.INCREASE) == 0.0  # nothing pushes the view up


def test_increases_are_green_and_the_axis_keeps_zero_when_the_gap_is_large() -> None:
    steps = [Step("Plan", 100.0, StepKind.TOTAL), Step("Up", 300.0, StepKind.DELTA),
             Step("Latest view", 400.0, StepKind.TOTAL)]
    figure = charts.bridge_figure(steps, "Gap +300.0%", "all data")
    [axes] = figure.axes
    assert axes.get_ylim()[0] == 0.0
    assert figure.get_supxlabel() == ""  # no note that the axis is cut
    assert not [line for line in axes.lines if line.get_gid() == charts.AXIS_BREAK]
    png = charts.render_bridge(steps, "Gap +300.0%", "all data")
    assert share_of(pixels(png), charts.INCREASE) > 0.01
    assert share_of(pixels(png), charts.DECREASE) == 0.0


def test_a_small_gap_cuts_the_axis_and_says_so(sample_table: PlanningTable) -> None:
    _, result = sample_result(sample_table)
    figure = charts.bridge_figure(charts.bridge_steps(result), "t", "s", note="snapshot #1")
    [axes] = figure.axes
    low, high = axes.get_ylim()
    assert 0 < low < result.outlook and high > result.plan
    assert figure.get_supxlabel() == (f"snapshot #1  ·  The axis is broken: it starts at "
                                      f"{fmt.amount(low)}, not zero.")
    marks = [line for line in axes.lines if line.get_gid() == charts.AXIS_BREAK]
    assert len(marks) == 2 + 2  # "//" on the axis line, a slash through plan and latest view
    figure.canvas.draw()
    ticks = [t.get_text() for t in axes.get_yticklabels()]
    assert len(set(ticks)) == len(ticks) and all(t.endswith("M") for t in ticks)


def tick_values(axes) -> list[tuple[float, str]]:
    """The y ticks as drawn: (position, label) of each one inside the axis range."""
    axes.figure.canvas.draw()
    low, high = axes.get_ylim()
    return [(tick.get_loc(), tick.label1.get_text()) for tick in axes.yaxis.get_major_ticks()
            if low <= tick.get_loc() <= high]


@pytest.mark.parametrize("number_style", [fmt.NumberStyle(), fmt.NumberStyle(locale="de_DE")])
def test_tick_labels_read_back_as_the_values_they_sit_at(number_style) -> None:
    # Ticks 2.5K apart once read 95K, 98K, 100K, 102K, 105K: each label must be its value.
    steps = [Step("Plan", 100_000.0, StepKind.TOTAL), Step("A", -7_500.0, StepKind.DELTA),
             Step("Latest view", 92_500.0, StepKind.TOTAL)]
    with fmt.use(number_style):
        figure = charts.bridge_figure(steps, "t", "s")
        [axes] = figure.axes
        axes.set_ylim(92_500, 107_500)
        ticks = tick_values(axes)
    assert [position for position, _ in ticks] == [92_500 + 2_500 * i for i in range(7)]
    for position, label in ticks:
        assert read_back(label, number_style.locale) == pytest.approx(position), label
    assert ticks[1][1] == ("95.0K" if number_style.locale == "en_US" else "95,0\xa0Tsd.")


def test_a_large_plan_with_a_small_gap_is_drawn_broken_with_ticks_at_their_values() -> None:
    steps = [Step("Plan", 210_000.0, StepKind.TOTAL), Step("A", 20_000.0, StepKind.DELTA),
             Step("Latest view", 230_000.0, StepKind.TOTAL)]
    figure = charts.bridge_figure(steps, "t", "s")
    [axes] = figure.axes
    low = axes.get_ylim()[0]
    assert low > 0
    assert [line for line in axes.lines if line.get_gid() == charts.AXIS_BREAK]
    assert figure.get_supxlabel() == (f"The axis is broken: it starts at {fmt.amount(low)}, "
                                      "not zero.")
    for position, label in tick_values(axes):
        assert read_back(label, "en_US") == pytest.approx(position)


def test_negative_levels_and_an_all_zero_bridge_still_draw() -> None:
    losses = [Step("Plan", -500.0, StepKind.TOTAL), Step("A", -80.0, StepKind.DELTA),
              Step("Latest view", -580.0, StepKind.TOTAL)]
    assert png_size(charts.render_bridge(losses, "Gap +16.0%", "margin")) == (1200, 675)
    nothing = [Step("Plan", 0.0, StepKind.TOTAL), Step("Gap", 0.0, StepKind.DELTA),
               Step("Latest view", 0.0, StepKind.TOTAL)]
    assert png_size(charts.render_bridge(nothing, "Gap n/a", "empty")) == (1200, 675)


def test_long_or_odd_labels_are_wrapped_and_drawn_as_text() -> None:
    steps = [Step("Plan", 1e6, StepKind.TOTAL),
             *[Step(f"Customer $ {i} with a very long name indeed 東京", -1e4, StepKind.DELTA)
               for i in range(8)],
             Step("Latest view", 1e6 - 8e4, StepKind.TOTAL)]
    figure = charts.bridge_figure(steps, "Gap $5 & <b>", "x=$y$")
    [axes] = figure.axes
    labels = [t.get_text() for t in axes.get_xticklabels()][1:-1]
    for label in labels:
        lines = label.split("\n")
        assert len(lines) <= charts.LABEL_LINES and lines[-1].endswith("…")
        assert r"\$" in label  # no mathtext from data
    # The default font has no CJK glyphs: replaced, so nothing warns (warnings are errors).
    assert charts.plain("東京 $1") == r"?? \$1"
    assert png_size(charts.render_bridge(steps, "Gap $5", "x=$y$")) == (1200, 675)


def test_the_trend_png_draws_the_series(sample_table: PlanningTable) -> None:
    query, _ = sample_result(sample_table)
    trend = charts.trend_series(sample_table, query)
    figure = charts.trend_figure(trend, "Revenue by month", "region=EU")
    [axes] = figure.axes
    drawn = {line.get_label(): np.asarray(line.get_ydata(), dtype=float)
             for line in axes.lines if not line.get_label().startswith("_")}
    lines = charts.trend_lines(trend)
    assert set(drawn) == {"Plan", "Actual", "Forecast"}
    np.testing.assert_array_equal(drawn["Plan"], trend.plan)
    np.testing.assert_array_equal(drawn["Actual"], lines.actual)
    np.testing.assert_array_equal(drawn["Forecast"], lines.forecast)
    assert [c.get_label() for c in axes.collections] == ["Gap: latest view below plan"]
    assert any(t.get_text() == "as of 2026-08" for t in axes.texts)
    png = charts.render_trend(trend, "Revenue by month", "region=EU")
    assert png_size(png) == charts.TREND_SIZE
    assert (pixels(png) < 0.9).any(axis=2).mean() > 0.02


def history() -> GapHistory:
    marks = tuple(SnapshotMark(i, month(2026, i), datetime(2026, i, 5, tzinfo=UTC))
                  for i in range(1, 5))
    return GapHistory(marks, (
        GapSeries(7, "region=EU · category=Snacks · revenue fy", (None, -500.0, -464.0, -276.0),
                  (None, -13.5, -12.5, -7.4)),
        GapSeries(9, "region=APAC · revenue fy", (200.0, 230.0, 237.0, 250.0),
                  (8.0, 9.5, 10.0, 10.6)),
    ), threshold_pct=5.0, more=3)


def test_end_labels_of_close_lines_are_moved_apart() -> None:
    assert charts._spread([1.0, 1.1, 5.0], 1.0) == pytest.approx([0.55, 1.55, 5.0])
    assert charts._spread([3.0, 2.9, 3.0], 1.0) == pytest.approx([2.9667, 1.9667, 3.9667],
                                                                 abs=1e-4)
    assert charts._spread([0.0, 10.0], 1.0) == [0.0, 10.0]  # far apart: left alone
    assert charts._spread([], 1.0) == []


def test_the_movement_png_draws_each_gap_across_snapshots() -> None:
    figure = charts.movement_figure(history(), "How the open gaps moved", "C1")
    [axes] = figure.axes
    drawn = [np.asarray(line.get_ydata(), dtype=float) for line in axes.lines
             if not line.get_label().startswith("_")]
    np.testing.assert_array_equal(drawn[0], [np.nan, -13.5, -12.5, -7.4])
    np.testing.assert_array_equal(drawn[1], [8.0, 9.5, 10.0, 10.6])
    assert [t.get_text() for t in axes.get_xticklabels()] == [
        "#1 · 5 Jan\n2026-01", "#2 · 5 Feb\n2026-02", "#3 · 5 Mar\n2026-03",
        "#4 · 5 Apr\n2026-04"]
    assert {t.get_text() for t in axes.texts} == {"-7.4%", "+10.6%"}
    assert [t.xy for t in axes.texts] == [(3, -7.4), (3, 10.6)]  # at the lines' last points
    assert "3 smaller open gaps" in figure.get_supxlabel()
    png = charts.render_movement(history(), "How the open gaps moved", "C1")
    assert png_size(png) == charts.MOVEMENT_SIZE == (1000, 500)
    assert (pixels(png) < 0.9).any(axis=2).mean() > 0.02


# --------------------------------------------------------------------------- alt text

def test_alt_text_says_the_numbers(sample_table: PlanningTable) -> None:
    _, result = sample_result(sample_table)
    text = charts.bridge_alt_text(charts.bridge_steps(result), "Gap bridge")
    assert text == ("Gap bridge. Bar chart, left to right: Plan 3.70M; E-commerce -371K; "
                    "Retail -83.1K; Wholesale -9.79K; Latest view 3.24M.")
    assert charts.movement_alt_text(history(), "Moves") == (
        "Moves. Gap % across snapshots #1, #2, #3, #4: region=EU · category=Snacks · "
        "revenue fy: n/a → -13.5% → -12.5% → -7.4%; region=APAC · revenue fy: +8.0% → "
        "+9.5% → +10.0% → +10.6%; and 3 more.")
    query, _ = sample_result(sample_table)
    trend = charts.trend_series(sample_table, query)
    text = charts.trend_alt_text(trend, "Trend")
    assert text.startswith(f"Trend. Line chart by month: 2026-01 plan "
                           f"{fmt.amount(trend.plan[0])}, actual {fmt.amount(trend.outlook[0])}")
    assert f"2026-12 plan {fmt.amount(trend.plan[-1])}, forecast" in text
    long = dataclasses.replace(history(), series=history().series * 40)
    assert len(charts.movement_alt_text(long, "Moves")) == charts.ALT_TEXT_MAX


def test_a_bridge_needs_room_for_two_contributions(sample_table: PlanningTable) -> None:
    _, result = sample_result(sample_table)
    with pytest.raises(ValueError, match="at least two"):
        charts.bridge_steps(result, max_bars=1)


def test_gap_percent_ticks_read_back_as_their_values() -> None:
    small = dataclasses.replace(history(), threshold_pct=0.5, series=(
        GapSeries(7, "region=EU", (-40.0, -30.0, -25.0, -20.0), (-0.6, -0.45, -0.4, -0.3)),))
    figure = charts.movement_figure(small, "Moves", "s")
    [axes] = figure.axes
    figure.canvas.draw()
    low, high = axes.get_ylim()
    ticks = [(t.get_loc(), t.label1.get_text()) for t in axes.yaxis.get_major_ticks()
             if low <= t.get_loc() <= high]
    assert len(ticks) >= 4
    assert any(round(position * 10) != position * 10 for position, _ in ticks)  # 0.25 steps
    for position, label in ticks:
        assert float(label.rstrip("%")) == pytest.approx(position), label


def test_an_all_negative_bridge_is_broken_at_the_top() -> None:
    steps = [Step("Plan", -210_000.0, StepKind.TOTAL), Step("A", -20_000.0, StepKind.DELTA),
             Step("Latest view", -230_000.0, StepKind.TOTAL)]
    figure = charts.bridge_figure(steps, "t", "s")
    [axes] = figure.axes
    high = axes.get_ylim()[1]
    assert high < 0
    assert figure.get_supxlabel() == f"The axis is broken: it ends at {fmt.amount(high)}, not zero."
    slashes = [line for line in axes.lines if line.get_gid() == charts.AXIS_BREAK
               and line.get_transform() is not axes.transAxes]
    assert len(slashes) == 2 and all(min(line.get_ydata()) > -210_000 for line in slashes)
