"""Each open action's and milestone's next nudge day, kept so the sweep reads little.

``next_nudge_day`` is the local calendar day of the item's next nudge occasion that has
not been handled (``sop_core.nudges.next_occasion_day``); occasion days do not depend on
the owner's zone, which only decides when that day's 09:00 comes. So the minute sweep
reads only items whose day is at most tomorrow in UTC (no zone is further ahead), plus
those not worked out yet (None) whose due date is near. The sweep itself stores the day
(``sop_core.services.followup``); everything else only resets it:

- any change of an action's due date, snooze, owner, workspace or status, and of a
  milestone's due date or done state, sets it back to None (or to ``NEVER`` once the
  item is done or closed) in the same flush, whichever code path made the change;
- a change of an owner's time zone resets their open items (``reset_owner``).

An hourly full sweep reads every open item near its due date regardless (the safety
net for anything written around the ORM).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from sop_core.models import Action, Milestone, Status

NEVER = date(9999, 12, 31)  # done or closed: never read by the sweep
ACTION_FIELDS = ("due_date", "snoozed_until", "owner_id", "team_id", "status")
MILESTONE_FIELDS = ("due_date", "done_at", "action_id")


def _changed(obj: Any, fields: tuple[str, ...]) -> bool:
    state = obj._sa_instance_state
    return any(state.attrs[name].history.has_changes() for name in fields)


def _is_open(action: Action | None) -> bool:
    return action is None or action.status in (None, Status.OPEN)  # None: the default


def _reset_action(action: Action) -> None:
    is_open = _is_open(action)
    action.next_nudge_day = None if is_open else NEVER
    for milestone in action.milestones:
        milestone.next_nudge_day = None if is_open and milestone.done_at is None else NEVER


@event.listens_for(Session, "before_flush")
def _reset_changed(session: Session, _context: Any, _instances: Any) -> None:
    for obj in list(session.new) + list(session.dirty):
        new = obj in session.new
        if isinstance(obj, Action) and (new or _changed(obj, ACTION_FIELDS)):
            _reset_action(obj)
        elif isinstance(obj, Milestone) and (new or _changed(obj, MILESTONE_FIELDS)):
            still_open = obj.done_at is None and _is_open(obj.action)
            obj.next_nudge_day = None if still_open else NEVER


def reset_owner(session: Session, team_id: str, user_id: str) -> None:
    """Their open items' days are worked out again at the next sweep (their zone
    changed)."""
    owned = (Action.team_id == team_id, Action.owner_id == user_id,
             Action.status == Status.OPEN)
    session.execute(update(Action).where(*owned).values(next_nudge_day=None)
                    .execution_options(synchronize_session=False))
    mine = select(Action.id).where(*owned)
    session.execute(update(Milestone).where(Milestone.action_id.in_(mine),
                                            Milestone.done_at.is_(None))
                    .values(next_nudge_day=None).execution_options(synchronize_session=False))
