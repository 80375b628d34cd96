"""The stored next nudge day: the minute sweep reads only what can be due, and every
change that can move a nudge resets it (sop_core/nudge_days.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, select, update

from sop_core import outbox
from sop_core.config import Settings
from sop_core.db import get_engine, get_sessionmaker
from sop_core.models import Action, Milestone, SlackUser, Status
from sop_core.nudge_days import NEVER
from sop_core.services import actions
from sop_core.services.followup import NudgeTask, due_nudges, remember_user
from sop_core.smart import MilestoneInput, SmartActionInput

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday
ZONES = ("Europe/Paris", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kolkata",
         "America/New_York")


def _settings(db_url: str) -> Settings:
    return Settings(DATABASE_URL=db_url)


def _add_action(db_url: str, due: date, milestones: tuple[date, ...] = (), *,
                owner: str = "U1", snoozed_until: date | None = None) -> int:
    with get_sessionmaker(db_url).begin() as session:
        action = Action(team_id="T1", title="Cut DSO by 5 days in EU", owner_id=owner,
                        creator_id="U9", metric_name="DSO", baseline=50, target=45,
                        expected_impact=1000, due_date=due, snoozed_until=snoozed_until,
                        milestones=[Milestone(name=f"step {i}", due_date=day)
                                    for i, day in enumerate(milestones)])
        session.add(action)
        session.flush()
        return action.id


def _sweep(db_url: str, now: datetime, *, full: bool = False) -> list[NudgeTask]:
    with get_sessionmaker(db_url).begin() as session:
        return due_nudges(session, _settings(db_url), now, full=full)


def _days(db_url: str, action_id: int) -> tuple[date | None, list[date | None]]:
    with get_sessionmaker(db_url)() as session:
        action = session.get(Action, action_id)
        assert action is not None
        return action.next_nudge_day, [m.next_nudge_day for m in action.milestones]


def test_a_sweep_stores_each_items_next_nudge_day(db_url: str) -> None:
    # Due Monday 14 December; a milestone on Sunday 13 December.
    action_id = _add_action(db_url, date(2026, 12, 14), (date(2026, 12, 13),))
    assert _days(db_url, action_id) == (None, [None])  # not worked out yet
    wednesday = NOW + timedelta(days=2)  # 9 Dec: the milestone is within reach, not the action
    assert _sweep(db_url, wednesday) == []
    assert _days(db_url, action_id) == (None, [date(2026, 12, 10)])  # "3 days before"
    thursday = wednesday + timedelta(days=1)
    [task] = _sweep(db_url, thursday)
    assert (task.milestone_id is not None, task.occasion.kind) == (True, "before_3")
    assert _days(db_url, action_id) == (date(2026, 12, 11), [date(2026, 12, 10)])
    assert outbox.deliver(get_sessionmaker(db_url), task.key, lambda: "1.1", kind="nudge",
                          team_id="T1", now=thursday)
    assert _sweep(db_url, thursday + timedelta(minutes=1)) == []
    # "1 day before" is a Saturday and the day a Sunday: both move to Monday 14.
    assert _days(db_url, action_id) == (date(2026, 12, 11), [date(2026, 12, 14)])


def test_an_item_far_ahead_is_not_read_until_near(db_url: str) -> None:
    action_id = _add_action(db_url, date(2027, 6, 30))
    _sweep(db_url, NOW)
    assert _days(db_url, action_id) == (None, [])  # not read: nothing can be due soon


def test_after_a_nudge_is_sent_the_next_day_moves_on(db_url: str) -> None:
    action_id = _add_action(db_url, date(2026, 12, 10))  # Thursday: "3 days before" today
    [task] = _sweep(db_url, NOW)
    assert task.occasion.kind == "before_3"
    assert _days(db_url, action_id)[0] is None  # due, not sent yet: left alone
    assert outbox.deliver(get_sessionmaker(db_url), task.key, lambda: "1.1", kind="nudge",
                          team_id="T1", now=NOW)
    assert _sweep(db_url, NOW + timedelta(minutes=1)) == []
    assert _days(db_url, action_id)[0] == date(2026, 12, 9)  # "1 day before"


Change = Callable[[str, int], None]


def _snooze(db_url: str, action_id: int) -> None:
    actions.snooze(get_sessionmaker(db_url), team_id="T1", action_id=action_id, days=7,
                   today=NOW.date(), user_id="U1")


def _reassign(db_url: str, action_id: int) -> None:
    actions.reassign(get_sessionmaker(db_url), team_id="T1", action_id=action_id,
                     new_owner_id="U2", user_id="U1")


def _new_due_date(db_url: str, action_id: int) -> None:
    with get_sessionmaker(db_url).begin() as session:
        action = session.get(Action, action_id)
        assert action is not None
        action.due_date += timedelta(days=2)


def _new_milestone_date(db_url: str, action_id: int) -> None:
    with get_sessionmaker(db_url).begin() as session:
        milestone = session.scalars(select(Milestone).where(
            Milestone.action_id == action_id)).first()
        assert milestone is not None
        milestone.due_date -= timedelta(days=1)


def _new_zone(db_url: str, action_id: int) -> None:
    remember_user(get_sessionmaker(db_url), "T1", "U1", tz="Asia/Tokyo", deleted=False,
                  now=NOW)


def _reopen(db_url: str, action_id: int) -> None:
    with get_sessionmaker(db_url).begin() as session:
        session.execute(update(Action).where(Action.id == action_id)
                        .values(status=Status.DONE, next_nudge_day=NEVER))
    with get_sessionmaker(db_url).begin() as session:
        action = session.get(Action, action_id)
        assert action is not None
        action.status = Status.OPEN


def _edit(db_url: str, action_id: int) -> None:
    """The edit form: a later due date, the milestone a day earlier."""
    with get_sessionmaker(db_url)() as session:
        action = session.get(Action, action_id)
        assert action is not None
        milestone = action.milestones[0]
        data = SmartActionInput.model_construct(
            title=action.title, due_date=action.due_date + timedelta(days=3),
            expected_impact=action.expected_impact, resources=action.resources,
            milestones=(MilestoneInput.model_construct(
                name=milestone.name, due_date=milestone.due_date - timedelta(days=1)),))
    actions.edit(get_sessionmaker(db_url), data, team_id="T1", action_id=action_id,
                 user_id="U1", now=NOW)


@pytest.mark.parametrize("change", [_snooze, _reassign, _new_due_date, _new_zone, _reopen,
                                    _edit])
def test_a_change_of_the_action_has_all_its_days_worked_out_again(
        db_url: str, change: Change) -> None:
    remember_user(get_sessionmaker(db_url), "T1", "U1", tz="Europe/Paris", deleted=False,
                  now=NOW)
    action_id = _add_action(db_url, date(2026, 12, 11), (date(2026, 12, 10),))
    assert _sweep(db_url, NOW.replace(hour=7)) == []  # 08:00 in Paris: nothing yet
    assert _days(db_url, action_id) == (date(2026, 12, 8), [date(2026, 12, 7)])
    change(db_url, action_id)
    assert _days(db_url, action_id) == (None, [None])


def test_a_new_milestone_date_resets_that_milestone(db_url: str) -> None:
    action_id = _add_action(db_url, date(2026, 12, 11), (date(2026, 12, 10),))
    _sweep(db_url, NOW.replace(hour=7))
    day, _ = _days(db_url, action_id)
    assert day is not None
    _new_milestone_date(db_url, action_id)
    assert _days(db_url, action_id) == (day, [None])


def test_done_and_closed_items_are_never_read_again(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    action_id = _add_action(db_url, date(2026, 12, 11), (date(2026, 12, 9),
                                                         date(2026, 12, 10)))
    _sweep(db_url, NOW.replace(hour=7))
    with sessions() as session:
        first = session.scalars(select(Milestone.id).where(
            Milestone.action_id == action_id).order_by(Milestone.due_date)).first()
    actions.mark_milestone_done(sessions, team_id="T1", action_id=action_id,
                                milestone_id=first, user_id="U1", now=NOW)
    assert _days(db_url, action_id)[1][0] == NEVER
    actions.complete(sessions, team_id="T1", action_id=action_id, realised_impact=10.0, note=None,
                     user_id="U1", now=NOW)
    assert _days(db_url, action_id) == (NEVER, [NEVER, NEVER])


def test_a_cancelled_action_is_never_read_again(db_url: str) -> None:
    action_id = _add_action(db_url, date(2026, 12, 11), (date(2026, 12, 10),))
    _sweep(db_url, NOW.replace(hour=7))
    actions.cancel(get_sessionmaker(db_url), team_id="T1", action_id=action_id,
                   reason="Replaced by a bigger promotion", user_id="U1")
    assert _days(db_url, action_id) == (NEVER, [NEVER])


def test_the_same_zone_again_resets_nothing(db_url: str) -> None:
    remember_user(get_sessionmaker(db_url), "T1", "U1", tz="Europe/Paris", deleted=False,
                  now=NOW)
    action_id = _add_action(db_url, date(2026, 12, 11))
    _sweep(db_url, NOW.replace(hour=7))
    day, _ = _days(db_url, action_id)
    assert day is not None
    remember_user(get_sessionmaker(db_url), "T1", "U1", tz="Europe/Paris", deleted=False,
                  now=NOW + timedelta(days=1))
    assert _days(db_url, action_id) == (day, [])


def test_minute_sweeps_send_exactly_what_full_sweeps_would(db_url: str) -> None:
    """A running clock, an hour a step for two weeks, over items in zones from UTC-11 to
    UTC+14, with changes on the way: at every step the sweep that reads only what its
    stored days allow finds exactly what a full sweep finds; each found nudge is sent."""
    rng = random.Random(15)
    sessions = get_sessionmaker(db_url)
    with sessions.begin() as session:
        for i, zone in enumerate(ZONES):
            session.add(SlackUser(team_id="T1", user_id=f"U{i}", tz=zone, deleted=False,
                                  fetched_at=NOW))
    ids = []
    for n in range(24):
        due = NOW.date() + timedelta(days=rng.randint(-12, 16))
        steps = tuple(due - timedelta(days=rng.randint(1, 9)) for _ in range(rng.randint(0, 2)))
        snooze = NOW.date() + timedelta(days=rng.randint(1, 5)) if n % 7 == 3 else None
        owner = f"U{rng.randrange(len(ZONES) + 1)}"  # the last one: zone never fetched
        ids.append(_add_action(db_url, due, steps, owner=owner, snoozed_until=snooze))
    changes = {40: lambda: actions.snooze(sessions, team_id="T1", action_id=ids[0], days=3,
                                          today=(NOW + timedelta(hours=40)).date(),
                                          user_id="U9"),
               77: lambda: actions.reassign(sessions, team_id="T1", action_id=ids[1],
                                            new_owner_id="U7", user_id="U9"),
               130: lambda: remember_user(sessions, "T1", "U2", tz="Europe/Paris",
                                          deleted=False, now=NOW),
               200: lambda: _new_due_date(db_url, ids[2])}
    sent = 0
    for step in range(14 * 24):
        now = NOW + timedelta(hours=step, minutes=1)
        if step in changes:
            changes[step]()
        with sessions() as session:  # the reference: not committed
            expected = {task.key for task in due_nudges(session, _settings(db_url), now,
                                                        full=True)}
        found = _sweep(db_url, now)
        assert {task.key for task in found} == expected, f"step {step}"
        for task in found:
            assert outbox.deliver(sessions, task.key, lambda: "1.0", kind="nudge",
                                  team_id="T1", now=now)
        sent += len(found)
    assert sent > 40  # the clock really sent along the way


def test_next_days_are_stored_many_items_a_statement_never_over_a_change_made_meanwhile(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Items that get the same day are stored by one UPDATE (here at most 2 ids each, so
    several), each conditional on the day the sweep read: an item reset in the meantime
    (a change of its dates) keeps its reset."""
    from sop_core.services import followup

    monkeypatch.setattr(followup, "_ITEMS_PER_UPDATE", 2)
    statements: list[str] = []
    engine = get_engine(db_url)
    count = lambda *args: statements.append(args[2])  # noqa: E731 (before_cursor_execute)
    actions_ids = [_add_action(db_url, date(2026, 12, 14), (date(2026, 12, 13),))
                   for _ in range(5)]
    wednesday = NOW + timedelta(days=2)
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert _sweep(db_url, wednesday) == []
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [_days(db_url, a) for a in actions_ids] == [(None, [date(2026, 12, 10)])] * 5
    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 3

    # A sweep that read Thursday for two milestones stores their next day; one of them
    # was reset meanwhile.
    with get_sessionmaker(db_url)() as session:
        reset, kept = (session.get(Action, a).milestones[0].id for a in actions_ids[:2])
    with get_sessionmaker(db_url).begin() as session:
        session.execute(update(Milestone).where(Milestone.id == reset)
                        .values(next_nudge_day=None))
    settings = _settings(db_url)
    schedule = {"days_before": settings.nudge_days_before,
                "weekends": settings.nudge_on_weekends}
    friday = date(2026, 12, 11)  # the last send day: "3 days before" (Thursday) is past
    quiet = [((action_id, "T1", "U1", "U9", None, None, None, milestone_id, "step 0",
               date(2026, 12, 13), date(2026, 12, 10)), (date(2026, 12, 13), friday, None))
             for action_id, milestone_id in zip(actions_ids, (reset, kept), strict=False)]
    with get_sessionmaker(db_url).begin() as session:
        followup._store_next_days(session, quiet, schedule)
    assert _days(db_url, actions_ids[0]) == (None, [None])  # the reset stands
    moved = _days(db_url, actions_ids[1])[1][0]
    assert moved is not None and moved > date(2026, 12, 10)
