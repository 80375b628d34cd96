"""The filter grammar (docs/reference/slack.md): parsing, then resolving against the data."""

from __future__ import annotations

import pytest

from sop_core.filters import FilterError, Filters, parse_filters, resolve
from sop_core.loading import PlanningTable


@pytest.mark.parametrize(("text", "expected"), [
    ("", Filters()),
    ("region=EU", Filters(scope={"region": ("EU",)})),
    ("Region=EU,NA", Filters(scope={"region": ("EU", "NA")})),
    ('region="North America",EU', Filters(scope={"region": ("North America", "EU")})),
    ("region='North America'", Filters(scope={"region": ("North America",)})),
    ("region=“North America”", Filters(scope={"region": ("North America",)})),
    ("region = EU , NA  by=channel", Filters(scope={"region": ("EU", "NA")}, by="channel")),
    ("region=EU region=NA,EU", Filters(scope={"region": ("EU", "NA")})),
    ("horizon=ytd metric=volume as_of=2026-06",
     Filters(horizon="ytd", metric="volume", as_of="2026-06")),
    ("Sales Region=EU", None),
])
def test_parse(text: str, expected: Filters | None) -> None:
    if expected is None:
        with pytest.raises(FilterError):
            parse_filters(text)
    else:
        assert parse_filters(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("EU", "expected key=value"),
    ("region=", "no value after region="),
    ('region="EU', "never closed"),
    ("by=region,channel", "takes one value"),
    ("by=region by=channel", "given twice"),
    ('region=E"U', "quotes around the whole value"),
    ("=EU", "expected key=value"),
])
def test_parse_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filters(text)


def test_resolve_matches_case_insensitively(sample_table: PlanningTable) -> None:
    query = resolve(parse_filters('region="north AMERICA",eu BY=Channel metric=Revenue'),
                    sample_table)
    assert query.scope == {"region": ("North America", "EU")}
    assert (query.by, query.metric, query.horizon) == ("channel", "revenue", "fy")


@pytest.mark.parametrize(("text", "expected"), [
    ("regoin=EU", "Unknown dimension “regoin”. Did you mean “region”? Valid: region, "
                  "category, channel."),
    ("region=Europ", "Unknown region “Europ”. Did you mean “EU”?"),
    ("category=snak", "Did you mean “Snacks”?"),
    ("by=chanel", "Did you mean “channel”?"),
    ("metric=revenu", "Did you mean “revenue”?"),
    ("horizon=2026-Q5", "Unknown horizon “2026-Q5”: use fy, ytd, rest"),
    ("as_of=June", "is not a month"),
    ("region=Atlantis", "Valid: EU, North America, APAC, LATAM, Middle East & Africa."),
])
def test_resolve_errors_name_valid_values_and_closest(sample_table: PlanningTable, text: str,
                                                      expected: str) -> None:
    with pytest.raises(FilterError) as error:
        resolve(parse_filters(text), sample_table)
    assert expected in str(error.value)
