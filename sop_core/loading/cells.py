"""Cell parsing: text columns to dictionary codes, measure columns to float64."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sop_core.loading.table import LoadError, _quote


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
