"""Per-server cache of stat answers: bounded (LRU) and short-lived (TTL), on cachetools."""

from __future__ import annotations

from collections.abc import Callable, Hashable

from cachetools import TLRUCache

from director.stat.outcomes import KNOWN_ANSWERS, StatResult

# Entries are (expires at, result): the expiry is fixed when an answer is stored, so a
# new TTL applies to new answers only and a resize keeps every entry's expiry.
Entry = tuple[float, StatResult]


def _stored_expiry(key: Hashable, entry: Entry, now: float) -> float:
    return entry[0]


class PresenceCache:
    """Keeps ``present`` and ``absent`` answers for ``ttl`` seconds, at most ``capacity``.

    The least recently used entry goes first when full. A hit does not extend the TTL (as
    in Pelican). Timeouts, errors and the rest are never stored.
    """

    def __init__(self, capacity: int, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: TLRUCache[Hashable, Entry] = self._new(capacity)

    def _new(self, capacity: int) -> TLRUCache[Hashable, Entry]:
        return TLRUCache(max(1, capacity), _stored_expiry, timer=self._clock)

    @property
    def capacity(self) -> int:
        return int(self._entries.maxsize)

    def __len__(self) -> int:
        """Entries that have not expired (cachetools drops the expired ones first)."""
        return len(self._entries)

    def configure(self, capacity: int, ttl: float) -> None:
        self.ttl = ttl
        if max(1, capacity) == self.capacity:
            return
        # A cache's size is fixed: move the entries, least recently used first, so that
        # a smaller cache keeps the most recent ones and the order of use is kept.
        old, self._entries = self._entries, self._new(capacity)
        moved = []
        while old:
            moved.append(old.popitem())
        for key, entry in moved:
            self._entries[key] = entry

    def get(self, key: Hashable) -> StatResult | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None else None

    def put(self, key: Hashable, result: StatResult) -> None:
        if result.outcome not in KNOWN_ANSWERS or self.ttl <= 0:
            return
        self._entries[key] = (self._clock() + self.ttl, result.as_cached())
