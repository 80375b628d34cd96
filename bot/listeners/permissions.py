"""Who may change a channel's rules: its leads, or a workspace admin or owner.

The rules are in ``sop_core.leads``; here Slack is asked whether a person is a workspace
admin or owner (``users.info``) when that decides, and the refusal says who can help.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.blocks.text import escape
from bot.listeners.context import Ctx, UserError
from bot.slack_client import TRANSPORT_ERRORS
from sop_core import leads

log = logging.getLogger(__name__)


class NotPermitted(UserError):
    """A refusal; its text is mrkdwn, with @mentions of the channel's leads. ``plain``:
    the same without them, for plain-text places (a modal's error)."""

    mrkdwn = True

    def __init__(self, message: str, plain: str) -> None:
        super().__init__(message)
        self.plain = plain


def mentions(user_ids: list[str]) -> str:
    return ", ".join(f"<@{escape(user_id)}>" for user_id in user_ids)


def _is_admin(ctx: Ctx) -> bool | None:
    """Whether Slack says the person is a workspace admin or owner; None if Slack cannot
    tell right now."""
    try:
        answer = ctx.client.users_info(user=ctx.user_id)
    except (SlackApiError, *TRANSPORT_ERRORS):
        log.warning("users.info failed: cannot tell whether %s is an admin", ctx.user_id)
        return None
    return leads.is_workspace_admin(answer.get("user") or {})


def require_rule_maker(ctx: Ctx, channel_id: str, what: str) -> None:
    """Raise :class:`NotPermitted` unless this person may ``what`` in the channel."""
    with ctx.sessions() as session:
        current = leads.channel_leads(session, ctx.team_id, channel_id)
    decision = leads.may_change_rules(current, ctx.user_id)
    if decision.allowed:
        return
    admin = _is_admin(ctx) if decision.needs_admin_check else False
    if admin:
        return
    if admin is None:
        unsure = (f"Slack did not say whether you are a workspace admin, so I did not "
                  f"{what}. Try again in a minute, or ask a lead")
        raise NotPermitted(f"{unsure}: {mentions(current)}.", plain=unsure + ".")
    refusal = f"Only this channel's leads{{}} or a workspace admin can {what} here."
    raise NotPermitted(refusal.format(f" ({mentions(current)})") + " Ask one of them.",
                       plain=refusal.format(""))
