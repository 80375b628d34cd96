"""Daily tidying: old snapshots nobody needs (see ``sop_core.retention``), request
signatures past the replay window, settled outbox records past their retention,
expired OAuth states, and Slack's expired answers about channels and people. Each prune
is logged with its count."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import and_, delete, or_, text

from bot.jobs import JobContext, PassReport
from sop_core.models import Notification, SeenRequest, SlackAnswer, SlackChange
from sop_core.retention import prune_snapshots
from sop_core.slack_answers import CHANGE_RETENTION_SECONDS

log = logging.getLogger(__name__)
# Slack refuses signatures older than 5 minutes, so older ones cannot be replayed.
SIGNATURE_RETENTION = timedelta(hours=1)


def run(job: JobContext) -> PassReport:
    settings = job.settings
    # Old enough (default 400 days) that no schedule recomputes these keys (nudge keys
    # carry their date).
    outbox_cutoff = job.now - timedelta(days=settings.keep_outbox_days)
    with job.sessions.begin() as session:
        snapshots = prune_snapshots(session, keep_count=settings.keep_snapshots,
                                    keep_days=settings.keep_snapshot_days, now=job.now)
        notifications = session.execute(delete(Notification).where(or_(
            and_(Notification.status == "sent", Notification.sent_at < outbox_cutoff),
            # given up: lease_until is when (claimed_at is the first attempt's)
            and_(Notification.status == "failed", Notification.lease_until < outbox_cutoff),
        ))).rowcount or 0
        signatures = session.execute(delete(SeenRequest).where(
            SeenRequest.seen_at < job.now - SIGNATURE_RETENTION)).rowcount or 0
        # slack_sdk's OAuth state store keeps naive UTC datetimes.
        states = session.execute(text("DELETE FROM slack_oauth_states WHERE expire_at < :now"),
                                 {"now": job.now.replace(tzinfo=None)}).rowcount or 0
        now = job.now.timestamp()
        answers = session.execute(delete(SlackAnswer).where(
            SlackAnswer.expires_at <= now)).rowcount or 0
        answers += session.execute(delete(SlackChange).where(
            SlackChange.changed_at < now - CHANGE_RETENTION_SECONDS)).rowcount or 0
    log.info("housekeeping: pruned %d snapshots, %d settled outbox records, "
             "%d request signatures, %d expired OAuth states, %d expired Slack answers",
             snapshots, notifications, signatures, states, answers)
    return PassReport(sent=0, skipped=snapshots + notifications + signatures + states
                      + answers)
