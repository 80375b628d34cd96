"""The one pipeline every source goes through: column roles, validation, merging
duplicate keys and the period order.

Speed matters (files of millions of rows), so work per *value* (parsing periods,
trimming names, mapping measure aliases) is done on dictionary-encoded columns, i.e.
once per distinct value, and duplicate keys are merged with numpy on integer codes.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sop_core import formatting as fmt
from sop_core.loading.cells import (
    DECIMAL_HINT,
    _as_text,
    _encode,
    _first_row_where,
    _is_nested,
    _is_numeric,
    _Rows,
    _text,
    as_text_column,
    bad_cells_error,
    checked_numbers,
    decimal_mark,
    parse_measure,
)
from sop_core.loading.table import (
    BLANK_MEMBER,
    DEFAULT_METRIC,
    MEASURE_ALIASES,
    MEASURE_COLUMN_NAMES,
    MEASURE_HELP,
    MEASURES,
    RESERVED_NAMES,
    VALUE_COLUMN,
    WORKERS,
    Columns,
    LoadError,
    PlanningTable,
    ProgressCallback,
    _quote,
    normalise_name,
)
from sop_core.periods import parse_month


@dataclass
class _Columns:
    """Which source column plays which role."""

    period: str
    metric: str | None
    measure: str | None  # long form
    value: str | None  # long form
    wide: dict[str, str]  # canonical measure -> source column (wide form)
    dimensions: list[tuple[str, str]]  # (normalised name, source column)
    ignored: list[str]


def _roles(table: pa.Table, source: str, ignore: Collection[str] = ()) -> _Columns:
    seen: dict[str, str] = {}
    skipped = {normalise_name(name) for name in ignore}
    present = {normalise_name(name) for name in table.column_names}
    unknown = sorted(skipped - present)
    if unknown:
        raise LoadError(source, f"--ignore-column {', '.join(unknown)}: no such column; "
                                "columns: " + ", ".join(str(n) for n in table.column_names
                                                        if n != "__row__"))
    for name in table.column_names:
        if name == "__row__":
            continue
        key = normalise_name(name)
        if key in skipped and key != "period":
            continue
        if not key:
            if table.column(name).null_count == len(table):
                continue  # an unnamed, empty column (trailing delimiter)
            raise LoadError(source, "a column has no name", column=str(name))
        if key in seen:
            raise LoadError(source, f"columns '{seen[key]}' and '{name}' both read as '{key}'",
                            column=str(name))
        if _is_nested(table.column(name).type):
            raise LoadError(source, f"holds nested values ({table.column(name).type}), not "
                                    "text or numbers", column=str(name))
        seen[key] = name
    if not seen:
        raise LoadError(source, "no columns")
    if "period" not in seen:
        raise LoadError(source, "missing column 'period' (YYYY-MM); columns found: "
                                + ", ".join(seen))
    measure = next((seen[k] for k in MEASURE_COLUMN_NAMES if k in seen), None)
    value = seen.get(VALUE_COLUMN)
    wide: dict[str, str] = {}
    if measure is None:
        for key, name in seen.items():
            canonical = MEASURE_ALIASES.get(key)
            if canonical is None:
                continue
            if canonical in wide:
                raise LoadError(source, f"columns '{wide[canonical]}' and '{name}' both mean "
                                        f"{canonical}", column=name)
            wide[canonical] = name
        if "plan" not in wide:
            raise LoadError(source, "missing column 'plan' (wide form needs plan and forecast "
                                    "and/or actual; long form needs measure and value)")
        if "forecast" not in wide and "actual" not in wide:
            raise LoadError(source, "missing column 'forecast' or 'actual': "
                                    "a plan alone has no gap")
    elif value is None:
        raise LoadError(source, f"missing column 'value' (long form: '{measure}' names the "
                                "measure and 'value' holds the number)")
    taken = {"period", "metric", VALUE_COLUMN, *MEASURE_COLUMN_NAMES, *MEASURE_ALIASES}
    dimensions, ignored = [], []
    for key, name in seen.items():
        if key in taken and (key in {"period", "metric"} or name in wide.values()
                             or name in (measure, value)):
            continue
        column_type = table.column(name).type
        if _is_numeric(column_type):
            ignored.append(name)  # numbers that are not measures are not dimensions
            continue
        if key in RESERVED_NAMES:
            raise LoadError(source, f"a dimension cannot be called '{key}' (it is a filter "
                                    "keyword); rename the column", column=name)
        dimensions.append((key, name))
    _refuse_measure_lookalikes(source, ignored)
    return _Columns(period=seen["period"], metric=seen.get("metric"), measure=measure,
                    value=value, wide=wide, dimensions=dimensions, ignored=ignored)


def _refuse_measure_lookalikes(source: str, numeric: Sequence[str]) -> None:
    """A column of numbers named almost like a measure (``forcast``) is a typo far more
    often than an extra column: ignoring it would leave the measure missing and every
    gap wrong. Refused, unless named in ``--ignore-column``."""
    names = [*MEASURE_ALIASES, VALUE_COLUMN]
    typos = [(column, close[0]) for column in numeric
             if (close := difflib.get_close_matches(normalise_name(column), names, n=1,
                                                    cutoff=0.8))]
    if typos:
        hints = "; ".join(f"column '{column}': did you mean `{name}`?" for column, name in typos)
        flags = " ".join(f"--ignore-column {_quote(column)}" for column, _ in typos)
        raise LoadError(source, f"{hints} Rename it, or load with {flags} if it is not a "
                                "measure")


def normalise(table: pa.Table, *, source: str, metric: str | None = None,
              first_row: int = 2, progress: ProgressCallback | None = None,
              exact_dictionaries: bool = False, decimal: str | None = None,
              ignore_columns: Collection[str] = ()) -> PlanningTable:
    """Validate any source table and reduce it to the canonical planning table.

    The Arrow table is let go as soon as its columns are encoded: called as
    ``normalise(read(...))`` that frees its memory before the frame is built.
    ``exact_dictionaries``: the table's dictionary columns hold no value that no row
    uses (true of the CSV reader's; a Parquet file's may), which saves a pass per column.
    ``decimal``: the decimal mark of numbers written as text (``None``: found from the
    values). ``ignore_columns``: columns left out of the load.
    """
    if progress:
        progress("validating", 0.5)
    rows = _Rows(table, first_row)
    rows_read = table.num_rows
    if rows_read == 0:
        raise LoadError(source, "no data rows (only a header)")
    roles = _roles(table, source, ignore_columns)
    table = _as_text(table, source, rows)
    number_columns = ([roles.value] if roles.measure is not None else list(roles.wide.values()))
    decimal = _decimal(table, number_columns, source, decimal)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        # Column by column on every core: numpy and Arrow let go of the GIL. Results are
        # checked in column order, so the error reported is the same as one by one.
        exact = exact_dictionaries
        period_job = pool.submit(_encode, table.column(roles.period), _text, exact=exact)
        metric_job: Future | None = None
        if roles.metric is not None:
            metric_job = pool.submit(_encode, table.column(roles.metric), _metric_name,
                                     exact=exact)
        dimension_jobs = [(key, pool.submit(_encode, table.column(name), _text, exact=exact))
                          for key, name in roles.dimensions]
        measure_jobs = {m: pool.submit(parse_measure, table, name, source, decimal)
                        for m, name in roles.wide.items()} if roles.measure is None else {}

        period_codes, period_values = period_job.result()
        months = [parse_month(value) for value in period_values]
        if (period_codes < 0).any():
            raise LoadError(source, "missing period",
                            row=rows(_first_row_where(period_codes < 0)), column=roles.period)
        for code, parsed in enumerate(months):
            if parsed is None:
                index = _first_row_where(period_codes == code)
                raise LoadError(source, f"{_quote(period_values[code])} is not a month "
                                        "(use YYYY-MM)", row=rows(index), column=roles.period)
        period = np.asarray(months, dtype=np.int32)[period_codes]

        keys: list[tuple[str, np.ndarray, list]] = [("period", period, [])]
        if metric_job is not None:
            codes, names = metric_job.result()
            if (codes < 0).any():
                raise LoadError(source, "missing metric name",
                                row=rows(_first_row_where(codes < 0)), column=roles.metric)
            keys.append(("metric", codes, names))
        else:
            keys.append(("metric", np.zeros(rows_read, dtype=np.int32),
                         [normalise_name(metric) if metric else DEFAULT_METRIC]))
        for key, job in dimension_jobs:
            codes, members = job.result()
            if (codes < 0).any():
                blank = len(members)
                members = [*members, BLANK_MEMBER]
                codes = np.where(codes < 0, blank, codes).astype(np.int32)
            keys.append((key, codes, members))

        if roles.measure is not None:
            measures, merged, flagged = _long_measures(table, roles, source, rows, keys,
                                                       decimal)
        else:
            parsed = [(roles.wide[m], job.result()) for m, job in measure_jobs.items()]
            error = bad_cells_error(source, parsed, rows)
            if error is not None:
                raise error
            flagged = sum(column.flagged for _, column in parsed)
            numbers = {m: checked_numbers(source, name, column, rows)
                       for m, (name, column) in zip(measure_jobs, parsed, strict=True)}
            del parsed
            # (np.full only for a measure the file does not have: 80 MB at 10M rows)
            measures = {m: numbers[m] if m in numbers else np.full(rows_read, np.nan)
                        for m in MEASURES}
            del numbers
        del table, dimension_jobs, measure_jobs
        pa.default_memory_pool().release_unused()

        bounds = [(min(months), max(months) - min(months) + 1),
                  *((0, max(len(categories), 1)) for _, _, categories in keys[1:])]
        key_codes = [codes for _, codes, _ in keys]
        if not _ascending(key_codes[0]):
            # Not in period order: often in key order (every dimension, then period), whose
            # row keys with the period as the last digit come nearly sorted (see below).
            key_codes, bounds = [*key_codes[1:], key_codes[0]], [*bounds[1:], bounds[0]]
        kept, measures = _merge_duplicates(key_codes, measures, bounds)
        del key_codes
        # The rows kept, in period order: one take of every column, however many of
        # dropping duplicates and reordering there are.
        period = keys[0][1]
        if kept is None:
            rows_kept = _period_order(period)
        elif _ascending(period[kept]):  # (a correction batch at the end merged away)
            rows_kept = np.flatnonzero(kept)
        else:
            # All rows in period order, then those kept: the same order as sorting the
            # kept rows, without taking their row numbers in period order (int64, read
            # once per period: 0.15 s at 10M rows in key order).
            by_period = _period_order(period)
            assert by_period is not None
            rows_kept = by_period[kept[by_period]]
            del by_period
        del kept, period
        if rows_kept is not None:
            keys, measures = _take(pool, keys, measures, rows_kept)
        del rows_kept
        if roles.measure is None:
            merged = rows_read - len(keys[0][1])

    metrics = tuple(keys[1][2])
    # No pandas here: the frame is built from these columns when first asked for
    # (a load stores them as Parquet without it).
    columns = Columns(period=keys[0][1].astype(np.int32, copy=False),
                      keys=tuple(keys[1:]), measures=measures)
    del keys, measures
    notes = []
    if roles.ignored:
        notes.append("ignored numeric columns that are not measures: " + ", ".join(roles.ignored))
    if ignore_columns:
        notes.append("left out as asked: " + ", ".join(ignore_columns))
    if decimal == ",":
        notes.append("numbers read with a decimal comma (1.234,56)")
    if flagged:
        notes.append(f"{fmt.number(flagged)} {'cell' if flagged == 1 else 'cells'} with an "
                     "Excel error (#N/A, #DIV/0!, #VALUE!, #REF!…) or a lone '-' read as missing")
    return PlanningTable(
        frame=columns,  # type: ignore[arg-type]
        dimensions=tuple(name for name, _ in roles.dimensions),
        metrics=metrics,
        source=source,
        rows_read=rows_read,
        rows_merged=int(merged),
        ignored_columns=tuple(roles.ignored),
        notes=tuple(notes),
    )


def _metric_name(value: str | None) -> str | None:
    return (normalise_name(value) or None) if value is not None else None


KeyColumns = list[tuple[str, np.ndarray, list]]


def _take(pool: ThreadPoolExecutor, keys: KeyColumns, measures: dict[str, np.ndarray],
          rows: np.ndarray) -> tuple[KeyColumns, dict[str, np.ndarray]]:
    """Every column at ``rows`` (a mask or indices), the columns shared between cores.

    Codes and months are taken in the narrowest integer type that holds them: taking a
    key-ordered file's rows in period order reads every cache line of a column once per
    period, and an int8 column has a quarter of int32's (10M rows, 36 months: seven
    columns in 0.06 s instead of 1.1 s)."""
    def take(key: tuple[str, np.ndarray, list]) -> tuple[str, np.ndarray, list]:
        name, values, categories = key
        if name == "period" and len(values):
            low = int(values.min())
            narrow = _narrow(values - low, 0, int(values.max()) - low)
            return name, narrow[rows].astype(np.int32) + low, categories
        return name, _narrow(values, -1, len(categories))[rows], categories

    keys_at = pool.map(take, keys)
    measures_at = pool.map(lambda item: (item[0], item[1][rows]), measures.items())
    return list(keys_at), dict(measures_at)


def _narrow(values: np.ndarray, low: int, high: int) -> np.ndarray:
    """``values`` (all within ``low`` … ``high``) as int8 or int16 if they fit."""
    for dtype in (np.int8, np.int16):
        limits = np.iinfo(dtype)
        if limits.min <= low and high <= limits.max:
            return values.astype(dtype, copy=False)
    return values


def _decimal(table: pa.Table, columns: Sequence[str], source: str,
             chosen: str | None) -> str:
    """The decimal mark of the file's measures written as text."""
    if chosen is not None:
        return chosen
    hint = (table.schema.metadata or {}).get(DECIMAL_HINT, b".").decode()
    texts = [text for name in columns
             if (text := as_text_column(table.column(name))) is not None]
    if not texts:
        return hint
    mark = decimal_mark(texts, default=hint)
    if mark is None:
        raise LoadError(source, "some numbers have a decimal point and others a decimal "
                                "comma: say which the file uses with --decimal . or "
                                "--decimal ,")
    return mark


def _long_measures(
    table: pa.Table, roles: _Columns, source: str, rows: _Rows,
    keys: KeyColumns, decimal: str = ".",
) -> tuple[dict[str, np.ndarray], int, int]:
    """Spread a long table's ``value`` into plan/forecast/actual arrays (NaN elsewhere)."""
    assert roles.measure is not None
    assert roles.value is not None
    codes, names = _encode(table.column(roles.measure),
                           lambda v: normalise_name(v) if v is not None else None)
    if (codes < 0).any():
        raise LoadError(source, "missing measure name", row=rows(_first_row_where(codes < 0)),
                        column=roles.measure)
    canonical = []
    for code, name in enumerate(names):
        measure = MEASURE_ALIASES.get(name)
        if measure is None:
            index = _first_row_where(codes == code)
            raise LoadError(source, f"unknown measure {_quote(name)} (expected {MEASURE_HELP})",
                            row=rows(index), column=roles.measure)
        canonical.append(MEASURES.index(measure))
    measure_index = np.asarray(canonical, dtype=np.int8)[codes]
    parsed = parse_measure(table, roles.value, source, decimal)
    error = bad_cells_error(source, [(roles.value, parsed)], rows)
    if error is not None:
        raise error
    value = checked_numbers(source, roles.value, parsed, rows)
    arrays = {m: np.where(measure_index == i, value, np.nan) for i, m in enumerate(MEASURES)}
    # Duplicates are rows sharing period, metric, dimensions *and* measure.
    _, groups = _group([*(k[1] for k in keys), measure_index.astype(np.int32)])
    return arrays, len(measure_index) - groups, parsed.flagged


Bounds = Sequence[tuple[int, int]]  # per column: (lowest value, how many values)
# Up to this many combinations a row, groups are found by marking them (a bool and an
# int32 count each: at most 20 bytes a row, less than sorting's keys, order and labels).
DENSE_GROUPS_PER_ROW = 4


def _bounds(codes: Sequence[np.ndarray]) -> Bounds:
    return [(int(a.min()), int(a.max()) - int(a.min()) + 1) if len(a) else (0, 1)
            for a in codes]


def _row_key(codes: Sequence[np.ndarray], bounds: Bounds | None = None) -> np.ndarray | None:
    """One integer per row for its combination of codes (mixed radix): int32 when every
    combination fits, which sorts twice as fast as int64; ``None`` when not even int64
    holds them all. ``bounds``, when the caller knows them, saves two passes a column."""
    bounds = bounds if bounds is not None else _bounds(codes)
    combinations = math.prod(span for _, span in bounds)
    if combinations >= 2**63:
        return None
    dtype = np.int32 if combinations < 2**31 else np.int64
    key = np.zeros(len(codes[0]), dtype=dtype)
    digit = np.empty_like(key)
    for array, (low, span) in zip(codes, bounds, strict=True):
        key *= span
        if low:
            np.subtract(array, low, out=digit, dtype=dtype, casting="unsafe")  # 0 … span-1
            key += digit
        else:
            key += array
    return key


def _keys(codes: Sequence[np.ndarray], bounds: Bounds | None = None) -> np.ndarray:
    """:func:`_row_key`, or group numbers from pandas' multi-key grouping when the
    combinations are too many for one integer."""
    key = _row_key(codes, bounds)
    if key is None:
        import pandas as pd

        frame = pd.DataFrame(dict(enumerate(codes)))
        key = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    return key


def _group(codes: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """Each row's group (rows sharing all codes) and how many groups there are, numbered
    in the order of their codes. Where the combinations of codes are few enough to mark
    each (a gap's items: regions × categories × … customers), by marking the ones present
    and counting them: one pass, no sort (1M rows, 1.2M combinations: 0.009 s instead of
    0.08 s, a first gap on a new snapshot). Else by sorting: at millions of rows numpy's
    SIMD sort is several times faster than hashing, whose table no longer fits in the CPU
    caches."""
    bounds = _bounds(codes)
    combinations = math.prod(span for _, span in bounds)
    if len(codes[0]) and combinations <= max(DENSE_GROUPS_PER_ROW * len(codes[0]), 1 << 16):
        key = _row_key(codes, bounds)
        assert key is not None  # (combinations that few fit in an int32)
        present = np.zeros(combinations, dtype=bool)
        present[key] = True
        # Counts as int32 when the rows are fewer (there are no more groups than rows).
        number = np.cumsum(present, dtype=np.int32 if len(key) < 2**31 else np.int64)
        return number[key] - 1, int(number[-1])
    key = _keys(codes, bounds)
    order = np.argsort(key)
    key = key[order]
    starts = np.empty(len(key), dtype=bool)
    starts[:1] = True
    np.not_equal(key[1:], key[:-1], out=starts[1:])
    labels = np.empty(len(order), dtype=np.int64)
    labels[order] = np.cumsum(starts) - 1
    return labels, int(starts.sum())


def _merge_duplicates(codes: Sequence[np.ndarray], measures: dict[str, np.ndarray],
                      bounds: Bounds | None = None
                      ) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Rows sharing all codes merged into the first of them in file order: which rows
    are kept (``None``: all, there were no duplicates), and the measures of every row, a
    kept row's the sum of its group's (a group whose values are all missing stays
    missing): the caller takes the kept rows, in the same take as any reordering.

    Duplicates are the exception (a correction batch, a file at a finer grain than its
    columns), so the keys are sorted without their rows (4× cheaper than an argsort) to
    find the repeated ones, and the rows are looked at only where a key repeats; the
    kept rows stay in file order, so taking them is one sequential pass.
    """
    key = _keys(codes, bounds)
    # Keys that come mostly in order (a file in period or in key order) sort several
    # times faster by timsort, which takes their runs as they are (10M rows in key
    # order: 0.09 s instead of 0.6 s); others by numpy's quicksort, faster on disorder.
    mostly_ordered = np.count_nonzero(key[1:] >= key[:-1]) >= 0.9 * (len(key) - 1)
    ordered = np.sort(key, kind="stable" if mostly_ordered else "quicksort")
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]  # sorted, a key once per extra row
    del ordered
    # Distinct by comparing neighbours, not np.unique: its first call imports numpy.ma
    # (0.07 s of every load).
    repeated = repeated[np.r_[True, repeated[1:] != repeated[:-1]]] if len(repeated) \
        else repeated
    if not len(repeated):
        return None, measures
    rows = _rows_with(key, repeated)  # ascending: file order
    within = np.argsort(key[rows], kind="stable")  # by key, file order kept in a group
    rows = rows[within]
    grouped_keys = key[rows]
    segments = np.flatnonzero(np.r_[True, grouped_keys[1:] != grouped_keys[:-1]])
    first = rows[segments]  # each group's first row in the file
    kept = np.ones(len(key), dtype=bool)
    kept[rows] = False
    kept[first] = True
    merged = {}
    for name, values in measures.items():
        grouped = values[rows]
        present = ~np.isnan(grouped)
        sums = np.add.reduceat(np.where(present, grouped, 0.0), segments)
        values = values if values.flags.writeable else values.copy()
        values[first] = np.where(np.logical_or.reduceat(present, segments), sums, np.nan)
        merged[name] = values  # every row still: the caller takes the kept ones
    return kept, merged


def _rows_with(key: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The rows whose key is one of ``wanted`` (sorted, distinct), in ascending order.

    A bitmap over the keys' low bits (sized to stay in the CPU cache) rules out almost
    every row in one pass; only the few it lets through are looked up exactly.
    """
    bits = 1 << max(16, min(24, int(len(wanted) * 16).bit_length()))
    low = np.array(bits - 1, dtype=key.dtype)
    bitmap = np.zeros(bits, dtype=bool)
    bitmap[wanted & low] = True
    candidates = np.flatnonzero(bitmap[key & low])
    found = key[candidates]
    slot = np.minimum(np.searchsorted(wanted, found), len(wanted) - 1)
    return candidates[wanted[slot] == found]


def _ascending(values: np.ndarray) -> bool:
    return len(values) < 2 or bool(np.all(values[1:] >= values[:-1]))


def _period_order(period: np.ndarray) -> np.ndarray | None:
    """The row order by period (stable), or ``None`` when the rows are in it already, as
    exported files usually are. The gap engine finds a horizon as one run of rows then."""
    if len(period) < 2 or bool(np.all(period[1:] >= period[:-1])):
        return None
    low = int(period.min())
    if int(period.max()) - low < 2**15:
        # Months as int16: numpy sorts 16-bit integers stably by radix, in linear time.
        return np.argsort((period - low).astype(np.int16), kind="stable")
    return np.argsort(period, kind="stable")
