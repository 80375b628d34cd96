"""One living trigger point per gap and channel, its lifecycle, and pending posts.

- ``live_key``: the gap's identity (scope, metric, horizon hashed); unique per team and
  channel, so a second ``/gap`` or watch of the same scope finds the first one.
  Existing duplicates keep NULL; the newest posted one of each gap becomes the living one.
- ``status``: ``resolved`` becomes ``closed``; ``covered`` and ``reopened`` are new.
- ``status_changed_at``, ``closed_reason``, ``closed_by``: when and why.
- ``claimed_until``: a post in progress (the row is written before Slack is called);
  past it, another request may complete the post.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-06 04:40:00+00:00
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def _identity(scope_key: str, metric: str, horizon: str) -> str:
    # The same as sop_core.lifecycle.identity_key, frozen here as of this revision.
    return hashlib.sha256(f"{metric}\n{horizon}\n{scope_key}".encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table('trigger_points', schema=None) as batch_op:
        batch_op.add_column(sa.Column('live_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('status_changed_at', UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column('closed_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('closed_by', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', UTC_DATETIME, nullable=True))
    points = sa.table('trigger_points', sa.column('id', sa.Integer), sa.column('team_id'),
                      sa.column('channel_id'), sa.column('scope_key'), sa.column('metric'),
                      sa.column('horizon'), sa.column('message_ts'), sa.column('status'),
                      sa.column('live_key'), sa.column('status_changed_at', UTC_DATETIME),
                      sa.column('resolved_at', UTC_DATETIME),
                      sa.column('created_at', UTC_DATETIME))
    bind = op.get_bind()
    bind.execute(points.update().where(points.c.status == 'resolved').values(status='closed'))
    bind.execute(points.update().values(status_changed_at=sa.func.coalesce(
        points.c.resolved_at, points.c.created_at)))
    rows = bind.execute(sa.select(points.c.id, points.c.team_id, points.c.channel_id,
                                  points.c.scope_key, points.c.metric, points.c.horizon)
                        .where(points.c.message_ts.is_not(None))
                        .order_by(points.c.id.desc())).all()
    taken: set[tuple[str, str, str]] = set()
    for row in rows:  # newest first: the latest message of each gap lives on
        key = _identity(row.scope_key, row.metric, row.horizon)
        if (row.team_id, row.channel_id, key) in taken:
            continue
        taken.add((row.team_id, row.channel_id, key))
        bind.execute(points.update().where(points.c.id == row.id).values(live_key=key))
    with op.batch_alter_table('trigger_points', schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f('uq_trigger_points_team_id_channel_id_live_key'),
            ['team_id', 'channel_id', 'live_key'])


def downgrade() -> None:
    points = sa.table('trigger_points', sa.column('status'))
    bind = op.get_bind()
    bind.execute(points.update().where(points.c.status == 'closed').values(status='resolved'))
    bind.execute(points.update().where(points.c.status.in_(['covered', 'reopened']))
                 .values(status='open'))
    with op.batch_alter_table('trigger_points', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_trigger_points_team_id_channel_id_live_key'),
                                 type_='unique')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('closed_by')
        batch_op.drop_column('closed_reason')
        batch_op.drop_column('status_changed_at')
        batch_op.drop_column('live_key')
