"""slack_sdk's SQLAlchemy installation store, with the tokens encrypted at rest.

Only the column types change: the bot, user and refresh token columns become
:class:`sop_core.token_crypto.EncryptedToken`, so every insert and update slack_sdk makes
(installs, Bolt's token rotation) stores ciphertext and every read gives the plain token.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from sqlalchemy import Engine, update

from sop_core.token_crypto import TOKEN_COLUMNS, EncryptedToken, fernet


class EncryptedInstallationStore(SQLAlchemyInstallationStore):
    def __init__(self, *, client_id: str, engine: Engine, keys: Sequence[str]) -> None:
        super().__init__(client_id=client_id, engine=engine)
        token_type = EncryptedToken(fernet(keys))
        for table in (self.installations, self.bots):
            for column in TOKEN_COLUMNS[table.name]:
                table.c[column].type = token_type

    def forget_user_token(self, *, enterprise_id: str | None, team_id: str | None,
                          user_id: str) -> None:
        """A revoked user token goes; the row stays, as it also carries the bot token."""
        table = self.installations
        with self.engine.begin() as connection:
            connection.execute(update(table).where(
                table.c.client_id == self.client_id,
                table.c.enterprise_id == enterprise_id, table.c.team_id == team_id,
                table.c.user_id == user_id,
            ).values(user_token=None, user_refresh_token=None, user_token_expires_at=None))
