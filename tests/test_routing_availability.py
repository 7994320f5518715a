"""The redirect decision's availability seam (``director.routing.Availability``,
reference 4.2): when presence is asked, of which servers, and what absent, present,
unknown and ejected do to the answer."""

from __future__ import annotations

import pytest
from helpers import MADISON, SAN_DIEGO, FakeAvailability
from routing_builders import (
    DEADLINE,
    LINCOLN_NE,
    PROTECTED,
    PUBLIC,
    cache,
    located,
    names,
    ns,
    origin,
    request,
    snapshot,
    two_origins,
)

from director.routing import decide
from director.selection import Presence
from director.wire.types import Capability, ServerKind, ServerStatus

# The availability seam


def test_presence_orders_present_then_unknown_then_ejected_and_drops_absent():
    snap = snapshot(*[(origin(f"o-{n}"), ns()) for n in range(1, 6)])
    availability = FakeAvailability(
        {
            "o-2": Presence.EJECTED,
            "o-3": Presence.ABSENT,
            "o-4": Presence.PRESENT,
            "o-5": Presence.UNKNOWN,
        }
    )  # o-1 is missing from the answer: unknown.
    result = decide(request(to_origin=True), snap, availability=availability)
    assert names(result) == ["o-4", "o-1", "o-5", "o-2"]
    assert result.location == "https://o-4.example.org:8443/ns/file.txt"


def test_404_when_every_origin_reports_absent():
    availability = FakeAvailability({"o-1": Presence.ABSENT, "o-2": Presence.ABSENT})
    result = decide(request(to_origin=True), two_origins(), availability=availability)
    assert (result.status, result.message) == (
        404,
        "No sources reported possession of the object /ns/file.txt. Are you sure it exists?",
    )


def test_ejected_origins_still_count_as_candidates():
    availability = FakeAvailability({"o-1": Presence.ABSENT, "o-2": Presence.EJECTED})
    result = decide(request(to_origin=True), two_origins(), availability=availability)
    assert (result.status, names(result)) == (307, ["o-2"])


def test_a_cache_request_does_not_stat_the_origins_when_caches_serve_the_namespace():
    """Pelican's shouldStatOrigins: the cache finds out, and a missing object is its 404."""
    snap = snapshot((origin("o-1"), ns()), (origin("o-2"), ns()), (cache("c"), ns()))
    availability = FakeAvailability({"o-1": Presence.ABSENT, "o-2": Presence.ABSENT})
    result = decide(request(), snap, availability=availability)
    assert (result.status, result.destination, names(result)) == (307, "cache", ["c"])
    assert availability.calls == []


def test_a_cache_request_stats_the_origins_when_no_cache_may_serve_it():
    snap = snapshot(
        (origin("o-1"), ns()),
        (origin("o-2"), ns()),
        (cache("c", status=ServerStatus.CRITICAL), ns()),
    )
    availability = FakeAvailability({"o-1": Presence.ABSENT, "o-2": Presence.ABSENT})
    result = decide(request(), snap, availability=availability)
    assert result.status == 404
    assert result.message.startswith("No sources reported possession of the object")
    assert len(availability.calls) == 1


def test_the_direct_read_fallback_skips_absent_origins():
    availability = FakeAvailability({"o-1": Presence.ABSENT, "o-2": Presence.PRESENT})
    result = decide(request(), two_origins(), availability=availability)
    assert (result.destination, names(result)) == ("origin", ["o-2"])


def test_the_seam_gets_the_sorted_candidates_path_namespace_token_and_deadline():
    snap = snapshot(
        (located("a-sandiego", SAN_DIEGO, ServerKind.ORIGIN), ns()),
        (located("b-madison", MADISON, ServerKind.ORIGIN), ns()),
        (origin("c-writer", Capability.WRITES), ns()),
    )
    availability = FakeAvailability()
    decide(
        request(to_origin=True, client=LINCOLN_NE, query=(("authz", "Bearer qtok"),)),
        snap,
        availability=availability,
    )
    assert availability.calls == [
        (["b-madison", "a-sandiego"], "/ns/file.txt", "/ns", "qtok", DEADLINE)
    ]


@pytest.mark.parametrize(
    ("method", "caps"),
    [
        ("PUT", Capability.WRITES),
        ("DELETE", Capability.WRITES),
        ("PROPFIND", PUBLIC),
    ],
)
def test_the_seam_is_not_called_for_writes_and_propfind(method, caps):
    snap = snapshot((origin("o-1", caps), ns(caps=caps)), (origin("o-2", caps), ns(caps=caps)))
    availability = FakeAvailability({"o-1": Presence.ABSENT, "o-2": Presence.ABSENT})
    result = decide(request(method=method, to_origin=True), snap, availability=availability)
    assert (result.status, availability.calls) == (307, [])


def test_the_seam_is_not_called_with_skipstat():
    availability = FakeAvailability({"o-1": Presence.ABSENT, "o-2": Presence.ABSENT})
    result = decide(
        request(to_origin=True, query=(("skipstat", ""),)), two_origins(), availability=availability
    )
    assert (result.status, names(result), availability.calls) == (307, ["o-1", "o-2"], [])


def test_the_seam_is_not_called_when_origin_presence_checks_are_off():
    availability = FakeAvailability({"o-1": Presence.ABSENT, "o-2": Presence.ABSENT})
    result = decide(
        request(to_origin=True),
        two_origins(check_origin_presence=False),
        availability=availability,
    )
    assert (result.status, availability.calls) == (307, [])


def test_the_seam_is_not_called_for_a_single_origin_when_presence_is_assumed():
    availability = FakeAvailability({"o": Presence.ABSENT})
    result = decide(
        request(to_origin=True), snapshot((origin("o"), ns())), availability=availability
    )
    assert (result.status, availability.calls) == (307, [])


def test_the_seam_is_called_for_a_single_origin_when_presence_is_not_assumed():
    availability = FakeAvailability({"o": Presence.ABSENT})
    result = decide(
        request(to_origin=True),
        snapshot((origin("o"), ns()), assume_presence_at_single_origin=False),
        availability=availability,
    )
    assert (result.status, len(availability.calls)) == (404, 1)


def test_the_seam_is_not_called_for_a_protected_namespace_without_a_token():
    snap = snapshot((origin("o-1"), ns(caps=PROTECTED)), (origin("o-2"), ns(caps=PROTECTED)))
    availability = FakeAvailability({"o-1": Presence.ABSENT, "o-2": Presence.ABSENT})
    result = decide(request(to_origin=True), snap, availability=availability)
    assert (result.status, availability.calls) == (307, [])


def test_the_seam_is_called_for_a_protected_namespace_with_a_header_token():
    snap = snapshot((origin("o-1"), ns(caps=PROTECTED)), (origin("o-2"), ns(caps=PROTECTED)))
    availability = FakeAvailability({"o-2": Presence.PRESENT})
    result = decide(
        request(to_origin=True, authorization="Bearer htok"), snap, availability=availability
    )
    assert names(result) == ["o-2", "o-1"]
    assert availability.calls == [(["o-1", "o-2"], "/ns/file.txt", "/ns", "htok", DEADLINE)]


def test_origins_without_the_capability_are_not_statted():
    snap = snapshot(
        (origin("o-1"), ns()), (origin("o-2"), ns()), (origin("o-3", Capability.WRITES), ns())
    )
    availability = FakeAvailability()
    decide(request(to_origin=True), snap, availability=availability)
    assert availability.calls[0][0] == ["o-1", "o-2"]
