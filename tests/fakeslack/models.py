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
    # Token rotation: with a refresh token, oauth.v2.access hands out bot tokens that
    # expire after ``token_expires_in`` seconds, and exchanges the refresh token for a
    # new pair (the old bot token then stops working), as Slack does.
    refresh_token: str = ""
    token_expires_in: int = 43200
    rotations: int = 0

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
class Channel:
    """A conversation as the fake keeps it: public or private, shared with another
    organisation (Slack Connect) or not, who is in it, and whether the bot is.

    ``members`` is None for "everyone in the workspace" (the default channel of tests
    that do not care); a set lists exactly who is in (the bot counts only through
    ``bot_member``).
    """

    id: str
    name: str = ""
    is_private: bool = False
    is_ext_shared: bool = False
    is_im: bool = False
    is_mpim: bool = False
    is_archived: bool = False
    members: set[str] | None = None
    bot_member: bool = True
    # Its messages, oldest first: at the top level (conversations.history), and the
    # replies in each thread by the thread's ts (conversations.replies).
    messages: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.name or self.id.lower()

    def has_member(self, user_id: str) -> bool:
        return self.members is None or user_id in self.members

    @property
    def visible_to_bot(self) -> bool:
        """Slack answers channel_not_found about a private conversation the bot is not in."""
        return self.bot_member or not (self.is_private or self.is_im or self.is_mpim)

    def info(self, team: Team) -> dict[str, Any]:
        """The channel object of conversations.info (the fields sopgap reads, and a few)."""
        public = not (self.is_private or self.is_im or self.is_mpim)
        return {
            "id": self.id, "name": self.name, "is_channel": public,
            "is_group": self.is_private and not self.is_mpim, "is_im": self.is_im,
            "is_mpim": self.is_mpim, "is_private": not public, "is_archived": self.is_archived,
            "is_general": False, "is_shared": self.is_ext_shared,
            "is_ext_shared": self.is_ext_shared, "is_org_shared": False,
            "is_pending_ext_shared": False, "is_member": self.bot_member,
            "context_team_id": team.team_id, "created": 1_700_000_000,
        }


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
