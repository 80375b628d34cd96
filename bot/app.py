"""Building the Bolt app: one workspace (bot token) or many (OAuth install)."""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.context.respond import Respond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy.exc import DBAPIError

from bot import listeners, metrics
from bot.bot_identity import TokenIdentity, token_identity
from bot.directory import keep_answers_in
from bot.installations import EncryptedInstallationStore
from bot.observability import ContextExecutor, observe_work
from bot.replays import ClaimingAck, RecentSignatures, ReplayRefused, claim
from bot.slack_client import (
    TRANSPORT_ERRORS,
    SlackUnanswered,
    dependable_respond,
    error_code,
    make_client,
    metered,
)
from bot.work_slots import WorkSlots
from bot.workspace_access import (
    AllowListOAuthFlow,
    configure_shared_data,
    redacting_logger,
    refuse_other_teams,
    register_token_revocation,
)
from sop_core.config import Settings
from sop_core.db import autocommit_sessionmaker, get_engine, session_factory

log = logging.getLogger(__name__)

# Keep in step with slack_manifest.json (a test checks).
BOT_SCOPES = [
    "commands", "chat:write", "channels:join", "channels:history", "groups:history",
    "channels:read", "groups:read", "im:read", "mpim:read", "users:read", "files:write",
]
# Per web worker. Threads are started only when none is idle, and a command waiting for a
# work slot holds one: with fewer, a burst of commands (each sent as soon as the last was
# acked) used them all up, and new acks waited for a thread.
LISTENER_THREADS = 1024


class ConfigurationError(RuntimeError):
    pass


def _header(req: BoltRequest, name: str) -> str | None:
    values = req.headers.get(name) or []
    return values[0] if values else None


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


def check_configuration(settings: Settings, *, socket_mode: bool = False) -> None:
    """Refuse to start (one line) on settings that would run insecurely or not at all."""
    if settings.slack_signing_secret is None and not socket_mode:
        raise ConfigurationError("SLACK_SIGNING_SECRET is not set")
    if settings.oauth_mode and not settings.encryption_keys:
        raise ConfigurationError(
            "SOPGAP_ENCRYPTION_KEY is not set: installing over OAuth stores Slack tokens, "
            "which are kept encrypted (generate a key with `sopgap keys new`)")


class _ClientWins(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment itself, then warns at every boot
    that the app's own client wins over it. By design: that client carries the token,
    the retries, the metering and SLACK_API_URL (bot/slack_client.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_CLIENT_WINS = _ClientWins()


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("sopgap.slack")
    logger.addFilter(_CLIENT_WINS)  # once: a filter already there is not added again
    return logger


def _refuse_replay(logger: logging.Logger) -> BoltResponse:
    logger.warning("refused a replayed Slack request")
    metrics.REFUSED_REQUESTS.labels("replay").inc()
    return BoltResponse(status=401, body="replayed request")


def build_app(settings: Settings, *, socket_mode: bool = False,
              listener_executor: Executor | None = None,
              identity: TokenIdentity | None = None) -> App:
    """The app; over HTTP every request's signature is checked (Socket Mode needs none).
    ``identity``: the single bot token's (bot/bot_identity.py), when the caller preloads
    it; else one is made here."""
    check_configuration(settings, socket_mode=socket_mode)
    identity = identity or token_identity(settings)
    configure_shared_data(settings, identity)
    sessions = session_factory(settings.database_url)
    keep_answers_in(settings.database_url)
    # One-statement steps (a replay's claim, a trigger point's row and message) and
    # reads that need no transaction: no BEGIN/COMMIT round trips.
    autocommit = autocommit_sessionmaker(settings.database_url)
    secret = settings.slack_signing_secret
    common: dict[str, Any] = {
        "signing_secret": secret.get_secret_value() if secret else "",
        "request_verification_enabled": not socket_mode,
        "logger": _bolt_logger(),
        # Lazy work after ack() runs on Bolt's thread pool; the HTTP answer goes at once.
        "process_before_response": False,
        "raise_error_for_unhandled_request": False,
        # No Slack call at boot: auth.test runs on the first request, then is cached, so
        # workers start (and /healthz answers) while Slack is unreachable.
        "token_verification_enabled": False,
    }
    # Bolt runs each listener on this pool, ack() included, while the request thread
    # waits for the ack: enough threads that a listener never waits for one. What they
    # may run at once after ack() is bounded by the work slots instead.
    common["listener_executor"] = listener_executor or ContextExecutor(
        max_workers=LISTENER_THREADS, thread_name_prefix="sopgap-listener")
    work_slots = WorkSlots(settings.work_slots, observe=observe_work)
    if settings.allowed_teams is not None:
        # Before Bolt looks for an installation: an outsider is answered, not authorized.
        common["before_authorize"] = refuse_other_teams(settings.allowed_teams)
    installation_store: EncryptedInstallationStore | None = None
    if settings.slack_client_id and settings.slack_client_secret:
        engine = get_engine(settings.database_url)
        # The OAuth code and state must never reach a log (README "Security model").
        oauth_logger = redacting_logger("sopgap.oauth")
        installation_store = EncryptedInstallationStore(
            client_id=settings.slack_client_id, engine=engine, keys=settings.encryption_keys)
        oauth_settings = OAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=BOT_SCOPES,
            installation_store=installation_store,
            state_store=SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine,
                                                  logger=oauth_logger),
            logger=oauth_logger,
        )
        # Token rotation: Bolt's rotator asks oauth.v2.access through a client of its own,
        # made for slack.com whatever SLACK_API_URL says. It gets the app's instead (the
        # same API address, retries and metrics).
        # No token on the app's client: Bolt finds each workspace's in the installations.
        client = make_client(settings, token=None)
        rotator = getattr(oauth_settings.authorize, "token_rotator", None)
        if rotator is not None:
            rotator.client = client
        app = App(**common, client=client,
                  oauth_flow=AllowListOAuthFlow(settings=oauth_settings,
                                                allowed_teams=settings.allowed_teams))
    elif identity is not None:
        # Bolt's own single-workspace authorization would ask auth.test on each worker's
        # first request; the identity asks once per token, ever. The request's client
        # gets the token from it.
        app = App(**common, client=make_client(settings, token=None),
                  authorize=identity.bolt_authorize())
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
        context["autocommit_sessions"] = autocommit
        context["work_slots"] = work_slots
        context["client"] = metered(context.client)  # Slack calls counted in /metrics
        dependable_respond(context, settings)
        return next()

    if not socket_mode:
        recent = RecentSignatures()

        @app.middleware
        def refuse_replays(req: BoltRequest, next: Any) -> BoltResponse:
            """A request whose (verified) signature was already handled is a replay: this
            worker refuses it from memory; others after the ack, by the database (see
            bot/replays.py). Nothing here writes to the database."""
            signature = _header(req, "x-slack-signature")
            if not signature:
                return next()
            if not recent.first_time(signature):
                return _refuse_replay(req.context["logger"])
            if req.body.get("type") == "view_submission":
                # A modal's change is saved before its ack (so that errors show in the
                # form): its ack waits for that write anyway, so the claim comes first.
                if not claim(autocommit, signature):
                    return _refuse_replay(req.context["logger"])
                return next()
            req.context["ack"] = ClaimingAck(autocommit, signature,
                                             common["listener_executor"])
            return next()

    @app.error
    def on_error(error: Exception, body: dict[str, Any], logger: logging.Logger,
                 respond: Respond | None = None) -> None:
        """Log with the traceback, and tell the person that their request failed."""
        if isinstance(error, ReplayRefused):
            logger.warning("refused a replayed Slack request (handled by another worker)")
            metrics.REFUSED_REQUESTS.labels("replay").inc()
            return
        logger.exception("unhandled error in a Slack listener (%s)", type(error).__name__,
                         exc_info=error)
        if respond is None or not (body.get("response_url") or body.get("response_urls")):
            return
        try:
            respond(text=failure_message(error), response_type="ephemeral",
                    replace_original=False)
        except Exception:
            logger.exception("could not tell the user about the error")

    register_token_revocation(app, installation_store, identity)
    listeners.register(app)
    return app
