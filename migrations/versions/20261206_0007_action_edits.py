"""Actions that can change: each edit kept field by field, cancellation with a reason.

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-06 04:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'action_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('action_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('field', sa.String(length=40), nullable=False),
        sa.Column('before', sa.Text(), nullable=True),
        sa.Column('after', sa.Text(), nullable=True),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['action_id'], ['actions.id'],
                                name=op.f('fk_action_changes_action_id_actions'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_action_changes')),
    )
    op.create_index(op.f('ix_action_changes_action_id'), 'action_changes', ['action_id'],
                    unique=False)
    with op.batch_alter_table('actions') as batch:
        batch.add_column(sa.Column('edited_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('edited_by', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('cancel_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('actions') as batch:
        batch.drop_column('cancel_reason')
        batch.drop_column('edited_by')
        batch.drop_column('edited_at')
    op.drop_index(op.f('ix_action_changes_action_id'), table_name='action_changes')
    op.drop_table('action_changes')
