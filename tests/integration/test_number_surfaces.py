"""Every surface in German with euros (SOPGAP_LOCALE=de_DE, SOPGAP_UNITS=revenue=EUR): the
CLI table and its JSON, the Slack trigger point, a chart, the digest, a nudge and the
drivers export. Expected digits are written out here by hand from the engine's figures,
not with the formatting module, so a surface that formats on its own is caught."""

from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.blocks.action_card import action_card_blocks
from bot.blocks.digest import coverage_line
from bot.blocks.nudge import nudge_blocks
from bot.blocks.trigger import trigger_point_blocks
from bot.cli import app
from sop_core import charts
from sop_core import formatting as fmt
from sop_core.config import get_settings
from sop_core.db import get_sessionmaker
from sop_core.gaps import TriggerRule
from sop_core.nudges import Occasion
from sop_core.sample_data import SAMPLE_CSV
from sop_core.services import exports
from sop_core.services.chart_data import gap_title
from sop_core.services.data import GapReport, gap_report
from sop_core.services.digests import MetricCoverage
from sop_core.services.followup import NudgeTask
from tests.readback import read_back
from tests.unit.test_action_blocks import GAP, action

NBSP = "\xa0"
GERMAN = {"SOPGAP_LOCALE": "de_DE", "SOPGAP_UNITS": "revenue=EUR,volume=units",
          "COLUMNS": "200"}
DE = fmt.NumberStyle(locale="de_DE", units={"revenue": "EUR", "volume": "units"})
FILTERS = ["region=EU", "category=Snacks", "by=channel"]


def german(number: float, decimals: int) -> str:
    """``1234567.891, 2`` → ``1.234.567,89`` (grouping dot, decimal comma)."""
    text = f"{abs(number):,.{decimals}f}"
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


def euro_full(value: float, signed: bool = False) -> str:
    sign = "-" if value < 0 else "+" if signed and round(value) else ""
    return f"{sign}{german(round(abs(value)), 0)}{NBSP}€"


def euro_compact(value: float, signed: bool = False) -> str:
    """Three significant digits, Tsd. / Mio. in German, the euro after the number."""
    sign = "-" if value < 0 else "+" if signed else ""
    size = float(f"{abs(value):.3g}")
    for scale, word in ((1e6, "Mio."), (1e3, "Tsd.")):
        if size >= scale:
            scaled = size / scale
            decimals = 2 if scaled < 10 else 1 if scaled < 100 else 0
            return f"{sign}{german(scaled, decimals)}{NBSP}{word}{NBSP}€"
    return f"{sign}{german(round(size), 0)}{NBSP}€"


def pct(value: float) -> str:
    sign = "-" if value < 0 else "+"
    return f"{sign}{german(abs(value), 1)}{NBSP}%"


def sopgap(*args: str, env: dict[str, str]) -> Any:
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    with pytest.MonkeyPatch.context() as patch:
        directory = tmp_path_factory.mktemp("surfaces")
        patch.chdir(directory)  # no .env from the repository
        url = f"sqlite:///{directory / 'de.db'}"
        loaded = sopgap("load", str(SAMPLE_CSV), env={"DATABASE_URL": url})
        assert loaded.exit_code == 0, loaded.output
    return url


@pytest.fixture
def report(database: str) -> GapReport:
    with get_sessionmaker(database)() as session:
        found = gap_report(session, " ".join(FILTERS), rule=TriggerRule())
    assert len(found.result.drivers) >= 2 and abs(found.result.gap) >= 10_000
    return found


def test_the_cli_table_and_json(database: str, report: GapReport, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = report.result
    shown = sopgap("gaps", *FILTERS, env={**GERMAN, "DATABASE_URL": database})
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert euro_full(result.plan) in text and euro_full(result.outlook) in text
    assert f"{euro_full(result.gap, signed=True)} ({pct(result.gap_pct)})" in text
    for driver in result.drivers:
        assert euro_full(driver.gap, signed=True) in text, driver.member
    assert not re.search(r"\d,\d{3}\.\d", text)  # no English grouping, no cents
    printed = sopgap("gaps", *FILTERS, "--json", env={**GERMAN, "DATABASE_URL": database})
    body = json.loads(printed.output)
    assert (body["plan"], body["gap"]) == (round(result.plan, 2), round(result.gap, 2))
    for number in re.findall(r"-?\d+\.\d+", printed.output):  # the cent, no float noise
        assert len(number.split(".")[1]) <= 4, number
    shares = [d["share"] for d in body["drivers"]]
    assert abs(sum(shares) - 100) < 0.01  # percent, like gap_pct


def test_the_slack_trigger_point(report: GapReport) -> None:
    result = report.result
    with fmt.use(DE):
        blocks = json.dumps([b.to_dict() for b in trigger_point_blocks(report)],
                            ensure_ascii=False)
    assert f"*Plan*\\n{euro_compact(result.plan)}" in blocks
    assert f"*Gap*\\n{euro_compact(result.gap, signed=True)} ({pct(result.gap_pct)})" in blocks
    first = result.drivers[0]
    assert f"{euro_compact(first.gap, signed=True)} ({pct(first.gap_pct)})" in blocks


def test_a_chart(report: GapReport) -> None:
    result = report.result
    with fmt.use(DE):
        title = gap_title(result)
        figure = charts.bridge_figure(charts.bridge_steps(result), title, "s",
                                      metric=result.metric)
        [axes] = figure.axes
        figure.canvas.draw()
    assert title == (f"FY2026 revenue · EU · Snacks: {euro_compact(result.gap, signed=True)} "
                     f"({pct(result.gap_pct)})")
    labels = [t.get_text() for t in axes.texts]
    assert labels[0] == euro_compact(result.plan)
    assert labels[-1] == euro_compact(result.outlook)
    low, high = axes.get_ylim()
    ticks = [(t.get_loc(), t.label1.get_text()) for t in axes.yaxis.get_major_ticks()
             if low <= t.get_loc() <= high]
    assert len(ticks) >= 3 and all("," in label or label == "0" for _, label in ticks)
    for position, label in ticks:
        assert read_back(label, "de_DE") == pytest.approx(position), label
    assert axes.get_ylabel() == "EUR"


def test_the_digest_and_a_nudge() -> None:
    with fmt.use(DE):
        line = coverage_line(MetricCoverage(metric="revenue", gaps=2, size=1_234_567.0,
                                            covered=8_938.0, uncovered=1_225_629.0))
        task = NudgeTask(key="k", occasion=Occasion("due", date(2026, 3, 10)), team_id="T1",
                         action_id=12, milestone_id=None, what="due date",
                         due=date(2026, 3, 10) + timedelta(days=2), owner_id="U2",
                         creator_id="U1", owner_left=False, channel_id="C1", thread_ts=None)
        card = action_card_blocks(action(gap=GAP), today=date(2026, 3, 10))
        nudge = json.dumps([b.to_dict() for b in nudge_blocks(task, "t", date(2026, 3, 10),
                                                               card)], ensure_ascii=False)
    assert f"|gap| {euro_compact(1_234_567.0)}" in line
    assert f"{euro_compact(8_938.0)} (1{NBSP}%) covered" in line
    assert f"{euro_compact(350_000)} of the gap" in nudge
    assert f"answers the gap {euro_compact(GAP.gap, signed=True)} ({pct(GAP.gap_pct)})" in nudge


def test_the_drivers_export_is_to_the_cent(database: str, report: GapReport) -> None:
    sessions = get_sessionmaker(database)
    with fmt.use(DE):  # files carry numbers, not text: the locale does not change them
        made = exports.export(sessions, team_id="", kind="gaps", filters=" ".join(FILTERS),
                              today=date(2026, 11, 22))
    table = pd.read_csv(io.BytesIO(made.csv.content), encoding="utf-8-sig")
    result = report.result
    assert list(table["Gap"]) == [round(d.gap, 2) for d in result.drivers]
    assert list(table["Share of gap %"]) == [round(d.share * 100, 4) for d in result.drivers]


def test_the_cli_exports_the_drivers_table(database: str, report: GapReport,
                                           tmp_path: Path) -> None:
    done = sopgap("export", "gaps", *FILTERS, "--out", str(tmp_path),
                  env={**GERMAN, "DATABASE_URL": database})
    assert done.exit_code == 0, done.output
    assert "Exported the drivers of the gap by channel" in done.output
    [csv_file] = tmp_path.glob("sopgap-drivers-by-channel-*.csv")
    [xlsx_file] = tmp_path.glob("sopgap-drivers-by-channel-*.xlsx")
    table = pd.read_csv(csv_file, encoding="utf-8-sig")
    assert list(table["Member"]) == [d.member for d in report.result.drivers]
    assert list(table["Latest view"]) == [round(d.outlook, 2) for d in report.result.drivers]
    assert xlsx_file.stat().st_size > 0
    refused = sopgap("export", "actions", "by=channel", "--out", str(tmp_path),
                     env={**GERMAN, "DATABASE_URL": database})
    assert refused.exit_code == 2 and "by= goes with `export gaps`" in refused.output
