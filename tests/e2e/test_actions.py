"""SMART actions over signed HTTP: the modal, validation, the card's buttons, the register."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core.db import get_sessionmaker
from sop_core.models import Action, ActionUpdate, ChannelSettings, Milestone, Status, TriggerPoint
from tests.e2e.conftest import SIGNING_SECRET, Running, app_settings, serve_app
from tests.e2e.slack_sim import SlackSim, state_value
from tests.e2e.waiting import eventually
from tests.fakeslack import Call, FakeSlack

OWNER, CREATOR, STRANGER, LEAD = "U2", "U1", "U9", "U7"
GOOD_TITLE = "Run a 2-week Snacks promotion with Carrefour EU"


# ------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------

def today() -> date:
    return datetime.now(UTC).date()


def sessions_of(app_server: Running) -> sessionmaker[Session]:
    return get_sessionmaker(app_server.settings.database_url)


def posted_point(sim: SlackSim, slack: FakeSlack, app_server: Running, *,
                 team: str = "T1") -> tuple[int, str]:
    """Post ``/gap region=EU category=Snacks``; the point's id (from its button) and ts.
    The gap lives in one message per channel: once posted, that one is reused."""
    with sessions_of(app_server)() as session:
        living = session.scalars(select(TriggerPoint).where(
            TriggerPoint.team_id == team, TriggerPoint.channel_id == "C1",
            TriggerPoint.scope_key == "category=snacks region=eu",
            TriggerPoint.message_ts.is_not(None))).first()
        if living is not None:
            return living.id, str(living.message_ts)

    def trigger_point(call: Call) -> bool:
        return call.args.get("channel") == "C1" and not call.args.get("thread_ts")

    before = len([c for c in slack.calls_to("chat.postMessage") if trigger_point(c)])
    sim.command("region=EU category=Snacks", team=team)
    post = slack.wait_for("chat.postMessage", count=before + 1, predicate=trigger_point)[before]
    ts = post.response["ts"]
    [point_id] = {int(e["value"]) for b in post.args["blocks"] if b["type"] == "actions"
                  for e in b["elements"] if e["action_id"] == ActionId.CREATE_ACTION}

    def attached() -> bool:
        with sessions_of(app_server)() as session:
            point = session.get(TriggerPoint, point_id)
            return point is not None and point.message_ts == ts

    eventually(attached)
    return point_id, ts


def open_modal(sim: SlackSim, slack: FakeSlack, point_id: int, ts: str, *,
               team: str = "T1", user: str = CREATOR) -> dict[str, Any]:
    before = len(slack.calls_to("views.open"))
    reply = sim.button(ActionId.CREATE_ACTION, str(point_id), message_ts=ts, team=team,
                       user=user)
    assert reply.status == 200 and reply.elapsed < 3.0
    return slack.wait_for("views.open", count=before + 1)[before].args["view"]


def smart_values(**changes: Any) -> dict[str, dict[str, Any]]:
    """A valid SMART submission; ``changes`` maps a block id to a new state value."""
    day = today()
    values: dict[str, dict[str, Any]] = {
        BlockId.TITLE: state_value("plain_text_input", GOOD_TITLE),
        BlockId.OWNER: state_value("users_select", OWNER),
        BlockId.METRIC: state_value("plain_text_input", "revenue · region=EU"),
        BlockId.BASELINE: state_value("plain_text_input", "3.2M"),
        BlockId.TARGET: state_value("plain_text_input", "3,700,000"),
        BlockId.EXPECTED_IMPACT: state_value("plain_text_input", "350K"),
        BlockId.RESOURCES: state_value("plain_text_input", "Trade budget 40K; Carrefour buyer"),
        BlockId.CONFIDENCE: state_value("static_select", "medium"),
        BlockId.DUE_DATE: state_value("datepicker", (day + timedelta(days=60)).isoformat()),
        BlockId.MILESTONE_NAME.format(0): state_value("plain_text_input", "Agree the plan"),
        BlockId.MILESTONE_DATE.format(0): state_value("datepicker",
                                                      (day + timedelta(days=10)).isoformat()),
        BlockId.MILESTONE_NAME.format(1): state_value("plain_text_input", "Promo live"),
        BlockId.MILESTONE_DATE.format(1): state_value("datepicker",
                                                      (day + timedelta(days=30)).isoformat()),
    }
    for index in range(2, 5):
        values[BlockId.MILESTONE_NAME.format(index)] = state_value("plain_text_input", None)
        values[BlockId.MILESTONE_DATE.format(index)] = state_value("datepicker", None)
    values.update(changes)
    return {block_id: {INPUT: value} for block_id, value in values.items()}


def in_thread(ts: str) -> Any:
    return lambda call: call.args.get("thread_ts") == ts


def to(channel: str) -> Any:
    return lambda call: call.args.get("channel") == channel


def blocks_text(call: Call) -> str:
    return json.dumps(call.args.get("blocks", []), ensure_ascii=False)


def count(app_server: Running, model: type) -> int:
    with sessions_of(app_server)() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def stored(app_server: Running, action_id: int) -> Action:
    with sessions_of(app_server)() as session:
        action = session.get(Action, action_id)
        assert action is not None
        session.expunge_all()
        return action


def updates(app_server: Running, action_id: int) -> list[str]:
    with sessions_of(app_server)() as session:
        return list(session.scalars(select(ActionUpdate.kind).where(
            ActionUpdate.action_id == action_id).order_by(ActionUpdate.id)))


class Created:
    """An action made through the modal, with where its card is."""

    def __init__(self, action_id: int, point_ts: str, card: Call) -> None:
        self.id, self.point_ts, self.card = action_id, point_ts, card
        self.card_ts: str = card.response["ts"]


def create_action(sim: SlackSim, slack: FakeSlack, app_server: Running, *, team: str = "T1",
                  **changes: Any) -> Created:
    point_id, ts = posted_point(sim, slack, app_server, team=team)
    view = open_modal(sim, slack, point_id, ts, team=team)
    cards = len([c for c in slack.calls_to("chat.postMessage") if in_thread(ts)(c)])
    reply = sim.view_submission(view, smart_values(**changes), user=CREATOR, team=team)
    assert reply.status == 200 and not reply.body, reply.body
    card = slack.wait_for("chat.postMessage", count=cards + 1, predicate=in_thread(ts))[cards]

    def created() -> int | None:
        with sessions_of(app_server)() as session:
            return session.scalar(select(Action.id).where(Action.card_ts == card.response["ts"]))

    return Created(eventually(created), ts, card)


def click(sim: SlackSim, created: Created, action_id: str, *, user: str,
          team: str = "T1", value: str | None = None) -> None:
    reply = sim.button(action_id, value or str(created.id), user=user, team=team,
                       message_ts=created.card_ts, thread_ts=created.point_ts)
    assert reply.status == 200 and reply.elapsed < 3.0


def choose(sim: SlackSim, created: Created, action_id: str, value: str, *, user: str,
           team: str = "T1") -> None:
    reply = sim.select(action_id, value, user=user, team=team, message_ts=created.card_ts,
                       thread_ts=created.point_ts)
    assert reply.status == 200 and reply.elapsed < 3.0


def card_updates(slack: FakeSlack, created: Created, count: int = 1) -> list[Call]:
    return slack.wait_for("chat.update", count=count,
                          predicate=lambda c: c.args.get("ts") == created.card_ts)


def quiet(seconds: float = 0.3) -> None:
    """Give the app time to do what it must not do."""
    time.sleep(seconds)


# ------------------------------------------------------------------------------------
# The modal
# ------------------------------------------------------------------------------------

def test_create_button_opens_the_prefilled_modal(sim: SlackSim, slack: FakeSlack,
                                                 app_server: Running, loaded: int) -> None:
    point_id, ts = posted_point(sim, slack, app_server)
    view = open_modal(sim, slack, point_id, ts)
    assert view["callback_id"] == CallbackId.SMART_ACTION
    assert json.loads(view["private_metadata"]) == {"point": point_id, "channel": "C1",
                                                    "thread_ts": ts}
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs[BlockId.METRIC]["initial_value"] == "revenue · region=EU · category=Snacks"
    with sessions_of(app_server)() as session:
        point = session.get(TriggerPoint, point_id)
        assert point is not None
        outlook, plan, gap = point.outlook, point.plan, point.gap
    from sop_core.amounts import parse_amount

    # Compact, as the rest of the UI writes amounts (3.24M), to three significant figures.
    assert parse_amount(inputs[BlockId.BASELINE]["initial_value"]) == pytest.approx(
        outlook, rel=0.005)
    assert parse_amount(inputs[BlockId.TARGET]["initial_value"]) == pytest.approx(plan, rel=0.005)
    assert "," not in inputs[BlockId.BASELINE]["initial_value"]
    # No action yet: the whole gap is not yet covered.
    assert parse_amount(inputs[BlockId.EXPECTED_IMPACT]["initial_value"]) == pytest.approx(
        abs(gap), rel=0.005)
    assert inputs[BlockId.OWNER]["type"] == "users_select"
    assert inputs[BlockId.OWNER]["initial_user"] == CREATOR
    assert inputs[BlockId.DUE_DATE]["type"] == "datepicker"
    # Milestones come one at a time, through "Add milestone".
    assert not any(key.startswith("milestone_") for key in inputs)
    assert any(b["type"] == "actions" and b["elements"][0]["action_id"] == ActionId.ADD_MILESTONE
               for b in view["blocks"])
    assert "-12.5%" in json.dumps(view["blocks"])  # the linked gap, shown as context
    assert slack.violations == []


def test_create_button_from_the_root_cause_thread_opens_the_same_modal(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    point_id, ts = posted_point(sim, slack, app_server)
    reply = sim.button(ActionId.CREATE_ACTION, str(point_id), message_ts="1700000999.000100",
                       thread_ts=ts)
    assert reply.status == 200
    [opened] = slack.wait_for("views.open")
    metadata = json.loads(opened.args["view"]["private_metadata"])
    assert metadata == {"point": point_id, "channel": "C1", "thread_ts": ts}
    assert slack.violations == []


def test_each_validation_error_is_inline_and_nothing_is_stored(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    point_id, ts = posted_point(sim, slack, app_server)
    view = open_modal(sim, slack, point_id, ts)
    day = today()
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({BlockId.TITLE: state_value("plain_text_input", "improve forecasting accuracy")},
         {BlockId.TITLE}),
        ({BlockId.BASELINE: state_value("plain_text_input", "lots")}, {BlockId.BASELINE}),
        ({BlockId.TARGET: state_value("plain_text_input", "3,200,000")}, {BlockId.TARGET}),
        ({BlockId.EXPECTED_IMPACT: state_value("plain_text_input", "0")},
         {BlockId.EXPECTED_IMPACT}),
        ({BlockId.DUE_DATE: state_value("datepicker", day.isoformat())}, {BlockId.DUE_DATE}),
        ({BlockId.OWNER: state_value("users_select", None)}, {BlockId.OWNER}),
        ({BlockId.CONFIDENCE: state_value("static_select", None)}, {BlockId.CONFIDENCE}),
        ({BlockId.MILESTONE_DATE.format(0): state_value("datepicker", None)},
         {BlockId.MILESTONE_DATE.format(0)}),
        ({BlockId.MILESTONE_NAME.format(1): state_value("plain_text_input", None)},
         {BlockId.MILESTONE_NAME.format(1)}),
        ({BlockId.MILESTONE_DATE.format(1): state_value(
            "datepicker", (day + timedelta(days=90)).isoformat())},
         {BlockId.MILESTONE_DATE.format(1)}),
        ({BlockId.MILESTONE_DATE.format(0): state_value(
            "datepicker", (day - timedelta(days=1)).isoformat())},
         {BlockId.MILESTONE_DATE.format(0)}),
        # Several at once: every one of them shown.
        ({BlockId.TITLE: state_value("plain_text_input", "Look into pricing"),
          BlockId.TARGET: state_value("plain_text_input", "3.2M"),
          BlockId.DUE_DATE: state_value("datepicker", (day - timedelta(days=3)).isoformat()),
          BlockId.MILESTONE_NAME.format(4): state_value("plain_text_input", "Review")},
         {BlockId.TITLE, BlockId.TARGET, BlockId.DUE_DATE, BlockId.MILESTONE_DATE.format(4)}),
    ]
    for changes, blocks in cases:
        reply = sim.view_submission(view, smart_values(**changes))
        assert reply.status == 200
        body = reply.json()
        assert body["response_action"] == "errors", changes
        assert set(body["errors"]) == blocks, (changes, body)
        assert all(0 < len(message) <= 200 for message in body["errors"].values())
    assert "Carrefour" in reply.json()["errors"][BlockId.TITLE]  # the hint: an example
    quiet()
    assert count(app_server, Action) == 0 and count(app_server, Milestone) == 0
    assert len(slack.calls_to("chat.postMessage")) == 1  # the trigger point only
    assert slack.violations == []


def test_a_valid_action_is_stored_carded_in_the_thread_and_the_owner_told(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    action = stored(app_server, created.id)
    assert (action.team_id, action.title, action.owner_id, action.creator_id) == (
        "T1", GOOD_TITLE, OWNER, CREATOR)
    assert (action.baseline, action.target, action.expected_impact) == (3.2e6, 3.7e6, 3.5e5)
    assert action.confidence == "medium" and action.status == Status.OPEN
    assert action.due_date == today() + timedelta(days=60)
    assert (action.channel_id, action.card_ts) == ("C1", created.card_ts)
    with sessions_of(app_server)() as session:
        milestones = session.execute(select(Milestone.name, Milestone.due_date).where(
            Milestone.action_id == created.id).order_by(Milestone.due_date)).all()
    assert [tuple(m) for m in milestones] == [
        ("Agree the plan", today() + timedelta(days=10)),
        ("Promo live", today() + timedelta(days=30))]
    assert updates(app_server, created.id) == ["created"]
    card = created.card
    assert (card.args["channel"], card.args["thread_ts"]) == ("C1", created.point_ts)
    text = blocks_text(card)
    for part in (GOOD_TITLE, "<@U2>", "3.20M → 3.70M", "350K", "Agree the plan", "Promo live",
                 "Open"):
        assert part in text
    buttons = {e["action_id"] for b in card.args["blocks"] if b["type"] == "actions"
               for e in b["elements"]}
    assert buttons == {ActionId.ACTION_PROGRESS, ActionId.ACTION_MILESTONE_DONE,
                       ActionId.ACTION_SNOOZE, ActionId.ACTION_COMPLETE,
                       ActionId.ACTION_REASSIGN, ActionId.ACTION_EDIT, ActionId.ACTION_CANCEL}
    [dm] = slack.wait_for("chat.postMessage", predicate=to(OWNER))
    assert dm.response["channel"] == "DU2"
    assert GOOD_TITLE in dm.args["text"] and "<@U1>" in dm.args["text"]
    # The DM links to the card (chat.getPermalink of the card's message).
    [link] = [c for c in slack.calls_to("chat.getPermalink")
              if c.args.get("message_ts") == created.card_ts]
    assert f"<{link.response['permalink']}|Open its card>" in dm.args["text"]
    assert slack.violations == []


def test_a_gap_of_another_workspace_is_not_found_and_nothing_stored(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    point_id, ts = posted_point(sim, slack, app_server, team="T2")
    # Clicking it from T1: no modal, a refusal only the caller sees.
    sim.button(ActionId.CREATE_ACTION, str(point_id), message_ts=ts, team="T1")
    [told] = slack.wait_for("chat.postEphemeral")
    assert told.args["user"] == CREATOR and "could not find that gap" in told.args["text"]
    assert slack.calls_to("views.open") == []
    # A modal made in T2, submitted as T1 (tampered metadata): not saved, said plainly.
    view = open_modal(sim, slack, point_id, ts, team="T2")
    reply = sim.view_submission(view, smart_values(), team="T1")
    body = reply.json()
    assert body["response_action"] == "update"
    assert "could not find that gap" in json.dumps(body["view"])
    quiet()
    assert count(app_server, Action) == 0
    assert slack.violations == []


def test_escaped_title_shows_literally_on_the_card(sim: SlackSim, slack: FakeSlack,
                                                   app_server: Running, loaded: int) -> None:
    evil = "Run <!channel> promo with <https://evil.example|Carrefour> & Tesco in 2 weeks"
    created = create_action(sim, slack, app_server,
                            **{BlockId.TITLE: state_value("plain_text_input", evil)})
    text = blocks_text(created.card) + created.card.args["text"]
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text and "&lt;https://evil.example|Carrefour&gt;" in text
    assert "&amp; Tesco" in text
    assert stored(app_server, created.id).title == evil
    [dm] = slack.wait_for("chat.postMessage", predicate=to(OWNER))
    assert "<!channel>" not in dm.args["text"]
    assert slack.violations == []


# ------------------------------------------------------------------------------------
# The card's buttons
# ------------------------------------------------------------------------------------

def test_owner_updates_progress_in_place(sim: SlackSim, slack: FakeSlack,
                                         app_server: Running, loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    click(sim, created, ActionId.ACTION_PROGRESS, user=OWNER)
    [opened] = slack.wait_for("views.open", count=2)[1:]
    view = opened.args["view"]
    assert view["callback_id"] == CallbackId.PROGRESS
    bad = sim.view_submission(view, {
        BlockId.PROGRESS_VALUE: {INPUT: state_value("plain_text_input", "soon")},
        BlockId.PROGRESS_NOTE: {INPUT: state_value("plain_text_input", None)}}, user=OWNER)
    assert set(bad.json()["errors"]) == {BlockId.PROGRESS_VALUE}
    reply = sim.view_submission(view, {
        BlockId.PROGRESS_VALUE: {INPUT: state_value("plain_text_input", "3.35M")},
        BlockId.PROGRESS_NOTE: {INPUT: state_value("plain_text_input", "Week 1 went well")}},
        user=OWNER)
    assert reply.status == 200 and not reply.body
    [updated] = card_updates(slack, created)
    assert updated.args["channel"] == "C1"
    assert "now *3.35M*" in blocks_text(updated)
    assert stored(app_server, created.id).current_value == 3.35e6
    assert updates(app_server, created.id) == ["created", "progress"]
    assert slack.violations == []


def test_owner_marks_a_milestone_done(sim: SlackSim, slack: FakeSlack, app_server: Running,
                                      loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    [select_] = [e for b in created.card.args["blocks"] if b["type"] == "actions"
                 for e in b["elements"] if e["action_id"] == ActionId.ACTION_MILESTONE_DONE]
    first = select_["options"][0]["value"]
    choose(sim, created, ActionId.ACTION_MILESTONE_DONE, first, user=OWNER)
    [updated] = card_updates(slack, created)
    assert "✓ ~Agree the plan~" in blocks_text(updated)
    [left] = [e for b in updated.args["blocks"] if b["type"] == "actions"
              for e in b["elements"] if e["action_id"] == ActionId.ACTION_MILESTONE_DONE]
    assert [o["text"]["text"].split(" · ")[0] for o in left["options"]] == ["Promo live"]
    with sessions_of(app_server)() as session:
        done = session.execute(select(Milestone.name, Milestone.done_by).where(
            Milestone.done_at.is_not(None))).all()
    assert [tuple(d) for d in done] == [("Agree the plan", OWNER)]
    assert updates(app_server, created.id) == ["created", "milestone_done"]
    # The same milestone again: told, nothing changes.
    choose(sim, created, ActionId.ACTION_MILESTONE_DONE, first, user=OWNER)
    [told] = slack.wait_for("chat.postEphemeral")
    assert "already done" in told.args["text"]
    assert updates(app_server, created.id) == ["created", "milestone_done"]
    assert slack.violations == []


def test_owner_snoozes_reminders(sim: SlackSim, slack: FakeSlack, app_server: Running,
                                 loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    choose(sim, created, ActionId.ACTION_SNOOZE, f"{created.id}:3", user=OWNER)
    [updated] = card_updates(slack, created)
    until = today() + timedelta(days=3)
    assert f"snoozed until {until.isoformat()}" in blocks_text(updated)
    assert stored(app_server, created.id).snoozed_until == until
    assert updates(app_server, created.id) == ["created", "snoozed"]
    assert slack.violations == []


def test_creator_completes_the_action(sim: SlackSim, slack: FakeSlack, app_server: Running,
                                      loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    click(sim, created, ActionId.ACTION_COMPLETE, user=CREATOR)
    view = slack.wait_for("views.open", count=2)[1].args["view"]
    assert view["callback_id"] == CallbackId.COMPLETE
    reply = sim.view_submission(view, {
        BlockId.REALISED_IMPACT: {INPUT: state_value("plain_text_input", "280K")},
        BlockId.PROGRESS_NOTE: {INPUT: state_value("plain_text_input", "Smaller uplift")}})
    assert reply.status == 200 and not reply.body
    [updated] = card_updates(slack, created)
    assert "Done" in blocks_text(updated) and "realised 280K" in blocks_text(updated)
    assert not [b for b in updated.args["blocks"] if b["type"] == "actions"]
    action = stored(app_server, created.id)
    assert (action.status, action.realised_impact) == (Status.DONE, 2.8e5)
    assert action.completed_at is not None
    # A done action takes no more changes.
    choose(sim, created, ActionId.ACTION_SNOOZE, f"{created.id}:1", user=OWNER)
    [told] = slack.wait_for("chat.postEphemeral")
    assert "already complete" in told.args["text"]
    assert updates(app_server, created.id) == ["created", "completed"]
    assert slack.violations == []


def test_owner_reassigns_and_the_new_owner_is_told(sim: SlackSim, slack: FakeSlack,
                                                   app_server: Running, loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    click(sim, created, ActionId.ACTION_REASSIGN, user=OWNER)
    view = slack.wait_for("views.open", count=2)[1].args["view"]
    assert view["callback_id"] == CallbackId.REASSIGN
    same = sim.view_submission(view, {BlockId.NEW_OWNER: {
        INPUT: state_value("users_select", OWNER)}}, user=OWNER)
    assert set(same.json()["errors"]) == {BlockId.NEW_OWNER}
    reply = sim.view_submission(view, {BlockId.NEW_OWNER: {
        INPUT: state_value("users_select", "U3")}}, user=OWNER)
    assert reply.status == 200 and not reply.body
    [updated] = card_updates(slack, created)
    assert "<@U3>" in blocks_text(updated)
    assert stored(app_server, created.id).owner_id == "U3"
    [dm] = slack.wait_for("chat.postMessage", predicate=to("U3"))
    assert GOOD_TITLE in dm.args["text"] and "|Open its card>" in dm.args["text"]
    assert updates(app_server, created.id) == ["created", "reassigned"]
    assert slack.violations == []


def test_a_stranger_is_refused_politely_and_nothing_changes(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    before = stored(app_server, created.id)
    for button in (ActionId.ACTION_PROGRESS, ActionId.ACTION_COMPLETE,
                   ActionId.ACTION_REASSIGN):
        click(sim, created, button, user=STRANGER)
    choose(sim, created, ActionId.ACTION_SNOOZE, f"{created.id}:7", user=STRANGER)
    with sessions_of(app_server)() as session:
        milestone_id = session.scalar(select(func.min(Milestone.id)))
    choose(sim, created, ActionId.ACTION_MILESTONE_DONE, f"{created.id}:{milestone_id}",
           user=STRANGER)
    told = slack.wait_for("chat.postEphemeral", count=5)
    for call in told:
        assert (call.args["user"], call.args["channel"]) == (STRANGER, "C1")
        assert call.args["thread_ts"] == created.point_ts
        assert "Only the action's owner" in call.args["text"]
    # A modal opened by the owner but submitted by a stranger is refused inline too.
    click(sim, created, ActionId.ACTION_PROGRESS, user=OWNER)
    view = slack.wait_for("views.open", count=2)[1].args["view"]
    reply = sim.view_submission(view, {
        BlockId.PROGRESS_VALUE: {INPUT: state_value("plain_text_input", "1M")}},
        user=STRANGER)
    assert "Only the action's owner" in reply.json()["errors"][BlockId.PROGRESS_VALUE]
    quiet()
    assert len(slack.calls_to("views.open")) == 2  # the SMART modal, the owner's progress
    assert slack.calls_to("chat.update") == []
    after = stored(app_server, created.id)
    assert (after.current_value, after.snoozed_until, after.status, after.owner_id) == (
        before.current_value, before.snoozed_until, before.status, before.owner_id)
    with sessions_of(app_server)() as session:
        assert session.scalar(select(func.count()).select_from(Milestone).where(
            Milestone.done_at.is_not(None))) == 0
    assert updates(app_server, created.id) == ["created"]
    assert slack.violations == []


def test_a_channel_lead_may_change_an_action(sim: SlackSim, slack: FakeSlack,
                                             app_server: Running, loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    with sessions_of(app_server).begin() as session:
        session.add(ChannelSettings(team_id="T1", channel_id="C1", leads=[LEAD]))
    choose(sim, created, ActionId.ACTION_SNOOZE, f"{created.id}:1", user=LEAD)
    card_updates(slack, created)
    assert stored(app_server, created.id).snoozed_until == today() + timedelta(days=1)
    # A lead of another channel is nobody special here.
    with sessions_of(app_server).begin() as session:
        session.add(ChannelSettings(team_id="T1", channel_id="C2", leads=["U8"]))
    choose(sim, created, ActionId.ACTION_SNOOZE, f"{created.id}:7", user="U8")
    [told] = slack.wait_for("chat.postEphemeral", predicate=lambda c: c.args["user"] == "U8")
    assert "Only the action's owner" in told.args["text"]
    assert stored(app_server, created.id).snoozed_until == today() + timedelta(days=1)
    assert slack.violations == []


@pytest.fixture
def lead_server(db_url: str, slack: FakeSlack) -> Iterator[Running]:
    """The app with an installation-wide lead (``SOPGAP_LEADS``)."""
    with serve_app(app_settings(db_url, slack, leads=["U8"])) as running:
        yield running


def test_an_installation_lead_may_change_an_action(slack: FakeSlack, lead_server: Running,
                                                   sample_table: Any) -> None:
    from sop_core.services.data import store

    store(sessions_of(lead_server), sample_table)
    sim = SlackSim(lead_server.url, SIGNING_SECRET, slack.root_url)
    created = create_action(sim, slack, lead_server)
    choose(sim, created, ActionId.ACTION_SNOOZE, f"{created.id}:7", user="U8")
    card_updates(slack, created)
    assert stored(lead_server, created.id).snoozed_until == today() + timedelta(days=7)
    assert slack.violations == []


def test_an_action_of_another_workspace_is_not_found(sim: SlackSim, slack: FakeSlack,
                                                     app_server: Running, loaded: int) -> None:
    other = create_action(sim, slack, app_server, team="T2")
    assert stored(app_server, other.id).team_id == "T2"
    for button in (ActionId.ACTION_PROGRESS, ActionId.ACTION_COMPLETE,
                   ActionId.ACTION_REASSIGN):
        click(sim, other, button, user=CREATOR, team="T1")
    choose(sim, other, ActionId.ACTION_SNOOZE, f"{other.id}:7", user=CREATOR, team="T1")
    told = slack.wait_for("chat.postEphemeral", count=4)
    assert all("could not find that action" in c.args["text"] for c in told)
    # A modal of T2's action submitted from T1.
    click(sim, other, ActionId.ACTION_PROGRESS, user=CREATOR, team="T2")
    view = slack.wait_for("views.open", count=2)[1].args["view"]
    reply = sim.view_submission(view, {
        BlockId.PROGRESS_VALUE: {INPUT: state_value("plain_text_input", "1M")}}, team="T1")
    assert "could not find that action" in reply.json()["errors"][BlockId.PROGRESS_VALUE]
    # Nonsense ids are not found either.
    choose(sim, other, ActionId.ACTION_SNOOZE, "nonsense", user=CREATOR)
    slack.wait_for("chat.postEphemeral", count=5)
    quiet()
    assert slack.calls_to("chat.update") == []
    after = stored(app_server, other.id)
    assert (after.current_value, after.snoozed_until) == (None, None)
    assert updates(app_server, other.id) == ["created"]
    assert slack.violations == []


# ------------------------------------------------------------------------------------
# /gap actions
# ------------------------------------------------------------------------------------

def _register(sim: SlackSim, slack: FakeSlack, text: str, user: str = CREATOR) -> Call:
    before = len(slack.calls_to("response_url"))
    sim.command(f"actions {text}".strip(), user=user)
    return slack.wait_for("response_url", count=before + 1)[before]


def test_gap_actions_lists_mine_overdue_and_all(sim: SlackSim, slack: FakeSlack,
                                                app_server: Running, loaded: int) -> None:
    first = create_action(sim, slack, app_server)  # owned by U2
    second = create_action(sim, slack, app_server, **{
        BlockId.TITLE: state_value("plain_text_input", "Renegotiate Tesco UK shelf space"),
        BlockId.OWNER: state_value("users_select", CREATOR),
        BlockId.DUE_DATE: state_value("datepicker", (today() + timedelta(days=20)).isoformat()),
        BlockId.MILESTONE_NAME.format(1): state_value("plain_text_input", None),
        BlockId.MILESTONE_DATE.format(1): state_value("datepicker", None)})
    third = create_action(sim, slack, app_server, **{
        BlockId.TITLE: state_value("plain_text_input", "Shift 200 pallets to Lidl DE stores")})
    with sessions_of(app_server).begin() as session:
        session.execute(update(Action).where(Action.id == first.id).values(
            due_date=today() - timedelta(days=2)))
        session.execute(update(Action).where(Action.id == third.id).values(
            status=Status.DONE))

    mine = _register(sim, slack, "mine", user=OWNER)
    assert mine.args["response_type"] == "ephemeral"
    text = json.dumps(mine.args["blocks"], ensure_ascii=False)
    assert GOOD_TITLE in text and "overdue" in text and "Tesco" not in text
    assert "Lidl" not in text  # done: not in "mine"

    overdue = json.dumps(_register(sim, slack, "overdue").args["blocks"], ensure_ascii=False)
    assert GOOD_TITLE in overdue and "Tesco" not in overdue

    everything = _register(sim, slack, "all")
    sections = [b["text"]["text"] for b in everything.args["blocks"][1:]]
    # Open first, due soonest first (the overdue one), then the done one.
    assert GOOD_TITLE in sections[0] and "Tesco" in sections[1] and "Lidl" in sections[2]
    assert "<@U2>" in sections[0] and "impact 350K" in sections[0]
    assert "done" in sections[2]
    assert "· 3" in everything.args["blocks"][0]["text"]["text"]

    default = _register(sim, slack, "")  # "mine" for U1: the Tesco action
    assert "Tesco" in json.dumps(default.args["blocks"], ensure_ascii=False)
    assert second.id != first.id
    assert slack.calls_to("chat.postEphemeral") == []
    assert slack.violations == []


def test_gap_actions_is_cut_to_slacks_limits(sim: SlackSim, slack: FakeSlack,
                                             app_server: Running, loaded: int) -> None:
    point_id, _ = posted_point(sim, slack, app_server)
    with sessions_of(app_server).begin() as session:
        for index in range(70):
            session.add(Action(
                team_id="T1", trigger_point_id=point_id, channel_id="C1",
                title=f"Run promo wave {index} with Carrefour " + "x" * 250, owner_id=OWNER,
                creator_id=CREATOR, metric_name="revenue", baseline=1.0, target=2.0,
                expected_impact=1000.0 + index, due_date=today() + timedelta(days=index + 1)))
    reply = _register(sim, slack, "all")
    blocks = reply.args["blocks"]
    assert len(blocks) <= 50
    assert "and 22 more" in blocks[-1]["elements"][0]["text"]
    assert "wave 0 " in blocks[1]["text"]["text"]  # due soonest first
    assert slack.violations == []


def test_gap_actions_with_an_unknown_list(sim: SlackSim, slack: FakeSlack,
                                          app_server: Running) -> None:
    reply = _register(sim, slack, "everything")
    assert "`/gap actions overdue`" in reply.args["text"]
    assert reply.args["response_type"] == "ephemeral"
