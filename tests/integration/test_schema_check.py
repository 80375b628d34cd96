"""The schema check every command does: without importing Alembic when the database is
up to date, and Alembic's own answer otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sop_core import db

REPO = Path(__file__).resolve().parents[2]


def test_the_heads_read_from_the_files_are_alembics() -> None:
    assert db._heads_from_files() == {db.head_revision()}


def test_an_up_to_date_database_is_checked_without_alembic(sqlite_url: str) -> None:
    probe = ("import sys\n"
             "from sop_core import db\n"
             f"db.session_factory({sqlite_url!r})\n"
             "print('ALEMBIC', 'alembic' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert "ALEMBIC False" in result.stdout, result.stdout + result.stderr


def test_an_older_sqlite_database_is_still_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db.upgrade(url, "0003")
    assert not db._up_to_date_without_alembic(url)
    db.session_factory(url)
    assert db.current_revision(url) == db.head_revision()


@pytest.mark.postgres
def test_an_older_postgres_database_asks_for_an_upgrade(postgres_url: str) -> None:
    db.downgrade(postgres_url, "0003")
    try:
        assert not db._up_to_date_without_alembic(postgres_url)
        db.ensure_schema.cache_clear()
        with pytest.raises(db.SchemaNotReady):
            db.ensure_schema(postgres_url)
    finally:
        db.upgrade(postgres_url)
        db.ensure_schema.cache_clear()
