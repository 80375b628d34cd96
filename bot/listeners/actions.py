"""SMART actions in Slack: the modal, the action card's buttons, ``/gap actions``.

Every id that comes back from Slack (a button value, a select option, a modal's
private_metadata) is looked up within the caller's workspace: an action or gap of
another workspace is simply not found. Modal submissions are validated and stored
before ``ack()``, so a closed modal means a saved change and an error stays inline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot.blocks.action_card import action_card_blocks, card_text, mention
from bot.blocks.action_modal import (
    complete_modal,
    notice_modal,
    progress_modal,
    reassign_modal,
    smart_action_modal,
)
from bot.blocks.actions_list import MAX_MESSAGE_BLOCKS, register_blocks, register_text
from bot.blocks.text import SECTION_TEXT_MAX, cut, escape
from bot.blocks.thread import MAX_ID
from bot.directory import person_audience
from bot.ids import INPUT, ActionId, BlockId, CallbackId
from bot.listeners.commands import subcommand
from bot.listeners.context import Ctx, UserError, post_in_channel
from sop_core import formatting as fmt
from sop_core.services import actions
from sop_core.services.actions import ActionRefused, ActionView, NotFound, Which
from sop_core.smart import (
    MAX_MILESTONES,
    USER_ID,
    CompletionInput,
    Location,
    ProgressInput,
    SmartActionInput,
    error_messages,
)

log = logging.getLogger(__name__)

NOT_FOUND_ACTION = "I could not find that action in this workspace: nothing was changed."
GAP_NOT_FOUND = "I could not find that gap in this workspace."
NOT_FOUND_GAP = "I could not find that gap in this workspace: nothing was saved."
SAVE_FAILED = "Something went wrong saving this: nothing was saved. Please try again."

SMART_BLOCKS: dict[Location, str] = {
    ("title",): BlockId.TITLE, ("owner_id",): BlockId.OWNER, ("metric",): BlockId.METRIC,
    ("baseline",): BlockId.BASELINE, ("target",): BlockId.TARGET,
    ("expected_impact",): BlockId.EXPECTED_IMPACT, ("resources",): BlockId.RESOURCES,
    ("confidence",): BlockId.CONFIDENCE, ("due_date",): BlockId.DUE_DATE,
    ("milestones",): BlockId.MILESTONE_NAME.format(0),
    **{("milestones", i, "name"): BlockId.MILESTONE_NAME.format(i)
       for i in range(MAX_MILESTONES)},
    **{("milestones", i, "due_date"): BlockId.MILESTONE_DATE.format(i)
       for i in range(MAX_MILESTONES)},
}
PROGRESS_BLOCKS: dict[Location, str] = {("value",): BlockId.PROGRESS_VALUE,
                                        ("note",): BlockId.PROGRESS_NOTE}
COMPLETE_BLOCKS: dict[Location, str] = {("realised_impact",): BlockId.REALISED_IMPACT,
                                        ("note",): BlockId.PROGRESS_NOTE}


def register(app: App) -> None:
    app.action(ActionId.CREATE_ACTION)(open_smart_action)
    app.view(CallbackId.SMART_ACTION)(submit_smart_action)
    app.action(ActionId.ACTION_PROGRESS)(open_progress)
    app.view(CallbackId.PROGRESS)(submit_progress)
    app.action(ActionId.ACTION_MILESTONE_DONE)(milestone_done)
    app.action(ActionId.ACTION_SNOOZE)(snooze)
    app.action(ActionId.ACTION_COMPLETE)(open_complete)
    app.view(CallbackId.COMPLETE)(submit_complete)
    app.action(ActionId.ACTION_REASSIGN)(open_reassign)
    app.view(CallbackId.REASSIGN)(submit_reassign)


# ------------------------------------------------------------------------------------
# Reading what Slack sends
# ------------------------------------------------------------------------------------

def _id(value: object) -> int:
    """An id from a button value or metadata; anything else is simply not found: "²"
    (``isdigit`` accepts it, ``int`` does not), 5,000 digits (nor those), or a number no
    id column holds."""
    text = str(value or "").strip()
    if not (len(text) <= len(str(MAX_ID)) and text.isascii() and text.isdigit()
            and 0 < int(text) <= MAX_ID):
        raise NotFound(f"id {text[:20]!r}")
    return int(text)


def _pair(value: object) -> tuple[int, int]:
    """``"12:3"`` (action 12, item 3) from a select option."""
    first, _, second = str(value or "").partition(":")
    return _id(first), _id(second)


def _clicked(body: dict[str, Any]) -> dict[str, Any]:
    return (body.get("actions") or [{}])[0]


def _selected(body: dict[str, Any]) -> str | None:
    option = _clicked(body).get("selected_option") or {}
    return option.get("value")


def field(values: Mapping[str, Any], block_id: str) -> str | None:
    """The submitted value of an input block, whatever its element kind."""
    entry = (values.get(block_id) or {}).get(INPUT) or {}
    if "selected_option" in entry:
        option = entry["selected_option"]
        return option.get("value") if option else None
    for key in ("value", "selected_user", "selected_date"):
        if key in entry:
            return entry[key]
    return None


def _encode(**metadata: Any) -> str:
    return json.dumps({k: v for k, v in metadata.items() if v is not None},
                      separators=(",", ":"))


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    try:
        found = json.loads(body["view"].get("private_metadata") or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _thread_of(body: dict[str, Any]) -> str | None:
    message = body.get("message") or {}
    return message.get("thread_ts") or (body.get("container") or {}).get("thread_ts")


def _block_errors(error: ValidationError, blocks: Mapping[Location, str]) -> dict[str, str]:
    """Each error at its input block (the first one per block), for ``response_action``."""
    first = next(iter(blocks.values()))
    found: dict[str, str] = {}
    for loc, message in error_messages(error).items():
        found.setdefault(blocks.get(loc, first), message)
    return found


# ------------------------------------------------------------------------------------
# Telling people
# ------------------------------------------------------------------------------------

def _tell(ctx: Ctx, text: str, *, thread_ts: str | None = None) -> None:
    """Only this person sees it: an ephemeral message where they are, else a DM."""
    try:
        if ctx.channel_id is not None:
            ctx.client.chat_postEphemeral(channel=ctx.channel_id, user=ctx.user_id,
                                          text=escape(text), thread_ts=thread_ts)
        else:
            ctx.client.chat_postMessage(channel=ctx.user_id, text=escape(text))
    except SlackApiError:
        log.exception("could not tell %s: %s", ctx.user_id, text)


def _update_card(ctx: Ctx, client: WebClient, action: ActionView) -> None:
    """The card, updated in place (the change itself is already saved)."""
    if action.channel_id is None or action.card_ts is None:
        return
    try:
        client.chat_update(channel=action.channel_id, ts=action.card_ts,
                           text=card_text(action),
                           blocks=action_card_blocks(action, today=_today(ctx)))
    except SlackApiError:
        log.exception("could not update the card of action %s", action.id)


def _dm(client: WebClient, user_id: str, text: str) -> None:
    try:
        client.chat_postMessage(channel=user_id, text=cut(text, SECTION_TEXT_MAX))
    except SlackApiError:
        log.exception("could not send a DM to %s", user_id)


def _today(ctx: Ctx) -> date:
    return actions.local_today(ctx.settings.timezone)


def _where(action: ActionView) -> str:
    return f" in <#{action.channel_id}>" if action.channel_id else ""


# ------------------------------------------------------------------------------------
# Creating a SMART action
# ------------------------------------------------------------------------------------

def open_smart_action(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                      client: WebClient) -> None:
    """From the trigger point (or its root-cause thread): the prefilled modal, at once."""
    ack()
    ctx = Ctx.of(context, body)
    try:
        with ctx.sessions() as session:
            gap = actions.linked_gap(session, ctx.team_id, _id(_clicked(body).get("value")))
    except NotFound:
        _tell(ctx, GAP_NOT_FOUND, thread_ts=_thread_of(body))
        return
    metadata = _encode(point=gap.trigger_point_id, channel=gap.channel_id,
                       thread_ts=gap.message_ts)
    client.views_open(trigger_id=body["trigger_id"],
                      view=smart_action_modal(gap, metadata=metadata, owner_id=ctx.user_id))


def smart_form(values: Mapping[str, Any]) -> dict[str, Any]:
    """The modal's state as the raw input :class:`SmartActionInput` validates."""
    return {
        "title": field(values, BlockId.TITLE), "owner_id": field(values, BlockId.OWNER),
        "metric": field(values, BlockId.METRIC), "baseline": field(values, BlockId.BASELINE),
        "target": field(values, BlockId.TARGET),
        "expected_impact": field(values, BlockId.EXPECTED_IMPACT),
        "resources": field(values, BlockId.RESOURCES),
        "confidence": field(values, BlockId.CONFIDENCE),
        "due_date": field(values, BlockId.DUE_DATE),
        "milestones": [{"name": field(values, BlockId.MILESTONE_NAME.format(i)),
                        "due_date": field(values, BlockId.MILESTONE_DATE.format(i))}
                       for i in range(MAX_MILESTONES)],
    }


def submit_smart_action(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                        client: WebClient) -> None:
    ctx = Ctx.of(context, body)
    try:
        data = SmartActionInput.parse(smart_form(body["view"]["state"]["values"]),
                                      today=_today(ctx))
    except ValidationError as error:
        ack(response_action="errors", errors=_block_errors(error, SMART_BLOCKS))
        return
    metadata = _metadata(body)
    try:
        action = actions.create(ctx.sessions, data, team_id=ctx.team_id,
                                point_id=_id(metadata.get("point")), creator_id=ctx.user_id)
    except NotFound:
        ack(response_action="update", view=notice_modal("Not saved", NOT_FOUND_GAP))
        return
    except SQLAlchemyError:
        log.exception("could not store a SMART action")
        ack(response_action="errors", errors={BlockId.TITLE: SAVE_FAILED})
        return
    ack()
    _post_card(ctx, client, action, metadata)
    owner_text = ("Your new SMART action" if action.owner_id == action.creator_id else
                  f"{mention(action.creator_id)} made you the owner of a SMART action")
    _dm(client, action.owner_id,
        f"{owner_text}: *{escape(action.title)}*, due {action.due_date.isoformat()} "
        f"(expected to close {fmt.amount(action.expected_impact)} of the gap). Its card is "
        f"in the gap's thread{_where(action)}.")


def _post_card(ctx: Ctx, client: WebClient, action: ActionView,
               metadata: dict[str, Any]) -> None:
    """The card in the gap's thread; where it is, remembered on the action."""
    channel = action.channel_id or metadata.get("channel")
    thread_ts = action.gap.message_ts if action.gap else metadata.get("thread_ts")
    if channel is None:
        return
    try:
        posted = post_in_channel(client, channel, thread_ts=thread_ts, text=card_text(action),
                                 blocks=action_card_blocks(action, today=_today(ctx)))
    except (SlackApiError, UserError) as problem:
        if isinstance(problem, SlackApiError):
            log.exception("could not post the card of action %s", action.id)
        _dm(client, ctx.user_id, f"Your action “{escape(action.title)}” is saved, but I could "
                                 f"not post its card in <#{channel}>: {escape(problem)}")
        return
    actions.attach_card(ctx.sessions, team_id=ctx.team_id, action_id=action.id,
                        channel_id=posted.get("channel") or channel, card_ts=posted["ts"])


# ------------------------------------------------------------------------------------
# The card's buttons
# ------------------------------------------------------------------------------------

def _changeable(ctx: Ctx, body: dict[str, Any], action_id: object) -> ActionView | None:
    """The action if this person may change it; otherwise they are told why (only them)."""
    try:
        with ctx.sessions() as session:
            return actions.check_change(session, team_id=ctx.team_id, action_id=_id(action_id),
                                        user_id=ctx.user_id, leads=ctx.settings.leads)
    except NotFound:
        _tell(ctx, NOT_FOUND_ACTION, thread_ts=_thread_of(body))
    except ActionRefused as refused:
        _tell(ctx, str(refused), thread_ts=_thread_of(body))
    return None


def _change_now(ctx: Ctx, body: dict[str, Any], client: WebClient,
                change: Callable[[], ActionView]) -> ActionView | None:
    """A change made straight from the card (no modal): saved, then the card updated."""
    try:
        action = change()
    except NotFound:
        _tell(ctx, NOT_FOUND_ACTION, thread_ts=_thread_of(body))
        return None
    except ActionRefused as refused:
        _tell(ctx, str(refused), thread_ts=_thread_of(body))
        return None
    _update_card(ctx, client, action)
    return action


def _open_for(ack: Ack, body: dict[str, Any], context: dict[str, Any], client: WebClient,
              build: Callable[..., Any]) -> None:
    ack()
    ctx = Ctx.of(context, body)
    action = _changeable(ctx, body, _clicked(body).get("value"))
    if action is None:
        return
    metadata = _encode(action=action.id, channel=ctx.channel_id, thread_ts=_thread_of(body))
    client.views_open(trigger_id=body["trigger_id"], view=build(action, metadata=metadata))


def open_progress(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                  client: WebClient) -> None:
    _open_for(ack, body, context, client, progress_modal)


def open_complete(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                  client: WebClient) -> None:
    _open_for(ack, body, context, client, complete_modal)


def open_reassign(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                  client: WebClient) -> None:
    _open_for(ack, body, context, client, reassign_modal)


def milestone_done(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                   client: WebClient) -> None:
    ack()
    ctx = Ctx.of(context, body)

    def change() -> ActionView:
        action_id, milestone_id = _pair(_selected(body))
        return actions.mark_milestone_done(
            ctx.sessions, team_id=ctx.team_id, action_id=action_id, milestone_id=milestone_id,
            user_id=ctx.user_id, leads=ctx.settings.leads)

    _change_now(ctx, body, client, change)


def snooze(ack: Ack, body: dict[str, Any], context: dict[str, Any],
           client: WebClient) -> None:
    ack()
    ctx = Ctx.of(context, body)

    def change() -> ActionView:
        action_id, days = _pair(_selected(body))
        return actions.snooze(ctx.sessions, team_id=ctx.team_id, action_id=action_id,
                              days=days, today=_today(ctx), user_id=ctx.user_id,
                              leads=ctx.settings.leads)

    _change_now(ctx, body, client, change)


# ------------------------------------------------------------------------------------
# The card's modals, submitted
# ------------------------------------------------------------------------------------

def _submit_change(ack: Ack, body: dict[str, Any], ctx: Ctx, first_block: str,
                   change: Callable[[int], ActionView]) -> ActionView | None:
    """Save a modal's change before closing it; a refusal stays in the modal."""
    try:
        action = change(_id(_metadata(body).get("action")))
    except NotFound:
        ack(response_action="errors", errors={first_block: NOT_FOUND_ACTION})
    except ActionRefused as refused:
        ack(response_action="errors", errors={first_block: str(refused)})
    except SQLAlchemyError:
        log.exception("could not save a change to an action")
        ack(response_action="errors", errors={first_block: SAVE_FAILED})
    else:
        ack()
        return action
    return None


def submit_progress(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                    client: WebClient) -> None:
    ctx = Ctx.of(context, body)
    values = body["view"]["state"]["values"]
    try:
        data = ProgressInput.model_validate({
            "value": field(values, BlockId.PROGRESS_VALUE),
            "note": field(values, BlockId.PROGRESS_NOTE)})
    except ValidationError as error:
        ack(response_action="errors", errors=_block_errors(error, PROGRESS_BLOCKS))
        return
    action = _submit_change(ack, body, ctx, BlockId.PROGRESS_VALUE, lambda action_id:
                            actions.record_progress(
                                ctx.sessions, team_id=ctx.team_id, action_id=action_id,
                                user_id=ctx.user_id, value=data.value, note=data.note,
                                leads=ctx.settings.leads))
    if action is not None:
        _update_card(ctx, client, action)


def submit_complete(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                    client: WebClient) -> None:
    ctx = Ctx.of(context, body)
    values = body["view"]["state"]["values"]
    try:
        data = CompletionInput.model_validate({
            "realised_impact": field(values, BlockId.REALISED_IMPACT),
            "note": field(values, BlockId.PROGRESS_NOTE)})
    except ValidationError as error:
        ack(response_action="errors", errors=_block_errors(error, COMPLETE_BLOCKS))
        return
    action = _submit_change(ack, body, ctx, BlockId.REALISED_IMPACT, lambda action_id:
                            actions.complete(
                                ctx.sessions, team_id=ctx.team_id, action_id=action_id,
                                realised_impact=data.realised_impact, note=data.note,
                                user_id=ctx.user_id, leads=ctx.settings.leads))
    if action is not None:
        _update_card(ctx, client, action)


def submit_reassign(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                    client: WebClient) -> None:
    ctx = Ctx.of(context, body)
    new_owner = field(body["view"]["state"]["values"], BlockId.NEW_OWNER)
    if not (new_owner and USER_ID.match(new_owner)):  # a forged payload may hold anything
        ack(response_action="errors", errors={BlockId.NEW_OWNER: "Choose the new owner."})
        return
    action = _submit_change(ack, body, ctx, BlockId.NEW_OWNER, lambda action_id:
                            actions.reassign(
                                ctx.sessions, team_id=ctx.team_id, action_id=action_id,
                                new_owner_id=new_owner, user_id=ctx.user_id,
                                leads=ctx.settings.leads))
    if action is None:
        return
    _update_card(ctx, client, action)
    _dm(client, action.owner_id,
        f"{mention(ctx.user_id)} made you the owner of a SMART action: "
        f"*{escape(action.title)}*, due {action.due_date.isoformat()}. Its card is in the "
        f"gap's thread{_where(action)}.")


# ------------------------------------------------------------------------------------
# /gap actions [mine|overdue|all]
# ------------------------------------------------------------------------------------

@subcommand("actions")
def list_actions(text: str, ctx: Ctx) -> None:
    """The register, only for the caller: due soonest first, cut to Slack's limits."""
    word = text.strip().lower() or Which.MINE.value
    try:
        which = Which(word)
    except ValueError:
        raise UserError(f"“{text.strip()}” is not a list I know: use `/gap actions mine`, "
                        "`/gap actions overdue` or `/gap actions all`.") from None
    today = _today(ctx)
    audience = person_audience(ctx.client, ctx.sessions, team_id=ctx.team_id,
                               user_id=ctx.user_id)
    with ctx.sessions() as session:
        found = actions.register(session, team_id=ctx.team_id, user_id=ctx.user_id,
                                 which=which, today=today, limit=MAX_MESSAGE_BLOCKS,
                                 visibility=audience)
    blocks = register_blocks(found, today=today)
    if ctx.respond is not None:
        ctx.respond(text=register_text(found), blocks=blocks, response_type="ephemeral",
                    replace_original=False)
    elif ctx.channel_id is not None:
        ctx.client.chat_postEphemeral(channel=ctx.channel_id, user=ctx.user_id,
                                      text=register_text(found), blocks=blocks)
