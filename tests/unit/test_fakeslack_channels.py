"""FakeSlack keeps channels as state: public, private, Slack Connect, members, the bot's
membership; the conversations methods answer from it, page by page, with Slack's errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakeslack import FakeSlack

TOKEN = "xoxb-test"


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake_slack.url)


def _error(call: Callable[..., object], **kwargs: Any) -> str:
    with pytest.raises(SlackApiError) as raised:
        call(**kwargs)
    return str(raised.value.response["error"])


def test_info_describes_each_kind_and_hides_private_channels_without_the_bot(
        fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.add_channel("CPUB", members={"U1"})
    fake_slack.add_channel("GPRIV", private=True, members={"U1"})
    fake_slack.add_channel("CEXT", ext_shared=True, members={"U1"})
    fake_slack.add_channel("GHIDDEN", private=True, members={"U1"}, bot_member=False)
    fake_slack.add_channel("COUT", members={"U1"}, bot_member=False)
    public = client.conversations_info(channel="CPUB")["channel"]
    assert (public["is_private"], public["is_ext_shared"], public["is_member"]) == (
        False, False, True)
    assert client.conversations_info(channel="GPRIV")["channel"]["is_private"] is True
    assert client.conversations_info(channel="CEXT")["channel"]["is_ext_shared"] is True
    assert client.conversations_info(channel="COUT")["channel"]["is_member"] is False
    assert _error(client.conversations_info, channel="GHIDDEN") == "channel_not_found"
    assert _error(client.conversations_members, channel="GHIDDEN") == "channel_not_found"
    assert fake_slack.violations == []


def test_members_and_user_conversations_come_page_by_page(
        fake_slack: FakeSlack, client: WebClient) -> None:
    people = {f"U{n:03d}" for n in range(7)}
    fake_slack.add_channel("CBIG", members=people)
    for n in range(5):
        fake_slack.add_channel(f"C{n}", members={"U000"})
    fake_slack.add_channel("GSECRET", private=True, members={"U000"}, bot_member=False)
    fake_slack.add_channel("CNOT", members={"U999"})
    seen: list[str] = []
    cursor = ""
    while True:
        page = client.conversations_members(channel="CBIG", limit=3, cursor=cursor)
        assert len(page["members"]) <= 3
        seen += page["members"]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(people | {"U0TESTBOT"})  # the default team's bot
    channels: list[str] = []
    cursor = ""
    while True:
        page = client.users_conversations(user="U000", types="public_channel,private_channel",
                                          limit=2, cursor=cursor)
        channels += [c["id"] for c in page["channels"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    # Not the private channel the bot is not in, not the one U000 is not in.
    assert sorted(channels) == ["C0", "C1", "C2", "C3", "C4", "CBIG"]
    assert _error(client.users_conversations, user="U000", cursor="bogus") == "invalid_cursor"


def test_posting_needs_the_bot_in_the_channel_and_joining_works_for_public_ones_only(
        fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.add_channel("COUT", members={"U1"}, bot_member=False)
    fake_slack.add_channel("GOUT", private=True, members={"U1"}, bot_member=False)
    fake_slack.add_channel("GIN", private=True, members={"U1"})
    assert _error(client.chat_postMessage, channel="COUT", text="x") == "not_in_channel"
    assert _error(client.chat_postMessage, channel="GOUT", text="x") == "channel_not_found"
    assert _error(client.conversations_join, channel="GOUT") == "channel_not_found"
    assert (_error(client.conversations_join, channel="GIN")
            == "method_not_supported_for_channel_type")
    assert client.conversations_join(channel="COUT")["channel"]["is_member"] is True
    assert client.chat_postMessage(channel="COUT", text="x")["ok"]
    assert client.chat_postMessage(channel="GIN", text="x")["ok"]
    assert client.chat_postMessage(channel="U1", text="a DM")["ok"]
    # An undeclared channel is a public one everyone and the bot are in.
    assert client.chat_postMessage(channel="CANY", text="x")["ok"]
    assert client.users_conversations(user="U1")["channels"][0]["id"] in {"CANY", "COUT"}
