"""Which milestone nudges are due at an instant, decided from the database alone.

Nothing is kept in memory between passes: a restart, a second clock or a pass after a
day of downtime all compute the same answer from the same rows, and the outbox's
unique keys make sure each nudge is sent once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Date, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from sop_core import outbox
from sop_core.config import Settings
from sop_core.db import upsert
from sop_core.models import Action, Milestone, SlackUser, Status, TriggerPoint
from sop_core.nudge_days import reset_owner
from sop_core.nudges import Occasion, last_send_day, latest_due_by, next_occasion_day

USER_CACHE_AGE = timedelta(days=1)
# users.info calls in one pass at most. Owners cached together expire together: 5,000 of
# them would hold the pass's nudges for an hour at Slack's ~100 calls a minute (Tier 4).
USERS_PER_PASS = 50
# Time zones run from UTC-12 to UTC+14: "today" somewhere is at most a day off UTC.
_ZONE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class NudgeTask:
    """One nudge to send: about a milestone (or the action's due date) to its owner."""

    key: str
    occasion: Occasion
    team_id: str
    action_id: int
    milestone_id: int | None
    what: str  # the milestone's name, or "due date"
    due: date
    owner_id: str
    creator_id: str
    owner_left: bool
    channel_id: str | None  # the gap's channel and thread, for escalations
    thread_ts: str | None

    @property
    def in_thread(self) -> bool:
        """An escalation goes into the gap's thread (when the gap was posted)."""
        return self.occasion.escalates and bool(self.channel_id and self.thread_ts)

    @property
    def recipient(self) -> str:
        """Whose direct messages a nudge goes to: the owner's, or the creator's when the
        owner has left the workspace."""
        return self.creator_id if self.owner_left else self.owner_id

    @property
    def destination(self) -> str:
        """Where it is posted: the gap's channel, or the recipient's direct messages."""
        return self.channel_id if self.in_thread and self.channel_id else self.recipient


def nudge_key(action_id: int, milestone_id: int | None, occasion: Occasion) -> str:
    return _key(action_id, milestone_id, _occasion_part(occasion))


def _occasion_part(occasion: Occasion) -> str:
    return f"{occasion.kind}:{occasion.day.isoformat()}"


def _key(action_id: int, milestone_id: int | None, occasion_part: str) -> str:
    item = f"m{milestone_id}" if milestone_id is not None else "due"
    return f"nudge:{action_id}:{item}:{occasion_part}"


def users_to_refresh(session: Session, now: datetime, *,
                     limit: int = USERS_PER_PASS) -> list[tuple[str, str]]:
    """Owners of open actions whose time zone is unknown or older than a day: the
    unknown ones first (until then their nudges use the default zone), then the oldest;
    at most ``limit``, the others wait for the next pass."""
    known = {(team, user): fetched_at for team, user, fetched_at in session.execute(
        select(SlackUser.team_id, SlackUser.user_id, SlackUser.fetched_at))}
    owners = session.execute(select(Action.team_id, Action.owner_id).where(
        Action.status == Status.OPEN).distinct()).all()
    stale = [(known.get((team, user)), team, user) for team, user in owners
             if (team, user) not in known or now - known[(team, user)] > USER_CACHE_AGE]
    stale.sort(key=lambda item: (item[0] is not None, item[0] or now, item[1], item[2]))
    return [(team, user) for _, team, user in stale[:limit]]


def remember_user(sessions: sessionmaker[Session], team_id: str, user_id: str, *, tz: str,
                  deleted: bool, now: datetime) -> None:
    """Cache a user's zone; an upsert, because a second clock may cache the same user.
    A new zone has their open items' next nudge days worked out again."""
    with sessions.begin() as session:
        before = session.scalar(select(SlackUser.tz).where(SlackUser.team_id == team_id,
                                                           SlackUser.user_id == user_id))
        if before != tz:
            reset_owner(session, team_id, user_id)
        upsert(session, SlackUser, ("team_id", "user_id"), ("tz", "deleted", "fetched_at"),
               team_id=team_id, user_id=user_id, tz=tz, deleted=deleted, fetched_at=now)


_ACTION_COLUMNS = (Action.id, Action.team_id, Action.owner_id, Action.creator_id,
                   Action.snoozed_until, Action.channel_id, TriggerPoint.message_ts)


def _items(session: Session, latest_due_day: date, next_day_by: date | None
           ) -> Iterable[tuple]:
    """Open milestones, then open actions' due dates, due by ``latest_due_day``:
    (action columns…, milestone id, what, due, stored next nudge day). With
    ``next_day_by``, only those whose next nudge day has come by then, or is not worked
    out yet (see sop_core/nudge_days.py); without it, all of them (the full sweep).
    Columns only: a sweep over 100,000 actions must not load every action's milestones
    as objects. Plain tuples of plain values, which the garbage collector stops
    tracking: tens of thousands of ORM rows held through a sweep would trigger full
    collections of the whole process."""
    connection = session.connection()  # Core rows: no ORM processing of 50,000 of them
    milestones = (
        select(*_ACTION_COLUMNS, Milestone.id, Milestone.name, Milestone.due_date,
               Milestone.next_nudge_day)
        .join(Milestone, Milestone.action_id == Action.id)
        .outerjoin(TriggerPoint, TriggerPoint.id == Action.trigger_point_id)
        .where(Action.status == Status.OPEN, Milestone.done_at.is_(None)))
    actions = (
        select(*_ACTION_COLUMNS, Action.due_date, Action.next_nudge_day)
        .outerjoin(TriggerPoint, TriggerPoint.id == Action.trigger_point_id)
        .where(Action.status == Status.OPEN))
    if next_day_by is None:
        milestone_queries = [milestones.where(Milestone.due_date <= latest_due_day)]
        action_queries = [actions.where(Action.due_date <= latest_due_day)]
    else:  # two index ranges each, rather than an OR the planners may not split
        milestone_queries = [
            milestones.where(Milestone.next_nudge_day.is_(None),
                             Milestone.due_date <= latest_due_day),
            milestones.where(Milestone.next_nudge_day <= next_day_by)]
        action_queries = [
            actions.where(Action.next_nudge_day.is_(None), Action.due_date <= latest_due_day),
            actions.where(Action.next_nudge_day <= next_day_by)]
    for query in milestone_queries:
        yield from map(tuple, connection.execute(query).all())
    for query in action_queries:
        for *columns, due, next_day in connection.execute(query).all():
            yield (*columns, None, "due date", due, next_day)


_UNSEEN = object()


def due_nudges(session: Session, settings: Settings, now: datetime, *,
               full: bool = True) -> list[NudgeTask]:
    """Every nudge due at ``now`` that has not been sent yet.

    ``full=False`` (the clock's minute sweep) reads only the items whose stored next
    nudge day has come; ``full=True`` reads every open item near or past its due date.
    Either way each item read with nothing to send now gets its next nudge day stored
    (in ``session``: the caller commits), so the next minute reads less.

    Per item this is ``latest_due(due, now=now, tz=owner's zone, ...)``; since ``now``
    and the settings are fixed for the sweep, the owner's zone only matters through its
    last send day, and the occasion is computed once per distinct (due date, last send
    day, snooze) rather than once per item (a sweep over 100,000 actions has a few
    thousand distinct ones)."""
    last_days: dict[str, date] = {}

    def last_day_in(tz: str) -> date:
        if tz not in last_days:
            last_days[tz] = last_send_day(now, tz, settings.nudge_hour)
        return last_days[tz]

    # Each owner's last send day (from their zone) and whether they left the workspace.
    people = {(team, user): (last_day_in(tz), bool(deleted)) for team, user, tz, deleted
              in session.execute(select(SlackUser.team_id, SlackUser.user_id, SlackUser.tz,
                                        SlackUser.deleted))}
    unknown = (last_day_in(settings.timezone), False)  # zone not fetched yet
    horizon = now.date() + _ZONE_SLACK + timedelta(days=max(settings.nudge_days_before,
                                                             default=0))
    # An item is due only once its owner's last send day reaches its next nudge day: no
    # later than the latest last send day of any zone in use (at most tomorrow in UTC).
    next_day_by = None if full else max(last_days.values())
    schedule = {"days_before": settings.nudge_days_before,
                "weekends": settings.nudge_on_weekends}
    # (due, last send day, snooze) → (occasion, its part of the key), or None: no occasion.
    found: dict[tuple[date, date, date | None], tuple[Occasion, str] | None] = {}
    # (key, occasion, row, owner left, memo): plain values only (see _items).
    candidates: list[tuple[str, Occasion, tuple, bool, tuple]] = []
    # Items with nothing due now: (row, memo), for their next nudge day.
    quiet: list[tuple[tuple, tuple[date, date, date | None]]] = []
    for row in _items(session, horizon, next_day_by):
        action_id, team_id, owner_id, snoozed_until, milestone_id, due = (
            row[0], row[1], row[2], row[4], row[7], row[9])
        last_day, left = people.get((team_id, owner_id), unknown)
        memo = (due, last_day, snoozed_until)
        hit = found.get(memo, _UNSEEN)
        if hit is _UNSEEN:
            occasion = latest_due_by(due, last_day, snoozed_until=snoozed_until, **schedule)
            hit = found[memo] = (occasion, _occasion_part(occasion)) if occasion else None
        if hit is not None:
            candidates.append((_key(action_id, milestone_id, hit[1]), hit[0], row, left, memo))
        else:
            quiet.append((row, memo))
    sent = outbox.settled(session, [key for key, *_ in candidates])
    quiet += [(row, memo) for key, _, row, _, memo in candidates if key in sent]
    _store_next_days(session, quiet, schedule)
    return [NudgeTask(key=key, occasion=occasion, team_id=team_id, action_id=action_id,
                      milestone_id=milestone_id, what=what, due=due, owner_id=owner_id,
                      creator_id=creator_id, owner_left=owner_left, channel_id=channel_id,
                      thread_ts=thread_ts)
            for key, occasion, (action_id, team_id, owner_id, creator_id, _snoozed,
                                channel_id, thread_ts, milestone_id, what, due, _next),
            owner_left, _memo in candidates if key not in sent]


_ITEMS_PER_UPDATE = 5_000  # ids in one IN list: well under SQLite's and PostgreSQL's limits
# Conditional on the day read: a change made meanwhile (which resets it) is not overwritten.
_STORE_NEXT_DAY = {
    table.name: update(table).where(
        table.c.id.in_(bindparam("items", expanding=True)),
        table.c.next_nudge_day.is_not_distinct_from(bindparam("read", type_=Date)))
    .values(next_nudge_day=bindparam("day"))
    for table in (Milestone.__table__, Action.__table__)}


def _store_next_days(session: Session, quiet: list[tuple[tuple, tuple]],
                     schedule: dict) -> None:
    """Store the next nudge day of items that have nothing to send now (their latest
    occasion is sent, or none has come): the first day after their owner's last send
    day that brings a new occasion. Only where it changes; the update is conditional on
    the day read, so a change made meanwhile (which resets it) is not overwritten."""
    days: dict[tuple[date, date, date | None], date] = {}
    # Items by table, then by (day read, day to store): one UPDATE for many items. A
    # clock's first sweep stores a day for tens of thousands of items, most of them the
    # same few hundred days (100,000 actions on SQLite: 1.45 s instead of 1.76 s with a
    # statement per item).
    changes: dict[str, dict[tuple[date | None, date], list[int]]] = {
        "milestones": {}, "actions": {}}
    for row, memo in quiet:
        if memo not in days:
            due, last_day, snoozed_until = memo
            days[memo] = next_occasion_day(due, last_day, snoozed_until=snoozed_until,
                                           **schedule)
        stored, milestone_id = row[10], row[7]
        if days[memo] != stored:
            table = "actions" if milestone_id is None else "milestones"
            changes[table].setdefault((stored, days[memo]), []).append(
                row[0] if milestone_id is None else milestone_id)
    for table in (Milestone.__table__, Action.__table__):
        for (read, day), items in changes[table.name].items():
            for start in range(0, len(items), _ITEMS_PER_UPDATE):
                session.connection().execute(_STORE_NEXT_DAY[table.name], {
                    "items": items[start:start + _ITEMS_PER_UPDATE], "read": read,
                    "day": day})

