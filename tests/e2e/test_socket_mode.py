"""Socket Mode end to end: the same conversations as over HTTP, through a real WebSocket.

The app connects the way ``sopgap socket`` does (apps.connections.open on FakeSlack, then
a WebSocket to a local Socket Mode server). ``SocketSim`` plays Slack with the payloads
``SlackSim`` signs for HTTP, wrapped in envelopes, so each scenario below runs over both
transports and must give the same answers and the same Web API calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY

from bot.ids import ActionId, BlockId
from bot.server import socket_mode_handler
from sop_core.loading import PlanningTable
from sop_core.services.data import store
from tests.e2e.conftest import SIGNING_SECRET, app_settings, serve_app
from tests.e2e.slack_sim import Reply, SlackSim, state_value
from tests.fakeslack import Call, FakeSlack
from tests.fakeslack.socket_mode import SocketModeServer

APP_TOKEN = "app-level-token-for-tests"  # the fake checks it; Slack's start with xapp-
# Short pings, so a silently dropped connection is noticed within seconds, not 40.
PING_INTERVAL = 0.5


@dataclass
class SocketSim(SlackSim):
    """SlackSim whose requests travel as Socket Mode envelopes; the "reply" is the ack."""

    socket: SocketModeServer | None = None

    def deliver(self, kind: str, payload: dict[str, Any], **envelope: Any) -> Reply:
        assert self.socket is not None
        started = time.perf_counter()
        envelope_id = self.socket.send(kind, payload, **envelope)
        ack = self.socket.wait_ack(envelope_id)
        body = json.dumps(ack).encode() if ack else b""
        return Reply(200, body, time.perf_counter() - started)

    def _form(self, fields: dict[str, str], **kwargs: Any) -> Reply:
        return self.deliver("slash_commands", fields, **_envelope_options(kwargs))

    def _interactive(self, payload: dict[str, Any], **kwargs: Any) -> Reply:
        self.sent.append(payload)
        return self.deliver("interactive", payload, **_envelope_options(kwargs))

    def post(self, body: bytes, content_type: str, **kwargs: Any) -> Reply:
        """Only events arrive here (commands and interactions come through _form and
        _interactive); a retry header becomes the envelope's retry_attempt."""
        assert content_type == "application/json", content_type
        retry = (kwargs.get("headers") or {}).get("X-Slack-Retry-Num")
        return self.deliver("events_api", json.loads(body),
                            retry_attempt=int(retry or 0),
                            retry_reason="timeout" if retry else "")


def _envelope_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: kwargs[key] for key in ("envelope_id", "retry_attempt") if key in kwargs}


@pytest.fixture
def socket_server(slack: FakeSlack) -> Iterator[SocketModeServer]:
    with SocketModeServer() as server:
        slack.enable_socket_mode(server.url, APP_TOKEN)
        yield server


@pytest.fixture
def socket_sim(db_url: str, slack: FakeSlack, socket_server: SocketModeServer
               ) -> Iterator[SocketSim]:
    settings = app_settings(db_url, slack, SLACK_APP_TOKEN=APP_TOKEN)
    handler = socket_mode_handler(settings, ping_interval=PING_INTERVAL)
    handler.connect()
    try:
        socket_server.wait_connected()
        yield SocketSim(app_url="socket-mode", signing_secret="", response_url_base=slack.root_url,
                        socket=socket_server)
    finally:
        handler.close()


@pytest.fixture
def http_sim(db_url: str, slack: FakeSlack) -> Iterator[SlackSim]:
    with serve_app(app_settings(db_url, slack)) as running:
        yield SlackSim(running.url, SIGNING_SECRET, slack.root_url)


@pytest.fixture(params=["http", "socket"])
def transport(request: pytest.FixtureRequest, db_url: str, slack: FakeSlack) -> SlackSim:
    return request.getfixturevalue("http_sim" if request.param == "http" else "socket_sim")


@pytest.fixture
def data(db_url: str, sample_table: PlanningTable) -> int:
    from sop_core.db import session_factory
    return store(session_factory(db_url), sample_table).snapshot_id


def trigger_posts(slack: FakeSlack) -> list[Call]:
    return [c for c in slack.calls_to("chat.postMessage")
            if c.args.get("channel") == "C1" and not c.args.get("thread_ts")]


def button_value(call: Call, action_id: str) -> str:
    [value] = {e["value"] for b in call.args["blocks"] if b["type"] == "actions"
               for e in b["elements"] if e["action_id"] == action_id}
    return value


# ------------------------------------------------------------------------------------
# The same conversations over both transports
# ------------------------------------------------------------------------------------

def test_help_is_answered_in_the_acknowledgement(transport: SlackSim) -> None:
    reply = transport.command("help")
    assert reply.status == 200 and reply.elapsed < 3
    answer = reply.json()
    assert answer["response_type"] == "ephemeral"
    assert any("/gap" in json.dumps(block) for block in answer["blocks"])


def test_gap_command_posts_a_trigger_point(transport: SlackSim, slack: FakeSlack,
                                           data: int) -> None:
    reply = transport.command("region=EU category=Snacks")
    assert reply.status == 200 and reply.elapsed < 3
    [post] = slack.wait_for("chat.postMessage", predicate=lambda c: c.args["channel"] == "C1")
    assert "EU" in post.args["text"] and "Snacks" in post.args["text"]
    assert slack.violations == []


def test_a_commands_work_is_measured_under_its_own_name(socket_sim: SocketSim,
                                                        slack: FakeSlack, data: int) -> None:
    """The metrics' labels (and the logs' fields) come from the envelope, as over HTTP
    they come from the request (tests/e2e/test_operations.py, under gunicorn): without
    them, every Socket Mode command was measured as kind "other", name "unknown"."""
    labels = {"kind": "command", "name": "/gap"}

    def count() -> float:
        return REGISTRY.get_sample_value("sopgap_work_seconds_count", labels) or 0.0

    before = count()
    assert socket_sim.command("region=EU category=Snacks").status == 200
    slack.wait_for("chat.postMessage", predicate=lambda c: c.args["channel"] == "C1")
    deadline = time.monotonic() + 10
    while count() == before:  # observed as the work ends, just after its post
        assert time.monotonic() < deadline, "the /gap's work was not measured as /gap"
        time.sleep(0.01)


def test_a_button_opens_the_smart_action_modal(transport: SlackSim, slack: FakeSlack,
                                               data: int) -> None:
    transport.command("region=EU category=Snacks")
    [post] = slack.wait_for("chat.postMessage", predicate=lambda c: c.args["channel"] == "C1")
    point_id = button_value(post, ActionId.CREATE_ACTION)
    reply = transport.button(ActionId.CREATE_ACTION, point_id,
                             message_ts=post.response["ts"])
    assert reply.status == 200 and reply.elapsed < 3
    [opened] = slack.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == "smart_action_modal"


def test_a_modal_submission_gets_its_errors_in_the_acknowledgement(
        transport: SlackSim, slack: FakeSlack, data: int) -> None:
    transport.command("region=EU category=Snacks")
    [post] = slack.wait_for("chat.postMessage", predicate=lambda c: c.args["channel"] == "C1")
    transport.button(ActionId.CREATE_ACTION, button_value(post, ActionId.CREATE_ACTION),
                     message_ts=post.response["ts"])
    [opened] = slack.wait_for("views.open")
    reply = transport.view_submission(opened.args["view"], {
        BlockId.TITLE: state_value("plain_text_input", "x"),
    })
    assert reply.status == 200
    answer = reply.json()
    assert answer["response_action"] == "errors"
    assert BlockId.TITLE in answer["errors"]


def test_both_transports_make_the_same_calls(http_sim: SlackSim, socket_sim: SocketSim,
                                             slack: FakeSlack, data: int) -> None:
    """One scope per transport, in its own channel: the calls differ only in channel."""
    def calls_for(channel: str) -> list[tuple[str, str]]:
        return [(c.method, c.args.get("text", "")) for c in slack.calls
                if c.args.get("channel") == channel]

    http_sim.command("region=EU category=Snacks", channel="C1")
    slack.wait_for("chat.postMessage", predicate=lambda c: c.args["channel"] == "C1")
    socket_sim.command("region=EU category=Snacks", channel="C2")
    slack.wait_for("chat.postMessage", predicate=lambda c: c.args["channel"] == "C2")
    assert calls_for("C1") == calls_for("C2") != []


# ------------------------------------------------------------------------------------
# What only Socket Mode has: reconnects and redelivered envelopes
# ------------------------------------------------------------------------------------

def test_reconnects_when_slack_asks_to(socket_sim: SocketSim, socket_server: SocketModeServer,
                                       slack: FakeSlack) -> None:
    socket_server.ask_to_reconnect()
    socket_server.wait_connected(count=2)
    assert len(slack.calls_to("apps.connections.open")) >= 2
    assert socket_sim.command("help").json()["response_type"] == "ephemeral"


def test_reconnects_after_the_connection_drops(socket_sim: SocketSim,
                                               socket_server: SocketModeServer) -> None:
    socket_server.drop()
    socket_server.wait_connected(count=2, timeout=20)
    assert socket_sim.command("help").json()["response_type"] == "ephemeral"


def test_a_resent_envelope_is_acknowledged_and_handled_once(
        socket_sim: SocketSim, socket_server: SocketModeServer, slack: FakeSlack,
        data: int) -> None:
    fields = {"team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/gap",
              "text": "region=EU category=Snacks", "api_app_id": "A0SOPGAP",
              "response_url": f"{slack.root_url}/response/socket-1", "trigger_id": "trig.s1"}

    def app_calls() -> list[str]:
        return [c.method for c in slack.calls if c.method != "apps.connections.open"]

    first = socket_sim.deliver("slash_commands", fields, envelope_id="env-same")
    slack.wait_for("chat.postMessage", predicate=lambda c: c.args["channel"] == "C1")
    time.sleep(0.5)  # the first delivery's work is done
    after_first = app_calls()
    again = socket_sim.deliver("slash_commands", fields, envelope_id="env-same",
                               retry_attempt=1, retry_reason="timeout")
    assert first.status == again.status == 200
    time.sleep(1.0)  # time for a second post or update, were there to be one
    assert app_calls() == after_first
    assert len(trigger_posts(slack)) == 1


def test_a_retried_event_is_known_by_its_event_id_whatever_its_envelope() -> None:
    from slack_sdk.socket_mode.request import SocketModeRequest

    from bot.socket_mode import RecentKeys, delivery_key

    first = SocketModeRequest(type="events_api", envelope_id="e1",
                              payload={"event_id": "Ev1", "event": {}})
    retried = SocketModeRequest(type="events_api", envelope_id="e2",
                                payload={"event_id": "Ev1", "event": {}}, retry_attempt=1)
    command = SocketModeRequest(type="slash_commands", envelope_id="e1", payload={})
    assert delivery_key(first) == delivery_key(retried) != delivery_key(command)
    recent = RecentKeys(ttl=60, size=2)
    assert recent.first_time("a") and not recent.first_time("a")
    assert recent.first_time("b") and recent.first_time("c")  # "a" made room
    assert recent.first_time("a")
