"""The App Home: published when a person opens it, and on "Refresh"; its "Search history"
button and modal are handled in ``bot.listeners.history``."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk.errors import SlackApiError

from bot.blocks.home import home_view
from bot.directory import SlackCannotSay, person_audience
from bot.ids import ActionId, CallbackId
from bot.listeners import history
from sop_core.services.actions import person_today
from sop_core.services.coverage import home_data
from sop_core.visibility import Visibility

log = logging.getLogger(__name__)


def register(app: App) -> None:
    app.event("app_home_opened")(home_opened)
    app.action(ActionId.HOME_REFRESH)(refresh)
    app.action(ActionId.HOME_SEARCH_HISTORY)(history.open_search)
    app.view(CallbackId.HISTORY_SEARCH)(history.submit_search)


def home_opened(event: dict[str, Any], context: dict[str, Any]) -> None:
    if event.get("tab", "home") != "home" or not event.get("user"):
        return  # the Messages tab opened: nothing to publish
    publish(context, event["user"])


def refresh(ack: Ack, body: dict[str, Any], context: dict[str, Any]) -> None:
    ack()
    publish(context, body["user"]["id"])


def publish(context: dict[str, Any], user_id: str) -> None:
    """views.publish the person's Home (idempotent: a redelivered event republishes it)."""
    # The viewer's own day (their Slack zone once known), not the company's.
    with context["sessions"]() as session:
        today = person_today(session, context["team_id"], user_id,
                             default_tz=context["settings"].timezone)
    try:
        audience = person_audience(context["client"], context["sessions"],
                                   team_id=context["team_id"], user_id=user_id)
    except SlackCannotSay:
        # Fail closed: their own actions only, no gap of any channel, until Slack answers
        # (the next open or "Refresh" asks again).
        log.warning("Slack did not say which channels %s is in: their Home shows their "
                    "own actions only", user_id)
        audience = Visibility(channels=frozenset(), user_id=user_id)
    data = home_data(context["sessions"], team_id=context["team_id"], user_id=user_id,
                     today=today, visibility=audience)
    try:
        context["client"].views_publish(user_id=user_id, view=home_view(data, today=today))
    except SlackApiError:
        log.exception("could not publish the App Home of %s", user_id)
