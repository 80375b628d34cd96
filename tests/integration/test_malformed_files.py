"""Malformed planning files, through ``read_file`` and through ``sopgap load``.

A file people would export from their tools in a form the loader does not expect: a
50 MB CSV with a bad number on its very last row, other encodings than UTF-8, XLSX with
formulas, several sheets or merged header cells, Parquet with the wrong column types, a
ZIP renamed ``.csv``, an empty Parquet file. Each is either read as its author meant, or
rejected whole with a short message naming the file (and the row and column where there
is one); the CLI then stores nothing and the previous snapshot stays the latest view.

"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import random
import re
import zipfile
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from bot.cli import app
from sop_core.config import get_settings
from sop_core.loading import LoadError, PlanningTable, read_file
from tests.integration.test_snapshots import latest_id, row_counts, squash
from tests.unit.test_loading import assert_load_error, content

MESSAGE_MAX = 300
GOOD_CSV = "period,region,plan,forecast\n2026-01,EU,1,2\n"


def sopgap(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The CLI on this database, with a first good snapshot loaded."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    good = tmp_path / "good.csv"
    good.write_text(GOOD_CSV)
    assert sopgap("load", str(good)).exit_code == 0
    return db_url


def assert_refused_by_the_cli(db_url: str, path: Path, *fragments: str) -> str:
    """``sopgap load`` fails with a short message, stores nothing; the message."""
    before = (row_counts(db_url), latest_id(db_url))
    result = sopgap("load", str(path))
    message = squash(result.stderr)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output and result.stdout == ""
    assert message.startswith(f"error: {path.name}"), message
    assert "Nothing was loaded; the latest view is unchanged." in message
    for fragment in fragments:
        assert fragment in message, message
    assert len(message) <= MESSAGE_MAX + 100, message
    assert (row_counts(db_url), latest_id(db_url)) == before
    return message


# --------------------------------------------------------------------------------------
# 50 MB of CSV, one bad number on the very last row
# --------------------------------------------------------------------------------------

BIG_ROWS = 950_000  # about 53 MB with the columns below


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Written with pyarrow in well under a second (no Python loop per row)."""
    path = tmp_path_factory.mktemp("big") / "plan_2026_full.csv"
    i = np.arange(BIG_ROWS)
    months = pa.array([f"2026-{m:02d}" for m in range(1, 13)])
    table = pa.table({
        "period": pc.take(months, pa.array(i % 12)),
        "customer": pc.binary_join_element_wise(
            "customer ", pa.array(i % 50_000).cast(pa.string()), ""),
        "region": pc.take(pa.array(["EU", "NA", "APAC", "LATAM"]), pa.array(i % 4)),
        "plan": i * 1.5 + 1000.25, "forecast": i * 1.25 + 999.5, "actual": i * 1.0 + 0.75,
    })
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none"))
    with path.open("a") as handle:
        handle.write("2026-12,customer last,EU,1,2,12O.5\n")  # a letter O for a zero
    assert path.stat().st_size > 50_000_000
    return path


@pytest.mark.slow
def test_a_50_mb_csv_with_a_bad_last_row_is_refused_naming_the_row(big_csv: Path) -> None:
    with pytest.raises(LoadError) as caught:
        read_file(big_csv)
    # Header = row 1, so the last of BIG_ROWS + 1 data rows is row BIG_ROWS + 2.
    assert_load_error(caught.value, source=big_csv.name, row=BIG_ROWS + 2, column="actual",
                      fragment="'12O.5' is not a number")


@pytest.mark.slow
def test_sopgap_load_of_the_50_mb_csv_keeps_the_previous_snapshot(cli_db: str,
                                                                  big_csv: Path) -> None:
    assert_refused_by_the_cli(cli_db, big_csv, f"row {BIG_ROWS + 2}", "column 'actual'",
                              "'12O.5' is not a number")


# --------------------------------------------------------------------------------------
# Files refused whole, with a clear message
# --------------------------------------------------------------------------------------

Builder = Callable[[Path], None]


@dataclass(frozen=True)
class Bad:
    name: str  # the file's name, its extension says which reader
    write: Builder
    _: KW_ONLY
    fragment: str
    row: int | None = None
    column: str | None = None


def _bytes(data: bytes) -> Builder:
    return lambda path: path.write_bytes(data)


def _zipped(inner: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(inner, data)
    return buffer.getvalue()


def _workbook(path: Path, rows: list[list[object]], *, merge: tuple[str, ...] = (),
              sheets: dict[str, list[list[object]]] | None = None, title: str = "Plan") -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    for cells in merge:
        sheet.merge_cells(cells)
    for title, extra in (sheets or {}).items():
        other = workbook.create_sheet(title)
        for row in extra:
            other.append(row)
    workbook.save(path)


def _parquet(**columns: pa.Array | list[object]) -> Builder:
    return lambda path: pq.write_table(pa.table(columns), path)


def _xlsx_bytes(rows: list[list[object]]) -> bytes:
    buffer = io.BytesIO()
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    workbook.save(buffer)
    return buffer.getvalue()


PERIODS = ["2026-01", "2026-02"]
PLAN_CSV = GOOD_CSV.encode()

REFUSED = [
    Bad("plan.csv", _bytes(_zipped("plan.csv", PLAN_CSV)), fragment="not a text table"),
    Bad("plan_export.csv", _bytes(_xlsx_bytes([["period", "plan", "forecast"]])),
        fragment="not a text table"),
    Bad("plan_gzipped.csv", _bytes(gzip.compress(PLAN_CSV)), fragment="not a text table"),
    Bad("garbage.csv", _bytes(random.Random(6).randbytes(20_000)), fragment=""),
    Bad("garbage.parquet", _bytes(random.Random(6).randbytes(20_000)),
        fragment="could not read as Parquet"),
    Bad("truncated.parquet", lambda path: (
        _parquet(period=PERIODS, plan=[1.0, 2.0], forecast=[1.0, 2.0])(path),
        path.write_bytes(path.read_bytes()[:-40])), fragment="could not read as Parquet"),
    # Two header rows, the measures' names under a merged "Measures" cell.
    Bad("merged_header.xlsx", lambda path: _workbook(path, [
        ["period", "region", "Measures", None, None],
        [None, None, "plan", "forecast", "actual"],
        ["2026-01", "EU", 1, 2, 3]], merge=("A1:A2", "B1:B2", "C1:E1")),
        fragment="missing column 'plan'"),
    Bad("plan_as_text.parquet", _parquet(period=PERIODS, region=["EU", "EU"],
                                         plan=["1.5", "1,5 M"], forecast=[1.0, 2.0]),
        fragment="'1,5 M' is not a number", row=2, column="plan"),
    Bad("period_as_year.parquet", _parquet(period=[2026, 2026], region=["EU", "EU"],
                                           plan=[1.0, 2.0], forecast=[1.0, 2.0]),
        fragment="'2026' is not a month", row=1, column="period"),
    Bad("empty.parquet", _parquet(period=pa.array([], pa.string()),
                                  plan=pa.array([], pa.float64()),
                                  forecast=pa.array([], pa.float64())),
        fragment="no data rows"),
    Bad("no_columns.parquet", _parquet(), fragment="no data rows"),
]

REFUSED += [
    # Parquet with types that hold no text or number: named, not an Arrow error.
    Bad("nested_struct.parquet", _parquet(
        period=PERIODS, region=["EU", "EU"], details=[{"promo": 1}, {"promo": 2}],
        plan=[1.0, 2.0], forecast=[1.0, 2.0]), fragment="nested values", column="details"),
    Bad("nested_list.parquet", _parquet(
        period=PERIODS, region=[["EU"], ["NA"]], plan=[1.0, 2.0], forecast=[1.0, 2.0]),
        fragment="nested values", column="region"),
    Bad("plan_as_list.parquet", _parquet(
        period=PERIODS, region=["EU", "EU"], plan=[[1.0], [2.0]], forecast=[1.0, 2.0]),
        fragment="nested values", column="plan"),
    Bad("plan_as_bool.parquet", _parquet(
        period=PERIODS, region=["EU", "EU"], plan=[True, False], forecast=[1.0, 2.0]),
        fragment="true/false values, not numbers", column="plan"),
    Bad("period_as_bytes.parquet", _parquet(
        period=[b"2026-01", b"\xff\xfe"], region=["EU", "EU"], plan=[1.0, 2.0],
        forecast=[1.0, 2.0]), fragment="is not UTF-8 text", row=2, column="period"),
    Bad("region_as_bad_bytes.parquet", _parquet(
        period=PERIODS, region=pa.array([b"EU", b"\xc3("]).dictionary_encode(),
        plan=[1.0, 2.0], forecast=[1.0, 2.0]), fragment="is not UTF-8 text", row=2,
        column="region"),
    # Written by a program that does not calculate: the value is unknown, not blank.
    Bad("formulas_without_values.xlsx", lambda path: _workbook(path, [
        ["period", "region", "plan", "forecast"],
        ["2026-01", "EU", 10, 12],
        ["2026-02", "EU", "=C2+5", 7]]), fragment="'=C2+5' has no computed value", row=3,
        column="plan"),
    Bad("two_cover_sheets.xlsx", lambda path: _workbook(
        path, [["Read me first"]], title="Read me",
        sheets={"Notes": [["nothing", "here"]]}),
        fragment="no sheet has a 'period' column in its first row; sheets: 'Read me', "
                 "'Notes'"),
    # Not Windows-1252 either: refused naming the first line that is not, never garbled.
    Bad("shift_jis.csv", _bytes("period,region,plan,forecast\n2026-01,東京,1,2\n"
                                "2026-02,大阪,3,4\n".encode("shift_jis")),
        fragment="neither UTF-8 nor Windows-1252: save the file as 'CSV UTF-8'", row=2),
    Bad("gbk_late.csv", _bytes(("period,region,plan,forecast\n"
                                + "2026-01,EU,1,2\n" * 5000
                                + "2026-02,北京,3,4\n").encode("gbk")),
        fragment="neither UTF-8 nor Windows-1252", row=5002),
    Bad("utf8_with_a_broken_byte.csv", _bytes(
        "period,region,plan,forecast\n2026-01,Zürich,1,2\n".encode()
        + b"2026-02,Z\xfcrich,3,4\n"), fragment="neither UTF-8 nor Windows-1252", row=3),
]


def _cases() -> list[object]:
    return [pytest.param(bad, id=bad.name) for bad in REFUSED]


@pytest.mark.parametrize("bad", _cases())
def test_read_file_refuses_it_with_a_clear_message(tmp_path: Path, bad: Bad) -> None:
    path = tmp_path / bad.name
    bad.write(path)
    with pytest.raises(LoadError) as caught:
        read_file(path)
    assert_load_error(caught.value, source=bad.name, row=bad.row, column=bad.column,
                      fragment=bad.fragment)


@pytest.mark.parametrize("bad", _cases())
def test_sopgap_load_refuses_it_and_stores_nothing(cli_db: str, tmp_path: Path,
                                                   bad: Bad) -> None:
    path = tmp_path / bad.name
    bad.write(path)
    where = [f"row {bad.row}"] if bad.row else []
    where += [f"column '{bad.column}'"] if bad.column else []
    assert_refused_by_the_cli(cli_db, path, *where, bad.fragment)


# --------------------------------------------------------------------------------------
# Odd files read as their author meant
# --------------------------------------------------------------------------------------

def _cached_formulas(path: Path) -> None:
    """An XLSX as Excel saves it: formulas with the values it last computed.

    openpyxl writes formulas without values, so the values are put in the sheet's XML.
    """
    _workbook(path, [["period", "region", "plan", "forecast"],
                     ["2026-01", "EU", 10, "=C2*2"],
                     ["2026-02", "EU", "=C2+5", 7]])
    cached = {"D2": "20", "C3": "15"}
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    for cell, value in cached.items():
        sheet, found = re.subn(rf'(<c r="{cell}"[^>]*>)<f>([^<]*)</f><v\s*/>',
                               rf"\1<f>\2</f><v>{value}</v>", sheet)
        assert found == 1, sheet
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def _utf16(text: str, codec: str, bom: bytes) -> Builder:
    return _bytes(bom + text.encode(codec))


ROWS_TEXT = "period,region,plan,forecast\n2026-01,Île-de-France,1,2\n2026-02,Zürich,3,4\n"
EXPECTED_TEXT = [("2026-01", "value", "Île-de-France", 1.0, 2.0, None),
                 ("2026-02", "value", "Zürich", 3.0, 4.0, None)]
EU_ROWS = [("2026-01", "value", "EU", 10.0, 20.0, None),
           ("2026-02", "value", "EU", 15.0, 7.0, None)]
PLAIN = [("2026-01", "value", "EU", 1.0, 1.0, None), ("2026-02", "value", "EU", 2.0, 2.0, None)]


@dataclass(frozen=True)
class Good:
    name: str
    write: Builder
    expected: list[tuple[object, ...]]


READ_AS_MEANT = [
    Good("latin1.csv", _bytes(ROWS_TEXT.encode("latin-1")), EXPECTED_TEXT),
    Good("cp1252.csv", _bytes(ROWS_TEXT.replace("Zürich", "Zürich – “Nord”")
                              .encode("cp1252")),
         [EXPECTED_TEXT[0], ("2026-02", "value", "Zürich – “Nord”", 3.0, 4.0, None)]),
    Good("utf8_bom.csv", _bytes(ROWS_TEXT.encode("utf-8-sig")), EXPECTED_TEXT),
    Good("formulas_with_values.xlsx", _cached_formulas, EU_ROWS),
    Good("data_first_of_several_sheets.xlsx", lambda path: _workbook(path, [
        ["period", "region", "plan", "forecast"], ["2026-01", "EU", 1, 1],
        ["2026-02", "EU", 2, 2]], sheets={"Notes": [["period", "region", "plan"],
                                                    ["2026-01", "NA", 999]]}), PLAIN),
    Good("plan_as_numeric_text.parquet", _parquet(
        period=PERIODS, region=["EU", "EU"], plan=["1", " 2.0 "], forecast=[1.0, 2.0]), PLAIN),
    Good("period_as_yyyymm.parquet", _parquet(
        period=[202601, 202602], region=["EU", "EU"], plan=[1.0, 2.0], forecast=[1.0, 2.0]),
         PLAIN),
    Good("period_as_timestamp.parquet", _parquet(
        period=pa.array([dt.datetime(2026, 1, 31, 23, 59), dt.datetime(2026, 2, 1)],
                        pa.timestamp("ns")),
        region=["EU", "EU"], plan=[1.0, 2.0], forecast=[1.0, 2.0]), PLAIN),
    Good("period_as_date.parquet", _parquet(
        period=pa.array([dt.date(2026, 1, 15), dt.date(2026, 2, 28)], pa.date32()),
        region=["EU", "EU"], plan=[1.0, 2.0], forecast=[1.0, 2.0]), PLAIN),
    Good("dictionary_encoded.parquet", _parquet(
        period=pa.array(PERIODS).dictionary_encode(),
        region=pa.array(["EU", "EU"]).dictionary_encode(),
        plan=pa.array([1.0, 2.0]).dictionary_encode(),
        forecast=pa.array([1.0, 2.0], pa.float32())), PLAIN),
    Good("decimal_plan.parquet", _parquet(
        period=PERIODS, region=["EU", "EU"],
        plan=pa.array([Decimal("1.00"), Decimal("2.00")], pa.decimal128(12, 2)),
        forecast=pa.array([1, 2], pa.int32())), PLAIN),
]
READ_AS_MEANT += [
    # Excel's "Unicode Text" and other exports: UTF-16 with a byte-order mark.
    Good("utf16le_bom.csv", _utf16(ROWS_TEXT, "utf-16-le", b"\xff\xfe"), EXPECTED_TEXT),
    Good("utf16be_bom.csv", _utf16(ROWS_TEXT, "utf-16-be", b"\xfe\xff"), EXPECTED_TEXT),
    Good("german_cp1252.csv", _bytes(ROWS_TEXT.replace("Zürich", "Größe Straße")
                                     .encode("cp1252")),
         [EXPECTED_TEXT[0], ("2026-02", "value", "Größe Straße", 3.0, 4.0, None)]),
    # A cover sheet first: the data sheet is the first one with a 'period' column.
    Good("cover_sheet_first.xlsx", lambda path: _workbook(
        path, [["This workbook holds the 2026 plan: see the Data sheet"]], title="Read me",
        sheets={"Data": [["period", "region", "plan", "forecast"], ["2026-01", "EU", 1, 2],
                         ["2026-02", "EU", 2, 2]]}),
         [("2026-01", "value", "EU", 1.0, 2.0, None), ("2026-02", "value", "EU", 2.0, 2.0, None)]),
]
NOTES = {"cover_sheet_first.xlsx": ("read sheet 'Data', the first with a 'period' column",)}


@pytest.mark.parametrize("good", [pytest.param(g, id=g.name) for g in READ_AS_MEANT])
def test_an_odd_file_is_read_as_its_author_meant(tmp_path: Path, good: Good) -> None:
    path = tmp_path / good.name
    good.write(path)
    table: PlanningTable = read_file(path)
    assert content(table) == sorted(good.expected, key=repr)
    assert table.notes == NOTES.get(good.name, ())
