"""Modals for SMART actions: create one from a gap, then update, complete or reassign it.

Every input element uses the action id :data:`bot.ids.INPUT`; its block id says which
field it is, so the listener reads ``state.values[block_id][INPUT]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DatePickerElement,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from bot.blocks.text import SECTION_TEXT_MAX, cut, escape
from bot.blocks.trigger import scope_label
from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core import formatting as fmt
from sop_core.services.actions import ActionView, LinkedGap, MilestoneView
from sop_core.smart import (
    MAX_MILESTONES,
    METRIC_MAX,
    MILESTONE_NAME_MAX,
    NOTE_MAX,
    TITLE_MAX,
    Confidence,
)

AMOUNT_HINT = "Type 350000, 350,000, 350K or 1.5M."
CONFIDENCE_LABELS = {Confidence.HIGH: "High: it will land", Confidence.MEDIUM: "Medium: likely",
                     Confidence.LOW: "Low: a stretch"}


def amount_input(value: float, *, down: bool = False) -> str:
    """An amount prefilled as the rest of the UI writes it (``3.24M``), which
    ``parse_amount`` reads back. ``down``: never more than ``value`` in size (an expected
    impact must not over-claim by rounding)."""
    return fmt.input_amount(value, down=down)


def gap_label(gap: LinkedGap) -> str:
    """``revenue · region=EU · category=Snacks`` (plain)."""
    return f"{gap.metric} · {scope_label(gap.scope)}"


def gap_context(gap: LinkedGap) -> str:
    """One mrkdwn line for the gap an action answers (escaped)."""
    return (f"Gap *{fmt.amount(gap.gap, signed=True)}* ({fmt.percent(gap.gap_pct)}) on "
            f"*{escape(gap_label(gap))}*, {escape(gap.horizon)}: latest view "
            f"{fmt.amount(gap.outlook)} vs plan {fmt.amount(gap.plan)}")


def _text_input(block_id: str, label: str, *, initial: str | None = None,
                placeholder: str | None = None, hint: str | None = None,
                optional: bool = False, multiline: bool = False,
                max_length: int | None = None) -> InputBlock:
    return InputBlock(
        block_id=block_id, label=label, hint=hint, optional=optional,
        element=PlainTextInputElement(action_id=INPUT, initial_value=initial or None,
                                      placeholder=placeholder, multiline=multiline,
                                      max_length=max_length))


def _amount_input(block_id: str, label: str, value: float | None = None, *,
                  hint: str = AMOUNT_HINT, down: bool = False) -> InputBlock:
    return _text_input(block_id, label, hint=hint, max_length=40,
                       initial=amount_input(value, down=down) if value is not None else None,
                       placeholder="e.g. 350K")


def _modal(callback_id: str, title: str, blocks: list[Block], *, metadata: str,
           submit: str | None = "Save") -> View:
    return View(type="modal", callback_id=callback_id, title=title, submit=submit,
                close=("Back" if submit == "Cancel action" else "Cancel") if submit
                else "Close", private_metadata=metadata,
                blocks=blocks)


def milestone_blocks(count: int, existing: Sequence[MilestoneView] = ()) -> list[Block]:
    """``count`` milestone rows (name and date), prefilled from ``existing``, and an
    "Add milestone" button while there is room for one more."""
    blocks: list[Block] = []
    for index in range(count):
        known = existing[index] if index < len(existing) else None
        blocks += [
            _text_input(BlockId.MILESTONE_NAME.format(index), f"Milestone {index + 1}",
                        optional=True, max_length=MILESTONE_NAME_MAX,
                        initial=known.name if known else None),
            InputBlock(block_id=BlockId.MILESTONE_DATE.format(index),
                       label=f"Milestone {index + 1} date", optional=True,
                       element=DatePickerElement(
                           action_id=INPUT,
                           initial_date=known.due_date.isoformat() if known else None)),
        ]
    if count < MAX_MILESTONES:
        blocks.append(ActionsBlock(block_id=BlockId.ADD_MILESTONE, elements=[ButtonElement(
            text="Add milestone", action_id=ActionId.ADD_MILESTONE, value=str(count))]))
    return blocks


def with_another_milestone(view: dict[str, Any]) -> dict[str, Any] | None:
    """The modal as Slack sent it back, with one milestone row more (for views.update);
    None when it already has the most. Typed values stay: Slack keeps the state of input
    blocks whose block id is unchanged."""
    blocks = list(view.get("blocks") or [])
    names = {BlockId.MILESTONE_NAME.format(i) for i in range(MAX_MILESTONES)}
    count = sum(1 for b in blocks if b.get("block_id") in names)
    at = next((i for i, b in enumerate(blocks) if b.get("block_id") == BlockId.ADD_MILESTONE),
              None)
    if at is None or count >= MAX_MILESTONES:
        return None
    new_rows = [b.to_dict() for b in milestone_blocks(count + 1)[2 * count:]]
    blocks[at:at + 1] = new_rows
    kept = {key: view[key] for key in ("type", "callback_id", "title", "submit", "close",
                                       "private_metadata", "external_id") if view.get(key)}
    return {**kept, "blocks": blocks}


def smart_action_modal(gap: LinkedGap, *, metadata: str, owner_id: str | None = None,
                       expected_impact: float | None = None, due_date: date | None = None,
                       title: str | None = None) -> View:
    """The SMART action form, prefilled from the gap it answers (docs/reference/workflow.md).

    ``expected_impact``: what is not yet covered by other actions (by default the whole
    gap); ``due_date``: e.g. the day before the channel's next meeting; ``title``: from a
    message the form was opened on.
    """
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=cut(
            ":dart: *Relevant:* " + gap_context(gap), SECTION_TEXT_MAX))),
        _title_input(title),
        InputBlock(block_id=BlockId.OWNER, label="Assignable: owner",
                   element=UserSelectElement(action_id=INPUT, initial_user=owner_id,
                                             placeholder="Who owns it")),
        _text_input(BlockId.METRIC, "Measurable: metric", initial=cut(gap_label(gap),
                                                                       METRIC_MAX),
                    max_length=METRIC_MAX),
        _amount_input(BlockId.BASELINE, "Baseline (latest view)", gap.outlook),
        _amount_input(BlockId.TARGET, "Target (plan)", gap.plan),
        _expected_input(abs(gap.gap) if expected_impact is None else expected_impact),
        InputBlock(block_id=BlockId.CONFIDENCE, label="Achievable: confidence",
                   element=StaticSelectElement(
                       action_id=INPUT, placeholder="How sure are you?",
                       options=[Option(value=c.value, label=label)
                                for c, label in CONFIDENCE_LABELS.items()])),
        _resources_input(None),
        _due_input(due_date),
        DividerBlock(),
        _milestones_hint(),
        *milestone_blocks(0),
    ]
    return _modal(CallbackId.SMART_ACTION, "New SMART action", blocks, metadata=metadata,
                  submit="Create")


def edit_action_modal(action: ActionView, *, metadata: str) -> View:
    """Edit an open action: title, expected impact, resources, due date, open milestones
    (done ones are shown, not editable). The other SMART fields stay as they are."""
    open_ones = list(action.open_milestones)
    done = [m for m in action.milestones if m.done]
    blocks: list[Block] = [
        _about(action),
        _title_input(action.title),
        _expected_input(action.expected_impact),
        _resources_input(action.resources),
        _due_input(action.due_date),
        DividerBlock(),
        _milestones_hint(),
    ]
    if done:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=cut(
            "Done: " + ", ".join(f"~{escape(m.name)}~" for m in done), SECTION_TEXT_MAX))]))
    blocks += milestone_blocks(len(open_ones), open_ones)
    return _modal(CallbackId.EDIT_ACTION, "Edit SMART action", blocks, metadata=metadata)


def _title_input(title: str | None) -> InputBlock:
    return _text_input(BlockId.TITLE, "Specific: what will be done", max_length=TITLE_MAX,
                       initial=cut(title, TITLE_MAX) if title else None,
                       placeholder="e.g. Run a 2-week Snacks promotion with Carrefour EU",
                       hint="A concrete action, not a wish: “improve forecasting accuracy” "
                            "is too vague.")


def _expected_input(value: float) -> InputBlock:
    return _amount_input(BlockId.EXPECTED_IMPACT, "Expected gap closed", value, down=True,
                         hint="How much of the gap this action closes (prefilled: the part "
                              "no other action covers yet). " + AMOUNT_HINT)


def _resources_input(value: str | None) -> InputBlock:
    return _text_input(BlockId.RESOURCES, "Resources and dependencies", optional=True,
                       multiline=True, max_length=NOTE_MAX, initial=value,
                       placeholder="Budget, people, other teams this depends on")


def _due_input(value: date | None) -> InputBlock:
    return InputBlock(block_id=BlockId.DUE_DATE, label="Time-bound: due date",
                      element=DatePickerElement(
                          action_id=INPUT, placeholder="After today",
                          initial_date=value.isoformat() if value else None))


def _milestones_hint() -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(
        text=f"*Milestones* (optional, up to {MAX_MILESTONES}): each needs a name and a "
             "date before the due date.")])


def cancel_modal(action: ActionView, *, metadata: str) -> View:
    return _modal(CallbackId.CANCEL_ACTION, "Not doing this", [
        _about(action),
        _text_input(BlockId.CANCEL_REASON, "Why not", multiline=True, max_length=NOTE_MAX,
                    placeholder="e.g. the listing was lost; covered by another action"),
        ContextBlock(elements=[MarkdownTextObject(
            text="The action stays in the register as *cancelled*; it no longer counts "
                 "towards the gap's coverage and its reminders stop.")]),
    ], metadata=metadata, submit="Cancel action")


def _about(action: ActionView) -> SectionBlock:
    current = (f" · now {fmt.amount(action.current_value)}"
               if action.current_value is not None else "")
    return SectionBlock(text=MarkdownTextObject(text=cut(
        f"*{escape(action.title)}*\n{escape(action.metric_name)}: "
        f"{fmt.amount(action.baseline)} → {fmt.amount(action.target)}{current}",
        SECTION_TEXT_MAX)))


def progress_modal(action: ActionView, *, metadata: str) -> View:
    value = action.current_value if action.current_value is not None else None
    return _modal(CallbackId.PROGRESS, "Update progress", [
        _about(action),
        _amount_input(BlockId.PROGRESS_VALUE, "Current value of the metric", value),
        _text_input(BlockId.PROGRESS_NOTE, "What happened", optional=True, multiline=True,
                    max_length=NOTE_MAX),
    ], metadata=metadata)


def complete_modal(action: ActionView, *, metadata: str) -> View:
    return _modal(CallbackId.COMPLETE, "Complete action", [
        _about(action),
        _amount_input(BlockId.REALISED_IMPACT, "Gap closed, really",
                      hint=f"Expected: {fmt.amount(action.expected_impact)}. Use 0 if it "
                           "closed none. " + AMOUNT_HINT),
        _text_input(BlockId.PROGRESS_NOTE, "What we learned", optional=True, multiline=True,
                    max_length=NOTE_MAX),
    ], metadata=metadata, submit="Complete")


def reassign_modal(action: ActionView, *, metadata: str) -> View:
    return _modal(CallbackId.REASSIGN, "Reassign action", [
        _about(action),
        InputBlock(block_id=BlockId.NEW_OWNER, label="New owner",
                   element=UserSelectElement(action_id=INPUT, placeholder="Who owns it now")),
    ], metadata=metadata, submit="Reassign")


def notice_modal(title: str, text: str) -> View:
    """A modal that only tells something (replaces a form that could not be saved)."""
    return View(type="modal", title=cut(title, 24), close="Close", blocks=[
        SectionBlock(text=MarkdownTextObject(text=cut(escape(text), SECTION_TEXT_MAX)))])
