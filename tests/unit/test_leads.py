"""Channel leads: reading mentions, and who may change a channel's rules."""

from __future__ import annotations

import pytest

from sop_core.leads import LeadsError, is_workspace_admin, may_change_rules, parse_mentions


def test_mentions_as_slack_sends_them() -> None:
    assert parse_mentions("<@U123|alice> <@W456>  <@U123|alice>") == ["U123", "W456"]


@pytest.mark.parametrize(("text", "message"), [
    ("", "Name at least one lead"),
    ("@alice", "“@alice” is not a person"),
    ("<@U1|a> and <@U2>", "“and” is not a person"),
    ("<!channel>", "is not a person"),
    ("<#C123|general>", "is not a person"),
    (" ".join(f"<@U{i}>" for i in range(11)), "At most 10 leads"),
])
def test_anything_else_is_refused_with_what_to_type(text: str, message: str) -> None:
    with pytest.raises(LeadsError, match=message):
        parse_mentions(text)


def test_a_channel_without_leads_is_open_to_anyone() -> None:
    assert may_change_rules([], "U9").allowed


def test_a_channel_with_leads_lets_its_leads_and_asks_about_anyone_else() -> None:
    assert may_change_rules(["U1", "U2"], "U2").allowed
    decision = may_change_rules(["U1", "U2"], "U9")
    assert not decision.allowed and decision.needs_admin_check


@pytest.mark.parametrize(("user", "admin"), [
    ({"is_admin": True}, True), ({"is_owner": True}, True),
    ({"is_primary_owner": True}, True), ({"is_admin": False, "is_owner": False}, False),
    ({}, False)])
def test_workspace_admins_and_owners(user: dict[str, object], admin: bool) -> None:
    assert is_workspace_admin(user) is admin
