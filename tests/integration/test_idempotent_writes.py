"""insert_ignore / upsert: what redelivered events and a second clock rely on."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from sop_core.db import get_sessionmaker, insert_ignore, upsert
from sop_core.models import Notification, SlackUser

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_insert_ignore_reports_whether_the_row_was_new(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    row = {"key": "k", "kind": "nudge", "team_id": "T1", "status": "claimed", "attempts": 1,
           "claimed_at": NOW, "lease_until": NOW}
    with sessions.begin() as session:
        assert insert_ignore(session, Notification, ("key",), **row) is True
    with sessions.begin() as session:
        assert insert_ignore(session, Notification, ("key",), **{**row, "kind": "x"}) is False
    with sessions() as session:
        assert session.scalars(select(Notification.kind)).all() == ["nudge"]


def test_upsert_inserts_then_updates(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    for tz in ("Europe/Paris", "Asia/Tokyo"):
        with sessions.begin() as session:
            upsert(session, SlackUser, ("team_id", "user_id"), ("tz",), team_id="T1",
                   user_id="U1", tz=tz, deleted=False, fetched_at=NOW)
    with sessions() as session:
        assert [(u.user_id, u.tz) for u in session.scalars(select(SlackUser))] == [
            ("U1", "Asia/Tokyo")]
