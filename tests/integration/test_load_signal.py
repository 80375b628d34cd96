"""A load tells the processes keeping the latest view decoded as soon as it commits
(sop_core/load_signal.py): PostgreSQL's NOTIFY, a SQLite file's newest snapshot id; on
both databases, a load by another process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sop_core import load_signal
from sop_core.db import get_engine, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import Snapshot
from sop_core.sample_data import SAMPLE_CSV
from sop_core.services.loads import store

REPO = Path(__file__).resolve().parents[2]
LONG = 30.0  # a wait that only a load may end early


class Waiting:
    """``watcher.wait`` in a thread: when it returned, in seconds after it started."""

    def __init__(self, watcher: load_signal.Watcher, timeout: float, newest: int | None):
        self.returned: float | None = None
        self._started = time.monotonic()

        def wait() -> None:
            watcher.wait(timeout, newest)
            self.returned = time.monotonic() - self._started

        self.thread = threading.Thread(target=wait, daemon=True)
        self.thread.start()

    def join(self, limit: float = 10.0) -> float | None:
        self.thread.join(limit)
        return self.returned


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def newest(db_url: str) -> int | None:
    with session_factory(db_url)() as session:
        return session.scalar(select(func.max(Snapshot.id)))


def test_a_load_in_another_process_wakes_the_watchers_at_once(
        db_url: str, stop: threading.Event) -> None:
    watcher = load_signal.watcher(get_engine(db_url), stop)
    try:
        waiting = Waiting(watcher, LONG, newest(db_url))
        time.sleep(0.2)  # waiting already when the load starts
        subprocess.run([sys.executable, "-m", "bot.cli", "load", str(SAMPLE_CSV)], cwd=REPO,
                       env={**os.environ, "DATABASE_URL": db_url}, check=True,
                       stdout=subprocess.DEVNULL)
        returned = waiting.join()
        assert returned is not None and returned < 10, "woken by the load, not the timeout"
    finally:
        watcher.close()


def test_without_a_load_a_watcher_waits_its_interval(db_url: str, stop: threading.Event,
                                                     sample_table: PlanningTable) -> None:
    """A load rolled back tells no one; nor does a load seen before the wait."""
    sessions = session_factory(db_url)
    seen = store(sessions, sample_table).snapshot_id
    watcher = load_signal.watcher(get_engine(db_url), stop)
    try:
        waiting = Waiting(watcher, 1.0, seen)
        with get_engine(db_url).connect() as connection:
            failing = connection.begin()  # a load that fails before its commit
            load_signal.announce(connection)
            failing.rollback()
        returned = waiting.join()
        assert returned is not None and returned >= 0.95
    finally:
        watcher.close()


def test_a_watcher_stops_when_told(db_url: str, stop: threading.Event) -> None:
    watcher = load_signal.watcher(get_engine(db_url), stop)
    try:
        waiting = Waiting(watcher, LONG, newest(db_url))
        time.sleep(0.1)
        stop.set()
        returned = waiting.join()
        assert returned is not None and returned < 5
    finally:
        watcher.close()


def assert_waits_the_interval(watcher: load_signal.Watcher, interval: float = 0.3) -> None:
    """``wait`` returns after its timeout (no sooner, not much later); then closed."""
    try:
        started = time.monotonic()
        watcher.wait(interval, None)
        assert interval - 0.01 <= time.monotonic() - started < 5
    finally:
        watcher.close()


def test_a_sqlite_file_not_migrated_yet_waits_the_interval(tmp_path: Path,
                                                           stop: threading.Event) -> None:
    """No snapshots table to read: the watcher waits as the warmer did before it."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert_waits_the_interval(load_signal.watcher(get_engine(url), stop))


@pytest.mark.postgres
def test_a_postgres_watcher_that_cannot_listen_waits_the_interval(
        postgres_url: str, stop: threading.Event, caplog: pytest.LogCaptureFixture) -> None:
    """A server that refuses the connection: the interval, and a warning (no password)."""
    engine = get_engine(postgres_url)
    refused = engine.url.set(port=1, password="hunter2")
    assert_waits_the_interval(load_signal._Listening(
        refused.set(drivername="postgresql").render_as_string(hide_password=False), stop))
    assert "cannot listen for new loads" in caplog.text
    assert "hunter2" not in caplog.text
