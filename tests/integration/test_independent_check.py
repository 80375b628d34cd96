"""`sopgap gaps --json` agrees to the cent with an independent reading of the gap maths
(docs/reference/gap-maths.md).

The reference below is written from docs/reference/ alone, in plain Python: the csv module,
dicts and ``math.fsum``; nothing from ``sop_core`` computes any of it. The product is
driven only through its command line (``sopgap load``, then ``sopgap gaps … --json``).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from sop_core.config import get_settings
from sop_core.sample_data import SAMPLE_CSV

# The JSON rounds amounts to the cent and percentages to 4 decimals (sop_core/formatting.py).
AMOUNT_TOLERANCE = 0.005 + 1e-6  # half a cent
PERCENT_TOLERANCE = 0.00005 + 1e-6
THRESHOLD_PCT = 5.0  # docs/reference/gap-maths.md defaults
FLOOR = 0.0


# --------------------------------------------------------------------------------------
# The reference: docs/reference/data-format.md and gap-maths.md in plain Python
# --------------------------------------------------------------------------------------

MEASURE_WORDS = {
    "plan": "plan", "budget": "plan", "target": "plan",
    "forecast": "forecast", "latest": "forecast", "le": "forecast",
    "actual": "actual", "actuals": "actual",
}
MEASURE_COLUMNS = ("measure", "version", "scenario")


def month_index(text: str) -> int:
    year, month = text.strip()[:7].split("-")
    return int(year) * 12 + int(month) - 1


def month_text(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@dataclass(frozen=True)
class Fact:
    """One (period, metric, dimension values) cell with its three measures (None = missing)."""

    month: int
    metric: str
    dims: Mapping[str, str]
    plan: float | None
    forecast: float | None
    actual: float | None


def read_facts(path: Path) -> list[Fact]:
    """Wide or long CSV → facts; rows sharing period, metric and dimensions are summed."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0])
    measure_column = next((c for c in columns if c.lower() in MEASURE_COLUMNS), None)
    measure_columns = {c for c in columns if c.lower() in MEASURE_WORDS}
    skip = {"period", "metric", "value", measure_column, *measure_columns}
    dims = [c for c in columns if c not in skip]
    cells: dict[tuple[Any, ...], dict[str, list[float]]] = {}
    for row in rows:
        key = (month_index(row["period"]), row.get("metric") or "value",
               tuple(row[d].strip() or "(blank)" for d in dims))
        values = cells.setdefault(key, {"plan": [], "forecast": [], "actual": []})
        if measure_column is not None:
            pairs = [(MEASURE_WORDS[row[measure_column].strip().lower()], row["value"])]
        else:
            pairs = [(MEASURE_WORDS[c.lower()], row[c]) for c in measure_columns]
        for measure, text in pairs:
            if text.strip():
                values[measure].append(float(text))
    return [
        Fact(month=month, metric=metric, dims=dict(zip(dims, members, strict=True)),
             **{m: (math.fsum(v) if v else None) for m, v in values.items()})
        for (month, metric, members), values in cells.items()
    ]


def fiscal_year_first_month(month: int, fy_start: int) -> int:
    year, number = divmod(month, 12)
    start_year = year if number + 1 >= fy_start else year - 1
    return start_year * 12 + fy_start - 1


def horizon_range(name: str, as_of: int, fy_start: int) -> tuple[int, int]:
    """Inclusive (first, last) month of a horizon; fiscal years are named by their start."""
    first = fiscal_year_first_month(as_of, fy_start)
    if name == "fy":
        return first, first + 11
    if name == "ytd":
        return first, as_of
    if name == "rest":
        return as_of + 1, first + 11
    if len(name) == 4:  # YYYY: a fiscal year
        start = int(name) * 12 + fy_start - 1
        return start, start + 11
    if "-Q" in name:
        year, quarter = name.split("-Q")
        start = int(year) * 12 + fy_start - 1 + 3 * (int(quarter) - 1)
        return start, start + 2
    month = month_index(name)
    return month, month


def pct(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole * 100


def reference(facts: Sequence[Fact], *, scope: Mapping[str, Sequence[str]], metric: str,
              horizon: str, by: str | None, fy_start: int = 1,
              as_of: int | None = None) -> dict[str, Any]:
    if as_of is None:  # the latest month with any actual
        as_of = max(f.month for f in facts if f.actual is not None)
    first, last = horizon_range(horizon, as_of, fy_start)
    rows = [f for f in facts
            if f.metric == metric and first <= f.month <= last
            and all(f.dims[d] in members for d, members in scope.items())]

    def outlook(f: Fact) -> float:
        value = f.actual if f.month <= as_of else f.forecast
        return value if value is not None else 0.0

    def plan(f: Fact) -> float:
        return f.plan if f.plan is not None else 0.0

    total_plan = math.fsum(plan(f) for f in rows)
    total_outlook = math.fsum(outlook(f) for f in rows)
    gap = total_outlook - total_plan
    gap_pct = pct(gap, total_plan)
    closed_pairs: list[tuple[float, float]] = []  # (actual, forecast) of closed months
    for f in rows:
        if f.month <= as_of and f.actual is not None and f.forecast is not None:
            closed_pairs.append((f.actual, f.forecast))
    bias = wmape = None
    if closed_pairs:
        bias = pct(math.fsum(fc - a for a, fc in closed_pairs),
                   math.fsum(a for a, _ in closed_pairs))
        wmape = pct(math.fsum(abs(a - fc) for a, fc in closed_pairs),
                    math.fsum(abs(a) for a, _ in closed_pairs))
    result: dict[str, Any] = {
        "scope": {d: list(m) for d, m in scope.items()},
        "metric": metric,
        "as_of": month_text(as_of),
        "horizon": {"name": horizon, "start": month_text(first), "end": month_text(last)},
        "plan": total_plan, "outlook": total_outlook, "gap": gap, "gap_pct": gap_pct,
        "actual_to_date": math.fsum(f.actual for f in rows
                                    if f.month <= as_of and f.actual is not None),
        "forecast_rest": math.fsum(f.forecast for f in rows
                                   if f.month > as_of and f.forecast is not None),
        "bias_pct": bias, "wmape": wmape,
        "triggered": gap_pct is not None and abs(gap_pct) >= THRESHOLD_PCT
        and abs(gap) >= FLOOR,
    }
    if by is not None:
        members: dict[str, list[Fact]] = {}
        for f in rows:
            members.setdefault(f.dims[by], []).append(f)
        drivers = []
        for member, member_rows in members.items():
            member_plan = math.fsum(plan(f) for f in member_rows)
            member_gap = math.fsum(outlook(f) for f in member_rows) - member_plan
            drivers.append({
                "member": member, "plan": member_plan,
                "outlook": math.fsum(outlook(f) for f in member_rows),
                "gap": member_gap, "gap_pct": pct(member_gap, member_plan),
                "share": None if gap == 0 else member_gap / gap * 100,  # in percent
            })
        result["by"] = by
        result["drivers"] = drivers
    return result


# --------------------------------------------------------------------------------------
# Comparing the product's answer with the reference
# --------------------------------------------------------------------------------------

AMOUNTS = ("plan", "outlook", "gap", "actual_to_date", "forecast_rest")
PERCENTAGES = ("gap_pct", "bias_pct", "wmape")


def assert_close(actual: Any, expected: float | None, tolerance: float, what: str) -> None:
    if expected is None:
        assert actual is None, f"{what}: expected null, got {actual!r}"
    else:
        assert isinstance(actual, float), f"{what}: expected a number, got {actual!r}"
        assert abs(actual - expected) <= tolerance, f"{what}: {actual!r} != {expected!r}"


def assert_driver_order(drivers: Sequence[Mapping[str, Any]], total_gap: float) -> None:
    """Members pushing in the total's direction first, largest |gap| first; then offsets."""
    direction = 0.0 if total_gap == 0 else math.copysign(1.0, total_gap)
    if direction == 0:
        pushing = list(drivers)
    else:
        pushing = [d for d in drivers if d["gap"] * direction > 0]
        offsets = [d for d in drivers if d["gap"] * direction < 0]
        assert drivers[:len(pushing)] == pushing, "members in the total's direction come first"
        assert drivers[len(drivers) - len(offsets):] == offsets, "offsets come last"
    sizes = [abs(d["gap"]) for d in pushing]
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(sizes)), sizes


def assert_agrees(body: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    assert set(body) == set(expected)
    for key in ("scope", "metric", "as_of", "horizon", "triggered"):
        assert body[key] == expected[key], key
    for key in AMOUNTS:
        assert_close(body[key], expected[key], AMOUNT_TOLERANCE, key)
    for key in PERCENTAGES:
        assert_close(body[key], expected[key], PERCENT_TOLERANCE, key)
    if "by" not in expected:
        return
    assert body["by"] == expected["by"]
    drivers = body["drivers"]
    by_member = {d["member"]: d for d in drivers}
    assert len(by_member) == len(drivers), "each member once"
    assert set(by_member) == {d["member"] for d in expected["drivers"]}
    for want in expected["drivers"]:
        got = by_member[want["member"]]
        assert set(got) == set(want)
        for key in ("plan", "outlook", "gap"):
            assert_close(got[key], want[key], AMOUNT_TOLERANCE, f"{want['member']} {key}")
        for key in ("gap_pct", "share"):
            assert_close(got[key], want[key], PERCENT_TOLERANCE, f"{want['member']} {key}")
    assert_driver_order(drivers, expected["gap"])
    if drivers:
        rounding = len(drivers) + 1  # each figure rounded once
        assert (abs(math.fsum(d["gap"] for d in drivers) - body["gap"])
                <= rounding * AMOUNT_TOLERANCE)
        if body["gap"] != 0:
            assert (abs(math.fsum(d["share"] for d in drivers) - 100)
                    <= rounding * PERCENT_TOLERANCE)


# --------------------------------------------------------------------------------------
# Driving the product
# --------------------------------------------------------------------------------------

def sopgap(*args: str, env: Mapping[str, str] | None = None) -> Any:
    get_settings.cache_clear()
    result = CliRunner().invoke(app, list(args), env=dict(env) if env else None)
    get_settings.cache_clear()
    return result


def gaps_json(database_url: str, filters: Iterable[str], monkeypatch: pytest.MonkeyPatch
              ) -> dict[str, Any]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = sopgap("gaps", *filters, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    return body


def load_into_new_database(path: Path, directory: Path) -> str:
    url = f"sqlite:///{directory / 'check.db'}"
    result = sopgap("load", str(path), env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return url


def to_long_form(wide: Path, long: Path) -> None:
    """The sample as scenario/value rows (aliases, no row for a blank value, shuffled)."""
    names = {"plan": "Budget", "forecast": "LE", "actual": "Actuals"}
    with wide.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [c for c in rows[0] if c not in names]
    out = [[*(r[k] for k in keys), names[m], r[m]] for r in rows for m in names if r[m].strip()]
    random.Random(4).shuffle(out)
    with long.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*keys, "scenario", "value"])
        writer.writerows(out)


@dataclass(frozen=True)
class Loaded:
    url: str
    facts: list[Fact]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Loaded]:
    """The sample, wide and long, each loaded with `sopgap load` into a database of its own."""
    with pytest.MonkeyPatch.context() as patch:
        directory = tmp_path_factory.mktemp("independent")
        patch.chdir(directory)  # no .env from the repository
        long = directory / "sales_plan_long.csv"
        to_long_form(SAMPLE_CSV, long)
        out = {}
        for form, path in (("wide", SAMPLE_CSV), ("long", long)):
            (directory / form).mkdir()
            out[form] = Loaded(load_into_new_database(path, directory / form), read_facts(path))
    return out


def test_the_two_forms_hold_the_same_facts(loaded: dict[str, Loaded]) -> None:
    def keyed(facts: list[Fact]) -> dict[tuple[Any, ...], Fact]:
        return {(f.month, f.metric, tuple(sorted(f.dims.items()))): f for f in facts}

    wide, long = keyed(loaded["wide"].facts), keyed(loaded["long"].facts)
    assert len(wide) == 3600
    assert wide == long


# --------------------------------------------------------------------------------------
# The sample data, every horizon, scope and `by`
# --------------------------------------------------------------------------------------

SCOPES = {
    "all": ([], {}, "revenue"),
    "EU": (["region=EU"], {"region": ["EU"]}, "revenue"),
    "EU+APAC snacks": (["region=EU,APAC", "category=Snacks"],
                       {"region": ["EU", "APAC"], "category": ["Snacks"]}, "revenue"),
    "volume": (["metric=volume"], {}, "volume"),
}
HORIZONS = ["fy", "ytd", "rest", "2025", "2026", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4",
            "2026-03", "2026-10"]  # as of 2026-08: 2026-10 is a month after it
BYS = [None, "region", "category", "channel"]


def filters_for(words: list[str], horizon: str | None, by: str | None) -> list[str]:
    return [*words, *([f"horizon={horizon}"] if horizon else []), *([f"by={by}"] if by else [])]


@pytest.mark.parametrize("by", BYS, ids=lambda b: f"by={b}")
@pytest.mark.parametrize("horizon", [None, *HORIZONS], ids=lambda h: f"horizon={h}")
@pytest.mark.parametrize("scope", SCOPES.values(), ids=SCOPES.keys())
@pytest.mark.parametrize("form", ["wide", "long"])
def test_sample_gaps_agree_to_the_cent(loaded: dict[str, Loaded], monkeypatch: pytest.MonkeyPatch,
                                       form: str, scope: tuple[list[str], dict[str, list[str]],
                                                               str],
                                       horizon: str | None, by: str | None) -> None:
    words, members, metric = scope
    data = loaded[form]
    body = gaps_json(data.url, filters_for(words, horizon, by), monkeypatch)
    expected = reference(data.facts, scope=members, metric=metric, horizon=horizon or "fy",
                         by=by)
    assert_agrees(body, expected)


@pytest.mark.parametrize("as_of", [None, "2026-02"], ids=lambda a: f"as_of={a}")
@pytest.mark.parametrize("by", [None, "category"], ids=lambda b: f"by={b}")
@pytest.mark.parametrize("horizon", ["fy", "ytd", "rest", "2026", "2026-Q1"])
@pytest.mark.parametrize("scope", [SCOPES["all"], SCOPES["EU"]], ids=["all", "EU"])
def test_an_april_fiscal_year_agrees_to_the_cent(
        loaded: dict[str, Loaded], monkeypatch: pytest.MonkeyPatch,
        scope: tuple[list[str], dict[str, list[str]], str], horizon: str,
        by: str | None, as_of: str | None) -> None:
    monkeypatch.setenv("SOPGAP_FISCAL_YEAR_START_MONTH", "4")
    words, members, metric = scope
    data = loaded["wide"]
    filters = filters_for(words, horizon, by) + ([f"as_of={as_of}"] if as_of else [])
    body = gaps_json(data.url, filters, monkeypatch)
    expected = reference(data.facts, scope=members, metric=metric, horizon=horizon, by=by,
                         fy_start=4, as_of=month_index(as_of) if as_of else None)
    assert_agrees(body, expected)
    fiscal_year = {None: ("2026-04", "2027-03"), "2026-02": ("2025-04", "2026-03")}[as_of]
    if horizon == "fy":
        assert (body["horizon"]["start"], body["horizon"]["end"]) == fiscal_year
    if horizon == "2026":  # fiscal years are named by the calendar year they start in
        assert (body["horizon"]["start"], body["horizon"]["end"]) == ("2026-04", "2027-03")


# --------------------------------------------------------------------------------------
# Undefined figures are null
# --------------------------------------------------------------------------------------

EDGE_CSV = """\
period,region,channel,plan,forecast,actual
2026-01,EU,Retail,100,90,95
2026-02,EU,Retail,100,100,
2026-01,Zero,Retail,0,10,12
2026-02,Zero,Online,,20,
2026-01,Flat,Retail,50,40,60
2026-01,Flat,Online,50,70,40
2026-01,NoActual,Retail,10,5,0
2026-01,NoActual,Online,10,,
"""


def test_a_horizon_without_rows_is_an_error_naming_the_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never zeros for a month the data does not reach: they would read as a real gap."""
    path = tmp_path / "edges.csv"
    path.write_text(EDGE_CSV)
    monkeypatch.setenv("DATABASE_URL", load_into_new_database(path, tmp_path))
    result = sopgap("gaps", "horizon=2026-03", "by=region", "--json")
    assert result.exit_code != 0
    assert "2026-03" in result.output and "2026-01..2026-02" in result.output


@pytest.mark.parametrize(("filters", "nulls"), [
    (["region=Zero"], {"gap_pct"}),
    (["region=Zero", "by=channel"], {"gap_pct", "drivers.gap_pct"}),
    (["region=Flat", "by=channel"], {"drivers.share"}),
    (["region=NoActual"], {"bias_pct", "wmape"}),
    (["horizon=rest"], {"bias_pct", "wmape"}),
    (["by=region"], set()),
])
def test_undefined_figures_are_null(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    filters: list[str], nulls: set[str]) -> None:
    path = tmp_path / "edges.csv"
    path.write_text(EDGE_CSV)
    url = load_into_new_database(path, tmp_path)
    body = gaps_json(url, filters, monkeypatch)
    scope = {w.split("=")[0]: w.split("=")[1].split(",") for w in filters
             if w.split("=")[0] not in {"by", "horizon"}}
    horizon = next((w.split("=")[1] for w in filters if w.startswith("horizon=")), "fy")
    by = next((w.split("=")[1] for w in filters if w.startswith("by=")), None)
    assert_agrees(body, reference(read_facts(path), scope=scope, metric="value",
                                  horizon=horizon, by=by))
    for name in nulls:
        if name.startswith("drivers."):
            key = name.removeprefix("drivers.")
            assert any(d[key] is None for d in body["drivers"]), name
        else:
            assert body[name] is None, name
    assert body["triggered"] is False or body["gap_pct"] is not None
