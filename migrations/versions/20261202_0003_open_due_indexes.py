"""Partial indexes for the nudge sweep: open milestones and open actions by due date.

The sweep runs every minute and reads the open items due soon or overdue. Without these
it walked every milestone by due date (most past ones done) and every action.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_MILESTONE = sa.text("done_at IS NULL")
OPEN_ACTION = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_index('ix_milestones_open_due', 'milestones', ['due_date', 'action_id', 'name'],
                    unique=False, sqlite_where=OPEN_MILESTONE, postgresql_where=OPEN_MILESTONE)
    op.create_index('ix_actions_open_due', 'actions', ['due_date'], unique=False,
                    sqlite_where=OPEN_ACTION, postgresql_where=OPEN_ACTION)


def downgrade() -> None:
    op.drop_index('ix_actions_open_due', table_name='actions')
    op.drop_index('ix_milestones_open_due', table_name='milestones')
