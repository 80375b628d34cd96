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

:class:`AnswersInMemory` keeps the same rules in one process (tests, a tool without the
app's database). In the database, each statement commits on its own (no BEGIN and COMMIT
around a read, and the order of the statements, not a transaction, keeps a stale answer
out). They are Core statements built once: a post in a channel the bot was never asked
about reads and keeps an answer on the command's path, and through an ORM session that
cost three times the CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, select

from sop_core.db import upsert
from sop_core.models import SlackAnswer, SlackChange

CHANNEL, PERSON = "channel", "user"  # the kinds of subject: a channel's facts, a person's channels
EVERY = "*"  # the subject of a change to every subject of its kind (every person's channels)
# How long a change is remembered (housekeeping prunes older ones): far longer than any
# question to Slack can wait for its answer.
CHANGE_RETENTION_SECONDS = 3600.0
_CHUNK = 500  # subjects a query asks for at once (well under any driver's parameter limit)

_answers, _changes = SlackAnswer.__table__, SlackChange.__table__  # type: ignore[attr-defined]
_FRESH = select(_answers.c.subject, _answers.c.answer).where(
    _answers.c.scope == bindparam("scope"), _answers.c.kind == bindparam("kind"),
    _answers.c.subject.in_(bindparam("subjects", expanding=True)),
    _answers.c.expires_at > bindparam("now"))
_CHANGED_SINCE = select(_changes.c.changed_at).where(
    _changes.c.kind == bindparam("kind"),
    _changes.c.subject.in_(bindparam("subjects", expanding=True)),
    _changes.c.changed_at >= bindparam("asked_at")).limit(1)
_DROP_ASKED_BEFORE = delete(_answers).where(
    _answers.c.scope == bindparam("scope"), _answers.c.kind == bindparam("kind"),
    _answers.c.subject == bindparam("subject"), _answers.c.asked_at <= bindparam("changed_at"))


class KeptAnswers:
    """Slack's answers by (scope, kind, subject), each until it expires or a change drops it.
    ``scope``: the Slack API and the token's hash, never the token. ``engine``: the app's
    database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    def get(self, scope: str, kind: str, subjects: Iterable[str], *,
            now: float) -> dict[str, Any]:
        """The answers still fresh, by subject; a subject with none is missing (an answer
        may itself be None: Slack said there is no such channel)."""
        with self._engine.connect() as connection:
            return _fresh(connection, scope, kind, subjects, now=now)

    def put(self, scope: str, kind: str, subject: str, answer: Any, *, asked_at: float,
            expires_at: float) -> bool:
        """Keep Slack's answer to a question sent at ``asked_at``; False (nothing kept)
        when a change of the subject was announced since."""
        with self._engine.connect() as connection:
            return _keep(connection, scope, kind, subject, answer, asked_at=asked_at,
                         expires_at=expires_at)

    def forget(self, kind: str, subject: str, *, now: float) -> None:
        """Slack announced a change of ``subject`` (``EVERY``: of every subject of the
        kind): drop its answers, for every scope, and any answer asked before ``now``
        that is stored later."""
        with self._engine.connect() as connection:
            upsert(connection, SlackChange, ("kind", "subject"), ("changed_at",), kind=kind,
                   subject=subject, changed_at=now)
            dropped = delete(_answers).where(_answers.c.kind == kind)
            if subject != EVERY:
                dropped = dropped.where(_answers.c.subject == subject)
            connection.execute(dropped)

    def forget_everything(self) -> None:
        with self._engine.connect() as connection:
            connection.execute(delete(_answers))
            connection.execute(delete(_changes))


def _fresh(connection: Connection, scope: str, kind: str, subjects: Iterable[str], *,
           now: float) -> dict[str, Any]:
    wanted = sorted(set(subjects))
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), _CHUNK):
        found.update(connection.execute(_FRESH, {
            "scope": scope, "kind": kind, "subjects": wanted[start:start + _CHUNK],
            "now": now}).all())
    return found


def _keep(connection: Connection, scope: str, kind: str, subject: str, answer: Any, *,
          asked_at: float, expires_at: float) -> bool:
    upsert(connection, SlackAnswer, ("scope", "kind", "subject"),
           ("answer", "asked_at", "expires_at"), scope=scope, kind=kind,
           subject=subject, answer=answer, asked_at=asked_at, expires_at=expires_at)
    # After the write, not before: a change recorded in between is seen here, and one
    # recorded later deletes this row itself (forget).
    changed = connection.execute(_CHANGED_SINCE, {
        "kind": kind, "subjects": [subject, EVERY], "asked_at": asked_at}).scalar()
    if changed is not None:
        connection.execute(_DROP_ASKED_BEFORE, {
            "scope": scope, "kind": kind, "subject": subject, "changed_at": changed})
    return changed is None


def rehearse(connection: Connection) -> None:
    """A first post's reads and writes of kept answers, on ``connection`` (in a
    transaction its caller rolls back), so that a web worker compiles their SQL before
    its first command (sop_core/warmup.py): the first command after a restart compiled
    three statements, a millisecond or more of its wait."""
    _keep(connection, "warm-up", CHANNEL, "WARMUP", None, asked_at=0.0, expires_at=0.0)
    _fresh(connection, "warm-up", CHANNEL, ["WARMUP"], now=0.0)


class AnswersInMemory:
    """:class:`KeptAnswers`' rules in this process only (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str, str], tuple[Any, float, float]] = {}
        self._changes: dict[tuple[str, str], float] = {}

    def get(self, scope: str, kind: str, subjects: Iterable[str], *,
            now: float) -> dict[str, Any]:
        found: dict[str, Any] = {}
        with self._lock:
            for subject in subjects:
                key = (scope, kind, subject)
                kept = self._answers.get(key)
                if kept is not None and kept[2] <= now:
                    del self._answers[key]  # expired: no housekeeping prunes this process
                elif kept is not None:
                    found[subject] = kept[0]
        return found

    def put(self, scope: str, kind: str, subject: str, answer: Any, *, asked_at: float,
            expires_at: float) -> bool:
        with self._lock:
            changed = max(self._changes.get((kind, s), float("-inf")) for s in (subject, EVERY))
            if changed >= asked_at:
                return False
            self._answers[(scope, kind, subject)] = (answer, asked_at, expires_at)
            return True

    def forget(self, kind: str, subject: str, *, now: float) -> None:
        with self._lock:
            self._changes[(kind, subject)] = now
            for key in [k for k in self._answers
                        if k[1] == kind and (subject == EVERY or k[2] == subject)]:
                del self._answers[key]

    def forget_everything(self) -> None:
        with self._lock:
            self._answers.clear()
            self._changes.clear()
