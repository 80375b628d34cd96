"""Reading planning data (docs/reference/data-format.md) into one canonical, validated table.

Every source (CSV, XLSX, Parquet, SQL) becomes a pyarrow table first; one pipeline then
normalises it into a :class:`PlanningTable`: one row per (period, metric, dimension
values) with float ``plan``, ``forecast`` and ``actual`` columns (NaN = missing).

Speed matters (files of millions of rows), so work per *value* (parsing periods,
trimming names, mapping measure aliases) is done on dictionary-encoded columns, i.e.
once per distinct value, and duplicate keys are merged with numpy on integer codes.

Rows are numbered as a spreadsheet shows them: the header is row 1, so the first data
row of a CSV or XLSX file is row 2. Parquet and SQL sources have no header row, so
their first record is row 1.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sop_core.periods import Month, format_month, parse_month

MEASURES = ("plan", "forecast", "actual")
MEASURE_ALIASES = {
    "plan": "plan", "budget": "plan", "target": "plan", "objective": "plan",
    "forecast": "forecast", "latest": "forecast", "le": "forecast", "fcst": "forecast",
    "latest_view": "forecast", "latest_estimate": "forecast",
    "actual": "actual", "actuals": "actual", "act": "actual",
}  # fmt: skip
MEASURE_HELP = "plan/budget/target, forecast/latest/le, actual/actuals"
MEASURE_COLUMN_NAMES = ("measure", "version", "scenario")
VALUE_COLUMN = "value"
DEFAULT_METRIC = "value"
BLANK_MEMBER = "(blank)"
# Filter keywords: a dimension with one of these names could never be filtered on.
RESERVED_NAMES = frozenset({"by", "horizon", "metric", "as_of", "asof", "period"})

ProgressCallback = Callable[[str, float], None]
# Threads for the column-by-column work of a load (Arrow's CSV reader uses every core too).
WORKERS = min(8, os.cpu_count() or 1)


class LoadError(ValueError):
    """A load rejected as a whole, naming where the problem is."""

    def __init__(self, source: str, message: str, *, row: int | None = None,
                 column: str | None = None) -> None:
        self.source, self.row, self.column, self.detail = source, row, column, message
        where = [source]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass(frozen=True)
class PlanningTable:
    """Validated planning data: the content of one snapshot."""

    frame: pd.DataFrame  # period (int32 month), metric + dimensions (categorical), measures
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]
    source: str
    rows_read: int
    rows_merged: int
    ignored_columns: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    declared_as_of: Month | None = None  # `sopgap load --as-of` overrides the data's own

    @property
    def rows(self) -> int:
        return len(self.frame)

    @cached_property
    def as_of(self) -> Month | None:
        """The latest period with any non-missing actual, unless declared
        (docs/reference/gap-maths.md)."""
        if self.declared_as_of is not None:
            return self.declared_as_of
        has_actual = self.frame["actual"].notna().to_numpy()
        if not has_actual.any():
            return None
        return int(self.frame["period"].to_numpy()[has_actual].max())

    @cached_property
    def sorted_by_period(self) -> bool:
        """Rows in period order (the loader's output is): a horizon is then one run."""
        period = self.frame["period"].to_numpy()
        return bool(np.all(period[1:] >= period[:-1]))

    @cached_property
    def items(self) -> tuple[np.ndarray, int]:
        """Each row's item (its combination of dimension members) and how many items
        there are: price–volume–mix works per item. Computed once per table."""
        if not self.dimensions:
            return np.zeros(self.rows, dtype=np.int64), 1
        return _group([self.frame[name].array.codes for name in self.dimensions])

    @cached_property
    def periods(self) -> tuple[Month, Month] | None:
        if self.frame.empty:
            return None
        period = self.frame["period"].to_numpy()
        return int(period.min()), int(period.max())


def normalise_name(name: object) -> str:
    """Column names to lower snake_case: ``"Sales Région "`` → ``sales_region``."""
    plain = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return re.sub(r"[^0-9a-zA-Z]+", "_", plain.strip()).strip("_").lower()


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------

def read_file(path: str | Path, *, metric: str | None = None,
              progress: ProgressCallback | None = None) -> PlanningTable:
    """Read a CSV/TSV, XLSX or Parquet file into a validated :class:`PlanningTable`."""
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
    report = progress or (lambda _stage, _fraction: None)
    report("reading", 0.0)
    if suffix in {".xlsx", ".xlsm"}:  # at most 1,048,576 rows: memory is no concern
        table, notes = _read_xlsx(path, source)
        result = normalise(table, source=source, metric=metric, first_row=2, progress=report)
        result = dataclasses.replace(result, notes=(*notes, *result.notes))
    else:
        # The table goes straight into normalise(), with no name kept here, so that
        # normalise can free it once it holds its own arrays: ~0.6 GB off the peak at 10M.
        parquet = suffix in {".parquet", ".pq"}
        result = normalise(_read_table(path, source, suffix), source=source, metric=metric,
                           first_row=1 if parquet else 2, progress=report,
                           exact_dictionaries=not parquet)
    report("done", 1.0)
    return result


def _read_table(path: Path, source: str, suffix: str) -> pa.Table:
    if suffix in {".csv", ".txt", ".tsv"}:
        return _read_csv(path, source, delimiter="\t" if suffix == ".tsv" else None)
    return _read_parquet(path, source)


def _header(path: Path, source: str, delimiter: str | None) -> tuple[list[str], str, str]:
    """The header names, the delimiter and an encoding that reads the file."""
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    if head.startswith(UTF16_BOMS):
        # Excel's "Unicode Text" and some exports: UTF-16 says so with a byte-order mark.
        encoding = "utf-16"
        text = head[: len(head) // 2 * 2].decode(encoding, errors="ignore")
    elif b"\x00" in head:
        raise LoadError(source, "this is not a text table (binary content); "
                                "use CSV, XLSX or Parquet")
    else:
        encoding = "utf8"
        try:
            text = head.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut by the 64 KiB boundary
                encoding = _fallback_encoding(head, source)
                text = head.decode(encoding)
            else:
                text = head[: exc.start].decode("utf-8-sig")
    first_line = text.splitlines()[0] if text.strip() else ""
    if not first_line.strip():
        raise LoadError(source, "the file has no header row")
    if delimiter is None:
        counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
        delimiter = max(counts, key=lambda d: counts[d])
        if counts[delimiter] == 0:
            delimiter = ","
    import csv

    names = next(csv.reader([first_line], delimiter=delimiter))
    return names, delimiter, encoding


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Two or more bytes in a row outside ASCII: in Windows-1252 text they are letters
# ("öß" in "Größe"); bytes of a multi-byte encoding (Shift-JIS, GBK, EUC-KR) read as
# Windows-1252 are mostly punctuation and symbols ("東京" reads "“Œ‹ž").
_NON_ASCII_RUN = re.compile(rb"[\x80-\xff]{2,}")


def _fallback_encoding(data: bytes, source: str) -> str:
    """The encoding of text that is not UTF-8: Windows-1252 (Excel's "CSV" on Windows,
    which covers Latin-1 text too), if that is what it looks like. Anything else is
    refused, naming the row, rather than stored as garbled names."""
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if not data[: exc.start].isascii():  # UTF-8 until there: a UTF-8 file, damaged
            raise _not_text(source, data, exc.start) from None
    else:
        return "utf8"
    bad: int | None = None
    try:
        data.decode("cp1252")
    except UnicodeDecodeError as exc:  # a byte Windows-1252 leaves undefined
        bad = exc.start
    for run in _NON_ASCII_RUN.finditer(data, 0, len(data) if bad is None else bad):
        if not run.group().decode("cp1252", errors="replace").isalpha():
            bad = run.start()
            break
    if bad is not None:
        raise _not_text(source, data, bad)
    return "cp1252"


def _not_text(source: str, data: bytes, offset: int) -> LoadError:
    line = data.count(b"\n", 0, offset) + 1  # the header is row 1, as in a spreadsheet
    return LoadError(source, "the text is neither UTF-8 nor Windows-1252: save the file as "
                             "'CSV UTF-8' and load it again", row=line)


def _read_csv(path: Path, source: str, delimiter: str | None) -> pa.Table:
    from pyarrow import csv as pacsv

    names, delimiter, encoding = _header(path, source, delimiter)
    dictionary = pa.dictionary(pa.int32(), pa.string())
    column_types = {}
    for name in names:
        key = normalise_name(name)
        measure = key in MEASURE_ALIASES or key == VALUE_COLUMN
        column_types[name] = pa.float64() if measure else dictionary

    def attempt(enc: str, types: dict[str, pa.DataType]) -> pa.Table:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=enc, block_size=8 << 20),
            # Blank lines are kept (as empty rows, dropped later) so that row numbers
            # stay the ones a spreadsheet shows.
            parse_options=pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=False),
            # Null markers ("NA", "null"…) mean "missing" in measures only: text is text,
            # and "NA" is North America.
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
        return _without_blank_lines(table)

    try:
        try:
            return _numbers_as_measures_only(attempt(encoding, column_types))
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            message = str(exc)
            if isinstance(exc, UnicodeDecodeError) or "utf8" in message.lower():
                with path.open("rb") as handle:
                    encoding = _fallback_encoding(handle.read(), source)
                return _numbers_as_measures_only(attempt(encoding, column_types))
            if "conversion error" not in message:
                raise
        # A measure column holds something that is not a number: read those columns as
        # text so that normalise() can name the first bad row.
        text_types = {n: (pa.string() if t == pa.float64() else t) for n, t in column_types.items()}
        return _numbers_as_measures_only(attempt(encoding, text_types))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise LoadError(source, f"could not read as CSV: {_arrow_reason(exc)}") from None


def _distinct(column: pa.ChunkedArray) -> set[str]:
    """The distinct texts of a column. A CSV dictionary column is read from its chunks'
    dictionaries (a few hundred values each) instead of decoding every row."""
    if pa.types.is_dictionary(column.type):
        return {value for chunk in column.chunks for value in chunk.dictionary.to_pylist()}
    return set(pc.unique(column.cast(pa.string())).to_pylist())


def _without_blank_lines(table: pa.Table) -> pa.Table:
    """Drop empty lines, keeping each remaining row's spreadsheet number in ``__row__``."""
    period = next((n for n in table.column_names if normalise_name(n) == "period"), None)
    if period is None or "" not in _distinct(table.column(period)):
        return table  # an empty line has an empty period: none here (the usual case)
    blank = None
    for column in table.columns:
        empty = pc.equal(pc.cast(column, pa.string()), "") if not pa.types.is_floating(
            column.type) else pc.is_null(column)
        empty = pc.fill_null(empty, True)
        blank = empty if blank is None else pc.and_(blank, empty)
    if blank is None or not pc.any(blank).as_py():
        return table
    rows = pa.array(np.arange(2, table.num_rows + 2, dtype=np.int64))
    return table.append_column("__row__", rows).filter(pc.invert(blank))


def _numbers_as_measures_only(table: pa.Table) -> pa.Table:
    """A CSV column of numbers that is not a measure is not a dimension (as in XLSX and
    Parquet, where types say so): mark it numeric so that it is ignored, with a note.
    Checked on the distinct values only."""
    special = {"period", "metric", VALUE_COLUMN, *MEASURE_COLUMN_NAMES}
    for index, name in enumerate(table.column_names):
        column = table.column(name)
        key = normalise_name(name)
        if key in special or key in MEASURE_ALIASES or not pa.types.is_dictionary(column.type):
            continue
        values = [v for v in _distinct(column) if v]
        if values and all(_is_number(v) for v in values):
            table = table.set_column(index, name, pa.nulls(table.num_rows, pa.float64()))
    return table


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _arrow_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0]
    return text[:300]


def _read_xlsx(path: Path, source: str) -> tuple[pa.Table, tuple[str, ...]]:
    """The workbook's data sheet as a table, and a note saying which sheet that was when
    it is not the first."""
    try:
        sheet, titles = _data_sheet(path, source)
        # openpyxl (data_only) returns the values Excel last calculated for formulas.
        frame = pd.read_excel(path, sheet_name=sheet, dtype=object, engine="openpyxl",
                              keep_default_na=False, na_values=[""])
    except LoadError:
        raise
    except Exception as exc:  # openpyxl raises many kinds for a file that is not XLSX
        raise LoadError(source, f"could not read as XLSX: {_arrow_reason(exc)}") from None
    frame = frame.dropna(how="all")
    columns = {}
    measures = []
    for name in frame.columns:
        values = frame[name]
        key = normalise_name(name)
        if key in MEASURE_ALIASES or key == VALUE_COLUMN:
            measures.append(name)
            columns[str(name)] = pa.array(values.map(_excel_number), type=pa.string())
        elif values.map(lambda v: (isinstance(v, int | float) and not isinstance(v, bool))
                        or v is None or (isinstance(v, float) and math.isnan(v))).all() \
                and values.notna().any() and key not in {"period", "metric", *MEASURE_COLUMN_NAMES}:
            columns[str(name)] = pa.array(values.astype(float), type=pa.float64())
        else:
            columns[str(name)] = pa.array(values.map(_excel_text), type=pa.string())
    _refuse_formulas_without_values(path, source, sheet, frame, measures)
    # Keep spreadsheet row numbers: pandas dropped fully blank rows, so carry the index.
    table = pa.table(columns)
    table = table.append_column("__row__", pa.array(frame.index.to_numpy() + 2,
                                                     type=pa.int64()))
    notes = () if sheet == titles[0] else (
        f"read sheet '{sheet}', the first with a 'period' column",)
    return table, notes


def _data_sheet(path: Path, source: str) -> tuple[str, list[str]]:
    """The first worksheet whose header row has a ``period`` column (a cover or "read me"
    sheet often comes first), and the titles of all worksheets."""
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        titles = [sheet.title for sheet in workbook.worksheets]
        for sheet in workbook.worksheets:
            header = next(sheet.iter_rows(max_row=1, values_only=True), ())
            if any(normalise_name(cell) == "period" for cell in header if cell is not None):
                return sheet.title, titles
    finally:
        workbook.close()
    if not titles:
        raise LoadError(source, "the workbook has no worksheet")
    if len(titles) > 1:
        raise LoadError(source, "no sheet has a 'period' column in its first row; sheets: "
                                + ", ".join(f"'{title}'" for title in titles[:10]))
    return titles[0], titles


def _refuse_formulas_without_values(path: Path, source: str, sheet: str, frame: pd.DataFrame,
                                    measures: list[str]) -> None:
    """A measure cell read as blank that holds a formula: the workbook was written by a
    program that does not calculate (not Excel), so the value is unknown, not missing."""
    blank = {name: set(frame.index[frame[name].isna()]) for name in measures}
    if not any(blank.values()):
        return
    import openpyxl

    positions = {name: list(frame.columns).index(name) for name in measures}
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=False)
    try:
        for index, cells in enumerate(workbook[sheet].iter_rows(min_row=2, values_only=True)):
            for name, position in positions.items():
                if index not in blank[name] or position >= len(cells):
                    continue
                formula = getattr(cells[position], "text", cells[position])  # ArrayFormula
                if isinstance(formula, str) and formula.startswith("="):
                    raise LoadError(source, f"the formula {_quote(formula)} has no computed "
                                            "value: open the file in Excel, save it and load "
                                            "it again", row=index + 2, column=str(name))
    finally:
        workbook.close()


def _excel_number(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _excel_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_parquet(path: Path, source: str) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise LoadError(source, f"could not read as Parquet: {_arrow_reason(exc)}") from None


# --------------------------------------------------------------------------------------
# The one pipeline every source goes through
# --------------------------------------------------------------------------------------

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


def _roles(table: pa.Table, source: str) -> _Columns:
    seen: dict[str, str] = {}
    for name in table.column_names:
        if name == "__row__":
            continue
        key = normalise_name(name)
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
    return _Columns(period=seen["period"], metric=seen.get("metric"), measure=measure,
                    value=value, wide=wide, dimensions=dimensions, ignored=ignored)


def _is_nested(data_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return pa.types.is_nested(data_type)


def _as_text(table: pa.Table, source: str, rows: _Rows) -> pa.Table:
    """Binary columns (Parquet's untyped strings) as UTF-8 text; the first value that is
    not UTF-8 is an error naming its row."""
    for index, name in enumerate(table.column_names):
        column = table.column(name)
        binary = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if not (pa.types.is_binary(binary) or pa.types.is_large_binary(binary)):
            continue
        try:
            text = column.cast(pa.string())
        except pa.ArrowInvalid:
            values = column.to_pylist()
            bad = next(i for i, v in enumerate(values) if v is not None and not _utf8(v))
            raise LoadError(source, f"{_quote(values[bad])} is not UTF-8 text",
                            row=rows(bad), column=name) from None
        table = table.set_column(index, name, text)
    return table


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_numeric(data_type: pa.DataType) -> bool:
    return (pa.types.is_integer(data_type) or pa.types.is_floating(data_type)
            or pa.types.is_decimal(data_type) or pa.types.is_boolean(data_type))


class _Rows:
    """Turns a 0-based record index into the row number people see."""

    def __init__(self, table: pa.Table, first_row: int) -> None:
        self._explicit = (table.column("__row__").to_numpy()
                          if "__row__" in table.column_names else None)
        self._first = first_row

    def __call__(self, index: int) -> int:
        if self._explicit is not None:
            return int(self._explicit[index])
        return index + self._first


def _encode(column: pa.ChunkedArray, clean: Callable[[str], object], *,
            exact: bool = False) -> tuple[np.ndarray, list]:
    """Dictionary codes of a text column after ``clean`` on each distinct value.

    ``clean`` runs once per distinct value; values that clean to the same thing share a
    code. Missing values get code -1. The chunks' dictionaries are unified first (in
    Arrow), so the Python work is one pass over the distinct values, and rows are
    touched once, by one numpy take per chunk. ``exact``: a dictionary column's
    dictionaries hold only values its rows use, so none needs to be dropped.
    """
    if not pa.types.is_dictionary(column.type):
        exact = True  # dictionary_encode's are
        column = pc.dictionary_encode(column.cast(pa.string()) if not pa.types.is_string(
            column.type) else column)
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    column = column.unify_dictionaries()
    dictionary = column.chunk(0).dictionary.to_pylist() if column.num_chunks else []
    mapping = np.empty(len(dictionary) + 1, dtype=np.int32)  # the last slot: a missing value
    mapping[-1] = -1
    categories: list = []
    code_of: dict = {}  # cleaned value -> code
    for i, raw in enumerate(dictionary):
        value = clean(raw)
        if value is not None and value not in code_of:
            code_of[value] = len(categories)
            categories.append(value)
        mapping[i] = -1 if value is None else code_of[value]
    missing = bool((mapping[:-1] < 0).any())
    codes = np.empty(len(column), dtype=np.int32)
    start = 0
    for chunk in column.chunks:
        indices = chunk.indices
        if indices.null_count:
            indices = indices.fill_null(-1)
            missing = True
        # "wrap": -1 is the last slot, as with the default "raise", which is 3× slower
        # with ``out`` (it buffers the output to leave it untouched on an error).
        np.take(mapping, indices.to_numpy(), out=codes[start:start + len(chunk)], mode="wrap")
        start += len(chunk)
    if exact:
        return codes, categories
    # A Parquet dictionary may hold values no row uses: they are not members.
    used = np.bincount(codes[codes >= 0] if missing else codes, minlength=len(categories)) > 0
    if not used.all():
        renumber = np.append(np.cumsum(used) - 1, -1).astype(np.int32)
        codes = renumber[codes]  # -1 stays -1 (the last slot)
        categories = [value for value, kept in zip(categories, used, strict=True) if kept]
    return codes, categories


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _first_row_where(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _numbers(table: pa.Table, name: str, source: str, rows: _Rows) -> np.ndarray:
    """A measure column as float64 (NaN = missing); the first non-number is an error."""
    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    if pa.types.is_boolean(column.type):
        raise LoadError(source, "holds true/false values, not numbers", column=name)
    if _is_numeric(column.type):
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    else:
        as_text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)
        stripped = as_text.str.strip()
        stripped = stripped.where(~stripped.isin(["", "NA", "N/A", "n/a", "null", "NULL",
                                                  "nan", "NaN", "-"]), None)
        values = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & stripped.notna().to_numpy()
        if bad.any():
            index = _first_row_where(bad)
            raise LoadError(source, f"{_quote(as_text.iloc[index])} is not a number",
                            row=rows(index), column=name)
    infinite = np.isinf(values)
    if infinite.any():
        raise LoadError(source, "infinite value", row=rows(_first_row_where(infinite)),
                        column=name)
    return values


def _quote(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def normalise(table: pa.Table, *, source: str, metric: str | None = None,
              first_row: int = 2, progress: ProgressCallback | None = None,
              exact_dictionaries: bool = False) -> PlanningTable:
    """Validate any source table and reduce it to the canonical planning table.

    The Arrow table is let go as soon as its columns are encoded: called as
    ``normalise(read(...))`` that frees its memory before the frame is built.
    ``exact_dictionaries``: the table's dictionary columns hold no value that no row
    uses (true of the CSV reader's; a Parquet file's may), which saves a pass per column.
    """
    if progress:
        progress("validating", 0.5)
    rows = _Rows(table, first_row)
    rows_read = table.num_rows
    if rows_read == 0:
        raise LoadError(source, "no data rows (only a header)")
    roles = _roles(table, source)
    table = _as_text(table, source, rows)

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
        measure_jobs = {m: pool.submit(_numbers, table, name, source, rows)
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
            measures, merged = _long_measures(table, roles, source, rows, keys)
        else:
            measures = {m: (measure_jobs[m].result() if m in measure_jobs
                            else np.full(rows_read, np.nan)) for m in MEASURES}
        del table, dimension_jobs, measure_jobs
        pa.default_memory_pool().release_unused()

        bounds = [(min(months), max(months) - min(months) + 1),
                  *((0, max(len(categories), 1)) for _, _, categories in keys[1:])]
        kept, measures = _merge_duplicates([codes for _, codes, _ in keys], measures, bounds)
        if kept is not None:  # (the measures are merged and taken already)
            keys, _ = _take(pool, keys, {}, kept)
        if roles.measure is None:
            merged = rows_read - len(keys[0][1])
        del kept
        by_period = _period_order(keys[0][1])
        if by_period is not None:
            keys, measures = _take(pool, keys, measures, by_period)
        del by_period

    metrics = tuple(keys[1][2])
    columns: dict[str, object] = {"period": keys[0][1].astype(np.int32, copy=False)}
    for name, codes, categories in keys[1:]:
        # Valid by construction (-1 … len - 1): pandas' own check is a pass per column.
        columns[name] = pd.Categorical.from_codes(codes, categories=categories,
                                                  validate=False)
    del keys
    columns.update(measures)
    del measures
    frame = pd.DataFrame(columns, copy=False)
    del columns
    notes = []
    if roles.ignored:
        notes.append("ignored numeric columns that are not measures: " + ", ".join(roles.ignored))
    return PlanningTable(
        frame=frame,
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
    """Every column at ``rows`` (a mask or indices), the columns shared between cores."""
    keys_at = pool.map(lambda key: (key[0], key[1][rows], key[2]), keys)
    measures_at = pool.map(lambda item: (item[0], item[1][rows]), measures.items())
    return list(keys_at), dict(measures_at)


def _long_measures(
    table: pa.Table, roles: _Columns, source: str, rows: _Rows,
    keys: KeyColumns,
) -> tuple[dict[str, np.ndarray], int]:
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
    value = _numbers(table, roles.value, source, rows)
    arrays = {m: np.where(measure_index == i, value, np.nan) for i, m in enumerate(MEASURES)}
    # Duplicates are rows sharing period, metric, dimensions *and* measure.
    _, groups = _group([*(k[1] for k in keys), measure_index.astype(np.int32)])
    return arrays, len(measure_index) - groups


Bounds = Sequence[tuple[int, int]]  # per column: (lowest value, how many values)


def _row_key(codes: Sequence[np.ndarray], bounds: Bounds | None = None) -> np.ndarray | None:
    """One integer per row for its combination of codes (mixed radix): int32 when every
    combination fits, which sorts twice as fast as int64; ``None`` when not even int64
    holds them all. ``bounds``, when the caller knows them, saves two passes a column."""
    if bounds is None:
        bounds = [(int(a.min()), int(a.max()) - int(a.min()) + 1) if len(a) else (0, 1)
                  for a in codes]
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
        frame = pd.DataFrame(dict(enumerate(codes)))
        key = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    return key


def _group(codes: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """Each row's group (rows sharing all codes) and how many groups there are. By
    sorting: at millions of rows numpy's SIMD sort is several times faster than hashing,
    whose table no longer fits in the CPU caches."""
    key = _keys(codes)
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
    are kept (``None``: all, there were no duplicates), and the kept rows' measures, each
    the sum of its group's (a group whose values are all missing stays missing).

    Duplicates are the exception (a correction batch, a file at a finer grain than its
    columns), so the keys are sorted without their rows (4× cheaper than an argsort) to
    find the repeated ones, and the rows are looked at only where a key repeats; the
    kept rows stay in file order, so taking them is one sequential pass.
    """
    key = _keys(codes, bounds)
    ordered = np.sort(key)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
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
        merged[name] = values[kept]
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


# --------------------------------------------------------------------------------------
# SQL source: the aggregation runs in the database
# --------------------------------------------------------------------------------------

def read_sql(url: str, query: str, *, metric: str | None = None,
             source: str = "SQL query") -> PlanningTable:
    """Run ``query`` against any SQLAlchemy URL, pushing the merge (GROUP BY) down to it."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
    except Exception as exc:
        raise LoadError(source, f"bad database URL: {type(exc).__name__}") from None
    try:
        with engine.connect() as connection:
            sample_sql = sa.select(sa.text("*")).select_from(
                sa.text(f"({query}) AS src")).limit(1000)
            sample = connection.execute(sample_sql)
            names = list(sample.keys())
            sample_rows = sample.fetchall()
            sample_table = pa.table({n: pa.array([r[i] for r in sample_rows])
                                     for i, n in enumerate(names)}) if sample_rows else None
            if sample_table is None:
                raise LoadError(source, "the query returned no rows")
            roles = _roles(sample_table, source)
            src = sa.text(query).columns(*[sa.column(n) for n in names]).subquery("src")
            group = [src.c[roles.period]]
            if roles.metric:
                group.append(src.c[roles.metric])
            if roles.measure:
                group.append(src.c[roles.measure])
            group += [src.c[name] for _, name in roles.dimensions]
            numbers = [roles.value] if roles.measure else list(roles.wide.values())
            statement = sa.select(
                *group, *[sa.func.sum(src.c[n]).label(n) for n in numbers],
                sa.func.count().label("__rows__"),
            ).group_by(*group)
            result = connection.execute(statement)
            grouped_rows = result.fetchall()
            out_names = list(result.keys())
    except LoadError:
        raise
    except Exception as exc:
        # The driver's message, without the URL (it may hold a password).
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:300]
        raise LoadError(source, f"the query failed: {reason}") from None
    finally:
        engine.dispose()
    columns = {n: pa.array([r[i] for r in grouped_rows]) for i, n in enumerate(out_names)}
    rows_read = int(sum(columns.pop("__rows__").to_pylist()))
    table = normalise(pa.table(columns), source=source, metric=metric, first_row=1)
    # Merged = rows the database summed into a group, plus what normalise() merged
    # (e.g. two dates of one month); long-form rows of different measures never count.
    merged_in_database = rows_read - len(grouped_rows)
    return dataclasses.replace(table, rows_read=rows_read,
                               rows_merged=merged_in_database + table.rows_merged)


def describe(table: PlanningTable) -> str:
    """One line people can read after a load."""
    span = table.periods
    months = f"{format_month(span[0])}..{format_month(span[1])}" if span else "no periods"
    return (f"{table.rows_read:,} rows read, {table.rows_merged:,} merged, {table.rows:,} kept; "
            f"{months}; metrics: {', '.join(table.metrics)}; "
            f"dimensions: {', '.join(table.dimensions) or 'none'}")
