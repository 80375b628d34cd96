"""The canonical planning table every source becomes, and the errors of a load.

Rows are numbered as a spreadsheet shows them: the header is row 1, so the first data
row of a CSV or XLSX file is row 2. Parquet and SQL sources have no header row, so
their first record is row 1.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from threading import Lock
from typing import TYPE_CHECKING, Any

import numpy as np

from sop_core.periods import Month, format_month

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

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
class Columns:
    """A planning table's columns as the loader builds them, before pandas: a load
    stores them as Parquet without importing pandas (a third of a second); the frame
    is built from them, without copying, when something first asks for it."""

    period: np.ndarray  # int32 months
    keys: tuple[tuple[str, np.ndarray, list[str]], ...]  # metric, dimensions: codes, names
    measures: dict[str, np.ndarray]  # float64, NaN = missing

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        columns: dict[str, object] = {"period": self.period}
        for name, codes, categories in self.keys:
            # Valid by construction (-1 … len - 1): pandas' own check is a pass per column.
            columns[name] = pd.Categorical.from_codes(codes, categories=categories,
                                                      validate=False)
        columns.update(self.measures)
        return pd.DataFrame(columns, copy=False)

    def arrow(self) -> pa.Table:
        """The columns as Arrow's (sharing their memory), as ``pa.Table.from_pandas``
        makes them of the frame: dictionaries, and a missing amount a null."""
        import pyarrow as pa

        from sop_core.loading.buffers import from_numpy, strings

        arrays = [from_numpy(self.period.astype(np.int32, copy=False))]
        for _, codes, categories in self.keys:
            indices = codes if codes.dtype in (np.int8, np.int16, np.int32) \
                else codes.astype(np.int32)
            arrays.append(pa.DictionaryArray.from_arrays(from_numpy(indices),
                                                         strings(categories)))
        arrays.extend(from_numpy(values.astype(np.float64, copy=False))
                      for values in self.measures.values())
        names = ["period", *(name for name, _, _ in self.keys), *self.measures]
        return pa.Table.from_arrays(arrays, names=names)


class _Frame:
    """``PlanningTable.frame``: given a DataFrame, or :class:`Columns` built into one on
    first use (then kept)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = "_" + name

    _building = Lock()  # one frame per table, whichever thread asks first

    def __get__(self, table: Any, owner: type | None = None) -> pd.DataFrame:
        if table is None:
            raise AttributeError(self.name)  # dataclasses: a field without a default
        value = table.__dict__[self.name]
        if isinstance(value, Columns):
            with self._building:
                value = table.__dict__[self.name]
                if isinstance(value, Columns):
                    value = table.__dict__[self.name] = value.frame()
        return value

    def __set__(self, table: Any, value: pd.DataFrame | Columns) -> None:
        table.__dict__[self.name] = value


@dataclass(frozen=True)
class PlanningTable:
    """Validated planning data: the content of one snapshot."""

    # period (int32 month), metric + dimensions (categorical), measures; built lazily
    # when the loader gives :class:`Columns`.
    frame: pd.DataFrame = _Frame()  # type: ignore[assignment]
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]
    source: str
    rows_read: int
    rows_merged: int
    ignored_columns: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    declared_as_of: Month | None = None  # `sopgap load --as-of` overrides the data's own

    @property
    def columns(self) -> Columns | None:
        """The loader's columns, while no frame has been built from them."""
        value = self.__dict__["_frame"]
        return value if isinstance(value, Columns) else None

    def _period(self) -> np.ndarray:
        columns = self.columns
        return columns.period if columns is not None else self.frame["period"].to_numpy()

    @property
    def rows(self) -> int:
        columns = self.columns
        return len(columns.period) if columns is not None else len(self.frame)

    @cached_property
    def as_of(self) -> Month | None:
        """The latest period with any non-missing actual, unless declared."""
        if self.declared_as_of is not None:
            return self.declared_as_of
        columns = self.columns
        has_actual = ~np.isnan(columns.measures["actual"]) if columns is not None \
            else self.frame["actual"].notna().to_numpy()
        if not has_actual.any():
            return None
        return int(self._period()[has_actual].max())

    @cached_property
    def sorted_by_period(self) -> bool:
        """Rows in period order (the loader's output is): a horizon is then one run."""
        period = self._period()
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
        if not self.rows:
            return None
        period = self._period()
        return int(period.min()), int(period.max())

    def category_lookup(self, column: str) -> dict[Any, int]:
        """Each member of a categorical column → its code, built once per column and
        table: pandas' ``get_indexer`` makes an Index of the members asked for on every
        call (5 % of a worker's CPU under 100 users' /gap commands)."""
        lookups = self.__dict__.setdefault("_category_lookups", {})
        lookup = lookups.get(column)
        if lookup is None:
            categories = self.frame[column].cat.categories
            lookup = lookups[column] = dict(zip(categories, range(len(categories)),
                                                strict=True))
        return lookup  # type: ignore[no-any-return]

    def category_codes(self, column: str, members: Iterable[str]) -> list[int]:
        """The codes of those of ``members`` that ``column`` has, in order."""
        lookup = self.category_lookup(column)
        return [code for code in map(lookup.get, members) if code is not None]

    def replaced(self, **changes: Any) -> PlanningTable:
        """:func:`dataclasses.replace`, which keeps the loader's columns unbuilt."""
        import dataclasses

        changes.setdefault("frame", self.__dict__["_frame"])
        return dataclasses.replace(self, **changes)


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
