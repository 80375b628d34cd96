"""The C allocator of a sopgap process: memory freed is kept for the next use.

A gap query or a load allocates and frees arrays of megabytes again and again. glibc
hands blocks of that size back to the kernel as soon as they are freed (and trims the
heap above 128 KiB), so the next array of the same size is fresh memory, which the
kernel maps and zeroes page by page. On the 2-core VM of benchmarks/README.md that was a
fifth of a warm gap query at 10M rows (72 ms instead of 58 ms, by customer) and 0.3 s of
a 10M-row load. Kept up to ``TRIM_BYTES`` above what is in use, it is reused instead.

Called once, early, by every process entry point (``sopgap`` in bot/cli.py, gunicorn's
master in bot/gunicorn_conf.py, whose workers inherit it). Elsewhere than glibc (musl,
macOS) there is no ``mallopt`` and nothing changes.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 * 2**20  # glibc's largest: blocks up to this come from the heap, reused
TRIM_BYTES = 256 * 2**20  # free memory kept at the heap's top before it is given back


def keep_freed_memory() -> bool:
    """Set the process's allocator to reuse freed blocks; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process runs on
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
