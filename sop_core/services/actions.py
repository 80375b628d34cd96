"""SMART actions: created from a gap, followed up on their card, listed in the register.

Each change is one transaction that checks, in order: the action belongs to the
caller's workspace (otherwise it is *not found*, whatever its id), the caller may change
it (its owner, its creator, or a lead of its channel or of the installation), and it is
still open. Every change leaves an :class:`ActionUpdate` in the action's history.
Results are plain frozen values, safe to use after the session is gone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from sop_core.models import (
    Action,
    ActionUpdate,
    ChannelSettings,
    Milestone,
    Status,
    TriggerPoint,
    utcnow,
)
from sop_core.services import triggers
from sop_core.services.triggers import NotFound
from sop_core.smart import SmartActionInput

SNOOZE_DAYS = (1, 3, 7)


class UpdateKind(enum.StrEnum):
    CREATED = "created"
    PROGRESS = "progress"
    MILESTONE_DONE = "milestone_done"
    SNOOZED = "snoozed"
    COMPLETED = "completed"
    REASSIGNED = "reassigned"


class ActionRefused(Exception):
    """A change that is not made; the message is meant for the person who asked."""


class NotAllowed(ActionRefused):
    def __str__(self) -> str:
        return ("Only the action's owner, the person who created it or a lead of this "
                "channel can change it. Ask one of them, or ask to be made a lead.")


class Closed(ActionRefused):
    def __str__(self) -> str:
        return "This action is already complete: nothing more to change."


class InvalidChange(ActionRefused):
    """A change that makes no sense (a milestone done twice, the same owner again)."""


# ------------------------------------------------------------------------------------
# Plain results
# ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkedGap:
    """The trigger point an action answers (Relevant), with where it was posted."""

    trigger_point_id: int
    channel_id: str
    message_ts: str | None
    metric: str
    scope: dict[str, list[str]]
    horizon: str
    plan: float
    outlook: float
    gap: float
    gap_pct: float | None


@dataclass(frozen=True)
class MilestoneView:
    id: int
    name: str
    due_date: date
    done_at: datetime | None
    done_by: str | None

    @property
    def done(self) -> bool:
        return self.done_at is not None


@dataclass(frozen=True)
class ActionView:
    id: int
    team_id: str
    title: str
    owner_id: str
    creator_id: str
    metric_name: str
    baseline: float
    target: float
    current_value: float | None
    expected_impact: float
    realised_impact: float | None
    resources: str | None
    confidence: str | None
    due_date: date
    status: str
    snoozed_until: date | None
    channel_id: str | None
    card_ts: str | None
    milestones: tuple[MilestoneView, ...]
    gap: LinkedGap | None

    @property
    def is_open(self) -> bool:
        return self.status == Status.OPEN

    @property
    def open_milestones(self) -> tuple[MilestoneView, ...]:
        return tuple(m for m in self.milestones if not m.done)

    def overdue(self, today: date) -> bool:
        return self.is_open and self.due_date < today

    def snoozed(self, today: date) -> bool:
        return self.snoozed_until is not None and self.snoozed_until >= today


def _gap(point: TriggerPoint) -> LinkedGap:
    return LinkedGap(
        trigger_point_id=point.id, channel_id=point.channel_id, message_ts=point.message_ts,
        metric=point.metric, scope={k: list(v) for k, v in point.scope.items()},
        horizon=point.horizon, plan=point.plan, outlook=point.outlook, gap=point.gap,
        gap_pct=point.gap_pct)


def view_of(action: Action) -> ActionView:
    point = action.trigger_point
    return ActionView(
        id=action.id, team_id=action.team_id, title=action.title, owner_id=action.owner_id,
        creator_id=action.creator_id, metric_name=action.metric_name,
        baseline=action.baseline, target=action.target, current_value=action.current_value,
        expected_impact=action.expected_impact, realised_impact=action.realised_impact,
        resources=action.resources, confidence=action.confidence, due_date=action.due_date,
        status=action.status, snoozed_until=action.snoozed_until,
        channel_id=action.channel_id, card_ts=action.card_ts,
        milestones=tuple(
            MilestoneView(id=m.id, name=m.name, due_date=m.due_date, done_at=m.done_at,
                          done_by=m.done_by)
            for m in sorted(action.milestones, key=lambda m: (m.due_date, m.id))),
        gap=_gap(point) if point is not None else None,
    )


def local_today(timezone: str, now: datetime | None = None) -> date:
    """Today's date in the installation's time zone (``Settings.timezone``)."""
    return (now or utcnow()).astimezone(ZoneInfo(timezone)).date()


# ------------------------------------------------------------------------------------
# Creating
# ------------------------------------------------------------------------------------

def linked_gap(session: Session, team_id: str, point_id: int) -> LinkedGap:
    """What the SMART modal is prefilled from; :class:`NotFound` outside the workspace."""
    return _gap(triggers.get(session, team_id, point_id))


def create(sessions: sessionmaker[Session], data: SmartActionInput, *, team_id: str,
           point_id: int, creator_id: str) -> ActionView:
    """The action, its milestones and its "created" history entry, in one transaction.

    Raises :class:`NotFound` (nothing stored) when the gap is not this workspace's.
    """
    with sessions.begin() as session:
        point = triggers.get(session, team_id, point_id)
        action = Action(
            team_id=team_id, trigger_point_id=point.id, channel_id=point.channel_id,
            title=data.title, owner_id=data.owner_id, creator_id=creator_id,
            metric_name=data.metric, baseline=data.baseline, target=data.target,
            expected_impact=data.expected_impact, resources=data.resources,
            confidence=data.confidence.value, due_date=data.due_date, status=Status.OPEN,
            milestones=[Milestone(name=m.name, due_date=m.due_date) for m in data.milestones],
        )
        session.add(action)
        session.flush()
        session.add(ActionUpdate(action_id=action.id, user_id=creator_id,
                                 kind=UpdateKind.CREATED, value=data.expected_impact))
        session.flush()
        triggers.refresh_coverage(session, point.id)  # covered once actions reach the gap
        return view_of(action)


def attach_card(sessions: sessionmaker[Session], *, team_id: str, action_id: int,
                channel_id: str, card_ts: str) -> None:
    """Remember where the action's card is, so every change updates it in place."""
    with sessions.begin() as session:
        action = _get(session, team_id, action_id)
        action.channel_id, action.card_ts = channel_id, card_ts


# ------------------------------------------------------------------------------------
# Reading and permissions
# ------------------------------------------------------------------------------------

def _get(session: Session, team_id: str, action_id: int, *, lock: bool = False) -> Action:
    action = session.get(Action, action_id, with_for_update=lock or None)
    if action is None or action.team_id != team_id:
        raise NotFound(f"action {action_id}")
    return action


def get(session: Session, team_id: str, action_id: int) -> ActionView:
    return view_of(_get(session, team_id, action_id))


def may_change(session: Session, action: Action | ActionView, user_id: str,
               leads: Iterable[str] = ()) -> bool:
    """The owner, the creator, the installation's leads and the channel's leads."""
    if user_id in (action.owner_id, action.creator_id) or user_id in set(leads):
        return True
    if action.channel_id is None:
        return False
    channel = session.get(ChannelSettings, (action.team_id, action.channel_id))
    return channel is not None and user_id in (channel.leads or [])


def check_change(session: Session, *, team_id: str, action_id: int, user_id: str,
                 leads: Iterable[str] = ()) -> ActionView:
    """The action if this person may change it now (before opening a modal for it)."""
    action = _get(session, team_id, action_id)
    if not may_change(session, action, user_id, leads):
        raise NotAllowed()
    if action.status != Status.OPEN:
        raise Closed()
    return view_of(action)


# ------------------------------------------------------------------------------------
# Changing
# ------------------------------------------------------------------------------------

Change = Callable[[Session, Action], tuple[UpdateKind, float | None, str | None]]


def _change(sessions: sessionmaker[Session], change: Change, *, team_id: str,
            action_id: int, user_id: str, leads: Iterable[str]) -> ActionView:
    with sessions.begin() as session:
        action = _get(session, team_id, action_id, lock=True)
        if not may_change(session, action, user_id, leads):
            raise NotAllowed()
        if action.status != Status.OPEN:
            raise Closed()
        kind, value, note = change(session, action)
        session.add(ActionUpdate(action_id=action.id, user_id=user_id, kind=kind,
                                 value=value, note=note))
        session.flush()
        if action.trigger_point_id is not None:  # coverage may have changed
            triggers.refresh_coverage(session, action.trigger_point_id)
        return view_of(action)


def record_progress(sessions: sessionmaker[Session], *, team_id: str, action_id: int,
                    user_id: str, value: float, note: str | None,
                    leads: Iterable[str] = ()) -> ActionView:
    def apply(session: Session, action: Action) -> tuple[UpdateKind, float | None, str | None]:
        action.current_value = value
        return UpdateKind.PROGRESS, value, note

    return _change(sessions, apply, team_id=team_id, action_id=action_id, user_id=user_id,
                   leads=leads)


def mark_milestone_done(sessions: sessionmaker[Session], *, team_id: str, action_id: int,
                        milestone_id: int, user_id: str, leads: Iterable[str] = (),
                        now: datetime | None = None) -> ActionView:
    def apply(session: Session, action: Action) -> tuple[UpdateKind, float | None, str | None]:
        milestone = next((m for m in action.milestones if m.id == milestone_id), None)
        if milestone is None:
            raise NotFound(f"milestone {milestone_id}")
        if milestone.done_at is not None:
            raise InvalidChange(f"“{milestone.name}” is already done.")
        milestone.done_at, milestone.done_by = now or utcnow(), user_id
        return UpdateKind.MILESTONE_DONE, None, milestone.name

    return _change(sessions, apply, team_id=team_id, action_id=action_id, user_id=user_id,
                   leads=leads)


def snooze(sessions: sessionmaker[Session], *, team_id: str, action_id: int, days: int,
           today: date, user_id: str, leads: Iterable[str] = ()) -> ActionView:
    """No reminders for ``days`` days: until ``today + days`` included."""
    if days not in SNOOZE_DAYS:
        raise InvalidChange(f"Snooze for {', '.join(map(str, SNOOZE_DAYS))} days.")

    def apply(session: Session, action: Action) -> tuple[UpdateKind, float | None, str | None]:
        action.snoozed_until = today + timedelta(days=days)
        return UpdateKind.SNOOZED, float(days), action.snoozed_until.isoformat()

    return _change(sessions, apply, team_id=team_id, action_id=action_id, user_id=user_id,
                   leads=leads)


def complete(sessions: sessionmaker[Session], *, team_id: str, action_id: int,
             realised_impact: float, note: str | None, user_id: str,
             leads: Iterable[str] = (), now: datetime | None = None) -> ActionView:
    def apply(session: Session, action: Action) -> tuple[UpdateKind, float | None, str | None]:
        action.status = Status.DONE
        action.realised_impact = realised_impact
        action.completed_at = now or utcnow()
        return UpdateKind.COMPLETED, realised_impact, note

    return _change(sessions, apply, team_id=team_id, action_id=action_id, user_id=user_id,
                   leads=leads)


def reassign(sessions: sessionmaker[Session], *, team_id: str, action_id: int,
             new_owner_id: str, user_id: str, leads: Iterable[str] = ()) -> ActionView:
    """A new owner; the history keeps the previous one (in the update's note)."""
    def apply(session: Session, action: Action) -> tuple[UpdateKind, float | None, str | None]:
        if new_owner_id == action.owner_id:
            raise InvalidChange("They already own this action: choose someone else.")
        previous, action.owner_id = action.owner_id, new_owner_id
        return UpdateKind.REASSIGNED, None, f"{previous} -> {new_owner_id}"

    return _change(sessions, apply, team_id=team_id, action_id=action_id, user_id=user_id,
                   leads=leads)


# ------------------------------------------------------------------------------------
# The register
# ------------------------------------------------------------------------------------

class Which(enum.StrEnum):
    MINE = "mine"  # open actions the caller owns
    OVERDUE = "overdue"  # open actions past their due date, everyone's
    ALL = "all"  # every action: open ones first


@dataclass(frozen=True)
class Register:
    which: Which
    actions: tuple[ActionView, ...]  # the first ``limit``, due soonest first
    total: int


def register(session: Session, *, team_id: str, user_id: str, which: Which, today: date,
             limit: int = 50) -> Register:
    conditions: list[Any] = [Action.team_id == team_id]
    if which is Which.MINE:
        conditions += [Action.owner_id == user_id, Action.status == Status.OPEN]
    elif which is Which.OVERDUE:
        conditions += [Action.status == Status.OPEN, Action.due_date < today]
    total = session.scalar(select(func.count()).select_from(Action).where(*conditions)) or 0
    open_first = case((Action.status == Status.OPEN, 0), else_=1)
    rows = session.scalars(
        select(Action).where(*conditions)
        .options(selectinload(Action.trigger_point))
        .order_by(open_first, Action.due_date, Action.id).limit(limit))
    return Register(which=which, actions=tuple(view_of(a) for a in rows), total=total)
