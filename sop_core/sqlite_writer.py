"""One writing transaction at a time on a SQLite file, across the threads of a process
and across processes (web workers, the clock, a load), without sleeping in between.

SQLite lets one transaction write at a time. A writer that finds the file locked sleeps
and tries again, waiting longer each time (1, 2, 5 … then 100 ms between tries), and
under a steady stream of short writes it can miss its turn for seconds: with 20 people
sending ``/gap`` to two web workers, recording a posted message took 24 ms at the median
and 0.6 s at p95 (2.4 s at worst), nearly all of it asleep. Here a transaction takes a
gate before its first write (a thread lock, then an exclusive ``flock`` on a file beside
the database) and leaves it when it commits or rolls back; the waiters block in the
kernel and are woken as soon as the gate is free, and SQLite's own lock is then never
contended by processes of this app. SQLite's busy timeout stays for other programs
writing the file.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from sqlalchemy import Engine, event

try:
    import fcntl
except ImportError:  # not a POSIX system: SQLite's own locking only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
_HOLDING = "sopgap_write_gate"  # key in the DBAPI connection's info: this one holds it


class WriteGate:
    # A thread lock held this long means a stuck writer: go on and let SQLite's own
    # busy timeout decide, as without the gate, rather than wait for ever.
    THREAD_WAIT = 30.0

    def __init__(self, lock_path: str) -> None:
        self._path = lock_path
        self._threads = threading.Lock()
        self._holder: int | None = None  # the thread holding the gate
        self._file: int | None = None
        self._pid = 0

    def acquire(self) -> bool:
        """Wait for the gate (the kernel frees a dead holder's lock). False, without
        waiting, if this thread already holds it for another transaction (SQLite's own
        locking decides that one, as without the gate); False if there is no lock file
        to hold (a read-only folder) or the gate stayed taken for ``THREAD_WAIT``."""
        if self._holder == threading.get_ident():
            return False
        if not self._threads.acquire(timeout=self.THREAD_WAIT):
            log.warning("a SQLite writer held the write gate for over %g s; going on "
                        "without it", self.THREAD_WAIT)
            return False
        try:
            fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
        except OSError:
            self._threads.release()
            return False
        self._holder = threading.get_ident()
        return True

    def release(self) -> None:
        self._holder = None
        try:
            if self._file is not None and self._pid == os.getpid():
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _descriptor(self) -> int:
        # A forked child must not share its parent's open file: flock locks belong to it.
        if self._file is None or self._pid != os.getpid():
            self._file = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._file


def install(engine: Engine, database_path: str) -> WriteGate | None:
    """Gate every writing transaction on ``engine`` (a SQLite file's)."""
    if fcntl is None:
        return None
    gate = WriteGate(database_path + ".write-lock")

    @event.listens_for(engine, "before_cursor_execute")
    def _before_write(connection: Any, _cursor: Any, statement: str, _parameters: Any,
                      _context: Any, _executemany: bool) -> None:
        info = connection.connection.info
        if _HOLDING not in info and statement.lstrip()[:7].upper().startswith(WRITES):
            info[_HOLDING] = gate.acquire()

    def _done(connection: Any) -> None:
        try:
            info = connection.connection.info
        except Exception:  # closed or invalidated: the checkin below releases it
            return
        if info.pop(_HOLDING, False):
            gate.release()

    event.listen(engine, "commit", _done)
    event.listen(engine, "rollback", _done)

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        # A connection given back without a commit or rollback seen above (an error
        # while closing): its transaction is over, so is its hold on the gate.
        if record.info.pop(_HOLDING, False):
            gate.release()

    return gate
