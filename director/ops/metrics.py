"""Prometheus metrics (``GET /metrics``).

Nothing here is written by the request path: ``DirectorCollector`` reads every figure
from its owner at scrape time: answers, redirects per server and request durations from
``director.serving.traffic`` (counted without a lock), the stat pools from the stat engine,
weights, downtimes and health-test verdicts from the routing snapshot, health-test runs
from the health tester, the external registry's routes from its client, in-flight
requests, greenlets and loop lag from theirs. Pelican's metric names are kept where
Pelican has the metric (reference section 6).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress

from greenlet import greenlet
from prometheus_client import REGISTRY
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from director import presence, registry
from director.federation import external, polls
from director.ops import healthtests
from director.serving.loopmonitor import monitor
from director.serving.shedding import shedder
from director.serving.traffic import traffic
from director.wire.types import HealthStatus


@dataclass
class InflightCounter:
    """Requests inside the Django app of this process right now (front door)."""

    count: int = 0


INFLIGHT = InflightCounter()


def _greenlet_types() -> set[type[greenlet]]:
    found = {greenlet}
    pending = [greenlet]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


def live_greenlets() -> int:
    """Started, not yet dead greenlets in this process, counted exactly.

    It walks the heap (a few ms: at scrape time, never per request); the walk's filter
    runs in C (``compress`` over ``map(type, ...)``), so Python only looks at greenlets.
    """
    types = _greenlet_types()
    objects = gc.get_objects()
    found = compress(objects, map(types.__contains__, map(type, objects)))
    return sum(1 for candidate in found if candidate)


def answer_metrics() -> Iterator[Metric]:
    """Every answer of the redirect routes, the successful ones, redirects per server,
    request durations per route."""
    answers = CounterMetricFamily(
        "pelican_director_answers",
        "Answers of the redirect routes (object, origin, root-path shortcut) by status code "
        "(307, 200 with redirect=false, 400, 401, 404, 405, 429, 5xx) and destination kind.",
        labels=["route", "destination", "status_code"],
    )
    redirects = CounterMetricFamily(
        "pelican_director_redirects",
        "Redirects issued (307, or 200 with redirect=false): Pelican's metric.",
        labels=["destination", "status_code"],
    )
    successful: dict[tuple[str, str], int] = {}
    for (route, destination, status), number in traffic.answers.items():
        answers.add_metric([route, destination, str(status)], number)
        if status in (200, 307):
            key = (destination, str(status))
            successful[key] = successful.get(key, 0) + number
    for key, number in successful.items():
        redirects.add_metric(list(key), number)
    per_server = CounterMetricFamily(
        "pelican_director_server_redirects",
        "Redirects whose Location was this server (the first choice).",
        labels=["server_name", "server_type"],
    )
    for (kind, name), number in traffic.server_redirects.items():
        per_server.add_metric([name, kind], number)
    durations = HistogramMetricFamily(
        "pelican_director_request_duration_seconds",
        "Time to answer a request, by route (object, origin, shortcut, api, health, "
        "metrics, admin, console).",
        labels=["route"],
    )
    for route, buckets in traffic.durations.items():
        durations.add_metric([route], buckets.cumulative(), sum_value=buckets.total)
    yield from (answers, redirects, per_server, durations)


def server_metrics() -> Iterator[Metric]:
    """Per server of the routing snapshot: Pelican's server count and status weight, and
    whether it is in downtime, routable, and passing its health tests."""
    snapshot = registry.installed()
    count = GaugeMetricFamily(
        "pelican_director_server_count",
        "Servers in the routing snapshot (1 per server): Pelican's metric.",
        labels=["server_name", "server_type", "from_topology"],
    )
    weight = GaugeMetricFamily(
        "pelican_director_server_statusweight",
        "The status weight (EWMA of the advertised status, times any health-test penalty).",
        labels=["server_name", "server_url", "server_type"],
    )
    downtime = GaugeMetricFamily(
        "pelican_director_server_in_downtime",
        "1 while the server is in an active downtime.",
        labels=["server_name", "server_type"],
    )
    routable = GaugeMetricFamily(
        "pelican_director_server_routable",
        "1 while the server takes part in routing (not expired, shutting down or in "
        "downtime; admin-disabled servers are not in the snapshot).",
        labels=["server_name", "server_type"],
    )
    health = GaugeMetricFamily(
        "pelican_director_server_health_test_ok",
        "The last director health test: 1 passed, 0 failed (servers not tested: absent).",
        labels=["server_name", "server_type"],
    )
    if snapshot is not None:
        now = time.time()
        for server in snapshot.servers.values():
            kind = server.kind.value
            count.add_metric([server.name, kind, "false"], 1)
            weight.add_metric(
                [server.name, server.auth_url or server.url, kind], server.status_weight
            )
            in_downtime = any(window.active(now) for window in server.downtimes)
            downtime.add_metric([server.name, kind], int(in_downtime))
            routable.add_metric([server.name, kind], int(server.routable(now)))
            if server.health_status in (HealthStatus.OK, HealthStatus.ERROR):
                health.add_metric([server.name, kind], int(server.health_status is HealthStatus.OK))
    yield from (count, weight, downtime, routable, health)


def health_test_metrics() -> Iterator[Metric]:
    runs = CounterMetricFamily(
        "pelican_director_total_ftx_test_runs",
        "Director health tests run by this process (Pelican's metric; report_status: the "
        "report to the server Succeeded or Failed, or NotReported without an issuer URL "
        "or a web URL).",
        labels=["server_name", "server_web_url", "server_type", "status", "report_status"],
    )
    durations = HistogramMetricFamily(
        "pelican_director_health_test_duration_seconds",
        "How long one whole health test took, by server type.",
        labels=["server_type"],
    )
    tester = healthtests.tester
    if tester is not None:
        for labels, number in tester.runs.items():
            runs.add_metric(list(labels), number)
        for kind, buckets in tester.durations.items():
            durations.add_metric([kind], buckets.cumulative(), sum_value=buckets.total)
    yield from (runs, durations)


def registry_poll_metrics() -> Iterator[Metric]:
    """The external registry's polled data (``director.federation.polls``), in a process
    that polls it: each dataset's age, whether its last poll failed, its entries."""
    state = polls.state
    if not state.started:
        return
    age = GaugeMetricFamily(
        "director_registry_polled_age_seconds",
        "Seconds since the dataset was last polled from the external registry with success "
        "(absent: never).",
        labels=["dataset"],
    )
    failing = GaugeMetricFamily(
        "director_registry_poll_failing",
        "1 when the dataset's last poll failed (its last good value is kept), else 0.",
        labels=["dataset"],
    )
    entries = GaugeMetricFamily(
        "director_registry_polled_entries",
        "Entries in the dataset's last good value (caches with allowed prefixes, downtimes).",
        labels=["dataset"],
    )
    now = state.now()
    for name, polled in state.datasets().items():
        seconds = polled.age(now)
        if seconds is not None:
            age.add_metric([name], seconds)
        failing.add_metric([name], 1.0 if polled.last_error else 0.0)
        entries.add_metric([name], len(polled.value) if polled.value is not None else 0)
    yield from (age, failing, entries)


def registry_metrics() -> Iterator[Metric]:
    """Per route of the external registry (external registry mode only): requests sent,
    errors (no usable answer), cache hits, latency; and whether it is reachable."""
    client = external.registry_client() if external.configured() else None
    if client is None:
        return
    status = client.status()
    labels = ["route"]
    requests = CounterMetricFamily(
        "pelican_director_registry_requests",
        "Requests sent to the external registry, by route.",
        labels=labels,
    )
    errors = CounterMetricFamily(
        "pelican_director_registry_errors",
        "Registry requests without a usable answer (timeout, refused, 5xx, garbage).",
        labels=labels,
    )
    hits = CounterMetricFamily(
        "pelican_director_registry_cache_hits",
        "Registry questions answered from this director's cache, by route.",
        labels=labels,
    )
    latency = SummaryMetricFamily(
        "pelican_director_registry_latency_seconds",
        "Time of the registry's answers, by route.",
        labels=labels,
    )
    for route, counters in status.routes.items():
        requests.add_metric([route], counters.requests)
        errors.add_metric([route], counters.errors)
        hits.add_metric([route], counters.cache_hits)
        latency.add_metric(
            [route], count_value=counters.latency_count, sum_value=counters.latency_sum
        )
    yield from (requests, errors, hits, latency)
    yield GaugeMetricFamily(
        "pelican_director_registry_reachable",
        "1 while the external registry's last call got an answer.",
        value=int(status.reachable),
    )


class DirectorCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from answer_metrics()
        yield from registry_metrics()
        yield from server_metrics()
        yield from health_test_metrics()
        yield from registry_poll_metrics()
        states = presence.engine.states()
        stat_total = CounterMetricFamily(
            "pelican_director_stat",
            "Stat outcomes per server (cached_result=true: answered from the result cache).",
            labels=["server_name", "server_type", "result", "cached_result"],
        )
        active = GaugeMetricFamily(
            "pelican_director_stat_active",
            "HEADs in flight.",
            labels=["server_name", "server_type"],
        )
        waiting = GaugeMetricFamily(
            "pelican_director_stat_waiting",
            "Stats waiting for a slot.",
            labels=["server_name", "server_type"],
        )
        rejected = CounterMetricFamily(
            "pelican_director_stat_rejected",
            "Stats not sent: saturated, ejected, or out of time (deadline).",
            labels=["server_name", "server_type", "reason"],
        )
        ejected = GaugeMetricFamily(
            "pelican_director_server_ejected",
            "1 while the server is ejected.",
            labels=["server_name", "server_type"],
        )
        ejected_left = GaugeMetricFamily(
            "pelican_director_server_ejected_seconds_left",
            "Seconds until the server's ejection ends (0 when not ejected).",
            labels=["server_name", "server_type"],
        )
        ejections = CounterMetricFamily(
            "pelican_director_server_ejections",
            "Times the server was ejected in a row (reset by a successful probe).",
            labels=["server_name", "server_type"],
        )
        latency = SummaryMetricFamily(
            "pelican_director_stat_duration_seconds",
            "Time of the HEADs sent to the server (answered or timed out).",
            labels=["server_name", "server_type"],
        )
        for state in states:
            for outcome, number in state.outcomes.items():
                cached = state.cached_outcomes.get(outcome, 0)
                if number - cached:
                    stat_total.add_metric(
                        [state.name, state.kind, outcome, "false"], number - cached
                    )
                if cached:
                    stat_total.add_metric([state.name, state.kind, outcome, "true"], cached)
            active.add_metric([state.name, state.kind], state.active)
            waiting.add_metric([state.name, state.kind], state.waiting)
            for reason, number in state.rejections.items():
                rejected.add_metric([state.name, state.kind, reason], number)
            ejected.add_metric([state.name, state.kind], 1.0 if state.ejected else 0.0)
            ejected_left.add_metric([state.name, state.kind], round(state.ejected_for, 3))
            ejections.add_metric([state.name, state.kind], state.times_ejected)
            latency.add_metric(
                [state.name, state.kind], count_value=state.heads, sum_value=state.latency_sum
            )
        yield from (stat_total, active, waiting, rejected, ejected, ejected_left, ejections)
        yield latency
        yield GaugeMetricFamily(
            "pelican_director_inflight_requests", "Requests being served.", value=INFLIGHT.count
        )
        yield GaugeMetricFamily(
            "pelican_director_greenlets", "Live greenlets in this process.", value=live_greenlets()
        )
        yield GaugeMetricFamily(
            "pelican_director_loop_lag_seconds",
            "How late a 100 ms timer fired (worst over about the last second).",
            value=monitor.lag,
        )
        shed = CounterMetricFamily(
            "pelican_director_requests_shed",
            "Requests answered 429 before any work: a standing queue (queue), a request "
            "that had waited past its deadline (deadline), a connection over the limit "
            "(connections).",
            labels=["reason"],
        )
        for reason in ("queue", "deadline", "connections"):
            shed.add_metric([reason], shedder.shed_total.get(reason, 0))
        yield shed
        yield GaugeMetricFamily(
            "pelican_director_shedding",
            "1 while new requests are shed.",
            value=int(shedder.shedding),
        )


_collector = DirectorCollector()
REGISTRY.register(_collector)
