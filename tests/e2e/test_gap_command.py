"""``/gap`` over signed HTTP: trigger points, errors, help, request verification."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.listeners import commands
from sop_core.db import get_sessionmaker, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import TriggerPoint
from sop_core.services.data import store
from tests.e2e.conftest import SIGNING_SECRET, Running, app_settings, refused, serve_app
from tests.e2e.slack_sim import SlackSim, sign
from tests.e2e.waiting import eventually
from tests.fakeslack import FakeSlack


def _texts(blocks: list[dict]) -> str:
    parts = []
    for block in blocks:
        for key in ("text",):
            if isinstance(block.get(key), dict):
                parts.append(block[key]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [e.get("text", "") if isinstance(e.get("text"), str) else
                  e.get("text", {}).get("text", "") for e in block.get("elements", [])]
    return "\n".join(parts)


def test_gap_posts_a_trigger_point_into_the_channel(sim: SlackSim, slack: FakeSlack,
                                                    app_server: Running, loaded: int) -> None:
    reply = sim.command('region=EU category=Snacks')
    assert reply.status == 200
    assert reply.elapsed < 3.0
    [post] = slack.wait_for("chat.postMessage")
    assert post.args["channel"] == "C1"
    assert post.team_id == "T1"
    text = _texts(post.args["blocks"])
    assert "Gap -12.5%" in text
    assert "*Plan*\n3.70M" in text
    assert "What drives it, by channel" in text and "E-commerce" in text
    assert "Crosses the trigger rule" in text
    buttons = [e["action_id"] for b in post.args["blocks"] if b["type"] == "actions"
               for e in b["elements"]]
    # The driver picker (drill down), then the buttons that start the work.
    assert buttons == ["gap_drill_down", "gap_discuss", "gap_create_action", "gap_show_chart"]
    sessions = get_sessionmaker(app_server.settings.database_url)

    def posted_point() -> TriggerPoint | None:
        with sessions() as session:
            return session.scalars(select(TriggerPoint).where(
                TriggerPoint.message_ts.is_not(None))).one_or_none()

    point = eventually(posted_point)
    assert (point.team_id, point.channel_id, point.message_ts) == ("T1", "C1",
                                                                    post.response["ts"])
    assert point.scope == {"region": ["EU"], "category": ["Snacks"]}
    assert point.gap_pct_at_post is not None and round(point.gap_pct_at_post, 1) == -12.5
    assert slack.violations == []


def test_unknown_value_is_told_only_to_the_caller(sim: SlackSim, slack: FakeSlack,
                                                  loaded: int) -> None:
    sim.command("region=Europ")
    [reply] = slack.wait_for("response_url")
    assert reply.args["response_type"] == "ephemeral"
    assert "Unknown region “Europ”. Did you mean “EU”?" in reply.args["text"]
    assert slack.calls_to("chat.postMessage") == []


def test_no_data_yet(sim: SlackSim, slack: FakeSlack, app_server: Running) -> None:
    sim.command("region=EU")
    [reply] = slack.wait_for("response_url")
    assert "No planning data has been loaded yet" in reply.args["text"]


def test_help_and_empty_text_answer_in_the_ack(sim: SlackSim, app_server: Running) -> None:
    for text in ("", "help", "HELP"):
        reply = sim.command(text)
        assert reply.status == 200
        body = reply.json()
        assert body["response_type"] == "ephemeral"
        assert "/gap region=EU" in _texts(body["blocks"])


def test_bad_syntax(sim: SlackSim, slack: FakeSlack, loaded: int) -> None:
    sim.command('region="EU')
    [reply] = slack.wait_for("response_url")
    assert "never closed" in reply.args["text"]


def test_unsigned_stale_or_tampered_requests_are_refused(sim: SlackSim, slack: FakeSlack,
                                                         app_server: Running,
                                                         loaded: int) -> None:
    body = b"command=%2Fgap&text=region%3DEU&team_id=T1&channel_id=C1&user_id=U1"
    form = "application/x-www-form-urlencoded"
    now = str(int(time.time()))
    stale = str(int(time.time()) - 6 * 60)
    before = refused(sim, "signature")
    assert sim.post(body, form, signature="").status == 401
    assert sim.post(body, form, signature="v0=" + "0" * 64).status == 401
    assert sim.post(body, form, timestamp=stale,
                    signature=sign("test-signing-secret", stale, body)).status == 401
    tampered = sign("test-signing-secret", now, body)
    assert sim.post(body + b"X", form, timestamp=now, signature=tampered).status == 401
    assert sim.post(body, form, signature=sign("other-secret", now, body)).status == 401
    assert refused(sim, "signature") == before + 5  # each counted, for an alert to see
    time.sleep(0.3)
    assert slack.calls_to("chat.postMessage") == []
    sessions = get_sessionmaker(app_server.settings.database_url)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(TriggerPoint)) == 0


def test_threshold_per_channel(sim: SlackSim, slack: FakeSlack, loaded: int) -> None:
    sim.command("threshold 15% floor=100K")
    [reply] = slack.wait_for("response_url")
    assert "|gap| ≥ 15%" in reply.args["text"] and "100K" in reply.args["text"]
    sim.command("region=EU category=Snacks")
    [_, private] = slack.wait_for("response_url", count=2)  # within the rule: only for me
    assert private.args["response_type"] == "ephemeral"
    assert "Within the trigger rule (|gap| ≥ 15%, |gap| ≥ 100K)" in _texts(
        private.args["blocks"])
    sim.command("region=EU category=Snacks", channel="C2")
    [post] = slack.wait_for("chat.postMessage")
    assert post.args["channel"] == "C2"
    assert "Crosses the trigger rule (|gap| ≥ 5%)" in _texts(post.args["blocks"])


def test_healthz(sim: SlackSim, app_server: Running) -> None:
    reply = sim.get("/healthz")
    assert (reply.status, reply.json()) == (200, {"status": "ok"})


def test_a_replayed_request_is_refused(sim: SlackSim, slack: FakeSlack, loaded: int) -> None:
    """Slack's signature stays valid for 5 minutes; a second delivery of the very same
    signed request (a replay) must not post a second trigger point."""
    body = (b"command=%2Fgap&text=region%3DEU+category%3DSnacks&team_id=T1&channel_id=C1"
            b"&user_id=U1&api_app_id=A0SOPGAP&response_url=" + slack.root_url.encode()
            + b"/response/9")
    form = "application/x-www-form-urlencoded"
    now = str(int(time.time()))
    signature = sign("test-signing-secret", now, body)
    before = refused(sim, "replay")
    assert sim.post(body, form, timestamp=now, signature=signature).status == 200
    assert sim.post(body, form, timestamp=now, signature=signature).status == 401
    assert refused(sim, "replay") == before + 1
    slack.wait_for("chat.postMessage")
    time.sleep(0.3)
    assert len(slack.calls_to("chat.postMessage")) == 1


def recorded_posts(db_url: str) -> int:
    with get_sessionmaker(db_url)() as session:
        return session.scalar(select(func.count()).select_from(TriggerPoint)
                              .where(TriggerPoint.message_ts.is_not(None))) or 0


def test_acks_do_not_wait_for_other_commands_work(db_url: str, slack: FakeSlack,
                                                  sample_table: PlanningTable,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With one work slot, three commands at once: each is acked at once; their gap maths
    (here slowed to 0.5 s) run one after the other, while their waits on a slow Slack
    (0.8 s each) overlap: a command lends its slot out while Slack answers."""
    store(session_factory(db_url), sample_table)
    slow_maths = commands.gap_report
    maths: list[tuple[float, float]] = []

    def gap_report(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        time.sleep(0.5)
        try:
            return slow_maths(*args, **kwargs)
        finally:
            maths.append((started, time.monotonic()))

    monkeypatch.setattr(commands, "gap_report", gap_report)
    slack.delay_next("chat.postMessage", 0.8, times=3)
    with serve_app(app_settings(db_url, slack, work_slots=1)) as running:
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(lambda c: sim.command("region=EU category=Snacks",
                                                          channel=c),
                                    ["C1", "C2", "C3"]))
        assert [r.status for r in replies] == [200] * 3
        assert max(r.elapsed for r in replies) < 0.4  # none waited for a slot
        eventually(lambda: recorded_posts(db_url) == 3, timeout=10)  # Slack answered each
        done = time.monotonic()
    # One slot: the maths ran one at a time …
    maths.sort()
    assert len(maths) == 3
    assert all(later[0] >= earlier[1] - 0.01 for earlier, later in itertools.pairwise(maths))
    # … but not the Slack calls: holding the slot across them would take ≥ 3 × 1.3 s.
    assert done - maths[0][0] < 3.0
