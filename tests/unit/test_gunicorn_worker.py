"""The web worker's accept: a busy worker waits before it takes a new connection, so
that a less busy one takes it first (bot/gunicorn_worker.py); and the backlog it reads."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from bot import gunicorn_worker
from bot.gunicorn_worker import LONGEST_WAIT, SECONDS_PER_LISTENER, BalancedThreadWorker
from bot.observability import ContextExecutor
from bot.work_slots import BACKLOG


class Worker(BalancedThreadWorker):
    """The worker's accept alone: no arbiter, the connections it takes kept in a list."""

    def __init__(self, workers: int) -> None:  # (gunicorn's needs an arbiter)
        self.cfg = SimpleNamespace(workers=workers)
        self.nr_conns = 0
        self.taken: list[Any] = []

    def enqueue_req(self, conn: Any) -> None:
        self.taken.append(conn)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(gunicorn_worker.time, "sleep", slept.append)
    return slept


def connect(server: socket.socket) -> socket.socket:
    return socket.create_connection(server.getsockname())


def in_flight(count: int) -> Callable[[], None]:
    for _ in range(count):
        BACKLOG.add()

    def done() -> None:
        for _ in range(count):
            BACKLOG.done()
    return done


@pytest.mark.parametrize(("busy", "workers", "expected"), [
    (0, 2, []),
    (50, 2, [50 * SECONDS_PER_LISTENER]),
    (5_000, 2, [LONGEST_WAIT]),
    (50, 1, []),  # the only worker: nobody else would take it
])
def test_a_worker_waits_by_its_backlog_then_accepts(listener: socket.socket, waits: list[float],
                                                    busy: int, workers: int,
                                                    expected: list[float]) -> None:
    client, done = connect(listener), in_flight(busy)
    try:
        worker = Worker(workers)
        worker.accept(listener)
    finally:
        done()
    assert waits == pytest.approx(expected)
    assert len(worker.taken) == 1 and worker.nr_conns == 1
    worker.taken[0].sock.close()
    client.close()


def test_a_connection_another_worker_took_meanwhile_is_left_to_it(
        listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    other: list[socket.socket] = []
    monkeypatch.setattr(gunicorn_worker.time, "sleep",
                        lambda _: other.append(listener.accept()[0]))  # the other worker
    client, done = connect(listener), in_flight(10)
    try:
        worker = Worker(2)
        worker.accept(listener)  # finds nothing to accept: no error
    finally:
        done()
    assert len(other) == 1 and worker.taken == [] and worker.nr_conns == 0
    other[0].close()
    client.close()


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
