"""A local Socket Mode endpoint: Slack's side of the WebSocket the app opens.

The protocol as Slack documents it: ``apps.connections.open`` (answered by FakeSlack with
this server's ``ws://`` URL) → the app connects → the server says ``hello`` → envelopes
``{"envelope_id", "type", "payload", "accepts_response_payload", "retry_attempt",
"retry_reason"}`` go to the app, which acknowledges each with ``{"envelope_id",
"payload"?}`` → ``{"type": "disconnect"}`` asks it to reconnect elsewhere.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

_envelope_ids = itertools.count(1)


class NoAck(AssertionError):
    """The app did not acknowledge an envelope in time."""


class SocketModeServer:
    """Envelopes out, acks in, over real WebSockets on 127.0.0.1."""

    def __init__(self, app_id: str = "A0SOPGAP") -> None:
        self.app_id = app_id
        self.connections_opened = 0
        self._open: list[ServerConnection] = []
        self._acks: dict[str, dict[str, Any] | None] = {}
        self._changed = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> SocketModeServer:
        self._server = serve(self._serve_one, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-socket-mode")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SocketModeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        port = self._server.socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}/link/?ticket=fake&app_id={self.app_id}"

    # -- what tests do -----------------------------------------------------------------
    def wait_connected(self, count: int = 1, timeout: float = 10) -> None:
        """Until ``count`` connections have been opened since the start (reconnects count)."""
        self._wait(lambda: self.connections_opened >= count and bool(self._open), timeout,
                   f"the app did not open connection #{count}")

    def send(self, kind: str, payload: dict[str, Any], *, envelope_id: str | None = None,
             retry_attempt: int = 0, retry_reason: str = "") -> str:
        """Hand an envelope to the app over its newest connection; its id."""
        envelope_id = envelope_id or f"env-{next(_envelope_ids):06d}"
        with self._changed:
            if not self._open:
                raise AssertionError("no open Socket Mode connection")
            connection = self._open[-1]
            self._acks.pop(envelope_id, None)
        connection.send(json.dumps({
            "envelope_id": envelope_id, "type": kind, "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt, "retry_reason": retry_reason,
        }))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 3.0) -> dict[str, Any] | None:
        """The acknowledgement's payload (None when it had none); Slack waits 3 s."""
        self._wait(lambda: envelope_id in self._acks, timeout,
                   f"envelope {envelope_id} was not acknowledged within {timeout} s")
        with self._changed:
            return self._acks[envelope_id]

    def ask_to_reconnect(self) -> None:
        """What Slack sends before it recycles a connection."""
        for connection in self._snapshot():
            with contextlib.suppress(ConnectionClosed):
                connection.send(json.dumps({"type": "disconnect", "reason": "refresh_requested",
                                            "debug_info": {"host": "fake-socket-mode"}}))

    def drop(self) -> None:
        """Cut every connection at the TCP level, with no closing handshake."""
        for connection in self._snapshot():
            with contextlib.suppress(OSError):
                connection.socket.shutdown(socket.SHUT_RDWR)

    # -- serving -----------------------------------------------------------------------
    def _serve_one(self, connection: ServerConnection) -> None:
        try:
            connection.send(json.dumps({
                "type": "hello", "num_connections": len(self._open) + 1,
                "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 3600},
                "connection_info": {"app_id": self.app_id},
            }))
            # A connection counts as open once the app reads from it: its pong says so.
            # (slack_sdk's client swaps a new connection in only after the handshake;
            # envelopes sent before that would sit unread until it does.)
            if not connection.ping().wait(timeout=10):
                return
            with self._changed:
                self.connections_opened += 1
                self._open.append(connection)
                self._changed.notify_all()
            for message in connection:
                ack = json.loads(message)
                if "envelope_id" in ack:
                    with self._changed:
                        self._acks[ack["envelope_id"]] = ack.get("payload")
                        self._changed.notify_all()
        except (ConnectionClosed, OSError, ValueError):
            pass
        finally:
            with self._changed:
                if connection in self._open:
                    self._open.remove(connection)
                self._changed.notify_all()

    def _snapshot(self) -> list[ServerConnection]:
        with self._changed:
            return list(self._open)

    def _wait(self, done: Any, timeout: float, problem: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NoAck(problem)
                self._changed.wait(left)
