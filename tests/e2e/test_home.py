"""The App Home over signed HTTP: published on app_home_opened and on "Refresh"."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.ids import ActionId
from sop_core.db import get_sessionmaker
from sop_core.models import Action, Milestone, Status, TriggerPoint
from sop_core.services.coverage import coverage, describe
from tests.e2e.conftest import Running
from tests.e2e.slack_sim import SlackSim
from tests.e2e.test_threads import posted_point
from tests.fakeslack import Call, FakeSlack


def add_actions(app_server: Running, point_id: int) -> float:
    """U1 owns two open actions on the gap (one overdue), one done, and U2 owns one;
    returns the gap."""
    today = datetime.now(UTC).date()  # the app's time zone (SOPGAP_TIMEZONE) is UTC here
    sessions = get_sessionmaker(app_server.settings.database_url)
    common: dict[str, Any] = {
        "team_id": "T1", "trigger_point_id": point_id, "channel_id": "C1", "creator_id": "U1",
        "metric_name": "revenue", "baseline": 0.0, "target": 1.0}
    with sessions.begin() as session:
        session.add_all([
            Action(**common, title="Relaunch <b>promo</b> in DE", owner_id="U1",
                   expected_impact=150_000, due_date=today + timedelta(days=20),
                   milestones=[Milestone(name="Brief agency",
                                         due_date=today + timedelta(days=5))]),
            Action(**common, title="Fix e-commerce listings", owner_id="U1",
                   expected_impact=50_000, due_date=today - timedelta(days=2)),
            Action(**common, title="Already done", owner_id="U1", expected_impact=90_000,
                   due_date=today - timedelta(days=9), status=Status.DONE),
            Action(**common, title="Someone else's", owner_id="U2", expected_impact=100_000,
                   due_date=today + timedelta(days=1)),
        ])
        point = session.get(TriggerPoint, point_id)
        assert point is not None
        return point.gap


def home_opened(sim: SlackSim, user: str = "U1", team: str = "T1", tab: str = "home") -> None:
    reply = sim.event({"type": "app_home_opened", "user": user, "channel": f"D{user}",
                       "tab": tab, "event_ts": f"{time.time():.6f}"}, team=team)
    assert reply.status == 200 and reply.elapsed < 3.0


def sections(call: Call) -> list[str]:
    return [b["text"]["text"] for b in call.args["view"]["blocks"] if b["type"] == "section"]


def test_home_shows_my_actions_and_the_coverage_of_my_gaps(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    _, point_id = posted_point(sim, slack, app_server)
    gap = add_actions(app_server, point_id)
    home_opened(sim)
    [published] = slack.wait_for("views.publish")
    assert published.args["user_id"] == "U1" and published.team_id == "T1"
    assert published.args["view"]["type"] == "home"
    texts = sections(published)
    # Due soonest first, the overdue one marked; done and other people's actions left out.
    assert texts[0].startswith("*Fix e-commerce listings*\nDue ")
    assert ":warning: *overdue by 2 days*" in texts[0]
    assert texts[1].startswith("*Relaunch &lt;b&gt;promo&lt;/b&gt; in DE*\nDue ")
    assert ":round_pushpin: Next milestone: Brief agency" in texts[1]
    assert "Gap: region=EU · category=Snacks" in texts[1]
    everything = json.dumps(published.args["view"], ensure_ascii=False)
    assert "Already done" not in everything and "Someone else's" not in everything
    # The gap U1 posted, covered by the open actions only (U2's counts: it is open too).
    expected = coverage(gap, [150_000, 50_000, 100_000])
    assert expected.uncovered > 0
    [gap_text] = [t for t in texts if "Coverage" in t]
    assert gap_text.startswith("*region=EU · category=Snacks* · revenue · fy in <#C1>")
    assert describe(expected) in gap_text and "not yet covered" in gap_text
    assert slack.violations == []


def test_refresh_republishes_and_the_messages_tab_does_not(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    home_opened(sim, tab="messages")
    home_opened(sim, user="U5")
    [first] = slack.wait_for("views.publish")
    assert first.args["user_id"] == "U5"
    assert "No open actions assigned to you." in sections(first)
    reply = sim.block_action({"action_id": ActionId.HOME_REFRESH, "value": "refresh"}, user="U5",
                             view={"id": first.response["view"]["id"], "type": "home"})
    assert reply.status == 200 and reply.elapsed < 3.0
    calls = slack.wait_for("views.publish", count=2)
    assert [c.args["user_id"] for c in calls] == ["U5", "U5"]
    time.sleep(0.2)
    assert len(slack.calls_to("views.publish")) == 2  # nothing for the Messages tab
    assert slack.violations == []


def test_another_workspace_sees_none_of_our_actions_or_gaps(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    _, point_id = posted_point(sim, slack, app_server)
    add_actions(app_server, point_id)
    home_opened(sim, team="T2")  # the same user id in another workspace
    [published] = slack.wait_for("views.publish")
    texts = sections(published)
    assert "No open actions assigned to you." in texts
    assert "No open gaps you posted, discussed or act on." in texts
    assert slack.violations == []


def test_home_counts_days_in_the_viewers_own_zone(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    """UTC+14 and UTC-11: at any hour, one of them is on another date than UTC."""
    from sop_core.models import SlackUser
    from sop_core.relative_days import days_until, local_date

    _, point_id = posted_point(sim, slack, app_server)
    sessions = get_sessionmaker(app_server.settings.database_url)
    due = datetime.now(UTC).date() + timedelta(days=2)
    zones = {"U1": "Pacific/Kiritimati", "U2": "Pacific/Pago_Pago"}
    with sessions.begin() as session:
        for user, tz in zones.items():
            session.add(SlackUser(team_id="T1", user_id=user, tz=tz))
            session.add(Action(team_id="T1", trigger_point_id=point_id, channel_id="C1",
                               creator_id=user, owner_id=user, metric_name="revenue",
                               baseline=0.0, target=1.0, expected_impact=1.0, due_date=due,
                               title=f"Relist SKUs for {user}"))
    differs = False
    for count, (user, tz) in enumerate(zones.items(), start=1):
        now = datetime.now(UTC)
        home_opened(sim, user=user)
        published = slack.wait_for("views.publish", count=count)[count - 1]
        [text] = [t for t in sections(published) if t.startswith("*Relist SKUs")]
        expected = days_until(due, local_date(now, tz))
        assert f"{due:%Y-%m-%d} · {expected}" in text or f"*{expected}*" in text, text
        differs |= expected != days_until(due, now.date())
    assert differs
