"""Slack tokens at rest: Fernet encryption of the installation tables' token columns.

The tables are slack_sdk's (``slack_installations``, ``slack_bots``); this module knows
only their ids and token columns, so the domain stays free of Slack code. Keys come from
``SOPGAP_ENCRYPTION_KEY``: several comma-separated keys form a MultiFernet, whose first
key encrypts and all of which decrypt, so a new key can be put first and the rows
re-encrypted (:func:`reencrypt_all`) before the old one is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text, select, update
from sqlalchemy.types import TypeDecorator

from sop_core.db import SchemaNotReady

TOKEN_COLUMNS = {
    "slack_installations": ("bot_token", "bot_refresh_token", "user_token",
                            "user_refresh_token"),
    "slack_bots": ("bot_token", "bot_refresh_token"),
}


class EncryptionKeyMissing(SchemaNotReady):
    """Migration 0004 cannot encrypt (or decrypt) the stored tokens without a key."""


class TokenKeyError(RuntimeError):
    """A stored token that none of the keys opens (a missing or wrong key)."""


def fernet(keys: Sequence[str]) -> MultiFernet:
    if not keys:
        raise TokenKeyError("no encryption key: set SOPGAP_ENCRYPTION_KEY")
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(box: MultiFernet, token: str) -> str:
    return box.encrypt(token.encode()).decode("ascii")


def decrypt(box: MultiFernet, stored: str) -> str:
    try:
        return box.decrypt(stored.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError):
        raise TokenKeyError(
            "a stored Slack token cannot be decrypted with SOPGAP_ENCRYPTION_KEY "
            "(a wrong key, or a row stored before encryption: run `sopgap db upgrade` "
            "with the key set)") from None


def is_encrypted(box: MultiFernet, stored: str) -> bool:
    try:
        box.decrypt(stored.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        return False
    return True


class EncryptedToken(TypeDecorator[str]):
    """A token column that holds Fernet ciphertext; Python sees the plain token."""

    impl = Text
    cache_ok = True

    def __init__(self, box: MultiFernet) -> None:
        super().__init__()
        self.box = box

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else encrypt(self.box, value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else decrypt(self.box, value)


def _token_tables() -> dict[str, Table]:
    metadata = MetaData()
    return {name: Table(name, metadata, Column("id", Integer, primary_key=True),
                        *(Column(column, Text) for column in columns))
            for name, columns in TOKEN_COLUMNS.items()}


def _rewrite(connection: Connection, change: Any) -> int:
    """Apply ``change(stored) -> new or None`` to every stored token; the rows changed."""
    changed = 0
    for name, table in _token_tables().items():
        columns = TOKEN_COLUMNS[name]
        for row in connection.execute(select(table)).mappings().all():
            values = {}
            for column in columns:
                stored = row[column]
                if stored is not None:
                    new = change(stored)
                    if new is not None and new != stored:
                        values[column] = new
            if values:
                connection.execute(update(table).where(table.c.id == row["id"]).values(values))
                changed += 1
    return changed


def count_tokens(connection: Connection) -> int:
    tables = _token_tables()
    return sum(1 for name, table in tables.items()
               for row in connection.execute(select(table)).mappings()
               for column in TOKEN_COLUMNS[name] if row[column] is not None)


def encrypt_plain_rows(connection: Connection, box: MultiFernet) -> int:
    """Encrypt every token stored in clear (those already encrypted are left as they are)."""
    return _rewrite(connection, lambda stored: None if is_encrypted(box, stored)
                    else encrypt(box, stored))


def decrypt_all_rows(connection: Connection, box: MultiFernet) -> int:
    return _rewrite(connection, lambda stored: decrypt(box, stored))


def reencrypt_all(connection: Connection, box: MultiFernet) -> int:
    """Every token re-encrypted under the first key (``MultiFernet.rotate``)."""
    def rotate(stored: str) -> str:
        try:
            return box.rotate(stored.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError):
            raise TokenKeyError("a stored Slack token cannot be decrypted with any key of "
                                "SOPGAP_ENCRYPTION_KEY: keep the old key in the list") from None
    return _rewrite(connection, rotate)
