"""The pre-meeting digest (docs/reference/workflow.md) as one channel message within Slack's limits.

One section per part of the pack, each a bullet list cut to fit a section (3,000
characters) with "…and N more" for the rest, so the message stays at a dozen blocks
whatever the number of gaps and actions.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import partial
from zoneinfo import ZoneInfo

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.blocks.text import HEADER_MAX, SECTION_TEXT_MAX, cut, escape
from bot.blocks.trigger import scope_label
from sop_core import formatting as fmt
from sop_core import lifecycle
from sop_core.relative_days import days_until
from sop_core.services.coverage import describe
from sop_core.services.digests import (
    DEFAULT_LOOKBACK,
    ActionLine,
    Decision,
    Digest,
    GapLine,
    MetricCoverage,
    RootCauseLine,
)
from sop_core.services.root_causes import category_label

LINE_MAX = 400  # one item never crowds out the others
SUMMARY_MAX = 200
MOST_GAPS = 10
MOST_ITEMS = 10
MOST_DECISIONS = 8
ACTION_PARTS = 3  # the digest's parts from this one on are about actions


# ------------------------------------------------------------------------------ helpers

def _day(value: date, today: date) -> str:
    text = f"{value:%a} {value.day} {value:%b}"
    return text if value.year == today.year else f"{text} {value.year}"


def _when(instant: datetime, tz: str, today: date) -> str:
    local = instant.astimezone(ZoneInfo(tz))
    return f"{_day(local.date(), today)}, {local:%H:%M}"


def _list(title: str, lines: list[str], total: int, *, most: int = MOST_ITEMS) -> str:
    """``title`` then the lines that fit in a section, and "…and N more" for the others
    (``total`` counts items that were not even read from the database)."""
    limit = SECTION_TEXT_MAX - len(title) - 1
    shown: list[str] = []
    for line in lines[:most]:
        line = cut(line, LINE_MAX)
        left = total - len(shown) - 1
        tail = len(f"\n…and {left} more") if left else 0
        if len("\n".join([*shown, line])) + tail > limit:
            break
        shown.append(line)
    rest = total - len(shown)
    if rest:
        shown.append(f"…and {rest} more")
    return f"{title}\n" + "\n".join(shown)


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=cut(text, SECTION_TEXT_MAX)))


def _scope(scope: dict[str, list[str]] | None) -> str:
    return escape(scope_label(scope or {}))


def _owner(user_id: str) -> str:
    return f"<@{escape(user_id)}>"


def _title(title: str) -> str:
    return f"“{cut(escape(title), 200)}”"


# ------------------------------------------------------------------------------ parts

def gap_line(line: GapLine, digest: Digest) -> str:
    head = (f"• *{_scope(line.scope)}* · {escape(line.metric)} {escape(line.horizon)}: "
            f"*{fmt.percent(line.gap_pct)}* "
            f"({fmt.amount(line.gap, signed=True, metric=line.metric)})")
    since = "since the last digest" if digest.since is not None else "since posted"
    change = line.gap_change
    if line.new:
        moved = (f"new, posted at {fmt.percent(line.previous_gap_pct)}"
                 if digest.since is not None else
                 f"posted at {fmt.percent(line.previous_gap_pct)}")
        if change is not None and abs(change) >= 0.5:
            moved += f", {fmt.amount(change, signed=True, metric=line.metric)} since"
    elif change is None or abs(change) < 0.5:
        moved = f"unchanged {since}"
    else:
        moved = (f"moved from {fmt.percent(line.previous_gap_pct)} "
                 f"({fmt.amount(change, signed=True, metric=line.metric)}) {since}")
    parts = [head, moved, describe(line.coverage, line.metric)]
    if lifecycle.status_of(line.status) != lifecycle.GapStatus.OPEN:
        when = (f" since {line.status_changed_at:%Y-%m-%d}"
                if line.status_changed_at is not None else "")
        parts.append(f"{lifecycle.label(line.status)}{when}")
    if not line.triggered:
        parts.append(":white_check_mark: back within the rule")
    if not line.in_data:
        parts.append("not in the latest data (last known figures)")
    if line.root_cause_category:
        confirmed = "" if line.root_cause_confirmed else " (not confirmed)"
        parts.append(f"root cause: {escape(category_label(line.root_cause_category))}"
                     f"{confirmed}")
    return " · ".join(parts)


def coverage_line(total: MetricCoverage) -> str:
    share = total.uncovered_share
    covered_share = 1 - share if share is not None else None
    gaps = f"{total.gaps} open gap{'s' if total.gaps != 1 else ''}"
    if total.left_out:
        # Overlapping scopes are never added: say which gaps the sums leave out.
        nested = ", ".join(_scope(scope) for scope in total.left_out[:5])
        more = len(total.left_out) - 5
        gaps += (f" whose scopes do not overlap; not added: {nested}"
                 + (f" and {more} more" if more > 0 else ""))
    amount = partial(fmt.amount, metric=total.metric)  # in the metric's unit
    return (f"• *{escape(total.metric)}* {escape(total.horizon)} ({gaps}, |gap| "
            f"{amount(total.size)}): "
            f"{amount(total.covered)} ({fmt.share(covered_share)}) covered by actions · "
            f"*{amount(total.uncovered)} ({fmt.share(share)}) not yet covered*")


def decision_line(decision: Decision) -> str:
    if decision.kind == "uncovered" and decision.gap is not None:
        c = decision.gap.coverage
        return (f"• *{_scope(decision.gap.scope)}* ({escape(decision.gap.metric)}): how to "
                f"close the {fmt.amount(c.uncovered, metric=decision.gap.metric)} "
                f"({fmt.share(c.uncovered_share)}) "
                "no action covers yet")
    if decision.kind == "root_cause" and decision.gap is not None:
        return (f"• *{_scope(decision.gap.scope)}* ({escape(decision.gap.metric)}, "
                f"{fmt.percent(decision.gap.gap_pct)}): agree the root cause")
    if decision.kind == "overdue" and decision.action is not None:
        a = decision.action
        return (f"• {_title(a.title)} ({_owner(a.owner_id)}) is {a.days_overdue} days "
                "overdue: re-plan, reassign or drop it")
    return f"• {escape(decision.kind)}"


def action_line(action: ActionLine, today: date, *, overdue: bool = False) -> str:
    parts = [f"• {_title(action.title)}", _owner(action.owner_id)]
    # Counted in the meeting's zone: the day the channel reads the digest.
    parts.append(f"due {_day(action.due_date, today)} ({days_until(action.due_date, today)})")
    parts.append(f"expected impact {fmt.amount(action.expected_impact, signed=True)}")
    if action.gap_label:
        parts.append(_scope(action.gap_label))
    return " · ".join(parts)


def completed_line(action: ActionLine) -> str:
    expected = fmt.amount(action.expected_impact, signed=True)
    if action.realised_impact is None:
        impact = f"impact not recorded (expected {expected})"
    else:
        ratio = (f" ({fmt.share(action.realised_impact / action.expected_impact)})"
                 if action.expected_impact else "")
        impact = (f"realised {fmt.amount(action.realised_impact, signed=True)} of "
                  f"{expected} expected{ratio}")
    parts = [f"• {_title(action.title)}", _owner(action.owner_id), impact]
    if action.gap_label:
        parts.append(_scope(action.gap_label))
    return " · ".join(parts)


def root_cause_line(line: RootCauseLine) -> str:
    text = (f"• *{_scope(line.scope)}* ({escape(line.metric)}): "
            f"{escape(category_label(line.category))}")
    if line.summary:
        text += f": {cut(escape(line.summary), SUMMARY_MAX)}"
    if line.confirmed_by:
        text += f" · confirmed by {_owner(line.confirmed_by)}"
    return text


def _title_of(digest: Digest) -> str:
    if digest.meeting_at is None:
        return "Gap digest"
    return (f"Pre-meeting digest · S&OP {_when(digest.meeting_at, digest.tz, digest.today)}"
            f" ({digest.tz})")


# ------------------------------------------------------------------------------ message

def digest_blocks(digest: Digest) -> list[Block]:
    today = digest.today
    if digest.since is not None:
        last = digest.since.astimezone(ZoneInfo(digest.tz)).date()
        since = f"since the last digest ({_day(last, today)})"
    else:
        since = f"in the last {DEFAULT_LOOKBACK.days} days"
    view = (f"Latest view: snapshot #{digest.snapshot_id}, as of {fmt.month(digest.as_of)}"
            if digest.snapshot_id is not None else "No planning data loaded yet")
    rule = f"trigger rule |gap| ≥ {fmt.threshold(digest.rule.threshold_pct)}"
    if digest.rule.floor:
        rule += f" and ≥ {fmt.amount(digest.rule.floor)}"
    compared = ("movement since the last digest" if digest.since is not None
                else "first digest: movement since each gap was posted")
    blocks: list[Block] = [
        HeaderBlock(text=cut(_title_of(digest), HEADER_MAX)),
        ContextBlock(elements=[MarkdownTextObject(text=f"{view} · {rule} · {compared}")]),
    ]
    # Sections with nothing in them are left out; an empty digest says so once.
    parts: list[tuple[str, list[str], int, int]] = [
        (f"*Open gaps ({digest.gaps.total})*", [gap_line(g, digest) for g in digest.gaps.items],
         digest.gaps.total, MOST_GAPS),
        ("*Coverage by actions*", [coverage_line(t) for t in digest.coverage],
         len(digest.coverage), MOST_ITEMS),
        (f"*Decisions needed ({len(digest.decisions)})*",
         [decision_line(d) for d in digest.decisions], len(digest.decisions), MOST_DECISIONS),
        (f"*Overdue ({digest.overdue.total})*",
         [action_line(a, today, overdue=True) for a in digest.overdue.items],
         digest.overdue.total, MOST_ITEMS),
        (f"*Due before the following meeting, by {_day(digest.due_until, today)} "
         f"({digest.due_soon.total})*" if digest.following_meeting_at is not None else
         f"*Due by {_day(digest.due_until, today)} ({digest.due_soon.total})*",
         [action_line(a, today) for a in digest.due_soon.items], digest.due_soon.total,
         MOST_ITEMS),
        (f"*Completed {since} ({digest.completed.total})*",
         [completed_line(a) for a in digest.completed.items], digest.completed.total,
         MOST_ITEMS),
        (f"*Root causes confirmed {since} ({digest.root_causes.total})*",
         [root_cause_line(r) for r in digest.root_causes.items], digest.root_causes.total, 5),
    ]
    shown = [(i, part) for i, part in enumerate(parts) if part[2] > 0]
    if not shown:
        blocks.append(_section("_Nothing to review: no open gaps and no actions due, "
                               "overdue or completed in this channel._"))
    previous = -1
    for i, (title, lines, total, most) in shown:
        if previous != -1 and previous < ACTION_PARTS <= i:
            blocks.append(DividerBlock())  # gaps above, actions below
        blocks.append(_section(_list(title, lines, total, most=most)))
        previous = i
    return blocks


def digest_text(digest: Digest) -> str:
    """The notification / fallback text (plain, short)."""
    title = escape(_title_of(digest))
    return (f"{title}: {digest.gaps.total} open gap{'s' if digest.gaps.total != 1 else ''}, "
            f"{digest.overdue.total} overdue action{'s' if digest.overdue.total != 1 else ''}, "
            f"{digest.due_soon.total} due soon, {digest.completed.total} completed")
