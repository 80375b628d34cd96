"""Pre-meeting digests: each channel's digest, once per meeting, ``lead`` before it.

What is due is decided by ``sop_core.services.digests.due_digests`` from the database at
``job.now``; each digest is claimed in the outbox under
``digest:{team}:{channel}:{occurrence}`` before it is posted, so it goes out once however
many passes or clocks run, and a failed post stays due for the next pass.
"""

from __future__ import annotations

import logging
from datetime import datetime

from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.blocks.digest import digest_blocks, digest_text
from bot.jobs import JobContext, PassReport
from bot.slack_client import post_in_channel
from sop_core import outbox
from sop_core.config import Settings
from sop_core.services.digests import (
    KIND_NOW,
    KIND_SCHEDULED,
    digest_for,
    due_digests,
    now_key,
)

log = logging.getLogger(__name__)


def run(job: JobContext) -> PassReport:
    with job.sessions() as session:
        due = due_digests(session, job.now)
    report = PassReport()
    for item in due:
        client = job.client_for(item.team_id)
        if client is None:
            log.warning("no Slack client for workspace %s: digest %s waits", item.team_id,
                        item.key)
            report.skipped += 1
            continue
        try:
            sent = outbox.deliver(
                job.sessions, item.key,
                lambda item=item, client=client: send_digest(
                    job.sessions, job.settings, client, team_id=item.team_id,
                    channel_id=item.channel_id, now=job.now, occurrence=item.occurrence),
                kind=KIND_SCHEDULED, team_id=item.team_id, target=item.channel_id, now=job.now)
        except Exception:
            log.exception("digest %s failed; it stays due for the next pass", item.key)
            report.failed += 1
            continue
        if sent:
            report.sent += 1
        else:
            report.skipped += 1
    return report


def send_digest(sessions: sessionmaker[Session], settings: Settings, client: WebClient, *,
                team_id: str, channel_id: str, now: datetime,
                occurrence: datetime | None = None) -> str:
    """Build the channel's digest from the database and post it; returns its ts."""
    digest = digest_for(sessions, settings, team_id=team_id, channel_id=channel_id, now=now,
                        occurrence=occurrence)
    posted = post_in_channel(client, channel_id, text=digest_text(digest),
                             blocks=digest_blocks(digest))
    return str(posted["ts"])


def post_now(sessions: sessionmaker[Session], settings: Settings, client: WebClient, *,
             team_id: str, channel_id: str, now: datetime) -> bool:
    """``/gap digest``: the channel's digest now (its own key; the schedule is untouched)."""
    return outbox.deliver(
        sessions, now_key(team_id, channel_id, now),
        lambda: send_digest(sessions, settings, client, team_id=team_id,
                            channel_id=channel_id, now=now),
        kind=KIND_NOW, team_id=team_id, target=channel_id, now=now)
