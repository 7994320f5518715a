"""Ranking servers for a client (reference 3.4). Plain Python, no Django.

Four methods: ``distance`` (deterministic, by 2^(-miles/200)), ``distanceAndLoad`` (Pelican's
placeholder: the same), ``random`` (a shuffle) and ``adaptive`` (weighted random sampling
by distance x load x status x availability). Every weight of every server is returned,
so the debug header and ``manage.py explain`` can show why a list came out as it did.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median

from director.geo import Coordinate, distance_miles
from director.snapshot import Entry, NamespaceView, ServerView
from director.wire.types import Capability, ServerKind, ServerStatus, SortMethod
from director.wire.versions import FEATURE_MIN_VERSIONS, supports_feature

# Links list and sorted-list cap (Pelican's serverResLimit / sourceServerAdsLimit).
SERVER_LIMIT = 6


def server_has_location(server: ServerView) -> bool:
    return not (
        server.latitude is None
        or server.longitude is None
        or (server.latitude == 0.0 and server.longitude == 0.0)
    )


def _with_median(values: Sequence[float | None], default: float = 1.0) -> list[float]:
    known = [value for value in values if value is not None]
    fill = median(known) if known else default
    return [fill if value is None else value for value in values]


def _miles(client: Coordinate | None, servers: Sequence[ServerView]) -> list[float | None]:
    if client is None:
        return [None] * len(servers)
    miles: list[float | None] = []
    for server in servers:
        latitude, longitude = server.latitude, server.longitude
        if latitude is None or longitude is None or not server_has_location(server):
            miles.append(None)
        else:
            miles.append(distance_miles(client, latitude, longitude))
    return miles


def _distance_weights(client: Coordinate | None, miles: Sequence[float | None]) -> list[float]:
    if client is None:
        return [1.0] * len(miles)
    return _with_median([None if m is None else 2.0 ** (-m / 200.0) for m in miles])


def distance_weights(client: Coordinate | None, servers: Sequence[ServerView]) -> list[float]:
    """2^(-miles/200) per server; servers without a location get the median of the others.

    With no client coordinate every weight is 1.0 (the order is left as it is).
    """
    return _distance_weights(client, _miles(client, servers))


# --- weights and the four methods ---------------------------------------------------------

AVAILABLE_WEIGHT = 2.0
UNAVAILABLE_WEIGHT = 0.5
STATUS_RAW_WEIGHT = {
    ServerStatus.OK: 1.0,
    ServerStatus.UNKNOWN: 1.0,
    ServerStatus.WARNING: 0.5,
    ServerStatus.DEGRADED: 0.01,
    ServerStatus.CRITICAL: 0.01,
    ServerStatus.SHUTTING_DOWN: 0.01,
}


@dataclass(frozen=True, slots=True)
class Weights:
    """Why a server ranks where it does (Pelican's RedirectWeights, plus the distance)."""

    distance_miles: float | None
    distance: float
    io_load: float
    status: float
    availability: float

    @property
    def total(self) -> float:
        return self.distance * self.io_load * self.status * self.availability


def ewma_status_weight(
    previous: float | None, elapsed: float | None, status: ServerStatus, time_constant: float
) -> float:
    """Pelican's status weight: an EWMA of 1 (ok), 0.5 (warning), 0.01 (worse).

    alpha = 1 - exp(-elapsed / tau); new = old + alpha (x - old). The first ad takes x.
    """
    raw = STATUS_RAW_WEIGHT.get(status, 1.0)
    if previous is None or elapsed is None or not 0 < previous <= 1:
        return raw
    alpha = 1.0 - math.exp(-max(0.0, elapsed) / max(time_constant, 1e-9))
    weight = previous + alpha * (raw - previous)
    return weight if 0 < weight <= 1 else 1.0


def server_weights(
    client: Coordinate | None,
    servers: Sequence[ServerView],
    availability: Mapping[str, float] | None = None,
) -> list[Weights]:
    """Every weight of every server; unknown values take the median of the known ones."""
    miles = _miles(client, servers)
    distance = _distance_weights(client, miles)
    status = _with_median(
        [server.status_weight if server.status_weight > 0 else None for server in servers]
    )
    if availability is None:
        available = [1.0] * len(servers)
    else:
        available = _with_median([availability.get(server.name) for server in servers])
    # The director has no load figures (Pelican's IO load is unavailable on caches too):
    # every server gets the same, neutral load weight.
    return [
        Weights(miles[i], distance[i], 1.0, status[i], available[i]) for i in range(len(servers))
    ]


def weighted_sample(weights: Sequence[float], rng: random.Random) -> list[int]:
    """Indices drawn one at a time with probability w_i / sum(w), without replacement.

    Weights of zero or less are left out (a negative weight would be a bug upstream).
    """
    remaining = [(index, weight) for index, weight in enumerate(weights) if weight > 0]
    order: list[int] = []
    while remaining:
        pick = rng.uniform(0.0, sum(weight for _, weight in remaining))
        for position, (index, weight) in enumerate(remaining):
            pick -= weight
            if pick <= 0 or position == len(remaining) - 1:
                order.append(index)
                del remaining[position]
                break
    return order


def rank(
    method: SortMethod,
    client: Coordinate | None,
    servers: Sequence[ServerView],
    rng: random.Random,
    availability: Mapping[str, float] | None = None,
) -> tuple[list[int], list[Weights]]:
    """(indices of ``servers`` in ranked order, the weights of each server)."""
    weights = server_weights(client, servers, availability)
    if method == SortMethod.RANDOM:
        order = list(range(len(servers)))
        rng.shuffle(order)
    elif method == SortMethod.ADAPTIVE:
        order = weighted_sample([weight.total for weight in weights], rng)
    else:  # distance, distanceAndLoad
        order = sorted(range(len(servers)), key=lambda index: -weights[index].distance)
    return order, weights


def nearest(client: Coordinate | None, servers: Sequence[ServerView], count: int) -> list[int]:
    """Indices of the ``count`` servers with the highest distance weight, in that order."""
    weights = distance_weights(client, servers)
    return sorted(range(len(servers)), key=lambda index: -weights[index])[:count]


# --- which servers qualify, what the stat said, what caches can do ------------------------------


def server_supports(server: ServerView, namespace: NamespaceView, needed: Capability) -> bool:
    """Both the server and its namespace have ``needed`` (Pelican checks both)."""
    # Plain ints: IntFlag's own operators are slow, and this runs per server per request.
    bits = int(needed)
    return bool(int(server.capabilities) & bits) and bool(int(namespace.capabilities) & bits)


def origin_qualifies(
    entry: Entry, verb_caps: tuple[Capability, ...], query_caps: Capability
) -> bool:
    """Pelican's ``originSupportsVerb`` and ``originSupportsQuery``: one of the verb's
    capabilities, and DirectReads or Listings when the query asks for them."""
    server, namespace = entry.server, entry.namespace
    if not any(server_supports(server, namespace, cap) for cap in verb_caps):
        return False
    query_bits = int(query_caps)
    if not query_bits:
        return True
    for cap in (Capability.DIRECT_READS, Capability.LISTINGS):
        if query_bits & int(cap) and not server_supports(server, namespace, cap):
            return False
    return True


class Presence(enum.Enum):
    """What the availability step learned about one server, as routing ranks it."""

    PRESENT = "present"  # ranked first
    UNKNOWN = "unknown"  # timeout, error, saturated, pending, denied...: kept, after PRESENT
    EJECTED = "ejected"  # kept, last
    ABSENT = "absent"  # dropped


def availability_weights(presence: Mapping[str, Presence]) -> dict[str, float]:
    """2.0 for present, 0.5 for absent; servers with no verdict take the median later."""
    weights = {}
    for name, verdict in presence.items():
        if verdict is Presence.PRESENT:
            weights[name] = AVAILABLE_WEIGHT
        elif verdict is Presence.ABSENT:
            weights[name] = UNAVAILABLE_WEIGHT
    return weights


def rank_by_presence(entries: Sequence[Entry], presence: Mapping[str, Presence]) -> list[Entry]:
    """Present first, then unknown, then ejected, each in the given order; absent dropped."""
    buckets: dict[Presence, list[Entry]] = {p: [] for p in Presence}
    for entry in entries:
        buckets[presence.get(entry.server.name, Presence.UNKNOWN)].append(entry)
    return buckets[Presence.PRESENT] + buckets[Presence.UNKNOWN] + buckets[Presence.EJECTED]


def required_features(origins: Iterable[ServerView]) -> list[str]:
    """The features the origins require of caches, those this director knows (Pelican
    ignores, with a warning, a name it does not know)."""
    return sorted(
        {name for origin in origins for name in origin.required_features}
        & FEATURE_MIN_VERSIONS.keys()
    )


def cache_support(cache: ServerView, features: Sequence[str]) -> bool | None:
    """Whether ``cache`` may fetch for origins requiring ``features`` (Pelican's
    ``cacheSupportsFeature``/``cacheMightSupportFeature``): True when none is required or
    its version has one of them (Pelican asks for any, not all), None when its version
    cannot tell, False when it lacks them."""
    if not features:
        return True
    support = [supports_feature(name, ServerKind.CACHE, cache.version) for name in features]
    if True in support:
        return True
    return None if None in support else False
