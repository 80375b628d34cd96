"""The database drops at the worst moments, on PostgreSQL behind a proxy that cuts every
connection: mid-request, between Slack's post and the write, during a modal save,
during a watch post. Nothing is lost, nothing is posted twice, and nobody is told
"nothing was done" about a message that is in the channel.

Each test checks that the outage really happened (the write waited for ``restore()``):
with a proxy that lets a new connection through after ``cut()``, they fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from bot.clock import run_job
from bot.ids import ActionId
from sop_core import snapshots
from sop_core.db import session_factory
from sop_core.loading import PlanningTable
from sop_core.models import Action, Notification, TriggerPoint
from sop_core.services.data import store
from tests.e2e.conftest import SIGNING_SECRET, app_settings, serve_app
from tests.e2e.slack_sim import SlackSim
from tests.e2e.tcp_proxy import TcpProxy
from tests.e2e.test_actions import smart_values
from tests.e2e.waiting import eventually
from tests.fakeslack import FakeSlack
from tests.integration.test_watches import changed, plan_met

pytestmark = pytest.mark.postgres
SNACKS = "region=EU category=Snacks"
OUTAGE = 4.0  # seconds the database stays away
# Slack holds the post this long: it answers in the middle of the outage.
SLOW_POST = 2.5
NOTHING_DONE = "nothing was done"


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[str, str, TcpProxy]]:
    """(the app's URL through the proxy, a direct URL for the test's own checks, proxy)."""
    real = make_url(postgres_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432).start()
    yield real.set(port=proxy.port).render_as_string(hide_password=False), postgres_url, proxy
    proxy.stop()


def points(direct: str) -> list[TriggerPoint]:
    engine = create_engine(direct, poolclass=None)
    try:
        with engine.connect() as connection:
            return [TriggerPoint(**dict(row._mapping)) for row in connection.execute(
                select(TriggerPoint.__table__).order_by(TriggerPoint.id))]
    finally:
        engine.dispose()


def count_actions(direct: str) -> int:
    engine = create_engine(direct)
    try:
        with engine.connect() as connection:
            return len(connection.execute(select(Action.__table__.c.id)).all())
    finally:
        engine.dispose()


def evaluated(direct: str, key: str) -> bool:
    engine = create_engine(direct)
    try:
        with engine.connect() as connection:
            return connection.execute(select(Notification.__table__.c.status).where(
                Notification.__table__.c.key == key)).scalar() == "sent"
    finally:
        engine.dispose()


def top_level(slack: FakeSlack) -> list:
    return [c for c in slack.calls_to("chat.postMessage") if not c.args.get("thread_ts")
            and str(c.args["channel"]).startswith("C")]


def told(slack: FakeSlack) -> list[str]:
    return [c.args.get("text", "") for c in slack.calls_to("response_url")] + [
        c.args.get("text", "") for c in slack.calls_to("chat.postEphemeral")]


def outage_during(proxy: TcpProxy, direct: str, *, pending: bool) -> None:
    """Cut once a trigger point is written but not yet completed (``pending``), hold
    the outage and check that the app's write really waited for it, then restore."""
    if pending:
        eventually(lambda: any(p.message_ts is None for p in points(direct)) or None,
                   timeout=20)
    proxy.cut()
    time.sleep(OUTAGE)
    # An outage: nothing the app wrote while the proxy was cut reached the database.
    assert any(p.message_ts is None for p in points(direct)) == pending
    proxy.restore()


def test_mid_request(proxied: tuple[str, str, TcpProxy], slack: FakeSlack,
                     sample_table: PlanningTable) -> None:
    url, direct, proxy = proxied
    store(session_factory(direct), sample_table)
    with serve_app(app_settings(url, slack)) as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        proxy.cut()
        snapshots.clear_cache()  # a cold read needs the database
        assert sim.command(SNACKS).status == 200  # Slack still gets its ack in time
        [reply] = slack.wait_for("response_url", timeout=30)
        assert "The database is not answering right now" in reply.args["text"]
        assert top_level(slack) == [] and points(direct) == []  # nothing half done
        proxy.restore()
        sim.command(SNACKS)
        slack.wait_for("chat.postMessage", timeout=30)
        eventually(lambda: [p for p in points(direct) if p.message_ts] or None, timeout=20)
    assert len(top_level(slack)) == 1 and len(points(direct)) == 1
    assert slack.violations == []


def test_between_the_post_and_the_write(proxied: tuple[str, str, TcpProxy],
                                        slack: FakeSlack, sample_table: PlanningTable) -> None:
    url, direct, proxy = proxied
    store(session_factory(direct), sample_table)
    with serve_app(app_settings(url, slack)) as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        slack.delay_next("chat.postMessage", SLOW_POST)  # Slack takes the post while we cut
        sim.command(SNACKS)
        outage_during(proxy, direct, pending=True)
        [post] = slack.wait_for("chat.postMessage", timeout=30)
        ts = post.response["ts"]
        # Completed once the database is back: the thread is followed, buttons work.
        [point] = eventually(lambda: [p for p in points(direct) if p.message_ts == ts] or None,
                             timeout=30)
        assert not any(NOTHING_DONE in text for text in told(slack))
        [point_id] = {e["value"] for b in post.args["blocks"] if b["type"] == "actions"
                      for e in b["elements"] if e["action_id"] == ActionId.DISCUSS}
        assert int(point_id) == point.id
        sim.button(ActionId.DISCUSS, point_id, message_ts=ts)
        slack.wait_for("chat.postMessage", predicate=lambda c: c.args.get("thread_ts") == ts,
                       timeout=30)
        # The same scope again: updated in place, never a second message.
        sim.command(SNACKS, user="U2")
        slack.wait_for("chat.update", timeout=30)
    assert len(top_level(slack)) == 1 and len(points(direct)) == 1
    assert slack.violations == []


def test_during_a_modal_save(proxied: tuple[str, str, TcpProxy], slack: FakeSlack,
                             sample_table: PlanningTable) -> None:
    url, direct, proxy = proxied
    store(session_factory(direct), sample_table)
    with serve_app(app_settings(url, slack)) as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        sim.command(SNACKS)
        [post] = slack.wait_for("chat.postMessage", timeout=30)
        ts = post.response["ts"]
        [point] = eventually(lambda: [p for p in points(direct) if p.message_ts] or None)
        sim.button(ActionId.CREATE_ACTION, str(point.id), message_ts=ts)
        [opened] = slack.wait_for("views.open", timeout=30)
        view = opened.args["view"]
        proxy.cut()
        reply = sim.view_submission(view, smart_values())
        assert reply.status == 200
        time.sleep(OUTAGE)
        assert count_actions(direct) == 0  # not saved...
        words = " ".join(told(slack) + [c.args.get("text", "") for c in
                                        slack.calls_to("chat.postMessage")] + [reply.body.decode()])
        assert "nothing was saved" in words  # ...and the person knows it, in the form
        proxy.restore()
        assert sim.view_submission(view, smart_values()).status == 200
        eventually(lambda: count_actions(direct) == 1 or None, timeout=30)
        time.sleep(0.5)
    assert count_actions(direct) == 1  # saved once
    assert slack.violations == []


def test_during_a_watch_post(proxied: tuple[str, str, TcpProxy], slack: FakeSlack,
                             sample_table: PlanningTable) -> None:
    url, direct, proxy = proxied
    sessions = session_factory(direct)
    store(sessions, changed(sample_table, plan_met))  # within the rule at first
    settings = app_settings(url, slack)
    with serve_app(settings) as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        sim.command(f"watch {SNACKS}")
        slack.wait_for("response_url", timeout=30)
        # The watch's first evaluation (within the rule: nothing to post) is over.
        eventually(lambda: evaluated(direct, "watched:T1:1:1") or None, timeout=30)
        store(sessions, sample_table)  # crosses: the watch posts
        day = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
        slack.delay_next("chat.postMessage", SLOW_POST)
        clock = threading.Thread(target=run_job, args=(settings, "watches", day))
        clock.start()
        outage_during(proxy, direct, pending=True)
        clock.join(timeout=60)
        for minutes in (1, 10, 20):  # later passes, past every lease
            run_job(settings, "watches", day + timedelta(minutes=minutes))
        posts = top_level(slack)
        assert len(posts) == 1, [(c.args["blocks"][0], c.response.get("ts")) for c in posts]
        [post] = posts
        [point] = points(direct)
        assert point.message_ts == post.response["ts"]
    assert slack.violations == []
