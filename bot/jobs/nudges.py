"""The nudge sweep: refresh owners' time zones, then send each due nudge exactly once."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.nudge import escalation_blocks, escalation_text, nudge_blocks, nudge_text
from bot.jobs import JobContext, PassReport, deliver, paced, send_each
from bot.slack_client import post_in_channel
from sop_core.models import Action
from sop_core.services.followup import NudgeTask, due_nudges, remember_user, users_to_refresh

log = logging.getLogger(__name__)


def refresh_users(job: JobContext) -> None:
    """Cache ``users.info`` time zones (and who left) for owners of open actions."""
    with job.sessions() as session:
        stale = users_to_refresh(session, job.now)
    for team_id, user_id in stale:
        client = job.client_for(team_id)
        if client is None:
            continue
        try:
            user = client.users_info(user=user_id)["user"]
        except SlackApiError as error:
            if error.response.get("error") == "user_not_found":
                remember_user(job.sessions, team_id, user_id, tz="UTC", deleted=True,
                              now=job.now)
            else:
                log.warning("users.info failed for %s/%s: %s", team_id, user_id,
                            error.response.get("error"))
            continue
        remember_user(job.sessions, team_id, user_id, tz=user.get("tz") or "UTC",
                      deleted=bool(user.get("deleted")), now=job.now)


def _card(job: JobContext, action_id: int) -> tuple[str, list]:
    from bot.blocks.action_card import card_for_action

    with job.sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None
        return action.title, card_for_action(session, action)


def _send(job: JobContext, client: WebClient, task: NudgeTask) -> str | None:
    title, card = _card(job, task.action_id)
    today = job.now.astimezone(ZoneInfo(job.settings.timezone)).date()
    if task.in_thread:
        posted = post_in_channel(client, task.destination, thread_ts=task.thread_ts,
                                 text=escalation_text(task, title, today),
                                 blocks=escalation_blocks(task, title, today))
        return posted["ts"]
    posted = client.chat_postMessage(channel=task.destination,
                                     text=nudge_text(task, title, today),
                                     blocks=nudge_blocks(task, title, today, card))
    return posted["ts"]


def run(job: JobContext) -> PassReport:
    refresh_users(job)
    with job.sessions() as session:
        tasks = due_nudges(session, job.settings, job.now)

    def send(client: WebClient, task: NudgeTask) -> bool:
        return deliver(job, task.key, lambda: _send(job, client, task), kind="nudge",
                       team_id=task.team_id, target=task.owner_id)

    # A Monday's wave holds several nudges for one person: paced, so that Slack's limit
    # per channel never makes the whole pass wait on one of them.
    return send_each(job, paced(tasks, lambda task: task.destination), send, what="nudge")
