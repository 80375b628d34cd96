"""What the benchmarks share: the machine line of their header, scratch databases."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path


def git_revision() -> str:
    """The commit measured, and whether the working tree differs from it ("dirty"):
    figures are only comparable between runs of the same clean commit."""
    import subprocess

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown (not a git checkout)"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return f"{commit}{' + uncommitted changes (dirty)' if dirty else ' (clean)'}"


def compile_bytecode(root: Path) -> str:
    """Compile a checkout's code (``bot``, ``sop_core``, ``migrations``) to bytecode, as
    ``pip install`` does for an installed package and the README's install command does
    for the checkout, and say so for the header. Without it, in a shell that sets
    ``PYTHONDONTWRITEBYTECODE``, every process compiles the modules it imports from
    source (about 0.05 s of CPU in ``sopgap load``), and the figures depend on the shell."""
    import compileall

    ok = all(compileall.compile_dir(root / package, quiet=1)
             for package in ("bot", "sop_core", "migrations") if (root / package).is_dir())
    return ("compiled ahead (python -m compileall), as an installed package has it" if ok
            else "compiling failed: figures include compiling from source")


def loadavg(values: tuple[float, float, float] | None = None) -> str:
    """A load average (1/5/15 min; now by default): other work shares a small machine."""
    return "/".join(f"{v:.1f}" for v in (values or os.getloadavg()))


def machine() -> str:
    """Cores, CPU model, memory and kernel, and the load average now."""
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (f"{os.cpu_count()} cores ({cpu}), {memory:.1f} GB RAM, {platform.system()} "
            f"{platform.release()}; load average (1/5/15 min) {loadavg()}")


@contextlib.contextmanager
def postgres_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new database on the PostgreSQL server of ``admin_url`` (any database there will
    do, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``), dropped after the block
    even if connections are still open; yields its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    from sop_core.config import normalise_database_url

    admin = make_url(normalise_database_url(admin_url))
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"{prefix}_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

