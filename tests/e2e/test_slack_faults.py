"""Slack failing on every kind of call the bot makes: 429 with Retry-After, a 500
once, a 500 on every attempt of the call, no answer once (a timeout). The real app over
signed HTTP and the real clock (``bot.clock.run_job``), FakeSlack as Slack.

What each case asserts is what a person would see:

- a fault the client cures by itself (429 after Retry-After, a 500 once, a timeout of a
  call safe to repeat) leaves no trace: the message arrives exactly once;
- a fault it cannot cure (a 500 on every attempt, a timeout of a post that Slack may have
  carried out) gives the person a clear message, and doing it again works, once; the
  clock instead retries on its next pass, and the outbox stops a second send.

Slack's interactive calls are acknowledged first (within 3 s) whatever happens after.
The documented at-least-once window (``sop_core.outbox``) has its own test: a direct
message Slack carried out although its answer timed out is sent again by the next pass
(channel posts are looked for first: tests/e2e/test_lost_answers.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from sqlalchemy import func, select

from bot.clock import client_resolver, run_job
from bot.ids import ActionId
from bot.slack_client import NotInChannel, SlackUnanswered, diagnose, make_client
from sop_core import outbox
from sop_core.config import Settings
from sop_core.db import get_sessionmaker, session_factory
from sop_core.loading import PlanningTable
from sop_core.meetings import parse_meeting
from sop_core.models import Action, Notification, TriggerPoint
from sop_core.services import digests as digest_service
from sop_core.services.data import store
from sop_core.services.watches import add_watch
from tests.e2e.conftest import Running, app_settings, serve_app
from tests.e2e.slack_sim import SlackSim
from tests.e2e.test_actions import smart_values
from tests.e2e.waiting import eventually
from tests.fakeslack import Call, FakeSlack

TIMEOUT = 1.0  # the app's and the clock's Slack timeout here (settings)
HANG = TIMEOUT + 0.5  # an answer held this long comes too late
ATTEMPTS = 3  # what one call gets from the client: the try and two retries on a 500
NINE = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 3 days before DUE: a nudge is due
DUE = date(2026, 12, 10)
MEETING = "2026-12-08 10:00 tz=Europe/Paris every=month lead=24h"
DIGEST_AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 24 h before that meeting


class Fault(StrEnum):
    RATE_LIMITED = "429"  # with Retry-After: 1
    ERROR_ONCE = "500-once"
    ERROR_PERSISTENT = "500-persistent"  # on every attempt of the call
    TIMEOUT_ONCE = "timeout-once"  # no answer before the client's timeout, once


CURED = {Fault.RATE_LIMITED, Fault.ERROR_ONCE}  # by the client's retries, for every call


def inject(slack: FakeSlack, method: str, fault: Fault) -> None:
    if fault == Fault.RATE_LIMITED:
        slack.fail_next(method, status=429, retry_after=1)
    elif fault == Fault.ERROR_ONCE:
        slack.fail_next(method, status=500)
    elif fault == Fault.ERROR_PERSISTENT:
        slack.fail_next(method, status=500, times=ATTEMPTS)
    else:  # lost on the way: Slack never carries it out
        slack.delay_next(method, HANG, processed=False)


# --------------------------------------------------------------------------------------
# The app, with short timeouts
# --------------------------------------------------------------------------------------

def fast_settings(db_url: str, slack: FakeSlack) -> Settings:
    return app_settings(db_url, slack, slack_timeout=TIMEOUT, slack_clock_timeout=TIMEOUT)


@pytest.fixture
def app_server(sqlite_url: str, slack: FakeSlack) -> Iterator[Running]:
    """The app with short timeouts; the e2e ``sim`` and ``loaded`` fixtures use it."""
    with serve_app(fast_settings(sqlite_url, slack)) as app:
        yield app


@pytest.fixture
def running(app_server: Running) -> Running:
    return app_server


def ok(slack: FakeSlack, method: str, **args: Any) -> list[Call]:
    """The calls to ``method`` Slack carried out, with these arguments."""
    return [c for c in slack.calls_to(method)
            if c.ok and all(c.args.get(k) == v for k, v in args.items())]


def told(slack: FakeSlack) -> list[str]:
    """What the person was told only for them: response_url replies and ephemerals."""
    return [c.args.get("text", "") for c in slack.calls
            if c.ok and c.method in {"response_url", "chat.postEphemeral"}]


def wait_told(slack: FakeSlack, count: int = 1) -> list[str]:
    return eventually(lambda: told(slack) if len(told(slack)) >= count else None,
                      timeout=15)


def settle(seconds: float = 0.3) -> None:
    """Let the app finish what it does after answering (for "and nothing else")."""
    time.sleep(seconds)


def acked(reply: Any) -> None:
    assert reply.status == 200 and reply.elapsed < 3.0


def post_gap(sim: SlackSim, slack: FakeSlack, running: Running) -> tuple[str, int]:
    """A trigger point posted without faults, once the app has recorded where: its ts
    and id."""
    before = len(ok(slack, "chat.postMessage"))
    acked(sim.command("region=EU category=Snacks"))
    post = eventually(lambda: ok(slack, "chat.postMessage")[before:], timeout=15)[0]
    [point_id] = {int(e["value"]) for b in post.args["blocks"] if b["type"] == "actions"
                  for e in b["elements"] if e["action_id"] == ActionId.DISCUSS}
    eventually(lambda: (point_id, post.response["ts"]) in points(running))
    return post.response["ts"], point_id


def points(running: Running) -> list[tuple[int, str | None]]:
    with get_sessionmaker(running.settings.database_url)() as session:
        return [(p.id, p.message_ts) for p in session.scalars(select(TriggerPoint))]


def add_action(url: str, owner: str = "U7", due: date = DUE) -> int:
    with get_sessionmaker(url).begin() as session:
        action = Action(team_id="T1", title="Relist the Snacks range", owner_id=owner,
                        creator_id="U1", metric_name="revenue", baseline=1, target=2,
                        expected_impact=3, due_date=due, channel_id="C1")
        session.add(action)
        session.flush()
        return action.id


def notifications(url: str, kind: str) -> list[Notification]:
    with get_sessionmaker(url)() as session:
        rows = list(session.scalars(select(Notification).where(Notification.kind == kind)))
        session.expunge_all()
        return rows


# --------------------------------------------------------------------------------------
# The timeouts
# --------------------------------------------------------------------------------------

def test_listeners_and_the_clock_have_their_own_timeouts(sqlite_url: str,
                                                         slack: FakeSlack) -> None:
    defaults = app_settings(sqlite_url, slack)
    assert make_client(defaults, "xoxb-1").timeout == defaults.slack_timeout == 10
    clock = client_resolver(defaults)("T1")
    assert clock is not None and clock.timeout == defaults.slack_clock_timeout == 30


# --------------------------------------------------------------------------------------
# An interactive command: /gap <filters> posts a trigger point (chat.postMessage)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", list(Fault))
def test_command_post(fault: Fault, sim: SlackSim, slack: FakeSlack, running: Running,
                      loaded: int) -> None:
    inject(slack, "chat.postMessage", fault)
    acked(sim.command("region=EU category=Snacks"))
    if fault in CURED:
        [post] = eventually(lambda: ok(slack, "chat.postMessage"), timeout=15)
        eventually(lambda: points(running) == [(1, post.response["ts"])])
        settle()
        assert told(slack) == [] and len(ok(slack, "chat.postMessage")) == 1
        return
    # A 500 on every attempt, or no answer (Slack may or may not have posted it): the
    # person is told which, and trying again works. The half-made trigger point is gone
    # after a refusal; after no answer it is kept, unposted, for the next claim to look
    # for the message Slack may have (tests/e2e/test_lost_answers.py).
    [message] = wait_told(slack)
    assert message.startswith("Slack did not answer in time" if fault == Fault.TIMEOUT_ONCE
                              else "Slack did not take that (internal_error)")
    assert ok(slack, "chat.postMessage") == []
    eventually(lambda: points(running) == ([(1, None)] if fault == Fault.TIMEOUT_ONCE
                                           else []))
    ts, _ = post_gap(sim, slack, running)
    assert [p[1] for p in points(running)] == [ts]


# --------------------------------------------------------------------------------------
# A button: "Discuss root cause" posts the questions in the gap's thread
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", list(Fault))
def test_button_post(fault: Fault, sim: SlackSim, slack: FakeSlack, running: Running,
                     loaded: int) -> None:
    ts, point_id = post_gap(sim, slack, running)
    inject(slack, "chat.postMessage", fault)
    acked(sim.button(ActionId.DISCUSS, str(point_id), message_ts=ts))
    if fault not in CURED:
        [message] = wait_told(slack)
        assert message.startswith("Slack did not take the discussion prompt")
        assert ok(slack, "chat.postMessage", thread_ts=ts) == []
        acked(sim.button(ActionId.DISCUSS, str(point_id), message_ts=ts))  # again
    eventually(lambda: ok(slack, "chat.postMessage", thread_ts=ts), timeout=15)
    settle()
    assert len(ok(slack, "chat.postMessage", thread_ts=ts)) == 1
    assert len(told(slack)) == (0 if fault in CURED else 1)


# --------------------------------------------------------------------------------------
# A button that opens a modal: "Create SMART action" (views.open)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", list(Fault))
def test_button_opens_a_modal(fault: Fault, sim: SlackSim, slack: FakeSlack,
                              running: Running, loaded: int) -> None:
    ts, point_id = post_gap(sim, slack, running)
    inject(slack, "views.open", fault)
    acked(sim.button(ActionId.CREATE_ACTION, str(point_id), message_ts=ts))
    if fault not in CURED:  # views.open is not repeated after a timeout: a modal could show twice
        [message] = wait_told(slack)
        assert message.startswith("Slack did not answer in time" if fault == Fault.TIMEOUT_ONCE
                                  else "Slack did not take that (internal_error)")
        acked(sim.button(ActionId.CREATE_ACTION, str(point_id), message_ts=ts))
    eventually(lambda: ok(slack, "views.open"), timeout=15)
    settle()
    assert len(ok(slack, "views.open")) == 1
    assert len(told(slack)) == (0 if fault in CURED else 1)


# --------------------------------------------------------------------------------------
# A modal: the SMART action, submitted, is saved and carded in the thread
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", list(Fault))
def test_modal_submission(fault: Fault, sim: SlackSim, slack: FakeSlack, running: Running,
                          loaded: int) -> None:
    ts, point_id = post_gap(sim, slack, running)
    acked(sim.button(ActionId.CREATE_ACTION, str(point_id), message_ts=ts))
    [opened] = slack.wait_for("views.open")
    inject(slack, "chat.postMessage", fault)
    acked(sim.view_submission(opened.args["view"], smart_values(), user="U1"))
    dms = lambda user: ok(slack, "chat.postMessage", channel=user)  # noqa: E731
    eventually(lambda: dms("U2"), timeout=15)  # the owner is always told
    settle()
    with get_sessionmaker(running.settings.database_url)() as session:
        [action] = session.scalars(select(Action)).all()
    cards = ok(slack, "chat.postMessage", thread_ts=ts)
    if fault in CURED:
        assert [c.response["ts"] for c in cards] == [action.card_ts]
        assert dms("U1") == []
    else:  # saved, but no card: its creator is told so
        assert cards == [] and action.card_ts is None
        [dm] = dms("U1")
        assert "is saved, but I could not post its card" in dm.args["text"]
    assert len(dms("U2")) == 1


# --------------------------------------------------------------------------------------
# An event: app_home_opened publishes the App Home (views.publish)
# --------------------------------------------------------------------------------------

def open_home(sim: SlackSim, **kwargs: Any) -> None:
    acked(sim.event({"type": "app_home_opened", "user": "U1", "channel": "DU1",
                     "tab": "home", "event_ts": f"{time.time():.6f}"}, **kwargs))


@pytest.mark.parametrize("fault", list(Fault))
def test_event_publish(fault: Fault, sim: SlackSim, slack: FakeSlack,
                       running: Running) -> None:
    inject(slack, "views.publish", fault)
    open_home(sim)
    if fault == Fault.ERROR_PERSISTENT:
        # Nobody to tell (an event has no reply); the Home is built from the database
        # each time, so the next opening publishes it.
        eventually(lambda: len(slack.calls_to("views.publish")) == ATTEMPTS, timeout=15)
        settle()
        assert ok(slack, "views.publish") == []
        open_home(sim)
    # views.publish is safe to repeat: a timeout is retried too.
    eventually(lambda: ok(slack, "views.publish"), timeout=15)
    settle()
    assert len(ok(slack, "views.publish")) == 1


def test_a_redelivered_event_is_handled_again_harmlessly(sim: SlackSim, slack: FakeSlack,
                                                         running: Running) -> None:
    """Slack redelivers an event it thinks was not acknowledged (X-Slack-Retry-Num): the
    Home is published again, identically. (A redelivered thread reply is recorded once:
    tests/e2e/test_threads.py.)"""
    open_home(sim, event_id="EvHOME1")
    open_home(sim, event_id="EvHOME1", retry_num=1)
    published = eventually(lambda: ok(slack, "views.publish")[1:] and
                           ok(slack, "views.publish"), timeout=15)
    assert len(published) == 2 and published[0].args["view"] == published[1].args["view"]


# --------------------------------------------------------------------------------------
# The clock: a nudge DM (chat.postMessage), and a digest (post + chart upload)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", list(Fault))
def test_clock_nudge(fault: Fault, sqlite_url: str, slack: FakeSlack) -> None:
    settings = fast_settings(sqlite_url, slack)
    slack.users["U7"] = {"tz": "UTC"}
    add_action(sqlite_url)
    inject(slack, "chat.postMessage", fault)
    first = run_job(settings, "nudges", NINE)
    if fault in CURED:
        assert (first.sent, first.failed) == (1, 0)
    else:  # stays due; the next pass (a minute later) sends it
        assert (first.sent, first.failed) == (0, 1)
        assert run_job(settings, "nudges", NINE + timedelta(minutes=1)).sent == 1
    assert run_job(settings, "nudges", NINE + timedelta(minutes=2)).sent == 0
    settle(HANG if fault == Fault.TIMEOUT_ONCE else 0)
    assert len(ok(slack, "chat.postMessage", channel="U7")) == 1
    [row] = notifications(sqlite_url, "nudge")
    assert (row.status, row.attempts) == ("sent", 1 if fault in CURED else 2)


@pytest.mark.parametrize("fault", list(Fault))
def test_clock_digest(fault: Fault, sim: SlackSim, slack: FakeSlack, running: Running,
                      loaded: int, sample_table: PlanningTable) -> None:
    post_gap(sim, slack, running)  # an open gap and a second snapshot: the digest has a chart
    frame = sample_table.frame.assign(forecast=sample_table.frame["forecast"] * 1.01)
    store(session_factory(running.settings.database_url),
          dataclasses.replace(sample_table, frame=frame))
    digest_service.set_meeting(get_sessionmaker(running.settings.database_url), "T1", "C1",
                               parse_meeting(MEETING))
    slack.reset()
    inject(slack, "chat.postMessage", fault)
    first = run_job(running.settings, "digests", DIGEST_AT)
    if fault not in CURED:
        assert (first.sent, first.failed) == (0, 1)
        assert run_job(running.settings, "digests", DIGEST_AT + timedelta(minutes=1)).sent == 1
    assert run_job(running.settings, "digests", DIGEST_AT + timedelta(minutes=2)).sent == 0
    [digest] = ok(slack, "chat.postMessage", channel="C1")
    [chart] = ok(slack, "files.completeUploadExternal")
    assert chart.args["thread_ts"] == digest.response["ts"]


def test_clock_send_slack_carried_out_after_the_timeout_is_the_at_least_once_window(
        sqlite_url: str, slack: FakeSlack) -> None:
    """No answer within the timeout, but Slack did post it: a nudge is a direct message,
    whose history the app does not read, so the next pass posts again. Twice, never
    more: the documented at-least-once window."""
    settings = fast_settings(sqlite_url, slack)
    slack.users["U7"] = {"tz": "UTC"}
    add_action(sqlite_url)
    slack.delay_next("chat.postMessage", HANG, processed=True)
    assert run_job(settings, "nudges", NINE).failed == 1
    assert run_job(settings, "nudges", NINE + timedelta(minutes=1)).sent == 1
    assert run_job(settings, "nudges", NINE + timedelta(minutes=2)).sent == 0
    eventually(lambda: len(ok(slack, "chat.postMessage", channel="U7")) == 2, timeout=5)


# --------------------------------------------------------------------------------------
# Uploads: /gap export (files.getUploadURLExternal, the bytes, files.completeUploadExternal)
# --------------------------------------------------------------------------------------

EXPORTED = "files.completeUploadExternal"


@pytest.mark.parametrize("step", ["upload", EXPORTED])
@pytest.mark.parametrize("fault", list(Fault))
def test_upload(fault: Fault, step: str, sim: SlackSim, slack: FakeSlack,
                running: Running) -> None:
    add_action(running.settings.database_url)
    inject(slack, step, fault)
    acked(sim.command("export actions"))
    # Before the last step nothing is shared: the bytes' POST is retried on a timeout
    # too (getting an upload URL also is, like views.publish); the last step is a post.
    if fault not in CURED and not (fault == Fault.TIMEOUT_ONCE and step == "upload"):
        [message] = wait_told(slack)
        assert message.startswith("Slack did not take the files")
        assert ok(slack, EXPORTED) == []
        acked(sim.command("export actions"))
    [done] = eventually(lambda: ok(slack, EXPORTED), timeout=15)
    settle()
    assert len(ok(slack, EXPORTED)) == 1
    shared = [slack.files[f["id"]] for f in done.args["files"]]
    assert [f.filename.rsplit(".", 1)[1] for f in shared] == ["csv", "xlsx"]
    assert all(f.uploaded and slack.uploads[f.id] for f in shared)


# --------------------------------------------------------------------------------------
# A response_url post: /gap actions replies only to the caller
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", list(Fault))
def test_response_url(fault: Fault, sim: SlackSim, slack: FakeSlack,
                      running: Running) -> None:
    inject(slack, "response_url", fault)
    acked(sim.command("actions"))
    [reply] = wait_told(slack)
    settle(HANG if fault == Fault.TIMEOUT_ONCE else 0.3)
    assert told(slack) == [reply] and reply.startswith("Your open actions")
    # The same retries as a Web API call; past them, chat.postEphemeral instead.
    assert len(ok(slack, "chat.postEphemeral")) == (0 if fault in CURED else 1)


# --------------------------------------------------------------------------------------
# The bot is not in the channel: join, then post (or upload) once
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("join", ["ok", "is_archived", "500-persistent"])
def test_not_in_channel_joins_then_posts(join: str, sim: SlackSim, slack: FakeSlack,
                                         running: Running, loaded: int) -> None:
    slack.fail_next("chat.postMessage", status=200, error="not_in_channel")
    if join == "is_archived":
        slack.fail_next("conversations.join", status=200, error="is_archived")
    elif join != "ok":
        slack.fail_next("conversations.join", status=500, times=ATTEMPTS)
    acked(sim.command("region=EU category=Snacks"))
    if join == "ok":
        [post] = eventually(lambda: ok(slack, "chat.postMessage"), timeout=15)
        assert [c.status for c in slack.calls_to("conversations.join")] == [200]
        eventually(lambda: points(running) == [(1, post.response["ts"])])
        return
    [message] = wait_told(slack)
    assert message.startswith("I am not in this channel" if join == "is_archived"
                              else "Slack did not take that (internal_error)")
    assert ok(slack, "chat.postMessage") == []


def test_not_in_channel_joins_then_uploads_once(sim: SlackSim, slack: FakeSlack,
                                                running: Running) -> None:
    add_action(running.settings.database_url)
    slack.fail_next(EXPORTED, status=200, error="not_in_channel")
    acked(sim.command("export actions"))
    eventually(lambda: ok(slack, EXPORTED), timeout=15)
    settle()
    assert len(ok(slack, EXPORTED)) == 1
    assert [c.status for c in slack.calls_to("conversations.join")] == [200]


# --------------------------------------------------------------------------------------
# Permanent errors in the clock: final at once, logged once, never retried
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("error", ["channel_not_found", "is_archived", "account_inactive",
                                   "user_not_found", "invalid_blocks"])
def test_a_nudge_slack_refuses_for_good_is_given_up_once(
        error: str, db_url: str, slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    settings = fast_settings(db_url, slack)
    slack.users["U7"] = {"tz": "UTC"}
    add_action(db_url)
    slack.fail_next("chat.postMessage", status=200, error=error)
    caplog.set_level(logging.WARNING, logger="sop_core.outbox")
    assert run_job(settings, "nudges", NINE).failed == 1
    for minutes in (1, 2, 60):
        report = run_job(settings, "nudges", NINE + timedelta(minutes=minutes))
        assert (report.sent, report.skipped, report.failed) == (0, 0, 0)
    assert len(slack.calls_to("chat.postMessage")) == 1
    [row] = notifications(db_url, "nudge")
    assert (row.status, row.last_error) == ("failed", f"chat.postMessage: {error}")
    [logged] = [r for r in caplog.records if "will not be retried" in r.getMessage()]
    assert error in logged.getMessage() and settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() not in caplog.text


def test_a_digest_in_a_channel_the_bot_cannot_join_is_given_up(db_url: str,
                                                               slack: FakeSlack) -> None:
    settings = fast_settings(db_url, slack)
    digest_service.set_meeting(get_sessionmaker(db_url), "T1", "GPRIVATE", parse_meeting(MEETING))
    slack.add_channel("GPRIVATE", private=True, members={"U1"}, bot_member=False)
    assert run_job(settings, "digests", DIGEST_AT).failed == 1
    assert run_job(settings, "digests", DIGEST_AT + timedelta(minutes=1)).failed == 0
    # Asked whether it may post, never posted into a channel it is not in.
    assert [c.method for c in slack.calls] == ["conversations.info"]
    [row] = notifications(db_url, "digest")
    assert (row.status, row.last_error) == (
        "failed", "not_in_channel (conversations.info: channel_not_found)")


def test_a_watch_post_refused_for_good_does_not_hold_the_watch_due(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    settings = fast_settings(db_url, slack)
    sessions = get_sessionmaker(db_url)
    store(sessions, sample_table)
    add_watch(sessions, team_id="T1", channel_id="CGONE", user_id="U1",
              text="region=EU category=Snacks")
    slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    first = run_job(settings, "watches", NINE)
    assert first.failed >= 1
    again = run_job(settings, "watches", NINE + timedelta(minutes=1))
    assert (again.sent, again.failed) == (0, 0)  # the evaluation is done: not re-planned
    with sessions() as session:
        statuses = dict(session.execute(select(Notification.kind, Notification.status)).all())
        orphans = session.scalar(select(func.count()).select_from(TriggerPoint))
    assert statuses == {"watch_eval": "sent", "watch_post": "failed"}
    assert orphans == 0  # the trigger point of the refused post is not kept


def test_transient_failures_are_retried_past_the_attempts_cap(sqlite_url: str,
                                                               slack: FakeSlack) -> None:
    """The cap is for errors nobody recognised: a Slack outage is waited out."""
    settings = fast_settings(sqlite_url, slack)
    slack.users["U7"] = {"tz": "UTC"}
    add_action(sqlite_url)
    slack.fail_next("chat.postMessage", status=200, error="service_unavailable",
                    times=outbox.MAX_ATTEMPTS + 1)
    for minute in range(outbox.MAX_ATTEMPTS + 1):
        assert run_job(settings, "nudges", NINE + timedelta(minutes=minute)).failed == 1
    assert run_job(settings, "nudges", NINE + timedelta(hours=1)).sent == 1
    [row] = notifications(sqlite_url, "nudge")
    assert (row.status, row.attempts) == ("sent", outbox.MAX_ATTEMPTS + 2)


def test_two_clocks_and_a_rate_limit_still_send_once(sqlite_url: str,
                                                     slack: FakeSlack) -> None:
    """A pass waiting out Retry-After holds its claim: a second clock skips the nudge."""
    settings = fast_settings(sqlite_url, slack)
    slack.users["U7"] = {"tz": "UTC"}
    add_action(sqlite_url)
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    reports: list[Any] = []
    first = threading.Thread(target=lambda: reports.append(run_job(settings, "nudges", NINE)))
    first.start()
    slack.wait_for("chat.postMessage")  # the first pass is now waiting out Retry-After
    reports.append(run_job(settings, "nudges", NINE))
    first.join()
    assert sorted(r.sent for r in reports) == [0, 1]
    assert len(ok(slack, "chat.postMessage", channel="U7")) == 1


API = "https://slack.com/api/"


def slack_error(error: str, status: int = 200, method: str = "chat.postMessage"
                ) -> SlackApiError:
    answer = SlackResponse(client=None, http_verb="POST", api_url=f"{API}{method}",
                           req_args={}, data={"ok": False, "error": error}, headers={},
                           status_code=status)
    return SlackApiError("refused", answer)


T, P, U = outbox.ErrorKind.TRANSIENT, outbox.ErrorKind.PERMANENT, outbox.ErrorKind.UNKNOWN


@pytest.mark.parametrize(("error", "kind", "reason"), [
    (slack_error("channel_not_found"), P, "chat.postMessage: channel_not_found"),
    (slack_error("is_archived"), P, "chat.postMessage: is_archived"),
    (slack_error("invalid_blocks"), P, "chat.postMessage: invalid_blocks"),
    (slack_error("token_revoked", method="users.info"), P, "users.info: token_revoked"),
    (NotInChannel("is_archived"), P, "not_in_channel (conversations.join: is_archived)"),
    (slack_error("ratelimited", 429), T, "chat.postMessage: ratelimited"),
    (slack_error("internal_error", 500), T, "chat.postMessage: internal_error"),
    (slack_error("bad_gateway", 502), T, "chat.postMessage: bad_gateway"),
    (slack_error("service_unavailable"), T, "chat.postMessage: service_unavailable"),
    # A wrong token or a missing scope: fixed by an operator, then what is due goes out.
    (slack_error("invalid_auth"), T, "chat.postMessage: invalid_auth"),
    (SlackUnanswered("chat.update", TimeoutError()), T, "chat.update: no_answer"),
    (TimeoutError("timed out"), T, "no answer from Slack (TimeoutError)"),
    (ConnectionResetError(), T, "no answer from Slack (ConnectionResetError)"),
    (slack_error("something_new"), U, "chat.postMessage: something_new"),
    (KeyError("ts"), U, "KeyError: 'ts'"),
])
def test_diagnose(error: Exception, kind: outbox.ErrorKind, reason: str) -> None:
    assert diagnose(error) == outbox.Diagnosis(kind, reason)


def test_housekeeping_prunes_old_given_up_records_too(sqlite_url: str,
                                                      slack: FakeSlack) -> None:
    settings = fast_settings(sqlite_url, slack)
    sessions = get_sessionmaker(sqlite_url)
    old, recent = NINE - timedelta(days=500), NINE - timedelta(days=5)
    for key, when in (("old", old), ("recent", recent)):
        outbox.claim(sessions, key, kind="nudge", team_id="T1", now=when)
        outbox.give_up(sessions, key, "chat.postMessage: channel_not_found", now=when)
    assert run_job(settings, "housekeeping", NINE).skipped == 1
    with sessions() as session:
        assert list(session.scalars(select(Notification.key))) == ["recent"]
