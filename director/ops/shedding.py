"""Load shedding on queueing delay, before any work (CoDel's rule, applied to requests).

Under CPU overload the queue forms before Django: in the kernel's accept backlog, in
sockets' buffers, and among the greenlets that wait for the event loop; no in-flight
count sees it. Each request's own delay is known exactly, from the kernel: the time since
its last bytes arrived (TCP_INFO's ``tcpi_last_data_recv``, read by the WSGI server as
it starts the request; director.ops.wsgiserver). Measured: under a 3,000 req/s overload
the event loop's timers stayed on time (lag under 0.1 s) while 4,096 connections waited
in the accept backlog: a loop-lag signal does not see this queue.

The rule (Nichols and Jacobson's CoDel, as HAProxy and Facebook's servers use it for
request queues; see bench/NOTES.md for why not an adaptive concurrency limit):

1. while every delay sample over the last ``interval`` was above ``target`` there is a
   standing queue: new requests are answered 429 with Retry-After at once, from the WSGI
   server, before Django (a shed request costs a header parse and a short write);
2. the first sample at or below ``target`` ends it;
3. a request that has already waited longer than its deadline is never started: it is
   answered 429 at once, standing queue or not (its client may have given up).

Health and metrics are never shed. Plain Python: the clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from director.wire.documents import error_body

HEALTH_PATH = "/api/v1.0/health"
METRICS_PATH = "/metrics"
# Never shed, nor limited by max_inflight_requests: they say what the overload is.
UNSHED_PATHS = frozenset({HEALTH_PATH, METRICS_PATH})
RETRY_AFTER = "1"


@dataclass
class LoadShedder:
    """The one per process: ``observe`` is fed each request's queueing delay;
    ``shedding`` says whether to refuse the next one."""

    target: float = 0.05  # seconds; see DirectorSettings.shed_queue_target
    interval: float = 0.5  # seconds; see DirectorSettings.shed_queue_interval
    deadline: float = 2.5  # seconds; a request's own (DirectorSettings.redirect_timeout)
    enabled: bool = True
    clock: Callable[[], float] = time.monotonic
    shedding: bool = False
    above_since: float | None = None  # when the delay last rose above target
    shed_total: dict[str, int] = field(default_factory=dict)  # by reason

    def configure(self, target: float, interval: float, deadline: float) -> None:
        """New thresholds (a settings change); a target of 0 turns shedding off."""
        self.target, self.interval, self.deadline = target, interval, deadline
        self.enabled = target > 0
        if not self.enabled:
            self.shedding, self.above_since = False, None

    def observe(self, delay: float) -> None:
        """One queueing-delay sample (seconds)."""
        if not self.enabled:
            return
        now = self.clock()
        if delay <= self.target:
            self.shedding, self.above_since = False, None
            return
        if self.above_since is None:
            self.above_since = now
        if now - self.above_since >= self.interval:
            self.shedding = True

    def refusal(self, waited: float) -> str:
        """Why a request that waited ``waited`` seconds must not be started: "" to serve
        it."""
        if waited > self.deadline:
            return "deadline"
        return "queue" if self.shedding else ""

    def count(self, reason: str) -> None:
        self.shed_total[reason] = self.shed_total.get(reason, 0) + 1

    def refusal_body(self, reason: str) -> bytes:
        if reason == "connections":
            text = "The director is at its connection limit; retry shortly."
        elif reason == "deadline":
            text = (
                f"The director is overloaded: this request waited over its {self.deadline:g} s "
                "deadline before it could be served; retry shortly."
            )
        else:
            text = (
                f"The director is overloaded (queueing delay above {self.target:g} s); "
                "retry shortly."
            )
        return error_body(text)


shedder = LoadShedder()
