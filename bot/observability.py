"""Logs that say which request they belong to, without secrets; timing of the listeners.

- ``configure_logging``: text or one JSON object a line (``SOPGAP_LOG_FORMAT=json``) with
  time, level, logger, and the request's fields (request id, team, channel, user, kind
  and id of the command, action or event: ``kind``, ``command``; duration, outcome)
  when there is one.
- Every handler gets :class:`Redact`: Slack tokens (``xox…-``, ``xapp-``), OAuth codes
  and the configured secrets are masked, and quoted user text is cut to 40 characters.
- ``observe_slack``: WSGI middleware in front of Bolt: reads who and what a request is,
  binds it to the logging context, logs one line when it is answered and times the ack.
- ``ContextExecutor``: the listeners' thread pool, carrying that context into each
  listener thread and timing each listener.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

REQUEST: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "sopgap_request", default=None)
FIELDS = ("request_id", "team", "channel", "user", "kind", "command", "duration_ms",
          "outcome")
USER_TEXT_MAX = 40
TOKEN = re.compile(r"\b(xox[a-z]?|xapp)-[A-Za-z0-9-]+")
OAUTH_CODE = re.compile(r"(?i)\b(code|state|client_secret)=[^&\s\"']+")
QUOTED = re.compile(r"(['\"“])([^'\"”\n]{" + str(USER_TEXT_MAX + 1) + r",})(['\"”])")


class Redact(logging.Filter):
    """Masks tokens, OAuth codes and the given secrets; cuts long quoted text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[secret]")
        text = TOKEN.sub(r"\1-[redacted]", text)
        text = OAUTH_CODE.sub(r"\1=[redacted]", text)
        return QUOTED.sub(lambda m: f"{m[1]}{m[2][:USER_TEXT_MAX]}…{m[3]}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.scrub(message), None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        context = REQUEST.get() or {}
        for name in FIELDS:
            value = getattr(record, name, None) or context.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def known_secrets() -> list[str]:
    """The secret values in the environment, masked wherever they would appear."""
    names = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_CLIENT_SECRET",
             "SOPGAP_REFRESH_URL", "SOPGAP_TOKEN_KEYS", "SOPGAP_ENCRYPTION_KEY")
    values = [os.environ.get(name, "") for name in names]
    url = os.environ.get("DATABASE_URL", "")
    if "@" in url and ":" in url.split("@")[0].rpartition("//")[2]:
        values.append(url.split("@")[0].rpartition("//")[2].partition(":")[2])  # the password
    return [value for value in values if value]


def redactor() -> Redact:
    """The filter with the environment's secrets (for logging.config dictionaries)."""
    return Redact(known_secrets())


def configure_logging(*, level: int = logging.INFO, log_format: str | None = None) -> None:
    """The root logger, as text or JSON lines on stderr, every record redacted."""
    log_format = log_format or os.environ.get("SOPGAP_LOG_FORMAT", "text")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redact(known_secrets()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


# ------------------------------------------------------------------ the Slack requests

def describe_slack_request(body: bytes) -> dict[str, Any]:
    """Who and what: team, channel, user, and the command, action or event, if any."""
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    try:
        data: dict[str, Any] = (json.loads(form["payload"]) if "payload" in form else
                                form if "command" in form else json.loads(body or b"{}"))
    except (ValueError, TypeError):
        return {"kind": "unknown", "command": "unknown"}
    return describe_slack_payload(data)


def describe_slack_payload(data: Any) -> dict[str, Any]:
    """:func:`describe_slack_request` of a payload already parsed (a Socket Mode
    envelope's)."""
    if not isinstance(data, dict):
        return {"kind": "unknown", "command": "unknown"}
    team, channel, user = data.get("team_id"), data.get("channel_id"), data.get("user_id")
    if "command" in data:
        kind, name = "command", data["command"]
    elif data.get("type") == "block_actions":
        actions = data.get("actions") or [{}]
        kind, name = "action", actions[0].get("action_id", "unknown")
    elif data.get("type") in ("view_submission", "view_closed", "shortcut",
                              "message_action"):
        kind, name = data["type"], (data.get("view") or {}).get("callback_id") or data.get(
            "callback_id", "unknown")
    elif data.get("type") == "event_callback":
        event = data.get("event") or {}
        kind, name = "event", event.get("type", "unknown")
        channel, user = event.get("channel"), event.get("user")
    else:
        kind, name = "other", str(data.get("type", "unknown"))
    team = team or _id(data.get("team"))
    channel = channel or _id(data.get("channel"))
    user = user or _id(data.get("user"))
    return {"kind": kind, "command": str(name)[:80], "team": team, "channel": channel,
            "user": user}


def _id(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
log = logging.getLogger("sopgap.requests")


def observe_slack(app: WSGIApp) -> WSGIApp:
    from bot import metrics

    def observed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        fields = {"request_id": environ.get("HTTP_X_REQUEST_ID") or uuid.uuid4().hex[:16]}
        if environ.get("PATH_INFO") == "/slack/events":
            fields.update(describe_slack_request(body))
        else:
            fields.update(kind="oauth", command=environ.get("PATH_INFO", ""))
        status: list[str] = []

        def recording_start(code: str, headers: Any, *args: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *args)

        token = REQUEST.set(fields)
        try:
            result = app(environ, recording_start)
        finally:
            seconds = time.monotonic() - started
            outcome = status[0].split()[0] if status else "error"
            metrics.ACK_SECONDS.labels(fields["kind"], fields["command"]).observe(seconds)
            log.info("%s %s answered %s", fields["kind"], fields["command"], outcome,
                     extra={"duration_ms": round(seconds * 1000, 1), "outcome": outcome})
            REQUEST.reset(token)
        return result

    return observed


def observe_work(waited: float, took: float) -> None:
    """A command's work after its ack (bot/work_slots.py), in its request's context: its
    wait for a work slot and its duration, by the request's kind and name."""
    from bot import metrics

    fields = REQUEST.get() or {}
    kind, name = fields.get("kind", "other"), fields.get("command", "unknown")
    metrics.WORK_WAIT_SECONDS.labels(kind, name).observe(waited)
    metrics.WORK_SECONDS.labels(kind, name).observe(took)


class ContextExecutor(ThreadPoolExecutor):
    """Runs each listener in the submitting request's logging context, timed by its name,
    and counted in the process's backlog from submission to its end."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        from bot import metrics
        from bot.work_slots import BACKLOG

        context = contextvars.copy_context()

        def timed() -> Any:
            fields = context.get(REQUEST) or {}
            started, outcome = time.monotonic(), "ok"
            try:
                return context.run(fn, *args, **kwargs)
            except BaseException:
                outcome = "error"
                raise
            finally:
                BACKLOG.done()
                metrics.HANDLER_SECONDS.labels(
                    fields.get("kind", "other"), fields.get("command", "unknown"),
                    outcome).observe(time.monotonic() - started)

        BACKLOG.add()
        try:
            return super().submit(timed)
        except BaseException:  # not queued (the pool is shut down): not in the backlog
            BACKLOG.done()
            raise
