"""Watched scopes (``/gap watch``, docs/reference/slack.md): a channel subscribed to a scope.

After every new snapshot each watch is evaluated against it. The candidate scopes are
the watched scope and, with ``by=D``, each member's sub-scope (the scope narrowed to that
member of ``D``). For each candidate, compared with the trigger point this watch posted
for it before (if any):

- crosses the channel's rule, nothing posted yet → **post** a new trigger point;
- posted, figures shown have changed and it still crosses (or crosses again) →
  **update** the message in place, with a thread note "moved from … to …";
- posted and live, back within the rule → **resolve**: update in place (marked
  closed), thread note, status ``closed`` (see sop_core.lifecycle);
- otherwise (unchanged, or closed and still within the rule) → nothing.

The trigger point compared with is the gap's living one in the channel, whoever posted
it: a watch never posts a second message for a gap a ``/gap`` already posted.

Planning is read-only and decided from the database; the sending side (``bot.jobs
.watches``) gives each step an outbox key — watch, snapshot and scope — so nothing is
sent twice, and marks the watch evaluated for the snapshot (its own key) only once every
step went through: a failed step leaves the watch due for the next pass.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sop_core import formatting as fmt
from sop_core import outbox, snapshots
from sop_core.config import Settings
from sop_core.filters import FilterError, Filters, parse_filters, resolve
from sop_core.gaps import GapQuery, GapResult, TriggerRule, compute_gap
from sop_core.lifecycle import LIVE, GapStatus, identity_key, status_of
from sop_core.loading import normalise_name
from sop_core.models import Snapshot, TriggerPoint, Watch
from sop_core.periods import HORIZON_HELP, HorizonError, resolve_horizon
from sop_core.services.data import GapReport, NoData, gap_report
from sop_core.services.triggers import channel_rule, covered_by, update_figures

log = logging.getLogger(__name__)

KIND_EVALUATED = "watch_eval"
KEY_MAX = 300  # notifications.key
# New trigger points one watch posts per snapshot, largest gaps first: a by= over 500
# customers must not flood a channel (Slack allows ~1 message/s per channel). Those held
# back are posted after a later load if they still cross the rule.
MAX_NEW_POSTS = 10


class WatchInputError(FilterError):
    """Watch input a person can fix (shown only to them)."""


# --------------------------------------------------------------------------------------
# Adding, removing, listing
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WatchInfo:
    id: int
    team_id: str
    channel_id: str
    scope: dict[str, list[str]]
    scope_key: str
    by: str | None
    horizon: str
    metric: str  # "" = the data's default metric
    created_by: str

    @classmethod
    def of(cls, watch: Watch) -> WatchInfo:
        return cls(id=watch.id, team_id=watch.team_id, channel_id=watch.channel_id,
                   scope={k: list(v) for k, v in watch.scope.items()},
                   scope_key=watch.scope_key, by=watch.by, horizon=watch.horizon,
                   metric=watch.metric, created_by=watch.created_by)

    @property
    def filters(self) -> Filters:
        return Filters(scope={k: tuple(v) for k, v in self.scope.items()}, by=self.by,
                       horizon=self.horizon, metric=self.metric or None)


def _parse(text: str) -> Filters:
    cleaned = text.strip()
    if cleaned.lower() == "all" or cleaned.lower().startswith("all "):
        cleaned = cleaned[3:]
    filters = parse_filters(cleaned)
    if filters.as_of is not None:
        raise WatchInputError("a watch follows each load's own as-of month: leave out as_of=")
    return filters


def _canonical(filters: Filters, session: Session, team_id: str, fy_start_month: int
               ) -> tuple[Filters, bool]:
    """The filters with the data's own names (checked), or as typed when no data yet."""
    snapshot = snapshots.latest(session, team_id)
    horizon = (filters.horizon or "fy").strip().lower()
    if snapshot is None:
        try:
            resolve_horizon(horizon, 0, fy_start_month)
        except HorizonError:
            raise WatchInputError(f"Unknown horizon “{horizon}”: use {HORIZON_HELP}.") from None
        return Filters(scope=dict(filters.scope), horizon=horizon,
                       by=normalise_name(filters.by) if filters.by else None,
                       metric=normalise_name(filters.metric) if filters.metric else None), False
    query = resolve(filters, snapshots.read(session, snapshot), fy_start_month=fy_start_month)
    return Filters(scope=dict(query.scope), by=query.by, horizon=horizon,
                   metric=query.metric if filters.metric else None), True


def add_watch(sessions: sessionmaker[Session], *, team_id: str, channel_id: str,
              user_id: str, text: str, fy_start_month: int = 1) -> tuple[WatchInfo, bool, bool]:
    """Subscribe the channel to the scope in ``text``.

    Returns (the watch, whether it is new, whether it was checked against data). A
    second ``watch`` of the same scope, horizon and metric changes its ``by``. Raises
    :class:`FilterError` for a scope the data does not have.
    """
    filters = _parse(text)
    if filters.is_empty:
        raise WatchInputError("name the scope to watch, e.g. `/gap watch region=EU by=category` "
                              "(`/gap watch all` for all the data)")
    with sessions() as session:
        filters, checked = _canonical(filters, session, team_id, fy_start_month)
    scope_key = GapQuery(scope=filters.scope).scope_key()
    horizon, metric = filters.horizon or "fy", filters.metric or ""
    for _attempt in range(2):
        try:
            with sessions.begin() as session:
                watch = session.scalars(select(Watch).where(
                    Watch.team_id == team_id, Watch.channel_id == channel_id,
                    Watch.scope_key == scope_key, Watch.horizon == horizon,
                    Watch.metric == metric)).first()
                created = watch is None
                if watch is None:
                    watch = Watch(team_id=team_id, channel_id=channel_id,
                                  scope={k: list(v) for k, v in filters.scope.items()},
                                  scope_key=scope_key, horizon=horizon, metric=metric,
                                  created_by=user_id)
                    session.add(watch)
                watch.by = filters.by
                session.flush()
                return WatchInfo.of(watch), created, checked
        except IntegrityError:
            continue  # the same watch added at the same moment: read it back
    raise RuntimeError("could not add the watch")  # pragma: no cover


def remove_watches(sessions: sessionmaker[Session], *, team_id: str, channel_id: str,
                   text: str) -> list[WatchInfo]:
    """Unsubscribe: ``all``, or the scope (and horizon/metric, when given) in ``text``."""
    everything = text.strip().lower() == "all"
    filters = None if everything else _parse(text)
    if filters is not None and filters.is_empty:
        raise WatchInputError("name the scope to stop watching, e.g. `/gap unwatch region=EU` "
                              "(or `/gap unwatch all`)")
    with sessions.begin() as session:
        query = select(Watch).where(Watch.team_id == team_id, Watch.channel_id == channel_id)
        if filters is not None:
            query = query.where(Watch.scope_key == GapQuery(scope=filters.scope).scope_key())
            if filters.horizon:
                query = query.where(Watch.horizon == filters.horizon.strip().lower())
            if filters.metric:
                query = query.where(Watch.metric.in_([normalise_name(filters.metric), ""]))
        found = session.scalars(query.order_by(Watch.id)).all()
        removed = [WatchInfo.of(w) for w in found]
        for watch in found:
            session.delete(watch)
    return removed


def list_watches(session: Session, team_id: str, channel_id: str) -> list[WatchInfo]:
    return [WatchInfo.of(w) for w in session.scalars(select(Watch).where(
        Watch.team_id == team_id, Watch.channel_id == channel_id).order_by(Watch.id))]


def watch_label(watch: WatchInfo) -> str:
    """``region=EU · by category · revenue · fy`` (plain, unescaped)."""
    scope = " · ".join(f"{k}={', '.join(v)}" for k, v in watch.scope.items()) or "all data"
    parts = [scope]
    if watch.by:
        parts.append(f"by {watch.by}")
    parts.append(watch.metric or "default metric")
    parts.append(watch.horizon)
    return " · ".join(parts)


# --------------------------------------------------------------------------------------
# Which watches are due
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DueWatch:
    """A watch not evaluated yet against its workspace's latest snapshot."""

    watch_id: int
    team_id: str
    channel_id: str
    snapshot_id: int
    key: str  # marks the evaluation done


def evaluated_key(team_id: str, watch_id: int, snapshot_id: int) -> str:
    return f"watched:{team_id}:{watch_id}:{snapshot_id}"


def step_key(team_id: str, watch_id: int, snapshot_id: int, scope_key: str) -> str:
    """One thing sent for a watch, a snapshot and a scope (long scopes are hashed)."""
    key = f"watch:{team_id}:{watch_id}:{snapshot_id}:{scope_key}"
    if len(key) <= KEY_MAX:
        return key
    digest = hashlib.sha256(scope_key.encode()).hexdigest()
    return f"watch:{team_id}:{watch_id}:{snapshot_id}:sha256:{digest}"


def due_watches(session: Session, *, snapshot_id: int | None = None) -> list[DueWatch]:
    """Watches whose workspace's latest snapshot they have not been evaluated against
    (only those whose latest snapshot is ``snapshot_id``, when given)."""
    watches = session.execute(select(Watch.id, Watch.team_id, Watch.channel_id)
                              .order_by(Watch.team_id, Watch.id)).all()
    latest: dict[str, Snapshot | None] = {}
    due: list[DueWatch] = []
    for watch_id, team_id, channel_id in watches:
        if team_id not in latest:
            latest[team_id] = snapshots.latest(session, team_id)
        snapshot = latest[team_id]
        if snapshot is None or (snapshot_id is not None and snapshot.id != snapshot_id):
            continue
        due.append(DueWatch(watch_id, team_id, channel_id, snapshot.id,
                            evaluated_key(team_id, watch_id, snapshot.id)))
    done = outbox.settled(session, (d.key for d in due))
    return [d for d in due if d.key not in done]


# --------------------------------------------------------------------------------------
# The evaluation plan
# --------------------------------------------------------------------------------------

class StepKind(StrEnum):
    POST = "post"
    UPDATE = "update"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class WatchStep:
    """One thing to send for a watch: a new trigger point, or an in-place update."""

    kind: StepKind
    key: str
    watch_id: int
    team_id: str
    channel_id: str
    report: GapReport
    point_id: int | None = None  # the earlier trigger point (update / resolve)
    message_ts: str | None = None
    previous_gap: float | None = None
    previous_gap_pct: float | None = None
    reopened: bool = False  # it had been resolved and crosses the rule again

    @property
    def note(self) -> str:
        """The thread note for an update (plain text, nothing from users in it)."""
        result = self.report.result
        before = fmt.amount(self.previous_gap, signed=True, metric=result.metric)
        moved = (f"moved from {fmt.percent(self.previous_gap_pct)} to "
                 f"{fmt.percent(result.gap_pct)} (gap {before}"
                 f" → {fmt.amount(result.gap, signed=True, metric=result.metric)})")
        load = f"snapshot #{self.report.snapshot_id}, as of {fmt.month(result.as_of)}"
        if self.kind == StepKind.RESOLVE:
            return (f"Back within the trigger rule: {moved} with {load}. "
                    "The gap is closed.")
        if self.reopened:
            return f"Crosses the trigger rule again: {moved} with {load}."
        return f"The gap {moved} with {load}."


@dataclass(frozen=True)
class WatchPlan:
    watch_id: int
    team_id: str
    channel_id: str
    snapshot_id: int
    steps: tuple[WatchStep, ...]
    unchanged: int  # candidates with nothing to send
    held_back: int  # new trigger points left for a later load (MAX_NEW_POSTS)
    problem: str | None = None  # the scope does not fit the snapshot: nothing to do


def _shown(gap: float, gap_pct: float | None, as_of: int | None) -> tuple[str, str, Any]:
    """What a reader sees of the figures: equal → unchanged, nothing to say."""
    return fmt.amount(gap, signed=True), fmt.percent(gap_pct), as_of


def _candidates(table: Any, filters: Filters, *, fy_start_month: int, rule: TriggerRule
                ) -> list[tuple[Filters, GapResult, str]]:
    """The watched scope, then each ``by`` member's sub-scope (largest |gap| first)."""
    query = resolve(filters, table, fy_start_month=fy_start_month)
    plain = replace(query, by=None)
    base = compute_gap(table, query, fy_start_month=fy_start_month, rule=rule)
    found = [(filters, replace(base, by=None, drivers=()), plain.scope_key())]
    seen = {plain.scope_key()}
    if query.by is None:
        return found
    for driver in sorted(base.drivers, key=lambda d: (-abs(d.gap), d.member)):
        scope = {**query.scope, query.by: (driver.member,)}
        sub = replace(plain, scope=scope)
        if sub.scope_key() in seen:
            continue
        seen.add(sub.scope_key())
        result = compute_gap(table, sub, fy_start_month=fy_start_month, rule=rule)
        found.append((Filters(scope=scope, horizon=filters.horizon, metric=query.metric),
                      result, sub.scope_key()))
    return found


def _earlier_point(session: Session, watch: Watch, scope_key: str, result: GapResult
                   ) -> TriggerPoint | None:
    """The gap's living trigger point in the channel, whoever posted it (a watch or a
    /gap): one message per gap and channel."""
    live_key = identity_key(scope_key, result.metric, watch.horizon)
    return session.scalars(select(TriggerPoint).where(
        TriggerPoint.team_id == watch.team_id, TriggerPoint.channel_id == watch.channel_id,
        TriggerPoint.live_key == live_key, TriggerPoint.message_ts.is_not(None))).first()


def plan_watch(session: Session, settings: Settings, watch_id: int, snapshot_id: int
               ) -> WatchPlan | None:
    """What evaluating a watch against a snapshot sends (None: the watch is gone)."""
    watch = session.get(Watch, watch_id)
    if watch is None:
        return None
    info = WatchInfo.of(watch)
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None or snapshot.team_id != snapshots.data_team(session, watch.team_id):
        raise NoData()
    table = snapshots.read(session, snapshot)
    rule = channel_rule(session, settings, watch.team_id, watch.channel_id)
    fy = settings.fiscal_year_start_month
    empty = WatchPlan(watch.id, watch.team_id, watch.channel_id, snapshot_id, (), 0, 0)
    try:
        candidates = _candidates(table, info.filters, fy_start_month=fy, rule=rule)
    except FilterError as problem:
        log.warning("watch %d (%s) does not fit snapshot #%d: %s", watch.id,
                    watch_label(info), snapshot_id, problem)
        return replace(empty, problem=str(problem))
    steps: list[WatchStep] = []
    unchanged = held_back = new_posts = 0
    for filters, result, scope_key in candidates:
        point = _earlier_point(session, watch, scope_key, result)
        crossed = rule.crossed(result.gap, result.gap_pct)
        if point is None:
            kind = StepKind.POST if crossed else None
            if kind is not None and new_posts >= MAX_NEW_POSTS:
                held_back += 1
                continue
        elif point.snapshot_id == snapshot_id or (
                _shown(point.gap, point.gap_pct, point.as_of)
                == _shown(result.gap, result.gap_pct, result.as_of)):
            kind = None
        elif crossed:
            kind = StepKind.UPDATE
        elif status_of(point.status) in LIVE:
            kind = StepKind.RESOLVE
        else:
            kind = None  # closed, and still within the rule
        if kind is None:
            unchanged += 1
            continue
        # The full report (drivers, movement, price-volume-mix) only for what is sent.
        by = watch.by if scope_key == candidates[0][2] else None
        report = gap_report(session, replace(filters, by=by), team_id=watch.team_id,
                            rule=rule, fy_start_month=fy, explain=True,
                            snapshot_id=snapshot_id, allow_empty=True)
        key = step_key(watch.team_id, watch.id, snapshot_id, scope_key)
        if kind == StepKind.POST:
            new_posts += 1
            steps.append(WatchStep(kind, key, watch.id, watch.team_id, watch.channel_id,
                                   report))
            continue
        assert point is not None
        steps.append(WatchStep(kind, key, watch.id, watch.team_id, watch.channel_id, report,
                               point_id=point.id, message_ts=point.message_ts,
                               previous_gap=point.gap, previous_gap_pct=point.gap_pct,
                               reopened=status_of(point.status) == GapStatus.CLOSED))
    return WatchPlan(watch.id, watch.team_id, watch.channel_id, snapshot_id, tuple(steps),
                     unchanged, held_back)


def apply_figures(sessions: sessionmaker[Session], step: WatchStep, *, now: datetime) -> None:
    """Keep the new figures on the earlier trigger point (resolving or reopening it)."""
    assert step.point_id is not None
    with sessions.begin() as session:
        point = session.get(TriggerPoint, step.point_id)
        if point is not None and point.team_id == step.team_id:
            update_figures(point, step.report, now=now, rule=step.report.rule,
                           covered=covered_by(session, point.id))
