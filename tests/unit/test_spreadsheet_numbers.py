"""Numbers as spreadsheets write them, and the silent mistakes a load refuses.

Each file is built here the way the program that writes it would: Excel's "CSV" (quoted
thousands), German/French Excel (";" and a decimal comma), Excel's "Unicode Text"
(UTF-16, tabs), and real workbooks written with openpyxl.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from sop_core.loading import LoadError, PlanningTable, read_file
from sop_core.loading import cells as cells_module


def figures(table: PlanningTable, measure: str) -> list[float | None]:
    """A measure's values in file order (rows are one per period here)."""
    frame = table.frame.sort_values("period")
    return [None if math.isnan(v) else round(float(v), 2) for v in frame[measure]]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_excel_csv_with_thousands_accounting_currency_and_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "excel_us.csv", (
        "period,region,plan,forecast,actual\n"
        '2026-01,EU,"1,200.50","(1,200)",#N/A\n'
        '2026-02,EU,"$ 2,000.00","-$1,234.56",#DIV/0!\n'
        '2026-03,EU,"1,234,567.8",300 ,-\n'
        '2026-04,EU," 12.5 ","($15.25)",#VALUE!\n'
        '2026-05,EU,"EUR 1,000","1,000 USD",#REF!\n'
    ))
    table = read_file(path)
    assert figures(table, "plan") == [1200.5, 2000.0, 1234567.8, 12.5, 1000.0]
    assert figures(table, "forecast") == [-1200.0, -1234.56, 300.0, -15.25, 1000.0]
    assert figures(table, "actual") == [None] * 5
    assert any("5 cells with an Excel error" in note for note in table.notes), table.notes


def test_semicolon_file_with_decimal_commas_from_german_excel(tmp_path: Path) -> None:
    path = write(tmp_path / "de.csv", (
        "period;region;plan;forecast\n"
        "2026-01;Süd;1.200,50;(300,25)\n"
        "2026-02;Süd;2.000;1,5\n"
        "2026-03;Süd;1.234.567,89 €;-\n"
    ))
    table = read_file(path)
    assert figures(table, "plan") == [1200.5, 2000.0, 1234567.89]
    assert figures(table, "forecast") == [-300.25, 1.5, None]
    assert any("decimal comma" in note for note in table.notes)


def test_plain_decimal_commas_take_arrows_fast_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_slow_path(*_args: object) -> None:
        raise AssertionError("the slow path ran for plain numbers")

    monkeypatch.setattr(cells_module, "_cleaned", no_slow_path)
    path = write(tmp_path / "fr.csv", "period;region;plan;forecast\n"
                                      "2026-01;Nord;1200,5;-3,25\n2026-02;Nord;7;8\n")
    table = read_file(path)
    assert figures(table, "plan") == [1200.5, 7.0]
    assert figures(table, "forecast") == [-3.25, 8.0]
    plain = write(tmp_path / "plain.csv", "period,region,plan,forecast\n"
                                          "2026-01,EU,1200.5,1e3\n2026-02,EU,,NA\n")
    table = read_file(plain)
    assert figures(table, "plan") == [1200.5, None]
    assert figures(table, "forecast") == [1000.0, None]


def test_utf16_tab_delimited_unicode_text_with_decimal_commas(tmp_path: Path) -> None:
    path = write(tmp_path / "unicode_text.txt", (
        "period\tregion\tplan\tforecast\r\n"
        "2026-01\tÎle-de-France\t1\u00a0200,50\t12,75\r\n"
        "2026-02\tÎle-de-France\t\u202f3\u202f000,00 €\t(4,5)\r\n"
    ), encoding="utf-16")
    table = read_file(path)
    assert figures(table, "plan") == [1200.5, 3000.0]
    assert figures(table, "forecast") == [12.75, -4.5]
    assert list(table.frame["region"].cat.categories) == ["Île-de-France"]


def test_workbook_with_numbers_typed_as_text(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["period", "region", "plan", "forecast", "actual"])
    sheet.append(["2026-01", "EU", "1,200.50", 100.25, "#N/A"])
    sheet.append(["2026-02", "EU", "(1,200)", "$2,500", 7])
    sheet.append(["2026-03", "EU", 3000, "-", "#DIV/0!"])
    path = tmp_path / "book.xlsx"
    workbook.save(path)
    table = read_file(path)
    assert figures(table, "plan") == [1200.5, -1200.0, 3000.0]
    assert figures(table, "forecast") == [100.25, 2500.0, None]
    assert figures(table, "actual") == [None, 7.0, None]
    assert any("3 cells with an Excel error" in note for note in table.notes), table.notes


def test_an_ambiguous_separator_is_read_as_the_file_convention_or_as_told(
        tmp_path: Path) -> None:
    comma_file = write(tmp_path / "a.csv", 'period,region,plan,forecast\n'
                                           '2026-01,EU,"1,200","2,500"\n')
    assert figures(read_file(comma_file), "plan") == [1200.0]
    assert figures(read_file(comma_file, decimal=","), "plan") == [1.2]
    semicolon_file = write(tmp_path / "b.csv", "period;region;plan;forecast\n"
                                               "2026-01;EU;1.200;2.500\n")
    assert figures(read_file(semicolon_file), "plan") == [1200.0]
    assert figures(read_file(semicolon_file, decimal="."), "plan") == [1.2]


def test_both_decimal_marks_in_one_file_ask_which(tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.csv", 'period,region,plan,forecast\n'
                                         '2026-01,EU,"1.5","2,5"\n')
    with pytest.raises(LoadError, match="--decimal"):
        read_file(path)


def test_every_bad_cell_up_to_twenty_in_one_message(tmp_path: Path) -> None:
    lines = ["period,region,plan,forecast"]
    for month in range(1, 13):
        lines.append(f"2026-{month:02d},EU,{month}x,oops{month}")
    lines.append("2027-01,EU,1,2")
    path = write(tmp_path / "many_bad.csv", "\n".join(lines) + "\n")
    with pytest.raises(LoadError) as caught:
        read_file(path)
    message = str(caught.value)
    assert message.startswith("many_bad.csv: 24 cells are not numbers: ")
    assert "row 2, column 'plan': '1x'; row 2, column 'forecast': 'oops1'; row 3," in message
    assert "row 11, column 'forecast': 'oops10'" in message
    assert "row 12" not in message  # the 21st cell on
    assert message.endswith("and 4 more")
    assert len(caught.value.cells) == 20
    assert caught.value.cells[0] == (2, "plan", "1x")


def test_one_bad_cell_is_named_as_before(tmp_path: Path) -> None:
    path = write(tmp_path / "one.csv", "period,region,plan,forecast\n2026-01,EU,12O.5,1\n")
    with pytest.raises(LoadError, match=r"one.csv, row 2, column 'plan': '12O.5' is not a "
                                        "number"):
        read_file(path)


def test_a_misspelt_measure_column_is_refused_with_the_name_it_is_close_to(
        tmp_path: Path) -> None:
    path = write(tmp_path / "typo.csv", "period,region,plan,forcast,actual\n"
                                        "2026-01,EU,10,11,9\n")
    with pytest.raises(LoadError) as caught:
        read_file(path)
    assert "column 'forcast': did you mean `forecast`?" in str(caught.value)
    assert "--ignore-column 'forcast'" in str(caught.value)
    table = read_file(path, ignore_columns=["forcast"])
    assert figures(table, "plan") == [10.0]
    assert figures(table, "forecast") == [None]
    assert any("left out as asked: forcast" in note for note in table.notes)
    other = write(tmp_path / "other.csv", "period,region,plan,forecast,price\n"
                                          "2026-01,EU,10,11,3\n")
    assert "price" in read_file(other).ignored_columns  # not close to any measure name


def test_ignore_column_must_name_a_column(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "period,region,plan,forecast\n2026-01,EU,10,11\n")
    with pytest.raises(LoadError, match="--ignore-column nope: no such column"):
        read_file(path, ignore_columns=["nope"])


def test_numbers_with_separators_in_a_non_measure_column_are_not_a_dimension(
        tmp_path: Path) -> None:
    path = write(tmp_path / "price.csv", 'period;region;plan;forecast;price\n'
                                         '2026-01;EU;10;11;1.200,5\n')
    table = read_file(path)
    assert table.dimensions == ("region",)
    assert "price" in table.ignored_columns


def test_the_values_are_the_same_as_the_plain_file(tmp_path: Path) -> None:
    """The spreadsheet-style file and the plain file of the same figures give the same
    table to the cent."""
    rng = np.random.default_rng(7)
    amounts = rng.uniform(-2e6, 2e6, size=40).round(2)
    plain = ["period,region,plan,forecast"]
    styled = ["period;region;plan;forecast"]
    for i, amount in enumerate(amounts):
        month = f"{2020 + i // 12}-{i % 12 + 1:02d}"
        plain.append(f"{month},EU,{amount:.2f},{-amount:.2f}")
        german = f"{abs(amount):,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")
        negative = f"({german})" if amount < 0 else german
        positive = f"-{german} €" if amount > 0 else f"{german} €"
        styled.append(f"{month};EU;{negative};{positive}")
    a = read_file(write(tmp_path / "plain.csv", "\n".join(plain) + "\n"))
    b = read_file(write(tmp_path / "styled.csv", "\n".join(styled) + "\n"))
    assert figures(a, "plan") == figures(b, "plan")
    assert figures(a, "forecast") == figures(b, "forecast")


def test_ignore_column_leaves_a_sql_column_out(tmp_path: Path) -> None:
    import sqlite3

    from sop_core.loading import read_sql

    database = tmp_path / "erp.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE plan (period TEXT, region TEXT, plan REAL, "
                           "forecast REAL, forcast REAL)")
        connection.execute("INSERT INTO plan VALUES ('2026-01', 'EU', 10, 11, 99)")
    url = f"sqlite:///{database}"
    with pytest.raises(LoadError, match="did you mean `forecast`"):
        read_sql(url, "SELECT * FROM plan")
    table = read_sql(url, "SELECT * FROM plan", ignore_columns=["forcast"])
    assert figures(table, "forecast") == [11.0]
    assert "left out as asked: forcast" in table.notes


def test_no_rows_names_the_first_filter_that_leaves_none(tmp_path: Path) -> None:
    from sop_core.filters import parse_filters, resolve
    from sop_core.gaps import compute_gap
    from sop_core.services.data import why_no_rows

    path = write(tmp_path / "x.csv", (
        "period,region,category,metric,plan,forecast\n"
        "2026-01,EU,Snacks,revenue,10,11\n"
        "2026-02,US,Dairy,revenue,10,11\n"
        "2026-02,EU,Snacks,volume,1,1\n"
        "2026-03,US,Snacks,volume,1,1\n"
    ))
    table = read_file(path)

    def told(text: str) -> str:
        query = resolve(parse_filters(text), table)
        result = compute_gap(table, query)
        assert result.rows == 0
        return why_no_rows(table, query, result)

    assert told("horizon=2026-03 metric=revenue") == (
        "No revenue figures in horizon 2026-03 (2026-03..2026-03); metrics there: volume.")
    assert told("region=EU category=Dairy metric=revenue") == (
        "No rows for category=Dairy with metric=revenue horizon=fy region=EU; "
        "category there: Snacks.")
    assert told("horizon=2025") == (
        "No data for horizon 2025 (2025-01..2025-12): the data covers 2026-01..2026-03.")
