"""Production as the Procfile runs it: release, web and clock as real processes on
PostgreSQL (behind a TCP proxy that can cut it), with JSON logs and metrics.

- ``/readyz`` turns red when PostgreSQL goes away or the clock stops for two intervals,
  and green again after; ``/healthz`` stays up;
- ``/metrics`` moves after a scripted ``/gap``, a button, a nudge and a load;
- every log line is one JSON object, and no secret or token used appears in any of them;
- a bad setting at ``sopgap serve`` is one line on stderr and exit status 2, and nothing
  calls Slack at boot.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.error import HTTPError, URLError
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import make_url

from bot.ids import ActionId
from sop_core.db import get_sessionmaker
from sop_core.models import Action, Milestone
from tests.e2e.conftest import SIGNING_SECRET, TEAMS
from tests.e2e.slack_sim import SlackSim
from tests.e2e.tcp_proxy import TcpProxy
from tests.e2e.test_processes import free_port
from tests.fakeslack import FakeSlack

REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
SAMPLE = REPO / "sop_core/sample_data/sales_plan.csv"
DB_PASSWORD = "db-pass-7Qx2LmZ9"  # PostgreSQL here trusts local clients: never checked
INTERVAL, STALE = 1, 3  # seconds: the clock's sweep interval, and when it counts as stopped


def procfile() -> dict[str, str]:
    lines = (REPO / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def environment(db_url: str, slack: FakeSlack, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "SOPGAP_", "PROMETHEUS_", "GUNICORN_"))}
    env.update({"DATABASE_URL": db_url, "SLACK_BOT_TOKEN": TEAMS["T1"],
                "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.url,
                "PYTHONPATH": str(REPO), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "SOPGAP_LOG_FORMAT": "json", "SOPGAP_CLOCK_INTERVAL": str(INTERVAL),
                "SOPGAP_CLOCK_STALE_AFTER": str(STALE), "SOPGAP_NUDGE_ON_WEEKENDS": "true",
                "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"), **extra})
    return env


def run_process(name: str, env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """A Procfile line, through a shell as a platform runs it."""
    with log.open("ab") as handle:
        return subprocess.Popen(["bash", "-c", f"exec {procfile()[name]}"], env=env, cwd=cwd,
                                stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def get(url: str) -> tuple[int, str]:
    for attempt in range(10):  # a worker being replaced may refuse one connection
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except HTTPError as error:
            return error.code, error.read().decode()
        except URLError:
            if attempt == 9:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def wait_until(predicate, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def sample(text: str, metric: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$", line)
        if not match or match[1] != metric:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match[3])
    return total


def daytime_zone() -> str:
    """An owner's time zone where it is now between 10:00 and 20:00 (nudges go at 09:00)."""
    for zone in ("Pacific/Kiritimati", "Asia/Tokyo", "Asia/Kolkata", "Europe/Paris",
                 "America/Sao_Paulo", "America/New_York", "America/Los_Angeles",
                 "Pacific/Honolulu", "Pacific/Pago_Pago"):
        if 10 <= datetime.now(ZoneInfo(zone)).hour < 20:
            return zone
    raise AssertionError("no listed zone is in daytime")  # pragma: no cover


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[str, TcpProxy]]:
    real = make_url(postgres_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432).start()
    url = real.set(port=proxy.port, password=DB_PASSWORD).render_as_string(hide_password=False)
    yield url, proxy
    proxy.stop()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:  # pragma: no cover
                os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.postgres
@pytest.mark.slow
def test_procfile_processes_health_metrics_and_logs(
        proxied: tuple[str, TcpProxy], slack: FakeSlack, tmp_path: Path,
        processes: list[subprocess.Popen[bytes]]) -> None:
    db_url, proxy = proxied
    web_port, health_port = free_port(), free_port()
    env = environment(db_url, slack, tmp_path, PORT=str(web_port), WEB_CONCURRENCY="2")
    clock_env = {**env, "SOPGAP_HEALTH_PORT": str(health_port)}
    web_log, clock_log, cli_log = tmp_path / "web.log", tmp_path / "clock.log", tmp_path / "cli.log"

    def cli(*args: str) -> None:
        with cli_log.open("ab") as handle:
            done = subprocess.run([str(BIN / "sopgap"), *args], env=env, cwd=tmp_path,
                                  stdout=handle, stderr=subprocess.STDOUT, timeout=120)
        assert done.returncode == 0, cli_log.read_text()[-3000:]

    release = subprocess.run(["bash", "-c", procfile()["release"]], env=env, cwd=tmp_path,
                             capture_output=True, timeout=120)
    assert release.returncode == 0, release.stderr.decode()[-3000:]
    cli("load", str(SAMPLE))

    processes.append(web := run_process("web", env, web_log, tmp_path))
    processes.append(clock := run_process("clock", clock_env, clock_log, tmp_path))
    web_url, clock_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{health_port}"

    def up(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            return get(url + "/healthz")[0] == 200
        except OSError:
            return False

    wait_until(lambda: up(web_url, web, web_log), "the web process", 60)
    wait_until(lambda: up(clock_url, clock, clock_log), "the clock's health port", 60)
    assert not slack.calls_to("auth.test")  # no Slack call at boot
    wait_until(lambda: get(web_url + "/readyz")[0] == 200, "readiness", 30)
    status, body = get(clock_url + "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ok"

    before_web, before_clock = get(web_url + "/metrics")[1], get(clock_url + "/metrics")[1]
    # A /gap's series exist from the boot, at zero (bot/metrics.py:start_series).
    assert 'sopgap_ack_seconds_count{kind="command",name="/gap"} 0.0' in before_web
    assert 'sopgap_refused_requests_total{reason="signature"} 0.0' in before_web

    # A /gap, a button on its trigger point, a nudge, a load.
    sim = SlackSim(web_url, SIGNING_SECRET, slack.root_url)
    assert sim.command("region=EU category=Snacks").status == 200
    [post] = slack.wait_for("chat.postMessage", timeout=60)
    point_id = next(e["value"] for b in post.args["blocks"] if b["type"] == "actions"
                    for e in b["elements"] if e["action_id"] == ActionId.SHOW_CHART)
    assert sim.button(ActionId.SHOW_CHART, point_id, message_ts="1700000000.000100").status \
        == 200
    slack.wait_for("files.completeUploadExternal", timeout=60)
    zone = daytime_zone()
    slack.users["U7"] = {"tz": zone}
    today = datetime.now(ZoneInfo(zone)).date()
    with get_sessionmaker(db_url).begin() as session:
        session.add(Action(team_id="T1", title="Relist 12 Snacks SKUs on Amazon DE",
                           owner_id="U7", creator_id="U1", metric_name="revenue", baseline=1,
                           target=2, expected_impact=3, due_date=today + timedelta(days=9),
                           channel_id="C1",
                           milestones=[Milestone(name="Audit listings", due_date=today)]))
    slack.wait_for("chat.postMessage", predicate=lambda c: c.args.get("channel") == "U7",
                   timeout=60)
    cli("load", str(SAMPLE), "--as-of", "2026-07")

    def moved() -> tuple[str, str]:
        return get(web_url + "/metrics")[1], get(clock_url + "/metrics")[1]

    wait_until(lambda: sample(moved()[1], "sopgap_outbox_sent_total", kind="nudges") >
               sample(before_clock, "sopgap_outbox_sent_total", kind="nudges"), "nudge counter")
    after_web, after_clock = moved()
    increases = {
        "ack /gap": ("sopgap_ack_seconds_count", {"kind": "command", "name": "/gap"}),
        "ack button": ("sopgap_ack_seconds_count", {"kind": "action",
                                                    "name": ActionId.SHOW_CHART.value}),
        "handler button": ("sopgap_handler_seconds_count", {"name": ActionId.SHOW_CHART.value}),
        # The /gap's work after its ack, which ran on a work slot (bot/work_slots.py).
        "work /gap": ("sopgap_work_seconds_count", {"kind": "command", "name": "/gap"}),
        "work wait /gap": ("sopgap_work_wait_seconds_count", {"kind": "command",
                                                              "name": "/gap"}),
        "slack posts": ("sopgap_slack_api_calls_total", {"method": "chat.postMessage"}),
        "load time": ("sopgap_data_last_load_timestamp_seconds", {}),
    }
    for what, (name, labels) in increases.items():
        assert sample(after_web, name, **labels) > sample(before_web, name, **labels), what
    for name, labels in (("sopgap_clock_pass_seconds_count", {"job": "nudges"}),
                         ("sopgap_slack_api_calls_total", {"method": "chat.postMessage"})):
        assert sample(after_clock, name, **labels) > sample(before_clock, name, **labels), name
    assert sample(after_web, "sopgap_data_snapshots") == 2

    # PostgreSQL goes away: not ready (the database named), alive; back: ready again.
    proxy.cut()
    seen: list[str] = []

    def not_ready() -> bool:
        status, body = get(web_url + "/readyz")
        seen.append(body)
        return status == 503

    # Polled: each worker notices on its next check (its pooled connection is pre-pinged).
    wait_until(not_ready, "not ready without the database", 30)
    assert json.loads(seen[-1])["failed"] == ["database", "migrations", "clock"]
    assert "not answering" in json.loads(seen[-1])["checks"]["database"]["detail"]
    assert get(web_url + "/healthz")[0] == 200
    proxy.restore()
    wait_until(lambda: get(web_url + "/readyz")[0] == 200, "ready after the database", 30)

    # The clock stops for two intervals and more: not ready (the clock named); restarted:
    # ready again.
    os.killpg(clock.pid, signal.SIGTERM)
    assert clock.wait(timeout=30) == 0
    wait_until(lambda: get(web_url + "/readyz")[0] == 503, "stale clock", STALE + 10)
    assert json.loads(get(web_url + "/readyz")[1])["failed"] == ["clock"]
    processes.append(run_process("clock", clock_env, clock_log, tmp_path))
    wait_until(lambda: get(web_url + "/readyz")[0] == 200, "ready after the clock", 60)

    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            assert process.wait(timeout=30) == 0

    # Every line is a JSON object; requests carry who and what; no secret anywhere.
    lines = [line for log in (web_log, clock_log)
             for line in log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    gap = [e for e in entries if e.get("kind") == "command" and e.get("command") == "/gap"]
    assert gap and {"request_id", "team", "channel", "user", "duration_ms", "outcome"} <= \
        gap[0].keys()
    assert gap[0]["team"] == "T1" and gap[0]["outcome"] == "200"
    everything = web_log.read_text() + clock_log.read_text() + cli_log.read_text()
    for secret in (SIGNING_SECRET, TEAMS["T1"], DB_PASSWORD):
        assert secret not in everything


def test_a_bad_setting_is_one_line_and_exit_2(sqlite_url: str, slack: FakeSlack,
                                              tmp_path: Path) -> None:
    env = environment(sqlite_url, slack, tmp_path, SOPGAP_TIMEZONE="Mars/Olympus",
                      PORT=str(free_port()))
    done = subprocess.run(shlex.split(procfile()["web"]), env=env, cwd=tmp_path,
                          capture_output=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "SOPGAP_TIMEZONE" in lines[0] and "Mars/Olympus" in lines[0], lines
    del env["SLACK_SIGNING_SECRET"]
    env.pop("SOPGAP_TIMEZONE")
    done = subprocess.run(shlex.split(procfile()["web"]), env=env, cwd=tmp_path,
                          capture_output=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.decode().strip() == "sopgap serve: SLACK_SIGNING_SECRET is not set"
    assert slack.calls == []
    # The database not answering is an outage, not a setting: exit 1, so a supervisor retries.
    env.update(SLACK_SIGNING_SECRET=SIGNING_SECRET,
               DATABASE_URL="postgresql://sopgap@127.0.0.1:9/sopgap")  # nothing on port 9
    done = subprocess.run(shlex.split(procfile()["web"]), env=env, cwd=tmp_path,
                          capture_output=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines() == [
        "sopgap serve: the database does not answer (OperationalError)"]


def test_socket_mode_process_serves_health_and_metrics(sqlite_url: str, slack: FakeSlack,
                                                       tmp_path: Path) -> None:
    """``sopgap socket`` as a process: connected over Socket Mode, with ``/healthz``,
    ``/readyz`` and ``/metrics`` on ``SOPGAP_HEALTH_PORT``."""
    from tests.fakeslack.socket_mode import SocketModeServer

    app_token = "app-level-token-for-ops-tests"
    health_port = free_port()
    with SocketModeServer() as server:
        slack.enable_socket_mode(server.url, app_token)
        env = environment(sqlite_url, slack, tmp_path, SLACK_APP_TOKEN=app_token,
                          SOPGAP_HEALTH_PORT=str(health_port))
        log = tmp_path / "socket.log"
        with log.open("ab") as handle:
            process = subprocess.Popen([str(BIN / "sopgap"), "socket"], env=env, cwd=tmp_path,
                                       stdout=handle, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        try:
            server.wait_connected(timeout=60)
            url = f"http://127.0.0.1:{health_port}"
            wait_until(lambda: get(url + "/healthz")[0] == 200, "the socket health port", 30)
            status, body = get(url + "/readyz")
            assert status == 503 and json.loads(body)["failed"] == ["clock"]  # no clock here
            assert "sopgap_slack_api_calls_total" in get(url + "/metrics")[1]
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    text = log.read_text()
    assert app_token not in text and TEAMS["T1"] not in text
    assert all(json.loads(line) for line in text.splitlines() if line.strip())
