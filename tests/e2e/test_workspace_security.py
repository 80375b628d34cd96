"""Workspaces see only their own data; tokens at rest are encrypted; uninstalling deletes
them; only allowed workspaces install or use the app. Over real HTTP, OAuth included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet, MultiFernet
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import text

from sop_core.db import get_engine, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import Snapshot
from sop_core.services.data import store
from tests.e2e.conftest import (
    ENCRYPTION_KEY,
    SIGNING_SECRET,
    TEAMS,
    Running,
    app_settings,
    refused,
    serve_app,
)
from tests.e2e.slack_sim import SlackSim
from tests.e2e.test_workspaces import install
from tests.fakeslack import FakeSlack
from tests.integration.test_token_encryption import raw as raw_tokens

OAUTH = {"SLACK_BOT_TOKEN": None, "SLACK_CLIENT_ID": "111.222",
         "SLACK_CLIENT_SECRET": "client-secret"}


def oauth_app(db_url: str, slack: FakeSlack, **overrides: Any) -> Any:
    return serve_app(app_settings(db_url, slack, **OAUTH, **overrides))


def installation_teams(db_url: str) -> set[str]:
    with get_engine(db_url).connect() as connection:
        return {row[0] for row in connection.execute(text(
            "SELECT team_id FROM slack_installations UNION SELECT team_id FROM slack_bots"))}


def gap_posts(slack: FakeSlack) -> list[Any]:
    return slack.calls_to("chat.postMessage")


@pytest.fixture
def oauth_server(db_url: str, slack: FakeSlack) -> Iterator[Running]:
    with oauth_app(db_url, slack) as running:
        yield running


def test_installed_tokens_are_encrypted_at_rest_and_still_work(
        oauth_server: Running, slack: FakeSlack, sample_table: PlanningTable,
        db_url: str) -> None:
    assert install(oauth_server.url, "T1") == 200
    stored = raw_tokens(db_url)
    assert stored, "the installation stored its bot token"
    for value in stored:
        assert TEAMS["T1"] not in value and not value.startswith("xox")
    box = MultiFernet([Fernet(ENCRYPTION_KEY)])
    assert TEAMS["T1"] in {box.decrypt(value.encode()).decode() for value in stored}
    # The app reads them back: a command from T1 posts with T1's token.
    store(session_factory(db_url), sample_table, team_id="T1")
    sim = SlackSim(oauth_server.url, SIGNING_SECRET, slack.root_url)
    assert sim.command("region=EU category=Snacks", team="T1").status == 200
    [post] = slack.wait_for("chat.postMessage")
    assert post.token == TEAMS["T1"]


def test_a_rotating_token_is_refreshed_kept_encrypted_and_the_old_one_given_up(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    """Token rotation (Slack's expiring tokens): Bolt refreshes a token about to expire
    before it uses it, and saves the new pair through the encrypting store."""
    team = slack.add_team("T4", "xoxe.xoxb-4", refresh_token="xoxe-1-4",
                          token_expires_in=600)  # within Bolt's 2 hours: refreshed at once
    with oauth_app(db_url, slack, allowed_teams="T4") as running:
        assert install(running.url, "T4") == 200
        store(session_factory(db_url), sample_table, team_id="T4")
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        assert sim.command("region=EU category=Snacks", team="T4").status == 200
        [post] = slack.wait_for("chat.postMessage")
    refreshed = [call for call in slack.calls_to("oauth.v2.access")
                 if call.args.get("grant_type") == "refresh_token"]
    assert refreshed and refreshed[0].args["refresh_token"] == "xoxe-1-4"
    assert team.rotations >= 1 and post.token == team.bot_token != "xoxe.xoxb-4"
    stored = raw_tokens(db_url)
    assert not any(value.startswith("xox") for value in stored)  # the new pair, encrypted
    box = MultiFernet([Fernet(ENCRYPTION_KEY)])
    plain = {box.decrypt(value.encode()).decode() for value in stored}
    assert {team.bot_token, team.refresh_token} <= plain
    with pytest.raises(SlackApiError) as dead:  # Slack no longer takes the first token
        WebClient(token="xoxe.xoxb-4", base_url=slack.url).auth_test()
    assert dead.value.response["error"] == "token_revoked"


def test_uninstalling_deletes_the_tokens_at_once_and_keeps_the_records(
        oauth_server: Running, slack: FakeSlack, sample_table: PlanningTable,
        db_url: str) -> None:
    assert install(oauth_server.url, "T1") == 200
    assert install(oauth_server.url, "T2") == 200
    store(session_factory(db_url), sample_table, team_id="T1")
    sim = SlackSim(oauth_server.url, SIGNING_SECRET, slack.root_url)
    assert sim.event({"type": "app_uninstalled"}, team="T1").status == 200
    slack_deadline_wait(lambda: "T1" not in installation_teams(db_url))
    assert installation_teams(db_url) == {"T2"}  # the other workspace keeps its install
    with session_factory(db_url)() as session:  # T1's records stay until a purge
        assert session.query(Snapshot).filter_by(team_id="T1").count() == 1


def test_a_revoked_user_token_goes_and_the_bot_token_stays(
        oauth_server: Running, slack: FakeSlack, db_url: str) -> None:
    assert install(oauth_server.url, "T1") == 200
    with get_engine(db_url).begin() as connection:  # as if the installer had a user token
        connection.execute(text("UPDATE slack_installations SET user_token = bot_token"))
    [installer] = _installer_ids(db_url)
    sim = SlackSim(oauth_server.url, SIGNING_SECRET, slack.root_url)
    event = {"type": "tokens_revoked", "tokens": {"oauth": [installer], "bot": []}}
    assert sim.event(event, team="T1").status == 200
    slack_deadline_wait(lambda: _user_tokens(db_url) == 0)
    assert installation_teams(db_url) == {"T1"}
    event = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}}
    assert sim.event(event, team="T1").status == 200
    slack_deadline_wait(lambda: not installation_teams(db_url))
    assert raw_tokens(db_url) == []


def _installer_ids(db_url: str) -> list[str]:
    with get_engine(db_url).connect() as connection:
        return [row[0] for row in connection.execute(
            text("SELECT user_id FROM slack_installations"))]


def _user_tokens(db_url: str) -> int:
    with get_engine(db_url).connect() as connection:
        return connection.scalar(text(
            "SELECT count(*) FROM slack_installations WHERE user_token IS NOT NULL")) or 0


def slack_deadline_wait(condition: Any, timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_stranger_workspace_cannot_install_or_use_the_app(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    slack.add_team("T3", "xoxb-stranger")
    with oauth_app(db_url, slack, allowed_teams="T1,E9") as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        counted = {reason: refused(sim, reason) for reason in ("install", "workspace")}
        assert install(running.url, "T1") == 200
        assert install(running.url, "T3") == 403
        assert installation_teams(db_url) == {"T1"}
        # The token Slack issued for the refused workspace is given back, not left live.
        assert [call.token for call in slack.calls_to("auth.revoke")] == ["xoxb-stranger"]
        with pytest.raises(SlackApiError) as dead:
            WebClient(token="xoxb-stranger", base_url=slack.url).auth_test()
        assert dead.value.response["error"] == "token_revoked"
        # A request signed by Slack from a workspace outside the list does nothing.
        store(session_factory(db_url), sample_table, team_id="T3")
        slack.reset()
        reply = sim.command("region=EU", team="T3")
        assert reply.status == 200 and b"not enabled for this workspace" in reply.body
        assert slack.calls == []
        assert (refused(sim, "install"), refused(sim, "workspace")) == (
            counted["install"] + 1, counted["workspace"] + 1)


def test_the_refusal_page_says_why(db_url: str, slack: FakeSlack) -> None:
    import re
    import urllib.error
    import urllib.request

    slack.add_team("T3", "xoxb-stranger")
    with oauth_app(db_url, slack, allowed_teams="T1") as running:
        opener = urllib.request.build_opener()
        page = opener.open(running.url + "/slack/install", timeout=10)
        cookie = page.headers["Set-Cookie"].split(";")[0]
        state = re.search(r"state=([^&\"]+)", page.read().decode()).group(1)
        request = urllib.request.Request(
            f"{running.url}/slack/oauth_redirect?code=code-T3&state={state}",
            headers={"Cookie": cookie})
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(request, timeout=10)
        body = refused.value.read().decode()
        assert refused.value.code == 403
        assert "cannot be installed in this workspace" in body and "T3" in body
        assert "SOPGAP_ALLOWED_TEAMS" in body


def test_shared_data_is_nobodys_in_oauth_mode_unless_listed(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    store(session_factory(db_url), sample_table)  # without --team: shared data
    with oauth_app(db_url, slack, shared_data_teams=None) as running:
        assert install(running.url, "T1") == 200
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        reply = sim.command("region=EU category=Snacks", team="T1")
        assert reply.status == 200
        slack.wait_for("response_url")  # T1 is told there is no data, only T1 sees it
        assert gap_posts(slack) == []
    slack.reset()
    with oauth_app(db_url, slack, shared_data_teams="T1") as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        assert sim.command("region=EU category=Snacks", team="T1").status == 200
        [post] = slack.wait_for("chat.postMessage")
        assert post.team_id == "T1"


def test_single_token_mode_shares_the_data_with_the_tokens_own_workspace_only(
        db_url: str, slack: FakeSlack, sample_table: PlanningTable) -> None:
    store(session_factory(db_url), sample_table)
    with serve_app(app_settings(db_url, slack, shared_data_teams=None)) as running:  # T1's
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        assert sim.command("region=EU category=Snacks", team="T1").status == 200
        slack.wait_for("chat.postMessage")
        slack.reset()
        assert sim.command("region=EU category=Snacks", team="T2").status == 200
        slack.wait_for("response_url")
        assert gap_posts(slack) == []


def test_oauth_code_and_state_reach_no_log_under_gunicorn(
        sqlite_url: str, slack: FakeSlack, tmp_path: Any) -> None:
    """``sopgap serve`` as deployed: the access log and the app's own log lines (Bolt
    logs the code of a failed exchange) carry neither the code nor the state."""
    import re
    import time
    import urllib.error
    import urllib.request

    from tests.e2e.test_processes import environment, free_port, start, stop

    env = environment(sqlite_url, slack)
    del env["SLACK_BOT_TOKEN"]
    env.update({"SLACK_CLIENT_ID": "111.222", "SLACK_CLIENT_SECRET": "client-secret",
                "SOPGAP_ENCRYPTION_KEY": ENCRYPTION_KEY})
    port, log = free_port(), tmp_path / "serve.log"
    process = start(["serve", "--port", str(port), "--workers", "1"], env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        slack_deadline_wait(lambda: _answers(url + "/healthz"), timeout=30)
        states = []
        for code in ("code-T1", "code-unknown-Zq81"):
            page = urllib.request.urlopen(url + "/slack/install", timeout=10)
            cookie = page.headers["Set-Cookie"].split(";")[0]
            state = re.search(r"state=([^&\"]+)", page.read().decode()).group(1)
            states.append(state)
            request = urllib.request.Request(
                f"{url}/slack/oauth_redirect?code={code}&state={state}",
                headers={"Cookie": cookie})
            try:
                urllib.request.urlopen(request, timeout=10).read()
            except urllib.error.HTTPError as error:
                error.read()
        time.sleep(0.5)  # gunicorn writes the access log line after the answer
    finally:
        assert stop(process) == 0
    text = log.read_text()
    assert "GET /slack/oauth_redirect" in text  # requests are logged, paths only
    assert "with code: [redacted]" in text, text  # Bolt's failed exchange, no code
    for secret in ("code-T1", "code-unknown-Zq81", *states, ENCRYPTION_KEY, "client-secret"):
        assert secret not in text


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
