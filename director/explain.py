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

from dataclasses import dataclass, field

from director import redirects, registry
from director.geo import MILES_TO_KM, Coordinate, LocationSource
from director.locate import locator
from director.registry_rows import registry_rows
from director.snapshot import prefix_key
from director.wire.types import ServerKind


@dataclass
class ServerLine:
    name: str
    kind: str
    url: str
    distance_km: float | None = None
    weights: dict[str, float] | None = None
    stat: str = ""
    rank: int | None = None
    excluded: str = ""


@dataclass
class Explanation:
    path: str
    route: str
    client: Coordinate
    client_ip: str
    method: str
    namespace: str
    status: int
    location: str
    message: str
    servers: list[ServerLine] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """The console's ExplainOut without its worker (``director.console.schemas``)."""
        return {
            "path": self.path,
            "route": self.route,
            "client": {
                "ip": self.client_ip,
                "latitude": self.client.latitude,
                "longitude": self.client.longitude,
                "source": str(self.client.source),
            },
            "sortMethod": self.method,
            "namespace": self.namespace,
            "status": self.status,
            "location": self.location,
            "message": self.message,
            "servers": [
                {
                    "name": line.name,
                    "kind": line.kind,
                    "url": line.url,
                    "distanceKm": line.distance_km,
                    "weights": line.weights,
                    "stat": line.stat,
                    "rank": line.rank,
                    "excluded": line.excluded,
                }
                for line in self.servers
            ],
        }


def explain(
    path: str,
    *,
    client_ip: str = "",
    coordinate: Coordinate | None = None,
    to_origin: bool = False,
    token: str = "",
) -> Explanation:
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
    explanation = Explanation(
        path=path,
        route="origin" if to_origin else "object",
        client=client,
        client_ip=client_ip,
        method=snapshot.settings.sort_method,
        namespace=trace.namespace,
        status=result.status,
        location=result.location,
        message=result.message,
    )
    matched = {
        entry.server.key
        for entry in snapshot.by_prefix.get(prefix_key(trace.namespace), ())
        if trace.namespace
    }
    for server in registry_rows(now):  # in (kind, name) order
        line = ServerLine(server.name, server.kind, server.data_url.rstrip("/"))
        key = (server.kind, server.name)
        view = snapshot.servers.get(key)
        weights = trace.weights.get(key)
        if weights is not None:
            line.weights = {
                "distance": round(weights.distance, 6),
                "ioLoad": weights.io_load,
                "status": round(weights.status, 6),
                "availability": weights.availability,
                "total": round(weights.total, 6),
            }
            if weights.distance_miles is not None:
                line.distance_km = round(weights.distance_miles * MILES_TO_KM, 1)
        if key in decision.stat_results:
            line.stat = decision.stat_results[key].outcome.value
        unroutable = view.unroutable_reason(now) if view is not None else None
        if key in trace.chosen:
            line.rank = trace.chosen.index(key) + 1
        elif view is None:
            # Not in the snapshot: disabled or lapsed (or saved a moment ago).
            line.excluded = server.unroutable(now) or "not in the routing snapshot yet"
        elif unroutable is not None:
            line.excluded = unroutable.value
        elif key not in matched:
            line.excluded = "namespace: serves no namespace that wins for this path"
        elif key in trace.excluded:
            line.excluded = trace.excluded[key]
        elif view.kind is ServerKind.ORIGIN and not to_origin:
            line.excluded = "origin: the object route sends clients to caches"
        elif view.kind is ServerKind.CACHE and to_origin:
            line.excluded = "cache: the origin route sends clients to origins"
        else:
            line.excluded = "not chosen"
        explanation.servers.append(line)
    # The answer's order, then the rest (kind, name): as stat and statpools list them.
    explanation.servers.sort(key=lambda line: (line.rank is None, line.rank or 0))
    return explanation


def parse_coordinate(text: str) -> Coordinate:
    """``LAT,LONG``; ValueError with a reason otherwise."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError("expected LAT,LONG, e.g. 40.81,-96.70")
    coordinate = Coordinate(float(parts[0]), float(parts[1]), source=LocationSource.DECLARED)
    if not coordinate.valid():
        raise ValueError("latitude must be within [-90, 90] and longitude within [-180, 180]")
    return coordinate
