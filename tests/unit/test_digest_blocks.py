"""The digest message: every part of the pack, within Slack's limits, text escaped."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from slack_sdk.models.blocks import Block

from bot.blocks.digest import coverage_line, digest_blocks, digest_text
from bot.blocks.meeting import meeting_text, recurrence
from sop_core.gaps import TriggerRule
from sop_core.meetings import Every, Meeting
from sop_core.services.coverage import coverage
from sop_core.services.digests import (
    ActionLine,
    Digest,
    GapLine,
    Listed,
    MetricCoverage,
    RootCauseLine,
    _coverage_totals,
    _decisions,
)
from tests.fakeslack.checks import block_problems

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TODAY = date(2026, 12, 7)


def gap(i: int, *, gap: float = -400_000.0, impacts: tuple[float, ...] = (100_000.0,),
        new: bool = False, triggered: bool = True, confirmed: bool = False) -> GapLine:
    return GapLine(
        id=i, scope={"region": [f"R{i} <!channel> & co"]}, metric="revenue", horizon="fy",
        message_ts=f"1.{i}", gap=gap, gap_pct=gap / 40_000.0, triggered=triggered,
        previous_gap=gap + 50_000, previous_gap_pct=(gap + 50_000) / 40_000.0, new=new,
        coverage=coverage(gap, impacts), root_cause_category="demand" if confirmed else None,
        root_cause_confirmed=confirmed)


def action(i: int, *, due: date, realised: float | None = None) -> ActionLine:
    return ActionLine(id=i, title=f"Action {i}: win back <b>listings</b> & promo " + "x" * 200,
                      owner_id=f"U{i:04d}", due_date=due, expected_impact=50_000.0,
                      realised_impact=realised, gap_label={"region": ["EU"]},
                      days_overdue=max((TODAY - due).days, 0))


def digest(**overrides: object) -> Digest:
    gaps = [gap(i) for i in range(3)]
    values: dict[str, object] = {
        "team_id": "T1", "channel_id": "C1", "now": NOW, "tz": "Europe/Paris",
        "meeting_at": datetime(2026, 12, 8, 9, 0, tzinfo=UTC),
        "following_meeting_at": datetime(2027, 1, 8, 9, 0, tzinfo=UTC),
        "since": datetime(2026, 11, 7, 9, 0, tzinfo=UTC),
        "lookback_from": datetime(2026, 11, 7, 9, 0, tzinfo=UTC), "snapshot_id": 7,
        "baseline_snapshot_id": 5, "as_of": 2026 * 12 + 7, "rule": TriggerRule(5.0, 0.0),
        "gaps": Listed(tuple(gaps), 3), "coverage": _coverage_totals(gaps),
        "due_until": date(2027, 1, 8), "due_soon": Listed((), 0), "overdue": Listed((), 0),
        "completed": Listed((), 0), "root_causes": Listed((), 0),
        "decisions": _decisions(gaps, Listed((), 0))}
    values.update(overrides)
    return Digest(**values)  # type: ignore[arg-type]


def dicts(blocks: list[Block]) -> list[dict]:
    return [b.to_dict() for b in blocks]  # to_dict() validates Slack's limits


def text_of(blocks: list[Block]) -> str:
    return json.dumps(dicts(blocks), ensure_ascii=False)


def sections(blocks: list[Block]) -> list[str]:
    return [d["text"]["text"] for d in dicts(blocks) if d["type"] == "section"]


def test_every_part_of_the_pack_is_there() -> None:
    done = action(1, due=date(2026, 11, 20), realised=30_000.0)
    overdue = action(2, due=date(2026, 11, 1))
    soon = action(3, due=date(2026, 12, 20))
    cause = RootCauseLine(point_id=1, scope={"region": ["EU"]}, metric="revenue",
                          category="demand", summary="Lost listings at <two> retailers",
                          confirmed_by="U9")
    blocks = digest_blocks(digest(completed=Listed((done,), 1), overdue=Listed((overdue,), 1),
                                  due_soon=Listed((soon,), 1),
                                  root_causes=Listed((cause,), 1),
                                  decisions=_decisions([gap(0)], Listed((overdue,), 1))))
    texts = sections(blocks)
    header = dicts(blocks)[0]["text"]["text"]
    assert header == "Pre-meeting digest · S&OP Tue 8 Dec, 10:00 (Europe/Paris)"
    assert texts[0].startswith("*Open gaps (3)*\n• *region=R0 &lt;!channel&gt; &amp; co* · "
                               "revenue fy: *-10.0%* (-400K) · moved from -8.8% (-50.0K) "
                               "since the last digest · 25% covered by 1 open action: "
                               "300K (75%) not yet covered")
    assert texts[1] == ("*Coverage by actions*\n• *revenue* fy (3 open gaps, |gap| 1.20M): 300K "
                        "(25%) covered by actions · *900K (75%) not yet covered*")
    assert "how to close the 300K (75%) no action covers yet" in texts[2]
    assert "agree the root cause" in texts[2]
    assert "is 36 days overdue: re-plan, reassign or drop it" in texts[2]
    assert texts[3].startswith("*Overdue (1)*\n• “Action 2: win back &lt;b&gt;listings"
                               "&lt;/b&gt; &amp; promo xxx")
    assert "xxx…” · " in texts[3]  # long titles are cut
    assert "<@U0002> · due Sun 1 Nov (overdue by 36 days)" in texts[3]
    assert texts[4].startswith("*Due before the following meeting, by Fri 8 Jan 2027 (1)*")
    assert "due Sun 20 Dec (in 13 days) · expected impact +50.0K · region=EU" in texts[4]
    assert texts[5].startswith("*Completed since the last digest (Sat 7 Nov) (1)*")
    assert "realised +30.0K of +50.0K expected (60%)" in texts[5]
    assert texts[6] == ("*Root causes confirmed since the last digest (Sat 7 Nov) (1)*\n"
                        "• *region=EU* (revenue): Demand: Lost listings at &lt;two&gt; "
                        "retailers · confirmed by <@U9>")
    assert "<!channel>" not in text_of(blocks)
    assert block_problems(dicts(blocks), 50) == []
    assert digest_text(digest()) == ("Pre-meeting digest · S&amp;OP Tue 8 Dec, 10:00 "
                                     "(Europe/Paris): 3 open gaps, 0 overdue actions, "
                                     "0 due soon, 0 completed")


def test_two_hundred_actions_stay_within_slacks_limits() -> None:
    many = tuple(action(i, due=date(2026, 11, 1) + timedelta(days=i % 30)) for i in range(200))
    gaps = [gap(i, gap=-(i + 1) * 10_000.0, impacts=(1_000.0,) * 5) for i in range(200)]
    blocks = digest_blocks(digest(
        gaps=Listed(tuple(gaps[:50]), 200), coverage=_coverage_totals(gaps),
        overdue=Listed(many[:50], 200), due_soon=Listed(many[:50], 200),
        completed=Listed(many[:50], 200),
        decisions=_decisions(gaps, Listed(many[:50], 200))))
    assert len(blocks) <= 50
    assert all(len(text) <= 3000 for text in sections(blocks))
    texts = sections(blocks)
    assert texts[0].startswith("*Open gaps (200)*")
    assert texts[0].endswith("more") and "…and 19" in texts[0]  # 10 shown of 200
    for text in texts[3:6]:
        shown = text.count("\n• ")
        assert 1 <= shown <= 10
        assert text.endswith(f"…and {200 - shown} more")
    assert block_problems(dicts(blocks), 50) == []


def test_an_empty_channel_and_a_digest_without_a_meeting() -> None:
    blocks = digest_blocks(digest(
        meeting_at=None, following_meeting_at=None, since=None, gaps=Listed((), 0),
        coverage=(), decisions=(), snapshot_id=None, as_of=None, due_until=date(2027, 1, 6)))
    texts = sections(blocks)
    assert dicts(blocks)[0]["text"]["text"] == "Gap digest"
    # No empty sections: one line says there is nothing to review.
    assert texts == ["_Nothing to review: no open gaps and no actions due, overdue or "
                     "completed in this channel._"]
    assert "_None._" not in text_of(blocks)
    context = dicts(blocks)[1]["elements"][0]["text"]
    assert context.startswith("No planning data loaded yet")
    assert "first digest: movement since each gap was posted" in context


def test_new_unchanged_and_resolved_gaps_say_so() -> None:
    new = gap(1, new=True)
    same = GapLine(**{**gap(2).__dict__, "previous_gap": -400_000.0})
    within = gap(3, gap=-1_000.0, triggered=False, impacts=())
    texts = sections(digest_blocks(digest(gaps=Listed((new, same, within), 3))))
    assert "new, posted at -8.8%, -50.0K since" in texts[0]
    assert "unchanged since the last digest" in texts[0]
    assert "back within the rule" in texts[0]


def test_coverage_totals_cap_over_coverage_and_skip_gaps_without_size() -> None:
    over = gap(1, gap=-100.0, impacts=(500.0,))
    half = gap(2, gap=-1_000.0, impacts=(500.0,))
    none = gap(3, gap=0.0, impacts=(500.0,))
    [total] = _coverage_totals([over, half, none])
    assert total == MetricCoverage("revenue", 2, 1_100.0, 600.0, 500.0)


def test_meeting_reply_shows_the_next_occurrences_in_the_meetings_zone() -> None:
    meeting = Meeting(first=datetime(2026, 10, 12, 10, 0), tz="Europe/Paris", every=Every.WEEK)
    text = meeting_text(meeting, datetime(2026, 10, 13, tzinfo=UTC), changed=True)
    assert text.splitlines()[0] == ("*S&amp;OP meeting set for this channel:* every week on "
                                    "Mondays, 10:00 Europe/Paris; the digest is posted here "
                                    "24h before each meeting (on the Friday before when "
                                    "that is a weekend).")
    assert "• Mon 19 Oct 2026, 10:00 CEST (digest Fri 16 Oct 2026, 10:00 CEST)" in text
    assert "• Mon 26 Oct 2026, 10:00 CET (digest Fri 23 Oct 2026, 10:00 CEST)" in text
    assert recurrence(Meeting(first=datetime(2026, 1, 31, 9, 0), tz="UTC")) == (
        "every month on the 31st (the last day in shorter months), 09:00 UTC")


def test_empty_sections_are_left_out_and_the_others_keep_their_order() -> None:
    due = action(1, due=date(2026, 12, 20))
    blocks = digest_blocks(digest(due_soon=Listed((due,), 1)))
    titles = [t.split("\n")[0] for t in sections(blocks)]
    assert titles[0] == "*Open gaps (3)*" and titles[1] == "*Coverage by actions*"
    assert titles[-1].startswith("*Due before the following meeting")
    assert not any("Overdue" in t or "Completed" in t or "Root causes" in t for t in titles)
    assert "_None._" not in text_of(blocks)
    assert [b["type"] for b in dicts(blocks)].count("divider") == 1


def nested(i: int, gap_amount: float, metric: str = "revenue", **scope: list[str]
           ) -> GapLine:
    return GapLine(**{**gap(i, gap=gap_amount, impacts=()).__dict__, "scope": scope,
                      "metric": metric})


def test_coverage_never_adds_nested_scopes() -> None:
    eu = nested(1, -1_000_000.0, region=["EU"])
    eu_snacks = nested(2, -300_000.0, region=["EU"], category=["Snacks"])
    snacks = nested(3, -200_000.0, category=["Snacks"])
    na = nested(4, -100_000.0, region=["NA"], category=["Drinks"])
    [total] = _coverage_totals([eu, eu_snacks, snacks, na])
    assert total.size == 1_100_000.0 and total.gaps == 2  # EU + NA·Drinks only
    assert total.left_out == ({"region": ["EU"], "category": ["Snacks"]},
                              {"category": ["Snacks"]})
    line = coverage_line(total)
    assert "|gap| 1.10M" in line and "1.30M" not in line and "1.60M" not in line
    assert "not added: region=EU · category=Snacks, category=Snacks" in line


def test_a_gap_that_is_not_simply_open_says_its_status() -> None:
    from datetime import UTC, datetime

    from bot.blocks.digest import gap_line

    reopened = GapLine(**{**gap(3).__dict__, "status": "reopened",
                          "status_changed_at": datetime(2026, 12, 1, tzinfo=UTC)})
    assert "reopened since 2026-12-01" in gap_line(reopened, digest())
    assert "since 2026" not in gap_line(gap(4), digest())  # open: nothing more to say
