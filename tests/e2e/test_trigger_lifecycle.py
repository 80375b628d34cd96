"""A month of one gap in one channel, over real HTTP: two people post the same scope and
watch it, loads move the gap, close it and reopen it. One top-level message per gap and
channel, updated in place; the register has one row; statuses are right everywhere."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.clock import run_job
from sop_core.db import get_sessionmaker, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import TriggerPoint
from sop_core.services.data import store
from tests.e2e.conftest import Running
from tests.e2e.slack_sim import SlackSim
from tests.e2e.waiting import eventually as _eventually
from tests.fakeslack import FakeSlack
from tests.fakeslack.server import Call
from tests.integration.test_watches import changed, plan_met

SNACKS = "region=EU category=Snacks"
DAY = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def soon(check: Any) -> Any:
    """``eventually`` with room for a busy machine (two cores, many test runs)."""
    return _eventually(check, timeout=20)


def top_level_posts(slack: FakeSlack, channel: str = "C1") -> list[Call]:
    return [c for c in slack.calls_to("chat.postMessage")
            if c.args["channel"] == channel and not c.args.get("thread_ts")]


def thread_lines(slack: FakeSlack, ts: str) -> list[str]:
    return [c.args["text"] for c in slack.calls_to("chat.postMessage")
            if c.args.get("thread_ts") == ts]


def rows(url: str) -> list[TriggerPoint]:
    with get_sessionmaker(url)() as session:
        return list(session.scalars(select(TriggerPoint).order_by(TriggerPoint.id)))


def test_a_month_of_one_gap(sim: SlackSim, slack: FakeSlack, app_server: Running,
                            sample_table: PlanningTable, loaded: int) -> None:
    url = app_server.settings.database_url
    settings = app_server.settings

    # Alice posts the gap: it crosses the rule, so it goes to the channel.
    sim.command(SNACKS, user="U1")
    [first] = slack.wait_for("chat.postMessage", timeout=20)
    ts = first.response["ts"]
    [point] = soon(lambda: [p for p in rows(url) if p.message_ts] or None)
    assert (point.status, point.message_ts) == ("open", ts)
    assert "*Status:* open" in json.dumps(first.args["blocks"], ensure_ascii=False)

    # Bob asks for the same scope (typed differently): updated in place, a line in the
    # thread, and only Bob is told, with a link. No second post, no second row.
    sim.command("category=snacks REGION=eu", user="U2")
    [update] = slack.wait_for("chat.update", timeout=20)
    assert (update.args["channel"], update.args["ts"]) == ("C1", ts)
    [told] = slack.wait_for("chat.getPermalink", timeout=20)
    assert told.args["message_ts"] == ts
    [note] = soon(lambda: thread_lines(slack, ts) or None)
    assert note.startswith("refreshed: gap unchanged at")
    private = soon(lambda: [c for c in slack.calls_to("response_url")
                                  if "updated its message" in c.args.get("text", "")] or None)
    assert private[0].args["response_type"] == "ephemeral"
    assert told.response["permalink"] in private[0].args["text"]
    assert len(top_level_posts(slack)) == 1 and len(rows(url)) == 1

    # A scope within the rule is answered privately, with "Post to channel".
    sim.command("region=EU", user="U2")
    explore = soon(lambda: [c for c in slack.calls_to("response_url")
                                  if c.args.get("blocks")] or None)[0]
    assert explore.args["response_type"] == "ephemeral"
    assert "Within the trigger rule" in json.dumps(explore.args["blocks"], ensure_ascii=False)
    [button] = [e for b in explore.args["blocks"] if b["type"] == "actions"
                for e in b["elements"] if e["type"] == "button"]
    assert (button["action_id"], button["value"]) == ("gap_post_to_channel", "region=EU")
    assert len(top_level_posts(slack)) == 1
    # ...and posted deliberately, once, with the button (or `post`).
    sim.button("gap_post_to_channel", "region=EU", user="U2")
    soon(lambda: len(top_level_posts(slack)) == 2 or None)
    sim.command("region=EU post", user="U1")
    soon(lambda: len(slack.calls_to("chat.update")) == 2 or None)
    assert len(top_level_posts(slack)) == 2 and len(rows(url)) == 2

    # Both watch it (Bob by channel): the watch finds the gap's message and posts it
    # no second time; only the channel members' own gaps that cross are new.
    sim.command(f"watch {SNACKS}", user="U1")
    soon(lambda: [c for c in slack.calls_to("response_url")
                        if "atch" in c.args.get("text", "")] or None)
    sim.command(f"watch {SNACKS} by=channel", user="U2")
    soon(lambda: len([c for c in slack.calls_to("response_url")
                            if "atch" in c.args.get("text", "")]) >= 2 or None)
    run_job(settings, "watches", DAY)
    run_job(settings, "watches", DAY + timedelta(minutes=1))
    headers = [c.args["blocks"][0]["text"]["text"] for c in top_level_posts(slack)]
    assert len(headers) == len(set(headers))
    assert sum(h.endswith(": region=EU · category=Snacks") for h in headers) == 1

    # A load meets the plan: back within the rule, closed in place, a line in the thread.
    sessions = session_factory(url)
    store(sessions, changed(sample_table, plan_met))
    slack.reset()
    assert run_job(settings, "watches", DAY + timedelta(days=7)).failed == 0
    closing = [c for c in slack.calls_to("chat.update") if c.args["ts"] == ts]
    assert closing and "(closed)" in closing[-1].args["blocks"][0]["text"]["text"]
    assert any("The gap is closed" in line for line in thread_lines(slack, ts))
    snacks = next(p for p in rows(url) if p.message_ts == ts)
    assert (snacks.status, snacks.status_changed_at) == ("closed", DAY + timedelta(days=7))

    # The next load crosses again: reopened, in place.
    store(sessions, sample_table)
    slack.reset()
    run_job(settings, "watches", DAY + timedelta(days=14))
    reopening = [c for c in slack.calls_to("chat.update") if c.args["ts"] == ts]
    assert reopening and "(reopened)" in reopening[-1].args["blocks"][0]["text"]["text"]
    assert not [c for c in top_level_posts(slack)
                if c.args["blocks"][0]["text"]["text"].endswith(": region=EU · category=Snacks")]
    snacks = next(p for p in rows(url) if p.message_ts == ts)
    assert snacks.status == "reopened"

    # A lead closes it with a reason: the message says closed, the thread says why.
    slack.reset()
    sim.command(f"close {SNACKS}", user="U2")
    [refused] = slack.wait_for("response_url", timeout=20)
    assert "say why" in refused.args["text"]
    # Once the channel has leads, only they (or an admin) may close it.
    sim.command("leads <@U3|carol>", user="U3")
    slack.wait_for("response_url", count=2, timeout=20)
    sim.command(f"close {SNACKS} reason: not ours", user="U2")
    told = slack.wait_for("response_url", count=3, timeout=20)[2]
    assert "Only this channel's leads" in told.args["text"]
    sim.command(f"close {SNACKS} reason: the <!channel> promo moved to January", user="U3")
    [closed] = slack.wait_for("chat.update", timeout=20)
    assert closed.args["ts"] == ts and "(closed)" in closed.args["blocks"][0]["text"]["text"]
    [line] = soon(lambda: thread_lines(slack, ts) or None)
    assert line == "Closed by <@U3>: the &lt;!channel&gt; promo moved to January"
    snacks = next(p for p in rows(url) if p.message_ts == ts)
    assert (snacks.status, snacks.closed_by) == ("closed", "U3")
    assert snacks.closed_reason == "the <!channel> promo moved to January"

    # Over the whole month: one row per gap, each with its one message.
    by_gap = [(p.scope_key, p.live_key is not None, p.message_ts is not None) for p in rows(url)]
    assert len(by_gap) == len({k for k, _, _ in by_gap}) >= 2
    assert all(live and posted for _, live, posted in by_gap)
    assert slack.violations == []
