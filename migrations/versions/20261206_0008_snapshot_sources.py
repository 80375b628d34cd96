"""Several sources, one latest view: each snapshot is one load of a named source, and
records which load of every source the view it starts holds.

Existing snapshots are loads of the source ``default`` holding only themselves.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 04:45:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('snapshots') as batch:
        batch.add_column(sa.Column('source_name', sa.String(length=100), nullable=False,
                                   server_default='default'))
        batch.add_column(sa.Column('source_loads', sa.JSON(), nullable=True))
        batch.create_index('ix_snapshots_team_source', ['team_id', 'source_name', 'id'],
                           unique=False)


def downgrade() -> None:
    with op.batch_alter_table('snapshots') as batch:
        batch.drop_index('ix_snapshots_team_source')
        batch.drop_column('source_loads')
        batch.drop_column('source_name')
