"""Exports: the register frames (columns, values), CSV (BOM, no formula injection) and
XLSX (bold frozen header, text never a formula), all in memory."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, date, datetime
from typing import Any

import openpyxl
import pandas as pd
import pytest

from sop_core.filters import FilterError
from sop_core.models import Action, TriggerPoint
from sop_core.services.exports import (
    CELL_TEXT_MAX,
    NAMED_COLUMNS,
    Col,
    Frame,
    Kind,
    build_actions_frame,
    build_gaps_frame,
    csv_safe,
    milestone_text,
    parse_kind,
    slack_ids,
    to_csv,
    to_xlsx,
    with_names,
)

TODAY = date(2026, 11, 22)
POSTED = datetime(2026, 8, 14, 9, 0, tzinfo=UTC)
PLANNER_COLUMNS = [  # what a planner expects, in this order
    "Gap scope", "Horizon", "Plan at posting", "Gap at posting", "Gap % at posting",
    "Plan now", "Latest view now", "Gap now", "Gap % now", "Root cause", "Action", "Owner",
    "Action metric", "Baseline", "Target", "Due date", "Milestones", "Status",
    "Expected impact", "Realised impact",
]


def point(id: int = 1, **changes: Any) -> TriggerPoint:
    values: dict[str, Any] = {
        "team_id": "T1", "channel_id": "C1", "message_ts": "1700000000.000100",
        "scope": {"region": ["EU"], "category": ["Snacks", "Dairy"]},
        "scope_key": "category=dairy,snacks region=eu", "metric": "revenue", "horizon": "fy",
        "posted_snapshot_id": 1, "snapshot_id": 2, "as_of": 2026 * 12 + 7,
        "plan_at_post": 4_000_000.0, "gap_at_post": -500_000.0, "gap_pct_at_post": -12.5,
        "plan": 4_000_000.0, "outlook": 3_800_000.0, "gap": -200_000.0, "gap_pct": -5.0,
        "status": "open", "created_at": POSTED, "resolved_at": None,
        "root_cause_category": "promotion", "root_cause_summary": "Promo moved to Q1",
        "root_cause_confirmed_by": "U2", "root_cause_confirmed_at": POSTED}
    return TriggerPoint(id=id, **{**values, **changes})


def action(id: int, point_id: int | None = 1, **changes: Any) -> Action:
    values: dict[str, Any] = {
        "team_id": "T1", "trigger_point_id": point_id, "channel_id": "C1",
        "title": f"Action {id}", "owner_id": "U1", "creator_id": "U9",
        "metric_name": "e-com revenue", "baseline": 100.0, "target": 150.0,
        "current_value": None, "expected_impact": 80_000.0, "realised_impact": None,
        "resources": None, "confidence": "medium", "due_date": date(2026, 12, 1),
        "status": "open", "created_at": POSTED, "completed_at": None}
    return Action(id=id, **{**values, **changes})


# ------------------------------------------------------------------------------ frames

def test_the_actions_frame_has_the_columns_a_planner_expects() -> None:
    frame = build_actions_frame([point()], [action(1)], {}, today=TODAY)
    columns = list(frame.data.columns)
    positions = [columns.index(name) for name in PLANNER_COLUMNS]
    assert positions == sorted(positions)  # gap first, then the action, as listed
    assert columns[:4] == ["Gap id", "Gap scope", "region", "category"]  # one per dimension
    [row] = frame.data.to_dict("records")
    assert row["Gap scope"] == "region=EU · category=Snacks, Dairy"
    assert (row["region"], row["category"]) == ("EU", "Snacks, Dairy")
    assert (row["Gap at posting"], row["Gap % at posting"]) == (-500_000.0, -12.5)
    assert (row["Gap now"], row["Gap % now"], row["Latest view now"]) == (-200_000.0, -5.0,
                                                                        3_800_000.0)
    assert row["As of"] == "2026-08" and row["Gap posted on"] == date(2026, 8, 14)
    assert (row["Root cause"], row["Root-cause summary"]) == ("Promotion", "Promo moved to Q1")
    assert (row["Action"], row["Owner"], row["Action metric"]) == ("Action 1", "U1",
                                                                   "e-com revenue")
    assert (row["Baseline"], row["Target"], row["Due date"]) == (100.0, 150.0,
                                                                 date(2026, 12, 1))
    assert (row["Status"], row["Overdue"], row["Expected impact"]) == ("open", "no", 80_000.0)
    assert pd.isna(row["Realised impact"]) and row["Milestones"] is None
    assert frame.kinds["Gap at posting"] is Col.AMOUNT and frame.kinds["Due date"] is Col.DATE


def test_actions_come_open_first_then_by_due_date_with_their_milestones() -> None:
    actions = [
        action(1, due_date=date(2026, 12, 20)),
        action(2, due_date=date(2026, 10, 1), status="done", realised_impact=95_000.0,
               completed_at=datetime(2026, 10, 3, 23, 30, tzinfo=UTC)),
        action(3, due_date=date(2026, 11, 1)),  # overdue on TODAY
        action(4, point_id=None, title="On no gap"),
    ]
    milestones = {1: [("Brief agency", date(2026, 12, 1), POSTED),
                      ("Launch", date(2026, 12, 15), None)]}
    frame = build_actions_frame([point()], actions, milestones, today=TODAY)
    rows = frame.data.to_dict("records")
    assert [r["Action id"] for r in rows] == [3, 4, 1, 2]
    assert [r["Overdue"] for r in rows] == ["yes", "no", "no", "no"]
    assert rows[2]["Milestones"] == ("Brief agency · due 2026-12-01 · done 2026-08-14; "
                                     "Launch · due 2026-12-15 · open")
    assert rows[3]["Realised impact"] == 95_000.0
    assert rows[3]["Completed on"] == date(2026, 10, 3)
    assert pd.isna(rows[1]["Gap id"]) and rows[1]["Gap scope"] is None  # on no gap
    assert str(frame.data["Gap id"].dtype) == "Int64"  # never 1.0 for an id


def test_an_unconfirmed_root_cause_is_left_empty() -> None:
    unconfirmed = point(root_cause_category=None, root_cause_summary="draft",
                        root_cause_confirmed_by=None, root_cause_confirmed_at=None)
    [row] = build_actions_frame([unconfirmed], [action(1)], {}, today=TODAY).data.to_dict(
        "records")
    assert row["Root cause"] is None and row["Root-cause summary"] is None


def test_the_gaps_frame_rolls_up_actions_and_coverage() -> None:
    points = [point(2, scope={"channel": ["Retail"]}, gap=-400_000.0, gap_pct=-10.0),
              point(1, root_cause_category=None)]
    actions = [action(1, point_id=2, expected_impact=100_000.0),
               action(2, point_id=2, status="done", expected_impact=50_000.0,
                      realised_impact=60_000.0),
               action(3, point_id=2, status="cancelled", expected_impact=999.0)]
    frame = build_gaps_frame(points, actions)
    assert list(frame.data.columns)[:5] == ["Gap id", "Gap scope", "channel", "region",
                                            "category"]
    first, second = frame.data.to_dict("records")
    assert (first["Gap id"], second["Gap id"]) == (2, 1)  # the order given (newest first)
    assert (first["Actions"], first["Open actions"]) == (3, 1)
    assert first["Expected impact"] == 150_000.0  # cancelled ones left out
    assert first["Realised impact"] == 60_000.0
    assert first["Coverage %"] == pytest.approx(25.0)  # open 100K of |-400K|
    assert first["Not yet covered"] == pytest.approx(300_000.0)
    assert first["Action list"] == ("Action 1 (U1, open); Action 2 (U1, done); "
                                    "Action 3 (U1, cancelled)")
    assert (first["channel"], first["region"]) == ("Retail", None)
    assert second["Actions"] == 0 and second["Action list"] is None
    assert pd.isna(second["Realised impact"]) and second["Coverage %"] == 0.0


def test_milestone_text_and_kinds() -> None:
    assert milestone_text([]) is None
    assert parse_kind(" Actions ") is Kind.ACTIONS and parse_kind("gaps") is Kind.GAPS
    with pytest.raises(FilterError, match="is not something I export"):
        parse_kind("milestones")


# ------------------------------------------------------------------------------ files

HOSTILE = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTab", "plain",
           "a=b", "négatif -5"]


def hostile_frame() -> Frame:
    data = pd.DataFrame({
        "Action": HOSTILE,
        "Expected impact": [-1_234.5, 10.0, None, 0.0, 1e9, -5.0, 2.5, 3.0],
        "Due date": [date(2026, 12, 1)] * 7 + [None],
        "Action id": pd.array([1, 2, 3, 4, 5, 6, 7, None], dtype="Int64"),
    })
    return Frame(data, {"Action": Col.TEXT, "Expected impact": Col.AMOUNT,
                        "Due date": Col.DATE, "Action id": Col.ID})


def test_csv_is_utf8_with_a_bom_and_never_a_formula() -> None:
    content = to_csv(hostile_frame())
    assert content.startswith(
        b'\xef\xbb\xbf"Action","Expected impact","Due date","Action id"\r\n')
    back = pd.read_csv(io.BytesIO(content), encoding="utf-8-sig", keep_default_na=False)
    assert list(back["Action"]) == ["'" + v if v[0] in "=+-@\t" else v for v in HOSTILE]
    assert back["Expected impact"].tolist()[:3] == ["-1234.5", "10.0", ""]  # not escaped
    assert back["Due date"].tolist()[0] == "2026-12-01"
    assert back["Action id"].tolist()[-2:] == ["7", ""]
    assert "négatif -5" in content.decode("utf-8-sig")
    assert csv_safe("=1") == "'=1" and csv_safe("1=1") == "1=1"


SPLIT_HOSTILE = ["Dairy;=HYPERLINK(\"http://evil\",\"x\")", "EU,+1+1", "a;b;@SUM(A1)",
                 "line\n=1+1", "tab\t-2+3", "ok; not = a formula"]


def _formula_cells(content: bytes, delimiter: str) -> list[str]:
    """Cells a spreadsheet splitting the lines at ``delimiter`` would read as formulas
    (Python's csv reader splits at a separator after a closed quote, as Excel does)."""
    rows = csv.reader(io.StringIO(content.decode("utf-8-sig"), newline=""),
                      delimiter=delimiter)
    return [cell for row in rows for cell in row
            if cell[:1] in ("=", "+", "-", "@") and not _is_number(cell)]


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", "."))
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_has_no_formula_cell_whatever_the_list_separator(delimiter: str) -> None:
    data = pd.DataFrame({"Action": HOSTILE + SPLIT_HOSTILE,
                         "Expected impact": [-5.0] * (len(HOSTILE) + len(SPLIT_HOSTILE))})
    content = to_csv(Frame(data, {"Action": Col.TEXT, "Expected impact": Col.AMOUNT}))
    assert _formula_cells(content, delimiter) == []
    # Every field is quoted, so a comma-separated reader gets every text back whole.
    lines = content.decode("utf-8-sig").split("\r\n")
    assert lines[1] == '"\'=HYPERLINK(""http://evil"",""x"")","-5.0"'
    back = pd.read_csv(io.BytesIO(content), encoding="utf-8-sig", keep_default_na=False)
    assert back["Action"].tolist()[len(HOSTILE):] == [
        "Dairy;\'=HYPERLINK(\"http://evil\",\"x\")", "EU,\'+1+1", "a;b;\'@SUM(A1)",
        "line\n\'=1+1", "tab\t\'-2+3", "ok; not = a formula"]


def test_quoting_alone_would_let_a_formula_through_a_semicolon() -> None:
    """The check above can fail: the former writer (minimal quoting, a leading ``'`` only)
    and quoting every field without the inner ``'`` both hand ``;``-separator Excel a
    formula cell when the text is not in the first column."""
    data = pd.DataFrame({"Gap id": [1], "Action": ["Dairy;=1+1"]})
    former = data.to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")
    quoted_only = data.to_csv(index=False, lineterminator="\r\n",
                              quoting=csv.QUOTE_ALL).encode("utf-8-sig")
    assert _formula_cells(former, ";") == ["=1+1"]
    assert _formula_cells(quoted_only, ";") == ['=1+1"']
    safe = to_csv(Frame(data, {"Gap id": Col.ID, "Action": Col.TEXT}))
    assert _formula_cells(safe, ";") == []


def test_xlsx_has_a_bold_frozen_header_and_text_that_is_never_a_formula() -> None:
    content = to_xlsx(hostile_frame(), title="Actions", about=[("Filters", "region=EU")],
                      day=TODAY)
    book = openpyxl.load_workbook(io.BytesIO(content))
    assert book.sheetnames == ["Actions", "About"]
    sheet = book["Actions"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:D9"
    header = sheet[1]
    assert [c.value for c in header] == ["Action", "Expected impact", "Due date", "Action id"]
    assert all(c.font.b for c in header)
    for row, value in enumerate(HOSTILE, start=2):
        cell = sheet.cell(row, 1)
        assert cell.value == value.lstrip("\t") or cell.value == value
        assert cell.data_type == "s"  # text, not a formula
        if value[0] in "=+-@\t":
            assert cell.quotePrefix
    amount = sheet.cell(2, 2)
    assert amount.value == -1234.5 and amount.number_format == "#,##0.00"
    assert sheet.cell(4, 2).value is None
    assert sheet.cell(2, 3).value == datetime(2026, 12, 1)
    assert sheet.cell(2, 3).number_format == "yyyy-mm-dd"
    assert sheet.cell(2, 4).value == 1 and sheet.cell(9, 4).value is None
    widths = [sheet.column_dimensions[c].width for c in "ABCD"]
    assert all(8 <= w <= 62 for w in widths)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
        assert "<f>" not in sheet_xml  # not one formula in the file
        assert {i.date_time for i in archive.infolist()} == {(2026, 11, 22, 0, 0, 0)}
    assert book["About"]["B1"].value == "region=EU"


def test_xlsx_bytes_depend_on_the_data_and_the_day_only() -> None:
    first = to_xlsx(hostile_frame(), title="Actions", day=TODAY)
    assert to_xlsx(hostile_frame(), title="Actions", day=TODAY) == first
    assert to_xlsx(hostile_frame(), title="Actions", day=date(2026, 11, 23)) != first


def test_xlsx_drops_what_excel_cannot_hold() -> None:
    data = pd.DataFrame({"Action": ["bell\x07 and nul\x00", "x" * (CELL_TEXT_MAX + 10)]})
    content = to_xlsx(Frame(data, {"Action": Col.TEXT}), title="Actions")
    sheet = openpyxl.load_workbook(io.BytesIO(content))["Actions"]
    assert sheet["A2"].value == "bell and nul"
    assert len(sheet["A3"].value) == CELL_TEXT_MAX


def test_empty_frames_still_make_valid_files() -> None:
    frame = build_actions_frame([], [], {}, today=TODAY)
    assert frame.data.empty and "Action" in frame.data.columns
    assert to_csv(frame).startswith(b'\xef\xbb\xbf"Gap id","Gap scope","Metric"')
    sheet = openpyxl.load_workbook(io.BytesIO(to_xlsx(frame, title="Actions")))["Actions"]
    assert sheet.max_row == 1


def test_amounts_are_cents_and_percentages_percent_in_both_files() -> None:
    frame = build_gaps_frame([point(gap=-200_000.004999, plan=4_000_000.333333,
                                    gap_pct=-5.000000123)], [])
    row = frame.data.iloc[0]
    assert (row["Gap now"], row["Plan now"], row["Gap % now"]) == (-200_000.0, 4_000_000.33, -5.0)
    text = to_csv(frame).decode("utf-8-sig")
    assert "4000000.33" in text and "4000000.333" not in text


def test_names_go_beside_the_ids_they_name() -> None:
    frame = with_names(build_actions_frame([point()], [action(1)], {}, today=TODAY),
                       {"U1": "Ana", "C1": "#eu-sop", "U2": "Ben"})
    columns = list(frame.data.columns)
    for column, name in NAMED_COLUMNS.items():
        assert columns.index(name) == columns.index(column) + 1
    row = frame.data.iloc[0]
    assert (row["Owner name"], row["Channel name"]) == ("Ana", "#eu-sop")
    assert row["Root cause confirmed by name"] == "Ben"
    assert row["Created by name"] is None  # U9: Slack did not say
    assert slack_ids(frame) == ({"U1", "U2", "U9"}, {"C1"})
