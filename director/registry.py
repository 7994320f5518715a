"""The process's routing snapshot and how it follows the database.

1. Every registry change (an ad, an admin edit, a settings save) bumps
   ``RegistryState.generation`` once, in the same transaction (``registry_changed``), and,
   once committed, rebuilds this process's snapshot right away.
2. A ``RegistryWatcher`` greenlet in each serving process reads the generation every
   ``DIRECTOR_REGISTRY_POLL_INTERVAL`` (1 s) and rebuilds when it moved, so processes that
   share one database converge within about a second.
3. Redirects call ``current()``, which returns the snapshot without touching the database
   (only the very first call in a process builds it).

Expiry needs no rebuild: each ServerView carries its expiry and routing checks it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import time
from collections.abc import Callable

import gevent
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from director import models
from director.geo import Coordinate, LocationSource, Override, once, server_coordinate
from director.locate import forget_addresses_except, geoip_database, server_address
from director.snapshot import DirectorSettings, NamespaceView, ServerView, Snapshot
from director.wire.ads import token_generations_from_json, token_issuers_from_json
from director.wire.types import HealthStatus, ServerKind, ServerStatus

logger = logging.getLogger(__name__)

PROCESS_STARTED_AT = time.time()

_snapshot: Snapshot | None = None
_build_sequence = 0
_installed_sequence = 0
_listeners: list[Callable[[Snapshot], None]] = []


def current() -> Snapshot:
    """The routing snapshot; built on first use, then only by changes and the watcher."""
    snapshot = _snapshot
    if snapshot is None:
        snapshot = rebuild()
    return snapshot


def on_rebuild(listener: Callable[[Snapshot], None]) -> None:
    """Call ``listener(snapshot)`` after each install (the stat engine resizes its pools)."""
    if listener not in _listeners:
        _listeners.append(listener)


def startup_grace_active(snapshot: Snapshot, now: float) -> bool:
    grace = snapshot.settings.startup_grace
    return grace > 0 and now - PROCESS_STARTED_AT < grace


def read_generation() -> int:
    state = models.RegistryState.objects.filter(pk=1).values_list("generation", flat=True).first()
    return int(state or 0)


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
    overrides: list[Override],
    now: dt.datetime,
) -> ServerView:
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
        expires_at=server.expires_at.timestamp() if server.expires_at else None,
        downtimes=tuple(downtime.window() for downtime in server.downtimes.all()),
        stat_concurrency_limit=server.stat_concurrency_limit,
        status_weight=effective_status_weight(server, settings, now),
        health_status=_health_status(server.health_status),
        health_tests=not server.director_test_disabled,
    )


def _namespace_view(namespace: models.Namespace) -> NamespaceView:
    return NamespaceView(
        path=namespace.path.rstrip("/") or "/",
        capabilities=namespace.capabilities,
        token_issuers=token_issuers_from_json(namespace.token_issuers or ()),
        token_generations=token_generations_from_json(namespace.token_generations or ()),
        from_topology=namespace.from_topology,
    )


def build_snapshot() -> Snapshot:
    """Read the registry. The generation is read first, so a change that lands while we
    read is picked up by the next poll rather than lost."""
    generation = read_generation()
    settings = models.StatSettings.current()
    overrides = _overrides()
    now = timezone.now()
    servers = list(models.Server.objects.routable().prefetch_related("namespaces", "downtimes"))
    forget_addresses_except([server.data_url for server in servers])
    return Snapshot.build(
        generation,
        settings,
        [
            (
                _server_view(server, settings, overrides, now),
                [_namespace_view(ns) for ns in server.namespaces.all()],
            )
            for server in servers
        ],
        overrides,
    )


def install(snapshot: Snapshot, build_sequence: int) -> Snapshot:
    """Make ``snapshot`` current unless a build that started later is already installed.

    Builds are ordered by when they started (they read the generation first), not by
    generation: a generation can go back when a database is restored or flushed.
    """
    global _snapshot, _installed_sequence
    if build_sequence < _installed_sequence and _snapshot is not None:
        return _snapshot
    _snapshot = snapshot
    _installed_sequence = build_sequence
    for listener in _listeners:
        listener(snapshot)
    return snapshot


def rebuild() -> Snapshot:
    global _build_sequence
    _build_sequence += 1
    sequence = _build_sequence
    return install(build_snapshot(), sequence)


def reset() -> None:
    """Forget the snapshot (tests, after the database was flushed)."""
    global _snapshot, _installed_sequence
    _snapshot = None
    _installed_sequence = 0


def registry_changed() -> None:
    """Record one registry change: the one way every writer (an ad, an admin save or
    action, health-test results) tells the processes that routing must be rebuilt.

    Inside a transaction the shared generation moves once, however many times this is
    called (an admin save with inlines, an ad with a thousand namespaces: one change), and
    this process rebuilds after commit; a rolled-back transaction records nothing. Outside
    one, each call is a change of its own. Other processes see the new generation on
    their next poll. ORM writes made elsewhere (a shell, a script) must call this too.
    """
    if connection.in_atomic_block and any(
        # Django keeps pending callbacks as (savepoint ids, callback, robust) and drops
        # them on rollback: a pending one means this transaction recorded its change.
        # (Not a public API: tests/test_registry_changes.py pins the behaviour.)
        entry[1] is _rebuild_if_behind
        for entry in connection.run_on_commit
    ):
        return  # this transaction has recorded its change already
    updated = models.RegistryState.objects.filter(pk=1).update(generation=F("generation") + 1)
    if not updated:
        models.RegistryState.objects.create(pk=1, generation=1)
    transaction.on_commit(_rebuild_if_behind)


def _rebuild_if_behind() -> None:
    snapshot = _snapshot
    if snapshot is None or read_generation() != snapshot.generation:
        rebuild()


class RegistryWatcher:
    """Owner of the greenlet that follows the shared generation counter.

    One per process. Its loop does one small query per interval and a rebuild when the
    generation moved; a failing database is logged and retried, never fatal.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._greenlet: gevent.Greenlet | None = None

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    def start(self) -> None:
        if self.running:
            return
        self._greenlet = gevent.spawn(self._run)
        self._greenlet.name = "director-registry-watcher"
        self._greenlet.link_exception(_log_greenlet_death)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None

    def check_once(self) -> bool:
        """Rebuild if the shared generation differs from ours; True when rebuilt."""
        try:
            generation = read_generation()
            snapshot = _snapshot
            if snapshot is None or generation != snapshot.generation:
                rebuild()
                return True
            return False
        finally:
            # Each check runs in this greenlet's own connection: close it so that no
            # connection (or SQLite read lock) is held between polls.
            close_old_connections()
            connection.close()

    def _run(self) -> None:
        while True:
            try:
                self.check_once()
            except Exception:
                logger.exception("registry watcher: could not read the registry; retrying")
            gevent.sleep(self.interval)


def _log_greenlet_death(greenlet: gevent.Greenlet) -> None:
    logger.error("%s died: %r", getattr(greenlet, "name", greenlet), greenlet.exception)


watcher: RegistryWatcher | None = None


def start_watcher(interval: float) -> RegistryWatcher:
    global watcher
    if watcher is None:
        watcher = RegistryWatcher(interval)
    watcher.start()
    return watcher
