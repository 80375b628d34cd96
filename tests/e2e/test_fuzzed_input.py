"""Hostile text in every modal and in ``/gap``, over signed HTTP.

Each modal (SMART action, progress, complete, reassign, confirm root cause, history
search) and the slash command get a fixed list of hostile texts (10,000 characters,
control characters, bidi and zero-width characters, SQL fragments, mrkdwn and link
injection, pre-escaped entities) in every field, then a few Hypothesis examples mixing
them with arbitrary text. Whatever comes in:

- the app answers 200 within Slack's 3 s, never a 500, nothing logged as an error;
- a modal answers ``response_action: errors`` at the block of the bad field (short
  messages), or accepts it, and then it is stored as typed (blanks and control
  characters aside) and shown escaped;
- every Slack call passes FakeSlack's checks, and no ``<!channel>``, ``<@U123>`` or
  ``<https://evil…>`` typed by a person reaches any mrkdwn the app sends;
- bad command text changes nothing in the database.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.blocks.action_modal import with_another_milestone
from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core.db import get_sessionmaker
from sop_core.models import Action, ActionUpdate, Milestone, Status, TriggerPoint
from sop_core.smart import MAX_MILESTONES
from tests.e2e.conftest import Running, database_rows
from tests.e2e.slack_sim import Reply, SlackSim, state_value
from tests.e2e.test_actions import create_action, open_modal, posted_point, smart_values
from tests.e2e.waiting import eventually
from tests.fakeslack import Call, FakeSlack
from tests.fakeslack.checks import view_problems

HOSTILE: dict[str, str] = {
    "10,000 characters": "Run a Carrefour EU promo " + "x" * 9_975,
    "control characters": "".join(map(chr, range(0x20))) + "Run 2 promos with Carrefour EU",
    "NUL alone": "\x00",
    "bidi override": "Run 2 \u202epromos\u202c with Carrefour EU",
    "zero-width": "Run\u200b 2\u200c promos\u200d with\ufeff Carrefour EU",
    "SQL": "'; DROP TABLE actions;--",
    "SQL in a title": "Run 2 promos' OR '1'='1; DELETE FROM milestones; -- with Carrefour",
    "channel ping": "<!channel> Run 2 promos with Carrefour EU",
    "here, everyone, a group": "<!here> <!everyone> <!subteam^S123|team> Run 2 promos",
    "user mention": "<@U123> Run 2 promos with Carrefour EU",
    "fake link": "<https://evil.example/login|Run 2 promos> with Carrefour EU",
    "mrkdwn": "*bold* _Run_ ~2~ `promos` > with Carrefour EU",
    "pre-escaped": "&lt;!channel&gt; &amp; &gt; Run 2 promos",
    "emoji and astral": "🚀 Run 2 promos with 𝕏 Carrefour EU",
    "newlines": "Run 2 promos\nwith\r\nCarrefour EU",
    "blank": "   ",
    "quotes and escapes": "Run \"2\" promos \\ with 'Carrefour' %s {0} $(id)",
}
# What a person typed that must never reach mrkdwn unescaped.
INJECTED = ("<!channel", "<!here", "<!everyone", "<!subteam", "<@U123", "<https://evil",
            "<http://evil")
ERROR_MAX = 300  # an inline error: a short sentence
FRAGMENTS = ["<!channel>", "<@U123>", "<https://evil.example|click>", "*bold*", "&lt;",
             "&amp;", "'; DROP TABLE actions;--", "\x00", "\x1b[31m", "\u202e", "\u200b",
             "\ufeff", "<", ">", "&", "\n", "\t", "%s", "{}", "\\", "\"", "'", "=", ",",
             "region=", "Carrefour", "2", "1e309", "-0", "NaN"]
hostile_text = st.lists(st.one_of(
    st.sampled_from(FRAGMENTS),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
), max_size=10).map("".join)
FEW = settings(max_examples=15, deadline=None, database=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------
# What every answer and every Slack call must satisfy
# ------------------------------------------------------------------------------------

def mrkdwn_of(value: object) -> Iterator[str]:
    """Every mrkdwn text object in blocks or a view (plain_text shows text literally)."""
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            yield value["text"]
        for item in value.values():
            yield from mrkdwn_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from mrkdwn_of(item)


def sent_mrkdwn(call: Call) -> list[str]:
    """What Slack parses as mrkdwn in a call: message text, comments, mrkdwn blocks."""
    texts = [str(call.args[key]) for key in ("text", "initial_comment")
             if isinstance(call.args.get(key), str)]
    return texts + list(mrkdwn_of(call.args.get("blocks"))) + list(
        mrkdwn_of(call.args.get("view")))


def assert_nothing_injected(texts: list[str], where: str,
                            needles: tuple[str, ...] = INJECTED) -> None:
    for text in texts:
        for needle in needles:
            assert needle not in text, f"{where}: {needle!r} unescaped in {text[:300]!r}"


class Guard:
    """Checks every reply, every Slack call and the server log as a test goes."""

    def __init__(self, slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
        self.slack, self.caplog, self.checked = slack, caplog, 0

    def reply(self, reply: Reply, what: str) -> Any:
        assert reply.status == 200, (what, reply.status, reply.body[:300])
        assert reply.elapsed < 3.0, (what, reply.elapsed)
        body = reply.json() if reply.body else None
        if isinstance(body, dict):
            assert_nothing_injected(list(mrkdwn_of(body)), f"answer to {what}")
            if body.get("response_action") == "update":
                assert view_problems(body["view"]) == [], what
                for block in body["view"]["blocks"]:  # Slack refuses a longer initial value
                    element = block.get("element") or {}
                    if "initial_value" in element and "max_length" in element:
                        assert len(element["initial_value"]) <= element["max_length"], what
            for block_id, message in (body.get("errors") or {}).items():
                assert 0 < len(message) <= ERROR_MAX, (what, block_id, message)
        return body

    def calls(self, needles: tuple[str, ...] = INJECTED) -> None:
        """Slack calls made since the last check: valid, and nothing injected."""
        calls = self.slack.calls
        for call in calls[self.checked:]:
            assert_nothing_injected(sent_mrkdwn(call), call.method, needles)
        self.checked = len(calls)
        assert self.slack.violations == []
        errors = [r for r in self.caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]


@pytest.fixture
def guard(slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> Guard:
    caplog.set_level(logging.WARNING)
    return Guard(slack, caplog)


def sessions_of(app_server: Running) -> sessionmaker[Session]:
    return get_sessionmaker(app_server.settings.database_url)


def visible(text: str | None) -> str:
    """Text without blanks or control characters: what must survive storage as typed."""
    return "".join(ch for ch in text or "" if not ch.isspace()
                   and unicodedata.category(ch) not in {"Cc", "Cf"})


def settle(slack: FakeSlack, count: Callable[[], int], expected: int) -> None:
    """Wait for the app's work after ack() (cards, DMs, card updates)."""
    eventually(lambda: count() >= expected, timeout=10)


def _one_of(block_id: str, allowed: set[str], body: Any, what: str) -> bool:
    """True if accepted; else the errors must be at the fuzzed field's block."""
    if not body:
        return True
    assert body.get("response_action") == "errors", (what, body)
    assert set(body["errors"]) <= allowed, (what, body)
    assert block_id in body["errors"], (what, body)
    return False


# ------------------------------------------------------------------------------------
# The SMART action modal
# ------------------------------------------------------------------------------------

TEXT_FIELDS = {  # block id -> the stored column it lands in (None: an amount)
    BlockId.TITLE: "title", BlockId.METRIC: "metric_name", BlockId.RESOURCES: "resources",
    BlockId.BASELINE: None, BlockId.TARGET: None, BlockId.EXPECTED_IMPACT: None,
    BlockId.MILESTONE_NAME.format(0): "milestone",
}
SELECTS = {BlockId.OWNER: "users_select", BlockId.CONFIDENCE: "static_select",
           BlockId.DUE_DATE: "datepicker", BlockId.MILESTONE_DATE.format(1): "datepicker"}


def test_fuzzed_smart_action_modal(sim: SlackSim, slack: FakeSlack, app_server: Running,
                                   loaded: int, guard: Guard) -> None:
    point_id, ts = posted_point(sim, slack, app_server)
    view = open_modal(sim, slack, point_id, ts)
    for _ in range(MAX_MILESTONES):  # every milestone row shown ("Add milestone" × 5)
        grown = with_another_milestone(view)
        assert grown is not None
        view = {**view, **grown}
    blocks = {b["block_id"] for b in view["blocks"] if b["type"] == "input"}
    sessions = sessions_of(app_server)
    accepted: list[tuple[int, str, str]] = []
    serial = iter(range(10**6))

    def submit(block_id: str, text: str) -> None:
        kind = SELECTS.get(block_id, "plain_text_input")
        title = f"Run promo wave {next(serial)} with Carrefour EU"
        values = smart_values(**{BlockId.TITLE: state_value("plain_text_input", title),
                                 block_id: state_value(kind, text)})
        what = f"{block_id}={text[:60]!r}"
        body = guard.reply(sim.view_submission(view, values), what)
        if _one_of(block_id, blocks, body, what):
            with sessions() as session:
                newest = session.scalar(select(func.max(Action.id)))
            assert newest is not None
            accepted.append((newest, block_id, text))

    for block_id in [*TEXT_FIELDS, *SELECTS]:
        for text in HOSTILE.values():
            submit(block_id, text)

    @FEW
    @given(st.sampled_from([*TEXT_FIELDS, *SELECTS]), hostile_text)
    def examples(block_id: str, text: str) -> None:
        submit(block_id, text)

    examples()
    # Each saved action: a card in the thread and a DM to its owner, after ack().
    def posts() -> int:
        return len(slack.calls_to("chat.postMessage"))

    settle(slack, posts, 1 + 2 * len(accepted))
    guard.calls()
    with sessions() as session:
        for action_id, block_id, text in accepted:
            action = session.get(Action, action_id)
            assert action is not None
            column = TEXT_FIELDS.get(block_id)
            if column == "milestone":
                names = session.scalars(select(Milestone.name).where(
                    Milestone.action_id == action_id)).all()
                assert visible(text) in {visible(n) for n in names}, (text, names)
            elif column is not None:
                assert visible(getattr(action, column)) == visible(text), (block_id, text)
    assert accepted, "some hostile text is a fine title or note"
    # What is stored as typed is escaped where it is shown.
    cards = [c for c in slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    shown = json.dumps([c.args for c in cards], ensure_ascii=False)
    assert "&lt;!channel&gt;" in shown


# ------------------------------------------------------------------------------------
# The action card's modals: progress, complete, reassign
# ------------------------------------------------------------------------------------

CARD_MODALS: dict[str, tuple[ActionId, dict[str, str]]] = {
    CallbackId.PROGRESS: (ActionId.ACTION_PROGRESS, {
        BlockId.PROGRESS_VALUE: "3.5M", BlockId.PROGRESS_NOTE: "Week 1 went well"}),
    CallbackId.COMPLETE: (ActionId.ACTION_COMPLETE, {
        BlockId.REALISED_IMPACT: "280K", BlockId.PROGRESS_NOTE: "Smaller uplift"}),
    CallbackId.REASSIGN: (ActionId.ACTION_REASSIGN, {BlockId.NEW_OWNER: "U3"}),
}


def test_fuzzed_card_modals(sim: SlackSim, slack: FakeSlack, app_server: Running,
                            loaded: int, guard: Guard) -> None:
    created = create_action(sim, slack, app_server)
    sessions = sessions_of(app_server)
    views: dict[str, dict[str, Any]] = {}
    for callback, (button, _) in CARD_MODALS.items():
        count = len(slack.calls_to("views.open")) + 1
        sim.button(button, str(created.id), user="U1", message_ts=created.card_ts,
                   thread_ts=created.point_ts)
        views[callback] = slack.wait_for("views.open", count=count)[-1].args["view"]
    updates_made = 0

    def submit(callback: str, block_id: str, text: str) -> None:
        nonlocal updates_made
        _, good = CARD_MODALS[callback]
        values = {b: {INPUT: state_value("users_select" if b == BlockId.NEW_OWNER
                                         else "plain_text_input", text if b == block_id else v)}
                  for b, v in good.items()}
        what = f"{callback} {block_id}={text[:60]!r}"
        # The creator may change the action whoever owns it now.
        body = guard.reply(sim.view_submission(views[callback], values, user="U1"), what)
        if not _one_of(block_id, set(good), body, what):
            return
        updates_made += 1
        with sessions.begin() as session:
            update_row = session.scalars(select(ActionUpdate).where(
                ActionUpdate.action_id == created.id).order_by(ActionUpdate.id.desc())).first()
            assert update_row is not None
            action = session.get(Action, created.id)
            assert action is not None
            if block_id == BlockId.PROGRESS_NOTE:
                assert visible(update_row.note) == visible(text), (what, update_row.note)
            if block_id == BlockId.NEW_OWNER:
                assert action.owner_id == text.strip()
            if action.status != Status.OPEN:  # completed: open again for the next example
                session.execute(update(Action).where(Action.id == created.id).values(
                    status=Status.OPEN, completed_at=None, realised_impact=None))

    fields = [(callback, block_id) for callback, (_, good) in CARD_MODALS.items()
              for block_id in good]
    for callback, block_id in fields:
        for text in HOSTILE.values():
            submit(callback, block_id, text)

    @FEW
    @given(st.sampled_from(fields), hostile_text)
    def examples(field: tuple[str, str], text: str) -> None:
        submit(*field, text)

    examples()
    settle(slack, lambda: len(slack.calls_to("chat.update")), updates_made)
    guard.calls()


# ------------------------------------------------------------------------------------
# Confirming a root cause
# ------------------------------------------------------------------------------------

def test_fuzzed_root_cause_confirmation(sim: SlackSim, slack: FakeSlack, app_server: Running,
                                        loaded: int, guard: Guard) -> None:
    from tests.e2e.test_threads import posted_point as thread_point

    ts, point_id = thread_point(sim, slack, app_server)
    sim.button(ActionId.CONFIRM_ROOT_CAUSE, str(point_id), message_ts=ts)
    [opened] = slack.wait_for("views.open")
    view = opened.args["view"]
    blocks = {BlockId.ROOT_CAUSE_CATEGORY, BlockId.ROOT_CAUSE_SUMMARY}
    sessions = sessions_of(app_server)
    confirmed = 0

    def submit(block_id: str, text: str) -> None:
        nonlocal confirmed
        values = {
            BlockId.ROOT_CAUSE_CATEGORY: {INPUT: state_value(
                "static_select", text if block_id == BlockId.ROOT_CAUSE_CATEGORY else "demand")},
            BlockId.ROOT_CAUSE_SUMMARY: {INPUT: state_value(
                "plain_text_input", text if block_id == BlockId.ROOT_CAUSE_SUMMARY
                else "E-commerce demand is soft")}}
        what = f"{block_id}={text[:60]!r}"
        body = guard.reply(sim.view_submission(view, values, user="U3"), what)
        if not _one_of(block_id, blocks, body, what):
            return
        confirmed += 1
        if block_id == BlockId.ROOT_CAUSE_SUMMARY:
            def stored() -> bool:
                with sessions() as session:
                    point = session.get(TriggerPoint, point_id)
                    assert point is not None
                    return visible(point.root_cause_summary) == visible(text)

            eventually(stored)  # the listener stores it after ack()

    for block_id in sorted(blocks):
        for text in HOSTILE.values():
            submit(block_id, text)

    @FEW
    @given(st.sampled_from(sorted(blocks)), hostile_text)
    def examples(block_id: str, text: str) -> None:
        submit(block_id, text)

    examples()

    def notes() -> int:
        return len([c for c in slack.calls_to("chat.postMessage")
                    if "Root cause confirmed" in json.dumps(c.args.get("blocks"))])

    settle(slack, notes, confirmed)
    guard.calls()


def test_hostile_thread_replies_are_recorded_and_summarised_escaped(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int,
        guard: Guard) -> None:
    """Not a modal, but the same text reaches the confirmation modal and the summary."""
    from tests.e2e.test_threads import notes
    from tests.e2e.test_threads import posted_point as thread_point

    ts, point_id = thread_point(sim, slack, app_server)
    typed = {f"1700000600.{n:06d}": text for n, text in enumerate(HOSTILE.values(), 1)
             if text.strip()}
    for n, (message_ts, text) in enumerate(typed.items()):
        # Slack sends &, < and > escaped in message text. Five people (a summary shows
        # three points of each) so that the pings and links are among those shown.
        guard.reply(sim.thread_reply(_escaped_by_slack(text), thread_ts=ts,
                                     user=f"U{20 + n % 5}", ts=message_ts), "thread reply")
    eventually(lambda: len(notes(app_server)) == len(typed), timeout=10)
    recorded = {message_ts: text for _, message_ts, text, _ in notes(app_server)}
    assert {k: visible(v) for k, v in recorded.items()} == {
        k: visible(v) for k, v in typed.items()}
    guard.reply(sim.button(ActionId.SUMMARIZE, str(point_id), message_ts=ts), "summarize")
    [summary] = slack.wait_for("chat.postMessage", predicate=lambda c: "Root-cause summary"
                               in json.dumps(c.args.get("blocks"), ensure_ascii=False))
    shown = json.dumps(summary.args["blocks"], ensure_ascii=False)
    assert "&lt;!channel&gt;" in shown and "&lt;https://evil" in shown  # shown, escaped
    # A summary quotes a person's mentions of people as mentions (bot.blocks.thread.quote):
    # in a message, "<@U123>" is how Slack writes one.
    guard.calls(needles=tuple(n for n in INJECTED if n != "<@U123"))


# ------------------------------------------------------------------------------------
# Searching history from the App Home
# ------------------------------------------------------------------------------------

def test_fuzzed_history_search(sim: SlackSim, slack: FakeSlack, app_server: Running,
                               loaded: int, guard: Guard) -> None:
    posted_point(sim, slack, app_server)  # one past gap to find
    sim.block_action({"action_id": ActionId.HOME_SEARCH_HISTORY, "value": "search"},
                     view={"id": "VHOME", "type": "home"})
    [opened] = slack.wait_for("views.open")
    modal = opened.args["view"]

    def submit(text: str) -> None:
        values = {BlockId.HISTORY_FILTERS: {INPUT: state_value("plain_text_input", text)}}
        what = f"history search {text[:60]!r}"
        body = guard.reply(sim.view_submission(modal, values), what)
        assert body is not None and body["response_action"] in {"errors", "update"}, what
        if body["response_action"] == "errors":
            assert set(body["errors"]) == {BlockId.HISTORY_FILTERS}, what

    for text in HOSTILE.values():
        submit(text)

    @FEW
    @given(hostile_text)
    def examples(text: str) -> None:
        submit(text)

    examples()
    guard.calls()


# ------------------------------------------------------------------------------------
# Ids in button values, select options and private_metadata
# ------------------------------------------------------------------------------------

BAD_IDS = ["", "0", "-1", "²", "１", "1e3", "1 OR 1=1", "2147483648", "9" * 5_000,
           "<!channel>", "\x00", "[1]"]
BUTTONS = [ActionId.DISCUSS, ActionId.CREATE_ACTION, ActionId.SHOW_CHART, ActionId.SUMMARIZE,
           ActionId.CONFIRM_ROOT_CAUSE, ActionId.ACTION_PROGRESS, ActionId.ACTION_COMPLETE,
           ActionId.ACTION_REASSIGN]
SELECTS_WITH_IDS = [ActionId.ROOT_CAUSE_CATEGORY, ActionId.ACTION_MILESTONE_DONE,
                    ActionId.ACTION_SNOOZE]
METADATA_KEYS = {CallbackId.SMART_ACTION: "point", CallbackId.PROGRESS: "action",
                 CallbackId.COMPLETE: "action", CallbackId.REASSIGN: "action",
                 CallbackId.CONFIRM_ROOT_CAUSE: "trigger_point_id"}
NOT_FOUND = ("find that gap in this workspace", "find that action in this workspace",
             "is not a root-cause category")  # a real gap, a made-up category


def test_fuzzed_ids_are_not_found_and_change_nothing(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int,
        guard: Guard) -> None:
    created = create_action(sim, slack, app_server)  # something that could be reached
    views: dict[str, dict[str, Any]] = {}
    for button, callback in ((ActionId.ACTION_PROGRESS, CallbackId.PROGRESS),
                             (ActionId.ACTION_COMPLETE, CallbackId.COMPLETE),
                             (ActionId.ACTION_REASSIGN, CallbackId.REASSIGN)):
        count = len(slack.calls_to("views.open")) + 1
        sim.button(button, str(created.id), user="U2", message_ts=created.card_ts)
        views[callback] = slack.wait_for("views.open", count=count)[-1].args["view"]
    views[CallbackId.SMART_ACTION] = slack.calls_to("views.open")[0].args["view"]
    views[CallbackId.CONFIRM_ROOT_CAUSE] = {"callback_id": CallbackId.CONFIRM_ROOT_CAUSE,
                                            "blocks": []}
    values = {
        CallbackId.SMART_ACTION: smart_values(),
        CallbackId.PROGRESS: {BlockId.PROGRESS_VALUE: {INPUT: state_value(
            "plain_text_input", "1M")}},
        CallbackId.COMPLETE: {BlockId.REALISED_IMPACT: {INPUT: state_value(
            "plain_text_input", "1")}},
        CallbackId.REASSIGN: {BlockId.NEW_OWNER: {INPUT: state_value("users_select", "U3")}},
        CallbackId.CONFIRM_ROOT_CAUSE: {
            BlockId.ROOT_CAUSE_CATEGORY: {INPUT: state_value("static_select", "demand")},
            BlockId.ROOT_CAUSE_SUMMARY: {INPUT: state_value("plain_text_input", "Soft")}},
    }
    url = app_server.settings.database_url
    guard.calls()
    before, calls_before = database_rows(url), len(slack.calls)
    told = 0
    for value in BAD_IDS:
        for button in BUTTONS:
            guard.reply(sim.button(button, value, user="U2"), f"{button}={value[:20]!r}")
            told += 1
        for menu in SELECTS_WITH_IDS:
            for option in (value, f"{value}:1", f"{created.id}:{value}"):
                guard.reply(sim.select(menu, option, user="U2"), f"{menu}={option[:20]!r}")
                told += 1
        for callback, key in METADATA_KEYS.items():
            for metadata in (json.dumps({key: value}), value):
                view = {**views[callback], "private_metadata": metadata}
                body = guard.reply(sim.view_submission(view, values[callback], user="U2"),
                                   f"{callback} metadata {metadata[:30]!r}")
                assert body is not None, (callback, metadata[:30])
                text = json.dumps(body, ensure_ascii=False)
                assert any(phrase in text for phrase in NOT_FOUND), (callback, text[:300])

    def answers() -> list[Call]:
        return [c for c in slack.calls[calls_before:]
                if c.method in {"response_url", "chat.postEphemeral"}]

    settle(slack, lambda: len(answers()), told)
    guard.calls()
    for call in answers():
        assert any(phrase in call.args["text"] for phrase in NOT_FOUND), call.args["text"]
    assert {c.method for c in slack.calls[calls_before:]} <= {"response_url",
                                                              "chat.postEphemeral"}
    assert database_rows(url) == before


# ------------------------------------------------------------------------------------
# /gap
# ------------------------------------------------------------------------------------

COMMANDS = ["{}", "region={}", 'region="{}"', "region=EU category={} by=channel",
            "watch region={}", "unwatch {}", "meeting {}", "threshold {}", "actions {}",
            "history {}", "export actions {}", "export {}", "digest {}", "horizon={}"]


def _escaped_by_slack(text: str) -> str:
    """Slack sends ``&``, ``<`` and ``>`` in a command's text escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_fuzzed_slash_commands(sim: SlackSim, slack: FakeSlack, app_server: Running,
                               loaded: int, guard: Guard) -> None:
    url = app_server.settings.database_url
    before = database_rows(url)
    sent = 0

    def command(text: str) -> None:
        nonlocal sent
        body = guard.reply(sim.command(text), f"/gap {text[:60]!r}")
        if body is None:  # answered later through the response URL
            sent += 1

    for pattern in COMMANDS:
        for text in HOSTILE.values():
            if text.strip() or pattern == "{}":  # `/gap digest   ` is `/gap digest`
                command(pattern.format(text))
    for text in HOSTILE.values():
        command(_escaped_by_slack(text))

    def answered() -> int:
        return len(slack.calls_to("response_url"))

    settle(slack, answered, sent)
    guard.calls()
    # Every answer went only to the caller; nothing was posted, nothing stored.
    assert all(c.args.get("response_type") == "ephemeral"
               for c in slack.calls_to("response_url"))
    assert slack.calls_to("chat.postMessage") == []
    assert database_rows(url) == before

    @FEW
    @given(st.sampled_from(COMMANDS), hostile_text.filter(str.strip))
    def examples(pattern: str, text: str) -> None:
        command(pattern.format(text))

    examples()
    settle(slack, answered, sent)
    guard.calls()
