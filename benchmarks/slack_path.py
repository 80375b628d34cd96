"""The Slack path under load: signed ``/gap`` commands into ``sopgap serve``, trigger points
recorded by FakeSlack, against a bare Bolt app that only acks, in the same run.

``python -m benchmarks.slack_path`` (1M-row snapshot, 20 and 100 concurrent users),
``--quick`` (100k rows, fewer commands: does it run?), ``--rows 2M``,
``--concurrency 20 50 100``, ``--requests 300``, ``--workers 2 --threads 8``,
``--postgres postgresql://postgres@127.0.0.1:5432/postgres`` (a fresh PostgreSQL database
is created on that server for the run and dropped after it; SQLite file otherwise).
Run it from the repository root. Figures go to stdout, progress to stderr.

What happens:

1. **Data**: the synthetic file of ``benchmarks/synth.py`` is loaded with ``sopgap load``
   (a subprocess: read, validate, store a snapshot) into a fresh database.
2. **Servers**: FakeSlack (``tests/fakeslack``) runs in this process. ``sopgap serve``
   (gunicorn, gthread workers) starts as a subprocess with ``SLACK_API_URL`` pointing at
   FakeSlack; the reference — a bare Bolt ``App`` whose ``/gap`` listener only calls
   ``ack()``, built like the product's (signing secret, bot token, FakeSlack's URL,
   ``process_before_response=False``) — starts through the very same ``bot.server.serve``
   (same gunicorn settings: workers, threads, timeouts) with only the WSGI app swapped.
3. **Warm-up**: concurrent ``/gap`` commands, so that every worker has decoded the
   snapshot once (a worker's first gap query reads the parts from the database).
4. **Levels**: 1 user (the unloaded baseline), then each ``--concurrency`` C. C simulated
   users in a closed loop until ``--requests`` commands were sent: a user sends a signed
   ``/gap FILTERS`` (fresh timestamp, X-Slack-Signature v0; the filters rotate through
   :data:`FILTERS`), reads the HTTP answer (the **ack**), then waits until the trigger
   point's ``chat.postMessage`` reaches FakeSlack before sending the next one, so C
   commands are in flight at any time. Every command comes from a channel id of its own,
   so each post is matched to its command: **command→trigger point** is FakeSlack's
   arrival time (``Call.at``, monotonic, recorded when the request reaches the fake
   server, this process's clock) minus the time the command was sent. The reference gets
   the same C users and command count in a closed loop on the ack (it posts nothing).

   Levels are 1 user, then each ``--concurrency`` (default 20 and 100 users: 2,000
   commands up to 20 users, so that p99 is the 20th worst of them, else 10 per user).
   **Burst** levels (``--burst``, default 20 users): each user sends its next command as
   soon as the previous one is acked, as impatient people do; the level ends when every
   trigger point has arrived. The bare Bolt app's closed loop on the ack is already that.
5. **First /gap after a restart and after a load**: ``sopgap serve`` is stopped and
   started again, and three commands are sent one at a time as soon as ``/healthz``
   answers, then three more 3 s later; the same after a ``sopgap load`` of the file
   (a new snapshot). The restart is done ``--restarts`` times (default 5), the load
   ``--loads`` times (default 5, each a new snapshot), and the goal
   compares the median of the first command after each (every one is printed, and the
   worst) with the same command's median over 9 sent one at a time to the last
   restarted server 3 s after its first (the unloaded level has only 2 of it). For
   information, each later restart also sends one command 3 s after its first: the same
   server warm but idle meanwhile, as between two people's commands, which tells what a
   restart costs from what an idle machine costs (caches gone cold) against commands
   sent back to back.
6. **Where the CPU goes**: the /gap listener's steps (gap maths, the trigger point's
   row, the Block Kit message), run in this process, warm: what is left of the server's
   CPU per command is HTTP, gunicorn, Bolt and the Slack client.

Reported per level: ack p50/p99 (and the ratio to the reference), requests/s,
command→trigger point p50/p95, trigger points received against commands sent (missing,
duplicated, refused by FakeSlack, or answered on the ``response_url`` instead: an error),
non-200 answers and acks slower than Slack's 3 s, and the CPU the servers used per command.
Every goal of the README's table is printed as met/missed with its reference from the
same run, and the git commit measured (and whether the tree was dirty) in the header;
nothing is asserted (shared, noisy machine). SQLite by default, ``--postgres URL`` for
PostgreSQL: run both.

Only 127.0.0.1 traffic; every wait is bounded. Ctrl-C or an error stops the servers
(SIGTERM to each server's process group, SIGKILL if it lingers) and FakeSlack, and drops
the PostgreSQL database.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import hmac
import http.client
import itertools
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import synth
from benchmarks.common import compile_bytecode, git_revision, loadavg, machine, postgres_database

REPO = Path(__file__).resolve().parents[1]
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench-team"
TEAM = "T1"
SLACK_ACK_LIMIT = 3.0  # Slack shows the user an error after 3 s without an answer

# Goals (README "Performance and reliability").
ACK_P99_GOAL = 0.150  # closed loop, 20 users; and at most ACK_RATIO_GOAL × bare Bolt
ACK_RATIO_GOAL = 3.0
BURST_ACK_P99_GOAL = 0.300  # 20 users who send again as soon as they are acked
ACK_GOAL_CONCURRENCY = 20
TRIGGER_P95_GOALS = {20: 0.5, 100: 1.5}  # command → trigger point p95, by users
TRIGGER_P95_GOAL = 1.5  # other levels
FIRST_GAP_RATIO_GOAL = 1.2  # first /gap after a restart or a load, against a warm one
GOAL_REQUESTS = 2_000  # commands at the 20-user levels: p99 is then the 20th worst

DEFAULT_ROWS = 1_000_000
QUICK_ROWS = 100_000
HTTP_TIMEOUT = 30.0  # per request: far above Slack's 3 s, so slow acks are measured
TRIGGER_TIMEOUT = 120.0  # per command: how long a user waits for its trigger point
GRACE = 1.0  # after a level, how long to wait for late (duplicate) posts

# What people type: scopes and options over synth.py's dimensions (region, category,
# segment, channel, customer; metrics revenue and volume; as-of 2026-08, fy = 2026).
FILTERS = (
    "region=EU by=channel",
    "region=EU,NA by=customer",
    "category=Snacks horizon=ytd",
    "region=EU category=Snacks by=channel metric=revenue horizon=fy",
    "region=APAC by=category metric=volume",
    'segment="Key Accounts" by=region horizon=rest',
    "channel=E-commerce by=segment horizon=2026-Q3",
    "region=LATAM,MEA category=Beverages,Coffee by=customer",
)


def _progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# The reference server: a bare Bolt app that only acks, under the same gunicorn settings
# --------------------------------------------------------------------------------------

def reference_wsgi() -> Callable[..., Iterable[bytes]]:
    """``App(...)`` with one listener, ``/gap`` → ``ack()``, and ``GET /healthz``.

    Built like ``bot.app.build_app`` builds the product's (signing secret, bot token,
    client on ``SLACK_API_URL``, ``process_before_response=False``), so Bolt's request
    verification and single-team authorization (one ``auth.test``, then cached) are the
    same on both sides; what it lacks is the product's middleware and listener work.
    """
    from slack_bolt import Ack, App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk import WebClient

    bolt = App(signing_secret=os.environ["SLACK_SIGNING_SECRET"],
               client=WebClient(token=os.environ["SLACK_BOT_TOKEN"],
                                base_url=os.environ["SLACK_API_URL"]),
               process_before_response=False, raise_error_for_unhandled_request=False)

    @bolt.command("/gap")
    def _gap(ack: Ack) -> None:
        ack()

    slack = SlackRequestHandler(bolt)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        return slack(environ, start_response)

    return app


def serve_reference(port: int, workers: int, threads: int) -> None:
    """``bot.server.serve`` itself with the WSGI app swapped: identical gunicorn config
    (``bot.gunicorn_conf``). The workers are forks of this process, so the factory
    gunicorn calls, ``bot.server:create_app()``, is the patched one."""
    import bot.server

    os.environ["SOPGAP_PREFLIGHT_DONE"] = "1"  # a bare Bolt app: nothing to check
    bot.server.create_app = reference_wsgi  # type: ignore[assignment]
    bot.server.serve(["--bind", f"0.0.0.0:{port}", "--workers", str(workers),
                      "--threads", str(threads)])


# --------------------------------------------------------------------------------------
# FakeSlack that wakes the simulated user whose trigger point arrived
# --------------------------------------------------------------------------------------

def watched_slack() -> Any:
    from tests.fakeslack import FakeSlack

    class WatchedSlack(FakeSlack):
        """FakeSlack plus one Event per command's channel, set when a post to it arrives
        (or a message on its response_url: the app's way of reporting an error)."""

        def __init__(self) -> None:
            super().__init__()
            self._expected: dict[str, threading.Event] = {}
            self._expected_lock = threading.Lock()

        def expect(self, channel: str) -> threading.Event:
            event = threading.Event()
            with self._expected_lock:
                self._expected[channel] = event
            return event

        def _arrived(self, channel: str) -> None:
            with self._expected_lock:
                event = self._expected.get(channel)
            if event is not None:
                event.set()

        def handle_api(self, incoming: Any) -> Any:
            reply = super().handle_api(incoming)  # records Call.at = arrival time first
            if incoming.method == "chat.postMessage":
                self._arrived(str(incoming.args.get("channel")))
            return reply

        def handle_response(self, hook_id: str, headers: dict[str, str], body: bytes) -> Any:
            reply = super().handle_response(hook_id, headers, body)
            self._arrived(hook_id)  # the response_url is …/response/<channel id>
            return reply

    return WatchedSlack()


# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int, *, reaped: bool = False) -> tuple[int, float]:
    """(parent pid, CPU seconds user+system) of a process, from /proc/<pid>/stat; with
    ``reaped``, plus the CPU of its children that exited and were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return int(fields[1]), ticks / TICK


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def workers(self) -> list[int]:
        """Pids of the gunicorn workers (children of the master)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if _stat(int(entry.name))[0] == self.process.pid:
                        pids.append(int(entry.name))
        return sorted(pids)

    def cpu_seconds(self) -> float:
        """CPU used so far by the master, its live workers and the workers it replaced
        (gunicorn recycles a worker after ``max_requests``, and reaps it: its CPU then
        counts in the master's children's time)."""
        total = 0.0
        for pid in [self.process.pid, *self.workers()]:
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += _stat(pid, reaped=pid == self.process.pid)[1]
        return total

    def worker_rss(self) -> list[int]:
        sizes = []
        for pid in self.workers():
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) * 1024)
        return sizes

    def stop(self) -> int | None:
        """SIGTERM to the server's process group (gunicorn stops its workers gracefully),
        SIGKILL to the group if it is still there after gunicorn's graceful timeout."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # workers orphaned by a crash
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode


def start_server(name: str, args: list[str], env: dict[str, str], port: int, workdir: Path
                 ) -> Server:
    """Start ``python ARGS`` in a session of its own (Ctrl-C reaches only us; we stop it),
    output to a log file, and wait until ``GET /healthz`` answers 200."""
    log = workdir / f"{name}.log"
    # gunicorn puts its control socket in $XDG_RUNTIME_DIR (else ~/.gunicorn, shared by
    # every gunicorn of the user): one directory per server, inside the work directory.
    runtime = workdir / f"{name}.run"
    runtime.mkdir(mode=0o700)
    env = {**env, "XDG_RUNTIME_DIR": str(runtime)}
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, *args], env=env, cwd=REPO,
                                   stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 90
    while True:
        with contextlib.suppress(OSError):
            status, _ = http_request("GET", server.url, "/healthz", timeout=2)
            if status == 200:
                return server
        if time.monotonic() > deadline or process.poll() is not None:
            server.stop()
            raise RuntimeError(f"{name} did not come up:\n{server.tail()}")
        time.sleep(0.2)


def child_env(database_url: str, slack_url: str | None) -> dict[str, str]:
    """This environment without Slack or sopgap settings, plus the run's own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "SOPGAP_")) and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": database_url, "PYTHONPATH": str(REPO)})
    if slack_url is not None:
        env.update({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                    "SLACK_API_URL": slack_url,
                    # Every gap crosses the rule, so every /gap posts a trigger point into
                    # its channel (a gap within the rule is answered privately).
                    "SOPGAP_THRESHOLD_PCT": "0"})
    return env


# --------------------------------------------------------------------------------------
# The database and the snapshot
# --------------------------------------------------------------------------------------

@contextlib.contextmanager
def database(postgres: str | None, workdir: Path) -> Iterator[str]:
    """A fresh database for the run: a SQLite file in ``workdir``, or a new PostgreSQL
    database on the server of ``postgres`` (an admin URL), dropped afterwards."""
    if postgres is None:
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    with postgres_database(postgres, "sopgap_bench") as url:
        yield url


def load_snapshot(url: str, info: synth.SynthInfo) -> str:
    """``sopgap db upgrade`` (PostgreSQL), then ``sopgap load FILE``; its summary line."""
    env = child_env(url, None)  # no Slack settings: the load posts nothing
    steps = [["db", "upgrade"]] if not url.startswith("sqlite") else []
    output = ""
    for step in [*steps, ["load", info.path]]:
        done = subprocess.run([sys.executable, "-m", "bot.cli", *step], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"sopgap {' '.join(step)} failed ({done.returncode}):\n"
                               f"{done.stdout[-3000:]}")
        output = done.stdout
    return " ".join(output.split())


# --------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------

def sign(timestamp: str, body: bytes) -> str:
    """Slack's request signature: v0=HMAC-SHA256(secret, ``v0:{timestamp}:{body}``)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()


def http_request(method: str, url: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = HTTP_TIMEOUT
                 ) -> tuple[int, bytes]:
    """One request on a new connection (as Slack's deliveries come); (status, body)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Sample:
    channel: str
    text: str
    sent: float  # time.monotonic() just before the request
    ack: float  # seconds to the whole HTTP answer
    status: int  # 0: no answer (refused, reset, timed out)
    trigger: float | None = None  # seconds from sending to the first post's arrival
    posts: int = 0  # chat.postMessage calls to the command's channel
    refused: int = 0  # of which FakeSlack did not accept
    replied: str | None = None  # a message on the response_url (an error), if any


def send_command(url: str, text: str, channel: str, user: str, response_root: str
                 ) -> tuple[float, float, int]:
    """One signed slash command, as Slack sends it; (sent, seconds to answer, status)."""
    body = urllib.parse.urlencode({
        "token": "deprecated", "team_id": TEAM, "team_domain": "bench",
        "channel_id": channel, "channel_name": "sop", "user_id": user,
        "user_name": user.lower(), "command": "/gap", "text": text,
        "api_app_id": "A0SOPGAP", "is_enterprise_install": "false",
        "response_url": f"{response_root}/response/{channel}", "trigger_id": f"trig.{channel}",
    }).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Slack-Request-Timestamp": timestamp,
               "X-Slack-Signature": sign(timestamp, body)}
    sent = time.monotonic()
    try:
        status, _ = http_request("POST", url, "/slack/events", body, headers)
    except OSError:  # refused, reset, timed out: Slack would show the user an error
        status = 0
    return sent, time.monotonic() - sent, status


def postgres_cpu_seconds() -> dict[int, float]:
    """CPU used so far by each of the machine's PostgreSQL processes (the server's
    backends do a command's SQL work: on PostgreSQL that is CPU the servers' own figure
    leaves out), by process id."""
    used = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = (entry / "stat").read_text()
                if text.split("(", 1)[1].startswith("postgres)"):
                    fields = text.rsplit(")", 1)[1].split()
                    used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return used


def postgres_cpu_since(before: dict[int, float]) -> float:
    """PostgreSQL's CPU since ``before``, process by process: a backend that started
    since counts whole; one that exited takes what it used since with it (a sum of the
    totals went negative when the pool closed busy backends)."""
    total = 0.0
    for pid, used in postgres_cpu_seconds().items():
        since = used - before.get(pid, 0.0)
        total += since if since >= 0 else used  # less than before: a new process, same id
    return total


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Level:
    app: str  # "sopgap" or "bare Bolt"
    concurrency: int
    samples: list[Sample]
    seconds: float
    server_cpu: float  # CPU seconds the server's processes used during the level
    harness_cpu: float  # CPU seconds of this process (FakeSlack, the simulated users)
    database_cpu: float  # CPU seconds of PostgreSQL's processes (0 on SQLite: in-process)
    machine_busy: float  # share of the machine's cores busy during the level (all work)
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    interrupted: bool = False
    burst: bool = False

    @property
    def acks(self) -> np.ndarray:
        return np.array([s.ack for s in self.samples])

    @property
    def triggers(self) -> np.ndarray:
        return np.array([s.trigger for s in self.samples if s.trigger is not None])

    @property
    def per_second(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else float("nan")


_run_ids = itertools.count(1)


class Stop(Exception):
    """Raised in the main thread on SIGTERM, so that the cleanup runs as on Ctrl-C."""


def run_level(app: str, server: Server, slack: Any, concurrency: int, requests: int,
              texts: Iterable[str], *, wait_triggers: bool, stop: threading.Event,
              burst: bool = False) -> Level:
    """``concurrency`` users in a closed loop until ``requests`` commands were sent. A
    user sends its next command once the previous one's trigger point arrived, or, with
    ``burst``, as soon as it is acked (the trigger points are waited for at the end)."""
    run = next(_run_ids)
    pending: list[threading.Event] = []
    texts = list(texts)
    counter = itertools.count()
    samples: list[Sample] = []
    lock = threading.Lock()

    def user(k: int) -> None:
        while not stop.is_set():
            i = next(counter)
            if i >= requests:
                return
            channel = f"C{run:03d}X{i:06d}"
            arrived = slack.expect(channel) if wait_triggers else None
            text = texts[i % len(texts)]
            sent, ack, status = send_command(server.url, text, channel, f"U{k:04d}",
                                             slack.root_url)
            with lock:
                samples.append(Sample(channel, text, sent, ack, status))
                if arrived is not None and status != 0:
                    pending.append(arrived)
            if arrived is not None and status != 0 and not burst:
                # A late ack (Bolt answers 404 after 3 s) does not cancel the work: wait
                # for it too, so that no more than `concurrency` commands are in flight.
                deadline = time.monotonic() + TRIGGER_TIMEOUT
                while not arrived.wait(0.25) and not stop.is_set():
                    if time.monotonic() > deadline:
                        break

    load_before, cpu_before, busy_before = os.getloadavg(), server.cpu_seconds(), _busy_ticks()
    harness_before, database_before = time.process_time(), postgres_cpu_seconds()
    started = time.monotonic()
    threads = [threading.Thread(target=user, args=(k,), name=f"{app}-{k}", daemon=True)
               for k in range(concurrency)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    finally:
        if any(thread.is_alive() for thread in threads):  # Ctrl-C, SIGTERM
            stop.set()
            deadline = time.monotonic() + HTTP_TIMEOUT + 1
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
    if burst and wait_triggers:  # the level ends when its last trigger point is in
        deadline = time.monotonic() + TRIGGER_TIMEOUT
        for arrived in pending:
            while not arrived.wait(0.25) and not stop.is_set():
                if time.monotonic() > deadline:
                    break
    seconds = time.monotonic() - started
    busy_after = _busy_ticks()
    level = Level(app, concurrency, samples, seconds, server.cpu_seconds() - cpu_before,
                  time.process_time() - harness_before,
                  postgres_cpu_since(database_before),
                  (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1]),
                  load_before, os.getloadavg(), interrupted=stop.is_set(), burst=burst)
    if wait_triggers:
        time.sleep(GRACE)  # a duplicate post would come right after the first
        match_posts(slack, samples)
    return level


def match_posts(slack: Any, samples: list[Sample]) -> None:
    """Each command's posts, from FakeSlack's record (``Call.at``: arrival, monotonic)."""
    posts: dict[str, list[Any]] = {}
    replied: dict[str, str] = {}
    for call in slack.calls:
        if call.method == "chat.postMessage":
            posts.setdefault(str(call.args.get("channel")), []).append(call)
        elif call.method == "response_url":
            replied.setdefault(str(call.args.get("hook")), str(call.args.get("text")))
    for sample in samples:
        found = posts.get(sample.channel, [])
        sample.posts = len(found)
        sample.refused = sum(1 for call in found if not call.ok)
        if found:
            sample.trigger = min(call.at for call in found) - sample.sent
        sample.replied = replied.get(sample.channel)


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------

def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def ms(seconds: float) -> str:
    """Milliseconds: one decimal below 1 s, none above; a dash for NaN."""
    if seconds != seconds:
        return "—"
    return f"{seconds * 1000:,.0f}" if seconds >= 1 else f"{seconds * 1000:.1f}"


def ratio(a: float, b: float) -> str:
    """a / b with two significant digits or more (0.021×, 1.4×, 47×)."""
    if not b or a != a or b != b:
        return "—"
    value = a / b
    return f"{value:.0f}×" if value >= 10 else f"{value:.2g}×"


def versions() -> str:
    from importlib.metadata import version

    names = ("slack_bolt", "slack_sdk", "gunicorn", "SQLAlchemy", "pandas", "pyarrow")
    return ", ".join(f"{name} {version(name)}" for name in names)


# The code on the /gap path, hashed so that runs of different code can be told apart.
MEASURED_FILES = ("bot/app.py", "bot/server.py", "bot/listeners/commands.py",
                  "sop_core/services/data.py", "sop_core/services/triggers.py",
                  "sop_core/gaps.py", "sop_core/snapshots.py")


def code_fingerprint() -> str:
    return ", ".join(f"{name} {hashlib.sha256((REPO / name).read_bytes()).hexdigest()[:8]}"
                     for name in MEASURED_FILES)


HEADER = (f"  {'':<10}{'ack p50':>9}{'ack p99':>9}{'ack max':>9}{'req/s':>8}"
          f"{'TP p50':>9}{'TP p95':>9}{'TP max':>9}{'TPs/sent':>11}{'CPU/req':>9}"
          f"{'bench':>9}{'db':>7}{'busy':>6}")


def row(level: Level) -> str:
    acks, triggers = level.acks, level.triggers
    if level.app == "sopgap":
        received = sum(1 for s in level.samples if s.posts > s.refused)  # one accepted
        tp = (f"{ms(pct(triggers, 50)):>9}{ms(pct(triggers, 95)):>9}"
              f"{ms(float(triggers.max()) if len(triggers) else float('nan')):>9}"
              f"{f'{received}/{len(level.samples)}':>11}")
    else:
        tp = f"{'—':>9}{'—':>9}{'—':>9}{'—':>11}"
    cpu = level.server_cpu / len(level.samples) if level.samples else float("nan")
    harness = level.harness_cpu / len(level.samples) if level.samples else float("nan")
    database = level.database_cpu / len(level.samples) if level.samples else float("nan")
    return (f"  {level.app:<10}{ms(pct(acks, 50)):>9}{ms(pct(acks, 99)):>9}"
            f"{ms(float(acks.max()) if len(acks) else float('nan')):>9}"
            f"{level.per_second:>8.1f}{tp}{ms(cpu):>9}{ms(harness):>9}{ms(database):>7}"
            f"{level.machine_busy:>6.0%}")


def problems(level: Level) -> list[str]:
    """What a Slack user would have seen go wrong, and anything unmatched."""
    found = []
    statuses = Counter(s.status for s in level.samples if s.status != 200)
    if statuses:
        found.append(f"{sum(statuses.values())} non-200 answers ("
                     + ", ".join(f"{n}× {'no answer' if code == 0 else code}"
                                 for code, n in sorted(statuses.items())) + ")")
    late = sum(1 for s in level.samples if s.ack > SLACK_ACK_LIMIT)
    if late:
        found.append(f"{late} acks slower than Slack's {SLACK_ACK_LIMIT:g} s")
    if level.app == "sopgap":
        missing = [s for s in level.samples if not s.posts]
        duplicated = [s for s in level.samples if s.posts > 1]
        refused = sum(s.refused for s in level.samples)
        replied = [s for s in level.samples if s.replied is not None]
        if missing:
            found.append(f"{len(missing)} trigger points missing")
        if duplicated:
            found.append(f"{len(duplicated)} commands posted more than once "
                         f"({sum(s.posts - 1 for s in duplicated)} extra posts)")
        if refused:
            found.append(f"{refused} posts refused by FakeSlack")
        if replied:
            found.append(f"{len(replied)} answered on the response_url (first: "
                         f"`{replied[0].text}` → “{replied[0].replied}”)")
    if level.interrupted:
        found.append("interrupted")
    return found


def print_level(reference: Level, ours: Level, requests: int) -> None:
    c = ours.concurrency
    label = "1 user (unloaded baseline)" if c == 1 else f"{c} concurrent users"
    if ours.burst:
        print(f"\n{label}, BURST: {requests} commands to each app; every user sends its "
              "next command as soon as the previous one is acked (trigger points pile up "
              "behind the work slots; TP is still command→trigger point)")
    else:
        print(f"\n{label}: {requests} commands to each app, closed loop "
              f"(a user sends its next command once the previous one's trigger point "
              f"arrived; the bare Bolt app's users, once acked)")
    print(HEADER)
    print(row(reference))
    print(row(ours))
    print(f"  {'ratio':<10}{ratio(pct(ours.acks, 50), pct(reference.acks, 50)):>9}"
          f"{ratio(pct(ours.acks, 99), pct(reference.acks, 99)):>9}"
          f"{ratio(float(ours.acks.max()), float(reference.acks.max())):>9}"
          f"{ratio(ours.per_second, reference.per_second):>8}")
    for level in (reference, ours):
        found = problems(level)
        print(f"  {level.app}: " + ("; ".join(found) if found else "no errors")
              + ("; every trigger point arrived exactly once" if level.app == "sopgap"
                 and not found else ""))
    print(f"  load average (1/5/15 min) before {loadavg(reference.load_before)}, "
          f"after {loadavg(ours.load_after)}")
    sys.stdout.flush()


def print_filters(level: Level) -> None:
    """command→trigger point per filter text, from the unloaded level."""
    print("  unloaded command→trigger point by filter (median ms):")
    by_text: dict[str, list[float]] = {}
    for sample in level.samples:
        if sample.trigger is not None:
            by_text.setdefault(sample.text, []).append(sample.trigger)
    for text in FILTERS:
        values = by_text.get(text)
        shown = ms(float(np.median(values))) if values else "—"
        print(f"    {shown:>7}  /gap {text}")


def verdict(met: bool) -> str:
    return "met   " if met else "MISSED"


@dataclass
class FirstGap:
    """Command→trigger point of the first commands after an event (a restart, a load),
    one at a time, against the same command warm."""

    event: str
    after_event: list[float | None]  # after the first event: sent at once, one by one
    settled: list[float | None]  # the same, SETTLE seconds later
    warm: float  # the same command, warm (see main(): how each event's is measured)
    firsts: list[float | None]  # the very first command after each time the event happened
    # The first command SETTLE seconds after each event's (the same server, warm but idle
    # meanwhile, as between two people's commands): info, to tell a restart's cost from
    # an idle machine's (cold CPU caches) against the back-to-back warm reference.
    idle_firsts: list[float | None] = dataclasses.field(default_factory=list)

    def first(self) -> float | None:
        """The median first command: one sample of a 20 ms command is mostly noise."""
        seen = [value for value in self.firsts if value is not None]
        return float(np.median(seen)) if len(seen) == len(self.firsts) else None

    def first_ratio(self) -> float:
        first = self.first()
        return first / self.warm if first is not None and self.warm else float("nan")


def _seconds(values: list[float | None]) -> str:
    return ", ".join("—" if v is None else f"{v:.3f}" for v in values)


def summary(results: list[tuple[Level, Level]], firsts: list[FirstGap],
            breakdown: dict[str, float] | None) -> None:
    """Every goal of the README table against its reference, measured in this run."""
    print("\n=== goals (each with its reference from this run) ===")
    for reference, ours in results:
        c = ours.concurrency
        if c == 1:
            continue
        ack99, ref99, tp95 = pct(ours.acks, 99), pct(reference.acks, 99), pct(ours.triggers, 95)
        count = len(ours.samples) or float("nan")
        cpu, harness, database = (ours.server_cpu / count, ours.harness_cpu / count,
                                  ours.database_cpu / count)
        missing = sum(1 for s in ours.samples if s.posts != 1)
        kind = "burst" if ours.burst else "closed loop"
        if c == ACK_GOAL_CONCURRENCY and not ours.burst:
            print(f"  {verdict(ack99 < ACK_P99_GOAL)} ack p99 < {ACK_P99_GOAL * 1000:.0f} ms, "
                  f"{c} users {kind}, {len(ours.samples):,} commands: {ack99 * 1000:,.0f} ms "
                  f"(bare Bolt, same users: {ref99 * 1000:,.1f} ms)")
            print(f"  {verdict(ack99 <= ACK_RATIO_GOAL * ref99)} ack p99 ≤ {ACK_RATIO_GOAL:g}× "
                  f"bare Bolt, {c} users {kind}: {ratio(ack99, ref99)}")
        if c == ACK_GOAL_CONCURRENCY and ours.burst:
            print(f"  {verdict(ack99 < BURST_ACK_P99_GOAL)} ack p99 < "
                  f"{BURST_ACK_P99_GOAL * 1000:.0f} ms, {c} users burst, "
                  f"{len(ours.samples):,} commands: {ack99 * 1000:,.0f} ms (bare Bolt, same "
                  f"users sending on each ack: {ref99 * 1000:,.1f} ms)")
        goal = TRIGGER_P95_GOALS.get(c, TRIGGER_P95_GOAL) if not ours.burst else None
        line = (f"command→trigger point p95 at {c} users {kind}: {tp95:.2f} s; "
                f"{ours.per_second:.0f} commands/s; CPU a command: server {cpu * 1000:.0f} ms, "
                f"FakeSlack and the users {harness * 1000:.0f} ms"
                + (f", PostgreSQL {database * 1000:.0f} ms" if database > 0 else "")
                + (f" ({missing} commands without exactly one trigger point)"
                   if missing else ""))
        if goal is not None:
            print(f"  {verdict(tp95 < goal and not missing)} {line} (goal < {goal:g} s)")
        else:
            print(f"  {'info  '} {line}")
        print(f"  {verdict(ack99 < SLACK_ACK_LIMIT)} ack p99 < Slack's "
              f"{SLACK_ACK_LIMIT * 1000:,.0f} ms at {c} users {kind}: {ack99 * 1000:,.0f} ms")
    for first in firsts:
        value = first.first()
        seen = [v for v in first.firsts if v is not None]
        times = (f"median of {len(first.firsts)} ({_seconds(first.firsts)} s; worst "
                 f"{max(seen) / first.warm:.2f}×)" if len(first.firsts) > 1 and seen else "")
        print(f"  {verdict(first.first_ratio() <= FIRST_GAP_RATIO_GOAL)} first /gap after "
              f"{first.event} ≤ {FIRST_GAP_RATIO_GOAL:g}× warm: "
              f"{'—' if value is None else f'{value:.3f} s'} {times} against "
              f"{first.warm:.3f} s warm ({first.first_ratio():.2f}×); after the first "
              f"{first.event}, the next ones: {_seconds(first.after_event[1:])} s; "
              f"{SETTLE:g} s later: {_seconds(first.settled)} s")
        idle = [v for v in first.idle_firsts if v is not None]
        if len(idle) > 1 and first.first() is not None:
            print(f"  info   the same server's first command {SETTLE:g} s after each "
                  f"{first.event.split(' (')[0].removeprefix('a ')} (warm, idle meanwhile): median "
                  f"{np.median(idle):.3f} s ({_seconds(first.idle_firsts)} s), "
                  f"{np.median(idle) / first.warm:.2f}× the back-to-back warm one; the "
                  f"first after the event is {first.first() / np.median(idle):.2f}× it")
    if breakdown:
        total = sum(breakdown.values())
        print("  where a command's CPU goes, in-process, warm (ms): "
              + ", ".join(f"{name} {value * 1000:.1f}" for name, value in breakdown.items())
              + f"; sum {total * 1000:.1f}. The rest of CPU/req above is HTTP, gunicorn, "
              "Bolt (signature, parsing, listener threads), the Slack client and logging.")


SETTLE = 3.0  # seconds: after an event, when the background warm-up has surely run
RESTARTS = 5  # restarts probed: the first /gap after one is a single sample each time
LOADS = 5  # loads probed, likewise
WARM_SAMPLES = 9  # the warm reference's commands (the unloaded level has 2 of that one)


def probe_first(event: str, server: Server, slack: Any, stop: threading.Event,
                warm: float, count: int = 3) -> FirstGap:
    """``count`` commands one at a time right away, then again after SETTLE seconds.
    (Events repeated: :func:`repeated`.)"""
    text = FILTERS[0]

    def one_by_one() -> list[float | None]:
        level = run_level("sopgap", server, slack, 1, count, [text], wait_triggers=True,
                          stop=stop)
        return [s.trigger for s in sorted(level.samples, key=lambda s: s.sent)]

    right_away = one_by_one()
    time.sleep(SETTLE)
    return FirstGap(event, right_away, one_by_one(), warm, right_away[:1])


def steady_median(server: Server, slack: Any, stop: threading.Event) -> float:
    """The reference for the first /gap: the same command, one at a time, on the same
    (restarted) server once its warm-up is surely over."""
    time.sleep(SETTLE)
    level = run_level("sopgap", server, slack, 1, WARM_SAMPLES, [FILTERS[0]],
                      wait_triggers=True, stop=stop)
    return float(np.median([s.trigger for s in level.samples if s.trigger is not None]))


def repeated(probes: list[FirstGap], warm: float) -> FirstGap:
    """The same event probed again and again: the first probe in full, the very first
    command after each, against ``warm``."""
    return dataclasses.replace(probes[0], firsts=[p.after_event[0] for p in probes],
                               idle_firsts=[p.settled[0] for p in probes if p.settled],
                               warm=warm)


def cpu_breakdown(url: str, rounds: int = 3) -> dict[str, float]:
    """The /gap listener's steps, in this process, warm, CPU seconds per command (median
    over the filters of the best of ``rounds``): what the server spends on the command
    itself, the rest being the HTTP and Slack plumbing."""
    import json

    from bot.blocks.trigger import trigger_point_blocks
    from sop_core.db import session_factory
    from sop_core.gaps import TriggerRule
    from sop_core.services import triggers
    from sop_core.services.data import gap_report

    sessions = session_factory(url)
    steps: dict[str, list[float]] = {"gap (filters, maths, PVM, movement)": [],
                                     "trigger point row (DB write)": [],
                                     "Block Kit message (build, JSON)": []}
    for i, text in enumerate(FILTERS):
        best = [float("inf")] * 3
        for _ in range(rounds):
            t0 = time.thread_time()
            with sessions() as session:
                # The shared data (`sopgap load` without --team), as this process sees it.
                report = gap_report(session, text, team_id="", rule=TriggerRule(0.0),
                                    explain=True)
            t1 = time.thread_time()
            point = triggers.record(sessions, report, team_id=TEAM, channel_id=f"CPU{i:03d}",
                                    created_by="U0")
            t2 = time.thread_time()
            json.dumps(trigger_point_blocks(report, trigger_point_id=point), default=str)
            t3 = time.thread_time()
            best = [min(b, v) for b, v in zip(best, (t1 - t0, t2 - t1, t3 - t2), strict=True)]
        for name, value in zip(steps, best, strict=True):
            steps[name].append(value)
    return {name: float(np.median(values)) for name, values in steps.items()}


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def _parse_rows(text: str) -> int:
    units = {"k": 1_000, "m": 1_000_000}
    suffix = text[-1].lower()
    return int(float(text[:-1]) * units[suffix] if suffix in units else float(text))


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise Stop("SIGTERM")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="/gap under load through sopgap serve and FakeSlack, against a bare "
                    "Bolt app that only acks (figures only, no assertions).")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_ROWS:,} rows and fewer commands: check that it runs")
    parser.add_argument("--rows", type=_parse_rows, default=None,
                        help=f"snapshot size, e.g. 1M or 250000 (default {DEFAULT_ROWS:,})")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[20, 100],
                        help="simulated users in flight, one level per value (default 20 100)")
    parser.add_argument("--requests", type=int, default=None,
                        help=f"commands per level and app (default {GOAL_REQUESTS:,} up to "
                             f"{ACK_GOAL_CONCURRENCY} users, else 10 × users; --quick: "
                             "max(40, 2 × users))")
    parser.add_argument("--burst", type=int, nargs="*", default=[ACK_GOAL_CONCURRENCY],
                        help="users for the burst levels (send again once acked; default "
                             f"{ACK_GOAL_CONCURRENCY}; none: --burst with no value)")
    parser.add_argument("--workers", type=int, default=2,
                        help="gunicorn workers, both apps (default 2, as `sopgap serve`)")
    parser.add_argument("--threads", type=int, default=8,
                        help="gunicorn threads per worker, both apps (default 8, as "
                             "`sopgap serve`)")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="a PostgreSQL server's admin URL, e.g. postgresql://postgres@"
                             "127.0.0.1:5432/postgres (a database is made and dropped); "
                             "default: a SQLite file")
    parser.add_argument("--restarts", type=int, default=RESTARTS,
                        help=f"times `sopgap serve` is restarted for its first /gap (default "
                             f"{RESTARTS}; the median first is reported, with each)")
    parser.add_argument("--loads", type=int, default=LOADS,
                        help=f"times the file is loaded again for the first /gap after a "
                             f"load (default {LOADS}; the median first is reported, with each)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (server logs, SQLite database)")
    parser.add_argument("--serve-reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_reference:
        serve_reference(args.port, args.workers, args.threads)
        return
    if any(c < 1 for c in args.concurrency) or (args.requests or 1) < 1 or args.restarts < 1 \
            or args.loads < 1:
        parser.error("--concurrency, --requests, --restarts and --loads must be positive")
    rows = args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)

    def requests_for(concurrency: int) -> int:
        if args.requests:
            return args.requests
        if args.quick:
            return max(40, 2 * concurrency)
        return GOAL_REQUESTS if concurrency <= ACK_GOAL_CONCURRENCY else 10 * concurrency

    signal.signal(signal.SIGTERM, _on_sigterm)
    print("sopgap Slack path benchmark (benchmarks/slack_path.py)")
    print(f"date        {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine     {machine()}")
    print(f"python      {platform.python_version()} ({sys.executable})")
    print(f"libraries   {versions()}")
    print(f"commit      {git_revision()}")
    print(f"measured    {code_fingerprint()}")
    print(f"bytecode    {compile_bytecode(REPO)}")
    sys.stdout.flush()
    info = synth.ensure(rows)
    if info.seconds:
        _progress(f"generated {info.path} in {info.seconds:.1f} s")
    workdir = Path(tempfile.mkdtemp(prefix="sopgap-slack-bench-"))
    servers: list[Server] = []
    stop = threading.Event()
    slack = watched_slack()
    slack.add_team(TEAM, BOT_TOKEN)
    slack.start()
    try:
        with database(args.postgres, workdir) as url:
            backend = "SQLite file" if url.startswith("sqlite") else "PostgreSQL"
            _progress(f"loading {info.rows:,} rows with `sopgap load` into {backend} …")
            started = time.perf_counter()
            loaded = load_snapshot(url, info)
            print(f"snapshot    {info.rows:,} rows ({info.unique_rows:,} after merging "
                  f"duplicates, {info.customers:,} customers) from {Path(info.path).name}, "
                  f"loaded into {backend} in {time.perf_counter() - started:.1f} s: {loaded}")
            env = child_env(url, slack.url)
            ours_port, reference_port = free_port(), free_port()
            _progress("starting sopgap serve and the reference …")
            servers.append(start_server("sopgap", [
                "-m", "bot.cli", "serve", "--port", str(ours_port), "--workers",
                str(args.workers), "--threads", str(args.threads)], env, ours_port, workdir))
            servers.append(start_server("reference", [
                "-m", "benchmarks.slack_path", "--serve-reference", "--port",
                str(reference_port), "--workers", str(args.workers), "--threads",
                str(args.threads)], env, reference_port, workdir))
            print(f"servers     gunicorn gthread, {args.workers} workers × {args.threads} "
                  f"threads, for both `sopgap serve` and the bare Bolt app; FakeSlack and "
                  f"the {max(args.concurrency)} client threads share this machine; logs in "
                  f"{workdir}{'' if args.keep else ' (removed at the end; --keep keeps them)'}")
            sys.stdout.flush()
            results = measure(args, servers[0], servers[1], slack, stop, requests_for)
            unloaded = next(ours for _, ours in results if ours.concurrency == 1)
            level_warm = float(np.median([x.trigger for x in unloaded.samples
                                          if x.text == FILTERS[0] and x.trigger is not None]))
            restarts = []
            for attempt in range(1, args.restarts + 1):
                _progress(f"restart {attempt} of {args.restarts}: the first commands after "
                          "`sopgap serve` restarts …")
                servers[0].stop()
                servers[0] = start_server(f"sopgap-restart-{attempt}", [
                    "-m", "bot.cli", "serve", "--port", str(ours_port), "--workers",
                    str(args.workers), "--threads", str(args.threads)], env, ours_port,
                    workdir)
                restarts.append(probe_first("a restart (sent as soon as /healthz answers)",
                                            servers[0], slack, stop, level_warm,
                                            count=3 if attempt == 1 else 1))
            warm = steady_median(servers[0], slack, stop)
            print(f"\nwarm reference: the same command {WARM_SAMPLES} times one at a time on "
                  f"the last restarted server, {SETTLE:g} s after its first: median "
                  f"{warm:.3f} s (in the unloaded level: {level_warm:.3f} s, 2 samples)")
            firsts = [repeated(restarts, warm)]
            loads = []
            for attempt in range(1, args.loads + 1):
                _progress(f"load {attempt} of {args.loads}: the first commands after "
                          "`sopgap load` …")
                load_snapshot(url, info)
                loads.append(probe_first("a load (sent as soon as `sopgap load` exits)",
                                         servers[0], slack, stop, warm,
                                         count=3 if attempt == 1 else 1))
            firsts.append(repeated(loads, warm))
            for first in firsts:
                print(f"\nfirst /gap after {first.event}: {_seconds(first.after_event)} s; "
                      f"{SETTLE:g} s later: {_seconds(first.settled)} s; warm median of "
                      f"the same command: {first.warm:.3f} s")
            _progress("where the CPU goes (in-process) …")
            breakdown = cpu_breakdown(url)
            violations = slack.violations
            print(f"\nFakeSlack violations: {len(violations)}"
                  + (f" (first: {violations[0]})" if violations else ""))
            summary(results, firsts, breakdown)
    except (KeyboardInterrupt, Stop) as interruption:
        stop.set()
        print(f"\ninterrupted ({type(interruption).__name__}): stopping the servers",
              file=sys.stderr)
        raise SystemExit(143 if isinstance(interruption, Stop) else 130) from None
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the cleanup finish
        for server in reversed(servers):
            code = server.stop()
            if code not in (0, None, -signal.SIGTERM):
                print(f"({server.name} exited with {code}; log tail:\n{server.tail(1500)})",
                      file=sys.stderr)
        slack.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def measure(args: argparse.Namespace, ours: Server, reference: Server, slack: Any,
            stop: threading.Event, requests_for: Callable[[int], int]
            ) -> list[tuple[Level, Level]]:
    # Warm-up: enough concurrent commands that every worker decodes the snapshot once.
    _progress("warm-up …")
    rss_before = ours.worker_rss()
    warm = run_level("sopgap", ours, slack, 2 * args.workers, 4 * args.workers, FILTERS,
                     wait_triggers=True, stop=stop)
    run_level("bare Bolt", reference, slack, 2 * args.workers, 4 * args.workers, FILTERS,
              wait_triggers=False, stop=stop)
    first = sorted(warm.samples, key=lambda s: s.sent)
    print(f"warm-up     {len(first)} commands, {2 * args.workers} at a time, command→trigger "
          "point in send order: "
          + ", ".join("—" if s.trigger is None else f"{s.trigger:.2f}" for s in first) + " s;"
          " worker RSS " + ", ".join(f"{b / 2**20:.0f}→{a / 2**20:.0f} MB" for b, a in
                                     zip(rss_before, ours.worker_rss(), strict=False)))
    if any(s.status != 200 or s.posts != 1 or s.replied for s in first):
        print("            warm-up problems: " + "; ".join(problems(warm)))
    results = []
    for concurrency in [1, *args.concurrency]:
        requests = 2 * len(FILTERS) if concurrency == 1 else requests_for(concurrency)
        users = "1 user" if concurrency == 1 else f"{concurrency} users"
        _progress(f"{users}, {requests} commands: bare Bolt …")
        ref = run_level("bare Bolt", reference, slack, concurrency, requests, FILTERS,
                        wait_triggers=False, stop=stop)
        _progress(f"{users}, {requests} commands: sopgap …")
        level = run_level("sopgap", ours, slack, concurrency, requests, FILTERS,
                          wait_triggers=True, stop=stop)
        print_level(ref, level, requests)
        if concurrency == 1:
            print_filters(level)
        results.append((ref, level))
        if concurrency in args.burst:
            _progress(f"{users}, {requests} commands, burst: sopgap …")
            level = run_level("sopgap", ours, slack, concurrency, requests, FILTERS,
                              wait_triggers=True, stop=stop, burst=True)
            print_level(ref, level, requests)  # bare Bolt's users already send on the ack
            results.append((ref, level))
    print("\ncolumns: ack = HTTP answer to the signed command (ms); req/s = commands sent per "
          "second of the level; TP = command→trigger point: the chat.postMessage's arrival "
          "at FakeSlack (ms); TPs/sent = commands with a trigger point; CPU/req = CPU time "
          "of the server's processes per command (ms), workers replaced during the level "
          "included; bench = CPU of this process (FakeSlack and the simulated users) per "
          "command (ms); db = CPU of PostgreSQL's processes per command (ms; SQLite works inside "
          "the servers' processes); busy = the machine's cores in use during the level (all "
          "processes, this one included)")
    return results


if __name__ == "__main__":
    main()
