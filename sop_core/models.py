"""The database schema: SQLAlchemy 2 typed models.

Every Slack-side record carries ``team_id`` so that nothing from one workspace is ever
read for another. Snapshot data is stored as immutable parts (Arrow IPC files, one row per
part) next to the snapshot's metadata, written in one transaction with it.

Times are timezone-aware and stored in UTC (:class:`UTCDateTime` keeps SQLite honest,
which otherwise hands back naive datetimes).
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Alembic docs, "The Importance of Naming Constraints": stable names for migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Status(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    DONE = "done"
    CANCELLED = "cancelled"


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

class Snapshot(Base):
    """One load: immutable once written. The latest one is the latest view."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_team_source", "team_id", "source_name", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "" = shared by every workspace of this installation (single-company deployments).
    team_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    source: Mapped[str] = mapped_column(String(500))
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    as_of: Mapped[int | None] = mapped_column(Integer)  # month index, see sop_core.periods
    rows_read: Mapped[int] = mapped_column(BigInteger)
    rows_stored: Mapped[int] = mapped_column(BigInteger)
    rows_merged: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[list[str]]
    dimensions: Mapped[list[str]]
    notes: Mapped[list[str]] = mapped_column(default=list)
    content_hash: Mapped[str] = mapped_column(String(64))
    # Several sources, one latest view: the source this load is of, and the load of each
    # source (its snapshot id) that the view starting here holds; None = only this one.
    source_name: Mapped[str] = mapped_column(String(100), default="default",
                                             server_default="default")
    source_loads: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    parts: Mapped[list[SnapshotPart]] = relationship(
        back_populates="snapshot", order_by="SnapshotPart.seq", cascade="all, delete-orphan",
        lazy="raise",
    )


class SnapshotPart(Base):
    """A slice of a snapshot's rows as an Arrow IPC file (Parquet in older snapshots);
    slices keep each value well under the 1 GB limits of PostgreSQL ``bytea`` and SQLite
    blobs."""

    __tablename__ = "snapshot_parts"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    snapshot: Mapped[Snapshot] = relationship(back_populates="parts")


# --------------------------------------------------------------------------------------
# Channels: trigger rule, meeting, watches
# --------------------------------------------------------------------------------------

class ChannelSettings(Base):
    __tablename__ = "channel_settings"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    threshold_pct: Mapped[float | None] = mapped_column(Float)
    floor: Mapped[float | None] = mapped_column(Float)
    leads: Mapped[list[str]] = mapped_column(default=list)
    # The first meeting occurrence in the meeting's own time zone (wall-clock time).
    meeting_local: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    meeting_tz: Mapped[str | None] = mapped_column(String(64))
    meeting_every: Mapped[str | None] = mapped_column(String(16))
    meeting_lead_minutes: Mapped[int] = mapped_column(Integer, default=24 * 60)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Watch(Base):
    """A channel's subscription to a scope: evaluated after every new snapshot."""

    __tablename__ = "watches"
    __table_args__ = (UniqueConstraint("team_id", "channel_id", "scope_key", "horizon", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32), index=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    scope: Mapped[dict[str, Any]]
    scope_key: Mapped[str] = mapped_column(String(1000))
    by: Mapped[str | None] = mapped_column(String(100))
    horizon: Mapped[str] = mapped_column(String(16), default="fy")
    metric: Mapped[str] = mapped_column(String(100), default="")  # "" = default metric
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------------------
# Trigger points and root causes
# --------------------------------------------------------------------------------------

class TriggerPoint(Base):
    """A gap posted into a channel: the start of a conversation."""

    __tablename__ = "trigger_points"
    __table_args__ = (
        UniqueConstraint("team_id", "channel_id", "message_ts"),
        # One living trigger point per gap and channel (sop_core.lifecycle.identity_key).
        UniqueConstraint("team_id", "channel_id", "live_key"),
        Index("ix_trigger_points_team_scope", "team_id", "channel_id", "scope_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    scope: Mapped[dict[str, Any]]
    scope_key: Mapped[str] = mapped_column(String(1000))
    metric: Mapped[str] = mapped_column(String(100))
    horizon: Mapped[str] = mapped_column(String(16))
    by: Mapped[str | None] = mapped_column(String(100))
    watch_id: Mapped[int | None] = mapped_column(ForeignKey("watches.id", ondelete="SET NULL"))
    posted_snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"))
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"))  # latest figures from
    as_of: Mapped[int | None] = mapped_column(Integer)
    # Figures when first posted, and the latest ones.
    plan_at_post: Mapped[float] = mapped_column(Float)
    gap_at_post: Mapped[float] = mapped_column(Float)
    gap_pct_at_post: Mapped[float | None] = mapped_column(Float)
    plan: Mapped[float] = mapped_column(Float)
    outlook: Mapped[float] = mapped_column(Float)
    gap: Mapped[float] = mapped_column(Float)
    gap_pct: Mapped[float | None] = mapped_column(Float)
    # The gap's identity in the channel; NULL on older duplicates of the same gap.
    live_key: Mapped[str | None] = mapped_column(String(64))
    # sop_core.lifecycle.GapStatus: open, covered, closed, reopened.
    status: Mapped[str] = mapped_column(String(16), default=Status.OPEN)
    status_changed_at: Mapped[datetime | None]
    closed_reason: Mapped[str | None] = mapped_column(Text)
    closed_by: Mapped[str | None] = mapped_column(String(32))
    # Written before the Slack post; a post in progress until then (message_ts NULL).
    claimed_until: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None]  # when it was last closed
    root_cause_category: Mapped[str | None] = mapped_column(String(50))
    root_cause_summary: Mapped[str | None] = mapped_column(Text)
    root_cause_confirmed_by: Mapped[str | None] = mapped_column(String(32))
    root_cause_confirmed_at: Mapped[datetime | None]

    notes: Mapped[list[RootCauseNote]] = relationship(
        back_populates="trigger_point", order_by="RootCauseNote.id", lazy="raise")
    actions: Mapped[list[Action]] = relationship(
        back_populates="trigger_point", order_by="Action.id", lazy="raise")


class RootCauseNote(Base):
    """A human reply in a trigger point's thread (deduplicated on redelivery by ts)."""

    __tablename__ = "root_cause_notes"
    __table_args__ = (UniqueConstraint("trigger_point_id", "message_ts"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger_point_id: Mapped[int] = mapped_column(
        ForeignKey("trigger_points.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    trigger_point: Mapped[TriggerPoint] = relationship(back_populates="notes")


class RootCauseRevision(Base):
    """A confirmed root cause that was later replaced: kept with its author and time."""

    __tablename__ = "root_cause_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger_point_id: Mapped[int] = mapped_column(
        ForeignKey("trigger_points.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(50))
    summary: Mapped[str | None] = mapped_column(Text)
    confirmed_by: Mapped[str | None] = mapped_column(String(32))
    confirmed_at: Mapped[datetime | None]
    replaced_by: Mapped[str] = mapped_column(String(32))
    replaced_at: Mapped[datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------------------
# SMART actions
# --------------------------------------------------------------------------------------

class Action(Base):
    __tablename__ = "actions"
    __table_args__ = (
        Index("ix_actions_team_status_due", "team_id", "status", "due_date"),
        # The nudge sweep, every minute, reads the open actions due soon or overdue.
        Index("ix_actions_open_due", "due_date", sqlite_where=text("status = 'open'"),
              postgresql_where=text("status = 'open'")),
        # ... and now only those whose next nudge day has come (see sop_core/nudge_days.py).
        Index("ix_actions_open_next_nudge", "next_nudge_day", "due_date",
              sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    trigger_point_id: Mapped[int | None] = mapped_column(
        ForeignKey("trigger_points.id", ondelete="SET NULL"), index=True)
    channel_id: Mapped[str | None] = mapped_column(String(32))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    owner_id: Mapped[str] = mapped_column(String(32), index=True)
    creator_id: Mapped[str] = mapped_column(String(32))
    metric_name: Mapped[str] = mapped_column(String(200))
    baseline: Mapped[float] = mapped_column(Float)
    target: Mapped[float] = mapped_column(Float)
    current_value: Mapped[float | None] = mapped_column(Float)
    expected_impact: Mapped[float] = mapped_column(Float)
    realised_impact: Mapped[float | None] = mapped_column(Float)
    resources: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[str | None] = mapped_column(String(16))
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=Status.OPEN)
    snoozed_until: Mapped[date | None] = mapped_column(Date)
    # The local day of its next due-date nudge; None: not worked out yet (see
    # sop_core/nudge_days.py).
    next_nudge_day: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None]
    # The last edit (the card says "edited"); each change is an ActionChange.
    edited_at: Mapped[datetime | None]
    edited_by: Mapped[str | None] = mapped_column(String(32))
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    trigger_point: Mapped[TriggerPoint | None] = relationship(back_populates="actions")
    milestones: Mapped[list[Milestone]] = relationship(
        back_populates="action", order_by="Milestone.due_date", cascade="all, delete-orphan",
        lazy="selectin")
    updates: Mapped[list[ActionUpdate]] = relationship(
        back_populates="action", order_by="ActionUpdate.id", cascade="all, delete-orphan",
        lazy="raise")


class Milestone(Base):
    __tablename__ = "milestones"
    __table_args__ = (
        # The nudge sweep, every minute, reads the open milestones due soon or overdue.
        # Most past milestones are done, so the index holds the open ones only, with the
        # columns the sweep reads (no lookup of each milestone's row).
        Index("ix_milestones_open_due", "due_date", "action_id", "name",
              sqlite_where=text("done_at IS NULL"), postgresql_where=text("done_at IS NULL")),
        Index("ix_milestones_open_next_nudge", "next_nudge_day", "due_date",
              sqlite_where=text("done_at IS NULL"), postgresql_where=text("done_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[date] = mapped_column(Date, index=True)
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(32))
    next_nudge_day: Mapped[date | None] = mapped_column(Date)  # as Action.next_nudge_day

    action: Mapped[Action] = relationship(back_populates="milestones")


class ActionUpdate(Base):
    """The history of an action: progress, milestones done, snoozes, completion."""

    __tablename__ = "action_updates"

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    action: Mapped[Action] = relationship(back_populates="updates")


class ActionChange(Base):
    """One field changed by an edit: who, when, and the value before and after (as text)."""

    __tablename__ = "action_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(40))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------------------
# Exactly-once sending and caches
# --------------------------------------------------------------------------------------

class Notification(Base):
    """One row per thing sent, claimed before sending: the unique ``key`` stops doubles.

    ``status``: ``claimed`` (being sent, or due again once ``lease_until`` has passed:
    a send that failed or never finished, ``last_error`` says why), ``sent``, or
    ``failed`` (given up for good, ``last_error`` says why; never tried again).
    ``attempts`` counts the claims; ``claimed_at`` is the first one's (a message an
    earlier attempt got to Slack is not older).
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    team_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="claimed")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    target: Mapped[str | None] = mapped_column(String(64))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)


class SeenRequest(Base):
    """Signatures of Slack requests already handled: a replay inside Slack's 5-minute
    signature window is refused (signatures cannot repeat otherwise: they sign the
    timestamp). Pruned by housekeeping."""

    __tablename__ = "seen_requests"

    signature: Mapped[str] = mapped_column(String(100), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SlackUser(Base):
    """Cached ``users.info``: the owner's time zone decides when a nudge is due."""

    __tablename__ = "slack_users"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    deleted: Mapped[bool] = mapped_column(default=False)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClockHeartbeat(Base):
    """The clock's last pass of each sweep: readiness checks call a clock whose oldest
    beat is older than ``SOPGAP_CLOCK_STALE_AFTER`` stopped or hung."""

    __tablename__ = "clock_heartbeats"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow)
    pass_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    failed: Mapped[bool] = mapped_column(default=False)


class BotIdentity(Base):
    """Slack's ``auth.test`` of a bot token, kept under the token's SHA-256 (never the
    token): the answer never changes for a token, so no worker asks again after a
    restart (bot/bot_identity.py)."""

    __tablename__ = "bot_identities"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str | None] = mapped_column(String(32))
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    bot_id: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(32))
    scopes: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)



class SlackAnswer(Base):
    """What Slack said about a channel (``conversations.info``) or a person's channels
    (``users.conversations``), kept for every process until ``expires_at``
    (sop_core/slack_answers.py). ``scope``: the Slack API and the token's hash."""

    __tablename__ = "slack_answers"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    answer: Mapped[Any] = mapped_column(JSON, nullable=True)
    asked_at: Mapped[float] = mapped_column(Float)  # wall-clock seconds
    expires_at: Mapped[float] = mapped_column(Float)


class SlackChange(Base):
    """The last time Slack announced a change of a channel or a person's channels (an
    event): an answer asked before it is not kept (sop_core/slack_answers.py)."""

    __tablename__ = "slack_changes"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    changed_at: Mapped[float] = mapped_column(Float)  # wall-clock seconds


# Resets next_nudge_day on every change that can move a nudge (registers a flush hook).
from sop_core import nudge_days as _nudge_days  # noqa: E402, F401
