"""Gunicorn's threaded worker, with new connections going to the less busy workers.

The workers share one listening socket and each is woken for every new connection: the
first to accept it serves it, however many commands it already has queued. Under a
steady stream of commands that routing is blind to the queues, and they drift apart: at
100 users one worker had twice the other's commands waiting for a work slot (their
command→trigger point p50: 0.8 s and 1.7 s).

So each worker writes its backlog (bot/work_slots.py) into a table in memory shared by
the workers (made by the master before it forks; the master gives each worker its row,
gunicorn_conf's hooks) every time it is woken for a connection, and a worker with more
commands than the least busy one waits a moment before accepting, longer the larger the
difference, so that the less busy one takes it. If nobody does, it accepts it as
before. Equally busy workers (a burst) and a lone worker (the other one restarting) do
not wait at all.
"""

from __future__ import annotations

import mmap
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from bot.work_slots import BACKLOG

SECONDS_PER_COMMAND = 0.0002  # the wait, per command more than the least busy worker's
LONGEST_WAIT = 0.02  # (an ack is due within 3 s)
ROWS = 64  # workers at once, at most (more are not balanced: they accept at once)
ABSENT = -1  # a row with no worker taking connections

# One signed 64-bit number per row: made here, in the master (gunicorn imports the worker
# class before it forks), and shared with every worker it forks.
BACKLOGS = memoryview(mmap.mmap(-1, 8 * ROWS)).cast("q")
for _row in range(ROWS):
    BACKLOGS[_row] = ABSENT
_rows_given: dict[int, int] = {}  # in the master: worker age → row


def give_row(worker: Any) -> None:
    """In the master, before it forks ``worker`` (gunicorn's pre_fork hook)."""
    taken = set(_rows_given.values())
    row = next((r for r in range(ROWS) if r not in taken), None)
    if row is not None:
        _rows_given[worker.age] = row
        BACKLOGS[row] = ABSENT  # until the worker is woken for its first connection
    worker.backlog_row = row


def take_back_row(worker: Any) -> None:
    """In the master, once ``worker`` has exited (gunicorn's child_exit hook)."""
    row = _rows_given.pop(worker.age, None)
    if row is not None:
        BACKLOGS[row] = ABSENT


def wait_before_accepting(row: int | None, busy: int) -> float:
    """Seconds to wait before taking a connection with ``busy`` commands here (the table
    told so first): 0 when no other worker has fewer, or without a row."""
    if row is None:
        return 0.0
    BACKLOGS[row] = busy
    least = min((value for other, value in enumerate(BACKLOGS)
                 if other != row and value != ABSENT), default=None)
    if least is None or busy <= least:
        return 0.0
    return min((busy - least) * SECONDS_PER_COMMAND, LONGEST_WAIT)


class BalancedThreadWorker(ThreadWorker):
    def run(self) -> None:
        try:
            super().run()
        finally:
            row = getattr(self, "backlog_row", None)
            if row is not None:
                BACKLOGS[row] = ABSENT  # stops taking connections

    def accept(self, listener: Any) -> None:
        wait = wait_before_accepting(getattr(self, "backlog_row", None), BACKLOG.count)
        if wait:
            time.sleep(wait)
        super().accept(listener)
