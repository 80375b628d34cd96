"""``/gap``: one slash command, several subcommands (docs/reference/slack.md)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.context.respond import Respond
from slack_sdk.errors import SlackApiError

from bot.blocks.help import help_blocks
from bot.blocks.text import escape, unescape
from bot.blocks.trigger import headline, trigger_point_blocks
from bot.listeners.context import Ctx, UserError, post_in_channel
from bot.listeners.permissions import require_rule_maker
from sop_core import formatting as fmt
from sop_core.filters import FilterError
from sop_core.formatting import parse_amount
from sop_core.services import triggers
from sop_core.services.data import NoData, gap_report
from sop_core.suggest import unknown_subcommand

log = logging.getLogger(__name__)
Subcommand = Callable[[str, Ctx], None]
SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(*names: str) -> Callable[[Subcommand], Subcommand]:
    def register(handler: Subcommand) -> Subcommand:
        for name in names:
            SUBCOMMANDS[name] = handler
        return handler
    return register


def register(app: App) -> None:
    app.command("/gap")(handle_gap)


def handle_gap(ack: Ack, command: dict[str, Any], context: dict[str, Any],
               respond: Respond) -> None:
    text = unescape(command.get("text") or "").strip()
    word, _, rest = text.partition(" ")
    name = word.lower()
    if name in {"", "help"}:
        ack(response_type="ephemeral", text="How to use /gap", blocks=help_blocks())
        return
    ack()  # within Slack's 3 s, whatever the data size; the work happens after
    ctx = Ctx.of(context, command, respond)
    handler = SUBCOMMANDS.get(name)
    try:
        with ctx.work_slot:
            if handler is not None:
                handler(rest.strip(), ctx)
            elif "=" not in text:  # neither a subcommand nor filters: name the subcommands
                raise UserError(unknown_subcommand(word, SUBCOMMANDS))
            else:
                post_trigger_point(text, ctx)
    except (FilterError, NoData, UserError) as problem:
        # A refusal naming leads carries @mentions built from ids (see listeners/leads.py).
        ctx.tell(str(problem), escaped=getattr(problem, "mrkdwn", False))


def post_trigger_point(text: str, ctx: Ctx) -> None:
    """Compute the gap for the filters and post it into the channel for everyone."""
    assert ctx.channel_id is not None
    with ctx.sessions() as session:
        rule = triggers.channel_rule(session, ctx.settings, ctx.team_id, ctx.channel_id)
        report = gap_report(session, text, team_id=ctx.team_id, rule=rule, explain=True,
                            fy_start_month=ctx.settings.fiscal_year_start_month)
    point_id = triggers.record(ctx.sessions, report, team_id=ctx.team_id,
                               channel_id=ctx.channel_id, created_by=ctx.user_id)
    try:
        posted = post_in_channel(ctx.client, ctx.channel_id, text=escape(headline(report.result)),
                                 blocks=trigger_point_blocks(report, trigger_point_id=point_id))
    except (SlackApiError, UserError):
        triggers.discard(ctx.sessions, point_id)
        raise
    triggers.attach_message(ctx.sessions, point_id, posted["ts"])


_THRESHOLD = re.compile(r"^(?P<pct>\d+(?:\.\d+)?)\s*%?(?:\s+floor\s*=\s*(?P<floor>\S+))?$",
                        re.IGNORECASE)


@subcommand("threshold")
def set_threshold(text: str, ctx: Ctx) -> None:
    assert ctx.channel_id is not None
    found = _THRESHOLD.match(text)
    if not found:
        with ctx.sessions() as session:
            rule = triggers.channel_rule(session, ctx.settings, ctx.team_id, ctx.channel_id)
        ctx.tell(f"This channel's trigger rule: |gap| ≥ {fmt.threshold(rule.threshold_pct)} and "
                 f"|gap| ≥ {fmt.amount(rule.floor)}. Change it with `/gap threshold 5% "
                 "floor=100000`." if not text else
                 f"“{text}” is not a threshold: use `/gap threshold 5%` or "
                 "`/gap threshold 5% floor=100K`.")
        return
    require_rule_maker(ctx, ctx.channel_id, "change the trigger rule")
    floor = None
    if found.group("floor"):
        floor = parse_amount(found.group("floor"))
        if floor is None or floor < 0:
            raise UserError(f"floor=“{found.group('floor')}” is not an amount (e.g. 100000, "
                            "100K or 1.5M)")
    rule = triggers.set_channel_rule(ctx.sessions, ctx.team_id, ctx.channel_id,
                                     threshold_pct=float(found.group("pct")), floor=floor)
    ctx.tell(f"Trigger rule for this channel: |gap| ≥ {fmt.threshold(rule.threshold_pct)} and "
             f"|gap| ≥ {fmt.amount(rule.floor)}.")
