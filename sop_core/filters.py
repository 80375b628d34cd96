"""The filter grammar (docs/reference/slack.md), shared by the CLI and Slack.

``region="North America",EU category=snacks by=channel horizon=ytd metric=revenue``

Parsing (text → :class:`Filters`) knows nothing of the data; resolving (filters + a
planning table → :class:`~sop_core.gaps.GapQuery`) matches dimension names and
values case-insensitively and explains any miss with the valid names and the
closest one.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

from sop_core.gaps import GapQuery, default_metric
from sop_core.loading import PlanningTable, normalise_name
from sop_core.periods import HORIZON_HELP, HorizonError, parse_month, resolve_horizon

# Slack's clients turn straight quotes into typographic ones; accept both.
_QUOTES = {'"': '"', "'": "'", "“": "”", "”": "”", "‘": "’", "’": "’", "«": "»", "„": "“"}
OPTION_KEYS = ("by", "horizon", "metric", "as_of")
_OPTION_ALIASES = {"asof": "as_of", "as_of": "as_of", "by": "by", "horizon": "horizon",
                   "metric": "metric"}
MAX_LISTED = 12


class FilterError(ValueError):
    """Input that cannot be used, with a message short enough for a Slack reply."""


def shown(text: str, limit: int = 40) -> str:
    """What of the user's text a message quotes: enough to recognise it, never all of it."""
    text = "".join(c if c.isprintable() else "�" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Filters:
    """What the user typed, structured but not yet checked against the data."""

    scope: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by: str | None = None
    horizon: str | None = None
    metric: str | None = None
    as_of: str | None = None

    @property
    def is_empty(self) -> bool:
        return not self.scope and not any((self.by, self.horizon, self.metric, self.as_of))


def _read_value(text: str, at: int) -> tuple[str, int]:
    """One value starting at ``at``: quoted, or bare up to whitespace or a comma."""
    if at < len(text) and text[at] in _QUOTES:
        closing = {text[at], _QUOTES[text[at]]}
        end = next((i for i in range(at + 1, len(text)) if text[i] in closing), -1)
        if end < 0:
            raise FilterError(f"a quote opened at “{shown(text[at:], 20)}” is never closed")
        return text[at + 1 : end], end + 1
    end = at
    while end < len(text) and not text[end].isspace() and text[end] != ",":
        if text[end] in _QUOTES:
            raise FilterError(f"put quotes around the whole value: “{shown(text[at:end + 1])}”")
        end += 1
    return text[at:end], end


def _skip_spaces(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def parse_filters(text: str) -> Filters:
    """Parse ``key=value`` pairs; raises :class:`FilterError` with a short reason."""
    scope: dict[str, list[str]] = {}
    options: dict[str, str] = {}
    at = _skip_spaces(text, 0)
    while at < len(text):
        start = at
        while at < len(text) and not text[at].isspace() and text[at] not in "=,":
            at += 1
        raw_key = text[start:at]
        at = _skip_spaces(text, at)
        if not raw_key or at >= len(text) or text[at] != "=":
            word = text[start:at].strip() or text[start:start + 20]
            raise FilterError(f"expected key=value but found “{shown(word)}” "
                              "(e.g. region=EU by=channel)")
        key = normalise_name(raw_key)
        if not key:
            raise FilterError(f"“{shown(raw_key)}” is not a dimension name")
        at = _skip_spaces(text, at + 1)
        values: list[str] = []
        while True:
            value, at = _read_value(text, at)
            value = value.strip()
            if not value:
                raise FilterError(f"no value after {shown(raw_key)}=")
            values.append(value)
            after = _skip_spaces(text, at)
            if after < len(text) and text[after] == ",":
                at = _skip_spaces(text, after + 1)
                continue
            at = after
            break
        option = _OPTION_ALIASES.get(key)
        if option is not None:
            if len(values) > 1:
                raise FilterError(f"{option}= takes one value")
            if option in options:
                raise FilterError(f"{option}= is given twice")
            options[option] = values[0]
        else:
            merged = scope.setdefault(key, [])
            merged.extend(v for v in values if v not in merged)
    return Filters(scope={k: tuple(v) for k, v in scope.items()}, **options)


def from_arguments(arguments: Sequence[str]) -> str:
    """Command-line arguments as filter text. A shell has removed the quotes of
    ``region="North America"`` before the program sees it (the argument is
    ``region=North America``), so each argument is one filter and a member with spaces
    is quoted again. An argument holding several filters (``"region=EU by=channel"``) or
    its own quotes is taken as it is."""
    parts = []
    for argument in arguments:
        key, equals, value = argument.partition("=")
        if (not equals or "=" in value or not any(c.isspace() for c in value.strip())
                or any(c in _QUOTES for c in value)):
            parts.append(argument)
            continue
        members = [member.strip() for member in value.split(",")]
        parts.append(key.strip() + "=" + ",".join(
            f'"{member}"' if any(c.isspace() for c in member) else member
            for member in members))
    return " ".join(parts)


def _closest(word: str, choices: list[str]) -> str | None:
    folded = {c.casefold(): c for c in choices}
    match = difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=0.5)
    if match:
        return folded[match[0]]
    contains = [c for f, c in folded.items() if word.casefold() in f or f in word.casefold()]
    return contains[0] if contains else None


def _listing(choices: list[str]) -> str:
    shown = ", ".join(choices[:MAX_LISTED])
    more = len(choices) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _unknown(kind: str, word: str, choices: list[str]) -> FilterError:
    hint = _closest(word, choices)
    did_you_mean = f" Did you mean “{hint}”?" if hint else ""
    return FilterError(f"Unknown {kind} “{shown(word)}”.{did_you_mean} "
                       f"Valid: {_listing(choices)}.")


def resolve(filters: Filters, table: PlanningTable, *, default_horizon: str = "fy",
            fy_start_month: int = 1) -> GapQuery:
    """Check the filters against the data and return the query with canonical names."""
    dimensions = list(table.dimensions)
    scope: dict[str, tuple[str, ...]] = {}
    for key, values in filters.scope.items():
        if key not in dimensions:
            raise _unknown("dimension", key, dimensions)
        members = [str(m) for m in table.frame[key].cat.categories]
        by_fold = {m.casefold(): m for m in members}
        resolved = []
        for value in values:
            member = by_fold.get(value.casefold())
            if member is None:
                raise _unknown(f"{key}", value, members)
            resolved.append(member)
        scope[key] = tuple(resolved)
    by = None
    if filters.by is not None:
        by = normalise_name(filters.by)
        if by not in dimensions:
            raise _unknown("dimension for by=", filters.by, dimensions)
    metric = None
    if filters.metric is not None:
        metric = normalise_name(filters.metric)
        if metric not in table.metrics:
            raise _unknown("metric", filters.metric, list(table.metrics))
    as_of = None
    if filters.as_of is not None:
        as_of = parse_month(filters.as_of)
        if as_of is None:
            raise FilterError(f"as_of=“{shown(filters.as_of)}” is not a month (use YYYY-MM)")
    horizon = (filters.horizon or default_horizon).strip()
    try:
        resolve_horizon(horizon, as_of or table.as_of or 0, fy_start_month)
    except HorizonError:
        raise FilterError(f"Unknown horizon “{shown(horizon)}”: use {HORIZON_HELP}.") from None
    return GapQuery(scope=scope, metric=metric or default_metric(table), horizon=horizon,
                    by=by, as_of=as_of)
