"""How late a 100 ms timer fires: the event loop's lag, for metrics and health; and how
long work gives the loop a turn."""

from __future__ import annotations

import logging
import time
from collections import deque

import gevent

from director.serving.supervisor import SupervisedLoop

logger = logging.getLogger(__name__)

TICK = 0.1
WINDOW = 10  # ticks kept: about one second
# gevent.sleep(0) lets in only greenlets already runnable and may resume the caller before
# the loop polls for I/O (its docs say so; measured: a 1,000-namespace ad's chunks ran back
# to back, one redirect waited 59 ms). Any positive sleep waits for the next iteration.
IO_TURN_SECONDS = 0.0001


def yield_to_io() -> None:
    """Between chunks of long work: the requests that arrived meanwhile are read first."""
    gevent.sleep(IO_TURN_SECONDS)


class LoopMonitor:
    """Owner of one greenlet that sleeps ``TICK`` and records how late it woke up."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=WINDOW)
        self._loop = SupervisedLoop("director-loop-monitor", logger, label="loop monitor")

    @property
    def lag(self) -> float:
        """The worst lag over about the last second (0 before the first tick)."""
        return max(self.samples, default=0.0)

    def start(self) -> None:
        self._loop.start(self._run)

    def stop(self) -> None:
        self._loop.stop()

    def _run(self) -> None:
        while True:
            started = time.monotonic()
            gevent.sleep(TICK)
            self.samples.append(max(0.0, time.monotonic() - started - TICK))


monitor = LoopMonitor()
