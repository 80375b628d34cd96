"""Each web worker decodes the latest view after boot and after each load, in the
background, before a command needs it (sop_core/warmup.py)."""

from __future__ import annotations

import gc
import weakref

from sqlalchemy import event, func, select

from sop_core import snapshots
from sop_core.db import get_engine, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import TriggerPoint
from sop_core.services.data import store
from sop_core.warmup import SnapshotWarmer, settle_heap
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
        second = store(session_factory(db_url), sample_table).snapshot_id
        snapshots.clear_cache()
        eventually(lambda: snapshots.is_decoded(engine, second))
        # ... with the one before it, for the movement since the last snapshot.
        eventually(lambda: snapshots.is_decoded(engine, first))
        # No command was needed for any of it, and it left nothing behind (the
        # rehearsal of a trigger point's record is rolled back).
        assert slack.calls_to("chat.postMessage") == []
        warmer.stop()
        warmer.thread.join(timeout=5)
    assert _trigger_points(db_url) == 0


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
