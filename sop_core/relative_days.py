"""How a date reads to the person it is for: "today", "tomorrow", "in 4 days",
"overdue by 2 days" (pure).

``today`` is always that person's own date (their Slack time zone): a milestone on
Thursday 17 December is "due today" for an owner in Sydney on the 17th there, while
it is still the 16th in New York and in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def local_date(now: datetime, tz: str | None, default_tz: str = "UTC") -> date:
    """``now`` as a date in ``tz`` (``default_tz`` when unknown or not a zone)."""
    for name in (tz, default_tz, "UTC"):
        if not name:
            continue
        try:
            return now.astimezone(ZoneInfo(name)).date()
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return now.astimezone(UTC).date()  # pragma: no cover - UTC always exists


def days_until(day: date, today: date) -> str:
    """``today``, ``tomorrow``, ``in N days`` or ``overdue by N day(s)``."""
    days = (day - today).days
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    if days > 1:
        return f"in {days} days"
    late = -days
    return f"overdue by {late} day{'s' if late != 1 else ''}"
