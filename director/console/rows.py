"""What the console shows, gathered without holding the event loop.

1. The registry's servers as the database has them (``director.registry_rows``: read in
   chunks, kept briefly while the same snapshot is installed).
2. Each row is joined with what only this process knows: its stat pool (active, waiting,
   limit, ejection, failures), the routing snapshot's weight and location, ``CHUNK``
   rows at a time.

Between chunks the loop gets a turn (``yield_to_io``): with 1,000 servers a full read
holds it ~3 ms at a time, never the ~20 ms the whole would (README, "Console").
3. The state of a server is the one routability rule (``snapshot.unroutable_reason``),
   then ejection with its time left: what the admin, explain and the console all say.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from director import presence, registry
from director.registry_rows import CHUNK, RegistryRow, registry_rows
from director.serving.loopmonitor import yield_to_io
from director.snapshot import ServerKey, Snapshot
from director.stat import PoolState
from director.wire.types import HealthStatus, ServerKind, ServerStatus

PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# What the state filter offers; "unroutable" is any reason, "ejected" routable but ejected.
STATE_FILTERS = ("routable", "unroutable", "ejected", "warning")
KINDS = tuple(kind.value for kind in ServerKind)  # what a server's (kind, name) key holds
COLOURS = ("ok", "warn", "ejected", "off")  # the map's and the table's four colours
WARNING_STATUSES = frozenset({ServerStatus.WARNING, ServerStatus.DEGRADED, ServerStatus.CRITICAL})


def detail_url(key: ServerKey) -> str:
    """The console's page of one server, addressed by (kind, name): an origin and a cache
    may share a name."""
    kind, name = key
    return f"/view/servers/{kind}/{quote(name, safe='')}/"


@dataclass(slots=True)
class ServerRow:
    """One server as the console shows it: the registry row, this process's view of it."""

    row: RegistryRow
    pool: PoolState | None
    state: str  # "routable", or the reason it is not, or "ejected"
    detail: str  # e.g. "ejected, 27 s left (2nd time)"
    colour: str  # one of COLOURS
    weight: float  # the status weight routing uses (health penalty included)
    latitude: float | None  # its coordinate, or the one GeoIP found for its host
    longitude: float | None

    @property
    def routable(self) -> bool:
        return self.colour != "off"


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def describe(row: RegistryRow, pool: PoolState | None, snapshot: Snapshot, now: float) -> ServerRow:
    view = snapshot.servers.get(row.key)
    weight = view.status_weight if view is not None else row.status_weight
    latitude = view.latitude if view is not None else row.latitude
    longitude = view.longitude if view is not None else row.longitude
    reason = row.unroutable(now)
    if reason:
        return ServerRow(row, pool, reason, reason, "off", weight, latitude, longitude)
    if pool is not None and pool.ejected:
        detail = f"ejected, {pool.ejected_for:.0f} s left ({_ordinal(pool.times_ejected)} time)"
        return ServerRow(row, pool, "ejected", detail, "ejected", weight, latitude, longitude)
    warnings = []
    if row.health_status == HealthStatus.ERROR.value:
        warnings.append("failing its health tests")
    if row.status in WARNING_STATUSES:
        warnings.append(f"status {row.status.lower()}")
    if pool is not None and pool.saturated_recently:
        warnings.append("stat pool saturated")
    colour = "warn" if warnings else "ok"
    return ServerRow(
        row,
        pool,
        "routable",
        "; ".join(warnings) or "routable",
        colour,
        weight,
        latitude,
        longitude,
    )


def server_rows(now: float | None = None) -> list[ServerRow]:
    moment = now if now is not None else time.time()
    registered = registry_rows(moment)
    snapshot = registry.current()
    engine = presence.engine
    described: list[ServerRow] = []
    for start in range(0, len(registered), CHUNK):
        if start:
            yield_to_io()
        described.extend(
            describe(row, engine.state(row.key), snapshot, moment)
            for row in registered[start : start + CHUNK]
        )
    return described


def _sort_key(sort: str) -> Callable[[ServerRow], Any]:
    keys: dict[str, Callable[[ServerRow], Any]] = {
        "name": lambda r: r.row.name,
        "kind": lambda r: (r.row.kind, r.row.name),
        "state": lambda r: (COLOURS.index(r.colour), r.state, r.row.name),
        "status": lambda r: (r.row.status, r.row.name),
        "weight": lambda r: (r.weight, r.row.name),
        "health": lambda r: (r.row.health_status, r.row.name),
        "failures": lambda r: (r.pool.consecutive_failures if r.pool else -1, r.row.name),
        "active": lambda r: (r.pool.active if r.pool else -1, r.row.name),
        "advertised": lambda r: (r.row.last_advertised_at or 0.0, r.row.name),
        "version": lambda r: (r.row.version, r.row.name),
    }
    return keys.get(sort, keys["kind"])


SORTS = (
    "name",
    "kind",
    "state",
    "status",
    "weight",
    "health",
    "failures",
    "active",
    "advertised",
    "version",
)


@dataclass
class Page:
    rows: list[ServerRow]
    total: int  # servers in the registry
    matched: int  # servers that pass the filters
    page: int
    pages: int


def select(
    rows: Iterable[ServerRow],
    *,
    text: str = "",
    kind: str = "",
    state: str = "",
    sort: str = "kind",
    page: int = 1,
    size: int = PAGE_SIZE,
) -> Page:
    """Filter (name or URL containing ``text``, kind, state), sort (``-`` first for a
    descending order), and cut one page (1-based; past the last gives the last)."""
    everything = list(rows)
    needle = text.strip().lower()
    chosen = [
        row
        for row in everything
        if (not needle or needle in row.row.name.lower() or needle in row.row.data_url.lower())
        and (not kind or row.row.kind == kind)
        and (not state or _in_state(row, state))
    ]
    descending = sort.startswith("-")
    chosen.sort(key=_sort_key(sort.lstrip("-")), reverse=descending)
    size = max(1, min(size, MAX_PAGE_SIZE))
    pages = max(1, -(-len(chosen) // size))
    page = max(1, min(page, pages))
    return Page(chosen[(page - 1) * size : page * size], len(everything), len(chosen), page, pages)


def _in_state(row: ServerRow, state: str) -> bool:
    if state == "routable":
        return row.routable
    if state == "unroutable":
        return not row.routable
    if state == "ejected":
        return row.colour == "ejected"
    if state == "warning":
        return row.colour == "warn"
    return True
