"""Pre-meeting digests: each channel's digest, once per meeting, ``lead`` before it.

What is due is decided by ``sop_core.services.digests.due_digests`` from the database at
``job.now``; each digest is claimed in the outbox under
``digest:{team}:{channel}:{occurrence}`` before it is posted, so it goes out once however
many passes or clocks run, and a failed post stays due for the next pass.

Once a digest is sent, a small chart of how the channel's open gaps moved across the
last snapshots goes into its thread, under its own key ``digest-chart:…``: the digest
is marked sent before the chart is even drawn, so a chart that fails (it is logged, not
retried) never holds back or repeats the digest, and a chart is never sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from bot import earlier_posts
from bot.blocks.digest import digest_blocks, digest_text
from bot.jobs import JobContext, PassReport, send_each
from bot.slack_client import Upload, post_in_channel, upload_files
from bot.slack_client import diagnose as slack_diagnose
from sop_core import outbox
from sop_core.config import Settings
from sop_core.services.chart_data import movement_chart
from sop_core.services.digests import (
    KIND_NOW,
    KIND_SCHEDULED,
    DueDigest,
    digest_for,
    due_digests,
    now_key,
)

log = logging.getLogger(__name__)

KIND_CHART = "digest_chart"
CHART_COMMENT = "How this channel's open gaps moved over the last snapshots (gap % of plan)."


def run(job: JobContext) -> PassReport:
    with job.sessions() as session:
        due = due_digests(session, job.now)

    def send(client: WebClient, item: DueDigest) -> bool:
        return _deliver(job.sessions, job.settings, client, item.key, kind=KIND_SCHEDULED,
                        team_id=item.team_id, channel_id=item.channel_id, now=job.now,
                        occurrence=item.occurrence, diagnose=slack_diagnose)

    return send_each(job, due, send, what="digest")


def send_digest(sessions: sessionmaker[Session], settings: Settings, client: WebClient, *,
                key: str, team_id: str, channel_id: str, now: datetime,
                occurrence: datetime | None = None) -> str:
    """Build the channel's digest from the database and post it, tagged with its outbox
    ``key`` (a later attempt finds it: bot/earlier_posts.py); returns its ts."""
    digest = digest_for(sessions, settings, team_id=team_id, channel_id=channel_id, now=now,
                        occurrence=occurrence)
    posted = post_in_channel(client, channel_id, text=digest_text(digest),
                             blocks=digest_blocks(digest),
                             metadata=earlier_posts.tag(earlier_posts.DELIVERY, key=key))
    return str(posted["ts"])


def post_now(sessions: sessionmaker[Session], settings: Settings, client: WebClient, *,
             team_id: str, channel_id: str, now: datetime) -> bool:
    """``/gap digest``: the channel's digest now (its own key; the schedule is untouched).
    Nobody retries that key, so Slack's error reaches the person as it is."""
    return _deliver(sessions, settings, client, now_key(team_id, channel_id, now),
                    kind=KIND_NOW, team_id=team_id, channel_id=channel_id, now=now)


def _deliver(sessions: sessionmaker[Session], settings: Settings, client: WebClient,
             key: str, *, kind: str, team_id: str, channel_id: str, now: datetime,
             occurrence: datetime | None = None,
             diagnose: Callable[[Exception], outbox.Diagnosis] = outbox.diagnose) -> bool:
    """The digest under ``key``, then (only if this call sent it) its movement chart."""
    posted: list[str] = []

    def send() -> str:
        posted.append(send_digest(sessions, settings, client, key=key, team_id=team_id,
                                  channel_id=channel_id, now=now, occurrence=occurrence))
        return posted[-1]

    def find_sent(since: datetime) -> str | None:
        found = earlier_posts.sent_with_key(client, channel_id, key)(since)
        if found is not None:
            posted.append(found)
        return found

    sent = outbox.deliver(sessions, key, send, kind=kind, team_id=team_id, target=channel_id,
                          now=now, diagnose=diagnose, find_sent=find_sent)
    if sent:
        send_chart(sessions, settings, client, digest_key=key, team_id=team_id,
                   channel_id=channel_id, thread_ts=posted[-1], now=now)
    return sent


def chart_key(digest_key: str) -> str:
    return "digest-chart:" + digest_key.removeprefix("digest:")


def send_chart(sessions: sessionmaker[Session], settings: Settings, client: WebClient, *,
               digest_key: str, team_id: str, channel_id: str, thread_ts: str,
               now: datetime) -> bool:
    """Upload the movement chart into the digest's thread, once; never raises (the
    digest went out, which is what matters). Returns whether a chart was sent."""
    try:
        chart = movement_chart(sessions, settings, team_id=team_id, channel_id=channel_id)
        if chart is None:  # no open gap, or only one snapshot: nothing moved yet
            return False

        def upload() -> None:
            upload_files(client, channel_id,
                         [Upload(chart.png, chart.filename, chart.title, chart.alt_text)],
                         thread_ts=thread_ts, initial_comment=CHART_COMMENT)

        return outbox.deliver(sessions, chart_key(digest_key), upload, kind=KIND_CHART,
                              team_id=team_id, target=channel_id, now=now,
                              diagnose=slack_diagnose)
    except outbox.GaveUp:  # logged by the outbox
        return False
    except Exception:
        log.exception("the movement chart of digest %s was not sent (the digest was)",
                      digest_key)
        return False
