"""The stat engine's outlier ejection end to end (director/stat/ejection.py through
``StatEngine.stat_many``): consecutive server faults eject a server, the half-open probe,
what a deadline-cut timeout does not count.

Plain Python + gevent, with the fake probe of helpers.py (see test_stat_engine.py's doc on
timing); the ``hang_guard`` fixture fails any test that blocks for 5 s.
"""

from __future__ import annotations

import time

import gevent
import pytest
from gevent.event import Event
from helpers import (
    AT_ONCE,
    FAST,
    SLOW,
    FakeClock,
    FakeProbe,
    join_all,
    make_engine,
    settle,
    stat,
    state_of,
    time_out_after_timeout,
)

from director.stat import (
    Outcome,
)

pytestmark = pytest.mark.usefixtures("hang_guard")  # a bug fails a test, never hangs it


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
    assert time.monotonic() - started < AT_ONCE  # no HEAD to the ejected server
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
    clock = FakeClock()  # ejection times on a clock of the test's: exact on any machine
    engine = make_engine(
        probe, clock=clock, concurrency_limit=3, ejection_base_time=0.125, ejection_max_time=1.0
    )
    for number in range(5):
        assert stat(engine, [SLOW], f"/test/{number}")["slow"].outcome is Outcome.ERROR
    state = state_of(engine, "slow")
    assert (state.ejected, state.times_ejected, state.ejected_for) == (True, 1, 0.125)
    clock.advance(0.125)
    assert not state_of(engine, "slow").ejected

    assert stat(engine, [SLOW], "/test/probe-1")["slow"].outcome is Outcome.ERROR
    state = state_of(engine, "slow")
    assert (state.ejected, state.times_ejected, state.ejected_for) == (True, 2, 0.25)  # 2 x base
    assert stat(engine, [SLOW], "/test/ejected")["slow"].outcome is Outcome.EJECTED
    assert len(probe.calls) == 6
    clock.advance(0.25)
    assert not state_of(engine, "slow").ejected

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
