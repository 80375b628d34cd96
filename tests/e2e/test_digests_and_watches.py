"""Pre-meeting digests and watched scopes, end to end: commands over signed HTTP, the
clock's job functions at chosen instants, Slack played by FakeSlack."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import select, update

from bot.jobs import JobContext, digests, watches
from sop_core import formatting as fmt
from sop_core.db import get_sessionmaker
from sop_core.loading import PlanningTable
from sop_core.models import Action, Notification, Snapshot, Status, TriggerPoint
from sop_core.services.data import store
from tests.e2e.conftest import TEAMS, Running
from tests.e2e.slack_sim import SlackSim
from tests.e2e.waiting import eventually
from tests.fakeslack import FakeSlack

MEETING = "meeting 2026-12-08 10:00 tz=Europe/Paris every=month lead=24h"
# 10:00 in Paris is 09:00 UTC in winter; the digest is due 24 h before.
DEC_DIGEST = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
DEC_MEETING = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def job_at(running: Running, slack: FakeSlack, now: datetime) -> JobContext:
    clients = {team: WebClient(token=token, base_url=slack.url) for team, token in TEAMS.items()}
    return JobContext(settings=running.settings,
                      sessions=get_sessionmaker(running.settings.database_url),
                      client_for=clients.get, now=now)


def command(sim: SlackSim, slack: FakeSlack, text: str, **kwargs: str) -> str:
    before = len(slack.calls_to("response_url"))
    sim.command(text, **kwargs)
    return slack.wait_for("response_url", count=before + 1)[before].args["text"]


def post_gap(sim: SlackSim, slack: FakeSlack, running: Running, text: str, **kwargs: str
             ) -> int:
    """/gap for a scope; returns the posted trigger point's id."""
    before = len(slack.calls_to("chat.postMessage"))
    sim.command(text, **kwargs)
    post = slack.wait_for("chat.postMessage", count=before + 1)[before]
    sessions = get_sessionmaker(running.settings.database_url)

    def point() -> int | None:
        with sessions() as session:
            return session.scalar(select(TriggerPoint.id).where(
                TriggerPoint.message_ts == post.response["ts"]))

    return eventually(point)


def digest_posts(slack: FakeSlack) -> list:
    return [c for c in slack.calls_to("chat.postMessage") if c.ok
            and c.args["blocks"][0]["text"]["text"].startswith("Pre-meeting digest")]


def sections(call) -> list[str]:  # type: ignore[no-untyped-def]
    return [b["text"]["text"] for b in call.args["blocks"] if b["type"] == "section"]


def test_a_digest_is_sent_once_per_meeting_even_after_downtime(
        sim: SlackSim, slack: FakeSlack, app_server: Running) -> None:
    command(sim, slack, MEETING)
    run = lambda now: digests.run(job_at(app_server, slack, now))  # noqa: E731

    assert run(DEC_DIGEST - timedelta(minutes=1)).sent == 0  # not yet
    assert run(DEC_DIGEST).sent == 1
    assert run(DEC_DIGEST).sent == 0  # the same pass again
    assert run(DEC_DIGEST + timedelta(hours=1)).sent == 0  # the next pass
    [december] = digest_posts(slack)
    assert december.args["blocks"][0]["text"]["text"] == (
        "Pre-meeting digest · S&OP Tue 8 Dec, 10:00 (Europe/Paris)")
    # The clock was down from before January's digest time until just before the meeting:
    # one catch-up, once.
    assert run(datetime(2027, 1, 8, 8, 30, tzinfo=UTC)).sent == 1
    assert run(datetime(2027, 1, 8, 8, 45, tzinfo=UTC)).sent == 0
    # Down past the start of February's meeting: nothing for it, ever.
    assert run(datetime(2027, 2, 8, 9, 30, tzinfo=UTC)).sent == 0
    assert run(datetime(2027, 3, 1, tzinfo=UTC)).sent == 0
    # March's digest is due as usual (8 March is still winter time in Paris).
    assert run(datetime(2027, 3, 7, 9, 0, tzinfo=UTC)).sent == 1
    sessions = get_sessionmaker(app_server.settings.database_url)
    with sessions() as session:
        keys = session.scalars(select(Notification.key).where(
            Notification.kind == "digest", Notification.status == "sent")
            .order_by(Notification.id)).all()
    assert keys == ["digest:T1:C1:2026-12-08T09:00:00+00:00",
                    "digest:T1:C1:2027-01-08T09:00:00+00:00",
                    "digest:T1:C1:2027-03-08T09:00:00+00:00"]
    assert len(digest_posts(slack)) == 3
    assert slack.violations == []


def test_the_digest_tells_what_moved_what_is_covered_and_what_is_due(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int,
        sample_table: PlanningTable) -> None:
    sessions = get_sessionmaker(app_server.settings.database_url)
    with sessions.begin() as session:  # loaded before the first digest, on the test's clock
        session.execute(update(Snapshot).where(Snapshot.id == loaded).values(
            loaded_at=datetime(2026, 12, 1, tzinfo=UTC)))
    point = post_gap(sim, slack, app_server, "region=EU category=Snacks")
    command(sim, slack, MEETING)

    def action(title: str, due: date, impact: float, **extra: object) -> Action:
        return Action(team_id="T1", trigger_point_id=point, channel_id="C1", title=title,
                      owner_id="U7", creator_id="U1", metric_name="revenue", baseline=0.0,
                      target=1.0, expected_impact=impact, due_date=due, **extra)

    with sessions.begin() as session:
        session.add_all([
            action("Win back <the> listings", date(2026, 11, 30), 100_000.0),
            action("Summer promo & bundles", date(2026, 12, 20), 150_000.0),
            action("Fix the feed", date(2026, 11, 25), 50_000.0, status=Status.DONE,
                   realised_impact=40_000.0,
                   completed_at=datetime(2026, 12, 1, tzinfo=UTC)),
        ])
        tp = session.get(TriggerPoint, point)
        assert tp is not None
        tp.root_cause_category, tp.root_cause_summary = "demand", "Two retailers delisted us"
        tp.root_cause_confirmed_by = "U1"
        tp.root_cause_confirmed_at = datetime(2026, 12, 2, tzinfo=UTC)

    assert digests.run(job_at(app_server, slack, DEC_DIGEST)).sent == 1
    [first] = digest_posts(slack)
    texts = sections(first)
    assert texts[0] == (
        "*Open gaps (1)*\n• *region=EU · category=Snacks* · revenue fy: *-12.5%* (-464K) · "
        "posted at -12.5% · 54% covered by 2 open actions: 214K (46%) not yet covered · "
        "root cause: Demand")
    assert texts[1] == ("*Coverage by actions*\n• *revenue* fy (1 open gap, |gap| 464K): 250K "
                        "(54%) covered by actions · *214K (46%) not yet covered*")
    assert texts[2] == ("*Decisions needed (1)*\n• *region=EU · category=Snacks* (revenue): "
                        "how to close the 214K (46%) no action covers yet")
    assert texts[3] == ("*Overdue (1)*\n• “Win back &lt;the&gt; listings” · <@U7> · due "
                        "Mon 30 Nov (overdue by 7 days) · expected impact +100K · "
                        "region=EU · category=Snacks")
    assert texts[4].startswith("*Due before the following meeting, by Fri 8 Jan 2027 (1)*\n"
                               "• “Summer promo &amp; bundles” · <@U7> · due Sun 20 Dec")
    assert texts[5] == ("*Completed in the last 30 days (1)*\n• “Fix the feed” · <@U7> · "
                        "realised +40.0K of +50.0K expected (80%) · region=EU · category=Snacks")
    assert texts[6] == ("*Root causes confirmed in the last 30 days (1)*\n"
                        "• *region=EU · category=Snacks* (revenue): Demand: Two retailers "
                        "delisted us · confirmed by <@U1>")

    # New figures after that digest: EU Snacks forecasts up 20 %.
    frame = sample_table.frame.copy()
    rows = ((frame["region"] == "EU") & (frame["category"] == "Snacks")
            & (frame["period"] > sample_table.as_of))
    frame.loc[rows, "forecast"] *= 1.2
    newer = store(sessions, dataclasses.replace(sample_table, frame=frame)).snapshot_id
    with sessions.begin() as session:  # loaded between the two digests, on the test's clock
        session.execute(update(Snapshot).where(Snapshot.id == newer).values(
            loaded_at=datetime(2026, 12, 20, tzinfo=UTC)))

    assert digests.run(job_at(app_server, slack, datetime(2027, 1, 7, 9, tzinfo=UTC))).sent == 1
    second = digest_posts(slack)[1]
    texts = sections(second)
    assert texts[0].startswith("*Open gaps (1)*\n• *region=EU · category=Snacks* · revenue fy: "
                               "*-7.4%* (-276K) · moved from -12.5% (+189K) since the last "
                               "digest · 91% covered by 2 open actions")
    assert texts[2].count("overdue: re-plan, reassign or drop it") == 2
    # Nothing completed or confirmed since: those sections are left out, not "_None._".
    assert not any(t.startswith(("*Completed", "*Root causes")) for t in texts)
    assert "_None._" not in json.dumps(second.args["blocks"])
    assert slack.violations == []


def test_the_digest_never_adds_nested_scopes(sim: SlackSim, slack: FakeSlack,
                                             app_server: Running, loaded: int) -> None:
    """EU, EU · Snacks and category=Snacks overlap: the total counts EU only, and says so."""
    sessions = get_sessionmaker(app_server.settings.database_url)
    points = [post_gap(sim, slack, app_server, text)
              for text in ("region=EU post", "region=EU category=Snacks post",
                           "category=Snacks post")]
    with sessions() as session:
        gaps = {p: session.get(TriggerPoint, p).gap for p in points}  # type: ignore[union-attr]
    command(sim, slack, MEETING)
    assert digests.run(job_at(app_server, slack, DEC_DIGEST)).sent == 1
    [post] = digest_posts(slack)
    [coverage] = [t for t in sections(post) if t.startswith("*Coverage by actions*")]
    largest = max(points, key=lambda p: abs(gaps[p]))
    counted = abs(gaps[largest])
    assert f"|gap| {fmt.amount(counted)}" in coverage
    assert "1 open gap whose scopes do not overlap; not added:" in coverage
    everything = sum(abs(g) for g in gaps.values())
    assert fmt.amount(everything) not in coverage
    assert slack.violations == []


def test_a_failed_digest_stays_due_and_is_sent_by_a_later_pass(
        sim: SlackSim, slack: FakeSlack, app_server: Running) -> None:
    command(sim, slack, MEETING)
    sessions = get_sessionmaker(app_server.settings.database_url)
    slack.fail_next("chat.postMessage", status=500, times=5)
    for minute in range(5):
        report = digests.run(job_at(app_server, slack, DEC_DIGEST + timedelta(minutes=minute)))
        assert (report.sent, report.failed) == (0, 1)
        with sessions() as session:
            row = session.scalars(select(Notification)).one()
            assert (row.status, row.sent_at) == ("claimed", None)
            assert row.last_error is not None and "internal_error" in row.last_error
    assert digests.run(job_at(app_server, slack, DEC_DIGEST + timedelta(minutes=5))).sent == 1
    assert digests.run(job_at(app_server, slack, DEC_DIGEST + timedelta(minutes=6))).sent == 0
    with sessions() as session:
        row = session.scalars(select(Notification)).one()
        assert (row.status, row.attempts) == ("sent", 6)
    assert len(digest_posts(slack)) == 1
    assert slack.violations == []


def test_two_workspaces_never_see_each_others_meetings_digests_or_watches(
        sim: SlackSim, slack: FakeSlack, app_server: Running,
        sample_table: PlanningTable) -> None:
    sessions = get_sessionmaker(app_server.settings.database_url)
    store(sessions, sample_table, team_id="T1")
    doubled = dataclasses.replace(sample_table, frame=sample_table.frame.assign(
        plan=sample_table.frame["plan"] * 2))
    store(sessions, doubled, team_id="T2")
    post_gap(sim, slack, app_server, "region=EU category=Snacks", team="T1")
    post_gap(sim, slack, app_server, "region=EU category=Snacks", team="T2")
    # The same channel id in both workspaces, meetings five hours apart.
    command(sim, slack, MEETING, team="T1")
    command(sim, slack, "meeting 2026-12-08 15:00 tz=Europe/Paris lead=24h", team="T2")

    assert digests.run(job_at(app_server, slack, DEC_DIGEST)).sent == 1
    [one] = digest_posts(slack)
    assert one.team_id == "T1" and "*-12.5%*" in sections(one)[0]
    assert digests.run(job_at(app_server, slack, DEC_DIGEST + timedelta(hours=5))).sent == 1
    two = digest_posts(slack)[1]
    assert two.team_id == "T2" and "*-56.3%*" in sections(two)[0]
    assert "(1)" in sections(two)[0].splitlines()[0]

    command(sim, slack, "watch region=EU by=category", team="T1")
    assert command(sim, slack, "watches", team="T2").startswith("This channel watches no")
    store(sessions, doubled, team_id="T2")
    assert watches.run(job_at(app_server, slack, DEC_DIGEST)).sent == 0
    # EU · Snacks, the one category that crosses, has its message in T1's C1 already:
    # the watch posts it no second time, and nothing reaches T2.
    assert len(slack.calls_to("chat.postMessage")) == 4
    assert slack.violations == []


def test_watch_then_loads_like_the_cli(sim: SlackSim, slack: FakeSlack, app_server: Running,
                                       sample_table: PlanningTable) -> None:
    """``sopgap load`` calls ``watches.after_load`` with the new snapshot."""
    command(sim, slack, "watch region=EU category=Snacks")
    sessions = get_sessionmaker(app_server.settings.database_url)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    first = store(sessions, sample_table).snapshot_id
    assert watches.after_load(job_at(app_server, slack, now), first).sent == 1
    [post] = slack.calls_to("chat.postMessage")
    same = store(sessions, sample_table).snapshot_id
    assert watches.after_load(job_at(app_server, slack, now), same).sent == 0
    frame = sample_table.frame.copy()
    rows = ((frame["region"] == "EU") & (frame["category"] == "Snacks")
            & (frame["period"] > sample_table.as_of))
    frame.loc[rows, "forecast"] *= 1.2
    newer = store(sessions, dataclasses.replace(sample_table, frame=frame)).snapshot_id
    assert watches.after_load(job_at(app_server, slack, now), newer).sent == 1
    [edit] = slack.calls_to("chat.update")
    assert edit.args["ts"] == post.response["ts"]
    note = slack.calls_to("chat.postMessage")[-1]
    assert note.args["thread_ts"] == post.response["ts"]
    assert note.args["text"].startswith("The gap moved from -12.5% to -7.4%")
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert slack.violations == []


def test_the_digest_carries_a_chart_of_how_its_open_gaps_moved(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int,
        sample_table: PlanningTable) -> None:
    sessions = get_sessionmaker(app_server.settings.database_url)
    post_gap(sim, slack, app_server, "region=EU category=Snacks")
    post_gap(sim, slack, app_server, "region=APAC category=Beverages")
    command(sim, slack, MEETING)
    frame = sample_table.frame.copy()
    rows = ((frame["region"] == "EU") & (frame["category"] == "Snacks")
            & (frame["period"] > sample_table.as_of))
    frame.loc[rows, "forecast"] *= 1.2
    store(sessions, dataclasses.replace(sample_table, frame=frame))

    assert digests.run(job_at(app_server, slack, DEC_DIGEST)).sent == 1
    [digest] = digest_posts(slack)
    [done] = slack.calls_to("files.completeUploadExternal")
    assert (done.args["channel_id"], done.args["thread_ts"]) == ("C1", digest.response["ts"])
    [record] = [slack.files[f["id"]] for f in done.args["files"]]
    data = slack.uploads[record.id]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1000, 500)
    # Each open gap's gap % on each snapshot, as the engine computes it, largest gap first.
    [ask] = slack.calls_to("files.getUploadURLExternal")
    assert ask.args["alt_txt"] == (
        f"How this channel's open gaps moved. Gap % across snapshots #{loaded}, "
        f"#{loaded + 1}: region=EU · category=Snacks · revenue fy: -12.5% → -7.4%; "
        "region=APAC · category=Beverages · revenue fy: +10.0% → +10.0%.")

    # Never twice: not by the next pass, not when the chart fails (the digest still goes).
    assert digests.run(job_at(app_server, slack, DEC_DIGEST + timedelta(minutes=1))).sent == 0
    slack.fail_next("files.getUploadURLExternal", status=500, times=3)
    assert digests.post_now(sessions, app_server.settings,
                            WebClient(token=TEAMS["T1"], base_url=slack.url), team_id="T1",
                            channel_id="C1", now=DEC_DIGEST + timedelta(hours=1))
    assert len(slack.calls_to("files.completeUploadExternal")) == 1
    with sessions() as session:
        rows = session.execute(select(Notification.kind, Notification.status)
                               .order_by(Notification.id)).all()
    assert [tuple(r) for r in rows if r[0].startswith("digest")] == [
        ("digest", "sent"), ("digest_chart", "sent"), ("digest_now", "sent"),
        ("digest_chart", "claimed")]
    assert slack.violations == []
