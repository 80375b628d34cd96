"""One engine per database URL for a process's life, and ``forget`` for a database that
goes away first (sop_core/db.py): its pool closed, everything made for it dropped."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from sop_core import db


def test_one_engine_per_url_until_it_is_forgotten(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gone.db'}"
    engine = db.get_engine(url)
    assert db.get_engine(url) is engine and url in db.engine_urls()
    sessions = db.get_sessionmaker(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    pool = engine.pool
    assert pool.checkedin() == 1  # a pooled connection holds the file open

    db.forget(url)

    assert url not in db.engine_urls()
    assert pool.checkedin() == 0  # closed, not left to the collector
    assert db.get_engine(url) is not engine
    assert db.get_sessionmaker(url) is not sessions
    assert db.get_sessionmaker(url).kw["bind"] is db.get_engine(url)


def test_forgetting_an_unknown_url_changes_nothing(tmp_path: Path) -> None:
    kept = f"sqlite:///{tmp_path / 'kept.db'}"
    engine = db.get_engine(kept)
    db.forget(f"sqlite:///{tmp_path / 'never.db'}")
    assert db.get_engine(kept) is engine
