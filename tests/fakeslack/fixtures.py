"""Pytest fixture for FakeSlack, meant to be imported into a conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import FakeSlack


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A started FakeSlack per test, so recorded calls never leak between tests."""
    with FakeSlack() as fake:
        yield fake
