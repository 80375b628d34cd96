"""A new load, told to the processes that keep the latest view decoded (sop_core/warmup.py)
as soon as it commits, rather than at their next look.

`sopgap load` ends about 0.04 s after its commit, and a `/gap` sent right then found its
web worker still on the previous view: looking four times a second, the worker saw the
load later, and the command decoded the view itself while both workers' warm-ups ran
beside it (the first command after a 1M-row load took 5× a warm one).

- **PostgreSQL**: the load's transaction sends ``NOTIFY sopgap_loads`` (delivered when
  it commits, never for a load rolled back), and each watcher ``LISTEN``s on a connection
  of its own: it wakes at once, at no cost while it waits.
- **SQLite file**: no notifications; each watcher reads the newest snapshot id on a
  connection of its own whenever a file in the database's folder is written (Linux's
  inotify: nothing to do while nothing is written), else every ``SQLITE_POLL_SECONDS``
  (an idle web worker then spends about 1 % of a core on waking up to look).
- Anything else, or a watcher whose connection fails: the caller's own interval, as
  before.

The caller still looks for itself when woken: a wake-up is a hint, never the news.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import sqlite3
import sys
import threading
import time
from contextlib import suppress
from typing import Protocol

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
CHANNEL = "sopgap_loads"
SQLITE_POLL_SECONDS = 0.01
WRITES_SETTLE_SECONDS = 0.05
STOP_CHECK_SECONDS = 0.25  # how soon a watcher that blocks sees that it is to stop
RECONNECT_SECONDS = 5.0  # a PostgreSQL watcher whose connection failed: try again after
_NEWEST = "SELECT max(id) FROM snapshots"


def announce(connection: Connection) -> None:
    """Tell the watchers, when the caller's transaction commits, that a load is in."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"NOTIFY {CHANNEL}"))


class Watcher(Protocol):
    def wait(self, timeout: float, newest: int | None) -> None:
        """Return once a load newer than ``newest`` may be in, or after ``timeout``
        seconds, or once ``stop`` (given when made) is set."""

    def close(self) -> None: ...


def watcher(engine: Engine, stop: threading.Event) -> Watcher:
    """The quickest watcher ``engine``'s database allows."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return _Listening(url.set(drivername="postgresql").render_as_string(
            hide_password=False), stop)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not url.database.startswith("file:"):
        return _SqliteFile(url.database, stop)
    return _Sleeping(stop)


class _Sleeping:
    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def wait(self, timeout: float, newest: int | None) -> None:
        self._stop.wait(timeout)

    def close(self) -> None:
        pass


class _SqliteFile:
    """SQLite: the newest snapshot id, read when the database's folder is written to,
    else every ``SQLITE_POLL_SECONDS``."""

    def __init__(self, path: str, stop: threading.Event) -> None:
        self._path, self._stop = path, stop
        self._connection: sqlite3.Connection | None = None
        self._writes = _FolderWrites.watch(os.path.dirname(os.path.abspath(path)))
        self._polling_until = 0.0  # (monotonic) after a write, reads at intervals until

    def wait(self, timeout: float, newest: int | None) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            if self._writes is not None and time.monotonic() >= self._polling_until:
                if not self._writes.wait(min(left, STOP_CHECK_SECONDS)):
                    continue  # nothing written meanwhile: nothing new to read
                # A commit's last write to the WAL comes just before the commit shows
                # (in the WAL's index, memory shared by the processes, no write event):
                # read again at intervals for a while.
                self._polling_until = time.monotonic() + WRITES_SETTLE_SECONDS
            elif self._stop.wait(min(SQLITE_POLL_SECONDS, left)):
                return
            try:
                if self._newest() != newest:
                    return
            except sqlite3.Error:  # not migrated yet, or the file is away: the interval
                self._close_connection()
                self._stop.wait(max(deadline - time.monotonic(), 0))
                return

    def _newest(self) -> int | None:
        if self._connection is None:
            # Autocommit: each read sees the latest commit (a transaction left open
            # would keep reading the same snapshot of the file, and the WAL growing).
            self._connection = sqlite3.connect(self._path, timeout=1, isolation_level=None,
                                               check_same_thread=False)
        row = self._connection.execute(_NEWEST).fetchone()
        return row[0] if row else None

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        self._close_connection()
        if self._writes is not None:
            self._writes.close()
            self._writes = None


class _FolderWrites:
    """Linux's inotify on a folder: a file in it written to, created or moved in (a
    commit writes the database's WAL, or the database itself)."""

    _EVENTS = 0x2 | 0x80 | 0x100  # IN_MODIFY | IN_MOVED_TO | IN_CREATE

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor
        self._readable = select.poll()  # (not select(): no limit on the descriptor's number)
        self._readable.register(descriptor, select.POLLIN)

    @classmethod
    def watch(cls, folder: str) -> _FolderWrites | None:
        """None where inotify is not to be had (another system, no watches left)."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            descriptor = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if descriptor < 0:
            return None
        if libc.inotify_add_watch(descriptor, os.fsencode(folder), cls._EVENTS) < 0:
            os.close(descriptor)
            return None
        return cls(descriptor)

    def wait(self, timeout: float) -> bool:
        """Whether anything was written within ``timeout`` seconds (events consumed)."""
        if not self._readable.poll(timeout * 1000):
            return False
        with suppress(BlockingIOError):
            while os.read(self._descriptor, 65536):
                pass
        return True

    def close(self) -> None:
        os.close(self._descriptor)


class _Listening:
    """PostgreSQL: ``LISTEN`` on a connection of its own, outside the pool."""

    def __init__(self, conninfo: str, stop: threading.Event) -> None:
        self._conninfo, self._stop = conninfo, stop
        self._connection = None  # psycopg.Connection
        self._failed_at: float | None = None  # (monotonic) when it last failed
        self._listen()  # now: a load that commits before the first wait still wakes it

    def _listen(self) -> bool:
        if self._connection is not None:
            return True
        if self._failed_at is not None and \
                time.monotonic() - self._failed_at < RECONNECT_SECONDS:
            return False
        import psycopg

        try:
            self._connection = psycopg.connect(self._conninfo, autocommit=True,
                                               connect_timeout=5)
            self._connection.execute(f"LISTEN {CHANNEL}")
            self._failed_at = None
            return True
        except psycopg.Error:
            self._failed("cannot listen for new loads (looking at intervals instead)")
            return False

    def wait(self, timeout: float, newest: int | None) -> None:
        import psycopg

        if self._stop.is_set():
            return
        if not self._listen():
            self._stop.wait(timeout)
            return
        assert self._connection is not None
        deadline = time.monotonic() + timeout
        try:
            # In slices, to see ``stop`` (the wait for a notification does not).
            while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
                if any(True for _ in self._connection.notifies(
                        timeout=min(left, STOP_CHECK_SECONDS), stop_after=1)):
                    return
        except psycopg.Error:  # the server went away: the interval until it is back
            self._failed("stopped listening for new loads")

    def _failed(self, what: str) -> None:
        log.warning(what, exc_info=True)
        self.close()
        self._failed_at = time.monotonic()

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.close()
            except Exception:  # closing a broken connection: nothing left to do
                log.debug("closing the listening connection failed", exc_info=True)
