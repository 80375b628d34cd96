"""Native threads a sopgap process does without: OpenBLAS's.

numpy's OpenBLAS starts a thread for every core but one as numpy is imported, and each
spins, looking for work, before it sleeps. sopgap does no linear algebra (its arrays are
summed, grouped, sorted and taken, none of which calls BLAS), so on a 2-core machine that
spinning took a core from the work that was running: a 1M-row ``sopgap load`` used 1.45 s
of CPU instead of 1.61 s (median of 9 runs each, interleaved; perf showed
``blas_thread_server`` at 5 % of the process's samples). With one thread OpenBLAS starts
none: the calling thread would do any BLAS work itself.

Called first by every process entry point, before numpy is imported: ``sopgap`` in
bot/cli.py and gunicorn's master in bot/gunicorn_conf.py. A value set in the environment
is kept.
"""

from __future__ import annotations

import os

VARIABLE = "OPENBLAS_NUM_THREADS"  # read once, when numpy (OpenBLAS) is loaded


def no_blas_threads() -> None:
    os.environ.setdefault(VARIABLE, "1")
