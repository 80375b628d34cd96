"""``/gap watch|unwatch|watches|meeting|digest``: a channel's watched scopes and meeting.

Registered on import through ``@subcommand`` (``bot.listeners.__init__`` imports this
module). Each handler: parse, one ``sop_core`` service call, a reply built by
``bot.blocks.meeting`` shown only to the caller, or a message posted for the channel.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from bot.blocks.meeting import (
    meeting_text,
    no_meeting_text,
    unwatched_text,
    watch_added_text,
    watches_text,
)
from bot.jobs import JobContext
from bot.jobs import digests as digest_job
from bot.jobs import watches as watch_job
from bot.listeners.commands import subcommand
from bot.listeners.context import Ctx, UserError
from bot.listeners.permissions import require_rule_maker
from sop_core.meetings import MeetingError, parse_meeting
from sop_core.services import digests, watches

log = logging.getLogger(__name__)


def _channel(ctx: Ctx) -> str:
    if ctx.channel_id is None:
        raise UserError("Use this command in a channel.")
    return ctx.channel_id


@subcommand("watch")
def watch(text: str, ctx: Ctx) -> None:
    channel = _channel(ctx)
    require_rule_maker(ctx, channel, "add a watched scope")
    added, created, checked = watches.add_watch(
        ctx.sessions, team_id=ctx.team_id, channel_id=channel, user_id=ctx.user_id, text=text,
        fy_start_month=ctx.settings.fiscal_year_start_month)
    ctx.tell(watch_added_text(added, created=created, checked=checked), escaped=True)
    if not checked:
        return
    # The current view of the new scope now, rather than at the clock's next pass.
    job = JobContext(settings=ctx.settings, sessions=ctx.sessions,
                     client_for=lambda _team: ctx.client, now=datetime.now(UTC))
    try:
        watch_job.evaluate_watch(job, added.id)
    except Exception:  # the watch is kept; the clock evaluates it at its next pass
        log.exception("first evaluation of watch %d failed", added.id)


@subcommand("unwatch")
def unwatch(text: str, ctx: Ctx) -> None:
    channel = _channel(ctx)
    require_rule_maker(ctx, channel, "remove watched scopes")
    removed = watches.remove_watches(ctx.sessions, team_id=ctx.team_id, channel_id=channel,
                                     text=text)
    with ctx.sessions() as session:
        remaining = watches.list_watches(session, ctx.team_id, channel)
    ctx.tell(unwatched_text(removed, remaining), escaped=True)


@subcommand("watches")
def list_watches(text: str, ctx: Ctx) -> None:
    channel = _channel(ctx)
    with ctx.sessions() as session:
        found = watches.list_watches(session, ctx.team_id, channel)
    ctx.tell(watches_text(found), escaped=True)


@subcommand("meeting")
def meeting(text: str, ctx: Ctx) -> None:
    channel = _channel(ctx)
    now = datetime.now(UTC)
    if not text:
        with ctx.sessions() as session:
            current = digests.get_meeting(session, ctx.team_id, channel)
        ctx.tell(meeting_text(current, now) if current else no_meeting_text(), escaped=True)
        return
    require_rule_maker(ctx, channel, "change the meeting")
    if text.lower() in {"off", "none", "stop", "cancel"}:
        digests.set_meeting(ctx.sessions, ctx.team_id, channel, None)
        ctx.tell("No S&OP meeting for this channel any more: no more pre-meeting digests "
                 "here. `/gap digest` still posts one when asked.")
        return
    try:
        parsed = parse_meeting(text, default_tz=ctx.settings.timezone)
    except MeetingError as problem:
        raise UserError(str(problem)) from None
    digests.set_meeting(ctx.sessions, ctx.team_id, channel, parsed)
    ctx.tell(meeting_text(parsed, now, changed=True), escaped=True)


@subcommand("digest")
def digest(text: str, ctx: Ctx) -> None:
    channel = _channel(ctx)
    if text:
        raise UserError("`/gap digest` takes no options: it posts this channel's digest now.")
    try:
        digest_job.post_now(ctx.sessions, ctx.settings, ctx.client, team_id=ctx.team_id,
                            channel_id=channel, now=datetime.now(UTC))
    except SlackApiError as error:
        log.exception("posting a digest in %s/%s failed", ctx.team_id, channel)
        raise UserError("Slack did not take the digest "
                        f"({error.response.get('error', 'error')}); try again in a moment."
                        ) from None
