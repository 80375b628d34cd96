"""Slack's answers kept in the database for every process (sop_core/slack_answers.py), on
SQLite and PostgreSQL, and the same rules in one process's memory: shared, expiring,
dropped by a change for every scope, and never kept when the question was asked before a
change was announced."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select

from bot.jobs import JobContext, housekeeping
from sop_core.config import Settings
from sop_core.db import get_engine, session_factory
from sop_core.models import SlackAnswer, SlackChange
from sop_core.slack_answers import (
    CHANGE_RETENTION_SECONDS,
    CHANNEL,
    EVERY,
    PERSON,
    AnswersInMemory,
    KeptAnswers,
    rehearse,
)

PUBLIC = {"kind": "public", "ext_shared": False, "bot_member": True, "archived": False}


Kept = KeptAnswers | AnswersInMemory


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kept(request: pytest.FixtureRequest) -> tuple[Kept, Kept]:
    """Two processes' views of one database (in memory: one process's, twice)."""
    if request.param == "memory":
        alone = AnswersInMemory()
        return alone, alone
    url = request.getfixturevalue(f"{request.param}_url")
    session_factory(url)  # migrated
    return KeptAnswers(get_engine(url)), KeptAnswers(get_engine(url))


def test_an_answer_kept_by_one_process_is_read_by_another_until_it_expires(
        kept: tuple[Kept, Kept]) -> None:
    worker, other = kept
    assert worker.put("api#a", CHANNEL, "C1", PUBLIC, asked_at=100.0, expires_at=400.0)
    assert worker.put("api#a", CHANNEL, "GGONE", None, asked_at=100.0, expires_at=400.0)
    assert worker.put("api#a", PERSON, "U1", ["C1", "G2"], asked_at=100.0, expires_at=160.0)
    assert other.get("api#a", CHANNEL, ["C1", "GGONE", "C9"], now=399.0) == {
        "C1": PUBLIC, "GGONE": None}  # None: Slack said no such channel (C9: never asked)
    assert other.get("api#b", CHANNEL, ["C1"], now=399.0) == {}  # another token's
    assert other.get("api#a", PERSON, ["U1"], now=150.0) == {"U1": ["C1", "G2"]}
    assert other.get("api#a", PERSON, ["U1"], now=160.0) == {}  # expired
    assert other.get("api#a", CHANNEL, ["C1"], now=400.0) == {}
    # Asked again: the newer answer replaces the old one.
    private = {**PUBLIC, "kind": "private"}
    assert other.put("api#a", CHANNEL, "C1", private, asked_at=500.0, expires_at=800.0)
    assert worker.get("api#a", CHANNEL, ["C1"], now=501.0) == {"C1": private}


def test_many_subjects_are_read_in_chunks(kept: tuple[Kept, Kept]) -> None:
    worker, _ = kept
    for n in range(1203):
        worker.put("api#a", CHANNEL, f"C{n:05d}", PUBLIC, asked_at=1.0, expires_at=9.0)
    assert len(worker.get("api#a", CHANNEL, [f"C{n:05d}" for n in range(1300)], now=2.0)) == 1203


def test_a_change_drops_the_subject_for_every_scope_and_nothing_else(
        kept: tuple[Kept, Kept]) -> None:
    worker, other = kept
    for scope in ("api#a", "api#b"):
        worker.put(scope, CHANNEL, "C1", PUBLIC, asked_at=100.0, expires_at=400.0)
        worker.put(scope, CHANNEL, "C2", PUBLIC, asked_at=100.0, expires_at=400.0)
        # (the same id as a person's: another kind of subject)
        worker.put(scope, PERSON, "C1", ["C1"], asked_at=100.0, expires_at=400.0)
    other.forget(CHANNEL, "C1", now=110.0)  # e.g. channel_shared, heard by the other worker
    for scope in ("api#a", "api#b"):
        assert worker.get(scope, CHANNEL, ["C1", "C2"], now=120.0) == {"C2": PUBLIC}
        assert worker.get(scope, PERSON, ["C1"], now=120.0) == {"C1": ["C1"]}


def test_an_answer_asked_before_a_change_is_not_kept(
        kept: tuple[Kept, Kept]) -> None:
    """A worker asks Slack at t=100; the change is announced at t=105, to another worker;
    the answer (Slack's word from before the change) arrives at t=106: it is dropped."""
    worker, other = kept
    other.forget(CHANNEL, "C1", now=105.0)
    assert not worker.put("api#a", CHANNEL, "C1", PUBLIC, asked_at=100.0, expires_at=400.0)
    assert worker.get("api#a", CHANNEL, ["C1"], now=106.0) == {}
    assert worker.put("api#a", CHANNEL, "C1", PUBLIC, asked_at=105.5, expires_at=400.0)
    assert worker.get("api#a", CHANNEL, ["C1"], now=106.0) == {"C1": PUBLIC}
    # The change of another channel, or of a person, keeps nothing else out.
    other.forget(PERSON, "U1", now=200.0)
    assert worker.put("api#a", CHANNEL, "C2", PUBLIC, asked_at=150.0, expires_at=400.0)


def test_a_change_of_every_person_drops_and_refuses_every_persons_channels(
        kept: tuple[Kept, Kept]) -> None:
    worker, other = kept
    worker.put("api#a", PERSON, "U1", ["G1"], asked_at=100.0, expires_at=400.0)
    worker.put("api#a", CHANNEL, "G1", PUBLIC, asked_at=100.0, expires_at=400.0)
    other.forget(PERSON, EVERY, now=110.0)  # a channel was archived: who sees it changed
    assert worker.get("api#a", PERSON, ["U1"], now=120.0) == {}
    assert not worker.put("api#a", PERSON, "U2", ["G1"], asked_at=105.0, expires_at=400.0)
    assert worker.put("api#a", PERSON, "U2", ["G1"], asked_at=111.0, expires_at=400.0)
    assert worker.get("api#a", CHANNEL, ["G1"], now=120.0) == {"G1": PUBLIC}


def test_housekeeping_prunes_expired_answers_and_old_changes(db_url: str) -> None:
    session_factory(db_url)  # migrated
    worker = KeptAnswers(get_engine(db_url))
    now = datetime(2026, 12, 7, 3, 17, tzinfo=UTC)
    t = now.timestamp()
    worker.put("api#a", CHANNEL, "COLD", PUBLIC, asked_at=t - 400, expires_at=t - 100)
    worker.put("api#a", CHANNEL, "CNEW", PUBLIC, asked_at=t - 10, expires_at=t + 290)
    worker.forget(PERSON, "UOLD", now=t - CHANGE_RETENTION_SECONDS - 1)
    worker.forget(PERSON, "UNEW", now=t - 5)
    job = JobContext(settings=Settings(DATABASE_URL=db_url), sessions=session_factory(db_url),
                     client_for=lambda team: None, now=now)
    housekeeping.run(job)
    with session_factory(db_url)() as session:
        assert session.scalars(select(SlackAnswer.subject)).all() == ["CNEW"]
        assert session.scalars(select(SlackChange.subject)).all() == ["UNEW"]


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_rehearsal_compiles_a_first_posts_statements_and_leaves_nothing(
        db: str, request: pytest.FixtureRequest) -> None:
    """A web worker rehearses (sop_core/warmup.py) so that its first command compiles no
    SQL: the kept answers' statements hit the engine's cache afterwards, and without the
    rehearsal they do not."""
    url = request.getfixturevalue(f"{db}_url")
    session_factory(url)  # migrated

    def first_post_misses(rehearsed: bool) -> list[str]:
        engine = create_engine(url)  # its own, empty, statement cache
        if rehearsed:
            with engine.connect() as connection:
                transaction = connection.begin()
                rehearse(connection)
                transaction.rollback()
        misses: list[str] = []

        @event.listens_for(engine, "after_cursor_execute")
        def seen(_conn: object, _cursor: object, statement: str, _parameters: object,
                 context: Any, _many: bool) -> None:
            if context.cache_hit != context.cache_hit.CACHE_HIT:
                misses.append(statement)

        kept = KeptAnswers(engine)
        kept.put("api#a", CHANNEL, "C1", PUBLIC, asked_at=100.0, expires_at=400.0)
        assert kept.get("api#a", CHANNEL, ["C1"], now=101.0) == {"C1": PUBLIC}
        first = list(misses)
        kept.forget_everything()
        engine.dispose()
        return first

    assert first_post_misses(rehearsed=False)  # (the check can fail)
    assert first_post_misses(rehearsed=True) == []
    with session_factory(url)() as session:  # the rehearsal's rows were rolled back
        assert session.scalars(select(SlackAnswer.scope).where(
            SlackAnswer.scope == "warm-up")).all() == []
