"""Unit tests of the stat engine's bulkhead (director/stat/bulkhead.py): slots, the waiting
line, hand-off in order, resizing, abandoned tickets.

Plain Python + gevent, no Django: waits use the real clock (gevent waits take real time),
each has a deadline, and the ``hang_guard`` fixture fails any test that blocks for 5 s.
"""

from __future__ import annotations

import time

import gevent
import pytest
from gevent.event import Event
from helpers import AT_ONCE, join_all

from director.stat.bulkhead import Bulkhead

pytestmark = pytest.mark.usefixtures("hang_guard")  # a bug fails a test, never hangs it


def acquire(bulkhead: Bulkhead, timeout: float) -> bool:
    """A slot now, or after waiting at most ``timeout``: the engine's own sequence (a
    place in line is taken synchronously, then waited on)."""
    if bulkhead.try_acquire():
        return True
    ticket = bulkhead.enqueue() if timeout > 0 else None
    return ticket is not None and bulkhead.wait_turn(ticket, timeout)


def test_bulkhead_never_lets_more_than_limit_stats_hold_a_slot() -> None:
    bulkhead = Bulkhead(limit=3, max_waiters=10)
    holding = peak = 0

    def worker() -> bool:
        nonlocal holding, peak
        if not acquire(bulkhead, 1.0):
            return False
        holding += 1
        peak = max(peak, holding)
        gevent.sleep(0.02)
        holding -= 1
        bulkhead.release()
        return True

    workers = [gevent.spawn(worker) for _ in range(8)]
    gevent.sleep(0.005)
    assert (bulkhead.active, bulkhead.waiting) == (3, 5)
    assert join_all(workers) == [True] * 8
    assert peak == 3
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


def test_bulkhead_try_acquire_takes_free_slots_only() -> None:
    bulkhead = Bulkhead(limit=2, max_waiters=1)
    assert [bulkhead.try_acquire() for _ in range(3)] == [True, True, False]
    assert bulkhead.active == 2


def test_bulkhead_refuses_the_caller_after_max_waiters_at_once() -> None:
    bulkhead = Bulkhead(limit=1, max_waiters=2)
    assert bulkhead.try_acquire()
    waiters = [gevent.spawn(acquire, bulkhead, 1.0) for _ in range(2)]
    gevent.sleep(0)
    assert bulkhead.waiting == 2

    started = time.monotonic()
    assert acquire(bulkhead, 1.0) is False
    assert time.monotonic() - started < AT_ONCE  # not the 1 s wait
    assert bulkhead.enqueue() is None
    assert bulkhead.waiting == 2

    bulkhead.release()  # to the first waiter, which keeps it
    gevent.sleep(0)
    bulkhead.release()  # the first waiter's slot, to the second
    assert join_all(waiters) == [True, True]
    bulkhead.release()
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


def test_bulkhead_waiter_gives_up_after_its_timeout_and_leaves_the_line() -> None:
    bulkhead = Bulkhead(limit=1, max_waiters=2)
    assert bulkhead.try_acquire()
    started = time.monotonic()
    assert acquire(bulkhead, 0.2) is False
    elapsed = time.monotonic() - started
    assert 0.19 <= elapsed < 0.2 + AT_ONCE
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)
    bulkhead.release()
    assert bulkhead.active == 0
    assert bulkhead.try_acquire()


def test_bulkhead_release_hands_the_slot_to_the_oldest_waiter() -> None:
    bulkhead = Bulkhead(limit=1, max_waiters=3)
    assert bulkhead.try_acquire()
    order: list[str] = []

    def waiter(name: str) -> None:
        assert acquire(bulkhead, 1.0)
        order.append(name)
        gevent.sleep(0.01)
        bulkhead.release()

    waiters = [gevent.spawn(waiter, name) for name in ("first", "second", "third")]
    gevent.sleep(0)
    assert bulkhead.waiting == 3

    bulkhead.release()
    # Handed over, not freed: a newcomer cannot jump the line.
    assert (bulkhead.active, bulkhead.waiting) == (1, 2)
    assert bulkhead.try_acquire() is False
    join_all(waiters)
    assert order == ["first", "second", "third"]
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


def test_bulkhead_hand_off_is_direct_and_in_order_with_tickets() -> None:
    bulkhead = Bulkhead(limit=1, max_waiters=2)
    assert bulkhead.try_acquire()
    older, newer = bulkhead.enqueue(), bulkhead.enqueue()
    assert older is not None and newer is not None
    bulkhead.release()
    assert older.is_set() and not newer.is_set()
    assert bulkhead.wait_turn(older, 0.0) is True
    assert (bulkhead.active, bulkhead.waiting) == (1, 1)


@pytest.mark.parametrize(
    "interruption",
    [pytest.param(gevent.GreenletExit, id="killed"), pytest.param(gevent.Timeout, id="timed-out")],
)
def test_bulkhead_waiter_interrupted_at_hand_off_passes_the_slot_on(
    interruption: type[BaseException],
) -> None:
    bulkhead = Bulkhead(limit=1, max_waiters=3)
    assert bulkhead.try_acquire()

    def wait(ticket: Event) -> object:
        try:
            return bulkhead.wait_turn(ticket, 5.0)
        except gevent.Timeout:  # an outer deadline of the caller firing
            return "interrupted"

    first_ticket, second_ticket = bulkhead.enqueue(), bulkhead.enqueue()
    assert first_ticket is not None and second_ticket is not None
    first = gevent.spawn(wait, first_ticket)
    second = gevent.spawn(wait, second_ticket)
    gevent.sleep(0)
    assert bulkhead.waiting == 2

    # The interruption is queued first, so the first waiter is interrupted while holding a
    # ticket that the release below has already set: it must pass the slot on.
    first.kill(interruption(), block=False)
    bulkhead.release()
    assert first_ticket.is_set()
    join_all([first, second])
    assert second.value is True
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)
    bulkhead.release()
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


def test_bulkhead_resize_up_wakes_waiters_at_once() -> None:
    bulkhead = Bulkhead(limit=1, max_waiters=3)
    assert bulkhead.try_acquire()
    waiters = [gevent.spawn(acquire, bulkhead, 1.0) for _ in range(2)]
    gevent.sleep(0)
    assert bulkhead.waiting == 2
    started = time.monotonic()
    bulkhead.resize(3, 3)
    assert (bulkhead.limit, bulkhead.active, bulkhead.waiting) == (3, 3, 0)
    assert join_all(waiters) == [True, True]
    assert time.monotonic() - started < AT_ONCE  # not their 1 s wait
    for _ in range(3):
        bulkhead.release()
    assert bulkhead.active == 0


def test_bulkhead_resize_down_drains_as_stats_finish() -> None:
    bulkhead = Bulkhead(limit=3, max_waiters=2)
    assert all(bulkhead.try_acquire() for _ in range(3))
    bulkhead.resize(1, 2)
    ticket = bulkhead.enqueue()
    assert ticket is not None
    bulkhead.release()
    bulkhead.release()
    assert (bulkhead.active, ticket.is_set()) == (1, False)
    bulkhead.release()  # now at the limit: the waiter gets this slot
    assert (bulkhead.active, ticket.is_set()) == (1, True)


def test_a_ticket_whose_greenlet_never_ran_gives_back_a_slot_handed_to_it() -> None:
    bulkhead = Bulkhead(limit=1, max_waiters=2)
    assert bulkhead.try_acquire()
    ticket = bulkhead.enqueue()
    assert ticket is not None
    bulkhead.release()  # hands the slot to the ticket, whose owner never runs
    assert bulkhead.active == 1
    bulkhead.abandon(ticket)
    bulkhead.abandon(ticket)  # idempotent
    assert bulkhead.active == 0
    assert bulkhead.try_acquire()


def test_a_ticket_abandoned_while_in_line_leaves_the_line() -> None:
    bulkhead = Bulkhead(limit=1, max_waiters=1)
    assert bulkhead.try_acquire()
    ticket = bulkhead.enqueue()
    assert ticket is not None and bulkhead.waiting == 1
    bulkhead.abandon(ticket)
    assert bulkhead.waiting == 0
    assert bulkhead.enqueue() is not None
