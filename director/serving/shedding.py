"""Load shedding on queueing delay, before any work (CoDel's rule, applied to requests).

Under CPU overload the queue forms before Django: in the kernel's accept backlog, in
sockets' buffers, and among the greenlets that wait for the event loop; no in-flight
count sees it. Each request's own delay is known exactly, from the kernel: the time since
its last bytes arrived (TCP_INFO's ``tcpi_last_data_recv``, read by the WSGI server as
it starts the request; director.serving.wsgiserver). Measured: under a 3,000 req/s overload
the event loop's timers stayed on time (lag under 0.1 s) while 4,096 connections waited
in the accept backlog: a loop-lag signal does not see this queue.

The rule (Nichols and Jacobson's CoDel, as HAProxy and Facebook's servers use it for
request queues; see bench/NOTES.md for why not an adaptive concurrency limit):

1. a standing queue is a run of requests that waited more than ``target``, lasting at
   least ``interval``. CoDel asks that *every* sample be above target; here a run is
   broken only by a pause of ``target`` with no such request, because the event loop
   serves each batch of ready sockets newest first (libev invokes pending watchers last
   in, first out): however long the queue, each batch starts with requests that waited
   a few milliseconds (measured: the median wait of a saturated loop was 0 ms while its
   90th percentile was 300 ms), so a single short wait says nothing;
2. while there is one, the process is congested: a request that waited more than
   ``target``, or that the event loop reaches more than half of ``target`` into its turn
   (the time since it last came back from polling), is answered 429 with Retry-After at
   once, from the WSGI server, before pywsgi even parses it (a refusal costs ~25 us
   where a redirect with two stats costs ~1 ms); the others are served. Each turn so
   admits new work only at its start and then finishes what earlier turns admitted (a
   redirect admitted now costs about twice as much again when its stats come back), so
   turns stay short, and with them the wait of the oldest request of the next batch: a
   refusal comes after little more than ``target``, and the requests served still use
   the whole CPU (Facebook's "adaptive" queue timeout does the same with a short timeout
   while congested). Measured at 4x the ceiling: admitting for the whole target made
   the 99th percentile of the refusals 45-56 ms; for half of it, 30-42 ms;
3. congestion ends once no request has waited more than ``target`` for ``interval``;
4. a request that has already waited longer than its deadline is never started: it is
   answered 429 at once, congested or not (its client may have given up).

Health and metrics are never shed. Plain Python: the clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from director.snapshot import DEFAULT_SETTINGS
from director.wire.documents import error_body

HEALTH_PATH = "/api/v1.0/health"
METRICS_PATH = "/metrics"
# Never shed, nor limited by max_inflight_requests: they say what the overload is.
UNSHED_PATHS = frozenset({HEALTH_PATH, METRICS_PATH})
# Connection greenlets a process keeps beyond max_inflight_requests, so that it can still
# answer 429, health and metrics when every request slot is taken (the default of
# DIRECTOR_CONNECTION_RESERVE for serve; gunicorn's worker_connections adds it too).
CONNECTION_RESERVE = 100
DEFAULT_CONNECTIONS = DEFAULT_SETTINGS.max_inflight_requests + CONNECTION_RESERVE
RETRY_AFTER = "1"
# The WSGI environ key under which the server passes on each request's queueing delay
# (seconds): a request's deadline counts from when it arrived, not from when it is served.
REQUEST_WAIT_ENVIRON = "director.request_wait"


@dataclass
class LoadShedder:
    """The one per process: ``observe`` is fed each request's queueing delay;
    ``shedding`` says whether to refuse the next one."""

    # Seconds, until ``configure`` passes the settings' current values.
    target: float = DEFAULT_SETTINGS.shed_queue_target
    interval: float = DEFAULT_SETTINGS.shed_queue_interval
    deadline: float = DEFAULT_SETTINGS.redirect_timeout  # a request's own
    enabled: bool = True
    clock: Callable[[], float] = time.monotonic
    congested: bool = False  # see ``shedding``
    run_since: float | None = None  # start of the current run of waits above target
    last_above: float = float("-inf")  # when a request last waited more than target
    shed_total: dict[str, int] = field(default_factory=dict)  # by reason
    # When the event loop last came back from polling (``turn_began``; None: unknown).
    turn_started: float | None = None

    def configure(self, target: float, interval: float, deadline: float) -> None:
        """New thresholds (a settings change); a target of 0 turns shedding off."""
        self.target, self.interval, self.deadline = target, interval, deadline
        self.enabled = target > 0
        if not self.enabled:
            self.congested, self.run_since = False, None

    @property
    def shedding(self) -> bool:
        """Congested: requests that waited more than ``target`` are refused (step 2)."""
        if self.congested and self.clock() - self.last_above >= self.interval:
            self.congested, self.run_since = False, None  # step 3
        return self.congested

    def observe(self, delay: float) -> None:
        """One queueing-delay sample (seconds)."""
        if not self.enabled or delay <= self.target:
            return
        now = self.clock()
        if self.run_since is None or now - self.last_above > self.target:
            self.run_since = now  # a pause broke the previous run
        self.last_above = now
        if not self.congested and now - self.run_since >= self.interval:
            self.congested = True

    def refusal(self, waited: float) -> str:
        """Why a request that waited ``waited`` seconds must not be started: "" to serve
        it."""
        if waited > self.deadline:
            return "deadline"
        if self.enabled and self.shedding:
            if waited > self.target:
                return "queue"
            turn = self.turn_started
            if turn is not None and self.clock() - turn > self.target / 2:
                return "queue"
        return ""

    def turn_began(self) -> None:
        """The event loop is back from polling: its new turn starts now (step 2)."""
        self.turn_started = self.clock()

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
