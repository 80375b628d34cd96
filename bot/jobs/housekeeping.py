"""Daily tidying: expired OAuth states and very old notification records (sent or
given up)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import and_, delete, or_, text

from bot.jobs import JobContext, PassReport
from sop_core.models import Notification, SeenRequest

log = logging.getLogger(__name__)
# Old enough that no schedule recomputes these keys (nudge keys carry their date).
NOTIFICATION_RETENTION = timedelta(days=400)
# Slack refuses signatures older than 5 minutes, so older ones cannot be replayed.
SIGNATURE_RETENTION = timedelta(hours=1)


def run(job: JobContext) -> PassReport:
    with job.sessions.begin() as session:
        cutoff = job.now - NOTIFICATION_RETENTION
        pruned = session.execute(delete(Notification).where(or_(
            and_(Notification.status == "sent", Notification.sent_at < cutoff),
            # given up: claimed_at is the last attempt's
            and_(Notification.status == "failed", Notification.claimed_at < cutoff),
        ))).rowcount
        session.execute(delete(SeenRequest).where(
            SeenRequest.seen_at < job.now - SIGNATURE_RETENTION))
        # slack_sdk's OAuth state store keeps naive UTC datetimes.
        session.execute(text("DELETE FROM slack_oauth_states WHERE expire_at < :now"),
                        {"now": job.now.replace(tzinfo=None)})
    log.info("housekeeping: %d old notification records pruned", pruned)
    return PassReport(sent=0, skipped=int(pruned or 0))
