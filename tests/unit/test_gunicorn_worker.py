"""The web workers' accept: a worker busier than another waits before it takes a new
connection, so that the less busy one takes it first (bot/gunicorn_worker.py); and the
backlog each one reads and shares."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bot import gunicorn_worker
from bot.gunicorn_worker import (
    ABSENT,
    BACKLOGS,
    LONGEST_WAIT,
    SECONDS_PER_COMMAND,
    BalancedThreadWorker,
    give_row,
    take_back_row,
    wait_before_accepting,
)
from bot.observability import ContextExecutor
from bot.work_slots import BACKLOG


class Worker(BalancedThreadWorker):
    """The worker's accept alone (gunicorn's own needs an arbiter); the connections it
    takes are kept in a list."""

    def __init__(self, age: int) -> None:
        self.age, self.cfg = age, None
        self.nr_conns = 0
        self.taken: list[Any] = []

    def enqueue_req(self, conn: Any) -> None:
        self.taken.append(conn)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Two workers given their rows by the master, as gunicorn's pre_fork hook does."""
    forked = [Worker(age) for age in (1, 2)]
    for worker in forked:
        give_row(worker)
    yield forked
    for worker in forked:
        take_back_row(worker)
    assert all(value == ABSENT for value in BACKLOGS)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


def test_only_a_worker_busier_than_another_waits(workers: list[Worker]) -> None:
    one, other = (worker.backlog_row for worker in workers)
    assert one is not None and other is not None and one != other
    assert wait_before_accepting(one, 40) == 0.0  # the other has not taken any yet
    assert BACKLOGS[one] == 40
    assert wait_before_accepting(other, 10) == 0.0  # the least busy: at once
    assert wait_before_accepting(one, 40) == pytest.approx(30 * SECONDS_PER_COMMAND)
    assert wait_before_accepting(one, 10) == 0.0  # as busy: no wait (a burst)
    assert wait_before_accepting(one, 5_000) == LONGEST_WAIT
    take_back_row(workers[1])  # the other exits (restarting): nobody else to take it
    assert wait_before_accepting(one, 5_000) == 0.0
    assert wait_before_accepting(None, 5_000) == 0.0  # no row: not balanced


def test_a_row_given_back_goes_to_the_next_worker(workers: list[Worker]) -> None:
    first_row = workers[0].backlog_row
    take_back_row(workers[0])
    replacement = Worker(3)
    give_row(replacement)
    assert replacement.backlog_row == first_row
    take_back_row(replacement)


def test_a_busier_worker_waits_then_takes_the_connection_nobody_took(
        workers: list[Worker], listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(gunicorn_worker.time, "sleep", slept.append)
    wait_before_accepting(workers[1].backlog_row, 0)
    client = socket.create_connection(listener.getsockname())
    for _ in range(50):
        BACKLOG.add()
    try:
        workers[0].accept(listener)
    finally:
        for _ in range(50):
            BACKLOG.done()
    assert slept == pytest.approx([50 * SECONDS_PER_COMMAND])
    assert len(workers[0].taken) == 1 and workers[0].nr_conns == 1
    workers[0].taken[0].sock.close()
    client.close()


def test_a_connection_the_other_worker_took_meanwhile_is_left_to_it(
        workers: list[Worker], listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gunicorn_worker.time, "sleep",
                        lambda _: workers[1].accept(listener))  # the less busy one, meanwhile
    wait_before_accepting(workers[1].backlog_row, 0)
    client = socket.create_connection(listener.getsockname())
    for _ in range(10):
        BACKLOG.add()
    try:
        workers[0].accept(listener)  # finds nothing left to accept: no error
    finally:
        for _ in range(10):
            BACKLOG.done()
    assert workers[0].taken == [] and workers[0].nr_conns == 0
    assert len(workers[1].taken) == 1
    workers[1].taken[0].sock.close()
    client.close()


def test_the_table_is_shared_with_forked_workers(workers: list[Worker]) -> None:
    row = workers[0].backlog_row
    assert row is not None
    child = os.fork()
    if child == 0:  # a worker forked by the master writes its backlog
        BACKLOGS[row] = 17
        os._exit(0)
    os.waitpid(child, 0)
    assert BACKLOGS[row] == 17  # the master, and every other worker, see it


def test_the_backlog_counts_listeners_from_submission_to_their_end() -> None:
    before = BACKLOG.count
    release = threading.Event()
    with ContextExecutor(max_workers=1) as pool:
        running = pool.submit(release.wait)
        queued = pool.submit(lambda: 1 / 0)  # waits for the thread, then fails
        assert BACKLOG.count == before + 2
        release.set()
        running.result()
        with pytest.raises(ZeroDivisionError):
            queued.result()
    assert BACKLOG.count == before


def test_a_worker_that_stops_leaves_its_row_absent(workers: list[Worker],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    worker = workers[0]
    assert worker.backlog_row is not None
    BACKLOGS[worker.backlog_row] = 3
    monkeypatch.setattr(gunicorn_worker.ThreadWorker, "run", lambda self: None)
    worker.run()
    assert BACKLOGS[worker.backlog_row] == ABSENT
