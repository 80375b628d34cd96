"""Reading a file of any supported type into a validated planning table."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from sop_core.loading.csv_reader import _read_csv
from sop_core.loading.parquet_reader import _read_parquet
from sop_core.loading.table import (
    BLANK_MEMBER,
    MEASURES,
    LoadError,
    PlanningTable,
    ProgressCallback,
)
from sop_core.loading.validate import _row_key, normalise
from sop_core.loading.xlsx_reader import _read_xlsx
from sop_core.periods import format_month

DECIMAL_MARKS = (".", ",")


def read_file(path: str | Path, *, metric: str | None = None,
              progress: ProgressCallback | None = None, decimal: str | None = None,
              ignore_columns: Collection[str] = ()) -> PlanningTable:
    """Read a CSV/TSV, XLSX or Parquet file into a validated :class:`PlanningTable`.

    ``decimal``: the decimal mark of numbers written as text, when the file leaves it
    ambiguous (default: found from the values). ``ignore_columns``: left out."""
    path = Path(path)
    source = path.name
    if not path.is_file():
        raise LoadError(str(path), "no such file")
    if path.stat().st_size == 0:
        raise LoadError(source, "the file is empty")
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".parquet", ".pq"}:
        raise LoadError(source, f"unsupported file type '{suffix or path.name}': "
                                "use .csv, .tsv, .xlsx or .parquet")
    if decimal is not None and decimal not in DECIMAL_MARKS:
        raise LoadError(source, f"--decimal {decimal!r}: use . or ,")
    report = progress or (lambda _stage, _fraction: None)
    report("reading", 0.0)
    if suffix in {".xlsx", ".xlsm"}:  # at most 1,048,576 rows: memory is no concern
        table, notes = _read_xlsx(path, source)
        result = normalise(table, source=source, metric=metric, first_row=2, progress=report,
                           decimal=decimal, ignore_columns=ignore_columns)
        result = result.replaced(notes=(*notes, *result.notes))
    else:
        # The table goes straight into normalise(), with no name kept here, so that
        # normalise can free it once it holds its own arrays: ~0.6 GB off the peak at 10M.
        parquet = suffix in {".parquet", ".pq"}
        result = normalise(_read_ahead_or_now(path, source, suffix, decimal), source=source,
                           metric=metric, first_row=1 if parquet else 2, progress=report,
                           exact_dictionaries=not parquet, decimal=decimal,
                           ignore_columns=ignore_columns)
    report("done", 1.0)
    return result


def _read_table(path: Path, source: str, suffix: str, decimal: str | None) -> pa.Table:
    if suffix in {".csv", ".txt", ".tsv"}:
        return _read_csv(path, source, delimiter="\t" if suffix == ".tsv" else None,
                         decimal=decimal)
    return _read_parquet(path, source)


# --------------------------------------------------------------------------------------
# Reading ahead (sopgap load)
# --------------------------------------------------------------------------------------

_AHEAD_SUFFIXES = {".csv", ".txt", ".tsv", ".parquet", ".pq"}


@dataclass
class _Ahead:
    path: Path
    decimal: str | None
    identity: tuple[int, int, int]  # the file's inode, size and modification time
    thread: threading.Thread
    table: pa.Table | None = None
    error: BaseException | None = None


_ahead: list[_Ahead] = []  # at most one: the read started by read_ahead()


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def read_ahead(path: str | Path, *, decimal: str | None = None) -> None:
    """Start reading the table of ``path`` (CSV, TSV or Parquet) in a thread, for the
    :func:`read_file` of the same file and ``decimal`` that follows: ``sopgap load``
    parses while it checks its arguments and settings and imports the rest (a fifth of
    a second of start-up). What that read_file reports, and when, is unchanged: an
    error of the read is raised there, not here; a file read_file would refuse before
    reading is not read ahead; a different call, or a file changed since, reads anew."""
    path = Path(path)
    try:
        stat = path.stat()
    except (OSError, ValueError):
        return
    suffix = path.suffix.lower()
    if (_ahead or not path.is_file() or stat.st_size == 0 or suffix not in _AHEAD_SUFFIXES
            or decimal not in (None, *DECIMAL_MARKS)):
        return
    # What the read imports is imported here, not beside the caller's own imports.
    import csv  # noqa: F401

    import pyarrow.csv  # noqa: F401

    def run() -> None:
        try:
            ahead.table = _read_table(path, path.name, suffix, decimal)
        except BaseException as exc:  # raised again by the read_file that takes it
            ahead.error = exc

    ahead = _Ahead(path=path, decimal=decimal, identity=_identity(stat),
                   # A daemon: a parse no read_file takes (a refused load) does not
                   # hold the process's exit.
                   thread=threading.Thread(target=run, name="read-ahead", daemon=True))
    _ahead.append(ahead)
    ahead.thread.start()


def _read_ahead_or_now(path: Path, source: str, suffix: str, decimal: str | None
                       ) -> pa.Table:
    """The table read ahead for this file and ``decimal``, or read now."""
    if _ahead:
        ahead = _ahead.pop()
        ahead.thread.join()
        table, error = ahead.table, ahead.error
        ahead.table = ahead.error = None  # (normalise frees the table as it goes)
        try:
            same = (ahead.path == path and ahead.decimal == decimal
                    and ahead.identity == _identity(path.stat()))
        except OSError:
            same = False
        if same:
            if error is not None:
                raise error
            assert table is not None
            return table
        del table, error
    return _read_table(path, source, suffix, decimal)


# --------------------------------------------------------------------------------------
# Several sources, one latest view
# --------------------------------------------------------------------------------------

DEFAULT_SOURCE = "default"
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def source_name(name: str | None) -> str:
    """A source's name as given (``finance``, ``supply-volume``), or the default one."""
    if name is None:
        return DEFAULT_SOURCE
    if not _SOURCE_NAME.match(name):
        raise LoadError(f"--source {name!r}", "a source name is up to 100 letters, digits, "
                                              "'_', '-' or '.', starting with a letter or digit")
    return name


def combine(tables: Sequence[PlanningTable], *, source: str) -> PlanningTable:
    """The union of several sources' tables (their row keys do not overlap), in period
    order. A dimension one source does not have is ``(blank)`` in its rows."""
    if len(tables) == 1:
        return tables[0]
    import pandas as pd

    dimensions = tuple(dict.fromkeys(d for table in tables for d in table.dimensions))
    metrics = tuple(dict.fromkeys(m for table in tables for m in table.metrics))
    period = np.concatenate([table.frame["period"].to_numpy() for table in tables])
    columns: dict[str, object] = {"period": period}
    for name in ("metric", *dimensions):
        categories = list(dict.fromkeys(
            str(value) for table in tables if name in table.frame
            for value in table.frame[name].cat.categories))
        if any(name not in table.frame for table in tables) and BLANK_MEMBER not in categories:
            categories.append(BLANK_MEMBER)
        index = pd.Index(categories)
        codes = []
        for table in tables:
            if name not in table.frame:
                codes.append(np.full(table.rows, index.get_loc(BLANK_MEMBER), dtype=np.int32))
                continue
            column = table.frame[name]
            mapping = np.append(index.get_indexer(column.cat.categories.astype(str)), -1)
            codes.append(mapping[column.array.codes].astype(np.int32))  # -1 stays -1
        columns[name] = pd.Categorical.from_codes(np.concatenate(codes), categories=categories,
                                                  validate=False)
    for measure in MEASURES:
        columns[measure] = np.concatenate([table.frame[measure].to_numpy() for table in tables])
    frame = pd.DataFrame(columns, copy=False)
    if not bool(np.all(period[1:] >= period[:-1])):
        frame = frame.take(np.argsort(period, kind="stable")).reset_index(drop=True)
    return PlanningTable(
        frame=frame, dimensions=dimensions, metrics=metrics, source=source,
        rows_read=sum(table.rows_read for table in tables),
        rows_merged=sum(table.rows_merged for table in tables),
        notes=tuple(note for table in tables for note in table.notes),
    )


def shared_row(new: PlanningTable, other: PlanningTable) -> str | None:
    """A row key (period, metric and dimension members) that both tables hold, described
    for a person, or ``None``: a key in two sources would be counted twice."""
    if set(new.dimensions) != set(other.dimensions):
        return None  # a dimension only one has is (blank) in the other's rows: never equal
    import pandas as pd

    names = ("metric", *new.dimensions)
    codes_new, codes_other, bounds = [], [], []
    for name in names:
        categories = pd.Index(list(dict.fromkeys(
            [*map(str, new.frame[name].cat.categories),
             *map(str, other.frame[name].cat.categories)])))
        for table, out in ((new, codes_new), (other, codes_other)):
            column = table.frame[name]
            mapping = np.append(categories.get_indexer(column.cat.categories.astype(str)), -1)
            out.append(mapping[column.array.codes])
        bounds.append((-1, len(categories) + 1))
    low = int(min(new.frame["period"].min(), other.frame["period"].min()))
    high = int(max(new.frame["period"].max(), other.frame["period"].max()))
    bounds = [(low, high - low + 1), *bounds]
    key_new = _row_key([new.frame["period"].to_numpy(), *codes_new], bounds)
    key_other = _row_key([other.frame["period"].to_numpy(), *codes_other], bounds)
    if key_new is None or key_other is None:  # too many combinations for one integer
        joined = new.frame.merge(other.frame[["period", *names]], on=["period", *names])
        if joined.empty:
            return None
        first = joined.iloc[0]
    else:
        both = np.flatnonzero(np.isin(key_new, key_other))
        if not len(both):
            return None
        first = new.frame.iloc[int(both[0])]
    members = " ".join(f"{name}={first[name]}" for name in new.dimensions)
    return f"{format_month(int(first['period']))} {first['metric']} {members}".strip()

