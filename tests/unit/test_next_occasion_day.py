"""``next_occasion_day``: the first day after a given one that brings a new nudge."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from sop_core.nudges import latest_due_by, next_occasion_day


@pytest.mark.parametrize("weekends", [False, True])
@pytest.mark.parametrize("days_before", [(3, 1), (7, 3, 1), ()])
def test_no_new_occasion_comes_before_it_and_one_comes_on_it(
        weekends: bool, days_before: tuple[int, ...]) -> None:
    rng = random.Random(4)
    start = date(2026, 11, 2)
    for _ in range(400):
        due = start + timedelta(days=rng.randint(0, 60))
        after = due + timedelta(days=rng.randint(-20, 60))
        snooze = after + timedelta(days=rng.randint(-3, 12)) if rng.random() < 0.3 else None
        schedule = {"days_before": days_before, "weekends": weekends, "snoozed_until": snooze}
        day = next_occasion_day(due, after, **schedule)
        assert day > after
        now_due = latest_due_by(due, after, **schedule)
        for quiet in range(1, (day - after).days):
            assert latest_due_by(due, after + timedelta(days=quiet), **schedule) == now_due
        new = latest_due_by(due, day, **schedule)
        assert new is not None and new != now_due and new.day == day


def test_weekly_after_the_escalation_and_off_the_weekend() -> None:
    due = date(2026, 12, 1)  # Tuesday; escalation Saturday 5 → Monday 7
    assert next_occasion_day(due, date(2026, 12, 4)) == date(2026, 12, 7)
    # Weekly from Saturday 5: Saturday 12 → Monday 14.
    assert next_occasion_day(due, date(2026, 12, 7)) == date(2026, 12, 14)
    assert next_occasion_day(due, date(2026, 12, 7), weekends=True) == date(2026, 12, 12)


def test_a_snooze_silences_until_its_day() -> None:
    due = date(2026, 12, 10)  # Thursday
    assert next_occasion_day(due, date(2026, 12, 1)) == date(2026, 12, 7)  # 3 days before
    snoozed = next_occasion_day(due, date(2026, 12, 1), snoozed_until=date(2026, 12, 15))
    assert snoozed == date(2026, 12, 15)
