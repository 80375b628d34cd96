"""Exactly-once sending: claim a unique key in the database, send, then mark it sent.

Every nudge, digest and watch post has a deterministic key (what, for whom, which
occasion). Before sending, a pass *claims* the key: an ``INSERT`` that the unique
constraint lets through once, or a take-over of a claim whose lease has expired (its
sender died between claim and send). Two clock processes, or two ``sopgap tick`` at
once, can both try; the database lets exactly one win.

A failed send is diagnosed (``deliver``'s ``diagnose``, which the Slack side supplies):
a transient failure (rate limit, 5xx, timeout, lost connection, database away) leaves the
key due for the next pass; a permanent one (the channel is gone, the blocks are refused)
makes it final at once, ``status='failed'`` with the reason, logged once and never
retried; an unknown one is retried until the key's ``MAX_ATTEMPTS``-th attempt, then
made final the same way.

The window in which a message can be sent twice (at-least-once there, documented): Slack
carried out a send whose answer never reached us, because the sender crashed before
``sent`` was committed (the next pass re-sends once the lease expires) or because the
request timed out, or failed with a 5xx, after Slack had taken it (the next pass
re-sends at once). Everywhere else it is exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sop_core.models import Notification, utcnow

log = logging.getLogger(__name__)

# Long enough for a send with Slack's retries (Retry-After up to a minute); short enough
# that a crashed pass is completed by the next one.
DEFAULT_LEASE = timedelta(minutes=5)
# The safety net for failures nobody recognised: a key is given up at its 10th failed
# attempt (about ten minutes of one pass a minute). Transient failures never give up.
MAX_ATTEMPTS = 10
REASON_MAX = 2000  # notifications.last_error is Text; keep the record readable

SENT, CLAIMED, FAILED = "sent", "claimed", "failed"


class ErrorKind(StrEnum):
    TRANSIENT = "transient"  # may pass: retried by every pass
    PERMANENT = "permanent"  # no retry can cure it: final at once
    UNKNOWN = "unknown"  # retried up to MAX_ATTEMPTS attempts


@dataclass(frozen=True)
class Diagnosis:
    """What a failed send means; ``reason`` is stored and logged, so it holds no secret."""

    kind: ErrorKind
    reason: str


def diagnose(error: Exception) -> Diagnosis:
    """The default: the database going away is transient; anything else is unknown."""
    if isinstance(error, DBAPIError):
        return Diagnosis(ErrorKind.TRANSIENT, f"database: {type(error.orig).__name__}")
    return Diagnosis(ErrorKind.UNKNOWN, f"{type(error).__name__}: {error}")


class GaveUp(Exception):
    """``deliver`` made the key final: not sent, and never tried again (logged already)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class Claim:
    key: str
    kind: str
    team_id: str
    attempt: int


def settled(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of these keys are done with: sent, or given up (to skip them without claiming)."""
    wanted = list(keys)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(session.scalars(select(Notification.key).where(
            Notification.key.in_(chunk), Notification.status.in_((SENT, FAILED)))))
    return found


def claim(sessions: sessionmaker[Session], key: str, *, kind: str, team_id: str,
          target: str | None = None, now: datetime | None = None,
          lease: timedelta = DEFAULT_LEASE) -> Claim | None:
    """Take the right to send ``key``; ``None`` if it was sent or someone else holds it."""
    now = now or utcnow()
    try:
        with sessions.begin() as session:
            session.add(Notification(key=key, kind=kind, team_id=team_id, target=target,
                                     status=CLAIMED, attempts=1, claimed_at=now,
                                     lease_until=now + lease))
        return Claim(key, kind, team_id, 1)
    except IntegrityError:
        pass  # the key exists: sent, held by a live sender, or left by a dead one
    with sessions.begin() as session:
        # One UPDATE: the row lock makes a concurrent taker re-check the condition.
        taken = session.execute(
            update(Notification)
            .where(Notification.key == key, Notification.status == CLAIMED,
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
            status=SENT, sent_at=now or utcnow(), message_ts=message_ts, last_error=None))


def mark_failed(sessions: sessionmaker[Session], key: str, error: str, *,
                now: datetime | None = None) -> None:
    """The send failed: the key stays due, and the next pass may claim it at once."""
    with sessions.begin() as session:
        session.execute(update(Notification).where(Notification.key == key).values(
            lease_until=now or utcnow(), last_error=error[:REASON_MAX]))


def give_up(sessions: sessionmaker[Session], key: str, reason: str, *,
            now: datetime | None = None) -> None:
    """The send failed for good: the key is final (``failed``) and never claimed again."""
    with sessions.begin() as session:
        session.execute(update(Notification).where(
            Notification.key == key, Notification.status == CLAIMED).values(
            status=FAILED, lease_until=now or utcnow(), last_error=reason[:REASON_MAX]))


def deliver(sessions: sessionmaker[Session], key: str, send: Callable[[], str | None], *,
            kind: str, team_id: str, target: str | None = None, now: datetime | None = None,
            lease: timedelta = DEFAULT_LEASE,
            diagnose: Callable[[Exception], Diagnosis] = diagnose) -> bool:
    """Claim, send, mark. Returns whether this call sent it.

    ``send`` returns the Slack message ts (or None). If it raises, ``diagnose`` decides:
    transient, or unknown before ``MAX_ATTEMPTS``: the claim is released for the next
    pass and the error propagates to the caller to log. Permanent, or unknown at the
    last attempt: the key is made final, the failure logged once, and :class:`GaveUp`
    raised (from the error).
    """
    claimed = claim(sessions, key, kind=kind, team_id=team_id, target=target, now=now,
                    lease=lease)
    if claimed is None:
        return False
    try:
        message_ts = send()
    except Exception as error:
        found = diagnose(error)
        if found.kind == ErrorKind.TRANSIENT or (
                found.kind == ErrorKind.UNKNOWN and claimed.attempt < MAX_ATTEMPTS):
            mark_failed(sessions, key, found.reason, now=now)
            raise
        reason = (found.reason if found.kind == ErrorKind.PERMANENT
                  else f"{found.reason} (attempt {claimed.attempt} of {MAX_ATTEMPTS})")
        give_up(sessions, key, reason, now=now)
        log.warning("%s %s was not sent and will not be retried: %s", kind, key, reason)
        raise GaveUp(key, reason) from error
    mark_sent(sessions, key, message_ts=message_ts, now=now)
    return True
