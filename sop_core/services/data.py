"""Loading snapshots and asking for gaps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from sop_core import snapshots, workspaces
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
from sop_core.periods import format_month

# Stored from here before: kept importable from here.
from sop_core.services.loads import LoadReport, store  # noqa: F401


class NoRows(FilterError):
    """A horizon, metric or scope the data has no rows for: its gap would read as zero,
    which is not what the data says. The message names what there is."""


class NoData(LookupError):
    """Nothing has been loaded yet (for this workspace)."""

    def __str__(self) -> str:
        return "No planning data has been loaded yet: load a file with `sopgap load PATH`."


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
               snapshot_id: int | None = None, allow_empty: bool = False) -> GapReport:
    """Resolve the filters against the latest view and compute the gap.

    ``explain``: with no ``by=``, pick the dimension that explains most of the gap.
    Raises :class:`FilterError` for input that does not fit the data (:class:`NoRows`
    when nothing matches, unless ``allow_empty``: a watched scope that emptied), or
    :class:`NoData`.
    """
    parsed = parse_filters(filters) if isinstance(filters, str) else filters
    if snapshot_id is None:
        current, before = snapshots.latest_two(session, team_id)
        if current is None:
            raise NoData()
    else:
        current = session.get(snapshots.Snapshot, snapshot_id)
        if current is None or not workspaces.may_read(team_id, current.team_id):
            raise NoData()
        before = snapshots.previous(session, current)
    snapshot_id, table = current.id, snapshots.read(session, current)
    query = resolve(parsed, table, fy_start_month=fy_start_month)
    result, pvm = gap_with_pvm(table, query, fy_start_month=fy_start_month, rule=rule,
                               explain=explain)
    if result.rows == 0 and not allow_empty:
        raise NoRows(why_no_rows(table, query, result))
    query = dataclasses.replace(query, by=result.by)  # explained: the dimension picked
    movement = None
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


def why_no_rows(table: PlanningTable, query: GapQuery, result: GapResult) -> str:
    """What a query that matched no row asked for, and what the data has instead: the
    first of horizon, metric and scope (in that order) that leaves no row."""
    frame = table.frame
    horizon = result.horizon
    months = f"{format_month(horizon.start)}..{format_month(horizon.end)}"
    span = table.periods
    covered = f"{format_month(span[0])}..{format_month(span[1])}" if span else "no months"
    if horizon.is_empty:
        return (f"Horizon {horizon.name} is empty as of {format_month(result.as_of or 0)} "
                f"(the fiscal year is over). The data covers {covered}.")
    period = frame["period"].to_numpy()
    rows = (period >= horizon.start) & (period <= horizon.end)
    if not rows.any():
        return f"No data for horizon {horizon.name} ({months}): the data covers {covered}."
    metric_codes = frame["metric"].array.codes
    metrics = frame["metric"].cat.categories
    in_metric = rows & (metric_codes == metrics.get_loc(result.metric))
    if not in_metric.any():
        there = [str(metrics[c]) for c in np.unique(metric_codes[rows]) if c >= 0]
        return (f"No {result.metric} figures in horizon {horizon.name} ({months}); "
                f"metrics there: {', '.join(there)}.")
    rows, asked = in_metric, [f"metric={result.metric}", f"horizon={horizon.name}"]
    for dimension, members in query.scope.items():
        column = frame[dimension]
        codes = column.array.codes
        wanted = column.cat.categories.get_indexer(list(members))
        matching = rows & np.isin(codes, wanted[wanted >= 0])
        if not matching.any():
            there = [str(column.cat.categories[c]) for c in np.unique(codes[rows]) if c >= 0]
            listed = ", ".join(there[:12]) + (f" and {len(there) - 12} more"
                                              if len(there) > 12 else "")
            return (f"No rows for {dimension}={','.join(members)} with "
                    f"{' '.join(asked)}; {dimension} there: {listed}.")
        rows = matching
        asked.append(f"{dimension}={','.join(members)}")
    return f"No rows for {' '.join(asked)}."  # (not reached: the selection had rows)
