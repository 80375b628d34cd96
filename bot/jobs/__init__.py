"""What the clock does, one module per job; each job is a function of a JobContext."""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.slack_client import diagnose
from sop_core import outbox
from sop_core.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    """One pass of the clock at instant ``now`` (aware, UTC)."""

    settings: Settings
    sessions: sessionmaker[Session]
    client_for: Callable[[str], WebClient | None]  # team id → a client with its bot token
    now: datetime


@dataclass
class PassReport:
    """What a pass did, for logs and for ``sopgap tick``'s output."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, other: PassReport) -> None:
        self.sent += other.sent
        self.skipped += other.skipped
        self.failed += other.failed


class Due(Protocol):
    """Something a pass sends under an outbox key, in one workspace."""

    @property
    def key(self) -> str: ...

    @property
    def team_id(self) -> str: ...


D = TypeVar("D", bound=Due)
T = TypeVar("T")


POST_INTERVAL = 1.0  # seconds: Slack takes about one chat.postMessage a second per channel


def paced(items: Iterable[T], channel_of: Callable[[T], str], *,
          interval: float = POST_INTERVAL, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Iterator[T]:
    """``items`` in an order that keeps two posts into one channel ``interval`` apart.

    Each channel's items keep their order; channels take turns, and the iterator only
    waits when every channel left was posted to less than ``interval`` ago. Sent in the
    given order, a second post into a channel within the second gets Slack's 429, whose
    ``Retry-After`` the client sleeps through while every other channel's post waits.
    (The time is taken when the next item is asked for, i.e. after the last send.)
    """
    queues: dict[str, deque[T]] = {}
    for item in items:
        queues.setdefault(channel_of(item), deque()).append(item)
    # (when the channel may be posted to again, its turn, the channel)
    turns = [(-math.inf, turn, channel) for turn, channel in enumerate(queues)]
    while turns:
        allowed, turn, channel = heapq.heappop(turns)
        wait = allowed - clock()
        if wait > 0:
            sleep(wait)
        yield queues[channel].popleft()
        if queues[channel]:
            heapq.heappush(turns, (clock() + interval, turn, channel))


def send_each(job: JobContext, items: Iterable[D],
              send: Callable[[WebClient, D], bool | PassReport], *, what: str) -> PassReport:
    """``send(client, item)`` for each item with its workspace's client, counted.

    ``send`` returns whether it sent the item (``False``: sent before, or another pass
    holds it), or the report of an item made of several sends. An item without a client
    is skipped; one whose send raises is counted failed and logged: it stays due for the
    next pass, unless the outbox gave it up (``GaveUp``, logged there once).
    """
    report = PassReport()
    clients: dict[str, WebClient | None] = {}
    for item in items:
        if item.team_id not in clients:
            clients[item.team_id] = job.client_for(item.team_id)
        client = clients[item.team_id]
        if client is None:
            log.warning("no Slack client for workspace %s: %s %s waits", item.team_id, what,
                        item.key)
            report.skipped += 1
            continue
        try:
            outcome = send(client, item)
        except outbox.GaveUp:
            report.failed += 1
            continue
        except Exception:
            log.exception("%s %s failed; it stays due for the next pass", what, item.key)
            report.failed += 1
            continue
        if isinstance(outcome, PassReport):
            report.add(outcome)
        elif outcome:
            report.sent += 1
        else:
            report.skipped += 1
    return report


def deliver(job: JobContext, key: str, send: Callable[[], str | None], *, kind: str,
            team_id: str, target: str | None,
            find_sent: Callable[[datetime], str | None] | None = None) -> bool:
    """``outbox.deliver`` at the pass's instant, Slack's lasting refusals made final."""
    return outbox.deliver(job.sessions, key, send, kind=kind, team_id=team_id, target=target,
                          now=job.now, diagnose=diagnose, find_sent=find_sent)
