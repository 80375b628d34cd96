"""Initial schema: snapshots, channels, trigger points, actions, notifications,
and the tables of slack_sdk's SQLAlchemy installation and OAuth state stores.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:56:33.045716+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('channel_settings',
    sa.Column('team_id', sa.String(length=32), nullable=False),
    sa.Column('channel_id', sa.String(length=32), nullable=False),
    sa.Column('threshold_pct', sa.Float(), nullable=True),
    sa.Column('floor', sa.Float(), nullable=True),
    sa.Column('leads', sa.JSON(), nullable=False),
    sa.Column('meeting_local', sa.DateTime(), nullable=True),
    sa.Column('meeting_tz', sa.String(length=64), nullable=True),
    sa.Column('meeting_every', sa.String(length=16), nullable=True),
    sa.Column('meeting_lead_minutes', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('team_id', 'channel_id', name=op.f('pk_channel_settings'))
    )
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('team_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('target', sa.String(length=64), nullable=True),
    sa.Column('message_ts', sa.String(length=32), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('key', name=op.f('uq_notifications_key'))
    )
    op.create_table('slack_users',
    sa.Column('team_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('tz', sa.String(length=64), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('team_id', 'user_id', name=op.f('pk_slack_users'))
    )
    op.create_table('snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=500), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('as_of', sa.Integer(), nullable=True),
    sa.Column('rows_read', sa.BigInteger(), nullable=False),
    sa.Column('rows_stored', sa.BigInteger(), nullable=False),
    sa.Column('rows_merged', sa.BigInteger(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('dimensions', sa.JSON(), nullable=False),
    sa.Column('notes', sa.JSON(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshots'))
    )
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_snapshots_team_id'), ['team_id'], unique=False)

    op.create_table('watches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.String(length=32), nullable=False),
    sa.Column('channel_id', sa.String(length=32), nullable=False),
    sa.Column('scope', sa.JSON(), nullable=False),
    sa.Column('scope_key', sa.String(length=1000), nullable=False),
    sa.Column('by', sa.String(length=100), nullable=True),
    sa.Column('horizon', sa.String(length=16), nullable=False),
    sa.Column('metric', sa.String(length=100), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_watches')),
    sa.UniqueConstraint('team_id', 'channel_id', 'scope_key', 'horizon', 'metric', name=op.f('uq_watches_team_id_channel_id_scope_key_horizon_metric'))
    )
    with op.batch_alter_table('watches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_watches_team_id'), ['team_id'], unique=False)

    op.create_table('snapshot_parts',
    sa.Column('snapshot_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['snapshot_id'], ['snapshots.id'], name=op.f('fk_snapshot_parts_snapshot_id_snapshots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('snapshot_id', 'seq', name=op.f('pk_snapshot_parts'))
    )
    op.create_table('trigger_points',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.String(length=32), nullable=False),
    sa.Column('channel_id', sa.String(length=32), nullable=False),
    sa.Column('message_ts', sa.String(length=32), nullable=True),
    sa.Column('scope', sa.JSON(), nullable=False),
    sa.Column('scope_key', sa.String(length=1000), nullable=False),
    sa.Column('metric', sa.String(length=100), nullable=False),
    sa.Column('horizon', sa.String(length=16), nullable=False),
    sa.Column('by', sa.String(length=100), nullable=True),
    sa.Column('watch_id', sa.Integer(), nullable=True),
    sa.Column('posted_snapshot_id', sa.Integer(), nullable=False),
    sa.Column('snapshot_id', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Integer(), nullable=True),
    sa.Column('plan_at_post', sa.Float(), nullable=False),
    sa.Column('gap_at_post', sa.Float(), nullable=False),
    sa.Column('gap_pct_at_post', sa.Float(), nullable=True),
    sa.Column('plan', sa.Float(), nullable=False),
    sa.Column('outlook', sa.Float(), nullable=False),
    sa.Column('gap', sa.Float(), nullable=False),
    sa.Column('gap_pct', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('root_cause_category', sa.String(length=50), nullable=True),
    sa.Column('root_cause_summary', sa.Text(), nullable=True),
    sa.Column('root_cause_confirmed_by', sa.String(length=32), nullable=True),
    sa.Column('root_cause_confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['posted_snapshot_id'], ['snapshots.id'], name=op.f('fk_trigger_points_posted_snapshot_id_snapshots')),
    sa.ForeignKeyConstraint(['snapshot_id'], ['snapshots.id'], name=op.f('fk_trigger_points_snapshot_id_snapshots')),
    sa.ForeignKeyConstraint(['watch_id'], ['watches.id'], name=op.f('fk_trigger_points_watch_id_watches'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trigger_points')),
    sa.UniqueConstraint('team_id', 'channel_id', 'message_ts', name=op.f('uq_trigger_points_team_id_channel_id_message_ts'))
    )
    with op.batch_alter_table('trigger_points', schema=None) as batch_op:
        batch_op.create_index('ix_trigger_points_team_scope', ['team_id', 'channel_id', 'scope_key'], unique=False)

    op.create_table('actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.String(length=32), nullable=False),
    sa.Column('trigger_point_id', sa.Integer(), nullable=True),
    sa.Column('channel_id', sa.String(length=32), nullable=True),
    sa.Column('card_ts', sa.String(length=32), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('owner_id', sa.String(length=32), nullable=False),
    sa.Column('creator_id', sa.String(length=32), nullable=False),
    sa.Column('metric_name', sa.String(length=200), nullable=False),
    sa.Column('baseline', sa.Float(), nullable=False),
    sa.Column('target', sa.Float(), nullable=False),
    sa.Column('current_value', sa.Float(), nullable=True),
    sa.Column('expected_impact', sa.Float(), nullable=False),
    sa.Column('realised_impact', sa.Float(), nullable=True),
    sa.Column('resources', sa.Text(), nullable=True),
    sa.Column('confidence', sa.String(length=16), nullable=True),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('snoozed_until', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['trigger_point_id'], ['trigger_points.id'], name=op.f('fk_actions_trigger_point_id_trigger_points'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actions'))
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_actions_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_actions_team_status_due', ['team_id', 'status', 'due_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_actions_trigger_point_id'), ['trigger_point_id'], unique=False)

    op.create_table('root_cause_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trigger_point_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('message_ts', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=50), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['trigger_point_id'], ['trigger_points.id'], name=op.f('fk_root_cause_notes_trigger_point_id_trigger_points'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_root_cause_notes')),
    sa.UniqueConstraint('trigger_point_id', 'message_ts', name=op.f('uq_root_cause_notes_trigger_point_id_message_ts'))
    )
    with op.batch_alter_table('root_cause_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_root_cause_notes_trigger_point_id'), ['trigger_point_id'], unique=False)

    op.create_table('action_updates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['action_id'], ['actions.id'], name=op.f('fk_action_updates_action_id_actions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_updates'))
    )
    with op.batch_alter_table('action_updates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_updates_action_id'), ['action_id'], unique=False)

    op.create_table('milestones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_by', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['action_id'], ['actions.id'], name=op.f('fk_milestones_action_id_actions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_milestones'))
    )
    with op.batch_alter_table('milestones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_milestones_action_id'), ['action_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_milestones_due_date'), ['due_date'], unique=False)

    # slack_sdk's SQLAlchemyInstallationStore / SQLAlchemyOAuthStateStore tables, as
    # slack_sdk 3.x defines them (copied so that this migration never changes).
    op.create_table('slack_installations',
    sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column('client_id', sa.String(length=32), nullable=False),
    sa.Column('app_id', sa.String(length=32), nullable=False),
    sa.Column('enterprise_id', sa.String(length=32)),
    sa.Column('enterprise_name', sa.String(length=200)),
    sa.Column('enterprise_url', sa.String(length=200)),
    sa.Column('team_id', sa.String(length=32)),
    sa.Column('team_name', sa.String(length=200)),
    sa.Column('bot_token', sa.String(length=200)),
    sa.Column('bot_id', sa.String(length=32)),
    sa.Column('bot_user_id', sa.String(length=32)),
    sa.Column('bot_scopes', sa.String(length=1000)),
    sa.Column('bot_refresh_token', sa.String(length=200)),
    sa.Column('bot_token_expires_at', sa.DateTime()),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('user_token', sa.String(length=200)),
    sa.Column('user_scopes', sa.String(length=1000)),
    sa.Column('user_refresh_token', sa.String(length=200)),
    sa.Column('user_token_expires_at', sa.DateTime()),
    sa.Column('incoming_webhook_url', sa.String(length=200)),
    sa.Column('incoming_webhook_channel', sa.String(length=200)),
    sa.Column('incoming_webhook_channel_id', sa.String(length=200)),
    sa.Column('incoming_webhook_configuration_url', sa.String(length=200)),
    sa.Column('is_enterprise_install', sa.Boolean(), nullable=False),
    sa.Column('token_type', sa.String(length=32)),
    sa.Column('installed_at', sa.DateTime(), nullable=False),
    )
    op.create_index('slack_installations_idx', 'slack_installations',
                    ['client_id', 'enterprise_id', 'team_id', 'user_id', 'installed_at'])
    op.create_table('slack_bots',
    sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column('client_id', sa.String(length=32), nullable=False),
    sa.Column('app_id', sa.String(length=32), nullable=False),
    sa.Column('enterprise_id', sa.String(length=32)),
    sa.Column('enterprise_name', sa.String(length=200)),
    sa.Column('team_id', sa.String(length=32)),
    sa.Column('team_name', sa.String(length=200)),
    sa.Column('bot_token', sa.String(length=200)),
    sa.Column('bot_id', sa.String(length=32)),
    sa.Column('bot_user_id', sa.String(length=32)),
    sa.Column('bot_scopes', sa.String(length=1000)),
    sa.Column('bot_refresh_token', sa.String(length=200)),
    sa.Column('bot_token_expires_at', sa.DateTime()),
    sa.Column('is_enterprise_install', sa.Boolean(), nullable=False),
    sa.Column('installed_at', sa.DateTime(), nullable=False),
    )
    op.create_index('slack_bots_idx', 'slack_bots',
                    ['client_id', 'enterprise_id', 'team_id', 'installed_at'])
    op.create_table('slack_oauth_states',
    sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column('state', sa.String(length=200), nullable=False),
    sa.Column('expire_at', sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('slack_oauth_states')
    op.drop_index('slack_bots_idx', table_name='slack_bots')
    op.drop_table('slack_bots')
    op.drop_index('slack_installations_idx', table_name='slack_installations')
    op.drop_table('slack_installations')
    with op.batch_alter_table('milestones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_milestones_due_date'))
        batch_op.drop_index(batch_op.f('ix_milestones_action_id'))

    op.drop_table('milestones')
    with op.batch_alter_table('action_updates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_updates_action_id'))

    op.drop_table('action_updates')
    with op.batch_alter_table('root_cause_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_root_cause_notes_trigger_point_id'))

    op.drop_table('root_cause_notes')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_actions_trigger_point_id'))
        batch_op.drop_index('ix_actions_team_status_due')
        batch_op.drop_index(batch_op.f('ix_actions_owner_id'))

    op.drop_table('actions')
    with op.batch_alter_table('trigger_points', schema=None) as batch_op:
        batch_op.drop_index('ix_trigger_points_team_scope')

    op.drop_table('trigger_points')
    op.drop_table('snapshot_parts')
    with op.batch_alter_table('watches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_watches_team_id'))

    op.drop_table('watches')
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_snapshots_team_id'))

    op.drop_table('snapshots')
    op.drop_table('slack_users')
    op.drop_table('notifications')
    op.drop_table('channel_settings')
