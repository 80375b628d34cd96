"""Claiming a gap's one living trigger point in a channel (sop_core/services/triggers.py),
with and without the caller's word that it has just found none."""

from __future__ import annotations

from sqlalchemy import func, select

from sop_core.db import get_sessionmaker, session_factory
from sop_core.gaps import TriggerRule
from sop_core.loading import PlanningTable
from sop_core.models import TriggerPoint
from sop_core.services import triggers
from sop_core.services.data import GapReport, gap_report, store


def _report(db_url: str, sample_table: PlanningTable) -> GapReport:
    store(session_factory(db_url), sample_table)
    with get_sessionmaker(db_url)() as session:
        return gap_report(session, "region=EU", rule=TriggerRule(0.0))


def _rows(db_url: str) -> int:
    with get_sessionmaker(db_url)() as session:
        return session.scalar(select(func.count()).select_from(TriggerPoint)) or 0


def test_a_caller_that_found_none_writes_it_at_once(db_url: str,
                                                    sample_table: PlanningTable) -> None:
    sessions = get_sessionmaker(db_url)
    report = _report(db_url, sample_table)
    living = triggers.claim_living(sessions, report, team_id="T1", channel_id="C1",
                                   created_by="U1", absent=True)
    assert (living.claim, living.new, _rows(db_url)) == (triggers.Claim.POST, True, 1)


def test_absent_is_only_a_hint_a_row_written_meanwhile_is_read_back(
        db_url: str, sample_table: PlanningTable) -> None:
    """Between the caller's look and its claim another command wrote the row: the unique
    key refuses a second one, and the claim reads the first (busy: it is being posted)."""
    sessions = get_sessionmaker(db_url)
    report = _report(db_url, sample_table)
    first = triggers.claim_living(sessions, report, team_id="T1", channel_id="C1",
                                  created_by="U1")
    second = triggers.claim_living(sessions, report, team_id="T1", channel_id="C1",
                                   created_by="U2", absent=True)
    assert (second.claim, second.point_id, second.new) == (triggers.Claim.BUSY,
                                                           first.point_id, False)
    triggers.complete_post(sessions, first.point_id, "1700000000.000100")
    third = triggers.claim_living(sessions, report, team_id="T1", channel_id="C1",
                                  created_by="U3", absent=True)
    assert (third.claim, third.message_ts) == (triggers.Claim.UPDATE, "1700000000.000100")
    assert _rows(db_url) == 1


def test_a_post_without_an_answer_is_kept_and_taken_over_with_its_start(
        db_url: str, sample_table: PlanningTable) -> None:
    """Slack did not answer the post: the new row is kept (Slack may have the message)
    and the next claim takes it over at once, told since when to look for it. A post
    Slack refused is forgotten."""
    sessions = get_sessionmaker(db_url)
    report = _report(db_url, sample_table)
    first = triggers.claim_living(sessions, report, team_id="T1", channel_id="C1",
                                  created_by="U1", absent=True)
    assert first.since is None  # a new row: nothing posted before it
    triggers.release(sessions, first, maybe_posted=True)
    second = triggers.claim_living(sessions, report, team_id="T1", channel_id="C1",
                                   created_by="U2")
    with sessions() as session:
        written = session.get(TriggerPoint, first.point_id)
        assert written is not None
    assert (second.claim, second.point_id, second.new, second.since) == (
        triggers.Claim.POST, first.point_id, False, written.created_at)
    refused = triggers.claim_living(sessions, report, team_id="T1", channel_id="C2",
                                    created_by="U1", absent=True)
    triggers.release(sessions, refused)
    assert _rows(db_url) == 1
