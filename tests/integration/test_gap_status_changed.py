"""An action that moves its gap's status says so, so the bot re-renders the gap's message
(covered once the open actions reach |gap|, open again when that cover is cancelled)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session, sessionmaker

from sop_core.models import TriggerPoint
from sop_core.services import actions
from sop_core.services.triggers import filters_of
from sop_core.smart import Confidence, SmartActionInput
from tests.integration.test_coverage import add_action, add_point, sessions, snapshot_id

__all__ = ["sessions", "snapshot_id"]  # the fixtures, shared with test_coverage


def _create(sessions: sessionmaker[Session], point_id: int, impact: float) -> actions.ActionView:
    data = SmartActionInput.model_construct(
        title="Run a 2-week Snacks promotion with Carrefour EU", owner_id="U1",
        metric="revenue", baseline=0.0, target=1.0, expected_impact=impact, resources=None,
        confidence=Confidence.MEDIUM, due_date=date(2027, 1, 15), milestones=())
    return actions.create(sessions, data, team_id="T1", point_id=point_id, creator_id="U9")


def _status(sessions: sessionmaker[Session], point_id: int) -> str:
    with sessions() as session:
        point = session.get(TriggerPoint, point_id)
        assert point is not None
        return point.status


def test_only_changes_that_move_the_status_say_so(sessions: sessionmaker[Session],
                                                   snapshot_id: int) -> None:
    point_id = add_point(sessions, snapshot_id, gap=-500_000.0)
    add_action(sessions, point_id, impact=300_000.0)
    small = _create(sessions, point_id, 100_000.0)  # 400K of 500K: still open
    assert (small.gap_status_changed, _status(sessions, point_id)) == (False, "open")
    enough = _create(sessions, point_id, 100_000.0)  # 500K: covered
    assert (enough.gap_status_changed, _status(sessions, point_id)) == (True, "covered")
    dropped = actions.cancel(sessions, team_id="T1", action_id=small.id, reason="no budget",
                             user_id="U9")
    assert (dropped.gap_status_changed, _status(sessions, point_id)) == (True, "open")
    again = actions.cancel(sessions, team_id="T1", action_id=enough.id, reason="no slot",
                           user_id="U9")
    assert (again.gap_status_changed, _status(sessions, point_id)) == (False, "open")


def test_a_stored_scope_is_typed_back_as_filters() -> None:
    assert filters_of({"region": ["EU"], "category": ["Snacks", "Dairy"]}, horizon="fy",
                      metric="revenue") == (
        'region="EU" category="Snacks","Dairy" horizon=fy metric=revenue')
    assert filters_of({"region": ['a"b“c”\'d']}, horizon="fy", metric="revenue") is None
