"""The root-cause thread: prompt, replies, category choices, summary, confirmation."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.context.respond import Respond
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot.blocks.text import escape, unescape
from bot.blocks.thread import (
    MAX_ID,
    confirm_modal,
    confirmed_blocks,
    confirmed_fallback,
    prompt_blocks,
    prompt_text,
    read_metadata,
    summary_blocks,
    summary_text,
)
from bot.directory import channel_audience
from bot.ids import INPUT, ActionId, BlockId, CallbackId
from bot.listeners.context import Ctx, UserError, post_in_channel
from bot.listeners.permissions import NotPermitted, require_rule_maker
from sop_core.services import history, root_causes
from sop_core.services.root_causes import (
    CATEGORIES,
    SUMMARY_MAX,
    NotFound,
    NotPosted,
    category_label,
)
from sop_core.smart import without_controls

log = logging.getLogger(__name__)

NOT_FOUND = "I can't find that gap in this workspace: it may have been removed."
SAVE_FAILED = "Something went wrong saving this: nothing was saved. Please try again."
# Human replies: plain messages, replies also sent to the channel, replies with a file.
RECORDED_SUBTYPES = {None, "thread_broadcast", "file_share"}


def register(app: App) -> None:
    app.action(ActionId.DISCUSS)(discuss)
    app.action(ActionId.ROOT_CAUSE_CATEGORY)(choose_category)
    app.action(ActionId.SUMMARIZE)(summarize)
    app.action(ActionId.CONFIRM_ROOT_CAUSE)(open_confirmation)
    app.view(CallbackId.CONFIRM_ROOT_CAUSE)(submit_confirmation)
    app.event("message")(record_reply)


def point_id_of(value: object) -> int:
    """A trigger point id from a button or option value (checked against the team later)."""
    text = str(value or "")
    # Length first: int() refuses more than 4,300 digits with a ValueError.
    if not (len(text) <= len(str(MAX_ID)) and text.isascii() and text.isdigit()
            and 0 < int(text) <= MAX_ID):
        raise UserError(NOT_FOUND)
    return int(text)


def _post_in_thread(ctx: Ctx, point: root_causes.PointInfo, what: str, **message: Any) -> bool:
    try:
        post_in_channel(ctx.client, point.channel_id, thread_ts=point.message_ts, **message)
    except UserError as problem:
        ctx.tell(str(problem))
        return False
    except SlackApiError:
        log.exception("could not post the %s in the thread of trigger point %s", what, point.id)
        ctx.tell(f"Slack did not take the {what} (it has been logged): try again in a moment.")
        return False
    return True


# ------------------------------------------------------------------------------ buttons

def discuss(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: dict[str, Any],
            respond: Respond) -> None:
    """Post the three questions in the trigger point's thread, once."""
    ack()
    ctx = Ctx.of(context, body, respond)
    try:
        point, claimed = root_causes.claim_prompt(
            ctx.sessions, team_id=ctx.team_id, point_id=point_id_of(action.get("value")),
            user_id=ctx.user_id)
    except (NotFound, NotPosted, UserError):
        ctx.tell(NOT_FOUND)
        return
    if not claimed:
        ctx.tell("The root-cause discussion is already open in this gap's thread: reply there.")
        return
    try:
        # Posted in the point's channel: only what everyone there may see.
        audience = channel_audience(ctx.client, ctx.sessions, team_id=ctx.team_id,
                                    channel_id=point.channel_id)
        similar = history.similar_gaps(ctx.sessions, team_id=ctx.team_id, point_id=point.id,
                                       visibility=audience)
    except Exception:  # the prompt matters more than the look back: post it without
        log.exception("could not look up similar past gaps of trigger point %s", point.id)
        similar = ()
    if not _post_in_thread(ctx, point, "discussion prompt", text=prompt_text(point),
                           blocks=prompt_blocks(point, similar)):
        root_causes.release_prompt(ctx.sessions, point_id=point.id)


def choose_category(ack: Ack, body: dict[str, Any], action: dict[str, Any],
                    context: dict[str, Any], respond: Respond) -> None:
    ack()
    ctx = Ctx.of(context, body, respond)
    value = str((action.get("selected_option") or {}).get("value") or "")
    raw_id, _, category = value.partition(":")
    try:
        root_causes.choose_category(ctx.sessions, team_id=ctx.team_id,
                                    point_id=point_id_of(raw_id), user_id=ctx.user_id,
                                    category=category)
    except (NotFound, NotPosted, UserError):
        ctx.tell(NOT_FOUND)
        return
    except root_causes.UnknownCategory as problem:
        ctx.tell(str(problem))
        return
    ctx.tell(f"Noted: you see *{escape(category_label(category))}* as the main root cause. "
             "Pick again to change it.", escaped=True)


def summarize(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: dict[str, Any],
              respond: Respond) -> None:
    ack()
    ctx = Ctx.of(context, body, respond)
    try:
        summary = root_causes.summarize(ctx.sessions, team_id=ctx.team_id,
                                        point_id=point_id_of(action.get("value")))
    except (NotFound, NotPosted, UserError):
        ctx.tell(NOT_FOUND)
        return
    _post_in_thread(ctx, summary.point, "summary", text=summary_text(summary),
                    blocks=summary_blocks(summary))


def open_confirmation(ack: Ack, body: dict[str, Any], action: dict[str, Any],
                      context: dict[str, Any], respond: Respond) -> None:
    ack()
    ctx = Ctx.of(context, body, respond)
    try:
        summary = root_causes.summarize(ctx.sessions, team_id=ctx.team_id,
                                        point_id=point_id_of(action.get("value")))
    except (NotFound, NotPosted, UserError):
        ctx.tell(NOT_FOUND)
        return
    what = ("replace the confirmed root cause" if summary.point.confirmed_by
            else "confirm the root cause")
    try:
        require_rule_maker(ctx, summary.point.channel_id, what)
    except NotPermitted as refused:
        ctx.tell(str(refused), escaped=True)
        return
    try:
        ctx.client.views_open(trigger_id=body["trigger_id"], view=confirm_modal(summary))
    except SlackApiError:
        log.exception("could not open the root-cause modal for trigger point %s",
                      summary.point.id)
        ctx.tell("Slack did not open the form in time: click “Confirm root cause” again.")


# ------------------------------------------------------------------------------ modal

def _state(view: dict[str, Any], block: BlockId) -> dict[str, Any]:
    return ((view.get("state") or {}).get("values") or {}).get(block, {}).get(INPUT) or {}


def submit_confirmation(ack: Ack, body: dict[str, Any], view: dict[str, Any],
                        context: dict[str, Any]) -> None:
    """Validated and stored before ``ack()``: a closed modal means a saved root cause."""
    category = str((_state(view, BlockId.ROOT_CAUSE_CATEGORY).get("selected_option") or {})
                   .get("value") or "")
    text = without_controls(str(_state(view, BlockId.ROOT_CAUSE_SUMMARY).get("value") or ""))
    text = text.strip()
    errors: dict[str, str] = {}
    if category not in CATEGORIES:
        errors[BlockId.ROOT_CAUSE_CATEGORY] = "Choose the category that best fits."
    if not text:
        errors[BlockId.ROOT_CAUSE_SUMMARY] = "Write what is driving the gap, in a sentence or two."
    elif len(text) > SUMMARY_MAX:
        errors[BlockId.ROOT_CAUSE_SUMMARY] = (f"Keep it to {SUMMARY_MAX} characters at most "
                                              f"(now {len(text)}).")
    point_id = read_metadata(view.get("private_metadata") or "")
    ctx = Ctx.of(context, body)
    if errors:
        ack(response_action="errors", errors=errors)
        return
    try:
        # Checked again on submit: the leads may have changed while the form was open.
        channel = root_causes.point_info(ctx.sessions, ctx.team_id, point_id or 0).channel_id
        require_rule_maker(ctx, channel, "confirm the root cause")
        point = root_causes.confirm(ctx.sessions, team_id=ctx.team_id, point_id=point_id or 0,
                                    user_id=ctx.user_id, category=category, summary=text)
    except NotPermitted as refused:
        ack(response_action="errors", errors={BlockId.ROOT_CAUSE_SUMMARY: refused.plain})
        return
    except (NotFound, NotPosted):
        ack(response_action="errors", errors={BlockId.ROOT_CAUSE_SUMMARY: NOT_FOUND})
        return
    except SQLAlchemyError:
        log.exception("could not store the root cause of trigger point %s", point_id)
        ack(response_action="errors", errors={BlockId.ROOT_CAUSE_SUMMARY: SAVE_FAILED})
        return
    ack()
    try:
        post_in_channel(ctx.client, point.channel_id, thread_ts=point.message_ts,
                        text=confirmed_fallback(point), blocks=confirmed_blocks(point))
    except (SlackApiError, UserError):
        # Stored all the same; the thread just misses the note.
        log.exception("root cause of trigger point %s confirmed, but the note was not posted",
                      point.id)


# ------------------------------------------------------------------------------ events

def record_reply(event: dict[str, Any], context: dict[str, Any]) -> None:
    """Every human reply in a trigger point's thread, once (Slack may redeliver it)."""
    if event.get("subtype") not in RECORDED_SUBTYPES or event.get("bot_id"):
        return
    user, ts, thread_ts = event.get("user"), event.get("ts"), event.get("thread_ts")
    channel, team_id = event.get("channel"), context.get("team_id")
    if not (user and ts and thread_ts and channel and team_id) or ts == thread_ts:
        return
    new = root_causes.record_reply(
        context["sessions"], team_id=team_id, channel_id=channel, thread_ts=thread_ts,
        message_ts=ts, user_id=user, text=without_controls(unescape(event.get("text") or "")))
    if new is False:
        log.info("reply %s in %s was already recorded (redelivery)", ts, channel)
