"""Slack's answers about channels and people, kept for every process and across restarts,
and the changes Slack announced (sop_core/slack_answers.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 07:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('slack_answers',
    sa.Column('scope', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('answer', sa.JSON(), nullable=True),
    sa.Column('asked_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'kind', 'subject', name=op.f('pk_slack_answers'))
    )
    op.create_table('slack_changes',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('changed_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'subject', name=op.f('pk_slack_changes'))
    )


def downgrade() -> None:
    op.drop_table('slack_changes')
    op.drop_table('slack_answers')
