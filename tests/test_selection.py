from __future__ import annotations

import random

import pytest

from director.geo import EARTH_RADIUS_MILES, Coordinate, distance_miles, parse_coordinate_header
from director.selection import SERVER_LIMIT, distance_weights, rank, server_has_location
from director.snapshot import ServerView
from director.wire.types import ServerKind


def sort_by_distance(client, items, servers):
    """The ``distance`` ranking of ``servers`` applied to the parallel ``items``."""
    order, _ = rank("distance", client, servers, random.Random(0))
    return [items[index] for index in order]


LINCOLN_NE = Coordinate(40.8136, -96.7026)
# Great-circle miles from Lincoln, NE (haversine, R = 3960 mi), worked out by hand:
#   Madison WI   (43.0731, -89.4012)   406.36 mi  weight 2^(-406.36/200)  = 0.244549
#   Chicago IL   (41.8781, -87.6298)   476.24 mi  weight 2^(-476.24/200)  = 0.191949
#   San Diego CA (32.7157, -117.1611) 1259.26 mi  weight 2^(-1259.26/200) = 0.012724
#   Amsterdam NL (52.3676, 4.9041)    4483.64 mi  weight 2^(-4483.64/200) = 1.784e-7
MADISON = (43.0731, -89.4012)
CHICAGO = (41.8781, -87.6298)
SAN_DIEGO = (32.7157, -117.1611)
AMSTERDAM = (52.3676, 4.9041)


def cache_at(name: str, location: tuple[float, float] | None) -> ServerView:
    latitude, longitude = location if location is not None else (None, None)
    return ServerView(
        name=name,
        kind=ServerKind.CACHE,
        url=f"https://{name}.example.org:8443",
        latitude=latitude,
        longitude=longitude,
    )


# X-Pelican-Coordinate


@pytest.mark.parametrize(
    ("value", "latitude", "longitude"),
    [
        ("lat=40.8136,long=-96.7026", 40.8136, -96.7026),
        ("lat=0,long=0", 0.0, 0.0),
        (" lat = 1.5 , long = +2.25 ", 1.5, 2.25),
        ("lat=90,long=-180", 90.0, -180.0),
        ("lat=-90,long=180", -90.0, 180.0),
        ("lat=4.5e1,long=-1E2", 45.0, -100.0),
    ],
)
def test_a_valid_coordinate_header_is_parsed_as_declared(value, latitude, longitude):
    assert parse_coordinate_header(value) == Coordinate(latitude, longitude, "declared")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "lat=40",
        "long=-96,lat=40",
        "lat=abc,long=1",
        "lat=1.2.3,long=4",
        "lat=nan,long=1",
        "lat=inf,long=1",
        "lat=40;long=-96",
        "latitude=40,longitude=-96",
        "lat=40,long=-96,extra=1",
        "40,-96",
    ],
)
def test_a_malformed_coordinate_header_is_ignored(value):
    assert parse_coordinate_header(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "lat=90.0001,long=0",
        "lat=-91,long=0",
        "lat=0,long=180.5",
        "lat=0,long=-181",
        "lat=1e3,long=0",
    ],
)
def test_an_out_of_range_coordinate_header_is_ignored(value):
    assert parse_coordinate_header(value) is None


# Distance


def test_earth_radius_is_pelicans_3960_miles():
    assert EARTH_RADIUS_MILES == 3960.0


@pytest.mark.parametrize(
    ("location", "miles"),
    [(MADISON, 406.36), (CHICAGO, 476.24), (SAN_DIEGO, 1259.26), (AMSTERDAM, 4483.64)],
)
def test_distance_is_the_haversine_great_circle_in_miles(location, miles):
    assert distance_miles(LINCOLN_NE, *location) == pytest.approx(miles, abs=0.01)


def test_distance_to_the_antipode_is_half_the_circumference():
    assert distance_miles(Coordinate(0.0, 0.0), 0.0, 180.0) == pytest.approx(3960.0 * 3.14159265)


def test_distance_weight_is_two_to_the_minus_miles_over_200():
    servers = [cache_at("madison", MADISON), cache_at("sandiego", SAN_DIEGO)]
    assert distance_weights(LINCOLN_NE, servers) == [
        pytest.approx(0.244549, rel=1e-5),
        pytest.approx(0.012724, rel=1e-4),
    ]


def test_a_server_at_the_client_has_weight_one():
    here = ServerView("here", ServerKind.CACHE, "https://here", latitude=10.0, longitude=20.0)
    assert distance_weights(Coordinate(10.0, 20.0), [here]) == [1.0]


def test_a_server_without_location_gets_the_median_weight_of_the_others():
    servers = [
        cache_at("madison", MADISON),
        cache_at("nowhere", None),
        cache_at("chicago", CHICAGO),
        cache_at("sandiego", SAN_DIEGO),
        cache_at("amsterdam", AMSTERDAM),
    ]
    weights = distance_weights(LINCOLN_NE, servers)
    # Median of the four known weights: (0.191949 + 0.012724) / 2.
    assert weights[1] == pytest.approx((weights[2] + weights[3]) / 2)
    assert weights[1] == pytest.approx(0.102336, rel=1e-4)


def test_a_server_at_zero_zero_counts_as_without_location():
    null_island = cache_at("null", (0.0, 0.0))
    assert server_has_location(null_island) is False
    servers = [cache_at("madison", MADISON), null_island, cache_at("chicago", CHICAGO)]
    weights = distance_weights(LINCOLN_NE, servers)
    assert weights[1] == pytest.approx((0.244549 + 0.191949) / 2, rel=1e-5)


def test_server_has_location_needs_both_coordinates():
    assert server_has_location(cache_at("m", MADISON)) is True
    half = ServerView("half", ServerKind.CACHE, "https://half", latitude=43.0, longitude=None)
    assert server_has_location(half) is False
    assert server_has_location(cache_at("none", None)) is False


def test_with_no_located_server_every_weight_is_one():
    servers = [cache_at("a", None), cache_at("b", (0.0, 0.0))]
    assert distance_weights(LINCOLN_NE, servers) == [1.0, 1.0]


def test_without_a_client_coordinate_every_weight_is_one():
    servers = [cache_at("madison", MADISON), cache_at("amsterdam", AMSTERDAM)]
    assert distance_weights(None, servers) == [1.0, 1.0]


def test_servers_are_ordered_nearest_first_for_a_client_in_lincoln():
    servers = [
        cache_at("amsterdam", AMSTERDAM),
        cache_at("sandiego", SAN_DIEGO),
        cache_at("chicago", CHICAGO),
        cache_at("madison", MADISON),
    ]
    ordered = sort_by_distance(LINCOLN_NE, servers, servers)
    assert [server.name for server in ordered] == ["madison", "chicago", "sandiego", "amsterdam"]


def test_a_server_without_location_lands_mid_list():
    servers = [
        cache_at("nowhere", None),
        cache_at("amsterdam", AMSTERDAM),
        cache_at("sandiego", SAN_DIEGO),
        cache_at("chicago", CHICAGO),
        cache_at("madison", MADISON),
    ]
    ordered = sort_by_distance(LINCOLN_NE, servers, servers)
    assert [server.name for server in ordered] == [
        "madison",
        "chicago",
        "nowhere",
        "sandiego",
        "amsterdam",
    ]


def test_sort_by_distance_reorders_the_parallel_items():
    servers = [cache_at("sandiego", SAN_DIEGO), cache_at("madison", MADISON)]
    assert sort_by_distance(LINCOLN_NE, ["item-sd", "item-m"], servers) == ["item-m", "item-sd"]


def test_sort_by_distance_is_stable_for_equal_weights():
    servers = [cache_at("b", None), cache_at("a", None), cache_at("c", None)]
    ordered = sort_by_distance(LINCOLN_NE, servers, servers)
    assert [server.name for server in ordered] == ["b", "a", "c"]


def test_sort_by_distance_without_a_client_keeps_the_order():
    servers = [cache_at("amsterdam", AMSTERDAM), cache_at("madison", MADISON)]
    ordered = sort_by_distance(None, servers, servers)
    assert [server.name for server in ordered] == ["amsterdam", "madison"]


def test_sort_randomly_shuffles_a_copy_with_the_given_generator():
    servers = [cache_at(str(index), None) for index in range(10)]
    before = list(servers)
    expected = list(range(10))
    random.Random(42).shuffle(expected)
    order, _ = rank("random", None, servers, random.Random(42))
    assert order == expected
    assert servers == before


def test_the_server_limit_is_six():
    assert SERVER_LIMIT == 6
