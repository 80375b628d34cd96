"""What housekeeping may delete: old snapshots, and nothing anything still needs.

A snapshot is kept when any of these holds:
- it is the latest of its workspace, or the latest of its source in that workspace
  (several sources may feed one workspace; each one's latest is part of the view);
- it is the one before a kept latest (the movement since the last load reads it);
- a trigger point refers to it (the figures it was posted with, or its latest ones);
- it is among the newest ``keep_count`` of its workspace, or younger than ``keep_days``
  (``SOPGAP_KEEP_SNAPSHOTS`` / ``SOPGAP_KEEP_SNAPSHOT_DAYS``; with neither set, all are).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy import delete, select, union
from sqlalchemy.orm import Session

from sop_core.models import Snapshot, TriggerPoint


@dataclass(frozen=True)
class SnapshotRow:
    id: int
    team_id: str
    source: str
    loaded_at: datetime


def snapshots_to_prune(rows: Iterable[SnapshotRow], *, referenced: set[int],
                       keep_count: int | None, keep_days: int | None,
                       now: datetime) -> list[int]:
    """The ids to delete (pure: no database)."""
    if keep_count is None and keep_days is None:
        return []
    by_team: dict[str, list[SnapshotRow]] = defaultdict(list)
    for row in rows:
        by_team[row.team_id].append(row)
    prune = []
    for team_rows in by_team.values():
        team_rows.sort(key=lambda row: row.id, reverse=True)  # newest first
        keep = set(referenced)
        latest_of_source: dict[str, int] = {}
        for row in team_rows:
            latest_of_source.setdefault(row.source, row.id)
        keep.update(latest_of_source.values())
        keep.add(team_rows[0].id)
        for newer, older in pairwise(team_rows):
            if newer.id in latest_of_source.values():
                keep.add(older.id)  # the movement of a latest view reads the one before
        if keep_count is not None:
            keep.update(row.id for row in team_rows[:keep_count])
        if keep_days is not None:
            cutoff = now - timedelta(days=keep_days)
            keep.update(row.id for row in team_rows if row.loaded_at >= cutoff)
        prune.extend(row.id for row in team_rows if row.id not in keep)
    return sorted(prune)


def prune_snapshots(session: Session, *, keep_count: int | None, keep_days: int | None,
                    now: datetime, batch: int = 200) -> int:
    """Delete the snapshots nothing needs (their Parquet parts go with them); how many."""
    rows = [SnapshotRow(*row) for row in session.execute(
        select(Snapshot.id, Snapshot.team_id, Snapshot.source, Snapshot.loaded_at))]
    referenced = set(session.scalars(union(select(TriggerPoint.snapshot_id),
                                           select(TriggerPoint.posted_snapshot_id))))
    ids = snapshots_to_prune(rows, referenced=referenced, keep_count=keep_count,
                             keep_days=keep_days, now=now)
    for start in range(0, len(ids), batch):
        # Parts go by the foreign key's ON DELETE CASCADE (SQLite: foreign_keys=ON).
        session.execute(delete(Snapshot).where(Snapshot.id.in_(ids[start:start + batch])))
    return len(ids)
