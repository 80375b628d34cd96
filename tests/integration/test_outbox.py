"""Exactly-once claims in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from sop_core import outbox
from sop_core.db import get_sessionmaker
from sop_core.models import Notification

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_a_key_is_claimed_once(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    assert outbox.claim(sessions, "k1", kind="nudge", team_id="T1", now=NOW) is not None
    assert outbox.claim(sessions, "k1", kind="nudge", team_id="T1", now=NOW) is None


def test_sent_keys_are_never_claimed_again(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    assert outbox.deliver(sessions, "k", lambda: "1.0", kind="nudge", team_id="T1", now=NOW)
    later = NOW + timedelta(days=30)
    assert not outbox.deliver(sessions, "k", lambda: "2.0", kind="nudge", team_id="T1",
                              now=later)
    with sessions() as session:
        row = session.scalars(select(Notification)).one()
    assert (row.status, row.message_ts, row.attempts) == ("sent", "1.0", 1)
    with sessions() as session:
        assert outbox.already_sent(session, ["k", "other"]) == {"k"}


def test_a_crashed_claim_is_taken_over_after_its_lease(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    lease = timedelta(minutes=5)
    assert outbox.claim(sessions, "k", kind="nudge", team_id="T1", now=NOW, lease=lease)
    # The sender died here (no mark_sent). Within the lease nobody else may send...
    assert outbox.claim(sessions, "k", kind="nudge", team_id="T1",
                        now=NOW + timedelta(minutes=4)) is None
    # ...after it, the next pass takes over, once.
    taken = outbox.claim(sessions, "k", kind="nudge", team_id="T1",
                         now=NOW + timedelta(minutes=6))
    assert taken is not None
    assert taken.attempt == 2
    assert outbox.claim(sessions, "k", kind="nudge", team_id="T1",
                        now=NOW + timedelta(minutes=7)) is None


def test_a_failed_send_stays_due(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)

    def boom() -> str:
        raise RuntimeError("slack is down")

    with pytest.raises(RuntimeError):
        outbox.deliver(sessions, "k", boom, kind="nudge", team_id="T1", now=NOW)
    assert outbox.deliver(sessions, "k", lambda: "1.0", kind="nudge", team_id="T1",
                          now=NOW + timedelta(seconds=1))
    with sessions() as session:
        row = session.scalars(select(Notification)).one()
    assert (row.status, row.attempts) == ("sent", 2)


@pytest.mark.postgres
def test_concurrent_claimers_send_each_key_once(postgres_url: str) -> None:
    sessions = get_sessionmaker(postgres_url)
    keys = [f"k{i}" for i in range(60)]
    sent: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def clock() -> None:
        start.wait()
        for key in keys:
            def send(key: str = key) -> str:
                with lock:
                    sent.append(key)
                return "ts"
            outbox.deliver(sessions, key, send, kind="nudge", team_id="T1", now=NOW)

    threads = [threading.Thread(target=clock) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sent) == sorted(keys)


@pytest.mark.postgres
def test_concurrent_takeover_of_an_expired_claim_is_single(postgres_url: str) -> None:
    sessions = get_sessionmaker(postgres_url)
    for i in range(30):
        outbox.claim(sessions, f"dead{i}", kind="nudge", team_id="T1", now=NOW)
    later = NOW + timedelta(hours=1)
    winners: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(5)

    def clock() -> None:
        start.wait()
        for i in range(30):
            if outbox.claim(sessions, f"dead{i}", kind="nudge", team_id="T1", now=later):
                with lock:
                    winners.append(f"dead{i}")

    threads = [threading.Thread(target=clock) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(winners) == sorted(f"dead{i}" for i in range(30))
