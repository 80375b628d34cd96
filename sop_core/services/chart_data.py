"""The charts a trigger point, the digest and ``sopgap demo`` show, ready to upload.

Read-only: every figure is recomputed from snapshots with the gap engine, then drawn
by :mod:`sop_core.charts`. The result is plain values (PNG bytes, file names, alt text
that says the numbers); the Slack side only uploads them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sop_core import charts, snapshots
from sop_core import formatting as fmt
from sop_core.config import Settings
from sop_core.filters import FilterError, Filters, resolve
from sop_core.gaps import GapQuery, GapResult, compute_gap
from sop_core.lifecycle import LIVE
from sop_core.loading import PlanningTable
from sop_core.models import Snapshot, TriggerPoint
from sop_core.periods import fiscal_year_of
from sop_core.services import triggers
from sop_core.services.coverage import scope_text
from sop_core.services.data import GapReport, NoData, gap_report
from sop_core.services.triggers import NotFound, channel_rule

LAST_SNAPSHOTS = 6  # the movement chart looks this far back
MOST_SERIES = 8  # lines on the movement chart (the largest open gaps)


@dataclass(frozen=True)
class ChartFile:
    filename: str
    title: str
    png: bytes
    alt_text: str


@dataclass(frozen=True)
class PointCharts:
    """A trigger point's charts on the latest view, and where its thread is."""

    point_id: int
    channel_id: str
    message_ts: str
    report: GapReport
    files: tuple[ChartFile, ...]


# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------

def horizon_text(result: GapResult) -> str:
    h = result.horizon
    if h.is_empty:
        return f"{h.name} (no months left)"
    span = fmt.month(h.start) if h.start == h.end else f"{fmt.month(h.start)}–{fmt.month(h.end)}"
    return f"{h.name} {span}"


def _context(result: GapResult) -> str:
    """Scope · horizon · as-of (· by), the subtitle every chart of a gap carries."""
    parts = [scope_text({k: list(v) for k, v in result.scope.items()}),
             f"{result.metric} {horizon_text(result)}", f"as of {fmt.month(result.as_of)}"]
    return " · ".join(parts)


def _gap_words(result: GapResult) -> str:
    return (f"{fmt.percent(result.gap_pct)} "
            f"({fmt.amount(result.gap, signed=True, metric=result.metric)})")


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def horizon_words(result: GapResult, fy_start_month: int = 1) -> str:
    """The horizon as people say it: ``FY2026``, ``FY2026 to date``, ``rest of FY2026``,
    ``Q3 FY2026``, ``May 2026``."""
    h = result.horizon
    name = h.name.lower()
    fiscal_year = fiscal_year_of(h.end if not h.is_empty else h.start - 1, fy_start_month)
    if name in ("fy", str(fiscal_year)) or name.startswith("fy"):
        return f"FY{fiscal_year}"
    if name == "ytd":
        return f"FY{fiscal_year} to date"
    if name == "rest":
        return f"rest of FY{fiscal_year}"
    if "-q" in name:
        year, quarter = name.split("-q")
        return f"Q{quarter} FY{year}"
    if h.start == h.end:
        year, index = divmod(h.start, 12)
        return f"{_MONTHS[index]} {year}"
    return horizon_text(result)


def gap_title(result: GapResult, fy_start_month: int = 1) -> str:
    """What a chart is about, in words: ``FY2026 revenue · EU · Snacks: -€464K (-12.5%)``."""
    scope = " · ".join(", ".join(members) for members in result.scope.values()) or "all"
    gap = fmt.amount(result.gap, signed=True, metric=result.metric)
    return (f"{horizon_words(result, fy_start_month)} {result.metric} · {scope}: "
            f"{gap} ({fmt.percent(result.gap_pct)})")


# --------------------------------------------------------------------------------------
# A gap's charts
# --------------------------------------------------------------------------------------

def report_charts(report: GapReport, table: PlanningTable, *, fy_start_month: int = 1,
                  stem: str = "gap") -> tuple[ChartFile, ...]:
    """The bridge along the report's drivers, the price–volume–mix bridge where the
    report has one, and the monthly trend; ``table`` is the report's snapshot."""
    result = report.result
    context = _context(result)
    snapshot = f"snapshot #{report.snapshot_id}"
    files: list[ChartFile] = []

    metric = result.metric
    title = gap_title(result, fy_start_month)
    steps = charts.bridge_steps(result)
    by = f" by {result.by}" if result.by is not None and result.drivers else ""
    grouped = next((s.members for s in steps if s.members > 1), 0)
    note = f"{snapshot}  ·  Other: the {grouped} smaller {result.by} members" if grouped \
        else snapshot
    files.append(ChartFile(
        f"{stem}-bridge.png", f"Gap bridge{by}: {scope_text(_scope(result))}",
        charts.render_bridge(steps, title, f"Plan to latest view{by} · {context}", note=note,
                             metric=metric),
        charts.bridge_alt_text(steps, f"Gap bridge{by}, {context}: gap {_gap_words(result)}",
                               metric)))

    if report.pvm is not None:
        pvm = report.pvm
        steps = charts.pvm_steps(pvm, result.plan, result.outlook)
        subtitle = f"Price · volume · mix · {context} · volume metric: {pvm.volume_metric}"
        files.append(ChartFile(
            f"{stem}-price-volume-mix.png",
            f"Price · volume · mix: {scope_text(_scope(result))}",
            charts.render_bridge(steps, title, subtitle, note=snapshot, metric=metric),
            charts.bridge_alt_text(steps, f"Price, volume and mix bridge, {context}: gap "
                                          f"{_gap_words(result)}", metric)))

    trend = charts.trend_series(table, dataclasses.replace(report.query, by=None),
                                fy_start_month=fy_start_month)
    if trend.months:
        files.append(ChartFile(
            f"{stem}-trend.png", f"Monthly trend: {scope_text(_scope(result))}",
            charts.render_trend(trend, title, f"By month · {context}"),
            charts.trend_alt_text(trend, f"Plan and latest view by month, {context}")))
    return tuple(files)


def _scope(result: GapResult) -> dict[str, list[str]]:
    return {k: list(v) for k, v in result.scope.items()}


def snapshot_table(session: Session, snapshot_id: int) -> PlanningTable:
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise NoData()
    return snapshots.read(session, snapshot)


def point_charts(sessions: sessionmaker[Session], settings: Settings, *, team_id: str,
                 point_id: int) -> PointCharts:
    """A posted trigger point's gap recomputed on the latest view, drawn.

    Raises :class:`NotFound` (no such posted point in this workspace), :class:`NoData`,
    or :class:`FilterError` when its scope is no longer in the data.
    """
    fy = settings.fiscal_year_start_month
    with sessions() as session:
        point = triggers.get(session, team_id, point_id)
        if point.message_ts is None:
            raise NotFound(f"trigger point {point_id} was never posted")
        channel_id, message_ts = point.channel_id, point.message_ts
        rule = channel_rule(session, settings, team_id, channel_id)
        filters = Filters(scope={k: tuple(v) for k, v in point.scope.items()},
                          metric=point.metric, horizon=point.horizon, by=point.by)
        report = gap_report(session, filters, team_id=team_id, rule=rule, explain=True,
                            fy_start_month=fy)
        table = snapshot_table(session, report.snapshot_id)
    files = report_charts(report, table, fy_start_month=fy, stem=f"gap-{point_id}")
    return PointCharts(point_id, channel_id, message_ts, report, files)


# --------------------------------------------------------------------------------------
# Movement of a channel's open gaps across snapshots (the digest's chart)
# --------------------------------------------------------------------------------------

def _gap_on(table: PlanningTable, point: TriggerPoint, settings: Settings
            ) -> GapResult | None:
    """The trigger point's gap as this snapshot saw it (None: scope not in its data)."""
    fy = settings.fiscal_year_start_month
    filters = Filters(scope={k: tuple(v) for k, v in point.scope.items()},
                      metric=point.metric, horizon=point.horizon)
    try:
        query = resolve(filters, table, fy_start_month=fy)
    except FilterError:
        return None
    return compute_gap(table, GapQuery(scope=query.scope, metric=query.metric,
                                       horizon=query.horizon), fy_start_month=fy)


def gap_history(session: Session, settings: Settings, *, team_id: str, channel_id: str,
                last: int = LAST_SNAPSHOTS, most: int = MOST_SERIES) -> charts.GapHistory:
    """Gap % of the channel's open trigger points on each of the last ``last`` snapshots
    of the workspace's data, the ``most`` largest (by |gap| on the latest) as series."""
    points = session.scalars(select(TriggerPoint).where(
        TriggerPoint.team_id == team_id, TriggerPoint.channel_id == channel_id,
        TriggerPoint.status.in_(LIVE), TriggerPoint.message_ts.is_not(None))
        .order_by(TriggerPoint.id)).all()
    rule = channel_rule(session, settings, team_id, channel_id)
    recent = list(reversed(session.scalars(select(Snapshot).where(
        Snapshot.team_id == snapshots.data_team(session, team_id))
        .order_by(Snapshot.id.desc()).limit(last)).all()))
    marks = tuple(charts.SnapshotMark(s.id, s.as_of, s.loaded_at) for s in recent)
    if not points or not recent:
        return charts.GapHistory(marks, (), rule.threshold_pct)
    figures: dict[int, list[GapResult | None]] = {p.id: [] for p in points}
    # Oldest first, so the process's small snapshot cache ends up holding the newest.
    for snapshot in recent:
        table = snapshots.read(session, snapshot)
        seen: dict[tuple[str, str, str], GapResult | None] = {}
        for point in points:
            key = (point.scope_key, point.metric, point.horizon)
            if key not in seen:
                seen[key] = _gap_on(table, point, settings)
            figures[point.id].append(seen[key])
    series = [
        charts.GapSeries(
            point_id=p.id, label=f"{scope_text(p.scope)} · {p.metric} {p.horizon}",
            gap=tuple(r.gap if r is not None else None for r in figures[p.id]),
            gap_pct=tuple(r.gap_pct if r is not None else None for r in figures[p.id]))
        for p in points
    ]
    series.sort(key=lambda s: (-abs(s.gap[-1] if s.gap[-1] is not None else 0.0),
                               s.point_id))
    return charts.GapHistory(marks, tuple(series[:most]), rule.threshold_pct,
                             more=max(len(series) - most, 0))


def movement_chart(sessions: sessionmaker[Session], settings: Settings, *, team_id: str,
                   channel_id: str, last: int = LAST_SNAPSHOTS) -> ChartFile | None:
    """The digest's chart, or None when there is no movement to show (no open gap, or
    fewer than two snapshots)."""
    with sessions() as session:
        history = gap_history(session, settings, team_id=team_id, channel_id=channel_id,
                              last=last)
    if not history.series or len(history.snapshots) < 2:
        return None
    first, latest = history.snapshots[0], history.snapshots[-1]
    title = "How the open gaps moved"
    subtitle = (f"Gap % of plan on the last {len(history.snapshots)} snapshots "
                f"(#{first.id}, as of {fmt.month(first.as_of)} → #{latest.id}, as of "
                f"{fmt.month(latest.as_of)})")
    return ChartFile(
        "gap-movement.png", "How the open gaps moved",
        charts.render_movement(history, title, subtitle),
        charts.movement_alt_text(history, "How this channel's open gaps moved"))
