"""Months as integers and the horizons of docs/reference/gap-maths.md.

A month is stored as ``year * 12 + (month - 1)`` so that ranges, comparisons and
"the month after" are plain integer arithmetic on large arrays.

Fiscal years are named after the calendar year in which they start: with an April
start, ``2026`` is April 2026 to March 2027 and ``2026-Q1`` is April to June 2026.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

Month = int

_MONTH_RE = re.compile(r"^\s*(\d{4})[-/.](\d{1,2})(?:[-/.]\d{1,2})?(?:[ T].*)?\s*$")
_COMPACT_RE = re.compile(r"^\s*(\d{4})(\d{2})\s*$")


def month(year: int, month_number: int) -> Month:
    return year * 12 + (month_number - 1)


def parse_month(value: object) -> Month | None:
    """``YYYY-MM`` (or a date / timestamp, read as its month); ``None`` if not a month."""
    if isinstance(value, datetime | date):
        return month(value.year, value.month)
    text = str(value)
    found = _MONTH_RE.match(text) or _COMPACT_RE.match(text)
    if not found:
        return None
    year, number = int(found.group(1)), int(found.group(2))
    return month(year, number) if 1 <= number <= 12 else None


def format_month(value: Month) -> str:
    year, index = divmod(int(value), 12)
    return f"{year:04d}-{index + 1:02d}"


def fiscal_year_of(value: Month, start_month: int) -> int:
    """The fiscal year (named by its starting calendar year) containing a month."""
    return (value - (start_month - 1)) // 12


def fiscal_year_start(fiscal_year: int, start_month: int) -> Month:
    return month(fiscal_year, start_month)


@dataclass(frozen=True, slots=True)
class Horizon:
    """An inclusive range of months; empty when ``start > end`` (``rest`` at year end)."""

    name: str
    start: Month
    end: Month

    @property
    def is_empty(self) -> bool:
        return self.start > self.end

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "start": format_month(self.start), "end": format_month(self.end)}


class HorizonError(ValueError):
    pass


HORIZON_HELP = "fy, ytd, rest, YYYY (fiscal year), YYYY-Qn or YYYY-MM"
_YEAR_RE = re.compile(r"^(?:fy)?(\d{4})$", re.IGNORECASE)
_QUARTER_RE = re.compile(r"^(\d{4})-?q([1-4])$", re.IGNORECASE)


def resolve_horizon(text: str, as_of: Month, fy_start_month: int = 1) -> Horizon:
    """Turn a horizon name into a month range around the as-of month ``as_of``."""
    name = text.strip().lower()
    fy_first = fiscal_year_start(fiscal_year_of(as_of, fy_start_month), fy_start_month)
    fy_last = fy_first + 11
    if name == "fy":
        return Horizon("fy", fy_first, fy_last)
    if name == "ytd":
        return Horizon("ytd", fy_first, as_of)
    if name == "rest":
        return Horizon("rest", as_of + 1, fy_last)
    if found := _YEAR_RE.match(name):
        first = fiscal_year_start(int(found.group(1)), fy_start_month)
        return Horizon(found.group(1), first, first + 11)
    if found := _QUARTER_RE.match(name):
        year, quarter = int(found.group(1)), int(found.group(2))
        first = fiscal_year_start(year, fy_start_month) + 3 * (quarter - 1)
        return Horizon(f"{year}-Q{quarter}", first, first + 2)
    if _MONTH_RE.match(name) and (single := parse_month(name)) is not None:
        return Horizon(format_month(single), single, single)
    raise HorizonError(f"unknown horizon {text!r}: use {HORIZON_HELP}")
