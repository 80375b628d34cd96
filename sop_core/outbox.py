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

The window in which a message can be sent twice: Slack carried out a send whose answer
never reached us, because the sender crashed before ``sent`` was committed (the next
pass re-sends once the lease expires) or because the request timed out, or failed with
a 5xx, after Slack had taken it (the next pass re-sends at once). A sender that can look
in Slack for its earlier message closes it (``deliver``'s ``find_sent``: a channel's
digest, an escalation in a thread, by the key in their metadata; bot/earlier_posts.py);
for direct messages it stays at-least-once, documented. Everywhere else it is exactly
once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from threading import Lock

from sqlalchemy import String, any_, bindparam, select, update
from sqlalchemy.dialects import postgresql
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
    since: datetime  # the key's first claim: an earlier attempt's message is not older


# A sweep looks up some 50,000 keys. Bound at execution, not built from a list of
# literals (coerced and compiled value by value, most of the time): on PostgreSQL as one
# array parameter, in one statement; elsewhere in lists of SETTLED_CHUNK.
_DONE = Notification.status.in_((SENT, FAILED))
_SETTLED_ANY = select(Notification.key).where(
    Notification.key == any_(bindparam("keys", type_=postgresql.ARRAY(String))), _DONE)
_SETTLED_IN = select(Notification.key).where(
    Notification.key.in_(bindparam("keys", expanding=True)), _DONE)
SETTLED_CHUNK = 900  # keys per statement: under SQLite's oldest limit of 999 variables


class _SettledKeys:
    """Keys this process has seen settled, per database. Settled is final (a sent or
    given-up key is never claimed again), so they can be remembered: a sweep every
    minute then asks the database only about the keys it has not seen settled yet.
    (Housekeeping deletes old records, whose occasions never come back.)"""

    MAX_KEYS = 1_000_000  # about 100 MB at most; past it, start again from the database

    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = {}
        self._lock = Lock()

    def split(self, database: str, keys: Iterable[str]) -> tuple[set[str], list[str]]:
        """(the keys known to be settled, the others in their order)."""
        with self._lock:
            known = self._keys.get(database, set())
            settled, unknown = set(), []
            for key in keys:
                if key in known:
                    settled.add(key)
                else:
                    unknown.append(key)
            return settled, unknown

    def add(self, database: str, keys: set[str]) -> None:
        with self._lock:
            known = self._keys.setdefault(database, set())
            if len(known) + len(keys) > self.MAX_KEYS:
                known.clear()
            known.update(keys)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


_settled_keys = _SettledKeys()


def forget_settled() -> None:
    """Forget the settled keys remembered (tests that reuse a database, emptied)."""
    _settled_keys.clear()


def settled(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of these keys are done with: sent, or given up (to skip them without claiming)."""
    connection = session.connection()
    database = connection.engine.url.render_as_string(hide_password=True)
    found, wanted = _settled_keys.split(database, keys)
    if not wanted:
        return found
    if connection.dialect.name == "postgresql":
        fresh = set(connection.execute(_SETTLED_ANY, {"keys": wanted}).scalars().all())
    else:
        fresh = set()
        for start in range(0, len(wanted), SETTLED_CHUNK):
            fresh.update(connection.execute(
                _SETTLED_IN, {"keys": wanted[start : start + SETTLED_CHUNK]}).scalars().all())
    _settled_keys.add(database, fresh)
    return found | fresh


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
        return Claim(key, kind, team_id, 1, since=now)
    except IntegrityError:
        pass  # the key exists: sent, held by a live sender, or left by a dead one
    with sessions.begin() as session:
        # One UPDATE: the row lock makes a concurrent taker re-check the condition.
        # (claimed_at stays the first claim's: where a look for an earlier send starts.)
        taken = session.execute(
            update(Notification)
            .where(Notification.key == key, Notification.status == CLAIMED,
                   Notification.lease_until <= now)
            .values(lease_until=now + lease, attempts=Notification.attempts + 1)
            .returning(Notification.attempts, Notification.claimed_at)
        ).first()
    if taken is None:
        return None
    attempt, first_claimed = taken
    log.info("taking over an expired claim for %s (attempt %d)", key, attempt)
    return Claim(key, kind, team_id, int(attempt), since=first_claimed)


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
            diagnose: Callable[[Exception], Diagnosis] = diagnose,
            find_sent: Callable[[datetime], str | None] | None = None) -> bool:
    """Claim, send, mark. Returns whether this call sent it (or found it sent).

    ``send`` returns the Slack message ts (or None). A key claimed again (an earlier
    attempt failed or never finished) is first looked for with ``find_sent``, if given:
    the ts of the message an earlier attempt got to Slack since the key's first claim,
    or None; found, it is not sent again. If either raises, ``diagnose`` decides:
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
        message_ts = None
        if find_sent is not None and claimed.attempt > 1:
            message_ts = find_sent(claimed.since)
            if message_ts is not None:
                log.info("%s %s: an earlier attempt's message %s is in Slack; not sent "
                         "again", kind, key, message_ts)
        if message_ts is None:
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
