"""Who the single bot token is: Slack's ``auth.test``, asked once per token and kept.

Without it, Bolt asks on each worker's first request and the shared data's policy
(sop_core/workspaces.py) asks again: two Slack round trips on the first command after
every restart, in every worker. The answer never changes for a token, so it is kept in
the database under the token's SHA-256 (never the token itself): the first process that
needs it asks Slack and stores it; every other worker, and every later boot, reads it.
A web worker reads it while it warms up (a database read: still no Slack call at boot).
When Slack says the token is gone (``app_uninstalled``, ``tokens_revoked``), it is
forgotten, so the next request asks Slack again and fails the way Bolt fails.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.slack_client import make_client
from sop_core.config import Settings
from sop_core.db import insert_ignore, session_factory
from sop_core.models import BotIdentity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    team_id: str | None
    enterprise_id: str | None
    bot_id: str | None
    user_id: str | None  # the token's user: the bot user, for a bot token
    scopes: str | None


class TokenIdentity:
    """``auth.test`` of ``client``'s token: in memory once known, else the database,
    else Slack (then stored). Concurrent first requests ask once."""

    def __init__(self, client: WebClient, sessions: sessionmaker[Session]) -> None:
        assert client.token, "a client with the bot token"
        self._client, self._sessions = client, sessions
        self._token = client.token
        self._digest = hashlib.sha256(self._token.encode()).hexdigest()
        self._known: Identity | None = None
        self._lock = threading.Lock()

    def preload(self) -> None:
        """Read the kept answer, if any (at boot: no Slack call)."""
        try:
            self._known = self._known or self._stored()
        except SQLAlchemyError:  # the database is away: the first request will ask
            log.debug("could not read the bot token's identity", exc_info=True)

    def get(self) -> Identity:
        """The token's identity; raises SlackApiError if Slack refuses the token."""
        if self._known is not None:
            return self._known
        with self._lock:
            if self._known is None:
                try:
                    self._known = self._stored()
                except SQLAlchemyError:
                    log.debug("could not read the bot token's identity", exc_info=True)
            if self._known is None:
                self._known = self._ask_slack()
            return self._known

    def team_id(self) -> str | None:
        return self.get().team_id

    def bolt_authorize(self) -> Callable[..., AuthorizeResult]:
        """Bolt's ``authorize`` (Bolt passes the arguments a function names: no ``self``)."""

        def authorize(user_id: str | None) -> AuthorizeResult:
            return self.authorize(user_id)

        return authorize

    def authorize(self, user_id: str | None) -> AuthorizeResult:
        """As Bolt's single-workspace authorization builds it from ``auth.test``."""
        known = self.get()
        bot = self._token.startswith("xoxb-")
        return AuthorizeResult(
            enterprise_id=known.enterprise_id, team_id=known.team_id, bot_id=known.bot_id,
            bot_user_id=known.user_id if bot else None, bot_token=self._token if bot else None,
            user_id=user_id or (None if bot else known.user_id),
            user_token=None if bot else self._token,
            bot_scopes=known.scopes if bot else None, user_scopes=None if bot else known.scopes)

    def forget(self) -> None:
        """Slack revoked the token or uninstalled the app: ask again next time."""
        with self._lock:
            self._known = None
            try:
                with self._sessions.begin() as session:
                    session.execute(delete(BotIdentity)
                                    .where(BotIdentity.token_sha256 == self._digest))
            except SQLAlchemyError:
                log.warning("could not forget the bot token's identity", exc_info=True)

    def _stored(self) -> Identity | None:
        with self._sessions() as session:
            row = session.execute(select(BotIdentity).where(
                BotIdentity.token_sha256 == self._digest)).scalar_one_or_none()
            if row is None:
                return None
            return Identity(row.team_id, row.enterprise_id, row.bot_id, row.user_id,
                            row.scopes)

    def _ask_slack(self) -> Identity:
        answer = self._client.auth_test()
        known = Identity(answer.get("team_id"), answer.get("enterprise_id"),
                         answer.get("bot_id"), answer.get("user_id"),
                         answer.headers.get("x-oauth-scopes"))
        try:
            with self._sessions.begin() as session:
                insert_ignore(session, BotIdentity, ["token_sha256"],
                              token_sha256=self._digest, **vars(known))
        except SQLAlchemyError:  # kept in memory all the same; stored by a later process
            log.warning("could not store the bot token's identity", exc_info=True)
        return known


def token_identity(settings: Settings) -> TokenIdentity | None:
    """The single bot token's identity; None when installing over OAuth (Bolt finds each
    workspace's identity in its installation, with no ``auth.test``)."""
    if settings.oauth_mode or settings.slack_bot_token is None:
        return None
    return TokenIdentity(make_client(settings, token=settings.slack_bot_token.get_secret_value()),
                         session_factory(settings.database_url))
