"""Reading formatted numbers back (tests only): a label must say the value it stands for."""

from __future__ import annotations

import re

NBSP = "\xa0"
_SCALES = {"K": 1e3, "Tsd.": 1e3, "M": 1e6, "Mio.": 1e6, "B": 1e9, "Mrd.": 1e9}


def read_back(label: str, locale: str) -> float:
    """A tick label as a number again (the inverse of the format, for tests)."""
    group, decimal = (".", ",") if locale.startswith("de") else (",", ".")
    found = re.fullmatch(r"(-?[\d.,]+)\s*(K|Tsd\.|M|Mio\.|B|Mrd\.)?", label.replace(NBSP, " "))
    assert found, label
    digits = found.group(1).replace(group, "").replace(decimal, ".")
    return float(digits) * _SCALES.get(found.group(2) or "", 1.0)
