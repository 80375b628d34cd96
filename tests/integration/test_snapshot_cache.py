"""The decoded views a process keeps (sop_core/snapshots.py): a workspace's commands never
evict another workspace's latest views; memory stays bounded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from sop_core import snapshots
from sop_core.db import get_engine, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import Snapshot
from sop_core.services.data import store


@contextmanager
def parts_read(url: str) -> Iterator[list[str]]:
    """The statements that read a snapshot's rows (a decode) while the block runs."""
    reads: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "snapshot_parts" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield reads
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def read(url: str, snapshot_id: int) -> PlanningTable:
    with session_factory(url)() as session:
        snapshot = session.get(Snapshot, snapshot_id)
        assert snapshot is not None
        return snapshots.read(session, snapshot)


def test_two_workspaces_with_data_of_their_own_keep_their_latest_views(
        db_url: str, sample_table: PlanningTable) -> None:
    """Commands of two workspaces, each asking for its latest view and the one before
    (movement): after the first round, no view is decoded again. With one count of three
    views for every workspace, each read evicted a view the other workspace read next."""
    sessions = session_factory(db_url)
    views = [store(sessions, sample_table, team_id=team).snapshot_id
             for team in ("T1", "T2") for _ in range(2)]
    snapshots.clear_cache()
    for snapshot_id in views:  # the first round decodes each view once
        read(db_url, snapshot_id)
    with parts_read(db_url) as reads:
        for _ in range(3):
            for snapshot_id in views:
                read(db_url, snapshot_id)
    assert reads == []
    assert all(snapshots.is_decoded(get_engine(db_url), snapshot_id) for snapshot_id in views)


def test_a_workspace_keeps_three_views_and_a_new_load_evicts_only_its_own(
        db_url: str, sample_table: PlanningTable) -> None:
    sessions = session_factory(db_url)
    other = store(sessions, sample_table, team_id="T2").snapshot_id
    own = [store(sessions, sample_table, team_id="T1").snapshot_id
           for _ in range(snapshots.CACHE_PER_WORKSPACE + 1)]
    snapshots.clear_cache()
    for snapshot_id in (other, *own):
        read(db_url, snapshot_id)
    engine = get_engine(db_url)
    assert snapshots.is_decoded(engine, other)
    assert not snapshots.is_decoded(engine, own[0])  # T1's least recently used
    assert all(snapshots.is_decoded(engine, snapshot_id) for snapshot_id in own[1:])
    # A load keeps its table (the store remembers it): T1's next oldest goes, not T2's.
    newest = store(sessions, sample_table, team_id="T1").snapshot_id
    assert snapshots.is_decoded(engine, newest)
    assert snapshots.is_decoded(engine, other)
    assert not snapshots.is_decoded(engine, own[1])


def test_many_workspaces_keep_no_more_views_than_the_bound(
        sqlite_url: str, sample_table: PlanningTable, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory: past the bound in all, the least recently used view goes, whoever's."""
    monkeypatch.setattr(snapshots, "_cache", snapshots._TableCache(3, most=4))
    sessions = session_factory(sqlite_url)
    views = [store(sessions, sample_table, team_id=f"T{n}").snapshot_id for n in range(6)]
    engine = get_engine(sqlite_url)
    assert [snapshots.is_decoded(engine, snapshot_id) for snapshot_id in views] == [
        False, False, True, True, True, True]
    read(sqlite_url, views[2])  # used again: the next to go is T3's
    store(sessions, sample_table, team_id="T6")
    assert snapshots.is_decoded(engine, views[2])
    assert not snapshots.is_decoded(engine, views[3])
