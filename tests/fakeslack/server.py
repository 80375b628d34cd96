"""FakeSlack: a local HTTP server speaking the Slack Web API to the app under test.

The app talks to it through its real slack_sdk client (``WebClient(base_url=fake.url)``),
so end-to-end tests exercise the actual HTTP, retry and serialisation code paths.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .checks import CHECKS, block_problems
from .models import Call, Channel, Rejected, Team, UploadedFile
from .responses import RESPONSES, ok
from .spec import MethodSpec, find_spec_path, load_methods
from .wire import API_PREFIX, Incoming, LocalServer, Reply
from .workspace import Workspace

T = TypeVar("T")

# Slack allows about one chat.postMessage per second per channel.
CHAT_POST_INTERVAL = 1.0
# How often the serving loop checks for stop(); the stdlib default (0.5 s) would add
# half a second to every test's teardown.
SHUTDOWN_POLL_INTERVAL = 0.01


# Pseudo-methods that fail_next() and delay_next() also accept: the bytes' POST to an
# upload URL (files.getUploadURLExternal's), and a post to a response_url.
UPLOAD, RESPONSE_URL = "upload", "response_url"


@dataclass(frozen=True)
class _Delay:
    seconds: float
    processed: bool


@dataclass(frozen=True)
class _Fault:
    status: int
    error: str
    retry_after: int

    def rejection(self) -> Rejected:
        headers = {"Retry-After": str(self.retry_after)} if self.status == 429 else {}
        return Rejected(self.error, status=self.status, headers=headers)


class FakeSlack:
    """A Slack Web API stand-in on ``127.0.0.1`` that records and checks every call.

    Calls are checked against Slack's OpenAPI description (method exists, required
    arguments present, token valid) and Block Kit limits; anything Slack would reject as
    a bug in the caller lands in ``violations``, which tests assert to be empty.
    """

    def __init__(self, spec_path: str | os.PathLike[str] | None = None) -> None:
        self._methods = load_methods(Path(spec_path) if spec_path else find_spec_path())
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._workspace = Workspace()
        self.teams: dict[str, Team] = self._workspace.teams
        self.users: dict[str, dict[str, Any]] = self._workspace.users
        self.files: dict[str, UploadedFile] = self._workspace.files
        self.uploads: dict[str, bytes] = self._workspace.uploads
        self.channels: dict[str, Channel] = self._workspace.channels
        self.rate_limit_chat_per_channel = False
        self._calls: list[Call] = []
        self._violations: list[str] = []
        self._faults: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._delays: defaultdict[str, deque[_Delay]] = defaultdict(deque)
        self._last_post_at: dict[str, float] = {}
        self._server: LocalServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Bind a free port and serve from a daemon thread (it never blocks interpreter exit)."""
        if self._server is None:
            self._server = LocalServer(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": SHUTDOWN_POLL_INTERVAL},
                name="fakeslack",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path); only valid while started."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return self._server.root_url

    @property
    def url(self) -> str:
        """The ``base_url`` for slack_sdk's WebClient, with the trailing slash it requires."""
        return f"{self.root_url}{API_PREFIX}"

    # -- configuration ---------------------------------------------------------------

    def add_team(self, team_id: str, bot_token: str, **details: str) -> Team:
        """Install the app in a workspace; from now on only added bot tokens are valid.

        ``details`` overrides Team fields such as ``team_name`` or ``oauth_code`` (the
        code oauth.v2.access exchanges for this team, ``code-<team_id>`` by default).
        """
        team = Team(team_id, bot_token, **details)
        with self._lock:
            self.teams[team_id] = team
        return team

    def enable_socket_mode(self, url: str, app_token: str) -> None:
        """``apps.connections.open`` with ``app_token`` answers ``url`` from now on."""
        with self._lock:
            self._workspace.app_tokens.add(app_token)
            self._workspace.socket_mode_url = url

    def add_channel(self, channel_id: str, *, private: bool = False,
                    ext_shared: bool = False, members: set[str] | list[str] | None = None,
                    bot_member: bool = True, **details: Any) -> Channel:
        """Declare a channel: public or ``private``, Slack Connect (``ext_shared``), who is
        in it (None: everyone) and whether the bot is. Change the returned object's
        ``members`` / ``bot_member`` later to model people joining and leaving.
        ``details`` overrides other Channel fields (``is_mpim``, ``is_archived``, ``name``).
        """
        channel = Channel(channel_id, is_private=private, is_ext_shared=ext_shared,
                          members=set(members) if members is not None else None,
                          bot_member=bot_member, **details)
        with self._lock:
            self.channels[channel_id] = channel
        return channel

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
        error: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls to ``method`` with an error instead.

        429 carries a ``Retry-After`` header and error ``ratelimited``; other statuses
        answer ``internal_error`` unless ``error`` is given (``status=200`` with an
        ``error`` simulates a plain Slack error such as ``channel_not_found``).
        ``method`` may also be ``"upload"`` (an upload URL's POST) or ``"response_url"``.
        """
        default_error = "ratelimited" if status == 429 else "internal_error"
        fault = _Fault(status, error or default_error, retry_after)
        with self._lock:
            self._faults[method].extend([fault] * times)

    def delay_next(self, method: str, seconds: float, times: int = 1, *,
                   processed: bool = True) -> None:
        """Hold the answer to the next ``times`` calls to ``method`` (client timeouts).

        ``processed``: Slack carries the call out late (a client that timed out does not
        know it happened); ``False``: the request is lost on the way, and answered 504
        without being carried out. ``method`` may be ``"upload"`` or ``"response_url"``.
        """
        with self._lock:
            self._delays[method].extend([_Delay(seconds, processed)] * times)

    # -- observation -----------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every API call answered so far, in that order, refused ones included."""
        with self._lock:
            return list(self._calls)

    @property
    def violations(self) -> list[str]:
        """Why Slack would have rejected calls as caller bugs; tests expect ``[]``."""
        with self._lock:
            return list(self._violations)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,
        predicate: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Block until ``count`` matching calls arrived (the app may call from a thread)."""

        def matching() -> list[Call]:
            return [
                call
                for call in self._calls
                if call.method == method and (predicate is None or predicate(call))
            ]

        with self._changed:
            if self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                return matching()
            found = len(matching())
            received = ", ".join(f"{c.method} ({c.status})" for c in self._calls) or "nothing"
        condition = " matching the predicate" if predicate else ""
        raise AssertionError(
            f"expected {count} {method} call(s){condition} within {timeout}s, "
            f"got {found}; received: {received}"
        )

    def reset(self) -> None:
        """Forget calls, violations, uploads and pending faults; keep teams and users."""
        with self._lock:
            self._calls.clear()
            self._violations.clear()
            self._faults.clear()
            self._delays.clear()
            self._last_post_at.clear()
            self._workspace.clear_recordings()

    # -- serving (handler threads) ---------------------------------------------------

    def handle_api(self, incoming: Incoming) -> Reply:
        """Answer one Web API call and record it, whatever the outcome."""
        arrived = time.monotonic()
        lost = not self._hold(incoming.method)
        with self._lock:
            if lost:
                reply = self._refuse(incoming.method, Rejected("request_timeout", status=504))
            elif incoming.decode_error:
                problem = f"undecodable body: {incoming.decode_error}"
                reply = self._refuse(incoming.method, Rejected("invalid_json", problem))
            else:
                reply = self._answer(incoming)
            team = self._workspace.team_for_token(incoming.token)
            self._calls.append(
                Call(
                    method=incoming.method,
                    args=incoming.args,
                    token=incoming.token,
                    team_id=team.team_id if team else None,
                    headers=incoming.headers,
                    at=arrived,
                    status=reply.status,
                    response=reply.body if isinstance(reply.body, dict) else {},
                )
            )
            self._changed.notify_all()
        return reply

    def handle_upload(self, file_id: str, body: bytes) -> Reply:
        """Store bytes POSTed to an upload URL handed out by files.getUploadURLExternal."""
        if not self._hold(UPLOAD):
            return Reply(504, "request timed out")
        fault = self._take(self._faults, UPLOAD)
        if fault:
            return Reply(fault.status, fault.error, fault.rejection().headers)
        with self._lock:
            record = self.files.get(file_id)
            if record is None:
                self._violations.append(f"upload: {file_id} was not issued by the fake")
                return Reply(404, "file not found")
            if len(body) != record.length:
                self._violations.append(
                    f"upload: {file_id} got {len(body)} bytes, declared length={record.length}"
                )
            record.uploaded = True
            self.uploads[file_id] = body
            self._changed.notify_all()
        return Reply(200, f"OK - {len(body)}")

    def handle_response(self, hook_id: str, headers: dict[str, str], body: bytes) -> Reply:
        """A JSON message posted to a response_url, recorded as method ``response_url``.

        Its blocks get the same checks as chat.postMessage's. Injected faults answer as
        Slack's hooks do (plain text), and are recorded with their status.
        """
        processed = self._hold(RESPONSE_URL)
        fault = self._take(self._faults, RESPONSE_URL) if processed else None
        if not processed or fault:
            status, error = (fault.status, fault.error) if fault else (504, "request_timeout")
            with self._lock:
                self._calls.append(Call(method=RESPONSE_URL, args={"hook": hook_id},
                                        token=None, team_id=None, headers=headers,
                                        at=time.monotonic(), status=status,
                                        response={"ok": False, "error": error}))
                self._changed.notify_all()
            return Reply(status, error, fault.rejection().headers if fault else {})
        try:
            args = json.loads(body or b"{}")
        except ValueError:
            args = {}
            self._violations.append(f"response_url {hook_id}: body is not JSON")
        problems = block_problems(args.get("blocks"), 50) if args.get("blocks") else []
        with self._lock:
            self._violations.extend(f"response_url {hook_id}: {p}" for p in problems)
            self._calls.append(Call(method=RESPONSE_URL, args={**args, "hook": hook_id},
                                    token=None, team_id=None, headers=headers,
                                    at=time.monotonic(), status=200, response={"ok": True}))
            self._changed.notify_all()
        return Reply(200, "ok")

    def _answer(self, incoming: Incoming) -> Reply:
        """Injected faults first, then the checks in Slack's order, then the method's answer."""
        try:
            fault = self._take(self._faults, incoming.method)
            if fault:
                raise fault.rejection()
            spec = self._spec(incoming.method)
            team = self._authenticate(spec, incoming.token)
            _check_required(spec, incoming.args)
            CHECKS.get(incoming.method, _no_check)(incoming.args)
            self._throttle(incoming.method, incoming.args)
            build = RESPONSES.get(incoming.method, ok)
            return Reply(200, build(self._workspace, incoming, team))
        except Rejected as rejected:
            return self._refuse(incoming.method, rejected)

    def _hold(self, method: str) -> bool:
        """Sleep through an injected delay; whether the request is then carried out."""
        delay = self._take(self._delays, method)
        if delay is None:
            return True
        time.sleep(delay.seconds)
        return delay.processed

    def _refuse(self, method: str, rejected: Rejected) -> Reply:
        if rejected.violation:
            self._violations.append(f"{method}: {rejected.violation}")
        body = {"ok": False, "error": rejected.error}
        return Reply(rejected.status, body, rejected.headers)

    def _take(self, queues: defaultdict[str, deque[T]], method: str) -> T | None:
        with self._lock:
            queue = queues.get(method)
            return queue.popleft() if queue else None

    def _spec(self, method: str) -> MethodSpec:
        spec = self._methods.get(method)
        if spec is None:
            raise Rejected("unknown_method", "not a method in Slack's Web API description")
        return spec

    def _authenticate(self, spec: MethodSpec, token: str | None) -> Team:
        """The calling team; OAuth methods authenticate the app, not a team."""
        if not spec.needs_token:
            return self._workspace.default_team
        if not token:
            raise Rejected("not_authed", "no token sent")
        if token in self._workspace.revoked_tokens:
            raise Rejected("token_revoked")
        team = self._workspace.team_for_token(token)
        if team is None:
            raise Rejected("invalid_auth")
        return team

    def _throttle(self, method: str, args: dict[str, Any]) -> None:
        """Optionally enforce Slack's ~1 message per second per channel."""
        if not (self.rate_limit_chat_per_channel and method == "chat.postMessage"):
            return
        channel, now = str(args["channel"]), time.monotonic()
        last = self._last_post_at.get(channel)
        if last is not None and now - last < CHAT_POST_INTERVAL:
            raise Rejected("ratelimited", status=429, headers={"Retry-After": "1"})
        self._last_post_at[channel] = now


# Where Slack's API description is older than the API: oauth.v2.access takes a refresh
# token instead of a code since token rotation (grant_type=refresh_token).
_NOT_REQUIRED_WHEN = {("oauth.v2.access", "code"): ("grant_type", "refresh_token")}


def _check_required(spec: MethodSpec, args: dict[str, Any]) -> None:
    def waived(name: str) -> bool:
        when = _NOT_REQUIRED_WHEN.get((spec.name, name))
        return when is not None and args.get(when[0]) == when[1]

    missing = sorted(name for name in spec.required
                     if args.get(name) in (None, "") and not waived(name))
    if missing:
        raise Rejected("invalid_arguments", f"missing required argument(s) {', '.join(missing)}")


def _no_check(args: dict[str, Any]) -> None:
    """Methods without content rules beyond their required arguments."""
