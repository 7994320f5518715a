"""``decide``: one request through the numbered steps of the reference's
``redirectToCache``/``redirectToOrigin``, to a refusal or a redirect with its headers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from director.routing.candidates import (
    caches_for,
    collections_url_of,
    should_stat_origins,
    without,
)
from director.routing.ordering import note_availability, order_caches, sort_entries
from director.routing.trace import Trace
from director.routing.types import Availability, RedirectRequest, RedirectResult, all_available
from director.selection import (
    SERVER_LIMIT,
    Presence,
    origin_qualifies,
    rank_by_presence,
    server_supports,
)
from director.snapshot import Entry, NamespaceView, Snapshot
from director.wire import headers as fmt
from director.wire.paths import go_path_escape, path_depth
from director.wire.tokens import EXPIRED_TOKEN_CHALLENGE, client_token, token_expired
from director.wire.types import (
    ORIGIN_METHODS,
    Capability,
    ServerKind,
    capability_names,
    verb_requirement,
)
from director.wire.versions import MIN_REDIRECT_VERSIONS, user_agent_problem


def _error(status: int, message: str, *extra: tuple[str, str]) -> RedirectResult:
    return RedirectResult(status=status, message=message, headers=list(extra))


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
    trace.exclude(without(origins, capable), f"capability: needs {needs}")
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
        supported, unknown = caches_for(caches, capable, namespace, settings, trace)
    if to_origin:
        capable = sort_entries(capable, request, method, rng, trace)
    collections_url = collections_url_of(capable)
    presence: Mapping[str, Presence] = {}
    if should_stat_origins(request, snapshot, capable, namespace, token, bool(supported)):
        presence = availability(
            [entry.server for entry in capable], request.path, namespace, token, request.deadline
        )
        trace.stat(capable, presence)
        if to_origin:
            note_availability(trace, capable, presence)
    if presence:
        ranked = rank_by_presence(capable, presence)
        trace.exclude(without(capable, ranked), "stat: absent")
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
        destination = ServerKind.ORIGIN
    else:
        usable = order_caches(
            request, snapshot, supported, namespace, token, availability, rng, trace
        )
        usable += unknown  # Pelican's order: those that may lack a required feature last
        destination = ServerKind.CACHE
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
            destination = ServerKind.ORIGIN
    trace.chosen = [entry.server.key for entry in chosen]

    # 6. Token and headers.
    if token_expired(token, request.now):
        return _error(
            401,
            "The provided token has expired.",
            ("WWW-Authenticate", EXPIRED_TOKEN_CHALLENGE),
        )
    return _redirect(request, chosen, namespace, namespace_path, collections_url, destination)


def _redirect(
    request: RedirectRequest,
    chosen: list[Entry],
    namespace: NamespaceView,
    namespace_path: str,
    collections_url: str,
    destination: ServerKind,
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
