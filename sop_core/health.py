"""Liveness and readiness, and the operator's status: plain checks on the database.

Readiness means: the database answers, its schema is at the migrations' head, and the
clock finished every sweep recently (its heartbeat, written after each pass). The same
checks back ``GET /readyz``, the health port of the Socket Mode and clock processes,
and ``sopgap status``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from sop_core.models import ClockHeartbeat, Notification, Snapshot

# The sweeps the clock runs every interval; each writes its own heartbeat.
CLOCK_SWEEPS = ("watches", "nudges", "digests")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unavailable",
                "failed": [check.name for check in self.checks if not check.ok],
                "checks": {check.name: {"ok": check.ok, "detail": check.detail}
                           for check in self.checks}}


def _age(now: datetime, then: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    return f"{seconds // 60} min {seconds % 60} s ago" if seconds >= 60 else f"{seconds} s ago"


def clock_check(session: Session, *, now: datetime, stale_after: timedelta) -> Check:
    beats = {beat.job: beat for beat in session.scalars(select(ClockHeartbeat))}
    missing = [job for job in CLOCK_SWEEPS if job not in beats]
    if missing:
        return Check("clock", False, f"no pass recorded yet for {', '.join(missing)}")
    oldest = min((beats[job] for job in CLOCK_SWEEPS), key=lambda beat: beat.beat_at)
    if now - oldest.beat_at > stale_after:
        return Check("clock", False, f"the {oldest.job} sweep last finished "
                     f"{_age(now, oldest.beat_at)} (stale after "
                     f"{int(stale_after.total_seconds())} s)")
    return Check("clock", True, f"last pass {_age(now, oldest.beat_at)}")


def readiness(engine: Engine, head: str | None, *, now: datetime,
              stale_after: timedelta) -> Readiness:
    """Every check, each failure named; never raises (a check that fails says why)."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = MigrationContext.configure(connection).get_current_revision()
            with Session(bind=connection) as session:
                clock = clock_check(session, now=now, stale_after=stale_after)
    except Exception as error:  # any driver's error: name its kind, never its URL
        reason = type(getattr(error, "orig", None) or error).__name__
        return Readiness([Check("database", False, f"not answering ({reason})"),
                          Check("migrations", False, "unknown: the database is not answering"),
                          Check("clock", False, "unknown: the database is not answering")])
    migrations = (Check("migrations", True, f"at head {head}") if current == head else
                  Check("migrations", False, f"at {current or 'none'}, head is {head}: "
                                             "run `sopgap db upgrade`"))
    return Readiness([Check("database", True, "answering"), migrations, clock])


@dataclass(frozen=True)
class OperatorStatus:
    last_load: Snapshot | None
    last_clock_pass: datetime | None
    outbox_backlog: int  # claimed and not yet sent: being sent, or due again
    outbox_retrying: int  # of those, the ones whose last attempt failed
    outbox_failed: int  # given up for good


def operator_status(session: Session) -> OperatorStatus:
    last_load = session.scalars(select(Snapshot).order_by(Snapshot.id.desc()).limit(1)).first()
    counts = dict(session.execute(select(Notification.status, func.count())
                                  .group_by(Notification.status)).tuples().all())
    retrying = session.scalar(select(func.count()).select_from(Notification).where(
        Notification.status == "claimed", Notification.last_error.is_not(None))) or 0
    return OperatorStatus(
        last_load=last_load,
        last_clock_pass=session.scalar(select(func.max(ClockHeartbeat.beat_at))),
        outbox_backlog=int(counts.get("claimed", 0)), outbox_retrying=int(retrying),
        outbox_failed=int(counts.get("failed", 0)))
