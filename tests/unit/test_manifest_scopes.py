"""The manifest asks for exactly the scopes the code uses: every Web API method called in
``bot/`` (``client.<method>(`` or ``api_call("<method>"``), mapped to its scopes by
Slack's OpenAPI description (tests/fakeslack/vendor), plus the scopes of the events the
manifest subscribes to and of the slash command. A scope missing fails; so does one
nothing uses (``chat:write.public`` would let the bot post where it has not joined)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from bot.app import BOT_SCOPES
from bot.listeners.membership import CHANNEL_EVENTS, MEMBER_EVENTS
from tests.fakeslack.spec import VENDORED_SPEC, load_methods

ROOT = Path(__file__).parents[2]
MANIFEST = json.loads((ROOT / "slack_manifest.json").read_text())

# The spec predates granular bot scopes: its names mapped to those a bot token asks for
# (None: a user-token scope, never a bot's).
BOT_NAME = {"chat:write:bot": "chat:write", "chat:write:user": None}
# A method whose spec scope has a bot-token name of its own.
METHOD_BOT_SCOPES = {"conversations.join": {"channels:join"}}
# Methods the published spec does not describe (Slack's docs name their scopes).
NOT_IN_SPEC = {"files.getUploadURLExternal": {"files:write"},
               "files.completeUploadExternal": {"files:write"}}
# Events API subscriptions and the scope each needs (Slack's event reference).
EVENT_SCOPES: dict[str, set[str]] = {
    "app_home_opened": set(),
    "app_uninstalled": set(),  # sent to every app, no scope
    "tokens_revoked": set(),
    "message.channels": {"channels:history"},
    "message.groups": {"groups:history"},
    "member_joined_channel": {"channels:read", "groups:read"},
    "member_left_channel": {"channels:read", "groups:read"},
    **{name: {"channels:read"} for name in CHANNEL_EVENTS if name.startswith("channel_")},
    **{name: {"groups:read"} for name in CHANNEL_EVENTS if name.startswith("group_")},
}
CALL = re.compile(r"\b([a-z]+)_([A-Za-z]+)\(")
API_CALL = re.compile(r"api_call\(\s*[\"']([a-z]+\.[A-Za-z.]+)[\"']")


def _spec_scopes() -> dict[str, set[str]]:
    """Method -> the scopes Slack's OpenAPI file lists for it (bot-token names)."""
    with gzip.open(VENDORED_SPEC, "rt", encoding="utf-8") as spec:
        raw = json.load(spec)["paths"]
    scopes: dict[str, set[str]] = {}
    for route, operations in raw.items():
        names: set[str] = set()
        for operation in operations.values():
            for security in operation.get("security") or []:
                for scope in security.get("slackAuth", []):
                    mapped = BOT_NAME.get(scope, scope)
                    if mapped and mapped != "none":
                        names.add(mapped)
        scopes[route.lstrip("/")] = names
    return scopes


def called_methods() -> set[str]:
    """Web API methods the code in bot/ calls."""
    known = set(load_methods(VENDORED_SPEC))
    found: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        source = path.read_text()
        found.update(f"{a}.{b}" for a, b in CALL.findall(source) if f"{a}.{b}" in known)
        found.update(API_CALL.findall(source))
    return found


def needed_scopes() -> dict[str, set[str]]:
    """Scope -> what needs it (methods, events, the slash command)."""
    spec = _spec_scopes()
    needs: dict[str, set[str]] = {}
    for method in called_methods():
        scopes = METHOD_BOT_SCOPES.get(method) or NOT_IN_SPEC.get(method) or spec[method]
        for scope in scopes:
            needs.setdefault(scope, set()).add(method)
    for event in MANIFEST["settings"]["event_subscriptions"]["bot_events"]:
        for scope in EVENT_SCOPES[event]:
            needs.setdefault(scope, set()).add(f"event {event}")
    if MANIFEST["features"].get("slash_commands"):
        needs.setdefault("commands", set()).add("/gap")
    return needs


def test_the_code_calls_the_methods_this_test_knows() -> None:
    """The scan finds the calls (a scan finding nothing would make the test below pass)."""
    assert {"chat.postMessage", "conversations.join", "conversations.info",
            "users.conversations", "files.completeUploadExternal"} <= called_methods()


def test_manifest_scopes_are_exactly_those_used() -> None:
    asked = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    needs = needed_scopes()
    missing = {scope: sorted(why) for scope, why in needs.items() if scope not in asked}
    unused = asked - set(needs)
    assert missing == {}, f"scopes the code needs but the manifest lacks: {missing}"
    assert unused == set(), f"scopes the manifest asks for that nothing uses: {unused}"
    assert sorted(BOT_SCOPES) == sorted(asked)
    assert "chat:write.public" not in asked


def test_every_event_the_app_listens_to_is_subscribed() -> None:
    subscribed = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    assert set(MEMBER_EVENTS) | set(CHANNEL_EVENTS) <= subscribed
    assert subscribed <= set(EVENT_SCOPES), "an event this test does not know the scope of"
