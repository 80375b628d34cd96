"""A /gap the data has no rows for is told so, with what there is, never as zeros."""

from __future__ import annotations

import pytest

from tests.e2e.slack_sim import SlackSim
from tests.fakeslack import FakeSlack


@pytest.mark.parametrize(("text", "told"), [
    ("region=EU horizon=2030",
     "No data for horizon 2030 (2030-01..2030-12): the data covers 2025-01..2026-12."),
    ("region=EU category=Snacks horizon=2025-Q1 metric=volume channel=Retail",
     None),  # has rows: a trigger point or a gap, not an error
])
def test_a_horizon_without_data_is_an_error_naming_the_months_there(
        sim: SlackSim, slack: FakeSlack, loaded: int, text: str, told: str | None) -> None:
    sim.command(text)
    if told is None:  # inside or outside the rule, the gap itself, never an error
        [answer] = slack.wait_for("response_url") if not slack.calls_to(
            "chat.postMessage") else slack.wait_for("chat.postMessage")
        assert "No data" not in str(answer.args.get("text"))
        return
    [reply] = slack.wait_for("response_url")
    assert reply.args["response_type"] == "ephemeral"
    assert told in reply.args["text"]
    assert slack.calls_to("chat.postMessage") == []
