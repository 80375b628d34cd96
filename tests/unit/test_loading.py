"""Reading planning data (docs/reference/data-format.md): every source, both forms, and
every rejection.

Files are built in ``tmp_path`` by the tests themselves. Row numbers follow the loader's
convention: in CSV/TSV/XLSX the header is row 1, so the first data row is row 2; Parquet
and SQL have no header row, so their first record is row 1.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import math
import random
import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from sop_core.loading import LoadError, PlanningTable, normalise_name, read_file, read_sql
from sop_core.periods import format_month

MEASURES = ("plan", "forecast", "actual")
FORMATS = ("csv", "tsv", "xlsx", "parquet")
Row = Sequence[object]


# --------------------------------------------------------------------------------------
# Writing test files
# --------------------------------------------------------------------------------------

def _text_cell(value: object) -> str:
    return "" if value is None else str(value)


def _parquet_column(values: list[object]) -> pa.Array:
    # A column holding any text is written as text (e.g. a bad number in a measure).
    if any(isinstance(v, str) for v in values):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return pa.array(values)


def write_table(path: Path, header: Sequence[str], rows: Sequence[Row]) -> Path:
    """Write ``header`` + ``rows`` in the format the file extension names."""
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv"}:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t" if suffix == ".tsv" else ",")
            writer.writerow(header)
            writer.writerows([_text_cell(v) for v in row] for row in rows)
    elif suffix == ".xlsx":
        workbook = openpyxl.Workbook()
        sheet = workbook.active
        sheet.append(list(header))
        for row in rows:
            sheet.append(list(row))
        workbook.save(path)
    elif suffix == ".parquet":
        columns = {name: _parquet_column([row[i] for row in rows])
                   for i, name in enumerate(header)}
        if not rows:
            columns = {name: pa.array([], type=pa.string()) for name in header}
        pq.write_table(pa.table(columns), path)
    else:  # pragma: no cover - a mistake in a test
        raise AssertionError(f"no writer for {suffix}")
    return path


def load(tmp_path: Path, fmt: str, header: Sequence[str], rows: Sequence[Row], *,
         metric: str | None = None) -> PlanningTable:
    return read_file(write_table(tmp_path / f"data.{fmt}", header, rows), metric=metric)


def first_data_row(fmt: str) -> int:
    """The row number people see for the first data record of a file of this format."""
    return 1 if fmt == "parquet" else 2


def content(table: PlanningTable) -> list[tuple[object, ...]]:
    """The table's rows as plain, sortable tuples (NaN → None)."""
    records = table.frame.to_dict("records")
    out = []
    for record in records:
        measures = tuple(None if math.isnan(record[m]) else float(record[m]) for m in MEASURES)
        out.append((format_month(record["period"]), str(record["metric"]),
                    *(str(record[d]) for d in table.dimensions), *measures))
    return sorted(out, key=repr)


def png_bytes() -> bytes:
    """A real 1×1 PNG image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------------------
# The same content from every format, in wide and long form
# --------------------------------------------------------------------------------------

WIDE_HEADER = ("Period", "Region", "Category", "Plan", "Forecast", "Actual")
WIDE_ROWS: list[Row] = [
    ("2026-01", "EU", "Snacks", 100.0, 90.0, 95.5),
    ("2026-01", "APAC", "Snacks", 50.0, 55.0, None),
    ("2026-02", "EU", "Dairy", 80.25, None, None),
    ("2026-03", "EU", "Snacks", 10.0, 12.0, None),
]
EXPECTED = sorted([
    ("2026-01", "value", "EU", "Snacks", 100.0, 90.0, 95.5),
    ("2026-01", "value", "APAC", "Snacks", 50.0, 55.0, None),
    ("2026-02", "value", "EU", "Dairy", 80.25, None, None),
    ("2026-03", "value", "EU", "Snacks", 10.0, 12.0, None),
], key=repr)


def long_form(header: Sequence[str], rows: Sequence[Row], *, measure_column: str = "Measure",
              names: Sequence[str] = MEASURES) -> tuple[tuple[str, ...], list[Row]]:
    """The wide rows as measure/value rows (a missing value has no row)."""
    key_count = len(header) - 3
    long_rows: list[Row] = []
    for row in rows:
        for name, value in zip(names, row[key_count:], strict=True):
            if value is not None:
                long_rows.append((*row[:key_count], name, value))
    return (*header[:key_count], measure_column, "Value"), long_rows


@pytest.mark.parametrize("form", ["wide", "long"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_and_form_gives_the_same_table(tmp_path: Path, fmt: str, form: str) -> None:
    header, rows = (WIDE_HEADER, WIDE_ROWS) if form == "wide" else long_form(WIDE_HEADER,
                                                                              WIDE_ROWS)
    table = load(tmp_path, fmt, header, rows)
    assert table.dimensions == ("region", "category")
    assert table.metrics == ("value",)
    assert content(table) == EXPECTED
    assert table.rows_read == len(rows)
    assert table.rows_merged == 0
    assert table.source == f"data.{fmt}"


@pytest.mark.parametrize(("raw", "normalised"), [
    ("Sales Region ", "sales_region"),
    ("  Product Category", "product_category"),
    ("customer-name", "customer_name"),
    ("Sub.Channel (new)", "sub_channel_new"),
    ("SEGMENT", "segment"),
])
def test_column_names_become_lower_snake_case(tmp_path: Path, raw: str, normalised: str) -> None:
    assert normalise_name(raw) == normalised
    table = load(tmp_path, "csv", (" PERIOD", raw, "Plan ", " Forecast"),
                 [("2026-01", "A", 1, 2)])
    assert table.dimensions == (normalised,)
    assert content(table) == [("2026-01", "value", "A", 1.0, 2.0, None)]


@pytest.mark.parametrize("names", [
    ("Budget", "Latest", "Actuals"),
    ("Target", "LE", "Actual"),
    ("plan", "forecast", "actuals"),
])
def test_wide_measure_aliases(tmp_path: Path, names: tuple[str, str, str]) -> None:
    header = (*WIDE_HEADER[:3], *names)
    assert content(load(tmp_path, "csv", header, WIDE_ROWS)) == EXPECTED


@pytest.mark.parametrize("column", ["measure", "Version", "SCENARIO"])
@pytest.mark.parametrize("names", [
    ("plan", "forecast", "actual"),
    ("Budget", "Latest", "Actuals"),
    ("target", "le", "actual"),
])
def test_long_measure_column_and_value_aliases(tmp_path: Path, column: str,
                                               names: tuple[str, str, str]) -> None:
    header, rows = long_form(WIDE_HEADER, WIDE_ROWS, measure_column=column, names=names)
    table = load(tmp_path, "csv", header, rows)
    assert table.dimensions == ("region", "category")
    assert content(table) == EXPECTED


# --------------------------------------------------------------------------------------
# Periods: a date is read as its month
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "value"), [
    ("csv", "2026-03-15"),
    ("csv", "2026-03-31 00:00:00"),
    ("csv", "2026-03"),
    ("xlsx", dt.datetime(2026, 3, 15, 0, 0)),
    ("xlsx", dt.date(2026, 3, 31)),
    ("xlsx", "2026-03"),
    ("parquet", dt.date(2026, 3, 15)),
    ("parquet", dt.datetime(2026, 3, 15, 10, 30)),
])
def test_a_date_in_period_is_read_as_its_month(tmp_path: Path, fmt: str, value: object) -> None:
    table = load(tmp_path, fmt, ("period", "region", "plan", "forecast"),
                 [(value, "EU", 1.0, 2.0)])
    assert content(table) == [("2026-03", "value", "EU", 1.0, 2.0, None)]


def test_dates_of_the_same_month_are_one_row(tmp_path: Path) -> None:
    table = load(tmp_path, "csv", ("period", "region", "plan", "forecast"),
                 [("2026-03-01", "EU", 1, 2), ("2026-03-31", "EU", 10, 20), ("2026-03", "EU", 100,
                                                                            200)])
    assert content(table) == [("2026-03", "value", "EU", 111.0, 222.0, None)]
    assert table.rows_merged == 2


# --------------------------------------------------------------------------------------
# Duplicates are summed and counted
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_wide_duplicates_are_summed_and_counted(tmp_path: Path, fmt: str) -> None:
    rows = [
        ("2026-01", "EU", 1.0, 2.0, 3.0),
        ("2026-01", "EU", 10.0, None, 30.0),
        ("2026-01", "LATAM", 5.0, 5.0, None),
        ("2026-01", "EU", 100.0, 200.0, None),
    ]
    table = load(tmp_path, fmt, ("period", "region", "plan", "forecast", "actual"), rows)
    assert content(table) == sorted([
        ("2026-01", "value", "EU", 111.0, 202.0, 33.0),
        ("2026-01", "value", "LATAM", 5.0, 5.0, None),
    ], key=repr)
    assert (table.rows_read, table.rows_merged, table.rows) == (4, 2, 2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_duplicates_are_summed_and_counted(tmp_path: Path, fmt: str) -> None:
    rows = [
        ("2026-01", "EU", "plan", 1.0),
        ("2026-01", "EU", "budget", 2.0),  # the same measure under another name
        ("2026-01", "EU", "forecast", 5.0),
        ("2026-01", "EU", "actual", 7.0),
        ("2026-01", "EU", "actuals", 0.5),
    ]
    table = load(tmp_path, fmt, ("period", "region", "measure", "value"), rows)
    assert content(table) == [("2026-01", "value", "EU", 3.0, 5.0, 7.5)]
    assert (table.rows_read, table.rows_merged, table.rows) == (5, 2, 1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_rows_of_different_measures_are_not_merges(tmp_path: Path, fmt: str) -> None:
    rows = [
        ("2026-01", "EU", "plan", 1.0),
        ("2026-01", "EU", "forecast", 2.0),
        ("2026-01", "EU", "actual", 3.0),
        ("2026-02", "EU", "plan", 4.0),
    ]
    table = load(tmp_path, fmt, ("period", "region", "measure", "value"), rows)
    assert (table.rows_read, table.rows_merged, table.rows) == (4, 0, 2)


@pytest.mark.parametrize("form", ["wide", "long"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_duplicates_that_are_all_missing_stay_missing(tmp_path: Path, fmt: str,
                                                      form: str) -> None:
    wide = [
        ("2026-01", "EU", 1.0, None, None),
        ("2026-01", "EU", 2.0, 4.0, None),
    ]
    if form == "wide":
        header, rows = ("period", "region", "plan", "forecast", "actual"), wide
    else:  # long rows with blank values
        header = ("period", "region", "measure", "value")
        rows = [(p, r, m, v) for p, r, *values in wide
                for m, v in zip(MEASURES, values, strict=True)]
    table = load(tmp_path, fmt, header, rows)
    assert content(table) == [("2026-01", "value", "EU", 3.0, 4.0, None)]
    assert math.isnan(table.frame["actual"].iloc[0])  # missing, not 0


# --------------------------------------------------------------------------------------
# Metric column, other columns, members
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("header_extra", "metric_arg", "expected_metrics"), [
    ((), None, ("value",)),
    ((), "revenue", ("revenue",)),
    ((), "Net Revenue", ("net_revenue",)),
    (("Metric",), None, ("revenue", "volume")),
])
def test_metric_column_is_optional(tmp_path: Path, header_extra: tuple[str, ...],
                                   metric_arg: str | None,
                                   expected_metrics: tuple[str, ...]) -> None:
    if header_extra:
        header = ("period", "region", *header_extra, "plan", "forecast")
        rows: list[Row] = [("2026-01", "EU", "Revenue", 10.0, 11.0),
                           ("2026-01", "EU", "volume", 1.0, 2.0)]
    else:
        header = ("period", "region", "plan", "forecast")
        rows = [("2026-01", "EU", 10.0, 11.0)]
    table = load(tmp_path, "csv", header, rows, metric=metric_arg)
    assert table.metrics == expected_metrics
    assert table.dimensions == ("region",)
    assert sorted(content(table)) == sorted(
        ("2026-01", m, "EU", *r[-2:], None) for m, r in zip(expected_metrics, rows, strict=True))


@pytest.mark.parametrize("fmt", [
    "csv",
    "xlsx",
    "parquet",
])
def test_numeric_columns_that_are_not_measures_are_ignored_with_a_note(tmp_path: Path,
                                                                       fmt: str) -> None:
    table = load(tmp_path, fmt, ("period", "region", "store_id", "plan", "forecast"),
                 [("2026-01", "EU", 101, 1.0, 2.0), ("2026-02", "EU", 102, 3.0, 4.0)])
    assert table.dimensions == ("region",)
    assert table.ignored_columns == ("store_id",)
    assert any("store_id" in note for note in table.notes)


@pytest.mark.parametrize(("fmt", "blank"), [
    ("csv", None), ("csv", "   "), ("xlsx", None), ("parquet", None), ("parquet", ""),
])
def test_a_blank_dimension_value_is_its_own_member(tmp_path: Path, fmt: str,
                                                   blank: str | None) -> None:
    table = load(tmp_path, fmt, ("period", "region", "channel", "plan", "forecast"),
                 [("2026-01", "EU", blank, 1.0, 2.0), ("2026-01", "EU", "Retail", 3.0, 4.0)])
    assert sorted(content(table)) == [
        ("2026-01", "value", "EU", "(blank)", 1.0, 2.0, None),
        ("2026-01", "value", "EU", "Retail", 3.0, 4.0, None),
    ]


@pytest.mark.parametrize("fmt", [
    "csv",
    "tsv",
    "xlsx",
    "parquet",
])
def test_the_member_na_is_not_a_missing_value(tmp_path: Path, fmt: str) -> None:
    table = load(tmp_path, fmt, ("period", "region", "plan", "forecast"),
                 [("2026-01", "NA", 1.0, 2.0), ("2026-01", "EU", 3.0, 4.0)])
    assert sorted(content(table)) == sorted([
        ("2026-01", "value", "NA", 1.0, 2.0, None),
        ("2026-01", "value", "EU", 3.0, 4.0, None),
    ])


@pytest.mark.parametrize("ascii_rows_before", [0, 5000])  # 5000 rows: past the first 64 KiB
def test_a_windows_1252_csv_loads(tmp_path: Path, ascii_rows_before: int) -> None:
    lines = ["period,city,plan,forecast"]
    lines += [f"2026-01,Paris {i:05d},1,1" for i in range(ascii_rows_before)]
    lines += ["2026-01,Köln,1,2", "2026-02,Zürich – Süd,3,4"]
    path = tmp_path / "excel.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    table = read_file(path)
    members = set(table.frame["city"].cat.categories)
    assert {"Köln", "Zürich – Süd"} <= members
    assert table.rows_read == ascii_rows_before + 2


@pytest.mark.parametrize("delimiter", [";", "|"])
def test_a_csv_with_another_delimiter_loads(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("\n".join(delimiter.join(map(_text_cell, row))
                              for row in [WIDE_HEADER, *WIDE_ROWS]) + "\n")
    assert content(read_file(path)) == EXPECTED


def test_a_utf8_bom_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("period,région,plan,forecast\n2026-01,Île,1,2\n".encode("utf-8-sig"))
    table = read_file(path)
    assert content(table) == [("2026-01", "value", "Île", 1.0, 2.0, None)]


def test_parquet_dictionary_values_no_row_uses_are_not_members(tmp_path: Path) -> None:
    # Parquet writers may keep a column's whole dictionary: an unused (even malformed)
    # value is neither a member nor an error.
    def dictionary(indices: list[int], values: list[str]) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(values))

    path = tmp_path / "dictionary.parquet"
    pq.write_table(pa.table({
        "period": dictionary([1, 1], ["not a month", "2026-01"]),
        "region": dictionary([2, 0], ["EU", "Unused", "NA"]),
        "plan": [1.0, 2.0], "forecast": [1.5, 3.0],
    }), path)
    table = read_file(path)
    assert content(table) == [("2026-01", "value", "EU", 2.0, 3.0, None),
                              ("2026-01", "value", "NA", 1.0, 1.5, None)]
    assert sorted(table.frame["region"].cat.categories) == ["EU", "NA"]


# --------------------------------------------------------------------------------------
# Rejections name the file, the row and the column
# --------------------------------------------------------------------------------------

def assert_load_error(error: LoadError, *, source: str, row: int | None, column: str | None,
                      fragment: str) -> None:
    message = str(error)
    assert (error.source, error.row, error.column) == (source, row, column), message
    assert message.startswith(source), message
    if row is not None:
        assert f"row {row}" in message
    if column is not None:
        assert f"column '{column}'" in message
    assert fragment in message
    assert "\n" not in message and len(message) <= 300, message
    assert "Traceback" not in message


@dataclass(frozen=True)
class Case:
    """A bad file: its header and rows, and what the error must say."""

    header: Sequence[str]
    rows: Sequence[Row]
    _: KW_ONLY
    index: int | None  # the bad record, 0-based (None: the error names no row)
    column: str | None
    fragment: str


GOOD = ("2026-01", "EU", 1.0, 2.0)
CASES = {
    "bad number": Case(
        ("Period", "Region", "Plan", "Forecast"),
        [GOOD, GOOD, ("2026-02", "EU", "12,5x", 2.0), GOOD],
        index=2, column="Plan", fragment="'12,5x' is not a number"),
    "bad period": Case(
        ("Period", "Region", "Plan", "Forecast"),
        [GOOD, ("2026-13", "EU", 1.0, 2.0), GOOD],
        index=1, column="Period", fragment="'2026-13' is not a month"),
    "period is a word": Case(
        ("Period", "Region", "Plan", "Forecast"),
        [GOOD, GOOD, GOOD, ("March", "EU", 1.0, 2.0)],
        index=3, column="Period", fragment="'March' is not a month"),
    "missing period": Case(
        ("Period", "Region", "Plan", "Forecast"),
        [GOOD, (None, "EU", 1.0, 2.0)],
        index=1, column="Period", fragment="missing period"),
    "infinite value": Case(
        ("Period", "Region", "Plan", "Forecast"),
        [GOOD, ("2026-02", "EU", 1.0, "inf")],
        index=1, column="Forecast", fragment="infinite"),
    "unknown measure": Case(
        ("period", "region", "Scenario", "value"),
        [("2026-01", "EU", "plan", 1.0), ("2026-01", "EU", "stretch", 2.0)],
        index=1, column="Scenario", fragment="unknown measure 'stretch'"),
    "no period column": Case(
        ("month", "region", "plan", "forecast"), [GOOD],
        index=None, column=None, fragment="missing column 'period'"),
    "no value column": Case(
        ("period", "region", "measure", "amount"), [("2026-01", "EU", "plan", 1.0)],
        index=None, column=None, fragment="missing column 'value'"),
    "no plan column": Case(
        ("period", "region", "forecast", "actual"), [GOOD],
        index=None, column=None, fragment="missing column 'plan'"),
    "plan alone": Case(
        ("period", "region", "plan", "comment"), [("2026-01", "EU", 1.0, "x")],
        index=None, column=None, fragment="missing column 'forecast' or 'actual'"),
    "two plan columns": Case(
        ("period", "region", "plan", "budget", "forecast"), [("2026-01", "EU", 1.0, 1.0, 2.0)],
        index=None, column="budget", fragment="both mean plan"),
    "duplicate columns": Case(
        ("period", "Region", "region ", "plan", "forecast"),
        [("2026-01", "EU", "EU", 1.0, 2.0)],
        index=None, column="region ", fragment="both read as 'region'"),
    "dimension called by": Case(
        ("period", "By", "plan", "forecast"), [GOOD],
        index=None, column="By", fragment="cannot be called 'by'"),
    "dimension called horizon": Case(
        ("period", "Horizon", "plan", "forecast"), [GOOD],
        index=None, column="Horizon", fragment="cannot be called 'horizon'"),
    "header only": Case(
        ("period", "region", "plan", "forecast"), [],
        index=None, column=None, fragment="no data rows"),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_file_is_rejected_naming_file_row_and_column(tmp_path: Path, fmt: str,
                                                          case: Case) -> None:
    path = write_table(tmp_path / f"sales.{fmt}", case.header, case.rows)
    with pytest.raises(LoadError) as caught:
        read_file(path)
    row = None if case.index is None else case.index + first_data_row(fmt)
    assert_load_error(caught.value, source=path.name, row=row, column=case.column,
                      fragment=case.fragment)


@pytest.mark.parametrize("fmt", [
    "csv",
    "xlsx",
])
def test_a_blank_row_does_not_shift_row_numbers(tmp_path: Path, fmt: str) -> None:
    path = write_table(tmp_path / f"gappy.{fmt}", ("period", "region", "plan", "forecast"),
                       [GOOD, (None, None, None, None), GOOD, ("2026-02", "EU", "n/a?", 1.0)])
    if fmt == "csv":  # a truly empty line, not a line of empty fields
        path.write_bytes(path.read_bytes().replace(b"\r\n,,,\r\n", b"\r\n\r\n"))
        assert path.read_text().splitlines()[2] == ""
    with pytest.raises(LoadError) as caught:
        read_file(path)
    assert_load_error(caught.value, source=path.name, row=5, column="plan",
                      fragment="'n/a?' is not a number")


@pytest.mark.slow
@pytest.mark.parametrize(("column", "bad", "fragment"), [
    ("actual", "oops", "'oops' is not a number"),
    ("period", "2026-00", "'2026-00' is not a month"),
    ("forecast", "-1e999", "infinite"),
])
def test_the_exact_row_is_named_in_the_last_row_of_a_large_file(
        tmp_path: Path, column: str, bad: str, fragment: str) -> None:
    rows = 200_000  # about 15 MB: several blocks for the CSV reader
    path = tmp_path / "large.csv"
    names = ["period", "customer", "plan", "forecast", "actual"]
    with path.open("w", newline="") as handle:
        handle.write(",".join(names) + "\n")
        handle.writelines(f"2026-{i % 12 + 1:02d},customer number {i:07d} of the large file,"
                          f"{i}.5,{i}.25,{i}\n" for i in range(rows - 1))
        last = {"period": "2026-12", "customer": "last", "plan": "1", "forecast": "2",
                "actual": "3", column: bad}
        handle.write(",".join(last[n] for n in names) + "\n")
    with pytest.raises(LoadError) as caught:
        read_file(path)
    assert_load_error(caught.value, source="large.csv", row=rows + 1, column=column,
                      fragment=fragment)


def _random_bytes(size: int, *, low: int = 0) -> bytes:
    generator = random.Random(20261122)
    return bytes(generator.randrange(low, 256) for _ in range(size))


NOT_A_TABLE: dict[str, Callable[[], bytes]] = {
    "random bytes": lambda: _random_bytes(8192),
    "a PNG": png_bytes,
    "plain text": lambda: b"Dear team,\nplease find the plan attached.\n",
    "a CSV": lambda: b"period,plan,forecast\n2026-01,1,2\n",
}


@pytest.mark.parametrize(("name", "kind"), [
    ("noise.csv", "random bytes"),
    ("noise.tsv", "random bytes"),
    ("picture.csv", "a PNG"),
    ("picture.xlsx", "a PNG"),
    ("picture.parquet", "a PNG"),
    ("letter.xlsx", "plain text"),
    ("letter.parquet", "plain text"),
    ("really_a_csv.xlsx", "a CSV"),
    ("really_a_csv.parquet", "a CSV"),
    ("noise.xlsx", "random bytes"),
])
def test_a_file_that_is_not_a_table_is_rejected(tmp_path: Path, name: str, kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(NOT_A_TABLE[kind]())
    with pytest.raises(LoadError) as caught:
        read_file(path)
    assert_load_error(caught.value, source=name, row=None, column=None, fragment="")


def test_binary_content_without_nul_bytes_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(_random_bytes(8192, low=1))
    with pytest.raises(LoadError, match=r"^odd\.csv"):
        read_file(path)


def test_a_csv_in_a_dos_code_page_loads_or_is_rejected_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "dos.csv"
    path.write_bytes("period,city,plan,forecast\n2026-01,Düsseldorf,1,2\n".encode("cp850"))
    # Rejecting it whole, naming the file, is fine; any other exception is not.
    with contextlib.suppress(LoadError):
        read_file(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_file_is_rejected(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"empty.{fmt}"
    path.write_bytes(b"")
    with pytest.raises(LoadError) as caught:
        read_file(path)
    assert_load_error(caught.value, source=path.name, row=None, column=None, fragment="empty")


@pytest.mark.parametrize("name", ["plan.json", "plan.xls", "plan", "plan.csv.gz"])
def test_an_unsupported_file_type_is_rejected(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("period,plan,forecast\n2026-01,1,2\n")
    with pytest.raises(LoadError) as caught:
        read_file(path)
    assert_load_error(caught.value, source=name, row=None, column=None,
                      fragment="unsupported file type")
    assert ".csv" in str(caught.value)  # says what would work


def test_a_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such file"):
        read_file(tmp_path / "nowhere.csv")


# --------------------------------------------------------------------------------------
# SQL: the database does the merging
# --------------------------------------------------------------------------------------

@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine runs while the test runs."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def sqlite_source(tmp_path: Path, create: str, rows: Sequence[Row]) -> str:
    path = tmp_path / "src.db"
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute(create)
            marks = ",".join("?" * len(rows[0]))
            connection.executemany(f"INSERT INTO sales VALUES ({marks})", rows)
    finally:
        connection.close()
    return f"sqlite:///{path}"


SQL_WIDE = [
    ("2026-01", "EU", "Snacks", 1.0, 2.0, 3.0),
    ("2026-01", "EU", "Snacks", 10.0, 20.0, None),
    ("2026-02", "EU", "Snacks", 5.0, 6.0, None),
    ("2026-02", "LATAM", "Dairy", 5.0, None, None),
    ("2026-02", "LATAM", "Dairy", 7.0, None, None),
]


def test_read_sql_merges_duplicates_in_the_database(tmp_path: Path,
                                                    statements: list[str]) -> None:
    url = sqlite_source(tmp_path, "CREATE TABLE sales (period TEXT, region TEXT, "
                        "category TEXT, plan REAL, forecast REAL, actual REAL)", SQL_WIDE)
    table = read_sql(url, "SELECT * FROM sales WHERE period >= '2026-01'", source="sales query")
    assert content(table) == sorted([
        ("2026-01", "value", "EU", "Snacks", 11.0, 22.0, 3.0),
        ("2026-02", "value", "EU", "Snacks", 5.0, 6.0, None),
        ("2026-02", "value", "LATAM", "Dairy", 12.0, None, None),
    ], key=repr)
    assert (table.rows_read, table.rows_merged, table.rows) == (5, 2, 3)
    assert table.source == "sales query"
    assert table.dimensions == ("region", "category")
    assert any("GROUP BY" in s.upper() and "SUM(" in s.upper() for s in statements)


def test_read_sql_long_form_counts_merges_like_a_file(tmp_path: Path) -> None:
    rows = [
        ("2026-01", "EU", "plan", 1.0),
        ("2026-01", "EU", "plan", 2.0),
        ("2026-01", "EU", "forecast", 5.0),
        ("2026-01", "EU", "actual", None),
    ]
    url = sqlite_source(tmp_path, "CREATE TABLE sales (period TEXT, region TEXT, "
                        "measure TEXT, value REAL)", rows)
    from_sql = read_sql(url, "SELECT * FROM sales")
    from_file = load(tmp_path, "csv", ("period", "region", "measure", "value"), rows)
    assert content(from_sql) == content(from_file) == [("2026-01", "value", "EU", 3.0, 5.0,
                                                         None)]
    assert from_sql.rows_read == from_file.rows_read == 4
    assert from_sql.rows_merged == from_file.rows_merged == 1


@pytest.mark.parametrize(("query", "fragment"), [
    ("SELECT * FROM no_such_table", "the query failed"),
    ("SELECT period, region, plan FROM sales", "missing column 'forecast' or 'actual'"),
    ("SELECT * FROM sales WHERE 1 = 0", "no rows"),
])
def test_read_sql_errors_are_load_errors_without_the_url(tmp_path: Path, query: str,
                                                         fragment: str) -> None:
    url = sqlite_source(tmp_path, "CREATE TABLE sales (period TEXT, region TEXT, "
                        "category TEXT, plan REAL, forecast REAL, actual REAL)", SQL_WIDE)
    with pytest.raises(LoadError) as caught:
        read_sql(url, query)
    message = str(caught.value)
    assert message.startswith("SQL query: ")
    assert fragment in message
    assert str(tmp_path) not in message and "sqlite:" not in message


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://planner:s3cret@127.0.0.1:1/plans",
    "postgresql://planner:s3cret@127.0.0.1:1/plans",
])
def test_a_failed_connection_does_not_reveal_the_password(url: str) -> None:
    with pytest.raises(LoadError) as caught:
        read_sql(url, "SELECT * FROM sales")
    message = str(caught.value)
    assert "s3cret" not in message
    assert "planner:" not in message
    assert message.startswith("SQL query: ")


@pytest.mark.postgres
def test_a_failed_postgres_query_does_not_reveal_the_password(postgres_url: str) -> None:
    # The test server trusts every connection, so the password is accepted and ignored.
    url = make_url(postgres_url).set(password="s3cret").render_as_string(hide_password=False)
    assert "s3cret" in url
    with pytest.raises(LoadError) as caught:
        read_sql(url, "SELECT * FROM no_such_table")
    message = str(caught.value)
    assert "the query failed" in message and "no_such_table" in message
    assert "s3cret" not in message


def test_duplicates_merge_alike_in_key_period_and_any_order(tmp_path: Path) -> None:
    """The row keys are numbered with the period last when the file is not in period
    order, and sorted by timsort when they come mostly in order: the merged table is
    the same whatever the file's order (key order, period order, shuffled)."""
    import numpy as np
    import pandas as pd

    from sop_core.loading.validate import _merge_duplicates

    rng = random.Random(11)
    rows = [(f"2025-{month:02d}", region, product, round(rng.uniform(-5, 50), 2),
             round(rng.uniform(0, 50), 2) if rng.random() > 0.1 else "")
            for region in ("EU", "NA", "APAC") for product in ("p1", "p2", "p3", "p4")
            for month in range(1, 13)]
    # A correction batch at the end: key order stays mostly ordered (timsort), while
    # the shuffled file is not (quicksort).
    rows += [(*rows[i][:3], 1.5, "") for i in rng.sample(range(len(rows)), 5)]
    orders = {"key": rows, "period": sorted(rows, key=lambda row: row[0]),
              "shuffled": rng.sample(rows, len(rows))}
    tables = {}
    for name, ordered in orders.items():
        path = tmp_path / f"{name}.csv"
        path.write_text("period,region,product,plan,forecast\n" + "".join(
            ",".join(map(str, row)) + "\n" for row in ordered))
        table = read_file(path)
        frame = table.frame.astype({"region": str, "product": str})
        tables[name] = (table.rows_merged, frame.sort_values(
            ["period", "region", "product"]).reset_index(drop=True))
        assert table.sorted_by_period
    (merged, expected), *others = tables.values()
    assert merged == 5
    for rows_merged, frame in others:
        assert rows_merged == merged
        pd.testing.assert_frame_equal(frame, expected)
    # The same rows merged with the key's digits in either order, sorted either way.
    generator = np.random.default_rng(3)
    codes = [np.repeat(np.arange(50, dtype=np.int32), 40),
             np.tile(np.arange(40, dtype=np.int32), 50)]
    codes = [np.concatenate([c, c[generator.integers(0, 2000, 300)]]) for c in codes]
    values = generator.normal(size=len(codes[0]))
    bounds = [(0, 50), (0, 40)]
    results = [_merge_duplicates(list(reversed(codes)) if flip else codes,
                                 {"plan": values.copy()},
                                 list(reversed(bounds)) if flip else bounds)
               for flip in (False, True)]
    (kept, merged_values), (kept_flipped, merged_flipped) = results
    assert kept is not None and kept.sum() == 2000
    assert np.array_equal(kept, kept_flipped)
    assert np.array_equal(merged_values["plan"], merged_flipped["plan"], equal_nan=True)


@pytest.mark.parametrize("members", [(3, 4, 5), (6, 20, 4, 5, 50), (2000, 3000, 50)],
                         ids=["few", "a-gap's-items", "too-many-to-mark"])
def test_rows_are_grouped_alike_by_marking_or_by_sorting(members: tuple[int, ...]) -> None:
    """A table's items: few combinations of codes are marked, too many are sorted; both
    number the groups in the order of their codes, as pandas' sorted grouping does (a
    missing member's code, -1, included)."""
    import numpy as np
    import pandas as pd

    from sop_core.loading import validate

    generator = np.random.default_rng(len(members))
    rows = 60_000
    codes = [generator.integers(-1, count, rows).astype(np.int16 if count < 2**15 else np.int32)
             for count in members]
    combinations = math.prod(count + 1 for count in members)
    marked = combinations <= validate.DENSE_GROUPS_PER_ROW * rows or combinations <= 1 << 16
    assert marked == (members != (2000, 3000, 50))  # each path is taken by one case
    labels, groups = validate._group(codes)
    expected = pd.DataFrame(dict(enumerate(codes))).groupby(list(range(len(codes))),
                                                            sort=True).ngroup().to_numpy()
    assert groups == expected.max() + 1
    assert np.array_equal(labels, expected)
