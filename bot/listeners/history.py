"""Past gaps and exports: ``/gap history``, ``/gap export``, the App Home's search.

The subcommands register on import through ``@subcommand`` (``bot.listeners.__init__``
imports this module); the Home button and the search modal are registered by
``bot.listeners.home``. Each handler: parse, one ``sop_core`` service call, a reply built
by ``bot.blocks.history``. History and exports read the caller's workspace only, and
of it what the audience may see (``bot.directory``): history and the search are the
caller's own view; an export is uploaded to the channel, so it holds what everyone in
that channel may see.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import slack_names
from bot.blocks.history import (
    export_comment,
    history_blocks,
    history_text,
    nothing_to_export,
    results_modal,
    search_modal,
)
from bot.blocks.text import cut
from bot.directory import SlackCannotSay, channel_audience, person_audience
from bot.ids import INPUT, BlockId
from bot.listeners.commands import subcommand
from bot.listeners.context import Ctx, UserError
from bot.slack_client import Upload, upload_files
from sop_core.filters import FilterError
from sop_core.services import exports, history
from sop_core.services.actions import local_today
from sop_core.services.exports import Export

log = logging.getLogger(__name__)

EXPORT_USAGE = ("Export what? `/gap export actions [filters]` (one row per action), "
                "`/gap export gaps [filters]` (one row per gap) or "
                "`/gap export gaps [filters] by=channel` (a gap's drivers), e.g. "
                "`/gap export actions region=EU`.")
ERROR_MAX = 300  # an inline error under a modal's input


# ------------------------------------------------------------------------------ history

@subcommand("history")
def show_history(text: str, ctx: Ctx) -> None:
    """Past gaps overlapping the filters that the caller may see, only for them."""
    audience = person_audience(ctx.client, ctx.sessions, team_id=ctx.team_id,
                               user_id=ctx.user_id)
    found = history.search(ctx.sessions, team_id=ctx.team_id, filters=text,
                           visibility=audience)
    blocks = history_blocks(found)
    if ctx.respond is not None:
        ctx.respond(text=history_text(found), blocks=blocks, response_type="ephemeral",
                    replace_original=False)
    elif ctx.channel_id is not None:
        ctx.client.chat_postEphemeral(channel=ctx.channel_id, user=ctx.user_id,
                                      text=history_text(found), blocks=blocks)


def open_search(ack: Ack, body: dict[str, Any], context: dict[str, Any]) -> None:
    """The App Home's "Search history" button."""
    ack()
    try:
        context["client"].views_open(trigger_id=body["trigger_id"], view=search_modal())
    except SlackApiError:
        log.exception("could not open the history search for %s", body["user"]["id"])


def _typed(view: dict[str, Any]) -> str:
    values = (view.get("state") or {}).get("values") or {}
    return str((values.get(BlockId.HISTORY_FILTERS, {}).get(INPUT) or {}).get("value")
               or "").strip()


def submit_search(ack: Ack, view: dict[str, Any], context: dict[str, Any]) -> None:
    """Search, then show the results in the same modal (bad filters: inline error)."""
    text = _typed(view)
    try:
        audience = person_audience(context["client"], context["sessions"],
                                   team_id=context["team_id"], user_id=context["user_id"])
        found = history.search(context["sessions"], team_id=context["team_id"], filters=text,
                               visibility=audience)
    except (FilterError, SlackCannotSay) as problem:
        ack(response_action="errors",
            errors={BlockId.HISTORY_FILTERS: cut(str(problem), ERROR_MAX)})
        return
    ack(response_action="update", view=results_modal(found, text))


# ------------------------------------------------------------------------------ exports

def upload_export(client: WebClient, channel: str, export: Export, comment: str) -> None:
    """Both files in one message (files.getUploadURLExternal → upload → complete),
    joining a public channel first if the bot is not in it yet."""
    upload_files(client, channel, [Upload(f.content, f.filename, title=f.filename)
                                   for f in export.files], initial_comment=comment)


@subcommand("export")
def export_register(text: str, ctx: Ctx) -> None:
    """``/gap export actions|gaps [filters]``: the register as CSV and XLSX, here."""
    if ctx.channel_id is None:
        raise UserError("Use this command in a channel.")
    word, _, rest = text.strip().partition(" ")
    if not word:
        raise UserError(EXPORT_USAGE)
    kind = exports.parse_kind(word)
    # The files go to the channel: only what everyone in it may see.
    audience = channel_audience(ctx.client, ctx.sessions, team_id=ctx.team_id,
                                channel_id=ctx.channel_id)
    result = exports.export(
        ctx.sessions, team_id=ctx.team_id, kind=kind, filters=rest,
        today=local_today(ctx.settings.timezone),
        fy_start_month=ctx.settings.fiscal_year_start_month,
        names=lambda users, channels: slack_names.names(ctx.client, ctx.team_id, users,
                                                        channels),
        visibility=audience)
    if not result.rows:
        ctx.tell(nothing_to_export(result))
        return
    try:
        upload_export(ctx.client, ctx.channel_id, result, export_comment(result, ctx.user_id))
    except SlackApiError:
        log.exception("could not upload the %s export in %s", kind, ctx.channel_id)
        ctx.tell("Slack did not take the files (it has been logged): try again in a moment.")
