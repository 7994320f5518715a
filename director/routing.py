"""The redirect decision: from a cleaned request to a ranked list of servers and headers.

Plain Python, no Django: ``director.views`` turns an HttpRequest into a ``RedirectRequest``
and a ``RedirectResult`` back into a response. Reference sections 1.3-1.5, 2 and 3.1-3.3.

Object presence ("stat") plugs in through one seam, ``AvailabilityCheck``: it receives the
ordered candidate servers, the path, the client's token and the request's deadline, and
answers per server. ``all_available`` is the check used when presence is not asked for.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import median

from cachetools import LRUCache

from director.geo import Coordinate
from director.selection import (
    SERVER_LIMIT,
    Presence,
    Weights,
    availability_weights,
    cache_support,
    nearest,
    origin_qualifies,
    rank,
    rank_by_presence,
    required_features,
    server_supports,
)
from director.snapshot import (
    DirectorSettings,
    Entry,
    NamespaceView,
    ServerKey,
    ServerView,
    Snapshot,
)
from director.wire import headers as fmt
from director.wire.paths import go_path_escape, path_depth
from director.wire.tokens import EXPIRED_TOKEN_CHALLENGE, client_token, token_expired
from director.wire.types import (
    ORIGIN_METHODS,
    Capability,
    ServerKind,
    ServerStatus,
    SortMethod,
    capability_names,
    verb_requirement,
)
from director.wire.versions import MIN_REDIRECT_VERSIONS, user_agent_problem

NO_STAT_METHODS = frozenset({"PUT", "DELETE", "PROPFIND"})
# Caches in these states are dropped when filter_caches_in_error_state is on.
CACHE_ERROR_STATES = frozenset({ServerStatus.CRITICAL, ServerStatus.SHUTTING_DOWN})


DETERMINISTIC_METHODS = frozenset({SortMethod.DISTANCE, SortMethod.DISTANCE_AND_LOAD})


# ~5 KB per entry with 100 caches: 1,024 entries stay within a few MB per process.
RankingKey = tuple[Coordinate | None, tuple[int, ...]]  # client, id() of each server view
Ranking = tuple[list[ServerView], list[int], list[Weights]]  # the views, order, weights
_rankings: LRUCache[RankingKey, Ranking] = LRUCache(1024)

# The seam: (ordered candidates, path, namespace, client token, deadline) -> presence by
# server name. Servers missing from the answer count as UNKNOWN.
Availability = Callable[
    [Sequence[ServerView], str, NamespaceView, str, float], Mapping[str, Presence]
]


def all_available(
    servers: Sequence[ServerView], path: str, namespace: NamespaceView, token: str, deadline: float
) -> Mapping[str, Presence]:
    """The availability step when no stat is made: every candidate counts as unknown."""
    return {}


@dataclass(frozen=True, slots=True)
class RedirectRequest:
    method: str
    path: str  # cleaned (director.wire.paths.clean_path)
    to_origin: bool  # the /origin route (or a root path sent there)
    request_id: str
    now: float  # wall clock (epoch seconds): expiry and token checks
    deadline: float  # time.monotonic() value by which the answer must be on its way
    query: tuple[tuple[str, str], ...] = ()
    authorization: str = ""
    timeout_header: str = ""
    depth: str | None = None
    user_agent: str = ""
    client: Coordinate | None = None

    def has_query(self, key: str) -> bool:
        return any(name == key for name, _ in self.query)

    def query_value(self, key: str) -> str:
        for name, value in self.query:
            if name == key:
                return value
        return ""


@dataclass(slots=True)
class RedirectResult:
    """A 307 (or 200 with ``redirect=false``) with its ranked servers, or an error."""

    status: int
    message: str = ""  # for errors; the view appends " Request ID: <id>"
    location: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    servers: list[ServerView] = field(default_factory=list)
    namespace: str = ""
    destination: str = ""  # "cache" or "origin", for metrics

    @property
    def is_error(self) -> bool:
        return self.status >= 400


def _error(status: int, message: str, *extra: tuple[str, str]) -> RedirectResult:
    return RedirectResult(status=status, message=message, headers=list(extra))


@dataclass
class Trace:
    """Why an answer came out as it did: for ``X-Pelican-Debug`` and ``manage.py explain``.

    By server key: ``excluded`` maps a server to the reason it was left out; ``weights``
    holds every weight of every server that was ranked; ``presence`` what the stat said.
    """

    method: str = ""
    client: Coordinate | None = None
    namespace: str = ""
    excluded: dict[ServerKey, str] = field(default_factory=dict)
    presence: dict[ServerKey, Presence] = field(default_factory=dict)
    weights: dict[ServerKey, Weights] = field(default_factory=dict)
    chosen: list[ServerKey] = field(default_factory=list)

    def exclude(self, entries: Sequence[Entry], reason: str) -> None:
        for entry in entries:
            self.excluded.setdefault(entry.server.key, reason)

    def stat(self, entries: Sequence[Entry], presence: Mapping[str, Presence]) -> None:
        """What the availability step said (by name: one call asks servers of one kind)."""
        for entry in entries:
            if entry.server.name in presence:
                self.presence[entry.server.key] = presence[entry.server.name]


def _sort(
    entries: list[Entry],
    request: RedirectRequest,
    method: SortMethod,
    rng: random.Random,
    trace: Trace,
    availability: Mapping[str, float] | None = None,
) -> list[Entry]:
    servers = [entry.server for entry in entries]
    if method in DETERMINISTIC_METHODS and availability is None:
        # Same client coordinate and same server views: same answer. Clients keep their
        # coordinate (declared, GeoIP, or sticky random), so this is hit most of the time.
        key = (request.client, tuple(id(server) for server in servers))
        cached = _rankings.get(key)
        if cached is None or any(a is not b for a, b in zip(cached[0], servers, strict=True)):
            order, weights = rank(method, request.client, servers, rng, availability)
            _rankings[key] = (servers, order, weights)
        else:
            _, order, weights = cached
    else:
        order, weights = rank(method, request.client, servers, rng, availability)
    for entry, weight in zip(entries, weights, strict=True):
        trace.weights[entry.server.key] = weight
    ranked = [entries[index] for index in order]
    if len(ranked) < len(entries):
        kept = set(order)
        trace.exclude([e for i, e in enumerate(entries) if i not in kept], "weight of zero")
    return ranked


def _note_availability(
    trace: Trace, entries: list[Entry], presence: Mapping[str, Presence]
) -> None:
    """Origins are ranked by presence group first; within a group availability is equal.
    The weights still show what the stat said, as Pelican's would."""
    weights = availability_weights(presence)
    fill = median(weights.values()) if weights else 1.0
    for entry in entries:
        key, name = entry.server.key, entry.server.name
        if key in trace.weights:
            trace.weights[key] = replace(trace.weights[key], availability=weights.get(name, fill))


def _without(entries: Sequence[Entry], removed: Sequence[Entry]) -> list[Entry]:
    """``entries`` minus ``removed``, by identity (Entry equality compares every field)."""
    gone = {id(entry) for entry in removed}
    return [entry for entry in entries if id(entry) not in gone]


def _should_stat_caches(
    request: RedirectRequest,
    snapshot: Snapshot,
    caches: Sequence[Entry],
    namespace: NamespaceView,
    token: str,
) -> bool:
    """Reference 4.2: caches are statted only by the adaptive sort, and not for these."""
    if request.has_query("skipstat") or request.has_query("directread"):
        return False
    if not snapshot.settings.check_cache_presence or not caches:
        return False
    if request.method in NO_STAT_METHODS:
        return False
    return not (namespace.require_token and not token)


def _should_stat_origins(
    request: RedirectRequest,
    snapshot: Snapshot,
    origins: Sequence[Entry],
    namespace: NamespaceView,
    token: str,
    caches_serve: bool,
) -> bool:
    """Reference 4.2 (Pelican's ``shouldStatOrigins``): when the origins' presence is
    worth asking. Not for a request the caches will answer (``caches_serve``): a cache
    finds out itself, and a missing object is the cache's 404 to give."""
    settings = snapshot.settings
    if request.has_query("skipstat") or not settings.check_origin_presence or not origins:
        return False
    if request.method in NO_STAT_METHODS or caches_serve:
        return False
    if settings.assume_presence_at_single_origin and len(origins) == 1:
        return False
    return not (namespace.require_token and not token)


def _caches_for(
    caches: Sequence[Entry],
    origins: Sequence[Entry],
    namespace: NamespaceView,
    settings: DirectorSettings,
    trace: Trace,
) -> tuple[list[Entry], list[Entry]]:
    """The caches that may serve a cache request (reference 3.2): (supported, unknown).
    Topology caches never serve public namespaces; caches in state critical or shutting
    down are left out (``filter_caches_in_error_state``); so are those whose version lacks
    a feature the origins require (the union: any origin may get the cache's miss), and
    those whose version cannot tell come last, unsorted (``selection.cache_support``)."""
    usable = list(caches)
    if not namespace.require_token:
        trace.exclude([e for e in usable if e.namespace.from_topology], "topology cache")
        usable = [entry for entry in usable if not entry.namespace.from_topology]
    if settings.filter_caches_in_error_state:
        failing = [e for e in usable if e.server.status in CACHE_ERROR_STATES]
        for entry in failing:
            trace.excluded.setdefault(entry.server.key, f"status {entry.server.status}")
        usable = _without(usable, failing)
    features = required_features(entry.server for entry in origins)
    supported, unknown = [], []
    for entry in usable:
        support = cache_support(entry.server, features)
        if support:
            supported.append(entry)
        elif support is None:
            unknown.append(entry)
        else:
            reason = f"version {entry.server.version} lacks {' and '.join(features)}"
            trace.excluded.setdefault(entry.server.key, reason)
    return supported, unknown


def _collections_url(origins: Sequence[Entry]) -> str:
    for entry in origins:
        if server_supports(entry.server, entry.namespace, Capability.LISTINGS):
            return fmt.scheme_and_host(fmt.server_base(entry.server, entry.namespace))
    return ""


def decide(
    request: RedirectRequest,
    snapshot: Snapshot,
    *,
    availability: Availability = all_available,
    startup_grace_active: bool = False,
    external_url: str | Callable[[], str] = "",
    rng: random.Random | None = None,
    trace: Trace | None = None,
) -> RedirectResult:
    """Route one request. Numbered as the reference's ``redirectToCache``/``ToOrigin``:

    1. Validate the User-Agent version and the query (400).
    2. Match the longest namespace across routable origins and caches (404, or 429 while
       the start-up grace lasts, when no origin serves it).
    3. Keep origins that support the verb and query capabilities (405 if none).
    4. Ask the availability step about the origins when the stat rules say so (not when
       caches will answer); drop the absent, order present > unknown > ejected; 404 only
       if every origin is absent.
    5. Cache requests: the caches that may serve it, sorted (adaptive: stat the working
       set of the nearest and weigh them), those of unknown version last; with none,
       the first origin with DirectReads (404 if there is none). Origin requests (and
       ``directread``): sort the origins, within each presence group.
    6. Refuse an expired JWT (401), then build Location, Link and the X-Pelican headers.
    """
    rng = rng or random.Random()
    settings = snapshot.settings
    method = settings.sort_method
    trace = trace if trace is not None else Trace()
    trace.method = method
    trace.client = request.client

    # 1. Validation.
    problem = user_agent_problem(request.user_agent, MIN_REDIRECT_VERSIONS)
    if problem:
        return _error(400, f"{problem}.")
    directread = request.has_query("directread")
    if directread and request.has_query("prefercached"):
        # Pelican's text; the view appends " Request ID: <id>".
        return _error(
            400,
            "Failed to validate incoming request: cannot have both directread and "
            "prefercached query parameters:",
        )
    to_origin = request.to_origin or directread
    if request.to_origin and request.method not in ORIGIN_METHODS:
        return _error(405, f"The method {request.method} is not supported by the director.")

    # 2. Namespace match.
    namespace_path, entries = snapshot.longest_match(request.path, request.now)
    trace.namespace = namespace_path
    origins = [entry for entry in entries if entry.server.kind is ServerKind.ORIGIN]
    caches = [entry for entry in entries if entry.server.kind is ServerKind.CACHE]
    if any(not entry.namespace.from_topology for entry in origins):
        # A Pelican origin outranks topology origins at the same prefix (reference 3.1).
        trace.exclude([e for e in origins if e.namespace.from_topology], "topology origin")
        origins = [entry for entry in origins if not entry.namespace.from_topology]
    if not origins:
        status = 429 if startup_grace_active else 404
        extra = (("Retry-After", "1"),) if startup_grace_active else ()
        return _error(status, f"No sources found for the requested path {request.path}.", *extra)

    # 3. Capabilities.
    verb, verb_caps = verb_requirement(request.method, request.depth)
    query_caps = Capability.NONE
    if directread:
        query_caps |= Capability.DIRECT_READS
    if request.has_query("recursive"):
        query_caps |= Capability.LISTINGS
    capable = [entry for entry in origins if origin_qualifies(entry, verb_caps, query_caps)]
    namespace = (capable or origins)[0].namespace
    needs = capability_names(verb_caps, query_caps)
    trace.exclude(_without(origins, capable), f"capability: needs {needs}")
    if not capable:
        url = external_url() if callable(external_url) else external_url
        where = f" See '{url}'." if url else ""
        return _error(
            405,
            f"Discovered sources for the namespace {namespace_path}, but none support the "
            f"request (verb '{verb}', needs {needs}).{where}",
        )

    # 4. Origin presence, then order.
    token = client_token(request.authorization, request.query_value("authz"))
    supported: list[Entry] = []
    unknown: list[Entry] = []
    if not to_origin:
        supported, unknown = _caches_for(caches, capable, namespace, settings, trace)
    if to_origin:
        capable = _sort(capable, request, method, rng, trace)
    collections_url = _collections_url(capable)
    presence: Mapping[str, Presence] = {}
    if _should_stat_origins(request, snapshot, capable, namespace, token, bool(supported)):
        presence = availability(
            [entry.server for entry in capable], request.path, namespace, token, request.deadline
        )
        trace.stat(capable, presence)
        if to_origin:
            _note_availability(trace, capable, presence)
    if presence:
        ranked = rank_by_presence(capable, presence)
        trace.exclude(_without(capable, ranked), "stat: absent")
        if not ranked:
            return _error(
                404,
                f"No sources reported possession of the object {request.path}. "
                "Are you sure it exists?",
            )
        capable = ranked

    # 5. Choose the servers to send the client to.
    if to_origin:
        chosen = capable[:SERVER_LIMIT]
        trace.exclude(capable[SERVER_LIMIT:], f"beyond the first {SERVER_LIMIT}")
        destination = "origin"
    else:
        usable = _order_caches(
            request, snapshot, supported, namespace, token, availability, rng, trace
        )
        usable += unknown  # Pelican's order: those that may lack a required feature last
        destination = "cache"
        if usable:
            chosen = usable[:SERVER_LIMIT]
            trace.exclude(usable[SERVER_LIMIT:], f"beyond the first {SERVER_LIMIT}")
        else:
            fallback = [
                entry
                for entry in capable
                if server_supports(entry.server, entry.namespace, Capability.DIRECT_READS)
            ]
            if not fallback:
                return _error(
                    404,
                    "No caches can fulfill this request and no fallback origins with the "
                    f"'DirectReads' capability found for {request.path}.",
                )
            chosen = fallback[:1]
            destination = "origin"
    trace.chosen = [entry.server.key for entry in chosen]

    # 6. Token and headers.
    if token_expired(token, request.now):
        return _error(
            401,
            "The provided token has expired.",
            ("WWW-Authenticate", EXPIRED_TOKEN_CHALLENGE),
        )
    return _redirect(request, chosen, namespace, namespace_path, collections_url, destination)


def _order_caches(
    request: RedirectRequest,
    snapshot: Snapshot,
    caches: list[Entry],
    namespace: NamespaceView,
    token: str,
    availability: Availability,
    rng: random.Random,
    trace: Trace,
) -> list[Entry]:
    """Sort caches; under ``adaptive``, only the working set of the nearest N, weighed by
    what a stat of those (and only those) says: a cache holds the object when its HEAD
    carries Age > 0 (reference 3.4, 4.1)."""
    method = snapshot.settings.sort_method
    if method != SortMethod.ADAPTIVE:
        return _sort(caches, request, method, rng, trace)
    size = max(3, snapshot.settings.adaptive_working_set)
    picked = nearest(request.client, [entry.server for entry in caches], size)
    working = [caches[index] for index in picked]
    trace.exclude(_without(caches, working), "outside the adaptive working set")
    weights = None
    if _should_stat_caches(request, snapshot, working, namespace, token):
        presence = availability(
            [entry.server for entry in working], request.path, namespace, token, request.deadline
        )
        trace.stat(working, presence)
        weights = availability_weights(presence)
    return _sort(working, request, method, rng, trace, weights)


def _redirect(
    request: RedirectRequest,
    chosen: list[Entry],
    namespace: NamespaceView,
    namespace_path: str,
    collections_url: str,
    destination: str,
) -> RedirectResult:
    escaped_path = go_path_escape(request.path)
    urls = [fmt.object_url(entry.server, entry.namespace, escaped_path) for entry in chosen]
    query = fmt.redirect_query(request.query, request.authorization, request.timeout_header)
    location = f"{urls[0]}?{query}" if query else urls[0]
    header_lines: list[tuple[str, str]] = [
        ("Link", fmt.link_header(urls, path_depth(request.path, namespace_path))),
        ("X-Pelican-Namespace", fmt.namespace_header(namespace, collections_url)),
    ]
    header_lines.extend(
        ("X-Pelican-Authorization", line) for line in fmt.authorization_lines(namespace)
    )
    generation = fmt.token_generation_header(namespace)
    if generation:
        header_lines.append(("X-Pelican-Token-Generation", generation))
    header_lines.append(("X-Pelican-JobId", request.request_id))
    broker = next((entry.server.broker_url for entry in chosen if entry.server.broker_url), "")
    if broker:
        header_lines.append(("X-Pelican-Broker", broker))
    return RedirectResult(
        status=307,
        location=location,
        headers=header_lines,
        servers=[entry.server for entry in chosen],
        namespace=namespace_path,
        destination=destination,
    )
