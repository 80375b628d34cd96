"""Watched scopes after each load, on SQLite and PostgreSQL, against a fake Slack.

The clock's job functions run with an explicit ``now`` and a real ``WebClient`` whose
calls go over HTTP to FakeSlack, which checks them against Slack's API description.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.jobs import JobContext, watches
from sop_core.config import Settings
from sop_core.db import get_sessionmaker
from sop_core.filters import FilterError
from sop_core.loading import PlanningTable
from sop_core.models import Notification, Status, TriggerPoint
from sop_core.services import triggers
from sop_core.services import watches as watch_service
from sop_core.services.data import store
from tests.fakeslack import FakeSlack

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
TOKENS = {"T1": "xoxb-team-one", "T2": "xoxb-team-two"}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        for team, token in TOKENS.items():
            slack.add_team(team, token)
        yield slack


def job_at(db_url: str, fake: FakeSlack, now: datetime = NOW) -> JobContext:
    clients = {team: WebClient(token=token, base_url=fake.url) for team, token in TOKENS.items()}
    return JobContext(settings=Settings(DATABASE_URL=db_url), sessions=get_sessionmaker(db_url),
                      client_for=clients.get, now=now)


def changed(table: PlanningTable, change: Callable[[pd.DataFrame, np.ndarray], None], *,
            region: str = "EU", category: str = "Snacks") -> PlanningTable:
    frame = table.frame.copy()
    rows = ((frame["region"] == region) & (frame["category"] == category)).to_numpy()
    change(frame, rows)
    return dataclasses.replace(table, frame=frame)


def forecast_up(factor: float) -> Callable[[pd.DataFrame, np.ndarray], None]:
    def change(frame: pd.DataFrame, rows: np.ndarray) -> None:
        future = rows & (frame["period"] > frame["period"][frame["actual"].notna()].max())
        frame.loc[future, "forecast"] *= factor
    return change


def plan_met(frame: pd.DataFrame, rows: np.ndarray) -> None:
    """Plan = the outlook for these rows: their gap is 0."""
    closed = frame["actual"].notna()
    frame.loc[rows & closed, "plan"] = frame.loc[rows & closed, "actual"]
    frame.loc[rows & ~closed, "plan"] = frame.loc[rows & ~closed, "forecast"]


def points(db_url: str) -> list[TriggerPoint]:
    with get_sessionmaker(db_url)() as session:
        return list(session.scalars(select(TriggerPoint).order_by(TriggerPoint.id)))


def context_of(blocks: list[dict]) -> str:
    """The trigger point's context line: status, rule, snapshot."""
    return next(b for b in blocks if b["type"] == "context")["elements"][0]["text"]


def block_text(blocks: list[dict]) -> str:
    return "\n".join(str(b.get("text", {}).get("text", "")) for b in blocks)


def test_watch_then_loads_post_update_and_resolve(db_url: str, fake: FakeSlack,
                                                  sample_table: PlanningTable) -> None:
    sessions = get_sessionmaker(db_url)
    watch, created, checked = watch_service.add_watch(
        sessions, team_id="T1", channel_id="C1", user_id="U1", text="region=EU by=category")
    assert (created, checked) == (True, False)  # no data yet: checked at the first load

    first = store(sessions, sample_table).snapshot_id
    report = watches.after_load(job_at(db_url, fake), first)
    # EU as a whole is -1.7% (within the 5% rule); its Snacks are -12.5%: one post.
    assert (report.sent, report.failed) == (1, 0)
    [post] = fake.calls_to("chat.postMessage")
    assert (post.team_id, post.args["channel"]) == ("T1", "C1")
    assert post.args["blocks"][0]["text"]["text"] == "Gap -12.5%: region=EU · category=Snacks"
    buttons = [e["action_id"] for b in post.args["blocks"] if b["type"] == "actions"
               for e in b["elements"]]
    # The driver picker (drill down), then the buttons that start the work.
    assert buttons == ["gap_drill_down", "gap_discuss", "gap_create_action", "gap_show_chart"]
    [point] = points(db_url)
    assert (point.watch_id, point.message_ts, point.scope_key, point.status) == (
        watch.id, post.response["ts"], "category=snacks region=eu", Status.OPEN)
    assert post.args["blocks"][-1]["elements"][0]["value"] == str(point.id)

    # The same data again: nothing posted, nothing updated; the clock has nothing left.
    again = store(sessions, sample_table).snapshot_id
    assert watches.after_load(job_at(db_url, fake), again).sent == 0
    assert watches.run(job_at(db_url, fake, NOW + timedelta(minutes=1))).sent == 0
    # (conversations.info: the bot checks it is in the channel before its first post.)
    assert [c.method for c in fake.calls] == ["conversations.info", "chat.postMessage"]

    # Better forecasts for EU Snacks: the message is updated in place, with a note.
    better = store(sessions, changed(sample_table, forecast_up(1.2))).snapshot_id
    assert watches.after_load(job_at(db_url, fake), better).sent == 1
    [update] = fake.calls_to("chat.update")
    assert (update.args["channel"], update.args["ts"]) == ("C1", post.response["ts"])
    assert update.args["blocks"][0]["text"]["text"] == "Gap -7.4%: region=EU · category=Snacks"
    assert f"snapshot #{better}" in context_of(update.args["blocks"])
    note = fake.calls_to("chat.postMessage")[-1]
    assert note.args["thread_ts"] == post.response["ts"]
    assert note.args["text"].startswith("The gap moved from -12.5% to -7.4% (gap -464K → ")
    [point] = points(db_url)
    assert (point.snapshot_id, round(point.gap_pct, 1), point.status) == (better, -7.4, "open")
    assert round(point.gap_pct_at_post, 1) == -12.5

    # Plan met: back within the rule → the message says closed, the point is closed.
    later = NOW + timedelta(days=1)
    met = store(sessions, changed(sample_table, plan_met)).snapshot_id
    assert watches.run(job_at(db_url, fake, later)).sent == 1
    resolved = fake.calls_to("chat.update")[-1]
    assert resolved.args["blocks"][0]["text"]["text"] == (
        "Gap 0.0%: region=EU · category=Snacks (closed)")
    assert fake.calls_to("chat.postMessage")[-1].args["text"].startswith(
        "Back within the trigger rule: moved from -7.4% to 0.0%")
    [point] = points(db_url)
    assert (point.status, point.resolved_at, point.snapshot_id) == ("closed", later, met)
    assert point.status_changed_at == later

    # Crossing again reopens it in place, and the note is broadcast to the channel.
    store(sessions, sample_table)
    assert watches.run(job_at(db_url, fake, later + timedelta(days=1))).sent == 1
    reopen = fake.calls_to("chat.postMessage")[-1]
    assert reopen.args["text"].startswith("Crosses the trigger rule again: moved from 0.0% "
                                          "to -12.5%")
    assert reopen.args["reply_broadcast"] in (True, "true", "1", 1)
    assert [p.status for p in points(db_url)] == ["reopened"]
    assert "*Status:* reopened since" in context_of(fake.calls_to("chat.update")[-1].args[
        "blocks"])
    assert len(fake.calls_to("chat.update")) == 3
    assert fake.violations == []


def test_a_watched_scope_that_crosses_the_rule_is_posted_itself(
        db_url: str, fake: FakeSlack, sample_table: PlanningTable) -> None:
    sessions = get_sessionmaker(db_url)
    snapshot = store(sessions, sample_table).snapshot_id
    watch_service.add_watch(sessions, team_id="T1", channel_id="C1", user_id="U1",
                            text="region=eu category=SNACKS by=channel")
    assert watches.run(job_at(db_url, fake)).sent == 2  # the scope, and its E-commerce
    posts = fake.calls_to("chat.postMessage")
    titles = [p.args["blocks"][0]["text"]["text"] for p in posts]
    assert titles[0] == "Gap -12.5%: region=EU · category=Snacks"
    assert "What drives it, by channel" in block_text(posts[0].args["blocks"])
    assert titles[1].startswith("Gap -") and titles[1].endswith(
        "region=EU · category=Snacks · channel=E-commerce")
    with get_sessionmaker(db_url)() as session:
        keys = sorted(session.scalars(select(Notification.key)))
    assert keys == sorted([
        f"watch:T1:1:{snapshot}:category=snacks region=eu",
        f"watch:T1:1:{snapshot}:category=snacks channel=e-commerce region=eu",
        f"watched:T1:1:{snapshot}"])
    assert watches.run(job_at(db_url, fake)).sent == 0
    assert fake.violations == []


def test_slack_failures_leave_the_watch_due_and_the_next_pass_sends(
        db_url: str, fake: FakeSlack, sample_table: PlanningTable) -> None:
    sessions = get_sessionmaker(db_url)
    watch_service.add_watch(sessions, team_id="T1", channel_id="C1", user_id="U1",
                            text="region=EU category=Snacks")
    snapshot = store(sessions, sample_table).snapshot_id
    fake.fail_next("chat.postMessage", status=500, times=5)
    passes = []
    for minute in range(6):
        passes.append(watches.run(job_at(db_url, fake, NOW + timedelta(minutes=minute))))
        with sessions() as session:
            sent = session.scalars(select(Notification.key).where(
                Notification.status == "sent")).all()
        if minute < 5:
            assert sent == []  # nothing marked sent while Slack fails
            assert list(points(db_url)) == []  # and no trigger point left behind
    assert [(p.sent, p.failed) for p in passes] == [(0, 1)] * 5 + [(1, 0)]
    assert len([c for c in fake.calls_to("chat.postMessage") if c.ok]) == 1
    [point] = points(db_url)
    assert point.message_ts is not None
    with sessions() as session:
        rows = {n.key: n for n in session.scalars(select(Notification))}
    step = rows[f"watch:T1:{point.watch_id}:{snapshot}:category=snacks region=eu"]
    assert (step.status, step.attempts) == ("sent", 6)
    assert rows[f"watched:T1:{point.watch_id}:{snapshot}"].status == "sent"
    assert watches.run(job_at(db_url, fake, NOW + timedelta(minutes=7))).sent == 0
    assert fake.violations == []


def test_a_failed_update_is_retried_without_a_second_note(
        db_url: str, fake: FakeSlack, sample_table: PlanningTable) -> None:
    sessions = get_sessionmaker(db_url)
    watch_service.add_watch(sessions, team_id="T1", channel_id="C1", user_id="U1",
                            text="region=EU category=Snacks")
    store(sessions, sample_table)
    assert watches.run(job_at(db_url, fake)).sent == 1
    store(sessions, changed(sample_table, forecast_up(1.2)))
    fake.fail_next("chat.update", status=500)
    assert watches.run(job_at(db_url, fake)).failed == 1
    assert round(points(db_url)[0].gap_pct, 1) == -12.5  # figures kept until shown
    assert watches.run(job_at(db_url, fake)).sent == 1
    assert [c.ok for c in fake.calls_to("chat.update")] == [False, True]
    notes = [c for c in fake.calls_to("chat.postMessage") if "thread_ts" in c.args]
    assert len(notes) == 1
    assert round(points(db_url)[0].gap_pct, 1) == -7.4


def test_workspaces_never_see_each_others_watches(db_url: str, fake: FakeSlack,
                                                  sample_table: PlanningTable) -> None:
    sessions = get_sessionmaker(db_url)
    store(sessions, sample_table, team_id="T1")
    doubled = dataclasses.replace(sample_table, frame=sample_table.frame.assign(
        plan=sample_table.frame["plan"] * 2))
    store(sessions, doubled, team_id="T2")
    for team in ("T1", "T2"):
        watch_service.add_watch(sessions, team_id=team, channel_id="C1", user_id="U1",
                                text="region=EU category=Snacks")
    assert watches.run(job_at(db_url, fake)).sent == 2
    by_team = {c.team_id: c for c in fake.calls_to("chat.postMessage")}
    assert by_team["T1"].args["blocks"][0]["text"]["text"].startswith("Gap -12.5%")
    assert by_team["T2"].args["blocks"][0]["text"]["text"].startswith("Gap -56.3%")
    with sessions() as session:
        assert [w.team_id for w in watch_service.list_watches(session, "T1", "C1")] == ["T1"]
    assert [w.team_id for w in watch_service.remove_watches(
        sessions, team_id="T2", channel_id="C1", text="all")] == ["T2"]
    with sessions() as session:
        assert len(watch_service.list_watches(session, "T1", "C1")) == 1
        assert watch_service.list_watches(session, "T2", "C1") == []
    # A new load for T2 only: T1's watch is not evaluated again.
    store(sessions, doubled, team_id="T2")
    assert watches.run(job_at(db_url, fake)).sent == 0
    assert {p.team_id for p in points(db_url)} == {"T1", "T2"}


def test_adding_listing_and_removing_watches(db_url: str, sample_table: PlanningTable) -> None:
    sessions = get_sessionmaker(db_url)
    store(sessions, sample_table)
    watch, created, checked = watch_service.add_watch(
        sessions, team_id="T1", channel_id="C1", user_id="U1",
        text='region=eu category="snacks" horizon=YTD')
    assert (created, checked) == (True, True)
    assert (watch.scope, watch.scope_key, watch.horizon, watch.metric, watch.by) == (
        {"region": ["EU"], "category": ["Snacks"]}, "category=snacks region=eu", "ytd", "", None)
    again, created, _ = watch_service.add_watch(
        sessions, team_id="T1", channel_id="C1", user_id="U2",
        text="category=Snacks region=EU horizon=ytd by=channel")
    assert (again.id, created, again.by) == (watch.id, False, "channel")
    assert watch_service.watch_label(again) == (
        "region=EU · category=Snacks · by channel · default metric · ytd")
    with pytest.raises(FilterError, match="Unknown region “Europ”"):
        watch_service.add_watch(sessions, team_id="T1", channel_id="C1", user_id="U1",
                                text="region=Europ")
    with pytest.raises(FilterError, match="leave out as_of="):
        watch_service.add_watch(sessions, team_id="T1", channel_id="C1", user_id="U1",
                                text="region=EU as_of=2026-05")
    with pytest.raises(FilterError, match="name the scope"):
        watch_service.add_watch(sessions, team_id="T1", channel_id="C1", user_id="U1",
                                text="")
    everything, _, _ = watch_service.add_watch(sessions, team_id="T1", channel_id="C1",
                                               user_id="U1", text="all by=region")
    assert (everything.scope, everything.by) == ({}, "region")
    assert watch_service.remove_watches(sessions, team_id="T1", channel_id="C1",
                                        text="region=NA") == []
    removed = watch_service.remove_watches(sessions, team_id="T1", channel_id="C1",
                                           text="REGION=eu category=snacks")
    assert [w.id for w in removed] == [watch.id]
    with sessions() as session:
        assert [w.scope_key for w in watch_service.list_watches(session, "T1", "C1")] == [""]


def test_a_by_over_many_members_posts_at_most_a_few_per_load(
        db_url: str, fake: FakeSlack, sample_table: PlanningTable,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_service, "MAX_NEW_POSTS", 1)
    sessions = get_sessionmaker(db_url)
    triggers.set_channel_rule(sessions, "T1", "C1", threshold_pct=0.1, floor=None)
    store(sessions, sample_table)
    watch_service.add_watch(sessions, team_id="T1", channel_id="C1", user_id="U1",
                            text="all by=region")
    report = watches.run(job_at(db_url, fake))
    assert report.sent == 1 and report.skipped >= 1
    assert len(fake.calls_to("chat.postMessage")) == 1
