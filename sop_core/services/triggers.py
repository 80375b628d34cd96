"""Trigger points: a gap posted into a channel, and the channel's trigger rule."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sop_core import formatting as fmt
from sop_core import lifecycle
from sop_core.config import Settings
from sop_core.db import core_connection
from sop_core.gaps import TriggerRule
from sop_core.lifecycle import GapStatus
from sop_core.models import Action, ChannelSettings, Status, TriggerPoint, utcnow
from sop_core.services.data import GapReport

log = logging.getLogger(__name__)
# Opening → closing quote, as sop_core.filters reads them (Slack types curly ones).
QUOTES = {'"': '"', "'": "'", "“": "”", "”": "”", "‘": "’", "’": "’", "«": "»", "„": "“"}
_REASON = re.compile(r"(?:^|\s)(?:reason|because)\s*[:=]?\s*", re.IGNORECASE)
# How long a trigger point written before its post belongs to that post; past it, the
# next /gap or watch of the same gap completes it (the poster died or lost the database).
POST_LEASE = timedelta(minutes=5)
# How long a request keeps trying to record a message Slack accepted while the database
# is away (inside POST_LEASE, so nobody takes the row over meanwhile).
COMPLETE_RETRY_SECONDS = 120.0


class NotFound(LookupError):
    """No such record in this workspace (ids from another workspace are not found)."""


# Two columns of one row, built once: every /gap reads it, and loading the whole ORM
# object (Session.get: identity map, every column, the leads' JSON) took 3 times the CPU.
_channel_settings = ChannelSettings.__table__.c
_CHANNEL_RULE = select(_channel_settings.threshold_pct, _channel_settings.floor).where(
    _channel_settings.team_id == bindparam("team_id"),
    _channel_settings.channel_id == bindparam("channel_id"))


def channel_rule(session: Session, settings: Settings, team_id: str, channel_id: str
                 ) -> TriggerRule:
    """The channel's own threshold and floor where set, else the installation's."""
    own = session.execute(_CHANNEL_RULE, {"team_id": team_id, "channel_id": channel_id}
                          ).first()
    threshold, floor = own if own is not None else (None, None)
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


class Claim(StrEnum):
    POST = "post"  # this caller posts the message (a new gap, or a stranded post)
    UPDATE = "update"  # the gap has its message in the channel: update it in place
    BUSY = "busy"  # someone else is posting it right now


@dataclass(frozen=True)
class Living:
    """The channel's one trigger point for a gap, as a caller found or claimed it."""

    claim: Claim
    point_id: int
    message_ts: str | None = None
    new: bool = False  # written by this claim (discarded if Slack refuses its post)
    # A post taken over (its poster died, or did not hear Slack's answer): when the row
    # was written. The earlier attempt's message, if Slack carried it out, is not older.
    since: datetime | None = None


@dataclass(frozen=True)
class Refreshed:
    """A living trigger point given the latest figures."""

    point_id: int
    message_ts: str | None
    previous_gap: float
    previous_gap_pct: float | None
    gap: float
    gap_pct: float | None
    status_before: GapStatus
    status: GapStatus
    status_changed_at: datetime | None

    @property
    def changed_status(self) -> bool:
        return self.status != self.status_before

    @property
    def note(self) -> str:
        """The thread line (plain text: figures and words of ours only)."""
        moved = (f"refreshed: gap moved from {fmt.amount(self.previous_gap, signed=True)} "
                 f"({fmt.percent(self.previous_gap_pct)}) to "
                 f"{fmt.amount(self.gap, signed=True)} ({fmt.percent(self.gap_pct)})")
        if self.previous_gap == self.gap and self.previous_gap_pct == self.gap_pct:
            moved = (f"refreshed: gap unchanged at {fmt.amount(self.gap, signed=True)} "
                     f"({fmt.percent(self.gap_pct)})")
        if not self.changed_status:
            return moved
        return f"{moved}. Status: {lifecycle.label(self.status)}."


def _figures(point: TriggerPoint, report: GapReport) -> None:
    result = report.result
    point.snapshot_id = report.snapshot_id
    point.as_of = result.as_of
    point.plan, point.outlook = result.plan, result.outlook
    point.gap, point.gap_pct = result.gap, result.gap_pct
    point.by = result.by


# A /gap's two writes as Core statements built once, their values as parameters: through
# an ORM session (unit of work, statements built per call) each took 2.4× the CPU.
_NEW_POINT = insert(TriggerPoint).returning(TriggerPoint.id)
_MESSAGE_POSTED = update(TriggerPoint).where(TriggerPoint.id == bindparam("point_id")).values(
    message_ts=bindparam("message_ts"), claimed_until=None)


def _living_query(team_id: str, channel_id: str, live_key: str) -> Any:
    return select(TriggerPoint).where(TriggerPoint.team_id == team_id,
                                      TriggerPoint.channel_id == channel_id,
                                      TriggerPoint.live_key == live_key)


class PointRef(NamedTuple):
    """A trigger point's id and its message (None: not posted yet)."""

    id: int
    message_ts: str | None


# Every /gap looks for its gap's living point: two columns, built once (the whole ORM
# object, scope and figures included, took twice the CPU).
_points = TriggerPoint.__table__.c
_LIVING_POINT = select(_points.id, _points.message_ts).where(
    _points.team_id == bindparam("team_id"), _points.channel_id == bindparam("channel_id"),
    _points.live_key == bindparam("live_key"))


def living(session: Session, report: GapReport, *, team_id: str, channel_id: str
           ) -> PointRef | None:
    """The gap's living trigger point in the channel, if it has one."""
    live_key = lifecycle.identity_key(report.query.scope_key(), report.result.metric,
                                      report.query.horizon)
    found = session.execute(_LIVING_POINT, {"team_id": team_id, "channel_id": channel_id,
                                            "live_key": live_key}).first()
    return None if found is None else PointRef(*found)


def claim_living(sessions: sessionmaker[Session], report: GapReport, *, team_id: str,
                 channel_id: str, created_by: str | None, watch_id: int | None = None,
                 now: datetime | None = None, lease: timedelta = POST_LEASE,
                 absent: bool = False) -> Living:
    """Find the gap's living trigger point in the channel, or write it before posting.

    The row is committed before Slack is called (its id goes into the message's buttons,
    and the unique ``live_key`` stops a second post of the same gap); no transaction is
    held across the Slack call. A row left without a message past its lease (the poster
    died, or the database went away before the message was recorded) is taken over.
    ``absent``: the caller has just read that there is none, so the first attempt writes
    it without looking again (one transaction fewer; a concurrent writer is still
    caught by the unique key, and read back).
    """
    now = now or utcnow()
    result = report.result
    live_key = lifecycle.identity_key(report.query.scope_key(), result.metric,
                                      report.query.horizon)
    for attempt in range(3):
        if attempt > 0 or not absent:
            with sessions.begin() as session:
                found = _claim_existing(session, team_id, channel_id, live_key, now, lease)
            if found is not None:
                return found
        try:
            with core_connection(sessions) as connection:
                point_id = connection.execute(_NEW_POINT, {
                    "team_id": team_id, "channel_id": channel_id,
                    "scope": {k: list(v) for k, v in result.scope.items()},
                    "scope_key": report.query.scope_key(), "metric": result.metric,
                    "horizon": report.query.horizon, "by": result.by, "watch_id": watch_id,
                    "posted_snapshot_id": report.snapshot_id,
                    "snapshot_id": report.snapshot_id, "as_of": result.as_of,
                    "plan_at_post": result.plan, "gap_at_post": result.gap,
                    "gap_pct_at_post": result.gap_pct, "plan": result.plan,
                    "outlook": result.outlook, "gap": result.gap, "gap_pct": result.gap_pct,
                    "created_by": created_by, "live_key": live_key,
                    "claimed_until": now + lease, "status": initial_status(report),
                    "status_changed_at": now}).scalar_one()
            return Living(Claim.POST, point_id, new=True)
        except IntegrityError:
            continue  # the same gap written at the same moment: read it back
    raise RuntimeError("could not claim the trigger point")  # pragma: no cover


def _claim_existing(session: Session, team_id: str, channel_id: str, live_key: str,
                    now: datetime, lease: timedelta) -> Living | None:
    """The living trigger point as :func:`claim_living` finds it, if there is one: its
    message to update, someone else's post in progress, or a stranded post taken over."""
    point = session.scalars(_living_query(team_id, channel_id, live_key)).first()
    if point is None:
        return None
    if point.message_ts is not None:
        return Living(Claim.UPDATE, point.id, point.message_ts)
    if point.claimed_until is not None and point.claimed_until > now:
        return Living(Claim.BUSY, point.id)
    taken = session.execute(
        update(TriggerPoint).where(
            TriggerPoint.id == point.id, TriggerPoint.message_ts.is_(None),
            or_(TriggerPoint.claimed_until.is_(None), TriggerPoint.claimed_until <= now))
        .values(claimed_until=now + lease).returning(TriggerPoint.id)
    ).scalar_one_or_none()
    return Living(Claim.POST, point.id, since=point.created_at) if taken \
        else Living(Claim.BUSY, point.id)


def initial_status(report: GapReport) -> GapStatus:
    """A posted gap starts open, also one posted deliberately within the rule (``post``):
    someone wants it discussed. The next load that finds it within the rule closes it."""
    return GapStatus.OPEN


def record(sessions: sessionmaker[Session], report: GapReport, *, team_id: str,
           channel_id: str, created_by: str | None, watch_id: int | None = None) -> int:
    """Keep a trigger point before it is posted (its id goes into the message's buttons)."""
    return claim_living(sessions, report, team_id=team_id, channel_id=channel_id,
                        created_by=created_by, watch_id=watch_id).point_id


def attach_message(sessions: sessionmaker[Session], point_id: int, message_ts: str) -> None:
    with core_connection(sessions) as connection:
        connection.execute(_MESSAGE_POSTED, {"point_id": point_id, "message_ts": message_ts})


def complete_post(sessions: sessionmaker[Session], point_id: int, message_ts: str, *,
                  retry_for: float = COMPLETE_RETRY_SECONDS,
                  sleep: Callable[[float], None] = time.sleep) -> bool:
    """Record the message Slack accepted, retrying while the database is away.

    Slack has the message: losing its ts would leave a message whose thread is never
    followed. Returns False if the database did not come back within ``retry_for``
    seconds (the row stays pending; its id in the buttons still finds it).
    """
    deadline = time.monotonic() + retry_for
    pause = 0.2
    while True:
        try:
            attach_message(sessions, point_id, message_ts)
            return True
        except DBAPIError as error:
            if time.monotonic() + pause > deadline:
                log.error("trigger point %d: message %s posted but not recorded: %s",
                          point_id, message_ts, type(error.orig).__name__)
                return False
            log.warning("trigger point %d: database away, recording message %s again in "
                        "%s s", point_id, message_ts, round(pause, 1))
            sleep(pause)
            pause = min(pause * 2, 5.0)


def discard(sessions: sessionmaker[Session], point_id: int) -> None:
    """Forget a trigger point whose message could not be posted."""
    with sessions.begin() as session:
        point = session.get(TriggerPoint, point_id)
        if point is not None and point.message_ts is None:
            session.delete(point)


def release(sessions: sessionmaker[Session], living: Living, *,
            maybe_posted: bool = False) -> None:
    """The post failed: a new row is forgotten, unless Slack may have carried the post
    out (no answer came back: the next claim looks for that message); a taken-over one
    is left for later."""
    if living.new and not maybe_posted:
        discard(sessions, living.point_id)
        return
    with sessions.begin() as session:
        session.execute(update(TriggerPoint).where(
            TriggerPoint.id == living.point_id, TriggerPoint.message_ts.is_(None))
            .values(claimed_until=None))


def covered_by(session: Session, point_id: int) -> float:
    """The open actions' expected impact on the gap."""
    return float(session.scalar(select(func.coalesce(func.sum(Action.expected_impact), 0.0))
                                .where(Action.trigger_point_id == point_id,
                                       Action.status == Status.OPEN)) or 0.0)


def _set_status(point: TriggerPoint, status: GapStatus, now: datetime) -> None:
    if status == lifecycle.status_of(point.status):
        return
    point.status = status
    point.status_changed_at = now
    if status == GapStatus.CLOSED:
        point.resolved_at = now
    else:
        point.resolved_at, point.closed_reason, point.closed_by = None, None, None


def refresh(sessions: sessionmaker[Session], point_id: int, report: GapReport, *,
            now: datetime | None = None) -> Refreshed | None:
    """New figures on a living trigger point, and its status after them."""
    now = now or utcnow()
    with sessions.begin() as session:
        point = session.get(TriggerPoint, point_id)
        if point is None:
            return None
        before = lifecycle.status_of(point.status)
        previous_gap, previous_pct = point.gap, point.gap_pct
        was_crossed = report.rule.crossed(point.gap, point.gap_pct)
        _figures(point, report)
        status = lifecycle.after_load(point.status, crossed=report.result.triggered,
                                      was_crossed=was_crossed, gap=point.gap,
                                      covered_by=covered_by(session, point.id))
        _set_status(point, status, now)
        return Refreshed(point.id, point.message_ts, previous_gap, previous_pct, point.gap,
                         point.gap_pct, before, status, point.status_changed_at)


def status_after(session: Session, point_id: int, report: GapReport, *,
                 now: datetime | None = None) -> tuple[GapStatus, datetime | None]:
    """What :func:`refresh` would make of the status, without writing (to show it)."""
    point = session.get(TriggerPoint, point_id)
    if point is None:
        return GapStatus.OPEN, None
    current = lifecycle.status_of(point.status)
    status = lifecycle.after_load(point.status, crossed=report.result.triggered,
                                  was_crossed=report.rule.crossed(point.gap, point.gap_pct),
                                  gap=report.result.gap, covered_by=covered_by(session, point_id))
    return status, (point.status_changed_at if status == current else now or utcnow())


def refresh_coverage(session: Session, point_id: int, *, now: datetime | None = None
                     ) -> GapStatus | None:
    """After an action changed: covered when the open actions reach the gap, else open.

    Runs in the caller's transaction (the action's own write)."""
    point = session.get(TriggerPoint, point_id)
    if point is None:
        return None
    status = lifecycle.after_coverage_change(point.status, gap=point.gap,
                                             covered_by=covered_by(session, point_id))
    _set_status(point, status, now or utcnow())
    return status


def split_reason(text: str) -> tuple[str, str]:
    """``region=EU reason: the promo moved`` → (``region=EU``, ``the promo moved``)."""
    found = _REASON.search(text)
    if found is None:
        return text.strip(), ""
    return text[:found.start()].strip(), text[found.end():].strip()


def close(sessions: sessionmaker[Session], team_id: str, point_id: int, *, user_id: str,
          reason: str, now: datetime | None = None) -> TriggerPoint:
    """A lead closes the gap with a reason (raises LifecycleError, NotFound)."""
    now = now or utcnow()
    with sessions.begin() as session:
        point = get(session, team_id, point_id)
        _set_status(point, lifecycle.close_by_lead(point.status, reason), now)
        point.closed_reason, point.closed_by = reason.strip(), user_id
        return point


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
                   rule: TriggerRule, covered: float = 0.0) -> None:
    """New figures from a newer snapshot, and the status they lead to (see lifecycle)."""
    was_crossed = rule.crossed(point.gap, point.gap_pct)
    _figures(point, report)
    status = lifecycle.after_load(point.status, crossed=rule.crossed(point.gap, point.gap_pct),
                                  was_crossed=was_crossed, gap=point.gap, covered_by=covered)
    _set_status(point, status, now or utcnow())


def split_post_flag(text: str) -> tuple[str, bool]:
    """``region=EU post`` → (``region=EU``, True): the word ``post`` outside quotes."""
    words: list[str] = []
    current, closing = "", frozenset[str]()
    for char in text:
        if closing:
            current += char
            if char in closing:
                closing = frozenset()
        elif char in QUOTES:
            current += char
            closing = frozenset({char, QUOTES[char]})
        elif char.isspace():
            if current:
                words.append(current)
            current = ""
        else:
            current += char
    if current:
        words.append(current)
    kept = [w for w in words if w.lower() != "post"]
    return " ".join(kept), len(kept) != len(words)


def _quoted(value: str) -> str | None:
    for opening, closing in (('"', '"'), ("“", "”"), ("'", "'")):
        if opening not in value and closing not in value:
            return f"{opening}{value}{closing}"
    return None  # every kind of quote inside: cannot be typed as a filter


def filters_text(report: GapReport, *, narrowed_to: tuple[str, str] | None = None
                 ) -> str | None:
    """The filters that ask for this gap again (``region="EU" horizon=fy metric=revenue``),
    narrowed to one member of a dimension when given: the next level of a drill-down.
    None when a value cannot be written as a filter."""
    scope = {k: list(v) for k, v in report.result.scope.items()}
    if narrowed_to is not None:
        scope[narrowed_to[0]] = [narrowed_to[1]]
    return filters_of(scope, horizon=report.query.horizon, metric=report.result.metric)


def filters_of(scope: Mapping[str, Sequence[str]], *, horizon: str, metric: str
               ) -> str | None:
    """The filters that ask for a stored gap again; None when a value cannot be typed."""
    parts = []
    for key, values in scope.items():
        quoted = [_quoted(v) for v in values]
        if any(q is None for q in quoted):
            return None
        parts.append(f"{key}={','.join(q for q in quoted if q is not None)}")
    parts += [f"horizon={horizon}", f"metric={metric}"]
    return " ".join(parts)
