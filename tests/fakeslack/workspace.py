"""The simulated Slack side of the conversation: teams, users, files and generated ids."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from .models import Channel, Team, UploadedFile

# Before any add_team() the fake accepts every token as this team, so simple tests need
# no setup; once a team is added, tokens are checked like Slack does.
DEFAULT_TEAM_ID = "T0TEST"
# Message timestamps follow the real clock, as Slack's do (``oldest``/``latest`` in
# conversations.history compare them with times the app computes), and never repeat.
_TS_STEP_MICROS = 100


@dataclass
class Workspace:
    """Mutable state shared by all response builders; guarded by FakeSlack's lock."""

    teams: dict[str, Team] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    # Channels as state (see Channel); one the tests never declared is made on first use.
    channels: dict[str, Channel] = field(default_factory=dict)
    # Views keep their id across updates: keyed by "external:<id>" or "home:<user>".
    view_ids: dict[str, str] = field(default_factory=dict)
    default_team: Team = field(default_factory=lambda: Team(DEFAULT_TEAM_ID, bot_token=""))
    # Socket Mode: the app-level tokens (xapp-) that may open a connection, and where to.
    app_tokens: set[str] = field(default_factory=set)
    socket_mode_url: str | None = None
    # Tokens given back with auth.revoke: Slack answers token_revoked to them after.
    revoked_tokens: set[str] = field(default_factory=set)
    _last_ts_micros: int = 0
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def team_for_token(self, token: str | None) -> Team | None:
        """The team a bot token belongs to; any token is the default team until teams exist."""
        if not self.teams:
            return self.default_team
        if token in self.app_tokens:  # an app-level token belongs to the app, not a team
            return next(iter(self.teams.values()))
        return next((team for team in self.teams.values() if team.bot_token == token), None)

    def team_for_code(self, code: str) -> Team | None:
        return next((team for team in self.teams.values() if team.oauth_code == code), None)

    def channel(self, channel_id: str) -> Channel:
        """The channel, declared or not: an undeclared ``C…`` id is a public channel that
        everyone and the bot are in, so tests about something else need no setup; an
        undeclared ``D…`` id is a DM with the bot."""
        known = self.channels.get(channel_id)
        if known is None:
            known = Channel(channel_id, is_im=channel_id.startswith("D"))
            self.channels[channel_id] = known
        return known

    def next_ts(self) -> str:
        """A unique, increasing message timestamp shaped like Slack's ``"1700000000.000100"``."""
        micros = max(time.time_ns() // 1000, self._last_ts_micros + _TS_STEP_MICROS)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def new_id(self, prefix: str) -> str:
        """A unique Slack-style id such as ``V0FAKE000001`` (prefix = object kind)."""
        return f"{prefix}0FAKE{next(self._serial):06d}"

    def clear_recordings(self) -> None:
        """Forget uploads and views but keep the configuration (teams, users)."""
        self.files.clear()
        self.uploads.clear()
        self.view_ids.clear()
