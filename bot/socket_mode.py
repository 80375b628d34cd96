"""Socket Mode: Bolt's adapter, with redelivered envelopes acknowledged but not run twice.

Slack re-sends an envelope that was not acknowledged in time (``retry_attempt`` > 0), on
the same connection or on another of the app's connections, so possibly to another
process. Over HTTP the replay guard and the listeners' idempotent writes cover this; here
the envelope's identity is checked before Bolt sees it: first in this process's memory,
then in the shared ``seen_requests`` table, so a second process refuses it too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot.observability import REQUEST, describe_slack_payload
from sop_core.seen_requests import first_time

log = logging.getLogger(__name__)

# Slack gives up redelivering within minutes; an hour is a wide margin.
REMEMBER_FOR_SECONDS = 3600.0
REMEMBER_AT_MOST = 50_000


def delivery_key(req: SocketModeRequest) -> str:
    """What stays the same when Slack delivers the same thing again: an event's id (a
    retried event may come in a new envelope), else the envelope's id."""
    event_id = req.payload.get("event_id") if req.type == "events_api" else None
    return f"socket:{event_id}" if event_id else f"socket:{req.envelope_id}"


class RecentKeys:
    """A bounded, time-limited set of keys, safe across the client's worker threads."""

    def __init__(self, ttl: float = REMEMBER_FOR_SECONDS, size: int = REMEMBER_AT_MOST) -> None:
        self._ttl, self._size = ttl, size
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now - self._ttl
                                  or len(self._seen) >= self._size):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


class DedupingSocketModeHandler(SocketModeHandler):
    """Bolt's builtin Socket Mode handler that runs each delivery once."""

    def __init__(self, app: App, app_token: str, *, sessions: sessionmaker[Session],
                 ping_interval: float = 10) -> None:
        super().__init__(app, app_token, ping_interval=ping_interval)
        self._sessions = sessions
        self._recent = RecentKeys()

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        key = delivery_key(req)
        if self._recent.first_time(key) and self._first_time_anywhere(key):
            # Who and what, for the logs and the metrics' labels, as over HTTP
            # (bot/observability.py: observe_slack).
            token = REQUEST.set({"request_id": (req.envelope_id or "")[:16],
                                 **describe_slack_payload(req.payload)})
            try:
                super().handle(client, req)
            finally:
                REQUEST.reset(token)
            return
        log.info("acknowledged a redelivered %s envelope without running it again", req.type)
        client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    def _first_time_anywhere(self, key: str) -> bool:
        """Claimed in the shared table. Fails open: with the database away the listener
        runs, and reports the outage itself."""
        try:
            with self._sessions.begin() as session:
                return first_time(session, key)
        except DBAPIError:
            log.warning("could not check for a redelivered envelope: the database is away")
            return True
