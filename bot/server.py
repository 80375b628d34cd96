"""Serving the Slack app: HTTP (WSGI, under gunicorn) and Socket Mode."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import text

from bot.app import build_app
from bot.request_guard import guard_slack_requests
from bot.socket_mode import DedupingSocketModeHandler
from bot.workspace_access import ACCESS_LOG_FORMAT
from sop_core.config import Settings
from sop_core.db import get_engine, session_factory

log = logging.getLogger(__name__)
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
SLACK_PATHS = ("/slack/events", "/slack/install", "/slack/oauth_redirect")


def create_wsgi_app(settings: Settings, *, listener_executor: Executor | None = None
                    ) -> WSGIApp:
    """``POST /slack/events``, the OAuth routes when configured, and ``GET /healthz``.
    ``listener_executor``: where Bolt runs the work after ``ack()`` (its own pool if
    not given)."""
    slack = SlackRequestHandler(build_app(settings, listener_executor=listener_executor))
    # The signature is checked before Bolt sees anything (see bot/request_guard.py).
    secret = settings.slack_signing_secret
    slack = guard_slack_requests(slack, secret.get_secret_value() if secret else "")
    engine = get_engine(settings.database_url)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in SLACK_PATHS:
            return slack(environ, start_response)
        if path == "/healthz":
            return _health(engine, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    return app


def _health(engine: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        status, body = "200 OK", {"status": "ok"}
    except Exception:
        log.exception("health check: the database does not answer")
        status, body = "503 Service Unavailable", {"status": "database unavailable"}
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


def serve(settings: Settings, *, port: int, workers: int, threads: int) -> None:
    """Run under gunicorn: several workers, each with threads for Bolt's lazy work."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {
                "bind": f"0.0.0.0:{port}", "workers": workers, "threads": threads,
                "worker_class": "gthread", "timeout": 60, "graceful_timeout": 20,
                "accesslog": "-", "loglevel": "info",
                # No query strings: the OAuth redirect's carries the code and state.
                "access_log_format": ACCESS_LOG_FORMAT,
                # Each worker builds its own app (and database pool) after the fork.
                "preload_app": False,
            }.items():
                self.cfg.set(key, value)

        def load(self) -> WSGIApp:
            return create_wsgi_app(settings)

    Server().run()


def socket_mode_handler(settings: Settings, *, ping_interval: float = 10
                        ) -> DedupingSocketModeHandler:
    """The app over Socket Mode; ``connect()`` it, or ``start()`` to block."""
    if settings.slack_app_token is None:
        raise SystemExit("SLACK_APP_TOKEN (xapp-…) is needed for Socket Mode")
    return DedupingSocketModeHandler(
        build_app(settings, socket_mode=True), settings.slack_app_token.get_secret_value(),
        sessions=session_factory(settings.database_url), ping_interval=ping_interval)


def socket_mode(settings: Settings) -> None:
    socket_mode_handler(settings).start()
