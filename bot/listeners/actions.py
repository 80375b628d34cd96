"""SMART actions in Slack: the modal, the action card's buttons, ``/gap actions``.

Every id that comes back from Slack (a button value, a select option, a modal's
private_metadata) is looked up within the caller's workspace: an action or gap of
another workspace is simply not found. Modal submissions are validated and stored
before ``ack()``, so a closed modal means a saved change and an error stays inline.
"""

from __future__ import annotations

import json
import logging
import math
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
    cancel_modal,
    complete_modal,
    edit_action_modal,
    notice_modal,
    progress_modal,
    reassign_modal,
    smart_action_modal,
    with_another_milestone,
)
from bot.blocks.actions_list import MAX_MESSAGE_BLOCKS, register_blocks, register_text
from bot.blocks.hand_back import owner_dm_blocks
from bot.blocks.text import SECTION_TEXT_MAX, cut, escape, unescape
from bot.blocks.thread import MAX_ID
from bot.directory import person_audience
from bot.ids import INPUT, ActionId, BlockId, CallbackId
from bot.listeners.commands import subcommand
from bot.listeners.context import Ctx, UserError, post_in_channel
from bot.listeners.gap_message import show_gap_status
from bot.slack_client import NotInChannel, in_channel
from sop_core import formatting as fmt
from sop_core.models import utcnow
from sop_core.services import actions
from sop_core.services.actions import ActionRefused, ActionView, NotFound, NothingChanged, Which
from sop_core.smart import (
    MAX_MILESTONES,
    TITLE_MAX,
    USER_ID,
    CancelInput,
    CompletionInput,
    Location,
    ProgressInput,
    SmartActionInput,
    error_messages,
    without_controls,
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
CANCEL_BLOCKS: dict[Location, str] = {("reason",): BlockId.CANCEL_REASON}
NOT_IN_A_GAP_THREAD = ("“Create SMART action” works on a trigger point or a message in its "
                       "thread: this message is in neither.")


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
    app.action(ActionId.ACTION_EDIT)(open_edit)
    app.view(CallbackId.EDIT_ACTION)(submit_edit)
    app.action(ActionId.ACTION_CANCEL)(open_cancel)
    app.view(CallbackId.CANCEL_ACTION)(submit_cancel)
    app.action(ActionId.ADD_MILESTONE)(add_milestone)
    app.shortcut(CallbackId.SMART_ACTION_SHORTCUT)(smart_action_from_message)
    app.action(ActionId.ACTION_HAND_BACK)(hand_back)


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
    """The card, updated in place (the change itself is already saved), and the gap's
    message too when the change moved the gap's status."""
    show_gap_status(ctx, client, action)
    if action.channel_id is None or action.card_ts is None:
        return
    channel, ts = action.channel_id, action.card_ts
    try:
        in_channel(client, channel, lambda: client.chat_update(
            channel=channel, ts=ts, text=card_text(action),
            blocks=action_card_blocks(action, today=_owner_today(ctx, action))))
    except (SlackApiError, NotInChannel):
        log.exception("could not update the card of action %s", action.id)


def _dm(client: WebClient, user_id: str, text: str, *, hand_back: int | None = None) -> None:
    """``hand_back``: the action a person was named owner of by someone else, who may
    give it back from this DM."""
    text = cut(text, SECTION_TEXT_MAX)
    try:
        if hand_back is None:
            client.chat_postMessage(channel=user_id, text=text)
        else:
            client.chat_postMessage(channel=user_id, text=text,
                                    blocks=owner_dm_blocks(text, hand_back))
    except SlackApiError:
        log.exception("could not send a DM to %s", user_id)


def _today(ctx: Ctx) -> date:
    """The caller's own day (their Slack zone once known, else the installation's)."""
    try:
        with ctx.sessions() as session:
            return actions.person_today(session, ctx.team_id, ctx.user_id,
                                        default_tz=ctx.settings.timezone)
    except SQLAlchemyError:  # the database away: the save that follows says so in the form
        log.warning("could not read %s's time zone: the database is away", ctx.user_id)
        return actions.local_today(ctx.settings.timezone)


def _owner_today(ctx: Ctx, action: ActionView) -> date:
    """The card counts days in its owner's zone (cached from ``users.info``)."""
    with ctx.sessions() as session:
        return actions.person_today(session, ctx.team_id, action.owner_id,
                                    default_tz=ctx.settings.timezone)


def _card_link(client: WebClient, channel_id: str | None, card_ts: str | None) -> str:
    """A link to the card for a DM (mrkdwn); where it is when Slack gives no link."""
    if channel_id is None or card_ts is None:
        return ""
    try:
        link = client.chat_getPermalink(channel=channel_id, message_ts=card_ts)["permalink"]
    except (SlackApiError, KeyError):
        log.warning("no permalink for the card %s in %s", card_ts, channel_id)
        return f" Its card is in the gap's thread in <#{channel_id}>."
    return f" <{link}|Open its card>."


# ------------------------------------------------------------------------------------
# Creating a SMART action
# ------------------------------------------------------------------------------------

def open_smart_action(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                      client: WebClient) -> None:
    """From the trigger point (or its root-cause thread): the prefilled modal, at once."""
    ack()
    ctx = Ctx.of(context, body)
    try:
        point_id = _id(_clicked(body).get("value"))
    except NotFound:
        _tell(ctx, GAP_NOT_FOUND, thread_ts=_thread_of(body))
        return
    _open_smart_modal(ctx, client, body, point_id)


def _open_smart_modal(ctx: Ctx, client: WebClient, body: dict[str, Any], point_id: int, *,
                      title: str | None = None) -> None:
    """The SMART modal for a gap: expected impact = what no action covers yet, due date =
    the day before the channel's next meeting (when there is one)."""
    try:
        with ctx.sessions() as session:
            defaults = actions.modal_defaults(session, ctx.team_id, point_id, now=utcnow(),
                                              today=_today(ctx))
    except NotFound:
        _tell(ctx, GAP_NOT_FOUND, thread_ts=_thread_of(body))
        return
    gap = defaults.gap
    metadata = _encode(point=gap.trigger_point_id, channel=gap.channel_id,
                       thread_ts=gap.message_ts)
    # Fully covered already: the field is left empty rather than suggesting 0.
    expected = defaults.uncovered if defaults.uncovered >= 0.5 else math.nan
    client.views_open(trigger_id=body["trigger_id"], view=smart_action_modal(
        gap, metadata=metadata, owner_id=ctx.user_id, expected_impact=expected,
        due_date=defaults.due_date, title=title))


def smart_action_from_message(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                              client: WebClient) -> None:
    """The message shortcut: a SMART action from a message in a trigger point's thread,
    its title prefilled from the message."""
    ack()
    ctx = Ctx.of(context, body)
    message = body.get("message") or {}
    with ctx.sessions() as session:
        gap = (actions.point_in_thread(session, ctx.team_id, ctx.channel_id,
                                       message.get("ts"), message.get("thread_ts"))
               if ctx.channel_id else None)
    if gap is None:
        _tell(ctx, NOT_IN_A_GAP_THREAD)
        return
    text = " ".join(without_controls(str(message.get("text") or "")).split())
    _open_smart_modal(ctx, client, body, gap.trigger_point_id,
                      title=cut(unescape(text), TITLE_MAX) or None)


def add_milestone(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
    """The "Add milestone" button of a SMART modal: the same modal, one row more."""
    ack()
    view = body.get("view") or {}
    grown = with_another_milestone(view)
    if grown is None or not view.get("id"):
        return
    try:
        client.views_update(view_id=view["id"], hash=view.get("hash"), view=grown)
    except SlackApiError as error:  # hash_conflict: the modal changed meanwhile
        log.warning("could not add a milestone row: %s", error.response.get("error"))


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
    channel_id, card_ts = _post_card(ctx, client, action, metadata)
    show_gap_status(ctx, client, action)
    owner_text = ("Your new SMART action" if action.owner_id == action.creator_id else
                  f"{mention(action.creator_id)} made you the owner of a SMART action")
    _dm(client, action.owner_id,
        f"{owner_text}: *{escape(action.title)}*, due {action.due_date.isoformat()} "
        f"(expected to close {fmt.amount(action.expected_impact)} of the gap)."
        f"{_card_link(client, channel_id, card_ts)}",
        hand_back=action.id if action.owner_id != action.creator_id else None)


def _post_card(ctx: Ctx, client: WebClient, action: ActionView,
               metadata: dict[str, Any]) -> tuple[str | None, str | None]:
    """The card in the gap's thread; where it is (channel, ts), remembered on the action."""
    channel = action.channel_id or metadata.get("channel")
    thread_ts = action.gap.message_ts if action.gap else metadata.get("thread_ts")
    if channel is None:
        return None, None
    try:
        posted = post_in_channel(client, channel, thread_ts=thread_ts, text=card_text(action),
                                 blocks=action_card_blocks(action,
                                                           today=_owner_today(ctx, action)))
    except (SlackApiError, UserError) as problem:
        if isinstance(problem, SlackApiError):
            log.exception("could not post the card of action %s", action.id)
        _dm(client, ctx.user_id, f"Your action “{escape(action.title)}” is saved, but I could "
                                 f"not post its card in <#{channel}>: {escape(problem)}")
        return None, None
    channel = posted.get("channel") or channel
    actions.attach_card(ctx.sessions, team_id=ctx.team_id, action_id=action.id,
                        channel_id=channel, card_ts=posted["ts"])
    return channel, posted["ts"]


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
        f"*{escape(action.title)}*, due {action.due_date.isoformat()}."
        f"{_card_link(client, action.channel_id, action.card_ts)}",
        hand_back=action.id if action.owner_id != ctx.user_id else None)


# ------------------------------------------------------------------------------------
# Edit and cancel
# ------------------------------------------------------------------------------------

def open_edit(ack: Ack, body: dict[str, Any], context: dict[str, Any],
              client: WebClient) -> None:
    _open_for(ack, body, context, client, edit_action_modal)


def open_cancel(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                client: WebClient) -> None:
    _open_for(ack, body, context, client, cancel_modal)


def edit_form(values: Mapping[str, Any], action: ActionView) -> dict[str, Any]:
    """The edit modal's state, completed with the fields it does not offer (as stored),
    so that the whole SMART validation runs on the result."""
    form = smart_form(values)
    form.update(owner_id=action.owner_id, metric=action.metric_name,
                baseline=str(action.baseline), target=str(action.target),
                confidence=action.confidence or "medium")
    return form


def submit_edit(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                client: WebClient) -> None:
    ctx = Ctx.of(context, body)
    try:
        with ctx.sessions() as session:
            stored = actions.get(session, ctx.team_id, _id(_metadata(body).get("action")))
    except NotFound:
        ack(response_action="errors", errors={BlockId.TITLE: NOT_FOUND_ACTION})
        return
    # An overdue date that is left as it was is no error; moving one into the past is.
    kept = frozenset([stored.due_date, *(m.due_date for m in stored.open_milestones)])
    try:
        data = SmartActionInput.parse(edit_form(body["view"]["state"]["values"], stored),
                                      today=_today(ctx), kept_dates=kept)
    except ValidationError as error:
        ack(response_action="errors", errors=_block_errors(error, SMART_BLOCKS))
        return

    def change(action_id: int) -> ActionView:
        try:
            return actions.edit(ctx.sessions, data, team_id=ctx.team_id, action_id=action_id,
                                user_id=ctx.user_id, leads=ctx.settings.leads)
        except NothingChanged:
            return stored

    action = _submit_change(ack, body, ctx, BlockId.TITLE, change)
    if action is not None and action.edited_at != stored.edited_at:
        _update_card(ctx, client, action)
        if action.owner_id != ctx.user_id:
            _dm(client, action.owner_id,
                f"{mention(ctx.user_id)} edited your SMART action *{escape(action.title)}* "
                f"(due {action.due_date.isoformat()})."
                f"{_card_link(client, action.channel_id, action.card_ts)}")


def submit_cancel(ack: Ack, body: dict[str, Any], context: dict[str, Any],
                  client: WebClient) -> None:
    ctx = Ctx.of(context, body)
    try:
        data = CancelInput.model_validate({
            "reason": field(body["view"]["state"]["values"], BlockId.CANCEL_REASON)})
    except ValidationError as error:
        ack(response_action="errors", errors=_block_errors(error, CANCEL_BLOCKS))
        return
    action = _submit_change(ack, body, ctx, BlockId.CANCEL_REASON, lambda action_id:
                            actions.cancel(ctx.sessions, team_id=ctx.team_id,
                                           action_id=action_id, reason=data.reason,
                                           user_id=ctx.user_id, leads=ctx.settings.leads))
    if action is not None:
        _update_card(ctx, client, action)


def hand_back(ack: Ack, body: dict[str, Any], context: dict[str, Any],
              client: WebClient) -> None:
    """From the owner's DM: the action goes back to whoever named them owner."""
    ack()
    ctx = Ctx.of(context, body)
    try:
        action, back_to = actions.hand_back(ctx.sessions, team_id=ctx.team_id,
                                            action_id=_id(_clicked(body).get("value")),
                                            user_id=ctx.user_id)
    except NotFound:
        _tell(ctx, NOT_FOUND_ACTION)
        return
    except ActionRefused as refused:
        _tell(ctx, str(refused))
        return
    except SQLAlchemyError:
        log.exception("could not hand back an action")
        _tell(ctx, SAVE_FAILED)
        return
    _update_card(ctx, client, action)
    _tell(ctx, f"Handed back: {action.title} is owned by its previous owner again.")
    _dm(client, back_to,
        f"{mention(ctx.user_id)} handed back the SMART action *{escape(action.title)}*: "
        f"you own it again."
        f"{_card_link(client, action.channel_id, action.card_ts)}")


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
