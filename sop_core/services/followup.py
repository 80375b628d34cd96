"""Which milestone nudges are due at an instant, decided from the database alone.

Nothing is kept in memory between passes: a restart, a second clock or a pass after a
day of downtime all compute the same answer from the same rows, and the outbox's
unique keys make sure each nudge is sent once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sop_core import outbox
from sop_core.config import Settings
from sop_core.db import upsert
from sop_core.models import Action, Milestone, SlackUser, Status, TriggerPoint
from sop_core.nudges import Occasion, latest_due

USER_CACHE_AGE = timedelta(days=1)
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


def nudge_key(action_id: int, milestone_id: int | None, occasion: Occasion) -> str:
    item = f"m{milestone_id}" if milestone_id is not None else "due"
    return f"nudge:{action_id}:{item}:{occasion.kind}:{occasion.day.isoformat()}"


def users_to_refresh(session: Session, now: datetime) -> list[tuple[str, str]]:
    """Owners of open actions whose time zone is unknown or older than a day."""
    known = {(u.team_id, u.user_id): u.fetched_at for u in session.scalars(select(SlackUser))}
    owners = session.execute(select(Action.team_id, Action.owner_id).where(
        Action.status == Status.OPEN).distinct()).all()
    return [(team, user) for team, user in owners
            if (team, user) not in known or now - known[(team, user)] > USER_CACHE_AGE]


def remember_user(sessions: sessionmaker[Session], team_id: str, user_id: str, *, tz: str,
                  deleted: bool, now: datetime) -> None:
    """Cache a user's zone; an upsert, because a second clock may cache the same user."""
    with sessions.begin() as session:
        upsert(session, SlackUser, ("team_id", "user_id"), ("tz", "deleted", "fetched_at"),
               team_id=team_id, user_id=user_id, tz=tz, deleted=deleted, fetched_at=now)


_ACTION_COLUMNS = (Action.id, Action.team_id, Action.owner_id, Action.creator_id,
                   Action.snoozed_until, Action.channel_id, TriggerPoint.message_ts)


def _items(session: Session, latest_due_day: date) -> Iterable[tuple]:
    """Open milestones, then open actions' due dates, due by ``latest_due_day``:
    (action columns…, milestone id, what, due). Columns only: a sweep over 100,000
    actions must not load every action's milestones as objects."""
    open_milestones = session.execute(
        select(*_ACTION_COLUMNS, Milestone.id, Milestone.name, Milestone.due_date)
        .join(Milestone, Milestone.action_id == Action.id)
        .outerjoin(TriggerPoint, TriggerPoint.id == Action.trigger_point_id)
        .where(Action.status == Status.OPEN, Milestone.done_at.is_(None),
               Milestone.due_date <= latest_due_day))
    yield from open_milestones
    open_actions = session.execute(
        select(*_ACTION_COLUMNS, Action.due_date)
        .outerjoin(TriggerPoint, TriggerPoint.id == Action.trigger_point_id)
        .where(Action.status == Status.OPEN, Action.due_date <= latest_due_day))
    for *columns, due in open_actions:
        yield (*columns, None, "due date", due)


def due_nudges(session: Session, settings: Settings, now: datetime) -> list[NudgeTask]:
    """Every nudge due at ``now`` that has not been sent yet."""
    users = {(u.team_id, u.user_id): u for u in session.scalars(select(SlackUser))}
    horizon = now.date() + _ZONE_SLACK + timedelta(days=max(settings.nudge_days_before,
                                                             default=0))
    tasks: list[NudgeTask] = []
    for (action_id, team_id, owner_id, creator_id, snoozed_until, channel_id, thread_ts,
         milestone_id, what, due) in _items(session, horizon):
        user = users.get((team_id, owner_id))
        occasion = latest_due(
            due, now=now, tz=user.tz if user else settings.timezone,
            days_before=settings.nudge_days_before, hour=settings.nudge_hour,
            weekends=settings.nudge_on_weekends, snoozed_until=snoozed_until)
        if occasion is None:
            continue
        tasks.append(NudgeTask(
            key=nudge_key(action_id, milestone_id, occasion), occasion=occasion,
            team_id=team_id, action_id=action_id, milestone_id=milestone_id, what=what,
            due=due, owner_id=owner_id, creator_id=creator_id,
            owner_left=bool(user and user.deleted), channel_id=channel_id,
            thread_ts=thread_ts))
    sent = outbox.already_sent(session, (task.key for task in tasks))
    return [task for task in tasks if task.key not in sent]
