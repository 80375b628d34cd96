"""The root-cause thread: summary maths and the Block Kit builders (limits, escaping)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.blocks.thread import (
    confirm_modal,
    confirmed_blocks,
    prompt_blocks,
    prompt_text,
    quote,
    read_metadata,
    summary_blocks,
)
from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core.services.root_causes import (
    CATEGORIES,
    QUESTIONS,
    PointInfo,
    UnknownCategory,
    build_summary,
    check_category,
    draft,
)

BASE = PointInfo(
    id=7, team_id="T1", channel_id="C1", message_ts="1700000000.000100",
    scope={"region": ["EU"], "category": ["Snacks"]}, metric="revenue", horizon="fy",
    gap=-462_000.0, gap_pct=-12.5, root_cause_category=None, root_cause_summary=None,
    confirmed_by=None, confirmed_at=None)


def point(**changes: Any) -> PointInfo:
    return dataclasses.replace(BASE, **changes)


def rendered(blocks: list[Block]) -> list[dict]:
    """``to_dict()`` validates Slack's limits: it raises on any breach."""
    return [block.to_dict() for block in blocks]


def all_text(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def reply(user: str, n: int, text: str) -> tuple[str, str, str, None]:
    return (user, f"1700000100.{n:06d}", text, None)


def vote(user: str, category: str) -> tuple[str, str, str, str]:
    return (user, f"category:{user}", category, category)


# ------------------------------------------------------------------------------ summary

def test_summary_counts_votes_and_groups_points_by_contributor() -> None:
    notes = [
        ("U1", "prompt", "", None),  # the reserved prompt row is not a point
        reply("U2", 1, "E-commerce demand is soft"),
        reply("U3", 2, "Promo moved to Q1"),
        reply("U2", 3, "Competitor price cut in DE"),
        vote("U2", "demand"), vote("U3", "promotion"), vote("U4", "demand"),
        reply("U3", 4, "   "),  # blank: nothing said
    ]
    summary = build_summary(point(), notes)
    assert [(v.category, v.voters) for v in summary.votes] == [
        ("demand", ("U2", "U4")), ("promotion", ("U3",))]
    assert summary.leading_category == "demand"
    assert summary.replies == 3
    assert [(c.user_id, c.points, c.category) for c in summary.contributors] == [
        ("U2", ("E-commerce demand is soft", "Competitor price cut in DE"), "demand"),
        ("U3", ("Promo moved to Q1",), "promotion"),
        ("U4", (), "demand"),
    ]


def test_replies_are_summarized_in_the_order_they_were_posted() -> None:
    # Events are handled concurrently, so rows may be stored out of order.
    notes = [reply("U3", 20, "third"), ("U2", "1700000099.9", "first", None),
             reply("U2", 30, "fourth"), reply("U3", 10, "second"), vote("U4", "mix")]
    summary = build_summary(point(), notes)
    assert [(c.user_id, c.points) for c in summary.contributors] == [
        ("U2", ("first", "fourth")), ("U3", ("second", "third")), ("U4", ())]


def test_a_tie_goes_to_the_earlier_category_and_nothing_said_is_empty() -> None:
    summary = build_summary(point(), [vote("U1", "price"), vote("U2", "demand")])
    assert summary.leading_category == "demand"
    assert build_summary(point(), [("U1", "prompt", "", None)]).empty


def test_categories_are_the_issue_list() -> None:
    assert list(CATEGORIES.values()) == [
        "Demand", "Price", "Mix", "Promotion", "Competition", "Supply constraint",
        "New product / timing", "Execution", "Forecast bias / overrides", "Data quality",
        "External", "Other"]
    assert all(len(key) <= 50 for key in CATEGORIES)  # the column's size
    assert check_category("mix") == "mix"
    with pytest.raises(UnknownCategory):
        check_category("weather")


def test_draft_is_plain_text_within_the_modal_limit() -> None:
    notes = [reply("U2", n, "word " * 200) for n in range(10)] + [vote("U2", "mix")]
    text = draft(build_summary(point(), notes))
    assert text.startswith("Causes chosen: Mix (1).\nPoints raised:\n- word word")
    assert len(text) <= 3000 and text.endswith("…")


# ------------------------------------------------------------------------------ builders

def test_prompt_has_the_three_questions_the_categories_and_the_buttons() -> None:
    blocks = rendered(prompt_blocks(point()))
    text = all_text(blocks)
    for question in QUESTIONS:
        assert question in text
    select = blocks[2]["accessory"]
    assert select["action_id"] == ActionId.ROOT_CAUSE_CATEGORY
    assert [o["text"]["text"] for o in select["options"]] == list(CATEGORIES.values())
    assert select["options"][0]["value"] == "7:demand"
    buttons = [(e["action_id"], e["value"]) for e in blocks[3]["elements"]]
    assert buttons == [(ActionId.SUMMARIZE, "7"), (ActionId.CONFIRM_ROOT_CAUSE, "7"),
                       (ActionId.CREATE_ACTION, "7")]


def test_dimension_values_are_escaped_everywhere() -> None:
    nasty = point(scope={"customer": ["<!channel> & <https://evil|Bank>"]},
                  metric="<!here>")
    summary = build_summary(nasty, [reply("U2", 1, "ok")])
    for blocks in (prompt_blocks(nasty), summary_blocks(summary), confirmed_blocks(
            point(scope=nasty.scope, root_cause_category="demand", confirmed_by="U1",
                  root_cause_summary="<!channel> go"))):
        text = all_text(rendered(blocks))
        assert "<!channel>" not in text and "<!here>" not in text and "<https" not in text
        assert "&lt;!channel&gt;" in text
    assert "<!channel>" not in prompt_text(nasty) and "&amp;" in prompt_text(nasty)
    modal = confirm_modal(summary).to_dict()
    assert "<!channel>" not in all_text(modal["blocks"])


def test_reply_text_is_escaped_but_mentions_of_people_show() -> None:
    summary = build_summary(point(), [
        reply("U2", 1, "<!channel> look: <https://evil.example|your bank> & ask <@U3>")])
    text = all_text(rendered(summary_blocks(summary)))
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; look: &lt;https://evil.example|your bank&gt; &amp; ask <@U3>" in text
    assert quote("<@U3|bob> and <@not-an-id>") == "<@U3> and &lt;@not-an-id&gt;"


def test_long_content_is_cut_to_slacks_limits() -> None:
    many = [reply(f"U{n:03d}", n * 10 + k, "x" * 5000 + " & <b>")
            for n in range(40) for k in range(5)]
    votes = [vote(f"U{n:03d}", key) for n, key in zip(range(40), list(CATEGORIES) * 4,
                                                       strict=False)]
    summary = build_summary(point(scope={"region": ["R" * 5000]}), many + votes)
    blocks = rendered(summary_blocks(summary))
    assert len(blocks) <= 50
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)
    text = all_text(blocks)
    assert "…and 30 more contributors" in text
    assert "…and 2 more" in text  # points left out for a contributor
    rendered(prompt_blocks(summary.point))
    modal = confirm_modal(summary).to_dict()  # validates title, blocks and input limits
    [summary_input] = [b for b in modal["blocks"] if b.get("block_id") == "root_cause_summary"]
    assert len(summary_input["element"]["initial_value"]) <= 3000
    confirmed = point(root_cause_category="other", root_cause_summary="<&>" * 4000,
                      confirmed_by="U1")
    assert all(len(b.get("text", {}).get("text", "")) <= 3000
               for b in rendered(confirmed_blocks(confirmed)))


def test_summary_without_replies_says_so() -> None:
    text = all_text(rendered(summary_blocks(build_summary(point(), []))))
    assert "Nothing captured yet" in text and "0 replies from 0 people" in text


def test_confirm_modal_is_prefilled_and_carries_only_the_point_id() -> None:
    summary = build_summary(point(), [reply("U2", 1, "Promo moved"), vote("U2", "promotion")])
    modal = confirm_modal(summary).to_dict()
    assert modal["callback_id"] == CallbackId.CONFIRM_ROOT_CAUSE
    assert modal["title"]["text"] == "Confirm root cause"
    assert read_metadata(modal["private_metadata"]) == 7
    inputs = {b["block_id"]: b["element"] for b in modal["blocks"] if b["type"] == "input"}
    category = inputs[BlockId.ROOT_CAUSE_CATEGORY]
    assert category["action_id"] == INPUT
    assert category["initial_option"]["value"] == "promotion"
    assert inputs[BlockId.ROOT_CAUSE_SUMMARY]["initial_value"] == (
        "Causes chosen: Promotion (1).\nPoints raised:\n- Promo moved")
    # Once confirmed, the form edits what was confirmed.
    confirmed = point(root_cause_category="execution", root_cause_summary="Late launch",
                      confirmed_by="U1", confirmed_at=datetime(2026, 11, 2, tzinfo=UTC))
    again = confirm_modal(build_summary(confirmed, [vote("U2", "demand")])).to_dict()
    inputs = {b["block_id"]: b["element"] for b in again["blocks"] if b["type"] == "input"}
    assert inputs[BlockId.ROOT_CAUSE_CATEGORY]["initial_option"]["value"] == "execution"
    assert inputs[BlockId.ROOT_CAUSE_SUMMARY]["initial_value"] == "Late launch"


@pytest.mark.parametrize("metadata", ["", "nope", "[]", '{"trigger_point_id": "7"}',
                                      '{"trigger_point_id": true}', '{"trigger_point_id": 0}',
                                      '{"trigger_point_id": 99999999999}'])
def test_unreadable_metadata_has_no_point(metadata: str) -> None:
    assert read_metadata(metadata) is None


def test_confirmed_note_quotes_the_summary() -> None:
    blocks = rendered(confirmed_blocks(point(
        root_cause_category="supply_constraint", root_cause_summary="Line 3 down\n\n> 2 weeks",
        confirmed_by="U1")))
    text = blocks[0]["text"]["text"]
    assert text.startswith(":white_check_mark: *Root cause confirmed* by <@U1>: "
                           "*Supply constraint*")
    assert text.endswith("> Line 3 down\n>\n> &gt; 2 weeks")
    assert blocks[2]["elements"][0]["action_id"] == ActionId.CREATE_ACTION
