"""Snapshots on a real database (SQLite and PostgreSQL), migrations, and the CLI end to end.

Every test taking ``db_url`` runs once per backend (see ``tests/conftest.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from bot.cli import app
from sop_core import db, snapshots, workspaces
from sop_core.config import get_settings
from sop_core.gaps import GapQuery, TriggerRule, compute_gap
from sop_core.loading import PlanningTable, normalise
from sop_core.models import Base
from sop_core.sample_data import SAMPLE_CSV
from sop_core.services.data import NoData, gap_report, store

RULE = TriggerRule()
SLACK_SDK_TABLES = frozenset({"slack_installations", "slack_bots", "slack_oauth_states"})


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def sessions_for(url: str) -> sessionmaker[Session]:
    return db.get_sessionmaker(url)


def row_counts(url: str) -> tuple[int, int]:
    """(snapshots, snapshot_parts) rows in the database."""
    with db.get_engine(url).connect() as connection:
        return (connection.scalar(text("SELECT count(*) FROM snapshots")),
                connection.scalar(text("SELECT count(*) FROM snapshot_parts")))


def part_rows(url: str) -> list[int]:
    """The rows of each stored part, in order."""
    with db.get_engine(url).connect() as connection:
        blobs = connection.scalars(text("SELECT data FROM snapshot_parts ORDER BY seq"))
        # Arrow IPC files: opening one that is not fails
        return [pa.ipc.open_file(pa.py_buffer(bytes(blob))).read_all().num_rows
                for blob in blobs]


def latest_id(url: str, team_id: str = "") -> int | None:
    with sessions_for(url)() as session:
        snapshot = snapshots.latest(session, team_id)
        return None if snapshot is None else snapshot.id


def read_latest(url: str, team_id: str = "") -> PlanningTable:
    snapshots.clear_cache()  # read from the database, not from this process's cache
    with sessions_for(url)() as session:
        snapshot = snapshots.latest(session, team_id)
        assert snapshot is not None
        return snapshots.read(session, snapshot)


def assert_same_frame(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Column by column: names, dtypes, categories and codes, values (NaN = NaN)."""
    assert list(actual.columns) == list(expected.columns)
    assert list(actual.dtypes) == list(expected.dtypes)
    for name in expected.columns:
        left, right = actual[name], expected[name]
        if isinstance(right.dtype, pd.CategoricalDtype):
            assert list(left.cat.categories) == list(right.cat.categories), name
            np.testing.assert_array_equal(left.cat.codes.to_numpy(), right.cat.codes.to_numpy(),
                                          err_msg=name)
        else:
            np.testing.assert_array_equal(left.to_numpy(), right.to_numpy(), err_msg=name)


def assert_same_table(actual: PlanningTable, expected: PlanningTable) -> None:
    assert_same_frame(actual.frame, expected.frame)
    assert actual.dimensions == expected.dimensions
    assert actual.metrics == expected.metrics
    assert actual.as_of == expected.as_of
    assert actual.source == expected.source
    assert (actual.rows_read, actual.rows_merged, actual.rows) == (
        expected.rows_read, expected.rows_merged, expected.rows)
    assert actual.notes == expected.notes


def with_frame(table: PlanningTable, frame: pd.DataFrame, source: str) -> PlanningTable:
    return dataclasses.replace(table, frame=frame, source=source)


def eu_rest_forecast_scaled(table: PlanningTable, factor: float) -> PlanningTable:
    """The table with EU forecasts after the as-of month multiplied by ``factor``."""
    frame = table.frame.copy()
    rest = (frame["region"] == "EU").to_numpy() & (frame["period"] > table.as_of).to_numpy()
    frame.loc[rest, "forecast"] = frame.loc[rest, "forecast"] * factor
    return with_frame(table, frame, f"eu_x{factor}.csv")


def eu_revenue_rest_forecast(table: PlanningTable) -> float:
    frame = table.frame
    rest = ((frame["region"] == "EU") & (frame["metric"] == "revenue")
            & (frame["period"] > table.as_of) & (frame["period"] <= 2026 * 12 + 11))
    return math.fsum(frame.loc[rest, "forecast"].dropna())


# --------------------------------------------------------------------------------------
# Storing and reading back
# --------------------------------------------------------------------------------------

def test_a_stored_snapshot_reads_back_equal(db_url: str, sample_table: PlanningTable) -> None:
    report = store(sessions_for(db_url), sample_table)
    assert report.previous_snapshot_id is None
    assert not report.unchanged
    assert row_counts(db_url) == (1, 1)
    assert latest_id(db_url) == report.snapshot_id
    assert_same_table(read_latest(db_url), sample_table)


def test_latest_and_previous_follow_the_order_of_loads(db_url: str,
                                                       sample_table: PlanningTable) -> None:
    sessions = sessions_for(db_url)
    first = store(sessions, sample_table)
    second = store(sessions, eu_rest_forecast_scaled(sample_table, 1.1))
    third = store(sessions, eu_rest_forecast_scaled(sample_table, 1.1))
    assert first.snapshot_id < second.snapshot_id < third.snapshot_id
    assert (second.previous_snapshot_id, third.previous_snapshot_id) == (first.snapshot_id,
                                                                         second.snapshot_id)
    assert (second.unchanged, third.unchanged) == (False, True)  # same content as before
    with sessions() as session:
        latest = snapshots.latest(session)
        assert latest is not None and latest.id == third.snapshot_id
        chain = []
        current = latest
        while current is not None:
            chain.append(current.id)
            current = snapshots.previous(session, current)
    assert chain == [third.snapshot_id, second.snapshot_id, first.snapshot_id]


def test_a_second_load_becomes_the_latest_view_and_the_gap_shows_its_movement(
        db_url: str, sample_table: PlanningTable) -> None:
    sessions = sessions_for(db_url)
    store(sessions, sample_table)
    newer = eu_rest_forecast_scaled(sample_table, 1.1)
    second = store(sessions, newer)
    snapshots.clear_cache()
    with sessions() as session:
        report = gap_report(session, "region=EU", rule=RULE)
    assert report.snapshot_id == second.snapshot_id
    query = GapQuery(scope={"region": ("EU",)}, metric="revenue")
    assert report.result.gap == pytest.approx(compute_gap(newer, query).gap, abs=0.005)
    assert report.movement is not None
    before = compute_gap(sample_table, query)
    assert report.movement.previous_gap == pytest.approx(before.gap, abs=0.005)
    assert report.movement.previous_gap_pct == pytest.approx(before.gap_pct, abs=1e-6)
    # 10 % more EU forecast for the months after the as-of month, and nothing else.
    expected_change = 0.1 * eu_revenue_rest_forecast(sample_table)
    assert expected_change > 0
    assert report.movement.gap_change == pytest.approx(expected_change, abs=0.005)


BAD_FILES = {
    "bad_number.csv": "period,region,plan,forecast\n2026-01,EU,1,2\n2026-02,EU,1,two\n",
    "bad_period.csv": "period,region,plan,forecast\n2026-01,EU,1,2\nFeb 26,EU,1,2\n",
    "bad_measure.csv": "period,region,measure,value\n2026-01,EU,plan,1\n2026-01,EU,wish,2\n",
    "empty.csv": "",
}


@pytest.mark.parametrize(("name", "body"), BAD_FILES.items(), ids=BAD_FILES.keys())
def test_a_load_that_fails_validation_leaves_the_latest_view_unchanged(
        db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str,
        body: str) -> None:
    use_database(monkeypatch, db_url)
    assert sopgap("load", str(SAMPLE_CSV)).exit_code == 0
    before_counts, before_latest = row_counts(db_url), latest_id(db_url)
    bad = tmp_path / name
    bad.write_text(body)
    result = sopgap("load", str(bad))
    assert result.exit_code != 0
    assert (row_counts(db_url), latest_id(db_url)) == (before_counts, before_latest)


class Boom(RuntimeError):
    pass


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """Parts of 1,000 rows: the sample (3,600 rows) is stored in four parts."""
    monkeypatch.setattr(snapshots, "PART_ROWS", 1_000)
    return 1_000


@contextmanager
def part_refused_by_the_database(monkeypatch: pytest.MonkeyPatch, url: str) -> Iterator[None]:
    real = snapshots._parts

    def parts(frame: pd.DataFrame) -> list[bytes | None]:
        blobs: list[bytes | None] = list(real(frame))
        blobs[2] = None  # the third part breaks NOT NULL: the first two are already sent
        return blobs

    monkeypatch.setattr(snapshots, "_parts", parts)
    yield


@contextmanager
def connection_lost_after_parts_were_written(monkeypatch: pytest.MonkeyPatch,
                                             url: str) -> Iterator[None]:
    def after(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO SNAPSHOT_PARTS"):
            raise Boom("connection lost after writing parts")

    engine = db.get_engine(url)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", after)


@contextmanager
def failure_after_the_flush(monkeypatch: pytest.MonkeyPatch, url: str) -> Iterator[None]:
    def previous(session: Session, snapshot: snapshots.Snapshot) -> None:
        raise Boom("failure after the snapshot and its parts were flushed")

    monkeypatch.setattr(snapshots, "previous", previous)
    yield


Failure = Callable[[pytest.MonkeyPatch, str], AbstractContextManager[None]]
FAILURES: dict[str, Failure] = {
    "a part refused by the database": part_refused_by_the_database,
    "connection lost after parts were written": connection_lost_after_parts_were_written,
    "failure after the flush": failure_after_the_flush,
}


@pytest.mark.usefixtures("small_parts")
@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_a_failure_during_store_leaves_no_snapshot_and_no_parts(
        db_url: str, sample_table: PlanningTable, monkeypatch: pytest.MonkeyPatch,
        failure: Failure) -> None:
    sessions = sessions_for(db_url)
    good = store(sessions, sample_table)
    assert row_counts(db_url) == (1, 4)
    with (monkeypatch.context() as patch, failure(patch, db_url),
          pytest.raises(Exception)):  # noqa: B017, PT011 - whatever the failure is
        store(sessions, eu_rest_forecast_scaled(sample_table, 2.0))
    assert row_counts(db_url) == (1, 4)
    assert latest_id(db_url) == good.snapshot_id
    with sessions() as session:
        report = gap_report(session, "region=EU", rule=RULE)
    assert report.snapshot_id == good.snapshot_id
    assert report.movement is None


def _alias(url: str) -> str:
    """Another URL for the same database: what another process's cache key would be."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        return parsed.set(database=f"{path.parent}/./{path.name}").render_as_string(
            hide_password=False)
    return parsed.set(host="localhost").render_as_string(hide_password=False)


@pytest.mark.usefixtures("small_parts")
def test_a_failed_store_leaves_nothing_behind_in_the_process_cache(
        db_url: str, sample_table: PlanningTable, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    sessions = sessions_for(db_url)
    store(sessions, sample_table)
    failed = eu_rest_forecast_scaled(sample_table, 2.0)
    with (monkeypatch.context() as patch, failure_after_the_flush(patch, db_url),
          pytest.raises(Boom)):
        store(sessions, failed)
    # Another process (another engine, so another cache key) loads the next snapshot.
    other_url = _alias(db_url)
    try:
        other = store(sessions_for(other_url), eu_rest_forecast_scaled(sample_table, 0.5))
    finally:
        db.get_engine(other_url).dispose()
    with sessions() as session:
        snapshot = session.get(snapshots.Snapshot, other.snapshot_id)
        assert snapshot is not None
        seen = snapshots.read(session, snapshot)
    assert seen.source == "eu_x0.5.csv"
    assert_same_frame(seen.frame, eu_rest_forecast_scaled(sample_table, 0.5).frame)


# --------------------------------------------------------------------------------------
# Workspaces
# --------------------------------------------------------------------------------------

def test_a_workspace_sees_its_own_snapshots_else_the_shared_ones(
        db_url: str, sample_table: PlanningTable) -> None:
    sessions = sessions_for(db_url)
    mine = store(sessions, eu_rest_forecast_scaled(sample_table, 1.2), team_id="T1")
    with sessions() as session:
        assert gap_report(session, "", team_id="T1", rule=RULE).snapshot_id == mine.snapshot_id
        for team in ("T2", ""):
            with pytest.raises(NoData):
                gap_report(session, "", team_id=team, rule=RULE)
    # Team "": shared with the workspaces SOPGAP_SHARED_DATA_TEAMS names (here T1 and T2).
    workspaces.configure_shared_data(workspaces.SharedDataPolicy(["T1", "T2"]))
    shared = store(sessions, sample_table)
    assert shared.previous_snapshot_id is None  # T1's snapshot is not the shared history
    with sessions() as session:
        assert latest_id(db_url, "T1") == mine.snapshot_id  # newer shared data is not seen
        assert gap_report(session, "", team_id="T1", rule=RULE).snapshot_id == mine.snapshot_id
        for team in ("T2", ""):
            report = gap_report(session, "region=EU", team_id=team, rule=RULE)
            assert report.snapshot_id == shared.snapshot_id
            assert report.movement is None
        with pytest.raises(NoData):  # T1's snapshot, asked for by id from T2
            gap_report(session, "", team_id="T2", rule=RULE, snapshot_id=mine.snapshot_id)
        # A workspace the shared data is not shared with sees none of it, by id neither.
        with pytest.raises(NoData):
            gap_report(session, "region=EU", team_id="T3", rule=RULE)
        with pytest.raises(NoData):
            gap_report(session, "", team_id="T3", rule=RULE, snapshot_id=shared.snapshot_id)
    again = store(sessions, eu_rest_forecast_scaled(sample_table, 1.3), team_id="T1")
    assert again.previous_snapshot_id == mine.snapshot_id
    with sessions() as session:
        report = gap_report(session, "region=EU", team_id="T1", rule=RULE)
    assert report.snapshot_id == again.snapshot_id
    assert report.movement is not None
    expected = 0.1 * eu_revenue_rest_forecast(sample_table)
    assert report.movement.gap_change == pytest.approx(expected, abs=0.005)
    # A second shared load: T2 sees what moved since the first; T1, its own, still.
    newer = store(sessions, eu_rest_forecast_scaled(sample_table, 0.9))
    with sessions() as session:
        shared_report = gap_report(session, "region=EU", team_id="T2", rule=RULE)
        own_report = gap_report(session, "region=EU", team_id="T1", rule=RULE)
    assert shared_report.snapshot_id == newer.snapshot_id
    assert shared_report.movement is not None
    assert shared_report.movement.gap_change == pytest.approx(
        -0.1 * eu_revenue_rest_forecast(sample_table), abs=0.005)
    assert own_report.snapshot_id == again.snapshot_id


# --------------------------------------------------------------------------------------
# Large snapshots are split into parts
# --------------------------------------------------------------------------------------

def large_table(rows: int = 300_000) -> PlanningTable:
    months, regions = 24, 5
    customers = rows // (months * regions)
    index = np.arange(months * regions * customers)
    generator = np.random.default_rng(7)
    values = generator.normal(1_000, 250, size=(3, len(index))).round(2)
    values[2, generator.random(len(index)) < 0.4] = np.nan  # actuals missing for many rows
    period_names = [f"{2025 + m // 12}-{m % 12 + 1:02d}" for m in range(months)]
    customer_names = [f"Customer {c:05d}" for c in range(customers)]

    def dictionary(codes: np.ndarray, names: list[str]) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), names)

    source = pa.table({
        "period": dictionary(index % months, period_names),
        "region": dictionary(index // months % regions, ["EU", "NA", "APAC", "LATAM", "MEA"]),
        "customer": dictionary(index // (months * regions), customer_names),
        "plan": values[0], "forecast": values[1], "actual": values[2],
    })
    return normalise(source, source="large.parquet", metric="revenue", first_row=1)


def test_a_table_of_split_rows_is_written_in_a_part_for_each_core(
        db_url: str, sample_table: PlanningTable, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "SPLIT_ROWS", 3_000)  # the sample: 3,600 rows
    store(sessions_for(db_url), sample_table)
    rows = part_rows(db_url)
    assert len(rows) == (os.cpu_count() or 1) and sum(rows) == sample_table.rows
    assert_same_table(read_latest(db_url), sample_table)


def test_a_large_snapshot_is_split_into_parts_and_reads_back_identical(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    table = large_table()
    assert table.rows == 300_000
    monkeypatch.setattr(snapshots, "PART_ROWS", 40_000)
    store(sessions_for(db_url), table)
    rows = part_rows(db_url)
    # at most PART_ROWS a part; as many parts to each core (written side by side)
    assert len(rows) >= math.ceil(300_000 / 40_000) and max(rows) <= 40_000
    assert sum(rows) == 300_000 and len(rows) % (os.cpu_count() or 1) == 0
    assert_same_table(read_latest(db_url), table)


def _parquet_as_written_before(table: PlanningTable, options: dict[str, object]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(table.frame, preserve_index=False), sink, **options)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("options", [
    {"compression": "zstd"},  # the first format: pandas' converter, its metadata
    {"compression": "lz4", "use_dictionary": ["period", "metric", "region", "category",
                                              "channel"], "write_statistics": False},
], ids=["zstd", "lz4"])
def test_a_snapshot_stored_as_parquet_before_still_reads_back_identical(
        db_url: str, sample_table: PlanningTable, options: dict[str, object]) -> None:
    report = store(sessions_for(db_url), sample_table)
    with db.get_engine(db_url).begin() as connection:
        connection.execute(text("DELETE FROM snapshot_parts WHERE snapshot_id = :id"),
                           {"id": report.snapshot_id})
        connection.execute(
            text("INSERT INTO snapshot_parts (snapshot_id, seq, data) VALUES (:id, 0, :data)"),
            {"id": report.snapshot_id, "data": _parquet_as_written_before(sample_table, options)})
    snapshots.clear_cache()
    assert_same_table(read_latest(db_url), sample_table)


# --------------------------------------------------------------------------------------
# Migrations
# --------------------------------------------------------------------------------------

def include_object(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    """As migrations/env.py: the slack_sdk tables are not described by our models."""
    table = obj.table.name if type_ in {"index", "column"} else name
    return table not in SLACK_SDK_TABLES


def schema_differences(url: str) -> list[object]:
    with db.get_engine(url).connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "include_object": include_object})
        return list(compare_metadata(context, Base.metadata))


def test_migrations_go_down_to_base_and_up_again(db_url: str) -> None:
    head = db.head_revision()
    assert head is not None
    assert db.current_revision(db_url) == head
    try:
        db.downgrade(db_url, "base")
        assert db.current_revision(db_url) is None
        tables = set(inspect(db.get_engine(db_url)).get_table_names())
        assert tables <= {"alembic_version"}
    finally:
        db.upgrade(db_url)  # the next test on this database needs the schema
    assert db.current_revision(db_url) == head
    tables = set(inspect(db.get_engine(db_url)).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} | SLACK_SDK_TABLES <= tables
    db.upgrade(db_url)  # again: nothing to do
    assert db.current_revision(db_url) == head


def test_the_models_match_the_migrations(db_url: str) -> None:
    assert schema_differences(db_url) == []


def test_sopgap_db_upgrade(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    use_database(monkeypatch, db_url)
    try:
        db.downgrade(db_url, "base")
    finally:
        result = sopgap("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "is at revision head" in squash(result.stdout)
    assert db.current_revision(db_url) == db.head_revision()
    assert schema_differences(db_url) == []


# --------------------------------------------------------------------------------------
# The command line, end to end
# --------------------------------------------------------------------------------------

RESULT_KEYS = {"scope", "metric", "as_of", "horizon", "plan", "outlook", "gap", "gap_pct",
               "actual_to_date", "forecast_rest", "bias_pct", "wmape", "triggered"}
DRIVER_KEYS = {"member", "plan", "outlook", "gap", "gap_pct", "share"}


def use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()


def sopgap(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def squash(output: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    use_database(monkeypatch, db_url)
    return db_url


def gaps_json(*filters: str) -> dict[str, object]:
    result = sopgap("gaps", *filters, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    return body


def test_gaps_before_any_load_says_no_data_has_been_loaded(cli_db: str) -> None:
    result = sopgap("gaps", "region=EU", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "No planning data has been loaded yet" in squash(result.stderr)


def test_load_then_gaps_prints_the_result_object(cli_db: str) -> None:
    loaded = sopgap("load", str(SAMPLE_CSV))
    assert loaded.exit_code == 0, loaded.output
    assert "3,600 rows read" in squash(loaded.stdout)
    body = gaps_json("region=EU", "by=channel")
    assert set(body) == RESULT_KEYS | {"by", "drivers"}
    assert body["scope"] == {"region": ["EU"]}
    assert (body["metric"], body["as_of"], body["by"]) == ("revenue", "2026-08", "channel")
    assert body["horizon"] == {"name": "fy", "start": "2026-01", "end": "2026-12"}
    drivers = body["drivers"]
    assert isinstance(drivers, list)
    assert sorted(d["member"] for d in drivers) == ["E-commerce", "Retail", "Wholesale"]
    for driver in drivers:
        assert set(driver) == DRIVER_KEYS
    for key in RESULT_KEYS - {"scope", "metric", "as_of", "horizon", "triggered"}:
        assert isinstance(body[key], float), key
    assert isinstance(body["triggered"], bool)
    without_by = gaps_json("region=EU")
    assert set(without_by) == RESULT_KEYS
    assert without_by["gap"] == pytest.approx(body["gap"], abs=0.005)


def test_a_bad_load_is_reported_and_gaps_answers_from_the_previous_snapshot(
        cli_db: str, tmp_path: Path) -> None:
    assert sopgap("load", str(SAMPLE_CSV)).exit_code == 0
    before = gaps_json("region=EU", "by=channel")
    lines = SAMPLE_CSV.read_text().splitlines()
    fields = lines[41].split(",")
    fields[5] = "12O.5"  # a letter O for a zero, in the plan column of row 42
    lines[41] = ",".join(fields)
    bad = tmp_path / "sales_plan_v2.csv"
    bad.write_text("\n".join(lines) + "\n")
    result = sopgap("load", str(bad))
    assert result.exit_code == 1
    assert result.stdout == ""
    message = squash(result.stderr)
    assert "sales_plan_v2.csv, row 42, column 'plan': '12O.5' is not a number" in message
    assert "Nothing was loaded" in message
    assert "Traceback" not in result.output
    assert gaps_json("region=EU", "by=channel") == before


def test_an_unknown_dimension_exits_2_with_the_closest_name(cli_db: str) -> None:
    assert sopgap("load", str(SAMPLE_CSV)).exit_code == 0
    result = sopgap("gaps", "regoin=EU")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Did you mean “region”" in squash(result.stderr)


@pytest.mark.parametrize(("command", "shown"), [
    (("gaps", "region=[/x]"), "[/x]"),
    (("gaps", "region=[red]x"), "[red]x"),
    (("load", "bracket.csv"), "[/b]"),
    (("load", "bold.csv"), "[bold]5"),
])
def test_error_messages_show_the_users_text_verbatim(
        cli_db: str, tmp_path: Path, command: tuple[str, ...], shown: str) -> None:
    assert sopgap("load", str(SAMPLE_CSV)).exit_code == 0
    (tmp_path / "bracket.csv").write_text("period,region,plan,forecast\n2026-01,EU,[/b],1\n")
    (tmp_path / "bold.csv").write_text("period,region,plan,forecast\n2026-01,EU,[bold]5,1\n")
    result = sopgap(*command)
    assert result.exit_code in {1, 2}
    assert isinstance(result.exception, SystemExit)
    assert shown in result.stderr
