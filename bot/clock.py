"""The clock process (``sopgap scheduler``) and one pass of it (``sopgap tick``).

APScheduler only says *when to look*; what is due is decided from the database on each
pass (see ``sop_core.services.followup`` and ``sop_core.outbox``). So jobs are declared
afresh at every start with fixed ids and an in-memory job store: there is nothing to
persist, and a restart loses nothing.

One clock is the design (Procfile ``clock``). If a second one runs against PostgreSQL,
a per-job advisory lock makes it skip the passes the first is doing, and the outbox's
unique keys would stop a double send even without that lock.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk import WebClient
from sqlalchemy import text

from bot import metrics
from bot.directory import keep_answers_in
from bot.jobs import JobContext, PassReport, housekeeping, nudges, refresh
from bot.slack_client import make_client
from bot.workspace_access import configure_shared_data
from sop_core.config import Settings
from sop_core.db import get_engine, session_factory, upsert
from sop_core.health import CLOCK_SWEEPS
from sop_core.models import ClockHeartbeat

log = logging.getLogger(__name__)

Job = Callable[[JobContext], PassReport]


def _jobs() -> dict[str, Job]:
    from bot.jobs import digests, watches

    return {"watches": watches.run, "nudges": nudges.run, "digests": digests.run,
            "refresh": refresh.run, "housekeeping": housekeeping.run}


def client_resolver(settings: Settings) -> Callable[[str], WebClient | None]:
    """Team id → a client with that workspace's bot token (one token, or the installs).
    Nobody waits on the clock, so it waits longer for Slack than the listeners do."""
    timeout = settings.slack_clock_timeout
    configure_shared_data(settings)
    if settings.slack_client_id and settings.slack_client_secret:
        from bot.installations import EncryptedInstallationStore

        store = EncryptedInstallationStore(client_id=settings.slack_client_id,
                                           engine=get_engine(settings.database_url),
                                           keys=settings.encryption_keys)

        def from_installation(team_id: str) -> WebClient | None:
            bot = store.find_bot(enterprise_id=None, team_id=team_id)
            if bot is None or not bot.bot_token:
                return None
            return make_client(settings, token=bot.bot_token, timeout=timeout)

        return from_installation
    if settings.slack_bot_token is None:
        return lambda _team: None
    client = make_client(settings, token=settings.slack_bot_token.get_secret_value(),
                         timeout=timeout)
    return lambda _team: client


@contextmanager
def exclusive(settings: Settings, name: str) -> Iterator[bool]:
    """On PostgreSQL, hold an advisory lock for the job while it runs (yields whether we
    got it); elsewhere one process at a time is the rule, so always yield True."""
    engine = get_engine(settings.database_url)
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = int.from_bytes(hashlib.sha256(f"sopgap:{name}".encode()).digest()[:8], "big",
                         signed=True)
    with engine.connect() as connection:
        got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                   .scalar())
        try:
            yield got
        finally:
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()


def run_job(settings: Settings, name: str, now: datetime | None = None) -> PassReport:
    job = _jobs()[name]
    keep_answers_in(settings.database_url)
    context = JobContext(settings=settings, sessions=session_factory(settings.database_url),
                         client_for=client_resolver(settings), now=now or datetime.now(UTC))
    try:
        with exclusive(settings, name) as mine:
            if not mine:
                log.info("%s: another clock is running this pass; skipped", name)
                return PassReport()
            report = job(context)
    except Exception:  # the database or Slack away: the next pass catches up
        log.exception("%s pass failed; what it did not send stays due", name)
        metrics.OUTBOX_FAILED.labels(name).inc()
        return PassReport(failed=1)
    metrics.OUTBOX_SENT.labels(name).inc(report.sent)
    metrics.OUTBOX_FAILED.labels(name).inc(report.failed)
    if report.sent or report.failed:
        log.info("%s: %d sent, %d skipped, %d failed", name, report.sent, report.skipped,
                 report.failed)
    return report


def sweep(settings: Settings, name: str) -> PassReport:
    """One scheduled pass of a sweep, timed, then its heartbeat (see ``sop_core.health``)."""
    started = time.monotonic()
    report = run_job(settings, name)
    seconds = time.monotonic() - started
    metrics.CLOCK_PASS_SECONDS.labels(name).observe(seconds)
    metrics.CLOCK_LAST_PASS.labels(name).set(time.time())
    try:
        with session_factory(settings.database_url).begin() as session:
            upsert(session, ClockHeartbeat, ("job",), ("beat_at", "pass_seconds", "failed"),
                   job=name, beat_at=datetime.now(UTC), pass_seconds=seconds,
                   failed=bool(report.failed))
    except Exception:  # the database away: readiness will say so, and the clock goes on
        log.warning("%s: could not record the heartbeat (the database is away)", name)
    return report


def tick(settings: Settings, now: datetime) -> dict[str, PassReport]:
    """Every job once, as of ``now``: safe to repeat (the outbox remembers what was sent)."""
    return {name: run_job(settings, name, now) for name in _jobs()}


def run_scheduler(settings: Settings) -> None:
    scheduler = BlockingScheduler(timezone=UTC, job_defaults={
        # A late or missed sweep is not worth running twice: the next one (a minute
        # later) decides from the database and catches up everything that is due.
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": 30,
    })
    for name in CLOCK_SWEEPS:
        scheduler.add_job(sweep, IntervalTrigger(seconds=settings.clock_interval),
                          args=[settings, name],
                          id=f"sweep:{name}", name=f"{name} sweep", replace_existing=True)
    if settings.refresh_url is not None and settings.refresh_query:
        scheduler.add_job(run_job, CronTrigger.from_crontab(settings.refresh_cron,
                                                            timezone=settings.timezone),
                          args=[settings, "refresh"], id="refresh", replace_existing=True,
                          # A refresh missed by under an hour is still worth running.
                          misfire_grace_time=3600)
    scheduler.add_job(run_job, CronTrigger(hour=3, minute=17, timezone=UTC),
                      args=[settings, "housekeeping"], id="housekeeping",
                      replace_existing=True, misfire_grace_time=6 * 3600)

    def lag(event: JobSubmissionEvent) -> None:
        if event.job_id.startswith("sweep:") and event.scheduled_run_times:
            late = datetime.now(UTC) - event.scheduled_run_times[-1]
            metrics.CLOCK_LAG_SECONDS.labels(event.job_id[6:]).set(late.total_seconds())

    scheduler.add_listener(lag, EVENT_JOB_SUBMITTED)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the running passes, then stopping", signum)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("clock started: %s", ", ".join(job.id for job in scheduler.get_jobs()))
    scheduler.start()
