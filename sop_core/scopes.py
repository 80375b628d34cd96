"""When gaps may be added up: scopes that overlap never are (pure, no I/O).

A gap's scope is a set of filters (``region=EU``, ``category=Snacks,Drinks``) on one
metric and one horizon. Two scopes **overlap** (share some rows of data) unless a
dimension that both filter has disjoint value sets: ``region=EU`` and
``region=EU category=Snacks`` overlap (one holds the other), and so do ``region=EU`` and
``category=Snacks`` (EU's Snacks are in both); ``region=EU`` and ``region=NA`` do not.
Gaps of different metrics or horizons are never added at all.

A total is therefore taken per metric and horizon, over a set of pairwise disjoint
scopes, and says which gaps it counts and which it leaves out.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

Filters = Mapping[str, Iterable[str]]


def _normalised(filters: Filters) -> dict[str, frozenset[str]]:
    """Names and values compared as the filter grammar does: case-insensitively."""
    return {str(name).strip().lower(): frozenset(str(v).strip().lower() for v in values)
            for name, values in filters.items()}


def filters_overlap(a: Filters, b: Filters) -> bool:
    """True unless some dimension filtered by both has no value in common."""
    left, right = _normalised(a), _normalised(b)
    return all(left[name] & right[name] for name in left.keys() & right.keys())


@dataclass(frozen=True)
class ScopedAmount(Generic[K]):
    """One gap to add up: its key (e.g. the trigger point id), scope and amount."""

    key: K
    metric: str
    horizon: str
    scope: Filters
    amount: float


def overlap(a: ScopedAmount[K], b: ScopedAmount[K]) -> bool:
    """Two gaps that must not be added: same metric and horizon, overlapping filters."""
    return (a.metric == b.metric and a.horizon == b.horizon
            and filters_overlap(a.scope, b.scope))


@dataclass(frozen=True)
class Total(Generic[K]):
    """A sum over gaps of one metric and horizon whose scopes are pairwise disjoint."""

    metric: str
    horizon: str
    counted: tuple[K, ...]  # the gaps in the total
    left_out: tuple[K, ...]  # gaps overlapping a counted one: not in the total
    amount: float  # Σ of the counted amounts

    @property
    def complete(self) -> bool:
        """Every gap of this metric and horizon is in the total."""
        return not self.left_out


def disjoint_totals(items: Sequence[ScopedAmount[K]]) -> list[Total[K]]:
    """Per metric and horizon, a total over gaps with pairwise disjoint scopes.

    The largest gaps (by size) are taken first, and each further gap only if it overlaps
    none taken: with nested scopes, the outer one (usually the larger) is counted and
    the ones inside it are left out, named in ``left_out``. Groups are ordered by their
    largest gap, largest first.
    """
    groups: dict[tuple[str, str], list[ScopedAmount[K]]] = {}
    for item in items:
        groups.setdefault((item.metric, item.horizon), []).append(item)
    totals: list[tuple[float, Total[K]]] = []
    for (metric, horizon), members in groups.items():
        ordered = sorted(members, key=lambda m: -abs(m.amount))
        taken: list[ScopedAmount[K]] = []
        left: list[K] = []
        for item in ordered:
            if any(filters_overlap(item.scope, other.scope) for other in taken):
                left.append(item.key)
            else:
                taken.append(item)
        totals.append((abs(ordered[0].amount), Total(
            metric=metric, horizon=horizon, counted=tuple(t.key for t in taken),
            left_out=tuple(left), amount=sum(t.amount for t in taken))))
    totals.sort(key=lambda pair: -pair[0])
    return [total for _, total in totals]
