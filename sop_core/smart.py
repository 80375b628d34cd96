"""SMART actions as people type them: raw form text in, typed and checked values out.

Each rule of SMART has a check here, so the modal, tests and any future form share one
definition of a good action:

- **Specific**: the title names a concrete action (see :func:`vague_title_problem`).
- **Measurable**: a metric, a baseline and a target that differs from it, amounts typed
  the way people do (``350000``, ``350,000``, ``350K``, ``1.5M``).
- **Achievable / Assignable**: an owner, a confidence level, optional resources.
- **Relevant**: the expected share of the gap it closes, more than 0.
- **Time-bound**: a due date strictly after *today* and up to five milestones, each
  named and dated, not in the past and before the due date.

*Today* is the date in the installation's time zone; callers pass it as validation
context (``SmartActionInput.parse(raw, today=...)``), so the rules never read a clock.
Every error carries the location of the field it is about (``("milestones", 2,
"due_date")``) and a short message meant for the person who typed it.
"""

from __future__ import annotations

import enum
import re
from datetime import date
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from sop_core.formatting import parse_amount

MAX_MILESTONES = 5
TITLE_MAX = 300  # Action.title
METRIC_MAX = 200  # Action.metric_name
MILESTONE_NAME_MAX = 200  # Milestone.name
NOTE_MAX = 3000
MIN_TITLE_WORDS = 4
# A Slack user id, as a users_select sends it (``U0123ABCD``; ``W…`` in Enterprise Grid).
USER_ID = re.compile(r"^[UW][A-Z0-9]{1,31}$")

Location = tuple[str | int, ...]


class Confidence(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# ------------------------------------------------------------------------------------
# Specific: the vague-title heuristic
# ------------------------------------------------------------------------------------

# Openings that state a wish about a result rather than an action (any verb form).
_VAGUE_OPENING = re.compile(
    r"^(?:"
    r"(?:improv|increas|enhanc|optimis|optimiz|maximis|maximiz|ensur)(?:e|es|ed|ing)"
    r"|boost(?:s|ed|ing)?|better|driv(?:e|es|ing)|review(?:s|ed|ing)?|monitor(?:s|ed|ing)?"
    r"|(?:work|works|working)\s+on|(?:look|looks|looking)\s+into"
    r"|(?:focus|focuses|focused|focusing)\s+on"
    r")\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_][\w'’&.-]*")
_QUOTED = re.compile(r"[\"“«][^\"“”«»]+[\"”»]")
EXAMPLE_TITLE = "Run a 2-week Snacks promotion with Carrefour EU in May"


def _has_anchor(words: list[str], title: str) -> bool:
    """A number, a quoted name, an acronym (``EU``, ``SKU``) or a proper noun.

    A capitalised word after the first counts as a proper noun unless the whole title
    is written in Title Case, where capitals say nothing.
    """
    if any(ch.isdigit() for ch in title) or _QUOTED.search(title):
        return True
    if any(len(w) >= 2 and w.isupper() for w in words):
        return True
    rest = [w for w in words[1:] if len(w) > 3]
    title_case = len(rest) >= 2 and all(w[0].isupper() for w in rest)
    return not title_case and any(len(w) >= 2 and w[0].isupper() for w in words[1:])


def vague_title_problem(title: str) -> str | None:
    """Why a title is not specific enough, or ``None`` when it is.

    The heuristic (deliberately simple, so people can predict it):

    1. a title opening with a wish instead of an action (improve, increase, enhance,
       optimise, boost, better, drive, ensure, review, monitor, maximise, work on,
       look into, focus on) is refused unless it names something concrete: a number,
       a quoted name, an acronym or a proper noun (a customer, a product, a region);
    2. fewer than four words is too short to say what will be done to what.

    "Improve forecasting accuracy" fails both; "Improve EU Snacks forecast accuracy to
    85% with weekly POS data" and "Launch a weekend promotion with Carrefour" pass.
    """
    words = _WORD.findall(title)
    opening = _VAGUE_OPENING.match(title.strip())
    if opening and not _has_anchor(words, title):
        verb = opening.group(0).capitalize()
        return (f"“{verb} …” is a wish, not an action: name what will be done, to what "
                f"(e.g. “{EXAMPLE_TITLE}”).")
    if len(words) < MIN_TITLE_WORDS:
        return (f"Too short to be specific: name what will be done, to what "
                f"(e.g. “{EXAMPLE_TITLE}”).")
    return None


# ------------------------------------------------------------------------------------
# Raw text to typed values
# ------------------------------------------------------------------------------------

def _problem(kind: str, message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError(f"smart_{kind}", message, context or None)


# Control characters nobody types (NUL, escape codes…): PostgreSQL refuses NUL in text,
# and terminals and exports would carry the rest. Tabs and line breaks stay.
_CONTROLS = dict.fromkeys([*range(0x20), 0x7F], None)
for _kept in "\t\n\r":
    del _CONTROLS[ord(_kept)]


def without_controls(text: str) -> str:
    """Typed text without control characters (for any form, not only SMART actions)."""
    return text.translate(_CONTROLS)


def _clean(value: object) -> str | None:
    """Text with runs of whitespace collapsed; ``None`` for nothing but blanks."""
    if value is None:
        return None
    text = " ".join(without_controls(str(value)).split())
    return text or None


def _clean_block(value: object) -> str | None:
    """Multi-line text: lines kept, ends trimmed."""
    if value is None:
        return None
    text = without_controls(str(value)).strip()
    return text or None


def _required(value: object, message: str) -> str:
    text = _clean(value)
    if text is None:
        raise _problem("required", message)
    return text


def _length(text: str, limit: int) -> str:
    if len(text) > limit:
        raise _problem("too_long", f"Keep it to {limit} characters at most (now {len(text)}).")
    return text


_NO_CURRENCY = str.maketrans("", "", "€$£¥₹")


def _quote(text: str, most: int = 40) -> str:
    """What was typed, shown back in a message (short)."""
    return f"“{text if len(text) <= most else text[: most - 1] + '…'}”"


def read_amount(value: object, *, what: str = "an amount") -> float:
    """``350000``, ``350,000``, ``350K``, ``1.5M``, with or without a currency sign."""
    text = _required(value, f"Type {what}, e.g. 350000, 350K or 1.5M.")
    number = parse_amount(text.translate(_NO_CURRENCY))
    if number is None:
        raise _problem("amount", f"{_quote(text)} is not an amount: type e.g. 350000, 350,000, "
                                 "350K or 1.5M.")
    return number


def read_date(value: object, *, what: str) -> date:
    text = _required(value, f"Pick {what}.")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _problem("date", f"{_quote(text)} is not a date (YYYY-MM-DD).") from None


def _today(info: ValidationInfo) -> date:
    context = info.context or {}
    today = context.get("today")
    if not isinstance(today, date):
        # A programming error, not bad input: the rules never guess the date.
        raise TypeError("validate SMART input with context={'today': date}")
    return today


def _kept(info: ValidationInfo) -> frozenset[date]:
    return (info.context or {}).get("kept") or frozenset()


def _errors_at(title: str, found: list[tuple[Location, PydanticCustomError, object]]
               ) -> ValidationError:
    """Several errors at locations of our choosing (pydantic prefixes the field's own)."""
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=error, loc=loc, input=given) for loc, error, given in found])


class _Form(BaseModel):
    """Every field arrives as text (or ``None``); missing keys read as empty fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _every_field(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {name: data.get(name) for name in cls.model_fields}
        return data


class MilestoneInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    due_date: date


class SmartActionInput(_Form):
    """The SMART action modal's fields, validated (see the module docstring)."""

    title: str
    owner_id: str
    metric: str
    baseline: float
    target: float
    expected_impact: float
    resources: str | None
    confidence: Confidence
    due_date: date
    # After due_date: their check needs it (fields validate in this order).
    milestones: tuple[MilestoneInput, ...]

    @classmethod
    def parse(cls, raw: dict[str, Any], *, today: date,
              kept_dates: frozenset[date] = frozenset()) -> Self:
        """Validate the raw form; raises :class:`pydantic.ValidationError`.

        ``kept_dates``: dates an edit may leave as they were although they have passed
        (an overdue action's due date or milestone that is not being moved).
        """
        return cls.model_validate(raw, context={"today": today, "kept": kept_dates})

    @field_validator("title", mode="before")
    @classmethod
    def _specific(cls, value: object) -> str:
        title = _length(_required(value, "Say what will be done: the concrete action."),
                        TITLE_MAX)
        problem = vague_title_problem(title)
        if problem is not None:
            raise _problem("vague", problem)
        return title

    @field_validator("owner_id", mode="before")
    @classmethod
    def _owner(cls, value: object) -> str:
        owner = _required(value, "Choose the person who owns this action.")
        if not USER_ID.match(owner):
            raise _problem("owner", "Choose the person who owns this action from the list.")
        return owner

    @field_validator("metric", mode="before")
    @classmethod
    def _metric(cls, value: object) -> str:
        return _length(_required(value, "Name the metric this action moves (e.g. revenue · "
                                        "region=EU)."), METRIC_MAX)

    @field_validator("baseline", mode="before")
    @classmethod
    def _baseline(cls, value: object) -> float:
        return read_amount(value, what="the metric's value today")

    @field_validator("target", mode="before")
    @classmethod
    def _target_amount(cls, value: object) -> float:
        return read_amount(value, what="the value this action aims for")

    @field_validator("target")
    @classmethod
    def _target_moves(cls, value: float, info: ValidationInfo) -> float:
        baseline = info.data.get("baseline")
        if baseline is not None and abs(value - baseline) < 1e-9:
            raise _problem("target", "The target equals the baseline: what value will this "
                                     "action move the metric to?")
        return value

    @field_validator("expected_impact", mode="before")
    @classmethod
    def _impact(cls, value: object) -> float:
        impact = read_amount(value, what="how much of the gap this action closes")
        if impact <= 0:
            raise _problem("impact", "Must be more than 0: how much of the gap this action "
                                     "closes.")
        return impact

    @field_validator("resources", mode="before")
    @classmethod
    def _resources(cls, value: object) -> str | None:
        text = _clean_block(value)
        return None if text is None else _length(text, NOTE_MAX)

    @field_validator("confidence", mode="before")
    @classmethod
    def _confidence(cls, value: object) -> Confidence:
        text = _required(value, "How sure are you it will land: high, medium or low?")
        try:
            return Confidence(text.lower())
        except ValueError:
            raise _problem("confidence", "Choose high, medium or low.") from None

    @field_validator("due_date", mode="before")
    @classmethod
    def _time_bound(cls, value: object, info: ValidationInfo) -> date:
        due = read_date(value, what="the date this action is due")
        today = _today(info)
        if due <= today and due not in _kept(info):
            raise _problem("due_date", "The due date must be after today ({today}).",
                           today=today.isoformat())
        return due

    @field_validator("milestones", mode="before")
    @classmethod
    def _milestones(cls, value: object, info: ValidationInfo) -> tuple[MilestoneInput, ...]:
        """Rows as typed; blank rows are skipped, every problem is reported at its row."""
        rows = list(value or [])
        if len(rows) > MAX_MILESTONES:
            raise _problem("milestones", "At most {most} milestones.", most=MAX_MILESTONES)
        today, due = _today(info), info.data.get("due_date")
        found: list[tuple[Location, PydanticCustomError, object]] = []
        milestones: list[MilestoneInput] = []
        for index, row in enumerate(rows):
            row = row or {}
            name, when = _clean(row.get("name")), _clean(row.get("due_date"))
            if name is None and when is None:
                continue
            if name is None:
                found.append(((index, "name"), _problem(
                    "required", "Name this milestone (or clear its date)."), None))
            elif len(name) > MILESTONE_NAME_MAX:
                found.append(((index, "name"), _problem(
                    "too_long", f"Keep it to {MILESTONE_NAME_MAX} characters at most."), name))
            if when is None:
                found.append(((index, "due_date"), _problem(
                    "required", "Pick a date for this milestone (or clear its name)."), None))
                continue
            try:
                day = date.fromisoformat(when)
            except ValueError:
                found.append(((index, "due_date"), _problem(
                    "date", f"{_quote(when)} is not a date (YYYY-MM-DD)."), when))
                continue
            if day < today and day not in _kept(info):
                found.append(((index, "due_date"), _problem(
                    "past", "This date is in the past."), when))
            elif due is not None and day >= due:
                found.append(((index, "due_date"), _problem(
                    "after_due", "Must be before the due date ({due}).",
                    due=due.isoformat()), when))
            elif name is not None and len(name) <= MILESTONE_NAME_MAX:
                milestones.append(MilestoneInput(name=name, due_date=day))
        if found:
            raise _errors_at("milestones", found)
        return tuple(sorted(milestones, key=lambda m: m.due_date))


class ProgressInput(_Form):
    """Update progress: the metric's current value and an optional note."""

    value: float
    note: str | None

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, value: object) -> float:
        return read_amount(value, what="the metric's current value")

    @field_validator("note", mode="before")
    @classmethod
    def _note(cls, value: object) -> str | None:
        text = _clean_block(value)
        return None if text is None else _length(text, NOTE_MAX)


class CompletionInput(_Form):
    """Complete: how much of the gap the action really closed (0 if none)."""

    realised_impact: float
    note: str | None

    @field_validator("realised_impact", mode="before")
    @classmethod
    def _realised(cls, value: object) -> float:
        impact = read_amount(value, what="how much of the gap this action closed")
        if impact < 0:
            raise _problem("impact", "Use 0 if it closed none of the gap.")
        return impact

    @field_validator("note", mode="before")
    @classmethod
    def _note(cls, value: object) -> str | None:
        text = _clean_block(value)
        return None if text is None else _length(text, NOTE_MAX)


class CancelInput(_Form):
    """Cancel ("not doing"): why, for the history and the card."""

    reason: str

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, value: object) -> str:
        text = _clean_block(value)
        if text is None:
            raise _problem("required", "Say why this action will not be done.")
        return _length(text, NOTE_MAX)


def error_messages(error: ValidationError) -> dict[Location, str]:
    """The first message for each field location, in the order the form shows them."""
    messages: dict[Location, str] = {}
    for detail in error.errors(include_url=False):
        loc = tuple(detail["loc"])
        messages.setdefault(loc, _short(detail))
    return messages


def _short(detail: Any) -> str:
    """Our own messages as written; pydantic's generic ones made readable."""
    if str(detail["type"]).startswith("smart_"):
        return str(detail["msg"])
    if detail["type"] == "missing":
        return "Required."
    return str(detail["msg"])
