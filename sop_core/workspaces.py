"""Which workspaces may use the app, and which are served the shared data.

Data loaded without ``--team`` is stored under team ``""`` (shared). It is served only to
the workspaces of ``SOPGAP_SHARED_DATA_TEAMS``; unset, that is the single bot token's own
workspace (asked of Slack once, lazily), and nobody when installing over OAuth. Team
``""`` itself is the operator (the command line), who sees everything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence

log = logging.getLogger(__name__)
SHARED = ""


def team_is_allowed(allowed: Collection[str] | None, *, team_id: str | None,
                    enterprise_id: str | None) -> bool:
    """``SOPGAP_ALLOWED_TEAMS`` (team or enterprise ids); None allows everyone."""
    if allowed is None:
        return True
    return bool((team_id and team_id in allowed) or (enterprise_id and enterprise_id in allowed))


class SharedDataPolicy:
    """Who is served the shared data: an explicit list, or one team found lazily (the
    single token's own), cached once known; a lookup that fails shares nothing."""

    def __init__(self, teams: Sequence[str] | None = None,
                 own_team: Callable[[], str | None] | None = None) -> None:
        self._teams = frozenset(teams) if teams is not None else None
        self._own_team = own_team
        self._known: str | None = None
        self._lock = threading.Lock()

    def shares_with(self, team_id: str) -> bool:
        if team_id == SHARED:
            return True
        if self._teams is not None:
            return team_id in self._teams
        if self._own_team is None:
            return False
        with self._lock:
            if self._known is None:
                try:
                    self._known = self._own_team()
                except Exception:  # Slack away: share nothing now, ask again next time
                    log.warning("could not learn the bot token's workspace; the shared "
                                "data is served to nobody until it is known")
                    return False
            return self._known == team_id


_policy = SharedDataPolicy()  # until configured: nobody but the operator


def configure_shared_data(policy: SharedDataPolicy) -> None:
    """Set by each process at start (the web app, the clock) from its settings."""
    global _policy
    _policy = policy


def shares_with(team_id: str) -> bool:
    return _policy.shares_with(team_id)


def may_read(team_id: str, owner_team_id: str) -> bool:
    """Whether workspace ``team_id`` may read data stored under ``owner_team_id``."""
    return team_id in (SHARED, owner_team_id) or (
        owner_team_id == SHARED and shares_with(team_id))
