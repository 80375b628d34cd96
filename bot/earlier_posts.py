"""Posting once when Slack's answer is lost: a post carries what it is for in its
metadata, and a later attempt finds it in the channel's history instead of posting again.

Slack may carry a post out and its answer never reach us: the request timed out, or the
process died before recording the message. Whoever tries next cannot tell, and posting
again would put the same gap or digest in the channel twice. Each such post carries its
identity as message metadata (``event_type`` and a payload: the trigger point's id, the
outbox key); the next attempt looks through the channel's history since the first one
and keeps the message it finds.

- A trigger point (``sop_core.services.triggers``): its row is written before the post
  and its message recorded after it; a post taken over (``Living.since``) looks first.
- A digest, or a nudge escalated into an action's thread (``sop_core.outbox``): a key
  claimed again (``Claim.since``) looks first, in the channel or in that thread.

Not covered: direct messages (the nudges to owners: reading them needs the
``im:history`` scope, which the app does not ask for); they keep the outbox's
at-least-once window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.models.metadata import Metadata

from bot.slack_client import answered, error_code, in_channel, is_transient, post_in_channel
from sop_core.services.triggers import Living

log = logging.getLogger(__name__)

TRIGGER_POINT = "sopgap_trigger_point"  # payload: {"trigger_point_id": id}
DELIVERY = "sopgap_delivery"  # payload: {"key": the outbox key}
# Slack's clock against ours (when the first attempt started): a margin, not a match.
CLOCK_MARGIN = timedelta(minutes=10)
PAGE, PAGES = 200, 5  # history looked through: the latest 1,000 messages since then
# History that cannot be read here (a conversation type the install has no history
# scope for, a token of another type): posting is then the only way left.
CANNOT_LOOK = frozenset({"missing_scope", "not_allowed_token_type"})


def tag(event_type: str, **payload: Any) -> Metadata:
    return Metadata(event_type=event_type, event_payload=payload)


def find(client: WebClient, channel_id: str, event_type: str, *, since: datetime,
         thread_ts: str | None = None, **payload: Any) -> str | None:
    """The ts of the bot's message in the channel (in the thread of ``thread_ts``, if
    given) tagged ``event_type`` with ``payload``, posted since ``since``; None if there
    is none or the history cannot be read here. A rate limit, Slack's silence or a 5xx
    raise: whether to post again is then unknown."""
    # (A pass's clock may be set ahead, ``sopgap tick --now``: Slack's ts are real time.)
    oldest = str(int((min(since, datetime.now(UTC)) - CLOCK_MARGIN).timestamp()))
    method, read = (("conversations.history", client.conversations_history)
                    if thread_ts is None else
                    ("conversations.replies", partial(client.conversations_replies,
                                                      ts=thread_ts)))
    cursor = None
    # Page by page through our client's api_call (slack_sdk's own iteration of a response
    # fetches later pages around it: neither counted nor lending a command's work slot).
    for _ in range(PAGES):
        try:
            page: Any = answered(method, partial(
                read, channel=channel_id, oldest=oldest, limit=PAGE, cursor=cursor,
                include_all_metadata=True))
        except SlackApiError as error:
            if is_transient(error) and error_code(error) not in CANNOT_LOOK:
                raise
            log.warning("cannot look for an earlier %s post in %s (%s): posting it",
                        event_type, channel_id, error_code(error) or "error")
            return None
        for message in page.get("messages") or []:
            if _tagged(message, event_type, payload):
                return str(message["ts"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if cursor is None:
            return None
    log.warning("no earlier %s post %s in the latest %d messages of %s", event_type,
                payload, PAGE * PAGES, channel_id)
    return None


def sent_with_key(client: WebClient, channel_id: str, key: str, *,
                  thread_ts: str | None = None) -> Callable[[datetime], str | None]:
    """``outbox.deliver``'s ``find_sent`` for a post tagged with its outbox ``key``."""
    return lambda since: find(client, channel_id, DELIVERY, since=since,
                              thread_ts=thread_ts, key=key)


def _tagged(message: dict[str, Any], event_type: str, payload: dict[str, Any]) -> bool:
    found = message.get("metadata") or {}
    carried = found.get("event_payload") or {}
    return (bool(message.get("bot_id")) and found.get("event_type") == event_type
            and all(carried.get(name) == value for name, value in payload.items()))


def post_trigger_point(client: WebClient, channel_id: str, living: Living, *, text: str,
                       blocks: list[Block]) -> str:
    """The message of ``living`` (a claim to post) in the channel; returns its ts. A post
    taken over keeps the earlier attempt's message if Slack has it, updated with these
    blocks."""
    if living.since is not None:
        found = find(client, channel_id, TRIGGER_POINT, since=living.since,
                     trigger_point_id=living.point_id)
        if found is not None:
            log.info("trigger point %d: its message %s was posted already; updated, not "
                     "posted again", living.point_id, found)
            in_channel(client, channel_id, lambda: client.chat_update(
                channel=channel_id, ts=found, text=text, blocks=blocks))
            return found
    posted = post_in_channel(client, channel_id, text=text, blocks=blocks,
                             metadata=tag(TRIGGER_POINT, trigger_point_id=living.point_id))
    return str(posted["ts"])
