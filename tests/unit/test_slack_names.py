"""Names for Slack ids in exports (bot/slack_names.py), against FakeSlack over HTTP."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot import slack_names
from tests.fakeslack import FakeSlack


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:
    slack_names.forget()
    return WebClient(token="xoxb-test", base_url=fake_slack.url)


def asked(fake_slack: FakeSlack) -> list[str]:
    return [c.method for c in fake_slack.calls
            if c.method in ("users.info", "conversations.info")]


def test_names_come_from_slack_once(client: WebClient, fake_slack: FakeSlack) -> None:
    fake_slack.users["U2"] = {"name": "ana", "profile": {"display_name": "Ana P."}}
    fake_slack.add_channel("C1", name="eu-sop")
    assert slack_names.names(client, "T1", {"U2", "U3"}, {"C1"}, now=0.0) == {
        "U2": "Ana P.", "U3": "useru3", "C1": "#eu-sop"}
    assert sorted(asked(fake_slack)) == ["conversations.info", "users.info", "users.info"]
    assert slack_names.names(client, "T1", {"U2"}, {"C1"}, now=10.0) == {
        "U2": "Ana P.", "C1": "#eu-sop"}
    assert len(asked(fake_slack)) == 3  # cached
    slack_names.names(client, "T2", {"U2"}, set(), now=10.0)  # another workspace: asked
    slack_names.names(client, "T1", {"U2"}, set(), now=slack_names.CACHE_SECONDS + 1)
    assert len(asked(fake_slack)) == 5  # …and again once the cache is stale


def test_an_id_slack_cannot_name_stays_an_id(client: WebClient, fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("conversations.info", status=200, error="channel_not_found")
    assert slack_names.names(client, "T1", {"U2"}, {"C404"}, now=0.0) == {"U2": "useru2"}
    assert slack_names.names(client, "T1", set(), {"C404"}, now=1.0) == {}
    assert asked(fake_slack).count("conversations.info") == 1  # the miss is cached too


def test_lookups_per_export_are_bounded(client: WebClient, fake_slack: FakeSlack,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slack_names, "MOST_LOOKUPS", 2)
    found = slack_names.names(client, "T1", {"U1", "U2", "U3"}, set(), now=0.0)
    assert found == {"U1": "useru1", "U2": "useru2"} and len(asked(fake_slack)) == 2
