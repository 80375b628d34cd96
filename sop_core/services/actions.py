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
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from sop_core.models import (
    Action,
    ActionChange,
    ActionUpdate,
    ChannelSettings,
    Milestone,
    SlackUser,
    Status,
    TriggerPoint,
    utcnow,
)
from sop_core.relative_days import local_date
from sop_core.services import triggers
from sop_core.services.triggers import NotFound
from sop_core.smart import SmartActionInput
from sop_core.visibility import Visibility

SNOOZE_DAYS = (1, 3, 7)


class UpdateKind(enum.StrEnum):
    CREATED = "created"
    PROGRESS = "progress"
    MILESTONE_DONE = "milestone_done"
    SNOOZED = "snoozed"
    COMPLETED = "completed"
    REASSIGNED = "reassigned"
    EDITED = "edited"
    CANCELLED = "cancelled"


class ActionRefused(Exception):
    """A change that is not made; the message is meant for the person who asked."""


class NotAllowed(ActionRefused):
    def __str__(self) -> str:
        return ("Only the action's owner, the person who created it or a lead of this "
                "channel can change it. Ask one of them, or ask to be made a lead.")


class Closed(ActionRefused):
    def __init__(self, status: str = Status.DONE) -> None:
        super().__init__(status)
        self.status = status

    def __str__(self) -> str:
        if self.status == Status.CANCELLED:
            return "This action was cancelled (not doing): nothing more to change."
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
    edited_at: datetime | None = None
    edited_by: str | None = None
    cancel_reason: str | None = None
    # This change moved its gap's status (e.g. to covered): the gap's message must show it.
    gap_status_changed: bool = False

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
        edited_at=action.edited_at, edited_by=action.edited_by,
        cancel_reason=action.cancel_reason,
    )


def local_today(timezone: str, now: datetime | None = None) -> date:
    """Today's date in the installation's time zone (``Settings.timezone``)."""
    return (now or utcnow()).astimezone(ZoneInfo(timezone)).date()


def zone_of(session: Session, team_id: str, user_id: str) -> str | None:
    """A person's time zone as last read from Slack (``users.info``), if known."""
    user = session.get(SlackUser, (team_id, user_id))
    return user.tz if user is not None and not user.deleted else None


def person_today(session: Session, team_id: str, user_id: str, *, default_tz: str,
                 now: datetime | None = None) -> date:
    """Today in that person's own zone (the installation's until Slack has told us)."""
    return local_date(now or utcnow(), zone_of(session, team_id, user_id), default_tz)


# ------------------------------------------------------------------------------------
# Creating
# ------------------------------------------------------------------------------------

def linked_gap(session: Session, team_id: str, point_id: int) -> LinkedGap:
    """What the SMART modal is prefilled from; :class:`NotFound` outside the workspace."""
    return _gap(triggers.get(session, team_id, point_id))


@dataclass(frozen=True)
class ModalDefaults:
    """What the SMART modal is prefilled with, besides the gap's own figures."""

    gap: LinkedGap
    uncovered: float  # the part of |gap| no open action covers yet (0: fully covered)
    due_date: date | None  # the day before the channel's next meeting, if after today


def modal_defaults(session: Session, team_id: str, point_id: int, *, now: datetime,
                   today: date) -> ModalDefaults:
    """Prefills for a new action on a gap: :class:`NotFound` outside the workspace."""
    from sop_core.services.coverage import coverage, open_impacts
    from sop_core.services.digests import get_meeting

    point = triggers.get(session, team_id, point_id)
    covered = coverage(point.gap, open_impacts(session, [point.id])[point.id])
    meeting = get_meeting(session, team_id, point.channel_id)
    due = None
    if meeting is not None:
        day_before = meeting.next_after(now).astimezone(meeting.zone).date() - timedelta(days=1)
        due = day_before if day_before > today else None
    return ModalDefaults(gap=_gap(point), uncovered=covered.uncovered, due_date=due)


def point_in_thread(session: Session, team_id: str, channel_id: str, ts: str | None,
                    thread_ts: str | None) -> LinkedGap | None:
    """The trigger point whose message, or whose thread, holds a message (or None)."""
    for candidate in (thread_ts, ts):
        if candidate:
            point = triggers.by_thread(session, team_id, channel_id, candidate)
            if point is not None:
                return _gap(point)
    return None


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
        before = point.status
        triggers.refresh_coverage(session, point.id)  # covered once actions reach the gap
        return replace(view_of(action), gap_status_changed=point.status != before)


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
        raise Closed(action.status)
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
            raise Closed(action.status)
        kind, value, note = change(session, action)
        session.add(ActionUpdate(action_id=action.id, user_id=user_id, kind=kind,
                                 value=value, note=note))
        session.flush()
        point, moved = action.trigger_point, False
        if point is not None:  # coverage may have changed
            before = point.status
            triggers.refresh_coverage(session, point.id)
            moved = point.status != before
        return replace(view_of(action), gap_status_changed=moved)


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


# Fields an edit may change, with how each is kept as text in the history.
EDITABLE = ("title", "due_date", "expected_impact", "resources")


CENT = Decimal("0.01")


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(Decimal(value).quantize(CENT))  # to the cent: "350000.00"
    return str(value)


def edit(sessions: sessionmaker[Session], data: SmartActionInput, *, team_id: str,
         action_id: int, user_id: str, leads: Iterable[str] = (),
         now: datetime | None = None) -> ActionView:
    """Apply an edit (title, due date, expected impact, resources, open milestones).

    ``data`` is the whole SMART form, validated; fields an edit does not offer (owner,
    metric, baseline, target, confidence) are ignored here. Open milestones are matched
    by name: a kept name keeps its milestone (and its nudges' history), a new name adds
    one, a missing name removes it; done milestones never change. Each changed field is
    kept as an :class:`ActionChange`; nothing changed, nothing recorded.
    """
    now = now or utcnow()

    def apply(session: Session, action: Action) -> tuple[UpdateKind, float | None, str | None]:
        changes: list[tuple[str, str | None, str | None]] = []
        for name in EDITABLE:
            before, after = getattr(action, name), getattr(data, name)
            if _as_text(before) != _as_text(after):
                changes.append((name, _as_text(before), _as_text(after)))
                setattr(action, name, after)
        unmatched = [m for m in action.milestones if m.done_at is None]
        for wanted in data.milestones:
            found = next((m for m in unmatched if m.name == wanted.name), None)
            if found is None:
                action.milestones.append(Milestone(name=wanted.name, due_date=wanted.due_date))
                changes.append(("milestone", None, f"{wanted.name} · {wanted.due_date}"))
                continue
            unmatched.remove(found)
            if found.due_date != wanted.due_date:
                changes.append(("milestone", f"{found.name} · {found.due_date}",
                                f"{wanted.name} · {wanted.due_date}"))
                found.due_date = wanted.due_date
        for gone in unmatched:
            changes.append(("milestone", f"{gone.name} · {gone.due_date}", None))
            action.milestones.remove(gone)
        if not changes:
            raise NothingChanged()
        for name, before, after in changes:
            session.add(ActionChange(action_id=action.id, user_id=user_id, field=name,
                                     before=before, after=after, changed_at=now))
        action.edited_at, action.edited_by = now, user_id
        # The stored next nudge days of the action and of its changed or new milestones
        # are reset on flush (sop_core/nudge_days.py): dates changed.
        fields = sorted({name for name, _, _ in changes}, key=[*EDITABLE, "milestone"].index)
        return UpdateKind.EDITED, None, ", ".join(fields)

    return _change(sessions, apply, team_id=team_id, action_id=action_id, user_id=user_id,
                   leads=leads)


class NothingChanged(InvalidChange):
    def __str__(self) -> str:
        return "Nothing was changed."


def changes_of(session: Session, team_id: str, action_id: int) -> list[ActionChange]:
    """An action's edits, oldest first (:class:`NotFound` outside the workspace)."""
    _get(session, team_id, action_id)
    return list(session.scalars(select(ActionChange).where(
        ActionChange.action_id == action_id).order_by(ActionChange.id)))


def cancel(sessions: sessionmaker[Session], *, team_id: str, action_id: int, reason: str,
           user_id: str, leads: Iterable[str] = ()) -> ActionView:
    """Not doing it: the action leaves coverage, nudges and the open lists; the reason
    stays on the action and in its history."""
    def apply(session: Session, action: Action) -> tuple[UpdateKind, float | None, str | None]:
        action.status = Status.CANCELLED
        action.cancel_reason = reason
        return UpdateKind.CANCELLED, None, reason

    return _change(sessions, apply, team_id=team_id, action_id=action_id, user_id=user_id,
                   leads=leads)


def named_by(session: Session, action: Action) -> str:
    """Who made the current owner the owner: the latest reassignment to them, else the
    creator."""
    note = session.scalar(
        select(ActionUpdate.user_id).where(
            ActionUpdate.action_id == action.id, ActionUpdate.kind == UpdateKind.REASSIGNED,
            ActionUpdate.note.like(f"% -> {action.owner_id}"))
        .order_by(ActionUpdate.id.desc()).limit(1))
    return note or action.creator_id


def hand_back(sessions: sessionmaker[Session], *, team_id: str, action_id: int,
              user_id: str) -> tuple[ActionView, str]:
    """The owner gives an action they were named to back to whoever named them; the
    action and who owns it now."""
    back_to: list[str] = []

    def apply(session: Session, action: Action) -> tuple[UpdateKind, float | None, str | None]:
        if action.owner_id != user_id:
            raise InvalidChange("You no longer own this action, so there is nothing to hand "
                                "back.")
        giver = named_by(session, action)
        if giver == user_id:
            raise InvalidChange("You made yourself the owner: reassign it from its card "
                                "instead.")
        action.owner_id = giver
        back_to.append(giver)
        return UpdateKind.REASSIGNED, None, f"{user_id} -> {giver} (handed back)"

    view = _change(sessions, apply, team_id=team_id, action_id=action_id, user_id=user_id,
                   leads=())
    return view, back_to[0]


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
             limit: int = 50, visibility: Visibility | None = None) -> Register:
    """The register as ``which`` selects it, only the actions the audience may see (in a
    channel it allows, or owned or created by its person; all for ``None``)."""
    conditions: list[Any] = [Action.team_id == team_id]
    if visibility is not None:
        own = ((Action.owner_id == visibility.user_id, Action.creator_id == visibility.user_id)
               if visibility.user_id is not None else ())
        conditions.append(or_(Action.channel_id.in_(sorted(visibility.channels)), *own))
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
