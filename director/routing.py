"""The redirect decision: from a cleaned request to a ranked list of servers and headers.

Plain Python, no Django: ``director.views`` turns an HttpRequest into a ``RedirectRequest``
and a ``RedirectResult`` back into a response. Reference sections 1.3-1.5, 2 and 3.1-3.3.

Object presence ("stat") plugs in through one seam, ``AvailabilityCheck``: it receives the
ordered candidate servers, the path, the client's token and the request's deadline, and
answers per server. ``all_available`` is the check used when presence is not asked for.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from director import headers as fmt
from director.paths import path_depth
from director.selection import SERVER_LIMIT, Coordinate, sort_by_distance, sort_randomly
from director.snapshot import (
    Capability,
    Entry,
    NamespaceView,
    ServerKind,
    ServerStatus,
    ServerView,
    Snapshot,
)
from director.tokens import EXPIRED_TOKEN_CHALLENGE, client_token, token_expired
from director.versions import MIN_REDIRECT_VERSIONS, user_agent_problem

READ_METHODS = frozenset({"GET", "HEAD"})
ORIGIN_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PROPFIND", "COPY"})
NO_STAT_METHODS = frozenset({"PUT", "DELETE", "PROPFIND"})
# Caches in these states are dropped when filter_caches_in_error_state is on.
CACHE_ERROR_STATES = frozenset({ServerStatus.CRITICAL, ServerStatus.SHUTTING_DOWN})


class Presence(enum.Enum):
    """What the availability step learned about one server, as routing ranks it."""

    PRESENT = "present"  # ranked first
    UNKNOWN = "unknown"  # timeout, error, saturated, pending, denied...: kept, after PRESENT
    EJECTED = "ejected"  # kept, last
    ABSENT = "absent"  # dropped


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
    path: str  # cleaned (director.paths.clean_path)
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


def _server_supports(server: ServerView, namespace: NamespaceView, needed: Capability) -> bool:
    return bool(server.capabilities & needed) and bool(namespace.capabilities & needed)


def _verb_requirement(method: str, depth: str | None) -> tuple[str, tuple[Capability, ...]]:
    """(Pelican verb name, capabilities any one of which must be on server and namespace)."""
    if method in READ_METHODS:
        return "get", (Capability.READS, Capability.PUBLIC_READS)
    if method in ("PUT", "DELETE"):
        return method.lower(), (Capability.WRITES,)
    if method == "PROPFIND":
        if depth is None or depth.strip() == "0":
            return "stat", (Capability.READS, Capability.PUBLIC_READS)
        return "ls", (Capability.LISTINGS,)
    if method == "COPY":
        return "copy", (Capability.COPIES,)
    return "unknown", ()


def _origin_qualifies(
    entry: Entry, verb_caps: tuple[Capability, ...], query_caps: Capability
) -> bool:
    server, namespace = entry.server, entry.namespace
    if not any(_server_supports(server, namespace, cap) for cap in verb_caps):
        return False
    for cap in (Capability.DIRECT_READS, Capability.LISTINGS):
        if query_caps & cap and not _server_supports(server, namespace, cap):
            return False
    return True


def _capability_names(verb_caps: tuple[Capability, ...], query_caps: Capability) -> str:
    names = {
        Capability.READS: "Reads",
        Capability.PUBLIC_READS: "PublicReads",
        Capability.WRITES: "Writes",
        Capability.LISTINGS: "Listings",
        Capability.DIRECT_READS: "DirectReads",
        Capability.COPIES: "Copies",
    }
    verb = " OR ".join(names[cap] for cap in verb_caps) or "none"
    extra = [
        names[cap] for cap in (Capability.DIRECT_READS, Capability.LISTINGS) if query_caps & cap
    ]
    if len(verb_caps) > 1 and extra:
        verb = f"({verb})"
    return " AND ".join([verb, *extra])


def _sort(
    entries: list[Entry], request: RedirectRequest, method: str, rng: random.Random
) -> list[Entry]:
    if method == "random":
        return sort_randomly(entries, rng)
    return sort_by_distance(request.client, entries, [entry.server for entry in entries])


def _should_stat_origins(
    request: RedirectRequest,
    snapshot: Snapshot,
    origins: Sequence[Entry],
    namespace: NamespaceView,
    token: str,
) -> bool:
    """Reference 4.2: when the origins' presence is worth asking."""
    settings = snapshot.settings
    if request.has_query("skipstat") or not settings.check_origin_presence or not origins:
        return False
    if request.method in NO_STAT_METHODS:
        return False
    if settings.assume_presence_at_single_origin and len(origins) == 1:
        return False
    return not (namespace.require_token and not token)


def _collections_url(origins: Sequence[Entry]) -> str:
    for entry in origins:
        if _server_supports(entry.server, entry.namespace, Capability.LISTINGS):
            return fmt.scheme_and_host(fmt.server_base(entry.server, entry.namespace))
    return ""


def decide(
    request: RedirectRequest,
    snapshot: Snapshot,
    *,
    availability: Availability = all_available,
    startup_grace_active: bool = False,
    external_url: str = "",
    rng: random.Random | None = None,
) -> RedirectResult:
    """Route one request. Numbered as the reference's ``redirectToCache``/``ToOrigin``:

    1. Validate the User-Agent version and the query (400).
    2. Match the longest namespace across routable origins and caches (404, or 429 while
       the start-up grace lasts, when no origin serves it).
    3. Keep origins that support the verb and query capabilities (405 if none).
    4. Ask the availability step about the origins when the stat rules say so; drop the
       absent, order present > unknown > ejected; 404 only if every origin is absent.
    5. Cache requests: drop caches in an error state, sort the rest; with none left, fall
       back to the first origin with DirectReads (404 if there is none). Origin requests
       (and ``directread``): sort the origins.
    6. Refuse an expired JWT (401), then build Location, Link and the X-Pelican headers.
    """
    rng = rng or random.Random()
    settings = snapshot.settings

    # 1. Validation.
    problem = user_agent_problem(request.user_agent, MIN_REDIRECT_VERSIONS)
    if problem:
        return _error(400, f"{problem}.")
    directread = request.has_query("directread")
    if directread and request.has_query("prefercached"):
        return _error(400, "The 'directread' and 'prefercached' queries cannot be used together.")
    to_origin = request.to_origin or directread
    if request.to_origin and request.method not in ORIGIN_METHODS:
        return _error(405, f"The method {request.method} is not supported by the director.")

    # 2. Namespace match.
    namespace_path, entries = snapshot.longest_match(request.path, request.now)
    origins = [entry for entry in entries if entry.server.kind is ServerKind.ORIGIN]
    caches = [entry for entry in entries if entry.server.kind is ServerKind.CACHE]
    if any(not entry.namespace.from_topology for entry in origins):
        # A Pelican origin outranks topology origins at the same prefix (reference 3.1).
        origins = [entry for entry in origins if not entry.namespace.from_topology]
    if not origins:
        status = 429 if startup_grace_active else 404
        extra = (("Retry-After", "1"),) if startup_grace_active else ()
        return _error(status, f"No sources found for the requested path {request.path}.", *extra)

    # 3. Capabilities.
    verb, verb_caps = _verb_requirement(request.method, request.depth)
    query_caps = Capability.NONE
    if directread:
        query_caps |= Capability.DIRECT_READS
    if request.has_query("recursive"):
        query_caps |= Capability.LISTINGS
    capable = [entry for entry in origins if _origin_qualifies(entry, verb_caps, query_caps)]
    namespace = (capable or origins)[0].namespace
    if not capable:
        where = f" See '{external_url}'." if external_url else ""
        return _error(
            405,
            f"Discovered sources for the namespace {namespace_path}, but none support the "
            f"request (verb '{verb}', needs {_capability_names(verb_caps, query_caps)}).{where}",
        )

    # 4. Origin presence.
    token = client_token(request.authorization, request.query_value("authz"))
    if to_origin:
        capable = _sort(capable, request, settings.sort_method, rng)
    collections_url = _collections_url(capable)
    if _should_stat_origins(request, snapshot, capable, namespace, token):
        presence = availability(
            [entry.server for entry in capable], request.path, namespace, token, request.deadline
        )
        ranked = _rank_by_presence(capable, presence)
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
        destination = "origin"
    else:
        usable = caches
        if not namespace.require_token:
            # Topology caches never serve public namespaces (cacheNotFromTopoIfPubReads).
            usable = [entry for entry in usable if not entry.namespace.from_topology]
        if settings.filter_caches_in_error_state:
            usable = [entry for entry in usable if entry.server.status not in CACHE_ERROR_STATES]
        usable = _sort(usable, request, settings.sort_method, rng)
        destination = "cache"
        if usable:
            chosen = usable[:SERVER_LIMIT]
        else:
            fallback = [
                entry
                for entry in capable
                if _server_supports(entry.server, entry.namespace, Capability.DIRECT_READS)
            ]
            if not fallback:
                return _error(
                    404,
                    "No caches can fulfill this request and no fallback origins with the "
                    f"'DirectReads' capability found for {request.path}.",
                )
            chosen = fallback[:1]
            destination = "origin"

    # 6. Token and headers.
    if token_expired(token, request.now):
        return _error(
            401,
            "The provided token has expired.",
            ("WWW-Authenticate", EXPIRED_TOKEN_CHALLENGE),
        )
    return _redirect(request, chosen, namespace, namespace_path, collections_url, destination)


def _rank_by_presence(entries: list[Entry], presence: Mapping[str, Presence]) -> list[Entry]:
    """Present first, then unknown, then ejected, each in the given order; absent dropped."""
    buckets: dict[Presence, list[Entry]] = {p: [] for p in Presence}
    for entry in entries:
        buckets[presence.get(entry.server.name, Presence.UNKNOWN)].append(entry)
    return buckets[Presence.PRESENT] + buckets[Presence.UNKNOWN] + buckets[Presence.EJECTED]


def _redirect(
    request: RedirectRequest,
    chosen: list[Entry],
    namespace: NamespaceView,
    namespace_path: str,
    collections_url: str,
    destination: str,
) -> RedirectResult:
    escaped_path = fmt.go_path_escape(request.path)
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
