"""Who sees what, over signed HTTP against FakeSlack's channel state: every surface ×
{member, non-member} × {public, private, Slack Connect}, and no private record leaks.

Three channels hold one past gap each (with a confirmed root cause and an action of
someone else): public ``CPUB``, private ``GPRIV`` and Slack Connect ``CEXT``. ``UIN`` is
in all three; ``UOUT`` in none (he spoke in each gap's thread before he left). Both are
in the public ``CVIEW``, where they type their commands.

- A person's own view (history, ``/gap actions all``, App Home, its history search):
  a record shows iff its channel is open (public, not Slack Connect) or they are in it.
- What is posted or uploaded to a channel X (exports, similar past gaps, digests): a
  record shows iff it is X's own, or its channel is open.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.ids import INPUT, ActionId, BlockId, CallbackId
from sop_core.db import get_sessionmaker, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import Action, RootCauseNote, Status, TriggerPoint
from sop_core.services.data import store
from sop_core.services.history import search
from tests.e2e.conftest import SIGNING_SECRET, Running, app_settings, serve_app
from tests.e2e.slack_sim import SlackSim, state_value
from tests.e2e.test_threads import in_thread, text_of
from tests.e2e.waiting import eventually
from tests.fakeslack import Call, FakeSlack

SOURCES = ("CPUB", "GPRIV", "CEXT")
OPEN = {"CPUB"}
VIEW = "CVIEW"
MEMBER, OUTSIDER, OWNER = "UIN", "UOUT", "U3"
_serial = itertools.count(1)


def markers(source: str) -> tuple[str, ...]:
    """Text only that source's record carries: its scope value, root cause, action."""
    low = source.lower()
    return (f"cat-{low}", f"secret-{low}", f"action-{low}")


def leaked(text: str) -> set[str]:
    """The sources whose records appear in ``text``."""
    return {s for s in SOURCES if any(m in text for m in markers(s))}


def record(sessions: sessionmaker[Session], snapshot_id: int, channel: str, *,
           scope: dict[str, list[str]] | None = None, summary: str | None = None,
           days_ago: int = 30) -> int:
    """An open gap posted in ``channel``, its root cause confirmed, an action of U3's."""
    low = channel.lower()
    scope = scope or {"region": ["EU"], "category": [f"cat-{low}"]}
    posted = datetime.now(UTC) - timedelta(days=days_ago)
    with sessions.begin() as session:
        point = TriggerPoint(
            team_id="T1", channel_id=channel, message_ts=f"1690000000.{next(_serial):06d}",
            scope=scope, scope_key=" ".join(
                f"{d}={','.join(sorted(v.casefold() for v in vs))}"
                for d, vs in sorted(scope.items())),
            metric="revenue", horizon="fy", created_by=OWNER,
            posted_snapshot_id=snapshot_id, snapshot_id=snapshot_id, plan_at_post=3.7e6,
            gap_at_post=-600_000.0, gap_pct_at_post=-16.2, plan=3.7e6, outlook=3.1e6,
            gap=-600_000.0, gap_pct=-16.2, status=Status.OPEN, created_at=posted,
            root_cause_category="promotion" if summary != "" else None,
            root_cause_summary=summary if summary is not None else f"secret-{low}",
            root_cause_confirmed_by="U2", root_cause_confirmed_at=posted)
        session.add(point)
        session.flush()
        for user in (MEMBER, OUTSIDER):  # both spoke in its thread once
            session.add(RootCauseNote(trigger_point_id=point.id, team_id="T1", user_id=user,
                                      message_ts=f"1690000001.{next(_serial):06d}",
                                      text="a reply"))
        session.add(Action(
            team_id="T1", trigger_point_id=point.id, channel_id=channel, creator_id="U2",
            owner_id=OWNER, title=f"action-{low}", metric_name="revenue", baseline=0.0,
            target=1.0, expected_impact=100_000, status=Status.OPEN,
            due_date=date.today() - timedelta(days=2)))
        return point.id


@pytest.fixture
def channels(slack: FakeSlack) -> FakeSlack:
    slack.add_channel("CPUB", members={MEMBER})
    slack.add_channel("GPRIV", private=True, members={MEMBER})
    slack.add_channel("CEXT", ext_shared=True, members={MEMBER})
    slack.add_channel(VIEW, members={MEMBER, OUTSIDER})
    return slack


@pytest.fixture
def world(channels: FakeSlack, app_server: Running, loaded: int) -> Iterator[int]:
    sessions = get_sessionmaker(app_server.settings.database_url)
    for source in SOURCES:
        record(sessions, loaded, source)
    yield loaded
    assert channels.violations == []


def expected_for_person(user: str) -> set[str]:
    return set(SOURCES) if user == MEMBER else OPEN


def expected_in_channel(channel: str) -> set[str]:
    return OPEN | ({channel} & set(SOURCES))


def ephemeral_after(slack: FakeSlack, before: int) -> Call:
    return slack.wait_for("response_url", count=before + 1, timeout=10)[before]


# ------------------------------------------------------------------ a person's own view

@pytest.mark.parametrize("user", [MEMBER, OUTSIDER])
@pytest.mark.parametrize("command", ["history region=EU", "actions all"])
def test_what_a_person_is_told(command: str, user: str, sim: SlackSim, channels: FakeSlack,
                               world: int) -> None:
    sim.command(command, user=user, channel=VIEW)
    reply = ephemeral_after(channels, 0)
    text = json.dumps(reply.args, ensure_ascii=False)
    assert reply.args.get("response_type") == "ephemeral"
    assert leaked(text) == expected_for_person(user), text


@pytest.mark.parametrize("user", [MEMBER, OUTSIDER])
def test_the_app_home_and_its_search(user: str, sim: SlackSim, channels: FakeSlack,
                                     world: int) -> None:
    sim.event({"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home",
               "event_ts": f"{time.time():.6f}"})
    [home] = channels.wait_for("views.publish", timeout=10)
    assert leaked(json.dumps(home.args["view"])) == expected_for_person(user)
    modal = {"callback_id": CallbackId.HISTORY_SEARCH, "id": "V1", "blocks": []}
    values = {BlockId.HISTORY_FILTERS: {INPUT: state_value("plain_text_input", "region=EU")}}
    answer = sim.view_submission(modal, values, user=user).json()
    assert answer["response_action"] == "update"
    assert leaked(json.dumps(answer["view"])) == expected_for_person(user)
    # A typo's "Did you mean" never names a value only a hidden record has.
    typo = sim.view_submission(modal, {BlockId.HISTORY_FILTERS: {INPUT: state_value(
        "plain_text_input", "category=cat-gpri")}}, user=user).json()
    assert ("cat-gpriv" in json.dumps(typo)) == (user == MEMBER)


def test_leaving_a_private_channel_hides_it_at_once(sim: SlackSim, channels: FakeSlack,
                                                    world: int) -> None:
    sim.command("history region=EU", user=MEMBER, channel=VIEW)
    assert "GPRIV" in leaked(json.dumps(ephemeral_after(channels, 0).args))
    channels.channels["GPRIV"].members = set()
    sim.event({"type": "member_left_channel", "user": MEMBER, "channel": "GPRIV",
               "channel_type": "G", "team": "T1", "event_ts": f"{time.time():.6f}"})
    time.sleep(0.3)  # the event is handled after its ack
    sim.command("history region=EU", user=MEMBER, channel=VIEW)
    assert "GPRIV" not in leaked(json.dumps(ephemeral_after(channels, 1).args))


def test_a_channel_shared_with_another_organisation_closes_at_once(
        sim: SlackSim, channels: FakeSlack, world: int) -> None:
    sim.command("export gaps", user=OUTSIDER, channel=VIEW)
    channels.wait_for("files.completeUploadExternal", timeout=30)
    [csv_file] = [f for f in channels.files.values() if f.filename.endswith(".csv")]
    assert leaked(channels.uploads[csv_file.id].decode("utf-8-sig")) == {"CPUB"}
    channels.channels["CPUB"].is_ext_shared = True  # now Slack Connect
    sim.event({"type": "channel_shared", "connected_team_id": "TOTHER", "channel": "CPUB",
               "event_ts": f"{time.time():.6f}"})
    time.sleep(0.3)  # the event is handled after its ack
    sim.command("export gaps", user=OUTSIDER, channel=VIEW)
    told = ephemeral_after(channels, 0)
    assert "no gaps recorded yet" in told.args["text"], told.args
    assert "can be exported from that channel" in told.args["text"]
    assert len(channels.calls_to("files.completeUploadExternal")) == 1


# ------------------------------------------------------------------ what a channel gets

@pytest.mark.parametrize("where", [*SOURCES, VIEW])
@pytest.mark.parametrize("kind", ["gaps", "actions"])
def test_exports_hold_what_everyone_in_the_channel_may_see(
        kind: str, where: str, sim: SlackSim, channels: FakeSlack, world: int) -> None:
    sim.command(f"export {kind}", user=MEMBER, channel=where)
    [complete] = channels.wait_for("files.completeUploadExternal", timeout=30)
    assert complete.args["channel_id"] == where
    [content] = [channels.uploads[f.id] for f in channels.files.values()
                 if f.filename.endswith(".csv")]
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert leaked(json.dumps(rows)) == expected_in_channel(where)


@pytest.mark.parametrize("where", [*SOURCES, VIEW])
def test_similar_past_gaps_in_a_thread(where: str, sim: SlackSim, channels: FakeSlack,
                                       app_server: Running, world: int) -> None:
    sessions = get_sessionmaker(app_server.settings.database_url)
    new = record(sessions, world, where, scope={"region": ["EU"]}, summary="", days_ago=0)
    with sessions() as session:
        ts = session.get(TriggerPoint, new).message_ts  # type: ignore[union-attr]
    sim.button(ActionId.DISCUSS, str(new), channel=where, message_ts=ts, user=MEMBER)
    [prompt] = channels.wait_for("chat.postMessage", predicate=in_thread(ts), timeout=10)
    assert prompt.args["channel"] == where
    assert leaked(text_of(prompt)) == expected_in_channel(where)


@pytest.mark.parametrize("where", SOURCES)
def test_a_digest_holds_the_channels_own_records(where: str, sim: SlackSim,
                                                 channels: FakeSlack, world: int) -> None:
    sim.command("digest", user=MEMBER, channel=where)
    [digest] = channels.wait_for("chat.postMessage", timeout=10,
                                 predicate=lambda c: c.args.get("channel") == where)
    assert leaked(text_of(digest)) == {where}


# ------------------------------------------------------------------ fail closed

def test_when_slack_cannot_say_nothing_is_shown(sim: SlackSim, channels: FakeSlack,
                                                world: int) -> None:
    channels.fail_next("users.conversations", status=500, times=5)
    sim.command("history region=EU", user=OUTSIDER, channel=VIEW)
    reply = ephemeral_after(channels, 0)
    text = json.dumps(reply.args)
    assert leaked(text) == set()
    assert "Slack could not tell me just now who may see which channel" in text
    assert "Try again in a minute" in text


def test_the_command_line_stays_unrestricted(app_server: Running, world: int) -> None:
    found = search(get_sessionmaker(app_server.settings.database_url), team_id="T1",
                   filters="region=EU")
    assert {g.channel_id for g in found.gaps} == set(SOURCES)


# ------------------------------------------------------------------ presence

def test_the_bot_joins_a_public_channel_before_posting_and_never_posts_elsewhere(
        db_url: str, slack: FakeSlack, loaded_anywhere: Callable[[Running], int]) -> None:
    slack.add_channel("CNEW", members={MEMBER}, bot_member=False)
    slack.add_channel("GNEW", private=True, members={MEMBER}, bot_member=False)
    with serve_app(app_settings(db_url, slack)) as running:
        loaded_anywhere(running)
        sim = SlackSim(running.url, SIGNING_SECRET, slack.root_url)
        sim.command("region=EU category=Snacks", user=MEMBER, channel="CNEW")
        eventually(lambda: [c for c in slack.calls_to("chat.postMessage") if c.ok], timeout=15)
        methods = [c.method for c in slack.calls if c.args.get("channel") == "CNEW"]
        assert methods[:3] == ["conversations.info", "conversations.join", "chat.postMessage"]
        sim.command("region=EU category=Snacks", user=MEMBER, channel="GNEW")
        slack.wait_for("response_url", count=1, timeout=10,
                       predicate=lambda c: "invite @sopgap first" in str(c.args))
        assert not [c for c in slack.calls if c.args.get("channel") == "GNEW"
                    and c.method in ("chat.postMessage", "conversations.join")]
    # No call of any kind was refused as not_in_channel: the bot never tried.
    assert not [c for c in slack.calls if c.response.get("error") == "not_in_channel"]
    assert slack.violations == []


@pytest.fixture
def loaded_anywhere(sample_table: PlanningTable) -> Callable[[Running], int]:
    """Load the sample data into the database of an app started in the test itself."""
    def load(running: Running) -> int:
        return store(session_factory(running.settings.database_url), sample_table).snapshot_id
    return load
