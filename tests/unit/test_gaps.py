"""Gap maths on small tables whose answers were worked out by hand (docs/reference/gap-maths.md)."""

from __future__ import annotations

import math
import random

import pyarrow as pa
import pytest

from sop_core.gaps import (
    GapQuery,
    TriggerRule,
    compute_gap,
    explanatory_dimension,
    gap_with_pvm,
    price_volume_mix,
)
from sop_core.loading import PlanningTable, normalise
from sop_core.periods import month, parse_month


def table(rows: list[dict[str, object]]) -> PlanningTable:
    """A planning table from dict rows (wide form), through the real loading pipeline."""
    names = list(rows[0])
    return normalise(pa.table({n: [r.get(n) for r in rows] for n in names}), source="test")


def row(period: str, plan: float | None, forecast: float | None, actual: float | None,
        **dims: str) -> dict[str, object]:
    return {"period": period, **dims, "plan": plan, "forecast": forecast, "actual": actual}


def q(**kwargs: object) -> GapQuery:
    scope = {k: tuple(v) for k, v in dict(kwargs.pop("scope", {})).items()}  # type: ignore[call-overload]
    return GapQuery(scope=scope, **kwargs)  # type: ignore[arg-type]


# as of 2026-02: Jan and Feb are closed, Mar and Apr are forecast.
BASIC = [
    row("2026-01", 100, 90, 95, region="EU"),
    row("2026-02", 100, 100, 80, region="EU"),
    row("2026-03", 100, 110, None, region="EU"),
    row("2026-04", 100, 120, None, region="EU"),
    row("2026-01", 50, 50, 60, region="NA"),
    row("2026-02", 50, 50, 55, region="NA"),
    row("2026-03", 50, 40, None, region="NA"),
    row("2026-04", 50, 45, None, region="NA"),
]


def test_outlook_is_actuals_to_date_then_forecast() -> None:
    result = compute_gap(table(BASIC), q(scope={"region": ["EU"]}))
    assert result.as_of == month(2026, 2)
    assert result.actual_to_date == 95 + 80
    assert result.forecast_rest == 110 + 120
    assert result.outlook == 405
    assert result.plan == 400
    assert result.gap == 5
    assert result.gap_pct == pytest.approx(1.25)


def test_forecast_quality_over_closed_months() -> None:
    result = compute_gap(table(BASIC), q(scope={"region": ["EU"]}))
    # F - A: (90-95) + (100-80) = 15 over A = 175; |A-F| = 5 + 20 = 25.
    assert result.bias_pct == pytest.approx(15 / 175 * 100)
    assert result.wmape == pytest.approx(25 / 175 * 100)


def test_drivers_sum_to_total_and_offsets_come_last() -> None:
    result = compute_gap(table(BASIC), q(by="region"))
    # EU: 405 - 400 = +5; NA: (60+55+40+45) - 200 = 0 → total +5.
    assert [d.member for d in result.drivers] == ["EU", "NA"]
    assert math.fsum(d.gap for d in result.drivers) == pytest.approx(result.gap, abs=1e-9)
    assert result.drivers[0].share == pytest.approx(1.0)
    assert not result.drivers[1].offset  # a zero gap pushes neither way


def test_offsets_against_the_total() -> None:
    rows = [row("2026-01", 100, 0, 70, dim="a"), row("2026-01", 100, 0, 110, dim="b"),
            row("2026-01", 100, 0, 95, dim="c")]
    result = compute_gap(table(rows), q(by="dim"))
    assert result.gap == -25
    assert [(d.member, d.offset) for d in result.drivers] == [
        ("a", False), ("c", False), ("b", True)]
    assert [d.share for d in result.drivers] == pytest.approx([1.2, 0.2, -0.4])


def test_plan_of_zero_gives_no_percentage_and_no_trigger() -> None:
    result = compute_gap(table([row("2026-01", 0, 10, 10, dim="x")]), q(by="dim"))
    assert result.gap == 10
    assert result.gap_pct is None
    assert result.triggered is False
    assert result.drivers[0].gap_pct is None
    assert result.to_json()["gap_pct"] is None


def test_no_closed_month_gives_no_forecast_quality() -> None:
    rows = [row("2026-01", 10, 12, None, dim="x")]
    result = compute_gap(table(rows), q())
    assert result.as_of is None
    assert (result.bias_pct, result.wmape) == (None, None)
    assert result.outlook == 12  # all forecast


def test_missing_values_count_as_zero() -> None:
    rows = [row("2026-01", 100, None, None, dim="x"), row("2026-02", None, 30, 20, dim="x")]
    result = compute_gap(table(rows), q())
    # as of 2026-02 (an actual exists there); Jan is closed with no actual → 0.
    assert result.plan == 100
    assert result.outlook == 20
    assert result.bias_pct == pytest.approx(50.0)


def test_negative_values_returns_and_credit_notes() -> None:
    rows = [row("2026-01", -50, -40, -80, dim="x"), row("2026-01", 150, 140, 130, dim="y")]
    result = compute_gap(table(rows), q(by="dim"))
    assert result.plan == 100
    assert result.outlook == 50
    assert result.gap_pct == pytest.approx(-50.0)
    by_member = {d.member: d for d in result.drivers}
    assert by_member["x"].gap == -30
    assert by_member["x"].gap_pct == pytest.approx(60.0)  # relative to a negative plan


def test_single_period() -> None:
    result = compute_gap(table([row("2026-07", 10, 11, 9)]), q(horizon="2026-07"))
    assert (result.plan, result.outlook, result.gap) == (10, 9, -1)
    assert result.horizon.start == result.horizon.end == month(2026, 7)


def test_trigger_rule_threshold_and_floor() -> None:
    rows = [row("2026-01", 1000, 0, 940)]
    assert compute_gap(table(rows), q(), rule=TriggerRule(5.0, 0)).triggered
    assert not compute_gap(table(rows), q(), rule=TriggerRule(7.0, 0)).triggered
    assert not compute_gap(table(rows), q(), rule=TriggerRule(5.0, 100)).triggered
    assert compute_gap(table(rows), q(), rule=TriggerRule(6.0, 60)).triggered


FY_APRIL = [row(f"{y}-{m:02d}", 10, 20, 15 if (y, m) <= (2026, 5) else None)
            for y, m in [(2026, 1), (2026, 3), (2026, 4), (2026, 5), (2026, 6), (2027, 3),
                         (2027, 4)]]


@pytest.mark.parametrize(("horizon", "start", "end", "plan", "outlook"), [
    ("fy", "2026-04", "2027-03", 40, 15 + 15 + 20 + 20),
    ("ytd", "2026-04", "2026-05", 20, 30),
    ("rest", "2026-06", "2027-03", 20, 40),
    ("2025", "2025-04", "2026-03", 20, 30),
    ("2026-Q1", "2026-04", "2026-06", 30, 50),
    ("2026-q4", "2027-01", "2027-03", 10, 20),
    ("2026-01", "2026-01", "2026-01", 10, 15),
])
def test_horizons_across_an_april_fiscal_year(horizon: str, start: str, end: str,
                                              plan: float, outlook: float) -> None:
    result = compute_gap(table(FY_APRIL), q(horizon=horizon), fy_start_month=4)
    assert result.as_of == month(2026, 5)
    assert (result.horizon.start, result.horizon.end) == (parse_month(start), parse_month(end))
    assert (result.plan, result.outlook) == (plan, outlook)


def test_rest_of_year_is_empty_in_the_last_month() -> None:
    rows = [row("2026-12", 10, 10, 10)]
    result = compute_gap(table(rows), q(horizon="rest"))
    assert result.horizon.is_empty
    assert (result.plan, result.gap_pct) == (0, None)


def test_as_of_override() -> None:
    result = compute_gap(table(BASIC), q(scope={"region": ["EU"]}, as_of=month(2026, 1)))
    assert result.actual_to_date == 95
    assert result.outlook == 95 + 100 + 110 + 120


def test_explanatory_dimension_is_the_concentrated_one() -> None:
    rows = [row("2026-01", 100, 0, 50, region="EU", channel="web"),
            row("2026-01", 100, 0, 100, region="NA", channel="web"),
            row("2026-01", 100, 0, 75, region="EU", channel="shop"),
            row("2026-01", 100, 0, 75, region="NA", channel="shop")]
    # region: EU -75, NA -25 (75% concentrated); channel: web -50, shop -50 (50%).
    assert explanatory_dimension(table(rows), q()) == "region"
    assert explanatory_dimension(table(rows), q(scope={"region": ["EU"]})) == "channel"


def pvm_rows() -> list[dict[str, object]]:
    # Product a: plan 10 units @ 5 = 50; outlook 12 units @ 4 = 48.
    # Product b: plan 10 units @ 10 = 100; outlook 6 units @ 11 = 66.
    data = []
    for product, (v0, r0, v1, r1) in {"a": (10, 50, 12, 48), "b": (10, 100, 6, 66)}.items():
        data.append({"period": "2026-01", "product": product, "metric": "revenue",
                     "plan": r0, "forecast": 0, "actual": r1})
        data.append({"period": "2026-01", "product": product, "metric": "volume",
                     "plan": v0, "forecast": 0, "actual": v1})
    return data


def test_price_volume_mix_by_hand() -> None:
    pvm = price_volume_mix(table(pvm_rows()), q(metric="revenue"))
    assert pvm is not None
    # Gap 114 - 150 = -36. Plan average price 150/20 = 7.5.
    # Volume: (18 - 20) * 7.5 = -15. At plan prices: 12*5 + 6*10 = 120.
    # Mix: 120 - 18*7.5 = -15. Price: 114 - 120 = -6.
    assert pvm.volume == pytest.approx(-15)
    assert pvm.mix == pytest.approx(-15)
    assert pvm.price == pytest.approx(-6)
    assert pvm.total == pytest.approx(-36)


def test_price_volume_mix_sums_with_new_and_lost_items() -> None:
    rows = [
        *pvm_rows(),
        {"period": "2026-01", "product": "new", "metric": "revenue", "plan": 0, "forecast": 0,
         "actual": 30},
        {"period": "2026-01", "product": "new", "metric": "volume", "plan": 0, "forecast": 0,
         "actual": 3},
        {"period": "2026-01", "product": "odd", "metric": "revenue", "plan": 20, "forecast": 0,
         "actual": 0},
    ]
    t = table(rows)
    pvm = price_volume_mix(t, q(metric="revenue"))
    gap = compute_gap(t, q(metric="revenue")).gap
    assert pvm is not None
    assert pvm.price + pvm.volume + pvm.mix == pytest.approx(gap, abs=1e-9)


def test_json_has_exactly_the_documented_keys() -> None:
    plain = compute_gap(table(BASIC), q()).to_json()
    assert list(plain) == ["scope", "metric", "as_of", "horizon", "plan", "outlook", "gap",
                           "gap_pct", "actual_to_date", "forecast_rest", "bias_pct", "wmape",
                           "triggered"]
    with_by = compute_gap(table(BASIC), q(by="region")).to_json()
    assert list(with_by)[-2:] == ["by", "drivers"]
    assert list(with_by["drivers"][0]) == ["member", "plan", "outlook", "gap", "gap_pct",
                                           "share"]
    assert with_by["horizon"] == {"name": "fy", "start": "2026-01", "end": "2026-12"}


def _mixed_rows(with_actuals: bool) -> list[dict[str, object]]:
    """Two regions × two products × revenue and volume × 12 months, some values missing."""
    rng = random.Random(11)
    data: list[dict[str, object]] = []
    for m in range(1, 13):
        for region in ("EU", "NA"):
            for product in ("a", "b"):
                for metric in ("revenue", "volume"):
                    data.append({
                        "period": f"2026-{m:02d}", "region": region, "product": product,
                        "metric": metric,
                        "plan": None if rng.random() < 0.05 else round(rng.uniform(10, 99), 2),
                        "forecast": None if rng.random() < 0.05 else round(rng.uniform(10, 99), 2),
                        "actual": round(rng.uniform(10, 99), 2)
                        if with_actuals and m <= 7 and rng.random() > 0.05 else None})
    return data


@pytest.mark.parametrize("with_actuals", [True, False], ids=["as-of", "no-actuals"])
@pytest.mark.parametrize("query", [
    q(metric="revenue", by="product"),
    q(metric="revenue", scope={"region": ["EU"]}, horizon="ytd", by="product"),
    q(metric="volume", horizon="rest", by="region"),
    q(metric="revenue", horizon="2026-Q3", as_of=parse_month("2026-05")),
], ids=["fy", "ytd-scope", "rest", "quarter-as-of"])
def test_rows_out_of_period_order_give_the_same_gap(query: GapQuery, with_actuals: bool
                                                     ) -> None:
    """The loader's table is in period order (closed months are one run of rows); a table
    built from a frame in another order takes the other path to the same figures."""
    ordered = table(_mixed_rows(with_actuals))
    assert ordered.sorted_by_period
    frame = ordered.frame.iloc[::-1].reset_index(drop=True)
    shuffled = PlanningTable(frame=frame, dimensions=ordered.dimensions,
                             metrics=ordered.metrics, source="test", rows_read=ordered.rows,
                             rows_merged=0)
    assert not shuffled.sorted_by_period
    (first, first_pvm), (second, second_pvm) = (
        gap_with_pvm(t, query, explain=True) for t in (ordered, shuffled))
    for name in ("plan", "outlook", "actual_to_date", "forecast_rest", "bias_pct", "wmape"):
        assert getattr(second, name) == pytest.approx(getattr(first, name)), name
    assert (second.rows, second.as_of) == (first.rows, first.as_of) and first.rows > 0
    assert [(d.member, pytest.approx(d.gap)) for d in second.drivers] == [
        (d.member, d.gap) for d in first.drivers]
    if first_pvm is not None:
        assert second_pvm is not None
        assert (second_pvm.price, second_pvm.volume, second_pvm.mix) == pytest.approx(
            (first_pvm.price, first_pvm.volume, first_pvm.mix))
    # The figures themselves, from the rows one by one.
    selected = [r for r in _mixed_rows(with_actuals) if r["metric"] == (query.metric or "revenue")
                and all(r[k] in v for k, v in query.scope.items())
                and first.horizon.start <= parse_month(str(r["period"])) <= first.horizon.end]
    closed = [r for r in selected if first.as_of is not None
              and parse_month(str(r["period"])) <= first.as_of]
    assert first.plan == pytest.approx(sum(float(r["plan"] or 0) for r in selected))
    assert first.actual_to_date == pytest.approx(sum(float(r["actual"] or 0) for r in closed))
    assert first.outlook == pytest.approx(
        sum(float((r["actual"] if r in closed else r["forecast"]) or 0) for r in selected))


def test_scope_members_are_found_by_their_codes_and_unknown_ones_match_nothing() -> None:
    # More than four members take the lookup-table path of the mask, fewer the compares.
    rows = [row("2026-01", 10.0 * (i + 1), 10.0 * (i + 1), 10.0, region=f"R{i}")
            for i in range(7)]
    data = table(rows)
    assert data.category_codes("region", ["R3", "nowhere", "R0"]) == [
        list(data.frame["region"].cat.categories).index(name) for name in ("R3", "R0")]
    assert data.category_lookup("region") is data.category_lookup("region")  # built once
    few = compute_gap(data, q(scope={"region": ["R1", "nowhere"]}))
    assert few.plan == 20.0
    many = compute_gap(data, q(scope={"region": ["R0", "R2", "R4", "R5", "R6", "x"]}))
    assert many.plan == 10.0 + 30.0 + 50.0 + 60.0 + 70.0
    assert compute_gap(data, q(scope={"region": ["x"]})).rows == 0
    assert compute_gap(data, q(metric="no such metric")).rows == 0
