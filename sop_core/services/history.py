"""The searchable history of gaps (docs/reference/workflow.md): past trigger points with their
confirmed root causes, actions and the impact those actions realised.

**Overlap.** A trigger point's scope *overlaps* the filters when, for every dimension
named in both, their value sets intersect (names and values compared case-insensitively).
A trigger point that does not restrict a dimension overlaps any value there, and filters
without a scope match every trigger point. ``metric=`` and ``horizon=`` narrow further
(exact, case-insensitive); ``by=`` and ``as_of=`` do not apply to history.

Values are matched against the scopes stored with each trigger point, not against the
latest snapshot, so a scope that no longer exists in the data is still found. Dimension
and metric *names* are checked against those the workspace knows (the latest snapshot's
and those of its past trigger points), so a typo gets the usual "Did you mean" reply.

**Similar past gaps** of a trigger point: earlier ones of the same workspace on the same
dimension values (the same ``scope_key``, or a scope that restricts every dimension of the
new one to overlapping values), the informative ones first (resolved, root cause
confirmed, or with actions), then the exact same scope and metric, then the newest.

**Who sees what.** Searches and similar gaps take a :class:`~sop_core.visibility.Visibility`
(``None``: everything, for the operator's command line): only trigger points of the
channels it allows are found, counted or offered as "Did you mean" hints.

Scopes are JSON, so overlap is decided in Python over the workspace's trigger points
(only their id, channel, scope, metric, horizon and creation time are read for that);
details are then loaded for the page shown. Results are plain frozen values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sop_core import filters as grammar
from sop_core import snapshots
from sop_core.filters import FilterError, Filters, parse_filters
from sop_core.lifecycle import GapStatus
from sop_core.loading import normalise_name
from sop_core.models import Action, RootCauseRevision, Status, TriggerPoint
from sop_core.services.triggers import get
from sop_core.visibility import Visibility

MAX_SIMILAR = 3
ScopeLike = Mapping[str, Sequence[str]]


# --------------------------------------------------------------------------------------
# Overlap (pure)
# --------------------------------------------------------------------------------------

def _folded(scope: ScopeLike) -> dict[str, set[str]]:
    """Dimension → case-folded values; a dimension without values restricts nothing."""
    folded: dict[str, set[str]] = {}
    for key, values in scope.items():
        members = {str(v).casefold() for v in values}
        if members:
            folded.setdefault(str(key).casefold(), set()).update(members)
    return folded


def overlaps(point_scope: ScopeLike, wanted: ScopeLike) -> bool:
    """Whether a trigger point's scope overlaps the filters' scope (see the module doc)."""
    mine, theirs = _folded(point_scope), _folded(wanted)
    return all(mine[key] & values for key, values in theirs.items() if key in mine)


def same_values(candidate: ScopeLike, new: ScopeLike) -> bool:
    """``candidate`` restricts every dimension of ``new`` to overlapping values (a scope
    without dimensions is only ever the same as another one without)."""
    mine, theirs = _folded(candidate), _folded(new)
    if not theirs:
        return not mine
    return all(key in mine and mine[key] & values for key, values in theirs.items())


@dataclass(frozen=True)
class Criteria:
    """What a history search or an export keeps: an overlapping scope, metric, horizon."""

    scope: Mapping[str, tuple[str, ...]]
    metric: str | None = None
    horizon: str | None = None

    @classmethod
    def of(cls, filters: Filters | str) -> Criteria:
        """From the filter grammar; raises :class:`FilterError` for what does not apply."""
        parsed = parse_filters(filters) if isinstance(filters, str) else filters
        if parsed.by is not None:
            raise FilterError("by= does not apply here: filter past gaps by dimension "
                              "(e.g. region=EU), metric= or horizon=")
        if parsed.as_of is not None:
            raise FilterError("as_of= does not apply here: past gaps are kept with the "
                              "figures they had; filter by dimension, metric= or horizon=")
        return cls(scope=dict(parsed.scope),
                   metric=normalise_name(parsed.metric) if parsed.metric else None,
                   horizon=parsed.horizon.strip().casefold() if parsed.horizon else None)

    @property
    def is_empty(self) -> bool:
        return not self.scope and self.metric is None and self.horizon is None

    def matches(self, scope: ScopeLike, metric: str, horizon: str) -> bool:
        if self.metric is not None and normalise_name(metric) != self.metric:
            return False
        if self.horizon is not None and horizon.strip().casefold() != self.horizon:
            return False
        return overlaps(scope, self.scope)

    def label(self) -> str:
        """``region=EU, NA · metric=revenue`` (plain, unescaped); "everything" when empty."""
        parts = [f"{key}={', '.join(values)}" for key, values in self.scope.items()]
        if self.metric:
            parts.append(f"metric={self.metric}")
        if self.horizon:
            parts.append(f"horizon={self.horizon}")
        return " · ".join(parts) or "everything"


# --------------------------------------------------------------------------------------
# Plain results
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PastAction:
    id: int
    title: str
    owner_id: str
    status: str
    due_date: date
    expected_impact: float
    realised_impact: float | None
    completed_at: datetime | None


@dataclass(frozen=True)
class PastGap:
    id: int
    channel_id: str
    message_ts: str | None
    scope: dict[str, list[str]]
    scope_key: str
    metric: str
    horizon: str
    status: str
    created_at: datetime
    resolved_at: datetime | None
    as_of: int | None
    plan_at_post: float
    gap_at_post: float
    gap_pct_at_post: float | None
    plan: float
    outlook: float
    gap: float
    gap_pct: float | None
    root_cause_category: str | None  # set only when the team confirmed it
    root_cause_summary: str | None
    root_cause_confirmed_by: str | None
    root_cause_confirmed_at: datetime | None
    actions: tuple[PastAction, ...]  # due soonest first
    root_cause_revisions: int = 0  # earlier confirmed root causes, replaced since
    status_changed_at: datetime | None = None

    @property
    def confirmed(self) -> bool:
        return self.root_cause_category is not None

    @property
    def expected_impact(self) -> float:
        """Σ expected impact of its actions, cancelled ones left out."""
        return sum(a.expected_impact for a in self.actions if a.status != Status.CANCELLED)

    @property
    def realised_impact(self) -> float | None:
        """Σ impact its completed actions realised; None when none has reported one."""
        realised = [a.realised_impact for a in self.actions if a.realised_impact is not None]
        return sum(realised) if realised else None


@dataclass(frozen=True)
class History:
    criteria: Criteria
    gaps: tuple[PastGap, ...]  # the first ``limit``, newest first
    total: int
    hints: tuple[str, ...] = ()  # when nothing matched: values the filters may have meant


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Row:
    """Just enough of a trigger point to decide whether it matches."""

    id: int
    scope: dict[str, list[str]]
    scope_key: str
    metric: str
    horizon: str
    created_at: datetime
    status: str
    root_cause_category: str | None
    channel_id: str


def _rows(session: Session, team_id: str, visibility: Visibility | None = None) -> list[_Row]:
    """The workspace's posted trigger points the audience may see (all of them for
    ``None``), newest first (only the matching columns)."""
    result = session.execute(
        select(TriggerPoint.id, TriggerPoint.scope, TriggerPoint.scope_key,
               TriggerPoint.metric, TriggerPoint.horizon, TriggerPoint.created_at,
               TriggerPoint.status, TriggerPoint.root_cause_category, TriggerPoint.channel_id)
        .where(TriggerPoint.team_id == team_id, TriggerPoint.message_ts.is_not(None))
        .order_by(TriggerPoint.created_at.desc(), TriggerPoint.id.desc()))
    rows = [_Row(*row) for row in result]
    if visibility is None:
        return rows
    return [row for row in rows if visibility.sees_channel(row.channel_id)]


def check_names(session: Session, team_id: str, criteria: Criteria,
                rows: Iterable[_Row] | None = None) -> None:
    """Unknown dimension or metric names get the closest-match reply (values are not
    checked: history keeps scopes the data may no longer have). Nothing is checked while
    the workspace has neither data nor trigger points."""
    if not criteria.scope and criteria.metric is None:
        return
    points = list(rows) if rows is not None else _rows(session, team_id)
    snapshot = snapshots.latest(session, team_id)
    dimensions = {str(d) for d in (snapshot.dimensions if snapshot else [])}
    metrics = {str(m) for m in (snapshot.metrics if snapshot else [])}
    for row in points:
        dimensions.update(row.scope)
        metrics.add(row.metric)
    folded = {d.casefold() for d in dimensions}
    for key in criteria.scope:
        if dimensions and key.casefold() not in folded:
            raise grammar._unknown("dimension", key, sorted(dimensions))
    if criteria.metric is not None and metrics and criteria.metric not in metrics:
        raise grammar._unknown("metric", criteria.metric, sorted(metrics))


def matching_ids(session: Session, team_id: str, criteria: Criteria,
                 visibility: Visibility | None = None) -> list[int]:
    """Ids of the workspace's trigger points matching that the audience may see, newest
    first (names checked)."""
    rows = _rows(session, team_id, visibility)
    check_names(session, team_id, criteria, rows)
    return [r.id for r in rows if criteria.matches(r.scope, r.metric, r.horizon)]


def _hints(session: Session, team_id: str, criteria: Criteria,
           visibility: Visibility | None = None) -> tuple[str, ...]:
    """For a search that found nothing: filter values no visible past gap has, and the
    closest of those (a hidden gap's values are never suggested)."""
    seen: dict[str, dict[str, str]] = {}
    for row in _rows(session, team_id, visibility):
        for key, values in row.scope.items():
            seen.setdefault(key.casefold(), {}).update((str(v).casefold(), str(v))
                                                       for v in values)
    hints = []
    for key, values in criteria.scope.items():
        known = seen.get(key.casefold(), {})
        for value in values:
            if value.casefold() in known:
                continue
            closest = grammar._closest(value, sorted(known.values())) if known else None
            hint = f" Did you mean “{closest}”?" if closest else ""
            hints.append(f"No past gap has {key}=“{value}”.{hint}")
    return tuple(hints)


def _actions(session: Session, point_ids: Sequence[int]) -> dict[int, list[PastAction]]:
    found: dict[int, list[PastAction]] = {pid: [] for pid in point_ids}
    if not point_ids:
        return found
    rows = session.execute(
        select(Action.trigger_point_id, Action.id, Action.title, Action.owner_id,
               Action.status, Action.due_date, Action.expected_impact, Action.realised_impact,
               Action.completed_at)
        .where(Action.trigger_point_id.in_(point_ids))
        .order_by(Action.due_date, Action.id))
    for point_id, *values in rows:
        found[point_id].append(PastAction(*values))
    return found


def load_gaps(session: Session, team_id: str, point_ids: Sequence[int]) -> list[PastGap]:
    """These trigger points (of this workspace only), in the order given."""
    if not point_ids:
        return []
    points = {p.id: p for p in session.scalars(select(TriggerPoint).where(
        TriggerPoint.team_id == team_id, TriggerPoint.id.in_(point_ids)))}
    actions = _actions(session, list(points))
    revisions: dict[int, int] = {row[0]: row[1] for row in session.execute(
        select(RootCauseRevision.trigger_point_id, func.count())
        .where(RootCauseRevision.trigger_point_id.in_(list(points)))
        .group_by(RootCauseRevision.trigger_point_id))}
    return [dataclasses.replace(_past(points[pid], actions[pid]),
                                root_cause_revisions=revisions.get(pid, 0))
            for pid in point_ids if pid in points]


def _past(point: TriggerPoint, actions: list[PastAction]) -> PastGap:
    return PastGap(
        id=point.id, channel_id=point.channel_id, message_ts=point.message_ts,
        scope={k: list(v) for k, v in point.scope.items()}, scope_key=point.scope_key,
        metric=point.metric, horizon=point.horizon, status=point.status,
        created_at=point.created_at, resolved_at=point.resolved_at, as_of=point.as_of,
        status_changed_at=point.status_changed_at,
        plan_at_post=point.plan_at_post, gap_at_post=point.gap_at_post,
        gap_pct_at_post=point.gap_pct_at_post, plan=point.plan, outlook=point.outlook,
        gap=point.gap, gap_pct=point.gap_pct, root_cause_category=point.root_cause_category,
        root_cause_summary=point.root_cause_summary,
        root_cause_confirmed_by=point.root_cause_confirmed_by,
        root_cause_confirmed_at=point.root_cause_confirmed_at, actions=tuple(actions))


def search(sessions: sessionmaker[Session], *, team_id: str, filters: Filters | str,
           limit: int = 20, visibility: Visibility | None = None) -> History:
    """Past trigger points of the workspace overlapping the filters that the audience
    may see (all for ``None``), newest first.

    Raises :class:`FilterError` for input that cannot be used (with the closest name).
    """
    criteria = Criteria.of(filters)
    with sessions() as session:
        ids = matching_ids(session, team_id, criteria, visibility)
        gaps = load_gaps(session, team_id, ids[:limit])
        hints = (_hints(session, team_id, criteria, visibility)
                 if not ids and criteria.scope else ())
    return History(criteria=criteria, gaps=tuple(gaps), total=len(ids), hints=hints)


def similar_gaps(sessions: sessionmaker[Session], *, team_id: str, point_id: int,
                 most: int = MAX_SIMILAR, visibility: Visibility | None = None
                 ) -> tuple[PastGap, ...]:
    """Earlier trigger points of the workspace on the same dimension values as this one
    that the audience may see, the informative ones first (see the module doc). Raises
    ``NotFound`` for a trigger point of another workspace."""
    with sessions() as session:
        point = get(session, team_id, point_id)
        new_key, new_scope, new_metric = point.scope_key, point.scope, point.metric
        earlier = (point.created_at, point.id)
        candidates = [r for r in _rows(session, team_id, visibility)
                      if r.id != point.id and (r.created_at, r.id) < earlier
                      and (r.scope_key == new_key or same_values(r.scope, new_scope))]
        if not candidates:
            return ()
        with_actions = set(session.scalars(
            select(Action.trigger_point_id).distinct().where(
                Action.team_id == team_id, Action.trigger_point_id.is_not(None))))

        def rank(row: _Row) -> tuple[bool, bool, bool]:
            learnt = (row.status in (Status.RESOLVED, GapStatus.CLOSED)
                      or row.root_cause_category is not None or row.id in with_actions)
            return not learnt, row.scope_key != new_key, row.metric != new_metric

        ranked = sorted(candidates, key=rank)  # stable: newest first within each rank
        return tuple(load_gaps(session, team_id, [r.id for r in ranked[:most]]))



def record_channels(session: Session, team_id: str) -> set[str]:
    """Every channel the workspace has records in (trigger points and action cards)."""
    channels = set(session.scalars(select(TriggerPoint.channel_id).distinct().where(
        TriggerPoint.team_id == team_id)))
    channels.update(c for c in session.scalars(select(Action.channel_id).distinct().where(
        Action.team_id == team_id)) if c)
    return channels
