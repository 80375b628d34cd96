"""The pre-meeting digest (docs/reference/workflow.md): what is due when, and what goes into it.

A channel with a meeting (:mod:`sop_core.meetings`) gets one digest per occurrence, at
the occurrence − lead. Which digests are due is decided from the database alone, and
each has a deterministic outbox key, ``digest:{team}:{channel}:{occurrence, UTC ISO}``,
so a second clock, a repeated ``sopgap tick`` or a pass after downtime never sends one
twice (see :mod:`sop_core.outbox`).

"Since last time" needs no column of its own: the previous scheduled digest of the
channel is its ``notifications`` row (kind ``digest``, target = the channel) with its
``sent_at``; the gap figures of that time are those of the latest snapshot loaded
before it. Digests asked for with ``/gap digest`` (kind ``digest_now``) do not move that
baseline: the next pre-meeting pack still compares with the previous pre-meeting pack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Row, Select, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from sop_core import outbox, snapshots
from sop_core.config import Settings
from sop_core.filters import FilterError, Filters, resolve
from sop_core.gaps import GapQuery, TriggerRule, compute_gap
from sop_core.lifecycle import LIVE
from sop_core.loading import PlanningTable
from sop_core.meetings import Every, Meeting
from sop_core.models import (
    Action,
    ChannelSettings,
    Notification,
    Snapshot,
    Status,
    TriggerPoint,
)
from sop_core.scopes import ScopedAmount, disjoint_totals
from sop_core.services.coverage import Coverage, coverage, open_impacts
from sop_core.services.triggers import channel_rule

log = logging.getLogger(__name__)
T = TypeVar("T")

KIND_SCHEDULED = "digest"
KIND_NOW = "digest_now"
# Without a previous digest, "completed" and "root causes confirmed" look this far back;
# without a meeting, "due soon" looks this far ahead.
DEFAULT_LOOKBACK = timedelta(days=30)
DEFAULT_LOOKAHEAD = timedelta(days=30)
# Overdue by more than this, an action is a decision for the meeting (re-plan, escalate).
LONG_OVERDUE_DAYS = 14
# Items per list read from the database; the totals are counted, so the message can say
# "…and N more" however many there are.
MOST = 50


# --------------------------------------------------------------------------------------
# The channel's meeting
# --------------------------------------------------------------------------------------

def meeting_of(row: ChannelSettings | None) -> Meeting | None:
    """The meeting stored on a channel's settings, if one is set (and still valid)."""
    if row is None or row.meeting_local is None or not row.meeting_tz:
        return None
    try:
        ZoneInfo(row.meeting_tz)  # a zone gone from tzdata must not stop other channels
        return Meeting(first=row.meeting_local.replace(tzinfo=None), tz=row.meeting_tz,
                       every=Every(row.meeting_every or Every.MONTH),
                       lead=timedelta(minutes=row.meeting_lead_minutes))
    except (ValueError, LookupError):
        log.warning("channel %s/%s has an unusable meeting (%s, %s); ignored",
                    row.team_id, row.channel_id, row.meeting_tz, row.meeting_every)
        return None


def get_meeting(session: Session, team_id: str, channel_id: str) -> Meeting | None:
    return meeting_of(session.get(ChannelSettings, (team_id, channel_id)))


def set_meeting(sessions: sessionmaker[Session], team_id: str, channel_id: str,
                meeting: Meeting | None) -> None:
    """Set (or with None, clear) the channel's meeting."""
    with sessions.begin() as session:
        row = session.get(ChannelSettings, (team_id, channel_id))
        if row is None:
            if meeting is None:
                return
            row = ChannelSettings(team_id=team_id, channel_id=channel_id)
            session.add(row)
        if meeting is None:
            row.meeting_local = row.meeting_tz = row.meeting_every = None
            return
        row.meeting_local = meeting.first
        row.meeting_tz = meeting.tz
        row.meeting_every = meeting.every.value
        row.meeting_lead_minutes = meeting.lead_minutes


# --------------------------------------------------------------------------------------
# What is due
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DueDigest:
    key: str
    team_id: str
    channel_id: str
    occurrence: datetime  # aware UTC: the meeting this digest prepares
    meeting: Meeting


def digest_key(team_id: str, channel_id: str, occurrence: datetime) -> str:
    return f"digest:{team_id}:{channel_id}:{occurrence.isoformat()}"


def now_key(team_id: str, channel_id: str, now: datetime) -> str:
    """The key of a digest asked for now (``/gap digest``)."""
    return f"digest:{team_id}:{channel_id}:now:{now.isoformat()}"


def due_digests(session: Session, now: datetime) -> list[DueDigest]:
    """Every scheduled digest due at ``now`` and not sent yet: per channel with a meeting,
    the next occurrence whose digest instant has passed and which has not started."""
    due: list[DueDigest] = []
    rows = session.scalars(select(ChannelSettings).where(
        ChannelSettings.meeting_local.is_not(None)).order_by(
        ChannelSettings.team_id, ChannelSettings.channel_id))
    for row in rows:
        meeting = meeting_of(row)
        occurrence = meeting.due_digest(now) if meeting is not None else None
        if meeting is None or occurrence is None:
            continue
        due.append(DueDigest(digest_key(row.team_id, row.channel_id, occurrence),
                             row.team_id, row.channel_id, occurrence, meeting))
    sent = outbox.settled(session, (d.key for d in due))
    return [d for d in due if d.key not in sent]


def last_digest_at(session: Session, team_id: str, channel_id: str, before: datetime
                   ) -> datetime | None:
    """When the channel's previous scheduled digest was sent (before ``before``)."""
    return session.scalar(select(func.max(Notification.sent_at)).where(
        Notification.kind == KIND_SCHEDULED, Notification.team_id == team_id,
        Notification.target == channel_id, Notification.status == "sent",
        Notification.sent_at < before))


# --------------------------------------------------------------------------------------
# What goes into a digest (plain values)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GapLine:
    """An open trigger point of the channel, with its gap now and how it moved."""

    id: int
    scope: dict[str, list[str]]
    metric: str
    horizon: str
    message_ts: str | None
    gap: float
    gap_pct: float | None
    triggered: bool  # still crosses the channel's rule
    previous_gap: float | None  # at the baseline (None: nothing to compare with)
    previous_gap_pct: float | None
    new: bool  # posted since the baseline: the movement is since it was posted
    coverage: Coverage
    root_cause_category: str | None
    root_cause_confirmed: bool
    in_data: bool = True  # False: the scope is gone from the latest view (stored figures)
    status: str = "open"  # sop_core.lifecycle.GapStatus
    status_changed_at: datetime | None = None

    @property
    def gap_change(self) -> float | None:
        return None if self.previous_gap is None else self.gap - self.previous_gap


@dataclass(frozen=True)
class ActionLine:
    id: int
    title: str
    owner_id: str
    due_date: date
    expected_impact: float
    realised_impact: float | None
    gap_label: dict[str, list[str]] | None  # the trigger point's scope
    days_overdue: int  # 0 when not overdue
    completed_at: datetime | None = None


@dataclass(frozen=True)
class RootCauseLine:
    point_id: int
    scope: dict[str, list[str]]
    metric: str
    category: str | None
    summary: str | None
    confirmed_by: str | None


@dataclass(frozen=True)
class Listed(Generic[T]):
    """Up to ``MOST`` items, and how many there are in all."""

    items: tuple[T, ...]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.items)


@dataclass(frozen=True)
class MetricCoverage:
    """Coverage totals over open gaps of one metric and horizon whose scopes do not
    overlap (:mod:`sop_core.scopes`): a gap nested in, or crossing, a counted one is
    left out of the sums and named in ``left_out`` (its scope)."""

    metric: str
    gaps: int  # how many gaps the sums count
    size: float  # Σ |gap|
    covered: float  # Σ min(expected impact of open actions, |gap|) per gap
    uncovered: float  # Σ what no action covers
    horizon: str = "fy"
    left_out: tuple[dict[str, list[str]], ...] = ()

    @property
    def uncovered_share(self) -> float | None:
        return self.uncovered / self.size if self.size > 0 else None


@dataclass(frozen=True)
class Decision:
    """Something for the meeting to decide, with what it is about."""

    kind: str  # "uncovered", "root_cause", "overdue"
    gap: GapLine | None = None
    action: ActionLine | None = None


@dataclass(frozen=True)
class Digest:
    team_id: str
    channel_id: str
    now: datetime
    tz: str  # the meeting's zone, else the installation's
    meeting_at: datetime | None  # the meeting this digest prepares (aware UTC)
    following_meeting_at: datetime | None
    since: datetime | None  # the previous scheduled digest
    lookback_from: datetime  # "completed" and "root causes" count from here
    snapshot_id: int | None
    baseline_snapshot_id: int | None
    as_of: int | None
    rule: TriggerRule
    gaps: Listed[GapLine]
    coverage: tuple[MetricCoverage, ...]
    due_until: date
    due_soon: Listed[ActionLine]
    overdue: Listed[ActionLine]
    completed: Listed[ActionLine]
    root_causes: Listed[RootCauseLine]
    decisions: tuple[Decision, ...]

    @property
    def today(self) -> date:
        return self.now.astimezone(ZoneInfo(self.tz)).date()


def _count(session: Session, query: Select) -> int:
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


def _listed(session: Session, query: Select, convert: Callable[[Row], T], most: int = MOST
            ) -> Listed[T]:
    rows = session.execute(query.limit(most)).all()
    items = tuple(convert(row) for row in rows)
    total = len(items) if len(items) < most else _count(session, query)
    return Listed(items, total)


def _baseline_snapshot(session: Session, team_id: str, since: datetime | None
                       ) -> Snapshot | None:
    if since is None:
        return None
    return session.scalars(select(Snapshot).where(
        Snapshot.team_id == snapshots.data_team(session, team_id), Snapshot.loaded_at <= since)
        .order_by(Snapshot.id.desc()).limit(1)).first()


class _Figures:
    """Gaps of trigger points recomputed on one snapshot (scopes resolved once each)."""

    def __init__(self, table: PlanningTable | None, *, fy_start_month: int, rule: TriggerRule
                 ) -> None:
        self.table, self.fy_start_month, self.rule = table, fy_start_month, rule
        self._seen: dict[tuple[str, str, str], tuple[float, float | None, bool] | None] = {}

    def of(self, point: TriggerPoint) -> tuple[float, float | None, bool] | None:
        """(gap, gap %, crosses the rule), or None when the scope is not in the data."""
        if self.table is None:
            return None
        key = (point.scope_key, point.metric, point.horizon)
        if key not in self._seen:
            self._seen[key] = self._compute(point)
        return self._seen[key]

    def _compute(self, point: TriggerPoint) -> tuple[float, float | None, bool] | None:
        assert self.table is not None
        filters = Filters(scope={k: tuple(v) for k, v in point.scope.items()},
                          metric=point.metric, horizon=point.horizon)
        try:
            query = resolve(filters, self.table, fy_start_month=self.fy_start_month)
        except FilterError:
            return None
        result = compute_gap(self.table, GapQuery(scope=query.scope, metric=query.metric,
                                                  horizon=query.horizon),
                             fy_start_month=self.fy_start_month, rule=self.rule)
        return result.gap, result.gap_pct, result.triggered


def _table(session: Session, snapshot: Snapshot | None) -> PlanningTable | None:
    if snapshot is None:
        return None
    try:
        return snapshots.read(session, snapshot)
    except LookupError:
        return None


def _gap_lines(session: Session, settings: Settings, team_id: str, channel_id: str, *,
               rule: TriggerRule, latest: Snapshot | None, baseline: Snapshot | None
               ) -> list[GapLine]:
    points = session.scalars(select(TriggerPoint).where(
        TriggerPoint.team_id == team_id, TriggerPoint.channel_id == channel_id,
        TriggerPoint.status.in_(LIVE), TriggerPoint.message_ts.is_not(None))
        .order_by(TriggerPoint.id)).all()
    if not points:
        return []
    fy = settings.fiscal_year_start_month
    now_figures = _Figures(_table(session, latest), fy_start_month=fy, rule=rule)
    then_figures = _Figures(_table(session, baseline), fy_start_month=fy, rule=rule)
    impacts = open_impacts(session, [p.id for p in points])
    lines: list[GapLine] = []
    for point in points:
        current = now_figures.of(point)
        if current is None:
            gap, gap_pct = point.gap, point.gap_pct
            triggered, in_data = rule.crossed(gap, gap_pct), False
        else:
            (gap, gap_pct, triggered), in_data = current, True
        new = baseline is None or point.posted_snapshot_id > baseline.id
        before = None if new else then_figures.of(point)
        if before is None:
            new, previous_gap, previous_pct = True, point.gap_at_post, point.gap_pct_at_post
        else:
            previous_gap, previous_pct = before[0], before[1]
        lines.append(GapLine(
            id=point.id, scope=point.scope, metric=point.metric, horizon=point.horizon,
            message_ts=point.message_ts, gap=gap, gap_pct=gap_pct, triggered=triggered,
            previous_gap=previous_gap, previous_gap_pct=previous_pct, new=new,
            coverage=coverage(gap, impacts[point.id]),
            root_cause_category=point.root_cause_category,
            root_cause_confirmed=point.root_cause_confirmed_at is not None, in_data=in_data,
            status=point.status, status_changed_at=point.status_changed_at))
    lines.sort(key=lambda line: (-abs(line.gap), line.id))
    return lines


def _coverage_totals(lines: list[GapLine]) -> tuple[MetricCoverage, ...]:
    """Per metric and horizon, sums over the gaps that do not overlap (never EU and
    EU · Snacks together)."""
    measured = {line.id: line for line in lines if line.coverage.defined}
    totals: list[MetricCoverage] = []
    for total in disjoint_totals([ScopedAmount(line.id, line.metric, line.horizon,
                                               line.scope, line.coverage.size)
                                  for line in measured.values()]):
        counted = [measured[key].coverage for key in total.counted]
        totals.append(MetricCoverage(
            total.metric, len(counted), sum(c.size for c in counted),
            sum(min(max(c.covered, 0.0), c.size) for c in counted),
            sum(c.uncovered for c in counted), horizon=total.horizon,
            left_out=tuple(measured[key].scope for key in total.left_out)))
    return tuple(totals)


def _channel_actions(team_id: str, channel_id: str) -> Select:
    return (select(Action.id, Action.title, Action.owner_id, Action.due_date,
                   Action.expected_impact, Action.realised_impact, Action.completed_at,
                   TriggerPoint.scope)
            .outerjoin(TriggerPoint, TriggerPoint.id == Action.trigger_point_id)
            .where(Action.team_id == team_id,
                   or_(Action.channel_id == channel_id, TriggerPoint.channel_id == channel_id)))


def _action_line(today: date) -> Callable[[Row], ActionLine]:
    def convert(row: Row) -> ActionLine:
        (id_, title, owner, due, expected, realised, completed_at, scope) = row
        return ActionLine(id=id_, title=title, owner_id=owner, due_date=due,
                          expected_impact=expected, realised_impact=realised,
                          gap_label=scope, days_overdue=max((today - due).days, 0),
                          completed_at=completed_at)
    return convert


def _decisions(gaps: list[GapLine], overdue: Listed[ActionLine]) -> tuple[Decision, ...]:
    """What the meeting should decide: gaps no action fully covers (largest uncovered
    first), gaps without an agreed root cause, actions long overdue."""
    uncovered = sorted((g for g in gaps if g.triggered and g.coverage.uncovered >= 0.5),
                       key=lambda g: -g.coverage.uncovered)
    found = [Decision("uncovered", gap=g) for g in uncovered]
    found += [Decision("root_cause", gap=g) for g in gaps
              if g.triggered and not g.root_cause_confirmed]
    found += [Decision("overdue", action=a) for a in overdue.items
              if a.days_overdue > LONG_OVERDUE_DAYS]
    return tuple(found)


def build_digest(session: Session, settings: Settings, *, team_id: str, channel_id: str,
                 now: datetime, occurrence: datetime | None = None, most: int = MOST
                 ) -> Digest:
    """The channel's digest at ``now``, for the meeting at ``occurrence`` (by default
    the channel's next meeting, if it has one). Read-only."""
    meeting = get_meeting(session, team_id, channel_id)
    tz = meeting.tz if meeting is not None else settings.timezone
    if occurrence is None and meeting is not None:
        occurrence = meeting.next_after(now)
    following = (meeting.next_after(occurrence) if meeting is not None and occurrence
                 is not None else None)
    today = now.astimezone(ZoneInfo(tz)).date()
    due_until = (following.astimezone(ZoneInfo(tz)).date() if following is not None
                 else today + DEFAULT_LOOKAHEAD)
    since = last_digest_at(session, team_id, channel_id, before=now)
    lookback_from = since if since is not None else now - DEFAULT_LOOKBACK
    rule = channel_rule(session, settings, team_id, channel_id)
    latest = snapshots.latest(session, team_id)
    baseline = _baseline_snapshot(session, team_id, since)
    lines = _gap_lines(session, settings, team_id, channel_id, rule=rule, latest=latest,
                       baseline=baseline)

    actions = _channel_actions(team_id, channel_id)
    convert = _action_line(today)
    open_actions = actions.where(Action.status == Status.OPEN)
    overdue = _listed(session, open_actions.where(Action.due_date < today)
                      .order_by(Action.due_date, Action.id), convert, most)
    due_soon = _listed(session, open_actions.where(Action.due_date >= today,
                                                   Action.due_date <= due_until)
                       .order_by(Action.due_date, Action.id), convert, most)
    completed = _listed(session, actions.where(Action.status == Status.DONE,
                                               Action.completed_at >= lookback_from)
                        .order_by(Action.completed_at.desc(), Action.id), convert, most)
    confirmed = (select(TriggerPoint.id, TriggerPoint.scope, TriggerPoint.metric,
                        TriggerPoint.root_cause_category, TriggerPoint.root_cause_summary,
                        TriggerPoint.root_cause_confirmed_by)
                 .where(TriggerPoint.team_id == team_id, TriggerPoint.channel_id == channel_id,
                        TriggerPoint.root_cause_confirmed_at >= lookback_from)
                 .order_by(TriggerPoint.root_cause_confirmed_at.desc(), TriggerPoint.id))
    root_causes = _listed(session, confirmed, lambda row: RootCauseLine(*row), most)
    return Digest(
        team_id=team_id, channel_id=channel_id, now=now, tz=tz, meeting_at=occurrence,
        following_meeting_at=following, since=since, lookback_from=lookback_from,
        snapshot_id=latest.id if latest is not None else None,
        baseline_snapshot_id=baseline.id if baseline is not None else None,
        as_of=latest.as_of if latest is not None else None, rule=rule,
        gaps=Listed(tuple(lines[:most]), len(lines)), coverage=_coverage_totals(lines),
        due_until=due_until, due_soon=due_soon, overdue=overdue, completed=completed,
        root_causes=root_causes, decisions=_decisions(lines, overdue),
    )


def digest_for(sessions: sessionmaker[Session], settings: Settings, *, team_id: str,
               channel_id: str, now: datetime, occurrence: datetime | None = None) -> Digest:
    with sessions() as session:
        return build_digest(session, settings, team_id=team_id, channel_id=channel_id,
                            now=now, occurrence=occurrence)

