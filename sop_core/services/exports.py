"""Exports of the register (docs/reference/workflow.md): the history of gaps and actions as a
spreadsheet, CSV and XLSX.

Two kinds: ``actions`` (one row per SMART action, with its gap's scope, horizon and
figures, the confirmed root cause and a summary of its milestones) and ``gaps`` (one row
per trigger point, with its root cause, its actions and their impact). Both are filtered
with the filter grammar exactly as history is (:class:`~sop_core.services.history
.Criteria`: the gap's scope overlaps the filters) and read one workspace only. An action
not attached to a gap is exported only when the filters name no scope, metric or horizon.
An export for Slack takes the audience of the channel it is uploaded to (a
:class:`~sop_core.visibility.Visibility`); the command line's exports take none and hold
everything.

The files are for people opening them in Excel:

- CSV is UTF-8 with a byte-order mark (else Excel reads it as the local code page);
- XLSX has a bold, frozen header, an autofilter and column widths from the content;
- text that starts with ``=``, ``+``, ``-`` or ``@`` is never a formula: in the XLSX it is a
  text cell (with Excel's quote prefix), in the CSV it is prefixed with ``'`` (OWASP's
  advice against CSV injection; Excel hides the quote). Numbers stay numbers.
- every CSV field is quoted, and a formula start after a ``;``, ``,``, tab or line break
  inside a text is prefixed with ``'`` too: an Excel whose list separator is ``;``
  (French, German, Spanish, Italian) splits a comma-separated line at each ``;`` whatever
  the quotes, so ``Dairy;=HYPERLINK(…)`` would otherwise start a formula cell there.

Amounts are rounded to the cent and percentages are in percent (sop_core/formatting.py).
Dates are UTC dates. People and channels are Slack ids, each with a name column beside it
when the caller passes the names (the Slack side looks them up; this module never calls
Slack).

``export gaps … by=DIM`` is the drivers table of the gap instead of the register: one row
per member along ``DIM`` with plan, latest view, gap, gap % and share of the gap, from the
latest view (:func:`drivers_export`).
"""

from __future__ import annotations

import csv
import enum
import io
import math
import re
import zipfile
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO, Any

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.writer.excel import ExcelWriter
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sop_core import formatting as fmt
from sop_core.filters import FilterError, Filters, parse_filters
from sop_core.gaps import GapResult, TriggerRule
from sop_core.models import Action, Milestone, Status, TriggerPoint
from sop_core.periods import format_month
from sop_core.services.coverage import coverage, scope_text
from sop_core.services.data import gap_report
from sop_core.services.history import Criteria, check_names
from sop_core.services.root_causes import category_label
from sop_core.visibility import Visibility


class Kind(enum.StrEnum):
    ACTIONS = "actions"
    GAPS = "gaps"


def parse_kind(word: str) -> Kind:
    try:
        return Kind(word.strip().lower())
    except ValueError:
        raise FilterError(f"“{word.strip()[:40]}” is not something I export: use "
                          "`actions` or `gaps` (e.g. `export actions region=EU`).") from None


# --------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------

class Col(enum.StrEnum):
    """What a column holds; the value is the Excel number format of its cells."""

    ID = "0"
    TEXT = "@"
    AMOUNT = "#,##0.00"
    PCT = "0.0"
    DATE = "yyyy-mm-dd"


GAP_COLUMNS: tuple[tuple[str, Col], ...] = (
    ("Gap id", Col.ID), ("Gap scope", Col.TEXT),
    # …then one column per dimension in the exported scopes (e.g. "region")
)
GAP_DETAIL_COLUMNS: tuple[tuple[str, Col], ...] = (
    ("Metric", Col.TEXT), ("Horizon", Col.TEXT), ("Channel", Col.TEXT),
    ("Gap posted on", Col.DATE), ("As of", Col.TEXT), ("Gap status", Col.TEXT),
    ("Status since", Col.DATE),
    ("Plan at posting", Col.AMOUNT), ("Gap at posting", Col.AMOUNT),
    ("Gap % at posting", Col.PCT), ("Plan now", Col.AMOUNT),
    ("Latest view now", Col.AMOUNT), ("Gap now", Col.AMOUNT), ("Gap % now", Col.PCT),
    ("Root cause", Col.TEXT), ("Root-cause summary", Col.TEXT),
    ("Root cause confirmed by", Col.TEXT), ("Root cause confirmed on", Col.DATE),
)
ACTION_COLUMNS: tuple[tuple[str, Col], ...] = (
    ("Action id", Col.ID), ("Action", Col.TEXT), ("Owner", Col.TEXT),
    ("Action metric", Col.TEXT), ("Baseline", Col.AMOUNT), ("Target", Col.AMOUNT),
    ("Current value", Col.AMOUNT), ("Due date", Col.DATE), ("Milestones", Col.TEXT),
    ("Status", Col.TEXT), ("Overdue", Col.TEXT), ("Expected impact", Col.AMOUNT),
    ("Realised impact", Col.AMOUNT), ("Confidence", Col.TEXT), ("Resources", Col.TEXT),
    ("Created by", Col.TEXT), ("Created on", Col.DATE), ("Completed on", Col.DATE),
)
GAP_ROLLUP_COLUMNS: tuple[tuple[str, Col], ...] = (
    ("Actions", Col.ID), ("Open actions", Col.ID), ("Action list", Col.TEXT),
    ("Expected impact", Col.AMOUNT), ("Realised impact", Col.AMOUNT),
    ("Coverage %", Col.PCT), ("Not yet covered", Col.AMOUNT),
)
DRIVER_COLUMNS: tuple[tuple[str, Col], ...] = (
    ("Member", Col.TEXT), ("Plan", Col.AMOUNT), ("Latest view", Col.AMOUNT),
    ("Gap", Col.AMOUNT), ("Gap %", Col.PCT), ("Share of gap %", Col.PCT),
    ("Offset", Col.TEXT),
)
# Columns holding a Slack id, and the name column put beside each.
NAMED_COLUMNS = {"Channel": "Channel name", "Owner": "Owner name",
                 "Created by": "Created by name",
                 "Root cause confirmed by": "Root cause confirmed by name"}
SHEET_TITLES = {Kind.ACTIONS: "Actions", Kind.GAPS: "Gaps"}
DRIVERS_SHEET = "Drivers"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Excel's limit per cell; longer text would make the file unreadable to it.
CELL_TEXT_MAX = 32_767
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A formula start at the beginning of a text, or after a character where Excel may begin
# a new cell of a CSV line: its list separator (``,`` or ``;``), a tab, a line break.
FORMULA_AFTER_SPLIT = re.compile(r"(^|[,;\t\r\n])(?=[=+\-@\t\r])")
WIDTH_SAMPLE = 500  # rows looked at to size a column
WIDTH_MIN, WIDTH_MAX = 8, 60


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportFile:
    filename: str
    content: bytes
    mimetype: str

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True, eq=False)
class Export:
    kind: Kind
    criteria: Criteria
    frame: pd.DataFrame
    kinds: dict[str, Col]  # column → how it is written
    csv: ExportFile
    xlsx: ExportFile
    by: str | None = None  # the drivers table along this dimension, not the register

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def files(self) -> tuple[ExportFile, ExportFile]:
        return self.csv, self.xlsx


@dataclass(frozen=True)
class Frame:
    """A register as a table, with how each column is written."""

    data: pd.DataFrame
    kinds: dict[str, Col] = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# Reading the register
# --------------------------------------------------------------------------------------

def _day(value: datetime | None) -> date | None:
    return value.astimezone(UTC).date() if value is not None else None


def _points(session: Session, team_id: str, criteria: Criteria,
            visibility: Visibility | None) -> list[TriggerPoint]:
    """The workspace's posted trigger points matching that the audience may see, newest
    first (names checked)."""
    points = session.scalars(
        select(TriggerPoint)
        .where(TriggerPoint.team_id == team_id, TriggerPoint.message_ts.is_not(None))
        .order_by(TriggerPoint.created_at.desc(), TriggerPoint.id.desc())).all()
    check_names(session, team_id, criteria)
    return [p for p in points if criteria.matches(p.scope, p.metric, p.horizon)
            and (visibility is None or visibility.sees_channel(p.channel_id))]


def _visible_action(visibility: Visibility | None, action: Any) -> bool:
    return visibility is None or visibility.sees_action(action.channel_id, action.owner_id,
                                                        action.creator_id)


def _dimensions(points: Sequence[TriggerPoint]) -> list[str]:
    """The dimensions of these scopes, in the order they first appear."""
    seen: dict[str, None] = {}
    for point in points:
        for key in point.scope:
            seen.setdefault(key, None)
    return list(seen)


def _gap_values(point: TriggerPoint | None, dimensions: Sequence[str]) -> list[Any]:
    if point is None:
        return [None] * (len(GAP_COLUMNS) + len(dimensions) + len(GAP_DETAIL_COLUMNS))
    confirmed = point.root_cause_category is not None
    return [
        point.id, scope_text(point.scope),
        *(", ".join(point.scope[d]) if d in point.scope else None for d in dimensions),
        point.metric, point.horizon, point.channel_id, _day(point.created_at),
        format_month(point.as_of) if point.as_of is not None else None, point.status,
        _day(point.status_changed_at or point.resolved_at),
        point.plan_at_post, point.gap_at_post,
        point.gap_pct_at_post, point.plan, point.outlook, point.gap, point.gap_pct,
        category_label(point.root_cause_category) if confirmed else None,
        point.root_cause_summary if confirmed else None,
        point.root_cause_confirmed_by if confirmed else None,
        _day(point.root_cause_confirmed_at) if confirmed else None,
    ]


def _gap_columns(dimensions: Sequence[str]) -> list[tuple[str, Col]]:
    return [*GAP_COLUMNS, *((d, Col.TEXT) for d in dimensions), *GAP_DETAIL_COLUMNS]


def milestone_text(milestones: Sequence[tuple[str, date, datetime | None]]) -> str | None:
    """``Brief agency · due 2026-12-01 · done 2026-11-20; Launch · due 2026-12-15 · open``."""
    if not milestones:
        return None
    return "; ".join(
        f"{name} · due {due:%Y-%m-%d} · "
        + (f"done {_day(done):%Y-%m-%d}" if done is not None else "open")
        for name, due, done in milestones)


def _frame(columns: Sequence[tuple[str, Col]], rows: list[list[Any]]) -> Frame:
    """The table, amounts rounded to the cent and percentages as the JSON has them."""
    names = [name for name, _ in columns]
    kinds = dict(columns)
    data = pd.DataFrame(rows, columns=names, dtype=object)
    for name, kind in columns:
        if kind is Col.ID:
            data[name] = pd.array(data[name].tolist(), dtype="Int64")
        elif kind in (Col.AMOUNT, Col.PCT):
            rounding = fmt.json_amount if kind is Col.AMOUNT else fmt.json_percent
            data[name] = data[name].map(
                lambda v, r=rounding: np.nan if v is None or pd.isna(v) else r(float(v))
            ).astype("float64")
    return Frame(data, kinds)


def with_names(frame: Frame, names: Mapping[str, str]) -> Frame:
    """Each Slack id column followed by a column of the names ``names`` gives the ids
    (empty where unknown)."""
    data = frame.data.copy()
    kinds = dict(frame.kinds)
    for column, name_column in NAMED_COLUMNS.items():
        if column in data.columns:
            data.insert(data.columns.get_loc(column) + 1, name_column, data[column].map(
                lambda v: names.get(v) if isinstance(v, str) else None))
            kinds[name_column] = Col.TEXT
    return Frame(data, {name: kinds[name] for name in data.columns})


def slack_ids(frame: Frame) -> tuple[set[str], set[str]]:
    """The user ids and channel ids a frame names (what to look up in Slack)."""
    users: set[str] = set()
    channels: set[str] = set()
    for column in NAMED_COLUMNS:
        if column in frame.data.columns:
            found = {v for v in frame.data[column].dropna() if isinstance(v, str) and v}
            (channels if column == "Channel" else users).update(found)
    return users, channels


MilestoneRows = Mapping[int, Sequence[tuple[str, date, datetime | None]]]


def build_actions_frame(points: Sequence[Any], actions: Sequence[Any],
                        milestones: MilestoneRows, *, today: date) -> Frame:
    """One row per action (pure): open ones first, then by due date (the register's
    order). ``points``: the trigger points the actions are on (any object with
    :class:`TriggerPoint`'s attributes), ``actions``: objects with :class:`Action`'s
    attributes, ``milestones``: action id → (name, due date, done at), soonest first."""
    by_id = {p.id: p for p in points}
    dimensions = _dimensions(points)
    ordered = sorted(actions, key=lambda a: (a.status != Status.OPEN, a.due_date, a.id))
    rows = [[
        *_gap_values(by_id.get(a.trigger_point_id), dimensions),
        a.id, a.title, a.owner_id, a.metric_name, a.baseline, a.target, a.current_value,
        a.due_date, milestone_text(milestones.get(a.id, ())), a.status,
        "yes" if a.status == Status.OPEN and a.due_date < today else "no",
        a.expected_impact, a.realised_impact, a.confidence, a.resources, a.creator_id,
        _day(a.created_at), _day(a.completed_at),
    ] for a in ordered]
    return _frame([*_gap_columns(dimensions), *ACTION_COLUMNS], rows)


def build_gaps_frame(points: Sequence[Any], actions: Sequence[Any]) -> Frame:
    """One row per trigger point (pure), in the order given, with its actions rolled up:
    how many, which, expected and realised impact, coverage by the open ones."""
    dimensions = _dimensions(points)
    by_point: defaultdict[int, list[Any]] = defaultdict(list)
    for action in actions:
        by_point[action.trigger_point_id].append(action)
    rows = []
    for point in points:
        acts = sorted(by_point.get(point.id, []), key=lambda a: (a.due_date, a.id))
        open_impacts = [a.expected_impact for a in acts if a.status == Status.OPEN]
        cover = coverage(point.gap, open_impacts)
        realised = [a.realised_impact for a in acts if a.realised_impact is not None]
        rows.append([
            *_gap_values(point, dimensions), len(acts), len(open_impacts),
            "; ".join(f"{a.title} ({a.owner_id}, {a.status})" for a in acts) or None,
            math.fsum(a.expected_impact for a in acts if a.status != Status.CANCELLED),
            math.fsum(realised) if realised else None,
            cover.ratio * 100 if cover.ratio is not None else None,
            cover.uncovered if cover.defined else None,
        ])
    return _frame([*_gap_columns(dimensions), *GAP_ROLLUP_COLUMNS], rows)


_ACTION_FIELDS = (
    Action.id, Action.trigger_point_id, Action.title, Action.owner_id, Action.metric_name,
    Action.baseline, Action.target, Action.current_value, Action.due_date, Action.status,
    Action.expected_impact, Action.realised_impact, Action.confidence, Action.resources,
    Action.creator_id, Action.created_at, Action.completed_at)


def actions_frame(session: Session, *, team_id: str, criteria: Criteria,
                  today: date, visibility: Visibility | None = None) -> Frame:
    """The workspace's actions on gaps matching the criteria (and, with no criteria, the
    actions on no gap too) that the audience may see; three queries whatever the size."""
    points = _points(session, team_id, criteria, visibility)
    wanted = {p.id for p in points}
    keep_unlinked = criteria.is_empty
    actions = [a for a in session.execute(select(*_ACTION_FIELDS, Action.channel_id).where(
        Action.team_id == team_id))
        if (a.trigger_point_id in wanted or (a.trigger_point_id is None and keep_unlinked))
        and _visible_action(visibility, a)]
    milestones: defaultdict[int, list[tuple[str, date, datetime | None]]] = defaultdict(list)
    for action_id, name, due, done in session.execute(
            select(Milestone.action_id, Milestone.name, Milestone.due_date, Milestone.done_at)
            .join(Action, Action.id == Milestone.action_id).where(Action.team_id == team_id)
            .order_by(Milestone.action_id, Milestone.due_date, Milestone.id)):
        milestones[action_id].append((name, due, done))
    linked = {a.trigger_point_id for a in actions}
    return build_actions_frame([p for p in points if p.id in linked], actions, milestones,
                               today=today)


def gaps_frame(session: Session, *, team_id: str, criteria: Criteria,
               visibility: Visibility | None = None) -> Frame:
    """The workspace's trigger points matching the criteria that the audience may see,
    newest first."""
    points = _points(session, team_id, criteria, visibility)
    wanted = {p.id for p in points}
    actions = [a for a in session.execute(select(*_ACTION_FIELDS, Action.channel_id).where(
        Action.team_id == team_id, Action.trigger_point_id.is_not(None)))
        if a.trigger_point_id in wanted and _visible_action(visibility, a)]
    return build_gaps_frame(points, actions)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

def csv_safe(value: str) -> str:
    """Text Excel would run as a formula gets a ``'`` (OWASP, CSV injection): at its start,
    and after every character some Excel splits a CSV line at (see the module doc)."""
    return FORMULA_AFTER_SPLIT.sub(r"\1'", value)


def to_csv(frame: Frame) -> bytes:
    """UTF-8 with a BOM, CRLF line ends, every field quoted, text never read as a formula."""
    data = frame.data.copy()
    for name, kind in frame.kinds.items():
        if kind is Col.TEXT:
            data[name] = data[name].map(lambda v: csv_safe(v) if isinstance(v, str) else v)
    return data.to_csv(index=False, lineterminator="\r\n",
                       quoting=csv.QUOTE_ALL).encode("utf-8-sig")


def _xlsx_text(value: str) -> str:
    return ILLEGAL_CHARACTERS_RE.sub("", value)[:CELL_TEXT_MAX]


def _width(name: str, values: pd.Series, kind: Col) -> float:
    if kind is Col.AMOUNT:
        longest = 16
    elif kind is Col.DATE:
        longest = 11
    else:
        sample = values.head(WIDTH_SAMPLE).dropna()
        longest = int(sample.map(lambda v: len(str(v))).max()) if len(sample) else 0
    return float(min(max(longest, len(name), WIDTH_MIN), WIDTH_MAX) + 2)


class _DatedZip(zipfile.ZipFile):
    """A zip whose entries all carry one date: the same register on the same day gives
    the same bytes (openpyxl would date each entry with the time of writing)."""

    def __init__(self, file: IO[bytes], stamp: tuple[int, int, int, int, int, int]) -> None:
        super().__init__(file, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        self._stamp = stamp

    def writestr(self, zinfo_or_arcname: str | zipfile.ZipInfo, data: str | bytes,
                 compress_type: int | None = None, compresslevel: int | None = None) -> None:
        if isinstance(zinfo_or_arcname, str):
            zinfo_or_arcname = zipfile.ZipInfo(zinfo_or_arcname, date_time=self._stamp)
            zinfo_or_arcname.compress_type = self.compression
            zinfo_or_arcname.external_attr = 0o600 << 16
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)

    def write(self, filename: Any, arcname: Any = None, compress_type: int | None = None,
              compresslevel: int | None = None) -> None:
        with open(filename, "rb") as source:
            self.writestr(str(arcname or filename), source.read(), compress_type, compresslevel)


def to_xlsx(frame: Frame, *, title: str, about: Sequence[tuple[str, str]] = (),
            day: date = date(2000, 1, 1)) -> bytes:
    """One sheet: bold frozen header, autofilter, sized columns; an "About" sheet. The
    file is dated ``day`` (the export's), so its bytes depend on the data only."""
    stamp = (day.year, day.month, day.day, 0, 0, 0)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)
    names = list(frame.data.columns)
    kinds = [frame.kinds.get(name, Col.TEXT) for name in names]
    for index, (name, kind) in enumerate(zip(names, kinds, strict=True), start=1):
        sheet.column_dimensions[get_column_letter(index)].width = _width(
            name, frame.data[name], kind)
    sheet.freeze_panes = "A2"
    if names:
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(names))}{len(frame.data) + 1}"
    bold = Font(bold=True)
    header = []
    for name in names:
        cell = WriteOnlyCell(sheet, value=_xlsx_text(name))
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    # One styled cell per number or date column, reused row after row (openpyxl writes
    # each row as it is appended): styling a fresh cell per value doubles the time.
    formatted: dict[int, WriteOnlyCell] = {}
    for index, kind in enumerate(kinds):
        if kind in (Col.AMOUNT, Col.PCT, Col.DATE):
            formatted[index] = WriteOnlyCell(sheet)
            formatted[index].number_format = kind.value
    rows = frame.data.astype(object).where(frame.data.notna(), None).itertuples(
        index=False, name=None)
    for values in rows:
        row: list[Any] = list(values)
        for index, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, str):
                text = _xlsx_text(value)
                if text.startswith(FORMULA_STARTS):
                    cell = WriteOnlyCell(sheet)
                    cell.value = text
                    cell.data_type = "s"  # text, never a formula
                    cell.quotePrefix = True
                    row[index] = cell
                else:
                    row[index] = text
            elif index in formatted:
                formatted[index].value = value if kinds[index] is Col.DATE else float(value)
                row[index] = formatted[index]
            elif hasattr(value, "item"):  # numpy scalars
                row[index] = value.item()
        sheet.append(row)
    if about:
        info = book.create_sheet("About")
        info.column_dimensions["A"].width = 14
        info.column_dimensions["B"].width = 60
        for key, text in about:
            info.append([_xlsx_text(key), _xlsx_text(text)])
    book.properties.creator = "sopgap"
    book.properties.created = book.properties.modified = datetime(*stamp[:3])
    buffer = io.BytesIO()
    ExcelWriter(book, _DatedZip(buffer, stamp)).save()  # closes the archive
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------

def frame_for(session: Session, *, team_id: str, kind: Kind, criteria: Criteria,
              today: date, visibility: Visibility | None = None) -> Frame:
    if kind is Kind.ACTIONS:
        return actions_frame(session, team_id=team_id, criteria=criteria, today=today,
                             visibility=visibility)
    return gaps_frame(session, team_id=team_id, criteria=criteria, visibility=visibility)


def filenames(kind: Kind, today: date) -> tuple[str, str]:
    stem = f"sopgap-{kind.value}-{today:%Y-%m-%d}"
    return f"{stem}.csv", f"{stem}.xlsx"


NameLookup = Callable[[set[str], set[str]], Mapping[str, str]]
NOTES = ("Amounts rounded to the cent; percentages in percent; dates in UTC; people and "
         "channels are Slack ids with their names beside them.")


def export(sessions: sessionmaker[Session], *, team_id: str, kind: Kind | str,
           filters: Filters | str, today: date, names: NameLookup | None = None,
           fy_start_month: int = 1, visibility: Visibility | None = None) -> Export:
    """The register of one workspace as CSV and XLSX bytes (one read-only transaction),
    the records the audience may see only (all of them for ``None``).

    ``names``: given the user ids and channel ids in the register, their names (the
    caller looks them up; a plain mapping back). ``filters`` with ``by=`` on ``gaps``
    exports the drivers table instead (see :func:`drivers_export`).
    Raises :class:`FilterError` for filters that cannot be used or an unknown kind.
    """
    kind = parse_kind(kind) if not isinstance(kind, Kind) else kind
    parsed = parse_filters(filters) if isinstance(filters, str) else filters
    if parsed.by is not None and kind is Kind.GAPS:
        return drivers_export(sessions, team_id=team_id, filters=parsed, today=today,
                              fy_start_month=fy_start_month)
    if parsed.by is not None:
        raise FilterError("by= goes with `export gaps` (the drivers table of a gap, e.g. "
                          "`export gaps region=EU by=channel`)")
    criteria = Criteria.of(parsed)
    with sessions() as session:
        frame = frame_for(session, team_id=team_id, kind=kind, criteria=criteria, today=today,
                          visibility=visibility)
    users, channels = slack_ids(frame)
    frame = with_names(frame, names(users, channels) if names is not None else {})
    csv_name, xlsx_name = filenames(kind, today)
    about = [("Register", SHEET_TITLES[kind]), ("Filters", criteria.label()),
             ("Rows", str(len(frame.data))), ("Exported on", f"{today:%Y-%m-%d}"),
             ("Notes", NOTES)]
    return Export(
        kind=kind, criteria=criteria, frame=frame.data, kinds=frame.kinds,
        csv=ExportFile(csv_name, to_csv(frame), "text/csv"),
        xlsx=ExportFile(xlsx_name, to_xlsx(frame, title=SHEET_TITLES[kind], about=about,
                                           day=today), XLSX_MIME),
    )


# --------------------------------------------------------------------------------------
# The drivers table (export gaps … by=DIM)
# --------------------------------------------------------------------------------------

def build_drivers_frame(result: GapResult) -> Frame:
    """One row per member along ``result.by`` (pure), in the engine's order: amounts to the
    cent, gap % and share of the gap in percent, offsets marked."""
    rows = [[d.member, d.plan, d.outlook, d.gap, d.gap_pct,
             d.share * 100 if d.share is not None else None, "yes" if d.offset else "no"]
            for d in result.drivers]
    return _frame(DRIVER_COLUMNS, rows)


def drivers_export(sessions: sessionmaker[Session], *, team_id: str, filters: Filters,
                   today: date, fy_start_month: int = 1) -> Export:
    """The drivers table of the gap ``filters`` name, on the workspace's latest view, as
    CSV and XLSX; figures exactly as ``/gap`` computes them. Raises :class:`FilterError`
    for filters that do not fit the data and :class:`~sop_core.services.data.NoData`."""
    with sessions() as session:
        gap = gap_report(session, filters, team_id=team_id, rule=TriggerRule(),
                         fy_start_month=fy_start_month)
    result = gap.result
    frame = build_drivers_frame(result)
    criteria = Criteria(scope={k: tuple(v) for k, v in result.scope.items()},
                        metric=result.metric, horizon=result.horizon.name)
    stem = f"sopgap-drivers-by-{_file_word(result.by or '')}-{today:%Y-%m-%d}"
    about = [("Table", f"Drivers of the gap by {result.by}"), ("Scope", criteria.label()),
             ("Horizon", f"{result.horizon.name} {format_month(result.horizon.start)}.."
                         f"{format_month(result.horizon.end)}"),
             ("As of", format_month(result.as_of) if result.as_of is not None else "n/a"),
             ("Snapshot", f"#{gap.snapshot_id}"),
             ("Total", f"plan {fmt.json_amount(result.plan)}, latest view "
                       f"{fmt.json_amount(result.outlook)}, gap {fmt.json_amount(result.gap)}"),
             ("Rows", str(len(frame.data))), ("Exported on", f"{today:%Y-%m-%d}"),
             ("Notes", NOTES)]
    return Export(
        kind=Kind.GAPS, criteria=criteria, frame=frame.data, kinds=frame.kinds,
        csv=ExportFile(f"{stem}.csv", to_csv(frame), "text/csv"),
        xlsx=ExportFile(f"{stem}.xlsx", to_xlsx(frame, title=DRIVERS_SHEET, about=about,
                                                day=today), XLSX_MIME),
        by=result.by)


def _file_word(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.casefold()).strip("-") or "member"


def nothing_matches(export: Export) -> str:
    """Why an export has no rows (plain text)."""
    if export.criteria.is_empty:
        return f"no {export.kind.value} recorded yet."
    if export.kind is Kind.GAPS:
        return f"no gap overlaps {export.criteria.label()}."
    return f"no actions on a gap overlapping {export.criteria.label()}."


def teams_with_records(session: Session) -> list[str]:
    """Workspaces that have trigger points or actions (for the command line's default)."""
    teams = set(session.scalars(select(TriggerPoint.team_id).distinct()))
    teams.update(session.scalars(select(Action.team_id).distinct()))
    return sorted(teams)
