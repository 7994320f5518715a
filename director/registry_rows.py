"""Every server of the registry as its database has it, read without holding the event loop.

The servers are read with ``values_list`` queries (plain tuples, no model instances) of
``CHUNK`` rows each, plus one query of the active downtimes, and kept ``ROWS_TTL`` seconds
while the same routing snapshot is installed: every open console polls, and explain lists
every server (a registry change installs a new snapshot and so reads again). Between chunks
the loop gets a turn (``yield_to_io``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from director import registry
from director.models import Downtime, Server
from director.serving.loopmonitor import yield_to_io
from director.snapshot import DowntimeWindow, ServerKey, Snapshot, unroutable_reason

ROWS_TTL = 2.0
CHUNK = 250  # rows read, or joined with their pools, between two turns of the loop


def _epoch(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


@dataclass(frozen=True, slots=True)
class RegistryRow:
    """One server as the registry database has it."""

    pk: int
    name: str
    kind: str
    source: str
    enabled: bool
    status: str
    status_weight: float
    version: str
    data_url: str
    latitude: float | None
    longitude: float | None
    expires_at: float | None
    last_advertised_at: float | None
    health_status: str
    health_checked_at: float | None
    health_message: str
    health_tests: bool
    downtimes: tuple[DowntimeWindow, ...]  # the active ones when read

    @property
    def key(self) -> ServerKey:
        """(kind, name): an origin and a cache may share a name."""
        return (self.kind, self.name)

    def unroutable(self, now: float) -> str:
        """Why it takes no part in routing (the diagnostics' words), or ""."""
        reason = unroutable_reason(
            enabled=self.enabled,
            expires_at=self.expires_at,
            status=self.status,
            downtimes=self.downtimes,
            now=now,
        )
        return reason.value if reason is not None else ""


_FIELDS = (
    "pk",
    "name",
    "kind",
    "source",
    "enabled",
    "status",
    "status_weight",
    "version",
    "data_url",
    "latitude",
    "longitude",
    "expires_at",
    "last_advertised_at",
    "health_status",
    "health_checked_at",
    "health_message",
    "director_test_disabled",
)
_cache: tuple[float, Snapshot, list[RegistryRow]] | None = None


def _registry_row(values: tuple[Any, ...], active: dict[int, list[DowntimeWindow]]) -> RegistryRow:
    """A ``values_list`` tuple of ``_FIELDS`` as a row."""
    (
        pk,
        name,
        kind,
        source,
        enabled,
        status,
        weight,
        version,
        data_url,
        latitude,
        longitude,
        expires_at,
        advertised_at,
        health_status,
        checked_at,
        health_message,
        test_disabled,
    ) = values
    return RegistryRow(
        pk=pk,
        name=name,
        kind=kind,
        source=source,
        enabled=enabled,
        status=status,
        status_weight=weight,
        version=version,
        data_url=data_url,
        latitude=latitude,
        longitude=longitude,
        expires_at=_epoch(expires_at),
        last_advertised_at=_epoch(advertised_at),
        health_status=health_status,
        health_checked_at=_epoch(checked_at),
        health_message=health_message,
        health_tests=not test_disabled,
        downtimes=tuple(active.get(pk, ())),
    )


def registry_rows(now: float | None = None) -> list[RegistryRow]:
    """Every server of the registry, in (kind, name) order, at most ``ROWS_TTL`` old."""
    global _cache
    moment = time.monotonic()
    snapshot = registry.current()
    if _cache is not None and moment - _cache[0] < ROWS_TTL and _cache[1] is snapshot:
        return _cache[2]
    wall = dt.datetime.fromtimestamp(now if now is not None else time.time(), dt.UTC)
    active: dict[int, list[DowntimeWindow]] = {}
    for server_id, starts_at, ends_at in (
        Downtime.objects.filter(starts_at__lte=wall)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gte=wall))
        .values_list("server_id", "starts_at", "ends_at")
    ):
        active.setdefault(server_id, []).append(
            DowntimeWindow(starts_at.timestamp(), _epoch(ends_at))
        )
    rows: list[RegistryRow] = []
    after = 0
    while True:
        page = list(
            Server.objects.filter(pk__gt=after).order_by("pk").values_list(*_FIELDS)[:CHUNK]
        )
        rows.extend(_registry_row(values, active) for values in page)
        if len(page) < CHUNK:
            break
        after = page[-1][0]
        yield_to_io()
    rows.sort(key=lambda row: (row.kind, row.name))
    _cache = (moment, snapshot, rows)
    return rows


def forget_rows() -> None:
    """The next read goes to the database (tests; an admin change seen at once)."""
    global _cache
    _cache = None
