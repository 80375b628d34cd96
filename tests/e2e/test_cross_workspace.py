"""Cross-workspace attempts on every id-bearing interaction.

Two workspaces installed over OAuth, each with its own bot token, so FakeSlack knows
which workspace every Web API call was made for. Workspace T1 creates a trigger point, a
root-cause discussion, a SMART action with milestones and the modals on them, all through
the app. Then a person of workspace T2 replays a payload carrying T1's real ids: a button
value, a select option, a modal's ``private_metadata``, a thread, the history and export
commands. Each time:

- the T2 person gets a short "not found" style answer, seen only by them;
- nothing in the database changes;
- no Slack call is made for T1 (its token, channels or people) and none carries T1 data.

The cases derive from ``bot.ids``: an action or callback id added later without a case
here (or a reason in ``CARRY_NO_IDS``) fails ``test_every_id_bearing_interaction_has_a_case``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest
from sqlalchemy import select

from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core.db import get_sessionmaker
from sop_core.loading import PlanningTable
from sop_core.models import Action, Milestone, RootCauseNote, TriggerPoint
from sop_core.services.data import store
from tests.e2e.conftest import SIGNING_SECRET, Running, app_settings, database_rows, serve_app
from tests.e2e.slack_sim import Reply, SlackSim, state_value
from tests.e2e.test_actions import smart_values
from tests.e2e.test_workspaces import install
from tests.e2e.waiting import eventually
from tests.fakeslack import Call, FakeSlack

# Workspace T1: the victim. Its channel, its people and a marker in everything it writes.
T1_CHANNEL, T1_POSTER, T1_OWNER = "C1", "U1", "U2"
SECRET = "T1-SECRET"
T1_TITLE = f"Run a {SECRET} Snacks promotion with Carrefour EU"
T1_REPLY = f"{SECRET}: e-commerce demand is soft in DE"
# Workspace T2: someone there replays what they have seen of T1's ids.
T2, T2_CHANNEL, T2_USER = "T2", "C9", "U7"
T2_MESSAGE_TS = "1800000000.000100"

GAP_NOT_FOUND = re.compile(r"(can't|could not) find that gap in this workspace")
ACTION_NOT_FOUND = re.compile(r"could not find that action in this workspace")
ANSWER_MAX = 300  # a clear, short message

# Every signed request adds its signature here (the replay guard): not a data change.


# ------------------------------------------------------------------------------------
# The app with two workspaces installed over OAuth
# ------------------------------------------------------------------------------------

@pytest.fixture
def two_workspaces(db_url: str, slack: FakeSlack,
                   sample_table: PlanningTable) -> Iterator[Running]:
    settings = app_settings(db_url, slack, SLACK_BOT_TOKEN=None,
                            SLACK_CLIENT_ID="111.222", SLACK_CLIENT_SECRET="client-secret")
    with serve_app(settings) as running:
        assert install(running.url, "T1") == 200
        assert install(running.url, T2) == 200
        sessions = get_sessionmaker(settings.database_url)
        store(sessions, sample_table, team_id="T1")
        store(sessions, sample_table, team_id=T2)  # T2 has data of its own: same structure
        yield running


@pytest.fixture
def sim2(two_workspaces: Running, slack: FakeSlack) -> SlackSim:
    return SlackSim(two_workspaces.url, SIGNING_SECRET, slack.root_url)


# ------------------------------------------------------------------------------------
# Each workspace's objects, made through the app
# ------------------------------------------------------------------------------------

class World:
    """T1's objects (and T2's own action, for the case mixing ids), made on first use."""

    def __init__(self, sim: SlackSim, slack: FakeSlack, app: Running) -> None:
        self.sim, self.slack, self.app = sim, slack, app
        self.sessions = get_sessionmaker(app.settings.database_url)
        self._card_views: dict[ActionId, dict[str, Any]] = {}

    def _opened(self, click: Callable[[], Reply]) -> dict[str, Any]:
        count = len(self.slack.calls_to("views.open")) + 1
        assert click().status == 200
        return self.slack.wait_for("views.open", count=count)[count - 1].args["view"]

    def _post_point(self, team: str, channel: str, user: str) -> tuple[int, str]:
        """``/gap region=EU category=Snacks`` in ``channel``: the point's id and ts."""
        def top_level(call: Call) -> bool:
            return call.args.get("channel") == channel and not call.args.get("thread_ts")

        self.sim.command("region=EU category=Snacks", team=team, channel=channel, user=user)
        [post] = self.slack.wait_for("chat.postMessage", predicate=top_level)
        assert post.team_id == team
        ts = post.response["ts"]
        [point_id] = {int(e["value"]) for b in post.args["blocks"] if b["type"] == "actions"
                      for e in b["elements"] if e["action_id"] == ActionId.DISCUSS}

        def attached() -> bool:
            with self.sessions() as session:
                point = session.get(TriggerPoint, point_id)
                return point is not None and point.message_ts == ts

        eventually(attached)
        return point_id, ts

    def _make_action(self, view: dict[str, Any], point_ts: str, *, team: str, user: str,
                     **changes: Any) -> tuple[int, str, list[int]]:
        """The SMART modal submitted: the action's id, its card's ts, its milestones."""
        reply = self.sim.view_submission(view, smart_values(**changes), team=team, user=user)
        assert reply.status == 200 and not reply.body, reply.body
        def is_card(call: Call) -> bool:
            return call.args.get("thread_ts") == point_ts and ActionId.ACTION_PROGRESS in \
                json.dumps(call.args.get("blocks"))

        [card] = self.slack.wait_for("chat.postMessage", predicate=is_card)
        assert card.team_id == team
        card_ts = card.response["ts"]

        def created() -> int | None:
            with self.sessions() as session:
                return session.scalar(select(Action.id).where(Action.card_ts == card_ts))

        action_id = eventually(created)
        with self.sessions() as session:
            milestones = list(session.scalars(select(Milestone.id).where(
                Milestone.action_id == action_id).order_by(Milestone.id)))
        assert len(milestones) == 2
        return action_id, card_ts, milestones

    @cached_property
    def point(self) -> tuple[int, str]:
        """T1's trigger point, discussed in its thread: its id and message ts."""
        point_id, ts = self._post_point("T1", T1_CHANNEL, T1_POSTER)
        # The root-cause discussion: its prompt, a reply and a category choice.
        self.sim.button(ActionId.DISCUSS, str(point_id), team="T1", user=T1_POSTER,
                        channel=T1_CHANNEL, message_ts=ts)
        self.slack.wait_for("chat.postMessage", predicate=lambda c: c.args.get("thread_ts") == ts)
        self.sim.thread_reply(T1_REPLY, thread_ts=ts, team="T1", user=T1_OWNER,
                              channel=T1_CHANNEL, ts="1700000200.000001")
        self.sim.select(ActionId.ROOT_CAUSE_CATEGORY, f"{point_id}:demand", team="T1",
                        user=T1_OWNER, channel=T1_CHANNEL, thread_ts=ts)

        def discussed() -> bool:
            with self.sessions() as session:
                return {T1_REPLY, "Demand"} <= set(session.scalars(select(RootCauseNote.text)))

        eventually(discussed)
        return point_id, ts

    @cached_property
    def smart_view(self) -> dict[str, Any]:
        point_id, ts = self.point
        return self._opened(lambda: self.sim.button(
            ActionId.CREATE_ACTION, str(point_id), team="T1", user=T1_POSTER,
            channel=T1_CHANNEL, message_ts=ts))

    @cached_property
    def action(self) -> tuple[int, str, list[int]]:
        """T1's SMART action on the point, carded in its thread (owner T1_OWNER)."""
        return self._make_action(self.smart_view, self.point[1], team="T1", user=T1_POSTER, **{
            BlockId.TITLE: state_value("plain_text_input", T1_TITLE)})

    def card_view(self, button: ActionId) -> dict[str, Any]:
        """A modal T1's owner opened from the card (progress, complete, reassign)."""
        if button not in self._card_views:
            action_id, card_ts, _ = self.action
            self._card_views[button] = self._opened(lambda: self.sim.button(
                button, str(action_id), team="T1", user=T1_OWNER, channel=T1_CHANNEL,
                message_ts=card_ts, thread_ts=self.point[1]))
        return self._card_views[button]

    @cached_property
    def confirm_view(self) -> dict[str, Any]:
        point_id, ts = self.point
        return self._opened(lambda: self.sim.button(
            ActionId.CONFIRM_ROOT_CAUSE, str(point_id), team="T1", user=T1_POSTER,
            channel=T1_CHANNEL, message_ts="1700000300.000001", thread_ts=ts))

    @cached_property
    def t2_action(self) -> int:
        """An action of T2's own, created by the T2 person (so they may change it)."""
        point_id, ts = self._post_point(T2, T2_CHANNEL, T2_USER)
        view = self._opened(lambda: self.sim.button(
            ActionId.CREATE_ACTION, str(point_id), team=T2, user=T2_USER, channel=T2_CHANNEL,
            message_ts=ts))
        action_id, _, _ = self._make_action(view, ts, team=T2, user=T2_USER, **{
            BlockId.OWNER: state_value("users_select", T2_USER)})
        return action_id

    def markers(self) -> set[str]:
        """What only T1's data holds: none of it may reach a call made for T2."""
        return {SECRET, self.point[1], self.action[1]}


# ------------------------------------------------------------------------------------
# The replays
# ------------------------------------------------------------------------------------

Getter = Callable[[World], Any]


@dataclass(frozen=True)
class Replay:
    """What must exist first (``prepare``), then the request from T2 (``send``)."""

    prepare: Getter
    send: Callable[[SlackSim, World], Reply]


def _button(action_id: ActionId, value: Getter) -> Replay:
    return Replay(value, lambda sim, world: sim.button(
        action_id, value(world), team=T2, user=T2_USER, channel=T2_CHANNEL,
        message_ts=T2_MESSAGE_TS))


def _select(action_id: ActionId, value: Getter) -> Replay:
    return Replay(value, lambda sim, world: sim.select(
        action_id, value(world), team=T2, user=T2_USER, channel=T2_CHANNEL,
        message_ts=T2_MESSAGE_TS))


def _submit(view: Getter, values: Callable[[], dict[str, dict[str, Any]]]) -> Replay:
    """T1's modal, its private_metadata untouched, submitted from T2 with valid values."""
    return Replay(view, lambda sim, world: sim.view_submission(
        view(world), values(), team=T2, user=T2_USER))


def _command(text: str) -> Replay:
    return Replay(lambda world: None, lambda sim, world: sim.command(
        text, team=T2, channel=T2_CHANNEL, user=T2_USER))


# A message event from T2 naming T1's channel and thread.
_REPLY_IN_T1_THREAD = Replay(lambda world: world.point, lambda sim, world: sim.thread_reply(
    "T2 writing into T1's thread", thread_ts=world.point[1], team=T2, user=T2_USER,
    channel=T1_CHANNEL, ts="1800000001.000001"))


def _point(world: World) -> str:
    return str(world.point[0])


def _action(world: World) -> str:
    return str(world.action[0])


def _one(block: str, kind: str, value: Any) -> dict[str, dict[str, Any]]:
    return {block: {INPUT: state_value(kind, value)}}


@dataclass(frozen=True)
class Case:
    name: str
    id: str | None  # the ActionId / CallbackId it covers (None: a command or an event)
    replay: Replay
    answer: re.Pattern[str] | None  # None: nobody to answer (an event)


CASES = [
    # Buttons and selects whose value is a trigger point id.
    Case("discuss", ActionId.DISCUSS, _button(ActionId.DISCUSS, _point), GAP_NOT_FOUND),
    Case("create action", ActionId.CREATE_ACTION, _button(ActionId.CREATE_ACTION, _point),
         GAP_NOT_FOUND),
    Case("show chart", ActionId.SHOW_CHART, _button(ActionId.SHOW_CHART, _point),
         GAP_NOT_FOUND),
    Case("root-cause category", ActionId.ROOT_CAUSE_CATEGORY, _select(
        ActionId.ROOT_CAUSE_CATEGORY, lambda w: f"{w.point[0]}:promotion"), GAP_NOT_FOUND),
    Case("summarize", ActionId.SUMMARIZE, _button(ActionId.SUMMARIZE, _point), GAP_NOT_FOUND),
    Case("confirm root cause", ActionId.CONFIRM_ROOT_CAUSE,
         _button(ActionId.CONFIRM_ROOT_CAUSE, _point), GAP_NOT_FOUND),
    # Buttons and selects whose value is an action id (and a milestone id).
    Case("progress", ActionId.ACTION_PROGRESS, _button(ActionId.ACTION_PROGRESS, _action),
         ACTION_NOT_FOUND),
    Case("milestone done", ActionId.ACTION_MILESTONE_DONE, _select(
        ActionId.ACTION_MILESTONE_DONE, lambda w: f"{w.action[0]}:{w.action[2][0]}"),
        ACTION_NOT_FOUND),
    Case("snooze", ActionId.ACTION_SNOOZE, _select(
        ActionId.ACTION_SNOOZE, lambda w: f"{w.action[0]}:7"), ACTION_NOT_FOUND),
    Case("complete", ActionId.ACTION_COMPLETE, _button(ActionId.ACTION_COMPLETE, _action),
         ACTION_NOT_FOUND),
    Case("reassign", ActionId.ACTION_REASSIGN, _button(ActionId.ACTION_REASSIGN, _action),
         ACTION_NOT_FOUND),
    Case("edit", ActionId.ACTION_EDIT, _button(ActionId.ACTION_EDIT, _action),
         ACTION_NOT_FOUND),
    Case("not doing", ActionId.ACTION_CANCEL, _button(ActionId.ACTION_CANCEL, _action),
         ACTION_NOT_FOUND),
    Case("hand back", ActionId.ACTION_HAND_BACK, _button(ActionId.ACTION_HAND_BACK, _action),
         ACTION_NOT_FOUND),
    # Modals whose private_metadata carries T1's ids.
    Case("SMART action modal", CallbackId.SMART_ACTION, _submit(
        lambda w: w.smart_view, smart_values), GAP_NOT_FOUND),
    Case("progress modal", CallbackId.PROGRESS, _submit(
        lambda w: w.card_view(ActionId.ACTION_PROGRESS),
        lambda: _one(BlockId.PROGRESS_VALUE, "plain_text_input", "9.9M")), ACTION_NOT_FOUND),
    Case("complete modal", CallbackId.COMPLETE, _submit(
        lambda w: w.card_view(ActionId.ACTION_COMPLETE),
        lambda: _one(BlockId.REALISED_IMPACT, "plain_text_input", "1")), ACTION_NOT_FOUND),
    Case("reassign modal", CallbackId.REASSIGN, _submit(
        lambda w: w.card_view(ActionId.ACTION_REASSIGN),
        lambda: _one(BlockId.NEW_OWNER, "users_select", T2_USER)), ACTION_NOT_FOUND),
    Case("edit modal", CallbackId.EDIT_ACTION, _submit(
        lambda w: w.card_view(ActionId.ACTION_EDIT),
        lambda: _one(BlockId.TITLE, "plain_text_input", "Run a T2 promo with Carrefour EU")),
        ACTION_NOT_FOUND),
    Case("not-doing modal", CallbackId.CANCEL_ACTION, _submit(
        lambda w: w.card_view(ActionId.ACTION_CANCEL),
        lambda: _one(BlockId.CANCEL_REASON, "plain_text_input", "T2 cancelled it")),
        ACTION_NOT_FOUND),
    # The message shortcut on T1's trigger point message (its ts), from T2.
    Case("shortcut on T1's thread", CallbackId.SMART_ACTION_SHORTCUT, Replay(
        lambda world: world.point, lambda sim, world: sim.message_shortcut(
            CallbackId.SMART_ACTION_SHORTCUT, {"ts": "1800000002.000001",
                                               "thread_ts": world.point[1], "text": "x"},
            team=T2, user=T2_USER, channel=T2_CHANNEL)),
        re.compile(r"works on a trigger point")),
    Case("confirm root-cause modal", CallbackId.CONFIRM_ROOT_CAUSE, _submit(
        lambda w: w.confirm_view,
        lambda: {**_one(BlockId.ROOT_CAUSE_CATEGORY, "static_select", "price"),
                 **_one(BlockId.ROOT_CAUSE_SUMMARY, "plain_text_input", "T2 overwrote it")}),
        GAP_NOT_FOUND),
    # T1's milestone id under T2's own action (which the T2 person may change).
    Case("T1 milestone under a T2 action", ActionId.ACTION_MILESTONE_DONE, _select(
        ActionId.ACTION_MILESTONE_DONE, lambda w: f"{w.t2_action}:{w.action[2][1]}"),
        ACTION_NOT_FOUND),
    # Commands reading the register: T1's scope typed in T2 finds nothing of T1's.
    Case("history", None, _command("history region=EU category=Snacks"),
         re.compile(r"No gap has been posted in this workspace yet|No past gap overlaps")),
    Case("export actions", None, _command("export actions region=EU"),
         re.compile(r"^Nothing to export: no actions")),
    Case("export gaps", None, _command("export gaps"),
         re.compile(r"^Nothing to export: no gaps recorded yet")),
    Case("actions register", None, _command("actions all"), re.compile(r"[Nn]o .*actions?")),
    # An event naming T1's channel and thread: not recorded, no answer at all.
    Case("reply in T1's thread", None, _REPLY_IN_T1_THREAD, None),
]

# Ids whose interaction carries no id of a gap, action, milestone or root cause.
CARRY_NO_IDS = {
    ActionId.HOME_REFRESH: "value is the constant 'refresh': the Home is rebuilt for the "
                           "clicking person in the clicking workspace (test_home covers T2)",
    ActionId.HOME_SEARCH_HISTORY: "value is the constant 'search': it opens an empty modal",
    ActionId.ADD_MILESTONE: "value is a row count; the modal Slack sends back is updated in "
                            "place by its own view id (views are the app's, per workspace)",
    ActionId.POST_TO_CHANNEL: "value is the filters as typed: they are resolved against the "
                              "clicking workspace's own data, posted in its own channel",
    ActionId.DRILL_DOWN: "block id and value are filters and a member: resolved against the "
                         "clicking workspace's own data, answered only to the person",
    CallbackId.HISTORY_SEARCH: "no private_metadata: the typed filters search the "
                               "submitting workspace (the 'history' case covers the search)",
}


def test_every_id_bearing_interaction_has_a_case() -> None:
    every = {*ActionId, *CallbackId}
    covered = {case.id for case in CASES if case.id is not None}
    assert covered.isdisjoint(CARRY_NO_IDS), "an id cannot both carry ids and not"
    missing = every - covered - set(CARRY_NO_IDS)
    assert not missing, f"add a cross-workspace case (or a reason) for: {sorted(missing)}"
    assert covered | set(CARRY_NO_IDS) == every
    assert len({case.name for case in CASES}) == len(CASES)


# ------------------------------------------------------------------------------------
# What must hold after each replay
# ------------------------------------------------------------------------------------

def quiet(seconds: float = 0.3) -> None:
    """Give the app time to do what it must not do."""
    time.sleep(seconds)


def _block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [str(b["text"]["text"]) for b in blocks if isinstance(b.get("text"), dict)]


def answers(calls: list[Call], reply: Reply, hooks: set[str]) -> tuple[list[str], list[str]]:
    """What the T2 person was told, ephemeral or in the modal itself: (the messages'
    texts, what their blocks say)."""
    told = [c for c in calls if (c.method == "response_url" and c.args["hook"] in hooks)
            or (c.method == "chat.postEphemeral"
                and (c.args.get("channel"), c.args.get("user")) == (T2_CHANNEL, T2_USER))]
    texts = [str(c.args.get("text", "")) for c in told]
    blocks = [text for c in told for text in _block_texts(c.args.get("blocks") or [])]
    body = reply.json() if reply.body else None
    if isinstance(body, dict):
        texts += [str(message) for message in (body.get("errors") or {}).values()]
        if body.get("response_action") == "update":
            blocks += _block_texts(body["view"].get("blocks", []))
    return texts, blocks


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_another_workspace_replaying_our_ids_finds_nothing_and_changes_nothing(
        case: Case, sim2: SlackSim, slack: FakeSlack, two_workspaces: Running) -> None:
    world = World(sim2, slack, two_workspaces)
    markers = world.markers()  # T1 has a discussed gap and an action, whatever the case
    case.replay.prepare(world)
    quiet()  # T1's own work done
    url = two_workspaces.settings.database_url
    rows_before, calls_before = database_rows(url), len(slack.calls)
    issued: list[str] = []
    handing_out = sim2.new_response_url

    def recording() -> str:
        issued.append(handing_out())
        return issued[-1]

    sim2.new_response_url = recording  # type: ignore[method-assign]

    reply = case.replay.send(sim2, world)

    assert reply.status == 200, reply.body
    assert reply.elapsed < 3.0
    hooks = {url.rsplit("/", 1)[-1] for url in issued}
    if case.answer is not None:
        def told() -> tuple[list[str], list[str]]:
            texts, blocks = answers(slack.calls[calls_before:], reply, hooks)
            assert texts or blocks, "the T2 person was told nothing"
            return texts, blocks

        texts, blocks = eventually(told)
        assert any(case.answer.search(text) for text in texts + blocks), (texts, blocks)
        assert all(len(text) <= ANSWER_MAX for text in texts + blocks), (texts, blocks)
    quiet()
    new = slack.calls[calls_before:]
    for call in new:  # only T2's token, T2's channel and person, the caller's response URL
        where = f"{call.method} {json.dumps(call.args, ensure_ascii=False)[:300]}"
        if call.method == "response_url":
            assert call.args["hook"] in hooks, where
            assert call.args.get("response_type") == "ephemeral", where
        else:
            assert call.team_id == T2, where
            assert call.args.get("channel") in {None, T2_CHANNEL, T2_USER}, where
            assert call.args.get("user") in {None, T2_USER}, where
        assert call.method not in {"views.open", "chat.update", "chat.postMessage",
                                   "files.completeUploadExternal"}, where
        for marker in markers:
            assert marker not in json.dumps(call.args, ensure_ascii=False), (marker, where)
    if case.answer is None:  # Bolt may check T2's token; nothing else happens
        assert {call.method for call in new} <= {"auth.test"}
    assert database_rows(url) == rows_before
    assert slack.violations == []
