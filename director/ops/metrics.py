"""Prometheus metrics (``GET /metrics``).

Counters that the request path updates live here; everything about the stat pools,
in-flight requests, greenlets and loop lag is read from its owner at scrape time by
``DirectorCollector``, so those figures are exact rather than maintained by hand.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress

from greenlet import greenlet
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from director import presence
from director.ops.loopmonitor import monitor
from director.ops.shedding import shedder

REDIRECTS = Counter(
    "pelican_director_redirects_total",
    "Redirect responses produced (307, or 200 with redirect=false).",
    ["destination", "status_code"],
)
REQUEST_DURATION = Histogram(
    "pelican_director_request_duration_seconds",
    "Time to answer a request, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


_redirect_children: dict[tuple[str, str], Counter] = {}
_duration_children: dict[str, Histogram] = {}


def count_redirect(destination: str, status_code: int) -> None:
    """``REDIRECTS.labels(...).inc()``, with the labelled child looked up once."""
    key = (destination, str(status_code))
    child = _redirect_children.get(key)
    if child is None:
        child = _redirect_children[key] = REDIRECTS.labels(*key)
    child.inc()


def observe_duration(route: str, seconds: float) -> None:
    child = _duration_children.get(route)
    if child is None:
        child = _duration_children[route] = REQUEST_DURATION.labels(route)
    child.observe(seconds)


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


class DirectorCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
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
            labels=["server_name", "reason"],
        )
        ejected = GaugeMetricFamily(
            "pelican_director_server_ejected",
            "1 while the server is ejected.",
            labels=["server_name"],
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
                rejected.add_metric([state.name, reason], number)
            ejected.add_metric([state.name], 1.0 if state.ejected else 0.0)
        yield from (stat_total, active, waiting, rejected, ejected)
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
