"""Pacing a wave of posts so that no channel gets two within Slack's second."""

from __future__ import annotations

from bot.jobs import paced


class FakeTime:
    """A clock that moves only when slept on, or by ``cost`` per post."""

    def __init__(self, cost: float = 0.0) -> None:
        self.now = 0.0
        self.cost = cost
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def sent(items: list[tuple[str, int]], time: FakeTime, interval: float = 1.0
         ) -> list[tuple[float, str, int]]:
    """(when, channel, item) of each post, each post taking ``time.cost`` seconds."""
    out = []
    for channel, item in paced(items, lambda pair: pair[0], interval=interval,
                               clock=time.clock, sleep=time.sleep):
        out.append((time.now, channel, item))
        time.now += time.cost
    return out


def test_channels_take_turns_and_keep_their_own_order() -> None:
    time = FakeTime(cost=0.01)
    posts = sent([("A", 1), ("A", 2), ("A", 3), ("B", 1), ("C", 1), ("B", 2)], time)
    assert [(c, i) for _, c, i in posts] == [("A", 1), ("B", 1), ("C", 1), ("A", 2),
                                               ("B", 2), ("A", 3)]


def test_no_channel_gets_two_posts_within_the_interval() -> None:
    time = FakeTime(cost=0.05)
    items = [(f"U{n % 7}", n) for n in range(100)] + [("U0", 100 + n) for n in range(5)]
    posts = sent(items, time)
    assert sorted(i for _, _, i in posts) == sorted(i for _, i in items)  # nothing lost
    last: dict[str, float] = {}
    for when, channel, _ in posts:
        assert when - last.get(channel, -1.0) >= 1.0 - 1e-9
        last[channel] = when


def test_it_waits_only_when_every_channel_left_was_just_posted_to() -> None:
    time = FakeTime(cost=0.1)
    sent([("A", 1), ("B", 1), ("A", 2)], time)
    # A at 0.0, B at 0.1, then A again: allowed at 1.0 (0.0 + its post's 0.1 + 0.9 wait).
    assert len(time.slept) == 1 and abs(time.slept[0] - 0.9) < 1e-9

    many = FakeTime(cost=0.1)
    sent([(f"U{n}", n) for n in range(50)], many)
    assert many.slept == []  # fifty people, one nudge each: no waiting at all


def test_a_single_channel_is_posted_to_once_a_second() -> None:
    time = FakeTime()
    posts = sent([("C1", n) for n in range(4)], time)
    assert [when for when, _, _ in posts] == [0.0, 1.0, 2.0, 3.0]
    assert [i for _, _, i in posts] == [0, 1, 2, 3]
