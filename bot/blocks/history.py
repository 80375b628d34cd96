"""Past gaps: ``/gap history``, the App Home search modal, "Similar past gaps" in a
root-cause thread, and the comment on an export's files."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.blocks.text import SECTION_TEXT_MAX, bullet_list, cut, escape
from bot.blocks.thread import channel_link, mention, quote
from bot.blocks.trigger import scope_label
from bot.ids import INPUT, BlockId, CallbackId
from sop_core import formatting as fmt
from sop_core.lifecycle import GapStatus, status_of
from sop_core.models import Status
from sop_core.services.exports import Export, nothing_matches
from sop_core.services.history import History, PastAction, PastGap
from sop_core.services.root_causes import category_label

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SHOWN = 20  # past gaps in one message or modal: more is a spreadsheet's job
MAX_ACTIONS = 3  # per past gap
SUMMARY_SHOWN = 280  # characters of a root-cause summary
TITLE_SHOWN = 120  # characters of an action title
LABEL_SHOWN = 300  # characters of a scope label
FILTERS_MAX = 500  # characters typed in the search box
STATUS_MARKS: dict[str, str] = {
    GapStatus.OPEN: ":red_circle: open", GapStatus.REOPENED: ":red_circle: reopened",
    GapStatus.COVERED: ":large_yellow_circle: covered by actions",
    GapStatus.CLOSED: ":white_check_mark: closed", Status.RESOLVED: ":white_check_mark: closed"}


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=cut(text, SECTION_TEXT_MAX)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=cut(text, SECTION_TEXT_MAX))])


def _gap_figures(gap: float, pct: float | None, metric: str | None = None) -> str:
    return f"{fmt.amount(gap, signed=True, metric=metric)} ({fmt.percent(pct)})"


def _title(gap: PastGap) -> str:
    return (f"*{escape(cut(scope_label(gap.scope), LABEL_SHOWN))}* · {escape(gap.metric)} · "
            f"{escape(gap.horizon)}")


def _root_cause(gap: PastGap) -> str:
    if not gap.confirmed:
        return "Root cause: _not confirmed_"
    summary = f" — “{quote(gap.root_cause_summary, SUMMARY_SHOWN)}”" \
        if gap.root_cause_summary else ""
    # A replaced root cause says so: its earlier versions are kept.
    times = f" {gap.root_cause_revisions}×" if gap.root_cause_revisions > 1 else ""
    revised = f" _(revised{times})_" if gap.root_cause_revisions else ""
    return (f"Root cause{revised}: *{escape(category_label(gap.root_cause_category))}*"
            f"{summary}")


def _action_line(action: PastAction, metric: str | None = None) -> str:
    parts = [mention(action.owner_id), escape(action.status)]
    if action.realised_impact is not None:
        parts.append(f"realised {fmt.amount(action.realised_impact, signed=True, metric=metric)}")
    else:
        parts.append(f"expected {fmt.amount(action.expected_impact, signed=True, metric=metric)}")
    if action.status == Status.OPEN:
        parts.append(f"due {action.due_date:%Y-%m-%d}")
    return f"• {escape(cut(action.title, TITLE_SHOWN))} — " + " · ".join(parts)


def impact_text(gap: PastGap) -> str:
    """``2 actions: realised +150K of +200K expected`` (or what is expected so far)."""
    count = len(gap.actions)
    what = f"{count} action{'s' if count != 1 else ''}"
    amount = partial(fmt.amount, signed=True, metric=gap.metric)  # in the gap's unit
    if gap.realised_impact is not None:
        return (f"{what}: impact realised {amount(gap.realised_impact)} of "
                f"{amount(gap.expected_impact)} expected")
    return f"{what}: {amount(gap.expected_impact)} expected, none realised yet"


def past_gap_text(gap: PastGap) -> str:
    """One past gap (mrkdwn, escaped): where and when, figures then and now, root cause,
    actions and the impact they realised."""
    status = STATUS_MARKS.get(gap.status, escape(gap.status))
    changed = gap.status_changed_at or (
        gap.resolved_at if status_of(gap.status) == GapStatus.CLOSED else None)
    if changed is not None:
        status += f" since {changed:%Y-%m-%d}"
    lines = [
        f"{_title(gap)} · {channel_link(gap.channel_id)} · posted "
        f"{gap.created_at:%Y-%m-%d} · {status}",
        f"Gap at posting {_gap_figures(gap.gap_at_post, gap.gap_pct_at_post, gap.metric)} → now "
        f"{_gap_figures(gap.gap, gap.gap_pct, gap.metric)}",
        _root_cause(gap),
    ]
    if gap.actions:
        lines.append(impact_text(gap))
        actions = bullet_list([_action_line(a, gap.metric) for a in gap.actions], most=MAX_ACTIONS,
                              limit=SECTION_TEXT_MAX - 1200)
        lines.append(actions)
    else:
        lines.append("No action recorded.")
    return cut("\n".join(lines), SECTION_TEXT_MAX)


# --------------------------------------------------------------------------------------
# /gap history and the search modal
# --------------------------------------------------------------------------------------

def history_text(history: History) -> str:
    """Fallback text (notifications), escaped."""
    return (f"Past gaps for {escape(history.criteria.label())}: {history.total}")


def _empty_text(history: History) -> str:
    if history.criteria.is_empty:
        return "No gap has been posted in this workspace yet."
    hints = "\n".join(escape(h) for h in history.hints)
    return (f"No past gap overlaps {escape(history.criteria.label())}."
            + (f"\n{hints}" if hints else ""))


def result_blocks(history: History, *, room: int, export_hint: bool = True) -> list[Block]:
    """The heading, the gaps (newest first) and "and N more", in at most ``room`` blocks."""
    heading = (f"*Past gaps* · {escape(history.criteria.label())} · {history.total} found"
               + (", newest first" if history.total > 1 else ""))
    blocks: list[Block] = [_section(heading)]
    if not history.gaps:
        blocks.append(_section(_empty_text(history)))
        return blocks
    shown = history.gaps[:max(min(MAX_SHOWN, room - 2), 0)]
    blocks += [_section(past_gap_text(g)) for g in shown]
    rest = history.total - len(shown)
    if rest > 0:
        more = f"…and {rest} more. Narrow the filters"
        if export_hint:
            more += ", or `/gap export gaps` for all of them as a spreadsheet"
        blocks.append(_context(more + "."))
    return blocks


def history_blocks(history: History) -> list[Block]:
    """``/gap history``: shown only to the caller, within a message's 50 blocks."""
    return result_blocks(history, room=MAX_MESSAGE_BLOCKS)


def _filters_input(initial: str | None) -> InputBlock:
    return InputBlock(
        block_id=BlockId.HISTORY_FILTERS, label="Filters", optional=True,
        hint="Past gaps whose scope overlaps these filters, newest first. Leave empty for "
             "all. Values from earlier data are found too.",
        element=PlainTextInputElement(
            action_id=INPUT, max_length=FILTERS_MAX, initial_value=initial or None,
            placeholder='region=EU category="Snacks" metric=revenue'))


def search_modal(initial: str | None = None) -> View:
    """Opened from the App Home's "Search history" button."""
    return View(type="modal", callback_id=CallbackId.HISTORY_SEARCH, title="Search history",
                submit="Search", close="Close", blocks=[_filters_input(initial)])


def results_modal(history: History, text: str) -> View:
    """The results in the same modal, the filters kept for another search."""
    top: list[Block] = [_filters_input(cut(text, FILTERS_MAX)), DividerBlock()]
    return View(type="modal", callback_id=CallbackId.HISTORY_SEARCH, title="Search history",
                submit="Search again", close="Close",
                blocks=[*top, *result_blocks(history, room=MAX_VIEW_BLOCKS - len(top))])


# --------------------------------------------------------------------------------------
# Similar past gaps, in a root-cause thread
# --------------------------------------------------------------------------------------

def similar_text(gap: PastGap) -> str:
    lines = [f"{_title(gap)} · posted {gap.created_at:%Y-%m-%d} in "
             f"{channel_link(gap.channel_id)} · "
             f"{STATUS_MARKS.get(gap.status, escape(gap.status))}",
             f"Gap then {_gap_figures(gap.gap_at_post, gap.gap_pct_at_post, gap.metric)} → now "
             f"{_gap_figures(gap.gap, gap.gap_pct, gap.metric)}",
             _root_cause(gap)]
    if gap.actions:
        lines.append("What was done: " + impact_text(gap))
        lines.append(bullet_list([_action_line(a, gap.metric) for a in gap.actions], most=2,
                                 limit=SECTION_TEXT_MAX - 1200))
    else:
        lines.append("What was done: no action recorded.")
    return cut("\n".join(lines), SECTION_TEXT_MAX)


def similar_blocks(similar: Sequence[PastGap]) -> list[Block]:
    """A short "Similar past gaps" section for the root-cause prompt (none: no blocks)."""
    if not similar:
        return []
    return [
        DividerBlock(),
        _section(":books: *Similar past gaps* · the same dimension values before: what was "
                 "found and what was done then"),
        *(_section(similar_text(g)) for g in similar),
    ]


# --------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------

def export_comment(export: Export, user_id: str) -> str:
    """The message the two files are shared with (mrkdwn, escaped)."""
    rows = f"{fmt.number(export.rows)} {'row' if export.rows == 1 else 'rows'}"
    what = (f"the drivers of the gap by *{escape(export.by)}*" if export.by is not None else
            f"the *{escape(export.kind.value)}* register")
    return cut(f":bar_chart: {mention(user_id)} exported {what} "
               f"({escape(export.criteria.label())}): {rows}, as CSV and Excel.",
               SECTION_TEXT_MAX)


def nothing_to_export(export: Export) -> str:
    """Plain text (``Ctx.tell`` escapes it). The files would go to the channel, so what a
    private or Slack Connect channel holds is never in them: said, for a search that
    found nothing here."""
    return (f"Nothing to export: {nothing_matches(export)} An export here holds this "
            "channel's records and those of public channels; a private or Slack Connect "
            "channel's records can be exported from that channel.")
