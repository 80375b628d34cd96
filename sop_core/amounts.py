"""Reading amounts people type: ``350000``, ``350,000``, ``350K``, ``1.5M``, ``-2.1k``."""

from __future__ import annotations

import math
import re

_AMOUNT = re.compile(r"^\s*([+-]?)\s*(\d{1,3}(?:[ ,]\d{3})+|\d+)?(\.\d+)?\s*([kmb])?\s*$",
                     re.IGNORECASE)
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9}


def parse_amount(text: str) -> float | None:
    """The number, or ``None`` if the text is not an amount."""
    found = _AMOUNT.match(text or "")
    if not found or not (found.group(2) or found.group(3)):
        return None
    sign, whole, fraction, suffix = found.groups()
    value = float((whole or "0").replace(",", "").replace(" ", "") + (fraction or ""))
    value *= _SCALE.get((suffix or "").lower(), 1.0)
    if sign == "-":
        value = -value
    return value if math.isfinite(value) else None
