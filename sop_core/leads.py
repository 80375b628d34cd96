"""Channel leads: who decides a channel's rules.

A channel without leads is open: anyone in it may name them. Once it has leads, only
they or a workspace admin or owner may change the leads, the trigger rule, the meeting,
the watched scopes, or confirm or replace a root cause.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from sop_core.models import ChannelSettings

MAX_LEADS = 10
# A user mention as Slack sends it in a slash command's text: <@U123> or <@U123|name>.
_MENTION = re.compile(r"<@([UW][A-Z0-9]{1,20})(?:\|[^>]*)?>")


class LeadsError(ValueError):
    """Text that does not name leads; the message says what to type instead."""


def parse_mentions(text: str) -> list[str]:
    """User ids from ``<@U123|name> <@U456>``, in order, once each."""
    ids: list[str] = []
    rest = text
    for found in _MENTION.finditer(text):
        if found.group(1) not in ids:
            ids.append(found.group(1))
        rest = rest.replace(found.group(0), " ", 1)
    leftover = rest.strip()
    if leftover:
        shown = leftover if len(leftover) <= 40 else leftover[:40] + "…"
        raise LeadsError(f"“{shown}” is not a person: name leads with @mentions, "
                         "e.g. `/gap leads @alice @bob`.")
    if not ids:
        raise LeadsError("Name at least one lead, e.g. `/gap leads @alice @bob`.")
    if len(ids) > MAX_LEADS:
        raise LeadsError(f"At most {MAX_LEADS} leads per channel.")
    return ids


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Whether the answer depends on the person being a workspace admin or owner (then
    # the caller asks Slack, and denies when Slack cannot tell).
    needs_admin_check: bool = False


def may_change_rules(leads: Sequence[str], user_id: str) -> Decision:
    """Without leads, anyone; with leads, the leads, or (after a check) an admin."""
    if not leads or user_id in leads:
        return Decision(True)
    return Decision(False, needs_admin_check=True)


def is_workspace_admin(user: dict[str, object]) -> bool:
    """From a ``users.info`` user object."""
    return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


def channel_leads(session: Session, team_id: str, channel_id: str) -> list[str]:
    found = session.get(ChannelSettings, (team_id, channel_id))
    return list(found.leads or []) if found is not None else []


def set_leads(sessions: sessionmaker[Session], team_id: str, channel_id: str,
              leads: Sequence[str]) -> list[str]:
    with sessions.begin() as session:
        found = session.get(ChannelSettings, (team_id, channel_id), with_for_update=True)
        if found is None:
            found = ChannelSettings(team_id=team_id, channel_id=channel_id)
            session.add(found)
        found.leads = list(leads)
    return list(leads)
