"""When an action's owner is nudged (pure date arithmetic, no I/O).

For each open milestone, and for the action's due date:
- ``N`` days before (settings, default 3 and 1), on the day, then overdue daily for
  3 days, then an escalation (a post in the gap's thread naming owner and creator),
  then weekly;
- at the nudge hour (09:00) in the **owner's** time zone;
- nothing on weekends by default: an occasion that falls on a Saturday or Sunday moves
  to the Monday after (and collapses with one already there);
- after downtime only the latest occasion that has passed is due (one catch-up send,
  not one per missed day); a snooze skips every occasion before its date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

OVERDUE_DAILY = 3
ESCALATE_AFTER = OVERDUE_DAILY + 1
WEEK = 7


@dataclass(frozen=True)
class Occasion:
    kind: str  # before_3, before_1, due, overdue_1..3, escalate, weekly
    day: date  # the local day it is sent (after the weekend move)

    @property
    def escalates(self) -> bool:
        return self.kind == "escalate"


def _moved_off_weekend(day: date) -> date:
    return day + timedelta(days=(7 - day.weekday()) % 7) if day.weekday() >= 5 else day


def _schedule(due: date, days_before: Sequence[int], until: date) -> list[Occasion]:
    """Every occasion up to ``until`` (before the weekend rule), in date order."""
    occasions = [Occasion(f"before_{n}", due - timedelta(days=n))
                 for n in sorted(set(days_before), reverse=True) if n > 0]
    occasions.append(Occasion("due", due))
    occasions += [Occasion(f"overdue_{k}", due + timedelta(days=k))
                  for k in range(1, OVERDUE_DAILY + 1)]
    escalation = due + timedelta(days=ESCALATE_AFTER)
    occasions.append(Occasion("escalate", escalation))
    weeks = (until - escalation).days // WEEK
    # Only the last two weekly occasions up to `until` can matter (the last may move past
    # `until` over a weekend): jump straight to them.
    occasions += [Occasion("weekly", escalation + timedelta(days=WEEK * k))
                  for k in (weeks - 1, weeks) if k >= 1]
    return occasions


@cache
def _zone(tz: str) -> ZoneInfo:
    """``ZoneInfo(tz)``, held: ZoneInfo keeps only the 8 most recent zones alive, so a
    sweep over owners in more zones than that would re-read the tz files for each one."""
    return ZoneInfo(tz)


def last_send_day(now: datetime, tz: str, hour: int = 9) -> date:
    """The latest local day whose send time (``hour`` in ``tz``) has passed at ``now``."""
    local = now.astimezone(_zone(tz))
    today = local.date()
    return today if local.time() >= time(hour) else today - timedelta(days=1)


def latest_due(due: date, *, now: datetime, tz: str, days_before: Sequence[int] = (3, 1),
               hour: int = 9, weekends: bool = False, snoozed_until: date | None = None
               ) -> Occasion | None:
    """The most recent occasion whose send time (``hour`` local) has passed at ``now``."""
    return latest_due_by(due, last_send_day(now, tz, hour), days_before=days_before,
                         weekends=weekends, snoozed_until=snoozed_until)


def latest_due_by(due: date, last_day: date, *, days_before: Sequence[int] = (3, 1),
                  weekends: bool = False, snoozed_until: date | None = None
                  ) -> Occasion | None:
    """``latest_due`` once the owner's ``last_send_day`` is known: a function of dates
    only, so a sweep can compute it once per distinct (due, last day, snooze)."""
    best: Occasion | None = None
    for occasion in _schedule(due, days_before, last_day):
        day = occasion.day if weekends else _moved_off_weekend(occasion.day)
        # Same day after the weekend move: the later occasion (the stronger one) wins.
        if day <= last_day and (best is None or day >= best.day):
            best = Occasion(occasion.kind, day)
    if best is None or snoozed_until is None or best.day >= snoozed_until:
        return best
    # Snoozed: silent until the snooze date, then one reminder of where things stand.
    wake = snoozed_until if weekends else _moved_off_weekend(snoozed_until)
    return Occasion(best.kind, wake) if wake <= last_day else None


def send_time(occasion: Occasion, *, tz: str, hour: int = 9) -> datetime:
    """When an occasion is sent, as an aware datetime in the owner's zone."""
    return datetime.combine(occasion.day, time(hour), tzinfo=ZoneInfo(tz))


def next_occasion_day(due: date, after: date, *, days_before: Sequence[int] = (3, 1),
                      weekends: bool = False, snoozed_until: date | None = None) -> date:
    """The first local day after ``after`` on which ``latest_due_by`` gives a new
    occasion: until then, an item whose occasions up to ``after`` are handled has
    nothing to send, whatever the owner's zone (occasion days are calendar days)."""
    escalation = due + timedelta(days=ESCALATE_AFTER)
    days = {occasion.day for occasion in _schedule(due, days_before, after)}
    first_week = max(1, (after - escalation).days // WEEK)
    days |= {escalation + timedelta(days=WEEK * k) for k in range(first_week, first_week + 3)}
    if snoozed_until is not None:
        days.add(snoozed_until)
    if not weekends:
        days = {_moved_off_weekend(day) for day in days}
    for day in sorted(d for d in days if d > after):
        occasion = latest_due_by(due, day, days_before=days_before, weekends=weekends,
                                 snoozed_until=snoozed_until)
        if occasion is not None and occasion.day == day:
            return day
    return after + timedelta(days=1)  # not reached (weekly occasions never end): look again
