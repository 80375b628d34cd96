"""The trigger-point message: a gap, what drives it, and the buttons that start the work."""

from __future__ import annotations

import json
from datetime import datetime
from functools import partial

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
)

from bot.blocks.text import FIELD_MAX, HEADER_MAX, SECTION_TEXT_MAX, bullet_list, cut, escape
from bot.ids import ActionId, BlockId
from sop_core import formatting as fmt
from sop_core import lifecycle
from sop_core.gaps import Driver, GapResult
from sop_core.lifecycle import GapStatus
from sop_core.services.data import GapReport
from sop_core.services.triggers import filters_text

OPTION_TEXT_MAX = 75  # a select option's and placeholder's text

MAX_DRIVERS = 5
MAX_OFFSETS = 3


def scope_label(scope: dict[str, tuple[str, ...]] | dict[str, list[str]]) -> str:
    """``region=EU · category=Snacks, Dairy`` (plain, unescaped); "all data" when empty."""
    if not scope:
        return "all data"
    return " · ".join(f"{key}={', '.join(values)}" for key, values in scope.items())


def horizon_label(result: GapResult) -> str:
    h = result.horizon
    if h.is_empty:
        return f"{h.name} (no months left)"
    span = fmt.month(h.start) if h.start == h.end else f"{fmt.month(h.start)}–{fmt.month(h.end)}"
    return f"{h.name} {span}"


def headline(result: GapResult) -> str:
    """One line for notifications and fallbacks (plain text)."""
    return (f"{scope_label(result.scope)} · {result.metric} · {horizon_label(result)}: "
            f"gap {fmt.amount(result.gap, signed=True, metric=result.metric)} "
            f"({fmt.percent(result.gap_pct)})")


def _driver_line(driver: Driver, metric: str | None = None) -> str:
    share = f", {fmt.share(driver.share)} of the gap" if driver.share is not None else ""
    gap = fmt.amount(driver.gap, signed=True, metric=metric)
    return (f"• *{escape(driver.member)}*: {gap} "
            f"({fmt.percent(driver.gap_pct)}){share}")


def drivers_text(result: GapResult) -> str | None:
    if result.by is None or not result.drivers:
        return None
    pushing = [d for d in result.drivers if not d.offset and d.gap != 0]
    offsets = [d for d in result.drivers if d.offset]
    # Only the lines that can be shown are formatted (by customer: thousands of members).
    lines = [_driver_line(d, result.metric) for d in pushing[:MAX_DRIVERS]]
    text = f"*What drives it, by {escape(result.by)}*\n" + bullet_list(
        lines or ["no member moves the gap"], most=MAX_DRIVERS, limit=SECTION_TEXT_MAX // 2,
        total=len(pushing) or 1)
    if offsets:
        offset_lines = [_driver_line(d, result.metric) for d in offsets[:MAX_OFFSETS]]
        text += "\n*Offsets*\n" + bullet_list(offset_lines, most=MAX_OFFSETS,
                                              limit=SECTION_TEXT_MAX // 2 - 50,
                                              total=len(offsets))
    return cut(text, SECTION_TEXT_MAX)


def movement_text(report: GapReport) -> str:
    movement = report.movement
    if movement is None:
        return "*Since the last snapshot:* first look at this gap."
    if abs(movement.gap_change) < 0.005:
        return "*Since the last snapshot:* unchanged."
    return (f"*Since the last snapshot:* moved from {fmt.percent(movement.previous_gap_pct)} "
            f"to {fmt.percent(report.result.gap_pct)} "
            f"({fmt.amount(movement.gap_change, signed=True, metric=report.result.metric)}).")


def rule_text(report: GapReport) -> str:
    rule, result = report.rule, report.result
    floor = f", |gap| ≥ {fmt.amount(rule.floor)}" if rule.floor else ""
    verdict = ":rotating_light: Crosses" if result.triggered else ":white_check_mark: Within"
    return f"{verdict} the trigger rule (|gap| ≥ {fmt.threshold(rule.threshold_pct)}{floor})"


def status_text(status: str, since: datetime | None) -> str:
    """``Status: covered by actions since 2026-12-06`` (mrkdwn)."""
    when = f" since {since:%Y-%m-%d}" if since is not None else ""
    return f"*Status:* {lifecycle.label(status)}{when}"


def trigger_point_blocks(report: GapReport, *, trigger_point_id: int | None = None,
                         resolved: bool = False, status: str | None = None,
                         status_changed_at: datetime | None = None) -> list[Block]:
    """The message posted into a channel for a gap (docs/reference/slack.md)."""
    result = report.result
    amount = partial(fmt.amount, metric=result.metric)  # in the metric's unit
    if status is None and resolved:
        status = GapStatus.CLOSED
    shown = lifecycle.status_of(status) if status is not None else GapStatus.OPEN
    status_suffix = "" if shown == GapStatus.OPEN else f" ({lifecycle.label(shown)})"
    title = f"Gap {fmt.percent(result.gap_pct)}: {scope_label(result.scope)}{status_suffix}"
    fields = [
        f"*Plan*\n{amount(result.plan)}",
        f"*Latest view*\n{amount(result.outlook)}",
        f"*Gap*\n{amount(result.gap, signed=True)} ({fmt.percent(result.gap_pct)})",
        f"*Actual to date · forecast rest*\n{amount(result.actual_to_date)} · "
        f"{amount(result.forecast_rest)}",
        f"*Forecast bias · WMAPE*\n{fmt.percent(result.bias_pct)} · "
        f"{fmt.percent(result.wmape, signed=False)}",
        f"*Horizon*\n{escape(horizon_label(result))}, as of {fmt.month(result.as_of)}",
    ]
    blocks: list[Block] = [
        HeaderBlock(text=cut(title, HEADER_MAX)),
        SectionBlock(
            text=MarkdownTextObject(text=cut(
                f"*{escape(result.metric)}* · {escape(scope_label(result.scope))}",
                SECTION_TEXT_MAX)),
            fields=[MarkdownTextObject(text=cut(f, FIELD_MAX)) for f in fields],
        ),
        SectionBlock(text=MarkdownTextObject(text=movement_text(report))),
    ]
    if (drivers := drivers_text(result)) is not None:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=drivers)))
    if report.pvm is not None:
        pvm = report.pvm
        blocks.append(SectionBlock(text=MarkdownTextObject(text=(
            f"*Price · volume · mix:* price {amount(pvm.price, signed=True)} · "
            f"volume {amount(pvm.volume, signed=True)} · "
            f"mix {amount(pvm.mix, signed=True)}"))))
    context = f"{rule_text(report)} · snapshot #{report.snapshot_id}"
    if status is not None:
        context = f"{status_text(status, status_changed_at)} · {context}"
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=context)]))
    if (drill := drill_block(report)) is not None:
        blocks.append(drill)
    if trigger_point_id is not None:
        value = str(trigger_point_id)
        blocks += [
            DividerBlock(),
            ActionsBlock(block_id=BlockId.TRIGGER_ACTIONS, elements=[
                ButtonElement(text="Discuss root cause", action_id=ActionId.DISCUSS, value=value,
                              style="primary"),
                ButtonElement(text="Create SMART action", action_id=ActionId.CREATE_ACTION,
                              value=value),
                ButtonElement(text="Show chart", action_id=ActionId.SHOW_CHART, value=value),
            ]),
        ]
    return blocks


POST_VALUE_MAX = 2000  # a button's value


def explore_blocks(report: GapReport, *, filters_text: str) -> list[Block]:
    """A gap answered only to the person: the same figures and drivers, and a button
    that posts it into the channel (its value: the filters as typed, plus ``post``)."""
    blocks = trigger_point_blocks(report)
    if len(filters_text) > POST_VALUE_MAX:  # too long for a button: say how instead
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text="Only you see this. To post it here, add `post` to the command.")]))
        return blocks
    blocks += [
        ContextBlock(elements=[MarkdownTextObject(
            text="Only you see this." if report.result.triggered else
            "Only you see this: the gap is within the channel's trigger rule.")]),
        ActionsBlock(block_id=BlockId.EXPLORE_ACTIONS, elements=[
            ButtonElement(text="Post to channel", action_id=ActionId.POST_TO_CHANNEL,
                          value=filters_text, style="primary"),
        ]),
    ]
    return blocks


BLOCK_ID_MAX, OPTION_VALUE_MAX, OPTIONS_MAX = 255, 150, 25  # Slack's limits


def drill_block(report: GapReport) -> ActionsBlock | None:
    """"Drill into a driver": each member opens, privately, into its own gap and drivers.

    The block id carries the gap's filters and the dimension, each option a member; a
    gap without drivers (no dimension left) has none."""
    result = report.result
    members = [d.member for d in result.drivers if d.gap != 0
               and len(d.member) <= OPTION_VALUE_MAX][:OPTIONS_MAX]
    base = filters_text(report)
    if result.by is None or not members or base is None:
        return None
    block_id = json.dumps({"f": base, "by": result.by}, ensure_ascii=False)
    if len(block_id) > BLOCK_ID_MAX:
        return None
    gaps = {d.member: d for d in result.drivers}
    options = [Option(value=member, text=cut(
        f"{member}: {fmt.amount(gaps[member].gap, signed=True, metric=result.metric)}",
        OPTION_TEXT_MAX)) for member in members]
    return ActionsBlock(block_id=block_id, elements=[StaticSelectElement(
        action_id=ActionId.DRILL_DOWN, options=options,
        placeholder=cut(f"Drill into a {result.by}", OPTION_TEXT_MAX))])


def drill_request(block_id: str, member: str) -> str | None:
    """The filters for the member chosen in a drill block (None: not one of ours)."""
    try:
        found = json.loads(block_id)
        base, by = str(found["f"]), str(found["by"])
    except (ValueError, KeyError, TypeError):
        return None
    quoted = next((f"{o}{member}{c}" for o, c in (('"', '"'), ("“", "”"), ("'", "'"))
                   if o not in member and c not in member), None)
    return None if quoted is None else f"{base} {by}={quoted}"
