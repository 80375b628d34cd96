"""What Slack says about channels and people, cached briefly, and the audiences built
from it (the rule itself is ``sop_core.visibility``).

- ``conversations.info``: a channel's kind (public, private, DM, group DM), whether it is
  shared with another organisation (Slack Connect) and whether the bot is in it;
- ``users.conversations``: the channels a person is in (with a bot token, Slack lists a
  private channel only when the bot is in it too, which is where records can be).

Answers are kept per Slack API and token, a person's channels ``CACHE_SECONDS``, a
channel's facts ``FACTS_SECONDS`` (they change rarely, and Slack announces most changes),
and dropped at once when an event says they changed (``bot.listeners.membership``).
``conversations.info`` is rate limited per channel asked (Tier 3): the longer keep
spares a workspace with many channels of records a burst of calls. When Slack does not answer,
nothing is guessed: :class:`SlackCannotSay` refuses the request (fail closed).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import UserError
from sop_core import visibility
from sop_core.services.history import record_channels
from sop_core.visibility import ChannelFacts, ChannelKind, Visibility

CACHE_SECONDS = 60.0  # how stale a membership may be when no event said it changed
FACTS_SECONDS = 300.0  # the same for a channel's kind, sharing and the bot's membership
PAGE = 1000  # the largest page Slack gives for these lists
CONVERSATION_TYPES = "public_channel,private_channel,mpim,im"
CANNOT_SAY = ("Slack could not tell me just now who may see which channel, so I am not "
              "showing records that could be private. Try again in a minute; meanwhile "
              "each gap's thread in its own channel has its story.")
# Slack refused or did not answer (timeouts and lost connections are OSErrors).
NO_ANSWER = (SlackApiError, OSError, HTTPException)
# Channels whose records are never open to the workspace and need no question to Slack.
DIRECT_PREFIXES = ("D",)


class SlackCannotSay(UserError):
    """Slack did not answer a question the rule needs: refuse (fail closed)."""

    def __init__(self) -> None:
        super().__init__(CANNOT_SAY)


@dataclass(frozen=True)
class ChannelInfo:
    facts: ChannelFacts
    bot_member: bool
    archived: bool = False


@dataclass
class _Kept:
    value: Any
    until: float


class Directory:
    """A small thread-safe cache of Slack's answers, keyed by API URL, token and id."""

    def __init__(self, seconds: float = CACHE_SECONDS, facts_seconds: float = FACTS_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.facts_seconds = facts_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str, str, str], _Kept] = {}

    # -- cache -----------------------------------------------------------------------

    @staticmethod
    def _scope(client: WebClient) -> str:
        token = client.token or ""
        return client.base_url + "#" + hashlib.sha256(token.encode()).hexdigest()[:16]

    def _get(self, key: tuple[str, str, str, str]) -> _Kept | None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept.until <= self.clock():
                del self._kept[key]
                return None
            return kept

    def _put(self, key: tuple[str, str, str, str], value: Any) -> None:
        seconds = self.facts_seconds if key[1] == "channel" else self.seconds
        with self._lock:
            self._kept[key] = _Kept(value, self.clock() + seconds)

    def forget(self, *, channel: str | None = None, user: str | None = None) -> None:
        """Drop what is known about a channel and/or a person, for every workspace."""
        with self._lock:
            for key in list(self._kept):
                if ((channel and key[1:3] == ("channel", channel))
                        or (user and key[1:3] == ("user", user))):
                    del self._kept[key]

    def forget_people(self) -> None:
        """Drop every person's list of channels."""
        with self._lock:
            for key in [k for k in self._kept if k[1] == "user"]:
                del self._kept[key]

    def forget_all(self) -> None:
        with self._lock:
            self._kept.clear()

    # -- questions to Slack ----------------------------------------------------------

    def channel(self, client: WebClient, channel_id: str) -> ChannelInfo | None:
        """The channel as Slack describes it to the bot; None when Slack says it does not
        exist for the bot (a private channel it is not in). Raises ``SlackApiError`` when
        Slack does not answer."""
        key = (self._scope(client), "channel", channel_id, "info")
        kept = self._get(key)
        if kept is not None:
            return kept.value  # type: ignore[no-any-return]
        try:
            found = client.conversations_info(channel=channel_id)["channel"]
        except SlackApiError as error:
            said = error.response.get("error") if error.response is not None else None
            if said != "channel_not_found":
                raise
            info = None
        else:
            info = ChannelInfo(ChannelFacts.from_slack(found),
                               bot_member=bool(found.get("is_member")),
                               archived=bool(found.get("is_archived")))
        self._put(key, info)
        return info

    def joined(self, client: WebClient, channel_id: str) -> None:
        """The bot has just joined this channel."""
        key = (self._scope(client), "channel", channel_id, "info")
        kept = self._get(key)
        if kept is not None and kept.value is not None:
            self._put(key, ChannelInfo(kept.value.facts, bot_member=True,
                                       archived=kept.value.archived))

    def member_of(self, client: WebClient, user_id: str) -> frozenset[str]:
        """The channels the person is in (every page of ``users.conversations``)."""
        key = (self._scope(client), "user", user_id, "channels")
        kept = self._get(key)
        if kept is not None:
            return kept.value  # type: ignore[no-any-return]
        channels: set[str] = set()
        cursor = ""
        while True:
            page = client.users_conversations(user=user_id, types=CONVERSATION_TYPES,
                                              limit=PAGE, cursor=cursor or None)
            channels.update(str(c["id"]) for c in page.get("channels") or [])
            cursor = ((page.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                break
        found = frozenset(channels)
        self._put(key, found)
        return found

    def facts(self, client: WebClient, channel_ids: Iterable[str]) -> list[ChannelFacts]:
        """Facts of these channels; one Slack does not describe counts as private."""
        known = []
        for channel_id in sorted(set(channel_ids)):
            if channel_id.startswith(DIRECT_PREFIXES):
                known.append(ChannelFacts(channel_id, ChannelKind.IM))
                continue
            info = self.channel(client, channel_id)
            known.append(info.facts if info is not None
                         else ChannelFacts(channel_id, ChannelKind.PRIVATE))
        return known


DIRECTORY = Directory()


# ------------------------------------------------------------------------------ audiences

def _records(sessions: sessionmaker[Session], team_id: str) -> set[str]:
    with sessions() as session:
        return record_channels(session, team_id)


def channel_audience(client: WebClient, sessions: sessionmaker[Session], *, team_id: str,
                     channel_id: str) -> Visibility:
    """What everyone in ``channel_id`` may see. Raises :class:`SlackCannotSay`."""
    try:
        facts = DIRECTORY.facts(client, _records(sessions, team_id) - {channel_id})
    except NO_ANSWER:
        raise SlackCannotSay() from None
    return visibility.for_channel(channel_id, facts)


def person_audience(client: WebClient, sessions: sessionmaker[Session], *, team_id: str,
                    user_id: str) -> Visibility:
    """What ``user_id`` may see privately. Raises :class:`SlackCannotSay`."""
    try:
        member_of = DIRECTORY.member_of(client, user_id)
        facts = DIRECTORY.facts(client, _records(sessions, team_id) - member_of)
    except NO_ANSWER:
        raise SlackCannotSay() from None
    return visibility.for_person(user_id, member_of, facts)
