"""The process's routing snapshot and how it follows the database.

1. Every registry change (an ad, an admin edit, a settings save) is recorded once per
   transaction by ``registry_changed``: the shared ``RegistryState.generation`` moves, the
   changed servers are stamped with it (``Server.change_seq``), and changes that touch
   everything (settings, GeoIP overrides, a server deleted or renamed) move
   ``full_generation`` too. After commit this process brings its snapshot up to date.
2. ``sync`` brings the snapshot up to date: with only ``generation`` moved it reads the
   servers stamped since its own generation and applies them as a delta
   (``Snapshot.apply``: in proportion to what changed); otherwise it rebuilds. A
   ``RegistryWatcher`` greenlet (``director.ops.watcher``) in each serving process runs it every
   ``DIRECTOR_REGISTRY_POLL_INTERVAL`` (1 s), so processes sharing one database converge
   within about a second, and rebuilds in full every ``DIRECTOR_REGISTRY_FULL_SYNC_INTERVAL``
   as a consistency check.
3. Redirects call ``current()``, which returns the snapshot without touching the database
   (only the very first call in a process builds it).

Expiry needs no change at all: each ServerView carries its expiry and routing checks it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from django.db import transaction
from django.utils import timezone

from director import models
from director.geo import Coordinate, LocationSource, Override, once, server_coordinate
from director.locate import forget_addresses_except, geoip_database, server_address
from director.serving.loopmonitor import yield_to_io
from director.snapshot import (
    DirectorSettings,
    DowntimeWindow,
    NamespaceView,
    ServerKey,
    ServerView,
    Snapshot,
)
from director.wire.ads import token_generations_from_json, token_issuers_from_json
from director.wire.types import HealthStatus, ServerKind, ServerStatus

logger = logging.getLogger(__name__)

PROCESS_STARTED_AT = time.time()
# Whether the registry held live ads when this process first read it (None: not read
# yet). Ads live in the database, so a process restarted among others that kept running
# routes them at once: the start-up grace, which waits for ads to come back to a
# director that kept them in memory (Pelican), does not apply to it.
_started_with_live_ads: bool | None = None

_snapshot: Snapshot | None = None
_build_sequence = 0
_installed_sequence = 0
# listener(snapshot, keys of the servers that changed, or None after a full build)
_listeners: list[Callable[[Snapshot, frozenset[ServerKey] | None], None]] = []


def current() -> Snapshot:
    """The routing snapshot; built on first use, then only by changes and the watcher."""
    snapshot = _snapshot
    if snapshot is None:
        snapshot = rebuild()
    return snapshot


def installed() -> Snapshot | None:
    """The snapshot installed now, without building one."""
    return _snapshot


def on_rebuild(listener: Callable[[Snapshot, frozenset[ServerKey] | None], None]) -> None:
    """Call ``listener(snapshot, changed)`` after each install (the stat engine follows the
    servers): ``changed`` holds the keys of a delta's servers, None after a full build."""
    if listener not in _listeners:
        _listeners.append(listener)


def startup_grace_active(snapshot: Snapshot, now: float) -> bool:
    """Whether an unknown path gets 429 instead of 404: for ``startup_grace`` seconds
    after this process started, unless the registry already held live ads then
    (``_started_with_live_ads``)."""
    grace = snapshot.settings.startup_grace
    return grace > 0 and not _started_with_live_ads and now - PROCESS_STARTED_AT < grace


def live_ads(snapshot: Snapshot, now: float) -> int:
    """Advertised servers whose ads have not lapsed (admin-defined ones never lapse)."""
    return sum(
        1
        for server in snapshot.servers.values()
        if server.expires_at is not None and server.expires_at > now
    )


def read_generation() -> int:
    return models.RegistryState.read()[0]


def _overrides() -> list[Override]:
    rows = []
    for row in models.GeoIPOverride.objects.all():
        try:
            network = ipaddress.ip_network(row.network.strip(), strict=False)
        except ValueError:
            once.warn(
                f"override:{row.pk}:{row.network}",
                "GeoIP override %r is invalid; skipped",
                row.network,
            )
            continue
        rows.append(
            Override(network, Coordinate(row.latitude, row.longitude, LocationSource.OVERRIDE))
        )
    return rows


def effective_status_weight(
    server: models.Server, settings: DirectorSettings, now: dt.datetime
) -> float:
    """The ad's EWMA status weight, lowered while health tests fail beyond the grace."""
    weight = server.status_weight if 0 < server.status_weight <= 1 else 1.0
    failing_since = server.health_failing_since
    if (
        failing_since is not None
        and (now - failing_since).total_seconds() >= settings.health_failure_grace
    ):
        weight *= settings.health_failure_weight
    return weight


def _health_status(value: str) -> HealthStatus:
    try:
        return HealthStatus(value)
    except ValueError:  # only raw SQL stores a value outside the choices
        return HealthStatus.UNKNOWN


def _server_view(
    server: models.Server,
    settings: DirectorSettings,
    overrides: Sequence[Override],
    now: dt.datetime,
    downtimes: tuple[DowntimeWindow, ...] | None = None,
) -> ServerView:
    """The row as routing sees it; ``downtimes`` given when they are known unchanged."""
    try:
        status = ServerStatus(server.status)
    except ValueError:
        status = ServerStatus.UNKNOWN
    coordinate = server_coordinate(
        server.latitude,
        server.longitude,
        None if server.latitude is not None else server_address(server.data_url),
        overrides,
        geoip_database(),
    )
    return ServerView(
        name=server.name,
        kind=ServerKind(server.kind),
        url=server.data_url.rstrip("/"),
        auth_url=server.auth_url.rstrip("/"),
        web_url=server.web_url.rstrip("/"),
        broker_url=server.broker_url,
        capabilities=server.capabilities,
        latitude=coordinate.latitude if coordinate else None,
        longitude=coordinate.longitude if coordinate else None,
        location_source=coordinate.source if coordinate else LocationSource.UNKNOWN,
        status=status,
        version=server.version,
        required_features=tuple(str(name) for name in server.required_features or ()),
        expires_at=server.expires_at.timestamp() if server.expires_at else None,
        downtimes=downtimes
        if downtimes is not None
        else tuple(downtime.window() for downtime in server.downtimes.all()),
        stat_concurrency_limit=server.stat_concurrency_limit,
        status_weight=effective_status_weight(server, settings, now),
        health_status=_health_status(server.health_status),
        health_tests=not server.director_test_disabled,
        structure_seq=server.structure_seq,
    )


def _namespace_view(namespace: models.Namespace) -> NamespaceView:
    return NamespaceView(
        path=namespace.path.rstrip("/") or "/",
        capabilities=namespace.capabilities,
        token_issuers=token_issuers_from_json(namespace.token_issuers or ()),
        token_generations=token_generations_from_json(namespace.token_generations or ()),
        from_topology=namespace.from_topology,
    )


BUILD_PAGE = 50  # servers read and applied per step of a full build
NAMESPACE_PAGE = 250  # namespace rows read and made views of per step (~2 ms)


def _namespace_views(server_pks: Sequence[int]) -> dict[int, list[NamespaceView]]:
    """The namespace views of these servers (each list in path order), read a page of rows
    at a time with a yield between pages: a cache that advertises a thousand namespaces
    never holds the loop for all of them at once. Not for use inside a transaction."""
    views: dict[int, list[NamespaceView]] = {pk: [] for pk in server_pks}
    after = 0
    while server_pks:
        yield_to_io()  # also before the first page: a commit may have just held the loop
        page = list(
            models.Namespace.objects.filter(server_id__in=server_pks, pk__gt=after).order_by("pk")[
                :NAMESPACE_PAGE
            ]
        )
        for namespace in page:
            views[namespace.server_id].append(_namespace_view(namespace))
        if len(page) < NAMESPACE_PAGE:
            break
        after = page[-1].pk
    for namespaces in views.values():
        namespaces.sort(key=lambda view: view.path)
    return views


def build_snapshot() -> Snapshot:
    """Read the whole registry, a page of servers at a time, yielding to the event loop
    between pages: a full build never holds the loop for more than one page's work.

    The counter is read first, so a change that lands while we read is picked up by the
    next sync rather than lost (a server stamped later is applied again as a delta).
    """
    generation, full_generation = models.RegistryState.read()
    snapshot = Snapshot(
        generation=generation,
        full_generation=full_generation,
        settings=models.StatSettings.current(),
        overrides=tuple(_overrides()),
    )
    now = timezone.now()
    urls: list[str] = []
    after = 0
    while True:
        page = list(
            models.Server.objects.routable()
            .filter(pk__gt=after)
            .order_by("pk")
            .prefetch_related("downtimes")[:BUILD_PAGE]
        )
        if not page:
            break
        after = page[-1].pk
        urls.extend(server.data_url for server in page)
        namespaces = _namespace_views([server.pk for server in page])
        snapshot = snapshot.apply(
            generation,
            [
                (
                    _server_view(server, snapshot.settings, snapshot.overrides, now),
                    namespaces[server.pk],
                )
                for server in page
            ],
        )
        yield_to_io()
    forget_addresses_except(urls)
    return snapshot


def _key(row: models.Server) -> ServerKey:
    return (row.kind, row.name)


def _delta(snapshot: Snapshot, generation: int) -> tuple[Snapshot, frozenset[ServerKey]]:
    """``snapshot`` with the servers stamped after its generation applied.

    A server whose structure did not change since its view was made (an ad that only
    renewed its expiry and weight) keeps its namespace views and downtimes: one row read.
    Servers that left routing (disabled, their ad lapsed) are removed.
    """
    now = timezone.now()
    rows = list(models.Server.objects.filter(change_seq__gt=snapshot.generation))
    routable = [
        row for row in rows if row.enabled and not (row.expires_at and row.expires_at <= now)
    ]
    structural = [row.pk for row in routable if _structure_changed(snapshot, row)]
    full_rows = {
        row.pk: row
        for row in models.Server.objects.filter(pk__in=structural).prefetch_related("downtimes")
    }
    structural_namespaces = _namespace_views(structural)
    upserts = []
    for row in routable:
        if row.pk in full_rows:
            full_row = full_rows[row.pk]
            view = _server_view(full_row, snapshot.settings, snapshot.overrides, now)
            namespaces = structural_namespaces[row.pk]
        else:
            old = snapshot.servers[_key(row)]
            view = _server_view(row, snapshot.settings, snapshot.overrides, now, old.downtimes)
            namespaces = list(snapshot.namespaces_by_server[_key(row)])
        upserts.append((view, namespaces))
    removals = [_key(row) for row in rows if row not in routable]
    changed = frozenset(_key(row) for row in rows)
    return snapshot.apply(generation, upserts, removals), changed


def _structure_changed(snapshot: Snapshot, row: models.Server) -> bool:
    view = snapshot.servers.get(_key(row))
    return view is None or view.structure_seq != row.structure_seq


def install(
    snapshot: Snapshot, build_sequence: int, changed: frozenset[ServerKey] | None = None
) -> Snapshot:
    """Make ``snapshot`` current unless a sync that started later is already installed.

    Syncs are ordered by when they started (they read the counter first), not by
    generation: a generation can go back when a database is restored or flushed.
    """
    global _snapshot, _installed_sequence, _started_with_live_ads
    if build_sequence < _installed_sequence and _snapshot is not None:
        return _snapshot
    if _started_with_live_ads is None:
        ads = live_ads(snapshot, time.time())
        _started_with_live_ads = ads > 0
        if ads and snapshot.settings.startup_grace > 0:
            logger.info("start-up grace off: the registry holds %d live ads", ads)
    _snapshot = snapshot
    _installed_sequence = build_sequence
    for listener in _listeners:
        listener(snapshot, changed)
    return snapshot


def _next_sequence() -> int:
    global _build_sequence
    _build_sequence += 1
    return _build_sequence


def rebuild() -> Snapshot:
    """Build the snapshot from the whole registry and install it."""
    sequence = _next_sequence()
    return install(build_snapshot(), sequence)


def sync() -> Snapshot:
    """Bring this process's snapshot up to the registry: nothing when it is current, a
    delta when only servers changed, a full rebuild otherwise."""
    sequence = _next_sequence()
    generation, full_generation = models.RegistryState.read()
    snapshot = _snapshot
    if (
        snapshot is None
        or full_generation > snapshot.full_generation
        or generation < snapshot.generation  # the database was restored or flushed
    ):
        return install(build_snapshot(), sequence)
    if generation == snapshot.generation:
        return snapshot
    updated, changed = _delta(snapshot, generation)
    return install(updated, sequence, changed)


def reset() -> None:
    """Forget the snapshot, and what the registry held at start (tests, after the
    database was flushed)."""
    global _snapshot, _installed_sequence, _started_with_live_ads
    _snapshot = None
    _installed_sequence = 0
    _started_with_live_ads = None


def registry_changed(
    servers: Iterable[int] = (), *, structure: bool = True, full: bool = False
) -> int:
    """Record one registry change: the one way every writer (an ad, an admin save or
    action, health-test results) tells the processes that routing must follow.

    ``servers`` are the primary keys of the servers that changed (``structure=False``:
    only their expiry or weight); ``full``, or naming no server, asks every process for a
    full rebuild (settings, overrides, a server deleted or renamed, a write that does not
    say what it touched). Inside a transaction the shared generation moves once however
    many times this is called (an admin save with inlines, an ad with a thousand
    namespaces: one change) and a rolled-back transaction records nothing; outside one,
    each call is a change of its own. After commit this process syncs at once; the
    others on their next poll. ORM writes made elsewhere (a shell, a script) must call
    this too. Returns the change's generation.
    """
    ids = list(servers)
    with transaction.atomic():
        generation = change_generation(full=full or not ids)
        if ids:
            stamps = {"change_seq": generation}
            if structure:
                stamps["structure_seq"] = generation
            models.Server.objects.filter(pk__in=ids).update(**stamps)
    return generation


# Renewals this process wrote, by the generation of their change (None: that change did
# more, and needs a sync). After commit, when nothing came between the snapshot and the
# change, they are applied in memory: a renewal costs the process no read at all.
_renewals: dict[int, list[models.Server] | None] = {}


def change_generation(*, full: bool = False, renewal: models.Server | None = None) -> int:
    """The generation of the calling transaction's change, for a writer that stamps the
    rows it saves itself (an ad: one row written); ``renewal`` is the row of a server
    whose expiry and weight alone changed."""
    generation = models.RegistryState.record_change(full=full, after_commit=_after_commit)
    if renewal is None:
        _renewals[generation] = None
    else:
        entries = _renewals.setdefault(generation, [])
        if entries is not None:
            entries.append(renewal)
    return generation


def _renew_in_memory(generation: int) -> bool:
    """Apply this process's own renewals of change ``generation``, if that is all that
    lies between the snapshot and the change; True when done."""
    rows = _renewals.pop(generation, None)
    snapshot = _snapshot
    if not rows or snapshot is None or snapshot.generation != generation - 1:
        return False
    now = timezone.now()
    upserts = []
    for row in rows:
        view = snapshot.servers.get(_key(row))
        if view is None or row.expires_at is None:
            return False
        renewed = replace(
            view,
            expires_at=row.expires_at.timestamp(),
            status_weight=effective_status_weight(row, snapshot.settings, now),
        )
        upserts.append((renewed, snapshot.namespaces_by_server[_key(row)]))
    keys = frozenset(_key(row) for row in rows)
    install(snapshot.apply(generation, upserts), _next_sequence(), keys)
    return True


def _after_commit(generation: int) -> None:
    try:
        if not _renew_in_memory(generation):
            sync()
    except Exception:  # the change is committed; the watcher brings it in on its next poll
        logger.exception("could not follow a registry change; the watcher will")
    for stale in [key for key in _renewals if key <= generation]:
        del _renewals[stale]  # changes rolled back, or already followed
