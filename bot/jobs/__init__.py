"""What the clock does, one module per job; each job is a function of a JobContext."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from sop_core.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    """One pass of the clock at instant ``now`` (aware, UTC)."""

    settings: Settings
    sessions: sessionmaker[Session]
    client_for: Callable[[str], WebClient | None]  # team id → a client with its bot token
    now: datetime


@dataclass
class PassReport:
    """What a pass did, for logs and for ``sopgap tick``'s output."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, other: PassReport) -> None:
        self.sent += other.sent
        self.skipped += other.skipped
        self.failed += other.failed
