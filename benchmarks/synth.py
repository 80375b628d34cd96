"""Deterministic synthetic planning data in the wide CSV format of docs/reference/data-format.md.

``period,region,category,segment,channel,customer,metric,plan,forecast,actual``

- 36 months, 2024-01 … 2026-12; actuals through 2026-08, blank after (as-of 2026-08).
- 6 regions (``NA``, North America's code, among them: text, not a missing value),
  20 categories, 4 segments, 5 channels; customers scale with the size
  (rows / 2,000, between 100 and 8,000: 5,000 at 10M rows). Each customer sits in one
  region and one segment and buys ~28 of the 100 (category, channel) pairs, so every
  key combination carries all 36 months of both metrics, ``revenue`` and ``volume``.
- Revenue has cents, volume whole units; a few plans and forecasts are blank.
- About 1 % of the rows are duplicate keys (a late correction batch appended at the end
  of the file): the key's values are split between the two rows, so the loader has
  merging to do and the merged values are the intended ones.

The generator works on whole numpy columns and writes with pyarrow's CSV writer: 10M
rows take a few seconds. Files are cached under ``benchmarks/.data/`` by row count and
:data:`VERSION` (bump it whenever the generated content changes).

``python -m benchmarks.synth --rows 1000000`` writes (or finds) the file and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

VERSION = 3
SEED = 20260801
DATA_DIR = Path(__file__).resolve().parent / ".data"
COLUMNS = ("period", "region", "category", "segment", "channel", "customer", "metric",
           "plan", "forecast", "actual")

FIRST_YEAR, YEARS = 2024, 3
PERIODS = tuple(f"{FIRST_YEAR + i // 12}-{i % 12 + 1:02d}" for i in range(12 * YEARS))
AS_OF_INDEX = PERIODS.index("2026-08")
METRICS = ("revenue", "volume")

# name: (share of customers, volume performance vs plan, price performance vs plan)
REGIONS = {
    "EU": (0.26, 0.93, 0.99), "NA": (0.24, 1.01, 0.97), "APAC": (0.18, 1.06, 1.00),
    "LATAM": (0.12, 0.97, 1.02), "MEA": (0.10, 1.00, 1.00), "ANZ": (0.10, 1.02, 1.01),
}  # fmt: skip
# name: (size, price per unit)
CATEGORIES = {
    "Snacks": (1.0, 2.4), "Beverages": (1.2, 1.6), "Dairy": (0.9, 3.1), "Frozen": (0.6, 4.2),
    "Personal Care": (0.7, 6.5), "Bakery": (0.8, 2.1), "Confectionery": (0.9, 3.4),
    "Breakfast": (0.5, 3.9), "Coffee": (0.6, 8.5), "Tea": (0.3, 5.2), "Pet Food": (0.5, 4.8),
    "Baby Care": (0.4, 9.9), "Household": (0.7, 3.7), "Home Care": (0.6, 4.4),
    "Oral Care": (0.4, 3.2), "Hair Care": (0.4, 6.1), "Skin Care": (0.3, 12.5),
    "Sauces": (0.5, 2.9), "Ready Meals": (0.6, 5.6), "Water": (1.1, 0.6),
}  # fmt: skip
SEGMENTS = {"Key Accounts": 0.15, "Mid-Market": 0.30, "Long Tail": 0.45, "Distributors": 0.10}
CHANNELS = {"Retail": 0.45, "E-commerce": 0.2, "Wholesale": 0.15, "Foodservice": 0.1,
            "Convenience": 0.1}
PAIRS = len(CATEGORIES) * len(CHANNELS)
DUPLICATE_SHARE = 0.01


@dataclass(frozen=True)
class SynthInfo:
    """What was generated: enough for a benchmark to check the loader's counts."""

    path: str
    rows: int  # data rows in the file
    unique_rows: int  # rows after merging duplicate keys
    duplicate_rows: int
    customers: int
    combinations: int  # (region, category, segment, channel, customer) combinations
    version: int
    bytes: int
    seconds: float  # generation time (0 when found in the cache)


def customers_for(rows: int) -> int:
    return int(min(8000, max(100, rows // 2000)))


def data_path(rows: int) -> Path:
    return DATA_DIR / f"plan_{rows}_v{VERSION}.csv"


def ensure(rows: int) -> SynthInfo:
    """The cached file for ``rows`` rows, generated first if missing."""
    path = data_path(rows)
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        info = SynthInfo(**json.loads(meta.read_text()))
        if info.version == VERSION and info.rows == rows and info.bytes == path.stat().st_size:
            return SynthInfo(**{**asdict(info), "seconds": 0.0})
    return generate(rows, path)


def _choice(rng: np.random.Generator, weights: dict[str, float] | list[float], size: int
            ) -> np.ndarray:
    p = np.asarray(list(weights.values()) if isinstance(weights, dict) else weights, float)
    return rng.choice(len(p), size=size, p=p / p.sum()).astype(np.int32)


def _dictionary(codes: np.ndarray, names: list[str] | tuple[str, ...]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(names))


def _blank(values: np.ndarray, missing: np.ndarray) -> pa.Array:
    return pa.array(values, pa.float64(), mask=missing)


def generate(rows: int, path: Path | None = None) -> SynthInfo:
    """Write ``rows`` data rows (plus the header) to ``path``; deterministic per ``rows``."""
    if rows < 1000:
        raise ValueError("at least 1000 rows")
    started = time.perf_counter()
    path = path or data_path(rows)
    rng = np.random.default_rng([SEED, rows])
    months, n_metrics = len(PERIODS), len(METRICS)
    per_combination = months * n_metrics
    combinations = round(rows / (per_combination * (1 + DUPLICATE_SHARE)))
    combinations = max(1, min(combinations, rows // per_combination))
    unique_rows = combinations * per_combination
    duplicate_rows = rows - unique_rows
    customers = max(customers_for(rows), -(-combinations // (PAIRS // 2)))

    # Customers: one region, one segment, a size; a share of the (category, channel) pairs.
    region_of = _choice(rng, [w for w, _, _ in REGIONS.values()], customers)
    segment_of = _choice(rng, SEGMENTS, customers)
    customer_size = rng.lognormal(0.0, 0.8, customers)
    # Which customer buys which pair: the top `combinations` of weighted random keys over
    # all (customer, pair) slots (Gumbel top-k), so keys are unique by construction and
    # larger customers buy more pairs, mostly through the larger channels.
    pair_weight = np.outer([s for s, _ in CATEGORIES.values()], list(CHANNELS.values()))
    keys = (np.log(customer_size)[:, None] * 0.5 + np.log(pair_weight.ravel())[None, :]
            + rng.gumbel(size=(customers, PAIRS))).ravel()
    slots = np.sort(np.argpartition(-keys, combinations - 1)[:combinations])
    owner, pair = (slots // PAIRS).astype(np.int32), (slots % PAIRS).astype(np.int32)
    category, channel = pair // len(CHANNELS), pair % len(CHANNELS)
    region, segment = region_of[owner], segment_of[owner]

    sizes = np.asarray([s for s, _ in CATEGORIES.values()])
    prices = np.asarray([p for _, p in CATEGORIES.values()])
    volume_perf = np.asarray([v for _, v, _ in REGIONS.values()])
    price_perf = np.asarray([p for _, _, p in REGIONS.values()])
    base = (1000.0 * customer_size[owner] * sizes[category]
            * np.asarray(list(CHANNELS.values()))[channel] * rng.lognormal(0, 0.5, combinations))
    plan_price = prices[category] * rng.uniform(0.9, 1.1, combinations)
    perf = volume_perf[region] * rng.lognormal(0.0, 0.08, combinations)
    phase = rng.uniform(0, 12, len(CATEGORIES))

    # Period-major (period, combination) grid: the order a planning extract comes in.
    t = np.arange(months)
    season = 1 + 0.15 * np.sin(2 * np.pi * (t[:, None] + phase[category][None, :]) / 12)
    growth = 1.03 ** (t // 12)[:, None]
    plan_volume = base[None, :] * season * growth
    plan_rev_price = plan_price[None, :] * 1.02 ** (t // 12)[:, None]
    shape = (months, combinations)
    actual_volume = plan_volume * perf[None, :] * rng.normal(1.0, 0.08, shape)
    actual_price = plan_rev_price * price_perf[region][None, :] * rng.normal(1.0, 0.02, shape)
    closed = (t <= AS_OF_INDEX)[:, None]
    forecast_volume = np.where(closed, actual_volume * rng.normal(1.0, 0.06, shape),
                               plan_volume * perf[None, :] * rng.normal(1.0, 0.04, shape))
    forecast_price = np.where(closed, actual_price, plan_rev_price * price_perf[region][None, :])

    # Columns over (period, metric, combination): revenue then volume within each period.
    def stack(revenue: np.ndarray, volume: np.ndarray) -> np.ndarray:
        return np.stack([np.round(revenue, 2), np.round(volume, 0)], axis=1).reshape(-1)

    plan = stack(plan_volume * plan_rev_price, plan_volume)
    forecast = stack(forecast_volume * forecast_price, forecast_volume)
    actual = stack(actual_volume * actual_price, actual_volume)
    del plan_volume, actual_volume, forecast_volume, actual_price, forecast_price
    period_code = np.repeat(np.arange(months, dtype=np.int32), n_metrics * combinations)
    metric_code = np.tile(np.repeat(np.arange(n_metrics, dtype=np.int32), combinations), months)
    combination = np.tile(np.arange(combinations, dtype=np.int32), months * n_metrics)
    no_actual = np.repeat(t > AS_OF_INDEX, n_metrics * combinations)
    no_plan = rng.random(unique_rows) < 0.001
    no_forecast = rng.random(unique_rows) < 0.003

    # Duplicates: split a row's values between it and a copy appended at the end.
    source = np.sort(rng.choice(unique_rows, size=duplicate_rows, replace=False))
    share = rng.uniform(0.2, 0.8, duplicate_rows)
    extra = {}
    for name, values in (("plan", plan), ("forecast", forecast), ("actual", actual)):
        decimals = np.where(metric_code[source] == 0, 2, 0)
        kept = np.round(values[source] * share * 10.0**decimals) / 10.0**decimals
        extra[name] = np.round(values[source] - kept, 2)
        values[source] = kept
    index = np.concatenate([np.arange(unique_rows), source])

    def text(codes: np.ndarray, names: list[str] | tuple[str, ...]) -> pa.DictionaryArray:
        return _dictionary(codes[combination][index], names)

    table = pa.table({
        "period": _dictionary(period_code[index], PERIODS),
        "region": text(region, list(REGIONS)),
        "category": text(category, list(CATEGORIES)),
        "segment": text(segment, list(SEGMENTS)),
        "channel": text(channel, list(CHANNELS)),
        "customer": _dictionary(owner[combination][index],
                                [f"CUST-{i:05d}" for i in range(customers)]),
        "metric": _dictionary(metric_code[index], METRICS),
        "plan": _blank(np.concatenate([plan, extra["plan"]]), no_plan[index]),
        "forecast": _blank(np.concatenate([forecast, extra["forecast"]]), no_forecast[index]),
        "actual": _blank(np.concatenate([actual, extra["actual"]]), no_actual[index]),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    with partial.open("wb") as handle:
        handle.write((",".join(COLUMNS) + "\n").encode())
        pacsv.write_csv(table, handle, pacsv.WriteOptions(
            include_header=False, quoting_style="none", batch_size=1 << 16))
    partial.replace(path)
    info = SynthInfo(path=str(path), rows=table.num_rows, unique_rows=unique_rows,
                     duplicate_rows=duplicate_rows, customers=customers,
                     combinations=combinations, version=VERSION, bytes=path.stat().st_size,
                     seconds=time.perf_counter() - started)
    path.with_suffix(".json").write_text(json.dumps(asdict(info), indent=2))
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = parser.parse_args(argv)
    for rows in args.rows:
        info = generate(rows) if args.force else ensure(rows)
        how = f"generated in {info.seconds:.1f} s" if info.seconds else "cached"
        print(f"{info.path}: {info.rows:,} rows ({info.unique_rows:,} unique keys, "
              f"{info.duplicate_rows:,} duplicates, {info.customers:,} customers), "
              f"{info.bytes / 1e6:,.0f} MB, {how}")


if __name__ == "__main__":
    main()
