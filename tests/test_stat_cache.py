"""Unit tests of the stat engine's presence cache (director/stat/cache.py): TTL, LRU
eviction, what is cached, resizing. A fake clock: nothing waits on it.
"""

from __future__ import annotations

import pytest
from helpers import FakeClock, answer

from director.stat import Outcome, StatResult
from director.stat.cache import PresenceCache

pytestmark = pytest.mark.usefixtures("hang_guard")  # a bug fails a test, never hangs it


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
