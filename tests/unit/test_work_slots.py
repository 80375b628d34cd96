"""Work slots go first come, first served (bot/work_slots.py)."""

from __future__ import annotations

import threading
import time

import pytest

from bot.work_slots import WorkSlots


def _waiting(slots: WorkSlots, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(slots._waiting) < count:
        assert time.monotonic() < deadline, "the waiter never queued"
        time.sleep(0.001)


def test_a_released_slot_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    """The thread releasing a slot asks again at once (as the next command's work does):
    the slot goes to the thread that was waiting, and the newcomer waits its turn."""
    slots, order = WorkSlots(1), []

    def waiter(name: str) -> None:
        with slots:
            order.append(name)

    slots.acquire()
    first = threading.Thread(target=waiter, args=("first",))
    first.start()
    _waiting(slots, 1)
    second = threading.Thread(target=waiter, args=("second",))
    second.start()
    _waiting(slots, 2)
    slots.release()
    with slots:  # a newcomer, right after the release
        order.append("newcomer")
    first.join(5)
    second.join(5)
    assert order == ["first", "second", "newcomer"]


def test_slots_bound_how_many_run_at_once() -> None:
    slots, lock, running, most = WorkSlots(2), threading.Lock(), [0], [0]

    def work() -> None:
        with slots:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert most[0] == 2


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        WorkSlots(0)
