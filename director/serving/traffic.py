"""What this process answered and statted: totals for ``/metrics``, rings for the console.

Plain Python. One instance per process (``traffic``), written by one thread (gevent):

1. **Totals.** The front door makes one call per answer, ``Traffic.answered``: a few
   dict increments and a bisect for the duration histogram, no lock, no allocation once
   a label set has been seen. ``/metrics`` exports the totals at scrape time
   (``director.ops.metrics``), so the request path never touches prometheus_client (whose
   counters take a lock per increment).
2. **Rings.** Every ``SAMPLE_SECONDS`` (2 s) a sampler greenlet (``director.ops.runtime``) hands
   ``Traffic.sample`` the stat engine's pool states, the shed counts and the loop lag; it
   writes the differences since the last sample into fixed-size rings: this process's over
   the last hour in 10 s slots (``PROCESS_SLOTS``), each server's over the last hour in
   1 min slots (``SERVER_SLOTS``). Memory is bounded: 8 x 360 doubles for the process and
   ``len(ServerHistory.SERIES)`` x 60 doubles (about 3.4 KB) per server of the registry;
   a server that leaves the registry leaves the rings at the next sample. Servers are
   keyed by (kind, name), as everywhere: an origin and a cache may share a name.

The numbers are this process's own: under gunicorn each worker counts what it answered
(the console says which worker answered; README, "Console").
"""

from __future__ import annotations

import enum
import logging
import os
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import gevent

from director.serving.supervisor import SupervisedLoop
from director.snapshot import ServerKey
from director.wire.types import ServerKind

logger = logging.getLogger(__name__)

# A sample every 2 s lands about five in each 10 s slot: a slot is never left empty (or
# given two samples' worth) by a late wake-up, as one sample per slot would be.
SAMPLE_SECONDS = 2.0
PROCESS_STEP = 10.0
PROCESS_SLOTS = 360  # 10 s slots: one hour
SERVER_STEP = 60.0
SERVER_SLOTS = 60  # 1 min slots: one hour
# Request duration buckets (seconds): redirects answer in ~1-10 ms, a stat-bound one within
# redirect_timeout (2.5 s), a database-bound one within DIRECTOR_DB_REQUEST_TIMEOUT (10 s).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RouteLabel(enum.StrEnum):
    """What answered a request: the ``route`` label of ``/metrics`` and the console's
    traffic, one per row of the route table (``director_project.routes``)."""

    OBJECT = "object"  # Pelican's object endpoint: cache redirects
    ORIGIN = "origin"  # Pelican's origin endpoint: origin redirects
    SHORTCUT = "shortcut"  # the root-path shortcut (either)
    API = "api"
    CONSOLE = "console"
    ADMIN = "admin"
    HEALTH = "health"
    METRICS = "metrics"


# Routes whose answers are redirect answers (counted by status code and destination).
REDIRECT_ROUTES = frozenset({RouteLabel.OBJECT, RouteLabel.ORIGIN, RouteLabel.SHORTCUT})
# An answer that names no destination (a 429 at the front door, a 405) has its route's.
ROUTE_DESTINATIONS = {RouteLabel.OBJECT: ServerKind.CACHE, RouteLabel.ORIGIN: ServerKind.ORIGIN}
# Stat outcomes, by what they say about the server (the console's four colours).
STAT_CLASSES = {
    "present": "present",
    "absent": "absent",
    "denied": "failed",
    "error": "failed",
    "timeout": "failed",
    "saturated": "rejected",
    "ejected": "rejected",
    "pending": "rejected",
}
ANSWER_CLASSES = ("redirect", "404", "429", "5xx", "other")


def answer_class(status: int) -> str:
    """307 and 200 (``redirect=false``) are redirects; 404, 429 and 5xx have their own
    class; the rest (400, 401, 405...) are "other"."""
    if status in (307, 200):
        return "redirect"
    if status in (404, 429):
        return str(status)
    if status >= 500:
        return "5xx"
    return "other"


class Buckets:
    """A histogram's counts (``bounds``, then +Inf) and sum, without a lock."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float] = DURATION_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus' (le, cumulative count) pairs, +Inf last."""
        pairs, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return pairs


class Ring:
    """``slots`` values of ``step`` seconds each, ending with the slot of the last write.

    Slots are addressed by ``int(now // step)``: moving on zeroes the slots skipped, so a
    quiet minute reads as 0, and no more than ``slots`` values are ever kept.
    """

    __slots__ = ("_last", "slots", "step", "values")

    def __init__(self, slots: int, step: float) -> None:
        self.slots = slots
        self.step = step
        self.values = array("d", bytes(8 * slots))
        self._last: int | None = None

    def _slot(self, now: float) -> int:
        index = int(now // self.step)
        last = self._last
        if last is None or index > last:
            if last is not None:
                for skipped in range(last + 1, min(index, last + self.slots) + 1):
                    self.values[skipped % self.slots] = 0.0
            self._last = last = index
        return last % self.slots  # a clock step back writes into the newest slot

    def add(self, now: float, amount: float) -> None:
        self.values[self._slot(now)] += amount

    def put_max(self, now: float, value: float) -> None:
        slot = self._slot(now)
        if value > self.values[slot]:
            self.values[slot] = value

    def series(self, now: float) -> list[float]:
        """The values, oldest first; the last one is the slot of ``now``."""
        newest = self._slot(now)
        return [self.values[(newest + 1 + i) % self.slots] for i in range(self.slots)]


class ServerHistory:
    """One server's last hour, in 1 min slots."""

    SERIES = ("redirects", "present", "absent", "failed", "rejected", "latency_sum", "heads")
    __slots__ = ("rings",)

    def __init__(self) -> None:
        self.rings = {name: Ring(SERVER_SLOTS, SERVER_STEP) for name in self.SERIES}

    def series(self, now: float) -> dict[str, list[float]]:
        return {name: ring.series(now) for name, ring in self.rings.items()}


@dataclass
class PoolCounts:
    """What ``Traffic.sample`` reads of one stat pool (``director.stat.PoolState``)."""

    key: ServerKey
    outcomes: Mapping[str, int]
    cached_outcomes: Mapping[str, int]
    latency_sum: float
    heads: int


@dataclass
class Traffic:
    """This process's answers, durations and stat outcomes (module docstring)."""

    started_at: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    # (route, destination, status code) -> answers
    answers: dict[tuple[str, str, int], int] = field(default_factory=dict)
    # server (kind, name) -> redirects that sent clients there first
    server_redirects: dict[ServerKey, int] = field(default_factory=dict)
    durations: dict[str, Buckets] = field(default_factory=dict)  # by route
    process: dict[str, Ring] = field(default_factory=dict)
    servers: dict[ServerKey, ServerHistory] = field(default_factory=dict)
    _last_answers: dict[str, int] = field(default_factory=dict)
    _last_redirects: dict[ServerKey, int] = field(default_factory=dict)
    _last_pools: dict[ServerKey, tuple[dict[str, int], float, int]] = field(default_factory=dict)
    sampled_at: float | None = None

    def __post_init__(self) -> None:
        names = [f"answers_{name}" for name in ANSWER_CLASSES]
        names += [f"stat_{name}" for name in ("present", "absent", "failed", "rejected")]
        names.append("loop_lag")
        self.process = {name: Ring(PROCESS_SLOTS, PROCESS_STEP) for name in names}

    # -- the request path: one call per answer ------------------------------------------------
    def answered(
        self,
        route: RouteLabel,
        status: int,
        seconds: float,
        destination: ServerKind | None = None,
        server: ServerKey | None = None,
    ) -> None:
        """Count one answer of ``route`` (``destination``: the kind of server a redirect
        answer sent the client to; ``server``: which one)."""
        if route in REDIRECT_ROUTES:
            kind = destination or ROUTE_DESTINATIONS.get(route)
            key = (route, kind or "unknown", status)  # a shortcut answer that names none
            self.answers[key] = self.answers.get(key, 0) + 1
            if server:
                self.server_redirects[server] = self.server_redirects.get(server, 0) + 1
        buckets = self.durations.get(route)
        if buckets is None:
            buckets = self.durations[route] = Buckets()
        buckets.observe(seconds)

    # -- the sampler: every SAMPLE_SECONDS ---------------------------------------------------
    def sample(
        self,
        now: float,
        pools: Iterable[PoolCounts],
        shed_total: int,
        loop_lag: float,
        servers: Sequence[ServerKey] | None = None,
    ) -> None:
        """Write what changed since the last sample into the rings; ``servers``: the
        registry's (kind, name) keys now (histories of others are dropped)."""
        process = self.process
        by_class = dict.fromkeys(ANSWER_CLASSES, 0)
        for (_, _, status), number in self.answers.items():
            by_class[answer_class(status)] += number
        by_class["429"] += shed_total  # answered before the application: still a 429
        for name, total in by_class.items():
            process[f"answers_{name}"].add(now, total - self._last_answers.get(name, 0))
        self._last_answers = by_class
        process["loop_lag"].put_max(now, loop_lag)

        keep = set(servers) if servers is not None else None
        for key, total in self.server_redirects.items():
            if keep is not None and key not in keep:
                continue
            delta = total - self._last_redirects.get(key, 0)
            if delta:
                self._history(key).rings["redirects"].add(now, delta)
        self._last_redirects = dict(self.server_redirects)

        pool_totals: dict[ServerKey, tuple[dict[str, int], float, int]] = {}
        for pool in pools:
            # Fresh outcomes only: a cached answer did not ask the server anything.
            fresh = {
                outcome: number - pool.cached_outcomes.get(outcome, 0)
                for outcome, number in pool.outcomes.items()
            }
            before, latency_before, heads_before = self._last_pools.get(pool.key, ({}, 0.0, 0))
            history = self._history(pool.key)
            for outcome, number in fresh.items():
                delta = number - before.get(outcome, 0)
                if delta > 0:  # a pool made anew counts from 0 again
                    kind = STAT_CLASSES.get(outcome, "failed")
                    history.rings[kind].add(now, delta)
                    process[f"stat_{kind}"].add(now, delta)
            if pool.heads > heads_before:
                history.rings["heads"].add(now, pool.heads - heads_before)
                history.rings["latency_sum"].add(now, pool.latency_sum - latency_before)
            pool_totals[pool.key] = (fresh, pool.latency_sum, pool.heads)
        self._last_pools = pool_totals
        if keep is not None:
            for key in [key for key in self.servers if key not in keep]:
                del self.servers[key]
            for key in [key for key in self.server_redirects if key not in keep]:
                del self.server_redirects[key]
        self.sampled_at = now

    def _history(self, key: ServerKey) -> ServerHistory:
        history = self.servers.get(key)
        if history is None:
            history = self.servers[key] = ServerHistory()
        return history

    # -- readers ------------------------------------------------------------------------------
    def process_series(self, now: float) -> dict[str, list[float]]:
        return {name: ring.series(now) for name, ring in self.process.items()}

    def server_series(self, key: ServerKey, now: float) -> dict[str, list[float]] | None:
        history = self.servers.get(key)
        return history.series(now) if history is not None else None


class Sampler:
    """Owner of the one greenlet that calls ``sample`` every ``SAMPLE_SECONDS``."""

    def __init__(self) -> None:
        self._loop = SupervisedLoop("director-traffic-sampler", logger, label="sampler")

    def start(self, sample: Callable[[], None]) -> None:
        self._loop.start(lambda: self._run(sample))

    def stop(self) -> None:
        self._loop.stop()

    @staticmethod
    def _run(sample: Callable[[], None]) -> None:
        while True:
            try:
                sample()
            except Exception:  # a bug in one sample must not end the console's numbers
                logger.exception("traffic sample failed; continuing")
            gevent.sleep(SAMPLE_SECONDS)


traffic = Traffic()
sampler = Sampler()
