"""Modals for SMART actions: create one from a gap, then update, complete or reassign it.

Every input element uses the action id :data:`bot.ids.INPUT`; its block id says which
field it is, so the listener reads ``state.values[block_id][INPUT]``.
"""

from __future__ import annotations

from slack_sdk.models.blocks import (
    Block,
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
from bot.ids import INPUT, BlockId, CallbackId
from sop_core import formatting as fmt
from sop_core.services.actions import ActionView, LinkedGap
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


def amount_input(value: float) -> str:
    """An amount as a prefilled field shows it, and as ``parse_amount`` reads it back."""
    return fmt.input_amount(value)


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
                  hint: str = AMOUNT_HINT) -> InputBlock:
    return _text_input(block_id, label, hint=hint, max_length=40,
                       initial=amount_input(value) if value is not None else None,
                       placeholder="e.g. 350K")


def _modal(callback_id: str, title: str, blocks: list[Block], *, metadata: str,
           submit: str | None = "Save") -> View:
    return View(type="modal", callback_id=callback_id, title=title, submit=submit,
                close="Cancel" if submit else "Close", private_metadata=metadata,
                blocks=blocks)


def smart_action_modal(gap: LinkedGap, *, metadata: str, owner_id: str | None = None
                       ) -> View:
    """The SMART action form, prefilled from the gap it answers (docs/reference/workflow.md)."""
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=cut(
            ":dart: *Relevant:* " + gap_context(gap), SECTION_TEXT_MAX))),
        _text_input(BlockId.TITLE, "Specific: what will be done", max_length=TITLE_MAX,
                    placeholder="e.g. Run a 2-week Snacks promotion with Carrefour EU",
                    hint="A concrete action, not a wish: “improve forecasting accuracy” is "
                         "too vague."),
        InputBlock(block_id=BlockId.OWNER, label="Assignable: owner",
                   element=UserSelectElement(action_id=INPUT, initial_user=owner_id,
                                             placeholder="Who owns it")),
        _text_input(BlockId.METRIC, "Measurable: metric", initial=cut(gap_label(gap),
                                                                       METRIC_MAX),
                    max_length=METRIC_MAX),
        _amount_input(BlockId.BASELINE, "Baseline (latest view)", gap.outlook),
        _amount_input(BlockId.TARGET, "Target (plan)", gap.plan),
        _amount_input(BlockId.EXPECTED_IMPACT, "Expected gap closed", abs(gap.gap),
                      hint="How much of the gap this action closes. " + AMOUNT_HINT),
        InputBlock(block_id=BlockId.CONFIDENCE, label="Achievable: confidence",
                   element=StaticSelectElement(
                       action_id=INPUT, placeholder="How sure are you?",
                       options=[Option(value=c.value, label=label)
                                for c, label in CONFIDENCE_LABELS.items()])),
        _text_input(BlockId.RESOURCES, "Resources and dependencies", optional=True,
                    multiline=True, max_length=NOTE_MAX,
                    placeholder="Budget, people, other teams this depends on"),
        InputBlock(block_id=BlockId.DUE_DATE, label="Time-bound: due date",
                   element=DatePickerElement(action_id=INPUT, placeholder="After today")),
        DividerBlock(),
        ContextBlock(elements=[MarkdownTextObject(
            text=f"*Milestones* (optional, up to {MAX_MILESTONES}): each needs a name and a "
                 "date before the due date.")]),
    ]
    for index in range(MAX_MILESTONES):
        blocks += [
            _text_input(BlockId.MILESTONE_NAME.format(index), f"Milestone {index + 1}",
                        optional=True, max_length=MILESTONE_NAME_MAX),
            InputBlock(block_id=BlockId.MILESTONE_DATE.format(index),
                       label=f"Milestone {index + 1} date", optional=True,
                       element=DatePickerElement(action_id=INPUT)),
        ]
    return _modal(CallbackId.SMART_ACTION, "New SMART action", blocks, metadata=metadata,
                  submit="Create")


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
