"""Property-based tests: any input gives a result or a clear error, and the gap maths
keeps its invariants on any table."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sop_core.filters import FilterError, Filters, parse_filters, resolve
from sop_core.gaps import GapQuery, compute_gap, price_volume_mix
from sop_core.loading import PlanningTable, normalise
from sop_core.periods import format_month

T = TypeVar("T")
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Text people might type, including Slack's quotes, separators and control characters.
typed = st.lists(st.sampled_from([*'ab EU=,"\'“”‘’«»„ \t\n\x00\x1b<>&|*_`~-:;',
                                  "region", "by", "horizon", "metric", "as_of", "2026-Q1",
                                  "North America"]),
                max_size=30).map("".join)


def outcome(call: Callable[[], T]) -> tuple[T | None, FilterError | None]:
    """The result, or the FilterError; any other exception fails the test."""
    try:
        return call(), None
    except FilterError as error:
        return None, error


@FAST
@given(st.one_of(st.text(max_size=200), typed))
def test_the_parser_answers_any_text_with_filters_or_a_clear_error(text: str) -> None:
    result, error = outcome(lambda: parse_filters(text))
    if error is not None:
        assert 0 < len(str(error)) < 400
    else:
        assert isinstance(result, Filters)
        assert all(values and all(v.strip() for v in values) for values in result.scope.values())


@FAST
@given(typed)
def test_resolving_any_text_against_data_gives_a_query_or_a_clear_error(
        sample_table: PlanningTable, text: str) -> None:
    query, error = outcome(lambda: resolve(parse_filters(text), sample_table))
    if error is not None:
        assert 0 < len(str(error)) < 400
    else:
        assert query is not None
        assert set(query.scope) <= set(sample_table.dimensions)


# --------------------------------------------------------------------------------------
# Gap maths invariants on random tables
# --------------------------------------------------------------------------------------

amounts = st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e7, allow_nan=False,
                                         allow_infinity=False).map(lambda v: round(v, 2)))


@st.composite
def tables(draw: st.DrawFn) -> PlanningTable:
    rows = draw(st.lists(st.tuples(
        st.sampled_from(["2025-11", "2025-12", "2026-01", "2026-02", "2026-03", "2026-06"]),
        st.sampled_from(["EU", "NA", "APAC"]),
        st.sampled_from(["web", "shop"]),
        st.sampled_from(["revenue", "volume"]),
        amounts, amounts, amounts,
    ), min_size=1, max_size=40))
    columns = list(zip(*rows, strict=True))
    names = ["period", "region", "channel", "metric", "plan", "forecast", "actual"]
    data = {name: list(values) for name, values in zip(names, columns, strict=True)}
    if all(v is None for v in data["plan"]):
        data["plan"][0] = 1.0
    if all(v is None for v in data["forecast"]) and all(v is None for v in data["actual"]):
        data["forecast"][0] = 1.0
    return normalise(pa.table(data), source="random")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@FAST
@given(tables(), st.sampled_from(["region", "channel"]), st.sampled_from(["fy", "ytd", "rest",
                                                                          "2025", "2026-Q1"]))
def test_drivers_sum_to_the_total(table: PlanningTable, by: str, horizon: str) -> None:
    result = compute_gap(table, GapQuery(metric="revenue" if "revenue" in table.metrics else None,
                                         horizon=horizon, by=by))
    assert _close(math.fsum(d.gap for d in result.drivers), result.gap)
    assert _close(math.fsum(d.plan for d in result.drivers), result.plan)
    offsets = [d.offset for d in result.drivers]
    assert offsets == sorted(offsets)  # pushing members first, offsets after
    for value in (result.gap_pct, result.bias_pct, result.wmape):
        assert value is None or math.isfinite(value)


@FAST
@given(tables(), st.randoms(use_true_random=False))
def test_results_do_not_depend_on_row_order(table: PlanningTable, random) -> None:  # type: ignore[no-untyped-def]
    order = list(range(table.rows))
    random.shuffle(order)
    shuffled = PlanningTable(frame=table.frame.iloc[order].reset_index(drop=True),
                             dimensions=table.dimensions, metrics=table.metrics,
                             source="shuffled", rows_read=table.rows_read, rows_merged=0)
    query = GapQuery(metric=table.metrics[0], by="region")
    a, b = compute_gap(table, query), compute_gap(shuffled, query)
    assert _close(a.gap, b.gap)
    assert _close(a.plan, b.plan)
    assert {d.member: round(d.gap, 6) for d in a.drivers} == {
        d.member: round(d.gap, 6) for d in b.drivers}


@FAST
@given(tables(), st.floats(min_value=0.001, max_value=1000))
def test_gap_percent_is_scale_invariant(table: PlanningTable, scale: float) -> None:
    frame = table.frame.copy()
    for column in ("plan", "forecast", "actual"):
        frame[column] = frame[column] * scale
    scaled = PlanningTable(frame=frame, dimensions=table.dimensions, metrics=table.metrics,
                           source="scaled", rows_read=table.rows_read, rows_merged=0)
    query = GapQuery(metric=table.metrics[0])
    a, b = compute_gap(table, query), compute_gap(scaled, query)
    if a.gap_pct is None or abs(a.plan) < 1e-6:
        return
    assert math.isclose(a.gap_pct, b.gap_pct, rel_tol=1e-7, abs_tol=1e-7)


@FAST
@given(tables())
def test_price_volume_mix_sums_to_the_revenue_gap(table: PlanningTable) -> None:
    if set(table.metrics) != {"revenue", "volume"}:
        return
    query = GapQuery(metric="revenue")
    pvm = price_volume_mix(table, query)
    assert pvm is not None
    gap = compute_gap(table, query).gap
    # Exact up to floating-point rounding, which scales with the effects' own size.
    size = max(abs(pvm.price), abs(pvm.volume), abs(pvm.mix), abs(gap), 1.0)
    assert math.isclose(pvm.price + pvm.volume + pvm.mix, gap, rel_tol=0, abs_tol=1e-12 * size)
    assert all(math.isfinite(v) for v in (pvm.price, pvm.volume, pvm.mix))


@st.composite
def raw_rows(draw: st.DrawFn) -> pd.DataFrame:
    """A source table with duplicate keys, rows in any order (periods too)."""
    rows = draw(st.lists(st.tuples(
        st.sampled_from(["2026-03", "2025-12", "2026-01", "2026-02"]),
        st.sampled_from(["EU", "NA", "APAC", ""]), st.sampled_from(["revenue", "volume"]),
        amounts, amounts, amounts), min_size=1, max_size=60))
    return pd.DataFrame(rows, columns=["period", "region", "metric", "plan", "forecast",
                                       "actual"])


@FAST
@given(raw_rows())
def test_merging_duplicates_agrees_with_pandas_and_keeps_the_file_order(
        raw: pd.DataFrame) -> None:
    table = normalise(pa.Table.from_pandas(raw, preserve_index=False), source="random")
    keys = ["period", "region", "metric"]
    # The reference: pandas groupby, where a group with only missing values stays missing.
    expected = raw.groupby(keys, sort=False).agg(
        **{m: (m, lambda v: v.sum() if v.notna().any() else math.nan)
           for m in ("plan", "forecast", "actual")}).reset_index()
    frame = table.frame.assign(period=table.frame["period"].map(format_month),
                               region=table.frame["region"].astype(str).replace("(blank)", ""),
                               metric=table.frame["metric"].astype(str))
    assert table.rows == len(expected) and table.rows_merged == len(raw) - len(expected)
    # Rows come out in period order (the gap engine takes a horizon as one run of rows),
    # and within a period in the order their keys first appear in the file.
    assert list(frame["period"]) == sorted(frame["period"]) and table.sorted_by_period
    first_seen = {key: i for i, key in reversed(list(enumerate(
        raw[keys].itertuples(index=False, name=None))))}
    seen = [first_seen[key] for key in frame[keys].itertuples(index=False, name=None)]
    assert seen == sorted(seen, key=lambda i: (raw["period"][i], i))
    got = frame.set_index(keys).sort_index()
    want = expected.set_index(keys).sort_index()
    for measure in ("plan", "forecast", "actual"):
        assert np.allclose(got[measure], want[measure], equal_nan=True, atol=1e-6), measure


def test_the_table_strategy_produces_both_metrics_sometimes() -> None:
    """Guard: the PVM property above must not silently test nothing."""
    frame = pd.DataFrame({"period": np.array([0]), "metric": pd.Categorical(["revenue"])})
    assert not frame.empty
    seen: set[frozenset[str]] = set()

    @settings(max_examples=60, deadline=None, database=None)
    @given(tables())
    def collect(table: PlanningTable) -> None:
        seen.add(frozenset(table.metrics))

    collect()
    assert frozenset({"revenue", "volume"}) in seen


@pytest.mark.parametrize("text", [
    "x" * 10_000, "region=" + "E" * 10_000, "'; DROP TABLE actions; --",
    "region=EU'; DELETE FROM snapshots; --", "region=<!channel>", "region=<https://evil|x>",
    "\x00\x01\x02", "region=\u202eUE", "by=" + "a" * 500,
])
def test_hostile_text_is_refused_clearly(sample_table: PlanningTable, text: str) -> None:
    with pytest.raises(FilterError) as error:
        resolve(parse_filters(text), sample_table)
    assert len(str(error.value)) < 1000
