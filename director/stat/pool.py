"""One server's pool in the stat engine: its bulkhead, ejection, answer cache, the HEADs in
flight, its counters, and the stat greenlet that runs one HEAD under them.

``director.stat.engine`` decides when a stat starts (its module doc, steps 1-5); a
``ServerPool`` runs it (step 6) and always answers, whether the HEAD ran, waited in vain
for a slot, failed, or was killed before it started.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import gevent
from gevent.event import AsyncResult
from gevent.pool import Group

from director.stat.bulkhead import Bulkhead, Ticket
from director.stat.cache import PresenceCache
from director.stat.ejection import OutlierDetector
from director.stat.outcomes import Outcome, StatResult, rejected
from director.stat.probe import ATTEMPTS, HeadProbe, Probe
from director.stat.types import PoolState, StatConfig, StatTarget

logger = logging.getLogger(__name__)

# How long after a saturated rejection a server is still reported as saturated.
SATURATION_WINDOW = 10.0
# The probe is trusted to honour its timeout; past this much more it is cut off anyway.
PROBE_GRACE = 0.05


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
        left = deadline - self.clock()
        timeout = min(stat_timeout, left)
        if timeout <= 0:
            return rejected(Outcome.PENDING, "no time left")
        budget = min(ATTEMPTS * stat_timeout, left)
        result: StatResult = gevent.with_timeout(
            budget + PROBE_GRACE,
            self.probe,
            url,
            token,
            timeout,
            budget,
            timeout_value=StatResult(Outcome.TIMEOUT, latency=budget, server_fault=True),
        )
        truncated = timeout < stat_timeout
        if result.outcome is Outcome.TIMEOUT and (truncated or not result.server_fault):
            # Cut short by the request's deadline: no verdict on the server's health.
            return StatResult(Outcome.TIMEOUT, latency=result.latency, detail="deadline")
        self.detector.record(result.server_fault, is_probe)
        return result
