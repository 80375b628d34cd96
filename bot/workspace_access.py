"""Which workspaces may install and use the app, uninstalls, and the OAuth secrets in logs."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.oauth.oauth_flow import OAuthFlow
from slack_sdk.oauth.installation_store import Installation

from bot import metrics
from bot.bot_identity import TokenIdentity, token_identity
from bot.installations import EncryptedInstallationStore
from sop_core import workspaces
from sop_core.config import Settings
from sop_core.workspaces import SharedDataPolicy, team_is_allowed

log = logging.getLogger(__name__)

# `code=…`, `code: …`, `"state": "…"`: the value up to the next separator.
_OAUTH_SECRET = re.compile(r"""(\b(?:code|state)\b["']?\s*[=:]\s*["']?)[^\s&"',;)]+""",
                           re.IGNORECASE)


def redact_oauth_secrets(text: str) -> str:
    return _OAUTH_SECRET.sub(r"\1[redacted]", text)


class RedactOAuthSecrets(logging.Filter):
    """Rewrites a record's message so the OAuth ``code`` and ``state`` values are gone
    (slack_bolt logs the code of a failed exchange, slack_sdk an unknown state)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_oauth_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# The loggers that see the OAuth exchange (a logger's filter applies to its own records
# only, so each is named): Bolt's flow, slack_sdk's stores, and slack_sdk's client, which
# logs request bodies at DEBUG.
OAUTH_LOGGERS = ("slack_bolt.oauth.oauth_flow", "slack_bolt.oauth.callback_options",
                 "slack_sdk.oauth.state_store.sqlalchemy",
                 "slack_sdk.oauth.installation_store.sqlalchemy", "slack_sdk.web.base_client",
                 "slack_bolt.App", "sopgap.slack")


def redacting_logger(name: str) -> logging.Logger:
    """The logger ``name``, after filtering the OAuth code and state out of every logger
    that sees them."""
    for logger_name in (*OAUTH_LOGGERS, name):
        logger = logging.getLogger(logger_name)
        if not any(isinstance(existing, RedactOAuthSecrets) for existing in logger.filters):
            logger.addFilter(RedactOAuthSecrets())
    return logging.getLogger(name)


class InstallRefused(Exception):
    def __init__(self, team: str) -> None:
        super().__init__(team)
        self.team = team


REFUSAL_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sopgap: not installed</title></head>
<body><h1>sopgap cannot be installed in this workspace</h1>
<p>This sopgap server accepts installations only from the workspaces its operator has
allowed, and {team} is not one of them. Nothing was stored, and the app's access to the
workspace was given back. Ask the person who runs
sopgap to add your workspace id to <code>SOPGAP_ALLOWED_TEAMS</code>.</p></body></html>
"""


class AllowListOAuthFlow(OAuthFlow):
    """Bolt's OAuth flow that refuses, with a clear page, workspaces not allowed to
    install (the installation is checked before anything is stored)."""

    def __init__(self, *, allowed_teams: Sequence[str] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allowed_teams = allowed_teams

    def store_installation(self, request: BoltRequest, installation: Installation) -> None:
        if not team_is_allowed(self.allowed_teams, team_id=installation.team_id,
                               enterprise_id=installation.enterprise_id):
            team = installation.team_id or installation.enterprise_id or "?"
            self._revoke(installation, team)
            raise InstallRefused(team)
        super().store_installation(request, installation)

    def _revoke(self, installation: Installation, team: str) -> None:
        """Give back the tokens Slack issued for a refused installation: revoking the
        last of them removes the app from that workspace, where it would otherwise stay
        installed with a live token nobody keeps."""
        from slack_sdk.errors import SlackApiError

        for token in (installation.bot_token, installation.user_token):
            if not token:
                continue
            try:
                self.client.auth_revoke(token=token)
            except (SlackApiError, OSError) as exc:  # refused all the same; never the token
                log.warning("could not revoke the token of the refused installation by "
                            "workspace %s: %s", team, type(exc).__name__)

    def handle_callback(self, request: BoltRequest) -> BoltResponse:
        try:
            return super().handle_callback(request)
        except InstallRefused as refused:
            log.warning("refused an installation by workspace %s (not in "
                        "SOPGAP_ALLOWED_TEAMS)", refused.team)
            metrics.REFUSED_REQUESTS.labels("install").inc()
            return BoltResponse(status=403, body=REFUSAL_PAGE.format(
                team=f"<b>{html.escape(refused.team)}</b>"),
                headers={"Content-Type": "text/html; charset=utf-8"})


def refuse_other_teams(allowed_teams: Sequence[str]) -> Callable[..., BoltResponse]:
    """A middleware: requests from workspaces outside the list do nothing. A person gets
    a one-line answer (slash commands show it to them only); events get a bare 200 so
    that Slack does not retry them."""

    def middleware(req: BoltRequest, next: Callable[[], BoltResponse]) -> BoltResponse:
        context = req.context
        if team_is_allowed(allowed_teams, team_id=context.team_id,
                           enterprise_id=context.enterprise_id):
            return next()
        log.warning("refused a request from workspace %s (not in SOPGAP_ALLOWED_TEAMS)",
                    context.team_id or context.enterprise_id)
        metrics.REFUSED_REQUESTS.labels("workspace").inc()
        if req.body.get("type") == "event_callback":
            return BoltResponse(status=200, body="")
        return BoltResponse(status=200, body="sopgap is not enabled for this workspace. "
                            "Ask the person who runs sopgap to allow it.")

    return middleware


def register_token_revocation(app: App, store: EncryptedInstallationStore | None,
                              identity: TokenIdentity | None = None) -> None:
    """``app_uninstalled`` and ``tokens_revoked``: the workspace's tokens are deleted at
    once; its sopgap records stay until ``sopgap workspace purge``. In single-token mode
    no token is stored: the token's kept identity is forgotten, so that the next request
    asks Slack again (and is refused as Bolt refuses a dead token)."""

    @app.event("app_uninstalled")
    def uninstalled(context: Any) -> None:
        log.warning("sopgap was uninstalled from workspace %s", context.team_id)
        if identity is not None:
            identity.forget()
        if store is not None:
            store.delete_all(enterprise_id=context.enterprise_id, team_id=context.team_id)

    @app.event("tokens_revoked")
    def revoked(event: dict[str, Any], context: Any) -> None:
        tokens = event.get("tokens") or {}
        log.warning("Slack revoked tokens of workspace %s", context.team_id)
        if identity is not None and tokens.get("bot"):
            identity.forget()
        if store is None:
            return
        if tokens.get("bot"):
            # Without its bot token the workspace cannot be served: every row holding one
            # (the installers' rows repeat it) goes.
            store.delete_all(enterprise_id=context.enterprise_id, team_id=context.team_id)
            return
        for user_id in tokens.get("oauth") or []:
            store.forget_user_token(enterprise_id=context.enterprise_id,
                                    team_id=context.team_id, user_id=user_id)


def configure_shared_data(settings: Settings, identity: TokenIdentity | None = None) -> None:
    """Who this process serves the shared data to (sop_core/workspaces.py). Unset, the
    single token's own workspace, from its ``identity`` (bot/bot_identity.py: asked of
    Slack once per token, ever; the web worker's is read while it warms up)."""
    own_team = None
    if settings.shared_data_teams is None:
        identity = identity or token_identity(settings)
        own_team = identity.team_id if identity is not None else None
    workspaces.configure_shared_data(SharedDataPolicy(settings.shared_data_teams, own_team))
