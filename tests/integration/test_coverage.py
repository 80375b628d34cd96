"""Root-cause notes and the App Home read model on real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sop_core.db import get_sessionmaker
from sop_core.models import Action, Milestone, RootCauseNote, Snapshot, Status, TriggerPoint
from sop_core.services import root_causes
from sop_core.services.coverage import home_data, point_coverage
from sop_core.services.triggers import NotFound

TODAY = date(2026, 11, 22)


@pytest.fixture
def sessions(db_url: str) -> sessionmaker[Session]:
    return get_sessionmaker(db_url)


@pytest.fixture
def snapshot_id(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        snapshot = Snapshot(source="test", as_of=None, rows_read=0, rows_stored=0,
                            rows_merged=0, metrics=["value"], dimensions=[], content_hash="0")
        session.add(snapshot)
        session.flush()
        return snapshot.id


def add_point(sessions: sessionmaker[Session], snapshot_id: int, *, team: str = "T1",
              ts: str | None = "1700000000.000100", gap: float = -500_000.0,
              created_by: str | None = "U9", status: str = Status.OPEN,
              region: str = "EU") -> int:
    with sessions.begin() as session:
        point = TriggerPoint(
            team_id=team, channel_id="C1", message_ts=ts, scope={"region": [region]},
            scope_key=f"region={region}", metric="revenue", horizon="fy",
            posted_snapshot_id=snapshot_id, snapshot_id=snapshot_id, plan_at_post=4e6,
            gap_at_post=gap, gap_pct_at_post=gap / 4e4, plan=4e6, outlook=4e6 + gap, gap=gap,
            gap_pct=gap / 4e4, created_by=created_by, status=status)
        session.add(point)
        session.flush()
        return point.id


def add_action(sessions: sessionmaker[Session], point_id: int | None, *, owner: str = "U1",
               creator: str = "U9", impact: float = 100_000.0, due: date = date(2026, 12, 1),
               status: str = Status.OPEN, team: str = "T1", title: str = "Act",
               milestones: tuple[tuple[str, date, bool], ...] = ()) -> int:
    with sessions.begin() as session:
        action = Action(
            team_id=team, trigger_point_id=point_id, channel_id="C1", title=title,
            owner_id=owner, creator_id=creator, metric_name="revenue", baseline=0, target=1,
            expected_impact=impact, due_date=due, status=status,
            milestones=[Milestone(name=name, due_date=when,
                                  done_at=datetime(2026, 11, 1, tzinfo=UTC) if done else None)
                        for name, when, done in milestones])
        session.add(action)
        session.flush()
        return action.id


def note_count(sessions: sessionmaker[Session], point_id: int) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(RootCauseNote).where(
            RootCauseNote.trigger_point_id == point_id)) or 0


# ------------------------------------------------------------------------------ notes

def test_a_reply_is_kept_once_however_often_it_arrives(sessions: sessionmaker[Session],
                                                       snapshot_id: int) -> None:
    point_id = add_point(sessions, snapshot_id)
    reply = {"team_id": "T1", "channel_id": "C1", "thread_ts": "1700000000.000100",
             "message_ts": "1700000050.000200", "user_id": "U2", "text": "Promo moved to Q1"}
    assert root_causes.record_reply(sessions, **reply) is True
    assert root_causes.record_reply(sessions, **reply) is False
    with ThreadPoolExecutor(8) as pool:  # concurrent redeliveries: still one row
        again = list(pool.map(lambda _: root_causes.record_reply(sessions, **reply), range(8)))
    assert again == [False] * 8
    fresh = {**reply, "message_ts": "1700000060.000300"}
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda _: root_causes.record_reply(sessions, **fresh), range(8)))
    assert sorted(first) == [False] * 7 + [True]
    assert note_count(sessions, point_id) == 2
    with sessions() as session:
        note = session.scalars(select(RootCauseNote).order_by(RootCauseNote.id)).first()
        assert note is not None
        assert (note.team_id, note.user_id, note.text) == ("T1", "U2", "Promo moved to Q1")


def test_replies_elsewhere_are_not_kept(sessions: sessionmaker[Session],
                                        snapshot_id: int) -> None:
    point_id = add_point(sessions, snapshot_id)
    base = {"team_id": "T1", "channel_id": "C1", "thread_ts": "1700000000.000100",
            "message_ts": "1700000050.000200", "user_id": "U2", "text": "hi"}
    assert root_causes.record_reply(sessions, **{**base, "team_id": "T2"}) is None
    assert root_causes.record_reply(sessions, **{**base, "channel_id": "C2"}) is None
    assert root_causes.record_reply(sessions, **{**base, "thread_ts": "1.1"}) is None
    assert root_causes.record_reply(sessions, **{**base, "message_ts": "prompt"}) is None
    assert note_count(sessions, point_id) == 0


def test_the_prompt_is_claimed_once(sessions: sessionmaker[Session], snapshot_id: int) -> None:
    point_id = add_point(sessions, snapshot_id)
    with ThreadPoolExecutor(6) as pool:
        claims = list(pool.map(lambda _: root_causes.claim_prompt(
            sessions, team_id="T1", point_id=point_id, user_id="U1")[1], range(6)))
    assert sorted(claims) == [False] * 5 + [True]
    root_causes.release_prompt(sessions, point_id=point_id)
    point, claimed = root_causes.claim_prompt(sessions, team_id="T1", point_id=point_id,
                                              user_id="U1")
    assert claimed and point.message_ts == "1700000000.000100"
    with pytest.raises(NotFound):
        root_causes.claim_prompt(sessions, team_id="T2", point_id=point_id, user_id="U1")
    unposted = add_point(sessions, snapshot_id, ts=None)
    with pytest.raises(root_causes.NotPosted):
        root_causes.claim_prompt(sessions, team_id="T1", point_id=unposted, user_id="U1")


def test_a_persons_category_choice_is_updated(sessions: sessionmaker[Session],
                                              snapshot_id: int) -> None:
    point_id = add_point(sessions, snapshot_id)
    choose = root_causes.choose_category
    choose(sessions, team_id="T1", point_id=point_id, user_id="U2", category="demand")
    choose(sessions, team_id="T1", point_id=point_id, user_id="U3", category="price")
    choose(sessions, team_id="T1", point_id=point_id, user_id="U2", category="mix")
    with pytest.raises(root_causes.UnknownCategory):
        choose(sessions, team_id="T1", point_id=point_id, user_id="U2", category="weather")
    with pytest.raises(NotFound):
        choose(sessions, team_id="T2", point_id=point_id, user_id="U2", category="demand")
    summary = root_causes.summarize(sessions, team_id="T1", point_id=point_id)
    assert [(v.category, v.voters) for v in summary.votes] == [("price", ("U3",)),
                                                                ("mix", ("U2",))]
    assert note_count(sessions, point_id) == 2


def test_confirming_stores_the_root_cause(sessions: sessionmaker[Session],
                                          snapshot_id: int) -> None:
    point_id = add_point(sessions, snapshot_id)
    when = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    with pytest.raises(NotFound):
        root_causes.confirm(sessions, team_id="T2", point_id=point_id, user_id="U1",
                            category="demand", summary="x", now=when)
    info = root_causes.confirm(sessions, team_id="T1", point_id=point_id, user_id="U1",
                               category="demand", summary="  Soft e-commerce demand ", now=when)
    assert (info.root_cause_category, info.root_cause_summary) == ("demand",
                                                                   "Soft e-commerce demand")
    with sessions() as session:
        point = session.get(TriggerPoint, point_id)
        assert point is not None
        assert point.root_cause_confirmed_by == "U1"
        assert point.root_cause_confirmed_at == when


# ------------------------------------------------------------------------------ home

def test_home_lists_my_open_actions_due_soonest_first(sessions: sessionmaker[Session],
                                                      snapshot_id: int) -> None:
    point_id = add_point(sessions, snapshot_id, region="North America")
    late = add_action(sessions, point_id, due=date(2026, 11, 10), title="Late one",
                      milestones=(("Kick-off", date(2026, 11, 1), True),
                                  ("Brief", date(2026, 11, 15), False),
                                  ("Launch", date(2026, 11, 30), False),
                                  ("Review", date(2026, 12, 30), False)))
    soon = add_action(sessions, None, due=date(2026, 11, 25))
    add_action(sessions, point_id, due=date(2026, 11, 1), status=Status.DONE)
    add_action(sessions, point_id, owner="U2", due=date(2026, 11, 1))
    add_action(sessions, point_id, team="T2", due=date(2026, 11, 1))
    data = home_data(sessions, team_id="T1", user_id="U1", today=TODAY)
    assert [a.id for a in data.actions] == [late, soon] and data.actions_total == 2
    first = data.actions[0]
    assert first.overdue and not data.actions[1].overdue
    assert [(m.name, m.overdue) for m in first.next_milestones] == [("Brief", True),
                                                                     ("Launch", False)]
    assert first.gap_label == "region=North America" and data.actions[1].gap_label is None


def test_home_gaps_are_the_ones_i_take_part_in_with_their_coverage(
        sessions: sessionmaker[Session], snapshot_id: int) -> None:
    posted = add_point(sessions, snapshot_id, created_by="U1", gap=-100_000, ts="1.1")
    replied = add_point(sessions, snapshot_id, gap=-900_000, ts="1.2")
    owned = add_point(sessions, snapshot_id, gap=300_000, ts="1.3")
    created = add_point(sessions, snapshot_id, gap=-200_000, ts="1.4")
    add_point(sessions, snapshot_id, gap=-5e6, ts="1.5")  # not mine
    add_point(sessions, snapshot_id, created_by="U1", status=Status.RESOLVED, ts="1.6")
    add_point(sessions, snapshot_id, created_by="U1", team="T2", ts="1.7")
    zero = add_point(sessions, snapshot_id, created_by="U1", gap=0.0, ts="1.8")
    root_causes.record_reply(sessions, team_id="T1", channel_id="C1", thread_ts="1.2",
                             message_ts="1700000001.000001", user_id="U1", text="demand")
    add_action(sessions, replied, owner="U2", impact=600_000)
    add_action(sessions, replied, owner="U2", impact=300_000, status=Status.DONE)  # not open
    add_action(sessions, owned, owner="U1", impact=450_000)
    add_action(sessions, created, owner="U3", creator="U1", impact=50_000)
    data = home_data(sessions, team_id="T1", user_id="U1", today=TODAY)
    assert [g.id for g in data.gaps] == [replied, owned, created, posted, zero]
    cover = {g.id: g.coverage for g in data.gaps}
    assert cover[replied].ratio == pytest.approx(600 / 900)
    assert cover[replied].uncovered == pytest.approx(300_000)
    assert cover[owned].over_covered and cover[owned].ratio == pytest.approx(1.5)
    assert cover[created].uncovered_share == pytest.approx(0.75)
    assert cover[posted].ratio == 0 and cover[posted].actions == 0
    assert cover[zero].ratio is None
    assert point_coverage(sessions, "T1", replied) == cover[replied]
    assert point_coverage(sessions, "T2", replied) is None


def test_home_totals_count_beyond_what_is_shown(sessions: sessionmaker[Session],
                                                snapshot_id: int) -> None:
    for n in range(7):
        point_id = add_point(sessions, snapshot_id, created_by="U1", ts=f"2.{n}")
        add_action(sessions, point_id, due=date(2026, 12, 1 + n))
    data = home_data(sessions, team_id="T1", user_id="U1", today=TODAY, most=5)
    assert (len(data.actions), data.actions_total) == (5, 7)
    assert (len(data.gaps), data.gaps_total) == (5, 7)
