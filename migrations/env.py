"""Alembic environment: the URL comes from the settings (or a connection handed in)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from sop_core.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


# Tables owned by slack_sdk's installation/state stores: created by our migrations,
# but not described by our models, so autogenerate must leave them alone.
SLACK_SDK_TABLES = frozenset({"slack_installations", "slack_bots", "slack_oauth_states"})


def include_object(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    table = obj.table.name if type_ in {"index", "column"} else name
    return table not in SLACK_SDK_TABLES


def render_item(type_, obj, autogen_context):  # type: ignore[no-untyped-def]
    """Write our UTC TypeDecorator as the plain type it stores, so that migrations never
    import the models (a migration must not change when the models do)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from sop_core.config import get_settings

    return get_settings().database_url


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config({"sqlalchemy.url": _url()}, prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.begin() as new_connection:
        _run(new_connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # Batch mode: SQLite cannot ALTER most things, so Alembic copies the table instead.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True,
                      include_object=include_object, render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
