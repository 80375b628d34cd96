"""CSV and TSV files: the header, the encoding and the delimiter, then Arrow's reader."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from sop_core.loading.buffers import pc
from sop_core.loading.cells import DECIMAL_HINT, PLAIN_MISSING, _is_number
from sop_core.loading.table import (
    MEASURE_ALIASES,
    MEASURE_COLUMN_NAMES,
    VALUE_COLUMN,
    LoadError,
    _arrow_reason,
    normalise_name,
)


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


def _read_csv(path: Path, source: str, delimiter: str | None,
              decimal: str | None = None) -> pa.Table:
    """The file as a table: measures as float64 when Arrow's parser reads them all (the
    fast path), else every measure as text for :func:`normalise` to read as spreadsheets
    write numbers. ``decimal``: the decimal mark, if known."""
    from pyarrow import csv as pacsv

    names, delimiter, encoding = _header(path, source, delimiter)
    # Excel writes ";"-delimited CSV where the decimal mark is a comma.
    decimal_point = decimal or ("," if delimiter == ";" else ".")
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
            # and "NA" is North America. Excel's errors (#N/A) are not among them: they
            # take the slow path, which counts them.
            convert_options=pacsv.ConvertOptions(
                column_types=types, strings_can_be_null=False, decimal_point=decimal_point,
                null_values=list(PLAIN_MISSING)),
        )
        table = _without_blank_lines(table)
        return table.replace_schema_metadata({DECIMAL_HINT: decimal_point.encode()})

    def read(types: dict[str, pa.DataType]) -> pa.Table:
        nonlocal encoding
        try:
            return attempt(encoding, types)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if not (isinstance(exc, UnicodeDecodeError) or "utf8" in str(exc).lower()):
                raise
        with path.open("rb") as handle:
            encoding = _fallback_encoding(handle.read(), source)
        return attempt(encoding, types)

    try:
        try:
            return _numbers_as_measures_only(read(column_types))
        except pa.ArrowInvalid as exc:
            if "conversion error" not in str(exc):
                raise
        # A measure holds something Arrow does not read as a number: the measures as
        # text, for normalise() to read as a spreadsheet writes numbers, or to name the
        # cells that are not numbers.
        text_types = {n: (pa.string() if t == pa.float64() else t)
                      for n, t in column_types.items()}
        return _numbers_as_measures_only(read(text_types))
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
