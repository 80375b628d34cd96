"""What Slack said about channels and people, kept in the database for a while, for every
process of the app (the web workers, the clock) and across restarts. ``bot/directory.py``
asks Slack and keeps its answers here; the visibility rule is built from them.

In the database rather than in each process, for two reasons:

- **A change reaches every process at once.** When Slack announces one (someone left a
  private channel, a channel was shared with another organisation), the process that
  receives the event drops the answers for all. With a copy in each process, the other
  web workers and the clock went on showing what the change should hide until their
  copy expired (a person's channels: a minute; a channel's kind: five).
- **A restart asks Slack nothing new.** A restarted worker finds what its predecessor
  was told, instead of asking Slack again before its first post in each channel (a round
  trip to Slack, and ``conversations.info``'s rate limit per channel).

An answer asked before a change was announced, and stored after it, would outlive the
change: each change is recorded with its time (``slack_changes``), and an answer whose
question is not newer than the change is dropped again (:meth:`KeptAnswers.put`). Times
are wall-clock seconds: the processes may run on several hosts, whose clocks are kept in
sync.

Sessions that commit each statement on their own are the ones to give (no BEGIN and
COMMIT around a read): the order of the statements is what keeps a stale answer out,
not a transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from sop_core.db import upsert
from sop_core.models import SlackAnswer, SlackChange

CHANNEL, PERSON = "channel", "user"  # the kinds of subject: a channel's facts, a person's channels
EVERY = "*"  # the subject of a change to every subject of its kind (every person's channels)
# How long a change is remembered (housekeeping prunes older ones): far longer than any
# question to Slack can wait for its answer.
CHANGE_RETENTION_SECONDS = 3600.0
_CHUNK = 500  # subjects a query asks for at once (well under any driver's parameter limit)


class KeptAnswers:
    """Slack's answers by (scope, kind, subject), each until it expires or a change drops it.
    ``scope``: the Slack API and the token's hash, never the token."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, scope: str, kind: str, subjects: Iterable[str], *,
            now: float) -> dict[str, Any]:
        """The answers still fresh, by subject; a subject with none is missing (an answer
        may itself be None: Slack said there is no such channel)."""
        wanted = sorted(set(subjects))
        found: dict[str, Any] = {}
        with self._sessions() as session:
            for start in range(0, len(wanted), _CHUNK):
                found.update(session.execute(
                    select(SlackAnswer.subject, SlackAnswer.answer).where(
                        SlackAnswer.scope == scope, SlackAnswer.kind == kind,
                        SlackAnswer.subject.in_(wanted[start:start + _CHUNK]),
                        SlackAnswer.expires_at > now)).all())
        return found

    def put(self, scope: str, kind: str, subject: str, answer: Any, *, asked_at: float,
            expires_at: float) -> bool:
        """Keep Slack's answer to a question sent at ``asked_at``; False (nothing kept)
        when a change of the subject was announced since."""
        with self._sessions() as session:
            upsert(session, SlackAnswer, ("scope", "kind", "subject"),
                   ("answer", "asked_at", "expires_at"), scope=scope, kind=kind,
                   subject=subject, answer=answer, asked_at=asked_at, expires_at=expires_at)
            # After the write, not before: a change recorded in between is seen here, and
            # one recorded later deletes this row itself (forget).
            changed = session.scalar(select(SlackChange.changed_at).where(
                SlackChange.kind == kind, SlackChange.subject.in_((subject, EVERY)),
                SlackChange.changed_at >= asked_at).limit(1))
            if changed is not None:
                session.execute(delete(SlackAnswer).where(
                    SlackAnswer.scope == scope, SlackAnswer.kind == kind,
                    SlackAnswer.subject == subject, SlackAnswer.asked_at <= changed))
            session.commit()
            return changed is None

    def forget(self, kind: str, subject: str, *, now: float) -> None:
        """Slack announced a change of ``subject`` (``EVERY``: of every subject of the
        kind): drop its answers, for every scope, and any answer asked before ``now``
        that is stored later."""
        with self._sessions() as session:
            upsert(session, SlackChange, ("kind", "subject"), ("changed_at",), kind=kind,
                   subject=subject, changed_at=now)
            dropped = delete(SlackAnswer).where(SlackAnswer.kind == kind)
            if subject != EVERY:
                dropped = dropped.where(SlackAnswer.subject == subject)
            session.execute(dropped)
            session.commit()

    def forget_everything(self) -> None:
        with self._sessions() as session:
            session.execute(delete(SlackAnswer))
            session.execute(delete(SlackChange))
            session.commit()
