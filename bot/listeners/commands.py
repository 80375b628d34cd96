"""``/gap``: one slash command, several subcommands (docs/reference/slack.md)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.context.respond import Respond
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from sqlalchemy.exc import DBAPIError

from bot import earlier_posts
from bot.blocks.help import help_blocks
from bot.blocks.text import escape, unescape
from bot.blocks.trigger import drill_request, explore_blocks, headline, trigger_point_blocks
from bot.ids import ActionId
from bot.listeners.context import Ctx, UserError, post_in_channel
from bot.listeners.permissions import require_rule_maker
from bot.slack_client import SlackUnanswered, in_channel
from sop_core import formatting as fmt
from sop_core.filters import FilterError
from sop_core.formatting import parse_amount
from sop_core.lifecycle import LifecycleError
from sop_core.services import triggers
from sop_core.services.data import GapReport, NoData, gap_report
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
    app.action(ActionId.POST_TO_CHANNEL)(handle_post_to_channel)
    app.action(ActionId.DRILL_DOWN)(handle_drill_down)


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
    if handler is None and _unknown_word(text) is None:
        post_trigger_point(text, ctx)
        return

    def subcommand() -> None:
        if handler is None:  # neither a subcommand nor filters
            raise UserError(unknown_subcommand(_unknown_word(text) or "", SUBCOMMANDS))
        handler(rest.strip(), ctx)

    ctx.in_turn(partial(_answered, ctx, subcommand))


def _answered(ctx: Ctx, work: Callable[[], object]) -> None:
    """A command's work after the ack, which may run once the listener has returned
    (bot/work_slots.py): a refusal is told to the person; any other failure is logged
    and told, as the app's error handler does for a listener."""
    try:
        work()
    except (FilterError, NoData, UserError) as problem:
        # A refusal naming leads carries @mentions built from ids (see listeners/leads.py).
        ctx.tell(str(problem), escaped=getattr(problem, "mrkdwn", False))
    except Exception as error:
        from bot.app import failure_message  # (bot.app registers this module)

        log.exception("unhandled error in a Slack listener (%s)", type(error).__name__)
        try:
            ctx.tell(failure_message(error))
        except Exception:
            log.exception("could not tell the user about the error")


def _unknown_word(text: str) -> str | None:
    """The first word of a ``/gap`` that is no filter (no ``=``) and not the ``post``
    flag: ``bogus`` in ``/gap bogus``; None for ``/gap post`` or filters."""
    filters_text, _ = triggers.split_post_flag(text)
    if not filters_text.strip() or "=" in filters_text:
        return None
    return filters_text.split()[0]


def post_trigger_point(text: str, ctx: Ctx, *, post: bool = False) -> None:
    """The gap for the filters: the channel's trigger point if it crosses the rule (or
    ``post`` is asked), else an answer only for the person, with "Post to channel". A gap
    that already has its message in this channel is updated in place instead."""
    assert ctx.channel_id is not None
    filters_text, asked = triggers.split_post_flag(text)
    ctx.in_turn(partial(_answered, ctx, partial(_gap_in_the_channel, ctx, filters_text,
                                                post=post or asked)))


def _gap_in_the_channel(ctx: Ctx, filters_text: str, *, post: bool) -> None:
    assert ctx.channel_id is not None
    report, existing = _gap_in_channel(ctx, filters_text)
    if existing is None and not post and not report.result.triggered:
        _whisper(ctx, headline(report.result),
                 explore_blocks(report, filters_text=filters_text))
        return
    # Each step of the claim is one statement, race-safe on its own (a unique key, a
    # conditional update), as is recording the message: no transaction around them.
    living = triggers.claim_living(ctx.quick_sessions, report, team_id=ctx.team_id,
                                   channel_id=ctx.channel_id, created_by=ctx.user_id,
                                   absent=existing is None)
    if living.claim == triggers.Claim.BUSY:
        ctx.tell("This gap is being posted in this channel right now: it will be there in "
                 "a moment.")
    elif living.claim == triggers.Claim.UPDATE:
        _refresh_in_place(ctx, report, living)
    else:
        _post_new(ctx, report, living)


def _gap_in_channel(ctx: Ctx, filters_text: str) -> tuple[GapReport, triggers.PointRef | None]:
    """The gap for the filters under this channel's rule, and its living trigger point
    here if it has one."""
    assert ctx.channel_id is not None
    with ctx.quick_sessions() as session:  # reads only: no transaction needed
        rule = triggers.channel_rule(session, ctx.settings, ctx.team_id, ctx.channel_id)
        report = gap_report(session, filters_text, team_id=ctx.team_id, rule=rule,
                            explain=True, fy_start_month=ctx.settings.fiscal_year_start_month)
        existing = triggers.living(session, report, team_id=ctx.team_id,
                                   channel_id=ctx.channel_id)
        return report, existing


def _post_new(ctx: Ctx, report: GapReport, living: triggers.Living) -> None:
    assert ctx.channel_id is not None
    blocks = trigger_point_blocks(report, trigger_point_id=living.point_id,
                                  status=triggers.initial_status(report))
    try:
        ts = earlier_posts.post_trigger_point(ctx.client, ctx.channel_id, living,
                                              text=escape(headline(report.result)),
                                              blocks=blocks)
    except (SlackApiError, UserError) as error:
        _release(ctx, living, maybe_posted=isinstance(error, SlackUnanswered))
        raise
    if not triggers.complete_post(ctx.quick_sessions, living.point_id, ts):
        # Slack has the message: never answer "nothing was done" for it.
        ctx.tell("Posted. The database is not answering right now, so its thread is not "
                 "followed yet: this completes with the next `/gap` for the same scope once "
                 "the database is back, and the buttons work then.")


def _release(ctx: Ctx, living: triggers.Living, *, maybe_posted: bool = False) -> None:
    try:
        triggers.release(ctx.sessions, living, maybe_posted=maybe_posted)
    except DBAPIError:  # the claim's lease expires on its own
        log.warning("trigger point %d: could not release its claim", living.point_id)


def _refresh_in_place(ctx: Ctx, report: GapReport, living: triggers.Living) -> None:
    """The gap's message, updated with the latest figures; a line in its thread; a
    private word with its link to the person who asked."""
    assert ctx.channel_id is not None and living.message_ts is not None
    refreshed = triggers.refresh(ctx.sessions, living.point_id, report)
    if refreshed is None:
        raise UserError("That trigger point is gone: try again.")
    blocks = trigger_point_blocks(report, trigger_point_id=living.point_id,
                                  status=refreshed.status,
                                  status_changed_at=refreshed.status_changed_at)
    text = escape(headline(report.result))
    try:
        channel = ctx.channel_id
        in_channel(ctx.client, channel, lambda: ctx.client.chat_update(
            channel=channel, ts=living.message_ts, text=text, blocks=blocks))
        ts = living.message_ts
    except SlackApiError as error:
        if error.response.get("error") != "message_not_found":
            raise
        # Someone deleted the message: post it again and keep the conversation there.
        posted = post_in_channel(ctx.client, ctx.channel_id, text=text, blocks=blocks,
                                 metadata=earlier_posts.tag(earlier_posts.TRIGGER_POINT,
                                                            trigger_point_id=living.point_id))
        ts = str(posted["ts"])
        triggers.complete_post(ctx.sessions, living.point_id, ts)
    post_in_channel(ctx.client, ctx.channel_id, thread_ts=ts, text=refreshed.note)
    link = ctx.client.chat_getPermalink(channel=ctx.channel_id, message_ts=ts)["permalink"]
    ctx.tell(f"This gap is already in this channel, so I updated its message with the "
             f"latest figures ({escape(refreshed.note)}): <{link}|see it>.", escaped=True)


def _whisper(ctx: Ctx, text: str, blocks: list[Block]) -> None:
    """An answer only this person sees, with blocks."""
    if ctx.respond is not None:
        ctx.respond(text=escape(text), blocks=blocks, response_type="ephemeral",
                    replace_original=False)
    else:
        assert ctx.channel_id is not None
        ctx.client.chat_postEphemeral(channel=ctx.channel_id, user=ctx.user_id,
                                      text=escape(text), blocks=blocks)


def handle_post_to_channel(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                           respond: Respond) -> None:
    """"Post to channel" on a gap answered privately: post it for everyone."""
    ack()
    ctx = Ctx.of(context, body, respond)
    filters_text = str((body.get("actions") or [{}])[0].get("value") or "")
    post_trigger_point(filters_text, ctx, post=True)


@subcommand("close")
def close_gap(text: str, ctx: Ctx) -> None:
    """A lead closes a gap with a reason: the message says closed, the thread says why."""
    assert ctx.channel_id is not None
    filters_text, reason = triggers.split_reason(text)
    if not filters_text or not reason:
        raise UserError("Name the gap and say why: `/gap close region=EU category=Snacks "
                        "reason: the promotion moved to January`.")
    report, existing = _gap_in_channel(ctx, filters_text)
    if existing is None or existing.message_ts is None:
        raise UserError("That gap has no trigger point in this channel: nothing to close.")
    if ctx.user_id not in ctx.settings.leads:  # the installation's leads may, everywhere
        require_rule_maker(ctx, ctx.channel_id, "close a gap")
    try:
        point = triggers.close(ctx.sessions, ctx.team_id, existing.id, user_id=ctx.user_id,
                               reason=reason)
    except LifecycleError as problem:
        raise UserError(str(problem)) from None
    ts, channel = existing.message_ts, ctx.channel_id
    in_channel(ctx.client, channel, lambda: ctx.client.chat_update(
        channel=channel, ts=ts, text=escape(headline(report.result)),
        blocks=trigger_point_blocks(report, trigger_point_id=point.id, status=point.status,
                                    status_changed_at=point.status_changed_at)))
    post_in_channel(ctx.client, channel, thread_ts=ts,
                    text=f"Closed by <@{ctx.user_id}>: {escape(reason)}")
    ctx.tell("Closed. The reason is in the gap's thread.")


def handle_drill_down(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                      respond: Respond) -> None:
    """A driver chosen on a gap: its own gap and drivers by the next dimension, only for
    the person, with "Post to channel" and the next level's drill."""
    ack()
    ctx = Ctx.of(context, body, respond)
    action = (body.get("actions") or [{}])[0]
    member = str((action.get("selected_option") or {}).get("value") or "")
    filters_text = drill_request(str(action.get("block_id") or ""), member)
    try:
        if filters_text is None or ctx.channel_id is None:
            raise UserError("That choice cannot be opened: ask with `/gap` and `by=`.")
        with ctx.work_slot, ctx.sessions() as session:
            rule = triggers.channel_rule(session, ctx.settings, ctx.team_id, ctx.channel_id)
            report = gap_report(session, filters_text, team_id=ctx.team_id, rule=rule,
                                explain=True,
                                fy_start_month=ctx.settings.fiscal_year_start_month)
        _whisper(ctx, headline(report.result),
                 explore_blocks(report, filters_text=filters_text))
    except (FilterError, NoData, UserError) as problem:
        ctx.tell(str(problem))


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
