"""Who sees what: the one rule deciding whose records an audience may see.

Every trigger point, thread reply, root cause and action belongs to the channel it was
posted in (its ``channel_id``). Two kinds of audience read records:

- **everyone in channel C** (messages and threads in C, "Similar past gaps", digests,
  files uploaded to C): records of C itself, plus records of *public* channels of the
  same workspace that are not shared with another organisation (Slack Connect);
- **one person privately** (ephemeral replies, App Home, modals, DMs): records of the
  channels they are a member of, records of those same open channels, and the actions
  they own or created wherever those are.

So nothing from a private channel, a DM, a group DM or a Slack Connect channel ever
appears in another channel, and a person sees a private channel's records only while
they are in it. A channel the facts say nothing about (Slack did not describe it, e.g.
a private channel the bot was removed from) counts as closed: the rule fails closed.

This module is pure: the facts (channel kind, Slack Connect, members) come from Slack
through the bot layer, which hands the services the resulting :class:`Visibility`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class ChannelKind(enum.StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    IM = "im"  # a direct message
    MPIM = "mpim"  # a group direct message


@dataclass(frozen=True)
class ChannelFacts:
    """What Slack says about one channel (``conversations.info``)."""

    id: str
    kind: ChannelKind
    ext_shared: bool = False  # Slack Connect: shared with another organisation

    @property
    def open_to_workspace(self) -> bool:
        """Its records may be seen anywhere in the workspace."""
        return self.kind is ChannelKind.PUBLIC and not self.ext_shared

    @classmethod
    def from_slack(cls, channel: Mapping[str, object]) -> ChannelFacts:
        """From a ``conversations.info`` channel object (unknown shapes count as private)."""
        if channel.get("is_im"):
            kind = ChannelKind.IM
        elif channel.get("is_mpim"):
            kind = ChannelKind.MPIM
        elif channel.get("is_private") is False and channel.get("is_channel", True):
            kind = ChannelKind.PUBLIC
        else:
            kind = ChannelKind.PRIVATE
        shared = bool(channel.get("is_ext_shared") or channel.get("is_pending_ext_shared"))
        return cls(id=str(channel.get("id") or ""), kind=kind, ext_shared=shared)


@dataclass(frozen=True)
class Visibility:
    """The records one audience may see, as a plain value for ``sop_core`` services
    (which take ``None`` for "no restriction": the operator's command line).

    ``channels``: the channels whose records are visible; ``user_id``: for a person's
    audience, whose own actions (owner or creator) are visible wherever they are.
    """

    channels: frozenset[str]
    user_id: str | None = None

    def sees_channel(self, channel_id: str | None) -> bool:
        return channel_id is not None and channel_id in self.channels

    def sees_action(self, channel_id: str | None, owner_id: str, creator_id: str) -> bool:
        """An action: in a visible channel, or the person's own."""
        if self.sees_channel(channel_id):
            return True
        return self.user_id is not None and self.user_id in (owner_id, creator_id)


def open_channels(facts: Iterable[ChannelFacts]) -> frozenset[str]:
    return frozenset(f.id for f in facts if f.open_to_workspace)


def for_channel(channel_id: str, facts: Iterable[ChannelFacts]) -> Visibility:
    """What everyone in ``channel_id`` may see: its own records and the open channels'."""
    return Visibility(channels=open_channels(facts) | {channel_id})


def for_person(user_id: str, member_of: Iterable[str],
               facts: Iterable[ChannelFacts]) -> Visibility:
    """What ``user_id`` may see privately: the channels they are in, the open channels,
    and their own actions."""
    return Visibility(channels=open_channels(facts) | frozenset(member_of), user_id=user_id)

