"""XLSX workbooks (openpyxl): the data sheet, Excel's computed values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from sop_core.loading.table import (
    MEASURE_ALIASES,
    MEASURE_COLUMN_NAMES,
    VALUE_COLUMN,
    LoadError,
    _arrow_reason,
    _quote,
    normalise_name,
)

if TYPE_CHECKING:
    import pandas as pd


def _read_xlsx(path: Path, source: str) -> tuple[pa.Table, tuple[str, ...]]:
    """The workbook's data sheet as a table, and a note saying which sheet that was when
    it is not the first."""
    import pandas as pd  # here only: a CSV or Parquet load does without

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
    measures = [name for name in frame.columns
                if normalise_name(name) in MEASURE_ALIASES or normalise_name(name) == VALUE_COLUMN]
    _excel_errors_back(path, sheet, frame, measures)
    for name in frame.columns:
        values = frame[name]
        key = normalise_name(name)
        if name in measures:
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


def _excel_errors_back(path: Path, sheet: str, frame: pd.DataFrame,
                       measures: list[str]) -> None:
    """pandas reads a cell holding an Excel error (#N/A, #DIV/0!…) as blank: put the error
    back in the measure cells, so that it is counted as such (not silently missing)."""
    blank = {name: set(frame.index[frame[name].isna()]) for name in measures}
    if not any(blank.values()):
        return
    import openpyxl

    positions = {name: list(frame.columns).index(name) for name in measures}
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        for index, cells in enumerate(workbook[sheet].iter_rows(min_row=2)):
            for name, position in positions.items():
                if index in blank[name] and position < len(cells) and \
                        getattr(cells[position], "data_type", None) == "e":
                    frame.at[index, name] = str(cells[position].value)
    finally:
        workbook.close()


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
