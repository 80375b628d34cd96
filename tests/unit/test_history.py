"""History: what "the scope overlaps the filters" means, and the Block Kit builders for
``/gap history``, the App Home search and "Similar past gaps" (limits, escaping)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pytest
from slack_sdk.models.blocks import Block

from bot.blocks.history import (
    MAX_MESSAGE_BLOCKS,
    MAX_SHOWN,
    MAX_VIEW_BLOCKS,
    export_comment,
    history_blocks,
    past_gap_text,
    results_modal,
    search_modal,
    similar_blocks,
)
from bot.blocks.thread import prompt_blocks
from bot.ids import INPUT, BlockId, CallbackId
from sop_core.filters import FilterError
from sop_core.services.exports import Col, Export, ExportFile, Kind
from sop_core.services.history import (
    Criteria,
    History,
    PastAction,
    PastGap,
    overlaps,
    same_values,
)
from sop_core.services.root_causes import PointInfo

# ------------------------------------------------------------------------------ overlap


@pytest.mark.parametrize(("point", "wanted", "expected"), [
    # Dimensions named in both: the value sets must intersect, whatever the case.
    ({"region": ["EU"]}, {"region": ("EU",)}, True),
    ({"region": ["EU"]}, {"region": ("eu",)}, True),
    ({"region": ["North America"]}, {"region": ("NORTH AMERICA",)}, True),
    ({"region": ["EU"]}, {"region": ("NA",)}, False),
    ({"region": ["EU", "NA"]}, {"region": ("NA", "LATAM")}, True),
    ({"region": ["EU"]}, {"region": ("NA", "LATAM")}, False),
    ({"Region": ["EU"]}, {"region": ("eu",)}, True),  # names fold too
    # Every dimension named in both must intersect, not just one of them.
    ({"region": ["EU"], "category": ["Snacks"]}, {"region": ("EU",), "category": ("Dairy",)},
     False),
    ({"region": ["EU"], "category": ["Snacks"]}, {"region": ("EU",), "category": ("snacks",)},
     True),
    # A dimension the trigger point does not restrict overlaps any value there.
    ({}, {"region": ("EU",)}, True),
    ({"category": ["Snacks"]}, {"region": ("EU",)}, True),
    ({"category": ["Snacks"]}, {"region": ("EU",), "category": ("Dairy",)}, False),
    ({"region": []}, {"region": ("EU",)}, True),  # no values: no restriction
    # Filters without a scope match everything.
    ({"region": ["EU"]}, {}, True),
    ({}, {}, True),
])
def test_overlap(point: dict[str, list[str]], wanted: dict[str, tuple[str, ...]],
                 expected: bool) -> None:
    assert overlaps(point, wanted) is expected


@pytest.mark.parametrize(("candidate", "new", "expected"), [
    ({"region": ["EU"]}, {"region": ["eu"]}, True),
    ({"region": ["EU", "NA"]}, {"region": ["NA"]}, True),
    ({"region": ["EU"], "channel": ["Retail"]}, {"region": ["EU"]}, True),  # narrower: fine
    ({}, {"region": ["EU"]}, False),  # all data is not "the same dimension values"
    ({"category": ["Snacks"]}, {"region": ["EU"]}, False),
    ({"region": ["EU"]}, {"region": ["EU"], "category": ["Snacks"]}, False),
    ({"region": ["NA"]}, {"region": ["EU"]}, False),
    ({}, {}, True),
    ({"region": ["EU"]}, {}, False),
])
def test_similar_means_the_same_values_on_every_dimension_of_the_new_gap(
        candidate: dict[str, list[str]], new: dict[str, list[str]], expected: bool) -> None:
    assert same_values(candidate, new) is expected


def test_criteria_from_the_filter_grammar() -> None:
    criteria = Criteria.of('region="North America",EU Category=snacks metric=Revenue '
                           'horizon=FY')
    assert criteria.scope == {"region": ("North America", "EU"), "category": ("snacks",)}
    assert (criteria.metric, criteria.horizon) == ("revenue", "fy")
    assert criteria.matches({"region": ["eu"]}, "revenue", "fy")
    assert criteria.matches({"category": ["Snacks"], "channel": ["Retail"]}, "revenue", "FY")
    assert not criteria.matches({"region": ["eu"]}, "volume", "fy")
    assert not criteria.matches({"region": ["eu"]}, "revenue", "ytd")
    assert not criteria.matches({"region": ["LATAM"]}, "revenue", "fy")
    assert criteria.label() == ("region=North America, EU · category=snacks · metric=revenue"
                                " · horizon=fy")
    assert Criteria.of("").is_empty and Criteria.of("").label() == "everything"
    assert Criteria.of("").matches({"region": ["x"]}, "anything", "ytd")


@pytest.mark.parametrize(("text", "message"), [
    ("region=EU by=channel", "by= does not apply"),
    ("as_of=2026-05", "as_of= does not apply"),
    ('region="EU', "never closed"),
    ("region", "expected key=value"),
])
def test_criteria_refuse_what_does_not_apply(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        Criteria.of(text)


# ------------------------------------------------------------------------------ builders

WHEN = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


def action(**changes: Any) -> PastAction:
    base = PastAction(id=1, title="Relaunch promo in DE", owner_id="U1", status="done",
                      due_date=date(2026, 6, 1), expected_impact=200_000.0,
                      realised_impact=150_000.0, completed_at=WHEN)
    return dataclasses.replace(base, **changes)


def gap(**changes: Any) -> PastGap:
    base = PastGap(
        id=3, channel_id="C1", message_ts="1700000000.000100",
        scope={"region": ["EU"], "category": ["Snacks"]}, scope_key="category=snacks region=eu",
        metric="revenue", horizon="fy", status="resolved", created_at=WHEN,
        resolved_at=datetime(2026, 8, 1, tzinfo=UTC), as_of=None, plan_at_post=4e6,
        gap_at_post=-500_000.0, gap_pct_at_post=-12.5, plan=4e6, outlook=3.9e6, gap=-100_000.0,
        gap_pct=-2.5, root_cause_category="promotion",
        root_cause_summary="Promo moved to Q1 <!channel>", root_cause_confirmed_by="U2",
        root_cause_confirmed_at=WHEN, actions=(action(), action(id=2, title="Fix listings",
                                                                status="open",
                                                                realised_impact=None)))
    return dataclasses.replace(base, **changes)


def rendered(blocks: list[Block]) -> str:
    return json.dumps([b.to_dict() for b in blocks], ensure_ascii=False)  # validates limits


def test_a_past_gap_shows_figures_root_cause_actions_and_realised_impact() -> None:
    text = past_gap_text(gap())
    assert text.startswith("*region=EU · category=Snacks* · revenue · fy · <#C1> · posted "
                           "2026-05-04 · :white_check_mark: closed since 2026-08-01")
    assert "Gap at posting -500K (-12.5%) → now -100K (-2.5%)" in text
    assert "Root cause: *Promotion* — “Promo moved to Q1 &lt;!channel&gt;”" in text
    assert "2 actions: impact realised +150K of +400K expected" in text
    assert "• Relaunch promo in DE — <@U1> · done · realised +150K" in text
    assert "• Fix listings — <@U1> · open · expected +200K · due 2026-06-01" in text
    bare = past_gap_text(gap(root_cause_category=None, root_cause_summary=None, actions=(),
                             status="open"))
    assert "Root cause: _not confirmed_" in bare and "No action recorded." in bare
    assert ":red_circle: open" in bare


def test_history_fits_a_message_and_says_how_many_more() -> None:
    many = tuple(gap(id=i, scope={"region": [f"<b>R{i}</b>" * 40]}) for i in range(60))
    found = History(criteria=Criteria.of("region=EU"), gaps=many[:MAX_SHOWN], total=60)
    blocks = history_blocks(found)
    assert len(blocks) <= MAX_MESSAGE_BLOCKS
    text = rendered(blocks)
    assert "*Past gaps* · region=EU · 60 found, newest first" in text
    assert f"…and {60 - MAX_SHOWN} more" in text and "/gap export gaps" in text
    assert "<b>" not in text and "&lt;b&gt;R1&lt;/b&gt;" in text


def test_an_empty_history_explains_itself() -> None:
    none = History(criteria=Criteria.of("region=Europ"), gaps=(), total=0,
                   hints=("No past gap has region=“Europ”. Did you mean “EU”?",))
    text = rendered(history_blocks(none))
    assert "No past gap overlaps region=Europ." in text and "Did you mean “EU”?" in text
    nothing = rendered(history_blocks(History(criteria=Criteria.of(""), gaps=(), total=0)))
    assert "No gap has been posted in this workspace yet." in nothing


def test_search_modal_and_results_stay_within_a_view() -> None:
    modal = search_modal().to_dict()
    assert modal["callback_id"] == CallbackId.HISTORY_SEARCH
    [field] = modal["blocks"]
    assert field["block_id"] == BlockId.HISTORY_FILTERS
    assert field["element"]["action_id"] == INPUT and field["optional"] is True
    many = tuple(gap(id=i) for i in range(MAX_SHOWN))
    view = results_modal(History(criteria=Criteria.of("region=EU"), gaps=many, total=500),
                         "region=EU " + "x" * 900).to_dict()  # validates the limits
    assert len(view["blocks"]) <= MAX_VIEW_BLOCKS
    assert view["blocks"][0]["element"]["initial_value"].startswith("region=EU")
    assert "…and 480 more" in json.dumps(view, ensure_ascii=False)


def test_similar_past_gaps_join_the_root_cause_prompt() -> None:
    point = PointInfo(id=9, team_id="T1", channel_id="C1", message_ts="1700000001.000100",
                      scope={"region": ["EU"]}, metric="revenue", horizon="fy", gap=-1e5,
                      gap_pct=-5.0, root_cause_category=None, root_cause_summary=None,
                      confirmed_by=None, confirmed_at=None)
    plain = prompt_blocks(point)
    assert "Similar past gaps" not in rendered(plain)
    assert similar_blocks(()) == []
    blocks = prompt_blocks(point, [gap(), gap(id=4, actions=())])
    assert blocks[:len(plain)] == plain
    text = rendered(blocks)
    assert "*Similar past gaps*" in text
    assert "Root cause: *Promotion*" in text
    assert "What was done: 2 actions: impact realised +150K of +400K expected" in text
    assert "What was done: no action recorded." in text
    assert len(blocks) <= MAX_MESSAGE_BLOCKS


def test_the_export_comment_is_escaped() -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    export = Export(kind=Kind.ACTIONS, criteria=Criteria.of("region=<!here>"), frame=frame,
                    kinds={"a": Col.ID}, csv=ExportFile("a.csv", b"", "text/csv"),
                    xlsx=ExportFile("a.xlsx", b"", "x"))
    assert export_comment(export, "U1") == (
        ":bar_chart: <@U1> exported the *actions* register (region=&lt;!here&gt;): 2 rows, "
        "as CSV and Excel.")
