"""Sorting in the redirect decision (reference 3.4): caches and origins by distance from
the client, name order without a client coordinate, random with the given generator."""

from __future__ import annotations

import random

from helpers import AMSTERDAM, CHICAGO, MADISON, SAN_DIEGO
from routing_builders import (
    LINCOLN_NE,
    cache,
    located,
    names,
    ns,
    origin,
    request,
    snapshot,
)

from director.routing import decide
from director.wire.types import ServerKind

# Sorting


def test_caches_are_sorted_by_distance_from_the_client():
    snap = snapshot(
        (origin("o"), ns()),
        (located("a-amsterdam", AMSTERDAM, ServerKind.CACHE), ns()),
        (located("b-sandiego", SAN_DIEGO, ServerKind.CACHE), ns()),
        (located("c-chicago", CHICAGO, ServerKind.CACHE), ns()),
        (located("d-madison", MADISON, ServerKind.CACHE), ns()),
    )
    result = decide(request(client=LINCOLN_NE), snap)
    assert names(result) == ["d-madison", "c-chicago", "b-sandiego", "a-amsterdam"]
    assert result.location == "https://d-madison.example.org:8443/ns/file.txt"


def test_origins_are_sorted_by_distance_for_an_origin_request():
    snap = snapshot(
        (located("a-amsterdam", AMSTERDAM, ServerKind.ORIGIN), ns()),
        (located("b-sandiego", SAN_DIEGO, ServerKind.ORIGIN), ns()),
        (located("c-chicago", CHICAGO, ServerKind.ORIGIN), ns()),
        (located("d-madison", MADISON, ServerKind.ORIGIN), ns()),
        check_origin_presence=False,
    )
    result = decide(request(to_origin=True, client=LINCOLN_NE), snap)
    assert names(result) == ["d-madison", "c-chicago", "b-sandiego", "a-amsterdam"]


def test_without_a_client_coordinate_servers_keep_name_order():
    snap = snapshot(
        (origin("o"), ns()),
        (located("a-amsterdam", AMSTERDAM, ServerKind.CACHE), ns()),
        (located("d-madison", MADISON, ServerKind.CACHE), ns()),
    )
    assert names(decide(request(), snap)) == ["a-amsterdam", "d-madison"]


def test_random_sort_shuffles_the_caches_with_the_given_generator():
    cache_names = [f"cache-{n}" for n in range(1, 7)]
    snap = snapshot(
        (origin("o"), ns()), *[(cache(name), ns()) for name in cache_names], sort_method="random"
    )
    expected = list(cache_names)
    random.Random(11).shuffle(expected)
    assert expected != cache_names
    assert names(decide(request(), snap, rng=random.Random(11))) == expected
