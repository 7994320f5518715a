"""The stat engine: bounded, deadline-driven presence checks across servers.

Plain Python and gevent; nothing here knows Django. ``director.presence`` feeds it the
servers of the routing snapshot and the settings row.

How one request's fan-out runs (``StatEngine.stat_many``), per candidate server in order:

1. A cached ``present``/``absent`` answer is used as is.
2. With no time left, the server is ``pending``.
3. A HEAD already in flight for the same server, path and authorisation is joined, if
   it was given at least as much time as this caller would give its own.
4. An ejected server is ``ejected`` at once (half-open: one probe at a time goes out).
5. A free slot starts a HEAD greenlet at once. With no free slot, a place in the short
   waiting line is taken synchronously (``saturated`` at once if the line is full) and
   the greenlet waits at most ``min(max wait, time left)`` for a slot.
6. Each HEAD runs under ``min(stat timeout, time left)``.

The caller then waits for answers until ``want_present`` servers answered ``present``,
or all answered, or its deadline passed; whatever is still running is ``pending`` and
finishes on its own, bounded by its own timeout. So per server there are never more than
``limit + max_waiters`` stat greenlets, and no caller waits past its deadline.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import gevent
from gevent.event import AsyncResult
from gevent.pool import Group

from director.stat.bulkhead import Bulkhead, Ticket
from director.stat.cache import PresenceCache
from director.stat.ejection import EjectionPolicy, OutlierDetector
from director.stat.outcomes import Outcome, StatResult, rejected
from director.stat.probe import HeadProbe, Probe
from director.wire.paths import go_path_escape

logger = logging.getLogger(__name__)

# How long after a saturated rejection a server is still reported as saturated.
SATURATION_WINDOW = 10.0
# The probe is trusted to honour its timeout; past this much more it is cut off anyway.
PROBE_GRACE = 0.05
# A shared HEAD whose end is this close to a joiner's own is good enough to join.
JOIN_TOLERANCE = 0.01


@dataclass(frozen=True, slots=True)
class StatTarget:
    name: str
    kind: str  # "origin" or "cache"
    url: str  # data URL without a trailing slash
    limit: int | None = None  # per-server override of the concurrency limit


@dataclass(frozen=True, slots=True)
class StatConfig:
    """The engine's parameters. No defaults here: ``director.presence.stat_config``
    derives them from the director's settings, whose defaults are written once."""

    stat_timeout: float
    concurrency_limit: int
    max_wait: float
    max_waiters: int
    cache_ttl: float
    cache_capacity: int
    ejection_threshold: int
    ejection_base_time: float
    ejection_max_time: float

    def ejection_policy(self) -> EjectionPolicy:
        return EjectionPolicy(
            self.ejection_threshold, self.ejection_base_time, self.ejection_max_time
        )


@dataclass(frozen=True)
class PoolState:
    """A copy of one server's pool state, for the API, metrics and health."""

    name: str
    kind: str
    url: str
    limit: int
    active: int
    waiting: int
    max_waiters: int
    ejected: bool
    ejected_for: float  # seconds left, 0 when not ejected
    times_ejected: int
    consecutive_failures: int
    cache_entries: int
    saturated_recently: bool
    outcomes: dict[str, int]  # outcome -> count, fresh and cached together
    cached_outcomes: dict[str, int]
    rejections: dict[str, int]  # saturated, ejected, deadline
    latency_sum: float = 0.0  # seconds, over the HEADs that got an answer or timed out
    heads: int = 0  # those HEADs


def cache_key(path: str, token: str, token_scoped: bool) -> tuple[str, str]:
    """(path, token hash) for namespaces that need a token, so that one user's answer
    never serves another; (path, "") for public ones."""
    if token_scoped and token:
        return path, hashlib.sha256(token.encode("utf-8")).hexdigest()
    return path, ""


class ServerPool:
    """Everything the engine keeps for one server: bulkhead, ejection, cache, HEADs."""

    def __init__(
        self,
        target: StatTarget,
        config: StatConfig,
        probe: Probe,
        clock: Callable[[], float],
    ) -> None:
        self.target = target
        self.config = config
        self.probe = probe
        self.clock = clock
        self.bulkhead = Bulkhead(self.limit_for(target, config), config.max_waiters)
        self.detector = OutlierDetector(config.ejection_policy(), clock)
        self.cache = PresenceCache(config.cache_capacity, config.cache_ttl, clock)
        self.group = Group()  # owner of this server's stat greenlets
        # key -> (the HEAD's answer, the monotonic time by which it will have ended)
        self.inflight: dict[tuple[str, str], tuple[AsyncResult, float]] = {}
        self.outcomes: Counter[tuple[Outcome, bool]] = Counter()
        self.rejections: Counter[str] = Counter()
        self.last_saturated_at = float("-inf")
        self.latency_sum = 0.0
        self.heads = 0

    @staticmethod
    def limit_for(target: StatTarget, config: StatConfig) -> int:
        return target.limit or config.concurrency_limit

    def configure(self, target: StatTarget, config: StatConfig) -> None:
        self.target = target
        self.config = config
        limit = self.limit_for(target, config)
        self.bulkhead.resize(limit, config.max_waiters)
        self.detector.policy = config.ejection_policy()
        self.cache.configure(config.cache_capacity, config.cache_ttl)
        if isinstance(self.probe, HeadProbe):
            self.probe.resize(limit)

    def count(self, result: StatResult) -> None:
        self.outcomes[(result.outcome, result.cached)] += 1
        if result.latency and not result.cached:  # a HEAD went out (the console's latency)
            self.latency_sum += result.latency
            self.heads += 1

    def reject(self, reason: str) -> None:
        self.rejections[reason] += 1
        if reason == "saturated":
            self.last_saturated_at = self.clock()

    def state(self) -> PoolState:
        now = self.clock()
        ejected_for = max(0.0, self.detector.ejected_until - now)
        # Plain dicts: the console reads a thousand of these per refresh.
        total: dict[str, int] = {}
        cached: dict[str, int] = {}
        for (outcome, was_cached), number in self.outcomes.items():
            name = outcome.value
            total[name] = total.get(name, 0) + number
            if was_cached:
                cached[name] = cached.get(name, 0) + number
        return PoolState(
            name=self.target.name,
            kind=self.target.kind,
            url=self.target.url,
            limit=self.bulkhead.limit,
            active=self.bulkhead.active,
            waiting=self.bulkhead.waiting,
            max_waiters=self.bulkhead.max_waiters,
            ejected=ejected_for > 0,
            ejected_for=ejected_for,
            times_ejected=self.detector.times_ejected,
            consecutive_failures=self.detector.consecutive_failures,
            cache_entries=len(self.cache),
            saturated_recently=now - self.last_saturated_at < SATURATION_WINDOW,
            outcomes=total,
            cached_outcomes=cached,
            rejections=dict(self.rejections),
            latency_sum=self.latency_sum,
            heads=self.heads,
        )

    # -- the stat greenlet ----------------------------------------------------------------
    def run(
        self,
        key: tuple[str, str],
        url: str,
        token: str,
        deadline: float,
        answer: AsyncResult,
        ticket: Ticket | None,
        is_probe: bool,
        started: list[bool],
    ) -> None:
        """One HEAD, in a greenlet of ``self.group``. Always sets ``answer``."""
        started.append(True)
        result: StatResult | None = None
        try:
            if ticket is not None:
                time_left = deadline - self.clock()
                wait = min(self.config.max_wait, time_left)
                if not self.bulkhead.wait_turn(ticket, wait):
                    if wait < self.config.max_wait:  # the caller's deadline cut the wait
                        self.reject("deadline")
                        result = rejected(Outcome.PENDING, "out of time waiting for a slot")
                    else:
                        self.reject("saturated")
                        result = rejected(Outcome.SATURATED, "no free slot in time")
                    return
            try:
                result = self._head(url, token, deadline, is_probe)
            finally:
                self.bulkhead.release()
            self.cache.put(key, result)
        except Exception:  # a bug, not a server answer: keep the engine alive, say so
            logger.exception("stat of %s failed unexpectedly", url)
            result = rejected(Outcome.ERROR, "internal error")
        finally:
            if is_probe and self.detector.probe_in_flight:
                self.detector.abandon_probe()
            shared = self.inflight.get(key)
            if shared is not None and shared[0] is answer:
                del self.inflight[key]
            if not answer.ready():
                answer.set(result or rejected(Outcome.PENDING, "stopped"))

    def cleanup_unstarted(
        self,
        key: tuple[str, str],
        answer: AsyncResult,
        ticket: Ticket | None,
        is_probe: bool,
        started: list[bool],
    ) -> None:
        """For a stat greenlet killed before it ran (its own ``finally`` never ran): give
        back its slot or waiting place, its probe turn, its in-flight entry, its answer."""
        if started:
            return
        if ticket is not None:
            self.bulkhead.abandon(ticket)
        else:
            self.bulkhead.release()
        if is_probe:
            self.detector.abandon_probe()
        shared = self.inflight.get(key)
        if shared is not None and shared[0] is answer:
            del self.inflight[key]
        if not answer.ready():
            answer.set(rejected(Outcome.PENDING, "stopped before it started"))

    def _head(self, url: str, token: str, deadline: float, is_probe: bool) -> StatResult:
        stat_timeout = self.config.stat_timeout
        timeout = min(stat_timeout, deadline - self.clock())
        if timeout <= 0:
            return rejected(Outcome.PENDING, "no time left")
        result: StatResult = gevent.with_timeout(
            timeout + PROBE_GRACE,
            self.probe,
            url,
            token,
            timeout,
            timeout_value=StatResult(Outcome.TIMEOUT, latency=timeout, server_fault=True),
        )
        truncated = timeout < stat_timeout
        if result.outcome is Outcome.TIMEOUT and truncated:
            # Cut short by the request's deadline: no verdict on the server's health.
            return StatResult(Outcome.TIMEOUT, latency=result.latency, detail="deadline")
        self.detector.record(result.server_fault, is_probe)
        return result


class StatEngine:
    """Per-server pools and the fan-out. One per process."""

    def __init__(
        self,
        config: StatConfig,
        *,
        user_agent: str = "pelican-director",
        probe_factory: Callable[[StatTarget, int], Probe] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.user_agent = user_agent
        self.clock = clock
        self._probe_factory = probe_factory or (
            lambda target, limit: HeadProbe(self.user_agent, limit)
        )
        self._pools: dict[str, ServerPool] = {}
        # Pools of servers that left the registry while stats were still running: kept
        # (and counted) until those end, and revived if the server comes back meanwhile.
        self._draining: dict[str, ServerPool] = {}

    # -- configuration ----------------------------------------------------------------------
    def configure(self, config: StatConfig, targets: Iterable[StatTarget] | None = None) -> None:
        """Apply new settings; with ``targets``, also forget servers no longer listed."""
        self.config = config
        if targets is not None:
            wanted = {target.name: target for target in targets}
            for name in list(self._pools):
                if name not in wanted or wanted[name].url != self._pools[name].target.url:
                    self._drop(name)
            for target in wanted.values():
                self.pool_for(target)
            self._prune_draining()
        for pool in self._pools.values():
            pool.configure(pool.target, config)

    def update_targets(self, targets: Iterable[StatTarget], removed: Iterable[str]) -> None:
        """Follow a change of some servers only (the settings are unchanged)."""
        for name in removed:
            if name in self._pools:
                self._drop(name)
        for target in targets:
            self.pool_for(target)
        self._prune_draining()

    def _drop(self, name: str) -> None:
        pool = self._pools.pop(name)
        if len(pool.group):
            # Its stat greenlets end on their own, within the stat timeout.
            self._draining[name] = pool
        elif isinstance(pool.probe, HeadProbe):
            pool.probe.close()

    def _prune_draining(self) -> None:
        for name, pool in list(self._draining.items()):
            if not len(pool.group):
                del self._draining[name]
                if isinstance(pool.probe, HeadProbe):
                    pool.probe.close()

    def pool_for(self, target: StatTarget) -> ServerPool:
        pool = self._pools.get(target.name)
        if pool is not None and pool.target.url != target.url:
            self._drop(target.name)
            pool = None
        if pool is None:
            revived = self._draining.pop(target.name, None)
            if revived is not None and revived.target.url == target.url:
                pool = revived
                pool.configure(target, self.config)
            else:
                if revived is not None:
                    self._draining[target.name] = revived
                limit = ServerPool.limit_for(target, self.config)
                probe = self._probe_factory(target, limit)
                pool = ServerPool(target, self.config, probe, self.clock)
            self._pools[target.name] = pool
        elif pool.target != target:
            pool.configure(target, self.config)
        return pool

    def states(self) -> list[PoolState]:
        return [pool.state() for pool in self._pools.values()]

    def state(self, name: str) -> PoolState | None:
        """One server's pool state (the console reads them a page of servers at a time)."""
        pool = self._pools.get(name)
        return pool.state() if pool is not None else None

    def live_stat_greenlets(self) -> int:
        pools = [*self._pools.values(), *self._draining.values()]
        return sum(len(pool.group) for pool in pools)

    # -- the fan-out --------------------------------------------------------------------------
    def stat_many(
        self,
        targets: Sequence[StatTarget],
        path: str,
        *,
        deadline: float,
        token: str = "",
        token_scoped: bool = False,
        want_present: int = 1,
        use_cache: bool = True,
    ) -> dict[str, StatResult]:
        """Stat ``path`` on ``targets``; return one result per target name (see module doc)."""
        key = cache_key(path, token, token_scoped)
        escaped = go_path_escape(path)
        results: dict[str, StatResult] = {}
        waiting: dict[AsyncResult, str] = {}
        pools: dict[str, ServerPool] = {}
        for target in targets:
            pool = pools[target.name] = self.pool_for(target)
            answer = self._start(pool, key, target.url + escaped, token, deadline, use_cache)
            if isinstance(answer, StatResult):
                results[target.name] = answer
                pool.count(answer)
            else:
                waiting[answer] = target.name
        present = sum(1 for result in results.values() if result.outcome is Outcome.PRESENT)
        while waiting and present < want_present:
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            done = gevent.wait(list(waiting), timeout=remaining, count=1)
            for answer in done:
                name = waiting.pop(answer)
                result = answer.get()
                results[name] = result
                pools[name].count(result)
                if result.outcome is Outcome.PRESENT:
                    present += 1
        out_of_time = self.clock() >= deadline
        for name in waiting.values():
            results[name] = rejected(Outcome.PENDING, "still running")
            pools[name].count(results[name])
            if out_of_time:
                pools[name].reject("deadline")
        return {target.name: results[target.name] for target in targets}

    def _start(
        self,
        pool: ServerPool,
        key: tuple[str, str],
        url: str,
        token: str,
        deadline: float,
        use_cache: bool,
    ) -> StatResult | AsyncResult:
        """Steps 1-5 of the module doc: an immediate result, or an answer to wait for."""
        if use_cache:
            cached = pool.cache.get(key)
            if cached is not None:
                return cached
            shared = pool.inflight.get(key)
            if shared is not None:
                answer, ends_at = shared
                own_end = min(deadline, self.clock() + self.config.stat_timeout)
                if ends_at >= own_end - JOIN_TOLERANCE:
                    return answer
                # That HEAD was cut short by an earlier deadline: send our own.
        if deadline - self.clock() <= 0:
            pool.reject("deadline")
            return rejected(Outcome.PENDING, "no time left")
        admitted, is_probe = pool.detector.admit()
        if not admitted:
            pool.reject("ejected")
            return rejected(Outcome.EJECTED, "ejected")
        ticket: Ticket | None = None
        if not pool.bulkhead.try_acquire():
            ticket = pool.bulkhead.enqueue() if self.config.max_wait > 0 else None
            if ticket is None:
                if is_probe:
                    pool.detector.abandon_probe()
                pool.reject("saturated")
                return rejected(Outcome.SATURATED, "all slots and waiting places taken")
        answer = AsyncResult()
        if use_cache:
            # The HEAD ends by the deadline, or after the stat timeout (plus a wait).
            start_by = self.clock() + (self.config.max_wait if ticket is not None else 0.0)
            pool.inflight[key] = (answer, min(deadline, start_by + self.config.stat_timeout))
        started: list[bool] = []  # the greenlet appends True when it starts running
        greenlet = pool.group.spawn(
            pool.run, key, url, token, deadline, answer, ticket, is_probe, started
        )
        # Killed before it ran, the greenlet never reaches its own cleanup.
        greenlet.link(lambda _: pool.cleanup_unstarted(key, answer, ticket, is_probe, started))
        return answer
