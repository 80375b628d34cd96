"""Replayed requests across workers and restarts: acked without a database write, but
never handled twice (see bot/replays.py)."""

from __future__ import annotations

import json
import time
import urllib.parse

from sqlalchemy import func, select

from sop_core.db import get_engine, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import Action, SeenRequest
from sop_core.services.data import store
from tests.e2e.conftest import SIGNING_SECRET, app_settings, database_rows, serve_app
from tests.e2e.slack_sim import SlackSim, sign
from tests.e2e.waiting import eventually
from tests.fakeslack import FakeSlack

FORM = "application/x-www-form-urlencoded"


def _signed_gap(slack: FakeSlack) -> tuple[bytes, str, str]:
    body = (b"command=%2Fgap&text=region%3DEU+post&team_id=T1&channel_id=C1&user_id=U1"
            b"&api_app_id=A0SOPGAP&response_url=" + slack.root_url.encode() + b"/response/7")
    now = str(int(time.time()))
    return body, now, sign(SIGNING_SECRET, now, body)


def _seen(db_url: str) -> int:
    with session_factory(db_url)() as session:
        return session.scalar(select(func.count()).select_from(SeenRequest)) or 0


def test_a_replay_to_another_worker_is_not_handled_twice(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    """Two workers (two apps, each with its own memory) on one database: the second
    one acks the replay but its claim fails, so no second trigger point."""
    store(session_factory(db_url), sample_table)
    body, now, signature = _signed_gap(slack)
    settings = app_settings(db_url, slack)
    with serve_app(settings) as first, serve_app(settings) as second:
        one = SlackSim(first.url, SIGNING_SECRET, slack.root_url)
        two = SlackSim(second.url, SIGNING_SECRET, slack.root_url)
        assert one.post(body, FORM, timestamp=now, signature=signature).status == 200
        slack.wait_for("chat.postMessage")
        assert two.post(body, FORM, timestamp=now, signature=signature).status == 200
        assert one.post(body, FORM, timestamp=now, signature=signature).status == 401
    # Both apps' work has finished here (serve_app waits for it).
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert _seen(db_url) == 1


def test_a_replay_after_a_restart_is_not_handled_twice(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    store(session_factory(db_url), sample_table)
    body, now, signature = _signed_gap(slack)
    settings = app_settings(db_url, slack)
    with serve_app(settings) as before:
        sim = SlackSim(before.url, SIGNING_SECRET, slack.root_url)
        assert sim.post(body, FORM, timestamp=now, signature=signature).status == 200
        slack.wait_for("chat.postMessage")
    with serve_app(settings) as after:  # a new process: its memory is empty
        sim = SlackSim(after.url, SIGNING_SECRET, slack.root_url)
        assert sim.post(body, FORM, timestamp=now, signature=signature).status == 200
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_distinct_requests_each_run_once(db_url: str, slack: FakeSlack,
                                         sample_table: PlanningTable) -> None:
    """The claim refuses replays only: three different signed commands, three posts."""
    store(session_factory(db_url), sample_table)
    with serve_app(app_settings(db_url, slack)) as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        for channel in ("C1", "C2", "C3"):
            assert sim.command("region=EU post", channel=channel).status == 200
        slack.wait_for("chat.postMessage", count=3)
    assert len(slack.calls_to("chat.postMessage")) == 3
    assert _seen(db_url) == 3


def test_an_ack_does_not_wait_for_the_database(db_url: str, slack: FakeSlack,
                                             sample_table: PlanningTable) -> None:
    """While another connection holds the write lock on the replay table (SQLite: the
    whole database), a command is still acked at once; its work goes on once the lock
    is released, and posts once."""
    store(session_factory(db_url), sample_table)
    engine = get_engine(db_url)
    with serve_app(app_settings(db_url, slack)) as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        sim.command("region=EU post", channel="C9")  # warm: the snapshot decoded, pools open
        slack.wait_for("chat.postMessage")
        with engine.connect() as blocker:
            if engine.dialect.name == "sqlite":
                blocker.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                blocker.begin()
                blocker.exec_driver_sql("LOCK TABLE seen_requests IN EXCLUSIVE MODE")
            reply = sim.command("region=EU post")
            assert reply.status == 200
            assert reply.elapsed < 1.0
            time.sleep(0.3)
            assert len(slack.calls_to("chat.postMessage")) == 1  # its work waits
            blocker.rollback()
        slack.wait_for("chat.postMessage", count=2)
    assert _seen(db_url) == 2


def test_a_modal_replayed_to_another_worker_saves_nothing_twice(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    """A modal's change is saved before its ack: its claim comes first, so a replay to
    another worker is refused before it saves anything."""
    from tests.e2e.test_actions import CREATOR, open_modal, posted_point, smart_values

    store(session_factory(db_url), sample_table)
    settings = app_settings(db_url, slack)
    with serve_app(settings) as first, serve_app(settings) as second:
        one = SlackSim(first.url, SIGNING_SECRET, slack.root_url)
        two = SlackSim(second.url, SIGNING_SECRET, slack.root_url)
        point_id, ts = posted_point(one, slack, first)
        view = open_modal(one, slack, point_id, ts)
        now = str(int(time.time()))
        assert one.view_submission(view, smart_values(), user=CREATOR,
                                   timestamp=now).status == 200
        body = urllib.parse.urlencode({"payload": json.dumps(one.sent[-1])}).encode()

        def carded() -> bool:  # the first submission's work after its ack is done
            with session_factory(db_url)() as session:
                return session.scalar(select(Action.card_ts)) is not None

        eventually(carded)
        before = database_rows(db_url)
        assert two.post(body, FORM, timestamp=now).status == 401
        time.sleep(0.3)
        assert database_rows(db_url) == before
    with session_factory(db_url)() as session:
        assert session.scalar(select(func.count()).select_from(Action)) == 1
