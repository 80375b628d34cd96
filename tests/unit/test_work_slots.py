"""Work slots go first come, first served (bot/work_slots.py)."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable

import pytest

from bot import work_slots
from bot.work_slots import BACKLOG, WorkSlots, lent_out


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


def test_a_slot_lent_out_serves_the_next_waiter_and_comes_back_before_newcomers() -> None:
    """A command waiting on Slack lends its slot to the longest waiter; once Slack has
    answered it takes the slot back before a command that was already waiting."""
    slots, order = WorkSlots(1), []
    slack_answered = threading.Event()

    def lending() -> None:
        with slots:
            order.append("lender computes")
            with lent_out():  # (waiting on Slack)
                order.append("lender waits on Slack")
                slack_answered.wait(5)
            order.append("lender finishes")

    def waiter(name: str, hold: threading.Event | None = None) -> None:
        with slots:
            order.append(name)
            if hold is not None:
                hold.wait(5)

    slots.acquire()  # everyone queues behind this one
    lender = threading.Thread(target=lending)
    lender.start()
    _waiting(slots, 1)
    release_first = threading.Event()
    first = threading.Thread(target=waiter, args=("first", release_first))
    first.start()
    _waiting(slots, 2)
    second = threading.Thread(target=waiter, args=("second",))
    second.start()
    _waiting(slots, 3)
    slots.release()  # → lender, who lends it to "first" while it waits on Slack
    deadline = time.monotonic() + 5
    while "first" not in order:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    slack_answered.set()  # the lender queues first, ahead of "second"
    _waiting(slots, 2)
    release_first.set()
    for thread in (lender, first, second):
        thread.join(5)
    assert order == ["lender computes", "lender waits on Slack", "first", "lender finishes",
                     "second"]


def test_lending_without_a_slot_changes_nothing() -> None:
    slots = WorkSlots(1)
    with lent_out():  # this thread holds no slot
        slots.acquire()  # the one slot is still free
    slots.release()
    with slots:
        pass
    with slots, lent_out():  # held, lent out, taken back: released once at the end
        assert slots._free == 1
    assert slots._free == 1


def test_work_that_waits_for_its_turn_holds_no_thread_and_runs_in_its_context() -> None:
    """``run`` returns at once when no slot is free; the work runs later, in turn with a
    thread waiting in ``acquire``, on the slots' own threads, in the context it was
    queued from, holding a slot, and counted in the backlog until it ends."""
    request = contextvars.ContextVar("request", default="none")
    slots, order = WorkSlots(1), []
    done = threading.Event()

    def queued(name: str) -> Callable[[], None]:
        def work() -> None:
            assert threading.current_thread() is not caller
            assert getattr(work_slots._holding, "slots", None) is slots  # holds its slot
            order.append((name, request.get()))
            if name == "second":
                done.set()
        return work

    caller = threading.current_thread()
    before = BACKLOG.count
    slots.acquire()  # busy: whatever comes next waits
    request.set("R1")
    slots.run(queued("first"))  # returns at once
    blocking = threading.Thread(target=lambda: (slots.acquire(), order.append(("blocked", "-")),
                                                slots.release()))
    blocking.start()
    _waiting(slots, 2)
    request.set("R2")
    slots.run(queued("second"))
    assert order == [] and BACKLOG.count == before + 2  # queued, no thread held
    slots.release()
    assert done.wait(5)
    blocking.join(5)
    assert order == [("first", "R1"), ("blocked", "-"), ("second", "R2")]
    deadline = time.monotonic() + 5
    while BACKLOG.count != before:  # (counted until the work's slot is given back)
        assert time.monotonic() < deadline
        time.sleep(0.001)
    ran: list[threading.Thread] = []
    slots.run(lambda: ran.append(threading.current_thread()))  # a slot free: here, now
    assert ran == [caller] and slots._free == 1


def test_each_piece_of_work_is_observed_with_its_wait_and_duration_in_its_context() -> None:
    """The metrics (bot/observability.py: observe_work) learn how long a command's work
    waited for its slot and how long it then took, labelled from its own request."""
    request = contextvars.ContextVar("request", default="none")
    seen: list[tuple[str, float, float]] = []
    done = threading.Event()

    def observe(waited: float, took: float) -> None:
        seen.append((request.get(), waited, took))
        if len(seen) == 2:
            done.set()

    slots = WorkSlots(1, observe=observe)
    request.set("at once")
    slots.run(lambda: time.sleep(0.02))  # a slot free: no wait
    slots.acquire()  # busy: the next one waits
    request.set("queued")
    slots.run(lambda: time.sleep(0.02))
    time.sleep(0.05)
    request.set("the releaser")
    slots.release()
    assert done.wait(5)
    (first, waited_first, took_first), (second, waited_second, took_second) = seen
    assert (first, waited_first) == ("at once", 0.0) and took_first >= 0.02
    assert second == "queued" and waited_second >= 0.05 and 0.02 <= took_second < 1


def test_a_failing_observer_fails_neither_the_work_nor_the_slots() -> None:
    def broken(waited: float, took: float) -> None:
        raise RuntimeError("the metrics folder is gone")

    slots, ran = WorkSlots(1, observe=broken), []
    slots.run(lambda: ran.append(1))  # returns normally
    slots.run(lambda: ran.append(2))  # the slot came back
    assert ran == [1, 2] and slots._free == 1
