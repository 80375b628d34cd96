"""A team's month with sopgap, scripted end to end over real HTTP (signed requests into
the app, the fake Slack server, a real database on SQLite and PostgreSQL).

The story, in order:

1. Alice (U1) and Bob (U2) post the same scope in #C1, a public channel the bot has not
   joined yet: the bot joins it first, posts the gap once and updates it for Bob. Alice
   watches it.
2. Loads move the gap, then meet the plan (closed), then cross again (reopened); the
   watch pass updates the one message each time.
3. An action is created with two milestones added one at a time, then its due date is
   edited; a second action is created and cancelled with a reason.
4. Someone drills two levels down from the trigger point and posts the second level.
5. A meeting is set for a Monday a week or more ahead and the digest job runs before it
   (Friday: the Sunday digest moves to the last working day).

Then the month's results: one top-level message per gap, changed only by ``chat.update``;
statuses agree in the register, the message and the digest; the digest never adds the
overlapping scopes; every owner DM links to the card; nothing reached #C1 before the
bot joined it; and the fake Slack saw no call it would have refused.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import select

from bot.clock import run_job
from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core import formatting as fmt
from sop_core.db import session_factory
from sop_core.loading import PlanningTable
from sop_core.models import Action, Status
from sop_core.services.data import store
from tests.e2e.conftest import Running
from tests.e2e.slack_sim import SlackSim, state_value
from tests.e2e.test_action_changes import edit_values, opened_view
from tests.e2e.test_actions import (
    CREATOR,
    OWNER,
    Created,
    click,
    create_action,
    in_thread,
    open_modal,
    quiet,
    sessions_of,
    smart_values,
    stored,
    today,
)
from tests.e2e.test_digests_and_watches import sections
from tests.e2e.test_drill_down import choose, drill, private_answers
from tests.e2e.test_trigger_lifecycle import DAY, SNACKS, rows, soon
from tests.fakeslack import Call, FakeSlack
from tests.integration.test_watches import changed, forecast_up, plan_met

CHANNEL = "C1"
ALICE, BOB = "U1", "U2"
SECOND_TITLE = "Add a Snacks end-cap at Auchan EU for 4 weeks"
# A Monday at least a week after the real date (a date already past would be taken as
# that day of a later month), 10:00 in Paris; its 24 h lead falls on Sunday, so the
# digest is due on the Friday before at the same hour.
MONDAY = today() + timedelta(days=7 + (7 - today().weekday()) % 7)
MEETING = f"meeting {MONDAY.isoformat()} 10:00 tz=Europe/Paris"
FRIDAY_DIGEST = datetime.combine(MONDAY - timedelta(days=3), time(10),
                                 ZoneInfo("Europe/Paris")).astimezone(UTC)


def with_customers(table: PlanningTable) -> PlanningTable:
    """The sample data with a fourth dimension, the customer, so that a gap at
    region · category can be drilled two levels down (channel, then customer). Every row
    is split between two customers; each measure's parts add up to the original, so every
    existing scope keeps its figures, but the split differs per measure so that the
    customers' gaps differ."""
    frame = table.frame
    shares = {"Carrefour": {"plan": 0.6, "forecast": 0.5, "actual": 0.5},
              "Auchan": {"plan": 0.4, "forecast": 0.5, "actual": 0.5}}
    parts = [frame.assign(customer=name, **{m: frame[m] * share for m, share in cut.items()})
             for name, cut in shares.items()]
    rows = pd.concat(parts, ignore_index=True)
    rows["customer"] = rows["customer"].astype("category")
    return dataclasses.replace(table, frame=rows, dimensions=(*table.dimensions, "customer"),
                               rows_read=len(rows))


# ------------------------------------------------------------------------------------
# Small helpers over the fake Slack's record
# ------------------------------------------------------------------------------------

def header(call: Call) -> str:
    """The first block's text (plain-text thread lines have none)."""
    blocks = call.args.get("blocks") or [{}]
    return str(blocks[0].get("text", {}).get("text", ""))


def digest_posts(slack: FakeSlack) -> list[Call]:
    return [c for c in slack.calls_to("chat.postMessage")
            if c.ok and header(c).startswith("Pre-meeting digest")]


def to_channel(call: Call) -> bool:
    return call.args.get("channel") == CHANNEL


def gap_posts(slack: FakeSlack) -> list[Call]:
    """Top-level trigger-point messages in the channel (the digest is not a gap)."""
    return [c for c in slack.calls_to("chat.postMessage")
            if to_channel(c) and not c.args.get("thread_ts") and c.ok
            and not header(c).startswith("Pre-meeting digest")]


def updates_of(slack: FakeSlack, ts: str) -> list[Call]:
    return [c for c in slack.calls_to("chat.update") if c.args.get("ts") == ts]


def replies(slack: FakeSlack) -> list[str]:
    return [c.args.get("text", "") for c in slack.calls_to("response_url")]


def command(sim: SlackSim, slack: FakeSlack, text: str, *, user: str) -> str:
    """Run a /gap subcommand and wait for its private answer."""
    before = len(slack.calls_to("response_url"))
    sim.command(text, user=user)
    return slack.wait_for("response_url", count=before + 1, timeout=20)[before].args["text"]


def watch_pass(settings: Any, slack: FakeSlack, when: datetime, ts: str) -> Call:
    """Run the watches job; the latest chat.update of the gap's message after it."""
    before = len(updates_of(slack, ts))
    assert run_job(settings, "watches", when).failed == 0
    changes = updates_of(slack, ts)
    assert len(changes) > before, "the watch did not update the gap's message"
    return changes[-1]


def point_status(url: str, ts: str) -> str:
    return next(p.status for p in rows(url) if p.message_ts == ts)


# ------------------------------------------------------------------------------------
# The steps of the month
# ------------------------------------------------------------------------------------

def both_post_then_watch(sim: SlackSim, slack: FakeSlack, url: str) -> str:
    """Step 1: the ts of the one message the gap lives in."""
    sim.command(SNACKS, user=ALICE)
    [first] = slack.wait_for("chat.postMessage", predicate=to_channel, timeout=20)
    ts = first.response["ts"]
    soon(lambda: [p for p in rows(url) if p.message_ts == ts] or None)
    assert "*Status:* open" in json.dumps(first.args["blocks"], ensure_ascii=False)
    # Bob types the same scope differently: the same gap, refreshed in place.
    sim.command("category=snacks REGION=eu", user=BOB)
    [refresh] = slack.wait_for("chat.update", timeout=20)
    assert (refresh.args["channel"], refresh.args["ts"]) == (CHANNEL, ts)
    soon(lambda: [t for t in replies(slack) if "updated its message" in t] or None)
    assert "atch" in command(sim, slack, f"watch {SNACKS}", user=ALICE)
    return ts


def loads_move_close_and_reopen(table: PlanningTable) -> list[tuple[PlanningTable, datetime]]:
    """Step 2's loads, each with the time of the watch pass after it."""
    return [(changed(table, forecast_up(1.2)), DAY),                # moves, still open
            (changed(table, plan_met), DAY + timedelta(days=3)),    # plan met: closed
            (table, DAY + timedelta(days=5))]                       # crosses again: reopened


def create_with_two_milestones(sim: SlackSim, slack: FakeSlack, app_server: Running,
                               point_id: int, ts: str) -> Created:
    """Step 3a: the SMART modal grows by one milestone row per click (views.update)."""
    open_modal(sim, slack, point_id, ts)
    view = opened_view(slack, len(slack.calls_to("views.open")))
    for count in (1, 2):
        before = len(slack.calls_to("views.update"))
        sim.block_action({"action_id": ActionId.ADD_MILESTONE, "value": str(count - 1),
                          "block_id": BlockId.ADD_MILESTONE}, view=view, user=CREATOR)
        grown = slack.wait_for("views.update", count=before + 1, timeout=20)[before]
        assert grown.args["view_id"] == view["id"]
        view = grown.response["view"]
        names = [b["block_id"] for b in view["blocks"]
                 if b.get("block_id", "").startswith("milestone_name_")]
        assert names == [BlockId.MILESTONE_NAME.format(i) for i in range(count)]
    cards = len([c for c in slack.calls_to("chat.postMessage") if in_thread(ts)(c)])
    reply = sim.view_submission(view, smart_values(), user=CREATOR)
    assert reply.status == 200 and not reply.body, reply.body
    card = slack.wait_for("chat.postMessage", count=cards + 1, predicate=in_thread(ts),
                          timeout=20)[cards]

    def created() -> int | None:
        with sessions_of(app_server)() as session:
            return session.scalar(select(Action.id).where(Action.card_ts == card.response["ts"]))

    return Created(soon(created), ts, card)


def edit_due_date(sim: SlackSim, slack: FakeSlack, created: Created) -> None:
    """Step 3b: the owner moves the due date; the rest is submitted unchanged."""
    opened = len(slack.calls_to("views.open"))
    click(sim, created, ActionId.ACTION_EDIT, user=OWNER)
    view = opened_view(slack, opened + 1)
    assert view["callback_id"] == CallbackId.EDIT_ACTION
    later = (today() + timedelta(days=45)).isoformat()
    reply = sim.view_submission(view, edit_values(**{
        BlockId.DUE_DATE: state_value("datepicker", later)}), user=OWNER)
    assert reply.status == 200 and not reply.body, reply.body


def cancel(sim: SlackSim, slack: FakeSlack, created: Created, reason: str) -> None:
    """Step 3c: "not doing", with a reason."""
    opened = len(slack.calls_to("views.open"))
    click(sim, created, ActionId.ACTION_CANCEL, user=CREATOR)
    view = opened_view(slack, opened + 1)
    assert view["callback_id"] == CallbackId.CANCEL_ACTION
    reply = sim.view_submission(view, {BlockId.CANCEL_REASON: {
        INPUT: state_value("plain_text_input", reason)}}, user=CREATOR)
    assert reply.status == 200 and not reply.body, reply.body


def drill_two_levels_and_post(sim: SlackSim, slack: FakeSlack, gap_message: Call) -> Call:
    """Step 4: from the trigger point's own drill select, two levels, then post."""
    seen = len(private_answers(slack))
    level_zero = drill(gap_message.args["blocks"])
    assert level_zero is not None
    choose(sim, level_zero, level_zero["elements"][0]["options"][0]["value"])
    first = soon(lambda: private_answers(slack)[seen:] or None)[0]
    level_one = drill(first["blocks"])
    assert level_one is not None
    choose(sim, level_one, level_one["elements"][0]["options"][0]["value"])
    second = soon(lambda: private_answers(slack)[seen + 1:] or None)[0]
    assert second["response_type"] == "ephemeral"
    # region, category and the two levels drilled
    assert header_text(second).count("=") == 4, header_text(second)
    [post_button] = [e for b in second["blocks"] if b["type"] == "actions"
                     for e in b["elements"] if e["action_id"] == ActionId.POST_TO_CHANNEL]
    before = len(gap_posts(slack))
    sim.button(ActionId.POST_TO_CHANNEL, post_button["value"], user=BOB)
    posted = soon(lambda: gap_posts(slack)[before:] or None)[0]
    assert header(posted) == header_text(second)
    return posted


def header_text(answer: dict[str, Any]) -> str:
    return str(answer["blocks"][0]["text"]["text"])


# ------------------------------------------------------------------------------------
# The month
# ------------------------------------------------------------------------------------

def test_a_team_month(sim: SlackSim, slack: FakeSlack, app_server: Running,
                      sample_table: PlanningTable) -> None:
    settings, url = app_server.settings, app_server.settings.database_url
    slack.add_channel(CHANNEL, bot_member=False)  # public, not joined: the bot must join
    sessions = session_factory(url)
    month = with_customers(sample_table)  # the sample data, one level deeper
    store(sessions, month)  # the first load (in place of the ``loaded`` fixture's)

    # 1. Two people post the same scope; one watches it.
    ts = both_post_then_watch(sim, slack, url)
    [snacks] = [p for p in rows(url) if p.message_ts == ts]

    # 2. Loads move the gap, close it, reopen it; each time the watch updates in place.
    expected = ["", "(closed)", "(reopened)"]
    for (table, when), suffix in zip(loads_move_close_and_reopen(month),
                                     expected, strict=True):
        store(sessions, table)
        latest = watch_pass(settings, slack, when, ts)
        assert header(latest).endswith(suffix) if suffix else "(" not in header(latest)
    assert point_status(url, ts) == "reopened"
    notes = [c.args["text"] for c in slack.calls_to("chat.postMessage") if in_thread(ts)(c)]
    assert any(n.startswith("The gap moved from -12.5% to -7.4%") for n in notes)
    assert any("The gap is closed" in n for n in notes)

    # 3. One action with two milestones, then its due date edited; a second one cancelled.
    first = create_with_two_milestones(sim, slack, app_server, snacks.id, ts)
    assert len(stored(app_server, first.id).milestones) == 2
    edit_due_date(sim, slack, first)
    soon(lambda: stored(app_server, first.id).due_date == today() + timedelta(days=45))
    # The second action brings the open actions' expected impact to |gap| (350K + 150K
    # against 464K): the gap is covered, and its message says so.
    second = create_action(sim, slack, app_server, **{
        BlockId.TITLE: state_value("plain_text_input", SECOND_TITLE),
        BlockId.EXPECTED_IMPACT: state_value("plain_text_input", "150K")})
    assert second.point_ts == ts  # the same living gap, no second post
    covered = soon(lambda: [c for c in updates_of(slack, ts)
                            if header(c).endswith("(covered by actions)")] or None)
    assert point_status(url, ts) == "covered" and len(covered) == 1
    # Cancelled ("not doing"): it drops out of the coverage, the gap is open again.
    cancel(sim, slack, second, "Auchan froze end-caps until Q2")
    soon(lambda: stored(app_server, second.id).status == Status.CANCELLED)
    soon(lambda: header(updates_of(slack, ts)[-1]).endswith(": region=EU · category=Snacks"))
    assert point_status(url, ts) == "open"

    # 4. Drill two levels down from the gap's message and post the second level.
    [gap_message] = [c for c in gap_posts(slack) if c.response["ts"] == ts]
    drilled = drill_two_levels_and_post(sim, slack, gap_message)
    drilled_ts = drilled.response["ts"]
    soon(lambda: [p for p in rows(url) if p.message_ts == drilled_ts] or None)

    # 5. A meeting on Monday; the digest goes out on the Friday before.
    assert f"{MONDAY.day} {MONDAY:%b}" in command(sim, slack, MEETING, user=ALICE)
    quiet()
    assert run_job(settings, "digests", FRIDAY_DIGEST - timedelta(days=1)).sent == 0
    assert run_job(settings, "digests", FRIDAY_DIGEST).sent == 1
    [digest] = digest_posts(slack)
    assert f"Mon {MONDAY.day} {MONDAY:%b}" in header(digest)

    # ---- The month's results -------------------------------------------------------
    quiet()
    # One top-level message per gap and channel: the living one and the drilled one.
    posts = gap_posts(slack)
    assert [p.response["ts"] for p in posts] == [ts, drilled_ts]
    assert len({header(p) for p in posts}) == 2
    # Every later change of a channel message went through chat.update on one of them
    # (or on an action card in the gap's thread).
    cards = {first.card_ts, second.card_ts}
    edited = {c.args["ts"] for c in slack.calls_to("chat.update") if to_channel(c)}
    assert ts in edited and edited <= {ts, drilled_ts} | cards
    register = {p.message_ts: p for p in rows(url)}
    assert set(register) >= {ts, drilled_ts}
    assert len([p for p in rows(url) if p.scope_key == snacks.scope_key]) == 1

    # Statuses agree: the register, the message's header, the digest's line.
    assert register[ts].status == "open"  # reopened, covered, then the cover cancelled
    assert header(updates_of(slack, ts)[-1]).endswith(": region=EU · category=Snacks")
    gaps_section = next(t for t in sections(digest) if t.startswith("*Open gaps"))
    [snacks_line] = [line for line in gaps_section.splitlines()
                     if line.startswith("• *region=EU · category=Snacks* ·")]
    assert not any(label in snacks_line for label in ("reopened", "closed", "covered by actions"))
    assert register[drilled_ts].status == "open"
    # The cancelled action does not count; the edited one does.
    assert "covered by 1 open action" in snacks_line

    # The coverage total never adds EU·Snacks and its own drilled sub-scope.
    [coverage] = [t for t in sections(digest) if t.startswith("*Coverage by actions*")]
    assert "1 open gap whose scopes do not overlap; not added:" in coverage
    counted, nested = abs(register[ts].gap), abs(register[drilled_ts].gap)
    assert f"|gap| {fmt.amount(counted)})" in coverage  # EU·Snacks alone...
    assert fmt.amount(counted + nested) not in coverage  # ...never the two added
    drilled_scope = header(drilled).split(": ", 1)[1]
    assert coverage.split("not added: ", 1)[1].startswith(drilled_scope)

    # Every DM to an owner links to the action's card (a chat.getPermalink answer).
    links = {c.response["permalink"] for c in slack.calls_to("chat.getPermalink") if c.ok}
    owner_dms = [c for c in slack.calls_to("chat.postMessage")
                 if c.args.get("channel") == OWNER and c.ok]
    assert owner_dms, "the owner was never told"
    for dm in owner_dms:
        assert any(link in dm.args["text"] for link in links), dm.args["text"]

    # Nothing reached the channel before the bot joined it.
    calls = slack.calls
    joined = next(i for i, c in enumerate(calls)
                  if c.method == "conversations.join" and to_channel(c) and c.ok)
    reached = next(i for i, c in enumerate(calls)
                   if c.method in ("chat.postMessage", "chat.update") and to_channel(c))
    assert joined < reached
    assert not [c for c in calls if to_channel(c) and c.response.get("error") == "not_in_channel"]
    assert slack.violations == []
