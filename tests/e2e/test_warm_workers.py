"""Each web worker decodes the latest view after boot and after each load, in the
background, before a command needs it (sop_core/warmup.py)."""

from __future__ import annotations

import gc
import json
import logging
import os
import select as readiness
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from bot import server
from sop_core import load_signal, snapshots
from sop_core.db import forget, get_engine, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import Snapshot, TriggerPoint
from sop_core.sample_data import SAMPLE_CSV
from sop_core.services.data import store
from sop_core.warmup import POOLED_AHEAD, SnapshotWarmer, settle_heap
from tests.e2e.conftest import SIGNING_SECRET, app_settings, serve_app
from tests.e2e.slack_sim import SlackSim
from tests.e2e.waiting import eventually
from tests.fakeslack import FakeSlack


def test_the_latest_view_is_decoded_after_boot_and_after_a_load(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    engine = get_engine(db_url)
    first = store(session_factory(db_url), sample_table).snapshot_id
    snapshots.clear_cache()  # as in a worker that just booted
    with serve_app(app_settings(db_url, slack), warm_up=True) as running:
        # The app was built (as gunicorn builds it before a worker accepts) only once
        # the latest view was decoded: no request waits for it.
        assert snapshots.is_decoded(engine, first)
        warmer = running.server.get_app().warmer  # type: ignore[attr-defined]
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        assert sim.get("/healthz").status == 200
        # A load by another process (`sopgap load`): this one has not seen its table.
        second = load_in_another_process(db_url)
        eventually(lambda: snapshots.is_decoded(engine, second))
        # ... with the one before it, for the movement since the last snapshot.
        eventually(lambda: snapshots.is_decoded(engine, first))
        # No command was needed for any of it, and it left nothing behind (the
        # rehearsal of a trigger point's record is rolled back).
        assert slack.calls_to("chat.postMessage") == []
        warmer.stop()
        warmer.thread.join(timeout=5)
    assert _trigger_points(db_url) == 0


def load_in_another_process(db_url: str) -> int:
    """``sopgap load`` of the sample file, as a user runs it; the new snapshot's id."""
    subprocess.run([sys.executable, "-m", "bot.cli", "load", str(SAMPLE_CSV)],
                   env={**os.environ, "DATABASE_URL": db_url}, check=True,
                   stdout=subprocess.DEVNULL)
    with session_factory(db_url)() as session:
        newest = session.scalar(select(func.max(Snapshot.id)))
    assert newest is not None
    return newest


def test_a_load_is_warmed_as_soon_as_it_commits(db_url: str, slack: FakeSlack,
                                                sample_table: PlanningTable) -> None:
    """The load tells the warmer (sop_core/load_signal.py): looking only every 30 s, it
    still has the new view decoded within moments."""
    engine = get_engine(db_url)
    store(session_factory(db_url), sample_table)
    warmer = SnapshotWarmer(session_factory(db_url), app_settings(db_url, slack),
                            interval=30).start(wait=30)
    try:
        second = load_in_another_process(db_url)
        eventually(lambda: snapshots.is_decoded(engine, second), timeout=10)
    finally:
        warmer.stop()
        assert warmer.thread is not None
        warmer.thread.join(timeout=5)
    assert not warmer.thread.is_alive()  # told to stop, it does not sleep out its 30 s


def test_a_worker_listens_for_loads_before_its_first_command(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher's connection (on PostgreSQL, a new backend) is made before the warmer
    says it is ready, not beside the first command after a restart."""
    store(session_factory(db_url), sample_table)
    returned = threading.Event()  # start() has returned: the worker takes requests
    made_before_ready: list[bool] = []
    make_watcher = load_signal.watcher

    def slow_to_connect(*args: Any) -> load_signal.Watcher:
        time.sleep(0.2)  # a connection that takes its time
        made = make_watcher(*args)
        made_before_ready.append(not returned.is_set())
        return made

    monkeypatch.setattr(load_signal, "watcher", slow_to_connect)
    warmer = SnapshotWarmer(session_factory(db_url), app_settings(db_url, slack),
                            interval=30).start(wait=30)
    returned.set()
    try:
        eventually(lambda: made_before_ready, timeout=10)
        assert made_before_ready == [True]
    finally:
        warmer.stop()
        assert warmer.thread is not None
        warmer.thread.join(timeout=5)


def test_after_a_load_the_warmer_prepares_the_new_view_and_runs_no_gap(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A process's first warm-up runs gaps (its code's first runs, each dimension's
    lookup); after a load the new view and the one before it are decoded with their
    per-table work done, and no gap runs: gaps held the interpreter lock while the first
    commands after the load waited."""
    from sop_core.services import data

    sessions = session_factory(db_url)
    warmer = SnapshotWarmer(sessions, app_settings(db_url, slack))
    gaps: list[int | None] = []
    gap_report = data.gap_report

    def counted(*args: Any, **kw: Any) -> Any:
        gaps.append(kw.get("snapshot_id"))
        return gap_report(*args, **kw)

    monkeypatch.setattr(data, "gap_report", counted)
    first = store(sessions, sample_table).snapshot_id
    snapshots.clear_cache()
    assert warmer.warm_once() == [first]
    assert gaps and set(gaps) == {first}
    gaps.clear()
    second = store(sessions, sample_table).snapshot_id
    snapshots.clear_cache()  # (store() kept its table: as in another process)
    assert warmer.warm_once() == [second] and gaps == []
    engine = get_engine(db_url)
    assert snapshots.is_decoded(engine, second)
    assert snapshots.is_decoded(engine, first)  # a gap's movement reads it
    with sessions() as session:
        table = snapshots.read(session, session.get(Snapshot, second))
    done = table.__dict__
    assert {"as_of", "periods", "sorted_by_period", "items"} <= set(done)
    assert set(done.get("_category_lookups", {})) >= set(table.dimensions)


def test_a_look_for_a_new_load_warms_only_what_is_new(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    """The warmer looks four times a second: a look that finds no new snapshot warms
    nothing; a load for another workspace, or a second one, is found at the next look."""
    sessions = session_factory(db_url)
    warmer = SnapshotWarmer(sessions, app_settings(db_url, slack))
    assert warmer.warm_once() == []  # nothing loaded yet
    shared = store(sessions, sample_table).snapshot_id
    assert warmer.warm_once() == [shared]
    statements: list[str] = []
    count = lambda *args: statements.append(args[2])  # noqa: E731 (before_cursor_execute)
    event.listen(get_engine(db_url), "before_cursor_execute", count)
    try:
        assert warmer.warm_once() == []
    finally:
        event.remove(get_engine(db_url), "before_cursor_execute", count)
    assert len(statements) == 1, statements  # a look that finds nothing new: one query
    own = store(sessions, sample_table, team_id="T2").snapshot_id
    snapshots.clear_cache()
    assert warmer.warm_once() == [own]
    assert snapshots.is_decoded(get_engine(db_url), own)
    assert not snapshots.is_decoded(get_engine(db_url), shared)  # warmed before, not again
    again = store(sessions, sample_table).snapshot_id
    assert warmer.warm_once() == [again]
    assert warmer.warm_once() == []


def test_the_warm_up_filters_on_a_member_of_each_dimension(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    """Commands mostly ask for part of the data: the warm-up's filtered gaps leave each
    dimension's member lookup built (sop_core/loading/table.py), so that a first
    ``/gap region=EU`` does not build it."""
    sessions = session_factory(db_url)
    snapshot_id = store(sessions, sample_table).snapshot_id
    snapshots.clear_cache()
    assert SnapshotWarmer(sessions, app_settings(db_url, slack)).warm_once() == [snapshot_id]
    with sessions() as session:
        table = snapshots.read(session, session.get(Snapshot, snapshot_id))
    assert set(table.__dict__.get("_category_lookups", {})) >= set(table.dimensions)


def test_a_worker_opens_its_pool_before_its_first_command(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    """A command can hold a few connections at once; the first one should not wait for
    PostgreSQL to start a backend for each."""
    sessions = session_factory(db_url)
    store(sessions, sample_table)
    get_engine(db_url).dispose()  # as in a worker just forked: an empty pool
    SnapshotWarmer(sessions, app_settings(db_url, slack)).warm_once()
    assert get_engine(db_url).pool.checkedin() >= POOLED_AHEAD


@pytest.fixture
def forgetting_preheat(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """preheat() freezes this process's heap and remembers its database: undo both."""
    monkeypatch.setattr(server, "_preheated", {})
    gc.unfreeze()  # (an earlier test's warm-up may have frozen it)
    yield
    gc.unfreeze()


# (Python 3.12+ warns about forking a process with threads: here, pyarrow's, as in
# gunicorn's master after its preheat; Arrow rebuilds its pool in the child.)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_workers_forked_after_a_preheat_start_with_the_views_decoded(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable,
        forgetting_preheat: None) -> None:
    """gunicorn's master warms the latest view before it forks (bot/gunicorn_conf.py:
    when_ready): a worker finds it decoded, reads no snapshot part, does not run its
    gaps by each dimension again, and is ready; no database connection crosses the fork.
    The worker can still decode a view itself (a later load), with pyarrow's threads,
    which the master's decode had started."""
    engine = get_engine(db_url)
    snapshot_id = store(session_factory(db_url), sample_table).snapshot_id
    snapshots.clear_cache()  # a master that just started
    settings = app_settings(db_url, slack)
    server.preheat(settings)
    assert server._preheated == {db_url: (snapshot_id,)}
    assert snapshots.is_decoded(engine, snapshot_id)
    assert engine.pool.checkedin() == 0  # the pool was emptied before the fork
    assert gc.get_freeze_count() > 0  # the heap the workers share is settled
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        outcome: dict[str, object] = {}
        try:
            parts: list[str] = []
            event.listen(engine, "before_cursor_execute",
                         lambda *args: parts.append(args[2]) if "snapshot_parts" in args[2]
                         else None)
            by_dimension: list[int] = []
            SnapshotWarmer._by_each_dimension = (  # type: ignore[method-assign]
                lambda _self, _session, report, *_args, **_kw:
                by_dimension.append(report.snapshot_id))
            app = server.create_wsgi_app(settings, warm_up=True, settle_heap=True)
            app.warmer.stop()  # type: ignore[attr-defined]
            outcome = {"decoded": snapshots.is_decoded(engine, snapshot_id),
                       "parts_read": len(parts), "gaps_by_dimension": len(by_dimension)}
            snapshots.clear_cache()
            with session_factory(db_url)() as session:
                table = snapshots.read(session, session.get(Snapshot, snapshot_id))
            outcome["decoded_again"] = table.rows == sample_table.rows
        except BaseException as error:  # told to the parent, which fails the test
            outcome = {"error": repr(error)}
        finally:
            os.write(writing, json.dumps(outcome).encode())
            os._exit(0)
    os.close(writing)
    ready: list[int] = []
    try:
        ready, _, _ = readiness.select([reading], [], [], 60)
        assert ready, "the forked worker hung"
        with os.fdopen(reading) as pipe:
            outcome = json.loads(pipe.read() or "{}")
    finally:
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert outcome == {"decoded": True, "parts_read": 0, "gaps_by_dimension": 0,
                       "decoded_again": True}


def test_a_preheat_that_fails_leaves_the_workers_to_warm_themselves(
        tmp_path: Path, slack: FakeSlack, forgetting_preheat: None,
        caplog: pytest.LogCaptureFixture) -> None:
    """The master never fails to start for its warm-up: a database that does not answer
    is a warning, and each worker warms its own view as before."""
    settings = app_settings(f"sqlite:///{tmp_path / 'missing' / 'sopgap.db'}", slack)
    try:
        with caplog.at_level(logging.WARNING, logger="bot.server"):
            server.preheat(settings)
    finally:
        forget(settings.database_url)
    assert "each worker warms its own" in caplog.text
    assert server._preheated == {}
    assert gc.get_freeze_count() == 0


def test_a_preheat_with_nothing_loaded_leaves_the_workers_to_settle_their_heap(
        db_url: str, slack: FakeSlack, forgetting_preheat: None) -> None:
    """Nothing decoded in the master: a worker settles its own heap after its first
    warm-up, once a load comes."""
    server.preheat(app_settings(db_url, slack))
    assert server._preheated == {}


def _trigger_points(db_url: str) -> int:
    with session_factory(db_url)() as session:
        return session.scalar(select(func.count()).select_from(TriggerPoint)) or 0


def test_settling_the_heap_collects_garbage_then_freezes_the_rest() -> None:
    """After a warm-up a worker's heap is frozen, so that the collector's full passes no
    longer walk the decoded snapshot; garbage cycles (a replaced snapshot's) go first."""
    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage  # type: ignore[attr-defined]
    gone = weakref.ref(garbage)
    del garbage
    try:
        settle_heap()
        assert gone() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
