"""`sopgap load` as a process: what it imports, what it stores, how it ends."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sop_core import db, snapshots
from sop_core.db import session_factory
from sop_core.loading import PlanningTable, read_file
from sop_core.sample_data import SAMPLE_CSV
from sop_core.services.data import store

REPO = Path(__file__).resolve().parents[2]


def test_a_csv_load_imports_neither_pandas_nor_arrow_compute(sqlite_url: str) -> None:
    """pandas is a third of a second of start-up that a CSV load does not need; pyarrow
    imports it on the first pa.array/to_numpy, so the fast path must avoid those."""
    probe = ("import sys\n"
             f"sys.argv = ['sopgap', 'load', {str(SAMPLE_CSV)!r}]\n"
             "from bot.cli import app\n"
             "try:\n"
             "    app()  # (not main(): its quick exit would end the probe)\n"
             "except SystemExit as exc:\n"
             "    assert not exc.code, exc.code\n"
             "print('LOADED', [m for m in ('pandas', 'pyarrow.compute', 'sop_core.gaps')\n"
             "                 if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "DATABASE_URL": sqlite_url})
    assert "Loaded snapshot #1" in result.stdout, result.stderr[-2000:]
    assert "LOADED []" in result.stdout, result.stdout[-500:]


def test_the_quick_exit_leaves_the_sqlite_database_whole(sqlite_url: str) -> None:
    """The process ends without the interpreter's teardown, but closes the database
    first: no write-ahead log is left beside the file, and the snapshot is in it."""
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    db.get_engine(sqlite_url).dispose()  # this process's connections (the migration's)
    result = subprocess.run([sys.executable, "-m", "bot.cli", "load", str(SAMPLE_CSV)],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DATABASE_URL": sqlite_url})
    assert result.returncode == 0, result.stderr
    assert "Loaded snapshot #1" in result.stdout
    assert not path.with_name(path.name + "-wal").exists()
    with session_factory(sqlite_url)() as session:
        latest = snapshots.latest(session)
        assert latest is not None
        assert snapshots.read_load(session, latest).rows == read_file(SAMPLE_CSV).rows


def test_a_stored_load_decodes_to_the_frame_it_was_loaded_as(sqlite_url: str) -> None:
    """Parts written from the loader's columns (no pandas) decode to the same frame as
    the table's own, and to the same frame as parts written from pandas before."""
    table = read_file(SAMPLE_CSV)
    assert table.columns is not None  # the loader's columns, no frame built yet
    report = store(session_factory(sqlite_url), table)
    snapshots.clear_cache()
    with session_factory(sqlite_url)() as session:
        snapshot = session.get(snapshots.Snapshot, report.snapshot_id)
        decoded = snapshots.read_load(session, snapshot)
    pd.testing.assert_frame_equal(decoded.frame, table.frame, check_categorical=True)
    # The format written before (pandas' converter, its metadata, no byte stream split).
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(table.frame, preserve_index=False), sink,
                   compression="zstd")
    before = pq.read_table(io.BytesIO(sink.getvalue())).to_pandas()
    pd.testing.assert_frame_equal(decoded.frame, before)


@pytest.mark.parametrize("lazy", [True, False])
def test_the_table_says_the_same_with_or_without_its_frame(lazy: bool) -> None:
    table = read_file(SAMPLE_CSV)
    if not lazy:
        _ = table.frame
        assert table.columns is None
    same = PlanningTable(frame=table.frame, dimensions=table.dimensions,
                         metrics=table.metrics, source=table.source,
                         rows_read=table.rows_read, rows_merged=table.rows_merged)
    assert (table.rows, table.as_of, table.periods, table.sorted_by_period) == (
        same.rows, same.as_of, same.periods, same.sorted_by_period)
    assert table.replaced(notes=("x",)).frame.equals(table.frame)


def _process(arguments: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *arguments], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", **env})


def test_the_process_reading_ahead_says_what_the_command_says(sqlite_url: str,
                                                                tmp_path: Path) -> None:
    """main() starts parsing the file before the command line and the settings are
    checked (sop_core.loading.sources.read_ahead): the messages, their order and the
    exit codes are those of the command itself."""
    from typer.testing import CliRunner

    from bot.cli import app

    bad = tmp_path / "plan.csv"
    bad.write_text("period,region,plan,forecast\n2026-01,EU,1,2\nJan 2026,EU,1,2\n")
    env = {"DATABASE_URL": sqlite_url}
    process = _process(["load", str(bad)], env)
    command = CliRunner().invoke(app, ["load", str(bad)], env={**env, "COLUMNS": "200"})
    assert process.returncode == command.exit_code == 1
    assert "row 3, column 'period'" in process.stderr
    assert " ".join(process.stderr.split()) == " ".join(command.output.split())
    # A setting that cannot be used is said first, as before: the file is not looked at.
    unusable = {**env, "SOPGAP_ENCRYPTION_KEY": "not-a-key"}
    for arguments in (["load", str(bad)], ["load", str(bad), "--as-of", "soon"]):
        process = _process(arguments, unusable)
        assert process.returncode == 2, process.stderr
        assert process.stderr.startswith("error: settings: SOPGAP_ENCRYPTION_KEY: ")
        assert "is not a Fernet key" in process.stderr and "row" not in process.stderr
    # Arguments typer refuses are refused as before.
    process = _process(["load", str(SAMPLE_CSV), "--bogus"], env)
    assert process.returncode == 2 and "No such option: --bogus" in process.stderr
    with session_factory(sqlite_url)() as session:
        assert snapshots.latest(session) is None  # nothing was loaded


def test_a_load_gives_back_the_switch_interval(sqlite_url: str) -> None:
    """The load shortens the GIL switch interval while it validates beside the
    background imports (bot.cli._switching_often): a process that goes on (the tests,
    a shell) has its own back, after a load and after a refused one."""
    from typer.testing import CliRunner

    from bot.cli import app

    before = sys.getswitchinterval()
    for path in (SAMPLE_CSV, REPO / "no-such-file.csv"):
        CliRunner().invoke(app, ["load", str(path)], env={"DATABASE_URL": sqlite_url})
        assert sys.getswitchinterval() == before


@pytest.mark.parametrize("refusal", [["--as-of", "2026-13"], ["--source", ""]],
                         ids=["a bad --as-of", "a blank --source"])
def test_a_refused_load_ends_without_waiting_for_the_parse_it_read_ahead(
        sqlite_url: str, refusal: list[str]) -> None:
    """The read-ahead's parse here never ends: the process must end all the same, with
    the command's message and status (it waited for the whole parse before)."""
    probe = ("import sys, threading\n"
             "from sop_core.loading import sources\n"
             "sources._read_table = lambda *args: threading.Event().wait()  # never ends\n"
             f"sys.argv = ['sopgap', 'load', {str(SAMPLE_CSV)!r}, *{refusal!r}]\n"
             "from bot.cli import main\n"
             "main()\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=60,
                            env={**os.environ, "DATABASE_URL": sqlite_url})
    assert result.returncode in (1, 2), result.stderr[-2000:]
    assert result.stderr.startswith("error: "), result.stderr[-2000:]
    assert result.stdout == ""
