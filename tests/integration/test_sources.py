"""Several sources, one latest view: finance's revenue file and supply's volume file are
both current, each replaced only by its own next load. Real databases, real migrations."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from bot.jobs import JobContext, refresh
from sop_core import snapshots
from sop_core.config import Settings
from sop_core.db import session_factory
from sop_core.loading import LoadError, PlanningTable, read_file
from sop_core.models import Snapshot
from sop_core.sample_data import SAMPLE_CSV
from sop_core.services.data import gap_report, latest_table, store

SCOPES = ("", "region=EU", "region=EU category=Snacks by=channel", "metric=volume by=region",
          "metric=volume horizon=2026-Q1 region=APAC", "horizon=ytd by=category")


def split_sample(folder: Path) -> tuple[Path, Path]:
    """The sample as finance's file (revenue) and supply's file (volume)."""
    rows = list(csv.reader(io.StringIO(SAMPLE_CSV.read_text())))
    header, body = rows[0], rows[1:]
    metric = header.index("metric")
    paths = []
    for name, wanted in (("finance", "revenue"), ("supply", "volume")):
        path = folder / f"{name}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(row for row in body if row[metric] == wanted)
        paths.append(path)
    return paths[0], paths[1]


def by_key(table: PlanningTable) -> pd.DataFrame:
    """The table's rows in key order, categories as text, amounts to the cent."""
    frame = table.frame.copy()
    keys = ["period", "metric", *sorted(table.dimensions)]
    for name in keys[1:]:
        frame[name] = frame[name].astype(str)
    for measure in ("plan", "forecast", "actual"):
        frame[measure] = frame[measure].round(2)
    return frame[[*keys, "plan", "forecast", "actual"]].sort_values(keys).reset_index(drop=True)


def answers(url: str) -> list[tuple[float, float, list[tuple[str, float]]]]:
    from sop_core.gaps import TriggerRule

    with session_factory(url)() as session:
        reports = [gap_report(session, text, rule=TriggerRule(5.0, 0.0)) for text in SCOPES]
    return [(round(r.result.plan, 2), round(r.result.outlook, 2),
             [(d.member, round(d.gap, 2)) for d in r.result.drivers]) for r in reports]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return split_sample(tmp_path)


def test_two_sources_in_either_order_are_the_merged_file_to_the_cent(
        db_url: str, files: tuple[Path, Path], tmp_path: Path) -> None:
    from sop_core.db import upgrade

    finance, supply = files
    merged = answers_after([(SAMPLE_CSV, "default")], db_url)
    snapshots.clear_cache()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(other)
    # Each order into a database of its own.
    assert answers_after([(finance, "finance"), (supply, "supply")], other)["answers"] \
        == merged["answers"]
    third = f"sqlite:///{tmp_path / 'third.db'}"
    upgrade(third)
    assert answers_after([(supply, "supply"), (finance, "finance")], third)["answers"] \
        == merged["answers"]
    for url in (other, third):
        snapshots.clear_cache()
        with session_factory(url)() as session:
            _, view = latest_table(session)
        pd.testing.assert_frame_equal(by_key(view), merged["frame"])


def answers_after(loads: list[tuple[Path, str]], url: str) -> dict:
    sessions = session_factory(url)
    for path, source in loads:
        store(sessions, read_file(path), source=source)
    with sessions() as session:
        _, view = latest_table(session)
    return {"answers": answers(url), "frame": by_key(view)}


def test_reloading_one_source_moves_only_its_rows(db_url: str, files: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    finance, supply = files
    sessions = session_factory(db_url)
    first = store(sessions, read_file(finance), source="finance")
    second = store(sessions, read_file(supply), source="supply")
    with sessions() as session:
        _, before = latest_table(session)
    # Supply's next file: every volume forecast 10 % up.
    raised = tmp_path / "supply_v2.csv"
    frame = pd.read_csv(supply)
    frame["forecast"] = (frame["forecast"] * 1.1).round(2)
    frame.to_csv(raised, index=False)
    third = store(sessions, read_file(raised), source="supply")
    snapshots.clear_cache()
    with sessions() as session:
        _, after = latest_table(session)
        latest = session.get(Snapshot, third.snapshot_id)
        assert latest is not None
        assert snapshots.loads(latest) == {"finance": first.snapshot_id,
                                           "supply": third.snapshot_id}
        held_before = session.get(Snapshot, second.snapshot_id)
        assert held_before is not None
        assert snapshots.loads(held_before) == {"finance": first.snapshot_id,
                                                "supply": second.snapshot_id}
    old, new = by_key(before), by_key(after)
    revenue = old["metric"] == "revenue"
    pd.testing.assert_frame_equal(old[revenue], new[revenue])  # finance's rows untouched
    volume = ~revenue
    assert (new.loc[volume, "forecast"] == (old.loc[volume, "forecast"] * 1.1).round(2)).all()
    # Movement compares the view with the previous view: revenue did not move.
    from sop_core.gaps import TriggerRule

    with sessions() as session:
        report = gap_report(session, "region=EU", rule=TriggerRule(5.0, 0.0))
        assert report.movement is not None
        assert report.movement.previous_gap == pytest.approx(report.result.gap, abs=0.005)
        moved = gap_report(session, "region=EU metric=volume horizon=rest",
                           rule=TriggerRule(5.0, 0.0))
        assert moved.movement is not None
        assert moved.movement.previous_gap != pytest.approx(moved.result.gap, abs=1.0)
    # The same file again: unchanged, as for a single source.
    assert store(sessions, read_file(raised), source="supply").unchanged


def test_a_row_key_in_two_sources_is_refused_naming_both(db_url: str,
                                                         files: tuple[Path, Path]) -> None:
    finance, _ = files
    sessions = session_factory(db_url)
    store(sessions, read_file(finance), source="finance")
    with pytest.raises(LoadError) as caught:
        store(sessions, read_file(finance), source="budget")
    message = str(caught.value)
    assert "is in source 'budget' (this load) and in source 'finance' (finance.csv)" in message
    assert "2025-01 revenue region=" in message
    with sessions() as session:
        assert session.scalars(select(Snapshot.source_name)).all() == ["finance"]


def test_without_a_source_loads_replace_the_default_source(db_url: str,
                                                           files: tuple[Path, Path]) -> None:
    finance, supply = files
    sessions = session_factory(db_url)
    store(sessions, read_file(finance))
    store(sessions, read_file(supply))
    with sessions() as session:
        _, view = latest_table(session)
        assert view.metrics == ("volume",)  # the second load replaced the first, as before
        assert session.scalars(select(Snapshot.source_loads)).all() == [None, None]


def test_the_scheduled_refresh_loads_its_configured_source(
        db_url: str, files: tuple[Path, Path], tmp_path: Path) -> None:
    finance, supply = files
    erp = tmp_path / "erp.db"
    with sqlite3.connect(erp) as connection:
        pd.read_csv(supply).to_sql("volumes", connection, index=False)
    sessions = session_factory(db_url)
    store(sessions, read_file(finance), source="finance")
    settings = Settings(database_url=db_url, refresh_url=f"sqlite:///{erp}",
                        refresh_query="SELECT * FROM volumes", refresh_source="supply")
    job = JobContext(settings=settings, sessions=sessions, client_for=lambda _team: None,
                     now=datetime(2026, 12, 7, 6, tzinfo=UTC))
    report = refresh.run(job)
    assert report.failed == 0
    with sessions() as session:
        latest = snapshots.latest(session)
        assert latest is not None
        assert (latest.source_name, latest.source) == ("supply", "scheduled refresh")
        _, view = latest_table(session)
    assert set(view.metrics) == {"revenue", "volume"}


def test_cli_load_with_a_source(db_url: str, files: tuple[Path, Path],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bot.cli import app
    from sop_core.config import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    finance, supply = files
    runner = CliRunner()
    first = runner.invoke(app, ["load", str(finance), "--source", "finance"])
    assert first.exit_code == 0, first.output
    assert "(source finance)" in first.stdout
    assert runner.invoke(app, ["load", str(supply), "--source", "supply"]).exit_code == 0
    bad = runner.invoke(app, ["load", str(supply), "--source", "no spaces"])
    assert bad.exit_code == 1
    assert "a source name is up to 100 letters" in bad.stderr
    with session_factory(db_url)() as session:
        _, view = latest_table(session)
    assert set(view.metrics) == {"revenue", "volume"}
    get_settings.cache_clear()
