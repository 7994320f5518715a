"""Why a client would be sent where it would: ``manage.py explain`` and the console's Why
page (beyond Pelican).

Runs the real redirect decision for one path and one client, with real stats, and then
accounts for every server in the registry: its distance, every weight, its stat outcome,
its place in the answer, or the reason it was left out (disabled, expired, downtime,
status, namespace, capability, stat, working set...). In a running director (the
console's ``/api/v1.0/console/explain``, which ``explain --director`` asks) it uses that
process's stat engine, ejections and sticky client locations: what a redirect would get.
Servers are listed in the answer's order, then the rest by kind and name.
"""

from __future__ import annotations

from director import redirects, registry
from director.geo import MILES_TO_KM, Coordinate, LocationSource
from director.locate import locator
from director.registry_rows import registry_rows
from director.schemas import WireOut
from director.serving.traffic import RouteLabel
from director.snapshot import prefix_key
from director.wire.types import ServerKind

# The document, declared once: ``explain`` builds it, the console's API serves it (with
# the worker that answered: ``director.console.schemas.ExplainOut``) and documents it in
# the OpenAPI, and ``manage.py explain`` prints it (``--json``) or reads it back from a
# running director. Key order and nulls are the JSON's (the console's script reads it).


class ExplainClientOut(WireOut):
    ip: str
    latitude: float
    longitude: float
    source: str


class ExplainWeightsOut(WireOut):
    distance: float
    ioLoad: float
    status: float
    availability: float
    total: float


class ExplainServerOut(WireOut):
    name: str
    kind: str
    url: str
    distanceKm: float | None
    weights: ExplainWeightsOut | None
    stat: str
    rank: int | None
    excluded: str


class ExplanationOut(WireOut):
    """Why a client would be sent where: the answer, then every server of the registry."""

    path: str
    route: str
    client: ExplainClientOut
    sortMethod: str
    namespace: str
    status: int
    location: str
    message: str
    servers: list[ExplainServerOut]


def explain(
    path: str,
    *,
    client_ip: str = "",
    coordinate: Coordinate | None = None,
    to_origin: bool = False,
    token: str = "",
) -> ExplanationOut:
    snapshot = registry.current()
    if coordinate is not None:
        client = coordinate
    else:
        client = locator().locate("", client_ip, snapshot.overrides)
    request = redirects.new_request(
        snapshot,
        path,
        to_origin=to_origin,
        authorization=f"Bearer {token}" if token else "",
        client=client,
    )
    # Explain answers for a director in its steady state: this process has just started,
    # and its start-up grace says nothing about the serving director's.
    decision = redirects.decide(request, snapshot, startup_grace=False)
    trace, result, now = decision.trace, decision.result, request.now
    matched = {
        entry.server.key
        for entry in snapshot.by_prefix.get(prefix_key(trace.namespace), ())
        if trace.namespace
    }
    servers = []
    for server in registry_rows(now):  # in (kind, name) order
        key = (server.kind, server.name)
        view = snapshot.servers.get(key)
        weights = trace.weights.get(key)
        distance_km = None
        if weights is not None and weights.distance_miles is not None:
            distance_km = round(weights.distance_miles * MILES_TO_KM, 1)
        stat = decision.stat_results[key].outcome.value if key in decision.stat_results else ""
        unroutable = view.unroutable_reason(now) if view is not None else None
        rank = trace.chosen.index(key) + 1 if key in trace.chosen else None
        if rank is not None:
            excluded = ""
        elif view is None:
            # Not in the snapshot: disabled or lapsed (or saved a moment ago).
            excluded = server.unroutable(now) or "not in the routing snapshot yet"
        elif unroutable is not None:
            excluded = unroutable.value
        elif key not in matched:
            excluded = "namespace: serves no namespace that wins for this path"
        elif key in trace.excluded:
            excluded = trace.excluded[key]
        elif view.kind is ServerKind.ORIGIN and not to_origin:
            excluded = "origin: the object route sends clients to caches"
        elif view.kind is ServerKind.CACHE and to_origin:
            excluded = "cache: the origin route sends clients to origins"
        else:
            excluded = "not chosen"
        servers.append(
            ExplainServerOut(
                name=server.name,
                kind=server.kind,
                url=server.data_url.rstrip("/"),
                distanceKm=distance_km,
                weights=None
                if weights is None
                else ExplainWeightsOut(
                    distance=round(weights.distance, 6),
                    ioLoad=weights.io_load,
                    status=round(weights.status, 6),
                    availability=weights.availability,
                    total=round(weights.total, 6),
                ),
                stat=stat,
                rank=rank,
                excluded=excluded,
            )
        )
    # The answer's order, then the rest (kind, name): as stat and statpools list them.
    servers.sort(key=lambda line: (line.rank is None, line.rank or 0))
    return ExplanationOut(
        path=path,
        route=RouteLabel.ORIGIN if to_origin else RouteLabel.OBJECT,
        client=ExplainClientOut(
            ip=client_ip,
            latitude=client.latitude,
            longitude=client.longitude,
            source=str(client.source),
        ),
        sortMethod=snapshot.settings.sort_method,
        namespace=trace.namespace,
        status=result.status,
        location=result.location,
        message=result.message,
        servers=servers,
    )


def parse_coordinate(text: str) -> Coordinate:
    """``LAT,LONG``; ValueError with a reason otherwise."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError("expected LAT,LONG, e.g. 40.81,-96.70")
    coordinate = Coordinate(float(parts[0]), float(parts[1]), source=LocationSource.DECLARED)
    if not coordinate.valid():
        raise ValueError("latitude must be within [-90, 90] and longitude within [-180, 180]")
    return coordinate
