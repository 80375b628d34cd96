"""Plain data the fake records and hands to tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """One request to ``/api/<method>``, as received and as answered.

    ``args`` holds the decoded arguments with Slack's JSON-in-form fields (``blocks``,
    ``view``, ``attachments``, ...) already parsed, so tests compare Python objects
    whether the client sent a form or a JSON body. ``headers`` names are Title-Case,
    ``at`` is the ``time.monotonic()`` of arrival, ``response`` the JSON answered.
    """

    method: str
    args: dict[str, Any]
    token: str | None
    team_id: str | None
    headers: dict[str, str]
    at: float
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether Slack would have accepted the call (HTTP 200 and ``"ok": true``)."""
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class Team:
    """A workspace that installed the app; its bot token authenticates calls for it."""

    team_id: str
    bot_token: str
    team_name: str = "Test Workspace"
    bot_name: str = "sopgap"
    app_id: str = "A0FAKEAPP"
    scope: str = "chat:write,commands,files:write,im:write,users:read"
    bot_user_id: str = ""
    bot_id: str = ""
    authed_user_id: str = ""
    oauth_code: str = ""

    def __post_init__(self) -> None:
        """Derive the other ids from the team id so several teams never share one."""
        suffix = self.team_id[1:]
        self.bot_user_id = self.bot_user_id or f"U{suffix}BOT"
        self.bot_id = self.bot_id or f"B{suffix}BOT"
        self.authed_user_id = self.authed_user_id or f"U{suffix}ADMIN"
        self.oauth_code = self.oauth_code or f"code-{self.team_id}"

    @property
    def url(self) -> str:
        """The workspace URL auth.test reports, e.g. ``https://test-workspace.slack.com/``."""
        return f"https://{self.team_name.lower().replace(' ', '-')}.slack.com/"


@dataclass
class UploadedFile:
    """A file going through getUploadURLExternal -> upload URL -> completeUploadExternal."""

    id: str
    filename: str
    length: int
    uploaded: bool = False
    completed: bool = False
    title: str | None = None
    channel_id: str | None = None
    channels: list[str] = field(default_factory=list)
    thread_ts: str | None = None
    initial_comment: str | None = None


class Rejected(Exception):
    """Slack's answer to a call it refuses; a ``violation`` marks a bug in the caller.

    Not every refusal is a bug: an unknown token or an injected rate limit is a situation
    the app must handle, so only contract breaches carry a violation.
    """

    def __init__(
        self,
        error: str,
        violation: str | None = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.violation = violation
        self.status = status
        self.headers = headers or {}
