"""Housekeeping on a database with 400 daily snapshots: it keeps exactly what it should."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.clock import run_job
from sop_core.config import Settings
from sop_core.db import get_sessionmaker
from sop_core.loading import PlanningTable
from sop_core.models import Notification, SeenRequest, Snapshot, SnapshotPart, TriggerPoint
from sop_core.retention import SnapshotRow, snapshots_to_prune
from sop_core.snapshots import save

NOW = datetime(2026, 12, 6, 3, 17, tzinfo=UTC)
DAYS = 400


def tiny(table: PlanningTable, source: str) -> PlanningTable:
    return dataclasses.replace(table, frame=table.frame.head(3), source=source)


def loads_of(db_url: str, snapshot_id: int) -> dict[str, int]:
    with get_sessionmaker(db_url)() as session:
        return dict(session.get(Snapshot, snapshot_id).source_loads or {})


@pytest.fixture
def four_hundred_days(db_url: str, sample_table: PlanningTable) -> dict[str, int]:
    """400 daily loads of source "erp" (the last one today), a weekly source "crm" that
    stopped 105 days ago (each erp view holds crm's latest load), and a trigger point
    posted from the snapshot of day 50, updated from day 60's."""
    sessions = get_sessionmaker(db_url)
    ids: dict[str, int] = {}
    erp, crm = tiny(sample_table, "erp.csv"), tiny(sample_table, "crm.csv")
    with sessions.begin() as session:
        last_crm: int | None = None
        for day in range(DAYS):
            loaded = NOW - timedelta(days=DAYS - 1 - day)
            snapshot = save(session, erp, source_name="erp",
                            others={"crm": last_crm} if last_crm else None)
            snapshot.loaded_at = loaded
            ids[f"erp{day}"] = snapshot.id
            if day % 7 == 0 and day <= 300:
                other = save(session, crm, source_name="crm",
                             others={"erp": snapshot.id})
                other.loaded_at = loaded
                ids[f"crm{day}"] = last_crm = other.id
        session.add(TriggerPoint(
            team_id="T1", channel_id="C1", scope={}, scope_key="", metric="revenue",
            horizon="fy", posted_snapshot_id=ids["erp50"], snapshot_id=ids["erp60"],
            plan_at_post=1, gap_at_post=1, plan=1, outlook=1, gap=1))
    return ids


def kept(db_url: str) -> set[int]:
    with get_sessionmaker(db_url)() as session:
        return set(session.scalars(select(Snapshot.id)))


def test_keeps_the_newest_and_everything_still_needed(db_url: str,
                                                      four_hundred_days: dict[str, int],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    ids = four_hundred_days
    settings = Settings(database_url=db_url, keep_snapshots=30, keep_snapshot_days=14)
    with caplog.at_level(logging.INFO, logger="bot.jobs.housekeeping"):
        report = run_job(settings, "housekeeping", NOW)
    assert report.failed == 0
    newest_30 = {ids[f"erp{day}"] for day in range(DAYS - 30, DAYS)}
    # crm's last load (day 294, 105 days old) is its source's latest, the load before it
    # (day 287) its movement's; the trigger point's two, and the crm loads their views hold
    # (days 49 and 56), are needed; so are the erp loads the two crm views hold.
    expected = newest_30 | {ids["crm294"], ids["crm287"], ids["erp294"], ids["erp287"],
                            ids["erp50"], ids["erp60"], ids["crm49"], ids["crm56"]}
    assert loads_of(db_url, ids["erp50"]) == {"crm": ids["crm49"], "erp": ids["erp50"]}
    assert kept(db_url) == expected
    total = DAYS + len(range(0, 301, 7))
    assert f"pruned {total - len(expected)} snapshots" in caplog.text
    with get_sessionmaker(db_url)() as session:  # their Parquet parts went with them
        assert set(session.scalars(select(SnapshotPart.snapshot_id).distinct())) == expected
    again = run_job(settings, "housekeeping", NOW)
    assert again.failed == 0 and kept(db_url) == expected


def test_days_alone_and_nothing_set(db_url: str, four_hundred_days: dict[str, int]) -> None:
    ids = four_hundred_days
    run_job(Settings(database_url=db_url), "housekeeping", NOW)
    assert len(kept(db_url)) == len(ids)  # no retention set: every snapshot stays
    run_job(Settings(database_url=db_url, keep_snapshot_days=7), "housekeeping", NOW)
    assert {ids[f"erp{day}"] for day in range(DAYS - 8, DAYS)} <= kept(db_url)
    assert ids[f"erp{DAYS - 9}"] not in kept(db_url)
    assert {ids["erp50"], ids["crm294"], ids["crm287"], ids["crm49"]} <= kept(db_url)


def test_prunes_old_signatures_and_settled_outbox_records(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    with sessions.begin() as session:
        session.add_all([SeenRequest(signature="v0=old", seen_at=NOW - timedelta(hours=2)),
                         SeenRequest(signature="v0=new", seen_at=NOW - timedelta(minutes=2))])
        for key, days, status in (("sent-old", 40, "sent"), ("sent-new", 5, "sent"),
                                  ("claimed-old", 40, "claimed")):
            at = NOW - timedelta(days=days)
            session.add(Notification(key=key, kind="nudge", team_id="T1", status=status,
                                     claimed_at=at, lease_until=at,
                                     sent_at=at if status == "sent" else None))
    run_job(Settings(database_url=db_url, keep_outbox_days=30), "housekeeping", NOW)
    with sessions() as session:
        assert list(session.scalars(select(SeenRequest.signature))) == ["v0=new"]
        # a claimed record is not settled: it stays whatever its age
        assert sorted(session.scalars(select(Notification.key))) == ["claimed-old", "sent-new"]


def test_the_rule_per_workspace() -> None:
    day = timedelta(days=1)
    rows = [SnapshotRow(i, team, "default", NOW - (10 - i) * day)
            for i, team in enumerate(["", "T1", "", "T1", "", "T1", ""], start=1)]
    # keep 1 per workspace: its latest, and the one before the latest (movement)
    assert snapshots_to_prune(rows, referenced=set(), keep_count=1, keep_days=None,
                              now=NOW) == [1, 2, 3]
    assert snapshots_to_prune(rows, referenced={1}, keep_count=1, keep_days=None,
                              now=NOW) == [2, 3]
    assert snapshots_to_prune(rows, referenced=set(), keep_count=None, keep_days=None,
                              now=NOW) == []
    # a view that holds another source's load keeps it
    rows.append(SnapshotRow(8, "", "other", NOW, loads=(1, 8)))
    assert snapshots_to_prune(rows, referenced=set(), keep_count=1, keep_days=None,
                              now=NOW) == [2, 3]

