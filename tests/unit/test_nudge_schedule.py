"""When nudges fall due: owners' time zones, DST, weekends, catch-up, snooze."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sop_core.nudges import Occasion, latest_due, send_time

DUE = date(2026, 12, 10)  # a Thursday


def at(day: date, hour: int, minute: int = 0, tz: str = "Europe/Paris") -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(tz))


@pytest.mark.parametrize(("day", "hour", "expected"), [
    (date(2026, 12, 6), 12, None),                       # before the first occasion
    (date(2026, 12, 7), 8, None),                        # 3 days before, but before 09:00
    (date(2026, 12, 7), 9, ("before_3", date(2026, 12, 7))),
    (date(2026, 12, 9), 9, ("before_1", date(2026, 12, 9))),
    (date(2026, 12, 10), 9, ("due", DUE)),
    (date(2026, 12, 11), 9, ("overdue_1", date(2026, 12, 11))),
    # overdue_2 (Sat) and overdue_3 (Sun) move to Monday, where the escalation wins.
    (date(2026, 12, 12), 12, ("overdue_1", date(2026, 12, 11))),
    (date(2026, 12, 14), 9, ("escalate", date(2026, 12, 14))),
    (date(2026, 12, 21), 9, ("weekly", date(2026, 12, 21))),
    (date(2026, 12, 28), 8, ("weekly", date(2026, 12, 21))),
])
def test_the_schedule(day: date, hour: int, expected: tuple[str, date] | None) -> None:
    found = latest_due(DUE, now=at(day, hour), tz="Europe/Paris")
    assert ((found.kind, found.day) if found else None) == expected


def test_weekends_when_allowed() -> None:
    found = latest_due(DUE, now=at(date(2026, 12, 12), 9), tz="Europe/Paris", weekends=True)
    assert found == Occasion("overdue_2", date(2026, 12, 12))


def test_nine_in_the_owners_own_zone() -> None:
    # 09:00 in Tokyo is 00:00 UTC; in New York it is 14:00 UTC.
    instant = datetime(2026, 12, 9, 0, 30, tzinfo=UTC)
    assert latest_due(DUE, now=instant, tz="Asia/Tokyo") == Occasion("before_1",
                                                                        date(2026, 12, 9))
    assert latest_due(DUE, now=instant, tz="America/New_York") == Occasion(
        "before_3", date(2026, 12, 7))


@pytest.mark.parametrize("tz", ["Europe/Paris", "America/New_York"])
def test_nine_local_across_the_dst_change(tz: str) -> None:
    # Europe changes on Sun 2026-03-29, the US on Sun 2026-03-08: due the Wednesday after.
    due = date(2026, 4, 1) if tz == "Europe/Paris" else date(2026, 3, 11)
    before = due - timedelta(days=1)
    nine = send_time(Occasion("before_1", before), tz=tz)
    assert nine.astimezone(ZoneInfo(tz)).hour == 9
    just_before = (nine - timedelta(minutes=1)).astimezone(UTC)
    just_after = (nine + timedelta(minutes=1)).astimezone(UTC)
    assert latest_due(due, now=just_before, tz=tz).kind == "before_3"
    assert latest_due(due, now=just_after, tz=tz) == Occasion("before_1", before)
    # Summer time: 09:00 local is an hour earlier in UTC than the week before.
    winter = send_time(Occasion("x", before - timedelta(days=7)), tz=tz).astimezone(UTC)
    assert (winter.hour - nine.astimezone(UTC).hour) == 1


def test_after_downtime_only_the_latest_occasion_is_due() -> None:
    # The clock was down from before "3 days before" until the due day's afternoon.
    assert latest_due(DUE, now=at(DUE, 15), tz="Europe/Paris") == Occasion("due", DUE)


def test_snooze_silences_then_reminds_once_on_its_date() -> None:
    snooze = date(2026, 12, 16)
    assert latest_due(DUE, now=at(date(2026, 12, 15), 12), tz="UTC",
                      snoozed_until=snooze) is None
    assert latest_due(DUE, now=at(snooze, 10, tz="UTC"), tz="UTC",
                      snoozed_until=snooze) == Occasion("escalate", snooze)
    assert latest_due(DUE, now=at(date(2026, 12, 21), 10, tz="UTC"), tz="UTC",
                      snoozed_until=snooze) == Occasion("weekly", date(2026, 12, 21))


def test_custom_days_before_and_hour() -> None:
    found = latest_due(DUE, now=at(date(2026, 12, 3), 7, tz="UTC"), tz="UTC",
                       days_before=(7,), hour=7)
    assert found == Occasion("before_7", date(2026, 12, 3))
