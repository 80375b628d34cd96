"""Meetings: parsing ``/gap meeting``, occurrences across DST and month ends, digest times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sop_core.meetings import Every, Meeting, MeetingError, lead_label, parse_meeting

PARIS, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ------------------------------------------------------------------------------ parsing

def test_the_full_command() -> None:
    meeting = parse_meeting("2026-12-08 10:00 tz=Europe/Paris every=month lead=24h")
    assert meeting == Meeting(first=datetime(2026, 12, 8, 10, 0), tz="Europe/Paris",
                              every=Every.MONTH, lead=timedelta(hours=24))


def test_defaults_options_in_any_order_and_aliases() -> None:
    assert parse_meeting("2026-12-08 9:30", default_tz="Asia/Tokyo") == Meeting(
        first=datetime(2026, 12, 8, 9, 30), tz="Asia/Tokyo", every=Every.MONTH,
        lead=timedelta(hours=24))
    meeting = parse_meeting("2026-12-08T14:00 lead=1d12h every=Weekly tz=America/New_York")
    assert (meeting.every, meeting.lead, meeting.tz) == (
        Every.WEEK, timedelta(hours=36), "America/New_York")
    assert parse_meeting("2026-12-08 10:00 every=fortnightly lead=90m").every == Every.TWO_WEEKS
    assert parse_meeting("2026-12-08 10:00 every=4weeks lead=2d").lead == timedelta(days=2)


@pytest.mark.parametrize(("text", "message"), [
    ("", "give the first meeting's date and time"),
    ("tomorrow 10:00", "“tomorrow” is not a date"),
    ("2026-02-30 10:00", "“2026-02-30” is not a date in the calendar"),
    ("2026-12-08", "add the meeting's time of day"),
    ("2026-12-08 25:00", "“25:00” is not a time of day"),
    ("2026-12-08 10:00 tz=Europe/Pariss", "tz=“Europe/Pariss” is not a time zone"),
    ("2026-12-08 10:00 every=quarter", "every=“quarter” is not a recurrence"),
    ("2026-12-08 10:00 lead=soon", "lead=“soon” is not a duration"),
    ("2026-12-08 10:00 lead=1m", "too short"),
    ("2026-12-08 10:00 lead=15d", "too long"),
    ("2026-12-08 10:00 every=week lead=7d", "longer than the time between meetings"),
    ("2026-12-08 10:00 room=3", "unknown option “room=”"),
    ("2026-12-08 10:00 tz=UTC tz=UTC", "tz= is given twice"),
    ("2026-12-08 10:00 tz=UTC extra", "“extra” comes after the options"),
    ("2026-12-08 10:00 11:00", "“11:00” is not understood"),
])
def test_bad_input_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(MeetingError, match=message):
        parse_meeting(text)


def test_lead_labels() -> None:
    assert [lead_label(timedelta(minutes=m)) for m in (90, 24 * 60, 48 * 60, 30, 36 * 60)] == [
        "1h30m", "24h", "2d", "30m", "36h"]


# ------------------------------------------------------------------------------ occurrences

def test_weekly_in_paris_keeps_its_wall_clock_time_across_the_autumn_change() -> None:
    # Summer time ends on Sunday 25 October 2026 in Europe.
    meeting = Meeting(first=datetime(2026, 10, 12, 10, 0), tz="Europe/Paris", every=Every.WEEK)
    starts = [meeting.occurrence(i) for i in range(3)]
    assert starts == [utc(2026, 10, 12, 8), utc(2026, 10, 19, 8), utc(2026, 10, 26, 9)]
    assert {s.astimezone(PARIS).strftime("%a %H:%M") for s in starts} == {"Mon 10:00"}
    # The digest 24 h before the Monday after the change: Sunday 10:00 local (CET).
    assert meeting.digest_at(starts[2]).astimezone(PARIS) == datetime(2026, 10, 25, 10, 0,
                                                                       tzinfo=PARIS)


def test_weekly_in_paris_across_the_spring_change() -> None:
    # Summer time starts on Sunday 28 March 2027.
    meeting = Meeting(first=datetime(2027, 3, 22, 10, 0), tz="Europe/Paris", every=Every.WEEK,
                      lead=timedelta(hours=24))
    assert [meeting.occurrence(i) for i in range(2)] == [utc(2027, 3, 22, 9),
                                                         utc(2027, 3, 29, 8)]
    # 24 elapsed hours before Monday 10:00 CEST (08:00 UTC): Sunday 08:00 UTC, which is
    # already 10:00 CEST that day (the change is at 02:00).
    assert meeting.digest_at(meeting.occurrence(1)) == utc(2027, 3, 28, 8)


def test_weekly_in_new_york_across_both_changes() -> None:
    # DST ends 1 November 2026 and starts 14 March 2027 in the US.
    meeting = Meeting(first=datetime(2026, 10, 30, 9, 0), tz="America/New_York",
                      every=Every.WEEK)
    assert [meeting.occurrence(i) for i in range(2)] == [utc(2026, 10, 30, 13),
                                                         utc(2026, 11, 6, 14)]
    spring = Meeting(first=datetime(2027, 3, 12, 9, 0), tz="America/New_York",
                     every=Every.WEEK)
    assert [spring.occurrence(i) for i in range(2)] == [utc(2027, 3, 12, 14),
                                                        utc(2027, 3, 19, 13)]
    assert all(spring.occurrence(i).astimezone(NEW_YORK).hour == 9 for i in range(10))


def test_two_and_four_weekly() -> None:
    two = Meeting(first=datetime(2026, 12, 8, 10, 0), tz="UTC", every=Every.TWO_WEEKS)
    four = Meeting(first=datetime(2026, 12, 8, 10, 0), tz="UTC", every=Every.FOUR_WEEKS)
    assert two.occurrence(2) == utc(2027, 1, 5, 10)
    assert four.occurrence(1) == utc(2027, 1, 5, 10)


def test_monthly_on_the_31st_falls_on_the_last_day_of_shorter_months() -> None:
    meeting = Meeting(first=datetime(2026, 12, 31, 10, 0), tz="Europe/Paris")
    days = [meeting.local(i).date().isoformat() for i in range(6)]
    assert days == ["2026-12-31", "2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30",
                    "2027-05-31"]
    leap = Meeting(first=datetime(2027, 12, 30, 10, 0), tz="UTC")
    assert leap.local(2).date().isoformat() == "2028-02-29"
    # Wall-clock time kept across the March change: 10:00 CET, then 10:00 CEST.
    assert meeting.occurrence(3) == utc(2027, 3, 31, 8)
    assert meeting.occurrence(2) == utc(2027, 2, 28, 9)


def test_next_occurrences_after_an_instant() -> None:
    meeting = Meeting(first=datetime(2026, 1, 15, 10, 0), tz="UTC")
    assert meeting.next_after(utc(2026, 1, 1)) == utc(2026, 1, 15, 10)
    assert meeting.next_after(utc(2026, 11, 15, 10)) == utc(2026, 12, 15, 10)  # started
    assert meeting.upcoming(utc(2026, 11, 15, 9, 59), 2) == [utc(2026, 11, 15, 10),
                                                             utc(2026, 12, 15, 10)]
    far = Meeting(first=datetime(2020, 1, 6, 10, 0), tz="Europe/Paris", every=Every.WEEK)
    start = far.next_after(utc(2026, 11, 22, 12))
    assert start.astimezone(PARIS) == datetime(2026, 11, 23, 10, 0, tzinfo=PARIS)


def test_the_digest_is_due_from_its_instant_until_the_meeting_starts() -> None:
    meeting = Meeting(first=datetime(2026, 12, 8, 10, 0), tz="Europe/Paris",
                      lead=timedelta(hours=24))  # 09:00 UTC; digest 7 Dec 09:00 UTC
    start = utc(2026, 12, 8, 9)
    assert meeting.due_digest(utc(2026, 12, 7, 8, 59)) is None
    assert meeting.due_digest(utc(2026, 12, 7, 9)) == start
    assert meeting.due_digest(utc(2026, 12, 8, 8, 59)) == start  # catching up after downtime
    assert meeting.due_digest(utc(2026, 12, 8, 9)) is None  # the meeting has started
    assert meeting.due_digest(utc(2027, 1, 7, 9, 30)) == utc(2027, 1, 8, 9)


def test_a_wall_clock_time_inside_the_spring_gap() -> None:
    meeting = Meeting(first=datetime(2027, 3, 21, 2, 30), tz="Europe/Paris", every=Every.WEEK)
    # 28 March 02:30 does not exist in Paris: read as 02:30 CET = 01:30 UTC (03:30 CEST).
    assert meeting.occurrence(1) == utc(2027, 3, 28, 1, 30)


def test_a_meeting_needs_a_naive_local_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        Meeting(first=utc(2026, 12, 8), tz="UTC")


def test_a_digest_due_on_a_weekend_goes_out_on_the_friday_before() -> None:
    # Monday 7 Dec 2026, 10:00 in Sydney; 24 h lead = Sunday 6 Dec 10:00 Sydney.
    sydney = ZoneInfo("Australia/Sydney")
    meeting = Meeting(first=datetime(2026, 12, 7, 10, 0), tz="Australia/Sydney",
                      lead=timedelta(hours=24))
    start = meeting.occurrence(0)
    assert meeting.digest_at(start).astimezone(sydney).weekday() == 6
    friday = datetime(2026, 12, 4, 10, 0, tzinfo=sydney)
    assert meeting.send_at(start) == friday.astimezone(UTC)
    assert meeting.due_digest(friday.astimezone(UTC) - timedelta(minutes=1)) is None
    assert meeting.due_digest(friday.astimezone(UTC)) == start
    # Saturday in Sydney although it is still Friday in UTC: the zone that counts is the
    # meeting's (Saturday 09:00 Sydney is Friday 22:00 UTC).
    saturday = Meeting(first=datetime(2026, 12, 7, 9, 0), tz="Australia/Sydney",
                       lead=timedelta(hours=48))
    assert saturday.send_at(saturday.occurrence(0)) == datetime(
        2026, 12, 4, 9, 0, tzinfo=sydney).astimezone(UTC)
    # A weekday digest instant is not moved.
    tuesday = Meeting(first=datetime(2026, 12, 9, 10, 0), tz="Europe/Paris")
    assert tuesday.send_at(tuesday.occurrence(0)) == tuesday.digest_at(tuesday.occurrence(0))
