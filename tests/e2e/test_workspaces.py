"""Installing over OAuth in two workspaces, and keeping their data apart."""

from __future__ import annotations

import dataclasses
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from sop_core import formatting as fmt
from sop_core.db import session_factory
from sop_core.gaps import GapQuery, compute_gap
from sop_core.loading import PlanningTable
from sop_core.services.data import store
from tests.e2e.conftest import Running, app_settings, serve_app
from tests.e2e.slack_sim import SlackSim
from tests.fakeslack import FakeSlack

SIGNING_SECRET = "test-signing-secret"


@pytest.fixture
def oauth_server(db_url: str, slack: FakeSlack) -> Iterator[Running]:
    settings = app_settings(db_url, slack, SLACK_BOT_TOKEN=None,
                            SLACK_CLIENT_ID="111.222", SLACK_CLIENT_SECRET="client-secret")
    with serve_app(settings) as running:
        yield running


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def install(app_url: str, team_id: str) -> int:
    """Walk Slack's OAuth v2 flow: the install page sets a state cookie, Slack sends the
    user back to the redirect URL with a code, the app exchanges it."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        response = opener.open(app_url + "/slack/install", timeout=10)
        page, headers = response.read().decode(), response.headers
    except urllib.error.HTTPError as redirect:  # Bolt may redirect straight to Slack
        page, headers = "", redirect.headers
    cookie = headers["Set-Cookie"].split(";")[0]
    location = headers.get("Location") or re.search(r'href="([^"]*authorize[^"]*)"',
                                                    page).group(1)
    state = re.search(r"state=([^&\"]+)", location.replace("&amp;", "&")).group(1)
    request = urllib.request.Request(
        f"{app_url}/slack/oauth_redirect?code=code-{team_id}&state={state}",
        headers={"Cookie": cookie})
    try:
        return opener.open(request, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code


def test_two_workspaces_install_and_never_see_each_others_data(
        oauth_server: Running, slack: FakeSlack, sample_table: PlanningTable) -> None:
    assert install(oauth_server.url, "T1") == 200
    assert install(oauth_server.url, "T2") == 200
    sessions = session_factory(oauth_server.settings.database_url)
    store(sessions, sample_table, team_id="T1")
    # Workspace T2 loads the same structure with plans doubled: a very different gap.
    doubled = sample_table.frame.assign(plan=sample_table.frame["plan"] * 2)
    doubled_table = dataclasses.replace(sample_table, frame=doubled)
    store(sessions, doubled_table, team_id="T2")
    sim = SlackSim(oauth_server.url, SIGNING_SECRET, slack.root_url)

    sim.command("region=EU category=Snacks", team="T1", channel="C1")
    [first] = slack.wait_for("chat.postMessage")
    sim.command("region=EU category=Snacks", team="T2", channel="C9")
    second = slack.wait_for("chat.postMessage", count=2)[1]

    assert (first.team_id, first.args["channel"]) == ("T1", "C1")
    assert (second.team_id, second.args["channel"]) == ("T2", "C9")
    query = GapQuery(scope={"region": ("EU",), "category": ("Snacks",)}, metric="revenue")
    for call, table in ((first, sample_table), (second, doubled_table)):
        expected = fmt.percent(compute_gap(table, query).gap_pct)
        assert call.args["blocks"][0]["text"]["text"].startswith(f"Gap {expected}:")
    assert first.args["blocks"][0] != second.args["blocks"][0]
    assert slack.violations == []


def test_an_uninstalled_workspace_gets_nothing(oauth_server: Running, slack: FakeSlack) -> None:
    sim = SlackSim(oauth_server.url, SIGNING_SECRET, slack.root_url)
    reply = sim.command("region=EU", team="T1")
    # No installation for T1: Bolt refuses to authorize and nothing is posted.
    assert reply.status in {200, 401}
    assert slack.calls_to("chat.postMessage") == []
