"""The command line as a person types it in a shell: real processes, a real shell."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sop_core.filters import from_arguments, parse_filters
from sop_core.sample_data import SAMPLE_CSV

REPO = Path(__file__).resolve().parents[2]


def run_in_shell(command: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """``command`` through bash, with ``sopgap`` the module of this checkout."""
    env = {**os.environ, "DATABASE_URL": database_url,
           "SOPGAP_CLI": f"{sys.executable} -m bot.cli"}
    return subprocess.run(["bash", "-c", command.replace("sopgap ", "$SOPGAP_CLI ", 1)],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_quoted_member_with_a_space_works_as_typed_in_a_shell(sqlite_url: str) -> None:
    loaded = run_in_shell(f"sopgap load '{SAMPLE_CSV}'", sqlite_url)
    assert loaded.returncode == 0, loaded.stderr
    typed = run_in_shell('sopgap gaps region="North America" by=channel --json', sqlite_url)
    assert typed.returncode == 0, typed.stderr
    body = json.loads(typed.stdout)
    assert body["scope"] == {"region": ["North America"]}
    assert body["by"] == "channel"
    # Two members, one of them with a space, and a single-quoted form.
    both = run_in_shell("sopgap gaps region=\"North America\",EU category='Snacks' --json",
                        sqlite_url)
    assert both.returncode == 0, both.stderr
    assert json.loads(both.stdout)["scope"] == {"region": ["North America", "EU"],
                                                "category": ["Snacks"]}


def test_help_starts_without_the_heavy_libraries() -> None:
    """`sopgap --help` imports neither pandas, SQLAlchemy, pydantic-settings nor
    matplotlib: they cost over a second of start-up."""
    probe = ("import sys, runpy\n"
             "sys.argv = ['sopgap', '--help']\n"
             "try:\n"
             "    runpy.run_module('bot.cli', run_name='__main__')\n"
             "except SystemExit:\n"
             "    pass\n"
             "heavy = ['pandas', 'sqlalchemy', 'pydantic_settings', 'matplotlib', 'numpy',\n"
             "         'pyarrow', 'slack_bolt', 'slack_sdk']\n"
             "print('LOADED', [m for m in heavy if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert "Usage: sopgap" in result.stdout
    assert "LOADED []" in result.stdout, result.stdout[-500:]


@pytest.mark.parametrize("command", [[], ["load"], ["gaps"], ["demo"], ["export"], ["tick"]])
def test_help_has_no_restructuredtext_markup(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "bot.cli", *command, "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    for markup in ("``", ":class:", ":func:", ":meth:"):
        assert markup not in result.stdout, (markup, result.stdout)


@pytest.mark.parametrize(("arguments", "scope", "by"), [
    (["region=North America", "by=channel"], {"region": ("North America",)}, "channel"),
    (["region=North America,EU"], {"region": ("North America", "EU")}, None),
    (["region=Middle East & Africa"], {"region": ("Middle East & Africa",)}, None),
    (['region="North America"'], {"region": ("North America",)}, None),  # quotes kept
    (["region=EU by=channel"], {"region": ("EU",)}, "channel"),  # several in one argument
    (["region=EU", "category=Snacks"], {"region": ("EU",), "category": ("Snacks",)}, None),
])
def test_arguments_become_the_filters_typed(arguments: list[str], scope: dict[str, tuple],
                                           by: str | None) -> None:
    filters = parse_filters(from_arguments(arguments))
    assert filters.scope == scope
    assert filters.by == by


def snapshot_sources(url: str) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.scalars(text("SELECT source FROM snapshots ORDER BY id")))
    finally:
        engine.dispose()


def test_demo_never_touches_the_configured_database(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bot.cli import app
    from sop_core.config import get_settings

    real = tmp_path / "real_plan.csv"
    real.write_text("period,region,plan,forecast\n2026-01,EU,100,90\n")
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    runner = CliRunner()
    assert runner.invoke(app, ["load", str(real)]).exit_code == 0
    shown = runner.invoke(app, ["demo", "--messages", "0"])
    assert shown.exit_code == 0, shown.output
    assert snapshot_sources(sqlite_url) == ["real_plan.csv"]  # still only the real data
    assert snapshot_sources(f"sqlite:///{work / 'sopgap-demo.db'}") == [SAMPLE_CSV.name]
    # An explicit --database-url is used as given.
    chosen = f"sqlite:///{tmp_path / 'chosen.db'}"
    assert runner.invoke(app, ["demo", "--messages", "0", "--database-url", chosen]
                         ).exit_code == 0
    assert snapshot_sources(chosen) == [SAMPLE_CSV.name]
    assert snapshot_sources(sqlite_url) == ["real_plan.csv"]
    get_settings.cache_clear()


@pytest.mark.parametrize(("filters", "told"), [
    (["horizon=2027"],
     "No data for horizon 2027 (2027-01..2027-12): the data covers 2025-01..2026-12."),
    (["horizon=2024-Q4", "region=EU"], "No data for horizon 2024-Q4"),
])
def test_gaps_without_rows_exit_non_zero_and_name_what_exists(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch, filters: list[str],
        told: str) -> None:
    from typer.testing import CliRunner

    from bot.cli import app
    from sop_core.config import get_settings

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["load", str(SAMPLE_CSV)]).exit_code == 0
    result = runner.invoke(app, ["gaps", *filters, "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert told in " ".join(result.stderr.split())
    get_settings.cache_clear()


def test_a_misspelt_dimension_is_refused_unless_new_dimensions(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bot.cli import app
    from sop_core.config import get_settings

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["load", str(SAMPLE_CSV)]).exit_code == 0
    lines = SAMPLE_CSV.read_text().splitlines()
    typo = tmp_path / "typo.csv"
    typo.write_text("\n".join([lines[0].replace("category", "categroy"), *lines[1:]]) + "\n")
    refused = runner.invoke(app, ["load", str(typo)])
    assert refused.exit_code == 1
    told = " ".join(refused.stderr.split())
    assert "the dimension columns differ from the latest snapshot's (#1): added: categroy; " \
           "missing: category. Is 'categroy' a misspelt 'category'?" in told
    assert "--new-dimensions" in told and "Nothing was loaded" in told
    assert snapshot_sources(sqlite_url) == [SAMPLE_CSV.name]
    accepted = runner.invoke(app, ["load", str(typo), "--new-dimensions"])
    assert accepted.exit_code == 0, accepted.output
    assert snapshot_sources(sqlite_url) == [SAMPLE_CSV.name, "typo.csv"]
    get_settings.cache_clear()


@pytest.mark.parametrize(("url", "code", "message"), [
    ("mysql://sam:s3cret@db.example/plan", 2, "error: settings: DATABASE_URL: not a SQLite or "
     "PostgreSQL URL (e.g. sqlite:///sopgap.db or postgresql://user@host:5432/sopgap); its "
     "scheme is 'mysql'"),
    ("sam:s3cret@db.example/plan", 2, "error: settings: DATABASE_URL: not a SQLite or "
     "PostgreSQL URL (e.g. sqlite:///sopgap.db or postgresql://user@host:5432/sopgap)"),
    # Nothing listens on port 1: refused at once.
    ("postgresql://sam:s3cret@127.0.0.1:1/plan", 1,
     "error: the database is not answering (OperationalError)"),
], ids=["another database", "not a URL", "nothing listening"])
def test_a_database_url_that_cannot_work_is_one_line_without_the_password(
        url: str, code: int, message: str) -> None:
    result = run_in_shell("sopgap gaps region=EU", url)
    assert (result.returncode, result.stderr.strip()) == (code, message)
    assert result.stdout == ""
