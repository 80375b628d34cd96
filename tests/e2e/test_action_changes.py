"""Actions that can change, over signed HTTP against the fake Slack: edit, cancel ("not
doing"), milestones added one at a time, prefilled defaults, the message shortcut, DMs
and nudges that link to the card and count days in the owner's own zone."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core.amounts import parse_amount
from sop_core.config import Settings
from sop_core.db import get_sessionmaker
from sop_core.models import Action, ActionChange, Status, TriggerPoint
from sop_core.services.coverage import point_coverage
from sop_core.services.followup import due_nudges
from tests.e2e.conftest import Running
from tests.e2e.slack_sim import SlackSim, state_value
from tests.e2e.test_actions import (
    CREATOR,
    GOOD_TITLE,
    OWNER,
    STRANGER,
    card_updates,
    click,
    create_action,
    open_modal,
    posted_point,
    quiet,
    sessions_of,
    smart_values,
    stored,
    to,
    today,
    updates,
)
from tests.e2e.test_channel_commands import reply_to
from tests.e2e.test_nudges import add_action, dms, local, run
from tests.fakeslack import FakeSlack

NEW_TITLE = "Run a 3-week Snacks promotion with Carrefour EU and Auchan"


def opened_view(slack: FakeSlack, count: int) -> dict[str, Any]:
    """The ``count``-th modal opened, as the fake Slack answered it (with id and hash)."""
    return slack.wait_for("views.open", count=count)[count - 1].response["view"]


def inputs_of(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}


def changes(app_server: Running, action_id: int) -> list[tuple[str, str | None, str | None]]:
    with sessions_of(app_server)() as session:
        return [(c.field, c.before, c.after) for c in session.scalars(
            select(ActionChange).where(ActionChange.action_id == action_id)
            .order_by(ActionChange.id))]


def edit_values(**changes: Any) -> dict[str, dict[str, Any]]:
    """The edit modal's fields as submitted (the others are not in it)."""
    day = today()
    values: dict[str, Any] = {
        BlockId.TITLE: state_value("plain_text_input", GOOD_TITLE),
        BlockId.EXPECTED_IMPACT: state_value("plain_text_input", "350K"),
        BlockId.RESOURCES: state_value("plain_text_input", "Trade budget 40K; Carrefour buyer"),
        BlockId.DUE_DATE: state_value("datepicker", (day + timedelta(days=60)).isoformat()),
        BlockId.MILESTONE_NAME.format(0): state_value("plain_text_input", "Agree the plan"),
        BlockId.MILESTONE_DATE.format(0): state_value("datepicker",
                                                      (day + timedelta(days=10)).isoformat()),
        BlockId.MILESTONE_NAME.format(1): state_value("plain_text_input", "Promo live"),
        BlockId.MILESTONE_DATE.format(1): state_value("datepicker",
                                                      (day + timedelta(days=30)).isoformat()),
    }
    values.update(changes)
    return {block_id: {INPUT: value} for block_id, value in values.items()}


# ------------------------------------------------------------------------------------
# Edit
# ------------------------------------------------------------------------------------

def test_the_owner_edits_and_every_change_is_kept(sim: SlackSim, slack: FakeSlack,
                                                  app_server: Running, loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    click(sim, created, ActionId.ACTION_EDIT, user=OWNER)
    view = opened_view(slack, 2)
    assert view["callback_id"] == CallbackId.EDIT_ACTION
    inputs = inputs_of(view)
    assert inputs[BlockId.TITLE]["initial_value"] == GOOD_TITLE
    assert inputs[BlockId.EXPECTED_IMPACT]["initial_value"] == "350K"
    assert inputs[BlockId.DUE_DATE]["initial_date"] == (today() + timedelta(days=60)).isoformat()
    assert inputs[BlockId.MILESTONE_NAME.format(1)]["initial_value"] == "Promo live"
    assert BlockId.OWNER not in inputs  # reassigning is its own button

    # The same SMART rules, inline: a vague title, a due date in the past.
    bad = sim.view_submission(view, edit_values(
        **{BlockId.TITLE: state_value("plain_text_input", "improve forecasting accuracy"),
           BlockId.DUE_DATE: state_value("datepicker",
                                         (today() - timedelta(days=2)).isoformat())}),
        user=OWNER)
    assert set(bad.json()["errors"]) == {BlockId.TITLE, BlockId.DUE_DATE}
    assert changes(app_server, created.id) == []

    day = today()
    reply = sim.view_submission(view, edit_values(**{
        BlockId.TITLE: state_value("plain_text_input", NEW_TITLE),
        BlockId.EXPECTED_IMPACT: state_value("plain_text_input", "400K"),
        BlockId.DUE_DATE: state_value("datepicker", (day + timedelta(days=45)).isoformat()),
        BlockId.MILESTONE_DATE.format(0): state_value("datepicker",
                                                      (day + timedelta(days=12)).isoformat()),
        BlockId.MILESTONE_NAME.format(1): state_value("plain_text_input", None),
        BlockId.MILESTONE_DATE.format(1): state_value("datepicker", None),
        BlockId.MILESTONE_NAME.format(2): state_value("plain_text_input", "Promo in 50 stores"),
        BlockId.MILESTONE_DATE.format(2): state_value("datepicker",
                                                      (day + timedelta(days=20)).isoformat()),
    }), user=OWNER)
    assert reply.status == 200 and not reply.body, reply.body
    action = stored(app_server, created.id)
    assert (action.title, action.expected_impact, action.due_date) == (
        NEW_TITLE, 400_000.0, day + timedelta(days=45))
    assert (action.edited_by, action.status) == (OWNER, Status.OPEN)
    assert sorted((m.name, m.due_date) for m in action.milestones) == [
        ("Agree the plan", day + timedelta(days=12)),
        ("Promo in 50 stores", day + timedelta(days=20))]
    assert changes(app_server, created.id) == [
        ("title", GOOD_TITLE, NEW_TITLE),
        ("due_date", (day + timedelta(days=60)).isoformat(),
         (day + timedelta(days=45)).isoformat()),
        ("expected_impact", "350000.00", "400000.00"),
        ("milestone", f"Agree the plan · {day + timedelta(days=10)}",
         f"Agree the plan · {day + timedelta(days=12)}"),
        ("milestone", None, f"Promo in 50 stores · {day + timedelta(days=20)}"),
        ("milestone", f"Promo live · {day + timedelta(days=30)}", None)]
    assert updates(app_server, created.id) == ["created", "edited"]
    [card] = card_updates(slack, created)
    text = json.dumps(card.args["blocks"], ensure_ascii=False)
    assert NEW_TITLE in text and "edited by <@U2>" in text and "400K of the gap" in text

    # Saving it again unchanged records nothing and leaves the card alone.
    same = sim.view_submission(view, edit_values(**{
        BlockId.TITLE: state_value("plain_text_input", NEW_TITLE),
        BlockId.EXPECTED_IMPACT: state_value("plain_text_input", "400K"),
        BlockId.DUE_DATE: state_value("datepicker", (day + timedelta(days=45)).isoformat()),
        BlockId.MILESTONE_DATE.format(0): state_value("datepicker",
                                                      (day + timedelta(days=12)).isoformat()),
        BlockId.MILESTONE_NAME.format(1): state_value("plain_text_input", "Promo in 50 stores"),
        BlockId.MILESTONE_DATE.format(1): state_value("datepicker",
                                                      (day + timedelta(days=20)).isoformat()),
    }), user=OWNER)
    assert same.status == 200 and not same.body
    quiet()
    assert len(changes(app_server, created.id)) == 6
    assert len(card_updates(slack, created)) == 1
    assert slack.violations == []


def test_the_creator_edits_and_the_owner_is_told_with_a_link(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    click(sim, created, ActionId.ACTION_EDIT, user=CREATOR)
    view = opened_view(slack, 2)
    reply = sim.view_submission(view, edit_values(**{
        BlockId.TITLE: state_value("plain_text_input", NEW_TITLE)}), user=CREATOR)
    assert reply.status == 200 and not reply.body
    dm = slack.wait_for("chat.postMessage", count=2, predicate=to(OWNER))[1]
    assert "edited your SMART action" in dm.args["text"]
    assert "|Open its card>" in dm.args["text"]


def test_a_stranger_cannot_edit_or_cancel(sim: SlackSim, slack: FakeSlack,
                                          app_server: Running, loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    for button in (ActionId.ACTION_EDIT, ActionId.ACTION_CANCEL):
        click(sim, created, button, user=STRANGER)
    told = slack.wait_for("chat.postEphemeral", count=2, predicate=to("C1"))
    assert all("Only the action's owner" in t.args["text"] for t in told)
    quiet()
    assert len(slack.calls_to("views.open")) == 1  # only the creation modal
    # A forged submission of the edit modal is refused inline, nothing changes.
    view = {"callback_id": CallbackId.EDIT_ACTION,
            "private_metadata": json.dumps({"action": created.id})}
    forged = sim.view_submission(view, edit_values(**{
        BlockId.TITLE: state_value("plain_text_input", NEW_TITLE)}), user=STRANGER)
    assert "Only the action's owner" in forged.json()["errors"][BlockId.TITLE]
    assert stored(app_server, created.id).title == GOOD_TITLE


# ------------------------------------------------------------------------------------
# Cancel
# ------------------------------------------------------------------------------------

def test_cancelled_actions_leave_coverage_and_nudges(sim: SlackSim, slack: FakeSlack,
                                                     app_server: Running, loaded: int) -> None:
    created = create_action(sim, slack, app_server)
    point_id = stored(app_server, created.id).trigger_point_id
    assert point_id is not None
    sessions = sessions_of(app_server)
    before = point_coverage(sessions, "T1", point_id)
    assert before is not None and before.actions == 1
    click(sim, created, ActionId.ACTION_CANCEL, user=CREATOR)
    view = opened_view(slack, 2)
    assert view["callback_id"] == CallbackId.CANCEL_ACTION
    empty = sim.view_submission(view, {BlockId.CANCEL_REASON: {
        INPUT: state_value("plain_text_input", "   ")}}, user=CREATOR)
    assert set(empty.json()["errors"]) == {BlockId.CANCEL_REASON}
    assert stored(app_server, created.id).status == Status.OPEN

    reply = sim.view_submission(view, {BlockId.CANCEL_REASON: {
        INPUT: state_value("plain_text_input", "Carrefour said no <!channel>")}}, user=CREATOR)
    assert reply.status == 200 and not reply.body
    action = stored(app_server, created.id)
    assert (action.status, action.cancel_reason) == (Status.CANCELLED,
                                                     "Carrefour said no <!channel>")
    assert updates(app_server, created.id) == ["created", "cancelled"]
    [card] = card_updates(slack, created)
    text = json.dumps(card.args["blocks"], ensure_ascii=False)
    assert "Cancelled (not doing): Carrefour said no &lt;!channel&gt;" in text
    assert not any(b["type"] == "actions" for b in card.args["blocks"])  # no more buttons
    after = point_coverage(sessions, "T1", point_id)
    assert after is not None and (after.actions, after.covered) == (0, 0.0)
    # Its milestones and due date are never nudged, whenever the clock runs.
    settings = Settings(DATABASE_URL=app_server.settings.database_url)
    for days in (0, 10, 30, 60, 90):
        moment = datetime.combine(today() + timedelta(days=days), datetime.min.time()
                                  ).astimezone() + timedelta(hours=12)
        with sessions() as session:
            assert [t for t in due_nudges(session, settings, moment)
                    if t.action_id == created.id] == []
    # And it cannot be changed any more.
    click(sim, created, ActionId.ACTION_EDIT, user=OWNER)
    [told] = slack.wait_for("chat.postEphemeral", predicate=to("C1"))
    assert "cancelled" in told.args["text"]
    assert slack.violations == []


# ------------------------------------------------------------------------------------
# The SMART modal: milestones one at a time, defaults
# ------------------------------------------------------------------------------------

def test_milestones_are_added_one_at_a_time_up_to_five(sim: SlackSim, slack: FakeSlack,
                                                       app_server: Running, loaded: int) -> None:
    point_id, ts = posted_point(sim, slack, app_server)
    open_modal(sim, slack, point_id, ts)
    view = opened_view(slack, 1)
    assert len(view["blocks"]) <= 14  # not 22: no milestone rows until asked for
    for count in range(1, 6):
        reply = sim.block_action({"action_id": ActionId.ADD_MILESTONE, "value": str(count - 1),
                                  "block_id": BlockId.ADD_MILESTONE}, view=view, user=CREATOR)
        assert reply.status == 200
        updated = slack.wait_for("views.update", count=count)[count - 1]
        assert (updated.args["view_id"], updated.args["hash"]) == (view["id"], view["hash"])
        view = updated.response["view"]
        rows = [b["block_id"] for b in view["blocks"]
                if b.get("block_id", "").startswith("milestone_name_")]
        assert rows == [BlockId.MILESTONE_NAME.format(i) for i in range(count)]
        has_button = any(b.get("block_id") == BlockId.ADD_MILESTONE for b in view["blocks"])
        assert has_button == (count < 5)
        assert view["callback_id"] == CallbackId.SMART_ACTION
    quiet()
    assert len(slack.calls_to("views.update")) == 5
    # The grown modal submits like the first one.
    reply = sim.view_submission(view, smart_values(), user=CREATOR)
    assert reply.status == 200 and not reply.body
    assert slack.violations == []


def test_expected_impact_defaults_to_what_is_not_yet_covered_and_due_to_the_meeting(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    meeting_day = today() + timedelta(days=20)
    reply_to(sim, slack, f"meeting {meeting_day.isoformat()} 10:00 tz=Australia/Sydney")
    created = create_action(sim, slack, app_server)  # expected to close 350K
    with sessions_of(app_server)() as session:
        point = session.scalars(select(TriggerPoint).where(
            TriggerPoint.message_ts == created.point_ts)).one()
        point_id, gap = point.id, point.gap
    view = open_modal(sim, slack, point_id, created.point_ts)
    inputs = inputs_of(view)
    expected = parse_amount(inputs[BlockId.EXPECTED_IMPACT]["initial_value"])
    assert expected == pytest.approx(abs(gap) - 350_000, rel=0.005)
    assert inputs[BlockId.DUE_DATE]["initial_date"] == (
        meeting_day - timedelta(days=1)).isoformat()


# ------------------------------------------------------------------------------------
# The message shortcut
# ------------------------------------------------------------------------------------

def test_the_shortcut_on_a_thread_message_opens_the_modal_prefilled(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    point_id, ts = posted_point(sim, slack, app_server)
    said = "Relist the 12 Snacks SKUs &amp; run a promo with Carrefour\nby May"
    reply = sim.message_shortcut(CallbackId.SMART_ACTION_SHORTCUT, {
        "ts": "1800000000.000200", "thread_ts": ts, "text": said}, user=CREATOR)
    assert reply.status == 200 and reply.elapsed < 3.0
    view = slack.wait_for("views.open")[0].args["view"]
    assert view["callback_id"] == CallbackId.SMART_ACTION
    assert json.loads(view["private_metadata"])["point"] == point_id
    assert inputs_of(view)[BlockId.TITLE]["initial_value"] == (
        "Relist the 12 Snacks SKUs & run a promo with Carrefour by May")
    # On the trigger point itself too; anywhere else, a short private answer.
    sim.message_shortcut(CallbackId.SMART_ACTION_SHORTCUT, {"ts": ts, "text": "gap"})
    slack.wait_for("views.open", count=2)
    sim.message_shortcut(CallbackId.SMART_ACTION_SHORTCUT,
                         {"ts": "1800000000.000900", "text": "lunch?"})
    [told] = slack.wait_for("chat.postEphemeral", predicate=to("C1"))
    assert "trigger point" in told.args["text"]
    quiet()
    assert len(slack.calls_to("views.open")) == 2
    assert slack.violations == []


# ------------------------------------------------------------------------------------
# Help where people stumble
# ------------------------------------------------------------------------------------

def test_an_unknown_subcommand_names_the_subcommands(sim: SlackSim, slack: FakeSlack,
                                                     app_server: Running, loaded: int) -> None:
    text = reply_to(sim, slack, "acitons")
    assert text.startswith("I don't know `acitons`: did you mean `actions`?")
    assert "`watch`" in text and "`meeting`" in text
    assert reply_to(sim, slack, "bogus").startswith("I don't know `bogus`.")
    # With "=", it is a filter: did-you-mean on the dimension.
    assert "Did you mean “region”?" in reply_to(sim, slack, "regoin=EU")
    assert reply_to(sim, slack, "bogus post").startswith("I don't know `bogus`.")
    quiet()
    assert not [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == "C1"]
    # "post" alone is the flag, not an unknown word: the whole data's gap, posted.
    sim.command("post")
    slack.wait_for("chat.postMessage", predicate=to("C1"))


# ------------------------------------------------------------------------------------
# Nudges: the owner's own day, and a link to the card
# ------------------------------------------------------------------------------------

SYDNEY, NEW_YORK = "Australia/Sydney", "America/New_York"
MILESTONE_DAY = date(2026, 12, 17)  # a Thursday


def test_nudges_count_days_in_the_owners_zone_and_link_the_card(
        db_url: str, slack: FakeSlack) -> None:
    slack.users["USYD"] = {"tz": SYDNEY, "tz_offset": 39600, "real_name": "Sam"}
    slack.users["UNYC"] = {"tz": NEW_YORK, "tz_offset": -18000, "real_name": "Jo"}
    ids = [add_action(db_url, owner=owner, due=date(2027, 1, 20),
                      thread_ts=f"1700000000.00010{i}",
                      milestones=[("Carrefour listing", MILESTONE_DAY)])
           for i, owner in enumerate(("USYD", "UNYC"))]
    with get_sessionmaker(db_url).begin() as session:
        session.execute(update(Action).where(Action.id.in_(ids))
                        .values(card_ts="1700000000.000500"))
    # Mon 14 Dec, 09:00 in Sydney: still Sunday 13 Dec in UTC (the company's zone).
    run(db_url, slack, local(date(2026, 12, 14), 9, 0, SYDNEY))
    [first] = dms(slack, "USYD")
    assert "is due in 3 days (Thu 17 Dec)" in first.args["text"]
    assert "<https://" in first.args["text"] and "|Open its card>" in first.args["text"]
    assert "p1700000000000500" in first.args["text"]  # the card's message, not the gap's
    run(db_url, slack, local(date(2026, 12, 14), 9, 0, NEW_YORK))
    [ny_first] = dms(slack, "UNYC")
    assert "is due in 3 days (Thu 17 Dec)" in ny_first.args["text"]
    # Thu 17 Dec, 09:00 in Sydney (Wed 16 Dec, 22:00 UTC): due today, not "tomorrow".
    run(db_url, slack, local(MILESTONE_DAY, 9, 0, SYDNEY))
    on_the_day = dms(slack, "USYD")[-1]
    assert "Milestone “Carrefour listing”" in on_the_day.args["text"]
    assert "is due today" in on_the_day.args["text"]
    # The card in the DM counts in the owner's day too.
    card = json.dumps(on_the_day.args["blocks"], ensure_ascii=False)
    assert f"due {MILESTONE_DAY.isoformat()} (today)" in card
    run(db_url, slack, local(MILESTONE_DAY, 9, 0, NEW_YORK))
    assert "is due today" in dms(slack, "UNYC")[-1].args["text"]
    assert slack.violations == []


def test_edit_and_cancel_reset_the_stored_next_nudge_day(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    """The sweep reads only items whose stored day has come: an edit of the dates must
    make it work the day out again, a cancellation must take the action out for good."""
    from sop_core.models import Milestone
    from sop_core.nudge_days import NEVER

    created = create_action(sim, slack, app_server)
    later = date(2030, 1, 1)
    sessions = sessions_of(app_server)

    def stored_days() -> tuple[date | None, list[date | None]]:
        with sessions() as session:
            action = session.get(Action, created.id)
            assert action is not None
            return action.next_nudge_day, sorted(
                (m.next_nudge_day for m in action.milestones), key=str)

    def pretend_swept() -> None:
        with sessions.begin() as session:
            session.execute(update(Action).where(Action.id == created.id)
                            .values(next_nudge_day=later))
            session.execute(update(Milestone).where(Milestone.action_id == created.id)
                            .values(next_nudge_day=later))

    pretend_swept()
    click(sim, created, ActionId.ACTION_EDIT, user=OWNER)
    view = opened_view(slack, 2)
    day = today()
    reply = sim.view_submission(view, edit_values(**{
        BlockId.DUE_DATE: state_value("datepicker", (day + timedelta(days=40)).isoformat()),
        BlockId.MILESTONE_DATE.format(0): state_value("datepicker",
                                                      (day + timedelta(days=5)).isoformat())}),
        user=OWNER)
    assert reply.status == 200 and not reply.body
    action_day, milestone_days = stored_days()
    assert action_day is None and None in milestone_days  # worked out again by the sweep

    pretend_swept()
    click(sim, created, ActionId.ACTION_CANCEL, user=OWNER)
    view = opened_view(slack, 3)
    reply = sim.view_submission(view, {BlockId.CANCEL_REASON: {
        INPUT: state_value("plain_text_input", "Superseded by the national promo")}},
        user=OWNER)
    assert reply.status == 200 and not reply.body
    assert stored_days() == (NEVER, [NEVER, NEVER])
