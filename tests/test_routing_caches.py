"""Cache requests in the redirect decision (reference 3.2): which caches serve, their
order and fallback to origins, and the features the origins require of caches
(``requiredFeatures``: CacheAuthz from Pelican 7.16)."""

from __future__ import annotations

from helpers import CHICAGO, MADISON, SAN_DIEGO, FakeAvailability
from routing_builders import (
    LINCOLN_NE,
    PUBLIC,
    cache,
    link_urls,
    located,
    names,
    ns,
    origin,
    request,
    snapshot,
)

from director.routing import Trace, decide
from director.selection import Presence
from director.wire.types import ServerKind, ServerStatus

# Cache requests


def test_a_cache_request_goes_to_the_caches():
    snap = snapshot((origin("o"), ns()), (cache("cache-b"), ns()), (cache("cache-a"), ns()))
    result = decide(request(), snap)
    assert (result.status, result.destination, result.namespace) == (307, "cache", "/ns")
    assert result.location == "https://cache-a.example.org:8443/ns/file.txt"
    assert names(result) == ["cache-a", "cache-b"]
    assert link_urls(result) == [
        "https://cache-a.example.org:8443/ns/file.txt",
        "https://cache-b.example.org:8443/ns/file.txt",
    ]


def test_head_is_routed_exactly_like_get():
    snap = snapshot((origin("o"), ns()), (cache("c"), ns()))
    get = decide(request(method="GET"), snap)
    head = decide(request(method="HEAD"), snap)
    assert (head.status, head.location, head.headers) == (get.status, get.location, get.headers)


def test_critical_and_shutting_down_caches_are_dropped_but_degraded_kept():
    snap = snapshot(
        (origin("o"), ns()),
        (cache("a-critical", status=ServerStatus.CRITICAL), ns()),
        (cache("b-degraded", status=ServerStatus.DEGRADED), ns()),
        (cache("c-ok", status=ServerStatus.OK), ns()),
        (cache("d-leaving", status=ServerStatus.SHUTTING_DOWN), ns()),
        (cache("e-warning", status=ServerStatus.WARNING), ns()),
        (cache("f-unknown", status=ServerStatus.UNKNOWN), ns()),
    )
    result = decide(request(), snap)
    assert names(result) == ["b-degraded", "c-ok", "e-warning", "f-unknown"]


def test_critical_caches_are_kept_when_error_filtering_is_off():
    snap = snapshot(
        (origin("o"), ns()),
        (cache("a-critical", status=ServerStatus.CRITICAL), ns()),
        (cache("b-leaving", status=ServerStatus.SHUTTING_DOWN), ns()),
        (cache("c-ok", status=ServerStatus.OK), ns()),
        filter_caches_in_error_state=False,
    )
    assert names(decide(request(), snap)) == ["a-critical", "c-ok"]


def test_without_caches_the_first_origin_with_direct_reads_is_the_fallback():
    snap = snapshot(
        (origin("a-no-dr", PUBLIC), ns()),
        (origin("b-dr-server-only"), ns(caps=PUBLIC)),
        (origin("c-dr"), ns()),
        (origin("d-dr"), ns()),
        check_origin_presence=False,
    )
    result = decide(request(), snap)
    assert (result.status, result.destination, names(result)) == (307, "origin", ["c-dr"])
    assert result.location == "https://c-dr.example.org:8443/ns/file.txt"


def test_when_every_cache_is_in_error_the_origin_fallback_is_used():
    snap = snapshot((origin("o"), ns()), (cache("c", status=ServerStatus.CRITICAL), ns()))
    result = decide(request(), snap)
    assert (result.destination, names(result)) == ("origin", ["o"])


def test_no_cache_and_no_direct_read_origin_is_404():
    snap = snapshot((origin("o", PUBLIC), ns(caps=PUBLIC)))
    result = decide(request(), snap)
    assert (result.status, result.message) == (
        404,
        "No caches can fulfill this request and no fallback origins with the 'DirectReads' "
        "capability found for /ns/file.txt.",
    )


def test_an_origin_request_goes_to_the_origins_even_with_caches():
    snap = snapshot(
        (origin("o-1"), ns()),
        (origin("o-2"), ns()),
        (cache("c"), ns()),
        check_origin_presence=False,
    )
    result = decide(request(to_origin=True), snap)
    assert (result.destination, names(result)) == ("origin", ["o-1", "o-2"])
    assert result.location == "https://o-1.example.org:8443/ns/file.txt"


# Features origins require of caches (requiredFeatures: CacheAuthz from Pelican 7.16)

AUTHZ = ("CacheAuthz",)


def test_caches_older_than_a_required_feature_are_left_out_and_unknown_versions_come_last():
    snap = snapshot(
        (origin("o", required_features=AUTHZ), ns()),
        (located("c-near-unknown", MADISON, ServerKind.CACHE, version="unknown"), ns()),
        (located("c-near-old", MADISON, ServerKind.CACHE, version="7.15.999"), ns()),
        (located("c-far-new", SAN_DIEGO, ServerKind.CACHE, version="7.16.0"), ns()),
        (located("c-mid-new", CHICAGO, ServerKind.CACHE, version="v7.20.1-rc.1"), ns()),
    )
    trace = Trace()
    result = decide(request(client=LINCOLN_NE), snap, trace=trace)
    assert names(result) == ["c-mid-new", "c-far-new", "c-near-unknown"]
    assert trace.excluded == {("cache", "c-near-old"): "version 7.15.999 lacks CacheAuthz"}


def test_a_feature_any_origin_requires_applies_to_the_caches_of_the_namespace():
    snap = snapshot(
        (origin("o-plain"), ns()),
        (origin("o-authz", required_features=AUTHZ), ns()),
        (cache("c-old", version="7.15.0"), ns()),
        (cache("c-new", version="7.16.0"), ns()),
    )
    assert names(decide(request(), snap)) == ["c-new"]


def test_without_required_features_every_cache_version_serves():
    snap = snapshot(
        (origin("o"), ns()),
        (cache("c-old", version="7.15.0"), ns()),
        (cache("c-unknown", version="unknown"), ns()),
    )
    assert sorted(names(decide(request(), snap))) == ["c-old", "c-unknown"]


def test_a_feature_this_director_does_not_know_is_ignored_as_pelican_ignores_it():
    snap = snapshot(
        (origin("o", required_features=("TimeTravel",)), ns()),
        (cache("c-old", version="7.0.0"), ns()),
    )
    assert names(decide(request(), snap)) == ["c-old"]


def test_when_every_cache_lacks_a_required_feature_the_direct_read_origin_is_the_answer():
    snap = snapshot(
        (origin("o", required_features=AUTHZ), ns()),
        (cache("c-old", version="7.15.0"), ns()),
    )
    result = decide(request(), snap)
    assert (result.status, result.destination, names(result)) == (307, "origin", ["o"])


def test_origins_are_statted_when_only_caches_of_unknown_version_may_serve():
    """Pelican passes only the caches known to support the features to its stat rule."""
    snap = snapshot(
        (origin("o-1", required_features=AUTHZ), ns()),
        (origin("o-2"), ns()),
        (cache("c-unknown", version=""), ns()),
    )
    availability = FakeAvailability({"o-1": Presence.PRESENT, "o-2": Presence.ABSENT})
    result = decide(request(), snap, availability=availability)
    assert names(result) == ["c-unknown"]
    assert availability.asked == [(["o-1", "o-2"], "")]
