"""Names for Slack ids in files people read (exports): ``users.info`` and
``conversations.info``, cached per workspace so a second export asks Slack nothing.

A name that cannot be looked up (no scope, a deleted channel, Slack down) is left out:
the id stays in the file and the export goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

CACHE_SECONDS = 3600.0  # people rename themselves and channels rarely
MOST_LOOKUPS = 200  # per export: a register with thousands of owners stays quick

_cache: dict[tuple[str, str], tuple[str | None, float]] = {}
_lock = threading.Lock()


def _user_name(client: WebClient, user_id: str) -> str | None:
    user = client.users_info(user=user_id)["user"]
    profile = user.get("profile") or {}
    return (profile.get("display_name") or profile.get("real_name") or user.get("real_name")
            or user.get("name") or None)


def _channel_name(client: WebClient, channel_id: str) -> str | None:
    channel = client.conversations_info(channel=channel_id)["channel"]
    name = channel.get("name")
    return f"#{name}" if name else None


def _cached(team_id: str, slack_id: str, now: float) -> tuple[bool, str | None]:
    with _lock:
        found = _cache.get((team_id, slack_id))
    if found is None or found[1] < now:
        return False, None
    return True, found[0]


def names(client: WebClient, team_id: str, users: Iterable[str], channels: Iterable[str],
          *, now: float | None = None) -> dict[str, str]:
    """Slack id → name for the ids given (those Slack answers for)."""
    now = time.monotonic() if now is None else now
    found: dict[str, str] = {}
    asked = 0
    wanted = [(u, _user_name) for u in sorted(users)] + \
        [(c, _channel_name) for c in sorted(channels)]
    for slack_id, look_up in wanted:
        known, name = _cached(team_id, slack_id, now)
        if not known:
            if asked >= MOST_LOOKUPS:
                continue
            asked += 1
            try:
                name = look_up(client, slack_id)
            except SlackApiError as error:
                log.info("no name for %s in %s: %s", slack_id, team_id,
                         error.response.get("error"))
                name = None
            except OSError as error:  # Slack unreachable: try again next time
                log.warning("no name for %s in %s: %s", slack_id, team_id, error)
                continue
            with _lock:
                _cache[(team_id, slack_id)] = (name, now + CACHE_SECONDS)
        if name:
            found[slack_id] = name
    return found


def forget() -> None:
    """Empty the cache (tests)."""
    with _lock:
        _cache.clear()
