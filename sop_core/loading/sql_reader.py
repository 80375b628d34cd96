"""SQL sources: the aggregation runs in the database."""

from __future__ import annotations

from collections.abc import Collection

import pyarrow as pa

from sop_core.loading.table import LoadError, PlanningTable
from sop_core.loading.validate import _roles, normalise


def read_sql(url: str, query: str, *, metric: str | None = None,
             source: str = "SQL query", ignore_columns: Collection[str] = ()) -> PlanningTable:
    """Run ``query`` against any SQLAlchemy URL, pushing the merge (GROUP BY) down to it."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
    except Exception as exc:
        raise LoadError(source, f"bad database URL: {type(exc).__name__}") from None
    try:
        with engine.connect() as connection:
            sample_sql = sa.select(sa.text("*")).select_from(
                sa.text(f"({query}) AS src")).limit(1000)
            sample = connection.execute(sample_sql)
            names = list(sample.keys())
            sample_rows = sample.fetchall()
            sample_table = pa.table({n: pa.array([r[i] for r in sample_rows])
                                     for i, n in enumerate(names)}) if sample_rows else None
            if sample_table is None:
                raise LoadError(source, "the query returned no rows")
            roles = _roles(sample_table, source, ignore_columns)
            src = sa.text(query).columns(*[sa.column(n) for n in names]).subquery("src")
            group = [src.c[roles.period]]
            if roles.metric:
                group.append(src.c[roles.metric])
            if roles.measure:
                group.append(src.c[roles.measure])
            group += [src.c[name] for _, name in roles.dimensions]
            numbers = [roles.value] if roles.measure else list(roles.wide.values())
            statement = sa.select(
                *group, *[sa.func.sum(src.c[n]).label(n) for n in numbers],
                sa.func.count().label("__rows__"),
            ).group_by(*group)
            result = connection.execute(statement)
            grouped_rows = result.fetchall()
            out_names = list(result.keys())
    except LoadError:
        raise
    except Exception as exc:
        # The driver's message, without the URL (it may hold a password).
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:300]
        raise LoadError(source, f"the query failed: {reason}") from None
    finally:
        engine.dispose()
    columns = {n: pa.array([r[i] for r in grouped_rows]) for i, n in enumerate(out_names)}
    rows_read = int(sum(columns.pop("__rows__").to_pylist()))
    table = normalise(pa.table(columns), source=source, metric=metric, first_row=1)
    if ignore_columns:  # (left out of the query already)
        table = table.replaced(notes=(
            *table.notes, "left out as asked: " + ", ".join(ignore_columns)))
    # Merged = rows the database summed into a group, plus what normalise() merged
    # (e.g. two dates of one month); long-form rows of different measures never count.
    merged_in_database = rows_read - len(grouped_rows)
    return table.replaced(rows_read=rows_read,
                          rows_merged=merged_in_database + table.rows_merged)
