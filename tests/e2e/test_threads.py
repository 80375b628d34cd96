"""The root-cause thread over signed HTTP: prompt, replies, categories, summary, confirmation."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core.db import get_sessionmaker
from sop_core.models import RootCauseNote, TriggerPoint
from sop_core.services.root_causes import QUESTIONS
from tests.e2e.conftest import Running
from tests.e2e.slack_sim import SlackSim, state_value
from tests.e2e.waiting import eventually
from tests.fakeslack import Call, FakeSlack


def posted_point(sim: SlackSim, slack: FakeSlack, app_server: Running) -> tuple[str, int]:
    """Post a trigger point; its message ts and id once the app has recorded both."""
    sim.command("region=EU category=Snacks")
    [post] = slack.wait_for("chat.postMessage")
    ts = post.response["ts"]
    [point_id] = {int(e["value"]) for b in post.args["blocks"] if b["type"] == "actions"
                  for e in b["elements"] if e["action_id"] == ActionId.DISCUSS}
    sessions = get_sessionmaker(app_server.settings.database_url)

    def attached() -> bool:
        with sessions() as session:
            point = session.get(TriggerPoint, point_id)
            return point is not None and point.message_ts == ts

    eventually(attached)
    return ts, point_id


def sessions_of(app_server: Running) -> sessionmaker[Session]:
    return get_sessionmaker(app_server.settings.database_url)


def notes(app_server: Running) -> list[tuple[str, str, str, str | None]]:
    with sessions_of(app_server)() as session:
        return [(n.user_id, n.message_ts, n.text, n.category) for n in session.scalars(
            select(RootCauseNote).order_by(RootCauseNote.id))]


def replies(app_server: Running) -> list[tuple[str, str, str, str | None]]:
    return [n for n in notes(app_server) if n[1][0].isdigit()]


def in_thread(ts: str) -> Any:
    return lambda call: call.args.get("thread_ts") == ts


def text_of(call: Call) -> str:
    return json.dumps(call.args.get("blocks", []), ensure_ascii=False)


def ephemeral_texts(slack: FakeSlack) -> list[str]:
    return [c.args.get("text", "") for c in slack.calls_to("response_url")]


def test_discuss_posts_the_three_questions_in_the_thread_once(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    ts, point_id = posted_point(sim, slack, app_server)
    reply = sim.button(ActionId.DISCUSS, str(point_id), message_ts=ts)
    assert reply.status == 200 and reply.elapsed < 3.0
    [prompt] = slack.wait_for("chat.postMessage", predicate=in_thread(ts))
    assert prompt.args["channel"] == "C1" and prompt.team_id == "T1"
    text = text_of(prompt)
    for question in QUESTIONS:
        assert question in text
    elements = {e["action_id"]: e for b in prompt.args["blocks"]
                for e in b.get("elements", []) + ([b["accessory"]] if "accessory" in b else [])}
    assert elements[ActionId.ROOT_CAUSE_CATEGORY]["type"] == "static_select"
    assert len(elements[ActionId.ROOT_CAUSE_CATEGORY]["options"]) == 12
    for button in (ActionId.SUMMARIZE, ActionId.CONFIRM_ROOT_CAUSE, ActionId.CREATE_ACTION):
        assert elements[button]["value"] == str(point_id)

    sim.button(ActionId.DISCUSS, str(point_id), message_ts=ts, user="U2")
    [told] = slack.wait_for("response_url")
    assert told.args["response_type"] == "ephemeral"
    assert "already open in this gap's thread" in told.args["text"]
    time.sleep(0.2)
    assert len(slack.calls_to("chat.postMessage")) == 2  # the trigger point and one prompt
    assert slack.violations == []


def test_thread_replies_are_recorded_once_with_their_author(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    ts, _ = posted_point(sim, slack, app_server)
    # Not recorded: bot messages, edits and deletions, messages outside a trigger thread.
    sim.event({"type": "message", "subtype": "bot_message", "bot_id": "B9", "text": "beep",
               "channel": "C1", "ts": "1700000100.000001", "thread_ts": ts})
    sim.event({"type": "message", "user": "U5", "bot_id": "B9", "text": "app reply",
               "channel": "C1", "ts": "1700000100.000002", "thread_ts": ts})
    sim.event({"type": "message", "subtype": "message_changed", "channel": "C1",
               "ts": "1700000100.000003", "hidden": True,
               "message": {"user": "U2", "text": "edited", "ts": "1700000100.000009",
                           "thread_ts": ts}})
    sim.event({"type": "message", "subtype": "message_deleted", "channel": "C1",
               "ts": "1700000100.000004", "hidden": True, "deleted_ts": "1700000100.000009"})
    sim.thread_reply("another thread", thread_ts="1690000000.000001", user="U2")
    sim.thread_reply("other channel", thread_ts=ts, channel="C2", user="U2")
    sim.event({"type": "message", "user": "U2", "text": "top level", "channel": "C1",
               "ts": "1700000100.000005", "channel_type": "channel"})

    first = sim.thread_reply("E-commerce demand &lt;is&gt; soft &amp; <!channel>",
                             thread_ts=ts, user="U2", ts="1700000200.000001",
                             event_id="EvREPLY1")
    assert first.status == 200 and first.elapsed < 3.0
    again = sim.thread_reply("E-commerce demand &lt;is&gt; soft &amp; <!channel>",
                             thread_ts=ts, user="U2", ts="1700000200.000001",
                             event_id="EvREPLY1", retry_num=1)
    assert again.status == 200
    sim.event({"type": "message", "subtype": "thread_broadcast", "user": "U3",
               "text": "Promo moved to Q1", "channel": "C1", "ts": "1700000200.000002",
               "thread_ts": ts})  # a reply also sent to the channel

    eventually(lambda: len(replies(app_server)) >= 2)
    time.sleep(0.3)  # let the redelivery and the ignored events finish too
    assert sorted(replies(app_server)) == [
        ("U2", "1700000200.000001", "E-commerce demand <is> soft & <!channel>", None),
        ("U3", "1700000200.000002", "Promo moved to Q1", None),
    ]
    assert slack.violations == []


def test_another_workspace_can_neither_reply_into_nor_act_on_our_gap(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    ts, point_id = posted_point(sim, slack, app_server)
    sim.thread_reply("from T2", thread_ts=ts, team="T2", user="U7", ts="1700000300.000001")
    for action_id in (ActionId.DISCUSS, ActionId.SUMMARIZE, ActionId.CONFIRM_ROOT_CAUSE):
        sim.button(action_id, str(point_id), team="T2", user="U7", message_ts=ts)
    sim.select(ActionId.ROOT_CAUSE_CATEGORY, f"{point_id}:demand", team="T2", user="U7")
    sim.button(ActionId.SUMMARIZE, "not-a-number", message_ts=ts)
    sim.button(ActionId.DISCUSS, "99999999999", message_ts=ts)
    told = slack.wait_for("response_url", count=6)
    assert all("can't find that gap in this workspace" in c.args["text"] for c in told)
    assert all(c.args["response_type"] == "ephemeral" for c in told)
    time.sleep(0.2)
    assert notes(app_server) == []
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert slack.calls_to("views.open") == []
    assert slack.violations == []


def test_a_category_choice_is_recorded_and_can_change(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    ts, point_id = posted_point(sim, slack, app_server)
    sim.select(ActionId.ROOT_CAUSE_CATEGORY, f"{point_id}:demand", user="U2", message_ts="9.9",
               thread_ts=ts)
    [told] = slack.wait_for("response_url")
    assert told.args["text"].startswith("Noted: you see *Demand* as the main root cause")
    sim.select(ActionId.ROOT_CAUSE_CATEGORY, f"{point_id}:supply_constraint", user="U2")
    slack.wait_for("response_url", count=2)
    sim.select(ActionId.ROOT_CAUSE_CATEGORY, f"{point_id}:weather", user="U2")
    told = slack.wait_for("response_url", count=3)[-1]
    assert "“weather” is not a root-cause category" in told.args["text"]
    assert notes(app_server) == [("U2", "category:U2", "Supply constraint", "supply_constraint")]
    assert slack.violations == []


def test_summarize_posts_causes_by_category_and_contributor(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    ts, point_id = posted_point(sim, slack, app_server)
    sim.thread_reply("E-commerce demand is soft", thread_ts=ts, user="U2",
                     ts="1700000400.000001")
    sim.thread_reply("Competitor cut prices in DE", thread_ts=ts, user="U2",
                     ts="1700000400.000002")
    sim.thread_reply("<!channel> promo moved to Q1 " + "blah " * 200, thread_ts=ts, user="U3",
                     ts="1700000400.000003")
    sim.select(ActionId.ROOT_CAUSE_CATEGORY, f"{point_id}:demand", user="U2")
    sim.select(ActionId.ROOT_CAUSE_CATEGORY, f"{point_id}:demand", user="U4")
    sim.select(ActionId.ROOT_CAUSE_CATEGORY, f"{point_id}:promotion", user="U3")
    eventually(lambda: len(notes(app_server)) == 6)

    sim.button(ActionId.SUMMARIZE, str(point_id), message_ts=ts)
    [summary] = slack.wait_for("chat.postMessage", predicate=in_thread(ts))
    sections = [b["text"]["text"] for b in summary.args["blocks"] if b["type"] == "section"]
    assert "3 replies from 3 people" in sections[0]
    assert sections[1] == ("*By category*\n• *Demand*: 2 votes (<@U2>, <@U4>)\n"
                           "• *Promotion*: 1 vote (<@U3>)")
    assert sections[3] == ("<@U2> · 2 points · chose _Demand_\n• “E-commerce demand is soft”\n"
                           "• “Competitor cut prices in DE”")
    assert sections[4].startswith("<@U3> · 1 point · chose _Promotion_\n"
                                  "• “&lt;!channel&gt; promo moved to Q1 blah")
    assert sections[4].endswith("…”")
    assert sections[5] == "<@U4> · 0 points · chose _Demand_"
    assert "<!channel>" not in text_of(summary)
    assert slack.violations == []


def test_confirm_root_cause_opens_a_prefilled_modal_and_stores_the_answer(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    ts, point_id = posted_point(sim, slack, app_server)
    sim.thread_reply("Promo moved to Q1", thread_ts=ts, user="U2", ts="1700000500.000001")
    sim.select(ActionId.ROOT_CAUSE_CATEGORY, f"{point_id}:promotion", user="U2")
    eventually(lambda: len(notes(app_server)) == 2)

    reply = sim.button(ActionId.CONFIRM_ROOT_CAUSE, str(point_id), message_ts=ts)
    assert reply.elapsed < 3.0
    [opened] = slack.wait_for("views.open")
    view = opened.args["view"]
    assert view["callback_id"] == CallbackId.CONFIRM_ROOT_CAUSE
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs[BlockId.ROOT_CAUSE_CATEGORY]["initial_option"]["value"] == "promotion"
    assert "Promo moved to Q1" in inputs[BlockId.ROOT_CAUSE_SUMMARY]["initial_value"]

    def values(category: str | None, summary: str) -> dict[str, dict[str, Any]]:
        return {BlockId.ROOT_CAUSE_CATEGORY: {INPUT: state_value("static_select", category)},
                BlockId.ROOT_CAUSE_SUMMARY: {INPUT: state_value("plain_text_input", summary)}}

    refused = sim.view_submission(view, values(None, "   "))
    assert refused.json() == {"response_action": "errors", "errors": {
        BlockId.ROOT_CAUSE_CATEGORY: "Choose the category that best fits.",
        BlockId.ROOT_CAUSE_SUMMARY: "Write what is driving the gap, in a sentence or two."}}
    elsewhere = sim.view_submission(view, values("promotion", "x"), team="T2", user="U7")
    assert elsewhere.json()["errors"] == {
        BlockId.ROOT_CAUSE_SUMMARY: "I can't find that gap in this workspace: it may have "
                                    "been removed."}

    done = sim.view_submission(view, values("promotion", "Promo <moved> to Q1 & <!here>"),
                               user="U3")
    assert done.status == 200 and not done.body
    [note] = slack.wait_for("chat.postMessage", predicate=lambda c: in_thread(ts)(c)
                            and "Root cause confirmed" in text_of(c))
    text = note.args["blocks"][0]["text"]["text"]
    assert text == (":white_check_mark: *Root cause confirmed* by <@U3>: *Promotion*\n"
                    "> Promo &lt;moved&gt; to Q1 &amp; &lt;!here&gt;")
    with sessions_of(app_server)() as session:
        point = session.get(TriggerPoint, point_id)
        assert point is not None
        assert (point.root_cause_category, point.root_cause_summary,
                point.root_cause_confirmed_by) == ("promotion",
                                                   "Promo <moved> to Q1 & <!here>", "U3")
        assert point.root_cause_confirmed_at is not None
    assert slack.violations == []
