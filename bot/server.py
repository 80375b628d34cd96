"""Serving the Slack app: HTTP (WSGI, under gunicorn) and Socket Mode."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy.exc import DBAPIError

from bot import metrics
from bot.app import ConfigurationError, build_app
from bot.bot_identity import TokenIdentity, token_identity
from bot.observability import observe_slack
from bot.request_guard import guard_slack_requests
from bot.slack_client import rehearse_call
from bot.socket_mode import DedupingSocketModeHandler
from sop_core import warmup
from sop_core.config import Settings, get_settings
from sop_core.db import SchemaNotReady, get_engine, head_revision, session_factory
from sop_core.health import readiness
from sop_core.warmup import SnapshotWarmer

if TYPE_CHECKING:
    from sop_core.services.data import GapReport

log = logging.getLogger(__name__)
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ACK_SWITCH_INTERVAL = 0.0005  # seconds (Python's default: 0.005)
# How long a web worker waits for its first decode of the latest view before taking
# requests: a second or so for millions of rows; gunicorn's worker timeout is 60 s.
BOOT_WARM_LIMIT = 30.0
SLACK_PATHS = ("/slack/events", "/slack/install", "/slack/oauth_redirect")


def create_wsgi_app(settings: Settings, *, listener_executor: Executor | None = None,
                    warm_up: bool = False, settle_heap: bool = False) -> WSGIApp:
    """``POST /slack/events``, the OAuth routes when configured, and the operations
    routes of :func:`health_app` (``/healthz``, ``/readyz``, ``/metrics``).
    ``listener_executor``: where Bolt runs the work after ``ack()`` (its own pool if
    not given). ``warm_up``: decode the latest views before returning, then look for new
    loads in the background (a web worker; the warmer is the app's ``warmer`` attribute);
    ``settle_heap``: freeze the heap after the first warm-up (sop_core/warmup.py; a process of
    its own: it changes the whole interpreter's collector)."""
    # The signature is checked before anything reads the body (see bot/request_guard.py):
    # the guard is outermost, so an unsigned or oversized request is neither read whole
    # nor parsed for the logs.
    secret = settings.slack_signing_secret
    identity = token_identity(settings)
    slack = guard_slack_requests(
        observe_slack(SlackRequestHandler(
            build_app(settings, listener_executor=listener_executor, identity=identity))),
        secret.get_secret_value() if secret else "")
    operations = health_app(settings)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in SLACK_PATHS:
            return slack(environ, start_response)
        return operations(environ, start_response)

    # After the fork (gunicorn builds the app in each worker, before it accepts): this
    # worker's own cache, filled before its first request.
    if warm_up:
        metrics.start_series()
    # Forked from a master that warmed the latest views (preheat), the worker finds them
    # decoded, their gaps by each dimension run and the heap settled. Its warm-up still
    # runs a command's SQL, its message and the whole scope's gap before its first
    # request: what is its own (its engine, its pool) or cheap. Running the filtered
    # gaps again kept each worker busy for a tenth of a second more after boot, and the
    # first command after a restart, taken by the worker ready first, ran beside the
    # other one's (restarted 8 times, 1M rows: median first command 31 ms with them,
    # 24 ms without, in the same session; later ones 19-21 ms either way).
    inherited = _preheated.get(settings.database_url)
    app.warmer = (SnapshotWarmer(session_factory(settings.database_url), settings,  # type: ignore[attr-defined]
                                 rehearse=_rehearse_message,
                                 settle_heap=settle_heap and inherited is None,
                                 preload=partial(_before_first_request, identity),
                                 inherited=inherited or ()).start(wait=BOOT_WARM_LIMIT)
                  if warm_up else None)
    return app


# The databases whose latest view preheat() decoded in this process (a gunicorn master),
# with the snapshots it warmed: its forked workers inherit them, with the heap settled.
_preheated: dict[str, tuple[int, ...]] = {}


def preheat(settings: Settings) -> None:
    """Warm the latest view in this process before it forks its web workers (gunicorn's
    ``when_ready`` hook, in bot/gunicorn_conf.py): each worker then starts with it
    decoded, in memory pages it shares with the others, instead of every worker decoding
    its own copy at the same time.

    After a restart, the first command otherwise ran beside the other worker's warm-up
    on the same cores. Reads only (a rehearsal of a command's writes could wait on
    another process's locks while requests queue), and one workspace's view, the newest:
    what the cache keeps with its predecessor (sop_core/snapshots.py). Any failure leaves
    the workers to warm themselves, as before. The master keeps its copy, so a worker
    replaced later starts warm too (and decodes any newer load itself)."""
    try:
        warmed = SnapshotWarmer(session_factory(settings.database_url), settings,
                                rehearse=_rehearse_message).warm_once(most=1, writes=False)
    except Exception:
        log.warning("could not warm the latest view before starting the workers; each "
                    "worker warms its own", exc_info=True)
        return
    finally:
        get_engine(settings.database_url).dispose()  # no connection crosses the fork
    warmup.settle_heap()  # before the fork: what the workers share stays untouched (gc.freeze)
    if warmed:
        _preheated[settings.database_url] = tuple(warmed)
        log.info("decoded the latest view once, before forking the workers")


def _before_first_request(identity: TokenIdentity | None) -> None:
    """What a worker's first command would otherwise do first: read the bot token's
    kept identity, and make an outbound HTTP call (a local one, not Slack)."""
    if identity is not None:
        identity.preload()
    rehearse_call()


def _rehearse_message(report: GapReport) -> None:
    """Build (and serialise) a trigger point's message once, as a command would."""
    from bot.blocks.trigger import headline, trigger_point_blocks

    headline(report.result)
    json.dumps([block.to_dict() for block in trigger_point_blocks(report)])


def health_app(settings: Settings) -> WSGIApp:
    """``GET /healthz`` (the process answers), ``GET /readyz`` (database, migrations,
    clock heartbeat; JSON naming what failed) and ``GET /metrics`` (Prometheus)."""
    engine = get_engine(settings.database_url)
    stale_after = timedelta(seconds=settings.clock_stale_seconds)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/readyz":
            ready = readiness(engine, head_revision(), now=datetime.now(UTC),
                              stale_after=stale_after)
            if not ready.ok:
                log.warning("not ready: %s", ", ".join(
                    f"{c.name} ({c.detail})" for c in ready.checks if not c.ok))
            return _json(start_response, "200 OK" if ready.ok else "503 Service Unavailable",
                         ready.to_json())
        if path == "/metrics":
            body, content_type = metrics.render(settings.database_url)
            start_response("200 OK", [("Content-Type", content_type)])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    return app


def _json(start_response: Callable[..., Any], status: str, body: object) -> Iterable[bytes]:
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


class DatabaseNotAnswering(ConfigurationError):
    """Not a bad setting but an outage: exit status 1, so a supervisor retries."""

    exit_status = 1


def exit_status(error: ConfigurationError) -> int:
    """2 for a setting to fix (retrying will not help), 1 for an outage."""
    return getattr(error, "exit_status", 2)


def preflight(settings: Settings | None = None) -> Settings:
    """Everything a worker needs, checked once before any worker forks: the settings,
    the Slack credentials and the schema. Raises :class:`ConfigurationError` with a
    one-line reason. Makes no Slack call."""
    from pydantic import ValidationError

    try:
        settings = settings or Settings()
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        alias = Settings.model_fields[field].validation_alias if field in \
            Settings.model_fields else None
        name = alias if isinstance(alias, str) else f"SOPGAP_{field}"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigurationError(f"invalid setting {name.upper()}: {message}") from None
    try:
        build_app(settings)
        session_factory(settings.database_url)
    except SchemaNotReady as error:
        raise ConfigurationError(str(error)) from None
    except DBAPIError as error:
        reason = type(error.orig or error).__name__
        raise DatabaseNotAnswering(f"the database does not answer ({reason})") from None
    finally:
        # No connection crosses the fork: each worker opens its own pool.
        get_engine(settings.database_url).dispose()
    return settings


def create_app() -> WSGIApp:
    """The WSGI factory for any server: ``gunicorn 'bot.server:create_app()'``. Each
    worker decodes the latest view before its first request, then keeps it warm."""
    # A thread waiting for the interpreter lock asks for it after this long: with a
    # command's CPU-bound work running after its ack, an ack needs the lock dozens of
    # times, each wait up to the default 5 ms.
    sys.setswitchinterval(ACK_SWITCH_INTERVAL)
    return create_wsgi_app(get_settings(), warm_up=True, settle_heap=True)


def serve(argv: list[str]) -> None:
    """Gunicorn with ``bot.gunicorn_conf`` (the environment: ``PORT``, ``WEB_CONCURRENCY``,
    ``GUNICORN_CMD_ARGS``, …), then ``argv``'s options, which win."""
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = ["sopgap serve", "--config", "python:bot.gunicorn_conf", *argv,
                "bot.server:create_app()"]
    WSGIApplication("%(prog)s [OPTIONS]").run()


def start_health_port(settings: Settings) -> None:
    """``/healthz``, ``/readyz`` and ``/metrics`` of a process without an HTTP server
    (Socket Mode, the clock) on ``SOPGAP_HEALTH_PORT``, in a background thread."""
    if settings.health_port is None:
        return
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
            pass

    server = make_server("0.0.0.0", settings.health_port, health_app(settings),
                         handler_class=Quiet)
    threading.Thread(target=server.serve_forever, name="sopgap-health", daemon=True).start()
    log.info("health and metrics on port %d", settings.health_port)


def socket_mode_handler(settings: Settings, *, ping_interval: float = 10
                        ) -> DedupingSocketModeHandler:
    """The app over Socket Mode; ``connect()`` it, or ``start()`` to block."""
    if settings.slack_app_token is None:
        raise SystemExit("SLACK_APP_TOKEN (xapp-…) is needed for Socket Mode")
    return DedupingSocketModeHandler(
        build_app(settings, socket_mode=True), settings.slack_app_token.get_secret_value(),
        sessions=session_factory(settings.database_url), ping_interval=ping_interval)


def socket_mode(settings: Settings) -> None:
    handler = socket_mode_handler(settings)
    start_health_port(settings)
    SnapshotWarmer(session_factory(settings.database_url), settings).start()
    handler.start()
