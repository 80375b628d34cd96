"""``/gap leads``: name a channel's leads, or show them."""

from __future__ import annotations

from bot.listeners.commands import subcommand
from bot.listeners.context import Ctx, UserError
from bot.listeners.permissions import mentions as _mentions
from bot.listeners.permissions import require_rule_maker
from sop_core import leads


@subcommand("leads")
def channel_leads(text: str, ctx: Ctx) -> None:
    if ctx.channel_id is None:
        raise UserError("Use this command in a channel.")
    if not text:
        with ctx.sessions() as session:
            current = leads.channel_leads(session, ctx.team_id, ctx.channel_id)
        ctx.tell(f"This channel's leads: {_mentions(current)}. They (or a workspace admin) "
                 "decide its threshold, meeting, watches and root causes." if current else
                 "This channel has no leads yet, so anyone here may change its rules. Name "
                 "them with `/gap leads @alice @bob`.", escaped=True)
        return
    try:
        named = leads.parse_mentions(text)
    except leads.LeadsError as problem:
        raise UserError(str(problem)) from None
    require_rule_maker(ctx, ctx.channel_id, "change the leads")
    leads.set_leads(ctx.sessions, ctx.team_id, ctx.channel_id, named)
    ctx.tell(f"This channel's leads are now {_mentions(named)}: only they or a workspace "
             "admin may change its threshold, meeting, watches and leads, or confirm a "
             "root cause.", escaped=True)
