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
