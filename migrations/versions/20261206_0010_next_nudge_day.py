"""Each open action and milestone's next nudge day, so the sweep reads only what can be due.

NULL means "not worked out yet": the next sweep reads such items (when their due date
is near) and stores their day. Existing rows start so; done and closed ones get the far
day that the application uses for "never" (sop_core/nudge_days.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 04:50:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_MILESTONE = sa.text("done_at IS NULL")
OPEN_ACTION = sa.text("status = 'open'")
NEVER = "9999-12-31"  # sop_core.nudge_days.NEVER: kept literal, migrations never change


def upgrade() -> None:
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_nudge_day', sa.Date(), nullable=True))
    with op.batch_alter_table('milestones', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_nudge_day', sa.Date(), nullable=True))
    op.execute(sa.text("UPDATE actions SET next_nudge_day = :never WHERE status <> 'open'")
               .bindparams(sa.bindparam("never", _never(), type_=sa.Date)))
    op.execute(sa.text("UPDATE milestones SET next_nudge_day = :never WHERE done_at IS NOT NULL"
                       " OR action_id IN (SELECT id FROM actions WHERE status <> 'open')")
               .bindparams(sa.bindparam("never", _never(), type_=sa.Date)))
    op.create_index('ix_actions_open_next_nudge', 'actions', ['next_nudge_day', 'due_date'],
                    unique=False, sqlite_where=OPEN_ACTION, postgresql_where=OPEN_ACTION)
    op.create_index('ix_milestones_open_next_nudge', 'milestones',
                    ['next_nudge_day', 'due_date'], unique=False,
                    sqlite_where=OPEN_MILESTONE, postgresql_where=OPEN_MILESTONE)


def _never():  # type: ignore[no-untyped-def]
    from datetime import date

    return date.fromisoformat(NEVER)


def downgrade() -> None:
    op.drop_index('ix_milestones_open_next_nudge', table_name='milestones')
    op.drop_index('ix_actions_open_next_nudge', table_name='actions')
    with op.batch_alter_table('milestones', schema=None) as batch_op:
        batch_op.drop_column('next_nudge_day')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_column('next_nudge_day')
