"""The sort methods and the adaptive sort (reference 3.4, 4.1-4.3): weighted sampling,
the EWMA status weight, the working set and its cache stats (through real redirects, with
the debug body: test_selection_adaptive_redirects.py)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest
from helpers import (
    AMSTERDAM,
    CHICAGO,
    DISTANCE_WEIGHT,
    MADISON,
    MILES,
    SAN_DIEGO,
    FakeAvailability,
    by_name,
)

from director.geo import Coordinate
from director.models import Server
from director.presence import presence_of
from director.registry import effective_status_weight
from director.routing import RedirectRequest, RedirectResult, Trace, decide
from director.selection import (
    AVAILABLE_WEIGHT,
    UNAVAILABLE_WEIGHT,
    Presence,
    ewma_status_weight,
    rank,
    server_weights,
    weighted_sample,
)
from director.snapshot import DirectorSettings, NamespaceView, ServerView, Snapshot
from director.stat import Outcome, StatResult
from director.wire.types import Capability, ServerKind, ServerStatus

NOW = 1_700_000_000.0
PUBLIC = Capability.PUBLIC_READS | Capability.READS | Capability.DIRECT_READS
PROTECTED = Capability.READS | Capability.DIRECT_READS

LINCOLN_NE = Coordinate(40.8136, -96.7026)


# --- builders ------------------------------------------------------------------------------


def server(
    name: str,
    location: tuple[float, float] | None,
    kind: ServerKind = ServerKind.CACHE,
    **fields,
) -> ServerView:
    latitude, longitude = location if location is not None else (None, None)
    return ServerView(
        name=name,
        kind=kind,
        url=f"https://{name}.example.org:8443",
        capabilities=fields.pop("capabilities", PUBLIC),
        latitude=latitude,
        longitude=longitude,
        **fields,
    )


def snapshot(
    caches: Sequence[ServerView],
    origins: Sequence[ServerView] | None = None,
    *,
    namespace_caps: Capability = PUBLIC,
    **settings,
) -> Snapshot:
    namespace = NamespaceView(path="/ns", capabilities=namespace_caps)
    origins = origins if origins is not None else [server("origin", None, ServerKind.ORIGIN)]
    return Snapshot.build(
        1, DirectorSettings(**settings), [(s, [namespace]) for s in [*origins, *caches]]
    )


def request(*, to_origin: bool = False, **fields) -> RedirectRequest:
    fields.setdefault("client", LINCOLN_NE)
    return RedirectRequest(
        method="GET",
        path="/ns/file.txt",
        to_origin=to_origin,
        request_id="6f1c2e4a-0f9b-4b7e-9d51-3c1a8d0e7a21",
        now=NOW,
        deadline=NOW + 2.5,
        **fields,
    )


def held(age: int = 120) -> StatResult:
    return StatResult(Outcome.PRESENT, status_code=200, size=10, age=age)


def proxied() -> StatResult:
    """A cache's 200 without Age: it would fetch the object from an origin."""
    return StatResult(Outcome.PRESENT, status_code=200, size=10)


def missing() -> StatResult:
    return StatResult(Outcome.ABSENT, status_code=404)


def names(result: RedirectResult) -> list[str]:
    return [s.name for s in result.servers]


def eight_caches() -> list[ServerView]:
    """Eight caches east of Lincoln, each farther than the one before; the names are not
    in distance order, so that nothing can pass by sorting names."""
    order = ["hotel", "bravo", "foxtrot", "alpha", "golf", "charlie", "echo", "delta"]
    return [server(name, (40.8136, -96.2 + 1.5 * i)) for i, name in enumerate(order)]


# --- the methods ---------------------------------------------------------------------------


def test_a_present_server_is_first_about_four_times_as_often_as_an_equally_near_absent_one():
    servers = [server("absent", MADISON), server("present", MADISON)]
    availability = {"present": AVAILABLE_WEIGHT, "absent": UNAVAILABLE_WEIGHT}
    rng = random.Random(20240611)

    firsts = Counter(
        servers[rank("adaptive", LINCOLN_NE, servers, rng, availability)[0][0]].name
        for _ in range(20_000)
    )

    assert 3.3 <= firsts["present"] / firsts["absent"] <= 4.8


def test_adaptive_sampling_follows_the_product_of_the_weights():
    # Same availability; Madison's distance weight is 0.24455 / 0.19195 = 1.274 Chicago's.
    servers = [server("madison", MADISON), server("chicago", CHICAGO)]
    rng = random.Random(7)

    firsts = Counter(
        servers[rank("adaptive", LINCOLN_NE, servers, rng)[0][0]].name for _ in range(20_000)
    )

    share = firsts["madison"] / 20_000
    assert share == pytest.approx(0.2445493822 / (0.2445493822 + 0.1919486979), abs=0.015)


def test_weighted_sampling_draws_without_replacement():
    rng = random.Random(11)

    for _ in range(200):
        order = weighted_sample([0.5, 2.0, 1.0, 0.25], rng)
        assert sorted(order) == [0, 1, 2, 3]


def test_weighted_sampling_picks_each_first_in_proportion_to_its_weight():
    rng = random.Random(12)

    firsts = Counter(weighted_sample([1.0, 3.0], rng)[0] for _ in range(20_000))

    assert firsts[1] / 20_000 == pytest.approx(0.75, abs=0.015)


def test_weights_of_zero_or_less_are_left_out_of_the_sample():
    rng = random.Random(13)

    for _ in range(500):
        assert sorted(weighted_sample([1.0, 0.0, -2.0, 3.0, -0.0], rng)) == [0, 3]
    assert weighted_sample([0.0, -1.0], rng) == []
    assert weighted_sample([], rng) == []


def test_distance_ranking_is_deterministic_and_leaves_the_random_source_alone():
    servers = [
        server("amsterdam", AMSTERDAM),
        server("san-diego", SAN_DIEGO),
        server("chicago", CHICAGO),
        server("madison", MADISON),
    ]
    rng = random.Random(1)
    state = rng.getstate()

    orders = {
        tuple(rank("distance", LINCOLN_NE, servers, random.Random(seed))[0]) for seed in range(50)
    }
    order, _ = rank("distance", LINCOLN_NE, servers, rng)

    assert orders == {(3, 2, 1, 0)}
    assert [servers[i].name for i in order] == ["madison", "chicago", "san-diego", "amsterdam"]
    assert rng.getstate() == state


def test_distance_ranking_keeps_equally_near_servers_in_their_given_order():
    servers = [server(name, CHICAGO) for name in ("c", "a", "b")]

    assert rank("distance", LINCOLN_NE, servers, random.Random(2))[0] == [0, 1, 2]


def test_random_ranking_is_a_permutation_and_reaches_every_one():
    locations = [MADISON, CHICAGO, SAN_DIEGO, AMSTERDAM]
    servers = [server(name, loc) for name, loc in zip("abcd", locations, strict=True)]
    rng = random.Random(3)

    orders = [tuple(rank("random", LINCOLN_NE, servers, rng)[0]) for _ in range(2000)]

    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert set(orders) == set(itertools.permutations(range(4)))


def test_distance_and_load_ranks_exactly_as_distance():
    rng = random.Random(4)
    for _ in range(50):
        servers = [
            server(f"s{i}", (rng.uniform(-60, 60), rng.uniform(-180, 180)) if i % 4 else None)
            for i in range(9)
        ]
        client = Coordinate(rng.uniform(-60, 60), rng.uniform(-180, 180))

        assert rank("distanceAndLoad", client, servers, random.Random(5)) == rank(
            "distance", client, servers, random.Random(6)
        )


def test_every_weight_of_every_server_is_returned():
    servers = [
        server("madison", MADISON, status_weight=0.5),
        server("chicago", CHICAGO),
        server("nowhere", None, status_weight=0.0),
    ]
    availability = {"madison": AVAILABLE_WEIGHT, "chicago": UNAVAILABLE_WEIGHT}

    madison, chicago, nowhere = server_weights(LINCOLN_NE, servers, availability)

    assert madison.distance_miles == pytest.approx(MILES["madison"], abs=1e-4)
    assert madison.distance == pytest.approx(DISTANCE_WEIGHT["madison"], rel=1e-8)
    assert (madison.io_load, madison.status, madison.availability) == (1.0, 0.5, 2.0)
    assert madison.total == pytest.approx(DISTANCE_WEIGHT["madison"] * 0.5 * 2.0, rel=1e-8)
    assert (chicago.io_load, chicago.status, chicago.availability) == (1.0, 1.0, 0.5)
    # Unknown values take the median of the known ones.
    assert nowhere.distance_miles is None
    assert nowhere.distance == pytest.approx(
        (DISTANCE_WEIGHT["madison"] + DISTANCE_WEIGHT["chicago"]) / 2, rel=1e-8
    )
    assert nowhere.status == 0.75
    assert nowhere.availability == 1.25


def test_without_a_stat_every_availability_weight_is_one():
    servers = [server("madison", MADISON), server("chicago", CHICAGO)]

    assert [w.availability for w in server_weights(LINCOLN_NE, servers)] == [1.0, 1.0]


# --- the EWMA status weight ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "weight"),
    [
        (ServerStatus.OK, 1.0),
        (ServerStatus.UNKNOWN, 1.0),
        (ServerStatus.WARNING, 0.5),
        (ServerStatus.DEGRADED, 0.01),
        (ServerStatus.CRITICAL, 0.01),
        (ServerStatus.SHUTTING_DOWN, 0.01),
    ],
)
def test_the_first_ad_takes_the_raw_status_weight(status, weight):
    assert ewma_status_weight(None, None, status, 300.0) == weight


@pytest.mark.parametrize(
    ("previous", "elapsed", "status", "tau", "expected"),
    [
        # alpha = 1 - e^-1 = 0.6321205588; 0.5 + alpha * (1 - 0.5)
        (0.5, 300.0, ServerStatus.OK, 300.0, 0.8160602794),
        # alpha = 1 - e^-0.2 = 0.1812692469; 1 + alpha * (0.5 - 1)
        (1.0, 60.0, ServerStatus.WARNING, 300.0, 0.9093653765),
        # alpha = 1 - e^-2 = 0.8646647168; 0.8 + alpha * (0.01 - 0.8)
        (0.8, 600.0, ServerStatus.CRITICAL, 300.0, 0.1169148737),
        # alpha = 1 - e^-0.5 = 0.3934693403; 0.01 + alpha * (1 - 0.01)
        (0.01, 30.0, ServerStatus.UNKNOWN, 60.0, 0.3995346469),
    ],
)
def test_each_later_ad_moves_the_weight_by_alpha(previous, elapsed, status, tau, expected):
    assert ewma_status_weight(previous, elapsed, status, tau) == pytest.approx(expected, rel=1e-9)


def test_no_time_elapsed_leaves_the_weight_where_it_was():
    assert ewma_status_weight(0.7, 0.0, ServerStatus.CRITICAL, 300.0) == 0.7
    assert ewma_status_weight(0.7, -50.0, ServerStatus.OK, 300.0) == 0.7


def test_a_long_silence_gives_the_new_status_almost_entirely():
    weight = ewma_status_weight(1.0, 3000.0, ServerStatus.WARNING, 300.0)

    assert weight == pytest.approx(0.5 + 0.5 * math.exp(-10), rel=1e-12)


@pytest.mark.parametrize("previous", [0.0, -0.5, 1.5, math.nan, math.inf])
def test_an_out_of_range_previous_weight_is_reset(previous):
    # Treated as no history: the ad's raw weight.
    assert ewma_status_weight(previous, 60.0, ServerStatus.WARNING, 300.0) == 0.5
    assert ewma_status_weight(previous, 60.0, ServerStatus.OK, 300.0) == 1.0


def test_the_health_penalty_lowers_the_status_weight_only_after_the_grace():
    settings = DirectorSettings(health_failure_grace=60.0, health_failure_weight=0.1)
    now = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
    failing = Server(status_weight=0.5, health_failing_since=now - dt.timedelta(seconds=61))
    fresh = Server(status_weight=0.5, health_failing_since=now - dt.timedelta(seconds=59))
    broken = Server(status_weight=0.0)

    assert effective_status_weight(failing, settings, now) == pytest.approx(0.05)
    assert effective_status_weight(fresh, settings, now) == 0.5
    assert effective_status_weight(broken, settings, now) == 1.0


# --- the adaptive sort in routing -----------------------------------------------------------


def test_only_the_nearest_working_set_is_statted_and_can_be_answered():
    caches = eight_caches()
    snap = snapshot(caches, sort_method="adaptive", adaptive_working_set=3)
    seam = FakeAvailability.statting({c.name: held() for c in caches})

    for seed in range(100):
        seam.calls.clear()
        trace = Trace()
        result = decide(request(), snap, availability=seam, rng=random.Random(seed), trace=trace)

        assert seam.asked == [(["hotel", "bravo", "foxtrot"], "")]
        assert sorted(names(result)) == ["bravo", "foxtrot", "hotel"]
        assert set(by_name(trace.weights)) == {"hotel", "bravo", "foxtrot"}
        assert by_name(trace.excluded) == dict.fromkeys(
            ["alpha", "golf", "charlie", "echo", "delta"], "outside the adaptive working set"
        )


@pytest.mark.parametrize(("configured", "statted"), [(1, 3), (3, 3), (5, 5), (6, 6), (20, 8)])
def test_the_working_set_has_at_least_three_caches(configured, statted):
    caches = eight_caches()
    seam = FakeAvailability.statting()
    snap = snapshot(caches, sort_method="adaptive", adaptive_working_set=configured)

    decide(request(), snap, availability=seam, rng=random.Random(1))

    assert seam.calls[0][0] == [c.name for c in caches[:statted]]


def test_the_default_working_set_is_six():
    seam = FakeAvailability.statting()

    decide(request(), snapshot(eight_caches(), sort_method="adaptive"), availability=seam)

    assert len(seam.calls[0][0]) == 6


def test_caches_in_an_error_state_never_enter_the_working_set():
    caches = eight_caches()
    caches[0] = server("hotel", (40.8136, -96.2), status=ServerStatus.CRITICAL)
    seam = FakeAvailability.statting()
    trace = Trace()

    result = decide(
        request(),
        snapshot(caches, sort_method="adaptive", adaptive_working_set=3),
        availability=seam,
        trace=trace,
    )

    assert seam.asked == [(["bravo", "foxtrot", "alpha"], "")]
    assert "hotel" not in names(result)
    assert by_name(trace.excluded)["hotel"] == "status critical"


@pytest.mark.parametrize("method", ["distance", "distanceAndLoad", "random"])
def test_caches_are_not_statted_by_the_other_sort_methods(method):
    seam = FakeAvailability.statting()
    trace = Trace()

    result = decide(
        request(), snapshot(eight_caches(), sort_method=method), availability=seam, trace=trace
    )

    assert seam.calls == []
    assert len(result.servers) == 6
    assert {w.availability for w in trace.weights.values()} == {1.0}


@pytest.mark.parametrize(
    ("fields", "settings", "namespace_caps"),
    [
        ({"query": (("skipstat", ""),)}, {}, PUBLIC),
        ({}, {"check_cache_presence": False}, PUBLIC),
        ({}, {}, PROTECTED),  # a protected namespace and no token
    ],
    ids=["skipstat", "check_cache_presence off", "protected without a token"],
)
def test_cache_stats_are_skipped(fields, settings, namespace_caps):
    seam = FakeAvailability.statting()
    trace = Trace()
    snap = snapshot(
        eight_caches(), sort_method="adaptive", namespace_caps=namespace_caps, **settings
    )

    result = decide(request(**fields), snap, availability=seam, trace=trace)

    assert result.status == 307
    assert seam.calls == []
    assert {w.availability for w in trace.weights.values()} == {1.0}
    assert len(trace.weights) == 6  # still the working set only


def test_a_protected_namespace_is_statted_with_the_clients_token():
    seam = FakeAvailability.statting()
    snap = snapshot(eight_caches(), sort_method="adaptive", namespace_caps=PROTECTED)

    decide(request(authorization="Bearer opaque-token"), snap, availability=seam)
    decide(request(query=(("authz", "query-token"),)), snap, availability=seam)

    assert [token for _, token in seam.asked] == ["opaque-token", "query-token"]


@pytest.mark.parametrize(
    ("result", "kind", "presence"),
    [
        (held(120), ServerKind.CACHE, Presence.PRESENT),
        (held(1), ServerKind.CACHE, Presence.PRESENT),
        (held(0), ServerKind.CACHE, Presence.ABSENT),
        (proxied(), ServerKind.CACHE, Presence.ABSENT),
        (missing(), ServerKind.CACHE, Presence.ABSENT),
        (StatResult(Outcome.TIMEOUT), ServerKind.CACHE, Presence.UNKNOWN),
        (StatResult(Outcome.EJECTED), ServerKind.CACHE, Presence.EJECTED),
        (proxied(), ServerKind.ORIGIN, Presence.PRESENT),
        (missing(), ServerKind.ORIGIN, Presence.ABSENT),
    ],
    ids=[
        "cache age 120",
        "cache age 1",
        "cache age 0",
        "cache no age",
        "cache 404",
        "cache timeout",
        "cache ejected",
        "origin no age",
        "origin 404",
    ],
)
def test_a_cache_holds_the_object_only_when_its_head_carries_a_positive_age(result, kind, presence):
    assert presence_of(server("s", None, kind), result) is presence


def test_the_trace_holds_the_distance_status_and_availability_weights():
    caches = [
        server("madison", MADISON),
        server("chicago", CHICAGO, status_weight=0.5),
        server("san-diego", SAN_DIEGO, status_weight=0.25),
        server("amsterdam", AMSTERDAM),
    ]
    seam = FakeAvailability.statting(
        {"madison": held(), "chicago": missing(), "san-diego": proxied(), "amsterdam": held(0)}
    )
    trace = Trace()

    decide(request(), snapshot(caches, sort_method="adaptive"), availability=seam, trace=trace)

    expected = {
        # (status, availability); a cache answering 200 without Age > 0 (san-diego
        # proxies, amsterdam has Age 0) does not hold the object: weighed as absent.
        "madison": (1.0, 2.0),
        "chicago": (0.5, 0.5),
        "san-diego": (0.25, 0.5),
        "amsterdam": (1.0, 0.5),
    }
    assert set(by_name(trace.weights)) == set(expected)
    for name, (status, availability) in expected.items():
        weights = by_name(trace.weights)[name]
        assert weights.distance_miles == pytest.approx(MILES[name], abs=1e-4)
        assert weights.distance == pytest.approx(DISTANCE_WEIGHT[name], rel=1e-8)
        assert (weights.io_load, weights.status, weights.availability) == (
            1.0,
            status,
            availability,
        )
    assert by_name(trace.presence) == {
        "madison": Presence.PRESENT,
        "chicago": Presence.ABSENT,
        "san-diego": Presence.ABSENT,
        "amsterdam": Presence.ABSENT,
    }


def test_an_absent_cache_is_kept_but_weighed_down():
    caches = [server("holder", MADISON), server("empty", MADISON)]
    seam = FakeAvailability.statting({"holder": held(), "empty": missing()})
    snap = snapshot(caches, sort_method="adaptive")
    rng = random.Random(99)

    firsts = Counter(
        names(decide(request(), snap, availability=seam, rng=rng))[0] for _ in range(4000)
    )

    assert 3.3 <= firsts["holder"] / firsts["empty"] <= 4.8


def test_a_cache_answering_without_age_does_not_weigh_as_much_as_one_holding_the_object():
    caches = [server("holder", MADISON), server("proxying", MADISON)]
    seam = FakeAvailability.statting({"holder": held(), "proxying": proxied()})
    trace = Trace()

    decide(request(), snapshot(caches, sort_method="adaptive"), availability=seam, trace=trace)

    weights = by_name(trace.weights)
    assert weights["proxying"].availability < weights["holder"].availability


def test_origins_under_adaptive_are_ranked_present_first():
    origins = [
        server("near", MADISON, ServerKind.ORIGIN),
        server("middle", CHICAGO, ServerKind.ORIGIN),
        server("far", AMSTERDAM, ServerKind.ORIGIN),
    ]
    seam = FakeAvailability.statting(
        {"near": StatResult(Outcome.TIMEOUT), "middle": missing(), "far": proxied()}
    )
    snap = snapshot([], origins, sort_method="adaptive")

    for seed in range(50):
        trace = Trace()
        result = decide(
            request(to_origin=True), snap, availability=seam, rng=random.Random(seed), trace=trace
        )

        assert names(result) == ["far", "near"]
        assert by_name(trace.excluded) == {"middle": "stat: absent"}
        assert by_name(trace.weights)["far"].availability == AVAILABLE_WEIGHT
        assert by_name(trace.weights)["middle"].availability == UNAVAILABLE_WEIGHT
        assert by_name(trace.weights)["near"].availability == 1.25


def test_origins_under_adaptive_without_a_stat_are_sampled_by_weight():
    origins = [
        server("madison", MADISON, ServerKind.ORIGIN),
        server("chicago", CHICAGO, ServerKind.ORIGIN),
    ]
    snap = snapshot([], origins, sort_method="adaptive", check_origin_presence=False)
    rng = random.Random(5)

    firsts = Counter(names(decide(request(to_origin=True), snap, rng=rng))[0] for _ in range(4000))

    assert firsts["madison"] / 4000 == pytest.approx(0.5603, abs=0.03)
