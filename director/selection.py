"""Ranking servers for a client (reference 3.4). Plain Python, no Django.

Only what the core needs lives here so far: the distance weight and the ``distance`` and
``random`` sorts. ``distanceAndLoad`` is Pelican's placeholder for ``distance``.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median
from typing import TypeVar

from director.snapshot import ServerView

EARTH_RADIUS_MILES = 3960.0
SORT_METHODS = ("distance", "distanceAndLoad", "random", "adaptive")
# Links list and sorted-list cap (Pelican's serverResLimit / sourceServerAdsLimit).
SERVER_LIMIT = 6

_COORDINATE = re.compile(
    r"\s*lat\s*=\s*(?P<lat>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*,\s*"
    r"long\s*=\s*(?P<long>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*"
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Coordinate:
    latitude: float
    longitude: float
    source: str = "declared"

    def valid(self) -> bool:
        return (
            math.isfinite(self.latitude)
            and math.isfinite(self.longitude)
            and -90.0 <= self.latitude <= 90.0
            and -180.0 <= self.longitude <= 180.0
        )


def parse_coordinate_header(value: str) -> Coordinate | None:
    """``lat=<f>,long=<f>`` from X-Pelican-Coordinate, or None if malformed or out of range."""
    match = _COORDINATE.fullmatch(value)
    if match is None:
        return None
    try:
        coordinate = Coordinate(float(match.group("lat")), float(match.group("long")))
    except ValueError:
        return None
    return coordinate if coordinate.valid() else None


def distance_miles(a: Coordinate, latitude: float, longitude: float) -> float:
    """Great-circle distance (haversine) with Pelican's Earth radius of 3960 miles."""
    lat1, lat2 = math.radians(a.latitude), math.radians(latitude)
    dlat = lat2 - lat1
    dlong = math.radians(longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlong / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(h)))


def server_has_location(server: ServerView) -> bool:
    return not (
        server.latitude is None
        or server.longitude is None
        or (server.latitude == 0.0 and server.longitude == 0.0)
    )


def distance_weights(client: Coordinate | None, servers: Sequence[ServerView]) -> list[float]:
    """2^(-miles/200) per server; servers without a location get the median of the others.

    With no client coordinate every weight is 1.0 (the order is left as it is).
    """
    if client is None:
        return [1.0] * len(servers)
    weights: list[float | None] = []
    for server in servers:
        if server_has_location(server):
            miles = distance_miles(client, server.latitude, server.longitude)  # type: ignore[arg-type]
            weights.append(2.0 ** (-miles / 200.0))
        else:
            weights.append(None)
    known = [weight for weight in weights if weight is not None]
    fill = median(known) if known else 1.0
    return [fill if weight is None else weight for weight in weights]


def sort_by_distance(
    client: Coordinate | None, items: Sequence[T], servers: Sequence[ServerView]
) -> list[T]:
    """Stable sort of ``items`` (parallel to ``servers``) by descending distance weight."""
    weights = distance_weights(client, servers)
    order = sorted(range(len(items)), key=lambda index: -weights[index])
    return [items[index] for index in order]


def sort_randomly(items: Sequence[T], rng: random.Random) -> list[T]:
    shuffled = list(items)
    rng.shuffle(shuffled)
    return shuffled
