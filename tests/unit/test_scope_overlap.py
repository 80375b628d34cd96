"""Totals that never add overlapping gaps (sop_core/scopes.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sop_core.scopes import ScopedAmount, disjoint_totals, filters_overlap


def gap(key: str, amount: float, metric: str = "revenue", horizon: str = "fy",
        **scope: str) -> ScopedAmount[str]:
    return ScopedAmount(key, metric, horizon,
                        {k: v.split(",") for k, v in scope.items()}, amount)


def test_nested_and_crossing_scopes_overlap() -> None:
    assert filters_overlap({"region": ["EU"]}, {"region": ["EU"], "category": ["Snacks"]})
    assert filters_overlap({"region": ["EU"]}, {"category": ["Snacks"]})
    assert filters_overlap({}, {"region": ["EU"]})  # everything holds EU
    assert filters_overlap({"region": ["EU", "NA"]}, {"Region": ["na"]})  # case-insensitive
    assert not filters_overlap({"region": ["EU"]}, {"region": ["NA"]})
    assert not filters_overlap({"region": ["EU"], "category": ["Snacks"]},
                               {"region": ["EU"], "category": ["Drinks"]})


def test_eu_and_eu_snacks_are_not_added() -> None:
    [total] = disjoint_totals([gap("eu", -1_000_000, region="EU"),
                               gap("eu_snacks", -300_000, region="EU", category="Snacks")])
    assert total.counted == ("eu",) and total.left_out == ("eu_snacks",)
    assert total.amount == -1_000_000 and not total.complete


def test_eu_and_category_snacks_are_not_added() -> None:
    [total] = disjoint_totals([gap("eu", -500_000, region="EU"),
                               gap("snacks", 800_000, category="Snacks")])
    assert total.counted == ("snacks",) and total.left_out == ("eu",)
    assert total.amount == 800_000


def test_disjoint_scopes_add_up_and_other_metrics_and_horizons_stay_apart() -> None:
    totals = disjoint_totals([
        gap("eu", -100, region="EU"), gap("na", -50, region="NA"),
        gap("eu_volume", -7, metric="volume", region="EU"),
        gap("eu_ytd", -40, horizon="ytd", region="EU")])
    by_group = {(t.metric, t.horizon): t for t in totals}
    assert by_group["revenue", "fy"].counted == ("eu", "na")
    assert by_group["revenue", "fy"].amount == -150 and by_group["revenue", "fy"].complete
    assert by_group["volume", "fy"].amount == -7
    assert by_group["revenue", "ytd"].amount == -40
    assert totals[0].metric == "revenue"  # the largest gap's group first


REGIONS = st.sets(st.sampled_from(["EU", "NA", "APAC"]), min_size=1)
CATEGORIES = st.sets(st.sampled_from(["Snacks", "Drinks"]), min_size=1)
SCOPES = st.fixed_dictionaries({}, optional={"region": REGIONS, "category": CATEGORIES})


@given(st.lists(st.tuples(SCOPES, st.integers(-1000, 1000)), max_size=8))
def test_a_total_never_counts_a_cell_twice(items: list[tuple[dict, int]]) -> None:
    """Spread each gap over the cells of its scope: no cell is counted by two gaps."""
    gaps = [ScopedAmount(i, "revenue", "fy", scope, float(amount))
            for i, (scope, amount) in enumerate(items)]
    for total in disjoint_totals(gaps):
        cells: list[tuple[str, str]] = []
        for key in total.counted:
            scope = gaps[key].scope
            cells += [(r, c) for r in scope.get("region", {"EU", "NA", "APAC"})
                      for c in scope.get("category", {"Snacks", "Drinks"})]
        assert len(cells) == len(set(cells))
        # Every gap left out overlaps one counted (none is dropped for nothing).
        for key in total.left_out:
            assert any(filters_overlap(gaps[key].scope, gaps[k].scope) for k in total.counted)
        assert sorted([*total.counted, *total.left_out]) == list(range(len(gaps)))


# ------------------------------------------------------------------------------------
# Days counted in the reader's own zone (sop_core/relative_days.py)
# ------------------------------------------------------------------------------------

def test_days_are_counted_in_the_owners_zone() -> None:
    """A milestone on Thursday 17 December 2026, read at 09:00 local by owners in
    Sydney and New York (their nudge hour) and by the company in UTC."""
    from datetime import UTC, date, datetime
    from zoneinfo import ZoneInfo

    from sop_core.relative_days import days_until, local_date

    milestone = date(2026, 12, 17)
    # 09:00 on Mon 14 Dec in Sydney is still Sun 13 Dec in UTC: 3 days, not 4.
    sydney_14th = datetime(2026, 12, 14, 9, tzinfo=ZoneInfo("Australia/Sydney"))
    assert days_until(milestone, local_date(sydney_14th, "Australia/Sydney")) == "in 3 days"
    assert days_until(milestone, local_date(sydney_14th, "UTC")) == "in 4 days"
    # 09:00 on the 17th in Sydney: "today", where UTC would still say "tomorrow".
    sydney_17th = datetime(2026, 12, 17, 9, tzinfo=ZoneInfo("Australia/Sydney"))
    assert days_until(milestone, local_date(sydney_17th, "Australia/Sydney")) == "today"
    assert days_until(milestone, local_date(sydney_17th, "UTC")) == "tomorrow"
    # 21:00 UTC on the 17th is 16:00 in New York (today) and 08:00 on the 18th in Sydney.
    evening = datetime(2026, 12, 17, 21, tzinfo=UTC)
    assert days_until(milestone, local_date(evening, "America/New_York")) == "today"
    assert days_until(milestone, local_date(evening, "Australia/Sydney")) == "overdue by 1 day"
    assert days_until(milestone, date(2026, 12, 20)) == "overdue by 3 days"
    # An unknown zone falls back to the default, then UTC.
    assert local_date(evening, None, "Australia/Sydney") == date(2026, 12, 18)
    assert local_date(evening, "Not/AZone", "nope") == date(2026, 12, 17)


# ------------------------------------------------------------------------------------
# /gap bogus (sop_core/suggest.py)
# ------------------------------------------------------------------------------------

def test_an_unknown_word_names_the_subcommands_and_the_closest() -> None:
    from sop_core.suggest import unknown_subcommand

    names = ["actions", "watch", "unwatch", "watches", "meeting", "digest", "history"]
    text = unknown_subcommand("acitons", names)
    assert text.startswith("I don't know `acitons`: did you mean `actions`?")
    assert "`help`" in text and "`meeting`" in text and "`/gap region=EU by=channel`" in text
    assert unknown_subcommand("bogus", names).startswith("I don't know `bogus`. Subcommands:")
    # A long or odd word is quoted short, never breaking out of its backticks.
    odd = unknown_subcommand("x`" + "y" * 100, names)
    assert "x'" in odd and "y" * 50 not in odd
