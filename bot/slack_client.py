"""The Web API client: Slack's (or ``SLACK_API_URL``'s) base URL and retries that honour
``Retry-After`` (slack_sdk only retries connection errors unless told)."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.errors import UserError
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


def post_in_channel(client: WebClient, channel: str, **message: Any) -> dict[str, Any]:
    """``chat.postMessage``, joining a public channel first if the bot is not in it yet."""
    try:
        return client.chat_postMessage(channel=channel, **message).data  # type: ignore[return-value]
    except SlackApiError as error:
        if error.response.get("error") != "not_in_channel":
            raise
        try:
            client.conversations_join(channel=channel)
        except SlackApiError:
            raise UserError("I am not in this channel: invite me with `/invite @sopgap`, "
                            "then try again.") from None
        return client.chat_postMessage(channel=channel, **message).data  # type: ignore[return-value]
