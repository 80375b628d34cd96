"""The repository explains itself: no comment or document points outside it.

Code and docs may point to files in the repository (docs/reference/, the README, …), never
to a brief, an issue tracker or a machine's folders that a reader of the repository does
not have. Relative links in Markdown must lead to files that exist.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).parents[2]
SCANNED = ("bot", "sop_core", "migrations", "tests", "benchmarks", "docs", "deploy", "scripts")
SUFFIXES = {".py", ".md", ".txt", ".toml", ".ini", ".cfg", ".sh", ".service", ".json", ""}
OUTSIDE = re.compile(r"PRODUCT\.md|DEVELOPERS\.md|STYLE\.md|\bissues? #?\d+|/work/|"
                     r"\bthe (?:product )?brief\b", re.IGNORECASE)
# Looks for an optional copy of Slack's OpenAPI file outside the checkout (it falls back to
# the one vendored in the repository): it names that place as code, not as a reference.
ALLOWED = {Path("tests/fakeslack/spec.py")}
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
REFERENCE = re.compile(r"docs/reference/([\w-]+\.md)")


def _ignored_by_git() -> set[Path]:
    """Files git ignores (a local database, benchmark data with this machine's paths):
    not the repository's. Empty outside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--others", "--ignored", "--exclude-standard"], cwd=REPO,
            capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return set()
    return {REPO / line for line in listed.splitlines() if line}


def files() -> list[Path]:
    found = [REPO / name for name in ("README.md", "Procfile", "pyproject.toml", ".ci/run",
                                      "gunicorn.conf.py", "slack_manifest.json")]
    ignored = _ignored_by_git()
    for folder in SCANNED:
        for path in sorted((REPO / folder).rglob("*")):
            if (path.is_file() and path.suffix in SUFFIXES and "vendor" not in path.parts
                    and "__pycache__" not in path.parts and path != Path(__file__)
                    and path.relative_to(REPO) not in ALLOWED and path not in ignored):
                found.append(path)
    return [path for path in found if path.exists()]


def test_nothing_points_outside_the_repository() -> None:
    offenders = []
    for path in files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert offenders == []


def test_markdown_links_and_reference_pointers_resolve() -> None:
    broken = []
    for path in files():
        text = path.read_text(errors="replace")
        if path.suffix == ".md":
            for target in MARKDOWN_LINK.findall(text):
                if "://" in target or target.startswith("mailto:"):
                    continue
                if not (path.parent / target).exists():
                    broken.append(f"{path.relative_to(REPO)} → {target}")
        for name in REFERENCE.findall(text):
            if not (REPO / "docs/reference" / name).exists():
                broken.append(f"{path.relative_to(REPO)} → docs/reference/{name}")
    assert broken == []


def test_the_check_catches_what_it_should() -> None:
    for line in ("see PRODUCT.md §4", "(issue 6)", "issue #12", "/work/main/.venv",
                 "as the brief says"):
        assert OUTSIDE.search(line), line
    for line in ("see docs/reference/gap-maths.md", "a tissue 4 ply", "shared by all"):
        assert not OUTSIDE.search(line), line
