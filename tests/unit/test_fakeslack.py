"""FakeSlack answers the real slack_sdk client the way Slack would, and flags misuse."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from tests.fakeslack import FakeSlack

# The fixture a conftest will import; loading it as a plugin here also tests it.

TOKEN = "xoxb-test"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*Gap* above threshold"}}


def _modal(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Root cause"},
        "blocks": blocks,
    }


def _button(text: str) -> dict[str, Any]:
    button = {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": text}}
    return {"type": "actions", "elements": [button]}


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake_slack.url)


def _slack_error(call: Callable[..., object], *args: Any, **kwargs: Any) -> str:
    with pytest.raises(SlackApiError) as raised:
        call(*args, **kwargs)
    return str(raised.value.response["error"])


def test_valid_message_is_answered_and_recorded(fake_slack: FakeSlack, client: WebClient) -> None:
    first = client.chat_postMessage(channel="C1", text="gap", blocks=[SECTION], thread_ts="1.2")
    second = client.chat_postMessage(channel="C1", text="again")

    (call, _) = fake_slack.wait_for("chat.postMessage", count=2)
    assert call.args["blocks"] == [SECTION]
    assert (call.token, call.team_id, call.status) == (TOKEN, "T0TEST", 200)
    assert first["channel"] == "C1"
    assert first["message"]["thread_ts"] == "1.2"
    assert first["ts"] < second["ts"]
    assert fake_slack.violations == []


def test_json_in_form_fields_are_decoded(fake_slack: FakeSlack, client: WebClient) -> None:
    view = _modal([SECTION])
    client.api_call("views.open", params={"trigger_id": "t1", "view": json.dumps(view)})

    assert fake_slack.calls_to("views.open")[0].args["view"] == view
    assert fake_slack.violations == []


def test_unknown_method_is_a_violation(fake_slack: FakeSlack, client: WebClient) -> None:
    assert _slack_error(client.api_call, "chat.postMesage", json={"channel": "C1"}) == (
        "unknown_method"
    )
    assert fake_slack.violations == ["chat.postMesage: not a method in Slack's Web API description"]


def test_missing_required_argument_is_a_violation(
    fake_slack: FakeSlack,
    client: WebClient,
) -> None:
    error = _slack_error(client.api_call, "chat.postMessage", json={"text": "no channel"})

    assert error == "invalid_arguments"
    assert fake_slack.violations == ["chat.postMessage: missing required argument(s) channel"]


@pytest.mark.parametrize(
    ("blocks", "problem"),
    [
        ([{"type": "divider"}] * 51, "51 blocks, Slack allows at most 50"),
        ([_button("x" * 76)], "cannot exceed 75 characters"),
        ([{"type": "sectoin"}], "unknown block type"),
    ],
    ids=["51-blocks", "long-button-text", "unknown-type"],
)
def test_invalid_blocks_are_violations(
    fake_slack: FakeSlack,
    client: WebClient,
    blocks: list[dict[str, Any]],
    problem: str,
) -> None:
    assert _slack_error(client.chat_postMessage, channel="C1", text="t", blocks=blocks) == (
        "invalid_blocks"
    )
    (violation,) = fake_slack.violations
    assert problem in violation


def test_view_with_101_blocks_is_a_violation(fake_slack: FakeSlack, client: WebClient) -> None:
    view = _modal([{"type": "divider"}] * 101)

    assert _slack_error(client.views_open, trigger_id="t1", view=view) == "invalid_blocks"
    assert fake_slack.violations == ["views.open: 101 blocks, Slack allows at most 100"]


def test_view_answer_merges_the_posted_view(fake_slack: FakeSlack, client: WebClient) -> None:
    opened = client.views_open(trigger_id="t1", view={**_modal([SECTION]), "external_id": "e1"})
    updated = client.views_update(external_id="e1", view=_modal([SECTION, SECTION]))

    assert opened["view"]["id"].startswith("V")
    assert updated["view"]["id"] == opened["view"]["id"]
    assert updated["view"]["blocks"] == [SECTION, SECTION]
    assert fake_slack.violations == []


def test_files_upload_v2_delivers_the_bytes(fake_slack: FakeSlack, client: WebClient) -> None:
    response = client.files_upload_v2(
        content=b"plan,actual\n10,12\n", filename="gaps.csv", channel="C1", thread_ts="1.2"
    )

    file_id = response["file"]["id"]
    assert fake_slack.uploads == {file_id: b"plan,actual\n10,12\n"}
    record = fake_slack.files[file_id]
    assert (record.filename, record.channel_id, record.thread_ts) == ("gaps.csv", "C1", "1.2")
    assert [c.method for c in fake_slack.calls] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert fake_slack.violations == []


def test_rate_limit_is_retried_after_retry_after(fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=0)
    client = WebClient(
        token=TOKEN,
        base_url=fake_slack.url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )

    assert client.chat_postMessage(channel="C1", text="hi")["ok"]
    assert [(c.status, c.ok) for c in fake_slack.calls_to("chat.postMessage")] == [
        (429, False),
        (200, True),
    ]


def test_server_error_is_injected(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.fail_next("auth.test", status=500)

    assert _slack_error(client.auth_test) == "internal_error"
    assert client.auth_test()["ok"]
    assert [c.status for c in fake_slack.calls] == [500, 200]


def test_slow_answer_times_the_client_out(fake_slack: FakeSlack) -> None:
    fake_slack.delay_next("auth.test", 0.5)
    timeout: Any = 0.1  # slack_sdk annotates int seconds; urllib takes a float
    client = WebClient(token=TOKEN, base_url=fake_slack.url, timeout=timeout, retry_handlers=[])

    with pytest.raises(TimeoutError):
        client.auth_test()
    assert client.auth_test()["ok"]


def test_per_channel_chat_rate_limit(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.rate_limit_chat_per_channel = True
    client.chat_postMessage(channel="C1", text="one")
    client.chat_postMessage(channel="C2", text="other channel")

    assert _slack_error(client.chat_postMessage, channel="C1", text="two") == "ratelimited"
    assert fake_slack.calls[-1].status == 429


def test_unknown_token_after_add_team_is_invalid_auth(
    fake_slack: FakeSlack,
    client: WebClient,
) -> None:
    fake_slack.add_team("T1", "xoxb-acme", team_name="Acme")

    assert _slack_error(client.auth_test) == "invalid_auth"
    acme = WebClient(token="xoxb-acme", base_url=fake_slack.url).auth_test()
    assert (acme["team_id"], acme["team"]) == ("T1", "Acme")
    assert [c.team_id for c in fake_slack.calls] == [None, "T1"]
    assert fake_slack.violations == []


def test_oauth_v2_access_returns_the_added_team(fake_slack: FakeSlack) -> None:
    team = fake_slack.add_team("T1", "xoxb-acme", team_name="Acme")

    answer = WebClient(base_url=fake_slack.url).oauth_v2_access(
        client_id="id", client_secret="secret", code=team.oauth_code
    )

    assert answer["access_token"] == "xoxb-acme"
    assert answer["token_type"] == "bot"
    assert answer["team"] == {"id": "T1", "name": "Acme"}
    assert answer["authed_user"]["id"] == team.authed_user_id


def test_users_info_and_dm_channel(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.users["U1"] = {"tz": "Europe/Paris", "tz_offset": 3600, "deleted": True}

    paris = client.users_info(user="U1")["user"]
    default = client.users_info(user="U2")["user"]

    assert (paris["tz"], paris["tz_offset"], paris["deleted"]) == ("Europe/Paris", 3600, True)
    assert (default["tz"], default["deleted"]) == ("UTC", False)
    assert client.conversations_open(users="U1")["channel"]["id"] == "DU1"


def test_wait_for_timeout_lists_what_arrived(fake_slack: FakeSlack, client: WebClient) -> None:
    client.auth_test()

    with pytest.raises(AssertionError, match=r"got 0; received: auth\.test \(200\)"):
        fake_slack.wait_for("chat.postMessage", timeout=0.05)


def test_slow_call_does_not_block_others(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.delay_next("auth.test", 0.5)

    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(client.auth_test)
        client.chat_postMessage(channel="C1", text="fast")
        assert not slow.done()
        (call,) = fake_slack.wait_for("auth.test", timeout=2)

    assert slow.result()["ok"]
    assert [c.method for c in fake_slack.calls] == ["chat.postMessage", "auth.test"]
    assert call.ok
