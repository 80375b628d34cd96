"""Nothing happens before a request is authenticated: unsigned, malformed, oversized and
signed-but-malformed requests over real HTTP, with a sink that records any outbound call."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.request_guard import MAX_BODY_BYTES, guard_slack_requests
from sop_core.config import get_settings
from tests.e2e.conftest import SIGNING_SECRET, Running
from tests.e2e.slack_sim import SlackSim, sign
from tests.fakeslack import FakeSlack

FORM = "application/x-www-form-urlencoded"


class Sink:
    """A local HTTP server that records every request it gets: anything the app sends
    to a URL taken from a request body lands here."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sink.hits.append(self.path)
                self.send_response(200)
                self.end_headers()

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink(app_server: Running, slack: FakeSlack) -> Iterator[Sink]:
    """Also forgets the calls the app made starting up (Bolt's ``auth.test``)."""
    running = Sink()
    slack.reset()
    yield running
    running.close()


def command_body(sink: Sink) -> bytes:
    return urllib.parse.urlencode({
        "command": "/gap", "text": "region=EU", "team_id": "T1", "channel_id": "C1",
        "user_id": "U1", "trigger_id": "1.2.3", "api_app_id": "A0SOPGAP",
        "response_url": sink.url + "/commands/T1/1/hook"}).encode()


def nothing_went_out(sink: Sink, slack: FakeSlack) -> None:
    time.sleep(0.5)  # what Bolt would do after the answer has time to happen
    assert sink.hits == []
    assert slack.calls == []


@pytest.mark.parametrize("timestamp", ["abc", "9" * 5000, "", " 1", "-1", "1e9", "1" * 13])
def test_a_malformed_timestamp_gets_401_and_nothing_is_called(
        sim: SlackSim, slack: FakeSlack, sink: Sink, timestamp: str) -> None:
    body = command_body(sink)
    reply = sim.post(body, FORM, headers={"X-Slack-Request-Timestamp": timestamp},
                     signature=sign(SIGNING_SECRET, timestamp, body))
    assert reply.status == 401
    nothing_went_out(sink, slack)


@pytest.mark.parametrize("signature", ["", "v0=", "v0=" + "0" * 64, "v1=" + "a" * 64,
                                       "v0=" + "A" * 64, "x" * 10_000])
def test_a_bad_or_missing_signature_gets_401_and_nothing_is_called(
        sim: SlackSim, slack: FakeSlack, sink: Sink, signature: str) -> None:
    assert sim.post(command_body(sink), FORM, signature=signature).status == 401
    nothing_went_out(sink, slack)


def test_a_stale_signature_gets_401(sim: SlackSim, slack: FakeSlack, sink: Sink) -> None:
    body = command_body(sink)
    stale = str(int(time.time()) - 6 * 60)
    assert sim.post(body, FORM, timestamp=stale,
                    signature=sign(SIGNING_SECRET, stale, body)).status == 401
    nothing_went_out(sink, slack)


@pytest.mark.parametrize(("content_type", "body"), [
    (FORM, b"payload=not-json"),
    (FORM, b"payload=%5B1%2C2%5D"),  # JSON, but not an object
    (FORM, b"\xff\xfe\x00garbage"),
    (FORM, b"a=1&&&=&%zz"),
    ("application/json", b"{not json"),
    ("application/json", b"[]"),
])
def test_a_signed_malformed_body_gets_400_never_500(
        sim: SlackSim, slack: FakeSlack, sink: Sink, content_type: str, body: bytes) -> None:
    reply = sim.post(body, content_type)
    assert reply.status == 400, reply.body
    assert b"Traceback" not in reply.body
    time.sleep(0.3)
    assert slack.calls == []


def test_a_good_request_still_goes_through(sim: SlackSim, slack: FakeSlack,
                                           loaded: int) -> None:
    assert sim.command("region=EU category=Snacks").status == 200
    slack.wait_for("chat.postMessage")


def _raw_post(app_url: str, headers: dict[str, str], first_bytes: bytes) -> tuple[int, float]:
    """Send the headers and only the first bytes of the body; the status and how long
    the answer took. A server that waited for the whole body would never answer."""
    host, port = urllib.parse.urlsplit(app_url).netloc.split(":")
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        head = "POST /slack/events HTTP/1.1\r\nHost: x\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        connection.sendall(head.encode() + first_bytes)
        answer = connection.recv(200)
    return int(answer.split()[1]), time.perf_counter() - started


def test_a_body_over_the_cap_gets_413_without_being_read(
        app_server: Running, slack: FakeSlack, sink: Sink) -> None:
    timestamp = str(int(time.time()))
    headers = {"Content-Type": FORM, "Content-Length": str(MAX_BODY_BYTES + 1),
               "X-Slack-Request-Timestamp": timestamp,
               "X-Slack-Signature": "v0=" + "1" * 64}
    status, elapsed = _raw_post(app_server.url, headers, b"payload=")
    assert status == 413 and elapsed < 5
    headers["Content-Length"] = str(256 * 1024 * 1024)
    status, elapsed = _raw_post(app_server.url, headers, b"payload=")
    assert status == 413 and elapsed < 5
    assert slack.calls == []


def test_the_cap_fits_a_full_modal_submission() -> None:
    """A 100-block modal at Block Kit's limits, multi-byte text, url-encoded, fits."""
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "é" * 3000},
               "fields": [{"type": "mrkdwn", "text": "€" * 2000} for _ in range(10)]}
    payload = {"type": "view_submission", "view": {
        "type": "modal", "blocks": [dict(section, block_id=f"b{i}") for i in range(100)],
        "private_metadata": "€" * 3000, "state": {"values": {}}}}
    body = urllib.parse.urlencode({"payload": json.dumps(payload, ensure_ascii=False)})
    assert len(body.encode()) <= MAX_BODY_BYTES


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _stream_post(app_url: str, headers: dict[str, str], size: int) -> None:
    """POST ``size`` bytes for real (as far as the server lets us send them)."""
    host, port = urllib.parse.urlsplit(app_url).netloc.split(":")
    chunk = b"x" * (1024 * 1024)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        head = "POST /slack/events HTTP/1.1\r\nHost: x\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()) + \
            f"Content-Length: {size}\r\n\r\n"
        try:
            connection.sendall(head.encode())
            for _ in range(size // len(chunk)):
                connection.sendall(chunk)
        except OSError:
            pass  # the server answered and closed: it did not want the rest
        with contextlib.suppress(OSError):
            connection.recv(200)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_large_unsigned_posts_do_not_grow_memory(app_server: Running, slack: FakeSlack,
                                                sink: Sink) -> None:
    """Several large POSTs at once, unsigned or with a bad signature: the worker's memory
    (this process's: the app runs in it) stays flat, as none of the bodies is read."""
    size = 96 * 1024 * 1024
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(_rss_bytes())
            time.sleep(0.01)

    before = _rss_bytes()
    sampler = threading.Thread(target=sample)
    sampler.start()
    posts = [threading.Thread(target=_stream_post, args=(app_server.url, headers, size))
             for headers in ({"Content-Type": FORM},
                             {"Content-Type": FORM, "X-Slack-Request-Timestamp": "abc"},
                             {"Content-Type": FORM,
                              "X-Slack-Request-Timestamp": str(int(time.time())),
                              "X-Slack-Signature": "v0=" + "2" * 64})]
    for post in posts:
        post.start()
    for post in posts:
        post.join(timeout=60)
    done.set()
    sampler.join()
    assert max(samples) - before < 32 * 1024 * 1024
    assert slack.calls == []


def test_an_empty_secret_refuses_every_request() -> None:
    called: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(True)
        start_response("200 OK", [])
        return [b""]

    timestamp = str(int(time.time()))
    statuses: list[str] = []
    for secret in ("", "   "):
        environ = {"PATH_INFO": "/slack/events", "CONTENT_LENGTH": "2",
                   "HTTP_X_SLACK_REQUEST_TIMESTAMP": timestamp,
                   "HTTP_X_SLACK_SIGNATURE": sign(secret, timestamp, b"a=")}
        guard_slack_requests(app, secret)(environ, lambda status, _h: statuses.append(status))
    assert statuses == ["401 Unauthorized"] * 2
    assert called == []


@pytest.mark.parametrize("secret", ["", "   "])
def test_a_blank_signing_secret_refuses_to_start_with_one_line(
        monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", secret)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2  # a setting that cannot be used
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "SLACK_SIGNING_SECRET: empty: set it" in lines[0]  # the variable named once
    assert "Traceback" not in result.output
