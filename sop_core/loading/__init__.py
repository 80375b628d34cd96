"""Reading planning data into one canonical, validated table.

Every source (CSV, XLSX, Parquet, SQL) becomes a pyarrow table first; one pipeline then
normalises it into a :class:`PlanningTable`: one row per (period, metric, dimension
values) with float ``plan``, ``forecast`` and ``actual`` columns (NaN = missing).

Modules: ``table`` (the result and its errors), one reader per source type
(``csv_reader``, ``xlsx_reader``, ``parquet_reader``, ``sql_reader``), ``cells`` (cell
parsing), ``validate`` (column roles, validation, merging) and ``sources`` (a file of
any type).
"""

from sop_core.loading.sources import read_file
from sop_core.loading.sql_reader import read_sql
from sop_core.loading.table import (
    BLANK_MEMBER,
    DEFAULT_METRIC,
    MEASURE_ALIASES,
    MEASURE_COLUMN_NAMES,
    MEASURES,
    RESERVED_NAMES,
    VALUE_COLUMN,
    LoadError,
    PlanningTable,
    ProgressCallback,
    describe,
    normalise_name,
)
from sop_core.loading.validate import normalise

__all__ = [
    "BLANK_MEMBER", "DEFAULT_METRIC", "MEASURES", "MEASURE_ALIASES", "MEASURE_COLUMN_NAMES",
    "RESERVED_NAMES", "VALUE_COLUMN", "LoadError", "PlanningTable", "ProgressCallback",
    "describe", "normalise", "normalise_name", "read_file", "read_sql",
]  # fmt: skip
