"""Engines, sessions and migrations.

The schema is always built by the Alembic migrations (never ``create_all``), so tests,
the demo and production run the same DDL. The default SQLite database migrates itself
on first use so that ``sopgap demo`` needs no setup step; PostgreSQL is migrated by the
``release`` process (``sopgap db upgrade``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Executable, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sop_core import sqlite_writer

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_upgrade_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets the web app read while the clock or a load writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


_engines: dict[str, Engine] = {}  # one per URL for the process's life; see forget()
_engines_lock = threading.Lock()


def get_engine(url: str) -> Engine:
    engine = _engines.get(url)
    if engine is None:
        with _engines_lock:
            engine = _engines.get(url) or _engines.setdefault(url, _create_engine(url))
    return engine


def engine_urls() -> list[str]:
    """The URLs this process has an engine for."""
    return list(_engines)


def forget(url: str) -> None:
    """Close ``url``'s pool and drop its engine (with the statements compiled for it)
    and the session factories made on it: for a database that goes away before the
    process does. A test session makes a database per test; keeping each engine made
    the heap grow by thousands of objects a test, and the collector's full passes grew
    with it past a second, stalling every thread of the process."""
    with _engines_lock:
        engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()
    for cached in (get_sessionmaker, autocommit_sessionmaker, ensure_schema):
        cached.cache_clear()  # keyed by URL too, and cheap to make again


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
        event.listen(engine, "connect", _sqlite_pragmas)
        if parsed.database and parsed.database != ":memory:" and \
                not parsed.database.startswith("file:"):
            sqlite_writer.install(engine, parsed.database)  # writers in turn, no sleeping
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


@cache
def get_sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@cache
def autocommit_sessionmaker(url: str) -> sessionmaker[Session]:
    """Sessions whose every statement commits on its own (the same pool): for a step
    that is one statement, or reads that need not agree with each other. No BEGIN and
    COMMIT (or ROLLBACK) around them: on PostgreSQL two round trips fewer each."""
    return sessionmaker(get_engine(url).execution_options(isolation_level="AUTOCOMMIT"),
                        expire_on_commit=False)


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    config = alembic_config(url)
    with get_engine(url).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    config = alembic_config(url)
    with get_engine(url).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


class SchemaNotReady(RuntimeError):
    pass


_REVISION_LINE = re.compile(r"^revision(?:: [^=]+)? = ['\"](\w+)['\"]", re.MULTILINE)
_DOWN_REVISION_LINE = re.compile(r"^down_revision(?:: [^=]+)? = (.+)$", re.MULTILINE)


def _heads_from_files() -> set[str] | None:
    """The head revisions, read straight from the migration files: importing Alembic
    is half a second of every CLI command's start-up. ``None`` when a file does not
    read plainly (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        script = path.read_text(encoding="utf-8")
        revision, down = _REVISION_LINE.search(script), _DOWN_REVISION_LINE.search(script)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        parents.update(re.findall(r"['\"](\w+)['\"]", down.group(1)))
    return (revisions - parents) or None


def _up_to_date_without_alembic(url: str) -> bool:
    """The database is stamped with exactly the heads of the migration files."""
    heads = _heads_from_files()
    if heads is None:
        return False
    try:
        with get_engine(url).connect() as connection:
            stamped = set(connection.scalars(text("SELECT version_num FROM alembic_version")))
    except DBAPIError:  # no such table yet, or the database away: Alembic's path says
        return False
    return stamped == heads


@cache
def ensure_schema(url: str) -> None:
    """Migrate SQLite on first use; ask for ``sopgap db upgrade`` elsewhere."""
    with _upgrade_lock:
        if _up_to_date_without_alembic(url) or current_revision(url) == head_revision():
            return
        if make_url(url).get_backend_name() == "sqlite":
            log.info("migrating the SQLite database to the latest schema")
            upgrade(url)
            return
        raise SchemaNotReady("the database schema is not up to date: run `sopgap db upgrade`")


def session_factory(url: str) -> sessionmaker[Session]:
    ensure_schema(url)
    return get_sessionmaker(url)


# --------------------------------------------------------------------------------------
# Idempotent writes (redelivered events, two clocks), on SQLite and PostgreSQL
# --------------------------------------------------------------------------------------

@contextmanager
def core_connection(sessions: sessionmaker[Session]) -> Iterator[Connection]:
    """A connection of the sessions' engine in a transaction of its own, for Core
    statements: a single INSERT or UPDATE costs a tenth of the CPU it costs through an
    ORM session (no unit of work, no ORM compile state). Sessions bound to a connection
    already in a transaction (a rehearsal, a test's) run on it, inside that transaction."""
    bind = sessions.kw["bind"]
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.begin() as connection:
        yield connection


def dialect_insert(session: Session | Connection) -> Any:
    """The dialect's INSERT with ON CONFLICT, or None for other databases."""
    dialect = (session.dialect if isinstance(session, Connection)
               else session.get_bind().dialect).name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        return None
    return insert


def insert_ignore(session: Session | Connection, model: type, key: Sequence[str], /,
                  **values: Any) -> bool:
    """Insert a row unless one with the same ``key`` exists; True if it was new. A Core
    statement, built once per model: on a Connection (see :func:`core_connection`) no
    ORM session is involved at all."""
    insert = dialect_insert(session)
    table = model.__table__  # type: ignore[attr-defined]
    if insert is not None:
        # RETURNING, not rowcount: drivers disagree on rowcount for DO NOTHING.
        return session.execute(_ignoring_insert(insert, table, tuple(key)),
                               values).first() is not None
    try:  # any other database: a savepoint, and the unique constraint decides
        with session.begin_nested():
            session.execute(table.insert(), values)
        return True
    except IntegrityError:
        return False


@cache
def _ignoring_insert(insert: Any, table: Any, key: tuple[str, ...]) -> Executable:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the primary key, built (and compiled)
    once; the values come as parameters."""
    return insert(table).on_conflict_do_nothing(index_elements=list(key)).returning(
        *table.primary_key.columns)


def upsert(session: Session | Connection, model: type, key: Sequence[str],
           update: Sequence[str], /, **values: Any) -> None:
    """Insert a row, or set the ``update`` columns of the one with the same ``key``. A
    Core statement built once per model, key and columns, as :func:`insert_ignore`'s."""
    insert = dialect_insert(session)
    table = model.__table__  # type: ignore[attr-defined]
    if insert is not None:
        session.execute(_upserting_insert(insert, table, tuple(key), tuple(update)), values)
        return
    if not insert_ignore(session, model, key, **values):
        session.execute(table.update().where(*(table.c[k] == values[k] for k in key))
                        .values({name: values[name] for name in update}))


@cache
def _upserting_insert(insert: Any, table: Any, key: tuple[str, ...],
                      update: tuple[str, ...]) -> Executable:
    """INSERT … ON CONFLICT (key) DO UPDATE SET the ``update`` columns, built once."""
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(key), set_={name: statement.excluded[name] for name in update})
