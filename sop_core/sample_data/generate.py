"""Make the bundled sample: a food & personal-care company, 24 months, as of 2026-08.

Deterministic (fixed seed), so the committed CSV can be checked against this script:
``python -m sop_core.sample_data.generate`` rewrites it.

The stories planted in it, so that the demo has something to say:
- EU e-commerce Snacks falls well short of plan from the spring (lost listings);
- North America Dairy sells the planned volume at lower prices (price erosion);
- APAC Beverages beats plan (a hot summer);
- LATAM runs a little under plan, below the 5 % trigger threshold;
- the forecast for Middle East & Africa is biased high (over-forecasting);
- a unit sells at a different price in each channel and region (e-commerce dearer,
  wholesale cheaper), so volume moving between them shows as mix: EU Snacks lose their
  dearest units, and price / volume / mix has a real mix effect to show.

The price differences change volumes only: revenue is the same as before they were added.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from sop_core.sample_data import SAMPLE_CSV

REGIONS = {"EU": 1.0, "North America": 1.3, "APAC": 0.8, "LATAM": 0.45,
           "Middle East & Africa": 0.3}
CATEGORIES = {"Snacks": (1.0, 2.4), "Beverages": (1.2, 1.6), "Dairy": (0.9, 3.1),
              "Frozen": (0.6, 4.2), "Personal Care": (0.7, 6.5)}  # (size, price per unit)
CHANNELS = {"Retail": 0.6, "E-commerce": 0.25, "Wholesale": 0.15}
# Price per unit relative to the category's, by channel and by region.
CHANNEL_PRICES = {"Retail": 1.0, "E-commerce": 1.18, "Wholesale": 0.78}
REGION_PRICES = {"EU": 1.0, "North America": 1.12, "APAC": 0.93, "LATAM": 0.81,
                 "Middle East & Africa": 0.88}
MONTHS = [(year, month) for year in (2025, 2026) for month in range(1, 13)]
AS_OF = (2026, 8)
BASE_VOLUME = 120_000.0


def _effects(region: str, category: str, channel: str, year: int, month: int
             ) -> tuple[float, float]:
    """Multipliers on (volume, price) of the actual against plan."""
    volume, price = 1.0, 1.0
    if year == 2026:
        if (region, category, channel) == ("EU", "Snacks", "E-commerce") and month >= 3:
            volume *= 0.55
        elif (region, category) == ("EU", "Snacks"):
            volume *= 0.97
        if (region, category) == ("North America", "Dairy"):
            price *= 0.86
        if (region, category) == ("APAC", "Beverages") and 5 <= month <= 9:
            volume *= 1.22
        if region == "LATAM":
            volume *= 0.975
    return volume, price


def rows() -> list[dict[str, object]]:
    rng = np.random.default_rng(20261122)
    out: list[dict[str, object]] = []
    for region, region_size in REGIONS.items():
        for category, (category_size, unit_price) in CATEGORIES.items():
            for channel, channel_share in CHANNELS.items():
                for year, month in MONTHS:
                    season = 1 + 0.18 * np.sin((month - 3) / 12 * 2 * np.pi)
                    growth = 1.04 if year == 2026 else 1.0
                    plan_volume = BASE_VOLUME * region_size * category_size * channel_share
                    plan_volume *= season * growth
                    plan_price = unit_price * (1.03 if year == 2026 else 1.0)
                    volume_effect, price_effect = _effects(region, category, channel, year, month)
                    noise_v, noise_p = rng.normal(1, 0.025), rng.normal(1, 0.01)
                    true_volume = plan_volume * volume_effect * noise_v
                    true_price = plan_price * price_effect * noise_p
                    closed = (year, month) <= AS_OF
                    # The forecast was made at the start of each month: close to the truth,
                    # biased high in Middle East & Africa.
                    bias = 1.09 if region == "Middle East & Africa" else 1.0
                    forecast_volume = true_volume * bias * rng.normal(1, 0.04)
                    # Units cost more or less here: fewer or more of them for the revenue.
                    units = 1 / (CHANNEL_PRICES[channel] * REGION_PRICES[region])
                    for metric, plan, forecast, actual in (
                        ("revenue", plan_volume * plan_price, forecast_volume * true_price,
                         true_volume * true_price),
                        ("volume", plan_volume * units, forecast_volume * units,
                         true_volume * units),
                    ):
                        out.append({
                            "period": f"{year}-{month:02d}", "region": region,
                            "category": category, "channel": channel, "metric": metric,
                            "plan": round(plan, 2), "forecast": round(forecast, 2),
                            "actual": round(actual, 2) if closed else "",
                        })
    return out


def write(path: Path = SAMPLE_CSV) -> None:
    data = rows()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(data[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)


if __name__ == "__main__":
    write()
