"""The clock's heartbeat: one row per sweep, written at the end of each pass.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 04:50:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('clock_heartbeats',
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pass_seconds', sa.Float(), nullable=False),
    sa.Column('failed', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('job', name=op.f('pk_clock_heartbeats'))
    )


def downgrade() -> None:
    op.drop_table('clock_heartbeats')
