"""The in-memory routing snapshot: frozen views of servers and namespaces.

Plain Python, no Django. ``director.registry`` builds a Snapshot from the database; the
redirect path reads only the snapshot, so a redirect never touches the database.
Everything a redirect needs per namespace (header strings, issuer lines) is computed once
here, when the snapshot is built, not per request.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar

from director.geo import LocationSource, Override
from director.wire.types import (
    Capability,
    HealthStatus,
    ServerKind,
    ServerStatus,
    SortMethod,
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


_T = TypeVar("_T")


def setting(
    default: _T, help_text: str = "", *, minimum: float | None = None, maximum: float | None = None
) -> _T:
    """A settings field: its default, its bounds and its help, written once.

    (A ``dataclasses.Field`` at run time; typed as its default, as ``field()`` itself is.)
    """
    metadata = {"help_text": help_text, "minimum": minimum, "maximum": maximum}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class DirectorSettings:
    """The director's tunable parameters, frozen: the one place their defaults, bounds
    and help texts are written.

    The defaults are Pelican's (``Director.*``, reference section 5) where Pelican has the
    parameter, and ours for the bounds it lacks. The ``StatSettings`` model derives its
    fields from these (``director.models``), the stat engine's ``StatConfig`` is derived
    from them (``director.presence.stat_config``), and the README's settings table is
    checked against them by the tests.
    """

    stat_timeout: float = setting(2.0, "Seconds one HEAD may take.", minimum=0.01)
    stat_concurrency_limit: int = setting(100, "HEADs in flight per server.", minimum=1)
    stat_max_wait: float = setting(
        0.1,
        "Seconds a stat may wait for a free slot before the server counts as saturated.",
        minimum=0.0,
    )
    stat_max_waiters: int = setting(
        10, "Stats that may wait for a slot per server; beyond: saturated at once."
    )
    redirect_timeout: float = setting(
        2.5, "Hard deadline of a redirect request, in seconds.", minimum=0.01
    )
    cache_presence_ttl: float = setting(60.0, "Seconds a stat answer is kept.", minimum=0.0)
    cache_presence_capacity: int = setting(2000, "Stat answers kept per server.", minimum=1)
    check_origin_presence: bool = setting(True)
    check_cache_presence: bool = setting(True)
    assume_presence_at_single_origin: bool = setting(True)
    max_stat_responses: int = setting(
        1, "The redirect returns once this many servers answered present.", minimum=1
    )
    sort_method: SortMethod = setting(SortMethod.DISTANCE)
    startup_grace: float = setting(
        300.0,
        "Seconds after start during which an unknown path gets 429 instead of 404; 0 disables.",
        minimum=0.0,
    )
    filter_caches_in_error_state: bool = setting(
        True, "Leave caches whose status is critical or shutting down out of redirects."
    )
    ejection_consecutive_failures: int = setting(
        5, "Consecutive timeouts, errors or 5xx that eject a server.", minimum=1
    )
    ejection_base_time: float = setting(
        30.0, "Seconds of the first ejection; multiplied by the times ejected.", minimum=0.0
    )
    ejection_max_time: float = setting(
        300.0, "Upper bound of one ejection, in seconds.", minimum=0.0
    )
    adaptive_working_set: int = setting(
        6,
        "Adaptive sort: the nearest servers that are statted and sampled (at least 3).",
        minimum=3,
    )
    status_ewma_time_constant: float = setting(
        300.0, "Seconds: time constant of the status weight's moving average.", minimum=1.0
    )
    health_test_interval: float = setting(
        15.0,
        "Seconds between director health tests of one server; 0 turns them off.",
        minimum=0.0,
    )
    health_test_timeout: float = setting(
        10.0, "Deadline of one whole health test (all its requests).", minimum=0.1
    )
    health_failure_grace: float = setting(
        60.0,
        "Seconds of failing health tests before the server's weight is lowered.",
        minimum=0.0,
    )
    health_failure_weight: float = setting(
        0.1,
        "Factor on the status weight of a server failing its health tests.",
        minimum=0.0,
        maximum=1.0,
    )
    max_inflight_requests: int = setting(
        1000,
        "Requests one process serves at once; beyond that it answers 429 with Retry-After: 1.",
        minimum=1,
    )
    shed_queue_target: float = setting(
        0.015,
        "Seconds a request may wait to be read (its queueing delay, from the kernel) "
        "while the process is congested; beyond it the request gets 429 at once. "
        "0 turns shedding off.",
        minimum=0.0,
    )
    shed_queue_interval: float = setting(
        0.05,
        "Seconds that requests must keep waiting longer than shed_queue_target before "
        "the process counts as congested (and without any for congestion to end).",
        minimum=0.01,
    )


DEFAULT_SETTINGS = DirectorSettings()
SETTING_FIELDS = {item.name: item for item in fields(DirectorSettings)}


@dataclass(frozen=True)
class Snapshot:
    """An immutable picture of the registry at one generation.

    ``by_prefix`` maps a namespace path with a trailing slash ("/foo/") to every entry that
    advertises exactly that namespace, origins before caches, each group in name order.
    """

    generation: int = -1
    # The registry's full_generation when this snapshot's base was built: a settings or
    # overrides change, or a server deleted, moves it and asks for a full rebuild.
    full_generation: int = -1
    settings: DirectorSettings = field(default_factory=DirectorSettings)
    servers: dict[ServerKey, ServerView] = field(default_factory=dict)
    by_prefix: dict[str, tuple[Entry, ...]] = field(default_factory=dict)
    namespaces_by_server: dict[ServerKey, tuple[NamespaceView, ...]] = field(default_factory=dict)
    overrides: tuple[Override, ...] = ()  # in match order
    # prefix key -> (valid from, valid until, routable entries): see _routable
    _live: dict[str, tuple[float, float, tuple[Entry, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def build(
        cls,
        generation: int,
        settings: DirectorSettings,
        servers: Iterable[tuple[ServerView, Sequence[NamespaceView]]],
        overrides: Sequence[Override] = (),
        full_generation: int = -1,
    ) -> Snapshot:
        by_server: dict[ServerKey, ServerView] = {}
        by_prefix: dict[str, list[Entry]] = {}
        namespaces: dict[ServerKey, tuple[NamespaceView, ...]] = {}
        ordered = sorted(
            servers, key=lambda item: (item[0].kind != ServerKind.ORIGIN, item[0].name)
        )
        for server, server_namespaces in ordered:
            by_server[server.key] = server
            namespaces[server.key] = tuple(server_namespaces)
            for namespace in server_namespaces:
                by_prefix.setdefault(prefix_key(namespace.path), []).append(
                    Entry(server, namespace)
                )
        return cls(
            generation=generation,
            full_generation=full_generation,
            settings=settings,
            servers=by_server,
            by_prefix={key: tuple(entries) for key, entries in by_prefix.items()},
            namespaces_by_server=namespaces,
            overrides=tuple(overrides),
        )

    def apply(
        self,
        generation: int,
        upserts: Iterable[tuple[ServerView, Sequence[NamespaceView]]] = (),
        removals: Iterable[ServerKey] = (),
    ) -> Snapshot:
        """This snapshot with some servers replaced, added or removed: one change's delta.

        The cost is a copy of the three maps (C-level, O(servers + prefixes)) and work in
        proportion to the changed servers' namespaces, never a rebuild:

        1. Drop every changed or removed server's entries from the prefixes it owned.
        2. Add the changed servers' new entries; each touched prefix is ordered again
           (origins before caches, each in name order, as ``build`` orders them).
        3. Keep the routable-entries memo of every prefix that was not touched.
        """
        upserted = list(upserts)
        gone = set(removals) | {server.key for server, _ in upserted}
        servers = dict(self.servers)
        namespaces = dict(self.namespaces_by_server)
        by_prefix = dict(self.by_prefix)
        touched: set[str] = set()
        for server_key in gone:
            servers.pop(server_key, None)
            for namespace in namespaces.pop(server_key, ()):
                touched.add(prefix_key(namespace.path))
        added: dict[str, list[Entry]] = {}
        for server, server_namespaces in upserted:
            servers[server.key] = server
            namespaces[server.key] = tuple(server_namespaces)
            for namespace in server_namespaces:
                key = prefix_key(namespace.path)
                touched.add(key)
                added.setdefault(key, []).append(Entry(server, namespace))
        for key in touched:
            kept = [entry for entry in by_prefix.get(key, ()) if entry.server.key not in gone]
            entries = sorted(kept + added.get(key, []), key=_entry_order)
            if entries:
                by_prefix[key] = tuple(entries)
            else:
                by_prefix.pop(key, None)
        live = dict(self._live)  # a C-level copy: no Python loop over every prefix
        for key in touched:
            live.pop(key, None)
        return replace(
            self,
            generation=generation,
            servers=servers,
            by_prefix=by_prefix,
            namespaces_by_server=namespaces,
            _live=live,
        )

    def server(self, name: str, kind: str | None = None) -> ServerView:
        """The server of that name (and kind; without one, the origin first, as Pelican's
        director_ui finds a name). KeyError when there is none."""
        for candidate in (kind,) if kind else (ServerKind.ORIGIN, ServerKind.CACHE):
            view = self.servers.get((str(candidate), name))
            if view is not None:
                return view
        raise KeyError(name)

    def longest_match(
        self, path: str, now: float, kind: ServerKind | None = None
    ) -> tuple[str, tuple[Entry, ...]]:
        """Routable entries of the longest namespace that contains ``path``.

        ``path`` is cleaned (see ``director.wire.paths``). The trailing-slash rule: "/foo" matches
        "/foo" and "/foo/x", never "/foobar". As in Pelican, origins and caches compete
        together and only the longest prefix with a routable server wins. The cost is one
        dict lookup per path level. ``kind`` restricts the match to origins or caches.
        Returns ("", ()) when nothing matches.
        """
        key = path if path.endswith("/") else path + "/"
        by_prefix = self.by_prefix
        while True:
            entries = by_prefix.get(key)
            if entries:
                live = self._routable(key, entries, now)
                if kind is not None:
                    live = tuple(entry for entry in live if entry.server.kind is kind)
                if live:
                    return (key[:-1] or "/"), live
            if key == "/":
                return "", ()
            key = key[: key.rstrip("/").rfind("/") + 1]

    def _routable(self, key: str, entries: tuple[Entry, ...], now: float) -> tuple[Entry, ...]:
        """The routable entries of one prefix, remembered until the next moment at which
        any of them could change (an expiry, a downtime starting or ending)."""
        remembered = self._live.get(key)
        if remembered is not None and remembered[0] <= now < remembered[1]:
            return remembered[2]
        live = tuple(entry for entry in entries if entry.server.routable(now))
        changes = [when for entry in entries for when in entry.server.changes_after(now)]
        self._live[key] = (now, min(changes, default=float("inf")), live)
        return live


def _entry_order(entry: Entry) -> tuple[bool, str]:
    return entry.server.kind != ServerKind.ORIGIN, entry.server.name


def prefix_key(namespace_path: str) -> str:
    """The lookup key of a namespace path: always ends with exactly one '/'."""
    return namespace_path.rstrip("/") + "/"
