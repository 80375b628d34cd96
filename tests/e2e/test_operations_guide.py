"""The commands of docs/operations.md, run here at least as a dry run: the buildpack inputs,
the systemd units (``systemd-analyze verify``), upgrade and rollback with Alembic, backup
with ``pg_dump`` and a readable dump, ``sopgap status``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from sop_core import db

REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
GUIDE = (REPO / "docs/operations.md").read_text()


def run(args: list[str], env: dict[str, str] | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SOPGAP_", "SLACK_"))}
    full.update(env or {})
    return subprocess.run(args, env=full, cwd=cwd, capture_output=True, text=True, timeout=180)


def test_buildpack_inputs_are_there_and_the_procfile_names_real_commands() -> None:
    assert (REPO / ".python-version").read_text().strip() in GUIDE
    assert (REPO / "requirements.txt").read_text().count("--hash=sha256:") > 40
    commands = dict(line.split(": ", 1) for line in
                    (REPO / "Procfile").read_text().splitlines() if line.strip())
    assert set(commands) == {"release", "web", "clock"}
    for name, command in commands.items():
        assert f"`{command}`" in GUIDE, name
        program, *args = command.split()
        done = run([str(BIN / program), *args[:1], "--help"])
        assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (systemd hosts only)")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    units = sorted((REPO / "deploy/systemd").glob("*.service"))
    assert {unit.name for unit in units} == {"sopgap-web.service", "sopgap-clock.service"}
    for unit in units:
        assert f"`{unit.name}`" in GUIDE
        # As installed: the paths of this checkout and its virtual environment.
        text = unit.read_text().replace("/opt/sopgap/.venv/bin", str(BIN)).replace(
            "/opt/sopgap", str(REPO))
        (tmp_path / unit.name).write_text(text)
    done = run(["systemd-analyze", "verify", *(str(tmp_path / u.name) for u in units)])
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_upgrade_then_rollback_with_alembic_then_upgrade_again(db_url: str) -> None:
    assert ".venv/bin/alembic downgrade 0003" in GUIDE
    env = {"DATABASE_URL": db_url}
    head = db.head_revision()
    assert run([str(BIN / "sopgap"), "db", "upgrade"], env).returncode == 0
    current = run([str(BIN / "alembic"), "current"], env)
    assert current.returncode == 0 and head in current.stdout
    down = run([str(BIN / "alembic"), "downgrade", "0003"], env)
    assert down.returncode == 0, down.stderr
    assert db.current_revision(db_url) == "0003"
    assert "clock_heartbeats" not in inspect(db.get_engine(db_url)).get_table_names()
    assert run([str(BIN / "sopgap"), "db", "upgrade"], env).returncode == 0
    assert db.current_revision(db_url) == head


def test_status_prints_the_checks(sqlite_url: str, tmp_path: Path) -> None:
    db.upgrade(sqlite_url)
    done = run([str(BIN / "sopgap"), "status", "--json"], {"DATABASE_URL": sqlite_url},
               cwd=tmp_path)
    assert done.returncode == 1  # no clock has run yet: not ready, and it says why
    report = json.loads(done.stdout)
    assert report["failed"] == ["clock"]
    assert report["outbox"] == {"backlog": 0, "retrying": 0, "failed": 0}
    assert report["last_load"] is None
    text = run([str(BIN / "sopgap"), "status"], {"DATABASE_URL": sqlite_url}, cwd=tmp_path)
    assert "database" in text.stdout and "FAILED" in text.stdout and "outbox" in text.stdout


@pytest.mark.postgres
@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
def test_backup_makes_a_readable_dump(postgres_url: str, tmp_path: Path) -> None:
    assert "pg_dump --format=custom" in GUIDE and "pg_restore --list" in GUIDE
    url = re.sub(r"^postgresql\+psycopg://", "postgresql://", postgres_url)
    dump = tmp_path / "sopgap.dump"
    done = run(["pg_dump", "--format=custom", f"--file={dump}", url])
    assert done.returncode == 0, done.stderr
    listing = run(["pg_restore", "--list", str(dump)])
    assert listing.returncode == 0
    assert "TABLE public snapshots" in listing.stdout
    assert "TABLE public clock_heartbeats" in listing.stdout
