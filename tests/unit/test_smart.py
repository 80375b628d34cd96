"""SMART action input: every rule, with raw text in and typed values or located errors out."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from sop_core.smart import (
    CompletionInput,
    Confidence,
    Location,
    ProgressInput,
    SmartActionInput,
    error_messages,
    vague_title_problem,
)

TODAY = date(2026, 3, 10)


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def raw(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "title": "Run a 2-week Snacks promotion with Carrefour EU",
        "owner_id": "U2",
        "metric": "revenue · region=EU",
        "baseline": "3.2M",
        "target": "3,700,000",
        "expected_impact": "350K",
        "resources": "Trade budget\n40K",
        "confidence": "medium",
        "due_date": day(60),
        "milestones": [{"name": "Agree the plan", "due_date": day(10)},
                       {"name": None, "due_date": None},
                       {"name": "Promo live", "due_date": day(30)}],
    }
    form.update(changes)
    return form


def errors(**changes: Any) -> dict[Location, str]:
    with pytest.raises(ValidationError) as raised:
        SmartActionInput.parse(raw(**changes), today=TODAY)
    return error_messages(raised.value)


def test_a_good_action_becomes_typed_values() -> None:
    action = SmartActionInput.parse(raw(), today=TODAY)
    assert action.title == "Run a 2-week Snacks promotion with Carrefour EU"
    assert (action.baseline, action.target, action.expected_impact) == (3.2e6, 3.7e6, 3.5e5)
    assert action.confidence is Confidence.MEDIUM
    assert action.due_date == TODAY + timedelta(days=60)
    assert action.resources == "Trade budget\n40K"
    assert [(m.name, m.due_date) for m in action.milestones] == [
        ("Agree the plan", TODAY + timedelta(days=10)),
        ("Promo live", TODAY + timedelta(days=30))]


@pytest.mark.parametrize("title", [
    "improve forecasting accuracy",
    "Improve forecasting accuracy",
    "Improve forecasting accuracy for the team",
    "Increase sales in the region",
    "Work on the promotion calendar",
    "Look into pricing for the retailers",
    "Focus on the key accounts next quarter",
    "Ensure better alignment between teams",
    "Optimise the supply plan for the category",
    "Improve Forecasting Accuracy Across Teams",  # Title Case: capitals say nothing
    "Fix the forecast",  # too short whatever the verb
    "Launch promo",
])
def test_vague_titles_are_refused_with_a_hint(title: str) -> None:
    problem = vague_title_problem(title)
    assert problem is not None and "e.g." in problem
    found = errors(title=title)
    assert list(found) == [("title",)]
    assert "Carrefour" in found[("title",)]


@pytest.mark.parametrize("title", [
    "Run a 2-week Snacks promotion with Carrefour EU",
    "Launch a weekend promotion with Carrefour",
    "Improve EU Snacks forecast accuracy to 85% with weekly POS data",
    "Increase shelf space at Tesco by two facings",
    "Review the “Summer Crunch” price list with the buyer",
    "Renegotiate the freight contract for the northern depots",
])
def test_specific_titles_are_accepted(title: str) -> None:
    assert vague_title_problem(title) is None
    assert SmartActionInput.parse(raw(title=title), today=TODAY).title == title


def test_title_whitespace_is_tidied_and_length_capped() -> None:
    action = SmartActionInput.parse(raw(title="  Run a   promo with\nCarrefour  "), today=TODAY)
    assert action.title == "Run a promo with Carrefour"
    assert "300" in errors(title="Run a promo with Carrefour " + "x" * 300)[("title",)]


@pytest.mark.parametrize(("text", "value"), [
    ("350000", 350_000.0), ("350,000", 350_000.0), ("350K", 350_000.0), ("350k", 350_000.0),
    ("1.5M", 1_500_000.0), ("€2.5M", 2_500_000.0), ("-2.1k", -2_100.0), ("0.35", 0.35),
])
def test_amounts_are_read_the_way_people_type_them(text: str, value: float) -> None:
    action = SmartActionInput.parse(raw(baseline=text, target="999999999"), today=TODAY)
    assert action.baseline == pytest.approx(value)


@pytest.mark.parametrize("field", ["baseline", "target", "expected_impact"])
def test_amounts_that_are_not_amounts_are_refused(field: str) -> None:
    assert "350K" in errors(**{field: "about a million"})[(field,)]
    assert "350K" in errors(**{field: ""})[(field,)]


def test_target_must_differ_from_the_baseline() -> None:
    found = errors(baseline="3.2M", target="3,200,000")
    assert list(found) == [("target",)]
    assert "equals the baseline" in found[("target",)]


def test_expected_impact_must_be_positive() -> None:
    assert list(errors(expected_impact="0")) == [("expected_impact",)]
    assert list(errors(expected_impact="-50K")) == [("expected_impact",)]


@pytest.mark.parametrize("offset", [0, -1, -400])
def test_due_date_must_be_after_today(offset: int) -> None:
    found = errors(due_date=day(offset), milestones=[])
    assert list(found) == [("due_date",)]
    assert TODAY.isoformat() in found[("due_date",)]


def test_due_date_tomorrow_is_fine() -> None:
    action = SmartActionInput.parse(raw(due_date=day(1), milestones=[]), today=TODAY)
    assert action.due_date == TODAY + timedelta(days=1)


def test_a_half_filled_milestone_is_an_error_on_the_missing_half() -> None:
    found = errors(milestones=[{"name": "Plan", "due_date": None},
                               {"name": None, "due_date": None},
                               {"name": "  ", "due_date": day(5)}])
    assert found == {
        ("milestones", 0, "due_date"): "Pick a date for this milestone (or clear its name).",
        ("milestones", 2, "name"): "Name this milestone (or clear its date).",
    }


def test_milestones_must_be_before_the_due_date_and_not_in_the_past() -> None:
    found = errors(milestones=[{"name": "On the due date", "due_date": day(60)},
                               {"name": "After", "due_date": day(61)},
                               {"name": "Yesterday", "due_date": day(-1)},
                               {"name": "Today", "due_date": day(0)}])
    assert set(found) == {("milestones", 0, "due_date"), ("milestones", 1, "due_date"),
                          ("milestones", 2, "due_date")}
    assert day(60) in found[("milestones", 1, "due_date")]
    assert "past" in found[("milestones", 2, "due_date")]


def test_more_than_five_milestones_is_impossible() -> None:
    rows = [{"name": f"Step {i}", "due_date": day(i + 1)} for i in range(6)]
    assert list(errors(milestones=rows)) == [("milestones",)]
    assert len(SmartActionInput.parse(raw(milestones=rows[:5]), today=TODAY).milestones) == 5


def test_every_error_is_reported_at_once_with_friendly_messages() -> None:
    found = errors(title="", owner_id=None, metric=" ", baseline=None, target="x",
                   expected_impact=None, confidence=None, due_date=None,
                   milestones=[{"name": "Plan", "due_date": None}])
    assert set(found) == {("title",), ("owner_id",), ("metric",), ("baseline",), ("target",),
                          ("expected_impact",), ("confidence",), ("due_date",),
                          ("milestones", 0, "due_date")}
    assert not any("Field required" in message or "Input should" in message
                   for message in found.values())


def test_missing_keys_read_as_empty_fields() -> None:
    with pytest.raises(ValidationError) as raised:
        SmartActionInput.parse({}, today=TODAY)
    found = error_messages(raised.value)
    assert found[("owner_id",)] == "Choose the person who owns this action."
    assert ("milestones",) not in found and ("resources",) not in found


def test_confidence_is_one_of_three() -> None:
    assert SmartActionInput.parse(raw(confidence="HIGH"), today=TODAY).confidence == "high"
    assert list(errors(confidence="certain")) == [("confidence",)]


def test_braces_in_user_text_are_not_templates() -> None:
    found = errors(baseline="{today}")
    assert "“{today}”" in found[("baseline",)]


def test_today_must_be_given() -> None:
    with pytest.raises(TypeError):
        SmartActionInput.model_validate(raw())


def test_progress_and_completion_inputs() -> None:
    assert ProgressInput.model_validate({"value": "3.3M", "note": " ok "}).value == 3.3e6
    assert ProgressInput.model_validate({"value": "1"}).note is None
    with pytest.raises(ValidationError) as raised:
        ProgressInput.model_validate({"value": "soon"})
    assert list(error_messages(raised.value)) == [("value",)]
    assert CompletionInput.model_validate({"realised_impact": "0"}).realised_impact == 0
    with pytest.raises(ValidationError) as raised:
        CompletionInput.model_validate({"realised_impact": "-5K"})
    assert "Use 0" in error_messages(raised.value)[("realised_impact",)]


@pytest.mark.parametrize("owner", ["<!channel>", "U2> <!here", "   x", "u2", "U" * 40])
def test_the_owner_must_be_a_slack_user_id(owner: str) -> None:
    assert errors(owner_id=owner) == {
        ("owner_id",): "Choose the person who owns this action from the list."}


def test_control_characters_nobody_types_are_dropped() -> None:
    action = SmartActionInput.parse(raw(title="Run a 2-week\x00 Snacks\x1b[31m promo with Aldi",
                                        resources="Budget\x00\n\t40K\x7f"), today=TODAY)
    assert action.title == "Run a 2-week Snacks[31m promo with Aldi"
    assert action.resources == "Budget\n\t40K"
    assert ProgressInput.model_validate({"value": "1M", "note": "\x00"}).note is None
