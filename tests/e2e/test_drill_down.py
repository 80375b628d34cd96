"""Drill down from a gap, over real HTTP: each driver opens, only for the person, into
its own gap and drivers by the next dimension, level by level until no dimension is
left; any level can be posted to the channel."""

from __future__ import annotations

import json
from typing import Any

from bot.ids import ActionId
from tests.e2e.conftest import Running
from tests.e2e.slack_sim import SlackSim
from tests.e2e.waiting import eventually as _eventually
from tests.fakeslack import FakeSlack


def soon(check: Any) -> Any:
    """``eventually`` with room for a busy machine (two cores, many test runs)."""
    return _eventually(check, timeout=20)


def drill(blocks: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((b for b in blocks if b["type"] == "actions"
                 and b["elements"][0]["action_id"] == ActionId.DRILL_DOWN), None)


def private_answers(slack: FakeSlack) -> list[dict[str, Any]]:
    return [c.args for c in slack.calls_to("response_url") if c.args.get("blocks")]


def choose(sim: SlackSim, block: dict[str, Any], member: str) -> None:
    [option] = [o for o in block["elements"][0]["options"] if o["value"] == member]
    sim.block_action({"action_id": ActionId.DRILL_DOWN, "type": "static_select",
                      "block_id": block["block_id"], "selected_option": option})


def test_two_levels_down_then_post_one_to_the_channel(sim: SlackSim, slack: FakeSlack,
                                                     app_server: Running, loaded: int) -> None:
    sim.command("region=EU")  # within the rule: only for me, with its drivers
    [first] = soon(lambda: private_answers(slack) or None)
    level_one = drill(first["blocks"])
    assert level_one is not None
    by_one = json.loads(level_one["block_id"])["by"]
    member_one = level_one["elements"][0]["options"][0]["value"]  # the largest driver

    choose(sim, level_one, member_one)  # level 1: its gap, drivers by the next dimension
    second = soon(lambda: private_answers(slack)[1:] or None)[0]
    assert second["response_type"] == "ephemeral"
    assert second["blocks"][0]["text"]["text"].endswith(f"region=EU · {by_one}={member_one}")
    level_two = drill(second["blocks"])
    assert level_two is not None
    by_two = json.loads(level_two["block_id"])["by"]
    assert by_two not in ("region", by_one)
    member_two = level_two["elements"][0]["options"][0]["value"]

    choose(sim, level_two, member_two)  # level 2: nothing left to drill into
    third = soon(lambda: private_answers(slack)[2:] or None)[0]
    assert third["blocks"][0]["text"]["text"].endswith(
        f"region=EU · {by_one}={member_one} · {by_two}={member_two}")
    assert drill(third["blocks"]) is None
    assert slack.calls_to("chat.postMessage") == []  # all of it only for me so far

    # Post level 1 to the channel: one trigger point, for that scope.
    [post_button] = [e for b in second["blocks"] if b["type"] == "actions"
                     for e in b["elements"] if e["action_id"] == ActionId.POST_TO_CHANNEL]
    sim.button(ActionId.POST_TO_CHANNEL, post_button["value"])
    [post] = slack.wait_for("chat.postMessage", timeout=20)
    assert post.args["blocks"][0]["text"]["text"] == second["blocks"][0]["text"]["text"]
    assert drill(post.args["blocks"]) is not None  # the posted gap drills down too
    assert slack.violations == []


def test_a_forged_drill_choice_is_refused_clearly(sim: SlackSim, slack: FakeSlack,
                                                  loaded: int) -> None:
    sim.block_action({"action_id": ActionId.DRILL_DOWN, "type": "static_select",
                      "block_id": "not json", "selected_option": {
                          "text": {"type": "plain_text", "text": "x"}, "value": "x"}})
    [reply] = slack.wait_for("response_url", timeout=20)
    assert "cannot be opened" in reply.args["text"]
    assert slack.calls_to("chat.postMessage") == []
