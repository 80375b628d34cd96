"""The C allocator of a sopgap process: memory freed is kept for the next use.

A load, or a gap query, allocates and frees arrays of megabytes again and again. A fresh
glibc process hands blocks of that size back to the kernel as soon as they are freed,
and trims the top of its heap above 128 KiB, so the next array of the same size is fresh
memory that the kernel maps and zeroes page by page, and fresh memory is costly on a VM.
Blocks up to ``MMAP_BYTES`` now come from the heap, and up to ``TRIM_BYTES`` of free
memory stay there for the next use.

Measured on the 2-core VM of benchmarks/README.md: a 10M-row ``sopgap load`` took 0.95×
the time (same run, both file orders). A fresh process that decodes a 10M-row snapshot
and then queries it: the warm gap by customer took 58 ms instead of 72 ms. A
long-running process mostly gets there by itself, because glibc raises its threshold to
the size of the blocks it frees; the core benchmark's warm query, measured after several
loads in the same process, did not change. The price is memory kept: the peak of that
benchmark went from 1.53 GB to 1.60 GB.

Every thread also allocates from the one main arena (``ARENAS``). By default glibc gives
threads arenas of their own, up to eight per core: a web worker's first command runs on
threads new to the process (gunicorn's, Bolt's listener's), whose arenas start empty, so
it faulted in about 4 MB of fresh pages (1,450–1,600 page faults, against 15–60 for the
next commands) while the main arena held the memory the warm-up had freed. With one
arena, 277–594 in 18 restarts, most 320–390 (``/proc/<pid>/stat`` of the workers of
``sopgap serve``, 1M-row snapshot). The threads hold the interpreter lock while they
allocate, so they seldom wait on the arena's lock.

Called early by every process entry point: ``sopgap`` in bot/cli.py, and gunicorn's
master in bot/gunicorn_conf.py, whose workers inherit it (under ``sopgap serve`` both
run; setting it twice is harmless, and a plain ``gunicorn -c python:bot.gunicorn_conf``
start needs the second). Elsewhere than glibc (musl, macOS) there is no ``mallopt`` and
nothing changes.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_BYTES = 32 * 2**20  # glibc's largest: blocks up to this come from the heap, reused
TRIM_BYTES = 256 * 2**20  # free memory kept at the heap's top before it is given back
ARENAS = 1  # the main arena, shared by every thread


def keep_freed_memory() -> bool:
    """Set the process's allocator to reuse freed blocks; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process runs on
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all([mallopt(M_MMAP_THRESHOLD, MMAP_BYTES), mallopt(M_TRIM_THRESHOLD, TRIM_BYTES),
                mallopt(M_ARENA_MAX, ARENAS)])
