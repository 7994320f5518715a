"""The owner of a background loop (director.serving.supervisor): started once, its death
logged, stopped within its bound. Real greenlets; waits are bounded and generous (a busy
2-core machine), never a tight clock."""

from __future__ import annotations

import logging
import time

import gevent
import pytest
from gevent.event import Event
from helpers import wait_until

from director.serving.supervisor import SupervisedLoop

logger = logging.getLogger("tests.supervisor")


def forever(started: list[gevent.Greenlet], ended: Event | None = None) -> None:
    started.append(gevent.getcurrent())
    try:
        while True:
            gevent.sleep(0.01)
    finally:
        if ended is not None:
            ended.set()


def test_a_second_start_leaves_the_running_loop_alone() -> None:
    loop = SupervisedLoop("test-loop", logger)
    started: list[gevent.Greenlet] = []
    try:
        loop.start(lambda: forever(started))
        loop.start(lambda: forever(started))
        wait_until(lambda: len(started) >= 1, 10.0, "the loop ran")
        gevent.sleep(0.05)  # a second greenlet, had one been spawned, would have run by now
        assert loop.running
        assert len(started) == 1
        assert started[0].name == "test-loop"
    finally:
        loop.stop()


def test_a_loop_that_dies_is_logged_and_can_be_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = SupervisedLoop("test-loop", logger, label="test loop")

    def crash() -> None:
        raise ValueError("broken")

    with caplog.at_level(logging.ERROR, logger="tests.supervisor"):
        loop.start(crash)
        wait_until(
            lambda: any("test loop died" in r.getMessage() for r in caplog.records),
            10.0,
            "the death was logged",
        )
    assert not loop.running
    [record] = [r for r in caplog.records if "died" in r.getMessage()]
    assert record.getMessage() == "test loop died: ValueError('broken')"
    started: list[gevent.Greenlet] = []
    try:
        loop.start(lambda: forever(started))
        wait_until(lambda: len(started) == 1, 10.0, "started again")
        assert loop.running
    finally:
        loop.stop()


def test_stop_ends_the_loop_and_its_finally_blocks_run() -> None:
    loop = SupervisedLoop("test-loop", logger)
    started: list[gevent.Greenlet] = []
    ended = Event()
    loop.start(lambda: forever(started, ended))
    wait_until(lambda: len(started) == 1, 10.0, "the loop ran")
    loop.stop()
    assert ended.is_set()  # stop waited for the loop to end
    assert started[0].dead
    assert not loop.running
    loop.stop()  # a second stop is harmless


def test_stop_waits_no_longer_than_its_bound_for_a_loop_slow_to_end() -> None:
    loop = SupervisedLoop("test-loop", logger, stop_seconds=0.2)
    started: list[gevent.Greenlet] = []

    def slow_to_end() -> None:
        started.append(gevent.getcurrent())
        try:
            gevent.sleep(60)
        finally:
            gevent.sleep(60)  # cleaning up for a minute

    loop.start(slow_to_end)
    wait_until(lambda: len(started) == 1, 10.0, "the loop ran")
    began = time.monotonic()
    loop.stop()
    assert time.monotonic() - began < 30  # the bound (0.2 s), not the minute
    assert not loop.running
    started[0].kill(timeout=10)  # interrupts the clean-up: nothing outlives the test
    assert started[0].dead
