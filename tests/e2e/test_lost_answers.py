"""A post that Slack carried out although its answer never reached the app (the request
timed out; the process died before recording it): the next attempt finds the message by
what its metadata names and keeps it, so the channel never gets it twice
(bot/earlier_posts.py). A trigger point (by /gap or a watch) is found by its id; a
digest, and a nudge escalated into the gap's thread, by their outbox key.

FakeSlack as Slack (conversations.history and .replies, message metadata), the real app
over signed HTTP, and the real clock for watches, digests and nudges.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from sqlalchemy import select, update

from bot import earlier_posts
from bot.clock import run_job
from bot.ids import ActionId
from bot.slack_client import make_client
from sop_core.db import get_sessionmaker, session_factory
from sop_core.loading import PlanningTable
from sop_core.meetings import parse_meeting
from sop_core.models import Notification, TriggerPoint
from sop_core.services import digests as digest_service
from sop_core.services.data import store
from sop_core.services.watches import add_watch
from tests.e2e.conftest import SIGNING_SECRET, TEAMS, Running, serve_app
from tests.e2e.slack_sim import SlackSim
from tests.e2e.test_nudges import DUE, add_action
from tests.e2e.test_slack_faults import (
    DIGEST_AT,
    HANG,
    MEETING,
    fast_settings,
    ok,
    wait_told,
)
from tests.e2e.waiting import eventually
from tests.fakeslack import Call, FakeSlack
from tests.integration.test_watches import changed, plan_met

SNACKS = "region=EU category=Snacks"


def top_level(slack: FakeSlack, channel: str = "C1") -> list[Call]:
    """The messages Slack carried out at the top of ``channel`` (not in a thread)."""
    return [c for c in ok(slack, "chat.postMessage", channel=channel)
            if not c.args.get("thread_ts")]


def points(url: str) -> list[tuple[int, str | None]]:
    with get_sessionmaker(url)() as session:
        return [(p.id, p.message_ts) for p in
                session.scalars(select(TriggerPoint).order_by(TriggerPoint.id))]


def discuss_id(post: Call) -> int:
    [point_id] = {int(e["value"]) for b in post.args["blocks"] if b["type"] == "actions"
                  for e in b["elements"] if e["action_id"] == ActionId.DISCUSS}
    return point_id


# --------------------------------------------------------------------------------------
# Looking for the earlier post
# --------------------------------------------------------------------------------------

@pytest.fixture
def client(slack: FakeSlack, sqlite_url: str) -> Any:
    return make_client(fast_settings(sqlite_url, slack), TEAMS["T1"])


def post_for(client: Any, point_id: int, channel: str = "C1", **extra: Any) -> str:
    return str(client.chat_postMessage(channel=channel, text=f"gap {point_id}",
                                       metadata=earlier_posts.tag(
                                           earlier_posts.TRIGGER_POINT, trigger_point_id=point_id),
                                       **extra)["ts"])


def look(client: Any, point_id: int, since: datetime) -> str | None:
    return earlier_posts.find(client, "C1", earlier_posts.TRIGGER_POINT, since=since,
                              trigger_point_id=point_id)


def test_finds_the_post_by_its_trigger_point_past_the_first_page(client: Any,
                                                                  slack: FakeSlack) -> None:
    since = datetime.now(UTC)
    wanted = post_for(client, 7)
    post_for(client, 8)  # another trigger point
    post_for(client, 7, channel="C2")  # the same id in another channel
    for n in range(earlier_posts.PAGE + 5):  # the channel's talk after it
        client.chat_postMessage(channel="C1", text=f"talk {n}")
    assert look(client, 7, since) == wanted
    assert len(slack.calls_to("conversations.history")) == 2  # newest first, two pages
    assert look(client, 9, since) is None


def test_looks_only_since_the_first_attempt(client: Any, slack: FakeSlack) -> None:
    now = datetime.now(UTC)
    old = now - earlier_posts.CLOCK_MARGIN - timedelta(minutes=1)
    slack.add_channel("C1").messages.append({  # as Slack keeps a message from back then
        "type": "message", "bot_id": "B1", "text": "gap 7", "ts": f"{old.timestamp():.6f}",
        "metadata": {"event_type": earlier_posts.TRIGGER_POINT,
                     "event_payload": {"trigger_point_id": 7}}})
    assert look(client, 7, now) is None
    assert look(client, 7, old) is not None
    # A pass's clock set ahead (sopgap tick --now) looks from Slack's now, not from then.
    recent = post_for(client, 8)
    assert look(client, 8, now + timedelta(days=7)) == recent


def test_another_event_type_with_the_same_id_is_not_it(client: Any) -> None:
    since = datetime.now(UTC)
    client.chat_postMessage(channel="C1", text="x", metadata={
        "event_type": "another_app", "event_payload": {"trigger_point_id": 7}})
    assert look(client, 7, since) is None


def test_history_that_cannot_be_read_means_post_and_slack_silent_means_wait(
        client: Any, slack: FakeSlack) -> None:
    since = datetime.now(UTC)
    post_for(client, 7)
    slack.fail_next("conversations.history", status=200, error="missing_scope")
    assert look(client, 7, since) is None  # then it posts
    slack.fail_next("conversations.history", status=500, times=3)
    with pytest.raises(SlackApiError):  # unknown: neither post again nor give up
        look(client, 7, since)
    assert look(client, 7, since) is not None


# --------------------------------------------------------------------------------------
# /gap: the post timed out, Slack had carried it out
# --------------------------------------------------------------------------------------

@pytest.fixture
def fast_app(db_url: str, slack: FakeSlack) -> Any:
    with serve_app(fast_settings(db_url, slack)) as running:
        yield running


def test_the_next_gap_keeps_the_message_slack_posted_after_the_timeout(
        fast_app: Running, slack: FakeSlack, sample_table: PlanningTable) -> None:
    url = fast_app.settings.database_url
    store(session_factory(url), sample_table)
    sim = SlackSim(fast_app.url, SIGNING_SECRET, slack.root_url)
    slack.delay_next("chat.postMessage", HANG, processed=True)  # carried out, late
    sim.command(SNACKS)
    [said] = wait_told(slack)
    assert said.startswith("Slack did not answer in time")
    [late] = eventually(lambda: top_level(slack), timeout=15)
    assert points(url) == [(discuss_id(late), None)]  # kept: the next claim looks for it

    sim.command(SNACKS, user="U2")
    [kept] = eventually(lambda: ok(slack, "chat.update", ts=late.response["ts"]), timeout=15)
    eventually(lambda: points(url) == [(discuss_id(late), late.response["ts"])] or None,
               timeout=15)
    assert discuss_id(kept) == discuss_id(late)
    time.sleep(0.3)
    assert top_level(slack) == [late]  # one message for the gap, never two
    # Its buttons work: the thread is the trigger point's.
    sim.button(ActionId.DISCUSS, str(discuss_id(late)), message_ts=late.response["ts"])
    slack.wait_for("chat.postMessage", timeout=15,
                   predicate=lambda c: c.args.get("thread_ts") == late.response["ts"])
    assert slack.violations == []


def test_a_post_lost_on_the_way_is_posted_by_the_next_gap(
        fast_app: Running, slack: FakeSlack, sample_table: PlanningTable) -> None:
    url = fast_app.settings.database_url
    store(session_factory(url), sample_table)
    sim = SlackSim(fast_app.url, SIGNING_SECRET, slack.root_url)
    slack.delay_next("chat.postMessage", HANG, processed=False)  # never carried out
    sim.command(SNACKS)
    wait_told(slack)
    [(point_id, ts)] = points(url)
    assert ts is None  # kept: Slack may have it
    sim.command(SNACKS, user="U2")
    [post] = eventually(lambda: top_level(slack), timeout=15)
    assert discuss_id(post) == point_id
    eventually(lambda: points(url) == [(point_id, post.response["ts"])] or None, timeout=15)
    assert ok(slack, "chat.update") == []


def test_a_post_stranded_by_a_dead_poster_is_found_after_its_lease(
        fast_app: Running, slack: FakeSlack, sample_table: PlanningTable) -> None:
    """The poster died after Slack took the post: the row has no message and its lease
    runs out; the next /gap adopts the message."""
    url = fast_app.settings.database_url
    store(session_factory(url), sample_table)
    sim = SlackSim(fast_app.url, SIGNING_SECRET, slack.root_url)
    sim.command(SNACKS)
    [post] = eventually(lambda: top_level(slack), timeout=15)
    point_id, ts = discuss_id(post), post.response["ts"]
    eventually(lambda: points(url) == [(point_id, ts)] or None, timeout=15)
    with get_sessionmaker(url).begin() as session:  # as the dead poster left it
        session.execute(update(TriggerPoint).values(
            message_ts=None, claimed_until=datetime.now(UTC) - timedelta(seconds=1)))
    sim.command(SNACKS, user="U2")
    eventually(lambda: ok(slack, "chat.update", ts=ts), timeout=15)
    eventually(lambda: points(url) == [(point_id, ts)] or None, timeout=15)
    assert top_level(slack) == [post]


# --------------------------------------------------------------------------------------
# A watch's post, by the clock
# --------------------------------------------------------------------------------------

def test_a_watch_post_carried_out_after_the_timeout_is_not_posted_again(
        sqlite_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    settings = fast_settings(sqlite_url, slack)
    sessions = session_factory(sqlite_url)
    store(sessions, changed(sample_table, plan_met))  # within the rule at first
    add_watch(get_sessionmaker(sqlite_url), team_id="T1", channel_id="C1", user_id="U1",
              text=SNACKS)
    day = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    run_job(settings, "watches", day)
    store(sessions, sample_table)  # crosses: the watch posts
    slack.delay_next("chat.postMessage", HANG, processed=True)
    assert run_job(settings, "watches", day + timedelta(minutes=1)).failed == 1
    [late] = eventually(lambda: top_level(slack), timeout=15)
    assert points(sqlite_url) == [(discuss_id(late), None)]
    run_job(settings, "watches", day + timedelta(minutes=2))
    assert points(sqlite_url) == [(discuss_id(late), late.response["ts"])]
    assert top_level(slack) == [late]
    assert len(ok(slack, "chat.update", ts=late.response["ts"])) == 1


# --------------------------------------------------------------------------------------
# A digest, by the clock (the outbox's key in its metadata)
# --------------------------------------------------------------------------------------

def test_a_digest_carried_out_after_the_timeout_is_not_sent_again(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    settings = fast_settings(db_url, slack)
    store(session_factory(db_url), sample_table)
    digest_service.set_meeting(get_sessionmaker(db_url), "T1", "C1", parse_meeting(MEETING))
    slack.delay_next("chat.postMessage", HANG, processed=True)
    assert run_job(settings, "digests", DIGEST_AT).failed == 1
    [late] = eventually(lambda: top_level(slack), timeout=15)
    assert run_job(settings, "digests", DIGEST_AT + timedelta(minutes=1)).sent == 1
    assert run_job(settings, "digests", DIGEST_AT + timedelta(minutes=2)).sent == 0
    assert top_level(slack) == [late]
    with get_sessionmaker(db_url)() as session:
        [row] = session.scalars(select(Notification).where(Notification.kind == "digest"))
    assert (row.status, row.attempts, row.message_ts) == ("sent", 2, late.response["ts"])


def test_a_digest_lost_on_the_way_is_sent_by_the_next_pass(
        sqlite_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    settings = fast_settings(sqlite_url, slack)
    store(session_factory(sqlite_url), sample_table)
    digest_service.set_meeting(get_sessionmaker(sqlite_url), "T1", "C1",
                               parse_meeting(MEETING))
    slack.delay_next("chat.postMessage", HANG, processed=False)
    assert run_job(settings, "digests", DIGEST_AT).failed == 1
    assert run_job(settings, "digests", DIGEST_AT + timedelta(minutes=1)).sent == 1
    assert len(top_level(slack)) == 1
    assert len(slack.calls_to("conversations.history")) == 1  # looked, then posted


# --------------------------------------------------------------------------------------
# A nudge escalated into the gap's thread (a reply: conversations.replies)
# --------------------------------------------------------------------------------------

def test_an_escalation_carried_out_after_the_timeout_is_not_posted_again(
        db_url: str, slack: FakeSlack) -> None:
    slack.users["UPARIS"] = {"tz": "Europe/Paris", "real_name": "Camille"}
    slack.users["UBOSS"] = {"tz": "Europe/Paris", "real_name": "Creator"}
    client = make_client(fast_settings(db_url, slack), TEAMS["T1"])
    gap_ts = str(client.chat_postMessage(channel="C1", text="the gap")["ts"])
    add_action(db_url, owner="UPARIS", due=DUE, thread_ts=gap_ts)
    settings = fast_settings(db_url, slack)
    overdue = datetime(2026, 12, 14, 8, 30, tzinfo=UTC)  # the pass's clock, set ahead
    slack.delay_next("chat.postMessage", HANG, processed=True)
    assert run_job(settings, "nudges", overdue).failed == 1
    in_thread = lambda: ok(slack, "chat.postMessage", thread_ts=gap_ts)  # noqa: E731
    [late] = eventually(in_thread, timeout=15)
    assert run_job(settings, "nudges", overdue + timedelta(minutes=1)).sent == 1
    assert in_thread() == [late]
    with get_sessionmaker(db_url)() as session:
        [row] = session.scalars(select(Notification).where(Notification.kind == "nudge"))
    assert (row.status, row.attempts, row.message_ts) == ("sent", 2, late.response["ts"])
