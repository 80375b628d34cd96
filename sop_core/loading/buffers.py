"""Arrow ↔ numpy through the arrays' buffers, for the load's fast path.

pyarrow's own converters (``pa.array``, ``Array.to_numpy``, a Python scalar given to a
compute function) import pandas on their first use when it is installed: a third of a
second of a load that needs no pandas (``sopgap load`` of a CSV or Parquet file). These
do the same for what that path converts: fixed-width numbers and short lists of text.
Anything else goes to pyarrow's converters, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

_NUMPY_OF = {pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32,
             pa.int64(): np.int64, pa.uint8(): np.uint8, pa.uint16(): np.uint16,
             pa.uint32(): np.uint32, pa.uint64(): np.uint64, pa.float32(): np.float32,
             pa.float64(): np.float64}
_ARROW_OF = {np.dtype(numpy): arrow for arrow, numpy in _NUMPY_OF.items()}


def to_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric column as a new (writable) numpy array: floats' nulls as NaN. Integer
    columns with nulls, and other types, as pyarrow converts them."""
    dtype = _NUMPY_OF.get(column.type)
    floating = dtype is not None and pa.types.is_floating(column.type)
    if dtype is None or (column.null_count and not floating):
        return column.to_numpy(zero_copy_only=False)
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out = np.empty(len(column), dtype=dtype)
    start = 0
    for chunk in chunks:
        size = len(chunk)
        if not size:
            continue
        part = out[start:start + size]
        buffers = chunk.buffers()
        if buffers[1] is None:  # no values at all (all missing)
            part[:] = np.nan
        else:
            part[:] = np.frombuffer(buffers[1], dtype=dtype, count=size,
                                    offset=chunk.offset * part.itemsize)
            if chunk.null_count:
                valid = np.unpackbits(np.frombuffer(buffers[0], dtype=np.uint8),
                                      count=chunk.offset + size, bitorder="little")
                part[valid[chunk.offset:] == 0] = np.nan
        start += size
    return out


def from_numpy(values: np.ndarray) -> pa.Array:
    """A numpy array of numbers as an Arrow array (shared, not copied); a float's NaN
    is a null, as ``pa.Table.from_pandas`` makes it."""
    values = np.ascontiguousarray(values)
    arrow_type = _ARROW_OF.get(values.dtype)
    if arrow_type is None:
        return pa.array(values)
    validity, nulls = None, 0
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        nulls = int(missing.sum())
        if nulls:
            validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(arrow_type, len(values), [validity, pa.py_buffer(values)],
                                 null_count=nulls)


def strings(values: Sequence[object]) -> pa.Array:
    """Texts (a column's few distinct values) as an Arrow string array."""
    encoded = [str(value).encode() for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(data) for data in encoded], out=offsets[1:])
    if offsets[-1] >= 2**31:
        return pa.array([str(value) for value in values], pa.string())
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(offsets.astype(np.int32)),
                                  pa.py_buffer(b"".join(encoded))])


class _LazyCompute:
    """``pyarrow.compute``, imported on first use (0.03 s): the fast path of a CSV load
    calls none of its functions."""

    def __getattr__(self, name: str) -> object:
        import pyarrow.compute

        return getattr(pyarrow.compute, name)


pc: Any = _LazyCompute()
