"""Log lines: who and what a Slack request is, JSON shape, and nothing secret in them."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

from bot.observability import REQUEST, JsonFormatter, Redact, describe_slack_request


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("sopgap.test", logging.INFO, __file__, 1, message, args, None)


def test_tokens_secrets_codes_and_long_quoted_text_are_masked() -> None:
    redact = Redact(["s3cret-signing", "db-pass-123"])
    entry = record("token %s, app %s, secret s3cret-signing, url postgresql://u:db-pass-123@h,"
                   " redirect /slack/oauth_redirect?code=4711.abc&state=xyz, said '%s'",
                   "xoxb-1-2-abc", "xapp-1-A-9", "q" * 60)
    redact.filter(entry)
    text = entry.getMessage()
    for secret in ("xoxb-1-2-abc", "xapp-1-A-9", "s3cret-signing", "db-pass-123", "4711.abc",
                   "q" * 41):
        assert secret not in text
    assert "xoxb-[redacted]" in text and "code=[redacted]" in text and "q" * 40 + "…" in text


def test_tracebacks_are_masked_too() -> None:
    try:
        raise RuntimeError("auth failed for xoxb-9-9-secret")
    except RuntimeError:
        import sys

        entry = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    Redact().filter(entry)
    assert "xoxb-9-9-secret" not in (entry.exc_text or "") and "RuntimeError" in entry.exc_text


def test_json_lines_carry_the_request() -> None:
    token = REQUEST.set({"request_id": "r1", "team": "T1", "channel": "C1", "user": "U1",
                         "kind": "command", "command": "/gap"})
    try:
        line = JsonFormatter().format(record("command %s answered", "/gap"))
    finally:
        REQUEST.reset(token)
    entry = json.loads(line)
    assert entry["message"] == "command /gap answered" and entry["level"] == "info"
    assert {k: entry[k] for k in ("request_id", "team", "channel", "user", "kind", "command")} \
        == {"request_id": "r1", "team": "T1", "channel": "C1", "user": "U1", "kind": "command",
            "command": "/gap"}
    assert "\n" not in line


def test_describing_requests() -> None:
    command = urlencode({"command": "/gap", "text": "region=EU", "team_id": "T1",
                         "channel_id": "C1", "user_id": "U1"}).encode()
    assert describe_slack_request(command) == {"kind": "command", "command": "/gap",
                                               "team": "T1", "channel": "C1", "user": "U1"}
    button = urlencode({"payload": json.dumps({
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U2"},
        "channel": {"id": "C2"}, "actions": [{"action_id": "gap_show_chart"}]})}).encode()
    assert describe_slack_request(button) == {"kind": "action", "command": "gap_show_chart",
                                              "team": "T1", "channel": "C2", "user": "U2"}
    event = json.dumps({"type": "event_callback", "team_id": "T1",
                        "event": {"type": "message", "channel": "C3", "user": "U3"}}).encode()
    assert describe_slack_request(event)["command"] == "message"
    assert describe_slack_request(b"\xff{not json")["kind"] == "unknown"
