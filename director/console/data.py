"""The console's pages as data: overview, one server, the map, the namespaces.

Everything is this process's view (its stat pools, its rings, its snapshot) joined with
the registry rows of ``director.console.rows``; the schemas are ``console.schemas``.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time

from django.conf import settings

from director import presence, registry
from director.console.rows import PAGE_SIZE, ServerRow, detail_url, server_rows
from director.console.schemas import (
    ConsoleNamespaceOut,
    ConsoleServerOut,
    CountsOut,
    DowntimeWindowOut,
    ExternalRegistryOut,
    MapOut,
    MapPointOut,
    NamespaceServerOut,
    NamespacesPageOut,
    OverviewOut,
    PolledDatasetOut,
    SeriesOut,
    ServerPageOut,
    ServerSeriesOut,
    WorkerOut,
)
from director.federation import external, polls
from director.models import Downtime, Namespace
from director.ops.health import assess
from director.schemas import HealthOut
from director.serving import database
from director.serving.traffic import ANSWER_CLASSES, PROCESS_STEP, traffic
from director.snapshot import Entry, ServerKey, Snapshot
from director.wire.types import HealthStatus, ServerKind

WINDOW_SECONDS = 900.0  # the overview's window: 15 minutes
STAT_CLASSES = ("present", "absent", "failed", "rejected")
_HOST = socket.gethostname()


def _time(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def worker() -> WorkerOut:
    return WorkerOut(host=_HOST, pid=os.getpid(), startedAt=_time(traffic.started_at))


def _complete(series: list[float], slots: int) -> list[float]:
    """The last ``slots`` complete slots (the slot in progress, the last, left out)."""
    return series[-(slots + 1) : -1]


def overview(now: float | None = None) -> OverviewOut:
    moment = now if now is not None else time.time()
    snapshot = registry.current()
    verdict = assess(snapshot.settings.max_inflight_requests)
    rows = server_rows(moment)
    slots = int(WINDOW_SECONDS // PROCESS_STEP)
    process = traffic.process_series(moment)

    def rates(name: str) -> list[float]:
        return [value / PROCESS_STEP for value in _complete(process[name], slots)]

    answers = {name: rates(f"answers_{name}") for name in ANSWER_CLASSES}
    stat = {name: rates(f"stat_{name}") for name in STAT_CLASSES}
    totals = {name: sum(values) for name, values in answers.items()}
    every = sum(totals.values())
    return OverviewOut(
        now=_time(moment),
        worker=worker(),
        health=HealthOut.from_verdict(verdict),
        counts=CountsOut(
            origins=sum(1 for row in rows if row.row.kind == ServerKind.ORIGIN.value),
            caches=sum(1 for row in rows if row.row.kind == ServerKind.CACHE.value),
            routableOrigins=sum(
                1 for row in rows if row.routable and row.row.kind == ServerKind.ORIGIN.value
            ),
            routableCaches=sum(
                1 for row in rows if row.routable and row.row.kind == ServerKind.CACHE.value
            ),
            namespaces=len(snapshot.by_prefix),
            ejected=sum(1 for row in rows if row.colour == "ejected"),
        ),
        databaseReachable=database.health.unreachable_since is None,
        windowSeconds=WINDOW_SECONDS,
        shares={name: (total / every if every else 0.0) for name, total in totals.items()},
        answersPerSecond=every / len(answers["redirect"]) if answers["redirect"] else 0.0,
        statPerSecond=sum(sum(values) for values in stat.values()) / max(1, slots),
        series=SeriesOut(
            slotSeconds=PROCESS_STEP,
            answers=answers,
            stat=stat,
            loopLag=_complete(process["loop_lag"], slots),
        ),
        externalRegistry=external_registry(),
    )


def external_registry() -> ExternalRegistryOut | None:
    """The external registry's URL, reachability and polled data (None: own registry)."""
    if not external.configured():
        return None
    client = external.registry_client()
    status = client.status() if client is not None else None
    datasets = [
        PolledDatasetOut(
            name=name,
            fetchedAt=_time(polled.fetched_at) if polled.fetched_at is not None else None,
            ageSeconds=polled.age(polls.state.now()),
            entries=len(polled.value) if polled.value is not None else 0,
            lastError=polled.last_error,
            lastErrorAt=_time(polled.last_error_at) if polled.last_error_at is not None else None,
        )
        for name, polled in polls.state.datasets().items()
    ]
    return ExternalRegistryOut(
        url=status.url if status is not None else "",
        reachable=status is not None and status.reachable,
        lastError=status.last_error if status is not None else external.discovery_error(),
        datasets=datasets,
    )


def find(key: ServerKey, now: float) -> ServerRow | None:
    return next((row for row in server_rows(now) if row.row.key == key), None)


def server_page(key: ServerKey, now: float | None = None) -> ServerPageOut | None:
    """The server of that (kind, name) with its namespaces, downtimes and last hour."""
    moment = now if now is not None else time.time()
    row = find(key, moment)
    if row is None:
        return None
    namespaces = list(
        Namespace.objects.filter(server_id=row.row.pk)
        .order_by("path")
        .values_list("path", flat=True)
    )
    downtimes = [
        DowntimeWindowOut(
            startsAt=downtime.starts_at,
            endsAt=downtime.ends_at,
            downtimeClass=downtime.downtime_class,
            severity=downtime.severity,
            description=downtime.description,
            source=downtime.source,
            active=downtime.window().active(moment),
        )
        for downtime in Downtime.objects.filter(server_id=row.row.pk).order_by("starts_at")
    ]
    history = traffic.server_series(row.row.key, moment)
    slots = len(next(iter(history.values()))) - 1 if history else 59

    def per_minute(series: str) -> list[float]:
        return history[series][:-1] if history else [0.0] * slots

    heads, latency = per_minute("heads"), per_minute("latency_sum")
    return ServerPageOut(
        now=_time(moment),
        worker=worker(),
        server=ConsoleServerOut.from_row(row),
        namespaces=namespaces,
        downtimes=downtimes,
        series=ServerSeriesOut(
            slotSeconds=60.0,
            redirects=per_minute("redirects"),
            present=per_minute("present"),
            absent=per_minute("absent"),
            failed=per_minute("failed"),
            rejected=per_minute("rejected"),
            latencyMs=[
                round(1000 * total / count, 2) if count else None
                for total, count in zip(latency, heads, strict=True)
            ],
        ),
    )


def world_map(now: float | None = None) -> MapOut:
    moment = now if now is not None else time.time()
    points, unlocated = [], []
    for row in server_rows(moment):
        if row.latitude is None or row.longitude is None:
            unlocated.append(row.row.name)
            continue
        points.append(
            MapPointOut(
                name=row.row.name,
                kind=row.row.kind,
                colour=row.colour,
                state=row.detail,
                latitude=row.latitude,
                longitude=row.longitude,
                detailUrl=detail_url(row.row.key),
            )
        )
    return MapOut(points=points, unlocated=unlocated)


def _colour(snapshot: Snapshot, key: ServerKey, now: float, ejected: set[ServerKey]) -> str:
    view = snapshot.servers[key]
    if not view.routable(now):
        return "off"
    if key in ejected:
        return "ejected"
    return "warn" if view.health_status is HealthStatus.ERROR else "ok"


def namespaces(
    text: str = "", page: int = 1, size: int = PAGE_SIZE, now: float | None = None
) -> NamespacesPageOut:
    """The namespaces of the routing snapshot (servers disabled in the admin are not in
    it), each with its origins and caches, a page at a time."""
    moment = now if now is not None else time.time()
    snapshot = registry.current()
    ejected = {state.key for state in presence.engine.states() if state.ejected}
    needle = text.strip().lower()
    keys = sorted(key for key in snapshot.by_prefix if needle in key.lower())
    size = max(1, min(size, 1000))
    pages = max(1, -(-len(keys) // size))
    page = max(1, min(page, pages))

    def chip(entry: Entry) -> NamespaceServerOut:
        server = entry.server
        return NamespaceServerOut(
            name=server.name,
            colour=_colour(snapshot, server.key, moment, ejected),
            detailUrl=detail_url(server.key),
        )

    listed = []
    for key in keys[(page - 1) * size : page * size]:
        entries = snapshot.by_prefix[key]
        listed.append(
            ConsoleNamespaceOut(
                path=key[:-1] or "/",
                requireToken=all(entry.namespace.require_token for entry in entries),
                origins=[chip(e) for e in entries if e.server.kind is ServerKind.ORIGIN],
                caches=[chip(e) for e in entries if e.server.kind is ServerKind.CACHE],
            )
        )
    return NamespacesPageOut(
        total=len(snapshot.by_prefix), matched=len(keys), page=page, pages=pages, namespaces=listed
    )


def refresh_seconds() -> float:
    return float(settings.DIRECTOR_CONSOLE_REFRESH)
