"""An action owner named by someone else hands it back from the DM."""

from __future__ import annotations

from bot.ids import ActionId
from tests.e2e.conftest import Running
from tests.e2e.slack_sim import SlackSim
from tests.e2e.test_actions import CREATOR, GOOD_TITLE, OWNER, create_action, stored, to, updates
from tests.e2e.waiting import eventually
from tests.fakeslack import FakeSlack


def dm_button(slack: FakeSlack, user: str) -> dict[str, str]:
    [dm] = slack.wait_for("chat.postMessage", predicate=to(user))
    [button] = [e for b in dm.args.get("blocks") or [] if b["type"] == "actions"
                for e in b["elements"]]
    return button


def test_a_named_owner_hands_the_action_back_from_the_dm(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    button = dm_button(slack, OWNER)
    assert (button["action_id"], button["value"]) == (ActionId.ACTION_HAND_BACK,
                                                      str(created.id))
    # Only the owner may: someone else clicking a forwarded button changes nothing.
    sim.button(ActionId.ACTION_HAND_BACK, button["value"], user="U9", channel="DU9")
    eventually(lambda: any(c.args.get("user") == "U9" and "Only the action's owner" in
                           c.args.get("text", "") for c in slack.calls_to("chat.postEphemeral")))
    assert stored(app_server, created.id).owner_id == OWNER

    reply = sim.button(ActionId.ACTION_HAND_BACK, button["value"], user=OWNER,
                       channel="DU2")
    assert reply.status == 200
    eventually(lambda: stored(app_server, created.id).owner_id == CREATOR)
    assert updates(app_server, created.id) == ["created", "reassigned"]
    [told] = slack.wait_for("chat.postMessage", predicate=lambda c: c.args["channel"] ==
                            CREATOR and "handed back" in c.args["text"])
    assert GOOD_TITLE in told.args["text"]
    # A second click: the owner no longer owns it, so nothing more happens.
    sim.button(ActionId.ACTION_HAND_BACK, button["value"], user=OWNER, channel="DU2")
    eventually(lambda: any(c.args.get("user") == OWNER for c in
                           slack.calls_to("chat.postEphemeral")))
    assert stored(app_server, created.id).owner_id == CREATOR
    assert slack.violations == []
