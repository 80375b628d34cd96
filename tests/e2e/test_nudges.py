"""Milestone nudges with an explicit clock, the real database and Slack over HTTP."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.jobs import JobContext, nudges
from bot.slack_client import retry_handlers
from sop_core import outbox
from sop_core.config import Settings
from sop_core.db import get_sessionmaker
from sop_core.models import Action, Milestone, Notification, Snapshot, TriggerPoint
from sop_core.nudges import Occasion
from sop_core.services.followup import USERS_PER_PASS, nudge_key
from tests.e2e.conftest import TEAMS
from tests.fakeslack import Call, FakeSlack

PARIS, NEW_YORK = "Europe/Paris", "America/New_York"


@pytest.fixture
def people(slack: FakeSlack) -> None:
    slack.users["UPARIS"] = {"tz": PARIS, "tz_offset": 3600, "real_name": "Camille"}
    slack.users["UNY"] = {"tz": NEW_YORK, "tz_offset": -18000, "real_name": "Jordan"}
    slack.users["UGONE"] = {"tz": PARIS, "deleted": True, "real_name": "Left Company"}
    slack.users["UBOSS"] = {"tz": PARIS, "real_name": "Creator"}


def job(db_url: str, slack: FakeSlack, now: datetime, **settings: object) -> JobContext:
    client = WebClient(token=TEAMS["T1"], base_url=slack.url, retry_handlers=retry_handlers())
    values = {"DATABASE_URL": db_url, **{k.upper(): v for k, v in settings.items()}}
    return JobContext(settings=Settings(**values), sessions=get_sessionmaker(db_url),
                      client_for=lambda team: client if team == "T1" else None, now=now)


def add_action(db_url: str, *, owner: str, due: date, milestones: Iterable[tuple[str, date]] = (),
               title: str = "Relist 12 Snacks SKUs on Amazon DE", thread_ts: str | None = None,
               snoozed_until: date | None = None) -> int:
    sessions = get_sessionmaker(db_url)
    with sessions.begin() as session:
        point = None
        if thread_ts:
            snapshot = Snapshot(source="test", rows_read=0, rows_stored=0, rows_merged=0,
                                metrics=[], dimensions=[], content_hash="-")
            session.add(snapshot)
            session.flush()
            point = TriggerPoint(
                team_id="T1", channel_id="C1", message_ts=thread_ts, scope={}, scope_key="",
                metric="revenue", horizon="fy", by=None, posted_snapshot_id=snapshot.id,
                snapshot_id=snapshot.id, plan_at_post=100, gap_at_post=-10, gap_pct_at_post=-10,
                plan=100, outlook=90, gap=-10, gap_pct=-10)
            session.add(point)
        action = Action(
            team_id="T1", title=title, owner_id=owner, creator_id="UBOSS",
            metric_name="revenue", baseline=90, target=100, expected_impact=10,
            due_date=due, channel_id="C1", snoozed_until=snoozed_until, trigger_point=point,
            milestones=[Milestone(name=name, due_date=day) for name, day in milestones])
        session.add(action)
        session.flush()
        return action.id


def dms(slack: FakeSlack, user: str) -> list[Call]:
    return [c for c in slack.calls_to("chat.postMessage")
            if c.ok and c.args["channel"] in {user, f"D{user}"}]


def run(db_url: str, slack: FakeSlack, now: datetime, **settings: object) -> nudges.PassReport:
    return nudges.run(job(db_url, slack, now.astimezone(UTC), **settings))


def local(day: date, hour: int, minute: int = 0, tz: str = PARIS) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(tz))


DUE = date(2026, 12, 10)  # Thursday


@pytest.mark.usefixtures("people")
def test_nudges_at_nine_in_each_owners_zone(db_url: str, slack: FakeSlack) -> None:
    add_action(db_url, owner="UPARIS", due=DUE)
    add_action(db_url, owner="UNY", due=DUE)
    day = date(2026, 12, 7)  # "3 days before"
    assert run(db_url, slack, local(day, 8, 59)).sent == 0
    assert run(db_url, slack, local(day, 9, 0)).sent == 1
    assert len(dms(slack, "UPARIS")) == 1
    assert dms(slack, "UNY") == []
    assert run(db_url, slack, local(day, 8, 59, NEW_YORK)).sent == 0
    assert run(db_url, slack, local(day, 9, 1, NEW_YORK)).sent == 1
    [message] = dms(slack, "UNY")
    assert "is due in 3 days" in message.args["text"]
    assert "Relist 12 Snacks SKUs on Amazon DE" in message.args["text"]
    # The DM carries the action card with its buttons.
    assert any(b["type"] == "actions" for b in message.args["blocks"])
    assert slack.violations == []


@pytest.mark.usefixtures("people")
def test_two_passes_in_a_row_send_nothing_new(db_url: str, slack: FakeSlack) -> None:
    add_action(db_url, owner="UPARIS", due=DUE, milestones=[("Listings audit", date(2026, 12, 8))])
    now = local(date(2026, 12, 7), 10)
    assert run(db_url, slack, now).sent == 2  # the milestone (1 day before) and the due date
    assert run(db_url, slack, now).sent == 0
    assert run(db_url, slack, now + timedelta(minutes=1)).sent == 0
    assert len(dms(slack, "UPARIS")) == 2


@pytest.mark.usefixtures("people")
def test_clock_down_for_days_sends_one_catch_up_per_item(db_url: str, slack: FakeSlack) -> None:
    add_action(db_url, owner="UPARIS", due=DUE, milestones=[("Audit", date(2026, 12, 8)),
                                                            ("Relaunch", date(2026, 12, 9))])
    # Last pass on Friday 4 Dec; the clock comes back on Wednesday 9 Dec at noon.
    assert run(db_url, slack, local(date(2026, 12, 4), 12)).sent == 0
    assert run(db_url, slack, local(date(2026, 12, 9), 12)).sent == 3
    texts = sorted(c.args["text"] for c in dms(slack, "UPARIS"))
    assert any("Milestone “Audit”" in t and "overdue by 1 day" in t for t in texts)
    assert any("Milestone “Relaunch”" in t and "due today" in t for t in texts)
    assert any("The due date" in t and "due tomorrow" in t for t in texts)


@pytest.mark.usefixtures("people")
def test_rate_limited_then_sent_once(db_url: str, slack: FakeSlack) -> None:
    add_action(db_url, owner="UPARIS", due=DUE)
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    assert run(db_url, slack, local(date(2026, 12, 7), 9)).sent == 1
    posts = slack.calls_to("chat.postMessage")
    assert [c.status for c in posts] == [429, 200]
    assert run(db_url, slack, local(date(2026, 12, 7), 10)).sent == 0


@pytest.mark.usefixtures("people")
def test_failing_send_stays_due_and_goes_out_next_pass(db_url: str, slack: FakeSlack) -> None:
    add_action(db_url, owner="UPARIS", due=DUE)
    # 500 on the first attempt and on both of the client's retries.
    slack.fail_next("chat.postMessage", status=500, times=3)
    report = run(db_url, slack, local(date(2026, 12, 7), 9))
    assert (report.sent, report.failed) == (0, 1)
    assert run(db_url, slack, local(date(2026, 12, 7), 9, 1)).sent == 1
    assert len(dms(slack, "UPARIS")) == 1


@pytest.mark.usefixtures("people")
def test_a_pass_killed_after_claiming_is_completed_after_the_lease(db_url: str,
                                                                    slack: FakeSlack) -> None:
    action_id = add_action(db_url, owner="UPARIS", due=DUE)
    now = local(date(2026, 12, 7), 9).astimezone(UTC)
    key = nudge_key(action_id, None, Occasion("before_3", date(2026, 12, 7)))
    # A pass claimed the nudge and died before sending it.
    assert outbox.claim(get_sessionmaker(db_url), key, kind="nudge", team_id="T1", now=now)
    assert run(db_url, slack, now + timedelta(minutes=1)).sent == 0  # lease still held
    assert run(db_url, slack, now + outbox.DEFAULT_LEASE + timedelta(minutes=1)).sent == 1
    assert len(dms(slack, "UPARIS")) == 1


@pytest.mark.usefixtures("people")
def test_owner_who_left_the_workspace_means_the_creator_is_told(db_url: str,
                                                                 slack: FakeSlack) -> None:
    add_action(db_url, owner="UGONE", due=DUE)
    assert run(db_url, slack, local(date(2026, 12, 7), 9)).sent == 1
    assert dms(slack, "UGONE") == []
    [message] = dms(slack, "UBOSS")
    assert "has left the workspace" in message.args["blocks"][0]["text"]["text"]


@pytest.mark.usefixtures("people")
def test_escalation_is_posted_in_the_gaps_thread(db_url: str, slack: FakeSlack) -> None:
    add_action(db_url, owner="UPARIS", due=DUE, thread_ts="1700000000.000100")
    assert run(db_url, slack, local(date(2026, 12, 14), 9, 30)).sent == 1
    [post] = slack.calls_to("chat.postMessage")
    assert (post.args["channel"], post.args["thread_ts"]) == ("C1", "1700000000.000100")
    assert "<@UPARIS> <@UBOSS>" in post.args["text"]
    assert "overdue by 4 days" in post.args["text"]


@pytest.mark.usefixtures("people")
def test_snoozed_actions_stay_quiet(db_url: str, slack: FakeSlack) -> None:
    add_action(db_url, owner="UPARIS", due=DUE, snoozed_until=date(2026, 12, 15))
    assert run(db_url, slack, local(date(2026, 12, 11), 10)).sent == 0
    assert run(db_url, slack, local(date(2026, 12, 15), 10)).sent == 1


@pytest.mark.usefixtures("people")
def test_a_simulated_month_sends_every_nudge_once_at_nine_local(db_url: str,
                                                                slack: FakeSlack) -> None:
    """The clock every 2 hours for a month, a new process each time (state only in the
    database). 09:00 in Paris and in New York are 08:00 and 14:00 UTC in December."""
    add_action(db_url, owner="UPARIS", due=date(2026, 12, 10),
               milestones=[("Audit", date(2026, 12, 3))])
    add_action(db_url, owner="UNY", due=date(2026, 12, 15))
    start = datetime(2026, 11, 28, tzinfo=UTC)
    for step in range(31 * 12):
        run(db_url, slack, start + timedelta(hours=2 * step))
    sessions = get_sessionmaker(db_url)
    with sessions() as session:
        sent = session.scalars(select(Notification).where(Notification.status == "sent")).all()
    keys = Counter(n.key for n in sent)
    assert keys and max(keys.values()) == 1
    posts = [c for c in slack.calls_to("chat.postMessage") if c.ok]
    assert len(posts) == len(sent)
    for notification in sent:
        zone = ZoneInfo(PARIS if notification.target == "UPARIS" else NEW_YORK)
        local_time = notification.sent_at.astimezone(zone)
        assert local_time.weekday() < 5
        assert (local_time.hour, local_time.minute) == (9, 0)
    kinds = Counter(key.split(":")[3] for key in keys)
    # Camille: Audit (Thu 3 Dec) and the due date (Thu 10 Dec); Jordan: due Tue 15 Dec,
    # whose "3 days before" (Sat 12) moves to Monday and gives way to "1 day before".
    assert kinds["before_3"] == 2
    assert kinds["before_1"] == 3
    assert kinds["due"] == 3
    assert kinds["escalate"] == 3
    assert kinds["weekly"] >= 3


@pytest.mark.postgres
@pytest.mark.usefixtures("people")
def test_two_clocks_at_once_send_each_nudge_once(postgres_url: str, slack: FakeSlack) -> None:
    for index in range(20):
        add_action(postgres_url, owner="UPARIS", due=DUE,
                   title=f"Relist SKU batch {index} on Amazon")
    now = local(date(2026, 12, 7), 9, 5)
    barrier = threading.Barrier(2)
    reports: list[nudges.PassReport] = []

    def clock() -> None:
        context = job(postgres_url, slack, now.astimezone(UTC))
        barrier.wait()
        reports.append(nudges.run(context))

    threads = [threading.Thread(target=clock) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.sent for r in reports) == 20
    assert len(dms(slack, "UPARIS")) == 20


def test_a_wave_with_several_nudges_for_one_person_stays_within_slacks_limit(
        db_url: str, slack: FakeSlack, people: None) -> None:
    """Slack takes one post a second per channel (FakeSlack answers a faster one 429):
    paced, five nudges for Camille and one each for two others all go out without one
    429, once each; the pass takes about the four seconds Camille's DMs need."""
    slack.rate_limit_chat_per_channel = True
    day = date(2026, 12, 9)
    for n in range(5):
        add_action(db_url, owner="UPARIS", due=day, title=f"Relist {n + 10} Snacks SKUs on DE")
    add_action(db_url, owner="UNY", due=day)
    add_action(db_url, owner="UBOSS", due=day)
    report = run(db_url, slack, local(day, 15))  # 09:00 in New York has passed too
    assert (report.sent, report.failed) == (7, 0)
    posts = slack.calls_to("chat.postMessage")
    assert [c.status for c in posts] == [200] * 7  # no 429: nothing waited on a retry
    camille = sorted(c.at for c in dms(slack, "UPARIS"))
    assert len(camille) == 5
    assert all(later - earlier >= 0.99 for earlier, later in pairwise(camille))
    others = [c.at for c in posts if c.args["channel"] in {"UNY", "UBOSS"}]
    assert max(others) < camille[1]  # the others did not wait behind Camille's


def test_time_zones_are_refreshed_a_few_at_a_time_and_new_owners_first(
        db_url: str, slack: FakeSlack) -> None:
    """Owners cached together expire together: each pass asks Slack about at most
    USERS_PER_PASS of them, the never-seen ones first, and still sends its nudges."""
    day = date(2026, 12, 9)
    for n in range(USERS_PER_PASS + 10):
        slack.users[f"UOLD{n:03d}"] = {"tz": PARIS}
        add_action(db_url, owner=f"UOLD{n:03d}", due=day + timedelta(days=30))
    first = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    run(db_url, slack, first)
    run(db_url, slack, first + timedelta(minutes=1))  # everyone cached by now
    assert len(slack.calls_to("users.info")) == USERS_PER_PASS + 10

    slack.users["UNEW"] = {"tz": NEW_YORK}
    add_action(db_url, owner="UNEW", due=day + timedelta(days=3))  # nudged 09:00 NY today
    later = datetime(2026, 12, 9, 13, 0, tzinfo=UTC)  # 08:00 in New York; zones stale
    before = len(slack.calls_to("users.info"))
    report = run(db_url, slack, later)
    asked = [c.args["user"] for c in slack.calls_to("users.info")[before:]]
    assert len(asked) == USERS_PER_PASS and asked[0] == "UNEW"
    assert report.sent == 0  # its zone was asked first: not sent at 09:00 UTC
    assert run(db_url, slack, later + timedelta(hours=1)).sent == 1  # 09:00 in New York
    assert len(dms(slack, "UNEW")) == 1
