"""The ``sopgap`` command line (docs/reference/cli.md)."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table

# Only what every command needs is imported here: `sopgap --help` and the light commands
# must not pay for pandas, SQLAlchemy, pydantic-settings or matplotlib (over a second of
# imports). Each command imports what it uses.
if TYPE_CHECKING:
    from sop_core.config import Settings
    from sop_core.gaps import TriggerRule
    from sop_core.loading import PlanningTable
    from sop_core.services.data import GapReport

from bot.cli_security import keys_app, workspace_app

# Plain help (click's): typer's rich help imports a Markdown parser and a syntax
# highlighter, a third of a second before the first line is printed.
app = typer.Typer(help="S&OP gap follow-up: trigger points, root causes and SMART actions.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(workspace_app, name="workspace")

out = Console()
err = Console(stderr=True)
# Set by a command whose process need not be torn down (main()): what to close first.
_before_quick_exit: list[Callable[[], None]] = []


def _fail(message: str, code: int = 1) -> typer.Exit:
    # The message quotes the user's input and the file's content: print it verbatim, and
    # unwrapped (a log collector reads one line per error).
    err.print(f"[bold red]error:[/] {escape_markup(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _rule(settings: Settings) -> TriggerRule:
    from sop_core.gaps import TriggerRule

    return TriggerRule(settings.threshold_pct, settings.materiality_floor)


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    from bot.observability import configure_logging

    configure_logging(level=logging.INFO if verbose else logging.WARNING)
    if "--help" in sys.argv[1:]:
        return  # help needs no settings (and stays quick: no pydantic import)
    from pydantic import ValidationError

    from sop_core.config import get_settings

    try:
        get_settings()
    except ValidationError as exc:  # a setting that cannot be used: say which, no traceback
        problems = "; ".join(f"{_variable(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise _fail(f"settings: {problems}", 2) from None


def _variable(location: tuple[int | str, ...]) -> str:
    """The environment variable a setting is read from (``SOPGAP_LOCALE``)."""
    from sop_core.config import Settings

    field = Settings.model_fields.get(str(location[0])) if location else None
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, str):
        return alias
    if field is None and location and isinstance(location[0], str) and location[0].isupper():
        return location[0]  # pydantic names the variable read (DATABASE_URL) itself
    return "SOPGAP_" + "_".join(str(part) for part in location).upper()


# --------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------

@app.command()
def load(
    path: Annotated[str, typer.Argument(help="A .csv/.tsv/.xlsx/.parquet file, or with "
                                             "--query a SQLAlchemy database URL.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM: the last closed "
                                              "month, if not the latest month with actuals.")]
    = None,
    metric: Annotated[str | None, typer.Option(help="Metric name for a file without a "
                                               "metric column.")] = None,
    query: Annotated[str | None, typer.Option(help="SQL query to run against PATH "
                                              "(a database URL).")] = None,
    team: Annotated[str, typer.Option(help="Slack team id owning this data (default: "
                                      "shared by every workspace).")] = "",
    decimal: Annotated[str | None, typer.Option(
        help="The decimal mark of numbers written as text, . or , (default: found from "
             "the values; a ;-delimited file is taken as decimal comma when they don't "
             "tell).")] = None,
    ignore_column: Annotated[list[str] | None, typer.Option(
        "--ignore-column", help="A column to leave out (repeatable), e.g. a numeric "
                                "column the load mistakes for a misspelt measure.")] = None,
    source: Annotated[str | None, typer.Option(
        help="The source this data is (e.g. finance, supply): the load replaces that "
             "source's rows only; the latest view is every source's latest load. "
             "Default: default.")] = None,
    new_dimensions: Annotated[bool, typer.Option(
        "--new-dimensions", help="Accept dimension columns that differ from the latest "
                                 "snapshot's (refused otherwise: often a misspelt column)."
    )] = False,
) -> None:
    """Load a file (or a SQL query) as a new snapshot: the new latest view."""
    from concurrent.futures import ThreadPoolExecutor

    from sop_core import formatting as fmt
    from sop_core.config import get_settings
    from sop_core.loading import LoadError, describe
    from sop_core.loading.sources import source_name
    from sop_core.periods import parse_month

    settings = get_settings()
    # Nothing to tear down after a load but the database's connections (SQLite folds
    # its write-ahead log back into the file when the last one closes): main().
    _before_quick_exit[:] = [partial(_close_database, settings.database_url)]
    declared = None
    if as_of is not None:
        declared = parse_month(as_of)
        if declared is None:
            raise _fail(f"--as-of {as_of!r} is not a month (use YYYY-MM)", 2)

    def connect() -> tuple[Callable[..., Any], Any]:
        # SQLAlchemy, the models and the store are imported here, and the database and
        # its schema checked (Alembic: imports and migration files), while the file is
        # parsed in Arrow's threads: not before it, nor after it.
        from sqlalchemy.orm import configure_mappers

        from sop_core.db import session_factory
        from sop_core.services.loads import store

        sessions = session_factory(settings.database_url)
        configure_mappers()  # here, not at the store's first query after the parse
        with contextlib.suppress(Exception):  # (the summary line would say what fails)
            fmt.number(0)  # the locale's data (Babel), for the summary line: 0.04 s
        return store, sessions

    with _switching_often(), ThreadPoolExecutor(max_workers=1) as background:
        connected = background.submit(connect)
        try:
            source_label = source_name(source)
            table = _read_with_progress(path, query=query, metric=metric, decimal=decimal,
                                        ignore_columns=ignore_column or [])
            store, sessions = connected.result()
            report = store(sessions, table, team_id=team, as_of=declared,
                           new_dimensions=new_dimensions, source=source_label)
        except LoadError as exc:
            raise _fail(f"{exc}\nNothing was loaded; the latest view is unchanged.") from None
        except Exception as exc:
            # (imported by now, or failing again here as it did in the background)
            from sqlalchemy.exc import DBAPIError

            from sop_core.db import SchemaNotReady

            if isinstance(exc, SchemaNotReady):
                raise _fail(str(exc)) from None
            if not isinstance(exc, DBAPIError | OSError):
                raise
            # the database away, the disk full, no permission
            from sop_core.failures import failure_cause

            logging.getLogger(__name__).info("the load failed", exc_info=True)  # --verbose
            raise _fail(f"{failure_cause(exc)}. Nothing was loaded; the latest view is "
                        "unchanged.") from None
    of_source = "" if source is None else f" (source {escape_markup(source_label)})"
    out.print(f"Loaded snapshot [bold]#{report.snapshot_id}[/] from "
              f"{escape_markup(table.source)}{of_source}: {escape_markup(describe(table))}; "
              f"as of {fmt.month(report.table.as_of)}.", highlight=False)
    for note in table.notes:
        out.print(f"[yellow]note:[/] {escape_markup(note)}", highlight=False)
    if report.unchanged:
        out.print("Same content as the previous snapshot.")
    _evaluate_watches(settings, report.snapshot_id)


@contextlib.contextmanager
def _switching_often() -> Iterator[None]:
    """A shorter GIL switch interval while the background thread imports the database
    layer (Python, holding the GIL) and this one validates (numpy, letting go of it
    for every operation, then waiting up to the interval, 5 ms, to have it back): at
    1M rows in key order, normalise took 0.42 s instead of 0.27 s (median of five)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _close_database(url: str) -> None:
    db = sys.modules.get("sop_core.db")
    if db is not None:
        db.get_engine(url).dispose()


def _evaluate_watches(settings: Settings, snapshot_id: int) -> None:
    """Post to watching channels now, if Slack is configured (else the clock will)."""
    from sop_core.db import session_factory

    if settings.slack_bot_token is None and not settings.slack_client_id:
        return
    from datetime import UTC, datetime

    from bot.clock import client_resolver
    from bot.directory import keep_answers_in
    from bot.jobs import JobContext, watches

    keep_answers_in(settings.database_url)
    job = JobContext(settings=settings, sessions=session_factory(settings.database_url),
                     client_for=client_resolver(settings), now=datetime.now(UTC))
    try:
        result = watches.after_load(job, snapshot_id)
    except Exception:  # the load itself succeeded; the clock retries what was not sent
        logging.getLogger(__name__).exception("evaluating watches after the load failed")
        err.print("[yellow]note:[/] watched channels will be updated by the clock.")
        return
    if result.sent:
        out.print(f"Watched channels: {result.sent} trigger point posts or updates.")


def _read_with_progress(path: str, *, query: str | None, metric: str | None,
                        decimal: str | None = None, ignore_columns: list[str] | None = None
                        ) -> PlanningTable:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from sop_core.loading import read_file, read_sql

    if query is not None:
        with err.status("Running the query…"):
            return read_sql(path, query, metric=metric, ignore_columns=ignore_columns or ())
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=err, transient=True,
                  disable=not err.is_terminal) as progress:
        task = progress.add_task(f"Loading {Path(path).name}", total=1.0)

        def report(stage: str, fraction: float) -> None:
            progress.update(task, completed=fraction,
                            description=f"Loading {Path(path).name}: {stage}")

        return read_file(path, metric=metric, progress=report, decimal=decimal,
                         ignore_columns=ignore_columns or ())


# --------------------------------------------------------------------------------------
# gaps
# --------------------------------------------------------------------------------------

@app.command()
def gaps(
    filters: Annotated[list[str] | None, typer.Argument(
        help='Filters as in Slack: region=EU category="Snacks",Dairy by=channel horizon=ytd')]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result object.")] = False,
    team: Annotated[str, typer.Option(help="Slack team id whose data to use.")] = "",
) -> None:
    """The gap for a scope, with its drivers (by=DIMENSION)."""
    from sop_core.config import get_settings
    from sop_core.db import SchemaNotReady, session_factory
    from sop_core.filters import FilterError, from_arguments, parse_filters
    from sop_core.services.data import NoData, gap_report

    settings = get_settings()
    text = from_arguments(filters or [])
    try:
        parsed = parse_filters(text)
        sessions = session_factory(settings.database_url)
        with sessions() as session:
            report = gap_report(session, parsed, team_id=team, rule=_rule(settings),
                                fy_start_month=settings.fiscal_year_start_month)
    except FilterError as exc:
        raise _fail(str(exc), 2) from None
    except (NoData, SchemaNotReady) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(report.result.to_json(), indent=2) + "\n")
        return
    _print_report(report)


def _print_report(report: GapReport) -> None:
    from bot.blocks.trigger import horizon_label, scope_label
    from sop_core import formatting as fmt

    result = report.result
    full = partial(fmt.full_amount, metric=result.metric)  # amounts in the metric's unit
    compact = partial(fmt.amount, metric=result.metric)
    table = Table(title=f"{scope_label(result.scope)} · {result.metric} · "
                        f"{horizon_label(result)} · as of {fmt.month(result.as_of)}",
                  title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("Plan", full(result.plan)),
        ("Latest view", full(result.outlook)),
        ("Gap", f"{full(result.gap, signed=True)} ({fmt.percent(result.gap_pct)})"),
        ("Actual to date", full(result.actual_to_date)),
        ("Forecast, rest", full(result.forecast_rest)),
        ("Forecast bias", fmt.percent(result.bias_pct)),
        ("WMAPE", fmt.percent(result.wmape, signed=False)),
        ("Trigger point", "yes" if result.triggered else "no"),
    ]
    if report.movement is not None:
        rows.append(("Gap last snapshot", f"{full(report.movement.previous_gap, signed=True)} "
                                          f"({fmt.percent(report.movement.previous_gap_pct)})"))
    if report.pvm is not None:
        rows.append(("Price · volume · mix", f"{compact(report.pvm.price, signed=True)} · "
                                             f"{compact(report.pvm.volume, signed=True)} · "
                                             f"{compact(report.pvm.mix, signed=True)}"))
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    if result.by is not None:
        drivers = Table(title=f"Drivers by {result.by}", title_justify="left")
        for column in ("member", "plan", "latest view", "gap", "gap %", "share"):
            drivers.add_column(column, justify="left" if column == "member" else "right")
        for d in result.drivers:
            drivers.add_row(d.member + (" (offset)" if d.offset else ""),
                            full(d.plan), full(d.outlook),
                            full(d.gap, signed=True), fmt.percent(d.gap_pct), fmt.share(d.share))
        out.print(drivers)


# --------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------

@app.command()
def demo(
    messages: Annotated[int, typer.Option(help="How many trigger-point messages to render "
                                          "in full.")] = 3,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="Database to load the sample into (default: sopgap-demo.db "
                               "in the current directory; never DATABASE_URL).")] = None,
) -> None:
    """Load the bundled sample data and show the trigger points the bot would post.

    Needs no Slack and no setup: the demo's own SQLite file migrates itself. It never
    uses DATABASE_URL, so fake trigger points cannot reach real channels.
    """
    from bot.blocks.trigger import headline, trigger_point_blocks
    from bot.render import render_blocks
    from sop_core import formatting as fmt
    from sop_core.config import get_settings
    from sop_core.db import SchemaNotReady, session_factory
    from sop_core.sample_data import SAMPLE_CSV
    from sop_core.services.chart_data import report_charts, snapshot_table
    from sop_core.services.data import NoRows, gap_report
    from sop_core.services.demo import demo_database_url, demo_scopes, sample_snapshot

    settings = get_settings().model_copy(
        update={"database_url": demo_database_url(database_url, Path.cwd())})
    try:
        sessions = session_factory(settings.database_url)
    except SchemaNotReady as exc:
        raise _fail(str(exc)) from None
    snapshot_id, fresh = sample_snapshot(sessions, SAMPLE_CSV)
    out.print(f"[bold]Sample data[/]: {SAMPLE_CSV.name} → snapshot #{snapshot_id} "
              f"({'loaded now' if fresh else 'already loaded'}) in {_db_label(settings)}",
              highlight=False)
    rule = _rule(settings)
    with sessions() as session:
        reports = []
        for text in demo_scopes(session):
            try:
                reports.append(gap_report(session, text, rule=rule, explain=True,
                                          fy_start_month=settings.fiscal_year_start_month))
            except NoRows:
                continue  # a pair of members with no data: nothing to show
    reports.sort(key=lambda r: -abs(r.result.gap_pct or 0.0))
    shown = 12
    summary = Table(title=f"The {min(shown, len(reports))} largest of {len(reports)} gaps "
                          f"checked (trigger rule: |gap| ≥ {fmt.threshold(rule.threshold_pct)})",
                    title_justify="left")
    for column in ("scope", "plan", "latest view", "gap", "gap %", "trigger"):
        summary.add_column(column, justify="left" if column == "scope" else "right")
    for r in reports[:shown]:
        summary.add_row(" · ".join(v for values in r.result.scope.values() for v in values),
                        fmt.amount(r.result.plan, metric=r.result.metric),
                        fmt.amount(r.result.outlook, metric=r.result.metric),
                        fmt.amount(r.result.gap, signed=True, metric=r.result.metric),
                        fmt.percent(r.result.gap_pct),
                        "[bold red]yes[/]" if r.result.triggered else "no")
    out.print(summary)
    triggered = [r for r in reports if r.result.triggered]
    out.print(f"\n[bold]{len(triggered)} trigger points[/] would be posted:")
    for r in triggered:
        out.print(f"  • {headline(r.result)}", highlight=False, markup=False)
    for r in triggered[:messages]:
        out.print("\n[dim]── Slack message ───────────────────────────────────────────[/]")
        out.print(render_blocks(trigger_point_blocks(r, trigger_point_id=0)), markup=False,
                  highlight=False)
    if triggered:
        first = triggered[0]
        with sessions() as session:
            table = snapshot_table(session, first.snapshot_id)
        folder = Path.cwd() / "sopgap-out"
        folder.mkdir(exist_ok=True)
        out.print(f"\n[bold]Charts[/] of the first trigger point "
                  f"({escape_markup(headline(first.result))}):", highlight=False)
        for chart in report_charts(first, table, stem="gap",
                                   fy_start_month=settings.fiscal_year_start_month):
            path = folder / chart.filename
            path.write_bytes(chart.png)
            out.print(f"  • {escape_markup(str(path))}", highlight=False, soft_wrap=True)
    out.print(f"\nNext: `DATABASE_URL={escape_markup(settings.database_url)} sopgap gaps "
              "region=EU by=channel` to explore the sample; see the README to connect Slack.",
              highlight=False, soft_wrap=True)


def _db_label(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------------------
# Slack
# --------------------------------------------------------------------------------------

@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: $PORT, "
                                             "else 3000).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: "
                                                "$WEB_CONCURRENCY, else 2).")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads per worker (default: "
                                                "$SOPGAP_WEB_THREADS, else 8).")] = None,
) -> None:
    """The Slack app over HTTP under gunicorn: POST /slack/events, OAuth routes, GET
    /healthz, /readyz, /metrics. Settings: gunicorn.conf.py (the environment), then
    GUNICORN_CMD_ARGS, then options here (any gunicorn option is passed on)."""
    import os

    from bot.gunicorn_conf import prepare_metrics_dir

    prepare_metrics_dir()  # before anything imports prometheus_client
    from bot.app import ConfigurationError
    from bot.server import exit_status, preflight
    from bot.server import serve as run

    try:
        preflight()
    except ConfigurationError as exc:
        sys.stderr.write(f"sopgap serve: {exc}\n")
        raise typer.Exit(exit_status(exc)) from None
    logging.getLogger().setLevel(logging.INFO)
    os.environ["SOPGAP_PREFLIGHT_DONE"] = "1"  # the gunicorn hook need not check again
    options = [*(["--bind", f"0.0.0.0:{port}"] if port is not None else []),
               *(["--workers", str(workers)] if workers is not None else []),
               *(["--threads", str(threads)] if threads is not None else []), *ctx.args]
    run(options)


def _single_process_metrics() -> None:
    """One process serves its own metrics (on SOPGAP_HEALTH_PORT): gunicorn's shared
    folder, if the environment names one, is not for it (the web's start empties it)."""
    import os

    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


@app.command()
def socket() -> None:
    """The Slack app over Socket Mode (no public URL needed)."""
    _single_process_metrics()
    from bot.app import ConfigurationError
    from bot.server import socket_mode
    from sop_core.config import get_settings
    from sop_core.db import SchemaNotReady

    try:
        socket_mode(get_settings())
    except (ConfigurationError, SchemaNotReady) as exc:
        raise _fail(str(exc)) from None


# --------------------------------------------------------------------------------------
# The clock
# --------------------------------------------------------------------------------------

@app.command()
def scheduler() -> None:
    """The clock process: nudges, digests, watched scopes, data refresh (run exactly one)."""
    _single_process_metrics()
    from bot.clock import run_scheduler
    from sop_core.config import get_settings
    from sop_core.db import SchemaNotReady, session_factory

    settings = get_settings()
    try:
        session_factory(settings.database_url)
    except SchemaNotReady as exc:
        raise _fail(str(exc)) from None
    from bot.server import start_health_port

    logging.getLogger().setLevel(logging.INFO)
    start_health_port(settings)
    run_scheduler(settings)


@app.command()
def tick(
    now: Annotated[str | None, typer.Option(help="The instant to act as of (ISO 8601; "
                                            "default: now). Naive times are UTC.")] = None,
) -> None:
    """One pass of everything the clock does at that instant, then exit. Safe to repeat."""
    from datetime import UTC, datetime

    from bot.clock import tick as one_pass
    from sop_core.config import get_settings
    from sop_core.db import SchemaNotReady

    instant = datetime.now(UTC)
    if now is not None:
        try:
            instant = datetime.fromisoformat(now)
        except ValueError:
            raise _fail(f"--now {now!r} is not an ISO 8601 instant "
                        "(e.g. 2026-12-07T09:00:00+01:00)", 2) from None
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
    settings = get_settings()
    try:
        reports = one_pass(settings, instant.astimezone(UTC))
    except SchemaNotReady as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"Pass as of {instant.isoformat()}", title_justify="left")
    for column in ("job", "sent", "skipped", "failed"):
        table.add_column(column, justify="left" if column == "job" else "right")
    for name, report in reports.items():
        table.add_row(name, str(report.sent), str(report.skipped), str(report.failed))
    out.print(table)
    if any(report.failed for report in reports.values()):
        raise typer.Exit(1)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")]
    = False,
) -> None:
    """Readiness as /readyz sees it (database, migrations, clock), the last load, the last
    clock pass, and the outbox backlog and failures. Exit 1 when not ready."""
    from datetime import UTC, datetime, timedelta

    from sop_core import formatting as fmt
    from sop_core.config import get_settings
    from sop_core.db import get_engine, get_sessionmaker, head_revision
    from sop_core.health import operator_status, readiness

    settings = get_settings()
    now = datetime.now(UTC)
    ready = readiness(get_engine(settings.database_url), head_revision(), now=now,
                      stale_after=timedelta(seconds=settings.clock_stale_seconds))
    details = None
    if ready.checks[0].ok:
        with get_sessionmaker(settings.database_url)() as session:
            try:
                details = operator_status(session)
            except Exception:  # an unmigrated database: the checks say so
                logging.getLogger(__name__).debug("status details", exc_info=True)
    if as_json:
        body = ready.to_json()
        if details is not None:
            load = details.last_load
            body.update(
                last_load=None if load is None else {
                    "snapshot": load.id, "source": load.source, "rows": load.rows_stored,
                    "loaded_at": load.loaded_at.isoformat()},
                last_clock_pass=details.last_clock_pass and details.last_clock_pass.isoformat(),
                outbox={"backlog": details.outbox_backlog, "retrying": details.outbox_retrying,
                        "failed": details.outbox_failed})
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        table = Table(title=f"sopgap status · {_db_label(settings)}", title_justify="left",
                      show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        for check in ready.checks:
            mark = "[green]ok[/]" if check.ok else "[bold red]FAILED[/]"
            table.add_row(check.name, f"{mark} {escape_markup(check.detail)}")
        if details is not None:
            load = details.last_load
            table.add_row("last load", "none" if load is None else escape_markup(
                f"#{load.id} {load.source} ({fmt.number(load.rows_stored)} rows), "
                f"{load.loaded_at:%Y-%m-%d %H:%M} UTC"))
            table.add_row("last clock pass", "none" if details.last_clock_pass is None else
                          f"{details.last_clock_pass:%Y-%m-%d %H:%M:%S} UTC")
            table.add_row("outbox", f"{details.outbox_backlog} waiting "
                          f"({details.outbox_retrying} after a failed attempt), "
                          f"{details.outbox_failed} given up")
        out.print(table)
    if not ready.ok:
        raise typer.Exit(1)


# --------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------

def _slack_names(settings: Settings, team: str) -> Callable[[set[str], set[str]],
                                                            dict[str, str]] | None:
    """Names for the ids in an export, from Slack when a bot token is set (else ids only)."""
    if settings.slack_bot_token is None:
        return None
    from slack_sdk import WebClient

    from bot import slack_names

    client = WebClient(token=settings.slack_bot_token.get_secret_value(),
                       base_url=settings.slack_api_url, timeout=settings.slack_timeout)
    return lambda users, channels: slack_names.names(client, team, users, channels)


@app.command()
def export(
    kind: Annotated[str, typer.Argument(help="actions (one row per action) or gaps (one "
                                        "row per gap).", metavar="actions|gaps")],
    filters: Annotated[list[str] | None, typer.Argument(
        help="Filters as in Slack: gaps whose scope overlaps region=EU category=Snacks "
             "(metric= and horizon= too). With gaps, by=DIM exports that gap's drivers "
             "table instead.")] = None,
    team: Annotated[str | None, typer.Option(help="Slack team id whose register to export "
                                             "(default: the only workspace with records).")]
    = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the files to.")]
    = Path("."),
) -> None:
    """The register of gaps or actions as CSV (UTF-8) and Excel files, as `/gap export`."""
    from sop_core import formatting as fmt
    from sop_core.config import get_settings
    from sop_core.db import SchemaNotReady, session_factory
    from sop_core.filters import FilterError, from_arguments
    from sop_core.services import exports
    from sop_core.services.actions import local_today
    from sop_core.services.data import NoData

    settings = get_settings()
    try:
        chosen = exports.parse_kind(kind)
        sessions = session_factory(settings.database_url)
        if team is None:
            with sessions() as session:
                teams = exports.teams_with_records(session)
            if len(teams) > 1:
                raise _fail(f"records of several workspaces ({', '.join(teams)}): choose one "
                            "with --team", 2)
            team = teams[0] if teams else ""
        result = exports.export(sessions, team_id=team, kind=chosen,
                                filters=from_arguments(filters or []),
                                today=local_today(settings.timezone),
                                fy_start_month=settings.fiscal_year_start_month,
                                names=_slack_names(settings, team))
    except FilterError as exc:
        raise _fail(str(exc), 2) from None
    except NoData as exc:
        raise _fail(str(exc)) from None
    except SchemaNotReady as exc:
        raise _fail(str(exc)) from None
    if not result.rows:
        where = f" in workspace {team}" if team else ""
        raise _fail(f"nothing to export{where}: {exports.nothing_matches(result)}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for file in result.files:
            path = out_dir / file.filename
            path.write_bytes(file.content)
            paths.append(path)
    except OSError as exc:
        raise _fail(f"could not write the files: {exc}") from None
    rows = f"{fmt.number(result.rows)} {'row' if result.rows == 1 else 'rows'}"
    what = (f"the drivers of the gap by {result.by}" if result.by is not None
            else f"the {chosen.value} register")
    out.print(f"Exported {escape_markup(what)} ({escape_markup(result.criteria.label())})"
              + (f" of workspace {escape_markup(team)}" if team else "") + f": {rows}.",
              highlight=False)
    for path in paths:
        out.print(str(path), markup=False, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------------------
# db
# --------------------------------------------------------------------------------------

@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the migrations (the release process)."""
    from sop_core.config import get_settings
    from sop_core.db import SchemaNotReady, upgrade

    settings = get_settings()
    try:
        upgrade(settings.database_url, revision)
    except SchemaNotReady as exc:  # e.g. tokens to encrypt and no SOPGAP_ENCRYPTION_KEY
        raise _fail(str(exc)) from None
    out.print(f"Database at {_db_label(settings)} is at revision {revision}.", highlight=False)


def _read_ahead(arguments: list[str]) -> bool:
    """``sopgap load FILE …``: Arrow starts parsing FILE now, while the command line is
    parsed, the settings checked and the database layer imported (sop_core.loading.
    sources.read_ahead; messages and their order unchanged). Only in the plain form,
    the file first: an option before it, --query or --decimal, or --help, and the load
    reads as it did. True if it may have started (main() then need not wait for a parse
    a refused load never takes)."""
    if (len(arguments) < 2 or arguments[0] != "load" or arguments[1].startswith("-")
            or any(argument == "--help" or argument.startswith(("--query", "--decimal"))
                   for argument in arguments[2:])):
        return False
    from sop_core.loading.sources import read_ahead

    read_ahead(arguments[1])
    return True


def _working_threads() -> bool:
    """Whether a thread the interpreter would wait for at exit is still running (a
    daemon thread, such as the read-ahead's parse, is not waited for)."""
    return any(thread.is_alive() and not thread.daemon for thread in threading.enumerate()
               if thread is not threading.main_thread())


def _database_failure(error: Exception) -> str | None:
    """A command that failed on the database (not answering, refusing, the disk full),
    in one line, or None for any other failure. (SQLAlchemy's own message holds SQL,
    parameters and a link; ``sopgap load`` says what it did not load itself.)"""
    errors = sys.modules.get("sqlalchemy.exc")  # not imported: not the database's error
    if errors is None or not isinstance(error, errors.DBAPIError):
        return None
    from sop_core.failures import failure_cause

    return failure_cause(error)


def main() -> None:
    """``sopgap`` as a process. After a command that asked for it (``load``), the
    process ends without tearing the interpreter down: freeing every module and the
    data one by one took a quarter of a second after a 1M-row load, with nothing left to
    do. What the command names is closed, exit handlers run and the output is flushed
    first. A load refused before it took the file it reads ahead (a bad ``--as-of``, a
    setting) ends at once too, not once the parse is over (2–3 s at 10M rows)."""
    from bot.allocator import keep_freed_memory
    from bot.native_threads import no_blas_threads

    no_blas_threads()  # before numpy is imported
    keep_freed_memory()  # before the first big array (the read-ahead's)
    if sys.argv[1:2] == ["load"]:
        # A load process is mostly imports (typer, pydantic, SQLAlchemy): objects that
        # live to its end, which the cyclic collector would scan again and again (0.13 s
        # of CPU at 1M rows). Its data is in numpy and Arrow buffers, freed by reference
        # counting, and the process ends after the load.
        gc.disable()
    reading_ahead = _read_ahead(sys.argv[1:])
    try:
        try:
            app()
        except Exception as exc:
            cause = _database_failure(exc)
            if cause is None:
                raise
            logging.getLogger(__name__).info("the command failed", exc_info=True)  # -v
            raise SystemExit(_fail(cause).exit_code) from None  # (outside typer's app)
    except SystemExit as exc:
        if (not (_before_quick_exit or reading_ahead) or _working_threads()
                or sys.getprofile() is not None or sys.gettrace() is not None):
            raise  # (a profiler or a debugger writes its results at the normal exit)
        code = exc.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        import atexit

        for close in _before_quick_exit:
            with contextlib.suppress(Exception):  # the exit stays the command's
                close()
        atexit._run_exitfuncs()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # e.g. a closed pipe, as Python's own exit reports it
            code = 120
        os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    main()
