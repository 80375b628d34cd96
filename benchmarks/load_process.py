"""``sopgap load`` as a user runs it: a whole process (start-up and imports, parse,
validate, merge, store), against a whole process that only parses the same file with
``pyarrow.csv.read_csv``; and ``sopgap --help``.

``python -m benchmarks.load_process`` (1M rows), ``--rows 1M 10M`` to choose,
``--baseline DIR`` to time an earlier checkout's ``sopgap load`` in the same run, e.g.::

    git archive 8c19325 | (mkdir -p /tmp/sopgap-base && tar -x -C /tmp/sopgap-base)
    python -m benchmarks.load_process --rows 10M --baseline /tmp/sopgap-base

Each size is measured on two files with the same rows: the synthetic file, in period
order (benchmarks/synth.py), and the same rows in key order (by every dimension, then
period), as files exported from a planning tool usually are. Runs are interleaved
(reference, ours, baseline, reference, …) so that noise on a shared machine hits all
alike; each load goes into a fresh copy of a migrated SQLite database. Figures only.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import synth
from benchmarks.common import compile_bytecode, git_revision, machine

REPO = Path(__file__).resolve().parents[1]
GOAL_AT_1M, GOAL_AT_10M = 2.0, 1.5  # sopgap load / whole-process pyarrow parse
HELP_GOAL = 0.4  # seconds, whole process
ARROW_ONLY = "import sys, pyarrow.csv as c; c.read_csv(sys.argv[1])"
# The floor of any load on this stack: the same parse in a thread while the process
# imports what a load cannot do without (typer and rich for the command line, pydantic
# settings, SQLAlchemy with a connection to the database), and nothing else: no
# validation, no store. Printed beside the goal, not part of it: it says how much of the
# ratio the stack takes before sopgap's own work starts.
STACK_FLOOR = """
import os, sys, threading
import pyarrow.csv as c
reading = threading.Thread(target=c.read_csv, args=(sys.argv[1],))
reading.start()
import typer, rich.console, pydantic_settings, sqlalchemy
with sqlalchemy.create_engine(sys.argv[2]).connect() as connection:
    connection.exec_driver_sql("SELECT 1")
reading.join()
os._exit(0)
"""


def key_ordered(path: Path) -> Path:
    """The rows of ``path`` sorted by every dimension, then period (cached beside it)."""
    target = path.with_name(path.stem + "_keyorder.csv")
    if target.is_file() and target.stat().st_mtime >= path.stat().st_mtime:
        return target
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(path)
    keys = [n for n in table.column_names if n not in ("period", "plan", "forecast", "actual")]
    table = table.take(pc.sort_indices(table, [(k, "ascending") for k in [*keys, "period"]]))
    partial = target.with_suffix(".partial")
    pacsv.write_csv(table, partial, write_options=pacsv.WriteOptions(quoting_style="none"))
    partial.replace(target)
    return target


CPU_SECONDS: list[float] = []  # of each process run, in order (user + system)


def _timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of the whole process; its CPU seconds go to :data:`CPU_SECONDS`
    (on a shared machine, CPU time is what other work inflates least)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    return elapsed


class Checkout:
    """A checkout whose ``sopgap load`` is timed: its code first on the module path, and a
    migrated SQLite template copied for every run."""

    def __init__(self, root: Path, scratch: Path, label: str) -> None:
        self.root, self.label = root, label
        self.env = {**os.environ, "PYTHONPATH": str(root)}
        self.template = scratch / f"{label}-template.db"
        self.database = scratch / f"{label}.db"
        env = {**self.env, "DATABASE_URL": f"sqlite:///{self.template}"}
        subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, cwd=root,
                       check=True, stdout=subprocess.DEVNULL)

    def load(self, path: Path) -> float:
        shutil.copyfile(self.template, self.database)
        env = {**self.env, "DATABASE_URL": f"sqlite:///{self.database}"}
        return _timed([sys.executable, "-m", "bot.cli", "load", str(path)], env, self.root)


def measure(path: Path, checkouts: list[Checkout], repeat: int
            ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of each process, by label."""
    labels = ["pyarrow.csv.read_csv", "stack floor", *(checkout.label for checkout in checkouts)]
    times: dict[str, list[float]] = {label: [] for label in labels}
    cpu: dict[str, list[float]] = {label: [] for label in labels}
    for _ in range(repeat):
        times[labels[0]].append(
            _timed([sys.executable, "-c", ARROW_ONLY, str(path)], dict(os.environ), REPO))
        cpu[labels[0]].append(CPU_SECONDS[-1])
        times[labels[1]].append(_timed(
            [sys.executable, "-c", STACK_FLOOR, str(path), f"sqlite:///{checkouts[0].template}"],
            dict(os.environ), REPO))
        cpu[labels[1]].append(CPU_SECONDS[-1])
        for checkout in checkouts:
            times[checkout.label].append(checkout.load(path))
            cpu[checkout.label].append(CPU_SECONDS[-1])
    return times, cpu


def help_seconds(repeat: int = 5) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``sopgap --help`` runs."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    walls = [_timed([sys.executable, "-m", "bot.cli", "--help"], env, REPO)
             for _ in range(repeat)]
    return walls, CPU_SECONDS[-repeat:]


def report(rows: int, order: str, times: dict[str, list[float]],
           cpu: dict[str, list[float]]) -> None:
    reference = statistics.median(times["pyarrow.csv.read_csv"])
    goal = GOAL_AT_1M if rows <= 1_000_000 else GOAL_AT_10M
    for label, values in times.items():
        median = statistics.median(values)
        spread = f"{min(values):.2f}–{max(values):.2f}"
        ratio = median / reference
        verdict = ""
        if label == "sopgap load":
            verdict = f"goal ≤ {goal:g}×: {'met' if ratio <= goal else 'NOT met'}"
        print(f"  {rows:>11,} {order:<13} {label:<22} {median:7.2f} s  ({spread})  "
              f"{ratio:5.2f}×  CPU {statistics.median(cpu[label]):6.2f} s  {verdict}")
    if "baseline" in times:
        change = statistics.median(times["sopgap load"]) / statistics.median(times["baseline"])
        print(f"  {'':>11} {'':<13} sopgap load / baseline  {change:5.2f}× "
              f"(goal at 10M: ≤ 1.10×)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", default=["1M"],
                        help="sizes, e.g. 1M 10M (default 1M)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs of each (median; default 5 up to 2M rows, 4 above)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="an earlier checkout (e.g. from git archive) to time too")
    parser.add_argument("--orders", nargs="+", default=["period", "key"],
                        choices=["period", "key"], help="file orders to measure")
    args = parser.parse_args(argv)
    print("sopgap load as a whole process (benchmarks/load_process.py)")
    print(machine())
    print(f"commit      {git_revision()}")
    print(f"bytecode    {compile_bytecode(REPO)}")
    if args.baseline is not None:
        print(f"baseline    {args.baseline}")
    helps, help_cpu = help_seconds()
    print(f"\n  sopgap --help: median {statistics.median(helps):.3f} s of {len(helps)} "
          f"({min(helps):.3f}–{max(helps):.3f}), CPU {statistics.median(help_cpu):.3f} s; "
          f"goal < {HELP_GOAL} s: "
          f"{'met' if statistics.median(helps) < HELP_GOAL else 'NOT met'}\n")
    print(f"  {'rows':>11} {'file order':<13} {'process':<22} {'median':>9}  (min–max)    "
          "× pyarrow")
    with tempfile.TemporaryDirectory(prefix="sopgap-load-") as scratch:
        checkouts = [Checkout(REPO, Path(scratch), "sopgap load")]
        if args.baseline is not None:
            compile_bytecode(args.baseline.resolve())  # (this checkout's: in the header)
            checkouts.append(Checkout(args.baseline.resolve(), Path(scratch), "baseline"))
        for size in args.rows:
            rows = int(float(size.upper().rstrip("M")) * 1_000_000) if size.upper().endswith(
                "M") else int(size)
            period_file = Path(synth.ensure(rows).path)
            # (4 at 10M: a median of 2 is their mean, and one slow run moved it by 50 %)
            repeat = args.repeat or (5 if rows <= 2_000_000 else 4)
            for order in args.orders:
                path = period_file if order == "period" else key_ordered(period_file)
                times, cpu = measure(path, checkouts, repeat)
                report(rows, f"{order} order", times, cpu)
                sys.stdout.flush()
    print(f"\nload average after: {os.getloadavg()[0]:.1f} (higher than the core count: "
          "other work shared the machine)")


if __name__ == "__main__":
    main()
