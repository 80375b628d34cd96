"""Gunicorn's settings for ``sopgap serve`` (and ``gunicorn -c python:bot.gunicorn_conf``),
read from the environment. ``GUNICORN_CMD_ARGS`` and command-line options override them.

| variable | default | |
|---|---|---|
| ``PORT`` | 3000 | listens on 0.0.0.0:PORT |
| ``WEB_CONCURRENCY`` (or ``SOPGAP_WEB_WORKERS``) | 2 | worker processes: about 1 per core |
| ``SOPGAP_WEB_THREADS`` | 8 | threads per worker (gthread) |
| ``FORWARDED_ALLOW_IPS`` | 127.0.0.1 | proxies trusted for X-Forwarded-* (``*`` behind a router) |
| ``SOPGAP_MAX_REQUESTS``, ``…_JITTER`` | 10000, 5000 | a worker is replaced after that + 0–jitter |
| ``SOPGAP_KEEPALIVE`` | 5 | seconds an idle keep-alive connection stays open |
| ``PROMETHEUS_MULTIPROC_DIR`` | a fresh temporary folder | where workers keep their metrics |

This module must not import prometheus_client (nor anything that does) at its top: the
metrics folder has to be in the environment before the first import decides the mode.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any


def _int(name: str, default: int, *fallbacks: str) -> int:
    for key in (name, *fallbacks):
        value = os.environ.get(key, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                sys.stderr.write(f"sopgap serve: {key}={value!r} is not a whole number\n")
                os._exit(2)
    return default


def prepare_metrics_dir() -> str:
    """``PROMETHEUS_MULTIPROC_DIR``, created if missing (a new temporary folder if unset)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="sopgap-metrics-")
    os.makedirs(folder, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


_metrics_dir = prepare_metrics_dir()

bind = f"0.0.0.0:{_int('PORT', 3000)}"
workers = _int("WEB_CONCURRENCY", 2, "SOPGAP_WEB_WORKERS")
threads = _int("SOPGAP_WEB_THREADS", 8)
worker_class = "bot.gunicorn_worker.BalancedThreadWorker"  # gthread, balanced
timeout = 60
graceful_timeout = 20
keepalive = _int("SOPGAP_KEEPALIVE", 5)
# A worker is replaced after 10,000 to 15,000 requests (a guard against slow leaks). The
# spread keeps the workers of a host from being replaced together: with 2,000 ± 200, the two
# workers under 100 users reached their counts within a second or so of each other, and
# both were away at once while they started and decoded the latest view (acks waited 2 s).
max_requests = _int("SOPGAP_MAX_REQUESTS", 10_000)
max_requests_jitter = _int("SOPGAP_MAX_REQUESTS_JITTER", 5_000)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Each worker builds its own app (and database pool) after the fork.
preload_app = False
accesslog = "-"
# The path without its query string: an OAuth redirect's query carries the code.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
loglevel = "info"
if os.environ.get("SOPGAP_LOG_FORMAT", "text") == "json":
    # Gunicorn's own lines (start, workers, access log) as JSON too, redacted.
    logconfig_dict = {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": "bot.observability.JsonFormatter"}},
        "filters": {"redact": {"()": "bot.observability.redactor"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "filters": ["redact"], "stream": "ext://sys.stderr"}},
        "loggers": {name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
                    for name in ("gunicorn.error", "gunicorn.access")},
        "root": {"handlers": ["stderr"], "level": "INFO"},
    }


def on_starting(server: Any) -> None:
    """Check the settings before any worker forks (``sopgap serve`` did already); a bad
    one is a single line on stderr and exit status 2 (the database not answering: 1).
    Stale metric files go. The workers inherit the allocator's settings (bot/allocator.py)
    and the environment's OpenBLAS thread count (bot/native_threads.py)."""
    from bot.allocator import keep_freed_memory
    from bot.native_threads import no_blas_threads

    no_blas_threads()  # before bot/server.py's preheat imports numpy
    keep_freed_memory()
    for name in os.listdir(_metrics_dir):
        path = os.path.join(_metrics_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
    if os.environ.get("SOPGAP_PREFLIGHT_DONE"):
        return
    from bot.app import ConfigurationError
    from bot.server import exit_status, preflight

    try:
        preflight()
    except ConfigurationError as error:
        sys.stderr.write(f"sopgap serve: {error}\n")
        sys.stderr.flush()
        os._exit(exit_status(error))


def when_ready(server: Any) -> None:
    """Listening, before the first worker forks: warm the latest views here, once, for
    every worker (bot/server.py: preheat). Requests wait in the socket's queue meanwhile."""
    from bot.server import preheat
    from sop_core.config import get_settings

    preheat(get_settings())


def pre_fork(server: Any, worker: Any) -> None:
    from bot.gunicorn_worker import give_row

    give_row(worker)  # its row in the workers' shared backlog table


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    from bot.gunicorn_worker import take_back_row

    take_back_row(worker)
    multiprocess.mark_process_dead(worker.pid)
