"""The gap's own message, re-rendered when an action changed the gap's status (covered
once the open actions reach the gap, open again when one is cancelled or completed), so
the message says what the register says."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot.blocks.text import escape
from bot.blocks.trigger import headline, trigger_point_blocks
from bot.listeners.context import Ctx
from bot.slack_client import NotInChannel, in_channel
from sop_core.filters import FilterError
from sop_core.models import TriggerPoint
from sop_core.services import triggers
from sop_core.services.actions import ActionView
from sop_core.services.data import NoData, gap_report

log = logging.getLogger(__name__)


def show_gap_status(ctx: Ctx, client: WebClient, action: ActionView) -> None:
    """Update the gap's message if this action's change moved the gap's status.

    Best effort: the change is saved already, and the next refresh of the gap shows it."""
    gap = action.gap
    if not action.gap_status_changed or gap is None or gap.message_ts is None:
        return
    filters = triggers.filters_of(gap.scope, horizon=gap.horizon, metric=gap.metric)
    if filters is None:
        return
    channel, ts = gap.channel_id, gap.message_ts
    try:
        with ctx.sessions() as session:
            point = session.get(TriggerPoint, gap.trigger_point_id)
            if point is None:
                return
            rule = triggers.channel_rule(session, ctx.settings, ctx.team_id, channel)
            report = gap_report(session, filters, team_id=ctx.team_id, rule=rule,
                                explain=True, fy_start_month=ctx.settings.fiscal_year_start_month)
            blocks = trigger_point_blocks(report, trigger_point_id=point.id,
                                          status=point.status,
                                          status_changed_at=point.status_changed_at)
        in_channel(client, channel, lambda: client.chat_update(
            channel=channel, ts=ts, text=escape(headline(report.result)), blocks=blocks))
    except (FilterError, NoData, SQLAlchemyError, SlackApiError, NotInChannel):
        log.exception("could not show the new status of trigger point %s",
                      gap.trigger_point_id)
