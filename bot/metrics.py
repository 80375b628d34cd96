"""Prometheus metrics: defined once here, exported at ``GET /metrics``.

Under gunicorn every worker is its own process: ``PROMETHEUS_MULTIPROC_DIR`` (set up by
``bot.gunicorn_conf``) makes prometheus_client write each process's values to files that
a scrape of any worker adds up. Without it (the clock, Socket Mode, tests) the values
live in the process. The outbox backlog and the data loads are read from the database at
each scrape, so they are right whichever process answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

# prometheus_client opens its files here at import (multiprocess mode): make sure the
# folder exists rather than fail every command of a process that inherited the setting.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0, 10.0)

ACK_SECONDS = Histogram(
    "sopgap_ack_seconds", "Time from a Slack request's arrival to its HTTP answer (the ack)",
    ["kind", "name"], buckets=LATENCY_BUCKETS)
HANDLER_SECONDS = Histogram(
    "sopgap_handler_seconds", "Time a listener took, ack included; a command's work that "
    "waited for a work slot is in sopgap_work_seconds", ["kind", "name", "outcome"],
    buckets=(*LATENCY_BUCKETS, 30.0, 60.0))
WORK_WAIT_SECONDS = Histogram(
    "sopgap_work_wait_seconds", "Time a command's work after the ack waited for a work slot",
    ["kind", "name"], buckets=(0.0, *LATENCY_BUCKETS, 30.0))
WORK_SECONDS = Histogram(
    "sopgap_work_seconds", "Time a command's work after the ack took once it had its slot "
    "(its waits on Slack included)", ["kind", "name"], buckets=(*LATENCY_BUCKETS, 30.0, 60.0))
SLACK_CALLS = Counter("sopgap_slack_api_calls_total", "Slack Web API calls made", ["method"])
SLACK_ERRORS = Counter("sopgap_slack_api_errors_total",
                       "Slack Web API calls that failed (an error answer or no answer)",
                       ["method", "error"])
SLACK_RATE_LIMITED = Counter("sopgap_slack_api_rate_limited_total",
                             "Slack Web API answers 429 (rate limited)", ["method"])
OUTBOX_SENT = Counter("sopgap_outbox_sent_total", "Clock messages sent (nudges, digests, …)",
                      ["kind"])
OUTBOX_FAILED = Counter("sopgap_outbox_failed_total",
                        "Clock sends that failed (retried next pass, or given up)", ["kind"])
CLOCK_PASS_SECONDS = Histogram("sopgap_clock_pass_seconds", "Duration of a clock sweep",
                               ["job"], buckets=(0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300))
CLOCK_LAG_SECONDS = Gauge("sopgap_clock_lag_seconds",
                          "How late the last sweep started after its scheduled time", ["job"],
                          multiprocess_mode="max")
CLOCK_LAST_PASS = Gauge("sopgap_clock_last_pass_timestamp_seconds",
                        "When the last sweep finished (Unix time)", ["job"],
                        multiprocess_mode="max")
REFUSED_REQUESTS = Counter(
    "sopgap_refused_requests_total",
    "Requests refused before any listener ran, by reason: signature (missing, stale or "
    "wrong), too_large, malformed, replay, workspace (not allowed), install (refused)",
    ["reason"])
REFUSAL_REASONS = ("signature", "too_large", "malformed", "replay", "workspace", "install")
LOADS = Counter("sopgap_data_loads_total", "Data loads (files, queries, refreshes)", ["outcome"])
LOADED_ROWS = Counter("sopgap_data_loaded_rows_total", "Rows stored by successful loads")


class DatabaseGauges(Collector):
    """Read from the database at scrape time, so that every process agrees and loads
    made by ``sopgap load`` (another process) show: outbox records by status (claimed =
    the backlog), snapshots kept, and the last load's time and rows."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from sqlalchemy import func, select

        from sop_core.db import get_sessionmaker
        from sop_core.models import Notification, Snapshot

        try:
            with get_sessionmaker(self.database_url)() as session:
                counts = dict(session.execute(select(Notification.status, func.count())
                                              .group_by(Notification.status)).tuples().all())
                kept = session.scalar(select(func.count()).select_from(Snapshot)) or 0
                last = session.execute(select(Snapshot.loaded_at, Snapshot.rows_stored)
                                       .order_by(Snapshot.id.desc()).limit(1)).first()
        except Exception:  # the database away: the scrape still answers, without these
            log.warning("metrics: could not read the database for the gauges")
            return
        outbox = GaugeMetricFamily("sopgap_outbox_records",
                                   "Outbox records by status (claimed = the backlog)",
                                   labels=["status"])
        for status in ("claimed", "sent", "failed"):
            outbox.add_metric([status], float(counts.get(status, 0)))
        yield outbox
        yield GaugeMetricFamily("sopgap_data_snapshots", "Snapshots kept", value=kept)
        if last is not None:
            yield GaugeMetricFamily("sopgap_data_last_load_timestamp_seconds",
                                    "When the latest snapshot was loaded (Unix time)",
                                    value=last[0].timestamp())
            yield GaugeMetricFamily("sopgap_data_last_load_rows",
                                    "Rows stored by the latest load", value=last[1])


def render(database_url: str | None = None) -> tuple[bytes, str]:
    """The exposition text and its content type, for this process or all of gunicorn's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
    if database_url is not None:
        registry.register(DatabaseGauges(database_url))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward(Collector):
    """The process's default registry inside a per-scrape one (to add the backlog)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Any]:
        return self.registry.collect()


def start_series() -> None:
    """The series a ``/gap`` touches, at zero, in this process: Prometheus's advice (a
    series that appears late hides its first increase from ``rate()``), and under
    gunicorn a worker's first use of a metric creates its file, which the boot then
    pays for instead of the first command."""
    ACK_SECONDS.labels("command", "/gap")
    HANDLER_SECONDS.labels("command", "/gap", "ok")
    WORK_WAIT_SECONDS.labels("command", "/gap")
    WORK_SECONDS.labels("command", "/gap")
    for method in ("conversations.info", "chat.postMessage", "chat.update"):
        SLACK_CALLS.labels(method)
    for reason in REFUSAL_REASONS:
        REFUSED_REQUESTS.labels(reason)
