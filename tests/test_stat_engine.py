"""Unit tests of the stat engine (director/stat): bulkhead, cache, ejection, probe, fan-out.

No Django and no database: the engine is plain Python + gevent (gevent is monkey-patched
for the whole run by the ``director_project.gevent_pytest`` plugin). Fan-out tests inject a
fake probe through ``probe_factory``; the probe tests run a real HTTP server on loopback.

Timing: tests that wait use the real ``time.monotonic`` clock (gevent waits take real time);
a fake clock is used only for TTL and ejection arithmetic, where nothing waits on it.
Every wait has a deadline, and an autouse guard fails any test that blocks for 5 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from gevent.event import Event
from helpers import stat_config
from requests.structures import CaseInsensitiveDict

from director.demo.fileserver import FileServer, crc32c
from director.stat import (
    Outcome,
    PoolState,
    StatEngine,
    StatResult,
    StatTarget,
    cache_key,
)
from director.stat.bulkhead import Bulkhead
from director.stat.cache import PresenceCache
from director.stat.ejection import EjectionPolicy, OutlierDetector
from director.stat.probe import HeadProbe, classify

GATE_LIMIT = 5.0  # a blocked fake probe gives up after this, whatever the test does
SLOW = StatTarget("slow", "origin", "http://slow.invalid")
FAST = StatTarget("fast", "origin", "http://fast.invalid")
ORIGIN = StatTarget("origin", "origin", "http://origin.invalid")


# -- helpers ----------------------------------------------------------------------------------
class FakeClock:
    """A clock that moves only when told (binary-exact steps keep comparisons exact)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def answer(outcome: Outcome) -> StatResult:
    """What a server's HEAD comes to, per outcome, as HeadProbe would report it."""
    if outcome is Outcome.PRESENT:
        return StatResult(Outcome.PRESENT, 200, 0.001, size=5, checksum="crc32c=0a1b2c3d", age=7)
    if outcome is Outcome.ABSENT:
        return StatResult(Outcome.ABSENT, 404, 0.001)
    if outcome is Outcome.DENIED:
        return StatResult(Outcome.DENIED, 403, 0.001)
    if outcome is Outcome.ERROR:
        return StatResult(Outcome.ERROR, 500, 0.001, server_fault=True, detail="HTTP 500")
    if outcome is Outcome.TIMEOUT:
        return StatResult(Outcome.TIMEOUT, latency=0.001, server_fault=True)
    raise AssertionError(f"no server answers {outcome}")


class FakeProbe:
    """``probe(url, token, timeout) -> StatResult``: records calls, may block and sleep.

    It ignores ``timeout`` on purpose (the engine must not rely on probes to end in time);
    ``gate`` blocks it until set (at most GATE_LIMIT), ``delay`` sleeps after that, and
    ``respond`` (when given) makes the answer; otherwise it answers ``outcome``.
    """

    def __init__(
        self,
        outcome: Outcome = Outcome.PRESENT,
        *,
        delay: float = 0.0,
        gate: Event | None = None,
        respond: Callable[[str, str, float], StatResult] | None = None,
    ) -> None:
        self.outcome = outcome
        self.delay = delay
        self.gate = gate
        self.respond = respond
        self.calls: list[tuple[str, str, float]] = []
        self.running = 0
        self.peak = 0

    def __call__(self, url: str, token: str, timeout: float) -> StatResult:
        self.calls.append((url, token, timeout))
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self.gate is not None:
                self.gate.wait(GATE_LIMIT)
            if self.delay:
                gevent.sleep(self.delay)
        finally:
            self.running -= 1
        if self.respond is not None:
            return self.respond(url, token, timeout)
        return answer(self.outcome)


def time_out_after_timeout(url: str, token: str, timeout: float) -> StatResult:
    """A server that never answers, seen through a probe that honours its timeout."""
    gevent.sleep(timeout)
    return StatResult(Outcome.TIMEOUT, latency=timeout, server_fault=True)


def make_engine(
    probe: FakeProbe | dict[str, FakeProbe],
    *,
    clock: Callable[[], float] = time.monotonic,
    **config: Any,
) -> StatEngine:
    probes = probe if isinstance(probe, dict) else None

    def factory(target: StatTarget, limit: int) -> FakeProbe:
        return probes[target.name] if probes is not None else probe  # type: ignore[return-value]

    return StatEngine(stat_config(**config), probe_factory=factory, clock=clock)


def stat(
    engine: StatEngine, targets: list[StatTarget], path: str, within: float = 1.0, **kw: Any
) -> dict[str, StatResult]:
    """stat_many with a deadline ``within`` seconds from now, itself bounded in real time."""
    with gevent.Timeout(within + 2.0, AssertionError("stat_many overran its deadline by 2 s")):
        return engine.stat_many(targets, path, deadline=engine.clock() + within, **kw)


def wait_until(predicate: Callable[[], bool], timeout: float = 1.0, what: str = "") -> None:
    with gevent.Timeout(timeout, AssertionError(f"not within {timeout} s: {what}")):
        while not predicate():
            gevent.sleep(0.005)


def settle(engine: StatEngine, timeout: float = 1.0) -> None:
    """Every stat greenlet of ``engine`` has finished."""
    wait_until(lambda: engine.live_stat_greenlets() == 0, timeout, "stat greenlets finished")


def join_all(greenlets: list[gevent.Greenlet], timeout: float = 2.0) -> list[Any]:
    done = gevent.joinall(greenlets, timeout=timeout, raise_error=True)
    assert len(done) == len(greenlets), "some greenlets did not finish in time"
    return [greenlet.value for greenlet in greenlets]


def state_of(engine: StatEngine, name: str) -> PoolState:
    (state,) = [state for state in engine.states() if state.name == name]
    return state


@pytest.fixture(autouse=True)
def _hang_guard() -> Iterator[None]:
    """A bug must fail a test, never hang the suite."""
    guard = gevent.Timeout(5.0, AssertionError("test blocked for 5 s"))
    guard.start()
    try:
        yield
    finally:
        guard.close()


@pytest.fixture
def gate() -> Iterator[Event]:
    """Blocks FakeProbes until set; set at teardown so no greenlet outlives its test."""
    event = Event()
    yield event
    event.set()


# -- Bulkhead ---------------------------------------------------------------------------------
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
    assert time.monotonic() - started < 0.01
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
    assert acquire(bulkhead, 0.05) is False
    elapsed = time.monotonic() - started
    assert 0.045 <= elapsed < 0.2
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
    assert time.monotonic() - started < 0.05
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


# -- PresenceCache ----------------------------------------------------------------------------
def test_cache_entry_expires_after_ttl_and_a_hit_does_not_extend_it() -> None:
    clock = FakeClock()
    cache = PresenceCache(capacity=10, ttl=10.0, clock=clock)
    cache.put(("/a", ""), answer(Outcome.PRESENT))
    clock.advance(9.5)
    assert cache.get(("/a", "")) is not None
    clock.advance(0.25)
    assert cache.get(("/a", "")) is not None
    clock.advance(0.25)  # exactly ttl after the put
    assert cache.get(("/a", "")) is None
    assert len(cache) == 0


def test_cache_evicts_the_least_recently_used_entry_at_capacity() -> None:
    cache = PresenceCache(capacity=2, ttl=60.0, clock=FakeClock())
    cache.put("a", answer(Outcome.PRESENT))
    cache.put("b", answer(Outcome.ABSENT))
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", answer(Outcome.PRESENT))
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None


def test_cache_shrinking_capacity_evicts_the_least_recently_used() -> None:
    cache = PresenceCache(capacity=3, ttl=60.0, clock=FakeClock())
    for key in "abc":
        cache.put(key, answer(Outcome.PRESENT))
    cache.configure(capacity=1, ttl=60.0)
    assert len(cache) == 1
    assert cache.get("c") is not None


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.DENIED,
        Outcome.ERROR,
        Outcome.TIMEOUT,
        Outcome.SATURATED,
        Outcome.EJECTED,
        Outcome.PENDING,
    ],
)
def test_cache_stores_only_present_and_absent(outcome: Outcome) -> None:
    cache = PresenceCache(capacity=10, ttl=60.0, clock=FakeClock())
    cache.put("key", StatResult(outcome))
    assert len(cache) == 0
    assert cache.get("key") is None


def test_cache_returns_answers_marked_cached() -> None:
    cache = PresenceCache(capacity=10, ttl=60.0, clock=FakeClock())
    cache.put("present", answer(Outcome.PRESENT))
    cache.put("absent", answer(Outcome.ABSENT))
    assert cache.get("present") == StatResult(
        Outcome.PRESENT, 200, 0.0, size=5, checksum="crc32c=0a1b2c3d", age=7, cached=True
    )
    assert cache.get("absent") == StatResult(Outcome.ABSENT, 404, cached=True)


def test_cache_resize_keeps_each_expiry_and_a_new_ttl_applies_to_new_answers() -> None:
    clock = FakeClock()
    cache = PresenceCache(capacity=3, ttl=10.0, clock=clock)
    cache.put("a", answer(Outcome.PRESENT))
    clock.advance(5.0)
    cache.put("b", answer(Outcome.PRESENT))
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.configure(capacity=5, ttl=60.0)
    cache.put("c", answer(Outcome.PRESENT))
    clock.advance(5.0)  # "a" was stored 10 s ago with a 10 s TTL
    assert (cache.get("a"), len(cache)) == (None, 2)
    clock.advance(5.0)
    assert cache.get("b") is None
    assert cache.get("c") is not None
    cache.configure(capacity=1, ttl=60.0)
    assert (len(cache), cache.capacity) == (1, 1)


def test_cache_with_zero_ttl_stores_nothing() -> None:
    cache = PresenceCache(capacity=10, ttl=0.0, clock=FakeClock())
    cache.put("key", answer(Outcome.PRESENT))
    assert len(cache) == 0


# -- OutlierDetector --------------------------------------------------------------------------
def detector(base: float = 30.0, max_time: float = 100.0) -> tuple[OutlierDetector, FakeClock]:
    clock = FakeClock()
    return OutlierDetector(
        EjectionPolicy(threshold=5, base_time=base, max_time=max_time), clock
    ), clock


def eject(outliers: OutlierDetector) -> None:
    for _ in range(5):
        assert outliers.admit() == (True, False)
        outliers.record(fault=True, probe=False)


def test_five_consecutive_faults_eject_the_server_for_the_base_time() -> None:
    outliers, clock = detector()
    for _ in range(4):
        outliers.record(fault=True, probe=False)
    assert not outliers.ejected
    assert outliers.admit() == (True, False)
    outliers.record(fault=True, probe=False)
    assert outliers.ejected
    assert (outliers.times_ejected, outliers.consecutive_failures) == (1, 5)
    assert outliers.ejected_until == clock.now + 30.0
    assert outliers.admit() == (False, False)
    clock.advance(29.5)
    assert outliers.ejected and outliers.admit() == (False, False)
    clock.advance(0.5)
    assert not outliers.ejected and outliers.half_open


def test_faults_while_ejected_do_not_extend_the_ejection() -> None:
    outliers, clock = detector()
    eject(outliers)
    until = outliers.ejected_until
    outliers.record(fault=True, probe=False)  # a stat that was in flight at the ejection
    assert (outliers.ejected_until, outliers.times_ejected) == (until, 1)


def test_a_failed_half_open_probe_ejects_for_twice_the_base_then_capped_at_max() -> None:
    outliers, clock = detector(base=30.0, max_time=100.0)
    eject(outliers)
    expected = [60.0, 90.0, 100.0, 100.0]  # 30 x times ejected, at most 100
    for times, duration in enumerate(expected, start=2):
        clock.now = outliers.ejected_until
        assert outliers.admit() == (True, True)
        outliers.record(fault=True, probe=True)
        assert outliers.times_ejected == times
        assert outliers.ejected_until == clock.now + duration
        assert outliers.admit() == (False, False)


def test_only_one_probe_is_admitted_while_half_open() -> None:
    outliers, clock = detector()
    eject(outliers)
    clock.advance(30.0)
    assert outliers.admit() == (True, True)
    assert [outliers.admit() for _ in range(3)] == [(False, False)] * 3
    outliers.abandon_probe()  # cut short by a deadline: no verdict, the next may try
    assert outliers.admit() == (True, True)
    assert outliers.admit() == (False, False)


def test_a_successful_probe_clears_the_count_and_the_multiplier() -> None:
    outliers, clock = detector()
    eject(outliers)
    clock.now = outliers.ejected_until
    assert outliers.admit() == (True, True)
    outliers.record(fault=True, probe=True)  # ejected again, for 2 x base
    clock.now = outliers.ejected_until
    assert outliers.admit() == (True, True)
    outliers.record(fault=False, probe=True)
    assert (outliers.consecutive_failures, outliers.times_ejected) == (0, 0)
    assert not outliers.ejected and not outliers.half_open
    assert [outliers.admit() for _ in range(3)] == [(True, False)] * 3
    eject(outliers)  # the next ejection starts again at the base time
    assert outliers.times_ejected == 1
    assert outliers.ejected_until == clock.now + 30.0


def test_a_non_fault_resets_the_consecutive_count() -> None:
    outliers, _ = detector()
    for _ in range(4):
        outliers.record(fault=True, probe=False)
    outliers.record(fault=False, probe=False)
    assert outliers.consecutive_failures == 0
    for _ in range(4):
        outliers.record(fault=True, probe=False)
    assert not outliers.ejected and outliers.times_ejected == 0
    outliers.record(fault=True, probe=False)
    assert outliers.ejected


# -- classify ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        pytest.param(
            200,
            CaseInsensitiveDict({"content-length": "11", "DIGEST": "crc32c=0a1b2c3d", "age": "42"}),
            StatResult(Outcome.PRESENT, 200, 0.25, size=11, checksum="crc32c=0a1b2c3d", age=42),
            id="200-length-digest-age",
        ),
        pytest.param(
            200,
            {"Content-Length": "0"},
            StatResult(Outcome.PRESENT, 200, 0.25, size=0),
            id="200-empty-object",
        ),
        pytest.param(
            200,
            {"Content-Length": "5", "Age": "soon"},
            StatResult(Outcome.PRESENT, 200, 0.25, size=5, age=None),
            id="200-invalid-age-ignored",
        ),
        pytest.param(
            200,
            {},
            StatResult(Outcome.ERROR, 200, 0.25, detail="200 without a valid Content-Length"),
            id="200-without-length",
        ),
        pytest.param(
            200,
            {"Content-Length": "lots"},
            StatResult(Outcome.ERROR, 200, 0.25, detail="200 without a valid Content-Length"),
            id="200-invalid-length",
        ),
        pytest.param(
            200,
            {"Content-Length": "-1"},
            StatResult(Outcome.ERROR, 200, 0.25, detail="negative Content-Length"),
            id="200-negative-length",
        ),
        pytest.param(404, {}, StatResult(Outcome.ABSENT, 404, 0.25), id="404-absent"),
        pytest.param(401, {}, StatResult(Outcome.DENIED, 401, 0.25), id="401-denied"),
        pytest.param(403, {}, StatResult(Outcome.DENIED, 403, 0.25), id="403-denied"),
        pytest.param(
            500,
            {},
            StatResult(Outcome.ERROR, 500, 0.25, server_fault=True, detail="HTTP 500"),
            id="500-server-fault",
        ),
        pytest.param(
            503,
            {},
            StatResult(Outcome.ERROR, 503, 0.25, server_fault=True, detail="HTTP 503"),
            id="503-server-fault",
        ),
        pytest.param(
            405,
            {},
            StatResult(Outcome.ERROR, 405, 0.25, server_fault=False, detail="HTTP 405"),
            id="405-not-a-server-fault",
        ),
    ],
)
def test_classify_turns_a_head_answer_into_an_outcome(
    status: int, headers: dict[str, str], expected: StatResult
) -> None:
    assert classify(status, headers, 0.25) == expected


# -- HeadProbe against a real server ----------------------------------------------------------
DATA = b"hello, pelican\n"


@pytest.fixture
def probe() -> Iterator[HeadProbe]:
    head = HeadProbe("pelican-director/9.9.9", pool_size=2)
    yield head
    head.close()


def test_head_probe_reports_present_with_size_and_checksum_and_sends_no_token_unasked(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    result = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert result.outcome is Outcome.PRESENT
    assert (result.status_code, result.size) == (200, len(DATA))
    assert result.checksum == f"crc32c={crc32c(DATA):08x}"
    assert result.age is None and not result.server_fault
    assert server.count("HEAD") == 1
    seen = server.seen_headers[-1]
    assert seen["method"] == "HEAD" and seen["path"] == "/test/hello.txt"
    assert seen["User-Agent"] == "pelican-director/9.9.9"
    assert seen["Want-Digest"] == "crc32c"
    assert "Authorization" not in seen


def test_head_probe_sends_the_token_as_bearer_and_is_denied_without_the_right_one(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    server.behaviour.required_token = "secret"
    granted = probe(f"{server.url}/test/hello.txt", "secret", 1.0)
    assert (granted.outcome, granted.size) == (Outcome.PRESENT, len(DATA))
    assert server.seen_headers[-1]["Authorization"] == "Bearer secret"
    refused = probe(f"{server.url}/test/hello.txt", "wrong", 1.0)
    assert (refused.outcome, refused.status_code, refused.server_fault) == (
        Outcome.DENIED,
        403,
        False,
    )
    assert server.seen_headers[-1]["Authorization"] == "Bearer wrong"
    anonymous = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert (anonymous.outcome, anonymous.status_code) == (Outcome.DENIED, 403)
    assert "Authorization" not in server.seen_headers[-1]
    assert server.count("HEAD") == 3


def test_a_404_answer_leaves_the_pooled_connection_usable_for_the_next_head(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    for _ in range(3):
        assert probe(f"{server.url}/test/hello.txt", "", 1.0).outcome is Outcome.PRESENT
        assert probe(f"{server.url}/test/missing.txt", "", 1.0).outcome is Outcome.ABSENT
    result = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert (result.outcome, result.detail) == (Outcome.PRESENT, "")
    assert server.count("HEAD") == 7


@pytest.mark.parametrize(
    ("path", "behaviour", "status"),
    [
        pytest.param("/test/hello.txt", {}, b"200", id="200"),
        pytest.param("/test/missing.txt", {}, b"404", id="404"),
        pytest.param("/test/hello.txt", {"required_token": "t"}, b"403", id="403"),
        pytest.param("/test/hello.txt", {"status": 500}, b"500", id="500"),
    ],
)
def test_file_server_answers_head_without_a_body_so_pooled_connections_stay_usable(
    file_servers: Callable[..., FileServer], path: str, behaviour: dict[str, object], status: bytes
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    for name, value in behaviour.items():
        setattr(server.behaviour, name, value)
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=1.0) as connection:
        connection.sendall(f"HEAD {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        connection.settimeout(0.1)  # keep-alive: read whatever comes until it goes quiet
        with contextlib.suppress(TimeoutError):
            while chunk := connection.recv(4096):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status)
    assert body == b""


def test_head_probe_reports_absent_for_404(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({})
    result = probe(f"{server.url}/test/nothing.txt", "", 1.0)
    assert (result.outcome, result.status_code, result.server_fault) == (
        Outcome.ABSENT,
        404,
        False,
    )


def test_head_probe_reports_a_500_as_an_error_that_is_the_servers_fault(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    server.behaviour.status = 500
    result = probe(f"{server.url}/test/hello.txt", "", 1.0)
    assert (result.outcome, result.status_code, result.server_fault) == (Outcome.ERROR, 500, True)


def test_head_probe_times_out_on_a_hanging_server_within_its_timeout(
    file_servers: Callable[..., FileServer], probe: HeadProbe
) -> None:
    server = file_servers({"/test/hello.txt": DATA})
    server.behaviour.hang = True
    server.behaviour.hang_seconds = 1.0
    started = time.monotonic()
    result = probe(f"{server.url}/test/hello.txt", "", 0.2)
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.TIMEOUT and result.server_fault
    assert 0.19 <= elapsed < 0.2 + 0.2
    assert server.count("HEAD") == 1


def test_head_probe_reports_connection_refused_as_an_error_that_is_the_servers_fault(
    probe: HeadProbe,
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = probe(f"http://127.0.0.1:{port}/test/hello.txt", "", 1.0)
    assert result.outcome is Outcome.ERROR and result.server_fault
    assert result.status_code is None
    assert result.detail.startswith("transport error")
    assert time.monotonic() - started < 0.5


def test_engine_default_probe_stats_a_real_server(
    file_servers: Callable[..., FileServer],
) -> None:
    server = file_servers({"/test/dir/hello world.txt": DATA})
    engine = StatEngine(stat_config(stat_timeout=0.3, concurrency_limit=2), user_agent="ua/1")
    target = StatTarget("real", "origin", server.url)
    results = stat(engine, [target], "/test/dir/hello world.txt")
    assert results["real"].outcome is Outcome.PRESENT
    assert results["real"].size == len(DATA)
    assert server.seen_headers[-1]["User-Agent"] == "ua/1"
    assert server.seen_headers[-1]["path"] == "/test/dir/hello world.txt"
    assert stat(engine, [target], "/test/missing.txt")["real"].outcome is Outcome.ABSENT
    settle(engine)
    engine.configure(engine.config, [])  # closes the probe's session


# -- StatEngine.stat_many: coalescing and cache ------------------------------------------------
def test_twenty_concurrent_callers_for_the_same_path_share_one_probe() -> None:
    probe = FakeProbe(delay=0.05)
    engine = make_engine(probe)
    callers = [gevent.spawn(stat, engine, [ORIGIN], "/test/a") for _ in range(20)]
    results = join_all(callers)
    assert len(probe.calls) == 1
    assert probe.calls[0][0] == "http://origin.invalid/test/a"
    assert all(result["origin"] == answer(Outcome.PRESENT) for result in results)
    assert state_of(engine, "origin").outcomes == {"present": 20}
    settle(engine)


def test_different_tokens_on_a_token_scoped_namespace_do_not_share_a_probe() -> None:
    probe = FakeProbe(delay=0.05)
    engine = make_engine(probe)
    callers = [
        gevent.spawn(stat, engine, [ORIGIN], "/test/a", token=token, token_scoped=True)
        for token in ["alice", "bob"] * 10
    ]
    results = join_all(callers)
    assert len(probe.calls) == 2
    assert sorted(token for _, token, _ in probe.calls) == ["alice", "bob"]
    assert all(result["origin"].outcome is Outcome.PRESENT for result in results)
    settle(engine)


def test_the_public_namespace_ignores_the_token_when_sharing_and_caching() -> None:
    probe = FakeProbe(delay=0.05)
    engine = make_engine(probe)
    callers = [
        gevent.spawn(stat, engine, [ORIGIN], "/test/a", token=token)
        for token in ["alice", "bob", ""] * 7
    ]
    join_all(callers)
    assert len(probe.calls) == 1
    later = stat(engine, [ORIGIN], "/test/a", token="carol")["origin"]
    assert (later.outcome, later.cached) == (Outcome.PRESENT, True)
    assert len(probe.calls) == 1
    assert cache_key("/test/a", "alice", token_scoped=False) == ("/test/a", "")
    assert cache_key("/test/a", "alice", token_scoped=True) == (
        "/test/a",
        hashlib.sha256(b"alice").hexdigest(),
    )


def test_present_and_absent_answers_are_cached_for_the_ttl_only() -> None:
    clock = FakeClock()  # the probe answers at once, so nothing waits on this clock
    probes = {"origin": FakeProbe(Outcome.PRESENT), "cache": FakeProbe(Outcome.ABSENT)}
    engine = make_engine(probes, clock=clock, cache_ttl=10.0)
    both = [ORIGIN, StatTarget("cache", "cache", "http://cache.invalid")]
    first = stat(engine, both, "/test/a", want_present=2)
    assert (first["origin"].outcome, first["origin"].cached) == (Outcome.PRESENT, False)
    assert (first["cache"].outcome, first["cache"].cached) == (Outcome.ABSENT, False)

    clock.advance(9.75)
    second = stat(engine, both, "/test/a", want_present=2)
    assert second["origin"] == answer(Outcome.PRESENT).as_cached()
    assert second["cache"] == answer(Outcome.ABSENT).as_cached()
    assert [len(p.calls) for p in probes.values()] == [1, 1]

    clock.advance(0.25)
    third = stat(engine, both, "/test/a", want_present=2)
    assert not third["origin"].cached and not third["cache"].cached
    assert [len(p.calls) for p in probes.values()] == [2, 2]
    assert state_of(engine, "origin").cached_outcomes == {"present": 1}
    settle(engine)


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.ERROR, Outcome.DENIED])
def test_timeouts_errors_and_denials_are_not_cached(outcome: Outcome) -> None:
    probe = FakeProbe(outcome)
    engine = make_engine(probe)
    for calls in (1, 2, 3):
        result = stat(engine, [ORIGIN], "/test/a")["origin"]
        assert (result.outcome, result.cached) == (outcome, False)
        assert len(probe.calls) == calls
    assert state_of(engine, "origin").cache_entries == 0
    settle(engine)


def test_a_token_scoped_cache_entry_never_serves_another_token() -> None:
    probe = FakeProbe()
    engine = make_engine(probe)

    def scoped(token: str) -> StatResult:
        return stat(engine, [ORIGIN], "/test/a", token=token, token_scoped=True)["origin"]

    assert not scoped("alice").cached
    assert scoped("alice").cached
    assert len(probe.calls) == 1
    assert not scoped("bob").cached
    assert not scoped("").cached
    assert len(probe.calls) == 3
    assert [token for _, token, _ in probe.calls] == ["alice", "bob", ""]
    assert state_of(engine, "origin").cache_entries == 3
    settle(engine)


def test_a_caller_joining_a_head_cut_short_by_another_deadline_still_gets_its_own_time() -> None:
    def healthy_but_slow(url: str, token: str, timeout: float) -> StatResult:
        try:
            with gevent.Timeout(timeout):
                gevent.sleep(0.15)
        except gevent.Timeout:
            return StatResult(Outcome.TIMEOUT, latency=timeout, server_fault=True)
        return answer(Outcome.PRESENT)

    engine = make_engine(FakeProbe(respond=healthy_but_slow), stat_timeout=1.0)
    hurried = gevent.spawn(stat, engine, [ORIGIN], "/test/a", within=0.05)
    gevent.sleep(0)
    patient = stat(engine, [ORIGIN], "/test/a", within=1.0)["origin"]
    join_all([hurried])
    settle(engine)
    assert patient.outcome is Outcome.PRESENT


# -- StatEngine.stat_many: deadlines and bounds ------------------------------------------------
def test_returns_as_soon_as_want_present_servers_are_present(gate: Event) -> None:
    probes = {"fast": FakeProbe(delay=0.01), "slow": FakeProbe(gate=gate)}
    engine = make_engine(probes)
    started = time.monotonic()
    results = stat(engine, [SLOW, FAST], "/test/a", within=2.0)
    assert time.monotonic() - started < 0.15
    assert results["fast"].outcome is Outcome.PRESENT
    assert results["slow"].outcome is Outcome.PENDING
    assert list(results) == ["slow", "fast"]  # in the order of the targets
    assert state_of(engine, "slow").rejections == {}  # stopped waiting early, not late
    gate.set()
    settle(engine)


def test_returns_when_all_servers_answered_without_enough_present() -> None:
    probes = {"fast": FakeProbe(Outcome.ABSENT, delay=0.01), "slow": FakeProbe(delay=0.05)}
    engine = make_engine(probes)
    started = time.monotonic()
    results = stat(engine, [SLOW, FAST], "/test/a", within=2.0, want_present=2)
    assert time.monotonic() - started < 0.2
    assert (results["slow"].outcome, results["fast"].outcome) == (Outcome.PRESENT, Outcome.ABSENT)
    settle(engine)


def test_never_waits_past_the_deadline_whatever_the_probe_does(gate: Event) -> None:
    probe = FakeProbe(gate=gate)  # blocks for 5 s and ignores its timeout
    engine = make_engine(probe, stat_timeout=1.0)
    started = time.monotonic()
    result = stat(engine, [SLOW], "/test/a", within=0.2)["slow"]
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.PENDING
    assert 0.19 <= elapsed < 0.3
    assert probe.calls[0][2] <= 0.2  # the HEAD was told min(stat timeout, time left)
    assert state_of(engine, "slow").rejections == {"deadline": 1}
    assert engine.live_stat_greenlets() == 1  # still running, on its own
    gate.set()
    settle(engine, 0.2)


def test_a_request_already_past_its_deadline_sends_no_probe() -> None:
    probe = FakeProbe()
    engine = make_engine(probe)
    results = engine.stat_many([ORIGIN], "/test/a", deadline=time.monotonic() - 0.01)
    assert results["origin"].outcome is Outcome.PENDING
    assert probe.calls == []
    assert state_of(engine, "origin").rejections == {"deadline": 1}
    assert engine.live_stat_greenlets() == 0


def test_a_blocked_server_holds_limit_active_and_max_waiters_waiting_the_rest_saturated(
    gate: Event,
) -> None:
    probe = FakeProbe(gate=gate)
    engine = make_engine(probe, concurrency_limit=3, max_waiters=2, max_wait=0.1, stat_timeout=1.0)
    peak = 0
    watching = True

    def watch() -> None:
        nonlocal peak
        while watching:
            peak = max(peak, engine.live_stat_greenlets())
            gevent.sleep(0.001)

    watcher = gevent.spawn(watch)
    started = time.monotonic()
    finished: dict[int, float] = {}

    def caller(number: int) -> StatResult:
        result = stat(engine, [SLOW], f"/test/{number}", within=0.3)["slow"]
        finished[number] = time.monotonic() - started
        return result

    callers = [gevent.spawn(caller, number) for number in range(10)]
    gevent.sleep(0.02)
    state = state_of(engine, "slow")
    assert (state.active, state.waiting) == (3, 2)
    assert len(probe.calls) == 3
    assert engine.live_stat_greenlets() == 5
    # The five beyond the waiting line were refused at once: they are done while the two
    # in the waiting line still wait (a wall-clock bound would measure the machine).
    assert sorted(finished) == [5, 6, 7, 8, 9]
    assert [callers[n].value.outcome for n in sorted(finished)] == [Outcome.SATURATED] * 5

    results = join_all(callers)
    assert [result.outcome for result in results] == (
        [Outcome.PENDING] * 3 + [Outcome.SATURATED] * 7
    )
    # The two waiters gave up after max wait, the three active callers at their deadline
    # (lower bounds and order: upper bounds would measure the machine's load).
    assert all(finished[number] >= 0.09 for number in (3, 4))
    assert all(finished[number] >= 0.29 for number in (0, 1, 2))
    assert max(finished[3], finished[4]) < min(finished[0], finished[1], finished[2])
    state = state_of(engine, "slow")
    assert state.rejections == {"saturated": 7, "deadline": 3}
    assert state.outcomes == {"pending": 3, "saturated": 7}
    assert state.saturated_recently
    assert len(probe.calls) == 3

    gate.set()
    settle(engine, 0.2)
    watching = False
    join_all([watcher])
    assert peak == 3 + 2


def test_a_waiter_handed_a_slot_in_time_sends_its_probe() -> None:
    probe = FakeProbe(delay=0.05)
    engine = make_engine(probe, concurrency_limit=1, max_waiters=1, max_wait=0.3)
    callers = [gevent.spawn(stat, engine, [ORIGIN], f"/test/{n}") for n in range(2)]
    results = join_all(callers)
    assert [r["origin"].outcome for r in results] == [Outcome.PRESENT] * 2
    assert (len(probe.calls), probe.peak) == (2, 1)
    assert state_of(engine, "origin").active == 0
    settle(engine)


def test_a_waiter_that_gets_no_slot_within_max_wait_is_saturated(gate: Event) -> None:
    probe = FakeProbe(gate=gate)
    engine = make_engine(probe, concurrency_limit=1, max_waiters=1, max_wait=0.05)
    holder = gevent.spawn(stat, engine, [SLOW], "/test/held", within=0.3)
    gevent.sleep(0)
    started = time.monotonic()
    result = stat(engine, [SLOW], "/test/waiting", within=1.0)["slow"]
    elapsed = time.monotonic() - started
    assert (result.outcome, result.detail) == (Outcome.SATURATED, "no free slot in time")
    assert 0.045 <= elapsed < 0.15
    assert len(probe.calls) == 1
    state = state_of(engine, "slow")
    assert (state.active, state.waiting, state.rejections) == (1, 0, {"saturated": 1})
    join_all([holder])
    gate.set()
    settle(engine)


# -- StatEngine: ejection end to end -----------------------------------------------------------
def test_five_full_length_timeouts_eject_the_server_at_once_with_no_probe_and_no_slot() -> None:
    probes = {"slow": FakeProbe(respond=time_out_after_timeout), "fast": FakeProbe()}
    engine = make_engine(
        probes, stat_timeout=0.05, concurrency_limit=2, max_waiters=0, ejection_base_time=30.0
    )
    for number in range(5):
        result = stat(engine, [SLOW], f"/test/{number}")["slow"]
        assert (result.outcome, result.server_fault) == (Outcome.TIMEOUT, True)
        assert state_of(engine, "slow").ejected is (number == 4)
    assert [timeout for _, _, timeout in probes["slow"].calls] == [0.05] * 5
    settle(engine)

    probes["slow"].respond = None  # it would answer now, but it is ejected
    started = time.monotonic()
    results = stat(engine, [SLOW, FAST], "/test/next")
    assert time.monotonic() - started < 0.02
    assert (results["slow"].outcome, results["slow"].detail) == (Outcome.EJECTED, "ejected")
    assert results["fast"].outcome is Outcome.PRESENT
    # Costs no slot: more callers than slots + waiting places are all "ejected", none
    # "saturated", and no stat greenlet is started for them.
    callers = [gevent.spawn(stat, engine, [SLOW], f"/test/burst/{n}") for n in range(10)]
    assert [r["slow"].outcome for r in join_all(callers)] == [Outcome.EJECTED] * 10
    assert len(probes["slow"].calls) == 5
    assert engine.live_stat_greenlets() == 0
    state = state_of(engine, "slow")
    assert (state.ejected, state.times_ejected, state.consecutive_failures) == (True, 1, 5)
    assert 29.0 < state.ejected_for <= 30.0
    assert (state.active, state.waiting) == (0, 0)
    assert state.rejections == {"ejected": 11}
    assert state.outcomes == {"timeout": 5, "ejected": 11}


def test_a_timeout_cut_short_by_the_callers_deadline_does_not_count_towards_ejection() -> None:
    probe = FakeProbe(respond=time_out_after_timeout)
    engine = make_engine(probe, stat_timeout=0.1, ejection_threshold=5)
    for number in range(6):
        result = stat(engine, [SLOW], f"/test/{number}", within=0.03)["slow"]
        assert result.outcome in (Outcome.PENDING, Outcome.TIMEOUT)
        assert not result.server_fault
    settle(engine)
    assert len(probe.calls) == 6
    assert all(timeout <= 0.03 for _, _, timeout in probe.calls)
    state = state_of(engine, "slow")
    assert (state.ejected, state.times_ejected, state.consecutive_failures) == (False, 0, 0)

    full = stat(engine, [SLOW], "/test/full-length")["slow"]  # a full-length one counts
    assert (full.outcome, full.server_fault) == (Outcome.TIMEOUT, True)
    assert state_of(engine, "slow").consecutive_failures == 1
    settle(engine)


def test_after_an_ejection_one_probe_at_a_time_decides_and_a_failed_probe_doubles_it(
    gate: Event,
) -> None:
    probe = FakeProbe(Outcome.ERROR)  # a 500 at once: a server fault
    engine = make_engine(probe, concurrency_limit=3, ejection_base_time=0.1, ejection_max_time=1.0)
    for number in range(5):
        assert stat(engine, [SLOW], f"/test/{number}")["slow"].outcome is Outcome.ERROR
    state = state_of(engine, "slow")
    assert (state.ejected, state.times_ejected) == (True, 1)
    assert state.ejected_for <= 0.1
    wait_until(lambda: not state_of(engine, "slow").ejected, 0.5, "first ejection over")

    assert stat(engine, [SLOW], "/test/probe-1")["slow"].outcome is Outcome.ERROR
    state = state_of(engine, "slow")
    assert (state.ejected, state.times_ejected) == (True, 2)
    assert 0.15 < state.ejected_for <= 0.2  # 2 x base
    assert stat(engine, [SLOW], "/test/ejected")["slow"].outcome is Outcome.EJECTED
    assert len(probe.calls) == 6
    wait_until(lambda: not state_of(engine, "slow").ejected, 0.5, "second ejection over")

    probe.outcome, probe.gate = Outcome.PRESENT, gate
    half_open_probe = gevent.spawn(stat, engine, [SLOW], "/test/probe-2")
    gevent.sleep(0.01)
    assert len(probe.calls) == 7
    others = [stat(engine, [SLOW], f"/test/other/{n}")["slow"].outcome for n in range(3)]
    assert others == [Outcome.EJECTED] * 3  # only one probe while half-open
    assert len(probe.calls) == 7
    gate.set()
    assert join_all([half_open_probe])[0]["slow"].outcome is Outcome.PRESENT
    state = state_of(engine, "slow")
    assert (state.ejected, state.times_ejected, state.consecutive_failures) == (False, 0, 0)

    callers = [gevent.spawn(stat, engine, [SLOW], f"/test/open/{n}") for n in range(3)]
    assert [r["slow"].outcome for r in join_all(callers)] == [Outcome.PRESENT] * 3
    assert len(probe.calls) == 10
    settle(engine)


# -- StatEngine: configuration, states and greenlets ------------------------------------------
def test_configure_with_a_new_limit_resizes_pools_and_wakes_their_waiters(gate: Event) -> None:
    probe = FakeProbe(gate=gate)
    config = stat_config(stat_timeout=1.0, concurrency_limit=1, max_waiters=2, max_wait=1.0)
    engine = StatEngine(config, probe_factory=lambda target, limit: probe)
    pinned = StatTarget("pinned", "cache", "http://pinned.invalid", limit=4)
    callers = [gevent.spawn(stat, engine, [SLOW], f"/test/{n}", within=1.5) for n in range(3)]
    gevent.sleep(0.01)
    state = state_of(engine, "slow")
    assert (state.limit, state.active, state.waiting) == (1, 1, 2)
    assert len(probe.calls) == 1

    bigger = stat_config(stat_timeout=1.0, concurrency_limit=3, max_waiters=5, max_wait=1.0)
    engine.configure(bigger, [SLOW, pinned])
    state = state_of(engine, "slow")
    assert (state.limit, state.max_waiters, state.active, state.waiting) == (3, 5, 3, 0)
    assert state_of(engine, "pinned").limit == 4  # the per-server override stays
    gevent.sleep(0.01)
    assert len(probe.calls) == 3
    gate.set()
    assert [r["slow"].outcome for r in join_all(callers)] == [Outcome.PRESENT] * 3
    settle(engine)
    assert state_of(engine, "slow").active == 0


def test_configure_with_a_target_list_drops_servers_no_longer_listed() -> None:
    probe = FakeProbe()
    engine = make_engine(probe)
    stat(engine, [SLOW, FAST, ORIGIN], "/test/a", want_present=3)
    assert sorted(state.name for state in engine.states()) == ["fast", "origin", "slow"]
    engine.configure(stat_config(concurrency_limit=7), [FAST])
    assert [(state.name, state.limit) for state in engine.states()] == [("fast", 7)]
    engine.configure(stat_config(concurrency_limit=7), [])
    assert engine.states() == []
    settle(engine)


def test_configure_with_a_moved_server_starts_its_pool_afresh() -> None:
    probe = FakeProbe()
    engine = make_engine(probe)
    stat(engine, [ORIGIN], "/test/a")
    assert state_of(engine, "origin").cache_entries == 1
    moved = StatTarget("origin", "origin", "http://moved.invalid")
    engine.configure(engine.config, [moved])
    state = state_of(engine, "origin")
    assert (state.url, state.cache_entries, state.outcomes) == ("http://moved.invalid", 0, {})
    assert not stat(engine, [moved], "/test/a")["origin"].cached
    assert probe.calls[-1][0] == "http://moved.invalid/test/a"
    settle(engine)


def test_states_report_outcomes_cached_outcomes_and_rejection_reasons(gate: Event) -> None:
    probes = {
        "fast": FakeProbe(Outcome.PRESENT),
        "bad": FakeProbe(Outcome.ERROR),
        "slow": FakeProbe(gate=gate),
    }
    engine = make_engine(
        probes, stat_timeout=1.0, concurrency_limit=1, max_waiters=0, ejection_threshold=1
    )
    bad = StatTarget("bad", "origin", "http://bad.invalid")
    assert stat(engine, [FAST], "/test/a")["fast"].outcome is Outcome.PRESENT
    assert stat(engine, [FAST], "/test/a")["fast"].cached
    assert stat(engine, [bad], "/test/a")["bad"].outcome is Outcome.ERROR
    assert stat(engine, [bad], "/test/a")["bad"].outcome is Outcome.EJECTED
    held = gevent.spawn(stat, engine, [SLOW], "/test/a", within=0.1)
    gevent.sleep(0)
    assert stat(engine, [SLOW], "/test/b")["slow"].outcome is Outcome.SATURATED
    assert join_all([held])[0]["slow"].outcome is Outcome.PENDING

    states = {state.name: state for state in engine.states()}
    assert list(states) == ["fast", "bad", "slow"]
    fast, bad_state, slow = states["fast"], states["bad"], states["slow"]
    assert (fast.kind, fast.url, fast.limit) == ("origin", "http://fast.invalid", 1)
    assert fast.outcomes == {"present": 2}
    assert fast.cached_outcomes == {"present": 1}
    assert (fast.rejections, fast.cache_entries, fast.saturated_recently) == ({}, 1, False)
    assert bad_state.outcomes == {"error": 1, "ejected": 1}
    assert bad_state.cached_outcomes == {}
    assert bad_state.rejections == {"ejected": 1}
    assert (bad_state.ejected, bad_state.times_ejected, bad_state.consecutive_failures) == (
        True,
        1,
        1,
    )
    assert slow.outcomes == {"saturated": 1, "pending": 1}
    assert slow.rejections == {"saturated": 1, "deadline": 1}
    assert (slow.active, slow.waiting, slow.max_waiters) == (1, 0, 0)
    assert slow.saturated_recently and not slow.ejected
    gate.set()
    settle(engine)
    assert state_of(engine, "slow").active == 0


def test_all_stat_greenlets_finish_shortly_after_the_probes_end(gate: Event) -> None:
    probes = {
        "slow": FakeProbe(gate=gate),
        "fast": FakeProbe(delay=0.01),
        "origin": FakeProbe(respond=time_out_after_timeout),
    }
    engine = make_engine(
        probes, stat_timeout=0.2, concurrency_limit=3, max_waiters=2, max_wait=0.05
    )
    callers = [
        gevent.spawn(stat, engine, [SLOW, FAST, ORIGIN], f"/test/{n}", within=0.1, want_present=3)
        for n in range(12)
    ]
    gevent.sleep(0.01)
    assert 0 < engine.live_stat_greenlets() <= 3 * (3 + 2)
    join_all(callers)
    wait_until(lambda: probes["origin"].running == 0, 0.5, "timing-out probes over")
    # Only the blocked ones may remain (the engine cuts them off PROBE_GRACE after their
    # timeout, so on a slow machine they may be gone already).
    assert engine.live_stat_greenlets() <= 3
    gate.set()
    settle(engine, 0.1)
    for state in engine.states():
        assert (state.active, state.waiting) == (0, 0), state.name


def test_a_straggler_success_after_ejection_does_not_end_half_open_probing() -> None:
    outliers, clock = detector()
    eject(outliers)
    outliers.record(fault=False, probe=False)  # a HEAD sent before the ejection
    assert outliers.ejected and outliers.times_ejected == 1
    clock.now += 30.0
    assert outliers.admit() == (True, True)  # half-open: one probe
    assert outliers.admit() == (False, False)  # and only one
    outliers.record(fault=False, probe=True)
    assert (outliers.times_ejected, outliers.consecutive_failures) == (0, 0)
    assert outliers.admit() == (True, False)


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
