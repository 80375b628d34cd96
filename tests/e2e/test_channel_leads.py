"""Channel leads over signed HTTP: an open channel, then a guarded one; admins; Slack
unable to say who is an admin; root-cause revisions kept and shown as revised."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.ids import INPUT, ActionId, BlockId
from sop_core.models import ChannelSettings, RootCauseRevision, TriggerPoint
from tests.e2e.conftest import Running
from tests.e2e.slack_sim import SlackSim, state_value
from tests.e2e.test_threads import ephemeral_texts, posted_point, sessions_of
from tests.e2e.waiting import eventually
from tests.fakeslack import FakeSlack


def told(slack: FakeSlack, count: int) -> str:
    """The latest of ``count`` ephemeral answers."""
    slack.wait_for("response_url", count=count)
    return ephemeral_texts(slack)[-1]


def rule_of(app_server: Running) -> tuple[Any, Any, list[str]]:
    with sessions_of(app_server)() as session:
        found = session.get(ChannelSettings, ("T1", "C1"))
        return (None, None, []) if found is None else (
            found.threshold_pct, found.floor, list(found.leads or []))


def test_leads_guard_the_channels_rules_once_named(
        sim: SlackSim, slack: FakeSlack, app_server: Running) -> None:
    assert "no leads yet" in (sim.command("leads") and told(slack, 1))
    # A lead-less channel is open: anyone sets the rule, and names the leads.
    sim.command("threshold 7%", user="U9")
    assert "7%" in told(slack, 2)
    sim.command("leads <@U2|bob> <@U3>", user="U9")
    assert told(slack, 3).startswith("This channel's leads are now <@U2>, <@U3>")
    assert rule_of(app_server)[2] == ["U2", "U3"]

    # Now someone else is refused, and told who can help; nothing changes.
    for n, command in enumerate(("threshold 99% floor=1B", "meeting off",
                                 "watch region=EU", "unwatch region=EU",
                                 "leads <@U9>"), start=4):
        sim.command(command, user="U9")
        answer = told(slack, n)
        assert "Only this channel's leads (<@U2>, <@U3>) or a workspace admin" in answer, \
            (command, answer)
    assert rule_of(app_server) == (7.0, None, ["U2", "U3"])

    # A lead may; so may a workspace admin or owner (users.info says so).
    sim.command("threshold 6%", user="U2")
    assert "6%" in told(slack, 9)
    slack.users["U7"] = {"is_admin": True}
    slack.users["U8"] = {"is_owner": True}
    sim.command("threshold 4%", user="U7")
    assert "4%" in told(slack, 10)
    sim.command("leads <@U8|owner>", user="U8")
    assert "<@U8>" in told(slack, 11)
    assert rule_of(app_server) == (4.0, None, ["U8"])
    # Showing the leads or the rule needs no rights.
    sim.command("leads", user="U9")
    assert "This channel's leads: <@U8>" in told(slack, 12)


def test_when_slack_cannot_say_who_is_an_admin_the_change_is_refused(
        sim: SlackSim, slack: FakeSlack, app_server: Running) -> None:
    sim.command("leads <@U2>", user="U1")
    told(slack, 1)
    slack.fail_next("users.info", status=500, times=5)
    sim.command("threshold 50%", user="U9")
    assert "Slack did not say whether you are a workspace admin" in told(slack, 2)
    assert rule_of(app_server)[0] is None


def values(category: str, summary: str) -> dict[str, dict[str, Any]]:
    return {BlockId.ROOT_CAUSE_CATEGORY: {INPUT: state_value("static_select", category)},
            BlockId.ROOT_CAUSE_SUMMARY: {INPUT: state_value("plain_text_input", summary)}}


def test_only_leads_confirm_a_root_cause_and_a_replaced_one_is_kept(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    ts, point_id = posted_point(sim, slack, app_server)
    sim.button(ActionId.CONFIRM_ROOT_CAUSE, str(point_id), message_ts=ts, user="U3")
    [opened] = slack.wait_for("views.open")
    view = opened.args["view"]
    assert sim.view_submission(view, values("promotion", "Promo moved to Q1"),
                               user="U3").status == 200
    eventually(lambda: _point(app_server).root_cause_confirmed_by == "U3")

    sim.command("leads <@U2>", user="U3")
    eventually(lambda: rule_of(app_server)[2] == ["U2"])
    # Not a lead: the button answers with who can, and no form opens.
    sim.button(ActionId.CONFIRM_ROOT_CAUSE, str(point_id), message_ts=ts, user="U3")
    eventually(lambda: any("can replace the confirmed root cause" in text
                           for text in ephemeral_texts(slack)))
    assert len(slack.calls_to("views.open")) == 1
    # A form opened earlier cannot be submitted either.
    refused = sim.view_submission(view, values("competition", "Price cut"), user="U3")
    assert "Only this channel's leads or a workspace admin" in \
        refused.json()["errors"][BlockId.ROOT_CAUSE_SUMMARY]
    assert _point(app_server).root_cause_category == "promotion"

    # The lead replaces it: the earlier version is kept with its author and time.
    assert sim.view_submission(view, values("competition", "Price cut by a competitor"),
                               user="U2").status == 200
    eventually(lambda: _point(app_server).root_cause_confirmed_by == "U2")
    with sessions_of(app_server)() as session:
        [kept] = session.scalars(select(RootCauseRevision)).all()
        assert (kept.trigger_point_id, kept.category, kept.summary, kept.confirmed_by,
                kept.replaced_by) == (point_id, "promotion", "Promo moved to Q1", "U3", "U2")
        assert kept.confirmed_at is not None and kept.replaced_at >= kept.confirmed_at

    before = len(ephemeral_texts(slack))
    sim.command("history region=EU", user="U9")
    slack.wait_for("response_url", count=before + 1)
    answer = slack.calls_to("response_url")[-1]
    assert "revised" in str(answer.args.get("blocks") or answer.args.get("text"))


def _point(app_server: Running) -> TriggerPoint:
    with sessions_of(app_server)() as session:
        point = session.get(TriggerPoint, 1) or session.scalars(select(TriggerPoint)).first()
        assert point is not None
        return point


def test_help_explains_the_leads(sim: SlackSim, app_server: Running) -> None:
    reply = sim.command("help")
    assert reply.status == 200
    text = str(reply.json()["blocks"])
    assert "/gap leads @alice @bob" in text and "workspace admin" in text
