"""The keyed cache in front of a remote (director/remote/cache.py), with a clock the tests
move: hits within the TTL, negative answers kept only seconds, single-flight for
concurrent misses, the last good value served while the remote fails, forced refetches
rate-limited per key, a bound on size and on waiting; and the polled value's age."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
import pytest
from gevent.event import Event
from helpers import FakeClock, join_all

from director.remote.cache import CacheBusy, Polled, RemoteCache


class Said(Exception):
    """The remote said no."""


class Down(Exception):
    """The remote could not be asked."""


class Remote:
    """A fetch function that counts its calls; its answer (or failure) is set by the test,
    and it can be held until released."""

    def __init__(self, answer: Any = "v1") -> None:
        self.answer = answer
        self.calls = 0
        self.gate: Event | None = None

    def __call__(self) -> Any:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5.0)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def make_cache(clock: FakeClock, **kw: Any) -> RemoteCache[Any]:
    settings: dict[str, Any] = {
        "ttl": 60.0,
        "negative_ttl": 5.0,
        "max_stale": 600.0,
        "wait": 2.0,
        "now": clock,
        "refusals": (Said,),
        "failures": (Down,),
        "refetch_interval": 10.0,
        "negative": lambda value: value is False,
    }
    settings.update(kw)
    return RemoteCache("test", **settings)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_value_is_fetched_once_within_its_ttl_then_again(clock):
    cache, remote = make_cache(clock), Remote()
    assert [cache.get("k", remote) for _ in range(50)] == ["v1"] * 50
    assert remote.calls == 1 and cache.counters.hits == 49
    clock.advance(61)
    remote.answer = "v2"
    assert cache.get("k", remote) == "v2"
    assert remote.calls == 2


def test_a_negative_value_is_kept_only_seconds(clock):
    cache, remote = make_cache(clock), Remote(False)
    assert cache.get("k", remote) is False
    clock.advance(4)
    assert cache.get("k", remote) is False
    assert remote.calls == 1
    clock.advance(2)
    remote.answer = True
    assert cache.get("k", remote) is True  # approved since: in on the next attempt
    assert remote.calls == 2


def test_a_refusal_is_kept_only_seconds_and_raised_to_each_caller(clock):
    cache, remote = make_cache(clock), Remote(Said("unknown prefix"))
    for _ in range(3):
        with pytest.raises(Said, match="unknown prefix"):
            cache.get("k", remote)
    assert remote.calls == 1
    clock.advance(6)
    remote.answer = "v1"
    assert cache.get("k", remote) == "v1"


def test_fifty_concurrent_misses_cost_one_fetch(clock):
    cache, remote = make_cache(clock), Remote()
    remote.gate = Event()
    callers = [gevent.spawn(cache.get, "k", remote) for _ in range(50)]
    gevent.sleep(0.05)
    remote.gate.set()
    assert join_all(callers) == ["v1"] * 50
    assert remote.calls == 1


def test_the_last_good_value_is_served_while_the_remote_fails(clock):
    cache, remote = make_cache(clock), Remote()
    cache.get("k", remote)
    clock.advance(61)
    remote.answer = Down("status 500")
    assert cache.get("k", remote) == "v1"
    state = cache.state("k")
    assert (state.last_error, state.last_error_at) == ("status 500", clock.now)
    assert cache.counters.stale_served == 1
    # Too old to be served: the failure itself.
    clock.advance(600)
    with pytest.raises(Down):
        cache.get("k", remote)
    # A failing remote is asked again after a second, not once per caller.
    calls = remote.calls
    for _ in range(20):
        with pytest.raises(Down):
            cache.get("k", remote)
    assert remote.calls == calls
    # Back: the next call after that second fetches.
    remote.answer = "v2"
    clock.advance(1)
    assert cache.get("k", remote) == "v2"


def test_a_key_never_fetched_gets_the_failure(clock):
    cache = make_cache(clock)
    with pytest.raises(Down, match="refused"):
        cache.get("k", Remote(Down("connection refused")))


def test_a_refusal_is_not_hidden_by_an_older_good_value(clock):
    cache, remote = make_cache(clock), Remote()
    cache.get("k", remote)
    clock.advance(61)
    remote.answer = Said("revoked")
    with pytest.raises(Said):
        cache.get("k", remote)


def test_forced_refetches_of_a_key_come_at_most_once_per_interval(clock):
    cache, remote = make_cache(clock), Remote()
    cache.get("k", remote)
    clock.advance(10)
    remote.answer = "v2"
    assert cache.get("k", remote, force=True) == "v2"  # the first at once
    for _ in range(100):  # a stream of forced lookups within the interval
        clock.advance(0.05)
        assert cache.get("k", remote, force=True) == "v2"
    assert remote.calls == 2
    clock.advance(10)
    assert cache.get("k", remote, force=True) == "v2"
    assert remote.calls == 3


def test_a_forced_refetch_that_fails_serves_the_last_good_value_and_says_so(clock):
    cache, remote = make_cache(clock), Remote()
    cache.get("k", remote)
    clock.advance(11)
    remote.answer = Down("timeout after 2.5 s")
    assert cache.get("k", remote, force=True) == "v1"
    state = cache.state("k")
    assert state.last_error_at == state.attempted_at == clock.now


def test_a_fetch_that_outlives_the_wait_is_a_failure_and_the_fetch_goes_on(clock):
    cache, remote = make_cache(clock, wait=0.2), Remote()
    remote.gate = Event()
    with pytest.raises(CacheBusy, match="no answer within 0.2 s"):
        cache.get("k", remote)
    remote.gate.set()
    gevent.sleep(0.05)
    assert cache.get("k", remote) == "v1"  # stored by the fetch that went on
    assert remote.calls == 1


def test_misses_of_more_keys_than_fetch_slots_fail_at_once(clock):
    cache, remote = make_cache(clock, max_fetches=2), Remote()
    remote.gate = Event()
    held = [gevent.spawn(cache.get, key, remote) for key in ("a", "b")]
    gevent.sleep(0.05)
    with pytest.raises(CacheBusy, match="too many fetches"):
        cache.get("c", remote)
    remote.gate.set()
    assert join_all(held) == ["v1", "v1"]


def test_a_killed_fetch_answers_its_waiters(clock):
    cache, remote = make_cache(clock), Remote()
    remote.gate = Event()
    waiter = gevent.spawn(cache.get, "k", remote)
    gevent.sleep(0.05)
    cache.close()
    waiter.join(2.0)
    assert isinstance(waiter.exception, CacheBusy)


def test_the_cache_keeps_at_most_its_capacity(clock):
    cache = make_cache(clock, capacity=3)
    for key in range(10):
        cache.get(key, Remote(key))
    assert len(cache) == 3
    assert cache.peek(9) == 9 and cache.peek(0) is None


def test_a_polled_value_keeps_its_last_good_value_with_its_age(clock):
    polled: Polled[dict[str, Any]] = Polled()
    fetch: Callable[[], dict[str, Any]] = lambda: {"a": 1}  # noqa: E731
    assert polled.age(clock()) is None
    assert polled.refresh(fetch, clock, (Down,))
    clock.advance(90)
    assert not polled.refresh(Remote(Down("status 500")), clock, (Down,))
    assert polled.value == {"a": 1}
    assert polled.age(clock()) == 90
    assert (polled.last_error, polled.last_error_at) == ("status 500", clock.now)
    assert polled.refresh(fetch, clock, (Down,))
    assert (polled.age(clock()), polled.last_error) == (0, None)
