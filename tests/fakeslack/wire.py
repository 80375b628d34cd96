"""HTTP transport: decode requests the way Slack reads them, and send the answers.

Kept apart from FakeSlack so the behaviour (checks, answers, recording) can be read
without the details of form, JSON and multipart bodies.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

API_PREFIX = "/api/"
UPLOAD_PREFIX = "/upload/"
# Where the tests point a command's or an action's response_url (Bolt's respond()).
RESPONSE_PREFIX = "/response/"
# Arguments Slack takes as a JSON document inside a form field.
JSON_IN_FORM = frozenset({"attachments", "blocks", "files", "metadata", "view"})


@dataclass(frozen=True)
class Incoming:
    """One request to ``/api/<method>``, decoded; ``decode_error`` if the body was not."""

    method: str
    args: dict[str, Any]
    token: str | None
    headers: dict[str, str]
    root_url: str
    decode_error: str | None = None


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: a dict is sent as JSON, a str as text/plain."""

    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)


class Endpoint(Protocol):
    """What the HTTP layer hands decoded requests to (FakeSlack)."""

    def handle_api(self, request: Incoming) -> Reply: ...

    def handle_upload(self, file_id: str, body: bytes) -> Reply: ...

    def handle_response(self, hook_id: str, headers: dict[str, str], body: bytes) -> Reply: ...


def decode_call(
    method: str, headers: dict[str, str], body: bytes, query: str, root: str
) -> Incoming:
    """Decode an API call; the token comes from the Bearer header or, as Slack also allows,
    from a ``token`` argument."""
    try:
        args = decode_args(headers.get("Content-Type", ""), body, query)
    except ValueError as exc:
        return Incoming(method, {}, bearer_token(headers), headers, root, str(exc))
    token = bearer_token(headers) or args.pop("token", None)
    return Incoming(method, args, token, headers, root)


def bearer_token(headers: dict[str, str]) -> str | None:
    scheme, _, credentials = headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not credentials:
        return None
    return credentials


def decode_args(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    """Arguments from the query string and a JSON, urlencoded or multipart body.

    Raises ValueError when the body cannot be decoded (Slack: ``invalid_json``).
    """
    args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "application/json":
        document = json.loads(body or b"{}")
        if not isinstance(document, dict):
            raise ValueError("a JSON body must be an object")
        args.update(document)
    elif media_type == "multipart/form-data":
        args.update(_multipart_fields(content_type, body))
    elif body:
        args.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return {name: _json_in_form(name, value) for name, value in args.items()}


def _multipart_fields(content_type: str, body: bytes) -> dict[str, Any]:
    """Form fields of a multipart body (slack_sdk sends one when a call carries a file)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        name = str(part.get_param("name", header="content-disposition"))
        fields[name] = payload if part.get_filename() else payload.decode("utf-8")
    return fields


def _json_in_form(name: str, value: Any) -> Any:
    """Parse Slack's JSON-in-form fields; leave anything else (or broken JSON) as sent."""
    if name not in JSON_IN_FORM or not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, dict | list) else value


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/api/<method>`` and ``/upload/<file_id>``; Slack accepts GET and POST."""

    server: LocalServer

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # Title-Case names so lookups work whatever casing the client used.
        headers = {name.title(): value for name, value in self.headers.items()}
        endpoint, root = self.server.endpoint, self.server.root_url
        if url.path.startswith(API_PREFIX):
            method = url.path.removeprefix(API_PREFIX)
            reply = endpoint.handle_api(decode_call(method, headers, body, url.query, root))
        elif url.path.startswith(UPLOAD_PREFIX):
            reply = endpoint.handle_upload(url.path.removeprefix(UPLOAD_PREFIX), body)
        elif url.path.startswith(RESPONSE_PREFIX):
            hook = url.path.removeprefix(RESPONSE_PREFIX)
            reply = endpoint.handle_response(hook, headers, body)
        else:
            reply = Reply(404, "not found")
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, dict):
            payload, content_type = json.dumps(reply.body).encode(), "application/json"
        else:
            payload, content_type = reply.body.encode(), "text/plain"
        self.send_response(reply.status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; the recorded calls are the log."""


class LocalServer(ThreadingHTTPServer):
    """A threaded HTTP server on a free 127.0.0.1 port, one thread per request."""

    daemon_threads = True

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.endpoint = endpoint

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``; stays valid for requests still running after stop."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout tests) is expected; report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
