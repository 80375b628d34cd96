"""Exactly-once claims in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

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
        assert outbox.settled(session, ["k", "other"]) == {"k"}


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


def test_a_key_claimed_again_looks_for_the_earlier_send_since_its_first_claim(
        db_url: str) -> None:
    """An attempt whose answer was lost: the next ones first look in Slack from the first
    claim on (not from their own), and keep what they find instead of sending again."""
    sessions = get_sessionmaker(db_url)
    looked: list[datetime] = []
    sends: list[str] = []

    def lost() -> str:
        raise TimeoutError("no answer")

    def send() -> str:
        sends.append("sent")
        return "9.0"

    def find(answer: str | None) -> Any:
        return lambda since: looked.append(since) or answer

    with pytest.raises(TimeoutError):
        outbox.deliver(sessions, "k", lost, kind="digest", team_id="T1", now=NOW,
                       find_sent=find("1.0"))
    assert looked == []  # a first attempt has nothing to look for
    second = NOW + timedelta(minutes=1)
    with pytest.raises(TimeoutError):  # nothing found: sent, and lost again
        outbox.deliver(sessions, "k", lost, kind="digest", team_id="T1", now=second,
                       find_sent=find(None))
    assert outbox.deliver(sessions, "k", send, kind="digest", team_id="T1",
                          now=NOW + timedelta(minutes=2), find_sent=find("1.0"))
    assert looked == [NOW, NOW] and sends == []
    with sessions() as session:
        row = session.scalars(select(Notification)).one()
    assert (row.status, row.attempts, row.message_ts) == ("sent", 3, "1.0")
    assert row.claimed_at == NOW  # the first claim's, kept by the takeovers


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


# --------------------------------------------------------------------------------------
# Failures: transient ones retried, permanent ones final, unknown ones up to a cap
# --------------------------------------------------------------------------------------

class Refused(Exception):
    pass


def diagnosed_as(kind: outbox.ErrorKind) -> Any:
    return lambda error: outbox.Diagnosis(kind, f"chat.postMessage: {error}")


def refuse() -> str:
    raise Refused("channel_not_found")


def row_of(sessions: Any, key: str) -> Notification:
    with sessions() as session:
        row = session.scalars(select(Notification).where(Notification.key == key)).one()
        session.expunge_all()
        return row


def test_a_permanent_failure_is_final_at_once(db_url: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    sessions = get_sessionmaker(db_url)
    permanent = diagnosed_as(outbox.ErrorKind.PERMANENT)
    with pytest.raises(outbox.GaveUp) as gave_up:
        outbox.deliver(sessions, "k", refuse, kind="nudge", team_id="T1", now=NOW,
                       diagnose=permanent)
    assert isinstance(gave_up.value.__cause__, Refused)
    row = row_of(sessions, "k")
    assert (row.status, row.last_error, row.attempts) == (
        "failed", "chat.postMessage: channel_not_found", 1)
    # Never claimed again, whoever asks and however late; skipped as settled.
    for later in (NOW + timedelta(minutes=1), NOW + timedelta(days=2)):
        assert outbox.claim(sessions, "k", kind="nudge", team_id="T1", now=later) is None
        assert not outbox.deliver(sessions, "k", lambda: "1.0", kind="nudge", team_id="T1",
                                  now=later, diagnose=permanent)
    with sessions() as session:
        assert outbox.settled(session, ["k", "other"]) == {"k"}
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "nudge k was not sent and will not be retried: chat.postMessage: channel_not_found"]


def test_transient_failures_are_retried_whatever_their_number(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    transient = diagnosed_as(outbox.ErrorKind.TRANSIENT)
    for minute in range(outbox.MAX_ATTEMPTS + 2):
        with pytest.raises(Refused):
            outbox.deliver(sessions, "k", refuse, kind="nudge", team_id="T1",
                           now=NOW + timedelta(minutes=minute), diagnose=transient)
        assert row_of(sessions, "k").status == "claimed"
    assert outbox.deliver(sessions, "k", lambda: "1.0", kind="nudge", team_id="T1",
                          now=NOW + timedelta(hours=1), diagnose=transient)
    row = row_of(sessions, "k")
    assert (row.status, row.attempts, row.last_error) == ("sent", outbox.MAX_ATTEMPTS + 3, None)


def test_unknown_failures_give_up_at_the_attempts_cap(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    unknown = diagnosed_as(outbox.ErrorKind.UNKNOWN)
    for minute in range(outbox.MAX_ATTEMPTS - 1):
        with pytest.raises(Refused):
            outbox.deliver(sessions, "k", refuse, kind="nudge", team_id="T1",
                           now=NOW + timedelta(minutes=minute), diagnose=unknown)
    with pytest.raises(outbox.GaveUp):
        outbox.deliver(sessions, "k", refuse, kind="nudge", team_id="T1",
                       now=NOW + timedelta(hours=1), diagnose=unknown)
    row = row_of(sessions, "k")
    assert (row.status, row.attempts) == ("failed", outbox.MAX_ATTEMPTS)
    assert row.last_error == (f"chat.postMessage: channel_not_found "
                              f"(attempt {outbox.MAX_ATTEMPTS} of {outbox.MAX_ATTEMPTS})")
    assert not outbox.deliver(sessions, "k", lambda: "1.0", kind="nudge", team_id="T1",
                              now=NOW + timedelta(days=1), diagnose=unknown)


def test_by_default_the_database_away_is_transient_and_the_rest_unknown() -> None:
    from sqlalchemy.exc import OperationalError

    away = outbox.diagnose(OperationalError("SELECT 1", {}, ConnectionError("gone")))
    assert (away.kind, away.reason) == (outbox.ErrorKind.TRANSIENT, "database: ConnectionError")
    other = outbox.diagnose(KeyError("ts"))
    assert (other.kind, other.reason) == (outbox.ErrorKind.UNKNOWN, "KeyError: 'ts'")


# --------------------------------------------------------------------------------------
# Settled keys are final: a process remembers them and asks the database about the rest
# --------------------------------------------------------------------------------------

def keys_asked(sessions: Any, call: Any, keys: list[str]) -> tuple[Any, list[str]]:
    """The call's result, and which of ``keys`` its statements sent to the database."""
    values: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        for value in (parameters.values() if isinstance(parameters, dict) else parameters):
            values.extend(value if isinstance(value, list) else [value])

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        return call(), [key for key in keys if key in values]
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_settled_keys_are_remembered_and_only_the_others_looked_up(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    for key in ("k-sent", "k-refused"):
        outbox.claim(sessions, key, kind="nudge", team_id="T1", now=NOW)
    outbox.mark_sent(sessions, "k-sent", now=NOW)
    outbox.give_up(sessions, "k-refused", "channel_not_found", now=NOW)
    outbox.claim(sessions, "k-in-flight", kind="nudge", team_id="T1", now=NOW)
    keys = ["k-sent", "k-refused", "k-in-flight", "k-never"]

    with sessions() as session:
        found, asked = keys_asked(sessions, lambda: outbox.settled(session, iter(keys)), keys)
    assert found == {"k-sent", "k-refused"} and asked == keys
    with sessions() as session:
        again, asked = keys_asked(sessions, lambda: outbox.settled(session, keys), keys)
    assert again == found and asked == ["k-in-flight", "k-never"]  # only the unsettled

    outbox.mark_sent(sessions, "k-in-flight", now=NOW)  # a key settled later is found then
    with sessions() as session:
        assert outbox.settled(session, keys) == {"k-sent", "k-refused", "k-in-flight"}
    with sessions() as session:
        done, asked = keys_asked(sessions, lambda: outbox.settled(session, keys[:3]), keys)
    assert done == {"k-sent", "k-refused", "k-in-flight"} and asked == []
