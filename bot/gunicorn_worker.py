"""Gunicorn's threaded worker, with new connections going to the less busy workers.

The workers share one listening socket and each is woken for every new connection: the
first to accept it serves it, however many commands it already has queued. Under a
steady stream of commands that routing is blind to the queues, and they drift apart:
at 100 users one worker had twice the other's commands waiting for a work slot (their
command→trigger point p50: 0.8 s and 1.7 s). Here a worker with listeners in flight
waits a moment before it accepts, longer the more it has, so that a less busy worker
takes the connection first; if none does, it accepts it as before.
"""

from __future__ import annotations

import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from bot.work_slots import BACKLOG

SECONDS_PER_LISTENER = 0.0002  # the wait before accepting, per listener in flight
LONGEST_WAIT = 0.02  # (an ack is due within 3 s; 20 ms is what 100 queued commands add)


class BalancedThreadWorker(ThreadWorker):
    def accept(self, listener: Any) -> None:
        busy = BACKLOG.count
        if busy and self.cfg.workers > 1:
            time.sleep(min(busy * SECONDS_PER_LISTENER, LONGEST_WAIT))
        super().accept(listener)
