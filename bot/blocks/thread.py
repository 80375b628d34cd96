"""The root-cause thread: the prompt, the summary, the confirmation modal and note."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.blocks.text import SECTION_TEXT_MAX, bullet_list, cut, escape
from bot.blocks.trigger import scope_label
from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core import formatting as fmt
from sop_core.services.history import PastGap
from sop_core.services.root_causes import (
    CATEGORIES,
    QUESTIONS,
    SUMMARY_MAX,
    PointInfo,
    Summary,
    category_label,
    draft,
)

MAX_CONTRIBUTORS = 10
MAX_POINTS = 3  # per contributor in a summary
POINT_MAX = 280  # characters of one point quoted in a summary
MAX_VOTERS = 5
MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,31}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{1,31}$")
# A user mention survives escaping as "&lt;@U123&gt;" (or with a "|label"): put it back.
_ESCAPED_MENTION = re.compile(r"&lt;@([UW][A-Z0-9]{1,31})(?:\|[^&\n]*)?&gt;")


def mention(user_id: str | None) -> str:
    """``<@U123>`` for a well-formed user id; anything else is shown escaped."""
    if user_id and _USER_ID.match(user_id):
        return f"<@{user_id}>"
    return escape(user_id or "someone")


def channel_link(channel_id: str) -> str:
    return f"<#{channel_id}>" if _CHANNEL_ID.match(channel_id) else escape(channel_id)


def quote(text: str, limit: int = POINT_MAX) -> str:
    """A person's words for mrkdwn: on one line, cut, escaped (no ``<!channel>``, no fake
    links); only mentions of people are kept, so their names show."""
    plain = cut(" ".join(text.split()), limit)
    return _ESCAPED_MENTION.sub(r"<@\1>", escape(plain))


def gap_line(point: PointInfo) -> str:
    return (f"{escape(scope_label(point.scope))} · {escape(point.metric)} · "
            f"{escape(point.horizon)}: gap "
            f"{fmt.amount(point.gap, signed=True, metric=point.metric)} "
            f"({fmt.percent(point.gap_pct)})")


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=cut(text, SECTION_TEXT_MAX)))


def _create_action(point_id: int) -> ButtonElement:
    return ButtonElement(text="Create SMART action", action_id=ActionId.CREATE_ACTION,
                         value=str(point_id))


def _confirm(point_id: int, *, primary: bool = True) -> ButtonElement:
    return ButtonElement(text="Confirm root cause", action_id=ActionId.CONFIRM_ROOT_CAUSE,
                         value=str(point_id), style="primary" if primary else None)


def category_choice_value(point_id: int, category: str) -> str:
    """The thread's category options carry the trigger point: ``"<id>:<category>"``."""
    return f"{point_id}:{category}"


def prompt_text(point: PointInfo) -> str:
    """Fallback text for notifications (mrkdwn, escaped)."""
    return f"Root-cause discussion: {gap_line(point)}"


def prompt_blocks(point: PointInfo, similar: Sequence[PastGap] = ()) -> list[Block]:
    """Posted once in the trigger point's thread when someone clicks "Discuss root cause";
    with "Similar past gaps" (root cause, what was done) when there are any."""
    from bot.blocks.history import similar_blocks  # it builds on this module's helpers

    questions = "\n".join(f"*{n}.* {q}" for n, q in enumerate(QUESTIONS, start=1))
    return [
        _section(f":mag: *Root-cause discussion* · {gap_line(point)}\n"
                 "Reply in this thread: every reply is recorded with its author."),
        _section(questions),
        SectionBlock(
            text=MarkdownTextObject(text="*Main root cause?* Pick the category you see "
                                         "driving it (you can change your choice)."),
            accessory=StaticSelectElement(
                action_id=ActionId.ROOT_CAUSE_CATEGORY, placeholder="Choose a category",
                options=[Option(value=category_choice_value(point.id, key), label=label)
                         for key, label in CATEGORIES.items()]),
        ),
        ActionsBlock(elements=[
            ButtonElement(text="Summarize", action_id=ActionId.SUMMARIZE, value=str(point.id)),
            _confirm(point.id),
            _create_action(point.id),
        ]),
        *similar_blocks(similar),
    ]


def _votes_text(summary: Summary) -> str:
    lines = []
    for vote in summary.votes:
        voters = ", ".join(mention(u) for u in vote.voters[:MAX_VOTERS])
        more = f" +{vote.count - MAX_VOTERS}" if vote.count > MAX_VOTERS else ""
        lines.append(f"• *{escape(category_label(vote.category))}*: {vote.count} "
                     f"vote{'s' if vote.count != 1 else ''} ({voters}{more})")
    return "*By category*\n" + bullet_list(lines, most=len(CATEGORIES),
                                           limit=SECTION_TEXT_MAX - 20)


def _contributor_text(user_id: str, points: tuple[str, ...], category: str | None) -> str:
    said = f"{len(points)} point{'s' if len(points) != 1 else ''}"
    chose = f" · chose _{escape(category_label(category))}_" if category else ""
    lines = [f"• “{quote(text)}”" for text in points]
    body = bullet_list(lines, most=MAX_POINTS, limit=SECTION_TEXT_MAX - 200) if lines else ""
    return f"{mention(user_id)} · {said}{chose}" + (f"\n{body}" if body else "")


def confirmed_text(point: PointInfo) -> str | None:
    if point.root_cause_category is None:
        return None
    when = f" on {point.confirmed_at:%Y-%m-%d}" if point.confirmed_at else ""
    return (f":white_check_mark: Confirmed root cause: "
            f"*{escape(category_label(point.root_cause_category))}* "
            f"(by {mention(point.confirmed_by)}{when})")


def summary_text(summary: Summary) -> str:
    return f"Root-cause summary: {gap_line(summary.point)}"


def summary_blocks(summary: Summary) -> list[Block]:
    """What the thread has said so far: causes by category (votes) and by contributor."""
    people = len(summary.contributors)
    blocks: list[Block] = [_section(
        f":memo: *Root-cause summary* · {gap_line(summary.point)}\n"
        f"{summary.replies} repl{'ies' if summary.replies != 1 else 'y'} from "
        f"{people} {'people' if people != 1 else 'person'}")]
    if summary.empty:
        blocks.append(_section("Nothing captured yet: reply in this thread with what you see "
                               "driving the gap, and pick a category above."))
    else:
        if summary.votes:
            blocks.append(_section(_votes_text(summary)))
        blocks.append(_section("*By contributor*"))
        shown = summary.contributors[:MAX_CONTRIBUTORS]
        blocks += [_section(_contributor_text(c.user_id, c.points, c.category)) for c in shown]
        if len(summary.contributors) > len(shown):
            blocks.append(ContextBlock(elements=[MarkdownTextObject(
                text=f"…and {len(summary.contributors) - len(shown)} more contributors")]))
    if (confirmed := confirmed_text(summary.point)) is not None:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=confirmed)]))
    blocks.append(ActionsBlock(elements=[_confirm(summary.point.id),
                                         _create_action(summary.point.id)]))
    return blocks


def _modal_option(category: str) -> Option:
    return Option(value=category, label=category_label(category))


def confirm_modal(summary: Summary) -> View:
    """Confirm the root cause: prefilled with what is confirmed already, else with the
    leading category and the thread's summary."""
    point = summary.point
    category = point.root_cause_category or summary.leading_category
    text = point.root_cause_summary or draft(summary)
    return View(
        type="modal", callback_id=CallbackId.CONFIRM_ROOT_CAUSE,
        title="Confirm root cause", submit="Confirm", close="Cancel",
        private_metadata=json.dumps({"trigger_point_id": point.id}),
        blocks=[
            _section(gap_line(point)),
            InputBlock(
                block_id=BlockId.ROOT_CAUSE_CATEGORY, label="Root-cause category",
                element=StaticSelectElement(
                    action_id=INPUT, placeholder="Choose a category",
                    options=[_modal_option(key) for key in CATEGORIES],
                    initial_option=_modal_option(category) if category in CATEGORIES
                    else None)),
            InputBlock(
                block_id=BlockId.ROOT_CAUSE_SUMMARY, label="Summary",
                hint="What is driving the gap, in a few sentences the next S&OP can read.",
                element=PlainTextInputElement(
                    action_id=INPUT, multiline=True, max_length=SUMMARY_MAX,
                    initial_value=text[:SUMMARY_MAX] or None,
                    placeholder="e.g. Promotion moved to Q1; e-commerce demand below plan")),
        ],
    )


def read_metadata(metadata: str) -> int | None:
    """The trigger point id a confirmation modal was opened for (None if unreadable)."""
    try:
        value = json.loads(metadata or "{}").get("trigger_point_id")
    except (ValueError, AttributeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        return None
    return value


def confirmed_blocks(point: PointInfo) -> list[Block]:
    """Posted in the thread once the root cause is confirmed."""
    summary = cut(escape(point.root_cause_summary or ""), SECTION_TEXT_MAX - 500)
    quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in summary.splitlines())
    return [
        _section(f":white_check_mark: *Root cause confirmed* by {mention(point.confirmed_by)}: "
                 f"*{escape(category_label(point.root_cause_category))}*"
                 + (f"\n{quoted}" if quoted else "")),
        ContextBlock(elements=[MarkdownTextObject(
            text="Next: turn it into SMART actions with owners and milestones.")]),
        ActionsBlock(elements=[_create_action(point.id)]),
    ]


def confirmed_fallback(point: PointInfo) -> str:
    return (f"Root cause confirmed by {mention(point.confirmed_by)}: "
            f"{escape(category_label(point.root_cause_category))}")
