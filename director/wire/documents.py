"""JSON documents in Pelican's shapes that are not ads: the error body, federation
discovery and the redirect debug body."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


def json_bytes(payload: object) -> bytes:
    """Compact JSON as Go's encoding/json writes it (no spaces)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def error_json(message: str) -> dict[str, object]:
    """``{"status":"error","msg":...}``: the one place the error body's members are named."""
    return {"status": "error", "msg": message}


def error_body(message: str) -> bytes:
    """``error_json`` as bytes: the body of every director error, from Django or from the
    WSGI server before Django (a bad request line, a request too long)."""
    return json_bytes(error_json(message))


def federation_url(url: str) -> str:
    """A central service's URL as Pelican's discovery gives it: https, without ``:443``
    (discovery.go: clients are told to reach the director over TLS, whatever the scheme
    the request came in by)."""
    parts = urlsplit(url)
    netloc = parts.netloc.removesuffix(":443")
    return urlunsplit(("https", netloc, parts.path, parts.query, parts.fragment))


def discovery_document(base: str, director_endpoints: Sequence[str]) -> dict[str, object]:
    """``/.well-known/pelican-configuration`` (reference 1.12): this director is the
    discovery, director, registration and broker endpoint of its federation, at
    ``federation_url(base)``; ``director_advertise_endpoints`` lists every live director,
    where servers may send their ads, as each one advertised itself."""
    base = federation_url(base)
    # Pelican's field order (pelican_url.FederationDiscovery); an empty list is omitted.
    document: dict[str, object] = {"discovery_endpoint": base, "director_endpoint": base}
    if director_endpoints:
        document["director_advertise_endpoints"] = list(director_endpoints)
    return document | {
        "namespace_registration_endpoint": base,
        "jwks_uri": f"{base}/.well-known/issuer.jwks",
        "broker_endpoint": base,
    }


def discovery_bytes(document: Mapping[str, object]) -> bytes:
    """The discovery body as Go's ``json.MarshalIndent(doc, "", "  ")`` plus the newline
    Pelican appends."""
    return json.dumps(document, indent=2).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class DebugCoordinate:
    latitude: float
    longitude: float
    source: str  # declared, override, maxmind, random, or "" (unknown)


@dataclass(frozen=True, slots=True)
class DebugServer:
    """One ranked server of a redirect and its RedirectWeights."""

    url: str
    coordinate: DebugCoordinate
    distance: float
    io_load: float
    status: float
    availability: float


def coordinate_json(coordinate: DebugCoordinate) -> dict[str, object]:
    """Pelican's ``Coordinate`` JSON (a random point counts as coming from its TTL cache)."""
    return {
        "Lat": coordinate.latitude,
        "Long": coordinate.longitude,
        "AccuracyRadius": 0,
        "Source": coordinate.source,
        "FromTTLCache": coordinate.source == "random",
    }


def debug_document(
    *,
    client: DebugCoordinate,
    ip: str,
    servers: Sequence[DebugServer],
    sort_method: str,
    namespace: str,
    order: Sequence[str],
    excluded: Mapping[str, str],
    stat: Mapping[str, str],
) -> dict[str, object]:
    """The ``X-Pelican-Debug: true`` body (reference 2.8: clientInfo, serversInfo,
    directorSortMethod), plus what Pelican does not say: the namespace, the final order,
    why each left-out server was left out, and each stat outcome."""
    return {
        "clientInfo": {"Coordinate": coordinate_json(client), "ipAddr": ip},
        "serversInfo": {
            server.url: {
                "Coordinate": coordinate_json(server.coordinate),
                "RedirectWeights": {
                    "distanceWeight": server.distance,
                    "ioLoadWeight": server.io_load,
                    "statusWeight": server.status,
                    "availabilityWeight": server.availability,
                },
            }
            for server in servers
        },
        "directorSortMethod": sort_method,
        "namespace": namespace,
        "order": list(order),
        "excluded": dict(excluded),
        "stat": dict(stat),
    }
