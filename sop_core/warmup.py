"""Warm web workers: each decodes the latest snapshots before a command needs them.

Decoding a snapshot (Parquet parts → a categorical table) and the per-table work a first
gap computes (items, periods, as-of) take from a tenth of a second to seconds on a big
table. A worker would otherwise pay it on the first ``/gap`` after its boot and after
every load. A background thread computes the whole-scope gap of each workspace's latest
view (which decodes it and its predecessor, for movement, into the cache of
sop_core/snapshots.py) right after boot, then looks for a new load every ``interval``
seconds. It never blocks boot or ``/healthz``; a command that arrives while a snapshot
is being decoded waits for that decode rather than doing it a second time.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from sop_core.config import Settings
from sop_core.gaps import TriggerRule
from sop_core.models import Snapshot

if TYPE_CHECKING:
    from sop_core.services.data import GapReport

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0  # a query on the snapshots' primary key: cheap


class SnapshotWarmer:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings, *,
                 interval: float = POLL_SECONDS) -> None:
        self._sessions, self._settings, self._interval = sessions, settings, interval
        self._warm: set[int] = set()  # snapshot ids whose gap was computed here
        self._stop = threading.Event()
        self._failing = False
        self.thread: threading.Thread | None = None

    def start(self) -> SnapshotWarmer:
        self.thread = threading.Thread(target=self._run, name="sopgap-warmup", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def warm_once(self) -> list[int]:
        """Warm each workspace's latest snapshot not warmed yet; returns their ids."""
        from sop_core.services.data import gap_report

        rule = TriggerRule(self._settings.threshold_pct, self._settings.materiality_floor)
        with self._sessions() as session:
            latest = session.execute(select(Snapshot.team_id, func.max(Snapshot.id))
                                     .group_by(Snapshot.team_id)).all()
            fresh = [(team, snapshot_id) for team, snapshot_id in latest
                     if snapshot_id not in self._warm]
            for team, snapshot_id in fresh:
                try:
                    report = gap_report(session, "", team_id=team, rule=rule, explain=True,
                                        snapshot_id=snapshot_id,
                                        fy_start_month=self._settings.fiscal_year_start_month)
                    if not self._warm:
                        self._rehearse_record(report, team)
                except DBAPIError:
                    raise  # the database is away: try again at the next look
                except Exception:  # e.g. no gap for the whole scope: decoded all the same
                    log.debug("warming snapshot %s stopped early", snapshot_id, exc_info=True)
                self._warm.add(snapshot_id)
        return [snapshot_id for _, snapshot_id in fresh]

    def _rehearse_record(self, report: GapReport, team: str) -> None:
        """Once per process: record a trigger point and roll it back, so that the first
        command does not pay the ORM's first insert (mapper set-up, compiled SQL)."""
        from sop_core.services import triggers

        with self._sessions.kw["bind"].connect() as connection:
            transaction = connection.begin()
            try:
                rehearsal = sessionmaker(bind=connection,
                                         join_transaction_mode="rollback_only")
                triggers.record(rehearsal, report, team_id=team, channel_id="WARMUP",
                                created_by=None)
            finally:
                transaction.rollback()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                warmed = self.warm_once()
                if warmed:
                    log.info("decoded snapshot(s) %s ahead of the first command", warmed)
                self._failing = False
            except Exception:  # keep trying: the first commands would decode it anyway
                if not self._failing:
                    log.warning("could not warm the latest snapshot (will retry)", exc_info=True)
                self._failing = True
            self._stop.wait(self._interval)
