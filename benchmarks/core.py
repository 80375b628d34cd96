"""Speed and memory of sop_core at 1M and 10M rows, against references in the same run.

``python -m benchmarks.core`` (1M and 10M rows), ``--rows 200000 5000000`` to choose,
``--quick`` for 200k rows (a check that it runs). Run it from the repository root.

Each size runs in a fresh child process (spawned, so it inherits nothing), in phases:

1. **load**: ``sop_core.loading.read_file`` (parse + validate + merge) against
   ``pyarrow.csv.read_csv`` and ``pandas.read_csv(engine="pyarrow")`` of the same file,
   interleaved run by run so that noise on a shared machine hits all three alike;
2. **store**: ``services.data.store`` of the loaded table into a fresh SQLite database;
3. **gap queries**: ``compute_gap`` on the in-memory table, ``gap_report`` through the
   database with the snapshot cache warm, and the DuckDB reference: the same figures
   (plan, outlook, actual to date, forecast rest, forecast quality, per ``by`` member)
   by SQL over the very same data, the loaded DataFrame registered as an Arrow table
   (DuckDB's pandas scan and its own table copy are printed for information); then
   ``gap_report`` cold (after ``snapshots.clear_cache()``: reads the parts back
   from the database). Every DuckDB answer is checked against ours to the cent.

Peak memory: the child resets its peak RSS (``/proc/self/clear_refs``) before each
measured call and reads ``VmHWM`` after it, so every figure has its own peak. The
sopgap peak is the largest of read_file, store and cold gap_report, measured with no
reference's data alive (the warm phase also holds DuckDB's copy, so it is excluded).

The figures are printed, never asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import hashlib
import multiprocessing
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy.orm import Session, sessionmaker

from benchmarks import synth
from benchmarks.common import git_revision
from bot.allocator import keep_freed_memory
from sop_core import snapshots
from sop_core.db import session_factory
from sop_core.gaps import GapQuery, GapResult, TriggerRule, compute_gap
from sop_core.loading import PlanningTable, read_file
from sop_core.periods import resolve_horizon
from sop_core.services.data import gap_report, store

T = TypeVar("T")
GB = 1024**3
MB = 1024**2
QUICK_ROWS = 200_000
DEFAULT_ROWS = (1_000_000, 10_000_000)
MONEY_TOLERANCE = 0.005  # "to the cent"

# Targets from the issues.
LOAD_VS_PYARROW = 2.0
LOAD_VS_PANDAS = 1.5
QUERY_SECONDS_AT_1M = 0.5
QUERY_VS_DUCKDB = 2.0
QUERY_VS_DUCKDB_LATER = 1.5
PEAK_RSS_AT_10M = 2 * GB


@dataclass(frozen=True)
class QuerySpec:
    """One gap query, as a user types it and as a ``GapQuery``."""

    text: str  # what /gap or `sopgap gaps` gets
    scope: Mapping[str, tuple[str, ...]]
    by: str
    metric: str = "revenue"
    horizon: str = "fy"


# DuckDB reads the same data three ways; the Arrow scan (zero-copy, faster than the pandas
# scan) is the reference, the others are printed for information.
DUCKDB_TABLES = ("plan_arrow", "plan_frame", "plan_native")
REFERENCE_TABLE = "plan_arrow"

QUERIES = (
    QuerySpec("region=EU category=Snacks by=channel metric=revenue horizon=fy",
              {"region": ("EU",), "category": ("Snacks",)}, by="channel"),
    QuerySpec("region=EU,NA by=customer metric=revenue horizon=fy",
              {"region": ("EU", "NA")}, by="customer"),
)


# --------------------------------------------------------------------------------------
# Measuring: time and peak RSS of one call
# --------------------------------------------------------------------------------------

def _status_bytes(key: str) -> int:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; 0 if absent."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _peak_rss() -> int:
    peak = _status_bytes("VmHWM")
    if peak:
        return peak
    import resource  # not Linux: the process-lifetime peak (no per-phase figure)

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _reset_peak() -> bool:
    """Start a new peak-RSS window (Linux ≥ 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class _Peaks:
    """Running maxima of VmHWM across the per-call windows: per phase and for the process."""

    phase = 0
    process = 0

    @classmethod
    def fold(cls) -> None:
        """Record the current window's peak (call before a reset and at a phase's end)."""
        peak = _peak_rss()
        cls.phase, cls.process = max(cls.phase, peak), max(cls.process, peak)

    @classmethod
    def start_phase(cls) -> None:
        cls.fold()
        cls.phase = 0
        _reset_peak()

    @classmethod
    def end_phase(cls) -> int:
        cls.fold()
        return cls.phase


def _settle() -> None:
    """Free what earlier runs left so that each peak is the call's own."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class Measure:
    """Repeated runs of one thing: seconds per run, RSS before and peak RSS during."""

    runs: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # process CPU seconds, all threads
    start_rss: int = 0  # RSS before the run with the highest peak
    peak_rss: int = 0  # highest peak over the runs

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else float("nan")

    @property
    def spread(self) -> str:
        return f"{min(self.runs):.3f}–{max(self.runs):.3f}" if self.runs else ""

    def run(self, fn: Callable[[], T]) -> T:
        _settle()
        before = _status_bytes("VmRSS")
        _Peaks.fold()
        _reset_peak()
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.runs.append(time.perf_counter() - started)
        self.cpu.append(time.process_time() - cpu)
        peak = _peak_rss()
        _Peaks.fold()
        if peak >= self.peak_rss:
            self.peak_rss, self.start_rss = peak, before
        return result


def _progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# The DuckDB reference
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Figures:
    """What a gap query yields, from either engine, for the cross-check."""

    plan: float
    outlook: float
    actual_to_date: float
    forecast_rest: float
    bias_pct: float | None
    wmape: float | None
    members: dict[str, tuple[float, float]]  # member → (plan, outlook)
    rows: int


def _duckdb_sql(table_name: str, spec: QuerySpec) -> tuple[str, dict[str, Any]]:
    """The gap maths of docs/reference/gap-maths.md in SQL, grouped by ``spec.by``."""
    where = ["metric = $metric", "period BETWEEN $start AND $end"]
    params: dict[str, Any] = {}
    for i, (dimension, members) in enumerate(spec.scope.items()):
        names = [f"$s{i}_{j}" for j in range(len(members))]
        where.append(f'"{dimension}" IN ({", ".join(names)})')
        params.update({name[1:]: member for name, member in zip(names, members, strict=True)})
    both = "period <= $as_of AND actual IS NOT NULL AND forecast IS NOT NULL"
    sql = f"""
        SELECT CAST("{spec.by}" AS VARCHAR) AS member,
               count(*) AS n,
               sum(coalesce(plan, 0)) AS plan,
               sum(CASE WHEN period <= $as_of THEN coalesce(actual, 0)
                        ELSE coalesce(forecast, 0) END) AS outlook,
               sum(CASE WHEN period <= $as_of THEN coalesce(actual, 0) ELSE 0 END) AS atd,
               sum(CASE WHEN period > $as_of THEN coalesce(forecast, 0) ELSE 0 END) AS rest,
               count(CASE WHEN {both} THEN 1 END) AS q_rows,
               sum(CASE WHEN {both} THEN forecast - actual ELSE 0 END) AS q_bias,
               sum(CASE WHEN {both} THEN actual ELSE 0 END) AS q_actual,
               sum(CASE WHEN {both} THEN abs(actual - forecast) ELSE 0 END) AS q_err,
               sum(CASE WHEN {both} THEN abs(actual) ELSE 0 END) AS q_abs
        FROM {table_name}
        WHERE {" AND ".join(where)}
        GROUP BY 1
    """
    return sql, params


def _percent(part: float, whole: float) -> float | None:
    return part / whole * 100.0 if whole != 0 else None


def _duckdb_figures(rows: list[tuple[Any, ...]]) -> Figures:
    totals = [sum(float(r[i]) for r in rows) for i in range(1, 11)]
    n, plan, outlook, atd, rest, q_rows, q_bias, q_actual, q_err, q_abs = totals
    quality = q_rows > 0
    return Figures(
        plan=plan, outlook=outlook, actual_to_date=atd, forecast_rest=rest,
        bias_pct=_percent(q_bias, q_actual) if quality else None,
        wmape=_percent(q_err, q_abs) if quality else None,
        members={str(r[0]): (float(r[2]), float(r[3])) for r in rows}, rows=int(n),
    )


def _our_figures(result: GapResult) -> Figures:
    return Figures(
        plan=result.plan, outlook=result.outlook, actual_to_date=result.actual_to_date,
        forecast_rest=result.forecast_rest, bias_pct=result.bias_pct, wmape=result.wmape,
        members={d.member: (d.plan, d.outlook) for d in result.drivers}, rows=result.rows,
    )


def _compare(ours: Figures, reference: Figures) -> tuple[bool, str]:
    """OK when every amount agrees to the cent and the percentages to 1e-9."""
    problems = []
    if set(ours.members) != set(reference.members):
        problems.append(f"members differ ({len(ours.members)} vs {len(reference.members)})")
    if ours.rows != reference.rows:
        problems.append(f"rows {ours.rows} vs {reference.rows}")
    amounts = [(ours.plan, reference.plan), (ours.outlook, reference.outlook),
               (ours.outlook - ours.plan, reference.outlook - reference.plan),
               (ours.actual_to_date, reference.actual_to_date),
               (ours.forecast_rest, reference.forecast_rest)]
    for member, (plan, outlook) in ours.members.items():
        other = reference.members.get(member)
        if other is not None:
            amounts += [(plan, other[0]), (outlook, other[1])]
    worst = max(abs(a - b) for a, b in amounts)
    if worst >= MONEY_TOLERANCE:
        problems.append(f"amounts differ by up to {worst:,.4f}")
    for name in ("bias_pct", "wmape"):
        a, b = getattr(ours, name), getattr(reference, name)
        if (a is None) != (b is None) or (a is not None and b is not None
                                          and abs(a - b) > 1e-9 * max(1.0, abs(b))):
            problems.append(f"{name} {a} vs {b}")
    if problems:
        return False, "MISMATCH: " + "; ".join(problems)
    return True, f"OK (max |Δ| {worst:.2g} over {len(amounts)} amounts, bias % and WMAPE equal)"


# --------------------------------------------------------------------------------------
# One size, in a child process
# --------------------------------------------------------------------------------------

@dataclass
class QueryResult:
    spec: QuerySpec
    compute_gap: Measure
    gap_report_warm: Measure
    gap_report_cold: Measure
    duckdb: Measure  # over the frame registered as an Arrow table: the reference
    duckdb_pandas: Measure  # over the pandas DataFrame itself (information)
    duckdb_native: Measure  # over DuckDB's own copy in its storage format (information)
    rows_selected: int
    members: int
    check_ok: bool
    check: str
    report_check: str  # gap_report's figures against compute_gap's


@dataclass
class SizeResult:
    info: synth.SynthInfo
    read_file: Measure
    pyarrow: Measure
    pandas: Measure
    store: Measure
    baseline_rss: int  # after imports, before any data
    rows_kept: int
    rows_merged: int
    db_bytes: int
    queries: list[QueryResult]
    warm_phase_peak: int  # the warm phase holds our table, DuckDB's copy and the refs
    peak_window: bool  # per-call peaks (False: process-lifetime peaks only)
    duckdb_threads: int
    process_peak: int  # everything, references included

    @property
    def total_load(self) -> float:
        return self.read_file.median + self.store.median

    @property
    def sopgap_peak(self) -> int:
        return max([self.read_file.peak_rss, self.store.peak_rss,
                    *(q.gap_report_cold.peak_rss for q in self.queries)])


def _db_bytes(path: Path) -> int:
    """The SQLite file's size once its write-ahead log is checkpointed into it."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def _warm_query(spec: QuerySpec, table: PlanningTable, connection: duckdb.DuckDBPyConnection,
                sessions: sessionmaker[Session], rule: TriggerRule, repeat: int) -> QueryResult:
    """compute_gap, gap_report (warm) and DuckDB on one query, interleaved run by run."""
    query = GapQuery(scope=dict(spec.scope), metric=spec.metric, horizon=spec.horizon,
                     by=spec.by)
    horizon = resolve_horizon(spec.horizon, table.as_of)
    bound = {"metric": spec.metric, "start": horizon.start, "end": horizon.end,
             "as_of": table.as_of}
    statements = {name: _duckdb_sql(name, spec) for name in DUCKDB_TABLES}

    def duck(name: str) -> list[tuple[Any, ...]]:
        sql, params = statements[name]
        return connection.execute(sql, {**bound, **params}).fetchall()

    def report() -> GapResult:
        with sessions() as session:
            return gap_report(session, spec.text, rule=rule).result

    def in_memory() -> GapResult:
        return compute_gap(table, query, rule=rule)

    ours, warm = Measure(), Measure()
    references = {name: Measure() for name in DUCKDB_TABLES}
    in_memory(), report()  # untimed: lazy imports, cached properties
    for name in DUCKDB_TABLES:
        duck(name)  # untimed: DuckDB's first run
    replies: dict[str, list[tuple[Any, ...]]] = {}
    for _ in range(repeat):
        result = ours.run(in_memory)
        for name, measure in references.items():
            replies[name] = measure.run(partial(duck, name))
        via_db = warm.run(report)
    checks = {name: _compare(_our_figures(result), _duckdb_figures(reply))
              for name, reply in replies.items()}
    ok, check = checks[REFERENCE_TABLE]
    others = [name for name, (fine, _) in checks.items() if not fine]
    if others:  # the three ways DuckDB reads the data must agree too
        ok, check = False, f"{check}; MISMATCH with DuckDB over {', '.join(others)}"
    same = _compare(_our_figures(via_db), _our_figures(result))[0]
    return QueryResult(
        spec=spec, compute_gap=ours, gap_report_warm=warm, gap_report_cold=Measure(),
        duckdb=references[REFERENCE_TABLE], duckdb_pandas=references["plan_frame"],
        duckdb_native=references["plan_native"], rows_selected=result.rows,
        members=len(result.drivers), check_ok=ok, check=check,
        report_check="same figures" if same else "MISMATCH with compute_gap",
    )


def measure_size(info: synth.SynthInfo, repeat_load: int, repeat_query: int,
                 repeat_cold: int) -> SizeResult:
    """All measurements of one data file (run in a fresh child process)."""
    workdir = Path(tempfile.mkdtemp(prefix="sopgap-bench-"))
    try:
        return _measure_size(info, workdir, repeat_load, repeat_query, repeat_cold)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _measure_size(info: synth.SynthInfo, workdir: Path, repeat_load: int, repeat_query: int,
                  repeat_cold: int) -> SizeResult:
    path = info.path
    _settle()
    baseline = _status_bytes("VmRSS")
    window = _reset_peak()

    # 1. Load, interleaved with the two parsers it is compared with.
    ours, pyarrow_ref, pandas_ref = Measure(), Measure(), Measure()
    table: PlanningTable | None = None
    for i in range(repeat_load):
        _progress(f"{info.rows:,} rows: load run {i + 1}/{repeat_load}")
        table = None  # each of our runs starts with nothing loaded
        table = ours.run(lambda: read_file(path))
        arrow_rows = pyarrow_ref.run(lambda: pacsv.read_csv(path).num_rows)
        pandas_rows = pandas_ref.run(lambda: len(pd.read_csv(path, engine="pyarrow")))
        if not arrow_rows == pandas_rows == table.rows_read == info.rows:
            raise RuntimeError(f"row counts differ: {arrow_rows}, {pandas_rows}, "
                               f"{table.rows_read}, expected {info.rows}")
    assert table is not None

    # 2. Store into fresh SQLite databases (migrated beforehand: not part of a load).
    stored = Measure()
    sessions = None
    db_path = workdir / "none.db"
    for i in range(repeat_load):
        _progress(f"{info.rows:,} rows: store run {i + 1}/{repeat_load}")
        db_path = workdir / f"store{i}.db"
        sessions = session_factory(f"sqlite:///{db_path}")
        snapshots.clear_cache()
        stored.run(lambda s=sessions, t=table: store(s, t))
    assert sessions is not None
    db_bytes = _db_bytes(db_path)

    # 3. Gap queries, warm: ours in memory, ours through the database, DuckDB.
    _progress(f"{info.rows:,} rows: gap queries (warm)")
    _Peaks.start_phase()
    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")
    duckdb_threads = int(connection.execute("SELECT current_setting('threads')").fetchall()[0][0])
    connection.register("plan_frame", table.frame)
    connection.register("plan_arrow", pa.Table.from_pandas(table.frame, preserve_index=False))
    connection.execute("CREATE TABLE plan_native AS SELECT * FROM plan_arrow")
    as_of = table.as_of
    assert as_of is not None
    duck_as_of = connection.execute(
        "SELECT max(period) FROM plan_frame WHERE actual IS NOT NULL").fetchall()[0][0]
    if duck_as_of != as_of:
        raise RuntimeError(f"as-of month differs: DuckDB {duck_as_of}, sopgap {as_of}")
    rule = TriggerRule()
    results = [_warm_query(spec, table, connection, sessions, rule, repeat_query)
               for spec in QUERIES]
    warm_peak = _Peaks.end_phase()
    rows_kept, rows_merged = table.rows, table.rows_merged

    # 4. Cold gap_report: nothing of ours or DuckDB's left in memory, the cache emptied.
    connection.close()
    del connection, table
    snapshots.clear_cache()
    for query_result in results:
        spec = query_result.spec
        _progress(f"{info.rows:,} rows: gap query (cold) {spec.text}")
        for _ in range(repeat_cold):
            snapshots.clear_cache()
            with sessions() as session:
                query_result.gap_report_cold.run(
                    lambda s=session, text=spec.text: gap_report(s, text, rule=rule))

    _Peaks.fold()
    return SizeResult(
        info=info, read_file=ours, pyarrow=pyarrow_ref, pandas=pandas_ref, store=stored,
        baseline_rss=baseline, rows_kept=rows_kept, rows_merged=rows_merged,
        db_bytes=db_bytes, queries=results, warm_phase_peak=warm_peak, peak_window=window,
        duckdb_threads=duckdb_threads, process_peak=_Peaks.process,
    )


# --------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------

def _size(nbytes: float) -> str:
    return f"{nbytes / GB:.2f} GB" if nbytes >= GB else f"{nbytes / MB:.0f} MB"


def _rows(rows: int) -> str:
    if rows >= 1_000_000 and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows >= 1000 and rows % 1000 == 0:
        return f"{rows // 1000}k"
    return f"{rows:,}"


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds / 1e6:.2f} M rows/s" if seconds > 0 else ""


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return "\n".join([
        f"date        {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine     {os.cpu_count()} cores ({cpu}), {memory / GB:.1f} GB RAM, "
        f"{platform.system()} {platform.release()}",
        f"python      {platform.python_version()} ({sys.executable})",
        f"libraries   pandas {pd.__version__}, pyarrow {pa.__version__} "
        f"({pa.default_memory_pool().backend_name}, {pa.cpu_count()} threads), "
        f"numpy {np.__version__}, duckdb {duckdb.__version__}",
        f"measured    {_code_fingerprint()}",
    ])


MEASURED_MODULES = ("loading", "gaps.py", "filters.py", "snapshots.py", "services/data.py")


def _code_fingerprint() -> str:
    """Short hashes of the sop_core files measured, to tell runs of different code apart."""
    root = Path(snapshots.__file__).resolve().parent
    parts = []
    for name in MEASURED_MODULES:
        path = root / name
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]  # a package: all of it
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:8]
        parts.append(f"{name} {digest}")
    return "sop_core/{" + ", ".join(parts) + "}"


def _line(label: str, measure: Measure, extra: str = "", memory: str = "") -> str:
    return (f"  {label:<40} {measure.median:>8.3f} s  {measure.spread:>13}  "
            f"{measure.cpu_median:>7.3f}  {extra:<24} {memory}")


def _peak_text(measure: Measure) -> str:
    return f"peak {_size(measure.peak_rss)} (+{_size(measure.peak_rss - measure.start_rss)})"


def print_size(result: SizeResult, repeat_load: int, repeat_query: int, repeat_cold: int
               ) -> None:
    info = result.info
    print()
    print(f"=== {info.rows:,} rows: {info.bytes / MB:,.0f} MB CSV, "
          f"{result.rows_kept:,} rows kept after merging {result.rows_merged:,} "
          f"duplicates (expected {info.duplicate_rows:,}), {info.customers:,} customers ===")
    print(f"  {'':<40} {'median':>10}  {'min–max s':>13}  {'CPU s':>7}  {'':<24} "
          "peak RSS (+ over start)")
    print(f"load (median of {repeat_load}, interleaved)")
    pa_s, pd_s, ours_s = result.pyarrow.median, result.pandas.median, result.read_file.median
    print(_line("pyarrow.csv.read_csv", result.pyarrow, _rate(info.rows, pa_s),
                _peak_text(result.pyarrow)))
    print(_line('pandas.read_csv(engine="pyarrow")', result.pandas, _rate(info.rows, pd_s),
                _peak_text(result.pandas)))
    print(_line("sopgap read_file (parse+validate)", result.read_file,
                _rate(info.rows, ours_s), _peak_text(result.read_file)))
    print(f"  {'':<40} {ours_s / pa_s:>8.2f}× pyarrow, {ours_s / pd_s:.2f}× pandas (wall)")
    print(_line("sopgap store() into fresh SQLite", result.store,
                f"DB {_size(result.db_bytes)}", _peak_text(result.store)))
    print(f"  {'total (parse + validate + store)':<40} {result.total_load:>8.3f} s  "
          f"{'':>13}  {'':>7}  {_rate(info.rows, result.total_load)}")
    for q in result.queries:
        duck = q.duckdb.median
        print(f"gap query `{q.spec.text}` ({q.rows_selected:,} rows selected, "
              f"{q.members:,} members; warm: median of {repeat_query}, "
              f"cold: median of {repeat_cold})")
        print(_line(f"DuckDB, frame as Arrow ({result.duckdb_threads} threads)", q.duckdb,
                    "1.00× (reference)"))
        print(_line("DuckDB, pandas DataFrame scan (info)", q.duckdb_pandas,
                    f"{q.duckdb_pandas.median / duck:.2f}×"))
        print(_line("DuckDB, its own table copy (info)", q.duckdb_native,
                    f"{q.duckdb_native.median / duck:.2f}×"))
        print(_line("sopgap compute_gap (in memory)", q.compute_gap,
                    f"{q.compute_gap.median / duck:.2f}× DuckDB"))
        print(_line("sopgap gap_report (warm cache)", q.gap_report_warm,
                    f"{q.gap_report_warm.median / duck:.2f}× DuckDB"))
        print(_line("sopgap gap_report (cold: reads the DB)", q.gap_report_cold,
                    f"{q.gap_report_cold.median / duck:.2f}× DuckDB",
                    _peak_text(q.gap_report_cold)))
        print(f"  totals vs DuckDB: {q.check}; gap_report vs compute_gap: {q.report_check}")
    window = "" if result.peak_window else " (process-lifetime peaks: no per-call window here)"
    print(f"memory{window}: baseline after imports {_size(result.baseline_rss)}; "
          f"sopgap peak (read_file, store, cold gap_report) {_size(result.sopgap_peak)}; "
          f"warm phase with DuckDB's copy {_size(result.warm_phase_peak)}; "
          f"child process overall {_size(result.process_peak)}")


@dataclass(frozen=True)
class Verdict:
    target: str
    where: str
    value: str
    met: bool | None  # None: not measured
    margin: str


def _check(target: str, where: str, value: float, limit: float, unit: str) -> Verdict:
    text = {"×": f"{value:.2f}×", "s": f"{value:.3f} s", "GB": f"{value / GB:.2f} GB"}[unit]
    met = value <= limit
    share = abs(limit - value) / limit * 100
    margin = f"{share:.0f}% headroom" if met else f"missed by {share:.0f}% over the limit"
    return Verdict(target, where, text, met, margin)


def verdicts(results: Iterable[SizeResult]) -> list[Verdict]:
    out: list[Verdict] = []
    by_rows = {r.info.rows: r for r in results}
    for rows, r in by_rows.items():
        where = f"{_rows(rows)} rows"
        out.append(_check(f"load ≤ {LOAD_VS_PYARROW}× pyarrow.csv.read_csv", where,
                          r.read_file.median / r.pyarrow.median, LOAD_VS_PYARROW, "×"))
        out.append(_check(f"load ≤ {LOAD_VS_PANDAS}× pandas.read_csv(pyarrow)", where,
                          r.read_file.median / r.pandas.median, LOAD_VS_PANDAS, "×"))
    small = by_rows.get(1_000_000)
    for q in small.queries if small else ():
        for name in ("gap_report_warm", "gap_report_cold"):
            out.append(_check(f"gap query < {QUERY_SECONDS_AT_1M} s, {name}",
                              f"1M, by={q.spec.by}", getattr(q, name).median,
                              QUERY_SECONDS_AT_1M, "s"))
    if small is None:
        out.append(Verdict(f"gap query < {QUERY_SECONDS_AT_1M} s", "1M", "not measured",
                           None, "run with --rows 1000000"))
    for rows, r in by_rows.items():
        bad = [q.spec.by for q in r.queries if not q.check_ok]
        out.append(Verdict("figures equal DuckDB's to the cent", f"{_rows(rows)} rows",
                           "MISMATCH" if bad else "OK", not bad,
                           f"by={', by='.join(bad)}" if bad else "every query"))
    large = by_rows.get(10_000_000)
    for q in large.queries if large else ():
        for limit in (QUERY_VS_DUCKDB, QUERY_VS_DUCKDB_LATER):
            for name in ("compute_gap", "gap_report_warm"):
                measure: Measure = getattr(q, name)
                out.append(_check(f"gap query ≤ {limit}× DuckDB, {name}",
                                  f"10M, by={q.spec.by}",
                                  measure.median / q.duckdb.median, limit, "×"))
    if large is None:
        out.append(Verdict("gap query ≤ 2× (1.5×) DuckDB", "10M", "not measured", None,
                           "run with --rows 10000000"))
    if large is not None:
        out.append(_check("peak RSS < 2 GB", "10M rows", large.sopgap_peak,
                          PEAK_RSS_AT_10M, "GB"))
    else:
        out.append(Verdict("peak RSS < 2 GB", "10M", "not measured", None,
                           "run with --rows 10000000"))
    return out


def print_summary(results: list[SizeResult]) -> None:
    print()
    print("=== targets ===")
    for v in verdicts(results):
        state = {True: "met   ", False: "MISSED", None: "—     "}[v.met]
        print(f"  {state} {v.target:<46} {v.where:<20} {v.value:>10}   {v.margin}")


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

def _parse_rows(text: str) -> int:
    units = {"k": 1_000, "m": 1_000_000}
    suffix = text[-1].lower()
    value = float(text[:-1]) * units[suffix] if suffix in units else float(text)
    return int(value)


def _loadavg(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def _warm_page_cache(path: str) -> None:
    """Read the file once so that no parser pays for the first read from disk."""
    with open(path, "rb") as handle:
        while handle.read(64 * MB):
            pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="sop_core load / gap query / memory benchmarks against pyarrow, pandas "
                    "and DuckDB (figures only, no assertions).")
    parser.add_argument("--rows", type=_parse_rows, nargs="+", default=None,
                        help="sizes to measure, e.g. 1000000 10M (default 1M and 10M)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_ROWS:,} rows only, few repeats: check that it runs")
    parser.add_argument("--repeat", type=int, default=7,
                        help="runs per warm gap query (median; at least 5 recommended)")
    parser.add_argument("--repeat-load", type=int, default=None,
                        help="runs per load/store (default 5 up to 2M rows, 3 above)")
    parser.add_argument("--repeat-cold", type=int, default=5, help="runs per cold gap query")
    args = parser.parse_args(argv)
    sizes = [QUICK_ROWS] if args.quick else (args.rows or list(DEFAULT_ROWS))
    repeat, repeat_cold = (5, 2) if args.quick else (args.repeat, args.repeat_cold)

    print("sopgap benchmarks (benchmarks/core.py)")
    print(machine())
    print(f"commit      {git_revision()}")
    results: list[SizeResult] = []
    context = multiprocessing.get_context("spawn")
    for rows in sizes:
        info = synth.ensure(rows)
        if info.seconds:
            print(f"\n(generated {info.path}: {info.rows:,} rows in {info.seconds:.1f} s)")
        repeat_load = args.repeat_load or (1 if args.quick else 5 if rows <= 2_000_000 else 3)
        _warm_page_cache(info.path)
        load_before = os.getloadavg()
        # The child measures as a sopgap process runs: its allocator set as theirs is.
        with ProcessPoolExecutor(max_workers=1, mp_context=context,
                                 initializer=keep_freed_memory) as pool:
            result = pool.submit(measure_size, info, repeat_load, repeat, repeat_cold).result()
        print_size(result, repeat_load, repeat, repeat_cold)
        print(f"machine load average (1/5/15 min) before: {_loadavg(load_before)}, "
              f"after: {_loadavg(os.getloadavg())} (this child uses up to {os.cpu_count()} "
              "cores; higher means other work shared the machine)")
        sys.stdout.flush()
        results.append(result)
    print_summary(results)
    if not args.quick:
        # What a user waits for: `sopgap load` as a whole process, on period- and
        # key-ordered files, against a whole process that only parses with pyarrow.
        print()
        from benchmarks import load_process

        load_process.main(["--rows", *map(str, sizes)])


if __name__ == "__main__":
    main()
