"""The canonical planning table every source becomes, and the errors of a load.

Rows are numbered as a spreadsheet shows them: the header is row 1, so the first data
row of a CSV or XLSX file is row 2. Parquet and SQL sources have no header row, so
their first record is row 1.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from sop_core.periods import Month, format_month

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
        # Every cell named when several are not numbers: (row, column, text).
        self.cells: list[tuple[int, str, str]] = []
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
        """The latest period with any non-missing actual, unless declared."""
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
        from sop_core.loading.validate import _group  # (validate builds on this module)

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


def _arrow_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0]
    return text[:300]


def _quote(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def describe(table: PlanningTable) -> str:
    """One line people can read after a load."""
    span = table.periods
    months = f"{format_month(span[0])}..{format_month(span[1])}" if span else "no periods"
    from sop_core import formatting as fmt  # late: the loader's import stays light

    return (f"{fmt.number(table.rows_read)} rows read, {fmt.number(table.rows_merged)} merged, "
            f"{fmt.number(table.rows)} kept; "
            f"{months}; metrics: {', '.join(table.metrics)}; "
            f"dimensions: {', '.join(table.dimensions) or 'none'}")
