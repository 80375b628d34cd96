"""Storing a load as a new snapshot.

Apart from :mod:`sop_core.services.data` (gaps, filters: pandas) so that ``sopgap load``
imports neither: a load of a file needs pandas only where another source's rows are
combined with it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from sop_core import load_signal, snapshots
from sop_core.loading import LoadError, PlanningTable
from sop_core.loading.sources import DEFAULT_SOURCE, combine, shared_row
from sop_core.models import Snapshot
from sop_core.periods import Month


@dataclass(frozen=True)
class LoadReport:
    snapshot_id: int
    previous_snapshot_id: int | None
    table: PlanningTable
    unchanged: bool  # same content as the previous snapshot


def store(sessions: sessionmaker[Session], table: PlanningTable, *, team_id: str = "",
          as_of: Month | None = None, new_dimensions: bool = False,
          source: str = DEFAULT_SOURCE) -> LoadReport:
    """Keep ``table`` as the new load of ``source``, in one transaction: the new latest
    view is it together with the latest load of every other source.

    Refused (:class:`LoadError`, nothing stored) when its dimensions differ from the
    latest view's, unless ``new_dimensions`` (a misspelt column, ``categroy``, would
    otherwise become a new dimension and the real one vanish), and when a row key is in
    another source too (it would count twice)."""
    with sessions.begin() as session:
        current = snapshots.latest_of_team(session, team_id)
        if current is not None and not new_dimensions:
            _refuse_other_dimensions(table, tuple(current.dimensions), current.id)
        others = {name: load_id for name, load_id in
                  (snapshots.loads(current) if current is not None else {}).items()
                  if name != source}
        view = table
        if others:
            other_tables = [(name, snapshots.read_load(session, session.get(Snapshot, load_id)))
                            for name, load_id in others.items()]
            for name, other in other_tables:
                shared = shared_row(table, other)
                if shared is not None:
                    raise LoadError(table.source, f"the row {shared} is in source '{source}' "
                                                  f"(this load) and in source '{name}' "
                                                  f"({other.source}): a row key belongs to "
                                                  "one source")
            view = combine([table, *(other for _, other in other_tables)], source=table.source)
        if as_of is not None:
            view = view.replaced(declared_as_of=as_of)
        snapshot = snapshots.save(session, table, team_id=team_id, source_name=source,
                                  others=others, view=view)
        before = snapshots.previous(session, snapshot)
        before_load = snapshots.previous_load(session, snapshot)
        report = LoadReport(
            snapshot_id=snapshot.id,
            previous_snapshot_id=before.id if before is not None else None,
            table=view.replaced(declared_as_of=snapshot.as_of),
            unchanged=before_load is not None
            and before_load.content_hash == snapshot.content_hash,
        )
        bind = session.get_bind()
        load_signal.announce(session.connection())  # told on commit (PostgreSQL)
    snapshots.remember(bind, report.snapshot_id, report.table, team_id)
    return report


def _refuse_other_dimensions(table: PlanningTable, latest: tuple[str, ...],
                             snapshot_id: int) -> None:
    added = [name for name in table.dimensions if name not in latest]
    missing = [name for name in latest if name not in table.dimensions]
    if not added and not missing:
        return
    what = "; ".join(part for part in (
        f"added: {', '.join(added)}" if added else "",
        f"missing: {', '.join(missing)}" if missing else "") if part)
    hint = ""
    for new in added:
        close = difflib.get_close_matches(new, missing, n=1, cutoff=0.6)
        if close:
            hint = f" Is '{new}' a misspelt '{close[0]}'?"
            break
    raise LoadError(table.source, f"the dimension columns differ from the latest snapshot's "
                                  f"(#{snapshot_id}): {what}.{hint} If the change is meant, "
                                  "load again with --new-dimensions")
