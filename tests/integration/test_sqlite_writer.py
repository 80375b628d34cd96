"""Writers on a SQLite file take turns through a gate, not SQLite's sleeping retries
(sop_core/sqlite_writer.py): across threads, across processes, and the gate is given
back however a transaction ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from sop_core.db import get_engine
from sop_core.sqlite_writer import WriteGate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def database(tmp_path: Path) -> tuple[str, Engine]:
    url = f"sqlite:///{tmp_path / 'gate.db'}"
    engine = get_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    return url, engine


def _write(engine: Engine, value: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})


def _finishes(work: object, timeout: float = 5.0) -> bool:
    thread = threading.Thread(target=work, daemon=True)  # type: ignore[arg-type]
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def test_many_threads_write_in_turn_without_a_locked_error(database: tuple[str, Engine]
                                                          ) -> None:
    _, engine = database
    errors: list[Exception] = []

    def writer(k: int) -> None:
        for i in range(25):
            try:
                with engine.begin() as connection:
                    connection.execute(text("INSERT INTO t (v) VALUES (:v)"),
                                       {"v": f"{k}-{i}"})
                    time.sleep(0.001)  # work inside the transaction, holding the gate
            except Exception as error:
                errors.append(error)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM t")) == 200


def test_the_gate_is_given_back_after_a_failed_write_and_a_rollback(
        database: tuple[str, Engine]) -> None:
    _, engine = database
    _write(engine, "a")
    with pytest.raises(IntegrityError):
        _write(engine, "a")  # the unique key refuses it: the transaction rolls back
    with engine.connect() as connection:  # a write never committed: closed, rolled back
        connection.execute(text("INSERT INTO t (v) VALUES ('b')"))
    assert _finishes(lambda: _write(engine, "c"))  # another thread gets the gate
    with engine.connect() as connection:
        assert connection.scalars(text("SELECT v FROM t ORDER BY v")).all() == ["a", "c"]


def test_a_writer_waiting_for_another_process_goes_through_as_soon_as_it_commits(
        database: tuple[str, Engine]) -> None:
    """Five times, the other process holds a write transaction open for 0.6 s: this
    process's write waits (no "database is locked") and goes through right after the
    other commits. Waiting in SQLite's retries instead, it would wake up to 100 ms late
    (its retries are 100 ms apart once it has waited a quarter of a second)."""
    url, engine = database
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from sqlalchemy import text
        from sop_core.db import get_engine
        engine = get_engine({url!r})
        for k in range(5):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {{"v": f"o{{k}}"}})
                print("holding", flush=True)
                time.sleep(0.6)
            print("committed", time.time(), flush=True)
            sys.stdin.readline()
    """)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdin is not None and holder.stdout is not None
    late = []
    try:
        for k in range(5):
            assert holder.stdout.readline().strip() == "holding"
            _write(engine, f"m{k}")
            done = time.time()
            committed = float(holder.stdout.readline().split()[1])
            late.append(done - committed)
            holder.stdin.write("next\n")
            holder.stdin.flush()
        assert holder.wait(10) == 0
    finally:
        holder.stdin.close()
        holder.stdout.close()
    assert min(late) >= 0  # each waited for the other's commit
    assert sorted(late)[2] < 0.03, late  # … and went on at once
    with engine.connect() as connection:
        assert connection.scalars(text("SELECT v FROM t ORDER BY id")).all() == [
            v for k in range(5) for v in (f"o{k}", f"m{k}")]


def test_a_thread_holding_the_gate_is_not_made_to_wait_for_itself(tmp_path: Path) -> None:
    """A second transaction of the thread that holds the gate (another connection) goes
    on without it, as it would without the gate, instead of waiting for itself."""
    gate = WriteGate(str(tmp_path / "gate.write-lock"))
    assert gate.acquire()
    assert not gate.acquire()  # at once
    other: list[bool] = []
    waiter = threading.Thread(target=lambda: other.append(gate.acquire()), daemon=True)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # another thread waits for it …
    gate.release()
    waiter.join(5)
    assert other == [True]  # … and gets it once released
    gate.release()
