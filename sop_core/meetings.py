"""A channel's S&OP meeting and when its pre-meeting digest is due (pure, no I/O).

``/gap meeting 2026-12-08 10:00 tz=Europe/Paris every=month lead=24h``

- The meeting is a **wall-clock** time in its own IANA zone: a weekly 10:00 meeting in
  Paris stays at 10:00 Paris time on both sides of a DST change (its UTC instant moves).
- ``every=month`` keeps the first meeting's day of the month; in a shorter month it falls
  on the month's last day (a meeting on the 31st is on 30 April, 28/29 February, then
  31 May again). ``week``, ``2weeks`` and ``4weeks`` add whole local days.
- ``lead`` is elapsed time: the digest is due at the occurrence's instant − lead. When
  that instant falls on a Saturday or Sunday in the meeting's zone, the digest goes out
  on the last working day before, at the same local time (a Monday meeting with
  ``lead=24h`` gets its digest on Friday, not on Sunday).
- The digest of an occurrence is due from its digest instant until the meeting starts; a
  clock that was down past the start of a meeting sends nothing for it, one that was down
  only during the lead window catches up once (the caller's outbox key makes it once).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_LEAD = timedelta(hours=24)
MIN_LEAD = timedelta(minutes=5)
MAX_LEAD = timedelta(days=14)
EXAMPLE = "`/gap meeting 2026-12-08 10:00 tz=Europe/Paris every=month lead=24h`"


class MeetingError(ValueError):
    """Meeting input a person can fix; the message names what was wrong."""


class Every(StrEnum):
    MONTH = "month"
    WEEK = "week"
    TWO_WEEKS = "2weeks"
    FOUR_WEEKS = "4weeks"

    @property
    def days(self) -> int | None:
        """The step in local days (None for monthly)."""
        return {Every.WEEK: 7, Every.TWO_WEEKS: 14, Every.FOUR_WEEKS: 28}.get(self)

    @property
    def shortest(self) -> timedelta:
        """The shortest time between two occurrences (a DST change can take an hour)."""
        return timedelta(days=self.days or 28) - timedelta(hours=1)

    @property
    def label(self) -> str:
        return {Every.MONTH: "every month", Every.WEEK: "every week",
                Every.TWO_WEEKS: "every 2 weeks", Every.FOUR_WEEKS: "every 4 weeks"}[self]


_EVERY_ALIASES = {
    "month": Every.MONTH, "monthly": Every.MONTH, "1month": Every.MONTH,
    "week": Every.WEEK, "weekly": Every.WEEK, "1week": Every.WEEK,
    "2weeks": Every.TWO_WEEKS, "2week": Every.TWO_WEEKS, "biweekly": Every.TWO_WEEKS,
    "fortnight": Every.TWO_WEEKS, "fortnightly": Every.TWO_WEEKS,
    "4weeks": Every.FOUR_WEEKS, "4week": Every.FOUR_WEEKS,
}


@dataclass(frozen=True)
class Meeting:
    """A recurring meeting: its first occurrence as local wall-clock time in ``tz``."""

    first: datetime  # naive, local to tz
    tz: str
    every: Every = Every.MONTH
    lead: timedelta = DEFAULT_LEAD

    def __post_init__(self) -> None:
        if self.first.tzinfo is not None:
            raise ValueError("Meeting.first is a naive local wall-clock time")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def lead_minutes(self) -> int:
        return int(self.lead.total_seconds() // 60)

    def local(self, index: int) -> datetime:
        """Occurrence ``index`` (0 = the first) as naive local wall-clock time."""
        if index < 0:
            raise ValueError("occurrences are counted from 0")
        step = self.every.days
        if step is not None:
            return self.first + timedelta(days=step * index)
        months = self.first.month - 1 + index
        year, month = self.first.year + months // 12, months % 12 + 1
        day = min(self.first.day, calendar.monthrange(year, month)[1])
        return self.first.replace(year=year, month=month, day=day)

    def occurrence(self, index: int) -> datetime:
        """Occurrence ``index`` as an aware UTC instant.

        A wall-clock time that does not exist that day (inside a spring-forward gap)
        is read with the offset before the change, as ``zoneinfo`` does (02:30 → 03:30).
        """
        return self.local(index).replace(tzinfo=self.zone).astimezone(UTC)

    def digest_at(self, occurrence: datetime) -> datetime:
        """When the digest for ``occurrence`` is due (aware UTC)."""
        return occurrence.astimezone(UTC) - self.lead

    def send_at(self, occurrence: datetime) -> datetime:
        """When the digest for ``occurrence`` goes out: :meth:`digest_at`, or the same
        local time on the Friday before when that falls on a weekend (aware UTC)."""
        due = self.digest_at(occurrence)
        local = due.astimezone(self.zone)
        weekend_days = local.weekday() - 4  # Saturday 1, Sunday 2
        if weekend_days <= 0:
            return due
        friday = local.replace(tzinfo=None) - timedelta(days=weekend_days)
        return friday.replace(tzinfo=self.zone).astimezone(UTC)

    def _first_index_near(self, instant: datetime) -> int:
        """An index at or before the first occurrence after ``instant`` (a cheap guess)."""
        local = instant.astimezone(self.zone).replace(tzinfo=None)
        if local <= self.first:
            return 0
        step = self.every.days
        if step is not None:
            return max((local - self.first).days // step - 1, 0)
        months = (local.year - self.first.year) * 12 + local.month - self.first.month
        return max(months - 1, 0)

    def occurrences_after(self, instant: datetime) -> Iterator[datetime]:
        """Occurrences starting strictly after ``instant`` (aware), in order, as UTC."""
        index = self._first_index_near(instant)
        while True:
            start = self.occurrence(index)
            if start > instant:
                yield start
            index += 1

    def next_after(self, instant: datetime) -> datetime:
        """The first occurrence that has not started at ``instant``."""
        return next(self.occurrences_after(instant))

    def upcoming(self, instant: datetime, count: int = 3) -> list[datetime]:
        found = self.occurrences_after(instant)
        return [next(found) for _ in range(count)]

    def due_digest(self, now: datetime) -> datetime | None:
        """The occurrence whose digest is due at ``now``: the next meeting that has not
        started yet, once its digest is due (:meth:`send_at`); else None."""
        start = self.next_after(now)
        return start if self.send_at(start) <= now else None


# --------------------------------------------------------------------------------------
# Parsing the command text
# --------------------------------------------------------------------------------------

_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_DATE_TIME = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}[Tt]")
_TIME = re.compile(r"^(\d{1,2})(?:[:h.](\d{2}))?$", re.IGNORECASE)
_LEAD_PART = re.compile(r"(\d+)\s*(d|h|m)", re.IGNORECASE)
_LEAD = re.compile(r"^(?:\d+\s*[dhm]\s*)+$", re.IGNORECASE)


def parse_lead(text: str) -> timedelta:
    """``24h``, ``90m``, ``2d``, ``1d12h`` → a duration (MIN_LEAD … MAX_LEAD)."""
    cleaned = text.strip().lower()
    if not _LEAD.match(cleaned):
        raise MeetingError(f"lead=“{text}” is not a duration: use hours, days or minutes, "
                           "e.g. lead=24h, lead=2d or lead=90m")
    units = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
    lead = sum((int(n) * units[u] for n, u in _LEAD_PART.findall(cleaned)), timedelta())
    if lead < MIN_LEAD:
        raise MeetingError(f"lead=“{text}” is too short: the digest needs at least 5 minutes "
                           "before the meeting")
    if lead > MAX_LEAD:
        raise MeetingError(f"lead=“{text}” is too long: at most 14 days before the meeting")
    return lead


def parse_every(text: str) -> Every:
    found = _EVERY_ALIASES.get(text.strip().lower().replace(" ", "").replace("-", ""))
    if found is None:
        raise MeetingError(f"every=“{text}” is not a recurrence: use every=month, week, "
                           "2weeks or 4weeks")
    return found


def parse_zone(text: str) -> str:
    name = text.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MeetingError(f"tz=“{text}” is not a time zone: use an IANA name such as "
                           "Europe/Paris or America/New_York") from None
    return name


def _parse_date(text: str) -> date:
    found = _DATE.match(text)
    if not found:
        raise MeetingError(f"“{text}” is not a date: use YYYY-MM-DD, e.g. {EXAMPLE}")
    try:
        return date(*(int(g) for g in found.groups()))
    except ValueError:
        raise MeetingError(f"“{text}” is not a date in the calendar") from None


def _parse_time(text: str) -> time:
    found = _TIME.match(text)
    if not found:
        raise MeetingError(f"“{text}” is not a time of day: use HH:MM (24 h), e.g. 10:00")
    hour, minute = int(found.group(1)), int(found.group(2) or 0)
    if hour > 23 or minute > 59:
        raise MeetingError(f"“{text}” is not a time of day: use HH:MM (24 h), e.g. 10:00")
    return time(hour, minute)


def parse_meeting(text: str, *, default_tz: str = "UTC") -> Meeting:
    """``2026-12-08 10:00 [tz=Europe/Paris] [every=month] [lead=24h]`` → a Meeting.

    Options may come in any order after the date and time; raises :class:`MeetingError`
    naming what was wrong.
    """
    words = text.split()
    positional: list[str] = []
    options: dict[str, str] = {}
    for word in words:
        key, equals, value = word.partition("=")
        if not equals:
            if options:
                raise MeetingError(f"“{word}” comes after the options: put the date and time "
                                   f"first, e.g. {EXAMPLE}")
            positional.append(word)
            continue
        key = key.strip().lower()
        if key not in {"tz", "every", "lead"}:
            raise MeetingError(f"unknown option “{key}=”: use tz=, every= and lead=, "
                               f"e.g. {EXAMPLE}")
        if key in options:
            raise MeetingError(f"{key}= is given twice")
        if not value.strip():
            raise MeetingError(f"no value after {key}=")
        options[key] = value
    if len(positional) == 1 and _DATE_TIME.match(positional[0]):
        positional = re.split(r"[Tt]", positional[0], maxsplit=1)
    if not positional:
        raise MeetingError(f"give the first meeting's date and time, e.g. {EXAMPLE}")
    day = _parse_date(positional[0])
    if len(positional) < 2:
        raise MeetingError(f"add the meeting's time of day after the date, e.g. {EXAMPLE}")
    if len(positional) > 2:
        raise MeetingError(f"“{' '.join(positional[2:])}” is not understood: use {EXAMPLE}")
    at = _parse_time(positional[1])
    tz = parse_zone(options["tz"]) if "tz" in options else default_tz
    every = parse_every(options["every"]) if "every" in options else Every.MONTH
    lead = parse_lead(options["lead"]) if "lead" in options else DEFAULT_LEAD
    if lead >= every.shortest:
        raise MeetingError(f"lead={options.get('lead', '24h')} is longer than the time "
                           f"between meetings ({every.label})")
    return Meeting(first=datetime.combine(day, at), tz=tz, every=every, lead=lead)


def lead_label(lead: timedelta) -> str:
    """``24h``, ``2d``, ``1h30m``: the shortest way to say a lead."""
    minutes = int(lead.total_seconds() // 60)
    if minutes % (24 * 60) == 0 and minutes >= 48 * 60:
        return f"{minutes // (24 * 60)}d"
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}m"
    return f"{hours}h" + (f"{rest:02d}m" if rest else "")
