"""The scheduled data refresh: a SQL query loaded as the new load of one source (if
configured); the other sources' rows stay as they are."""

from __future__ import annotations

import logging

from bot import metrics
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
        report = store(job.sessions, table, source=settings.refresh_source)
    except LoadError as error:
        log.error("scheduled refresh rejected, the latest view is unchanged: %s", error)
        metrics.LOADS.labels("rejected").inc()
        return PassReport(failed=1)
    metrics.LOADS.labels("loaded").inc()
    metrics.LOADED_ROWS.inc(table.rows)
    log.info("scheduled refresh of source %s: snapshot #%d (%s)", settings.refresh_source,
             report.snapshot_id, "unchanged" if report.unchanged else "new figures")
    from bot.jobs import watches

    return watches.after_load(job, report.snapshot_id)
