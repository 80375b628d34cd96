"""Building the Bolt app: one workspace (bot token) or many (OAuth install)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.context.respond import Respond
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot import listeners
from bot.slack_client import (
    TRANSPORT_ERRORS,
    SlackUnanswered,
    dependable_respond,
    error_code,
    make_client,
)
from sop_core.config import Settings
from sop_core.db import get_engine, insert_ignore, session_factory
from sop_core.models import SeenRequest, utcnow

log = logging.getLogger(__name__)

# Keep in step with slack_manifest.json (a test checks).
BOT_SCOPES = [
    "commands", "chat:write", "channels:join", "channels:history", "groups:history",
    "channels:read", "groups:read", "im:read", "mpim:read", "users:read", "files:write",
]
LISTENER_THREADS = 64  # per web worker; idle ones cost a little memory only


class ConfigurationError(RuntimeError):
    pass


def _header(req: BoltRequest, name: str) -> str | None:
    values = req.headers.get(name) or []
    return values[0] if values else None


def seen_before(sessions: sessionmaker[Session], signature: str | None) -> bool:
    """Record a signature; True if it was there already. The check fails open: if the
    database is away, the request goes on (and the listener reports the outage)."""
    if not signature:
        return False
    try:
        with sessions.begin() as session:
            return not insert_ignore(session, SeenRequest, ("signature",),
                                     signature=signature[:100], seen_at=utcnow())
    except DBAPIError:
        log.warning("could not check for a replayed request: the database is away")
        return False


def failure_message(error: Exception) -> str:
    if isinstance(error, DBAPIError):
        return ("The database is not answering right now, so nothing was done. "
                "Please try again in a minute.")
    if isinstance(error, (SlackUnanswered, *TRANSPORT_ERRORS)):
        return ("Slack did not answer in time, so I cannot tell whether that went through: "
                "if you do not see it in a minute, please try again.")
    if isinstance(error, SlackApiError):
        return (f"Slack did not take that ({error_code(error) or 'error'}), so it did not go "
                "through. Please try again in a minute.")
    return "Something went wrong on my side (it is logged), so nothing was done. Please try again."


def build_app(settings: Settings, *, socket_mode: bool = False,
              listener_executor: Executor | None = None) -> App:
    """The app; over HTTP every request's signature is checked (Socket Mode needs none)."""
    if settings.slack_signing_secret is None and not socket_mode:
        raise ConfigurationError("SLACK_SIGNING_SECRET is not set")
    sessions = session_factory(settings.database_url)
    secret = settings.slack_signing_secret
    common: dict[str, Any] = {
        "signing_secret": secret.get_secret_value() if secret else "",
        "request_verification_enabled": not socket_mode,
        "logger": logging.getLogger("sopgap.slack"),
        # Lazy work after ack() runs on Bolt's thread pool; the HTTP answer goes at once.
        "process_before_response": False,
        "raise_error_for_unhandled_request": False,
    }
    # Bolt runs each listener on this pool, ack() included, while the request thread
    # waits for the ack: enough threads that a listener never waits for one. What they
    # may run at once after ack() is bounded by the work slots instead.
    common["listener_executor"] = listener_executor or ThreadPoolExecutor(
        max_workers=LISTENER_THREADS, thread_name_prefix="sopgap-listener")
    work_slots = threading.BoundedSemaphore(settings.work_slots)
    if settings.slack_client_id and settings.slack_client_secret:
        engine = get_engine(settings.database_url)
        # No token on the app's client: Bolt finds each workspace's in the installations.
        app = App(**common, client=make_client(settings, token=None), oauth_settings=OAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=BOT_SCOPES,
            installation_store=SQLAlchemyInstallationStore(
                client_id=settings.slack_client_id, engine=engine),
            state_store=SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine),
        ))
    elif settings.slack_bot_token is not None:
        token = settings.slack_bot_token.get_secret_value()
        app = App(**common, client=make_client(settings, token=token))
    else:
        raise ConfigurationError(
            "set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
            "(install over OAuth)")

    @app.middleware
    def inject_services(context: dict[str, Any], next: Any) -> BoltResponse:
        """Every listener gets the settings and the session factory from its context, and
        a ``respond()`` that retries and falls back rather than drop a reply."""
        context["settings"] = settings
        context["sessions"] = sessions
        context["work_slots"] = work_slots
        dependable_respond(context, settings)
        return next()

    if not socket_mode:
        @app.middleware
        def refuse_replays(req: BoltRequest, next: Any) -> BoltResponse:
            """A request whose (verified) signature was already handled is a replay."""
            if seen_before(sessions, _header(req, "x-slack-signature")):
                req.context["logger"].warning("refused a replayed Slack request")
                return BoltResponse(status=401, body="replayed request")
            return next()

    @app.error
    def on_error(error: Exception, body: dict[str, Any], logger: logging.Logger,
                 respond: Respond | None = None) -> None:
        """Log with the traceback, and tell the person that their request failed."""
        logger.exception("unhandled error in a Slack listener (%s)", type(error).__name__,
                         exc_info=error)
        if respond is None or not (body.get("response_url") or body.get("response_urls")):
            return
        try:
            respond(text=failure_message(error), response_type="ephemeral",
                    replace_original=False)
        except Exception:
            logger.exception("could not tell the user about the error")

    listeners.register(app)
    return app
