"""Unit tests of the stat engine's fan-out (director/stat/engine.py): coalescing and the
presence cache, deadlines and bounds, configuration and greenlets, the probe's second HEAD
(ejection end to end: test_stat_engine_ejection.py).

No Django and no database: the engine is plain Python + gevent (gevent is monkey-patched
for the whole run by the ``director_project.gevent_pytest`` plugin). The tests inject a
fake probe through ``probe_factory`` (HeadProbe itself: test_stat_probe.py).

Timing: tests that wait use the real ``time.monotonic`` clock (gevent waits take real time);
a fake clock is used only for TTL arithmetic, where nothing waits on it.
Every wait has a deadline, and the ``hang_guard`` fixture fails any test that blocks for 5 s.
"""

from __future__ import annotations

import hashlib
import time

import gevent
import pytest
from gevent.event import Event
from helpers import (
    AT_ONCE,
    FAST,
    ORIGIN,
    SLOW,
    FakeClock,
    FakeProbe,
    answer,
    join_all,
    make_engine,
    settle,
    stat,
    stat_config,
    state_of,
    time_out_after_timeout,
    wait_until,
)

from director.stat import (
    Outcome,
    StatEngine,
    StatResult,
    StatTarget,
    cache_key,
)

pytestmark = pytest.mark.usefixtures("hang_guard")  # a bug fails a test, never hangs it


# -- StatEngine.stat_many: coalescing and cache ------------------------------------------------
def test_twenty_concurrent_callers_for_the_same_path_share_one_probe() -> None:
    probe = FakeProbe(delay=0.05)
    engine = make_engine(probe)
    # One deadline for all: callers that start a few ms apart on a loaded machine would
    # otherwise want a HEAD that lasts longer than the shared one, and send their own.
    deadline = engine.clock() + 1.0
    callers = [
        gevent.spawn(stat, engine, [ORIGIN], "/test/a", deadline=deadline) for _ in range(20)
    ]
    results = join_all(callers)
    assert len(probe.calls) == 1
    assert probe.calls[0][0] == "http://origin.invalid/test/a"
    assert all(result["origin"] == answer(Outcome.PRESENT) for result in results)
    assert state_of(engine, "origin").outcomes == {"present": 20}
    settle(engine)


def test_different_tokens_on_a_token_scoped_namespace_do_not_share_a_probe() -> None:
    probe = FakeProbe(delay=0.05)
    engine = make_engine(probe)
    deadline = engine.clock() + 1.0
    callers = [
        gevent.spawn(
            stat, engine, [ORIGIN], "/test/a", token=token, token_scoped=True, deadline=deadline
        )
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
    deadline = engine.clock() + 1.0
    callers = [
        gevent.spawn(stat, engine, [ORIGIN], "/test/a", token=token, deadline=deadline)
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
    assert time.monotonic() - started < AT_ONCE  # not the 2 s deadline
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
    assert time.monotonic() - started < AT_ONCE  # not the 2 s deadline
    assert (results["slow"].outcome, results["fast"].outcome) == (Outcome.PRESENT, Outcome.ABSENT)
    settle(engine)


def test_never_waits_past_the_deadline_whatever_the_probe_does(gate: Event) -> None:
    probe = FakeProbe(gate=gate)  # blocks for 5 s and ignores its timeout
    engine = make_engine(probe, stat_timeout=1.0)
    started = time.monotonic()
    result = stat(engine, [SLOW], "/test/a", within=0.2)["slow"]
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.PENDING
    assert 0.19 <= elapsed < 0.2 + AT_ONCE  # the deadline, not the probe's 5 s
    assert probe.calls[0][2] <= 0.2  # the HEAD was told min(stat timeout, time left)
    assert state_of(engine, "slow").rejections == {"deadline": 1}
    assert engine.live_stat_greenlets() == 1  # still running, on its own
    gate.set()
    settle(engine, 0.2)


def test_a_request_already_past_its_deadline_sends_no_probe() -> None:
    probe = FakeProbe()
    engine = make_engine(probe)
    results = engine.stat_many([ORIGIN], "/test/a", deadline=time.monotonic() - 0.01)
    assert results[ORIGIN.key].outcome is Outcome.PENDING
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
    engine = make_engine(probe, concurrency_limit=1, max_waiters=1, max_wait=0.2)
    holder = gevent.spawn(stat, engine, [SLOW], "/test/held", within=0.5)
    gevent.sleep(0)
    started = time.monotonic()
    result = stat(engine, [SLOW], "/test/waiting", within=1.0)["slow"]
    elapsed = time.monotonic() - started
    assert (result.outcome, result.detail) == (Outcome.SATURATED, "no free slot in time")
    assert 0.19 <= elapsed < 0.2 + AT_ONCE  # max wait, not the 1 s deadline
    assert len(probe.calls) == 1
    state = state_of(engine, "slow")
    assert (state.active, state.waiting, state.rejections) == (1, 0, {"saturated": 1})
    join_all([holder])
    gate.set()
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
    assert engine.live_stat_greenlets() <= 3 * (3 + 2)  # bounded while they run
    join_all(callers)
    wait_until(lambda: probes["origin"].running == 0, 5.0, "timing-out probes over")
    # Then only the blocked ones remain (the engine cuts them off PROBE_GRACE after their
    # timeout, so on a slow machine they may be gone already); the greenlets of the
    # probes that just ended finish a moment after them (seen: 4 under load).
    wait_until(lambda: engine.live_stat_greenlets() <= 3, 5.0, "only blocked probes left")
    gate.set()
    settle(engine, 2.0)
    for state in engine.states():
        assert (state.active, state.waiting) == (0, 0), state.name


def test_a_stat_greenlet_killed_before_it_ran_gives_everything_back():
    def never_called(url: str, token: str, timeout: float) -> StatResult:
        raise AssertionError("the HEAD must not run")

    engine = StatEngine(stat_config(concurrency_limit=1), probe_factory=lambda *_: never_called)
    target = StatTarget("s", "origin", "http://127.0.0.1:1")
    pool = engine.pool_for(target)
    answer = engine._start(pool, ("/x", ""), "http://127.0.0.1:1/x", "", time.monotonic() + 5, True)
    pool.group.kill(block=True)  # before the hub ever ran it
    gevent.sleep(0)

    assert pool.bulkhead.active == 0
    assert pool.inflight == {}
    assert answer.get(timeout=1).outcome is Outcome.PENDING


# -- the probe's second HEAD (director/stat/probe.py) ------------------------------------------
def test_the_probe_may_send_a_second_head_within_twice_the_stat_timeout_never_past_the_deadline():
    clock = FakeClock()  # the probe answers at once, so nothing waits on this clock
    probe = FakeProbe()
    engine = make_engine(probe, clock=clock, stat_timeout=0.25)
    stat(engine, [ORIGIN], "/test/roomy", within=2.0)
    stat(engine, [ORIGIN], "/test/tight", within=0.375)
    settle(engine)
    assert [timeout for _, _, timeout in probe.calls] == [0.25, 0.25]
    assert probe.budgets == [0.5, 0.375]


def test_a_timeout_the_probe_reports_as_cut_short_is_no_verdict_on_the_server() -> None:
    def cut_short(url: str, token: str, timeout: float) -> StatResult:
        return StatResult(Outcome.TIMEOUT, latency=timeout, server_fault=False)

    probe = FakeProbe(respond=cut_short)
    engine = make_engine(probe, stat_timeout=0.05, ejection_threshold=2)
    for number in range(4):
        result = stat(engine, [SLOW], f"/test/{number}")["slow"]
        assert (result.outcome, result.server_fault, result.detail) == (
            Outcome.TIMEOUT,
            False,
            "deadline",
        )
    settle(engine)
    state = state_of(engine, "slow")
    assert (state.ejected, state.consecutive_failures) == (False, 0)


def test_an_origin_and_a_cache_of_one_name_have_pools_of_their_own() -> None:
    probes = {"origin": FakeProbe(Outcome.PRESENT), "cache": FakeProbe(Outcome.ABSENT)}

    def factory(target: StatTarget, limit: int) -> FakeProbe:
        return probes[target.kind]

    engine = StatEngine(stat_config(), probe_factory=factory)
    origin = StatTarget("site", "origin", "http://origin.invalid")
    cache = StatTarget("site", "cache", "http://cache.invalid")
    for _ in range(2):  # the second time each pool is found again, not replaced
        results = engine.stat_many(
            [origin, cache], "/test/a", deadline=time.monotonic() + 1.0, want_present=2
        )
        assert results[origin.key].outcome is Outcome.PRESENT
        assert results[cache.key].outcome is Outcome.ABSENT
    settle(engine)
    assert sorted((state.kind, state.name) for state in engine.states()) == [
        ("cache", "site"),
        ("origin", "site"),
    ]
    assert len(probes["origin"].calls) == len(probes["cache"].calls) == 1  # then cached
