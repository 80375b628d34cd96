"""Slack tokens encrypted at rest (wider token columns, existing tokens encrypted), and
the earlier versions of a replaced root cause (``root_cause_revisions``).

The bot, user and refresh tokens of slack_sdk's installation tables are stored as Fernet
ciphertext (bot/installations.py), which is longer than the 200 characters the columns
had. Existing rows are encrypted here under the first key of SOPGAP_ENCRYPTION_KEY (read
from the environment). Without a key the upgrade goes through only if no token is stored
(a new database, or a single-token deployment, which stores none); otherwise it stops
before changing anything and says to set the key. The downgrade decrypts them again.

Self-contained on purpose (a migration must not change when the code does), but for the
exception it raises, which the command line reports in one line.

Revision ID: 0004
Revises: 0010
Create Date: 2026-12-06 04:30:00+00:00
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from sop_core.token_crypto import EncryptionKeyMissing

revision: str = '0004'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKEN_COLUMNS = {
    'slack_installations': ('bot_token', 'bot_refresh_token', 'user_token',
                            'user_refresh_token'),
    'slack_bots': ('bot_token', 'bot_refresh_token'),
}


def _box() -> MultiFernet | None:
    keys = [key.strip() for key in os.environ.get('SOPGAP_ENCRYPTION_KEY', '').split(',')
            if key.strip()]
    return MultiFernet([Fernet(key) for key in keys]) if keys else None


def _tables() -> dict[str, sa.Table]:
    metadata = sa.MetaData()
    return {name: sa.Table(name, metadata, sa.Column('id', sa.Integer, primary_key=True),
                           *(sa.Column(column, sa.Text) for column in columns))
            for name, columns in TOKEN_COLUMNS.items()}


def _stored_tokens(connection: sa.Connection) -> int:
    count = 0
    for name, table in _tables().items():
        for column in TOKEN_COLUMNS[name]:
            count += connection.scalar(
                sa.select(sa.func.count()).select_from(table)
                .where(table.c[column].is_not(None))) or 0
    return count


def _rewrite(connection: sa.Connection, change: Callable[[str], str]) -> None:
    for name, table in _tables().items():
        columns = TOKEN_COLUMNS[name]
        for row in connection.execute(sa.select(table)).mappings().all():
            values = {column: change(row[column]) for column in columns
                      if row[column] is not None}
            if values:
                connection.execute(sa.update(table).where(table.c.id == row['id'])
                                   .values(values))


def _require_key(connection: sa.Connection, doing: str) -> MultiFernet | None:
    box = _box()
    if box is None and _stored_tokens(connection):
        raise EncryptionKeyMissing(
            f'Slack tokens are stored, and {doing} them needs SOPGAP_ENCRYPTION_KEY: set it '
            '(generate one with `sopgap keys new`) and run the migration again; nothing '
            'was changed')
    return box


def _resize(length: int | None) -> None:
    for name, columns in TOKEN_COLUMNS.items():
        with op.batch_alter_table(name) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column, type_=sa.Text() if length is None else sa.String(length),
                    existing_type=sa.String(200) if length is None else sa.Text(),
                    existing_nullable=True)


def upgrade() -> None:
    connection = op.get_bind()
    box = _require_key(connection, 'encrypting')
    op.create_table('root_cause_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trigger_point_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.String(length=32), nullable=False),
    sa.Column('category', sa.String(length=50), nullable=False),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('confirmed_by', sa.String(length=32), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replaced_by', sa.String(length=32), nullable=False),
    sa.Column('replaced_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['trigger_point_id'], ['trigger_points.id'], name=op.f('fk_root_cause_revisions_trigger_point_id_trigger_points'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_root_cause_revisions'))
    )
    with op.batch_alter_table('root_cause_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_root_cause_revisions_trigger_point_id'), ['trigger_point_id'], unique=False)
    _resize(None)
    if box is None:
        return

    def encrypt(stored: str) -> str:
        try:
            box.decrypt(stored.encode('ascii'))
            return stored  # already encrypted (a migration run again)
        except (InvalidToken, UnicodeEncodeError):
            return box.encrypt(stored.encode()).decode('ascii')

    _rewrite(connection, encrypt)


def downgrade() -> None:
    connection = op.get_bind()
    box = _require_key(connection, 'decrypting')
    if box is not None:
        _rewrite(connection, lambda stored: box.decrypt(stored.encode('ascii')).decode())
    _resize(200)
    with op.batch_alter_table('root_cause_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_root_cause_revisions_trigger_point_id'))
    op.drop_table('root_cause_revisions')
