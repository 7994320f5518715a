"""A keyed cache in front of a remote, and a polled value with its age.

``RemoteCache.get(key, fetch)``:

1. A fresh entry (younger than ``ttl``; a negative answer: than ``negative_ttl``) is
   returned without asking the remote (a hit).
2. Otherwise one fetch per key runs, in a greenlet of this cache's group (at most
   ``max_fetches`` at once); every caller that misses the same key meanwhile waits for
   that one fetch (single-flight), at most ``wait`` seconds (the fetch's own deadline
   plus a little), so a caller that gives up does not cancel the fetch for the others.
3. A fetch that ends in one of ``refusals`` (the remote said no) is a negative answer:
   kept ``negative_ttl`` seconds and raised to its callers. One that ends in one of
   ``failures`` (the remote could not be asked) is not kept: callers get the last good
   value while it is younger than ``max_stale`` (serve-stale-while-failing), else the
   failure. Either way the failure and its time are recorded for health.
4. ``force=True`` (a ``kid`` the cached key set lacks) refetches a fresh entry, but at
   most once per ``refetch_interval`` seconds per key: inside that interval the cached
   value is returned, so a stream of forged kids cannot hammer the remote.
5. After a failed fetch, the key is not fetched again for ``retry_after_failure``
   seconds (about 1 s: a breaker per key that half-opens at once): callers get step 3's
   answer, so a failing remote is not asked once per caller.

Times come from the injected ``now`` callable (tests move it instead of sleeping). At
most ``capacity`` keys are kept (least recently used go first).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import LRUCache
from gevent.event import AsyncResult
from gevent.pool import Pool

log = logging.getLogger(__name__)

V = TypeVar("V")
T = TypeVar("T")
Errors = tuple[type[Exception], ...]


class CacheBusy(Exception):
    """More different keys missed at once than the cache fetches at a time, or a fetch
    did not end within the wait; a failure like the remote's."""


@dataclass
class _Entry(Generic[V]):
    value: V | None
    refusal: Exception | None
    fetched_at: float
    expires_at: float


@dataclass
class KeyState:
    """What health and the caller may want to know of one key."""

    fetched_at: float | None = None  # the last answer (good or negative) stored
    attempted_at: float | None = None  # the last fetch started
    last_error: str | None = None
    last_error_at: float | None = None
    failure: BaseException | None = None  # the last fetch's failure, until one succeeds


@dataclass
class CacheCounters:
    hits: int = 0
    fetches: int = 0
    stale_served: int = 0
    failures: int = 0


class RemoteCache(Generic[V]):
    """See the module doc. ``negative(value)`` marks a value as a negative answer."""

    def __init__(
        self,
        name: str,
        *,
        ttl: float,
        negative_ttl: float,
        max_stale: float,
        wait: float,
        now: Callable[[], float],
        refusals: Errors = (),
        failures: Errors = (),
        negative: Callable[[V], bool] | None = None,
        refetch_interval: float = 10.0,
        retry_after_failure: float = 1.0,
        capacity: int = 10_000,
        max_fetches: int = 32,
    ) -> None:
        self.name = name
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_stale = max_stale
        self.wait = wait
        self.refetch_interval = refetch_interval
        self.retry_after_failure = retry_after_failure
        self.counters = CacheCounters()
        self._now = now
        self._refusals = refusals
        self._failures: Errors = (*failures, CacheBusy)
        self._negative = negative
        self._entries: LRUCache[Hashable, _Entry[V]] = LRUCache(max(1, capacity))
        self._states: LRUCache[Hashable, KeyState] = LRUCache(max(1, capacity))
        self._flights: dict[Hashable, AsyncResult] = {}
        self._fetchers = Pool(max(1, max_fetches))

    def __len__(self) -> int:
        return len(self._entries)

    def state(self, key: Hashable) -> KeyState:
        return self._states.get(key) or KeyState()

    def peek(self, key: Hashable) -> V | None:
        """The last good value of ``key``, however old, without asking anyone."""
        entry = self._entries.get(key)
        return entry.value if entry is not None else None

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def close(self) -> None:
        """Stops the fetches in flight (their callers get a failure)."""
        self._fetchers.kill(block=False)

    def get(self, key: Hashable, fetch: Callable[[], V], *, force: bool = False) -> V:
        now = self._now()
        entry = self._entries.get(key)
        if entry is not None and now < entry.expires_at:
            attempted = self.state(key).attempted_at
            if not force or (attempted is not None and now - attempted < self.refetch_interval):
                self.counters.hits += 1
                return self._answer(entry)
        flight = self._flights.get(key)
        state = self._states.get(key)
        if (
            flight is None
            and state is not None
            and state.failure is not None
            and state.attempted_at is not None
            and now - state.attempted_at < self.retry_after_failure
        ):
            return self._failed(key, state.failure)
        if flight is None:
            if self._fetchers.full():
                return self._failed(key, CacheBusy(f"{self.name}: too many fetches at once"))
            flight = AsyncResult()
            self._flights[key] = flight
            self._record(key).attempted_at = now
            self.counters.fetches += 1
            self._fetchers.spawn(self._fetch, key, fetch, flight)
        flight.wait(self.wait)
        if not flight.ready():
            return self._failed(key, CacheBusy(f"{self.name}: no answer within {self.wait:g} s"))
        if flight.successful():
            value: V = flight.value
            return value
        error = flight.exception
        assert isinstance(error, BaseException)
        if isinstance(error, self._failures):
            return self._failed(key, error)
        raise error.with_traceback(None)

    def _answer(self, entry: _Entry[V]) -> V:
        if entry.refusal is not None:
            raise entry.refusal.with_traceback(None)  # one instance, raised many times
        assert entry.value is not None
        return entry.value

    def _failed(self, key: Hashable, error: BaseException) -> V:
        """The last good value while it is young enough, else ``error`` raised."""
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.refusal is None
            and self._now() - entry.fetched_at <= self.max_stale
        ):
            self.counters.stale_served += 1
            assert entry.value is not None
            return entry.value
        raise error.with_traceback(None)

    def _record(self, key: Hashable) -> KeyState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = KeyState()
        return state

    def _fetch(self, key: Hashable, fetch: Callable[[], V], flight: AsyncResult) -> None:
        """The one fetch of ``key`` (its deadline is the fetch's own); the outcome goes
        to every waiter through ``flight``."""
        try:
            value = fetch()
        except self._refusals as refusal:
            self._store(key, _Entry(None, refusal, self._now(), self._now() + self.negative_ttl))
            flight.set_exception(refusal)
        except self._failures as failure:
            self._note_failure(key, failure)
            flight.set_exception(failure)
        except Exception as error:  # a bug in fetch: the waiters must still be answered
            log.exception("%s: fetching %r failed", self.name, key)
            self._note_failure(key, error)
            flight.set_exception(error)
        else:
            negative = self._negative is not None and self._negative(value)
            ttl = self.negative_ttl if negative else self.ttl
            self._store(key, _Entry(value, None, self._now(), self._now() + ttl))
            flight.set(value)
        finally:
            if not flight.ready():  # killed (GreenletExit): do not leave waiters waiting
                flight.set_exception(CacheBusy(f"{self.name}: fetch cancelled"))
            if self._flights.get(key) is flight:
                del self._flights[key]

    def _store(self, key: Hashable, entry: _Entry[V]) -> None:
        self._entries[key] = entry
        state = self._record(key)
        state.fetched_at = entry.fetched_at
        state.failure = None

    def _note_failure(self, key: Hashable, failure: Exception) -> None:
        self.counters.failures += 1
        state = self._record(key)
        state.last_error = str(failure)
        state.last_error_at = self._now()
        state.failure = failure


@dataclass
class Polled(Generic[T]):
    """The last good value of a poll, when it was fetched, and the last failure.

    ``refresh`` runs one poll: on success the value and its time replace the old ones
    and the error is cleared; on one of ``errors`` the old value stays (with its age).
    """

    value: T | None = None
    fetched_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    def refresh(self, fetch: Callable[[], T], now: Callable[[], float], errors: Errors) -> bool:
        try:
            value = fetch()
        except errors as error:
            self.last_error = str(error)
            self.last_error_at = now()
            return False
        self.value = value
        self.fetched_at = now()
        self.last_error = None
        self.last_error_at = None
        return True

    def age(self, now: float) -> float | None:
        """Seconds since the last good value, None if there never was one."""
        return None if self.fetched_at is None else now - self.fetched_at
