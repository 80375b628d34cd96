"""Numbers as people read them (PRODUCT.md §4): ``-4.3%``, ``+2.0%``, ``1.2M``, ``-370K``."""

from __future__ import annotations

import math

from sop_core.periods import Month, format_month

_SUFFIXES = ((1e9, "B"), (1e6, "M"), (1e3, "K"))


def amount(value: float | None, *, signed: bool = False) -> str:
    """Compact amounts: thousands separators below 10,000, then K / M / B suffixes."""
    if value is None or not math.isfinite(value):
        return "n/a"
    size = abs(value)
    if size < 0.5:
        return "0"  # never "-0" or "+0"
    sign = "-" if value < 0 else ("+" if signed else "")
    if size < 10_000:
        return f"{sign}{size:,.0f}"
    for scale, suffix in _SUFFIXES:
        if size >= scale * 0.9995:
            scaled = size / scale
            digits = 0 if scaled >= 100 else 1
            return f"{sign}{scaled:.{digits}f}{suffix}"
    return f"{sign}{size:,.0f}"  # pragma: no cover - the loop always returns


def full_amount(value: float | None) -> str:
    """Exact amounts with thousands separators (tables, exports)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.2f}"


def percent(value: float | None, *, signed: bool = True) -> str:
    """A percentage with one decimal, signed unless asked not to; ``n/a`` when undefined."""
    if value is None or not math.isfinite(value):
        return "n/a"
    rounded = round(value, 1)
    if rounded == 0:
        return "0.0%"
    return f"{rounded:+.1f}%" if signed else f"{rounded:.1f}%"


def share(value: float | None) -> str:
    """A share of a total (a fraction) as an unsigned whole percentage."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:.0f}%"


def month(value: Month | None) -> str:
    return format_month(value) if value is not None else "n/a"
