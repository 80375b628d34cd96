"""Gap coverage by actions (docs/reference/gap-maths.md), and what a person's App Home shows.

Coverage = Σ expected impact of the *open* actions on a gap / |gap|. A done action no
longer counts: its effect is expected in the latest view by then, so it has shrunk the gap
itself. What no action covers is shown openly as *not yet covered* — never folded into
"non-identified projects". The maths at the top is pure; the read model below it queries
the database in one read-only transaction and returns plain values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from sop_core import formatting as fmt
from sop_core.lifecycle import LIVE
from sop_core.models import Action, RootCauseNote, Status, TriggerPoint
from sop_core.visibility import Visibility

# Below this, a gap is nothing to cover (amounts are money or units: half a unit is noise).
ZERO_GAP = 0.5


# --------------------------------------------------------------------------------------
# The maths (pure)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Coverage:
    """How much of a gap the open actions are expected to close."""

    gap: float
    covered: float  # Σ expected impact of the open actions (may exceed |gap|)
    actions: int  # how many open actions count

    @property
    def size(self) -> float:
        return abs(self.gap)

    @property
    def defined(self) -> bool:
        """No gap, nothing to cover: coverage is "n/a" (never a division by zero)."""
        return math.isfinite(self.gap) and self.size >= ZERO_GAP

    @property
    def ratio(self) -> float | None:
        """Covered / |gap| (1.0 = fully covered, above 1 = over-covered); None without a gap."""
        return self.covered / self.size if self.defined else None

    @property
    def uncovered(self) -> float:
        """The amount no action covers yet (0 when fully or over-covered)."""
        if not self.defined:
            return 0.0
        return max(self.size - max(self.covered, 0.0), 0.0)

    @property
    def uncovered_share(self) -> float | None:
        return self.uncovered / self.size if self.defined else None

    @property
    def over_covered(self) -> bool:
        return self.ratio is not None and self.ratio > 1.0


def coverage(gap: float, impacts: Iterable[float]) -> Coverage:
    """Coverage of ``gap`` by actions expected to close ``impacts`` of it (open actions only)."""
    values = [float(v) for v in impacts if v is not None and math.isfinite(v)]
    return Coverage(gap=float(gap), covered=math.fsum(values), actions=len(values))


def describe(c: Coverage, metric: str | None = None) -> str:
    """Plain text for people: the share covered and, openly, the share not yet covered
    (amounts in ``metric``'s unit)."""
    if not c.defined:
        return "coverage n/a (no gap to cover)"
    assert c.ratio is not None and c.uncovered_share is not None
    counted = f"{c.actions} open action{'s' if c.actions != 1 else ''}"
    if c.actions == 0:
        return (f"{fmt.share(0.0)} covered: {fmt.amount(c.size, metric=metric)} "
                f"({fmt.share(1.0)}) not yet covered by any action")
    if c.over_covered:
        return (f"{fmt.share(c.ratio)} covered by {counted}: over-covered by "
                f"{fmt.amount(c.covered - c.size, metric=metric)}, nothing left uncovered")
    return (f"{fmt.share(max(c.ratio, 0.0))} covered by {counted}: "
            f"{fmt.amount(c.uncovered, metric=metric)} ({fmt.share(c.uncovered_share)}) "
            "not yet covered")


# --------------------------------------------------------------------------------------
# The App Home read model
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MilestoneItem:
    name: str
    due_date: date
    overdue: bool


@dataclass(frozen=True)
class ActionItem:
    id: int
    title: str
    due_date: date
    overdue: bool
    expected_impact: float
    gap_label: str | None  # the trigger point's scope, when the action is on one
    next_milestones: tuple[MilestoneItem, ...]
    channel_id: str | None
    card_ts: str | None


@dataclass(frozen=True)
class GapItem:
    id: int
    channel_id: str
    message_ts: str | None
    scope: dict[str, list[str]]
    metric: str
    horizon: str
    gap: float
    gap_pct: float | None
    root_cause_category: str | None
    coverage: Coverage
    status: str = "open"  # sop_core.lifecycle.GapStatus
    status_changed_at: datetime | None = None


@dataclass(frozen=True)
class HomeData:
    actions: tuple[ActionItem, ...]
    actions_total: int
    gaps: tuple[GapItem, ...]
    gaps_total: int


def scope_text(scope: dict[str, list[str]]) -> str:
    """``region=EU · category=Snacks`` (plain, unescaped); "all data" when empty."""
    if not scope:
        return "all data"
    return " · ".join(f"{key}={', '.join(values)}" for key, values in scope.items())


def _my_actions(team_id: str, user_id: str) -> Select[tuple[Action]]:
    return select(Action).where(Action.team_id == team_id, Action.owner_id == user_id,
                                Action.status == Status.OPEN)


def _my_gaps(team_id: str, user_id: str) -> Select[tuple[TriggerPoint]]:
    """Open trigger points the person posted, spoke in, or owns or created actions on."""
    spoke = exists().where(RootCauseNote.trigger_point_id == TriggerPoint.id,
                           RootCauseNote.user_id == user_id)
    acts = exists().where(Action.trigger_point_id == TriggerPoint.id,
                          or_(Action.owner_id == user_id, Action.creator_id == user_id))
    return select(TriggerPoint).where(
        TriggerPoint.team_id == team_id, TriggerPoint.status.in_(LIVE),
        TriggerPoint.message_ts.is_not(None),
        or_(TriggerPoint.created_by == user_id, spoke, acts))


def _count(session: Session, query: Select[tuple[object]]) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def open_impacts(session: Session, point_ids: list[int]) -> dict[int, list[float]]:
    """Expected impacts of the open actions on each of these trigger points."""
    impacts: dict[int, list[float]] = {pid: [] for pid in point_ids}
    if not point_ids:
        return impacts
    rows = session.execute(select(Action.trigger_point_id, Action.expected_impact).where(
        Action.trigger_point_id.in_(point_ids), Action.status == Status.OPEN))
    for point_id, impact in rows:
        impacts[point_id].append(impact)
    return impacts


def point_coverage(sessions: sessionmaker[Session], team_id: str, point_id: int
                   ) -> Coverage | None:
    """One trigger point's coverage (None when it is not this workspace's)."""
    with sessions() as session:
        point = session.get(TriggerPoint, point_id)
        if point is None or point.team_id != team_id:
            return None
        return coverage(point.gap, open_impacts(session, [point_id])[point_id])


def home_data(sessions: sessionmaker[Session], *, team_id: str, user_id: str, today: date,
              most: int = 50, visibility: Visibility | None = None) -> HomeData:
    """The person's open actions (due soonest first) and the open gaps they take part in
    (largest first), at most ``most`` of each, with the totals for "and N more".

    Their own actions are always theirs to see; a gap only while ``visibility`` allows
    its channel (a private channel they have left drops out)."""
    with sessions() as session:
        actions = session.scalars(
            _my_actions(team_id, user_id).order_by(Action.due_date, Action.id).limit(most)
        ).all()
        point_ids = {a.trigger_point_id for a in actions if a.trigger_point_id is not None}
        labels = {p.id: scope_text(p.scope) for p in session.scalars(
            select(TriggerPoint).where(TriggerPoint.id.in_(point_ids)))} if point_ids else {}
        action_items = tuple(ActionItem(
            id=a.id, title=a.title, due_date=a.due_date, overdue=a.due_date < today,
            expected_impact=a.expected_impact,
            gap_label=labels.get(a.trigger_point_id) if a.trigger_point_id else None,
            next_milestones=tuple(
                MilestoneItem(m.name, m.due_date, m.due_date < today)
                for m in a.milestones if m.done_at is None)[:2],
            channel_id=a.channel_id, card_ts=a.card_ts,
        ) for a in actions)
        my_gaps = _my_gaps(team_id, user_id)
        if visibility is not None:
            my_gaps = my_gaps.where(TriggerPoint.channel_id.in_(sorted(visibility.channels)))
        points = session.scalars(my_gaps.order_by(
            func.abs(TriggerPoint.gap).desc(), TriggerPoint.id).limit(most)).all()
        impacts = open_impacts(session, [p.id for p in points])
        gap_items = tuple(GapItem(
            id=p.id, channel_id=p.channel_id, message_ts=p.message_ts, scope=p.scope,
            metric=p.metric, horizon=p.horizon, gap=p.gap, gap_pct=p.gap_pct,
            root_cause_category=p.root_cause_category,
            coverage=coverage(p.gap, impacts[p.id]),
            status=p.status, status_changed_at=p.status_changed_at,
        ) for p in points)
        actions_total = (len(action_items) if len(action_items) < most
                         else _count(session, _my_actions(team_id, user_id)))
        gaps_total = (len(gap_items) if len(gap_items) < most
                      else _count(session, my_gaps))
    return HomeData(action_items, actions_total, gap_items, gaps_total)
