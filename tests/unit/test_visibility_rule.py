"""The one rule of who sees what (sop_core.visibility), and the bot's cache of Slack's
answers it is built from (bot.directory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_sdk import WebClient

from bot.directory import Directory, SlackCannotSay, channel_audience, person_audience
from sop_core.db import get_engine, get_sessionmaker, session_factory
from sop_core.loading import PlanningTable
from sop_core.models import TriggerPoint
from sop_core.services.data import store
from sop_core.slack_answers import KeptAnswers
from sop_core.visibility import ChannelFacts, ChannelKind, Visibility, for_channel, for_person
from tests.fakeslack import FakeSlack

PUBLIC = ChannelFacts("CPUB", ChannelKind.PUBLIC)
OTHER_PUBLIC = ChannelFacts("CPUB2", ChannelKind.PUBLIC)
PRIVATE = ChannelFacts("GPRIV", ChannelKind.PRIVATE)
CONNECT = ChannelFacts("CEXT", ChannelKind.PUBLIC, ext_shared=True)
DM = ChannelFacts("DU1", ChannelKind.IM)
GROUP_DM = ChannelFacts("GMPIM", ChannelKind.MPIM)
ALL = [PUBLIC, OTHER_PUBLIC, PRIVATE, CONNECT, DM, GROUP_DM]


@pytest.mark.parametrize("here", [f.id for f in ALL])
def test_a_channel_sees_itself_and_open_public_channels_only(here: str) -> None:
    seen = for_channel(here, ALL)
    assert seen.channels == {here, "CPUB", "CPUB2"}
    assert seen.user_id is None
    # Nothing of a private channel, a DM or a Slack Connect channel anywhere else.
    for closed in (PRIVATE, CONNECT, DM, GROUP_DM):
        assert seen.sees_channel(closed.id) == (closed.id == here)
    # A channel's audience has no person: an action shows by its channel alone.
    assert seen.sees_action(PRIVATE.id, owner_id="U1", creator_id="U1") == (here == "GPRIV")


def test_a_person_sees_their_channels_open_channels_and_their_own_actions() -> None:
    seen = for_person("U1", member_of={"GPRIV"}, facts=ALL)
    assert seen.channels == {"GPRIV", "CPUB", "CPUB2"}
    assert seen.sees_channel("GPRIV") and not seen.sees_channel("CEXT")
    # An action in a channel they cannot see: only if they own it or created it.
    assert seen.sees_action("CEXT", owner_id="U1", creator_id="U9")
    assert seen.sees_action("CEXT", owner_id="U9", creator_id="U1")
    assert not seen.sees_action("CEXT", owner_id="U9", creator_id="U9")
    assert not for_person("U2", member_of=set(), facts=ALL).sees_channel("GPRIV")


def test_slack_connect_channels_are_closed_even_to_the_workspace() -> None:
    assert not CONNECT.open_to_workspace and PUBLIC.open_to_workspace
    assert for_person("U1", member_of={"CEXT"}, facts=ALL).sees_channel("CEXT")
    assert not for_person("U2", member_of=set(), facts=ALL).sees_channel("CEXT")


@pytest.mark.parametrize(("channel", "kind", "shared"), [
    ({"id": "C1", "is_channel": True, "is_private": False}, ChannelKind.PUBLIC, False),
    ({"id": "G1", "is_group": True, "is_private": True}, ChannelKind.PRIVATE, False),
    ({"id": "C2", "is_channel": True, "is_private": False, "is_ext_shared": True},
     ChannelKind.PUBLIC, True),
    ({"id": "C3", "is_channel": True, "is_private": False, "is_pending_ext_shared": True},
     ChannelKind.PUBLIC, True),
    ({"id": "D1", "is_im": True, "is_private": True}, ChannelKind.IM, False),
    ({"id": "G2", "is_mpim": True, "is_private": True}, ChannelKind.MPIM, False),
    ({"id": "X1"}, ChannelKind.PRIVATE, False),  # an unknown shape is never open
])
def test_facts_from_slack(channel: dict[str, object], kind: ChannelKind, shared: bool) -> None:
    facts = ChannelFacts.from_slack(channel)
    assert (facts.kind, facts.ext_shared) == (kind, shared)


def test_no_restriction_is_a_visibility_of_nothing_only_when_asked() -> None:
    nothing = Visibility(channels=frozenset())
    assert not nothing.sees_channel("CPUB") and not nothing.sees_channel(None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("kept_in", ["process", "database"])
def test_directory_caches_for_a_while_and_forgets_on_events(
        fake_slack: FakeSlack, kept_in: str, request: pytest.FixtureRequest) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.url)
    fake_slack.add_channel("GPRIV", private=True, members={"U1"})
    clock = Clock()
    directory = Directory(seconds=60, clock=clock)
    if kept_in == "database":
        directory.keep_in(_kept_answers(request.getfixturevalue("sqlite_url")))
    assert directory.member_of(client, "U1") == {"GPRIV"}
    info = directory.channel(client, "GPRIV")
    assert info is not None and info.facts.kind is ChannelKind.PRIVATE and info.bot_member
    fake_slack.channels["GPRIV"].members = set()  # U1 left
    assert directory.member_of(client, "U1") == {"GPRIV"}  # cached
    assert len(fake_slack.calls_to("users.conversations")) == 1
    directory.forget(channel="GPRIV", user="U1")  # member_left_channel
    assert directory.member_of(client, "U1") == frozenset()
    fake_slack.channels["GPRIV"].members = {"U1"}
    clock.now = 61  # expired without any event
    assert directory.member_of(client, "U1") == {"GPRIV"}
    assert directory.channel(client, "GPRIV") == info  # asked again after the forget
    fake_slack.channels["GPRIV"].bot_member = False
    clock.now = 61 + 299
    assert directory.channel(client, "GPRIV") == info  # facts are kept longer
    clock.now = 61 + 300
    assert directory.channel(client, "GPRIV") is None  # Slack: channel_not_found
    fake_slack.channels["GPRIV"].bot_member = True
    directory.forget(channel="GPRIV")  # e.g. member_joined_channel of the bot
    assert directory.channel(client, "GPRIV") == info


def _kept_answers(url: str) -> KeptAnswers:
    session_factory(url)  # migrated
    return KeptAnswers(get_engine(url))


def test_directories_of_two_processes_share_answers_and_changes(
        fake_slack: FakeSlack, db_url: str) -> None:
    """Two web workers (or a worker and its restarted successor) on one database: what
    one was told, the other is not asked again; a change one hears of reaches both."""
    client = WebClient(token="xoxb-test", base_url=fake_slack.url)
    fake_slack.add_channel("GPRIV", private=True, members={"U1"})
    worker, other = Directory(), Directory()
    worker.keep_in(_kept_answers(db_url))
    other.keep_in(_kept_answers(db_url))
    assert worker.member_of(client, "U1") == {"GPRIV"}
    assert worker.facts(client, ["GPRIV", "DU1"]) == [
        ChannelFacts("DU1", ChannelKind.IM), ChannelFacts("GPRIV", ChannelKind.PRIVATE)]
    assert other.member_of(client, "U1") == {"GPRIV"}
    assert other.channel(client, "GPRIV") == worker.channel(client, "GPRIV")
    assert len(fake_slack.calls_to("users.conversations")) == 1
    assert len(fake_slack.calls_to("conversations.info")) == 1
    fake_slack.channels["GPRIV"].members = set()
    other.forget(channel="GPRIV", user="U1")  # member_left_channel, heard by the other
    assert worker.member_of(client, "U1") == frozenset()  # not a minute later: now
    assert len(fake_slack.calls_to("users.conversations")) == 2
    worker.channel(client, "GPRIV")
    assert len(fake_slack.calls_to("conversations.info")) == 2
    other.forget_people()  # e.g. a channel archived
    assert worker.member_of(client, "U1") == frozenset()
    assert len(fake_slack.calls_to("users.conversations")) == 3


@pytest.mark.parametrize("kept_in", ["process", "database"])
def test_the_bots_join_is_kept_without_asking_slack(
        fake_slack: FakeSlack, kept_in: str, request: pytest.FixtureRequest) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.url)
    fake_slack.add_channel("CPUB", bot_member=False)
    directory = Directory()
    if kept_in == "database":
        directory.keep_in(_kept_answers(request.getfixturevalue("sqlite_url")))
    before = directory.channel(client, "CPUB")
    assert before is not None and not before.bot_member
    directory.joined(client, "CPUB")
    after = directory.channel(client, "CPUB")
    assert after is not None and after.bot_member and after.facts == before.facts
    assert len(fake_slack.calls_to("conversations.info")) == 1
    directory.joined(client, "COTHER")  # nothing known about it: nothing made up
    directory.channel(client, "COTHER")
    assert len(fake_slack.calls_to("conversations.info")) == 2  # asked, not taken as joined


def test_a_database_that_does_not_answer_leaves_slack_to_answer(
        fake_slack: FakeSlack, tmp_path: Path) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.url)
    fake_slack.add_channel("GPRIV", private=True, members={"U1"})
    directory = Directory()
    # A database without the tables: every statement fails, as with one that is away.
    directory.keep_in(KeptAnswers(get_engine(f"sqlite:///{tmp_path / 'no.db'}")))
    for _ in range(2):
        info = directory.channel(client, "GPRIV")
        assert info is not None and info.facts.kind is ChannelKind.PRIVATE
        assert directory.member_of(client, "U1") == {"GPRIV"}
    directory.forget(channel="GPRIV")  # logged, not raised: the event is still answered
    assert len(fake_slack.calls_to("conversations.info")) == 2  # nothing kept: asked again


def test_directory_reads_every_page(fake_slack: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.url)
    for n in range(1203):  # more than one page of 1000
        fake_slack.add_channel(f"C{n:05d}", members={"U1"})
    assert len(Directory().member_of(client, "U1")) == 1203
    assert len(fake_slack.calls_to("users.conversations")) == 2


def test_no_answer_from_slack_refuses_rather_than_guesses(
        sqlite_url: str, sample_table: PlanningTable) -> None:
    """A lost connection (nothing listens on the port) fails closed, like a refusal."""
    sessions = get_sessionmaker(sqlite_url)
    client = WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/", timeout=1)
    with pytest.raises(SlackCannotSay, match="Try again in a minute"):
        person_audience(client, sessions, team_id="T1", user_id="U1")
    snapshot = store(sessions, sample_table).snapshot_id
    with sessions.begin() as session:  # a record elsewhere: the channel's facts are needed
        session.add(TriggerPoint(
            team_id="T1", channel_id="CELSE", message_ts="1.1", scope={}, scope_key="",
            posted_snapshot_id=snapshot, snapshot_id=snapshot,
            metric="revenue", horizon="fy", plan_at_post=1.0, gap_at_post=1.0, plan=1.0,
            outlook=1.0, gap=1.0))
    with pytest.raises(SlackCannotSay):
        channel_audience(client, sessions, team_id="T1", channel_id="CHERE")
