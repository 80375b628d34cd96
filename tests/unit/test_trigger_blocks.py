"""The trigger point's drivers: the first members shown, the rest counted."""

from __future__ import annotations

import re

from bot.blocks.trigger import MAX_DRIVERS, MAX_OFFSETS, drivers_text
from sop_core.gaps import Driver, GapResult
from sop_core.periods import Horizon, month


def result_with(drivers: list[Driver]) -> GapResult:
    return GapResult(scope={}, metric="revenue", as_of=month(2026, 8),
                     horizon=Horizon("fy", month(2026, 1), month(2026, 12)), plan=1e6,
                     outlook=9e5, actual_to_date=6e5, forecast_rest=3e5, bias_pct=None,
                     wmape=None, triggered=True, by="customer", drivers=tuple(drivers))


def driver(i: int, gap: float, offset: bool = False) -> Driver:
    return Driver(f"Customer {i:04d}", 1000.0, 1000.0 + gap, gap, gap / 10, None, offset)


def test_the_first_drivers_are_shown_and_the_others_counted() -> None:
    pushing = [driver(i, -3000.0 + i) for i in range(2_500)]
    still = [driver(9_000 + i, 0.0) for i in range(7)]  # no gap: neither shown nor counted
    offsets = [driver(5_000 + i, 50.0 - i, offset=True) for i in range(40)]
    text = drivers_text(result_with(pushing + still + offsets))
    assert text is not None
    pushing_part, offsets_part = text.split("*Offsets*")
    shown = re.findall(r"Customer (\d{4})", pushing_part)
    assert shown == [f"{i:04d}" for i in range(MAX_DRIVERS)]
    assert pushing_part.rstrip().endswith(f"…and {2_500 - MAX_DRIVERS} more")
    assert re.findall(r"Customer (\d{4})", offsets_part) == [
        f"{5_000 + i}" for i in range(MAX_OFFSETS)]
    assert offsets_part.endswith(f"…and {40 - MAX_OFFSETS} more")


def test_no_count_when_every_driver_is_shown() -> None:
    text = drivers_text(result_with([driver(i, -10.0) for i in range(MAX_DRIVERS)]))
    assert text is not None and "more" not in text
    assert text.count("• ") == MAX_DRIVERS
    nothing = drivers_text(result_with([driver(1, 0.0)]))
    assert nothing is not None and "no member moves the gap" in nothing
    assert "more" not in nothing
