"""bot/allocator.py: memory a process frees is kept for its next use (glibc)."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest

from bot import allocator

# A process that frees a 16 MiB block, then says how much of it is still resident.
FREED_AND_KEPT = textwrap.dedent("""
    import os, sys
    from bot.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    page = os.sysconf("SC_PAGE_SIZE")
    def resident():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page
    block = bytearray(16 * 2**20)  # touched: zeroed by the allocator or the kernel
    block[::4096] = b"x" * len(block[::4096])
    held = resident()
    del block
    print(held - resident())
""")

linux_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallopt"),
    reason="glibc's mallopt only")


def freed_bytes_given_back(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", FREED_AND_KEPT, mode], check=True,
                            capture_output=True, text=True)
    return int(result.stdout)


@linux_glibc
def test_a_freed_block_stays_for_the_next_use_instead_of_going_back_to_the_kernel() -> None:
    assert freed_bytes_given_back("default") >= 15 * 2**20  # glibc: unmapped at once
    assert freed_bytes_given_back("keep") < 2**20


def test_without_glibc_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoMallopt:  # musl's C library, say
        pass

    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda _name: NoMallopt())
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False


def test_every_sopgap_command_sets_it_first() -> None:
    # In a process of its own: main() may end its process without unwinding (bot/cli.py).
    probe = textwrap.dedent("""
        import atexit, sys
        from bot import allocator
        calls = []
        allocator.keep_freed_memory = lambda: calls.append("set") or True
        atexit.register(lambda: print(calls))
        sys.argv = ["sopgap", "--help"]
        from bot.cli import main
        main()
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("['set']")


# A process whose threads each allocate a block while the others hold theirs, then the
# arenas glibc's malloc_stats() reports (on stderr).
THREADS_ARENAS = textwrap.dedent("""
    import ctypes, sys, threading
    from bot.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    all_hold = threading.Barrier(4)
    def allocate():
        block = bytearray(256 * 2**10)  # from malloc, not Python's small-object allocator
        all_hold.wait()
    threads = [threading.Thread(target=allocate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stderr.flush()
    ctypes.CDLL(None).malloc_stats()
""")


def arenas_used(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", THREADS_ARENAS, mode], check=True,
                            capture_output=True, text=True)
    return sum(line.startswith("Arena ") for line in result.stderr.splitlines())


@linux_glibc
def test_threads_allocate_from_the_main_arena_with_the_memory_it_kept() -> None:
    assert arenas_used("default") > 1  # glibc: a new arena for each new thread
    assert arenas_used("keep") == 1
