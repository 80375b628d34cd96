"""The root-cause conversation in a trigger point's thread (docs/reference/workflow.md, slack.md).

Everything said there is kept as :class:`RootCauseNote` rows, one per Slack message
(unique on ``(trigger_point_id, message_ts)``), so a redelivered event is stored once.
Two kinds of rows use reserved ``message_ts`` values instead of a Slack ts:

- ``"prompt"``: the discussion prompt has been posted (claimed *before* posting, so two
  clicks on "Discuss root cause" never post it twice);
- ``"category:<user>"``: that person's choice of root-cause category (their latest one).

Every lookup takes the caller's ``team_id``: an id from another workspace is not found.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from sop_core.db import insert_ignore, upsert
from sop_core.models import RootCauseNote, RootCauseRevision, TriggerPoint, utcnow
from sop_core.services.triggers import NotFound, by_thread, get

CATEGORIES: dict[str, str] = {
    "demand": "Demand",
    "price": "Price",
    "mix": "Mix",
    "promotion": "Promotion",
    "competition": "Competition",
    "supply_constraint": "Supply constraint",
    "new_product_timing": "New product / timing",
    "execution": "Execution",
    "forecast_bias": "Forecast bias / overrides",
    "data_quality": "Data quality",
    "external": "External",
    "other": "Other",
}
QUESTIONS = (
    "What is really driving the deviation?",
    "What new levers could we activate?",
    "What would it take to exceed, not just meet, the target?",
)
PROMPT_TS = "prompt"
CATEGORY_TS = "category:"
SUMMARY_MAX = 3000  # what the confirmation modal's summary field accepts
_SLACK_TS = re.compile(r"^\d+\.\d+$")


class UnknownCategory(ValueError):
    pass


class NotPosted(LookupError):
    """The trigger point's message is not in Slack (yet), so it has no thread."""


@dataclass(frozen=True)
class PointInfo:
    """What the thread builders need to know about a trigger point."""

    id: int
    team_id: str
    channel_id: str
    message_ts: str
    scope: dict[str, list[str]]
    metric: str
    horizon: str
    gap: float
    gap_pct: float | None
    root_cause_category: str | None
    root_cause_summary: str | None
    confirmed_by: str | None
    confirmed_at: datetime | None

    @classmethod
    def of(cls, point: TriggerPoint) -> PointInfo:
        if point.message_ts is None:
            raise NotPosted(f"trigger point {point.id} has no message yet")
        return cls(id=point.id, team_id=point.team_id, channel_id=point.channel_id,
                   message_ts=point.message_ts, scope=point.scope, metric=point.metric,
                   horizon=point.horizon, gap=point.gap, gap_pct=point.gap_pct,
                   root_cause_category=point.root_cause_category,
                   root_cause_summary=point.root_cause_summary,
                   confirmed_by=point.root_cause_confirmed_by,
                   confirmed_at=point.root_cause_confirmed_at)


def category_label(category: str | None) -> str:
    return CATEGORIES.get(category or "", category or "uncategorised")


def check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise UnknownCategory(f"“{category}” is not a root-cause category")
    return category


def point_info(sessions: sessionmaker[Session], team_id: str, point_id: int) -> PointInfo:
    with sessions() as session:
        return PointInfo.of(get(session, team_id, point_id))


# --------------------------------------------------------------------------------------
# Idempotent writes, on SQLite and PostgreSQL
# --------------------------------------------------------------------------------------

_KEY = ("trigger_point_id", "message_ts")


def _insert_once(session: Session, **values: Any) -> bool:
    """Insert a note unless one with the same (trigger point, ts) exists; True if new."""
    values.setdefault("created_at", utcnow())
    return insert_ignore(session, RootCauseNote, _KEY, **values)


def _upsert(session: Session, *, update: tuple[str, ...], **values: Any) -> None:
    """Insert a note, or update ``update`` columns of the one with the same key."""
    values.setdefault("created_at", utcnow())
    upsert(session, RootCauseNote, _KEY, update, **values)


# --------------------------------------------------------------------------------------
# The conversation
# --------------------------------------------------------------------------------------

def claim_prompt(sessions: sessionmaker[Session], *, team_id: str, point_id: int,
                 user_id: str) -> tuple[PointInfo, bool]:
    """Reserve the right to post the discussion prompt: (point, True) the first time only."""
    with sessions.begin() as session:
        point = PointInfo.of(get(session, team_id, point_id))
        claimed = _insert_once(session, trigger_point_id=point.id, team_id=team_id,
                               user_id=user_id, message_ts=PROMPT_TS, text="")
    return point, claimed


def release_prompt(sessions: sessionmaker[Session], *, point_id: int) -> None:
    """The prompt could not be posted: let the next click try again."""
    with sessions.begin() as session:
        session.execute(delete(RootCauseNote).where(RootCauseNote.trigger_point_id == point_id,
                                                    RootCauseNote.message_ts == PROMPT_TS))


def record_reply(sessions: sessionmaker[Session], *, team_id: str, channel_id: str,
                 thread_ts: str, message_ts: str, user_id: str, text: str) -> bool | None:
    """Keep a reply in a trigger point's thread: True if new, False if already kept (a
    redelivery), None when the thread is not a trigger point's in this workspace."""
    if not _SLACK_TS.match(message_ts):
        return None  # never collides with the reserved keys
    with sessions.begin() as session:
        point = by_thread(session, team_id, channel_id, thread_ts)
        if point is None:
            return None
        return _insert_once(session, trigger_point_id=point.id, team_id=team_id,
                            user_id=user_id, message_ts=message_ts, text=text)


def choose_category(sessions: sessionmaker[Session], *, team_id: str, point_id: int,
                    user_id: str, category: str) -> PointInfo:
    """Record (or change) this person's view of the root-cause category."""
    check_category(category)
    with sessions.begin() as session:
        point = PointInfo.of(get(session, team_id, point_id))
        _upsert(session, update=("category", "text", "created_at"),
                trigger_point_id=point.id, team_id=team_id, user_id=user_id,
                message_ts=CATEGORY_TS + user_id, text=category_label(category),
                category=category)
    return point


def confirm(sessions: sessionmaker[Session], *, team_id: str, point_id: int, user_id: str,
            category: str, summary: str, now: datetime | None = None) -> PointInfo:
    """The team's conclusion: stored on the trigger point. Replacing one keeps the
    earlier version (with its author and time) as a revision."""
    check_category(category)
    with sessions.begin() as session:
        point = get(session, team_id, point_id)
        if point.root_cause_category is not None:
            session.add(RootCauseRevision(
                trigger_point_id=point.id, team_id=point.team_id,
                category=point.root_cause_category, summary=point.root_cause_summary,
                confirmed_by=point.root_cause_confirmed_by,
                confirmed_at=point.root_cause_confirmed_at, replaced_by=user_id,
                replaced_at=now or utcnow()))
        point.root_cause_category = category
        point.root_cause_summary = summary.strip()
        point.root_cause_confirmed_by = user_id
        point.root_cause_confirmed_at = now or utcnow()
        session.flush()
        return PointInfo.of(point)


# --------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vote:
    category: str
    voters: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.voters)


@dataclass(frozen=True)
class Contributor:
    user_id: str
    points: tuple[str, ...]  # their replies, oldest first
    category: str | None  # their category choice, if any


@dataclass(frozen=True)
class Summary:
    point: PointInfo
    votes: tuple[Vote, ...]  # most votes first
    contributors: tuple[Contributor, ...]  # most points first
    replies: int

    @property
    def leading_category(self) -> str | None:
        """The most chosen category (ties: the earlier in the list of categories)."""
        return self.votes[0].category if self.votes else None

    @property
    def empty(self) -> bool:
        return not self.votes and not self.replies


def summarize(sessions: sessionmaker[Session], *, team_id: str, point_id: int) -> Summary:
    with sessions() as session:
        point = PointInfo.of(get(session, team_id, point_id))
        notes = session.scalars(select(RootCauseNote).where(
            RootCauseNote.trigger_point_id == point.id).order_by(RootCauseNote.id)).all()
    return build_summary(point, [(n.user_id, n.message_ts, n.text, n.category) for n in notes])


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, fraction = ts.partition(".")
    return int(seconds), int(fraction.ljust(6, "0")[:6])


def build_summary(point: PointInfo, notes: list[tuple[str, str, str, str | None]]) -> Summary:
    """Notes as (user, ts, text, category) → votes and contributors. Replies are taken in
    the order they were posted in Slack (their ts), whatever order they were stored in."""
    choices: dict[str, str] = {}
    for user, ts, _text, category in notes:
        if ts.startswith(CATEGORY_TS) and category:
            choices[user] = category
    said = sorted(((user, ts, text.strip()) for user, ts, text, _ in notes
                   if _SLACK_TS.match(ts) and text.strip()), key=lambda n: _ts_key(n[1]))
    points: dict[str, list[str]] = {}
    for user, _ts, text in said:
        points.setdefault(user, []).append(text)
    order = list(dict.fromkeys([*points, *choices]))  # first to speak first, then voters
    rank = {name: index for index, name in enumerate(CATEGORIES)}
    tally = Counter(choices.values())
    votes = tuple(Vote(category, tuple(u for u in order if choices.get(u) == category))
                  for category in sorted(tally, key=lambda c: (-tally[c], rank.get(c, 99), c)))
    contributors = tuple(sorted(
        (Contributor(u, tuple(points.get(u, [])), choices.get(u)) for u in order),
        key=lambda c: (-len(c.points), order.index(c.user_id))))
    return Summary(point, votes, contributors, len(said))


def draft(summary: Summary, limit: int = SUMMARY_MAX) -> str:
    """Plain text to start the confirmation from: the leading causes and the points made."""
    lines: list[str] = []
    if summary.votes:
        lines.append("Causes chosen: " + ", ".join(
            f"{category_label(v.category)} ({v.count})" for v in summary.votes) + ".")
    said = [text for c in summary.contributors for text in c.points]
    if said:
        lines.append("Points raised:")
        lines += [f"- {' '.join(text.split())}" for text in said]
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


__all__ = [
    "CATEGORIES", "QUESTIONS", "NotFound", "NotPosted", "PointInfo", "Summary",
    "UnknownCategory", "build_summary", "category_label", "choose_category", "claim_prompt",
    "confirm", "draft", "point_info", "record_reply", "release_prompt", "summarize",
]
