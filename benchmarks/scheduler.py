"""The nudge sweep at scale: deciding what is due, and sending it through FakeSlack.

``python -m benchmarks.scheduler`` (100,000 open actions, 300,000 milestones, SQLite file),
``--quick`` (10,000 actions, 200 nudges: does it run?), ``--actions 50000`` (milestones
follow at 3 per action unless ``--milestones``), ``--postgres
postgresql://postgres@127.0.0.1:5432/postgres`` (on PostgreSQL instead: a database is
created on that server for the run and dropped after it). Run it from the repository
root. Figures go to stdout, progress to stderr; nothing is asserted (shared machine).

What happens, on a fresh database built by the real migrations (``sop_core.db``):

1. **Data**, bulk-inserted with SQLAlchemy Core (``insert(table)`` + a list of rows:
   executemany, insertmanyvalues on PostgreSQL), timed apart from everything else.
   Three workspaces, installed through slack_sdk's SQLAlchemy installation store as an
   OAuth deployment does (so the clock looks up each workspace's bot token); owners in 13
   time zones, their zones cached in ``slack_users`` as the clock would have left them
   (1 % have left the workspace); gap channels with trigger points, whose threads get
   the escalations. ``--actions`` open actions (3 % snoozed) with due dates from 60
   days ago to 180 days ahead (15 % overdue), plus a quarter as many closed ones with
   their milestones (history the sweep must skip); ``--milestones`` milestones on the
   open actions, each before its action's due date, past ones mostly done. The outbox
   holds two older sent nudges per action (history the unique index carries).
   ``now`` is Wednesday 2026-12-09 08:00:30 UTC = 09:00:30 in Paris and Berlin: the
   minute the clock sends Central Europe's morning nudges, the busiest kind of minute.
2. **Deciding** (goal < 0.3 s for the running clock's minute sweep, < 1 s for a full
   one): ``sop_core.services.followup.due_nudges`` — what
   ``bot/jobs/nudges.py`` calls on every sweep — median of ``--repeat`` runs after one
   warm-up, in two states of the outbox: *catch-up* (none of the current occasions sent:
   a first deployment, or the clock back after a long outage; every open item with a
   passed occasion is due) and *steady state* (the previous sweep, a minute earlier,
   sent everything due then; what is due is what became due at 09:00 in Central
   Europe). Reference, same run: the very item queries ``due_nudges`` sent (captured
   from the engine) replayed on the raw DBAPI cursor, fetching the same rows; the ratio
   is the cost of everything that is not the database. For information: all its
   statements replayed (the item queries plus the outbox look-ups, 500 keys each), and
   ``users_to_refresh``, which the job runs before ``due_nudges`` on every sweep.
   Those two states are full sweeps with no next nudge day stored yet (a clock's first
   pass after the migration). Then the **running clock**: a full sweep a minute earlier
   stored every item's next nudge day (committed); measured in that state, the minute
   sweep (``full=False``: only items whose day has come) against the hourly full sweep
   (the safety net). Each measured run's own writes are rolled back.
3. **Sending** ``--send`` nudges (default 1,000): the outbox is arranged so that exactly
   the first ``--send`` of the steady-state wave are due; then the clock's own job runs,
   ``bot.clock.run_job(settings, "nudges", now)`` (refresh owners' zones → due_nudges →
   per nudge: claim in the outbox, render the card, chat.postMessage, mark sent),
   against FakeSlack (``tests/fakeslack``) with its per-channel limit on
   (``rate_limit_chat_per_channel``: one chat.postMessage per channel per second, else
   429 with ``Retry-After: 1``; slack_sdk's retry handler, as ``bot.slack_client``
   configures it, sleeps Retry-After + up to 1 s and tries again, up to 3 times).
   Reference, same run: the same nudges with the limit off (what sending costs without
   waiting). Checked every time: exactly ``--send`` posts accepted, each one's ts
   recorded on exactly one of the chosen outbox keys, to the expected channel and
   thread, in the expected workspace, naming the right action; nothing left claimed; a
   second pass sends nothing; no FakeSlack violations. 429s are counted, and whether
   each was retried and the retry came at least Retry-After later. FakeSlack's limit is
   Slack-like per channel but stricter on bursts (Slack tolerates short ones, the fake
   none) and it has no workspace-wide cap on chat.postMessage, nor any limit on other
   methods (users.info included).
4. **Zone refresh** (information): the clock refreshes owners' cached time zones once
   a day, with one ``users.info`` per owner, before any nudge; owners cached at the
   same time expire together, so the refresh comes in one burst. Timed for every owner
   against FakeSlack, which does not rate-limit ``users.info`` (Slack: Tier 4, 100+/min).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from cryptography.fernet import Fernet
from sqlalchemy import delete, event, func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.common import git_revision, loadavg, machine, postgres_database

T = TypeVar("T")

SEED = 20261209
# Wednesday 9 December 2026, 08:00:30 UTC = 09:00:30 in Paris and Berlin (CET).
NOW = datetime(2026, 12, 9, 8, 0, 30, tzinfo=UTC)
PREVIOUS_SWEEP = NOW - timedelta(minutes=1)
TODAY = NOW.date()
# Owners' zones and their weights (a European-led company with teams on every continent).
ZONES = {"Europe/Paris": 18, "Europe/Berlin": 10, "Europe/London": 12,
         "America/New_York": 15, "America/Chicago": 8, "America/Los_Angeles": 6,
         "America/Sao_Paulo": 5, "Africa/Johannesburg": 3, "Asia/Dubai": 3,
         "Asia/Kolkata": 7, "Asia/Singapore": 6, "Asia/Tokyo": 4, "Australia/Sydney": 3}
# Workspaces (team id → share of the owners); each is an OAuth installation.
WORKSPACES = {"T0BENCH1": 0.6, "T0BENCH2": 0.3, "T0BENCH3": 0.1}
CLIENT_ID = "111.222"
BATCH = 10_000  # rows per executemany
DUE_GOAL = 0.3  # seconds: the minute sweep of a running clock (README's goal table)
FULL_DUE_GOAL = 1.0  # the hourly full sweep and a clock's first one (the earlier goal)
RETRY_AFTER = 1.0  # what FakeSlack's per-channel limit answers with
QUICK = {"actions": 10_000, "send": 200, "repeat": 3}
MEASURED = ("sop_core/services/followup.py", "sop_core/nudges.py", "sop_core/outbox.py",
            "bot/jobs/nudges.py", "bot/clock.py", "bot/slack_client.py")
ROOT = Path(__file__).resolve().parent.parent


def progress(message: str) -> None:
    sys.stdout.flush()
    print(f"  … {message}", file=sys.stderr, flush=True)


def token(team: str) -> str:
    return f"xoxb-bench-{team.lower()}"


def title(action_id: int) -> str:
    """Unique per action, so that every post names the action it is about."""
    return f"Action A{action_id:07d}: recover the gap"


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------

@dataclass
class Timing:
    runs: list[float] = field(default_factory=list)  # wall-clock seconds
    cpu: list[float] = field(default_factory=list)  # this process (not PostgreSQL's)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def row(self, label: str, extra: str = "") -> str:
        spread = f"{min(self.runs):.3f}–{max(self.runs):.3f}"
        return (f"  {label:<46} {self.median:>8.3f} s  {spread:>13}  "
                f"{statistics.median(self.cpu):>7.3f}  {extra}")


def timed(fn: Callable[[], T], repeat: int, warmup: int = 1) -> tuple[Timing, T]:
    """Median of ``repeat`` runs after ``warmup`` unmeasured ones; the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    timing = Timing()
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        timing.runs.append(time.perf_counter() - started)
        timing.cpu.append(time.process_time() - cpu)
    return timing, result  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# The database
# --------------------------------------------------------------------------------------

@contextlib.contextmanager
def fresh_database(postgres: str | None, workdir: Path) -> Iterator[str]:
    """A SQLite file in ``workdir``, or a new database on the PostgreSQL server of
    ``postgres`` (an admin URL), dropped afterwards; yields its SQLAlchemy URL."""
    from sop_core.db import get_engine, session_factory, upgrade

    if postgres is None:
        url = f"sqlite:///{workdir / 'scheduler.db'}"
        session_factory(url)  # SQLite migrates itself on first use
        yield url
        return
    with postgres_database(postgres, "sopgap_bench_sched") as url:
        try:
            upgrade(url)  # what `sopgap db upgrade` does
            yield url
        finally:
            get_engine(url).dispose()


def analyze(engine: Engine) -> None:
    """PostgreSQL: planner statistics now, as autovacuum would soon after a bulk insert
    (without them the planner takes 100,000-row tables for empty ones). SQLite is left
    as the product leaves it: no ANALYZE."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()


def db_description(engine: Engine) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            version = connection.execute(text("SHOW server_version")).scalar()
            return f"PostgreSQL {version} (psycopg {__import__('psycopg').__version__})"
        version = connection.execute(text("SELECT sqlite_version()")).scalar()
        return f"SQLite {version} (file, WAL)"


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

@dataclass
class Population:
    owners: int = 0
    left: int = 0
    channels: int = 0
    trigger_points: int = 0
    open_actions: int = 0
    snoozed: int = 0
    overdue_actions: int = 0
    closed_actions: int = 0
    milestones: int = 0  # on open actions
    open_milestones: int = 0
    overdue_milestones: int = 0
    closed_milestones: int = 0  # on closed actions
    history: int = 0  # older nudges in the outbox
    seconds: dict[str, float] = field(default_factory=dict)  # table → insert seconds
    rows: dict[str, int] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # for FakeSlack

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def _insert(engine: Engine, table: Any, rows: Sequence[dict[str, Any]]) -> float:
    started = time.perf_counter()
    with engine.begin() as connection:
        for start in range(0, len(rows), BATCH):
            connection.execute(insert(table), rows[start : start + BATCH])
    return time.perf_counter() - started


def _days(offsets: np.ndarray) -> list[date]:
    """Day offsets from TODAY as dates (one date object per distinct offset)."""
    lookup = {int(d): TODAY + timedelta(days=int(d)) for d in np.unique(offsets)}
    return [lookup[int(d)] for d in offsets]


def populate(engine: Engine, *, actions: int, milestones: int, closed: int, owners: int,
             keys: list[str]) -> Population:
    """Seed every table the sweep reads; each table's insert is timed. Installations are
    stored as production stores them: tokens encrypted under ``keys``."""
    from slack_sdk.oauth.installation_store import Installation

    from bot.installations import EncryptedInstallationStore
    from sop_core.models import (
        Action,
        Milestone,
        Notification,
        SlackUser,
        Snapshot,
        Status,
        TriggerPoint,
    )
    from sop_core.nudge_days import NEVER

    rng = np.random.default_rng(SEED)
    pop = Population()
    teams = list(WORKSPACES)
    created = NOW - timedelta(days=150)

    # Workspaces: installed over OAuth; one snapshot each (trigger points refer to one).
    started = time.perf_counter()
    store = EncryptedInstallationStore(client_id=CLIENT_ID, engine=engine, keys=keys)
    for team in teams:
        store.save(Installation(app_id="A0FAKEAPP", team_id=team, team_name=team,
                                bot_token=token(team), bot_id=f"B{team}",
                                bot_user_id=f"U{team}BOT", bot_scopes="chat:write,users:read",
                                user_id=f"U{team}ADMIN", installed_at=created.timestamp()))
    pop.seconds["installations"] = time.perf_counter() - started
    pop.seconds["snapshots"] = _insert(engine, Snapshot, [
        {"id": i + 1, "team_id": team, "source": "benchmark", "as_of": 24322, "rows_read": 0,
         "rows_stored": 0, "rows_merged": 0, "metrics": ["revenue"], "dimensions": [],
         "notes": [], "content_hash": "0" * 64, "loaded_at": created}
        for i, team in enumerate(teams)])

    # Owners: a workspace and a time zone each; their zones cached an hour ago.
    team_of_user = rng.choice(len(teams), owners, p=list(WORKSPACES.values()))
    weights = np.array(list(ZONES.values()), dtype=float)
    zone_of_user = rng.choice(len(ZONES), owners, p=weights / weights.sum())
    left = rng.random(owners) < 0.01
    user_ids = [f"U{t}{i:06d}" for i, t in enumerate(team_of_user)]
    zones = list(ZONES)
    pop.owners, pop.left = owners, int(left.sum())
    pop.users = {u: {"tz": zones[z], "deleted": bool(d), "real_name": f"Owner {u}"}
                 for u, z, d in zip(user_ids, zone_of_user, left, strict=True)}
    pop.seconds["slack_users"] = _insert(engine, SlackUser, [
        {"team_id": teams[t], "user_id": u, "tz": zones[z], "deleted": bool(d),
         "fetched_at": NOW - timedelta(hours=1)}
        for u, t, z, d in zip(user_ids, team_of_user, zone_of_user, left, strict=True)])
    users_of_team = [np.flatnonzero(team_of_user == t) for t in range(len(teams))]

    # Gap channels (about one per 100 owners) and trigger points in them.
    channels_of_team = [[f"C{teams[t][-1]}GAP{k:03d}" for k in
                         range(max(2, len(users_of_team[t]) // 100))] for t in range(len(teams))]
    pop.channels = sum(len(c) for c in channels_of_team)
    points = max(len(teams), actions // 25)
    point_team = [int(t) for t in rng.choice(len(teams), points, p=list(WORKSPACES.values()))]
    point_channel = [channels_of_team[t][int(rng.integers(len(channels_of_team[t])))]
                     for t in point_team]
    points_of_team = [np.flatnonzero(np.array(point_team) == t) for t in range(len(teams))]
    pop.trigger_points = points
    pop.seconds["trigger_points"] = _insert(engine, TriggerPoint, [
        {"id": i + 1, "team_id": teams[t], "channel_id": point_channel[i],
         "message_ts": f"1790000000.{i:06d}", "scope": {"region": ["EU"]},
         "scope_key": f"region=EU#{i}", "metric": "revenue", "horizon": "fy", "by": None,
         "posted_snapshot_id": t + 1, "snapshot_id": t + 1, "as_of": 24322,
         "plan_at_post": 1e6, "gap_at_post": -1e5, "gap_pct_at_post": -10.0, "plan": 1e6,
         "outlook": 9e5, "gap": -1e5, "gap_pct": -10.0, "status": Status.OPEN,
         "created_at": created, "updated_at": created}
        for i, t in enumerate(point_team)])

    # Actions: the open ones first, then the closed history. An owner's actions are in
    # the owner's workspace; the creator is a colleague there; 60 % come from a trigger
    # point of that workspace (its channel and thread), the others sit in one of its
    # gap channels.
    total = actions + closed
    owner = rng.integers(0, owners, total)
    team = team_of_user[owner]
    creator = np.array([users_of_team[t][int(r * len(users_of_team[t]))]
                        for t, r in zip(team, rng.random(total), strict=True)])
    is_open = np.arange(total) < actions
    due = np.where(rng.random(total) < 0.15, rng.integers(-60, 0, total),
                   rng.integers(0, 181, total))
    due = np.where(is_open, due, rng.integers(-200, 1, total))
    snoozed = is_open & (rng.random(total) < 0.03)
    snooze_to = rng.integers(-7, 15, total)
    from_point = rng.random(total) < 0.6
    point_pick = rng.random(total)
    statuses = np.where(is_open, 0, np.where(rng.random(total) < 0.8, 1, 2))
    names = (Status.OPEN, Status.DONE, Status.CANCELLED)
    due_days, snooze_days = _days(due), _days(snooze_to)
    action_rows = []
    for i in range(total):
        t = int(team[i])
        if from_point[i]:
            p = int(points_of_team[t][int(point_pick[i] * len(points_of_team[t]))])
            point_id, channel = p + 1, point_channel[p]
        else:
            point_id = None
            channel = channels_of_team[t][int(point_pick[i] * len(channels_of_team[t]))]
        action_rows.append({
            "id": i + 1, "team_id": teams[t], "trigger_point_id": point_id,
            "channel_id": channel, "title": title(i + 1), "owner_id": user_ids[int(owner[i])],
            "creator_id": user_ids[int(creator[i])], "metric_name": "revenue", "baseline": 100.0,
            "target": 120.0, "expected_impact": 50_000.0, "due_date": due_days[i],
            "status": names[int(statuses[i])],
            "snoozed_until": snooze_days[i] if snoozed[i] else None,
            # As the app leaves them: closed ones never read again, open ones not
            # worked out yet (sop_core/nudge_days.py).
            "next_nudge_day": None if is_open[i] else NEVER,
            "created_at": created, "updated_at": created,
            "completed_at": None if is_open[i] else NOW - timedelta(days=3)})
    pop.open_actions, pop.closed_actions = actions, closed
    pop.snoozed = int(snoozed.sum())
    pop.overdue_actions = int(np.sum(is_open & (due < 0)))
    pop.seconds["actions"] = _insert(engine, Action, action_rows)
    del action_rows

    # Milestones: on open actions (a Poisson-like 0–9 each) and three on each closed
    # one; sorted by action, as they are created with it. Each falls up to 90 days
    # before its action's due date (never before creation); past ones are mostly done.
    of_action = np.sort(np.concatenate([
        rng.integers(0, actions, milestones),
        np.repeat(np.arange(actions, total), 3)]))
    count = len(of_action)
    m_due = np.maximum(due[of_action] - rng.integers(0, 91, count), -150)
    on_open = of_action < actions
    done = np.where(m_due < 0, rng.random(count) < 0.75, rng.random(count) < 0.03)
    done |= ~on_open
    step = np.zeros(count, dtype=int)
    step[1:] = np.where(of_action[1:] == of_action[:-1], 1, 0)
    for k in range(1, count):  # position within its action: "Step 1", "Step 2", ...
        if step[k]:
            step[k] = step[k - 1] + 1
    m_days = _days(m_due)
    done_at = NOW - timedelta(days=2)
    milestone_rows = [{
        "id": j + 1, "action_id": int(a) + 1, "name": f"Step {s + 1}", "due_date": d,
        "done_at": done_at if f else None, "done_by": user_ids[int(owner[a])] if f else None,
        "next_nudge_day": NEVER if f else None}
        for j, (a, s, d, f) in enumerate(zip(of_action, step, m_days, done, strict=True))]
    pop.milestones = int(on_open.sum())
    pop.closed_milestones = count - pop.milestones
    pop.open_milestones = int(np.sum(on_open & ~done))
    pop.overdue_milestones = int(np.sum(on_open & ~done & (m_due < 0)))
    pop.seconds["milestones"] = _insert(engine, Milestone, milestone_rows)
    del milestone_rows

    # Outbox history: two older nudges per action (its milestones' or due date's
    # "before" occasions, long past), so that the unique index the sweep probes has
    # the size of a few months of sending. None of them is a current occasion.
    history = []
    for i in range(total):
        day = min(TODAY - timedelta(days=30), due_days[i])
        for kind, back in (("before_3", 3), ("before_1", 1)):
            history.append({"key": f"nudge:{i + 1}:due:{kind}:{day - timedelta(days=back)}",
                            "kind": "nudge", "team_id": teams[int(team[i])], "status": "sent",
                            "attempts": 1, "claimed_at": NOW - timedelta(days=30),
                            "lease_until": NOW - timedelta(days=30),
                            "sent_at": NOW - timedelta(days=30),
                            "target": user_ids[int(owner[i])],
                            "message_ts": f"1780000000.{2 * i + back:07d}"})
    pop.history = len(history)
    pop.seconds["notifications"] = _insert(engine, Notification, history)
    _reset_sequences(engine)
    started = time.perf_counter()
    analyze(engine)
    if engine.dialect.name == "postgresql":
        pop.seconds["ANALYZE"] = time.perf_counter() - started
    pop.rows = {"installations": len(teams), "snapshots": len(teams),
                "slack_users": owners, "trigger_points": points, "actions": total,
                "milestones": count, "notifications": pop.history}
    return pop


def _reset_sequences(engine: Engine) -> None:
    """Explicit ids leave PostgreSQL's sequences behind: move them past the rows."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        for table in ("snapshots", "trigger_points", "actions", "milestones",
                      "notifications"):
            connection.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))


# --------------------------------------------------------------------------------------
# The outbox's state
# --------------------------------------------------------------------------------------

def set_outbox(engine: Engine, sent_keys: Sequence[str]) -> None:
    """Forget every nudge of the last day (the history stays), then record ``sent_keys``
    as sent by the previous sweep."""
    from sop_core.models import Action, Milestone, Notification
    from sop_core.nudge_days import NEVER

    recent = NOW - timedelta(days=1)
    with engine.begin() as connection:
        connection.execute(delete(Notification).where(Notification.claimed_at > recent))
        # The next nudge days the sweeps stored follow from that history: forgotten too.
        for table in (Action, Milestone):
            connection.execute(update(table).where(table.next_nudge_day != NEVER)
                               .values(next_nudge_day=None))
        rows = [{"key": key, "kind": "nudge", "team_id": "", "status": "sent", "attempts": 1,
                 "claimed_at": PREVIOUS_SWEEP, "lease_until": PREVIOUS_SWEEP,
                 "sent_at": PREVIOUS_SWEEP} for key in sent_keys]
        for start in range(0, len(rows), BATCH):
            connection.execute(insert(Notification), rows[start : start + BATCH])
    analyze(engine)
    # History rewritten (never done outside a benchmark): what a process remembers of it
    # is no longer true.
    from sop_core import outbox

    outbox.forget_settled()


# --------------------------------------------------------------------------------------
# Deciding what is due
# --------------------------------------------------------------------------------------

@dataclass
class Decision:
    label: str
    due: int
    item_rows: int  # rows the item queries return
    statements: int  # SQL statements due_nudges sent (cold)
    cold: Timing  # the first sweep of a clock process: no settled key remembered yet
    sopgap: Timing  # every later sweep of the process (it remembers settled keys)
    sql_items: Timing  # reference: the item queries alone, raw DBAPI
    sql_all: Timing  # every statement it sent, raw DBAPI (information)
    refresh_check: Timing  # users_to_refresh: the job runs it first on every sweep
    reference: Timing | None = None  # the full sweep in the same state (minute sweep)


def capture_statements(engine: Engine, fn: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The SQL and DBAPI parameters that ``fn`` sends through ``engine``."""
    captured: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return captured


def replay(engine: Engine, statements: list[tuple[str, Any]]) -> int:
    """Run the statements on a raw DBAPI cursor, fetching every row; the row count."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        rows = 0
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue  # the sweep's writes of next nudge days: not a read to replay
            cursor.execute(statement, parameters)
            rows += len(cursor.fetchall())
        cursor.close()
        raw.rollback()
        return rows
    finally:
        raw.close()


def measure_decision(label: str, engine: Engine, sessions: sessionmaker[Session],
                     settings: Any, repeat: int, *, full: bool = True
                     ) -> tuple[Decision, list[Any]]:
    """``full``: the hourly sweep (every open item near its due date); else the minute
    sweep (only items whose stored next nudge day has come). Each run's writes (the
    next nudge days of items with nothing to send) are rolled back, so every run does
    the same work."""
    from sop_core import outbox
    from sop_core.services.followup import due_nudges, users_to_refresh

    def run() -> list[Any]:
        with sessions() as session:
            return due_nudges(session, settings, NOW, full=full)

    def run_cold() -> list[Any]:
        outbox.forget_settled()
        return run()

    def refresh_check() -> list[tuple[str, str]]:
        with sessions() as session:
            return users_to_refresh(session, NOW)

    cold, _ = timed(run_cold, repeat)
    sopgap, tasks = timed(run, repeat)
    statements = capture_statements(engine, run_cold)
    items = [s for s in statements if "FROM actions" in s[0]]
    sql_items, item_rows = timed(lambda: replay(engine, items), repeat)
    sql_all, _ = timed(lambda: replay(engine, statements), repeat)
    refresh, _ = timed(refresh_check, repeat)
    return Decision(label, len(tasks), item_rows, len(statements), cold, sopgap, sql_items,
                    sql_all, refresh), tasks


# --------------------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------------------

@dataclass
class Send:
    label: str
    nudges: int
    channels: int
    busiest: int  # nudges to the busiest channel
    escalations: int
    seconds: float  # the whole run_job
    before_first_post: float  # zone refresh + due_nudges + the first claim and card
    posting: float  # first post's arrival → last post's arrival
    sent: int
    skipped: int
    failed: int
    accepted: int
    limited: int  # 429 answers
    retried: int  # 429s followed by the same post again
    honoured: int  # ... at least Retry-After later
    waited: float  # seconds from each 429 to its retry, summed
    second_pass: int
    problems: list[str]

    @property
    def exactly_once(self) -> bool:
        return not self.problems


def recipient(task: Any) -> tuple[str, str | None]:
    """Where the job posts a nudge: (channel, thread)."""
    if task.occasion.escalates and task.channel_id and task.thread_ts:
        return task.channel_id, task.thread_ts
    return (task.creator_id if task.owner_left else task.owner_id), None


def measure_send(label: str, engine: Engine, sessions: sessionmaker[Session], settings: Any,
                 slack: Any, chosen: list[Any], already_sent: list[str], limit: bool
                 ) -> Send:
    """Arrange the outbox so that exactly ``chosen`` is due, run the clock's nudge job
    once against FakeSlack, and check what arrived."""
    from bot.clock import run_job
    from sop_core.models import Notification
    from sop_core.services.followup import due_nudges

    problems: list[str] = []
    set_outbox(engine, already_sent)
    with sessions() as session:
        due = {t.key for t in due_nudges(session, settings, NOW)}
    wanted = {t.key: t for t in chosen}
    if due != set(wanted):
        problems.append(f"{len(due)} due before the run, expected the {len(wanted)} chosen")
    slack.reset()
    slack.rate_limit_chat_per_channel = limit
    try:
        started = time.monotonic()
        report = run_job(settings, "nudges", NOW)
        seconds = time.monotonic() - started
        posts = slack.calls_to("chat.postMessage")
        again = run_job(settings, "nudges", NOW)
    finally:
        slack.rate_limit_chat_per_channel = False
    if again.sent:
        problems.append(f"a second pass sent {again.sent} more")
    if slack.calls_to("chat.postMessage")[len(posts):]:
        problems.append("the second pass posted")

    # Every accepted post is one chosen nudge (by its ts in the outbox), once.
    accepted = [c for c in posts if c.ok]
    by_ts = {c.response.get("ts"): c for c in accepted}
    with sessions() as session:
        rows = session.execute(select(Notification.key, Notification.status,
                                      Notification.message_ts)
                               .where(Notification.claimed_at >= NOW)).all()
    recorded = {key: ts for key, status, ts in rows if status == "sent"}
    if len(accepted) != len(chosen):
        problems.append(f"{len(accepted)} posts accepted for {len(chosen)} nudges")
    if len(by_ts) != len(accepted):
        problems.append("two accepted posts share a ts")
    if set(recorded) != set(wanted):
        problems.append(f"{len(recorded)} outbox keys marked sent, "
                        f"{len(set(recorded) ^ set(wanted))} differ from the chosen")
    if Counter(recorded.values()) != Counter(list(by_ts)):
        problems.append("the outbox's message ts are not the accepted posts' ts, one each")
    if unsent := [key for key, status, _ in rows if status != "sent"]:
        problems.append(f"{len(unsent)} outbox rows not marked sent")
    wrong = 0
    for key, ts in recorded.items():
        task, call = wanted.get(key), by_ts.get(ts)
        if task is None or call is None:
            continue
        where = (str(call.args.get("channel")), call.args.get("thread_ts"))
        if (where != recipient(task) or call.team_id != task.team_id
                or title(task.action_id) not in str(call.args.get("text"))):
            wrong += 1
    if wrong:
        problems.append(f"{wrong} posts went to the wrong channel, thread or workspace, "
                        "or named the wrong action")
    if slack.violations:
        problems.append(f"FakeSlack violations: {slack.violations[:2]}")
    if report.failed or report.skipped:
        problems.append(f"job report: {report.failed} failed, {report.skipped} skipped")

    # 429s: was each retried (the same post again), and after Retry-After?
    retried = honoured = 0
    waited = 0.0
    later: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for call in posts:
        later[(str(call.args.get("channel")), str(call.args.get("text")))].append(call)
    for call in posts:
        if call.status != 429:
            continue
        attempts = later[(str(call.args.get("channel")), str(call.args.get("text")))]
        retry = next((c for c in attempts if c.at > call.at), None)
        if retry is not None:
            retried += 1
            waited += retry.at - call.at
            honoured += retry.at - call.at >= RETRY_AFTER
    per_channel = Counter(recipient(t)[0] for t in chosen)
    first = min((c.at for c in posts), default=started)
    last = max((c.at for c in posts), default=started)
    return Send(
        label=label, nudges=len(chosen), channels=len(per_channel),
        busiest=max(per_channel.values(), default=0),
        escalations=sum(1 for t in chosen if recipient(t)[1] is not None), seconds=seconds,
        before_first_post=first - started, posting=last - first, sent=report.sent,
        skipped=report.skipped, failed=report.failed, accepted=len(accepted),
        limited=sum(1 for c in posts if c.status == 429), retried=retried, honoured=honoured,
        waited=waited, second_pass=again.sent, problems=problems)


def warm_up_sending(settings: Any) -> None:
    """Import what the job imports on its first nudge and open the HTTP path, so that
    neither lands in the first measured pass."""
    from bot.clock import client_resolver

    for module in ("bot.blocks.action_card", "bot.jobs.digests", "bot.jobs.watches"):
        importlib.import_module(module)  # run_job and the job import these lazily

    client = client_resolver(settings)(next(iter(WORKSPACES)))
    assert client is not None
    client.auth_test()


def measure_refresh(settings: Any, sessions: sessionmaker[Session], engine: Engine,
                    slack: Any) -> tuple[int, float]:
    """Every owner's cached zone a day old: the job's refresh step, timed."""
    from bot.clock import client_resolver
    from bot.jobs import JobContext
    from bot.jobs.nudges import refresh_users
    from sop_core.models import SlackUser

    with engine.begin() as connection:
        connection.execute(update(SlackUser).values(fetched_at=NOW - timedelta(hours=25)))
    slack.reset()
    job = JobContext(settings=settings, sessions=sessions,
                     client_for=client_resolver(settings), now=NOW)
    started = time.monotonic()
    refresh_users(job)
    seconds = time.monotonic() - started
    calls = [c for c in slack.calls_to("users.info") if c.ok]
    with sessions() as session:
        fresh = session.scalar(select(func.count()).select_from(SlackUser)
                               .where(SlackUser.fetched_at == NOW))
    if fresh != len(calls):
        progress(f"zone refresh: {len(calls)} users.info calls but {fresh} users refreshed")
    return len(calls), seconds


# --------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------

def _fingerprint() -> str:
    parts = [f"{name} {hashlib.sha256((ROOT / name).read_bytes()).hexdigest()[:8]}"
             for name in MEASURED]
    return ", ".join(parts)


def print_header(database: str) -> None:
    print("sopgap scheduler benchmark (benchmarks/scheduler.py)")
    print(f"date        {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine     {machine()} at start")
    print(f"python      {platform.python_version()} ({sys.executable})")
    print(f"database    {database}")
    print(f"commit      {git_revision()}")
    print(f"measured    {_fingerprint()}")


def print_population(pop: Population, settings: Any) -> None:
    print(f"\n=== data: {pop.open_actions:,} open actions, {pop.milestones:,} milestones ===")
    print(f"  {len(WORKSPACES)} workspaces (OAuth installs), {pop.owners:,} owners in "
          f"{len(ZONES)} time zones ({pop.left} left their workspace), {pop.channels} gap "
          f"channels, {pop.trigger_points:,} trigger points")
    print(f"  actions     {pop.open_actions:,} open ({pop.overdue_actions:,} overdue, "
          f"{pop.snoozed:,} snoozed) + {pop.closed_actions:,} closed")
    print(f"  milestones  {pop.milestones:,} on open actions ({pop.open_milestones:,} not "
          f"done, {pop.overdue_milestones:,} of them overdue) + {pop.closed_milestones:,} on "
          "closed actions")
    print(f"  outbox      {pop.history:,} older sent nudges (history)")
    rows = sum(pop.rows.values())
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in pop.seconds.items()
                      if seconds >= 0.05)
    print(f"  seeding     {rows:,} rows in {pop.total_seconds:.1f} s "
          f"({rows / pop.total_seconds:,.0f} rows/s; Core executemany in batches of "
          f"{BATCH:,}): {parts}")
    print(f"  now         {NOW:%a %Y-%m-%d %H:%M:%S} UTC (09:00:30 in Paris and Berlin); "
          f"nudges {', '.join(map(str, settings.nudge_days_before))} days before, on the "
          f"day, overdue, escalation, weekly; at {settings.nudge_hour}:00 local; weekends "
          f"{'on' if settings.nudge_on_weekends else 'off'}")


def print_decisions(decisions: list[Decision], repeat: int) -> None:
    print(f"\n=== deciding what is due (median of {repeat} after a warm-up) ===")
    print(f"  {'':<46} {'median':>10}  {'min–max s':>13}  {'CPU s':>7}  (CPU: this "
          "process, not the database server's)")
    for d in decisions:
        print(f"{d.label}: {d.due:,} nudges due; the item queries return {d.item_rows:,} "
              f"rows; {d.statements} SQL statements in all")
        print(d.cold.row("sopgap due_nudges, a clock's first sweep",
                         f"{d.cold.median / d.sql_items.median:.1f}× the item SQL"))
        print(d.sopgap.row("sopgap due_nudges, every later sweep",
                           f"{d.sopgap.median / d.sql_items.median:.1f}× the item SQL"))
        if d.reference is not None:
            print(d.reference.row("reference: the full sweep, same state",
                                  f"{d.sopgap.median / d.reference.median:.2f}× of it"))
        print(d.sql_items.row("reference: its item queries, raw DBAPI", "1.0×"))
        print(d.sql_all.row(f"info: all {d.statements} statements, raw DBAPI",
                            f"{d.sql_all.median / d.sql_items.median:.1f}×"))
        print(d.refresh_check.row("info: users_to_refresh (the job's first step)"))


def print_sends(sends: list[Send]) -> None:
    print("\n=== sending through FakeSlack: bot.clock.run_job(settings, 'nudges', now) ===")
    for s in sends:
        print(f"{s.label}: {s.nudges:,} nudges to {s.channels:,} channels ({s.escalations} "
              f"escalations into gap threads; busiest channel {s.busiest} nudges)")
        rate = s.nudges / s.seconds if s.seconds else float("nan")
        posting = s.nudges / s.posting if s.posting else float("nan")
        print(f"  run_job wall              {s.seconds:8.2f} s   {rate:6.1f} nudges/s overall; "
              f"report {s.sent} sent, {s.skipped} skipped, {s.failed} failed")
        print(f"    before the first post   {s.before_first_post:8.2f} s   (zone refresh "
              "check, due_nudges, first claim and card)")
        print(f"    first → last post       {s.posting:8.2f} s   {posting:6.1f} nudges/s "
              f"({s.posting / max(s.nudges - 1, 1) * 1000:.0f} ms per nudge)")
        if s.limited or "limit on" in s.label:
            print(f"  429 answers               {s.limited:8,}     retried {s.retried}, after "
                  f"≥ Retry-After (1 s) {s.honoured}; {s.waited:.1f} s spent waiting them "
                  "out (the job waits, it sends one nudge at a time)")
            print(f"  floor from the limit      {max(s.busiest - 1, 0):8,} s   (the busiest "
                  "channel's posts, one a second)")
        state = "yes" if s.exactly_once else "NO: " + "; ".join(s.problems)
        print(f"  {s.nudges:,} distinct nudges arrived exactly once: {state} "
              f"({s.accepted:,} posts accepted; second pass sent {s.second_pass})")


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="The nudge sweep at scale: due_nudges against its own SQL, and sending "
                    "through FakeSlack with its rate limit (figures only, no assertions).")
    parser.add_argument("--actions", type=int, default=None,
                        help="open actions (default 100,000; --quick 10,000)")
    parser.add_argument("--milestones", type=int, default=None,
                        help="milestones on the open actions (default 3 per action)")
    parser.add_argument("--owners", type=int, default=None,
                        help="owners (default one per 20 open actions)")
    parser.add_argument("--send", type=int, default=None,
                        help="nudges to send through FakeSlack (default 1,000; --quick 200)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per timing (median; default 5, --quick 3)")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="run on PostgreSQL: a server's admin URL, e.g. postgresql://"
                             "postgres@127.0.0.1:5432/postgres (a database is made and "
                             "dropped); SQLite file otherwise")
    parser.add_argument("--quick", action="store_true",
                        help="10,000 actions, 200 nudges, 3 runs: does it run?")
    args = parser.parse_args(argv)
    actions = args.actions or (QUICK["actions"] if args.quick else 100_000)
    milestones = args.milestones if args.milestones is not None else 3 * actions
    owners = args.owners or max(50, actions // 20)
    send = args.send or (QUICK["send"] if args.quick else 1_000)
    repeat = args.repeat or (QUICK["repeat"] if args.quick else 5)

    from sop_core.config import Settings
    from sop_core.db import get_engine, session_factory
    from sop_core.services.followup import due_nudges
    from tests.fakeslack import FakeSlack

    workdir = Path(tempfile.mkdtemp(prefix="sopgap-bench-sched-"))
    slack = FakeSlack()
    for team in WORKSPACES:
        slack.add_team(team, token(team))
    slack.start()
    verdicts: list[tuple[str, bool]] = []
    try:
        with fresh_database(args.postgres, workdir) as url:
            engine, sessions = get_engine(url), session_factory(url)
            print_header(db_description(engine))
            settings = Settings(_env_file=None, database_url=url, slack_client_id=CLIENT_ID,
                                slack_client_secret="bench-secret", slack_api_url=slack.url,
                                encryption_key=Fernet.generate_key().decode())
            progress(f"seeding {actions:,} open actions and {milestones:,} milestones")
            pop = populate(engine, actions=actions, milestones=milestones,
                           closed=actions // 4, owners=owners, keys=settings.encryption_keys)
            slack.users.update(pop.users)
            print_population(pop, settings)
            sys.stdout.flush()

            # Deciding: catch-up (no current occasion sent), then steady state.
            progress("due_nudges: catch-up pass")
            set_outbox(engine, [])
            catch_up, everything = measure_decision(
                "catch-up pass (none of the current occasions sent yet)", engine, sessions,
                settings, repeat)
            with sessions() as session:
                previous = [t.key for t in due_nudges(session, settings, PREVIOUS_SWEEP)]
            progress(f"due_nudges: steady state ({len(previous):,} sent a minute ago)")
            set_outbox(engine, previous)
            steady, wave = measure_decision(
                "steady state (the previous sweep, 1 min earlier, sent what was due then)",
                engine, sessions, settings, repeat)
            # A running clock: the sweep a minute ago (a full one, say) stored each item's
            # next nudge day; this minute's sweep reads only what can be due.
            progress("due_nudges: running clock (minute sweep on stored next nudge days)")
            with sessions.begin() as session:
                due_nudges(session, settings, PREVIOUS_SWEEP, full=True)
            minute, _ = measure_decision(
                "running clock, minute sweep (steady state; the sweep a minute earlier "
                "stored every item's next nudge day)", engine, sessions, settings, repeat,
                full=False)
            hourly, _ = measure_decision(
                "running clock, hourly full sweep (same state: every item read, few "
                "next nudge days to change)", engine, sessions, settings, repeat, full=True)
            minute.reference = hourly.sopgap
            print_decisions([catch_up, steady, minute, hourly], repeat)
            verdicts.append((f"due_nudges < {DUE_GOAL:g} s, running clock (minute sweep): "
                             f"{minute.sopgap.median:.3f} s, {minute.item_rows:,} item rows "
                             f"read (reference, same state: the full sweep "
                             f"{hourly.sopgap.median:.3f} s, {hourly.item_rows:,} rows)",
                             minute.sopgap.median < DUE_GOAL))
            for d in (catch_up, steady):
                name = d.label.split(" (")[0]
                verdicts.append((f"due_nudges < {FULL_DUE_GOAL:g} s, {name}, a clock's "
                                 f"first sweep (full, next nudge days not stored yet): "
                                 f"{d.cold.median:.3f} s", d.cold.median < FULL_DUE_GOAL))
            verdicts.append((f"due_nudges < {FULL_DUE_GOAL:g} s, running clock, the hourly "
                             f"full sweep (safety net): {hourly.sopgap.median:.3f} s",
                             hourly.sopgap.median < FULL_DUE_GOAL))
            verdicts.append((f"the minute sweep finds what the full one finds: "
                             f"{minute.due:,} due against {steady.due:,}",
                             minute.due == steady.due))
            sys.stdout.flush()

            # Sending: the first `send` nudges of this minute's wave (topped up from the
            # catch-up set if the wave is smaller), everything else recorded as sent.
            chosen = wave[:send]
            if len(chosen) < send:
                extra = [t for t in everything if t.key not in {c.key for c in chosen}]
                chosen += extra[: send - len(chosen)]
            chosen_keys = {t.key for t in chosen}
            already = [t.key for t in everything if t.key not in chosen_keys]
            per_owner = Counter(recipient(t)[0] for t in wave)
            print(f"\nthis minute's wave: {len(wave):,} nudges to {len(per_owner):,} "
                  f"channels; the first {len(chosen):,} in due_nudges' order are sent "
                  f"(the rest recorded as sent){'' if len(wave) >= send else ' — topped up'}")
            warm_up_sending(settings)
            sends = []
            for limit, label in ((True, "limit on (FakeSlack: 1 post/s per channel)"),
                                 (False, "reference: same nudges, limit off")):
                progress(f"sending {len(chosen):,} nudges, {label}")
                sends.append(measure_send(label, engine, sessions, settings, slack, chosen,
                                          already, limit))
            print_sends(sends)
            on = sends[0]
            verdicts.append((f"{on.nudges:,} nudges sent with the limit honoured, each "
                             f"exactly once: {on.seconds:.1f} s, {on.limited} × 429, "
                             f"{on.retried} retried after ≥ 1 s: {on.honoured}",
                             on.exactly_once and on.honoured == on.limited))

            progress(f"zone refresh: {pop.owners:,} owners")
            calls, seconds = measure_refresh(settings, sessions, engine, slack)
            print(f"\n=== zone refresh (information): every owner's cache a day old ===\n"
                  f"  {calls:,} users.info calls in {seconds:.1f} s ({calls / seconds:.0f}/s, "
                  "one at a time, before the first nudge of that pass); FakeSlack does not "
                  f"limit users.info; Slack would take {calls / 100:.0f} min at 100/min "
                  f"(Tier 4, users.info's tier), {calls / 50:.0f} min at Tier 3's 50/min")
            print(f"\nmachine load average (1/5/15 min) at the end: {loadavg()}")
            engine.dispose()
    finally:
        slack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n=== goals ===")
    for text_, met in verdicts:
        print(f"  {'met   ' if met else 'MISSED'} {text_}")


if __name__ == "__main__":
    main()
