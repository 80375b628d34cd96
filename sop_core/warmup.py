"""Warm web workers: each decodes the latest snapshots before a command needs them.

Decoding a snapshot (Arrow parts → a categorical table) and the per-table work a first
gap computes (items, periods, as-of) take from a tenth of a second to seconds on a big
table. A worker would otherwise pay it on the first ``/gap`` after its boot and after
every load. A background thread computes gaps on each workspace's latest view right
after boot (which decodes it and its predecessor, for movement, into the cache of
sop_core/snapshots.py, and runs a command's code for the first time); then, as soon as
a load commits (sop_core/load_signal.py tells it; else it looks every ``interval``
seconds), it decodes the new view and does its per-table work, and runs no gap. A web
worker waits for that first pass, up to a bound, before it takes its first request
(gunicorn builds the app before the worker accepts), so that the first ``/gap`` after a
restart is as fast as the next ones; the clock and Socket Mode do not wait. A command
that arrives while a snapshot is being decoded waits for that decode rather than doing
it a second time.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Collection
from contextlib import ExitStack
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from sop_core import load_signal, seen_requests, slack_answers
from sop_core.config import Settings
from sop_core.db import autocommit_sessionmaker
from sop_core.gaps import TriggerRule
from sop_core.models import Snapshot

if TYPE_CHECKING:
    from sop_core.services.data import GapReport

log = logging.getLogger(__name__)
# A look for a new load is one small query (0.2 ms of CPU on SQLite): at least four a
# second, and at once when sop_core/load_signal.py tells of a load. A /gap sent the moment
# `sopgap load` exits (0.04 s after its commit, without Slack settings) finds its view
# being decoded (a 1M-row snapshot takes 0.03–0.04 s) and waits for that decode.
POLL_SECONDS = 0.25
# Each filtered gap of a process's first warm-up runs this many times: Python
# specialises a function's code after it has run a few times.
FILTERED_REHEARSALS = 3
POOLED_AHEAD = 3  # connections a worker opens before its first command (_open_connections)


class SnapshotWarmer:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings, *,
                 interval: float = POLL_SECONDS,
                 rehearse: Callable[[GapReport], object] | None = None,
                 settle_heap: bool = False,
                 preload: Callable[[], object] | None = None,
                 inherited: Collection[int] = ()) -> None:
        """``rehearse``: also run once on the first report (e.g. build its Slack message,
        so that the first command does not pay for the formatting's first use).
        ``settle_heap``: after the first warm-up, see :func:`settle_heap` (a web worker).
        ``preload``: run once first (e.g. read the bot token's kept identity).
        ``inherited``: snapshot ids whose gaps by each dimension the process this one
        was forked from ran already (gunicorn's master, bot/server.py: preheat): not run
        again (see :meth:`warm_once`)."""
        self._sessions, self._settings, self._interval = sessions, settings, interval
        self._rehearse, self._settle_heap, self._preload = rehearse, settle_heap, preload
        self._inherited = frozenset(inherited)
        self._warm: set[int] = set()  # snapshot ids whose gap was computed here
        self._newest: int | None = None  # the newest snapshot id at the last full look
        self._stop = threading.Event()
        self._first_pass = threading.Event()
        self._failing = False
        self.thread: threading.Thread | None = None

    def start(self, *, wait: float = 0.0) -> SnapshotWarmer:
        """Warm in the background; with ``wait``, return once the first pass is done, or
        after ``wait`` seconds (a huge snapshot, a database away: the pass goes on)."""
        self.thread = threading.Thread(target=self._run, name="sopgap-warmup", daemon=True)
        self.thread.start()
        if wait > 0 and not self._first_pass.wait(wait):
            log.warning("started before the latest view was decoded (took over %g s)", wait)
        return self

    def stop(self) -> None:
        self._stop.set()

    def warm_once(self, *, most: int | None = None, writes: bool = True) -> list[int]:
        """Warm each workspace's latest snapshot not warmed yet (``most``: only that many
        of them, the newest first); returns their ids. ``writes=False``: without the
        rehearsal of a command's writes (which could wait on another process's locks)."""
        # Most looks find no new load: one scalar on the primary key, on a bare connection
        # (under 100 users' load, the grouped query in an ORM session took 5 % of a
        # worker's time holding the interpreter lock).
        with self._sessions.kw["bind"].connect() as connection:
            newest = connection.scalar(select(func.max(Snapshot.id)))
        if newest is None or newest == self._newest:
            return []
        rule = TriggerRule(self._settings.threshold_pct, self._settings.materiality_floor)
        with self._sessions() as session:
            latest = session.execute(select(Snapshot.team_id, func.max(Snapshot.id))
                                     .group_by(Snapshot.team_id)).all()
            fresh = sorted(((team, snapshot_id) for team, snapshot_id in latest
                            if snapshot_id not in self._warm),
                           key=lambda found: found[1], reverse=True)[:most]
            for team, snapshot_id in fresh:
                try:
                    if self._warm:
                        # After a load the code is warm: the new view decoded, with its
                        # per-table work, is all it lacks. The whole scope's gap, run
                        # then too, held the interpreter lock while the first command
                        # after the load waited (1M rows, 2 workers: its median went
                        # from 54 and 66 ms to 44 and 53 ms, in two probes of 8 loads).
                        self._prepare_view(session, snapshot_id)
                    else:
                        self._first_warm_up(session, team, snapshot_id, rule, writes=writes)
                except DBAPIError:
                    raise  # the database is away: try again at the next look
                except Exception:  # e.g. no gap for the whole scope: decoded all the same
                    log.debug("warming snapshot %s stopped early", snapshot_id, exc_info=True)
                self._warm.add(snapshot_id)
        self._newest = newest  # (not when the database failed above: looked at again)
        return [snapshot_id for _, snapshot_id in fresh]

    def _first_warm_up(self, session: Session, team: str, snapshot_id: int,
                       rule: TriggerRule, *, writes: bool) -> None:
        """The process's first: a command's code run for the first time (gaps, a trigger
        point's steps), on the latest view."""
        from sop_core.services.data import gap_report

        report = gap_report(session, "", team_id=team, rule=rule, explain=True,
                            snapshot_id=snapshot_id,
                            fy_start_month=self._settings.fiscal_year_start_month)
        if snapshot_id not in self._inherited:
            # (A forked worker finds the master's lookups built and its code specialised:
            # running the gaps again made both workers busy for 0.1 s after boot, beside
            # the first command; see bot/server.py.)
            self._by_each_dimension(session, report, team, rule)
        if writes:
            self._rehearse_record(report, team)
        if self._rehearse is not None:
            self._rehearse(report)

    def _by_each_dimension(self, session: Session, report: GapReport, team: str,
                           rule: TriggerRule, *, rounds: int = FILTERED_REHEARSALS) -> None:
        """A process's first warm-up: the gap by each dimension in turn (a dimension's
        first grouping builds its member lookup). Then, as commands mostly ask, within one
        member of each dimension, by the next one (``rounds`` times): a process's first
        filtered gap took half as long again as the next ones."""
        from sop_core.filters import Filters
        from sop_core.services.data import gap_report

        def gap(filters: Filters) -> GapReport:
            return gap_report(session, filters, team_id=team, rule=rule, explain=True,
                              snapshot_id=report.snapshot_id,
                              fy_start_month=self._settings.fiscal_year_start_month)

        dimensions = report.dimensions
        biggest = {dimension: drivers[0].member for dimension in dimensions
                   if (drivers := gap(Filters(by=dimension)).result.drivers)}
        for _ in range(rounds):
            for dimension, member in biggest.items():
                following = dimensions[(dimensions.index(dimension) + 1) % len(dimensions)]
                try:
                    gap(Filters(scope={dimension: (member,)}, by=following))
                except DBAPIError:
                    raise
                except Exception:  # e.g. no rows in the default horizon: the next one
                    log.debug("a filtered gap of the warm-up failed", exc_info=True)

    @staticmethod
    def _prepare_view(session: Session, snapshot_id: int) -> None:
        """A view decoded, and the one before it (a gap's movement reads both), each with
        what a first command would otherwise compute once per table
        (sop_core/loading/table.py): as-of, periods, items, member lookups."""
        from sop_core import snapshots

        current = session.get(Snapshot, snapshot_id)
        for snapshot in (current, snapshots.previous(session, current) if current else None):
            if snapshot is None:
                continue
            table = snapshots.read(session, snapshot)
            table.as_of, table.periods, table.sorted_by_period, table.items  # noqa: B018
            for dimension in table.dimensions:
                table.category_lookup(dimension)

    def _rehearse_record(self, report: GapReport, team: str) -> None:
        """Once per process: a command's database steps (the replay claim, Slack's kept
        answers about its channel, its channel's rule, the latest view's lookup, the
        living trigger point, the claim, the message's ts), rolled back, and a read as
        commands read, so that the first command does not pay the ORM's first use
        (mapper set-up, SQL compiled: the engine's cache is shared); then the pool's
        connections (:func:`_open_connections`)."""
        from sop_core import snapshots
        from sop_core.services import triggers

        with self._sessions.kw["bind"].connect() as connection:
            transaction = connection.begin()
            try:
                seen_requests.first_time(connection, "warm-up")  # a request's replay claim
                slack_answers.rehearse(connection)  # a first post's (bot/directory.py)
                rehearsal = sessionmaker(bind=connection,
                                         join_transaction_mode="rollback_only")
                with rehearsal() as session:
                    triggers.channel_rule(session, self._settings, team, "WARMUP")
                    # A command's own lookup (a workspace's id: the statement it runs).
                    snapshots.newest_two(session, team or "TWARMUP")
                    triggers.living(session, report, team_id=team, channel_id="WARMUP")
                claimed = triggers.claim_living(rehearsal, report, team_id=team,
                                                channel_id="WARMUP", created_by=None)
                triggers.attach_message(rehearsal, claimed.point_id, "0.000000")
            finally:
                transaction.rollback()
        # A command's reads run on the autocommit sessions (bot/app.py): the first session
        # of their class sets up its events, the first checkout switches isolation level.
        with autocommit_sessionmaker(self._settings.database_url)() as session:
            snapshots.newest_two(session, team or "TWARMUP")
        _open_connections(self._sessions.kw["bind"], POOLED_AHEAD)

    def _run(self) -> None:
        watcher: load_signal.Watcher | None = None
        try:
            if self._preload is not None:
                try:
                    self._preload()
                except Exception:  # the first command does it instead
                    log.warning("preloading before the first command failed", exc_info=True)
            self._pass()
            if self._failing:  # the database is away: no waiting on a connection to it
                self._first_pass.set()
            # In this thread, after any fork: a connection of its own (PostgreSQL listens
            # from now on), made before a web worker's first request, which otherwise ran
            # beside the start of a PostgreSQL backend for it.
            watcher = load_signal.watcher(self._sessions.kw["bind"], self._stop)
            while not self._stop.is_set():
                self._pass()  # (the first time: a load committed before it listened)
                self._first_pass.set()
                watcher.wait(self._interval, self._newest)
        finally:
            self._first_pass.set()  # (stopped, or failed: nobody waits for it any longer)
            if watcher is not None:
                watcher.close()

    def _pass(self) -> None:
        try:
            warmed = self.warm_once()
            if warmed:
                log.info("warmed snapshot(s) %s ahead of the first command", warmed)
                if self._settle_heap:
                    settle_heap()
                    self._settle_heap = False  # once: later loads add few objects
            self._failing = False
        except Exception:  # keep trying: the first commands would decode it anyway
            if not self._failing:
                log.warning("could not warm the latest snapshot (will retry)", exc_info=True)
            self._failing = True


def _open_connections(engine: Engine, count: int) -> None:
    """Have ``count`` connections in the pool before the first command: a command's steps
    can hold two or three at once (its replay claim beside its reads), and opening one
    to PostgreSQL (a new backend process, authentication) took longer than a command's
    read."""
    with ExitStack() as held:
        for _ in range(count):
            held.enter_context(engine.connect())


def settle_heap() -> None:
    """Collect the garbage once, then exempt what survives (modules, the first decoded
    snapshot) from the cycle collector's full passes.

    A full pass over a worker's heap took 90 ms with a 1M-row snapshot decoded, and it
    fell on whichever command happened to allocate next. It runs once, after the boot's
    warm-up and before the first request: most of the heap is what the imports made, and
    a load adds few objects (a snapshot is a handful of arrays), so later full passes
    stay short without freezing again, which would stop every worker for as long after
    each load. Frozen objects are still freed by reference counting.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
