"""A fixed number of slots for CPU-heavy work after ``ack()``, handed out first come,
first served; and the process's backlog of listeners (:data:`BACKLOG`).

``threading.Semaphore`` lets a thread that just arrived take a slot before the one that
was woken for it: under a steady stream of commands, some waited many turns (20 users:
command→trigger point p50 0.2 s, p95 1.2 s). Here a released slot goes straight to the
longest waiter.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class WorkSlots:
    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("at least one slot")
        self._free = slots
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event] = deque()

    def acquire(self) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # set by release(), which passed its slot to this thread

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1

    def __enter__(self) -> WorkSlots:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


class Backlog:
    """How many listeners this process has been handed and not finished: acked commands
    waiting for a slot or for Slack included. A web worker with more of them lets a less
    busy one take the next connection (bot/gunicorn_worker.py)."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def add(self) -> None:
        with self._lock:
            self._count += 1

    def done(self) -> None:
        with self._lock:
            self._count -= 1


BACKLOG = Backlog()  # the process's listeners (bot/observability.py's executor counts)
