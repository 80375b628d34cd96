"""Slack's word that a membership or a channel changed: what ``bot.directory`` knew about
it is dropped at once, so the next question asks Slack again (who sees what follows the
channel without waiting for the cache to expire)."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.directory import DIRECTORY

# Someone joined or left a channel (the bot included: its own membership is in the
# channel's facts, so those are dropped too).
MEMBER_EVENTS = ("member_joined_channel", "member_left_channel")
# A channel changed kind, sharing or existence, or the bot was removed from it.
CHANNEL_EVENTS = (
    "channel_archive", "channel_unarchive", "channel_deleted", "channel_left",
    "channel_shared", "channel_unshared",
    "group_archive", "group_unarchive", "group_deleted", "group_left",
)


def register(app: App) -> None:
    for name in MEMBER_EVENTS:
        app.event(name)(member_changed)
    for name in CHANNEL_EVENTS:
        app.event(name)(channel_changed)


def _channel_id(event: dict[str, Any]) -> str | None:
    channel = event.get("channel")
    if isinstance(channel, dict):  # channel_created / channel_rename carry an object
        channel = channel.get("id")
    return str(channel) if channel else None


def member_changed(event: dict[str, Any]) -> None:
    user = event.get("user")
    DIRECTORY.forget(channel=_channel_id(event), user=str(user) if user else None)


def channel_changed(event: dict[str, Any]) -> None:
    channel = _channel_id(event)
    if channel:
        DIRECTORY.forget(channel=channel)
        # Whoever was in it may have gained or lost it: the people's lists go too.
        DIRECTORY.forget_people()
