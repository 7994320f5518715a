"""The order the client gets its servers in: sorting by the settings' method (with a
cache of deterministic rankings), origins' weights noted within their presence groups,
and, under ``adaptive``, caches weighed by a stat of the nearest working set.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from statistics import median

from cachetools import LRUCache

from director.geo import Coordinate
from director.routing.candidates import should_stat_caches, without
from director.routing.trace import Trace
from director.routing.types import Availability, RedirectRequest
from director.selection import Presence, Weights, availability_weights, nearest, rank
from director.snapshot import Entry, NamespaceView, ServerView, Snapshot
from director.wire.types import SortMethod

DETERMINISTIC_METHODS = frozenset({SortMethod.DISTANCE, SortMethod.DISTANCE_AND_LOAD})


# ~5 KB per entry with 100 caches: 1,024 entries stay within a few MB per process.
RankingKey = tuple[Coordinate | None, tuple[int, ...]]  # client, id() of each server view
Ranking = tuple[list[ServerView], list[int], list[Weights]]  # the views, order, weights
_rankings: LRUCache[RankingKey, Ranking] = LRUCache(1024)


def sort_entries(
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


def note_availability(trace: Trace, entries: list[Entry], presence: Mapping[str, Presence]) -> None:
    """Origins are ranked by presence group first; within a group availability is equal.
    The weights still show what the stat said, as Pelican's would."""
    weights = availability_weights(presence)
    fill = median(weights.values()) if weights else 1.0
    for entry in entries:
        key, name = entry.server.key, entry.server.name
        if key in trace.weights:
            trace.weights[key] = replace(trace.weights[key], availability=weights.get(name, fill))


def order_caches(
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
        return sort_entries(caches, request, method, rng, trace)
    size = max(3, snapshot.settings.adaptive_working_set)
    picked = nearest(request.client, [entry.server for entry in caches], size)
    working = [caches[index] for index in picked]
    trace.exclude(without(caches, working), "outside the adaptive working set")
    weights = None
    if should_stat_caches(request, snapshot, working, namespace, token):
        presence = availability(
            [entry.server for entry in working], request.path, namespace, token, request.deadline
        )
        trace.stat(working, presence)
        weights = availability_weights(presence)
    return sort_entries(working, request, method, rng, trace, weights)
