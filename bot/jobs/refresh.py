"""The scheduled data refresh: a SQL source loaded as a new snapshot (if configured)."""

from __future__ import annotations

import logging

from bot.jobs import JobContext, PassReport
from sop_core.loading import LoadError, read_sql
from sop_core.services.data import store

log = logging.getLogger(__name__)


def run(job: JobContext) -> PassReport:
    settings = job.settings
    if settings.refresh_url is None or not settings.refresh_query:
        return PassReport()
    try:
        table = read_sql(settings.refresh_url.get_secret_value(), settings.refresh_query,
                         source="scheduled refresh")
    except LoadError as error:
        log.error("scheduled refresh rejected, the latest view is unchanged: %s", error)
        return PassReport(failed=1)
    report = store(job.sessions, table)
    log.info("scheduled refresh: snapshot #%d (%s)", report.snapshot_id,
             "unchanged" if report.unchanged else "new figures")
    from bot.jobs import watches

    return watches.after_load(job, report.snapshot_id)
