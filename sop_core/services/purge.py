"""``sopgap workspace purge T…``: every record of one workspace, gone for good.

Uninstalling deletes a workspace's tokens at once but keeps its records (trigger points,
root causes, actions, snapshots loaded for it) so that a reinstall finds them; a purge is
the operator's explicit decision to delete them.
"""

from __future__ import annotations

import re

from sqlalchemy import Table, delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from sop_core.models import Base

TEAM_ID = re.compile(r"[TE][A-Z0-9]{1,31}")
# slack_sdk's installation tables (not in our models): any rows left of the workspace.
SLACK_SDK_TABLES = ("slack_installations", "slack_bots")


class NotATeam(ValueError):
    pass


def _owned_by_team(table: Table) -> bool:
    return "team_id" in table.c


def purge_workspace(sessions: sessionmaker[Session], team_id: str) -> dict[str, int]:
    """Delete every row of workspace ``team_id`` (children first); rows deleted per table."""
    if not TEAM_ID.fullmatch(team_id):
        raise NotATeam(f"{team_id!r} is not a Slack team or enterprise id (T… or E…)")
    deleted: dict[str, int] = {}
    with sessions.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            if _owned_by_team(table):
                statement = delete(table).where(table.c.team_id == team_id)
            else:
                parents = [(fk.parent, fk.column.table) for fk in table.foreign_keys
                           if _owned_by_team(fk.column.table)]
                if not parents:
                    continue
                column, parent = parents[0]
                statement = delete(table).where(column.in_(
                    select(parent.c.id).where(parent.c.team_id == team_id)))
            count = session.execute(statement).rowcount or 0
            if count:
                deleted[table.name] = count
        for name in SLACK_SDK_TABLES:
            count = session.execute(text(f"DELETE FROM {name} WHERE team_id = :team"),
                                    {"team": team_id}).rowcount or 0
            if count:
                deleted[name] = count
    return deleted
