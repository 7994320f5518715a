"""Unit tests of outlier ejection (director/stat/ejection.py): consecutive faults eject,
the ejection doubles up to a cap, one half-open probe decides. A fake clock: nothing waits
on it.
"""

from __future__ import annotations

import pytest
from helpers import FakeClock

from director.stat.ejection import EjectionPolicy, OutlierDetector

pytestmark = pytest.mark.usefixtures("hang_guard")  # a bug fails a test, never hangs it


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
