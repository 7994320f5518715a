"""The frozen views routing reads: a server, a namespace, their pairing (``Entry``), a
downtime window, and the routability rule (``unroutable_reason``) with its reasons.

Plain Python, no Django; ``director.snapshot.Snapshot`` indexes them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from director.geo import LocationSource
from director.wire.types import (
    Capability,
    HealthStatus,
    ServerKind,
    ServerStatus,
    TokenGeneration,
    TokenIssuer,
)

_PUBLIC_READS_BIT = int(Capability.PUBLIC_READS)


@dataclass(frozen=True, slots=True)
class DowntimeWindow:
    """A downtime as epoch seconds; ``end`` None means indefinite."""

    start: float
    end: float | None

    def active(self, now: float) -> bool:
        return self.start <= now and (self.end is None or now <= self.end)


class Unroutable(enum.Enum):
    """Why a server takes no part in routing (Pelican's ``filteredServers``): such a
    server does not even enter namespace matching. The value is the reason as the admin,
    the console and the diagnostics say it; ``filtered_type`` is the API's."""

    DISABLED = "disabled in the admin"
    EXPIRED = "advertisement expired"
    SHUTTING_DOWN = "status shutting down"
    DOWNTIME = "in downtime"

    @property
    def filtered_type(self) -> str:
        return _UNROUTABLE_FILTERED_TYPES[self]


_UNROUTABLE_FILTERED_TYPES = {
    Unroutable.DISABLED: "Disabled in the director admin",
    Unroutable.EXPIRED: "Expired",
    Unroutable.SHUTTING_DOWN: "Server is shutting down",
    Unroutable.DOWNTIME: "In downtime",
}


def unroutable_reason(
    *,
    enabled: bool,
    expires_at: float | None,
    status: ServerStatus | str,
    downtimes: Iterable[DowntimeWindow],
    now: float,
) -> Unroutable | None:
    """The one routability rule, for the snapshot, the admin, the API and ``explain``:
    disabled, then a lapsed ad, then shutting down, then an active downtime."""
    if not enabled:
        return Unroutable.DISABLED
    if expires_at is not None and expires_at <= now:
        return Unroutable.EXPIRED
    if status == ServerStatus.SHUTTING_DOWN:
        return Unroutable.SHUTTING_DOWN
    if any(window.active(now) for window in downtimes):
        return Unroutable.DOWNTIME
    return None


# A server's identity in the registry: (kind, name). An origin and a cache may share a
# name (Pelican registers them under /origins/<name> and /caches/<name>).
ServerKey = tuple[str, str]


def server_labels(keys: Iterable[ServerKey]) -> dict[ServerKey, str]:
    """How each server is named in a document: by its name, and "name (kind)" when an
    origin and a cache of that name are both in it."""
    keys = list(keys)
    kinds: dict[str, set[str]] = {}
    for kind, name in keys:
        kinds.setdefault(name, set()).add(kind)
    return {
        (kind, name): name if len(kinds[name]) == 1 else f"{name} ({kind})" for kind, name in keys
    }


@dataclass(frozen=True, slots=True)
class ServerView:
    """What routing needs to know about one server."""

    name: str
    kind: ServerKind
    url: str  # data URL, scheme://host[:port][/path], no trailing slash
    auth_url: str = ""
    web_url: str = ""
    broker_url: str = ""
    capabilities: Capability = Capability.NONE
    latitude: float | None = None
    longitude: float | None = None
    status: ServerStatus = ServerStatus.UNKNOWN
    version: str = "unknown"
    # Features caches must have to be sent this origin's objects (e.g. CacheAuthz).
    required_features: tuple[str, ...] = ()
    expires_at: float | None = None  # epoch seconds; None for servers defined in the admin
    downtimes: tuple[DowntimeWindow, ...] = ()
    stat_concurrency_limit: int | None = None  # per-server override of the stat limit
    status_weight: float = 1.0  # EWMA of the advertised status, times any health penalty
    location_source: LocationSource = LocationSource.UNKNOWN
    health_status: HealthStatus = HealthStatus.UNKNOWN
    health_tests: bool = True  # False when the ad says directorTest: true
    # The registry generation of its last change beyond expiry and weight: a delta with
    # the same one keeps the namespace views and downtimes it has (director.registry).
    structure_seq: int = 0

    @property
    def key(self) -> ServerKey:
        return (self.kind.value, self.name)

    def changes_after(self, now: float) -> list[float]:
        """The moments after ``now`` at which ``routable`` may change its answer."""
        moments = [self.expires_at] if self.expires_at is not None and self.expires_at > now else []
        for window in self.downtimes:
            moments.extend(
                when for when in (window.start, window.end) if when is not None and when > now
            )
        return moments

    def unroutable_reason(self, now: float) -> Unroutable | None:
        """Why this server takes no part in routing now, or None when it does."""
        return unroutable_reason(
            enabled=True,  # admin-disabled servers never enter the snapshot
            expires_at=self.expires_at,
            status=self.status,
            downtimes=self.downtimes,
            now=now,
        )

    def routable(self, now: float) -> bool:
        return self.unroutable_reason(now) is None


@dataclass(frozen=True, slots=True)
class NamespaceView:
    """One namespace as one server advertises it."""

    path: str  # no trailing slash, except the root "/"
    capabilities: Capability
    token_issuers: tuple[TokenIssuer, ...] = ()
    token_generations: tuple[TokenGeneration, ...] = ()
    from_topology: bool = False

    @property
    def require_token(self) -> bool:
        return not (int(self.capabilities) & _PUBLIC_READS_BIT)


@dataclass(frozen=True, slots=True)
class Entry:
    """A (server, namespace) pair: the unit that routing ranks."""

    server: ServerView
    namespace: NamespaceView
