"""A fixed number of slots for a command's work after ``ack()``, handed out first come,
first served; and the process's backlog of listeners (:data:`BACKLOG`).

``threading.Semaphore`` lets a thread that just arrived take a slot before the one that
was woken for it: under a steady stream of commands, some waited many turns (20 users:
command→trigger point p50 0.2 s, p95 1.2 s). Here a released slot goes straight to the
longest waiter.

A command holds its slot from its first step to its last, except while it waits on Slack
(:func:`lent_out`, around every Web API call and ``response_url`` post): the slot then
serves the next command, and is given back before any new command gets one. Few commands
run at once, and each runs through: at 100 users, letting every command's database
writes and Slack calls run side by side (the slot held for the gap maths only) cost a
third more CPU per command in switching between threads, and each command's end waited
behind everyone else's.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

log = logging.getLogger(__name__)
_holding = threading.local()  # .slots: the WorkSlots this thread holds a slot of
# Threads for work that waited its turn: as many as run or wait on Slack at once, which
# the slots keep few; the bound only guards against a runaway.
MOST_THREADS = 1024


@dataclass(frozen=True)
class _Queued:
    """Work waiting for a slot without a thread (:meth:`WorkSlots.run`)."""

    work: Callable[[], object]
    context: contextvars.Context
    since: float  # time.monotonic() when it was queued


# Told of each piece of work run by WorkSlots.run, at its end, in its context: how long it
# waited for its slot, and how long it then took (its waits on Slack included).
Observer = Callable[[float, float], object]


class WorkSlots:
    def __init__(self, slots: int, *, threads: Executor | None = None,
                 observe: Observer | None = None) -> None:
        """``threads``: where work queued by :meth:`run` runs once it has its slot;
        ``observe``: told of each one's wait and duration (bot/observability.py)."""
        if slots < 1:
            raise ValueError("at least one slot")
        self._free = slots
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event | _Queued] = deque()
        self._threads = threads or ThreadPoolExecutor(max_workers=MOST_THREADS,
                                                      thread_name_prefix="sopgap-work")
        self._observe = observe

    def run(self, work: Callable[[], object]) -> None:
        """Run ``work`` holding a slot: here and now if one is free, else once its turn
        comes, on the slots' own threads, in this thread's context (its logging fields).
        Work that waits holds no thread: a burst of commands, each queued by a listener
        thread, had that many threads waiting, and every new command started one more
        (acks waited behind the thread starts). ``work`` handles its own errors."""
        since = time.monotonic()
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                queued = None
            else:
                queued = _Queued(work, contextvars.copy_context(), since)
                self._waiting.append(queued)
                BACKLOG.add()  # still a command in flight once the listener returns
        if queued is None:
            _holding.slots = self
            try:
                work()
            finally:
                self.release()
                self._observed(since, since)

    def _run_queued(self, queued: _Queued) -> None:
        _holding.slots = self
        started = time.monotonic()
        try:
            queued.context.run(queued.work)
        finally:
            self.release()
            BACKLOG.done()
            queued.context.run(self._observed, queued.since, started)

    def _observed(self, since: float, started: float) -> None:
        if self._observe is None:
            return
        try:
            self._observe(started - since, time.monotonic() - started)
        except Exception:  # a metric never fails the command it measures
            log.warning("could not record a command's work metrics", exc_info=True)

    def acquire(self, *, first: bool = False) -> None:
        """Take a slot, waiting behind those already waiting (``first``: before them, for
        a command taking its slot back)."""
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                _holding.slots = self
                return
            turn = threading.Event()
            if first:
                self._waiting.appendleft(turn)
            else:
                self._waiting.append(turn)
        turn.wait()  # set by release(), which passed its slot to this thread
        _holding.slots = self

    def release(self) -> None:
        if getattr(_holding, "slots", None) is self:
            _holding.slots = None
        with self._lock:
            if not self._waiting:
                self._free += 1
                return
            turn = self._waiting.popleft()  # the slot passes straight to it
        if isinstance(turn, threading.Event):
            turn.set()
        else:
            self._threads.submit(self._run_queued, turn)

    def __enter__(self) -> WorkSlots:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


@contextmanager
def lent_out() -> Iterator[None]:
    """While this thread waits on Slack, the slot it holds (if any) serves the next
    command; the thread takes it back before any new command."""
    slots = getattr(_holding, "slots", None)
    if slots is None:
        yield
        return
    slots.release()
    try:
        yield
    finally:
        slots.acquire(first=True)


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
