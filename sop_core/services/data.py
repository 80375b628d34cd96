"""Loading snapshots and asking for gaps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from sop_core import snapshots
from sop_core.filters import FilterError, Filters, parse_filters, resolve
from sop_core.gaps import (
    GapQuery,
    GapResult,
    Movement,
    PriceVolumeMix,
    TriggerRule,
    compute_gap,
    gap_with_pvm,
)
from sop_core.loading import PlanningTable
from sop_core.periods import Month


class NoData(LookupError):
    """Nothing has been loaded yet (for this workspace)."""

    def __str__(self) -> str:
        return "No planning data has been loaded yet: load a file with `sopgap load PATH`."


@dataclass(frozen=True)
class LoadReport:
    snapshot_id: int
    previous_snapshot_id: int | None
    table: PlanningTable
    unchanged: bool  # same content as the previous snapshot


def store(sessions: sessionmaker[Session], table: PlanningTable, *, team_id: str = "",
          as_of: Month | None = None) -> LoadReport:
    """Keep ``table`` as a new snapshot, in one transaction."""
    if as_of is not None:
        table = dataclasses.replace(table, declared_as_of=as_of)
    with sessions.begin() as session:
        snapshot = snapshots.save(session, table, team_id=team_id)
        before = snapshots.previous(session, snapshot)
        report = LoadReport(
            snapshot_id=snapshot.id,
            previous_snapshot_id=before.id if before is not None else None,
            table=dataclasses.replace(table, declared_as_of=snapshot.as_of),
            unchanged=before is not None and before.content_hash == snapshot.content_hash,
        )
        bind = session.get_bind()
    snapshots.remember(bind, report.snapshot_id, report.table)
    return report


@dataclass(frozen=True)
class GapReport:
    """A gap with its context: what moved since the last snapshot, PVM, the rule."""

    result: GapResult
    query: GapQuery
    movement: Movement | None
    pvm: PriceVolumeMix | None
    snapshot_id: int
    rule: TriggerRule
    dimensions: tuple[str, ...]


def latest_table(session: Session, team_id: str = "") -> tuple[int, PlanningTable]:
    snapshot = snapshots.latest(session, team_id)
    if snapshot is None:
        raise NoData()
    return snapshot.id, snapshots.read(session, snapshot)


def gap_report(session: Session, filters: Filters | str, *, team_id: str = "",
               rule: TriggerRule, fy_start_month: int = 1, explain: bool = False,
               snapshot_id: int | None = None) -> GapReport:
    """Resolve the filters against the latest view and compute the gap.

    ``explain``: with no ``by=``, pick the dimension that explains most of the gap.
    Raises :class:`FilterError` for input that does not fit the data, :class:`NoData`.
    """
    parsed = parse_filters(filters) if isinstance(filters, str) else filters
    if snapshot_id is None:
        snapshot_id, table = latest_table(session, team_id)
    else:
        snapshot = session.get(snapshots.Snapshot, snapshot_id)
        if snapshot is None or snapshot.team_id not in (team_id, ""):
            raise NoData()
        table = snapshots.read(session, snapshot)
    query = resolve(parsed, table, fy_start_month=fy_start_month)
    result, pvm = gap_with_pvm(table, query, fy_start_month=fy_start_month, rule=rule,
                               explain=explain)
    query = dataclasses.replace(query, by=result.by)  # explained: the dimension picked
    movement = None
    current = session.get(snapshots.Snapshot, snapshot_id)
    before = snapshots.previous(session, current) if current is not None else None
    if before is not None:
        previous_table = snapshots.read(session, before)
        try:
            previous_query = resolve(parsed, previous_table, fy_start_month=fy_start_month)
        except FilterError:
            previous_query = None  # the scope did not exist then: no movement to show
        if previous_query is not None:
            # The same scope and horizon, as the previous view saw them.
            previous_query = dataclasses.replace(previous_query, by=None,
                                                 as_of=previous_table.as_of)
            previous = compute_gap(previous_table, previous_query,
                                   fy_start_month=fy_start_month, rule=rule)
            movement = Movement.between(result, previous)
    return GapReport(result=result, query=query, movement=movement, pvm=pvm,
                     snapshot_id=snapshot_id, rule=rule, dimensions=table.dimensions)
