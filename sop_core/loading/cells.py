"""Cell parsing: text columns to dictionary codes, measure columns to float64."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sop_core import formatting as fmt
from sop_core.loading.buffers import pc, to_numpy
from sop_core.loading.table import LoadError, _quote


def _is_number(text: str) -> bool:
    """A number as a spreadsheet may write it (``1,200.50``, ``(300)``, ``12,5 €``)."""
    try:
        float(text)
    except ValueError:
        cleaned = text.strip().replace("\u2212", "-")
        for pattern, replacement in _CLEANING:
            cleaned = re.sub(pattern, replacement, cleaned)
        return any(re.match(_pattern(mark), cleaned) for mark in _GROUPS)
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
        self._explicit = (to_numpy(table.column("__row__"))
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
        np.take(mapping, to_numpy(indices), out=codes[start:start + len(chunk)], mode="wrap")
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


# Spreadsheet numbers (Excel's CSV, German or French exports, accounting formats).
# Values that are simply missing, and values that stand for a missing number but say
# something went wrong upstream (Excel's errors, an accountant's "-"): these are counted.
# Metadata a reader puts on its table: the decimal mark to assume when the numbers
# themselves do not tell (a ";"-delimited CSV comes from a decimal-comma locale).
DECIMAL_HINT = b"sopgap.decimal"
PLAIN_MISSING = ("", "NA", "N/A", "n/a", "null", "NULL", "nan", "NaN")
FLAGGED_MISSING = ("-", "–", "#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!",
                   "#NULL!", "#N/A N/A")
MAX_BAD_CELLS = 20  # reported in one message, then "and N more"
_CURRENCY = r"(?:[$€£¥₹₩₽₺]|[A-Z]{3})"
_LEADING_CURRENCY = rf"^([+-]?)\s*{_CURRENCY}\s*"
_TRAILING_CURRENCY = rf"\s*{_CURRENCY}$"
# In this order; the second pass of currency is for "($1,200)". (Patterns in the syntax
# both Arrow's RE2 and Python's re read the same way.)
_CLEANING = (
    (_LEADING_CURRENCY, r"\1"), (_TRAILING_CURRENCY, ""),
    (r"^\(\s*(.*?)\s*\)$", r"-\1"),  # accounting negatives
    (_LEADING_CURRENCY, r"\1"), (_TRAILING_CURRENCY, ""),
)
# Thousands separators: the one that is not the decimal mark, spaces (French: also the
# no-break ones) and the Swiss apostrophe; one kind per value.
_GROUPS = {".": (",", " ", "\u00a0", "\u202f", "'"), ",": (".", " ", "\u00a0", "\u202f", "'")}
# Evidence for the decimal mark, in a value cleaned of sign and currency: a separator
# that cannot be a thousands separator (not 3 digits after it, or followed by the other).
_DECIMAL_EVIDENCE = {
    ".": r"\.(\d{0,2}|\d{4,})$|,\d{3}\.\d*$|,\d{3},",
    ",": r",(\d{0,2}|\d{4,})$|\.\d{3},\d*$|\.\d{3}\.",
}


def _pattern(decimal: str) -> str:
    """A whole number as spreadsheets write it, with ``decimal`` as the decimal mark."""
    mark = re.escape(decimal)
    grouped = "|".join(rf"\d{{1,3}}(?:{re.escape(g)}\d{{3}})+" for g in _GROUPS[decimal])
    plain = rf"(?:\d+{mark}?\d*|{mark}\d+)(?:[eE][+-]?\d+)?"
    return rf"^[+-]?(?:(?:{grouped})(?:{mark}\d*)?|{plain})$"


def _cleaned(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Sign, currency and accounting parentheses taken off: ``($1,200)`` → ``-1,200``."""
    text = pc.utf8_trim_whitespace(column)
    text = pc.replace_substring(text, "\u2212", "-")  # the typographic minus
    for pattern, replacement in _CLEANING:
        text = pc.replace_substring_regex(text, pattern, replacement)
    return text


def as_text_column(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A measure column that holds text (it failed the fast parse), or ``None``."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    return None


def decimal_mark(columns: Sequence[pa.ChunkedArray], *, default: str) -> str | None:
    """The decimal mark the text measure columns of one file use: ``.`` or ``,`` when
    their values say so, ``default`` when no value tells (``1,200`` alone could be
    either), ``None`` when some values say one and some the other."""
    seen = set()
    for column in columns:
        text = _cleaned(column)
        for mark, evidence in _DECIMAL_EVIDENCE.items():
            if mark not in seen and pc.any(pc.match_substring_regex(text, evidence)).as_py():
                seen.add(mark)
    if len(seen) == 2:
        return None
    return seen.pop() if seen else default


@dataclass
class MeasureColumn:
    """A measure column as float64 (NaN = missing), with what could not be read."""

    values: np.ndarray
    bad: list[tuple[int, str]]  # (record index, the cell's text): the first MAX_BAD_CELLS
    bad_count: int = 0
    flagged: int = 0  # Excel errors and lone dashes, read as missing


def parse_measure(table: pa.Table, name: str, source: str, decimal: str = ".") -> MeasureColumn:
    """A measure column as numbers. Typed columns are taken as they are; a text column is
    tried with Arrow's parser first (plain numbers), and only if that fails read as a
    spreadsheet writes numbers."""
    column = table.column(name)
    if pa.types.is_boolean(column.type):
        raise LoadError(source, "holds true/false values, not numbers", column=name)
    text = as_text_column(column)
    if text is None:
        if not _is_numeric(column.type) and column.null_count < len(column):
            raise LoadError(source, f"holds {column.type} values, not numbers", column=name)
        if column.type != pa.float64():  # (a cast imports pyarrow.compute)
            column = column.cast(pa.float64())
        return MeasureColumn(to_numpy(column), [])
    trimmed = pc.utf8_trim_whitespace(text)
    missing = pc.or_kleene(pc.is_null(trimmed), pc.is_in(trimmed, pa.array(PLAIN_MISSING)))
    flagged = pc.fill_null(pc.is_in(trimmed, pa.array(FLAGGED_MISSING)), False)
    absent = pc.or_(pc.fill_null(missing, True), flagged)
    present = pc.if_else(absent, pa.scalar(None, pa.string()), trimmed)
    if decimal == ",":
        present = pc.replace_substring(present, ",", ".") if not pc.any(
            pc.match_substring(present, ".")).as_py() else None
    try:
        values = present.cast(pa.float64()) if present is not None else None
    except pa.ArrowInvalid:
        values = None
    if values is not None:  # plain numbers (Arrow's cast also reads "1e3", "+5")
        return MeasureColumn(values.to_numpy(zero_copy_only=False), [],
                             flagged=pc.sum(flagged).as_py() or 0)
    cleaned = _cleaned(pc.if_else(absent, pa.scalar(None, pa.string()), trimmed))
    valid = pc.fill_null(pc.match_substring_regex(cleaned, _pattern(decimal)), False)
    digits = pc.if_else(valid, cleaned, pa.scalar(None, pa.string()))
    separators = "[" + "".join(re.escape(g) for g in _GROUPS[decimal]) + "]"
    digits = pc.replace_substring_regex(digits, separators, "")
    if decimal == ",":
        digits = pc.replace_substring(digits, ",", ".")
    numbers = digits.cast(pa.float64()).to_numpy(zero_copy_only=False)
    bad_mask = ~(valid.to_numpy(zero_copy_only=False) | absent.to_numpy(zero_copy_only=False))
    bad_rows = np.flatnonzero(bad_mask)
    shown = bad_rows[:MAX_BAD_CELLS]
    cells = text.take(pa.array(shown)).to_pylist() if len(shown) else []
    return MeasureColumn(numbers, list(zip(shown.tolist(), cells, strict=True)),
                         bad_count=len(bad_rows), flagged=pc.sum(flagged).as_py() or 0)


def bad_cells_error(source: str, columns: Sequence[tuple[str, MeasureColumn]],
                    rows: _Rows) -> LoadError | None:
    """One error for every cell of the file that is not a number: the first
    :data:`MAX_BAD_CELLS` in row order (file, row, column, value), then how many more."""
    total = sum(column.bad_count for _, column in columns)
    if not total:
        return None
    order = {name: position for position, (name, _) in enumerate(columns)}
    cells = sorted(((index, order[name], name, value) for name, column in columns
                    for index, value in column.bad), key=lambda cell: cell[:2])[:MAX_BAD_CELLS]
    if total == 1:
        index, _, name, value = cells[0]
        return LoadError(source, f"{_quote(value)} is not a number", row=rows(index),
                         column=name)
    listed = "; ".join(f"row {rows(index)}, column '{name}': {_quote(value)}"
                       for index, _, name, value in cells)
    more = total - len(cells)
    error = LoadError(source, f"{fmt.number(total)} cells are not numbers: {listed}"
                              + (f"; and {fmt.number(more)} more" if more else ""))
    error.cells = [(rows(index), name, value) for index, _, name, value in cells]
    return error


def checked_numbers(source: str, name: str, column: MeasureColumn, rows: _Rows) -> np.ndarray:
    """The column's values once every cell is known to be a number (or missing)."""
    values = column.values
    infinite = np.isinf(values)
    if infinite.any():
        raise LoadError(source, "infinite value", row=rows(_first_row_where(infinite)),
                        column=name)
    return values
