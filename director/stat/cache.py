"""Per-server cache of stat answers: bounded (LRU) and short-lived (TTL)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from director.stat.outcomes import KNOWN_ANSWERS, StatResult


class PresenceCache:
    """Keeps ``present`` and ``absent`` answers for ``ttl`` seconds, at most ``capacity``.

    The least recently used entry goes first when full. A hit does not extend the TTL (as
    in Pelican). Timeouts, errors and the rest are never stored.
    """

    def __init__(self, capacity: int, ttl: float, clock: Callable[[], float]) -> None:
        self.capacity = max(1, capacity)
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, StatResult]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def configure(self, capacity: int, ttl: float) -> None:
        self.capacity = max(1, capacity)
        self.ttl = ttl
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def get(self, key: Hashable) -> StatResult | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, result = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return result

    def put(self, key: Hashable, result: StatResult) -> None:
        if result.outcome not in KNOWN_ANSWERS or self.ttl <= 0:
            return
        self._entries[key] = (self._clock() + self.ttl, result.as_cached())
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
