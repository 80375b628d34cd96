"""The gap lifecycle's transition rules (sop_core.lifecycle)."""

from __future__ import annotations

import pytest

from sop_core.lifecycle import (
    GapStatus,
    LifecycleError,
    after_coverage_change,
    after_load,
    close_by_lead,
    identity_key,
    is_covered,
    status_of,
)
from sop_core.services.triggers import split_post_flag, split_reason

OP, C, X, R = GapStatus.OPEN, GapStatus.COVERED, GapStatus.CLOSED, GapStatus.REOPENED


@pytest.mark.parametrize(("current", "crossed", "was_crossed", "covered_by", "expected"), [
    (OP, True, True, 0, OP),  # still crosses
    (OP, False, True, 0, X),  # back within the rule after a load
    (OP, True, True, 150, C),  # actions reach |gap| = 100
    (C, True, True, 50, OP),  # the gap grew past its actions
    (C, False, True, 150, X),
    (X, True, False, 0, R),  # crosses again
    (X, True, False, 150, C),  # crosses again, but already covered
    (X, False, False, 0, X),
    (X, True, True, 0, X),  # a lead closed it while it crossed: not "again"
    (R, True, True, 0, R),  # stays reopened
    (R, False, True, 0, X),
    ("resolved", True, False, 0, R),  # the word before this lifecycle
])
def test_after_load(current: str, crossed: bool, was_crossed: bool, covered_by: float,
                    expected: GapStatus) -> None:
    assert after_load(current, crossed=crossed, was_crossed=was_crossed, gap=-100,
                      covered_by=covered_by) == expected


@pytest.mark.parametrize(("current", "covered_by", "expected"), [
    (OP, 99.9, OP), (OP, 100, C), (R, 100, C), (C, 99, OP), (C, 100, C), (X, 500, X), (R, 0, R),
])
def test_after_coverage_change(current: GapStatus, covered_by: float,
                               expected: GapStatus) -> None:
    assert after_coverage_change(current, gap=-100, covered_by=covered_by) == expected


def test_a_zero_gap_is_never_covered() -> None:
    assert not is_covered(0, 10)


def test_a_lead_closes_with_a_reason_once() -> None:
    assert close_by_lead(OP, "promo moved to January") == X
    assert close_by_lead(C, "done") == X
    with pytest.raises(LifecycleError, match="Say why"):
        close_by_lead(OP, "  ")
    with pytest.raises(LifecycleError, match="already closed"):
        close_by_lead(X, "again")
    assert status_of("resolved") == X


def test_identity_is_scope_metric_and_horizon() -> None:
    key = identity_key("category=snacks|region=eu", "revenue", "fy")
    assert key == identity_key("category=snacks|region=eu", "revenue", "fy")
    assert len(key) == 64
    assert key != identity_key("category=snacks|region=eu", "volume", "fy")
    assert key != identity_key("category=snacks|region=eu", "revenue", "ytd")
    assert key != identity_key("region=eu", "revenue", "fy")


@pytest.mark.parametrize(("text", "expected"), [
    ("region=EU post", ("region=EU", True)),
    ("post region=EU by=channel", ("region=EU by=channel", True)),
    ("region=EU POST", ("region=EU", True)),
    ("region=EU", ("region=EU", False)),
    ('region="post office" category=x', ('region="post office" category=x', False)),
    ("region=“the post” post", ("region=“the post”", True)),
    ("customer=postal", ("customer=postal", False)),
])
def test_the_post_word_outside_quotes(text: str, expected: tuple[str, bool]) -> None:
    assert split_post_flag(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("region=EU reason: promo moved", ("region=EU", "promo moved")),
    ("region=EU because the promo moved", ("region=EU", "the promo moved")),
    ("region=EU REASON=late", ("region=EU", "late")),
    ("region=EU", ("region=EU", "")),
])
def test_the_reason_of_a_close(text: str, expected: tuple[str, str]) -> None:
    assert split_reason(text) == expected


def test_a_drill_choice_reads_back_as_filters() -> None:
    from bot.blocks.trigger import drill_request
    from sop_core.filters import parse_filters

    block_id = '{"f": "region=\\"EU\\" horizon=fy metric=revenue", "by": "channel"}'
    text = drill_request(block_id, 'Tesco "Extra"')
    assert text is not None
    parsed = parse_filters(text)
    assert parsed.scope == {"region": ("EU",), "channel": ('Tesco "Extra"',)}
    assert (parsed.horizon, parsed.metric) == ("fy", "revenue")
    assert drill_request("not json", "EU") is None
    assert drill_request('{"f": "region=EU"}', "EU") is None  # no dimension
