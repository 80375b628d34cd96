"""The replay guard's table: a Slack request's signature (or a Socket Mode envelope's
id) is recorded once. One statement for every caller (bot/replays.py,
bot/socket_mode.py), which a web worker's warm-up also runs (sop_core/warmup.py)."""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from sop_core.db import insert_ignore
from sop_core.models import SeenRequest, utcnow

WIDTH = SeenRequest.__table__.c.signature.type.length  # type: ignore[attr-defined]


def first_time(bind: Session | Connection, signature: str) -> bool:
    """Record ``signature``; False if it was recorded already (a replay)."""
    return insert_ignore(bind, SeenRequest, ("signature",), signature=signature[:WIDTH],
                         seen_at=utcnow())
