"""The real processes of the Procfile: ``sopgap serve`` (gunicorn), ``sopgap scheduler``,
and ``sopgap tick``, started as a person (or a platform) would start them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app as cli
from sop_core.config import get_settings
from sop_core.db import get_sessionmaker
from sop_core.models import Action, Milestone
from tests.e2e.conftest import SIGNING_SECRET, TEAMS
from tests.e2e.slack_sim import SlackSim
from tests.fakeslack import FakeSlack

REPO = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(db_url: str, slack: FakeSlack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SOPGAP_"))}
    env.update({"DATABASE_URL": db_url, "SLACK_BOT_TOKEN": TEAMS["T1"],
                "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.url,
                "PYTHONPATH": str(REPO)})
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env=env, cwd=REPO,
                                stdout=handle, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=timeout)


@pytest.fixture
def loaded_db(sqlite_url: str) -> str:
    result = CliRunner().invoke(cli, ["load", str(REPO / "sop_core/sample_data/sales_plan.csv")],
                                env={"DATABASE_URL": sqlite_url})
    assert result.exit_code == 0, result.output
    return sqlite_url


@contextmanager
def serving(db_url: str, slack: FakeSlack, log: Path) -> Iterator[str]:
    """``sopgap serve`` (2 workers) until it answers ``/healthz``: its URL; stopped after."""
    port = free_port()
    process = start(["serve", "--port", str(port), "--workers", "2"],
                    environment(db_url, slack), log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"sopgap serve did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
    try:
        yield url
    finally:
        if process.poll() is None:
            assert stop(process) == 0, log.read_text()[-3000:]


@pytest.fixture
def served(loaded_db: str, slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "serve.log"
    with serving(loaded_db, slack, log) as url:
        yield url, log


def test_serve_answers_slack_under_gunicorn_and_stops_cleanly(
        served: tuple[str, Path], slack: FakeSlack) -> None:
    url, log = served
    sim = SlackSim(url, SIGNING_SECRET, slack.root_url)
    reply = sim.command("region=EU category=Snacks")
    assert reply.status == 200
    [post] = slack.wait_for("chat.postMessage", timeout=15)
    assert post.args["blocks"][0]["text"]["text"].startswith("Gap -12.5%")
    assert sim.command("region=EU", signature="v0=bad").status == 401
    text = log.read_text()
    assert "Booting worker" in text
    # The master decoded the latest view for both workers before forking them.
    assert text.index("decoded the latest view once") < text.index("Booting worker")
    assert SIGNING_SECRET not in text and TEAMS["T1"] not in text  # no secret in logs
    # Bolt's warning that the app's own client wins over SLACK_BOT_TOKEN: by design.
    assert "will be unused" not in text


def test_slack_answers_outlive_a_restart_and_events_reach_every_worker(
        loaded_db: str, slack: FakeSlack, tmp_path: Path) -> None:
    """What Slack said about a channel is kept in the database: neither the other worker
    nor a restarted server asks again, and an event one server hears makes the next
    command, whichever process runs it, ask Slack anew."""
    commands = ["region=EU category=Snacks", "region=EU", "region=APAC", "category=Snacks"]
    with serving(loaded_db, slack, tmp_path / "first.log") as url:
        sim = SlackSim(url, SIGNING_SECRET, slack.root_url)
        for n, text in enumerate(commands, start=1):  # (on both workers, most likely)
            assert sim.command(f"{text} post").status == 200
            slack.wait_for("chat.postMessage", count=n, timeout=15)
        assert len(slack.calls_to("conversations.info")) == 1
    with serving(loaded_db, slack, tmp_path / "second.log") as url:
        sim = SlackSim(url, SIGNING_SECRET, slack.root_url)
        assert sim.command("region=LATAM post").status == 200
        slack.wait_for("chat.postMessage", count=len(commands) + 1, timeout=15)
        assert len(slack.calls_to("conversations.info")) == 1  # told before the restart
        # Someone left the channel: what was known about it is dropped for every process.
        assert sim.event({"type": "member_left_channel", "channel": "C1", "user": "U2",
                          "channel_type": "C", "team": "T1"}).status == 200
        for n, text in enumerate(commands, start=len(commands) + 2):
            assert sim.command(f"{text} by=channel post").status == 200
            slack.wait_for("chat.postMessage", count=n, timeout=15)
        assert len(slack.calls_to("conversations.info")) == 2


def test_scheduler_runs_and_stops_on_sigterm(loaded_db: str, slack: FakeSlack,
                                             tmp_path: Path) -> None:
    log = tmp_path / "clock.log"
    process = start(["scheduler"], environment(loaded_db, slack), log)
    deadline = time.monotonic() + 20
    while "clock started" not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    assert stop(process) == 0
    text = log.read_text()
    assert "sweep:nudges" in text and "finishing the running passes" in text
    assert TEAMS["T1"] not in text


def test_tick_sends_what_is_due_once(loaded_db: str, slack: FakeSlack,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    slack.users["U7"] = {"tz": "Europe/Paris"}
    with get_sessionmaker(loaded_db).begin() as session:
        session.add(Action(team_id="T1", title="Relist 12 Snacks SKUs on Amazon DE",
                           owner_id="U7", creator_id="U1", metric_name="revenue",
                           baseline=1, target=2, expected_impact=3,
                           due_date=date(2026, 12, 10), channel_id="C1",
                           milestones=[Milestone(name="Audit", due_date=date(2026, 12, 8))]))
    for name, value in environment(loaded_db, slack).items():
        if name.startswith(("SLACK_", "DATABASE_")):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    runner = CliRunner()
    first = runner.invoke(cli, ["tick", "--now", "2026-12-07T09:00:00+01:00"])
    assert first.exit_code == 0, first.output
    assert [c.args["channel"] for c in slack.calls_to("chat.postMessage")] == ["U7", "U7"]
    again = runner.invoke(cli, ["tick", "--now", "2026-12-07T09:30:00+01:00"])
    assert again.exit_code == 0, again.output
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert runner.invoke(cli, ["tick", "--now", "yesterday"]).exit_code == 2
