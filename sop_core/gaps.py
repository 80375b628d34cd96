"""Gap maths (docs/reference/gap-maths.md): pure functions from a planning table to typed results.

The hot path works on numpy views of the table's columns: a boolean mask for scope,
metric and horizon, then ``bincount`` over dictionary codes for drivers. Figures that
are undefined (plan of 0, no closed month) are ``None``, never NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from sop_core import formatting as fmt
from sop_core.loading import PlanningTable
from sop_core.periods import Horizon, Month, format_month, resolve_horizon

REVENUE_METRICS = ("revenue", "net_revenue", "sales", "net_sales", "turnover", "gross_sales")
VOLUME_METRICS = ("volume", "units", "quantity", "qty", "cases", "tons", "tonnes", "volume_units")


@dataclass(frozen=True)
class GapQuery:
    """What to compute: a scope (dimension → members), a metric, a horizon and ``by``."""

    scope: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    metric: str | None = None
    horizon: str = "fy"
    by: str | None = None
    as_of: Month | None = None  # overrides the table's own as-of month

    def scope_key(self) -> str:
        """A canonical text for the scope (sorted, case-folded) used to recognise it again."""
        parts = [f"{d}={','.join(sorted(v.casefold() for v in vs))}"
                 for d, vs in sorted(self.scope.items())]
        return " ".join(parts)


@dataclass(frozen=True)
class TriggerRule:
    threshold_pct: float = 5.0
    floor: float = 0.0

    def crossed(self, gap: float, gap_pct: float | None) -> bool:
        return gap_pct is not None and abs(gap_pct) >= self.threshold_pct and abs(gap) >= self.floor


class Driver(NamedTuple):
    """One member's part of a gap. A named tuple: a ``by=customer`` builds thousands,
    ten times faster than frozen dataclasses."""

    member: str
    plan: float
    outlook: float
    gap: float
    gap_pct: float | None
    share: float | None
    offset: bool  # pushes against the direction of the total gap

    def to_json(self) -> dict[str, Any]:
        """Amounts to the cent; ``gap_pct`` and ``share`` in percent."""
        return {"member": self.member, "plan": fmt.json_amount(self.plan),
                "outlook": fmt.json_amount(self.outlook), "gap": fmt.json_amount(self.gap),
                "gap_pct": fmt.json_percent(self.gap_pct), "share": fmt.json_share(self.share)}


@dataclass(frozen=True)
class PriceVolumeMix:
    """A revenue gap split into effects that add up to it exactly."""

    revenue_metric: str
    volume_metric: str
    price: float
    volume: float
    mix: float

    @property
    def total(self) -> float:
        return self.price + self.volume + self.mix


@dataclass(frozen=True)
class GapResult:
    scope: Mapping[str, tuple[str, ...]]
    metric: str
    as_of: Month | None
    horizon: Horizon
    plan: float
    outlook: float
    actual_to_date: float
    forecast_rest: float
    bias_pct: float | None
    wmape: float | None
    triggered: bool
    by: str | None = None
    drivers: tuple[Driver, ...] = ()
    rows: int = 0

    @property
    def gap(self) -> float:
        return self.outlook - self.plan

    @property
    def gap_pct(self) -> float | None:
        return percent(self.gap, self.plan)

    def to_json(self) -> dict[str, Any]:
        """Exactly the object of docs/reference/cli.md (``by``/``drivers`` only when asked):
        amounts rounded to the cent, percentages (``share`` too) in percent."""
        body: dict[str, Any] = {
            "scope": {k: list(v) for k, v in self.scope.items()},
            "metric": self.metric,
            "as_of": format_month(self.as_of) if self.as_of is not None else None,
            "horizon": self.horizon.as_dict(),
            "plan": fmt.json_amount(self.plan), "outlook": fmt.json_amount(self.outlook),
            "gap": fmt.json_amount(self.gap), "gap_pct": fmt.json_percent(self.gap_pct),
            "actual_to_date": fmt.json_amount(self.actual_to_date),
            "forecast_rest": fmt.json_amount(self.forecast_rest),
            "bias_pct": fmt.json_percent(self.bias_pct), "wmape": fmt.json_percent(self.wmape),
            "triggered": self.triggered,
        }
        if self.by is not None:
            body["by"] = self.by
            body["drivers"] = [d.to_json() for d in self.drivers]
        return body


def percent(part: float, whole: float) -> float | None:
    """``part / whole × 100``, or ``None`` when the whole is 0 (no ∞, no NaN)."""
    if whole == 0 or not math.isfinite(whole) or not math.isfinite(part):
        return None
    return part / whole * 100.0


def default_metric(table: PlanningTable) -> str:
    """The metric used when none is named: the only one, else a revenue-like one."""
    for name in (*REVENUE_METRICS, *table.metrics):
        if name in table.metrics:
            return name
    raise ValueError("the table has no metric")


# --------------------------------------------------------------------------------------
# Selection: the rows a query covers, as numpy arrays
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    """The rows one query covers (metric, scope, horizon), with the as-of applied.

    A gap needs the plan and outlook of every row, the actuals of closed months only and
    the forecasts of open ones: those are taken from the table's columns. The forecasts
    of closed months (the forecast's quality) and the full ``period``, ``actual`` and
    ``forecast`` of the rows (a chart's) are taken when first asked for. Taking values
    from the table's columns is most of a warm query's time."""

    metric: str
    as_of: Month | None
    horizon: Horizon
    rows: np.ndarray  # indices into the table, ascending
    plan: np.ndarray  # missing → 0
    outlook: np.ndarray  # actual when closed (period ≤ as-of), forecast after; missing → 0
    actual_closed: np.ndarray  # the actuals of the closed rows, NaN kept
    closed_rows: np.ndarray  # the closed rows (indices into the table)
    forecast_open: np.ndarray  # the forecasts of the other rows (missing → 0 or NaN)
    frame: pd.DataFrame = field(repr=False, compare=False)

    @cached_property
    def period(self) -> np.ndarray:
        return self.frame["period"].to_numpy().take(self.rows)

    @cached_property
    def forecast_closed(self) -> np.ndarray:
        """The forecasts of the closed rows, NaN kept: for the forecast's quality, which
        only the gap's own metric needs (not the volume a price–volume–mix adds)."""
        return self.frame["forecast"].to_numpy().take(self.closed_rows)

    @cached_property
    def actual(self) -> np.ndarray:  # NaN kept
        return self.frame["actual"].to_numpy().take(self.rows)

    @cached_property
    def forecast(self) -> np.ndarray:  # NaN kept
        return self.frame["forecast"].to_numpy().take(self.rows)


def _codes(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].array.codes  # the Categorical's own array: no Series built


def _member_mask(table: PlanningTable, column: str, members: tuple[str, ...],
                 window: slice = slice(None)) -> np.ndarray:
    """Which rows (of ``window``) have one of ``members`` in ``column``."""
    frame = table.frame
    codes = _codes(frame, column)[window]
    positions = table.category_codes(column, members)
    if len(positions) <= 4:
        # A few members (the usual scope): comparing the codes is one fast pass each.
        mask = np.zeros(len(codes), dtype=bool)
        for position in positions:
            mask |= codes == position
        return mask
    wanted = np.zeros(len(frame[column].cat.categories) + 1, dtype=bool)  # last: code -1
    wanted[positions] = True
    return wanted[codes]


def _zero_missing(values: np.ndarray) -> np.ndarray:
    """``values`` (a fresh array: changed in place) with NaN as 0. Loaded data has no
    infinities (the loader refuses them), so only NaN needs a 0."""
    np.copyto(values, 0.0, where=np.isnan(values))
    return values


def select(table: PlanningTable, query: GapQuery, *, fy_start_month: int = 1) -> Selection:
    """The rows ``query`` covers: its metric, scope and horizon, with the as-of applied."""
    metric = query.metric or default_metric(table)
    return _select_metrics(table, query, (metric,), fy_start_month)[0]


def _select_metrics(table: PlanningTable, query: GapQuery, metrics: tuple[str, ...],
                    fy_start_month: int) -> list[Selection]:
    """One :class:`Selection` per metric, over the same scope and horizon."""
    as_of = effective_as_of(table, query)
    # Without any actual, horizons are placed around the first month of data.
    anchor = as_of if as_of is not None else (table.periods or (0, 0))[0]
    horizon = resolve_horizon(query.horizon, anchor, fy_start_month)
    frame = table.frame
    period_all = frame["period"].to_numpy()
    if table.sorted_by_period:
        # The horizon is one run of rows: the scope is looked for there only.
        bounds = np.array([horizon.start, horizon.end + 1], dtype=period_all.dtype)
        start, end = np.searchsorted(period_all, bounds)  # same dtype: no 10M-row cast
        window = slice(int(start), int(end))
        mask = np.ones(window.stop - window.start, dtype=bool)
    else:
        window = slice(0, len(period_all))
        mask = (period_all >= horizon.start) & (period_all <= horizon.end)
    for dimension, members in query.scope.items():
        mask &= _member_mask(table, dimension, members, window)
    # Indices once, then takes: a scope is usually a small share of the rows.
    in_scope = np.flatnonzero(mask)
    in_scope += window.start
    metric_codes = _codes(frame, "metric").take(in_scope)
    lookup = table.category_lookup("metric")
    positions = [lookup.get(metric, -1) for metric in metrics]
    plan_all, actual_all, forecast_all = (frame[name].to_numpy()
                                          for name in ("plan", "actual", "forecast"))
    # In period order the closed months are the rows before one row number.
    closed_end = (int(np.searchsorted(period_all, np.array(as_of + 1, dtype=period_all.dtype)))
                  if table.sorted_by_period and as_of is not None else None)
    selections = []
    for metric, position in zip(metrics, positions, strict=True):
        rows = in_scope[metric_codes == position] if position >= 0 else in_scope[:0]
        closed = None  # which rows are closed, when they are not the first ones
        if as_of is None:
            closed_rows, open_rows = rows[:0], rows
        elif closed_end is not None:  # the closed rows come first: no period to take
            split = int(np.searchsorted(rows, closed_end))
            closed_rows, open_rows = rows[:split], rows[split:]
        else:
            closed = period_all.take(rows) <= as_of
            closed_rows, open_rows = rows[closed], rows[~closed]
        actual_closed = actual_all.take(closed_rows)
        outlook = np.empty(len(rows))
        if closed is None:  # the closed rows first: the open ones' forecasts go in place
            outlook[:len(closed_rows)] = actual_closed
            forecast_open = outlook[len(closed_rows):]
            forecast_all.take(open_rows, out=forecast_open, mode="clip")  # (clip: unbuffered)
        else:
            forecast_open = forecast_all.take(open_rows)
            outlook[closed], outlook[~closed] = actual_closed, forecast_open
        selections.append(Selection(
            metric=metric, as_of=as_of, horizon=horizon, rows=rows,
            plan=_zero_missing(plan_all.take(rows)), outlook=_zero_missing(outlook),
            actual_closed=actual_closed, closed_rows=closed_rows,
            forecast_open=forecast_open, frame=frame,
        ))
    return selections


def _forecast_quality(selection: Selection) -> tuple[float | None, float | None]:
    """Bias % and WMAPE over closed months with both an actual and a forecast."""
    actual = selection.actual_closed
    error = selection.forecast_closed - actual  # NaN where either is missing (no infinity)
    both = ~np.isnan(error)
    if not both.any():
        return None, None
    # Summed where both are known, without copying those rows out.
    bias = percent(float(np.sum(error, where=both)), float(np.sum(actual, where=both)))
    wmape = percent(float(np.sum(np.abs(error), where=both)),
                    float(np.sum(np.abs(actual), where=both)))
    return bias, wmape


def _member_sums(table: PlanningTable, selection: Selection, dimension: str
                 ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Members present in the selection with their plan and outlook sums."""
    categories = table.frame[dimension].cat.categories
    codes = _codes(table.frame, dimension).take(selection.rows)
    size = len(categories)
    counts = np.bincount(codes, minlength=size)
    plan = np.bincount(codes, weights=selection.plan, minlength=size)
    outlook = np.bincount(codes, weights=selection.outlook, minlength=size)
    present = np.flatnonzero(counts)
    return np.asarray(categories)[present].astype(str).tolist(), plan[present], outlook[present]


def _drivers(members: list[str], plan: np.ndarray, outlook: np.ndarray, total_gap: float
             ) -> tuple[Driver, ...]:
    """Members in the total's direction first (largest |gap| first), then offsets.

    Figured and ordered by numpy: a ``by=customer`` has thousands of members."""
    gaps = outlook - plan
    direction = math.copysign(1.0, total_gap) if total_gap != 0 else 0.0
    offsets = gaps * direction < 0
    # Sort keys, the last one first: offset, then largest |gap|, then the member's name.
    order = np.lexsort((np.asarray(members, dtype=str), -np.abs(gaps), offsets)).tolist()
    with np.errstate(divide="ignore", invalid="ignore"):
        gap_pcts = np.where(plan != 0, gaps / plan * 100.0, np.nan).tolist()
        shares = (gaps / total_gap).tolist() if total_gap != 0 else [None] * len(members)
    plans, outlooks, member_gaps, is_offset = (plan.tolist(), outlook.tolist(), gaps.tolist(),
                                                offsets.tolist())
    return tuple(
        Driver(members[i], plans[i], outlooks[i], member_gaps[i],
               gap_pcts[i] if math.isfinite(gap_pcts[i]) else None, shares[i], is_offset[i])
        for i in order)


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------

def effective_as_of(table: PlanningTable, query: GapQuery) -> Month | None:
    return query.as_of if query.as_of is not None else table.as_of


def compute_gap(table: PlanningTable, query: GapQuery, *, fy_start_month: int = 1,
                rule: TriggerRule = TriggerRule()) -> GapResult:
    """The gap of one scope over one horizon, with drivers along ``query.by``."""
    return _gap_of(table, query, select(table, query, fy_start_month=fy_start_month), rule)


def gap_with_pvm(table: PlanningTable, query: GapQuery, *, fy_start_month: int = 1,
                 rule: TriggerRule = TriggerRule(), explain: bool = False
                 ) -> tuple[GapResult, PriceVolumeMix | None]:
    """``compute_gap`` and, for a revenue gap, ``price_volume_mix``: what a trigger point
    shows. ``explain``: with no ``by``, the drivers are along the dimension
    :func:`explanatory_dimension` picks (``result.by``). The rows are selected once for
    all of it (the scope is looked for once)."""
    metric = query.metric or default_metric(table)
    pair = pvm_metrics(table)
    pvm_pair = pair if pair is not None and metric == pair[0] else None
    selections = _select_metrics(table, query, pvm_pair or (metric,), fy_start_month)
    if explain and query.by is None:
        query = replace(query, by=_best_dimension(table, query, selections[0]))
    result = _gap_of(table, query, selections[0], rule)
    return result, _pvm_of(table, pvm_pair, *selections) if pvm_pair else None


def _gap_of(table: PlanningTable, query: GapQuery, selection: Selection,
            rule: TriggerRule) -> GapResult:
    bias, wmape = _forecast_quality(selection)
    actual_to_date = float(np.nansum(selection.actual_closed))
    forecast_rest = float(np.nansum(selection.forecast_open))
    drivers: tuple[Driver, ...] = ()
    if query.by is not None:
        members, plan_by, outlook_by = _member_sums(table, selection, query.by)
        # Totals from the member sums, so that member gaps add up to the total exactly.
        plan, outlook = float(np.sum(plan_by)), float(np.sum(outlook_by))
        drivers = _drivers(members, plan_by, outlook_by, outlook - plan)
    else:
        plan, outlook = float(np.sum(selection.plan)), float(np.sum(selection.outlook))
    gap = outlook - plan
    return GapResult(
        scope={k: tuple(v) for k, v in query.scope.items()}, metric=selection.metric,
        as_of=selection.as_of, horizon=selection.horizon, plan=plan, outlook=outlook,
        actual_to_date=actual_to_date,
        forecast_rest=forecast_rest, bias_pct=bias, wmape=wmape,
        triggered=rule.crossed(gap, percent(gap, plan)), by=query.by, drivers=drivers,
        rows=len(selection.rows),
    )


def explanatory_dimension(table: PlanningTable, query: GapQuery, *,
                          fy_start_month: int = 1) -> str | None:
    """The dimension whose members concentrate the gap most (for a default ``by``).

    Score: largest |member gap| over the sum of |member gaps|. Dimensions pinned to a
    single member by the scope, or with one member in it, explain nothing.
    """
    return _best_dimension(table, query, select(table, query, fy_start_month=fy_start_month))


def _best_dimension(table: PlanningTable, query: GapQuery, selection: Selection
                    ) -> str | None:
    best, best_score = None, -1.0
    for dimension in table.dimensions:
        if len(query.scope.get(dimension, ())) == 1:
            continue
        members, plan, outlook = _member_sums(table, selection, dimension)
        gaps = np.abs(outlook - plan)
        if len(members) < 2 or gaps.sum() == 0:
            continue
        score = float(gaps.max() / gaps.sum())
        if score > best_score:
            best, best_score = dimension, score
    return best


def pvm_metrics(table: PlanningTable) -> tuple[str, str] | None:
    """The (revenue, volume) metric pair of the table, if it has one."""
    revenue = next((m for m in REVENUE_METRICS if m in table.metrics), None)
    volume = next((m for m in VOLUME_METRICS if m in table.metrics), None)
    return (revenue, volume) if revenue and volume else None


def price_volume_mix(table: PlanningTable, query: GapQuery, *, fy_start_month: int = 1
                     ) -> PriceVolumeMix | None:
    """Split the revenue gap into price, volume and mix effects (they sum to the gap).

    Items are the combinations of all dimension values in scope, over the horizon.
    With plan price P0ᵢ = R0ᵢ/V0ᵢ and plan average price P̄0 = ΣR0/ΣV0:
      volume = (ΣV1 − ΣV0) · P̄0
      mix    = Σ V1ᵢ·P0ᵢ − ΣV1 · P̄0         (the shift of volume between items)
      price  = ΣR1 − Σ V1ᵢ·P0ᵢ              (selling the outlook volume at other prices)
    An item with no plan volume has no plan price; its outlook price stands in, so its
    revenue counts as volume/mix rather than price.
    """
    pair = pvm_metrics(table)
    if pair is None:
        return None
    return _pvm_of(table, pair, *_select_metrics(table, query, pair, fy_start_month))


def _pvm_of(table: PlanningTable, pair: tuple[str, str], revenue: Selection,
            volume: Selection) -> PriceVolumeMix:
    item, items = table.items
    revenue_items, volume_items = (item.take(selection.rows) for selection in (revenue, volume))
    r0, r1, v0, v1 = (
        # (floats already, but for no row at all: then integers)
        np.bincount(of_rows, weights=weights, minlength=items).astype(float, copy=False)
        for of_rows, weights in ((revenue_items, revenue.plan), (revenue_items, revenue.outlook),
                                 (volume_items, volume.plan), (volume_items, volume.outlook)))
    plan_price = np.divide(r0, v0, out=np.zeros_like(r0), where=v0 != 0)
    outlook_price = np.divide(r1, v1, out=np.zeros_like(r1), where=v1 != 0)
    p0 = np.where(v0 != 0, plan_price, outlook_price)
    total_v0, total_v1 = float(v0.sum()), float(v1.sum())
    at_plan_prices = float(np.sum(v1 * p0))
    if total_v0 != 0:
        average_p0 = float(r0.sum()) / total_v0
    else:
        average_p0 = at_plan_prices / total_v1 if total_v1 != 0 else 0.0
    gap = float(r1.sum()) - float(r0.sum())
    volume_effect = (total_v1 - total_v0) * average_p0
    mix_effect = at_plan_prices - total_v1 * average_p0
    # Price takes what is left, so the three add up to the gap to the last cent even
    # where an item had plan revenue but no plan volume.
    price_effect = gap - volume_effect - mix_effect
    return PriceVolumeMix(revenue_metric=pair[0], volume_metric=pair[1],
                          price=price_effect, volume=volume_effect, mix=mix_effect)


@dataclass(frozen=True)
class Movement:
    previous_gap: float
    previous_gap_pct: float | None
    gap_change: float

    @staticmethod
    def between(current: GapResult, previous: GapResult | None) -> Movement | None:
        if previous is None:
            return None
        return Movement(previous_gap=previous.gap, previous_gap_pct=previous.gap_pct,
                        gap_change=current.gap - previous.gap)
