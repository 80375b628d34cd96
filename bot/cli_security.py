"""``sopgap keys …`` and ``sopgap workspace …``: the operator's security commands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape as escape_markup

# Like bot/cli.py: the heavy imports happen inside the commands that need them.

keys_app = typer.Typer(help="Encryption keys of the Slack tokens at rest.",
                       no_args_is_help=True, rich_markup_mode=None)
workspace_app = typer.Typer(help="Workspaces' records.", no_args_is_help=True,
                            rich_markup_mode=None)

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape_markup(message)}", highlight=False,
              soft_wrap=True)
    return typer.Exit(code)


@keys_app.command("new")
def keys_new() -> None:
    """Print a new key for SOPGAP_ENCRYPTION_KEY (to rotate: put it first, keep the old
    one after it, run `sopgap keys rotate`, then drop the old one)."""
    from cryptography.fernet import Fernet

    out.print(Fernet.generate_key().decode(), markup=False, highlight=False)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored Slack token under the first key of SOPGAP_ENCRYPTION_KEY."""
    from sop_core import token_crypto
    from sop_core.config import get_settings
    from sop_core.db import SchemaNotReady, get_engine, session_factory

    settings = get_settings()
    if not settings.encryption_keys:
        raise _fail("SOPGAP_ENCRYPTION_KEY is not set: nothing to rotate to")
    try:
        session_factory(settings.database_url)  # migrated (SQLite) or refused
        box = token_crypto.fernet(settings.encryption_keys)
        with get_engine(settings.database_url).begin() as connection:
            rows = token_crypto.reencrypt_all(connection, box)
    except (token_crypto.TokenKeyError, SchemaNotReady) as exc:
        raise _fail(f"{exc}; nothing was changed") from None
    out.print(f"Re-encrypted the tokens of {rows} row{'s' if rows != 1 else ''} under the "
              "first key. The other keys can now be removed from SOPGAP_ENCRYPTION_KEY.",
              highlight=False)


@workspace_app.command("purge")
def workspace_purge(
    team: Annotated[str, typer.Argument(help="The workspace's team id (T…).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every record of a workspace (after an uninstall they are kept until this)."""
    from sop_core.config import get_settings
    from sop_core.db import SchemaNotReady, session_factory
    from sop_core.services.purge import NotATeam, purge_workspace

    settings = get_settings()
    if not yes:
        typer.confirm(f"Delete every record of workspace {team} for good?", abort=True)
    try:
        deleted = purge_workspace(session_factory(settings.database_url), team)
    except (NotATeam, SchemaNotReady) as exc:
        raise _fail(str(exc), 2 if isinstance(exc, NotATeam) else 1) from None
    if not deleted:
        out.print(f"Nothing stored for workspace {escape_markup(team)}.", highlight=False)
        return
    from sop_core import formatting as fmt

    summary = ", ".join(f"{table} {fmt.number(count)}" for table, count in sorted(deleted.items()))
    out.print(f"Purged workspace {escape_markup(team)}: {summary}.", highlight=False)
