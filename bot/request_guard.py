"""Nothing happens before a request is authenticated.

A WSGI layer in front of Bolt for ``POST /slack/events``: the signature is checked here,
before the body is parsed, so a request that fails it reaches no listener, no error
handler (which would answer the unverified body's ``response_url``) and no database.
It also bounds what a request may make the worker read, and turns a signed but malformed
body into a 400 rather than an error page.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from bot import metrics

log = logging.getLogger(__name__)
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

GUARDED_PATHS = ("/slack/events",)

# The largest body Slack sends us is a view_submission of a full modal, url-encoded.
# Block Kit allows 100 blocks in a modal; the largest block is a section with a 3,000
# character text and 10 fields of 2,000 characters (23,000 characters; an input block
# with label, hint, placeholder, initial value and its submitted value stays under
# 10,200). A character costs at most 9 bytes on the wire: 3 bytes of UTF-8, each
# url-encoded as %XX (JSON's \uXXXX escape, url-encoded, is 8). Add the private
# metadata (3,000 characters) and 1 MiB for the JSON structure, ids and the user, team
# and state wrappers around the blocks.
MAX_VIEW_BLOCKS = 100
MAX_BLOCK_CHARACTERS = 3_000 + 10 * 2_000
MAX_BYTES_PER_CHARACTER = 9
MAX_BODY_BYTES = (
    (MAX_VIEW_BLOCKS * MAX_BLOCK_CHARACTERS + 3_000) * MAX_BYTES_PER_CHARACTER + 1024 * 1024)
# 21,773,576 bytes, about 20.8 MiB.

# Slack's signatures are valid for 5 minutes; a timestamp is a decimal Unix time.
MAX_CLOCK_SKEW_SECONDS = 60 * 5
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_READ_CHUNK = 64 * 1024


def _reply(start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _declared_length(environ: dict[str, Any]) -> int | None:
    raw = (environ.get("CONTENT_LENGTH") or "").strip()
    if not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


def _read_at_most(stream: Any, limit: int) -> bytes:
    """Up to ``limit`` bytes of the stream, read in chunks (never ``read()`` unbounded)."""
    parts: list[bytes] = []
    left = limit
    while left > 0:
        chunk = stream.read(min(_READ_CHUNK, left))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def signature_is_valid(secret: str, timestamp: str, signature: str, body: bytes,
                       *, now: float | None = None) -> bool:
    """Slack's v0 request signature. Never raises: any malformed part is simply invalid."""
    if not secret.strip() or not _TIMESTAMP.fullmatch(timestamp) \
            or not _SIGNATURE.fullmatch(signature):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def body_is_well_formed(content_type: str, body: bytes) -> bool:
    """What Bolt can parse without raising: a form (a ``payload`` field, if any, holds a
    JSON object) or a JSON object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    try:
        if content_type.split(";")[0].strip().lower() == "application/json":
            return isinstance(json.loads(text), dict)
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
        if "payload" in fields:
            return isinstance(json.loads(fields["payload"][0]), dict)
        return True
    except ValueError:
        return False


def _refuse(start_response: Callable[..., Any], reason: str, status: str, text: str,
            why: str | None = None) -> Iterable[bytes]:
    """Answer a refused request, counted by ``reason`` and logged with ``why``."""
    if why is not None:
        log.warning("refused a Slack request: %s", why)
    metrics.REFUSED_REQUESTS.labels(reason).inc()
    return _reply(start_response, status, text)


def guard_slack_requests(app: WSGIApp, signing_secret: str, *,
                         max_body_bytes: int = MAX_BODY_BYTES) -> WSGIApp:
    """``app`` behind the checks above, for the paths Slack signs (others pass through)."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") not in GUARDED_PATHS:
            return app(environ, start_response)
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        # What can be refused from the headers alone is refused before reading the body.
        if not signing_secret.strip() or not _TIMESTAMP.fullmatch(timestamp) \
                or not _SIGNATURE.fullmatch(signature) \
                or abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            return _refuse(start_response, "signature", "401 Unauthorized",
                           "invalid request signature", "missing, malformed or stale signature")
        length = _declared_length(environ)
        if length is None and not environ.get("wsgi.input_terminated"):
            return _refuse(start_response, "malformed", "411 Length Required",
                           "Content-Length required")
        if length is not None and length > max_body_bytes:
            return _refuse(start_response, "too_large", "413 Payload Too Large",
                           "request body too large",
                           f"{length} bytes (the cap is {max_body_bytes})")
        body = _read_at_most(environ["wsgi.input"],
                             max_body_bytes + 1 if length is None else length)
        if len(body) > max_body_bytes:
            return _refuse(start_response, "too_large", "413 Payload Too Large",
                           "request body too large")
        if not signature_is_valid(signing_secret, timestamp, signature, body):
            return _refuse(start_response, "signature", "401 Unauthorized",
                           "invalid request signature", "invalid signature")
        if not body_is_well_formed(environ.get("CONTENT_TYPE", ""), body):
            return _refuse(start_response, "malformed", "400 Bad Request",
                           "malformed request body", "signed, but its body is malformed")
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return app(environ, start_response)

    return guarded
