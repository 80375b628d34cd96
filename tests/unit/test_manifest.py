"""The app manifest a person pastes into Slack matches what the code expects."""

from __future__ import annotations

import json
from pathlib import Path

from bot.app import BOT_SCOPES

MANIFEST = json.loads((Path(__file__).parents[2] / "slack_manifest.json").read_text())


def test_scopes_match_the_oauth_install() -> None:
    assert sorted(MANIFEST["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)


def test_the_command_events_and_interactivity_are_declared() -> None:
    assert [c["command"] for c in MANIFEST["features"]["slash_commands"]] == ["/gap"]
    events = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_home_opened", "message.channels", "message.groups"} <= events
    assert MANIFEST["settings"]["interactivity"]["is_enabled"] is True
    assert MANIFEST["features"]["app_home"]["home_tab_enabled"] is True


def test_the_message_shortcut_is_declared_with_the_codes_callback_id() -> None:
    from bot.ids import CallbackId

    [shortcut] = MANIFEST["features"]["shortcuts"]
    assert shortcut == {**shortcut, "type": "message", "name": "Create SMART action",
                        "callback_id": CallbackId.SMART_ACTION_SHORTCUT.value}
    assert len(shortcut["description"]) <= 80


def test_uninstalls_and_mentions_reach_the_app() -> None:
    """Uninstalling deletes the tokens (bot/workspace_access.py); ``/gap leads @a`` needs
    mentions as ``<@U123|name>``, which Slack sends only with escaping on."""
    events = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_uninstalled", "tokens_revoked"} <= events
    [gap] = MANIFEST["features"]["slash_commands"]
    assert gap["should_escape"] is True
