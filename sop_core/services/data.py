"""Loading snapshots and asking for gaps."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

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
from sop_core.loading import LoadError, PlanningTable
from sop_core.loading.sources import DEFAULT_SOURCE, combine, shared_row
from sop_core.models import Snapshot
from sop_core.periods import Month, format_month


class NoRows(FilterError):
    """A horizon, metric or scope the data has no rows for: its gap would read as zero,
    which is not what the data says. The message names what there is."""


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
            view = dataclasses.replace(view, declared_as_of=as_of)
        snapshot = snapshots.save(session, table, team_id=team_id, source_name=source,
                                  others=others, view=view)
        before = snapshots.previous(session, snapshot)
        before_load = snapshots.previous_load(session, snapshot)
        report = LoadReport(
            snapshot_id=snapshot.id,
            previous_snapshot_id=before.id if before is not None else None,
            table=dataclasses.replace(view, declared_as_of=snapshot.as_of),
            unchanged=before_load is not None
            and before_load.content_hash == snapshot.content_hash,
        )
        bind = session.get_bind()
    snapshots.remember(bind, report.snapshot_id, report.table)
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
