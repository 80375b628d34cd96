"""Exactly-once sending: claim a unique key in the database, send, then mark it sent.

Every nudge, digest and watch post has a deterministic key (what, for whom, which
occasion). Before sending, a pass *claims* the key: an ``INSERT`` that the unique
constraint lets through once, or a take-over of a claim whose lease has expired (its
sender died between claim and send). Two clock processes, or two ``sopgap tick`` at
once, can both try; the database lets exactly one win.

The window in which a message can be sent twice is the crash of a sender after Slack
accepted the message and before ``sent`` was committed: the next pass re-sends once the
lease expires (at-least-once there, documented). Everywhere else it is exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sop_core.models import Notification, utcnow

log = logging.getLogger(__name__)

# Long enough for a send with Slack's retries (Retry-After up to a minute); short enough
# that a crashed pass is completed by the next one.
DEFAULT_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class Claim:
    key: str
    kind: str
    team_id: str
    attempt: int


def already_sent(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of these keys were sent (to skip them without claiming)."""
    wanted = list(keys)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(session.scalars(select(Notification.key).where(
            Notification.key.in_(chunk), Notification.status == "sent")))
    return found


def claim(sessions: sessionmaker[Session], key: str, *, kind: str, team_id: str,
          target: str | None = None, now: datetime | None = None,
          lease: timedelta = DEFAULT_LEASE) -> Claim | None:
    """Take the right to send ``key``; ``None`` if it was sent or someone else holds it."""
    now = now or utcnow()
    try:
        with sessions.begin() as session:
            session.add(Notification(key=key, kind=kind, team_id=team_id, target=target,
                                     status="claimed", attempts=1, claimed_at=now,
                                     lease_until=now + lease))
        return Claim(key, kind, team_id, 1)
    except IntegrityError:
        pass  # the key exists: sent, held by a live sender, or left by a dead one
    with sessions.begin() as session:
        # One UPDATE: the row lock makes a concurrent taker re-check the condition.
        taken = session.execute(
            update(Notification)
            .where(Notification.key == key, Notification.status == "claimed",
                   Notification.lease_until <= now)
            .values(claimed_at=now, lease_until=now + lease,
                    attempts=Notification.attempts + 1)
            .returning(Notification.attempts)
        ).scalar_one_or_none()
    if taken is None:
        return None
    log.info("taking over an expired claim for %s (attempt %d)", key, taken)
    return Claim(key, kind, team_id, int(taken))


def mark_sent(sessions: sessionmaker[Session], key: str, *, message_ts: str | None = None,
              now: datetime | None = None) -> None:
    with sessions.begin() as session:
        session.execute(update(Notification).where(Notification.key == key).values(
            status="sent", sent_at=now or utcnow(), message_ts=message_ts, last_error=None))


def mark_failed(sessions: sessionmaker[Session], key: str, error: str, *,
                now: datetime | None = None) -> None:
    """The send failed: the key stays due, and the next pass may claim it at once."""
    with sessions.begin() as session:
        session.execute(update(Notification).where(Notification.key == key).values(
            lease_until=now or utcnow(), last_error=error[:2000]))


def deliver(sessions: sessionmaker[Session], key: str, send: Callable[[], str | None], *,
            kind: str, team_id: str, target: str | None = None, now: datetime | None = None,
            lease: timedelta = DEFAULT_LEASE) -> bool:
    """Claim, send, mark. Returns whether this call sent it.

    ``send`` returns the Slack message ts (or None). If it raises, the claim is released
    for the next pass and the error propagates to the caller to log.
    """
    claimed = claim(sessions, key, kind=kind, team_id=team_id, target=target, now=now,
                    lease=lease)
    if claimed is None:
        return False
    try:
        message_ts = send()
    except Exception as error:
        mark_failed(sessions, key, f"{type(error).__name__}: {error}", now=now)
        raise
    mark_sent(sessions, key, message_ts=message_ts, now=now)
    return True
