"""Refusing replayed Slack requests without a database write before the ack.

A signed request stays valid for five minutes, so someone who captured one could send it
again. Two layers refuse it:

- **In memory, on the ack path**: each app remembers the signatures it saw in the last
  minutes and answers a second one with 401 at once. No database: an ack never waits for
  SQLite's write lock behind the listeners' writes.
- **In the database, after the ack**: the first ``ack()`` of a request claims its
  signature in ``seen_requests`` (a primary key). A replay that reached another worker,
  or this one after a restart, is acked like any request but its claim fails, so its
  listener stops there and does nothing twice. Events are acked by Bolt itself on the
  request thread: their claim is handed to the listener pool instead (their handlers
  record each event once by its id anyway). A modal's submission is the exception: its
  listener saves the change before its ack (errors show in the form), so it is claimed
  before its listener runs (bot/app.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Executor
from typing import Any

from slack_bolt.context.ack import Ack
from slack_bolt.response import BoltResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from sop_core.db import core_connection
from sop_core.seen_requests import first_time

log = logging.getLogger(__name__)

# Slack's signatures are refused after 5 minutes (bolt checks the timestamp); a margin for
# clocks that drift.
WINDOW_SECONDS = 6 * 60


class ReplayRefused(Exception):
    """A listener's request had already been handled by another worker (or before a
    restart): it stops after its ack, having changed nothing."""


class RecentSignatures:
    """The signatures one app saw in the last ``window`` seconds (thread-safe)."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._window, self._lock = window, threading.Lock()

    def first_time(self, signature: str, now: float | None = None) -> bool:
        """Remember ``signature``; False if it was seen within the window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._seen:  # oldest first: drop what has expired
                oldest, at = next(iter(self._seen.items()))
                if now - at <= self._window:
                    break
                del self._seen[oldest]
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True

    def __len__(self) -> int:
        return len(self._seen)


def claim(sessions: sessionmaker[Session], signature: str) -> bool:
    """Record a signature in the database; False if it was there already. Fails open: if
    the database is away the request goes on (and its listener reports the outage)."""
    try:
        with core_connection(sessions) as connection:
            return first_time(connection, signature)
    except DBAPIError:
        log.warning("could not record a request's signature: the database is away")
        return True


class ClaimingAck(Ack):
    """Bolt's ``ack()`` that, once the answer is set (the HTTP response goes at once),
    claims the request's signature; a failed claim raises :class:`ReplayRefused` in the
    listener, before its work."""

    def __init__(self, sessions: sessionmaker[Session], signature: str,
                 executor: Executor) -> None:
        super().__init__()
        self._sessions, self._signature, self._executor = sessions, signature, executor
        self._request_thread = threading.get_ident()
        self._claimed = False

    # Bolt clears ``ack.response`` when a listener raises after its ack (the HTTP answer
    # is gone by then, it assumes). A refused replay raises right after setting it, often
    # before the request thread has sent it: keep the answer once it is set.
    @property  # type: ignore[override]
    def response(self) -> BoltResponse | None:
        return self._response

    @response.setter
    def response(self, value: BoltResponse | None) -> None:
        if value is not None or getattr(self, "_response", None) is None:
            self._response = value

    def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = super().__call__(*args, **kwargs)
        if self._claimed:
            return response
        self._claimed = True
        if threading.get_ident() == self._request_thread:
            # Bolt's own ack of an event, before its answer goes: not on this thread.
            self._executor.submit(claim, self._sessions, self._signature)
        elif not claim(self._sessions, self._signature):
            raise ReplayRefused("this request was handled already")
        return response
