"""The Web API client: Slack's (or ``SLACK_API_URL``'s) base URL and retries that honour
``Retry-After`` (slack_sdk only retries connection errors unless told)."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from sop_core.config import Settings


def retry_handlers() -> list:
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=3),  # waits Retry-After
        ServerErrorRetryHandler(max_retry_count=2),
    ]


def make_client(settings: Settings, token: str | None) -> WebClient:
    return WebClient(token=token, base_url=settings.slack_api_url, timeout=10,
                     retry_handlers=retry_handlers())
