"""Handing an action back goes to whoever named the owner: a reassigner, else the creator."""

from __future__ import annotations

from datetime import date

import pytest

from sop_core.db import get_sessionmaker
from sop_core.models import Action
from sop_core.services import actions


def new_action(db_url: str) -> int:
    with get_sessionmaker(db_url).begin() as session:
        action = Action(team_id="T1", title="Relist 12 Snacks SKUs", owner_id="U2",
                        creator_id="U1", metric_name="revenue", baseline=1, target=2,
                        expected_impact=3, due_date=date(2026, 12, 10), channel_id="C1")
        session.add(action)
        session.flush()
        return action.id


def test_hand_back_goes_to_whoever_named_the_owner(db_url: str) -> None:
    sessions = get_sessionmaker(db_url)
    action_id = new_action(db_url)
    actions.reassign(sessions, team_id="T1", action_id=action_id, new_owner_id="U3",
                     user_id="U2")
    with pytest.raises(actions.NotAllowed):  # U2 neither owns nor created it any more
        actions.hand_back(sessions, team_id="T1", action_id=action_id, user_id="U2")
    view, back_to = actions.hand_back(sessions, team_id="T1", action_id=action_id,
                                      user_id="U3")
    assert (view.owner_id, back_to) == ("U2", "U2")  # U2 named U3, not the creator U1
    view, back_to = actions.hand_back(sessions, team_id="T1", action_id=action_id,
                                      user_id="U2")
    assert (view.owner_id, back_to) == ("U1", "U1")  # the creator named U2
    with pytest.raises(actions.InvalidChange, match="made yourself the owner"):
        actions.hand_back(sessions, team_id="T1", action_id=action_id, user_id="U1")
    with pytest.raises(actions.NotFound):
        actions.hand_back(sessions, team_id="T2", action_id=action_id, user_id="U1")
