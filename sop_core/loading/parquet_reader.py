"""Parquet files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from sop_core.loading.table import LoadError, _arrow_reason


def _read_parquet(path: Path, source: str) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise LoadError(source, f"could not read as Parquet: {_arrow_reason(exc)}") from None
