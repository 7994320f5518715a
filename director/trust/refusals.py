"""Refused advertisements counted per client address, so that an address that keeps
sending ads this director refuses (a token that does not verify, an ad it may not send)
is answered 429 before its next request is read, for the rest of the minute.

Fixed windows of ``window`` seconds; memory is bounded by ``capacity`` addresses (the
oldest are forgotten first, and every count expires with its window).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from cachetools import TTLCache

WINDOW_SECONDS = 60.0
CAPACITY = 100_000


class RefusalCounter:
    """Refusals per (address, window); ``clock`` is monotonic seconds (a test moves it)."""

    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.clock = clock
        self._counts: TTLCache[tuple[str, int], int] = TTLCache(capacity, 2 * window, timer=clock)

    def _slot(self, address: str) -> tuple[tuple[str, int], float]:
        now = self.clock()
        index = int(now // self.window)
        return (address, index), (index + 1) * self.window - now

    def retry_after(self, address: str, limit: int) -> int:
        """Seconds until ``address`` may be heard again (0: now): it was refused ``limit``
        times in this window already. ``limit`` 0 turns the limit off."""
        if limit <= 0:
            return 0
        key, left = self._slot(address)
        if self._counts.get(key, 0) < limit:
            return 0
        return max(1, math.ceil(left))

    def note(self, address: str) -> None:
        """One more refusal for ``address`` in this window."""
        key, _ = self._slot(address)
        self._counts[key] = self._counts.get(key, 0) + 1

    def clear(self) -> None:
        self._counts.clear()
