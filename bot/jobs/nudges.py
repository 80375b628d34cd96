"""The nudge sweep: refresh owners' time zones, then send each due nudge exactly once."""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import earlier_posts
from bot.blocks.nudge import escalation_blocks, escalation_text, nudge_blocks, nudge_text
from bot.jobs import JobContext, PassReport, deliver, paced, send_each
from bot.slack_client import post_in_channel
from sop_core.models import Action
from sop_core.services.actions import person_today
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


def _card(job: JobContext, task: NudgeTask) -> tuple[str, list, date, str | None, str | None]:
    """The action's title and card, the recipient's today (their own zone), and where
    the card is."""
    from bot.blocks.action_card import card_for_action

    with job.sessions() as session:
        action = session.get(Action, task.action_id)
        assert action is not None
        today = person_today(session, task.team_id, task.recipient,
                             default_tz=job.settings.timezone, now=job.now)
        return (action.title, card_for_action(session, action, today=today), today,
                action.channel_id, action.card_ts)


def _link(client: WebClient, channel_id: str | None, card_ts: str | None) -> str | None:
    if channel_id is None or card_ts is None:
        return None
    try:
        return client.chat_getPermalink(channel=channel_id, message_ts=card_ts)["permalink"]
    except (SlackApiError, KeyError):
        log.warning("no permalink for the card %s in %s", card_ts, channel_id)
        return None


def _send(job: JobContext, client: WebClient, task: NudgeTask) -> str | None:
    title, card, today, channel_id, card_ts = _card(job, task)
    if task.in_thread:
        posted = post_in_channel(client, task.destination, thread_ts=task.thread_ts,
                                 text=escalation_text(task, title, today),
                                 blocks=escalation_blocks(task, title, today),
                                 metadata=earlier_posts.tag(earlier_posts.DELIVERY,
                                                            key=task.key))
        return posted["ts"]
    link = _link(client, channel_id, card_ts)
    posted = client.chat_postMessage(channel=task.destination,
                                     text=nudge_text(task, title, today, link=link),
                                     blocks=nudge_blocks(task, title, today, card, link=link))
    return posted["ts"]


FULL_SWEEP_EVERY = timedelta(hours=1)
# Per database: when this process last read every open item (not only those whose next
# nudge day has come). The first pass of a process is a full one.
_last_full: dict[str, datetime] = {}
_last_full_lock = threading.Lock()


def _full_sweep_due(job: JobContext) -> bool:
    """The safety net: once an hour a sweep reads everything that can be due, so an item
    whose next nudge day was written wrong (by a path around the ORM) waits an hour at
    most. A clock moved back (``sopgap tick --now``) counts as due too."""
    key = job.settings.database_url
    with _last_full_lock:
        last = _last_full.get(key)
        if last is not None and timedelta(0) <= job.now - last < FULL_SWEEP_EVERY:
            return False
        _last_full[key] = job.now
        return True


def run(job: JobContext) -> PassReport:
    refresh_users(job)
    with job.sessions.begin() as session:  # the sweep stores the items' next nudge days
        tasks = due_nudges(session, job.settings, job.now, full=_full_sweep_due(job))

    def send(client: WebClient, task: NudgeTask) -> bool:
        return deliver(job, task.key, lambda: _send(job, client, task), kind="nudge",
                       team_id=task.team_id, target=task.owner_id,
                       # an escalation in a thread is looked for there; a DM cannot be
                       find_sent=earlier_posts.sent_with_key(
                           client, task.destination, task.key, thread_ts=task.thread_ts)
                       if task.in_thread else None)

    # A Monday's wave holds several nudges for one person: paced, so that Slack's limit
    # per channel never makes the whole pass wait on one of them.
    return send_each(job, paced(tasks, lambda task: task.destination), send, what="nudge")
