"""Milestone nudges: the DM to an owner, and the escalation post in the gap's thread."""

from __future__ import annotations

from datetime import date

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.blocks.text import escape
from sop_core.relative_days import days_until
from sop_core.services.followup import NudgeTask


def _when(task: NudgeTask, today: date) -> str:
    """How far the date is, counted in the recipient's own day (``today``)."""
    phrase = days_until(task.due, today)
    if task.due < today:
        return f"{phrase} (was due {task.due:%a %d %b})"
    return f"due {phrase}" + (f" ({task.due:%a %d %b})" if task.due != today else "")


def nudge_text(task: NudgeTask, title: str, today: date, *, link: str | None = None) -> str:
    what = "The due date" if task.milestone_id is None else f"Milestone “{escape(task.what)}”"
    card = f" <{link}|Open its card>." if link else ""
    return (f":alarm_clock: {what} of your action *{escape(title)}* is "
            f"{_when(task, today)}.{card}")


def nudge_blocks(task: NudgeTask, title: str, today: date, card: list[Block], *,
                 link: str | None = None) -> list[Block]:
    """The DM: one line saying what is due (with a link to the card in the gap's
    thread), then the action card with its buttons."""
    intro = nudge_text(task, title, today, link=link)
    if task.owner_left:
        intro = (f":warning: <@{task.owner_id}> has left the workspace, so you are told "
                 f"instead: {intro[len(':alarm_clock: '):]} Reassign it from the card.")
    return [SectionBlock(text=MarkdownTextObject(text=intro)), *card]


def escalation_text(task: NudgeTask, title: str, today: date) -> str:
    return (f":rotating_light: <@{task.owner_id}> <@{task.creator_id}>: "
            f"{'the due date' if task.milestone_id is None else f'milestone “{escape(task.what)}”'}"
            f" of *{escape(title)}* is {_when(task, today)}. What would unblock it? "
            "Update the card, or reassign or snooze the action.")


def escalation_blocks(task: NudgeTask, title: str, today: date) -> list[Block]:
    return [SectionBlock(text=MarkdownTextObject(text=escalation_text(task, title, today))),
            ContextBlock(elements=[MarkdownTextObject(
                text="Sent after three daily reminders; weekly reminders follow.")])]
