"""The real app over real HTTP, both ways.

The app runs as a WSGI app on a 127.0.0.1 port (the same callable gunicorn serves), its
Web API calls go to FakeSlack over HTTP, and tests play Slack with signed requests.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from sqlalchemy import select

from bot.server import create_wsgi_app
from sop_core.config import Settings
from sop_core.db import get_engine, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import Base
from sop_core.services.data import store
from tests.e2e.slack_sim import SlackSim
from tests.fakeslack import FakeSlack

SIGNING_SECRET = "test-signing-secret"
TEAMS = {"T1": "xoxb-test-team-one", "T2": "xoxb-test-team-two"}
# A fixed Fernet key: OAuth mode keeps the Slack tokens encrypted with it.
ENCRYPTION_KEY = "mHk5fKmvLcIqU1Qv0rN5y0dqW7rGmK6uYyXxH2m8qzs="


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Running:
    url: str
    settings: Settings
    server: _ThreadingServer


@contextlib.contextmanager
def serve_app(settings: Settings, **app_options: Any) -> Iterator[Running]:
    """The app on a free 127.0.0.1 port while the block runs; at its end, the work
    listeners do after ``ack()`` is waited for, so none of it reaches the next test."""
    lazy_work = ThreadPoolExecutor(max_workers=10, thread_name_prefix="bolt-listener")
    app = create_wsgi_app(settings, listener_executor=lazy_work, **app_options)
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield Running(f"http://127.0.0.1:{server.server_port}", settings, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        lazy_work.shutdown(wait=True)
        warmer = getattr(app, "warmer", None)  # with warm_up: a thread polling the database
        if warmer is not None:
            warmer.stop()
            warmer.thread.join(timeout=5)


# Written by any signed request, refused or not: the replay guard's signatures, the bot
# token's identity (Slack's auth.test, kept on the first request ever), and what Slack
# said about channels and people (asked with the requester's own workspace's token).
NOT_RECORDS = {"seen_requests", "bot_identities", "slack_answers", "slack_changes"}


def database_rows(url: str) -> dict[str, list[str]]:
    """Every row of every table, comparable, but :data:`NOT_RECORDS`: what a refused
    request must leave as it was."""
    with get_engine(url).connect() as connection:
        return {table.name: sorted(repr(tuple(row)) for row in connection.execute(
                    select(table)).all())
                for table in Base.metadata.sorted_tables if table.name not in NOT_RECORDS}


def app_settings(db_url: str, fake: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": db_url, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": TEAMS["T1"], "SLACK_API_URL": fake.url,
        # Both test workspaces are served the data loaded without a team (tests of
        # the default, the token's own workspace only, pass shared_data_teams=None).
        "encryption_key": ENCRYPTION_KEY, "shared_data_teams": "T1,T2", **overrides,
    }
    return Settings(**values)


@pytest.fixture
def slack(fake_slack: FakeSlack) -> FakeSlack:
    for team, token in TEAMS.items():
        fake_slack.add_team(team, token)
    return fake_slack


@pytest.fixture
def app_server(db_url: str, slack: FakeSlack) -> Iterator[Running]:
    with serve_app(app_settings(db_url, slack)) as running:
        yield running


@pytest.fixture
def sim(app_server: Running, slack: FakeSlack) -> SlackSim:
    return SlackSim(app_server.url, SIGNING_SECRET, slack.root_url)


@pytest.fixture
def loaded(app_server: Running, sample_table: PlanningTable) -> int:
    """The sample data as the latest view; returns the snapshot id."""
    sessions = session_factory(app_server.settings.database_url)
    return store(sessions, sample_table).snapshot_id


def refused(sim: SlackSim, reason: str) -> float:
    """``sopgap_refused_requests_total{reason}`` as ``/metrics`` shows it (no series yet:
    none counted; a web worker starts them at zero, tests/e2e/test_operations.py)."""
    text = sim.get("/metrics").body.decode()
    found = re.search(rf'^sopgap_refused_requests_total{{reason="{reason}"}} (\S+)$', text,
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0
