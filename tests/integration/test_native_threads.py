"""bot/native_threads.py: a sopgap process starts no OpenBLAS threads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sop_core.sample_data import SAMPLE_CSV

# The threads numpy's import starts, after the set-up named by argv[1] (or none).
THREADS_NUMPY_STARTS = textwrap.dedent("""
    import os, sys
    if sys.argv[1] == "cli":
        from bot.native_threads import no_blas_threads
        no_blas_threads()
    elif sys.argv[1] == "gunicorn":
        from bot import gunicorn_conf
        gunicorn_conf.on_starting(None)
    before = len(os.listdir("/proc/self/task"))
    import numpy
    print(len(os.listdir("/proc/self/task")) - before)
""")

several_cores = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir() or (os.cpu_count() or 1) < 2,
    reason="threads counted in /proc; OpenBLAS starts none on one core")


def threads_numpy_starts(setup: str, tmp_path: Path, **environment: str) -> int:
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    env |= {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "SOPGAP_PREFLIGHT_DONE": "1", **environment}
    result = subprocess.run([sys.executable, "-c", THREADS_NUMPY_STARTS, setup], env=env,
                            capture_output=True, text=True, check=True)
    return int(result.stdout)


@several_cores
@pytest.mark.parametrize("setup", ["cli", "gunicorn"])
def test_numpy_starts_no_blas_thread_after_the_set_up(setup: str, tmp_path: Path) -> None:
    assert threads_numpy_starts("none", tmp_path) > 0  # OpenBLAS: one per core but one
    assert threads_numpy_starts(setup, tmp_path) == 0


@several_cores
def test_a_thread_count_set_in_the_environment_is_kept(tmp_path: Path) -> None:
    assert threads_numpy_starts("cli", tmp_path, OPENBLAS_NUM_THREADS="2") == 1


def test_sopgap_load_sets_it_before_numpy_is_imported(tmp_path: Path) -> None:
    # In a process of its own: main() may end its process without unwinding (bot/cli.py).
    probe = textwrap.dedent(f"""
        import atexit, os, sys
        from bot import native_threads
        set_up = native_threads.no_blas_threads
        seen = []
        def recorded():
            seen.append("numpy" in sys.modules)
            set_up()
        native_threads.no_blas_threads = recorded
        atexit.register(lambda: print(seen, "numpy" in sys.modules,
                                      os.environ.get("OPENBLAS_NUM_THREADS")))
        sys.argv = ["sopgap", "load", {str(SAMPLE_CSV)!r}]
        from bot.cli import main
        main()
    """)
    env = {key: value for key, value in os.environ.items()
           if key != "OPENBLAS_NUM_THREADS" and not key.startswith("SLACK_")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'sopgap.db'}"
    result = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("[False] True 1")
