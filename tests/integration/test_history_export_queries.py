"""History and exports on real databases (SQLite and PostgreSQL): what they return is
what the database holds, and one workspace never sees another's gaps or actions."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from bot.cli import app
from sop_core.config import get_settings
from sop_core.db import get_sessionmaker
from sop_core.filters import FilterError
from sop_core.models import Action, Milestone, Snapshot, Status, TriggerPoint
from sop_core.services import exports, history, triggers
from sop_core.services.actions import local_today
from sop_core.services.triggers import NotFound

TODAY = date(2026, 11, 22)
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> sessionmaker[Session]:
    return get_sessionmaker(db_url)


@pytest.fixture
def snapshot_id(sessions: sessionmaker[Session]) -> int:
    """The latest view knows region, category and channel (not "segment")."""
    with sessions.begin() as session:
        snapshot = Snapshot(source="test", as_of=None, rows_read=0, rows_stored=0,
                            rows_merged=0, metrics=["revenue", "volume"],
                            dimensions=["region", "category", "channel"], content_hash="0")
        session.add(snapshot)
        session.flush()
        return snapshot.id


def add_point(sessions: sessionmaker[Session], snapshot_id: int, scope: dict[str, list[str]],
              *, day: int, team: str = "T1", metric: str = "revenue", horizon: str = "fy",
              status: str = Status.OPEN, cause: str | None = None,
              summary: str | None = None, gap: float = -500_000.0) -> int:
    key = " ".join(f"{d}={','.join(sorted(v.casefold() for v in vs))}"
                   for d, vs in sorted(scope.items()))
    with sessions.begin() as session:
        point = TriggerPoint(
            team_id=team, channel_id="C1", message_ts=f"17000{day:05d}.000100", scope=scope,
            scope_key=key, metric=metric, horizon=horizon, posted_snapshot_id=snapshot_id,
            snapshot_id=snapshot_id, plan_at_post=4e6, gap_at_post=gap, gap_pct_at_post=gap / 4e4,
            plan=4e6, outlook=4e6 + gap / 2, gap=gap / 2, gap_pct=gap / 8e4, status=status,
            created_at=START + timedelta(days=day),
            resolved_at=START + timedelta(days=day + 30) if status == Status.RESOLVED else None,
            root_cause_category=cause, root_cause_summary=summary,
            root_cause_confirmed_by="U2" if cause else None,
            root_cause_confirmed_at=START + timedelta(days=day + 1) if cause else None)
        session.add(point)
        session.flush()
        return point.id


def add_action(sessions: sessionmaker[Session], point_id: int | None, *, team: str = "T1",
               title: str = "Act", status: str = Status.OPEN, impact: float = 100_000.0,
               realised: float | None = None, due: date = date(2026, 12, 1),
               milestones: tuple[tuple[str, date], ...] = ()) -> int:
    with sessions.begin() as session:
        action = Action(
            team_id=team, trigger_point_id=point_id, channel_id="C1", title=title,
            owner_id="U1", creator_id="U9", metric_name="revenue", baseline=0, target=1,
            expected_impact=impact, realised_impact=realised, due_date=due, status=status,
            milestones=[Milestone(name=n, due_date=d) for n, d in milestones])
        session.add(action)
        session.flush()
        return action.id


@pytest.fixture
def seeded(sessions: sessionmaker[Session], snapshot_id: int) -> dict[str, int]:
    """T1's history (oldest first) and T2's, on the same scopes."""
    ids = {
        "eu_snacks": add_point(sessions, snapshot_id, {"region": ["EU"], "category": ["Snacks"]},
                               day=1, status=Status.RESOLVED, cause="promotion",
                               summary="Promo moved to Q1"),
        "na": add_point(sessions, snapshot_id, {"region": ["NA"]}, day=2),
        "eu_na": add_point(sessions, snapshot_id, {"region": ["EU", "NA"]}, day=3),
        "all": add_point(sessions, snapshot_id, {}, day=4),
        "dairy": add_point(sessions, snapshot_id, {"category": ["Dairy"]}, day=5,
                           metric="volume"),
        "t2_eu": add_point(sessions, snapshot_id, {"region": ["EU"]}, day=6, team="T2"),
    }
    ids["done"] = add_action(sessions, ids["eu_snacks"], title="Relaunch promo",
                             status=Status.DONE, impact=200_000, realised=150_000,
                             due=date(2026, 2, 1), milestones=(("Brief", date(2026, 1, 20)),))
    ids["open"] = add_action(sessions, ids["eu_snacks"], title="Fix listings",
                             due=date(2026, 3, 1))
    ids["on_na"] = add_action(sessions, ids["na"], title="NA push")
    ids["unlinked"] = add_action(sessions, None, title="On no gap")
    ids["t2_action"] = add_action(sessions, ids["t2_eu"], team="T2", title="T2 secret",
                                  milestones=(("T2 milestone", date(2026, 12, 1)),))
    return ids


def db_points(sessions: sessionmaker[Session], team: str) -> dict[int, TriggerPoint]:
    with sessions() as session:
        return {p.id: p for p in session.scalars(select(TriggerPoint).where(
            TriggerPoint.team_id == team))}


# ------------------------------------------------------------------------------ history

def test_history_lists_overlapping_gaps_newest_first_as_stored(
        sessions: sessionmaker[Session], seeded: dict[str, int]) -> None:
    found = history.search(sessions, team_id="T1", filters="region=eu")
    # Not NA; "all data" and the Dairy gap do not restrict region, so they overlap.
    expected = [seeded["dairy"], seeded["all"], seeded["eu_na"], seeded["eu_snacks"]]
    assert [g.id for g in found.gaps] == expected and found.total == 4
    stored = db_points(sessions, "T1")
    for gap in found.gaps:
        point = stored[gap.id]
        assert (gap.scope, gap.metric, gap.status) == (point.scope, point.metric, point.status)
        assert (gap.gap_at_post, gap.gap_pct_at_post) == (point.gap_at_post,
                                                          point.gap_pct_at_post)
        assert (gap.gap, gap.gap_pct, gap.created_at) == (point.gap, point.gap_pct,
                                                          point.created_at)
        assert gap.root_cause_category == point.root_cause_category
    oldest = found.gaps[-1]
    assert (oldest.root_cause_category, oldest.root_cause_summary) == ("promotion",
                                                                       "Promo moved to Q1")
    assert [(a.title, a.status, a.realised_impact) for a in oldest.actions] == [
        ("Relaunch promo", "done", 150_000.0), ("Fix listings", "open", None)]
    assert (oldest.realised_impact, oldest.expected_impact) == (150_000.0, 300_000.0)
    assert history.search(sessions, team_id="T1", filters="region=EU category=snacks "
                          "metric=revenue").total == 3  # eu_snacks, eu_na, all
    assert [g.id for g in history.search(sessions, team_id="T1", filters="").gaps] == \
        sorted(stored, key=lambda i: stored[i].created_at, reverse=True)


def test_another_workspace_never_sees_our_history(sessions: sessionmaker[Session],
                                                  seeded: dict[str, int]) -> None:
    theirs = history.search(sessions, team_id="T2", filters="region=EU")
    assert [g.id for g in theirs.gaps] == [seeded["t2_eu"]]
    assert [a.title for a in theirs.gaps[0].actions] == ["T2 secret"]
    ours = history.search(sessions, team_id="T1", filters="")
    assert seeded["t2_eu"] not in {g.id for g in ours.gaps}
    assert "T2 secret" not in {a.title for g in ours.gaps for a in g.actions}
    assert history.search(sessions, team_id="T3", filters="").total == 0


def test_history_keeps_scopes_the_data_no_longer_has(sessions: sessionmaker[Session],
                                                     snapshot_id: int) -> None:
    gone = add_point(sessions, snapshot_id, {"region": ["Atlantis"], "segment": ["B2B"]},
                     day=1)
    assert [g.id for g in history.search(sessions, team_id="T1",
                                         filters="region=ATLANTIS").gaps] == [gone]
    # "segment" is no longer a dimension of the data, but past gaps know it.
    assert history.search(sessions, team_id="T1", filters="segment=b2b").total == 1
    with pytest.raises(FilterError,
                       match=re.escape("Unknown dimension “regoin”. Did you mean “region”?")):
        history.search(sessions, team_id="T1", filters="regoin=EU")
    with pytest.raises(FilterError,
                       match=re.escape("Unknown metric “revnue”. Did you mean “revenue”?")):
        history.search(sessions, team_id="T1", filters="metric=revnue")
    missing = history.search(sessions, team_id="T1", filters="region=Atlantys")
    assert missing.total == 0
    assert missing.hints == ("No past gap has region=“Atlantys”. Did you mean “Atlantis”?",)


def test_without_data_or_history_any_name_is_accepted(sessions: sessionmaker[Session]) -> None:
    assert history.search(sessions, team_id="T1", filters="anything=x").total == 0


def test_a_gap_not_in_slack_yet_is_in_no_history_or_export(sessions: sessionmaker[Session],
                                                           snapshot_id: int) -> None:
    """A trigger point whose post Slack did not answer keeps its row, without a message,
    for the next claim to look for (bot/earlier_posts.py): until its message is known it
    is no part of the channel's history."""
    before = add_point(sessions, snapshot_id, {"region": ["EU"]}, day=1, cause="demand")
    pending = add_point(sessions, snapshot_id, {"region": ["EU"]}, day=2)
    with sessions.begin() as session:
        session.get(TriggerPoint, pending).message_ts = None
    later = add_point(sessions, snapshot_id, {"region": ["EU"]}, day=3)

    def listed() -> tuple[list[int], int, list[int], list[int]]:
        found = history.search(sessions, team_id="T1", filters="region=EU")
        gaps = exports.export(sessions, team_id="T1", kind="gaps", filters="", today=TODAY)
        similar = history.similar_gaps(sessions, team_id="T1", point_id=later, most=10)
        return ([g.id for g in found.gaps], found.total, [r["Gap id"] for r in rows_of(gaps)],
                [g.id for g in similar])

    assert listed() == ([later, before], 2, [later, before], [before])
    triggers.attach_message(sessions, pending, "1700000002.000200")  # the message found
    assert listed() == ([later, pending, before], 3, [later, pending, before],
                        [before, pending])


def test_history_pages_but_counts_everything(sessions: sessionmaker[Session],
                                             snapshot_id: int) -> None:
    ids = [add_point(sessions, snapshot_id, {"region": ["EU"]}, day=d) for d in range(7)]
    found = history.search(sessions, team_id="T1", filters="region=EU", limit=3)
    assert found.total == 7 and [g.id for g in found.gaps] == ids[::-1][:3]


# ------------------------------------------------------------------------------ similar

def test_similar_past_gaps_informative_first_same_scope_then_newest(
        sessions: sessionmaker[Session], snapshot_id: int) -> None:
    eu_snacks = {"region": ["EU"], "category": ["Snacks"]}
    bare_same = add_point(sessions, snapshot_id, eu_snacks, day=1)  # nothing learnt
    resolved_same = add_point(sessions, snapshot_id, {"category": ["snacks"], "region": ["eu"]},
                              day=2, status=Status.RESOLVED)
    wider = add_point(sessions, snapshot_id, {"region": ["EU", "NA"], "category": ["Snacks"],
                                              "channel": ["Retail"]}, day=3, cause="price")
    with_actions_volume = add_point(sessions, snapshot_id, eu_snacks, day=4, metric="volume")
    add_action(sessions, with_actions_volume, title="Volume plan")
    add_point(sessions, snapshot_id, {"region": ["EU"]}, day=5, cause="demand")  # no category
    add_point(sessions, snapshot_id, {"region": ["NA"], "category": ["Snacks"]}, day=6,
              cause="demand")
    add_point(sessions, snapshot_id, eu_snacks, day=7, team="T2", cause="demand")
    new = add_point(sessions, snapshot_id, eu_snacks, day=8)
    add_point(sessions, snapshot_id, eu_snacks, day=9, cause="demand")  # later: not earlier

    similar = history.similar_gaps(sessions, team_id="T1", point_id=new)
    # Informative first: same scope (same metric before another), then a wider scope.
    assert [g.id for g in similar] == [resolved_same, with_actions_volume, wider]
    assert [a.title for a in similar[1].actions] == ["Volume plan"]
    everything = history.similar_gaps(sessions, team_id="T1", point_id=new, most=10)
    assert [g.id for g in everything] == [resolved_same, with_actions_volume, wider, bare_same]
    with pytest.raises(NotFound):
        history.similar_gaps(sessions, team_id="T2", point_id=new)
    assert history.similar_gaps(sessions, team_id="T1", point_id=bare_same) == ()


# ------------------------------------------------------------------------------ exports

def rows_of(export: exports.Export) -> list[dict[str, Any]]:
    return export.frame.to_dict("records")


def test_the_actions_export_is_the_workspaces_register(sessions: sessionmaker[Session],
                                                       seeded: dict[str, int]) -> None:
    export = exports.export(sessions, team_id="T1", kind="actions", filters="", today=TODAY)
    with sessions() as session:
        stored = {a.id: a for a in session.scalars(select(Action).where(Action.team_id == "T1"))}
        milestones = {a.id: [m.name for m in a.milestones] for a in stored.values()}
    rows = rows_of(export)
    assert sorted(r["Action id"] for r in rows) == sorted(stored)  # unlinked one included
    points = db_points(sessions, "T1")
    for row in rows:
        action = stored[row["Action id"]]
        assert (row["Action"], row["Owner"], row["Status"]) == (action.title, action.owner_id,
                                                                action.status)
        assert (row["Expected impact"], row["Due date"]) == (action.expected_impact,
                                                             action.due_date)
        assert (row["Realised impact"] == action.realised_impact
                or (pd.isna(row["Realised impact"]) and action.realised_impact is None))
        for name in milestones[action.id]:
            assert name in row["Milestones"]
        if action.trigger_point_id is None:
            assert pd.isna(row["Gap id"])
            continue
        point = points[action.trigger_point_id]
        assert (row["Gap id"], row["Gap at posting"], row["Gap now"]) == (
            point.id, point.gap_at_post, point.gap)
    assert "T2 secret" not in export.csv.content.decode("utf-8-sig")
    assert b"T2 milestone" not in export.csv.content
    # The files hold the frame: as many rows, the same titles.
    back = pd.read_csv(io.BytesIO(export.csv.content), encoding="utf-8-sig")
    assert len(back) == export.rows and list(back["Action"]) == [r["Action"] for r in rows]
    sheet = openpyxl.load_workbook(io.BytesIO(export.xlsx.content))["Actions"]
    assert sheet.max_row == export.rows + 1
    column = list(export.frame.columns).index("Action") + 1
    assert [sheet.cell(i + 2, column).value for i in range(export.rows)] == [
        r["Action"] for r in rows]


def test_filtered_exports_follow_the_history_overlap(sessions: sessionmaker[Session],
                                                     seeded: dict[str, int]) -> None:
    actions = exports.export(sessions, team_id="T1", kind=exports.Kind.ACTIONS,
                             filters="region=EU", today=TODAY)
    # On overlapping gaps only: not NA's, not the one on no gap.
    assert sorted(r["Action id"] for r in rows_of(actions)) == sorted(
        [seeded["done"], seeded["open"]])
    gaps = exports.export(sessions, team_id="T1", kind="gaps", filters="region=EU",
                          today=TODAY)
    found = history.search(sessions, team_id="T1", filters="region=EU", limit=100)
    assert [r["Gap id"] for r in rows_of(gaps)] == [g.id for g in found.gaps]
    first = next(r for r in rows_of(gaps) if r["Gap id"] == seeded["eu_snacks"])
    assert (first["Actions"], first["Open actions"]) == (2, 1)
    assert (first["Realised impact"], first["Root cause"]) == (150_000.0, "Promotion")
    assert first["Coverage %"] == pytest.approx(100_000 / 250_000 * 100)
    theirs = exports.export(sessions, team_id="T2", kind="gaps", filters="", today=TODAY)
    assert [r["Gap id"] for r in rows_of(theirs)] == [seeded["t2_eu"]]
    with pytest.raises(FilterError, match="Did you mean “region”"):
        exports.export(sessions, team_id="T1", kind="gaps", filters="regoin=EU", today=TODAY)


def test_exports_name_their_files_by_kind_and_day(sessions: sessionmaker[Session],
                                                  seeded: dict[str, int]) -> None:
    export = exports.export(sessions, team_id="T1", kind="gaps", filters="", today=TODAY)
    assert (export.csv.filename, export.xlsx.filename) == ("sopgap-gaps-2026-11-22.csv",
                                                           "sopgap-gaps-2026-11-22.xlsx")
    again = exports.export(sessions, team_id="T1", kind="gaps", filters="", today=TODAY)
    assert again.xlsx.content == export.xlsx.content  # the same register, the same bytes
    with sessions() as session:
        assert exports.teams_with_records(session) == ["T1", "T2"]


# ------------------------------------------------------------------------------ sopgap export

def sopgap(db_url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args))


def test_sopgap_export_writes_both_files_and_prints_their_paths(
        db_url: str, sessions: sessionmaker[Session], seeded: dict[str, int],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out_dir = tmp_path / "exports" / "nested"
    result = sopgap(db_url, monkeypatch, "export", "actions", "region=EU", "--team", "T1",
                    "--out", str(out_dir))
    assert result.exit_code == 0, result.output
    today = local_today(get_settings().timezone)
    expected = exports.export(sessions, team_id="T1", kind="actions", filters="region=EU",
                              today=today)
    lines = result.output.splitlines()
    assert lines[0] == "Exported the actions register (region=EU) of workspace T1: 2 rows."
    assert lines[1:] == [str(out_dir / f.filename) for f in expected.files]
    for produced in expected.files:
        assert (out_dir / produced.filename).read_bytes() == produced.content


def test_sopgap_export_explains_what_it_cannot_do(
        db_url: str, seeded: dict[str, int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out_dir = tmp_path / "out"
    several = sopgap(db_url, monkeypatch, "export", "gaps", "--out", str(out_dir))
    assert several.exit_code == 2
    assert "records of several workspaces (T1, T2): choose one with --team" in several.output
    for args, code, message in [
        (("export", "widgets", "--team", "T1"), 2, "“widgets” is not something I export"),
        (("export", "gaps", "regoin=EU", "--team", "T1"), 2, "Did you mean “region”?"),
        (("export", "gaps", "region=Atlantis", "horizon=ytd", "--team", "T1"), 1,
         "nothing to export in workspace T1: no gap overlaps region=Atlantis · horizon=ytd."),
        (("export", "actions", "--team", "T3"), 1,
         "nothing to export in workspace T3: no actions recorded yet."),
    ]:
        result = sopgap(db_url, monkeypatch, *args, "--out", str(out_dir))
        assert result.exit_code == code and message in " ".join(result.output.split())
    assert not out_dir.exists()  # nothing written
