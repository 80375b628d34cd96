"""Every number a person reads, in one place: Slack, the CLI, charts, exports, digests.

- **Compact amounts** have three significant digits and a K / M / B suffix from 1,000 up
  (``-8.94K``, ``-464K``, ``3.24M``); below that whole numbers (``950``).
- **Full amounts** are whole numbers with the locale's grouping (``-464,296``); nobody
  plans in cents, and volume has none.
- **Gaps and changes carry a sign** (``signed=True``): ``+23.7K``; zero never does.
- **Percentages** have one decimal (``-12.5%``), signed unless asked not to; shares of a
  whole are unsigned whole percentages (``42%``).
- **Units** per metric (``SOPGAP_UNITS="revenue=EUR,volume=units"``): an ISO currency
  code is placed as the locale places currency, anything else is a word after the
  number. **Locale** (``SOPGAP_LOCALE``, default ``en_US``) gives separators, the place
  of the currency symbol and the compact words, so ``de_DE`` reads ``-464.296 €`` and
  ``-464 Tsd. €``.
- **Machine output** (``--json``, exports): :func:`json_amount` rounds to cents and
  :func:`json_percent` to a ten-thousandth of a percent, so a float's shortest
  ``repr`` carries no noise (``21873047.02``, not ``21873047.020000003``). Percentages
  are in percent everywhere, shares included.

The style comes from the settings unless a caller sets one with :func:`use` (the demo,
tests). Babel is imported on first use, so importing this module costs the CLI's
``--help`` nothing; nothing here imports pandas or matplotlib.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from sop_core.periods import Month, format_month

NOT_AVAILABLE = "n/a"
DEFAULT_LOCALE = "en_US"
_SCALES = (1e9, 1e6, 1e3)
_ENGLISH_SUFFIX = {1e3: "K", 1e6: "M", 1e9: "B"}
# Where the locale's data has no short word for thousands (German writes 464000 in full),
# the word its business press uses.
_THOUSANDS = {"de": "\xa0Tsd."}


_UNIT_TEXT = re.compile(r"[^\W_][\w .%/-]{0,23}")


class FormatError(ValueError):
    """A locale or unit setting that cannot be used (the message says why)."""


@dataclass(frozen=True)
class NumberStyle:
    """How numbers read: a Babel locale name and a unit per metric name (lower case)."""

    locale: str = DEFAULT_LOCALE
    units: Mapping[str, str] = field(default_factory=dict)

    def unit(self, metric: str | None) -> str | None:
        return self.units.get(metric.lower()) if metric else None


def parse_locale(name: str) -> str:
    """A locale name Babel knows (``de_DE``, ``de-DE``, ``fr``), normalised; else an error."""
    from babel import Locale, UnknownLocaleError

    text = (name or "").strip()
    try:
        return str(Locale.parse(text.replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        raise FormatError(f"unknown locale {text!r} (use a name like en_US or de_DE)") from None


def parse_units(text: str) -> dict[str, str]:
    """``"revenue=EUR,volume=units"`` → ``{"revenue": "EUR", "volume": "units"}``."""
    units: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        metric, sep, unit = part.partition("=")
        if not sep or not metric.strip() or not unit.strip():
            raise FormatError(f"units must read metric=unit, e.g. revenue=EUR,volume=units "
                              f"(got {part.strip()!r})")
        if not _UNIT_TEXT.fullmatch(unit.strip()):
            # Units go into Slack messages and charts as they are: plain words only.
            raise FormatError(f"unit {unit.strip()[:40]!r}: use a currency code or a short "
                              "word (letters, digits, spaces, . % / -)")
        units[metric.strip().lower()] = unit.strip()
    return units


_CURRENT: ContextVar[NumberStyle | None] = ContextVar("number_style", default=None)


def style() -> NumberStyle:
    """The style in use: the one set by :func:`use`, else the settings'."""
    current = _CURRENT.get()
    if current is not None:
        return current
    from sop_core.config import get_settings  # late: keeps this module light to import

    settings = get_settings()
    return _settings_style(settings.locale, tuple(sorted(settings.units.items())))


@cache
def _settings_style(locale: str, units: tuple[tuple[str, str], ...]) -> NumberStyle:
    return NumberStyle(locale=locale, units=dict(units))


@contextmanager
def use(number_style: NumberStyle) -> Iterator[NumberStyle]:
    """Format with ``number_style`` inside the block (this thread / task only)."""
    token = _CURRENT.set(number_style)
    try:
        yield number_style
    finally:
        _CURRENT.reset(token)


# --------------------------------------------------------------------------------------
# Locale pieces (cached: Babel parses its data on each call)
# --------------------------------------------------------------------------------------

@cache
def _currencies() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


@cache
def _signs(locale: str) -> tuple[str, str]:
    from babel.numbers import get_minus_sign_symbol, get_plus_sign_symbol

    return get_minus_sign_symbol(locale), get_plus_sign_symbol(locale)


@cache
def _unit_affixes(locale: str, unit: str | None) -> tuple[str, str]:
    """Text before and after a positive number of ``unit`` in ``locale``."""
    from babel import Locale
    from babel.numbers import get_currency_symbol, parse_pattern

    if not unit:
        return "", ""
    if unit.upper() in _currencies():
        pattern = parse_pattern(Locale.parse(locale).currency_formats["standard"])
        symbol = get_currency_symbol(unit.upper(), locale)
        return (_literal(pattern.prefix[0]).replace("¤", symbol),
                _literal(pattern.suffix[0]).replace("¤", symbol))
    return "", f"\xa0{unit}"


@cache
def _compact_suffix(locale: str, scale: float) -> str:
    from babel import Locale

    patterns = Locale.parse(locale).compact_decimal_formats["short"]["other"]
    pattern = patterns.get(str(int(scale)))
    if pattern is not None and pattern.int_prec == (1, 1) and pattern.suffix[0]:
        return _literal(pattern.suffix[0])
    language = Locale.parse(locale).language
    return _THOUSANDS.get(language, _ENGLISH_SUFFIX[scale]) if scale == 1e3 else \
        _ENGLISH_SUFFIX[scale]


def _literal(text: str) -> str:
    """A CLDR pattern's affix as text: ``Mio'.'`` → ``Mio.`` (``''`` is a quote)."""
    return re.sub(r"'([^']*)'", lambda found: found.group(1) or "'", text)


@cache
def _percent_affixes(locale: str) -> tuple[str, str]:
    from babel import Locale
    from babel.numbers import parse_pattern

    pattern = parse_pattern(Locale.parse(locale).percent_formats[None])
    return _literal(pattern.prefix[0]), _literal(pattern.suffix[0])


@lru_cache(maxsize=8192)
def _decimal(value: float, decimals: int, locale: str) -> str:
    """``value`` ≥ 0 with the locale's grouping and exactly ``decimals`` decimals.

    Memoised: a message repeats few distinct figures (three significant digits), and
    Babel's formatting is the costliest step of building one."""
    locale_data, pattern = _decimal_pattern(locale, decimals)
    return pattern.apply(value, locale_data, decimal_quantization=True)


@cache
def _decimal_pattern(locale: str, decimals: int) -> tuple[Any, Any]:
    """The parsed locale and ``#,##0.00…`` pattern (Babel parses both on every call)."""
    from babel import Locale
    from babel.numbers import parse_pattern

    return Locale.parse(locale), parse_pattern("#,##0" + ("." + "0" * decimals
                                                          if decimals else ""))


def _signed(size_text: str, negative: bool, signed: bool, locale: str) -> str:
    minus, plus = _signs(locale)
    return (minus if negative else plus if signed else "") + size_text


def _undefined(value: float | None) -> bool:
    return value is None or not math.isfinite(value)


# --------------------------------------------------------------------------------------
# What people read
# --------------------------------------------------------------------------------------

def _compact_parts(size: float, locale: str) -> str:
    """``size`` ≥ 0.5 with three significant digits and a compact suffix from 1,000."""
    whole = round(size)
    if whole < 1000:
        return _decimal(whole, 0, locale)
    rounded = float(f"{size:.3g}")
    scale = next(s for s in _SCALES if rounded >= s)
    scaled = rounded / scale
    decimals = 2 if scaled < 10 else 1 if scaled < 100 else 0
    return _decimal(scaled, decimals, locale) + _compact_suffix(locale, scale)


def amount(value: float | None, *, signed: bool = False, metric: str | None = None) -> str:
    """Compact, three significant digits: ``-8.94K``, ``+464K``, ``3.24M``, ``950``.

    ``signed`` for gaps and changes (a ``+`` on positive values). ``metric`` picks the
    unit: ``-€464K`` (en_US), ``-464 Tsd. €`` (de_DE), ``1.2K units``.
    """
    if _undefined(value):
        return NOT_AVAILABLE
    current = style()
    before, after = _unit_affixes(current.locale, current.unit(metric))
    size = abs(value)
    if size < 0.5:
        return f"{before}0{after}"  # never "-0" or "+0"
    return _signed(before + _compact_parts(size, current.locale) + after, value < 0, signed,
                   current.locale)


def full_amount(value: float | None, *, signed: bool = False,
                metric: str | None = None) -> str:
    """Whole units with grouping: ``-464,296``; de_DE with EUR ``-464.296 €``."""
    if _undefined(value):
        return NOT_AVAILABLE
    current = style()
    before, after = _unit_affixes(current.locale, current.unit(metric))
    whole = round(abs(value))
    if whole == 0:
        return f"{before}0{after}"
    return _signed(before + _decimal(whole, 0, current.locale) + after, value < 0, signed,
                   current.locale)


def number(value: float | int | None) -> str:
    """A count or plain quantity with grouping and no unit: ``12,000`` rows."""
    if _undefined(value):
        return NOT_AVAILABLE
    current = style()
    whole = round(abs(value))
    return _signed(_decimal(whole, 0, current.locale), value < 0 and whole != 0, False,
                   current.locale)


def percent(value: float | None, *, signed: bool = True) -> str:
    """A percentage (``value`` in percent) with one decimal: ``-4.3%``, ``+2.0%``; de_DE
    ``-4,3 %``. Signed unless asked not to; ``n/a`` when undefined."""
    if _undefined(value):
        return NOT_AVAILABLE
    locale = style().locale
    before, after = _percent_affixes(locale)
    rounded = round(abs(value), 1)
    text = before + _decimal(rounded, 1, locale) + after
    return text if rounded == 0 else _signed(text, value < 0, signed, locale)


def share(fraction: float | None) -> str:
    """A share of a whole (given as a fraction) as an unsigned whole percentage: ``42%``."""
    if _undefined(fraction):
        return NOT_AVAILABLE
    locale = style().locale
    before, after = _percent_affixes(locale)
    whole = round(abs(fraction) * 100)
    return _signed(before + _decimal(whole, 0, locale) + after, fraction < 0 and whole != 0,
                   False, locale)


def threshold(value: float | None) -> str:
    """A threshold percentage as it was set, unsigned and without padding: ``5%``,
    ``2.5%``."""
    if _undefined(value):
        return NOT_AVAILABLE
    locale = style().locale
    before, after = _percent_affixes(locale)
    size = abs(value)
    return _signed(before + _decimal(size, _exact_decimals([size], 2), locale) + after,
                   value < 0, False, locale)


def month(value: Month | None) -> str:
    return format_month(value) if value is not None else NOT_AVAILABLE


def unit_name(metric: str | None) -> str | None:
    """The unit a metric is counted in, as configured (``EUR``, ``units``), or None."""
    return style().unit(metric)


# --------------------------------------------------------------------------------------
# Axis ticks: each label says exactly the value it sits at
# --------------------------------------------------------------------------------------

def _exact_decimals(values: Sequence[float], limit: int = 6) -> int:
    """The fewest decimals that write every value exactly (``2.5`` needs 1)."""
    for decimals in range(limit + 1):
        if all(abs(v - round(v, decimals)) <= 1e-9 * max(1.0, abs(v)) for v in values):
            return decimals
    return limit


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels for axis ticks, one scale for all and as many decimals as the values need
    (``95K``, ``97.5K``, ``100K``), so a label never rounds its tick's value."""
    finite = [t for t in ticks if math.isfinite(t)]
    if not finite:
        return ["" for _ in ticks]
    locale = style().locale
    size = max(abs(t) for t in finite)
    scale = next((s for s in _SCALES if size >= s), 1.0)
    suffix = _compact_suffix(locale, scale) if scale > 1 else ""
    scaled = [t / scale for t in finite]
    decimals = _exact_decimals(scaled)
    labels = []
    for t in ticks:
        if not math.isfinite(t):
            labels.append("")
            continue
        value = t / scale
        if round(value, decimals) == 0:
            labels.append("0")
            continue
        labels.append(_signed(_decimal(abs(value), decimals, locale) + suffix, value < 0,
                              False, locale))
    return labels


def percent_tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels for a percentage axis: one decimal, more where a tick needs them
    (``-12.5%``, ``-12.25%``), signed as gap % is."""
    finite = [t for t in ticks if math.isfinite(t)]
    decimals = max(1, _exact_decimals(finite, 4)) if finite else 1
    locale = style().locale
    before, after = _percent_affixes(locale)
    labels = []
    for t in ticks:
        if not math.isfinite(t):
            labels.append("")
            continue
        rounded = round(abs(t), decimals)
        text = before + _decimal(rounded, decimals, locale) + after
        labels.append(text if rounded == 0 else _signed(text, t < 0, True, locale))
    return labels


# --------------------------------------------------------------------------------------
# Machine output
# --------------------------------------------------------------------------------------

def json_amount(value: float | None) -> float | None:
    """An amount for JSON and files: rounded to cents (``None`` stays ``None``)."""
    if _undefined(value):
        return None
    rounded = round(value, 2)
    return 0.0 if rounded == 0 else rounded  # never -0.0


PERCENT_DECIMALS = 4  # in JSON: a ten-thousandth of a percent, far below what anyone reads


def json_percent(value: float | None) -> float | None:
    """A percentage for JSON and files, in percent, rounded so its ``repr`` has no noise."""
    if _undefined(value):
        return None
    rounded = round(value, PERCENT_DECIMALS)
    return 0.0 if rounded == 0 else rounded


def json_share(fraction: float | None) -> float | None:
    """A share given as a fraction, for JSON and files in percent (as ``gap_pct``)."""
    return None if _undefined(fraction) else json_percent(fraction * 100)


# --------------------------------------------------------------------------------------
# Amounts people type (fields, /gap threshold floor=100K)
# --------------------------------------------------------------------------------------

_TYPED_AMOUNT = re.compile(
    r"^\s*([+-]?)\s*(\d{1,3}(?:[ ,]\d{3})+|\d+)?(\.\d+)?\s*([kmb])?\s*$", re.IGNORECASE)
_TYPED_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9}


def parse_amount(text: str) -> float | None:
    """``350000``, ``350,000``, ``350K``, ``1.5M``, ``-2.1k`` as a number; ``None`` if the
    text is not an amount."""
    found = _TYPED_AMOUNT.match(text or "")
    if not found or not (found.group(2) or found.group(3)):
        return None
    sign, whole, fraction, suffix = found.groups()
    value = float((whole or "0").replace(",", "").replace(" ", "") + (fraction or ""))
    value *= _TYPED_SCALE.get((suffix or "").lower(), 1.0)
    if sign == "-":
        value = -value
    return value if math.isfinite(value) else None


_INPUT_SUFFIXES = ((1e9, "B"), (1e6, "M"), (1e3, "K"))


def input_amount(value: float | None, *, down: bool = False) -> str:
    """An amount prefilled in a form field, compact as the rest of the UI writes it, to
    three significant figures (``3.24M``, ``463K``, ``1,235``), in the notation
    :func:`parse_amount` reads back whatever the locale. ``down``: never more than
    ``value`` in size (an expected impact must not over-claim by rounding)."""
    if _undefined(value):
        return ""
    assert value is not None
    size, sign = abs(value), "-" if value < 0 else ""
    for scale, suffix in _INPUT_SUFFIXES:
        scaled = float(f"{size / scale:.3g}")
        if scaled >= 1 and size >= 10_000:
            digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
            if down and scaled * scale > size:  # truncate the exact figure instead
                exact = size / scale
                digits = 2 if exact < 10 else 1 if exact < 100 else 0
                scaled = math.floor(exact * 10**digits) / 10**digits
                if scaled < 1:
                    continue
            text = f"{scaled:.{digits}f}"
            text = text.rstrip("0").rstrip(".") if "." in text else text
            return f"{sign}{text}{suffix}"
    text = (f"{math.floor(size) if down else size:,.0f}" if size >= 100
            else f"{size:.2f}".rstrip("0").rstrip("."))
    return "0" if text in ("0", "") else f"{sign}{text}"


# A regular expression for number formatting outside this module: ``f"{x:,.0f}"``,
# ``"{:.1f}".format(x)``, ``"%.2f" % x``. Tests use it to keep every surface on this module.
AD_HOC_FORMAT = re.compile(
    r"\{[^{}]*:[+ ]?,?\.?\d*[,_]?\.?\d*[fFeEgG%]\}|:[+ ]?[,_]d?\}|%[+-]?\d*\.\d+f")
