"""Gap coverage maths and the App Home view (limits, escaping, "and N more")."""

from __future__ import annotations

import json
import math
from datetime import date

import pytest

from bot.blocks.home import coverage_bar, home_blocks, home_view
from bot.ids import ActionId
from sop_core.services.coverage import (
    ActionItem,
    Coverage,
    GapItem,
    HomeData,
    MilestoneItem,
    coverage,
    describe,
)

TODAY = date(2026, 11, 22)


# ------------------------------------------------------------------------------ maths

def test_coverage_is_open_impact_over_the_size_of_the_gap() -> None:
    c = coverage(-500_000, [200_000, 100_000])
    assert (c.covered, c.actions) == (300_000, 2)
    assert c.ratio == pytest.approx(0.6)
    assert c.uncovered == pytest.approx(200_000)
    assert c.uncovered_share == pytest.approx(0.4)
    assert not c.over_covered
    assert describe(c) == "60% covered by 2 open actions: 200K (40%) not yet covered"


def test_a_positive_gap_is_covered_the_same_way() -> None:
    assert coverage(400.0, [100.0]).ratio == pytest.approx(0.25)


def test_no_gap_means_coverage_is_not_applicable() -> None:
    for gap in (0.0, 0.2, -0.4, math.nan):
        c = coverage(gap, [100.0])
        assert c.ratio is None and c.uncovered_share is None and c.uncovered == 0
        assert not c.over_covered
        assert describe(c) == "coverage n/a (no gap to cover)"


def test_over_coverage_is_shown_as_such() -> None:
    c = coverage(-100_000, [80_000, 70_000])
    assert c.ratio == pytest.approx(1.5) and c.over_covered
    assert c.uncovered == 0 and c.uncovered_share == 0
    assert describe(c) == ("150% covered by 2 open actions: over-covered by 50.0K, "
                           "nothing left uncovered")


def test_without_actions_the_whole_gap_is_uncovered() -> None:
    c = coverage(-250_000, [])
    assert c.ratio == 0 and c.uncovered == 250_000 and c.uncovered_share == 1
    assert describe(c) == "0% covered: 250K (100%) not yet covered by any action"


def test_negative_impacts_reduce_coverage_but_never_below_nothing() -> None:
    c = coverage(-1000, [300, -500])
    assert c.covered == -200 and c.uncovered == 1000 and c.uncovered_share == 1
    assert describe(c).startswith("0% covered by 2 open actions: 1.00K (100%)")


def test_bad_impacts_are_ignored_and_sums_are_exact() -> None:
    c = coverage(-1.0e6, [0.1] * 10 + [math.inf, math.nan])
    assert c.covered == 1.0 and c.actions == 10


def test_coverage_bar() -> None:
    assert coverage_bar(coverage(-100, [60])) == "▓▓▓▓▓▓░░░░ "
    assert coverage_bar(coverage(-100, [300])) == "▓" * 10 + " "
    assert coverage_bar(coverage(0, [])) == ""


# ------------------------------------------------------------------------------ view

def action(n: int, *, due: date = date(2026, 12, 1), title: str = "Relaunch promo",
           milestones: tuple[MilestoneItem, ...] = (), gap_label: str | None = None
           ) -> ActionItem:
    return ActionItem(id=n, title=title, due_date=due, overdue=due < TODAY,
                      expected_impact=120_000, gap_label=gap_label, next_milestones=milestones,
                      channel_id="C1", card_ts=None)


def gap(n: int, *, scope: dict[str, list[str]] | None = None, metric: str = "revenue",
        cov: Coverage | None = None, category: str | None = None) -> GapItem:
    return GapItem(id=n, channel_id="C1", message_ts="1.2", scope=scope or {"region": ["EU"]},
                   metric=metric, horizon="fy", gap=-500_000, gap_pct=-12.5,
                   root_cause_category=category,
                   coverage=cov or coverage(-500_000, [200_000]))


def texts(data: HomeData) -> tuple[list[dict], str]:
    view = home_view(data, today=TODAY).to_dict()  # validates Slack's view limits
    return view["blocks"], json.dumps(view["blocks"], ensure_ascii=False)


def test_home_shows_my_actions_and_my_gaps_with_coverage() -> None:
    data = HomeData(
        actions=(action(1, due=date(2026, 11, 19), gap_label="region=EU",
                        milestones=(MilestoneItem("Brief agency", date(2026, 11, 20), True),)),
                 action(2, due=TODAY), action(3)),
        actions_total=3,
        gaps=(gap(1, category="promotion"),), gaps_total=1)
    blocks, text = texts(data)
    assert blocks[1]["elements"][0]["action_id"] == ActionId.HOME_REFRESH
    assert "Due 2026-11-19 · :warning: *overdue by 3 days*" in text
    assert "Next milestone: Brief agency · 2026-11-20 · :warning: overdue" in text
    assert "Due 2026-11-22 · *due today*" in text and "in 9 days" in text
    assert "Gap: region=EU" in text
    assert "root cause: _Promotion_" in text
    assert "40% covered by 1 open action: 300K (60%) not yet covered" in text
    assert "more" not in text


def test_home_when_there_is_nothing_yet() -> None:
    _, text = texts(HomeData((), 0, (), 0))
    assert "No open actions assigned to you." in text
    assert "No open gaps you posted, discussed or act on." in text


def test_user_and_data_text_is_escaped() -> None:
    data = HomeData(
        actions=(action(1, title="<!channel> pay <https://x.example|here>",
                        milestones=(MilestoneItem("<!here>", TODAY, False),),
                        gap_label="customer=<!everyone>"),), actions_total=1,
        gaps=(gap(1, scope={"customer": ["<!channel> & co"]}, metric="<b>"),), gaps_total=1)
    _, text = texts(data)
    for raw in ("<!channel>", "<!here>", "<!everyone>", "<https", "<b>"):
        assert raw not in text
    assert "&lt;!channel&gt; &amp; co" in text


def test_a_full_home_is_cut_at_100_blocks_with_and_n_more() -> None:
    long = "x" * 5000
    data = HomeData(
        actions=tuple(action(n, title=long) for n in range(50)), actions_total=120,
        gaps=tuple(gap(n, scope={"region": [long]}) for n in range(50)), gaps_total=75)
    blocks, text = texts(data)
    assert len(blocks) == 100
    assert "…and 74 more actions" in text and "…and 29 more gaps" in text
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)


def test_few_gaps_leave_room_for_more_actions() -> None:
    data = HomeData(tuple(action(n) for n in range(50)), 50, (gap(1),), 1)
    blocks, text = texts(data)
    assert "more" not in text
    assert len(blocks) == 3 + 1 + 50 + 2 + 1


def test_blocks_are_plain_builders() -> None:
    assert home_blocks(HomeData((), 0, (), 0), today=TODAY)[0].to_dict()["text"]["text"] == (
        "Your S&OP follow-up")


def test_a_gap_shows_its_status_and_since_when() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from bot.blocks.home import gap_text

    covered = replace(gap(1), status="covered",
                      status_changed_at=datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    assert "*Status:* covered by actions since 2026-12-06" in gap_text(covered)
    assert "*Status:* open" in gap_text(gap(2))
