"""``/gap actions [mine|overdue|all]``: the actions register, shown only to the caller."""

from __future__ import annotations

from datetime import date

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.blocks.action_card import due_text, mention
from bot.blocks.action_modal import gap_label
from bot.blocks.text import SECTION_TEXT_MAX, cut, escape
from sop_core import formatting as fmt
from sop_core.models import Status
from sop_core.services.actions import ActionView, Register, Which

MAX_MESSAGE_BLOCKS = 50
TITLE_SHOWN_MAX = 300
HEADINGS = {Which.MINE: "Your open actions", Which.OVERDUE: "Overdue actions",
            Which.ALL: "All actions"}
EMPTY = {
    Which.MINE: "You own no open action. `/gap actions all` shows everyone's.",
    Which.OVERDUE: "No action is overdue. :tada:",
    Which.ALL: "No SMART action yet: create one from a gap's *Create SMART action* button.",
}


def _status(action: ActionView, today: date) -> str:
    if action.status == Status.DONE:
        return ":white_check_mark: done"
    if action.overdue(today):
        return ":warning: *overdue*"
    return escape(action.status)


def action_line(action: ActionView, today: date) -> str:
    """One action of the register (mrkdwn, escaped, within a section's limit)."""
    title = cut(escape(action.title), TITLE_SHOWN_MAX)
    details = [f"owner {mention(action.owner_id)}", f"due {due_text(action, today)}",
               _status(action, today), f"impact {fmt.amount(action.expected_impact)}"]
    if action.realised_impact is not None:
        details.append(f"realised {fmt.amount(action.realised_impact)}")
    if action.gap is not None:
        details.append(escape(gap_label(action.gap)))
    return cut(f"*{title}* (#{action.id})\n" + " · ".join(details), SECTION_TEXT_MAX)


def register_text(register: Register) -> str:
    return f"{HEADINGS[register.which]}: {register.total}"


def register_blocks(register: Register, *, today: date,
                    max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[Block]:
    """Due soonest first (the service's order), cut to Slack's limits with "and N more"."""
    heading = f"*{HEADINGS[register.which]}* · {register.total}"
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=heading))]
    if not register.actions:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=EMPTY[register.which])))
        return blocks
    room = max_blocks - 2  # the heading, and the "and N more" line
    shown = register.actions[:room]
    blocks += [SectionBlock(text=MarkdownTextObject(text=action_line(a, today)))
               for a in shown]
    rest = register.total - len(shown)
    if rest > 0:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"…and {rest} more. Narrow it with `/gap actions mine` or "
                 "`/gap actions overdue`.")]))
    return blocks
