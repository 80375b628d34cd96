"""The single bot token's ``auth.test`` is asked once per token, ever (bot/bot_identity.py).

Bolt and the shared data's policy each asked it on every worker's first request: two
Slack round trips on the first ``/gap`` after each restart. Now the first command ever
asks once; a restarted app (the same database) asks nothing; and when Slack says the
token is gone, it is forgotten and asked again.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sop_core.db import get_engine, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import BotIdentity
from sop_core.services.data import store
from tests.e2e.conftest import SIGNING_SECRET, TEAMS, app_settings, serve_app
from tests.e2e.slack_sim import SlackSim
from tests.e2e.waiting import eventually
from tests.fakeslack import FakeSlack

# The default policy: the shared data goes to the token's own workspace, which needs
# the token's identity too.
OWN_WORKSPACE_ONLY = {"shared_data_teams": None}


def _first_gap(settings, slack: FakeSlack, channel: str, *, warm_up: bool = False) -> None:
    with serve_app(settings, warm_up=warm_up) as running:
        assert SlackSim(running.url, SIGNING_SECRET, slack.root_url).command(
            "region=EU category=Snacks", channel=channel).status == 200
        slack.wait_for("chat.postMessage", count=len(slack.calls_to("chat.postMessage")) + 1)


def _kept(db_url: str) -> list[tuple[str, str | None]]:
    with get_engine(db_url).connect() as connection:
        return [tuple(row) for row in connection.execute(
            select(BotIdentity.token_sha256, BotIdentity.team_id))]


@pytest.mark.parametrize("warm_up", [False, True], ids=["asked lazily", "read at boot"])
def test_auth_test_is_asked_once_per_token_not_once_per_start(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable, warm_up: bool) -> None:
    store(session_factory(db_url), sample_table)
    settings = app_settings(db_url, slack, **OWN_WORKSPACE_ONLY)

    _first_gap(settings, slack, "C1")
    assert len(slack.calls_to("auth.test")) == 1  # Bolt's and the policy's, as one
    [(digest, team)] = _kept(db_url)
    assert team == "T1" and len(digest) == 64 and TEAMS["T1"] not in digest

    _first_gap(settings, slack, "C2", warm_up=warm_up)  # a restart: a new app, same data
    assert len(slack.calls_to("auth.test")) == 1
    [post] = slack.calls_to("chat.postMessage")[-1:]
    assert (post.team_id, post.args["channel"]) == ("T1", "C2")  # the shared data, served


def test_a_token_slack_revoked_is_forgotten_and_asked_again(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    store(session_factory(db_url), sample_table)
    settings = app_settings(db_url, slack, **OWN_WORKSPACE_ONLY)
    _first_gap(settings, slack, "C1")
    assert _kept(db_url)

    with serve_app(settings) as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        event = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}}
        assert sim.event(event, team="T1").status == 200
        eventually(lambda: not _kept(db_url))
        asked = len(slack.calls_to("auth.test"))
        assert sim.command("region=EU category=Snacks", channel="C3").status == 200
        eventually(lambda: len(slack.calls_to("auth.test")) > asked)
