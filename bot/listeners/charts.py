""""Show chart" on a trigger point: its bridge (and trend) uploaded into the gap's thread."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.context.respond import Respond

from bot.blocks.text import escape
from bot.blocks.trigger import headline
from bot.ids import ActionId
from bot.listeners.context import Ctx, UserError
from bot.listeners.threads import NOT_FOUND, point_id_of
from bot.slack_client import Upload, upload_files
from sop_core.filters import FilterError
from sop_core.services.chart_data import PointCharts, point_charts
from sop_core.services.data import NoData
from sop_core.services.triggers import NotFound

log = logging.getLogger(__name__)

SCOPE_GONE = ("This gap's scope is not in the latest data any more, so there is nothing to "
              "chart: {problem}")
NOT_UPLOADED = "Slack did not take the chart (it has been logged): try again in a moment."
NOT_DRAWN = "I could not draw this chart (it has been logged)."


def register(app: App) -> None:
    app.action(ActionId.SHOW_CHART)(show_chart)


def comment(charts: PointCharts) -> str:
    """The message the charts come with (mrkdwn, escaped)."""
    names = {"bridge": "bridge", "price-volume-mix": "price · volume · mix",
             "trend": "monthly trend"}
    shown = [label for key, label in names.items()
             if any(f.filename.endswith(f"-{key}.png") for f in charts.files)]
    return (f"Charts on the latest view (snapshot #{charts.report.snapshot_id}): "
            f"{', '.join(shown)}.\n{escape(headline(charts.report.result))}")


def show_chart(ack: Ack, body: dict[str, Any], action: dict[str, Any],
               context: dict[str, Any], respond: Respond) -> None:
    ack()
    ctx = Ctx.of(context, body, respond)
    try:
        with ctx.work_slot:
            charts = point_charts(ctx.sessions, ctx.settings, team_id=ctx.team_id,
                                  point_id=point_id_of(action.get("value")))
    except (NotFound, UserError):
        ctx.tell(NOT_FOUND)
        return
    except (NoData, FilterError) as problem:
        ctx.tell(SCOPE_GONE.format(problem=problem) if isinstance(problem, FilterError)
                 else str(problem))
        return
    except Exception:
        log.exception("drawing the charts of trigger point %s failed", action.get("value"))
        ctx.tell(NOT_DRAWN)
        return
    try:
        upload_files(ctx.client, charts.channel_id,
                     [Upload(f.png, f.filename, f.title, f.alt_text) for f in charts.files],
                     thread_ts=charts.message_ts, initial_comment=comment(charts))
    except UserError as problem:  # not in the channel, and not allowed to join it
        ctx.tell(str(problem), escaped=True)
    except Exception:  # Slack refused, or did not answer, after the retries
        log.exception("uploading the charts of trigger point %s failed", charts.point_id)
        ctx.tell(NOT_UPLOADED)
