"""Shared fixtures: real databases built by the real migrations.

SQLite always; PostgreSQL when ``SOPGAP_TEST_POSTGRES_URL`` points at a server (CI sets
it to the local one). Each xdist worker gets a database of its own; tables are emptied
after each test, because end-to-end tests write from other threads and processes, where
a rolled-back outer transaction could not reach.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.directory import DIRECTORY
from sop_core import db, outbox, snapshots, workspaces
from sop_core.config import get_settings, normalise_database_url
from sop_core.loading import PlanningTable, read_file
from sop_core.models import Base
from sop_core.sample_data import SAMPLE_CSV

# pytest only allows pytest_plugins in the top-level conftest.
pytest_plugins = ["tests.fakeslack.fixtures"]

POSTGRES_ENV = "SOPGAP_TEST_POSTGRES_URL"
KEPT_ENV = {POSTGRES_ENV, "SLACK_OPENAPI_SPEC"}  # test infrastructure, not app settings


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No developer's environment or .env leaks into a test; caches start empty."""
    for name in list(os.environ):
        if name.startswith(("SOPGAP_", "SLACK_")) and name not in KEPT_ENV:
            monkeypatch.delenv(name)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    snapshots.clear_cache()
    outbox.forget_settled()
    # As a single-token deployment whose token is workspace T1's: the shared data is
    # T1's (an app or clock a test starts sets its own).
    workspaces.configure_shared_data(workspaces.SharedDataPolicy(["T1"]))
    DIRECTORY.forget_all()
    yield
    get_settings.cache_clear()
    snapshots.clear_cache()
    outbox.forget_settled()
    DIRECTORY.keep_in(None)  # (the answers kept in the test's database go with it)
    DIRECTORY.forget_all()
    for url in db.engine_urls():
        if url.startswith("sqlite"):  # a test's own file: no later test opens it again
            db.forget(url)
    # Collect this test's garbage now, between tests, and freeze what survives: the
    # collector's full passes otherwise walk every earlier test's survivors, and late
    # in a session they stopped every thread of the process for over a second (a 1 s
    # Slack timeout in tests/e2e/test_slack_faults.py fired on a call with no fault).
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def sample_table() -> PlanningTable:
    return read_file(SAMPLE_CSV)


def _empty_tables(url: str) -> None:
    engine = db.get_engine(url)
    names = [t.name for t in reversed(Base.metadata.sorted_tables)]
    names += ["slack_installations", "slack_bots", "slack_oauth_states"]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                connection.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'test.db'}"
    db.upgrade(url)
    return url


@pytest.fixture(scope="session")
def _postgres_database(worker_id: str) -> Iterator[str]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: set {POSTGRES_ENV}")
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it)")
    admin = make_url(normalise_database_url(base))
    name = f"sopgap_test_{worker_id}_{uuid.uuid4().hex[:6]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)
    db.upgrade(url)
    yield url
    db.get_engine(url).dispose()
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def postgres_url(_postgres_database: str) -> Iterator[str]:
    yield _postgres_database
    _empty_tables(_postgres_database)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs on SQLite and on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(fixture)


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:  # xdist's own fixture wins when present
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Say that the session ran to its end, for .ci/run: a test that ends the process
    itself (``os._exit``, as ``bot.cli.main`` does after some commands) would otherwise
    leave pytest's exit status 0 with the rest of the tests never run."""
    marker = os.environ.get("SOPGAP_TEST_SESSION_MARKER")
    if marker:
        Path(marker).write_text(f"{session.testscollected} collected, exit status "
                                f"{int(exitstatus)}\n")
