"""``/gap meeting|watch|unwatch|watches|digest`` over signed HTTP."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from sop_core.db import get_sessionmaker
from sop_core.models import ChannelSettings, Notification, TriggerPoint, Watch
from tests.e2e.conftest import Running
from tests.e2e.slack_sim import SlackSim
from tests.e2e.waiting import eventually
from tests.fakeslack import FakeSlack

# Far enough ahead that "the next meetings" do not depend on the day the tests run.
MEETING = "2031-12-08 10:00 tz=Europe/Paris every=month lead=24h"


def reply_to(sim: SlackSim, slack: FakeSlack, text: str, **kwargs: str) -> str:
    """The ephemeral answer to a command (the n-th response_url post)."""
    before = len(slack.calls_to("response_url"))
    reply = sim.command(text, **kwargs)
    assert reply.status == 200 and reply.elapsed < 3.0
    answer = slack.wait_for("response_url", count=before + 1)[before]
    assert answer.args["response_type"] == "ephemeral"
    return answer.args["text"]


def test_meeting_set_show_and_off(sim: SlackSim, slack: FakeSlack,
                                  app_server: Running) -> None:
    text = reply_to(sim, slack, f"meeting {MEETING}")
    assert text.splitlines()[0] == (
        "*S&amp;OP meeting set for this channel:* every month on the 8th, 10:00 Europe/Paris; "
        "the digest is posted here 24h before each meeting (on the Friday before when that is a "
        "weekend).")
    assert ("• Mon 8 Dec 2031, 10:00 CET (digest Fri 5 Dec 2031, 10:00 CET)\n"
            "• Thu 8 Jan 2032, 10:00 CET (digest Wed 7 Jan 2032, 10:00 CET)\n"
            "• Sun 8 Feb 2032, 10:00 CET (digest Fri 6 Feb 2032, 10:00 CET)") in text
    sessions = get_sessionmaker(app_server.settings.database_url)
    with sessions() as session:
        row = session.get(ChannelSettings, ("T1", "C1"))
        assert row is not None
        assert (row.meeting_local, row.meeting_tz, row.meeting_every,
                row.meeting_lead_minutes) == (datetime(2031, 12, 8, 10, 0), "Europe/Paris",
                                              "month", 1440)
    shown = reply_to(sim, slack, "meeting")
    assert shown.startswith("*This channel's S&amp;OP meeting:* every month on the 8th")
    # Another workspace's channel with the same id has no meeting.
    assert reply_to(sim, slack, "meeting", team="T2").startswith(
        "No S&amp;OP meeting is set for this channel.")
    assert reply_to(sim, slack, "meeting off").startswith("No S&amp;OP meeting for this channel")
    assert reply_to(sim, slack, "meeting").startswith("No S&amp;OP meeting is set")
    with sessions() as session:
        row = session.get(ChannelSettings, ("T1", "C1"))
        assert row is not None and row.meeting_local is None
    assert slack.calls_to("chat.postMessage") == []
    assert slack.violations == []


@pytest.mark.parametrize(("text", "message"), [
    ("meeting 2031-12-08 10:00 tz=Mars/Olympus", "tz=“Mars/Olympus” is not a time zone"),
    ("meeting 2031-13-08 10:00", "“2031-13-08” is not a date in the calendar"),
    ("meeting next tuesday", "“next” is not a date: use YYYY-MM-DD"),
    ("meeting 2031-12-08 10:00 every=year", "every=“year” is not a recurrence"),
    ("meeting 2031-12-08 10:00 lead=forever", "lead=“forever” is not a duration"),
    ("meeting 2031-12-08", "add the meeting's time of day"),
])
def test_bad_meeting_input_is_named(sim: SlackSim, slack: FakeSlack, app_server: Running,
                                    text: str, message: str) -> None:
    assert message in reply_to(sim, slack, text)
    with get_sessionmaker(app_server.settings.database_url)() as session:
        assert session.scalars(select(ChannelSettings)).all() == []


def test_watch_posts_the_current_trigger_points_and_can_be_listed_and_removed(
        sim: SlackSim, slack: FakeSlack, app_server: Running, loaded: int) -> None:
    added = reply_to(sim, slack, "watch region=EU by=category")
    assert added.startswith("This channel now watches *region=EU · by category · default "
                            "metric · fy*.")
    # EU is within the rule (-1.7%); its Snacks cross it (-12.5%): posted at once.
    [post] = slack.wait_for("chat.postMessage")
    assert post.args["channel"] == "C1"
    assert post.args["blocks"][0]["text"]["text"] == "Gap -12.5%: region=EU · category=Snacks"
    sessions = get_sessionmaker(app_server.settings.database_url)

    def posted() -> TriggerPoint | None:
        with sessions() as session:
            return session.scalars(select(TriggerPoint).where(
                TriggerPoint.message_ts.is_not(None))).one_or_none()

    point = eventually(posted)
    assert point.watch_id is not None and point.created_by is None

    listed = reply_to(sim, slack, "watches")
    assert "• region=EU · by category · default metric · fy" in listed
    assert reply_to(sim, slack, "watches", channel="C2").startswith(
        "This channel watches no scope.")
    assert reply_to(sim, slack, "watches", team="T2").startswith(
        "This channel watches no scope.")
    assert "Unknown region “Europ”. Did you mean “EU”?" in reply_to(sim, slack,
                                                                   "watch region=Europ")
    assert reply_to(sim, slack, "unwatch region=NA").startswith(
        "This channel was not watching that scope.")
    assert reply_to(sim, slack, "unwatch region=eu").startswith(
        "This channel no longer watches *region=EU · by category · default metric · fy*.")
    with sessions() as session:
        assert session.scalars(select(Watch)).all() == []
        # The trigger point it posted stays, for its conversation.
        assert session.scalars(select(TriggerPoint)).one().watch_id is None
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert slack.violations == []


def test_watch_before_any_data(sim: SlackSim, slack: FakeSlack, app_server: Running) -> None:
    text = reply_to(sim, slack, "watch region=EU")
    assert "No planning data is loaded yet: I will check it at the first load" in text
    assert slack.calls_to("chat.postMessage") == []


def test_digest_now_is_posted_for_the_channel(sim: SlackSim, slack: FakeSlack,
                                              app_server: Running, loaded: int) -> None:
    sim.command("region=EU category=Snacks")
    slack.wait_for("chat.postMessage")
    sim.command("digest")
    digest = slack.wait_for("chat.postMessage", count=2)[1]
    assert digest.args["channel"] == "C1"
    blocks = digest.args["blocks"]
    assert blocks[0]["text"]["text"] == "Gap digest"
    assert blocks[2]["text"]["text"].startswith(
        "*Open gaps (1)*\n• *region=EU · category=Snacks* · revenue fy: *-12.5%* (-464K) · "
        "posted at -12.5% · 0% covered: 464K (100%) not yet covered by any action")
    # With a meeting, the digest names it; asking twice posts twice (each is asked for).
    reply_to(sim, slack, f"meeting {MEETING}")
    sim.command("digest")
    third = slack.wait_for("chat.postMessage", count=3)[2]
    assert third.args["blocks"][0]["text"]["text"] == (
        "Pre-meeting digest · S&OP Mon 8 Dec 2031, 10:00 (Europe/Paris)")
    sessions = get_sessionmaker(app_server.settings.database_url)

    def sent_kinds() -> list[str]:
        with sessions() as session:
            kinds = list(session.scalars(select(Notification.kind).where(
                Notification.status == "sent")))
        assert kinds == ["digest_now", "digest_now"]
        return kinds

    eventually(sent_kinds)
    assert "takes no options" in reply_to(sim, slack, "digest please")
    assert slack.violations == []
