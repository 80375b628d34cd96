"""Trigger-point writes hold no SQLite write lock across the Slack call: while Slack takes
its time with the post (or the update of a gap already posted), other writers (the
replay guard, the clock, thread replies) get the database at once."""

from __future__ import annotations

import sqlite3
import time

from sqlalchemy.engine import make_url

from sop_core.db import session_factory
from sop_core.loading import PlanningTable
from sop_core.services.data import store
from tests.e2e.conftest import SIGNING_SECRET, app_settings, serve_app
from tests.e2e.slack_sim import SlackSim
from tests.e2e.waiting import eventually
from tests.fakeslack import FakeSlack

SLOW = 2.0


def write_at_once(path: str) -> None:
    """Take SQLite's write lock, waiting at most 100 ms for it."""
    connection = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def recorded(path: str) -> bool:
    connection = sqlite3.connect(path, timeout=5)
    try:
        return connection.execute("SELECT count(*) FROM trigger_points "
                                  "WHERE message_ts IS NOT NULL").fetchone()[0] == 1
    finally:
        connection.close()


def test_no_write_lock_is_held_while_slack_is_called(sqlite_url: str, slack: FakeSlack,
                                                     sample_table: PlanningTable) -> None:
    store(session_factory(sqlite_url), sample_table)
    path = make_url(sqlite_url).database
    assert path
    with serve_app(app_settings(sqlite_url, slack)) as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        for method in ("chat.postMessage", "chat.update"):  # a new post, then in place
            slack.delay_next(method, SLOW)
            sim.command("region=EU category=Snacks")
            started = time.monotonic()
            while time.monotonic() - started < SLOW - 0.3:  # all along the slow call
                write_at_once(path)  # raises "database is locked" if a lock were held
                time.sleep(0.05)
            slack.wait_for(method, timeout=10)
            eventually(lambda: recorded(path) or None, timeout=10)  # the post is complete
    assert len(slack.calls_to("chat.update")) == 1
    assert slack.violations == []
