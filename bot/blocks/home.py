"""The App Home: "My actions" and "Open gaps I take part in", with their coverage."""

from __future__ import annotations

from datetime import date

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.blocks.text import SECTION_TEXT_MAX, cut, escape
from bot.blocks.thread import channel_link
from bot.blocks.trigger import scope_label, status_text
from bot.ids import ActionId
from sop_core import formatting as fmt
from sop_core.relative_days import days_until
from sop_core.services.coverage import ActionItem, Coverage, GapItem, HomeData, describe
from sop_core.services.root_causes import category_label

MAX_VIEW_BLOCKS = 100
TITLE_MAX = 200
BAR_WIDTH = 10


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=cut(text, SECTION_TEXT_MAX)))


def _more(count: int, what: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=f"…and {count} more {what}")])


def _due(due: date, today: date) -> str:
    """Counted in the viewer's own day (``today`` in their zone)."""
    if due < today:
        return f"{due:%Y-%m-%d} · :warning: *{days_until(due, today)}*"
    if due == today:
        return f"{due:%Y-%m-%d} · *due today*"
    return f"{due:%Y-%m-%d} · {days_until(due, today)}"


def action_text(item: ActionItem, today: date) -> str:
    lines = [f"*{escape(cut(item.title, TITLE_MAX))}*",
             f"Due {_due(item.due_date, today)} · expected impact "
             f"{fmt.amount(item.expected_impact, signed=True)}"]
    for milestone in item.next_milestones:
        when = days_until(milestone.due_date, today)
        mark = f" · :warning: {when}" if milestone.due_date < today else f" · {when}"
        lines.append(f":round_pushpin: Next milestone: {escape(cut(milestone.name, TITLE_MAX))}"
                     f" · {milestone.due_date:%Y-%m-%d}{mark}")
    if item.gap_label is not None:
        lines.append(f"Gap: {escape(cut(item.gap_label, TITLE_MAX))}")
    return "\n".join(lines)


def coverage_bar(c: Coverage) -> str:
    """``▓▓▓▓▓▓░░░░``: the covered part of the gap, capped at the full bar."""
    if c.ratio is None:
        return ""
    filled = round(min(max(c.ratio, 0.0), 1.0) * BAR_WIDTH)
    return "▓" * filled + "░" * (BAR_WIDTH - filled) + " "


def coverage_text(c: Coverage) -> str:
    mark = ":warning: " if c.defined and c.uncovered > 0 else ""
    return f"*Coverage:* {coverage_bar(c)}{mark}{escape(describe(c))}"


def gap_text(item: GapItem) -> str:
    cause = (f" · root cause: _{escape(category_label(item.root_cause_category))}_"
             if item.root_cause_category else "")
    return "\n".join([
        f"*{escape(cut(scope_label(item.scope), TITLE_MAX))}* · {escape(item.metric)} · "
        f"{escape(item.horizon)} in {channel_link(item.channel_id)}",
        f"Gap {fmt.amount(item.gap, signed=True, metric=item.metric)} "
        f"({fmt.percent(item.gap_pct)}){cause}",
        status_text(item.status, item.status_changed_at),
        coverage_text(item.coverage),
    ])


def _split(budget: int, actions: int, gaps: int) -> tuple[int, int]:
    """How many of each fit in ``budget`` blocks: all if possible, else a fair share each."""
    if actions + gaps <= budget:
        return actions, gaps
    show_actions = min(actions, max(budget // 2, budget - gaps))
    return show_actions, min(gaps, budget - show_actions)


def home_blocks(data: HomeData, *, today: date) -> list[Block]:
    fixed: list[Block] = [
        HeaderBlock(text="Your S&OP follow-up"),
        ActionsBlock(elements=[ButtonElement(text="Refresh", action_id=ActionId.HOME_REFRESH,
                                             value="refresh"),
                               ButtonElement(text="Search history",
                                             action_id=ActionId.HOME_SEARCH_HISTORY,
                                             value="search")]),
        ContextBlock(elements=[MarkdownTextObject(
            text=f"As of {today:%Y-%m-%d}. Gap coverage = expected impact of open actions ÷ "
                 "|gap|; what no action covers is shown as *not yet covered*.")]),
    ]
    # Headers, a divider and the two "and N more" lines are always budgeted.
    budget = MAX_VIEW_BLOCKS - len(fixed) - 5
    n_actions, n_gaps = _split(budget, len(data.actions), len(data.gaps))
    blocks = [*fixed, HeaderBlock(text="My actions")]
    if not data.actions:
        blocks.append(_section("No open actions assigned to you."))
    blocks += [_section(action_text(a, today)) for a in data.actions[:n_actions]]
    if data.actions_total > n_actions and data.actions:
        blocks.append(_more(data.actions_total - n_actions, "actions"))
    blocks += [DividerBlock(), HeaderBlock(text="Open gaps I take part in")]
    if not data.gaps:
        blocks.append(_section("No open gaps you posted, discussed or act on."))
    blocks += [_section(gap_text(g)) for g in data.gaps[:n_gaps]]
    if data.gaps_total > n_gaps and data.gaps:
        blocks.append(_more(data.gaps_total - n_gaps, "gaps"))
    return blocks


def home_view(data: HomeData, *, today: date) -> View:
    return View(type="home", blocks=home_blocks(data, today=today))
