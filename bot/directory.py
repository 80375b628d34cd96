"""What Slack says about channels and people, cached briefly, and the audiences built
from it (the rule itself is ``sop_core.visibility``).

- ``conversations.info``: a channel's kind (public, private, DM, group DM), whether it is
  shared with another organisation (Slack Connect) and whether the bot is in it;
- ``users.conversations``: the channels a person is in (with a bot token, Slack lists a
  private channel only when the bot is in it too, which is where records can be).

Answers are kept per Slack API and token, a person's channels ``CACHE_SECONDS``, a
channel's facts ``FACTS_SECONDS`` (they change rarely, and Slack announces most changes),
and dropped at once when an event says they changed (``bot.listeners.membership``). They
are kept in the app's database (sop_core/slack_answers.py), so that the change an event
announces to one process drops the answers of every process (the other web workers, the
clock), and a restarted worker asks Slack nothing its predecessor was told.
``conversations.info`` is rate limited per channel asked (Tier 3): the longer keep
spares a workspace with many channels of records a burst of calls. When Slack does not answer,
nothing is guessed: :class:`SlackCannotSay` refuses the request (fail closed).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import UserError
from sop_core import visibility
from sop_core.db import get_engine
from sop_core.services.history import record_channels
from sop_core.slack_answers import CHANNEL, EVERY, PERSON, AnswersInMemory, KeptAnswers
from sop_core.visibility import ChannelFacts, ChannelKind, Visibility

log = logging.getLogger(__name__)
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


class Directory:
    """Slack's answers, keyed by API URL, token and id: a person's channels kept
    ``seconds``, a channel's facts ``facts_seconds``. Kept in the database once
    :meth:`keep_in` is given one (every process of the app shares them, and a change one
    hears of reaches all: sop_core/slack_answers.py), else in this process. When the
    database does not answer, Slack is asked, as if nothing were kept."""

    def __init__(self, seconds: float = CACHE_SECONDS, facts_seconds: float = FACTS_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.seconds = seconds
        self.facts_seconds = facts_seconds
        self.clock = clock  # wall-clock seconds: the database's answers serve every host
        self._answers: KeptAnswers | AnswersInMemory = AnswersInMemory()

    def keep_in(self, store: KeptAnswers | None) -> None:
        """Keep answers in this database from now on (None: in this process)."""
        self._answers = store if store is not None else AnswersInMemory()

    # -- what is kept ----------------------------------------------------------------

    @staticmethod
    def _scope(client: WebClient) -> str:
        token = client.token or ""
        return client.base_url + "#" + hashlib.sha256(token.encode()).hexdigest()[:16]

    def _kept_answers(self, scope: str, kind: str, subjects: Iterable[str]) -> dict[str, Any]:
        """The fresh answers by subject (JSON values: see :func:`_channel_answer`)."""
        try:
            return self._answers.get(scope, kind, subjects, now=self.clock())
        except SQLAlchemyError:
            log.warning("the database did not answer: asking Slack instead")
            return {}

    def _keep(self, scope: str, kind: str, subject: str, answer: Any, asked_at: float) -> None:
        until = asked_at + (self.facts_seconds if kind == CHANNEL else self.seconds)
        try:
            self._answers.put(scope, kind, subject, answer, asked_at=asked_at,
                              expires_at=until)
        except SQLAlchemyError:  # not kept: asked again next time
            log.warning("the database did not answer: Slack's answer is not kept")

    def forget(self, *, channel: str | None = None, user: str | None = None) -> None:
        """Drop what is known about a channel and/or a person, for every workspace."""
        self._forget([(kind, subject) for kind, subject in
                      ((CHANNEL, channel), (PERSON, user)) if subject])

    def forget_people(self) -> None:
        """Drop every person's list of channels."""
        self._forget([(PERSON, EVERY)])

    def _forget(self, changes: list[tuple[str, str]]) -> None:
        now = self.clock()
        try:
            for kind, subject in changes:
                self._answers.forget(kind, subject, now=now)
        except SQLAlchemyError:
            log.error("the database did not answer: Slack's answers about %s stay kept "
                      "until they expire", " and ".join(s for _, s in changes))

    def forget_all(self) -> None:
        self._answers.forget_everything()

    # -- questions to Slack ----------------------------------------------------------

    def channel(self, client: WebClient, channel_id: str) -> ChannelInfo | None:
        """The channel as Slack describes it to the bot; None when Slack says it does not
        exist for the bot (a private channel it is not in). Raises ``SlackApiError`` when
        Slack does not answer."""
        scope = self._scope(client)
        kept = self._kept_answers(scope, CHANNEL, (channel_id,))
        if channel_id in kept:
            return _channel_info(channel_id, kept[channel_id])
        return self._ask_channel(client, scope, channel_id)

    def _ask_channel(self, client: WebClient, scope: str, channel_id: str) -> ChannelInfo | None:
        asked_at = self.clock()
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
        self._keep(scope, CHANNEL, channel_id, _channel_answer(info), asked_at)
        return info

    def joined(self, client: WebClient, channel_id: str) -> None:
        """The bot has just joined this channel."""
        scope = self._scope(client)
        read_at = self.clock()  # (a change announced after this read drops what follows)
        kept = self._kept_answers(scope, CHANNEL, (channel_id,)).get(channel_id)
        if kept is not None:
            self._keep(scope, CHANNEL, channel_id, {**kept, "bot_member": True}, read_at)

    def member_of(self, client: WebClient, user_id: str) -> frozenset[str]:
        """The channels the person is in (every page of ``users.conversations``)."""
        scope = self._scope(client)
        kept = self._kept_answers(scope, PERSON, (user_id,))
        if user_id in kept:
            return frozenset(kept[user_id])
        asked_at = self.clock()
        channels: set[str] = set()
        cursor = ""
        while True:
            page = client.users_conversations(user=user_id, types=CONVERSATION_TYPES,
                                              limit=PAGE, cursor=cursor or None)
            channels.update(str(c["id"]) for c in page.get("channels") or [])
            cursor = ((page.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                break
        self._keep(scope, PERSON, user_id, sorted(channels), asked_at)
        return frozenset(channels)

    def facts(self, client: WebClient, channel_ids: Iterable[str]) -> list[ChannelFacts]:
        """Facts of these channels; one Slack does not describe counts as private. What
        is kept is read in one question to the database."""
        wanted = sorted(set(channel_ids))
        scope = self._scope(client)
        asked = [c for c in wanted if not c.startswith(DIRECT_PREFIXES)]
        kept = self._kept_answers(scope, CHANNEL, asked) if asked else {}
        known = []
        for channel_id in wanted:
            if channel_id.startswith(DIRECT_PREFIXES):
                known.append(ChannelFacts(channel_id, ChannelKind.IM))
                continue
            info = (_channel_info(channel_id, kept[channel_id]) if channel_id in kept
                    else self._ask_channel(client, scope, channel_id))
            known.append(info.facts if info is not None
                         else ChannelFacts(channel_id, ChannelKind.PRIVATE))
        return known


def _channel_answer(info: ChannelInfo | None) -> dict[str, Any] | None:
    """A channel's facts as kept (JSON); None: Slack said there is no such channel."""
    if info is None:
        return None
    return {"kind": str(info.facts.kind), "ext_shared": info.facts.ext_shared,
            "bot_member": info.bot_member, "archived": info.archived}


def _channel_info(channel_id: str, answer: dict[str, Any] | None) -> ChannelInfo | None:
    if answer is None:
        return None
    return ChannelInfo(ChannelFacts(channel_id, ChannelKind(answer["kind"]),
                                    ext_shared=bool(answer["ext_shared"])),
                       bot_member=bool(answer["bot_member"]), archived=bool(answer["archived"]))


DIRECTORY = Directory()


def keep_answers_in(database_url: str) -> None:
    """This process's answers from Slack go to the app's database, shared by its other
    processes (web workers, the clock, a load's watches)."""
    DIRECTORY.keep_in(KeptAnswers(get_engine(database_url)))


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
