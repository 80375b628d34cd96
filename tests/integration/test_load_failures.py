"""``sopgap load`` when the write cannot happen: the database not answering, its disk
full, no permission to write it. One line naming the cause, "Nothing was loaded; the
latest view is unchanged", exit status 1, no traceback (``--verbose`` shows it)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from bot.cli import app as cli
from sop_core import db
from sop_core.config import get_settings
from sop_core.failures import failure_cause
from sop_core.models import Snapshot

REPO = Path(__file__).parents[2]
SAMPLE = REPO / "sop_core/sample_data/sales_plan.csv"
UNCHANGED = "Nothing was loaded; the latest view is unchanged."


def snapshot_count(url: str) -> int:
    with db.get_sessionmaker(url)() as session:
        return session.scalar(select(func.count()).select_from(Snapshot)) or 0


def sopgap(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPGAP_", "SLACK_"))}
    env.update(DATABASE_URL=url, PYTHONPATH=str(REPO), COLUMNS="80")
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_database_not_answering(tmp_path: Path) -> None:
    url = "postgresql://sopgap@127.0.0.1:9/sopgap"  # nothing listens on port 9
    done = sopgap("load", str(SAMPLE), url=url)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: the database is not answering (OperationalError). {UNCHANGED}"]
    assert "Traceback" not in done.stderr + done.stdout
    verbose = sopgap("--verbose", "load", str(SAMPLE), url=url)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


@pytest.fixture
def loaded(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    assert CliRunner().invoke(cli, ["load", str(SAMPLE)]).exit_code == 0
    return sqlite_url


def test_disk_full(loaded: str) -> None:
    # SQLite's own "database or disk is full" (SQLITE_FULL), made real by capping the file
    # at the pages it has now.
    engine = db.get_engine(loaded)
    engine.dispose()

    @event.listens_for(engine, "connect")
    def cap(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()

    try:
        result = CliRunner().invoke(cli, ["load", str(SAMPLE), "--as-of", "2026-07"])
    finally:
        event.remove(engine, "connect", cap)
        engine.dispose()
    assert result.exit_code == 1
    assert result.output.strip() == f"error: the database's disk is full. {UNCHANGED}"
    assert snapshot_count(loaded) == 1


def test_permission_denied(loaded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same file opened read-only (as a database whose file the user may not write).
    path = loaded.removeprefix("sqlite:///")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    monkeypatch.setenv("DATABASE_URL", read_only)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["load", str(SAMPLE), "--as-of", "2026-07"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: permission denied: the database cannot be written. {UNCHANGED}")
    assert snapshot_count(loaded) == 1


def test_causes_in_words() -> None:
    def wrapped(message: str) -> OperationalError:
        return OperationalError("INSERT …", {}, Exception(message))

    assert failure_cause(wrapped("could not connect to server")) == \
        "the database is not answering (Exception)"
    assert failure_cause(wrapped("could not extend file: No space left on device")) == \
        "the database's disk is full"
    assert failure_cause(wrapped("permission denied for table snapshots")) == \
        "permission denied: the database cannot be written"
    assert failure_cause(OSError(errno.ENOSPC, "No space left on device", "/data/x")) == \
        "the disk is full (/data/x)"
    assert failure_cause(OSError(errno.EACCES, "Permission denied", "plan.csv")) == \
        "permission denied (plan.csv)"
    assert failure_cause(ValueError("x")) is None
