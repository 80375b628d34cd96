""""Show chart" over signed HTTP: the charts go into the gap's thread through Slack's
external upload (files.getUploadURLExternal → upload → files.completeUploadExternal);
and ``sopgap demo`` writes the same charts to files."""

from __future__ import annotations

import dataclasses
import struct
import time
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app as cli
from bot.ids import ActionId
from sop_core import formatting as fmt
from sop_core.db import get_sessionmaker
from sop_core.filters import parse_filters, resolve
from sop_core.gaps import compute_gap, price_volume_mix
from sop_core.loading import PlanningTable
from sop_core.services.data import store
from tests.e2e.conftest import Running
from tests.e2e.slack_sim import SlackSim
from tests.e2e.test_threads import ephemeral_texts, posted_point
from tests.fakeslack import FakeSlack

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_show_chart_uploads_the_bridge_pvm_and_trend_into_the_thread(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int,
        sample_table: PlanningTable) -> None:
    ts, point_id = posted_point(sim, slack, app_server)
    [post] = slack.calls_to("chat.postMessage")
    buttons = {e["action_id"]: e for b in post.args["blocks"] if b["type"] == "actions"
               for e in b["elements"]}
    assert buttons[ActionId.SHOW_CHART]["text"]["text"] == "Show chart"
    assert buttons[ActionId.SHOW_CHART]["value"] == str(point_id)

    started = time.monotonic()
    reply = sim.button(ActionId.SHOW_CHART, str(point_id), message_ts=ts)
    assert reply.status == 200 and reply.elapsed < 3.0
    [done] = slack.wait_for("files.completeUploadExternal", timeout=15)
    assert done.at - started < 10  # a couple of seconds, with room for a loaded CI box

    # Slack's sequence: a URL per file, the bytes to it, then one completion.
    methods = [c.method for c in slack.calls if c.method.startswith("files.")]
    assert methods == ["files.getUploadURLExternal"] * 3 + ["files.completeUploadExternal"]
    assert done.team_id == "T1"
    assert (done.args["channel_id"], done.args["thread_ts"]) == ("C1", ts)
    assert "-12.5%" in done.args["initial_comment"]
    assert "bridge, price · volume · mix, monthly trend" in done.args["initial_comment"]
    files = {slack.files[f["id"]].filename: slack.files[f["id"]] for f in done.args["files"]}
    assert list(files) == [f"gap-{point_id}-bridge.png", f"gap-{point_id}-price-volume-mix.png",
                           f"gap-{point_id}-trend.png"]
    for record in files.values():
        assert record.completed and record.thread_ts == ts
        assert png_size(slack.uploads[record.id]) == (1200, 675)

    # The alt text says the engine's numbers.
    query = resolve(parse_filters("region=EU category=Snacks by=channel"), sample_table)
    result = compute_gap(sample_table, query)
    alt = {c.args["filename"]: c.args["alt_txt"]
           for c in slack.calls_to("files.getUploadURLExternal")}
    bridge = alt[f"gap-{point_id}-bridge.png"]
    assert f"Plan {fmt.amount(result.plan)}" in bridge
    for driver in result.drivers:
        assert f"{driver.member} {fmt.amount(driver.gap, signed=True)}" in bridge
    assert f"Latest view {fmt.amount(result.outlook)}" in bridge
    assert "gap -12.5% (-464K)" in bridge
    pvm = price_volume_mix(sample_table, query)
    assert pvm is not None
    assert (f"Price {fmt.amount(pvm.price, signed=True)}; Volume "
            f"{fmt.amount(pvm.volume, signed=True)}") in alt[f"gap-{point_id}-price-volume-mix.png"]
    assert alt[f"gap-{point_id}-trend.png"].count("plan ") == 12
    assert ephemeral_texts(slack) == []
    assert slack.violations == []


def test_show_chart_of_another_workspace_or_a_bad_value_is_not_found(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    ts, point_id = posted_point(sim, slack, app_server)
    sim.button(ActionId.SHOW_CHART, str(point_id), team="T2", message_ts=ts)
    sim.button(ActionId.SHOW_CHART, "12; drop table", message_ts=ts)
    sim.button(ActionId.SHOW_CHART, str(point_id + 1000), message_ts=ts)
    slack.wait_for("response_url", count=3)
    assert all("can't find that gap" in text for text in ephemeral_texts(slack))
    assert slack.calls_to("files.getUploadURLExternal") == []
    assert slack.violations == []


def test_a_failed_upload_is_told_and_a_vanished_scope_explained(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int,
        sample_table: PlanningTable) -> None:
    ts, point_id = posted_point(sim, slack, app_server)
    slack.fail_next("files.getUploadURLExternal", status=500, times=3)  # beyond the retries
    sim.button(ActionId.SHOW_CHART, str(point_id), message_ts=ts)
    [told] = slack.wait_for("response_url", timeout=15)
    assert told.args["response_type"] == "ephemeral"
    assert "Slack did not take the chart" in told.args["text"]
    assert slack.calls_to("files.completeUploadExternal") == []

    # A new snapshot without EU: the gap cannot be recomputed, and the person is told why.
    without_eu = sample_table.frame[sample_table.frame["region"] != "EU"].copy()
    without_eu["region"] = without_eu["region"].cat.remove_unused_categories()
    store(get_sessionmaker(app_server.settings.database_url),
          dataclasses.replace(sample_table, frame=without_eu))
    sim.button(ActionId.SHOW_CHART, str(point_id), message_ts=ts)
    told = slack.wait_for("response_url", count=2, timeout=15)[1]
    assert told.args["text"].startswith("This gap's scope is not in the latest data any more")
    assert "Unknown region “EU”" in told.args["text"]
    assert slack.calls_to("files.completeUploadExternal") == []
    assert slack.violations == []


def test_demo_writes_the_charts_of_the_first_trigger_point(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--messages", "0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    folder = tmp_path / "sopgap-out"  # the tests run in tmp_path
    written = sorted(p.name for p in folder.iterdir())
    assert written == ["gap-bridge.png", "gap-price-volume-mix.png", "gap-trend.png"]
    for name in written:
        assert str(folder / name) in result.output
        assert png_size((folder / name).read_bytes()) == (1200, 675)
    assert "Charts of the first trigger point" in result.output
