"""Gap charts: the bridge (waterfall), the price–volume–mix bridge, the monthly trend and
the movement of open gaps across snapshots.

Two layers, so that what is drawn can be checked against the engine:

- *data* functions (:func:`bridge_steps`, :func:`pvm_steps`, :func:`trend_series`,
  :func:`bridge_bars`) turn engine results into plain values, exactly the figures of
  :mod:`sop_core.gaps`;
- *figure* functions (:func:`bridge_figure`, :func:`trend_figure`,
  :func:`movement_figure`) draw exactly those values on a matplotlib ``Figure``, and
  ``render_*`` save it as a PNG of a fixed size (:data:`BRIDGE_SIZE` …).

Matplotlib is used without pyplot: each chart is its own ``Figure`` on an Agg canvas,
no global state, no display. Rendering is serialised by a lock because parts of
matplotlib (font cache, text layout) are shared within a process and the web workers
run listeners on threads.
"""

from __future__ import annotations

import io
import math
import textwrap
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache

import numpy as np
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import Formatter, MaxNLocator

from sop_core import formatting as fmt
from sop_core.gaps import GapQuery, GapResult, PriceVolumeMix, select
from sop_core.loading import PlanningTable
from sop_core.periods import Month, format_month

# Pixel sizes are fixed (figure inches × DPI; no tight bounding box), so a Slack thread
# shows every chart at the same scale and tests can check the PNG's dimensions.
DPI = 100
BRIDGE_SIZE = (1200, 675)
TREND_SIZE = (1200, 675)
MOVEMENT_SIZE = (1000, 500)  # the digest's small chart

INCREASE = "#2e7d32"  # green: pushes the latest view up
DECREASE = "#c62828"  # red: pulls it down
TOTAL = "#546e7a"  # neutral: plan and latest view
INK = "#263238"
MUTED = "#607d8b"
GRID = "#e0e6ea"
# Series colours for the movement chart: no red or green, which mean up/down here.
SERIES = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#8d6e63", "#ad1457", "#5d4037",
          "#546e7a")

ALT_TEXT_MAX = 1000  # Slack's alt text for an uploaded image
LABEL_LINES = 3  # of a bar's label; its width follows the room each bar has
SMALL_SHARE = 0.01  # members moving less than 1 % of the largest mover are grouped…
MIN_GROUPED = 2  # …when at least this many would be (an "Other (1)" helps nobody)

_RENDER_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------
# Data: bridges
# --------------------------------------------------------------------------------------

class StepKind(StrEnum):
    TOTAL = "total"  # a level: plan, latest view (drawn from zero)
    DELTA = "delta"  # a contribution (drawn from the running level)


@dataclass(frozen=True)
class Step:
    label: str
    value: float
    kind: StepKind
    members: int = 1  # how many members a delta stands for ("Other (n)" groups several)


@dataclass(frozen=True)
class Bar:
    """A step as drawn: from ``bottom`` to ``bottom + height`` (height signed)."""

    label: str
    bottom: float
    height: float
    colour: str
    text: str  # the amount written on it

    @property
    def top(self) -> float:
        return self.bottom + self.height


def bridge_steps(result: GapResult, max_bars: int = 8) -> list[Step]:
    """Plan → each driver's contribution → latest view; the steps add up exactly.

    Drivers are the members along ``result.by`` in the engine's order (those pushing the
    gap first, largest first, then offsets). At most ``max_bars`` contribution bars:
    beyond that the smallest members (by |gap|) are grouped as "Other (n)", as are
    members moving less than 1 % of the largest mover. "Other" is the total gap minus
    the members shown, so plan + contributions = latest view whatever the rounding.
    Without drivers the bridge is plan → gap → latest view.
    """
    if max_bars < 2:
        raise ValueError("a bridge needs room for at least two contribution bars")
    steps = [Step("Plan", result.plan, StepKind.TOTAL)]
    drivers = list(result.drivers) if result.by is not None else []
    if len(drivers) < 2:
        steps.append(Step(drivers[0].member if drivers else "Gap", result.gap, StepKind.DELTA))
    else:
        ranked = sorted(range(len(drivers)), key=lambda i: -abs(drivers[i].gap))
        keep = set(ranked if len(drivers) <= max_bars else ranked[: max_bars - 1])
        largest = abs(drivers[ranked[0]].gap)
        small = {i for i in keep if abs(drivers[i].gap) < SMALL_SHARE * largest}
        if len(drivers) - len(keep) + len(small) >= MIN_GROUPED:
            keep -= small
        shown = [d for i, d in enumerate(drivers) if i in keep]
        steps += [Step(d.member, d.gap, StepKind.DELTA) for d in shown]
        grouped = len(drivers) - len(shown)
        if grouped:
            rest = result.gap - math.fsum(d.gap for d in shown)
            steps.append(Step(f"Other ({grouped})", rest, StepKind.DELTA, members=grouped))
    steps.append(Step("Latest view", result.outlook, StepKind.TOTAL))
    return steps


def pvm_steps(pvm: PriceVolumeMix, plan: float, outlook: float) -> list[Step]:
    """Plan → price → volume → mix → latest view (of the revenue metric ``pvm`` splits)."""
    return [
        Step("Plan", plan, StepKind.TOTAL),
        Step("Price", pvm.price, StepKind.DELTA),
        Step("Volume", pvm.volume, StepKind.DELTA),
        Step("Mix", pvm.mix, StepKind.DELTA),
        Step("Latest view", outlook, StepKind.TOTAL),
    ]


def bridge_bars(steps: Sequence[Step], metric: str | None = None) -> list[Bar]:
    """Where each step's bar goes: totals from zero, deltas from the running level; the
    amounts written on them in ``metric``'s unit."""
    bars: list[Bar] = []
    level = 0.0
    for step in steps:
        if step.kind == StepKind.TOTAL:
            bars.append(Bar(step.label, 0.0, step.value, TOTAL,
                            fmt.amount(step.value, metric=metric)))
            level = step.value
        else:
            colour = (MUTED if abs(step.value) < 0.5 else
                      INCREASE if step.value > 0 else DECREASE)
            bars.append(Bar(step.label, level, step.value, colour,
                            fmt.amount(step.value, signed=True, metric=metric)))
            level += step.value
    return bars


# --------------------------------------------------------------------------------------
# Data: the monthly trend
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Trend:
    """Plan, forecast and actual by month over a horizon, as the engine selects them.

    ``outlook`` is what the gap counts (actual up to as-of, forecast after; missing = 0),
    so ``sum(outlook) - sum(plan)`` is the gap. ``actual``/``forecast`` are None for a
    month without any value of that measure.
    """

    metric: str
    as_of: Month | None
    months: tuple[Month, ...]
    plan: tuple[float, ...]
    outlook: tuple[float, ...]
    actual: tuple[float | None, ...]
    forecast: tuple[float | None, ...]

    @property
    def gap(self) -> float:
        return math.fsum(self.outlook) - math.fsum(self.plan)


def _monthly(months: np.ndarray, values: np.ndarray, size: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per-month sums of the non-missing values, and how many there were."""
    present = ~np.isnan(values)
    sums = np.bincount(months[present], weights=values[present], minlength=size)
    return sums, np.bincount(months[present], minlength=size)


def trend_series(table: PlanningTable, query: GapQuery, *, fy_start_month: int = 1) -> Trend:
    """The monthly series behind :func:`sop_core.gaps.compute_gap` for the same query.

    Uses the engine's own row selection (scope, metric, horizon, as-of), so the months'
    plan and outlook add up to the gap's plan and latest view.
    """
    selection = select(table, query, fy_start_month=fy_start_month)
    metric, as_of, horizon = selection.metric, selection.as_of, selection.horizon
    if horizon.is_empty:
        return Trend(metric, as_of, (), (), (), (), ())
    size = horizon.end - horizon.start + 1
    index = (selection.period - horizon.start).astype(np.int64)
    plan = np.bincount(index, weights=selection.plan, minlength=size)
    outlook = np.bincount(index, weights=selection.outlook, minlength=size)
    actual, actual_n = _monthly(index, selection.actual, size)
    forecast, forecast_n = _monthly(index, selection.forecast, size)
    return Trend(
        metric=metric, as_of=as_of,
        months=tuple(range(horizon.start, horizon.end + 1)),
        plan=tuple(float(v) for v in plan), outlook=tuple(float(v) for v in outlook),
        actual=tuple(float(v) if n else None for v, n in zip(actual, actual_n, strict=True)),
        forecast=tuple(float(v) if n else None
                       for v, n in zip(forecast, forecast_n, strict=True)),
    )


# --------------------------------------------------------------------------------------
# Data: gap movement across snapshots (filled by sop_core.services.chart_data)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SnapshotMark:
    id: int
    as_of: Month | None
    loaded_at: datetime


@dataclass(frozen=True)
class GapSeries:
    """One open gap's figures on each snapshot (None: not in that snapshot's data)."""

    point_id: int
    label: str
    gap: tuple[float | None, ...]
    gap_pct: tuple[float | None, ...]


@dataclass(frozen=True)
class GapHistory:
    snapshots: tuple[SnapshotMark, ...]
    series: tuple[GapSeries, ...]
    threshold_pct: float
    more: int = 0  # open gaps left out of the chart (the smallest)


# --------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------

@cache
def _glyphs() -> frozenset[int]:
    """Code points the default font can draw (others would warn and draw boxes)."""
    path = font_manager.findfont(font_manager.FontProperties())
    return frozenset(font_manager.get_font(path).get_charmap())


def plain(text: str) -> str:
    """Text from data or users, safe for matplotlib: no mathtext, no missing glyphs."""
    glyphs = _glyphs()
    cleaned = "".join(c if ord(c) in glyphs or c == "\n" else "?" for c in text)
    return cleaned.replace("$", r"\$")


def _wrap(label: str, width: int, lines: int = LABEL_LINES) -> str:
    wrapped = textwrap.wrap(label, width, break_long_words=True) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1].rstrip() + "…"
    return plain("\n".join(wrapped))


class AmountFormatter(Formatter):
    """Tick labels from :func:`sop_core.formatting.tick_labels`: one scale for the axis and
    the decimals the values need, so each label says exactly the value it sits at."""

    labels = staticmethod(fmt.tick_labels)

    def __call__(self, x: float, pos: int | None = None) -> str:
        """One label (the cursor readout): among the axis's ticks when it is one."""
        locs = [float(v) for v in self.locs]
        if x in locs:
            return self.labels(locs)[locs.index(x)]
        return self.labels([x])[0]

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        self.set_locs(values)
        return self.labels([float(v) for v in values])


class PercentFormatter(AmountFormatter):
    """Gap % ticks, as exact as :class:`AmountFormatter`'s."""

    labels = staticmethod(fmt.percent_tick_labels)


def _amount_axis(axes: Axes, metric: str | None = None) -> None:
    """Y ticks at round steps (1, 2, 2.5, 5 × 10ⁿ) labelled by :class:`AmountFormatter`;
    the axis names the metric's unit where one is set."""
    axes.yaxis.set_major_locator(MaxNLocator(6, steps=[1, 2, 2.5, 5, 10]))
    axes.yaxis.set_major_formatter(AmountFormatter())
    unit = fmt.unit_name(metric)
    if unit:
        axes.set_ylabel(plain(unit), color=MUTED, fontsize=10)


def _figure(size: tuple[int, int]) -> Figure:
    figure = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained",
                    facecolor="white")
    FigureCanvasAgg(figure)
    return figure


def _headings(figure: Figure, axes: Axes, title: str, subtitle: str) -> None:
    figure.suptitle(plain(title), x=0.01, ha="left", fontsize=16, fontweight="bold",
                    color=INK)
    axes.set_title(plain(subtitle), loc="left", fontsize=11, color=MUTED, pad=12)


def _style(axes: Axes) -> None:
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color("#b0bec5")
    axes.tick_params(colors=INK, labelsize=10)
    axes.yaxis.grid(True, color=GRID, linewidth=0.8)
    axes.set_axisbelow(True)


def _footnote(figure: Figure, *notes: str | None) -> None:
    """Small print under the chart (laid out with it, so it never overlaps the axis)."""
    text = "  ·  ".join(n for n in notes if n)
    if text:
        figure.supxlabel(plain(text), x=0.01, ha="left", fontsize=9, color=MUTED)


def to_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# Bridges
# --------------------------------------------------------------------------------------

def _bridge_limits(bars: Sequence[Bar]) -> tuple[float, float, bool]:
    """The y range: all bar ends with room for labels, and zero unless that would squash
    the contributions (then the axis is cut, which the chart says)."""
    levels = [bar.top for bar in bars] + [bar.bottom for bar in bars if bar.bottom != 0.0]
    lo, hi = min(levels), max(levels)
    span = (hi - lo) or (max(abs(lo), abs(hi)) * 0.2) or 1.0
    bottom, top = lo - 0.22 * span, hi + 0.16 * span
    cut = False
    if bottom > 0:  # every level above zero
        if bottom > 0.2 * hi:
            cut = True
        else:
            bottom = 0.0
    if top < 0:  # every level below zero
        if top < 0.2 * lo:
            cut = True
        else:
            top = 0.0
    return bottom, top, cut


AXIS_BREAK = "axis-break"  # the gid of the marks drawn where a cut axis is broken


def _axis_break(axes: Axes, bars: Sequence[Bar], x: np.ndarray, width: float) -> None:
    """Show that the axis does not reach zero: a break mark on the axis line and a white
    slash through each bar drawn from zero (those bars are shorter than they are), at the
    end of the axis nearest zero (the top when every level is below zero)."""
    low, high = axes.get_ylim()
    near_top = high <= 0
    fraction = 0.97 if near_top else 0.03
    at = low + (1 - 0.035 if near_top else 0.035) * (high - low)
    rise = 0.012 * (high - low)
    for dy in (-0.012, 0.012):  # "//" across the axis line, in axes coordinates
        axes.plot([-0.012, 0.012], [fraction + dy - 0.01, fraction + dy + 0.01],
                  transform=axes.transAxes, color=INK, linewidth=1.2, clip_on=False,
                  zorder=5, gid=AXIS_BREAK)
    for i, bar in enumerate(bars):
        if bar.bottom == 0.0 and bar.height != 0.0:
            axes.plot([x[i] - width / 2 - 0.02, x[i] + width / 2 + 0.02], [at - rise, at + rise],
                      color="white", linewidth=5, solid_capstyle="butt", zorder=4,
                      gid=AXIS_BREAK)


def bridge_figure(steps: Sequence[Step], title: str, subtitle: str, *,
                  note: str | None = None, metric: str | None = None) -> Figure:
    """The waterfall of ``steps`` (see :func:`bridge_bars`) on a new figure. The y axis
    starts at zero unless the contributions would be too thin to read; then it is drawn
    broken (see :func:`_axis_break`) and the footnote says where it starts."""
    bars = bridge_bars(steps, metric)
    figure = _figure(BRIDGE_SIZE)
    axes = figure.add_subplot()
    _style(axes)
    _headings(figure, axes, title, subtitle)
    x = np.arange(len(bars))
    width = 0.62
    axes.bar(x, [b.height for b in bars], width, bottom=[b.bottom for b in bars],
             color=[b.colour for b in bars], edgecolor="white", linewidth=0.5, zorder=2)
    bottom, top, cut = _bridge_limits(bars)
    axes.set_ylim(bottom, top)
    for i in range(len(bars) - 1):  # connectors: the level each bar leaves off at
        level = bars[i].top
        axes.plot([i + width / 2, i + 1 - width / 2], [level, level], color="#90a4ae",
                  linewidth=0.9, linestyle=(0, (3, 2)), zorder=1)
    for i, bar in enumerate(bars):
        up = bar.height >= 0 or bar.colour == MUTED
        axes.annotate(bar.text, (i, bar.top), xytext=(0, 5 if up else -5),
                      textcoords="offset points", ha="center", va="bottom" if up else "top",
                      fontsize=11, fontweight="bold",
                      color=bar.colour if bar.colour in (INCREASE, DECREASE) else INK,
                      annotation_clip=False)
    if bottom < 0 < top:
        axes.axhline(0, color="#78909c", linewidth=0.8, zorder=1)
    # About 8.5 px per character at 10 pt: the label fits the bar's slot.
    chars = max(6, int(BRIDGE_SIZE[0] * 0.92 / (len(bars) + 0.2) / 8.5) - 1)
    axes.set_xticks(x, [_wrap(b.label, chars) for b in bars], fontsize=10)
    axes.set_xlim(-0.6, len(bars) - 0.4)
    _amount_axis(axes, metric)
    if cut:
        _axis_break(axes, bars, x, width)
    start = (f"The axis is broken: it starts at {fmt.amount(bottom, metric=metric)}, not zero."
             if cut and bottom > 0 else
             f"The axis is broken: it ends at {fmt.amount(top, metric=metric)}, not zero."
             if cut else None)
    _footnote(figure, note, start)
    return figure


def render_bridge(steps: Sequence[Step], title: str, subtitle: str, *,
                  note: str | None = None, metric: str | None = None) -> bytes:
    """The bridge as a PNG of :data:`BRIDGE_SIZE` pixels."""
    with _RENDER_LOCK:
        return to_png(bridge_figure(steps, title, subtitle, note=note, metric=metric))


def bridge_alt_text(steps: Sequence[Step], title: str, metric: str | None = None) -> str:
    parts = []
    for step in steps:
        value = fmt.amount(step.value, signed=step.kind == StepKind.DELTA, metric=metric)
        parts.append(f"{step.label} {value}")
    return _cut(f"{title}. Bar chart, left to right: " + "; ".join(parts) + ".")


# --------------------------------------------------------------------------------------
# Trend
# --------------------------------------------------------------------------------------

def _month_tick(value: Month, first: bool) -> str:
    year, index = divmod(value, 12)
    name = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
            "Dec")[index]
    return f"{name}\n{year}" if first or index == 0 else name


def _nan(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


@dataclass(frozen=True)
class TrendLines:
    """The series :func:`trend_figure` draws, by x position (NaN where not drawn)."""

    plan: np.ndarray
    actual: np.ndarray  # closed months
    forecast: np.ndarray  # the as-of month's outlook, then the forecast after it
    outlook: np.ndarray  # the gap is shaded between plan and this


def trend_lines(trend: Trend) -> TrendLines:
    months = np.array(trend.months)
    closed = months <= trend.as_of if trend.as_of is not None else np.zeros(len(months), bool)
    actual = np.where(closed, _nan(trend.actual), np.nan)
    forecast = np.where(~closed, _nan(trend.forecast), np.nan)
    if closed.any() and not closed.all():  # join the forecast to the last actual
        last = int(np.flatnonzero(closed)[-1])
        forecast[last] = trend.outlook[last]
    return TrendLines(plan=np.array(trend.plan, dtype=float), actual=actual,
                      forecast=forecast, outlook=np.array(trend.outlook, dtype=float))


def trend_figure(trend: Trend, title: str, subtitle: str) -> Figure:
    """Plan, actual and forecast by month, the gap shaded between plan and latest view."""
    figure = _figure(TREND_SIZE)
    axes = figure.add_subplot()
    _style(axes)
    _headings(figure, axes, title, subtitle)
    lines = trend_lines(trend)
    x = np.arange(len(trend.months))
    if len(x):
        below = lines.outlook < lines.plan
        for where, colour, label in ((below, DECREASE, "Gap: latest view below plan"),
                                     (~below, INCREASE, "Gap: latest view above plan")):
            if where.any():
                axes.fill_between(x, lines.plan, lines.outlook, where=where, interpolate=True,
                                  color=colour, alpha=0.14, linewidth=0, label=label)
        axes.plot(x, lines.plan, color=TOTAL, linewidth=2, linestyle=(0, (5, 3)),
                  marker="o", markersize=4, label="Plan")
        axes.plot(x, lines.actual, color=INK, linewidth=2.4, marker="o", markersize=5,
                  label="Actual")
        axes.plot(x, lines.forecast, color="#1e88e5", linewidth=2.4, marker="o",
                  markersize=5, markevery=_after_as_of(trend), label="Forecast")
        axes.set_xticks(x, [_month_tick(m, i == 0) for i, m in enumerate(trend.months)],
                        fontsize=10)
        axes.set_xlim(-0.4, len(x) - 0.6)
        if trend.as_of is not None and trend.months[0] <= trend.as_of <= trend.months[-1]:
            at = trend.as_of - trend.months[0]
            axes.axvline(at, color=MUTED, linewidth=1, linestyle=":")
            axes.annotate(f"as of {format_month(trend.as_of)}", (at, 1), xytext=(4, -4),
                          xycoords=("data", "axes fraction"), textcoords="offset points",
                          ha="left", va="top", fontsize=10, color=MUTED)
        axes.margins(y=0.15)
        _amount_axis(axes, trend.metric)
    figure.legend(loc="outside lower center", ncols=5, fontsize=10, frameon=False)
    return figure


def _after_as_of(trend: Trend) -> list[int]:
    """Markers only on forecast months (the joining point is the last actual's)."""
    return [i for i, m in enumerate(trend.months) if trend.as_of is None or m > trend.as_of]


def render_trend(trend: Trend, title: str, subtitle: str) -> bytes:
    """The monthly trend as a PNG of :data:`TREND_SIZE` pixels."""
    with _RENDER_LOCK:
        return to_png(trend_figure(trend, title, subtitle))


def trend_alt_text(trend: Trend, title: str) -> str:
    months = []
    for i, m in enumerate(trend.months):
        closed = trend.as_of is not None and m <= trend.as_of
        kind = "actual" if closed else "forecast"
        months.append(f"{format_month(m)} plan {fmt.amount(trend.plan[i], metric=trend.metric)}"
                      f", {kind} {fmt.amount(trend.outlook[i], metric=trend.metric)}")
    return _cut(f"{title}. Line chart by month: " + "; ".join(months) + ".")


# --------------------------------------------------------------------------------------
# Movement across snapshots
# --------------------------------------------------------------------------------------

def snapshot_tick(mark: SnapshotMark) -> str:
    loaded = mark.loaded_at
    return f"#{mark.id} · {loaded.day} {loaded:%b}\n{fmt.month(mark.as_of)}"


def movement_lines(history: GapHistory) -> list[np.ndarray]:
    """The gap % series :func:`movement_figure` draws (NaN where undefined)."""
    return [_nan(series.gap_pct) for series in history.series]


def _spread(positions: list[float], gap: float) -> list[float]:
    """Label positions at least ``gap`` apart, in the same order, each group of labels
    that would collide centred on where its labels belong (so no label overlaps)."""
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    clusters: list[tuple[float, list[float]]] = []  # (first label's position, targets)
    for i in order:
        start, targets = positions[i], [positions[i]]
        while clusters and start < clusters[-1][0] + len(clusters[-1][1]) * gap:
            targets = clusters.pop()[1] + targets
            start = sum(targets) / len(targets) - (len(targets) - 1) * gap / 2
        clusters.append((start, targets))
    placed = [start + k * gap for start, targets in clusters for k in range(len(targets))]
    result = [0.0] * len(positions)
    for rank, i in enumerate(order):
        result[i] = placed[rank]
    return result


def movement_figure(history: GapHistory, title: str, subtitle: str) -> Figure:
    figure = _figure(MOVEMENT_SIZE)
    axes = figure.add_subplot()
    _style(axes)
    _headings(figure, axes, title, subtitle)
    x = np.arange(len(history.snapshots))
    values = movement_lines(history)
    threshold = history.threshold_pct
    axes.axhspan(-threshold, threshold, color="#eceff1", zorder=0,
                 label=f"Within the trigger rule (±{fmt.threshold(threshold)})")
    axes.axhline(0, color="#90a4ae", linewidth=0.8, zorder=1)
    finite = [v for line in values for v in line if not math.isnan(v)]
    low, high = min([*finite, -threshold]), max([*finite, threshold])
    pad = (high - low) * 0.12 or 1.0
    axes.set_ylim(low - pad, high + pad)
    ends: list[tuple[int, float, str]] = []  # (x, y, colour) of each line's last point
    for i, (series, line) in enumerate(zip(history.series, values, strict=True)):
        colour = SERIES[i % len(SERIES)]
        axes.plot(x, line, color=colour, linewidth=2.2, marker="o", markersize=5,
                  label=_wrap(series.label, 34, 2), zorder=3)
        defined = np.flatnonzero(~np.isnan(line))
        if len(defined):
            ends.append((int(defined[-1]), float(line[defined[-1]]), colour))
    # One label line is about 6 % of the axis height at this size.
    label_at = _spread([y for _, y, _ in ends], (high - low + 2 * pad) * 0.06)
    for (at, y, colour), shown_at in zip(ends, label_at, strict=True):
        axes.annotate(fmt.percent(y), (at, y), xytext=(at + 0.1, shown_at),
                      textcoords="data", va="center", fontsize=10, fontweight="bold",
                      color=colour, annotation_clip=False)
    axes.set_xticks(x, [snapshot_tick(m) for m in history.snapshots], fontsize=9)
    axes.set_xlim(-0.3, max(len(x) - 1, 0) + 0.6)
    axes.yaxis.set_major_formatter(PercentFormatter())
    axes.set_ylabel("Gap % of plan", color=MUTED, fontsize=10)
    figure.legend(loc="outside right center", fontsize=9, frameon=False)
    more = f"…and {history.more} smaller open gaps not shown." if history.more else None
    _footnote(figure, "Each point: a snapshot (#id, the day it was loaded, its as-of month).",
              more)
    return figure


def render_movement(history: GapHistory, title: str, subtitle: str) -> bytes:
    """Gap % of each open gap across snapshots, a PNG of :data:`MOVEMENT_SIZE` pixels."""
    with _RENDER_LOCK:
        return to_png(movement_figure(history, title, subtitle))


def movement_alt_text(history: GapHistory, title: str) -> str:
    ids = ", ".join(f"#{m.id}" for m in history.snapshots)
    parts = [f"{s.label}: " + " → ".join(fmt.percent(v) for v in s.gap_pct)
             for s in history.series]
    more = f"; and {history.more} more" if history.more else ""
    return _cut(f"{title}. Gap % across snapshots {ids}: " + "; ".join(parts) + more + ".")


def _cut(text: str, limit: int = ALT_TEXT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
