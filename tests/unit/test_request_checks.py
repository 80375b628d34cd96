"""The pure checks of bot/request_guard.py and the OAuth log filter."""

from __future__ import annotations

import logging

import pytest

from bot.request_guard import body_is_well_formed, signature_is_valid
from bot.workspace_access import RedactOAuthSecrets, redact_oauth_secrets
from tests.e2e.slack_sim import sign

NOW = 1_800_000_000


def test_a_good_signature_within_five_minutes() -> None:
    body = b"command=%2Fgap&text=x"
    signature = sign("s3cret", str(NOW), body)
    assert signature_is_valid("s3cret", str(NOW), signature, body, now=NOW + 299)
    assert not signature_is_valid("s3cret", str(NOW), signature, body, now=NOW + 301)
    assert not signature_is_valid("other", str(NOW), signature, body, now=NOW)
    assert not signature_is_valid("s3cret", str(NOW), signature, body + b"x", now=NOW)


@pytest.mark.parametrize(("timestamp", "signature"), [
    ("abc", None), ("9" * 5000, None), ("", None), ("-1", None), ("1.5", None),
    (str(NOW), ""), (str(NOW), "v0=zz"), (str(NOW), "v0=" + "a" * 63),
])
def test_anything_malformed_is_simply_invalid(timestamp: str, signature: str | None) -> None:
    body = b"a=1"
    signature = sign("s3cret", timestamp, body) if signature is None else signature
    assert not signature_is_valid("s3cret", timestamp, signature, body, now=NOW)


def test_an_empty_secret_validates_nothing() -> None:
    assert not signature_is_valid("", str(NOW), sign("", str(NOW), b""), b"", now=NOW)


@pytest.mark.parametrize(("content_type", "body", "ok"), [
    ("application/x-www-form-urlencoded", b"command=%2Fgap&text=", True),
    ("application/x-www-form-urlencoded", b"", True),
    ("application/x-www-form-urlencoded", b'payload=%7B%22type%22%3A%22x%22%7D', True),
    ("application/x-www-form-urlencoded", b"payload=nope", False),
    ("application/x-www-form-urlencoded", b"payload=%5B%5D", False),
    ("application/x-www-form-urlencoded", b"\xff", False),
    ("application/json; charset=utf-8", b'{"type": "url_verification"}', True),
    ("application/json", b"[]", False),
    ("application/json", b"{", False),
])
def test_bodies_bolt_can_parse(content_type: str, body: bytes, ok: bool) -> None:
    assert body_is_well_formed(content_type, body) is ok


@pytest.mark.parametrize(("line", "kept"), [
    ("Failed to fetch oauth.v2.access result with code: 123.456.abc - error: x",
     "with code: [redacted] - error: x"),
    ("GET /slack/oauth_redirect?code=123.456&state=abc-def HTTP/1.1",
     "?code=[redacted]&state=[redacted] HTTP/1.1"),
    ('{"code": "123", "state": "s"}', '{"code": "[redacted]", "state": "[redacted]"}'),
])
def test_oauth_code_and_state_are_redacted(line: str, kept: str) -> None:
    assert kept in redact_oauth_secrets(line)


def test_the_filter_rewrites_formatted_records() -> None:
    record = logging.LogRecord("slack_bolt.oauth.oauth_flow", logging.WARNING, __file__, 1,
                               "Failed with code: %s - error: %s", ("c0de-1", "bad"), None)
    assert RedactOAuthSecrets().filter(record)
    assert record.getMessage() == "Failed with code: [redacted] - error: bad"
