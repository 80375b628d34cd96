"""What housekeeping may delete: old snapshots, and nothing anything still needs.

A snapshot is kept when any of these holds:
- it is the latest of its workspace or the one before it, or the latest load of its source
  in that workspace or the one before it (movement since the last load reads those);
- a trigger point refers to it (the figures it was posted with, or its latest ones);
- a kept snapshot's view holds it (several sources: the other sources' loads);
- it is among the newest ``keep_count`` of its workspace, or younger than ``keep_days``
  (``SOPGAP_KEEP_SNAPSHOTS`` / ``SOPGAP_KEEP_SNAPSHOT_DAYS``; with neither set, all are).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, union
from sqlalchemy.orm import Session

from sop_core.models import Snapshot, TriggerPoint


@dataclass(frozen=True)
class SnapshotRow:
    id: int
    team_id: str
    source_name: str
    loaded_at: datetime
    loads: tuple[int, ...] = ()  # the other sources' loads the view starting here holds


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
        keep.add(team_rows[0].id)
        if len(team_rows) > 1:
            keep.add(team_rows[1].id)  # the latest view's movement reads the one before
        seen: dict[str, int] = {}  # loads seen so far of each source: 1 = latest, 2 = before
        for row in team_rows:
            seen[row.source_name] = seen.get(row.source_name, 0) + 1
            if seen[row.source_name] <= 2:  # a source's latest load and the one before it
                keep.add(row.id)
        if keep_count is not None:
            keep.update(row.id for row in team_rows[:keep_count])
        if keep_days is not None:
            cutoff = now - timedelta(days=keep_days)
            keep.update(row.id for row in team_rows if row.loaded_at >= cutoff)
        by_id = {row.id: row for row in team_rows}
        for kept in list(keep):  # a kept view needs the other sources' loads it holds
            if kept in by_id:
                keep.update(by_id[kept].loads)
        prune.extend(row.id for row in team_rows if row.id not in keep)
    return sorted(prune)


def prune_snapshots(session: Session, *, keep_count: int | None, keep_days: int | None,
                    now: datetime, batch: int = 200) -> int:
    """Delete the snapshots nothing needs (their parts go with them); how many."""
    rows = [SnapshotRow(id_, team, source, loaded, tuple((loads or {}).values()))
            for id_, team, source, loaded, loads in session.execute(
                select(Snapshot.id, Snapshot.team_id, Snapshot.source_name, Snapshot.loaded_at,
                       Snapshot.source_loads))]
    referenced = set(session.scalars(union(select(TriggerPoint.snapshot_id),
                                           select(TriggerPoint.posted_snapshot_id))))
    ids = snapshots_to_prune(rows, referenced=referenced, keep_count=keep_count,
                             keep_days=keep_days, now=now)
    for start in range(0, len(ids), batch):
        # Parts go by the foreign key's ON DELETE CASCADE (SQLite: foreign_keys=ON).
        session.execute(delete(Snapshot).where(Snapshot.id.in_(ids[start:start + batch])))
    return len(ids)
