"""Builders for SMART actions: valid Block Kit within Slack's limits, user text escaped."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.blocks.action_card import action_card_blocks, card_text, mention
from bot.blocks.action_modal import (
    amount_input,
    complete_modal,
    edit_action_modal,
    notice_modal,
    progress_modal,
    reassign_modal,
    smart_action_modal,
    with_another_milestone,
)
from bot.blocks.actions_list import register_blocks
from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core.amounts import parse_amount
from sop_core.services.actions import ActionView, LinkedGap, MilestoneView, Register, Which

TODAY = date(2026, 3, 10)
EVIL = "<!channel> Run <https://evil.example|click here> promo & more"
GAP = LinkedGap(trigger_point_id=7, channel_id="C1", message_ts="1700000000.000100",
                metric="revenue", scope={"region": ["EU"], "category": ["Snacks"]},
                horizon="fy", plan=3_700_000.0, outlook=3_237_500.0, gap=-462_500.0,
                gap_pct=-12.5)


def milestone(id: int, name: str, offset: int, done: bool = False) -> MilestoneView:
    return MilestoneView(id=id, name=name, due_date=TODAY + timedelta(days=offset),
                         done_at=datetime(2026, 3, 9, tzinfo=UTC) if done else None,
                         done_by="U2" if done else None)


def action(**changes: Any) -> ActionView:
    values: dict[str, Any] = {
        "id": 12, "team_id": "T1", "title": "Run a 2-week Snacks promotion with Carrefour EU",
        "owner_id": "U2", "creator_id": "U1", "metric_name": "revenue · region=EU",
        "baseline": 3.2e6, "target": 3.7e6, "current_value": None, "expected_impact": 3.5e5,
        "realised_impact": None, "resources": "Trade budget 40K", "confidence": "medium",
        "due_date": TODAY + timedelta(days=30), "status": "open", "snoozed_until": None,
        "channel_id": "C1", "card_ts": "1700000000.000200",
        "milestones": (milestone(1, "Agree the plan", 5, done=True),
                       milestone(2, "Promo live", 20)),
        "gap": GAP,
    }
    values.update(changes)
    return ActionView(**values)


def rendered(blocks: list[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]  # to_dict() validates Slack's limits


def mrkdwn(data: Any) -> str:
    """Every mrkdwn text in a payload (plain_text is never parsed for links or mentions)."""
    if isinstance(data, dict):
        own = [data["text"]] if data.get("type") == "mrkdwn" else []
        return "\n".join(own + [mrkdwn(v) for v in data.values() if isinstance(v, dict | list)])
    if isinstance(data, list):
        return "\n".join(mrkdwn(v) for v in data)
    return ""


def elements(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}


# ------------------------------------------------------------------------------------
# The SMART modal
# ------------------------------------------------------------------------------------

def test_smart_modal_is_prefilled_from_the_gap() -> None:
    view = smart_action_modal(GAP, metadata='{"point":7}', owner_id="U1").to_dict()
    assert view["callback_id"] == CallbackId.SMART_ACTION
    assert len(view["title"]["text"]) <= 24 and len(view["submit"]["text"]) <= 24
    assert view["private_metadata"] == '{"point":7}'
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert all(element["action_id"] == INPUT for element in inputs.values())
    assert inputs[BlockId.METRIC]["initial_value"] == "revenue · region=EU · category=Snacks"
    # The UI's compact format, not cents: 3.24M, 3.7M, 462K.
    assert inputs[BlockId.BASELINE]["initial_value"] == "3.24M"
    assert inputs[BlockId.TARGET]["initial_value"] == "3.7M"
    assert parse_amount(inputs[BlockId.EXPECTED_IMPACT]["initial_value"]) == pytest.approx(
        462_500, rel=0.005)
    assert inputs[BlockId.OWNER] == {"type": "users_select", "action_id": INPUT,
                                     "initial_user": "U1",
                                     "placeholder": {"type": "plain_text", "text": "Who owns it",
                                                     "emoji": True}}
    assert [o["value"] for o in inputs[BlockId.CONFIDENCE]["options"]] == ["high", "medium",
                                                                           "low"]
    # Milestones are added one at a time: none shown, an "Add milestone" button.
    assert not any(b.startswith("milestone_") for b in inputs)
    assert ActionId.ADD_MILESTONE in elements(view["blocks"])
    assert len(view["blocks"]) <= 15
    assert "-12.5%" in view["blocks"][0]["text"]["text"]


def test_smart_modal_escapes_data_in_mrkdwn() -> None:
    gap = dataclasses.replace(GAP, scope={"customer": ["<!here> & Co"]})
    view = smart_action_modal(gap, metadata="{}").to_dict()
    context = view["blocks"][0]["text"]["text"]
    assert "<!here>" not in context and "&lt;!here&gt; &amp; Co" in context
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs[BlockId.METRIC]["initial_value"] == "revenue · customer=<!here> & Co"


@pytest.mark.parametrize(("value", "shown"), [
    (3_237_771.05, "3.24M"), (-462_500.0, "-462K"), (0.35, "0.35"), (1234.5, "1,234"),
    (0.0, "0"), (12.0, "12"), (350_000.0, "350K"), (99_999.0, "100K"), (999_600.0, "1M"),
    (10_000.0, "10K"), (1.5e9, "1.5B")])
def test_prefilled_amounts_are_compact_and_read_back(value: float, shown: str) -> None:
    assert amount_input(value) == shown
    assert parse_amount(shown) == pytest.approx(value, rel=0.005, abs=0.5)


@pytest.mark.parametrize("value", [3_237_771.05, 462_500.0, 99_999.0, 1_234.5, 999_600.0])
def test_an_expected_impact_is_never_rounded_up(value: float) -> None:
    shown = amount_input(value, down=True)
    assert parse_amount(shown) <= value
    assert parse_amount(shown) == pytest.approx(value, rel=0.01)


def test_add_milestone_adds_one_row_up_to_five() -> None:
    view = smart_action_modal(GAP, metadata="{}").to_dict()
    for count in range(1, 6):
        grown = with_another_milestone(view)
        assert grown is not None
        names = [b["block_id"] for b in grown["blocks"]
                 if b.get("block_id", "").startswith("milestone_name_")]
        assert names == [BlockId.MILESTONE_NAME.format(i) for i in range(count)]
        assert (ActionId.ADD_MILESTONE in elements(grown["blocks"])) == (count < 5)
        assert grown["callback_id"] == CallbackId.SMART_ACTION
        view = {**view, **grown}
    assert with_another_milestone(view) is None


def test_edit_modal_is_prefilled_from_the_action() -> None:
    view = edit_action_modal(action(), metadata='{"action":12}').to_dict()
    assert view["callback_id"] == CallbackId.EDIT_ACTION
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs[BlockId.TITLE]["initial_value"] == (
        "Run a 2-week Snacks promotion with Carrefour EU")
    assert inputs[BlockId.EXPECTED_IMPACT]["initial_value"] == "350K"
    assert inputs[BlockId.DUE_DATE]["initial_date"] == "2026-04-09"
    # The open milestone is editable, the done one only shown.
    assert inputs[BlockId.MILESTONE_NAME.format(0)]["initial_value"] == "Promo live"
    assert BlockId.MILESTONE_NAME.format(1) not in inputs
    assert "~Agree the plan~" in json.dumps(view)
    assert BlockId.OWNER not in inputs


@pytest.mark.parametrize("build", [progress_modal, complete_modal, reassign_modal])
def test_card_modals_are_valid_and_short(build: Any) -> None:
    view = build(action(title=EVIL), metadata='{"action":12}').to_dict()
    assert len(view["title"]["text"]) <= 24
    assert len(view["submit"]["text"]) <= 24 and len(view["close"]["text"]) <= 24
    assert "<!channel>" not in json.dumps(view)


def test_notice_modal() -> None:
    view: View = notice_modal("Not saved because the gap is gone", "<b> gone")
    data = view.to_dict()
    assert len(data["title"]["text"]) <= 24 and "submit" not in data
    assert "&lt;b&gt; gone" in data["blocks"][0]["text"]["text"]


# ------------------------------------------------------------------------------------
# The card
# ------------------------------------------------------------------------------------

def test_open_card_shows_everything_and_its_buttons() -> None:
    blocks = rendered(action_card_blocks(action(current_value=3.3e6), today=TODAY))
    text = json.dumps(blocks, ensure_ascii=False)
    for part in ("Run a 2-week Snacks promotion with Carrefour EU", "<@U2>", "<@U1>",
                 "3.20M → 3.70M", "now *3.30M*", "350K of the gap", "in 30 days", "Open",
                 "✓ ~Agree the plan~", "◻ Promo live · due 2026-03-30", "Medium",
                 "Trade budget 40K", "-462K (-12.5%)"):
        assert part in text, part
    found = elements(blocks)
    assert set(found) == {ActionId.ACTION_PROGRESS, ActionId.ACTION_MILESTONE_DONE,
                          ActionId.ACTION_SNOOZE, ActionId.ACTION_COMPLETE,
                          ActionId.ACTION_REASSIGN, ActionId.ACTION_EDIT,
                          ActionId.ACTION_CANCEL}
    assert found[ActionId.ACTION_PROGRESS]["value"] == "12"
    assert [o["value"] for o in found[ActionId.ACTION_MILESTONE_DONE]["options"]] == ["12:2"]
    assert [(o["text"]["text"], o["value"]) for o in found[ActionId.ACTION_SNOOZE]["options"]
            ] == [("1 day", "12:1"), ("3 days", "12:3"), ("1 week", "12:7")]


def test_overdue_snoozed_and_done_cards() -> None:
    late = action(due_date=TODAY - timedelta(days=3), snoozed_until=TODAY + timedelta(days=1))
    text = json.dumps(rendered(action_card_blocks(late, today=TODAY)))
    assert "*overdue by 3 days*" in text and ":warning: Overdue" in text
    assert "snoozed until 2026-03-11" in text
    done = action(status="done", realised_impact=2.8e5,
                  milestones=(milestone(1, "Agree the plan", 5, done=True),))
    blocks = rendered(action_card_blocks(done, today=TODAY))
    assert "Done" in json.dumps(blocks) and "realised 280K" in json.dumps(blocks)
    assert not elements(blocks)
    no_milestones_left = rendered(action_card_blocks(
        action(milestones=(milestone(1, "Plan", 5, done=True),)), today=TODAY))
    assert ActionId.ACTION_MILESTONE_DONE not in elements(no_milestones_left)


def test_card_escapes_a_malicious_title_and_names() -> None:
    evil = action(title=EVIL, metric_name="<@U999> metric", resources="<!everyone>",
                  milestones=(milestone(3, "<https://x|y>", 5),))
    blocks = rendered(action_card_blocks(evil, today=TODAY))
    text = mrkdwn(blocks) + card_text(evil)
    for smuggled in ("<!channel>", "<https://evil", "<@U999>", "<!everyone>", "<https://x"):
        assert smuggled not in text
    assert "&lt;!channel&gt; Run &lt;https://evil.example|click here&gt; promo &amp; more" in text
    assert "&lt;https://x|y&gt;" in text and "&lt;@U999&gt;" in text


def test_card_stays_within_slacks_limits_with_long_text() -> None:
    long = action(title="Run a promo with Carrefour " + "&" * 400,
                  resources="x" * 5000, metric_name="m" * 400,
                  milestones=tuple(milestone(i, "n" * 200, i + 1) for i in range(5)))
    blocks = rendered(action_card_blocks(long, today=TODAY))
    for block in blocks:
        if "text" in block and block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    options = elements(blocks)[ActionId.ACTION_MILESTONE_DONE]["options"]
    assert all(len(o["text"]["text"]) <= 75 for o in options)
    assert all(not o["text"]["text"].endswith("&") for o in options)


def test_mentions_only_for_user_ids() -> None:
    assert mention("U02ABC") == "<@U02ABC>"
    assert mention("<!channel>") == "&lt;!channel&gt;"
    assert mention(None) == "nobody"


# ------------------------------------------------------------------------------------
# The register
# ------------------------------------------------------------------------------------

def test_register_marks_overdue_and_shows_owner_due_status_impact() -> None:
    rows = (action(id=1, due_date=TODAY - timedelta(days=2)), action(id=2, title=EVIL),
            action(id=3, status="done", realised_impact=1e5))
    blocks = rendered(register_blocks(Register(Which.ALL, rows, 3), today=TODAY))
    assert blocks[0]["text"]["text"] == "*All actions* · 3"
    first, second, third = (b["text"]["text"] for b in blocks[1:])
    assert "*overdue*" in first and "owner <@U2>" in first and "impact 350K" in first
    assert "&lt;!channel&gt;" in second and "<!channel>" not in second
    assert "done" in third and "realised 100K" in third


def test_long_register_is_cut_with_and_n_more() -> None:
    rows = tuple(action(id=i, title="Run promo " + "y" * 400) for i in range(120))
    blocks = rendered(register_blocks(Register(Which.ALL, rows[:50], 120), today=TODAY))
    assert len(blocks) == 50
    assert "…and 72 more" in blocks[-1]["elements"][0]["text"]
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")


@pytest.mark.parametrize("which", list(Which))
def test_empty_registers_say_what_to_do(which: Which) -> None:
    blocks = rendered(register_blocks(Register(which, (), 0), today=TODAY))
    assert len(blocks) == 2 and blocks[1]["text"]["text"]
