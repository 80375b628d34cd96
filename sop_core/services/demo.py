"""What ``sopgap demo`` evaluates: the bundled sample and the scopes a channel would watch."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from sop_core import snapshots
from sop_core.loading import read_file
from sop_core.services.data import latest_table, store

DEMO_DB_FILE = "sopgap-demo.db"


def demo_database_url(explicit: str | None, folder: Path) -> str:
    """Where the demo loads its sample: the URL given, else its own SQLite file. Never
    the configured database: the sample would become the latest view there, and watched
    channels would get fake trigger points."""
    from sop_core.config import normalise_database_url

    if explicit:
        return normalise_database_url(explicit)
    return f"sqlite:///{folder / DEMO_DB_FILE}"


def sample_snapshot(sessions: sessionmaker[Session], path: Path) -> tuple[int, bool]:
    """The sample as the latest view: loaded unless the latest snapshot already is it."""
    table = read_file(path)
    with sessions() as session:
        current = snapshots.latest(session)
        if current is not None and current.source == table.source and \
                current.rows_read == table.rows_read and \
                snapshots.read(session, current).frame.equals(table.frame):
            return current.id, False
    return store(sessions, table).snapshot_id, True


def demo_scopes(session: Session) -> list[str]:
    """Each member of the first dimension, then each pair with the second dimension."""
    _, table = latest_table(session)
    if not table.dimensions:
        return [""]
    first = table.dimensions[0]
    scopes = [f'{first}="{m}"' for m in table.frame[first].cat.categories]
    if len(table.dimensions) > 1:
        second = table.dimensions[1]
        scopes += [f'{first}="{a}" {second}="{b}"'
                   for a in table.frame[first].cat.categories
                   for b in table.frame[second].cat.categories]
    return scopes
