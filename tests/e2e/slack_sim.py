"""Slack's side of the HTTP conversation: signed requests into the app under test.

Payload shapes follow Slack's docs for slash commands, ``block_actions``,
``view_submission`` and the Events API wrapper (``../shared/slack/`` has its schema).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

_counter = itertools.count(1)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class SlackSim:
    app_url: str  # e.g. http://127.0.0.1:PORT
    signing_secret: str
    response_url_base: str  # the fake server's root, which records response_url posts
    api_app_id: str = "A0SOPGAP"
    sent: list[dict[str, Any]] = field(default_factory=list)

    # ---------------------------------------------------------------- raw HTTP
    def post(self, body: bytes, content_type: str, *, path: str = "/slack/events",
             timestamp: str | None = None, signature: str | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        timestamp = timestamp or str(int(time.time()))
        all_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature if signature is not None
            else sign(self.signing_secret, timestamp, body),
            **(headers or {}),
        }
        request = urllib.request.Request(self.app_url + path, data=body, headers=all_headers,
                                         method="POST")
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, response.read(), time.perf_counter() - started)
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.read(), time.perf_counter() - started)

    def get(self, path: str) -> Reply:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(self.app_url + path, timeout=30) as response:
                return Reply(response.status, response.read(), time.perf_counter() - started)
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.read(), time.perf_counter() - started)

    def _form(self, fields: dict[str, str], **kwargs: Any) -> Reply:
        body = urllib.parse.urlencode(fields).encode()
        return self.post(body, "application/x-www-form-urlencoded", **kwargs)

    def _interactive(self, payload: dict[str, Any], **kwargs: Any) -> Reply:
        self.sent.append(payload)
        return self._form({"payload": json.dumps(payload)}, **kwargs)

    def new_response_url(self) -> str:
        return f"{self.response_url_base}/response/{next(_counter)}"

    # ---------------------------------------------------------------- slash commands
    def command(self, text: str, *, user: str = "U1", channel: str = "C1", team: str = "T1",
                command: str = "/gap", **kwargs: Any) -> Reply:
        fields = {
            "token": "deprecated", "team_id": team, "team_domain": team.lower(),
            "channel_id": channel, "channel_name": "sop", "user_id": user,
            "user_name": user.lower(), "command": command, "text": text,
            "api_app_id": self.api_app_id, "is_enterprise_install": "false",
            "response_url": self.new_response_url(), "trigger_id": f"trig.{next(_counter)}",
        }
        return self._form(fields, **kwargs)

    # ---------------------------------------------------------------- interactivity
    def block_action(self, action: dict[str, Any], *, user: str = "U1", channel: str = "C1",
                     team: str = "T1", message_ts: str | None = None,
                     thread_ts: str | None = None, view: dict[str, Any] | None = None,
                     **kwargs: Any) -> Reply:
        action = {"type": "button", "block_id": "b", "action_ts": f"{time.time():.6f}",
                  **action}
        payload: dict[str, Any] = {
            "type": "block_actions", "api_app_id": self.api_app_id,
            "team": {"id": team, "domain": team.lower()},
            "user": {"id": user, "username": user.lower(), "team_id": team},
            "trigger_id": f"trig.{next(_counter)}", "actions": [action],
            "token": "deprecated", "is_enterprise_install": False, "enterprise": None,
        }
        if view is not None:
            payload["container"] = {"type": "view", "view_id": view.get("id", "V1")}
            payload["view"] = view
        else:
            ts = message_ts or "1700000000.000100"
            message = {"type": "message", "ts": ts, "text": "", "blocks": []}
            if thread_ts:
                message["thread_ts"] = thread_ts
            payload.update({
                "container": {"type": "message", "message_ts": ts, "channel_id": channel,
                              "is_ephemeral": False},
                "channel": {"id": channel, "name": "sop"},
                "message": message,
                "response_url": self.new_response_url(),
            })
        return self._interactive(payload, **kwargs)

    def button(self, action_id: str, value: str, **kwargs: Any) -> Reply:
        return self.block_action({"action_id": action_id, "value": value}, **kwargs)

    def select(self, action_id: str, value: str, *, kind: str = "static_select",
               **kwargs: Any) -> Reply:
        option = {"text": {"type": "plain_text", "text": value}, "value": value}
        return self.block_action({"action_id": action_id, "type": kind,
                                  "selected_option": option}, **kwargs)

    def message_shortcut(self, callback_id: str, message: dict[str, Any], *,
                         user: str = "U1", channel: str = "C1", team: str = "T1",
                         **kwargs: Any) -> Reply:
        """A message shortcut chosen on ``message`` (its ``ts``, ``text``, ``thread_ts``)."""
        payload = {
            "type": "message_action", "callback_id": callback_id,
            "api_app_id": self.api_app_id, "token": "deprecated",
            "team": {"id": team, "domain": team.lower()},
            "user": {"id": user, "username": user.lower(), "team_id": team},
            "channel": {"id": channel, "name": "sop"},
            "message": {"type": "message", "user": "U5", **message},
            "message_ts": message.get("ts"), "trigger_id": f"trig.{next(_counter)}",
            "response_url": self.new_response_url(), "is_enterprise_install": False,
            "enterprise": None,
        }
        return self._interactive(payload, **kwargs)

    def view_submission(self, view: dict[str, Any], values: dict[str, dict[str, Any]], *,
                        user: str = "U1", team: str = "T1", **kwargs: Any) -> Reply:
        """Submit a modal the app opened: ``view`` as the app sent it, ``values`` as
        ``{block_id: {action_id: <state value>}}``."""
        submitted = {
            "id": view.get("id", "V1"), "team_id": team, "type": "modal",
            "callback_id": view.get("callback_id", ""),
            "private_metadata": view.get("private_metadata", ""),
            "blocks": view.get("blocks", []), "title": view.get("title"),
            "state": {"values": values}, "hash": "h", "app_id": self.api_app_id,
        }
        payload = {
            "type": "view_submission", "team": {"id": team, "domain": team.lower()},
            "user": {"id": user, "username": user.lower(), "team_id": team},
            "api_app_id": self.api_app_id, "token": "deprecated",
            "trigger_id": f"trig.{next(_counter)}", "view": submitted,
            "is_enterprise_install": False, "enterprise": None, "response_urls": [],
        }
        return self._interactive(payload, **kwargs)

    # ---------------------------------------------------------------- events
    def event(self, event: dict[str, Any], *, team: str = "T1", event_id: str | None = None,
              retry_num: int | None = None, **kwargs: Any) -> Reply:
        envelope = {
            "token": "deprecated", "team_id": team, "api_app_id": self.api_app_id,
            "event": event, "type": "event_callback",
            "event_id": event_id or f"Ev{next(_counter):08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True,
                                "is_enterprise_install": False}],
        }
        headers = kwargs.pop("headers", {}) or {}
        if retry_num is not None:
            headers.update({"X-Slack-Retry-Num": str(retry_num),
                            "X-Slack-Retry-Reason": "http_timeout"})
            # Slack retries seconds later: a new request timestamp, so a new signature.
            kwargs.setdefault("timestamp", str(int(time.time()) + 3 * retry_num))
        body = json.dumps(envelope).encode()
        return self.post(body, "application/json", headers=headers, **kwargs)

    def thread_reply(self, text: str, *, thread_ts: str, user: str = "U2",
                     channel: str = "C1", team: str = "T1", ts: str | None = None,
                     **kwargs: Any) -> Reply:
        event = {"type": "message", "channel": channel, "user": user, "text": text,
                 "ts": ts or f"{time.time():.6f}", "thread_ts": thread_ts,
                 "channel_type": "channel", "team": team}
        return self.event(event, team=team, **kwargs)


def state_value(kind: str, value: Any) -> dict[str, Any]:
    """A modal state entry as Slack sends it, for ``kind`` of input element."""
    if kind == "plain_text_input":
        return {"type": kind, "value": value}
    if kind == "datepicker":
        return {"type": kind, "selected_date": value}
    if kind == "users_select":
        return {"type": kind, "selected_user": value}
    if kind == "static_select":
        option = None if value is None else {
            "text": {"type": "plain_text", "text": value}, "value": value}
        return {"type": kind, "selected_option": option}
    if kind == "number_input":
        return {"type": kind, "value": value}
    raise ValueError(kind)
