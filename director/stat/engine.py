"""The stat engine: bounded, deadline-driven presence checks across servers.

Plain Python and gevent; nothing here knows Django. ``director.presence`` feeds it the
servers of the routing snapshot and the settings row.

How one request's fan-out runs (``StatEngine.stat_many``), per candidate server in order:

1. A cached ``present``/``absent`` answer is used as is.
2. With no time left, the server is ``pending``.
3. A HEAD already in flight for the same server, path and authorisation is joined, if
   it was given at least as much time as this caller would give its own.
4. An ejected server is ``ejected`` at once (half-open: one probe at a time goes out).
5. A free slot starts a stat greenlet at once. With no free slot, a place in the short
   waiting line is taken synchronously (``saturated`` at once if the line is full) and
   the greenlet waits at most ``min(max wait, time left)`` for a slot.
6. Each HEAD runs under ``min(stat timeout, time left)``; a second one, without
   ``Want-Digest`` (``director.stat.probe``), only within the time left. The server's
   ``ServerPool`` (``director.stat.pool``) runs it in a greenlet it owns.

The caller then waits for answers until ``want_present`` servers answered ``present``,
or all answered, or its deadline passed; whatever is still running is ``pending`` and
finishes on its own, bounded by its own timeout. So per server there are never more than
``limit + max_waiters`` stat greenlets, and no caller waits past its deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import gevent
from gevent.event import AsyncResult

from director.stat.bulkhead import Ticket
from director.stat.outcomes import Outcome, StatResult, rejected
from director.stat.pool import ServerPool
from director.stat.probe import ATTEMPTS, HeadProbe, Probe
from director.stat.types import PoolState, StatConfig, StatTarget, cache_key
from director.wire.paths import go_path_escape

# A shared HEAD whose end is this close to a joiner's own is good enough to join.
JOIN_TOLERANCE = 0.01


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
        self._pools: dict[tuple[str, str], ServerPool] = {}  # by StatTarget.key
        # Pools of servers that left the registry while stats were still running: kept
        # (and counted) until those end, and revived if the server comes back meanwhile.
        self._draining: dict[tuple[str, str], ServerPool] = {}

    # -- configuration ----------------------------------------------------------------------
    def configure(self, config: StatConfig, targets: Iterable[StatTarget] | None = None) -> None:
        """Apply new settings; with ``targets``, also forget servers no longer listed."""
        self.config = config
        if targets is not None:
            wanted = {target.key: target for target in targets}
            for key in list(self._pools):
                if key not in wanted or wanted[key].url != self._pools[key].target.url:
                    self._drop(key)
            for target in wanted.values():
                self.pool_for(target)
            self._prune_draining()
        for pool in self._pools.values():
            pool.configure(pool.target, config)

    def update_targets(
        self, targets: Iterable[StatTarget], removed: Iterable[tuple[str, str]]
    ) -> None:
        """Follow a change of some servers only (the settings are unchanged); ``removed``
        holds the keys of servers gone."""
        for key in removed:
            if key in self._pools:
                self._drop(key)
        for target in targets:
            self.pool_for(target)
        self._prune_draining()

    def _drop(self, key: tuple[str, str]) -> None:
        pool = self._pools.pop(key)
        if len(pool.group):
            # Its stat greenlets end on their own, within the stat timeout.
            self._draining[key] = pool
        elif isinstance(pool.probe, HeadProbe):
            pool.probe.close()

    def _prune_draining(self) -> None:
        for key, pool in list(self._draining.items()):
            if not len(pool.group):
                del self._draining[key]
                if isinstance(pool.probe, HeadProbe):
                    pool.probe.close()

    def pool_for(self, target: StatTarget) -> ServerPool:
        pool = self._pools.get(target.key)
        if pool is not None and pool.target.url != target.url:
            self._drop(target.key)
            pool = None
        if pool is None:
            revived = self._draining.pop(target.key, None)
            if revived is not None and revived.target.url == target.url:
                pool = revived
                pool.configure(target, self.config)
            else:
                if revived is not None:
                    self._draining[target.key] = revived
                limit = ServerPool.limit_for(target, self.config)
                probe = self._probe_factory(target, limit)
                pool = ServerPool(target, self.config, probe, self.clock)
            self._pools[target.key] = pool
        elif pool.target != target:
            pool.configure(target, self.config)
        return pool

    def states(self) -> list[PoolState]:
        return [pool.state() for pool in self._pools.values()]

    def state(self, key: tuple[str, str]) -> PoolState | None:
        """One server's pool state, by (kind, name) (the console reads them a page of
        servers at a time)."""
        pool = self._pools.get(key)
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
    ) -> dict[tuple[str, str], StatResult]:
        """Stat ``path`` on ``targets``; one result per target, by ``StatTarget.key``
        (see module doc)."""
        key = cache_key(path, token, token_scoped)
        escaped = go_path_escape(path)
        results: dict[tuple[str, str], StatResult] = {}
        waiting: dict[AsyncResult, tuple[str, str]] = {}
        pools: dict[tuple[str, str], ServerPool] = {}
        for target in targets:
            pool = pools[target.key] = self.pool_for(target)
            answer = self._start(pool, key, target.url + escaped, token, deadline, use_cache)
            if isinstance(answer, StatResult):
                results[target.key] = answer
                pool.count(answer)
            else:
                waiting[answer] = target.key
        present = sum(1 for result in results.values() if result.outcome is Outcome.PRESENT)
        while waiting and present < want_present:
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            done = gevent.wait(list(waiting), timeout=remaining, count=1)
            for answer in done:
                server = waiting.pop(answer)
                result = answer.get()
                results[server] = result
                pools[server].count(result)
                if result.outcome is Outcome.PRESENT:
                    present += 1
        out_of_time = self.clock() >= deadline
        for server in waiting.values():
            results[server] = rejected(Outcome.PENDING, "still running")
            pools[server].count(results[server])
            if out_of_time:
                pools[server].reject("deadline")
        return {target.key: results[target.key] for target in targets}

    def _stat_window(self) -> float:
        """The longest one stat may take: its HEADs' timeouts (``probe.ATTEMPTS``)."""
        return ATTEMPTS * self.config.stat_timeout

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
                own_end = min(deadline, self.clock() + self._stat_window())
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
            # The stat ends by the deadline, or after its HEADs' timeouts (plus a wait).
            start_by = self.clock() + (self.config.max_wait if ticket is not None else 0.0)
            pool.inflight[key] = (answer, min(deadline, start_by + self._stat_window()))
        started: list[bool] = []  # the greenlet appends True when it starts running
        greenlet = pool.group.spawn(
            pool.run, key, url, token, deadline, answer, ticket, is_probe, started
        )
        # Killed before it ran, the greenlet never reaches its own cleanup.
        greenlet.link(lambda _: pool.cleanup_unstarted(key, answer, ticket, is_probe, started))
        return answer
