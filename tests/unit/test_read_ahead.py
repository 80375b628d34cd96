"""Reading a file's table ahead (``sopgap load`` parses while it starts up): the same
table, the same errors at the same point, and nothing stale."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from sop_core.loading import LoadError, read_file, sources
from sop_core.sample_data import SAMPLE_CSV


@pytest.fixture(autouse=True)
def _no_read_left_ahead() -> Iterator[None]:
    yield
    for ahead in sources._ahead:
        ahead.thread.join()
    sources._ahead.clear()


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    pd.testing.assert_frame_equal(a.frame, b.frame, check_categorical=True)
    assert (a.rows_read, a.rows_merged, a.dimensions, a.metrics, a.notes, a.source) == \
        (b.rows_read, b.rows_merged, b.dimensions, b.metrics, b.notes, b.source)


def _shuffled(tmp_path: Path) -> Path:
    header, *rows = SAMPLE_CSV.read_text().splitlines()
    random.Random(7).shuffle(rows)
    path = tmp_path / "shuffled.csv"
    path.write_text("\n".join([header, *rows, rows[3]]) + "\n")  # and a duplicate key
    return path


def test_the_table_read_ahead_is_the_table_read_then(tmp_path: Path) -> None:
    for path in (SAMPLE_CSV, _shuffled(tmp_path)):
        sources.read_ahead(str(path))
        assert len(sources._ahead) == 1
        ahead = read_file(path)
        assert sources._ahead == []  # taken
        _same(ahead, read_file(path))


def test_an_error_of_the_read_ahead_is_raised_by_read_file_only(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_bytes(b"period,plan\n\x00\x01\x02")
    sources.read_ahead(path)  # no error here
    with pytest.raises(LoadError) as ahead:
        read_file(path)
    with pytest.raises(LoadError) as now:
        read_file(path)
    assert str(ahead.value) == str(now.value) and "not a text table" in str(now.value)


def test_a_read_ahead_of_another_file_decimal_or_content_is_not_used(tmp_path: Path) -> None:
    shuffled = _shuffled(tmp_path)
    sources.read_ahead(SAMPLE_CSV)
    _same(read_file(shuffled), read_file(shuffled))  # another file
    assert sources._ahead == []
    sources.read_ahead(SAMPLE_CSV, decimal=",")
    _same(read_file(SAMPLE_CSV), read_file(SAMPLE_CSV))  # another decimal mark
    changed = tmp_path / "changed.csv"
    changed.write_text(SAMPLE_CSV.read_text())
    sources.read_ahead(changed)
    header, *rows = SAMPLE_CSV.read_text().splitlines()
    changed.write_text("\n".join([header, *rows[: len(rows) // 2]]) + "\n")
    table = read_file(changed)  # the file as it is now, not as it was read ahead
    assert table.rows_read == len(rows) // 2


@pytest.mark.parametrize("name", ["missing.csv", "empty.csv", "plan.xlsx", "plan.json"])
def test_what_read_file_refuses_before_reading_is_not_read_ahead(tmp_path: Path,
                                                                 name: str) -> None:
    path = tmp_path / name
    if name != "missing.csv":
        path.write_bytes(b"" if name == "empty.csv" else b"period,plan\n")
    sources.read_ahead(path)
    assert sources._ahead == []
