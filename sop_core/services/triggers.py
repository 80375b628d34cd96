"""Trigger points: a gap posted into a channel, and the channel's trigger rule."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sop_core.config import Settings
from sop_core.gaps import TriggerRule
from sop_core.models import ChannelSettings, Status, TriggerPoint, utcnow
from sop_core.services.data import GapReport


class NotFound(LookupError):
    """No such record in this workspace (ids from another workspace are not found)."""


def channel_rule(session: Session, settings: Settings, team_id: str, channel_id: str
                 ) -> TriggerRule:
    """The channel's own threshold and floor where set, else the installation's."""
    own = session.get(ChannelSettings, (team_id, channel_id))
    threshold = own.threshold_pct if own and own.threshold_pct is not None else None
    floor = own.floor if own and own.floor is not None else None
    return TriggerRule(threshold if threshold is not None else settings.threshold_pct,
                       floor if floor is not None else settings.materiality_floor)


def set_channel_rule(sessions: sessionmaker[Session], team_id: str, channel_id: str, *,
                     threshold_pct: float, floor: float | None) -> TriggerRule:
    with sessions.begin() as session:
        own = session.get(ChannelSettings, (team_id, channel_id))
        if own is None:
            own = ChannelSettings(team_id=team_id, channel_id=channel_id)
            session.add(own)
        own.threshold_pct = threshold_pct
        if floor is not None:
            own.floor = floor
        return TriggerRule(threshold_pct, own.floor or 0.0)


def record(sessions: sessionmaker[Session], report: GapReport, *, team_id: str,
           channel_id: str, created_by: str | None, watch_id: int | None = None) -> int:
    """Keep a trigger point before it is posted (its id goes into the message's buttons)."""
    result = report.result
    with sessions.begin() as session:
        point = TriggerPoint(
            team_id=team_id, channel_id=channel_id, scope={k: list(v) for k, v in
                                                           result.scope.items()},
            scope_key=report.query.scope_key(), metric=result.metric,
            horizon=report.query.horizon, by=result.by, watch_id=watch_id,
            posted_snapshot_id=report.snapshot_id, snapshot_id=report.snapshot_id,
            as_of=result.as_of, plan_at_post=result.plan, gap_at_post=result.gap,
            gap_pct_at_post=result.gap_pct, plan=result.plan, outlook=result.outlook,
            gap=result.gap, gap_pct=result.gap_pct, created_by=created_by,
        )
        session.add(point)
        session.flush()
        return point.id


def attach_message(sessions: sessionmaker[Session], point_id: int, message_ts: str) -> None:
    with sessions.begin() as session:
        point = session.get(TriggerPoint, point_id)
        if point is not None:
            point.message_ts = message_ts


def discard(sessions: sessionmaker[Session], point_id: int) -> None:
    """Forget a trigger point whose message could not be posted."""
    with sessions.begin() as session:
        point = session.get(TriggerPoint, point_id)
        if point is not None and point.message_ts is None:
            session.delete(point)


def get(session: Session, team_id: str, point_id: int) -> TriggerPoint:
    point = session.get(TriggerPoint, point_id)
    if point is None or point.team_id != team_id:
        raise NotFound(f"trigger point {point_id}")
    return point


def by_thread(session: Session, team_id: str, channel_id: str, thread_ts: str
              ) -> TriggerPoint | None:
    return session.scalars(select(TriggerPoint).where(
        TriggerPoint.team_id == team_id, TriggerPoint.channel_id == channel_id,
        TriggerPoint.message_ts == thread_ts)).first()


def update_figures(point: TriggerPoint, report: GapReport, *, now: datetime | None = None,
                   rule: TriggerRule) -> None:
    """New figures from a newer snapshot; a gap back within the rule is resolved."""
    result = report.result
    point.snapshot_id = report.snapshot_id
    point.as_of = result.as_of
    point.plan, point.outlook = result.plan, result.outlook
    point.gap, point.gap_pct = result.gap, result.gap_pct
    if not rule.crossed(result.gap, result.gap_pct) and point.status == Status.OPEN:
        point.status = Status.RESOLVED
        point.resolved_at = now or utcnow()
    elif rule.crossed(result.gap, result.gap_pct) and point.status == Status.RESOLVED:
        point.status, point.resolved_at = Status.OPEN, None
