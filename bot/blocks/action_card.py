"""The action card: one SMART action in the gap's thread, updated in place on each change."""

from __future__ import annotations

import re
from datetime import date

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
)
from sqlalchemy.orm import Session

from bot.blocks.action_modal import gap_label
from bot.blocks.text import FIELD_MAX, SECTION_TEXT_MAX, bullet_list, cut, escape
from bot.ids import ActionId, BlockId
from sop_core import formatting as fmt
from sop_core.models import Action, Status
from sop_core.relative_days import days_until
from sop_core.services.actions import (
    SNOOZE_DAYS,
    ActionView,
    MilestoneView,
    local_today,
    view_of,
)

OPTION_TEXT_MAX = 75
CONTEXT_TEXT_MAX = 3000
_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
SNOOZE_LABELS = {1: "1 day", 3: "3 days", 7: "1 week"}


def mention(user_id: str | None) -> str:
    """``<@U123>`` for a Slack user id; anything else shown literally."""
    if user_id and _USER_ID.match(user_id):
        return f"<@{user_id}>"
    return escape(user_id or "nobody")


def value_of(action_id: int, item: int) -> str:
    """A select option's value: the action and the chosen item (``"12:3"``)."""
    return f"{action_id}:{item}"


def due_text(action: ActionView, today: date) -> str:
    """The due date and how far it is, counted in the owner's own day (``today``)."""
    if action.overdue(today):
        return (f"{action.due_date.isoformat()} :warning: *"
                f"{days_until(action.due_date, today)}*")
    if action.is_open:
        return f"{action.due_date.isoformat()} ({days_until(action.due_date, today)})"
    return action.due_date.isoformat()


def status_text(action: ActionView, today: date) -> str:
    if action.status == Status.DONE:
        return ":white_check_mark: Done"
    if action.status == Status.CANCELLED:
        reason = f": {escape(action.cancel_reason)}" if action.cancel_reason else ""
        return f":no_entry_sign: Cancelled (not doing){reason}"
    if action.status != Status.OPEN:
        return escape(action.status.capitalize())
    text = ":warning: Overdue" if action.overdue(today) else "Open"
    if action.snoozed(today):
        assert action.snoozed_until is not None
        text += f" · reminders snoozed until {action.snoozed_until.isoformat()}"
    return text


def measure_text(action: ActionView) -> str:
    current = (f" · now *{fmt.amount(action.current_value)}*"
               if action.current_value is not None else "")
    return (f"{escape(action.metric_name)}: {fmt.amount(action.baseline)} → "
            f"{fmt.amount(action.target)}{current}")


def impact_text(action: ActionView) -> str:
    metric = action.gap.metric if action.gap is not None else None  # impact is in its unit
    text = f"{fmt.amount(action.expected_impact, metric=metric)} of the gap"
    if action.realised_impact is not None:
        text += f" · realised {fmt.amount(action.realised_impact, metric=metric)}"
    return text


def milestone_line(milestone: MilestoneView, today: date) -> str:
    name = escape(milestone.name)
    if milestone.done:
        return f"✓ ~{name}~ · done"
    when = days_until(milestone.due_date, today)
    late = f" :warning: {when}" if milestone.due_date < today else f" ({when})"
    return f"◻ {name} · due {milestone.due_date.isoformat()}{late}"


def card_text(action: ActionView) -> str:
    """The notification / fallback text (mrkdwn, escaped)."""
    return cut(f"SMART action: {escape(action.title)} (owner {mention(action.owner_id)}, "
               f"due {action.due_date.isoformat()})", SECTION_TEXT_MAX)


def _buttons(action: ActionView) -> ActionsBlock:
    value = str(action.id)
    elements: list = [
        ButtonElement(text="Update progress", action_id=ActionId.ACTION_PROGRESS, value=value),
    ]
    if action.open_milestones:
        elements.append(StaticSelectElement(
            action_id=ActionId.ACTION_MILESTONE_DONE, placeholder="Mark milestone done",
            options=[Option(value=value_of(action.id, m.id),
                            label=cut(f"{m.name} · {m.due_date.isoformat()}", OPTION_TEXT_MAX))
                     for m in action.open_milestones]))
    elements += [
        StaticSelectElement(
            action_id=ActionId.ACTION_SNOOZE, placeholder="Snooze reminders",
            options=[Option(value=value_of(action.id, days), label=SNOOZE_LABELS[days])
                     for days in SNOOZE_DAYS]),
        ButtonElement(text="Complete", action_id=ActionId.ACTION_COMPLETE, value=value,
                      style="primary"),
        ButtonElement(text="Reassign", action_id=ActionId.ACTION_REASSIGN, value=value),
        ButtonElement(text="Edit", action_id=ActionId.ACTION_EDIT, value=value),
        ButtonElement(text="Not doing", action_id=ActionId.ACTION_CANCEL, value=value,
                      style="danger"),
    ]
    return ActionsBlock(block_id=BlockId.ACTION_CARD.format(action.id), elements=elements)


def action_card_blocks(action: ActionView, *, today: date) -> list[Block]:
    """The card: what, who, how measured, how much, by when, where it stands, what next."""
    fields = [
        f"*Owner*\n{mention(action.owner_id)}",
        f"*Due*\n{due_text(action, today)}",
        f"*Measure*\n{measure_text(action)}",
        f"*Expected impact*\n{impact_text(action)}",
        f"*Status*\n{status_text(action, today)}",
    ]
    if action.confidence:
        fields.append(f"*Confidence*\n{escape(action.confidence.capitalize())}")
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=cut(
            f":dart: *{escape(action.title)}*", SECTION_TEXT_MAX)),
            fields=[MarkdownTextObject(text=cut(f, FIELD_MAX)) for f in fields]),
    ]
    if action.resources:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=cut(
            f"*Resources and dependencies:* {escape(action.resources)}", CONTEXT_TEXT_MAX))]))
    if action.milestones:
        lines = [milestone_line(m, today) for m in action.milestones]
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text="*Milestones*\n" + bullet_list(lines, limit=SECTION_TEXT_MAX - 20))))
    about = f"Created by {mention(action.creator_id)} · action #{action.id}"
    if action.edited_at is not None:
        about += f" · edited by {mention(action.edited_by)}"
    if action.gap is not None:
        gap = fmt.amount(action.gap.gap, signed=True, metric=action.gap.metric)
        about += (f" · answers the gap {gap} "
                  f"({fmt.percent(action.gap.gap_pct)}) on {escape(gap_label(action.gap))}")
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=cut(about, CONTEXT_TEXT_MAX))]))
    if action.is_open:
        blocks.append(_buttons(action))
    return blocks


def card_for_action(session: Session, action: Action, *, today: date | None = None
                    ) -> list[Block]:
    """The card of a stored action (for jobs holding ORM rows, e.g. the nudge DM).

    ``today`` decides what is overdue; pass it in the installation's time zone (UTC when
    not given).
    """
    return action_card_blocks(view_of(action), today=today or local_today("UTC"))
