"""A gap's lifecycle: pure transition rules, no database.

- ``open``: posted, crosses the channel's trigger rule;
- ``covered``: still open, but the open actions' expected impact reaches |gap|;
- ``closed``: a load brought it back within the rule, or a lead closed it with a reason;
- ``reopened``: it was closed and crosses the rule again.

A gap a lead closed while it still crossed stays closed on later loads that still cross:
it reopens only when it *crosses again*, after a load that had it within the rule.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum


class GapStatus(StrEnum):
    OPEN = "open"
    COVERED = "covered"
    CLOSED = "closed"
    REOPENED = "reopened"


# Everything but closed: the gap still asks for work (digests, App Home, coverage).
LIVE = frozenset({GapStatus.OPEN, GapStatus.COVERED, GapStatus.REOPENED})
# Before this lifecycle a gap back within the rule was "resolved": read it as closed.
_LEGACY = {"resolved": GapStatus.CLOSED}


class LifecycleError(ValueError):
    """A transition a person asked for that does not apply (the message says why)."""


def status_of(value: str) -> GapStatus:
    return _LEGACY.get(value) or GapStatus(value)


def is_covered(gap: float, covered_by: float) -> bool:
    """The open actions' expected impact reaches the gap (a zero gap needs no cover)."""
    return abs(gap) > 0 and covered_by >= abs(gap)


def _live(current: GapStatus, *, gap: float, covered_by: float) -> GapStatus:
    if is_covered(gap, covered_by):
        return GapStatus.COVERED
    return GapStatus.REOPENED if current == GapStatus.REOPENED else GapStatus.OPEN


def after_load(current: str, *, crossed: bool, was_crossed: bool, gap: float,
               covered_by: float) -> GapStatus:
    """The status once new figures are in (a load, or the same scope asked again).

    ``was_crossed``: whether the figures shown until now crossed the rule.
    """
    status = status_of(current)
    if status == GapStatus.CLOSED:
        if crossed and not was_crossed:
            return _live(GapStatus.REOPENED, gap=gap, covered_by=covered_by)
        return GapStatus.CLOSED
    if not crossed:
        return GapStatus.CLOSED
    return _live(status, gap=gap, covered_by=covered_by)


def after_coverage_change(current: str, *, gap: float, covered_by: float) -> GapStatus:
    """An action was added, completed, cancelled or changed its expected impact."""
    status = status_of(current)
    if status == GapStatus.CLOSED:
        return status
    if status == GapStatus.COVERED and not is_covered(gap, covered_by):
        return GapStatus.OPEN
    return _live(status, gap=gap, covered_by=covered_by)


def close_by_lead(current: str, reason: str) -> GapStatus:
    """A lead closes the gap; the reason is required (it is posted in the thread)."""
    if status_of(current) == GapStatus.CLOSED:
        raise LifecycleError("This gap is already closed.")
    if not reason.strip():
        raise LifecycleError("Say why the gap is closed (the reason goes into its thread).")
    return GapStatus.CLOSED


def label(status: str) -> str:
    """How a person reads the status (plain text)."""
    return {GapStatus.OPEN: "open", GapStatus.COVERED: "covered by actions",
            GapStatus.CLOSED: "closed", GapStatus.REOPENED: "reopened"}[status_of(status)]


def identity_key(scope_key: str, metric: str, horizon: str) -> str:
    """A gap's identity in a channel: its normalised scope, metric and horizon.

    Hashed to a fixed width so that the unique index stays small whatever the scope.
    The migration that introduced it (0006) computes the same hash.
    """
    return hashlib.sha256(f"{metric}\n{horizon}\n{scope_key}".encode()).hexdigest()
