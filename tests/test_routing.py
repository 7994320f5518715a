"""The redirect decision (``director.routing.decide``, reference 1.3-1.5, 3.1-3.3) on
plain snapshots: no sources, the verb's and the query's capabilities, validation, topology
namespaces. Cache requests, sorting, the availability seam and the headers have files of
their own (tests/test_routing_*.py)."""

from __future__ import annotations

import pytest
from routing_builders import (
    DR,
    NOW,
    PROTECTED,
    PUBLIC,
    cache,
    names,
    ns,
    origin,
    request,
    snapshot,
)

from director.routing import decide
from director.snapshot import Snapshot
from director.wire.types import Capability

# No sources


def test_no_origin_for_the_path_is_404_no_sources_found():
    result = decide(request("/elsewhere/f.txt"), snapshot((origin("o"), ns())))
    assert (result.status, result.message, result.headers) == (
        404,
        "No sources found for the requested path /elsewhere/f.txt.",
        [],
    )


def test_no_origin_during_startup_grace_is_429_with_retry_after():
    result = decide(
        request("/elsewhere/f.txt"), snapshot((origin("o"), ns())), startup_grace_active=True
    )
    assert (result.status, result.message, result.headers) == (
        429,
        "No sources found for the requested path /elsewhere/f.txt.",
        [("Retry-After", "1")],
    )


def test_caches_alone_are_not_sources():
    result = decide(request(), snapshot((cache("c"), ns())))
    assert (result.status, result.message) == (
        404,
        "No sources found for the requested path /ns/file.txt.",
    )


def test_a_cache_with_a_longer_prefix_than_any_origin_leaves_no_sources():
    snap = snapshot((origin("o"), ns("/ns")), (cache("c"), ns("/ns/deeper")))
    assert decide(request("/ns/deeper/f.txt"), snap).status == 404
    assert decide(request("/ns/other/f.txt"), snap).status == 307


def test_an_expired_origin_is_not_a_source():
    snap = snapshot((origin("o", expires_at=NOW - 1), ns()), (cache("c"), ns()))
    assert decide(request(), snap).status == 404


# Verb and query capabilities (origin redirect)

ALL = PUBLIC | Capability.WRITES | Capability.LISTINGS | DR | Capability.COPIES


@pytest.mark.parametrize(
    ("method", "depth", "query", "server_caps", "ns_caps", "status"),
    [
        pytest.param("GET", None, (), PROTECTED, PROTECTED, 307, id="get-reads"),
        pytest.param("GET", None, (), PUBLIC, Capability.PUBLIC_READS, 307, id="get-public"),
        pytest.param("HEAD", None, (), PROTECTED, PROTECTED, 307, id="head-reads"),
        pytest.param("GET", None, (), Capability.WRITES, ALL, 405, id="get-server-no-reads"),
        pytest.param("GET", None, (), ALL, Capability.WRITES, 405, id="get-ns-no-reads"),
        pytest.param(
            "GET",
            None,
            (),
            Capability.READS,
            Capability.PUBLIC_READS,
            405,
            id="get-reads-on-server-public-on-namespace",
        ),
        pytest.param("PUT", None, (), Capability.WRITES, Capability.WRITES, 307, id="put"),
        pytest.param("PUT", None, (), PUBLIC, ALL, 405, id="put-server-no-writes"),
        pytest.param("PUT", None, (), ALL, PUBLIC, 405, id="put-ns-no-writes"),
        pytest.param("DELETE", None, (), Capability.WRITES, Capability.WRITES, 307, id="delete"),
        pytest.param("DELETE", None, (), PUBLIC, PUBLIC, 405, id="delete-no-writes"),
        pytest.param("PROPFIND", None, (), PROTECTED, PROTECTED, 307, id="stat-no-depth"),
        pytest.param("PROPFIND", "0", (), PUBLIC, PUBLIC, 307, id="stat-depth-0"),
        pytest.param(
            "PROPFIND", "0", (), Capability.LISTINGS, Capability.LISTINGS, 405, id="stat-lists"
        ),
        pytest.param("PROPFIND", "1", (), PUBLIC, PUBLIC, 405, id="ls-no-listings"),
        pytest.param(
            "PROPFIND", "1", (), Capability.LISTINGS, Capability.LISTINGS, 307, id="ls-depth-1"
        ),
        pytest.param(
            "PROPFIND",
            "infinity",
            (),
            Capability.LISTINGS,
            Capability.LISTINGS,
            307,
            id="ls-depth-infinity",
        ),
        pytest.param("PROPFIND", "1", (), ALL, PUBLIC, 405, id="ls-ns-no-listings"),
        pytest.param("COPY", None, (), Capability.COPIES, Capability.COPIES, 307, id="copy"),
        pytest.param("COPY", None, (), PUBLIC, PUBLIC, 405, id="copy-no-copies"),
        pytest.param("GET", None, (("directread", ""),), PUBLIC | DR, PUBLIC | DR, 307, id="dr"),
        pytest.param("GET", None, (("directread", ""),), PUBLIC, PUBLIC, 405, id="dr-missing"),
        pytest.param(
            "GET", None, (("directread", ""),), PUBLIC | DR, PUBLIC, 405, id="dr-ns-missing"
        ),
        pytest.param(
            "GET", None, (("directread", ""),), PUBLIC, PUBLIC | DR, 405, id="dr-server-missing"
        ),
        pytest.param(
            "GET",
            None,
            (("recursive", ""),),
            PUBLIC | Capability.LISTINGS,
            PUBLIC | Capability.LISTINGS,
            307,
            id="recursive",
        ),
        pytest.param("GET", None, (("recursive", ""),), PUBLIC, PUBLIC, 405, id="recursive-no-ls"),
    ],
)
def test_origins_need_the_verb_and_query_capabilities_on_server_and_namespace(
    method, depth, query, server_caps, ns_caps, status
):
    snap = snapshot((origin("o", server_caps), ns(caps=ns_caps)))
    result = decide(
        request(method=method, to_origin=True, depth=depth, query=query, authorization="Bearer t"),
        snap,
    )
    assert result.status == status
    if status == 307:
        assert result.location.startswith("https://o.example.org:8443/ns/file.txt")


def test_405_names_the_namespace_verb_and_needed_capabilities():
    snap = snapshot((origin("o", Capability.WRITES), ns(caps=Capability.WRITES)))
    result = decide(request(to_origin=True), snap)
    assert (result.status, result.message) == (
        405,
        "Discovered sources for the namespace /ns, but none support the request "
        "(verb 'get', needs Reads OR PublicReads).",
    )


def test_405_points_at_the_director_web_url_when_known():
    snap = snapshot((origin("o", PUBLIC), ns(caps=PUBLIC)))
    result = decide(
        request(to_origin=True, query=(("directread", ""), ("recursive", ""))),
        snap,
        external_url="https://director.example.org",
    )
    assert result.message == (
        "Discovered sources for the namespace /ns, but none support the request "
        "(verb 'get', needs (Reads OR PublicReads) AND DirectReads AND Listings). "
        "See 'https://director.example.org'."
    )


@pytest.mark.parametrize(
    ("method", "depth", "verb"),
    [("GET", None, "get"), ("PUT", None, "put"), ("DELETE", None, "delete")]
    + [("PROPFIND", "0", "stat"), ("PROPFIND", "1", "ls")],
)
def test_405_uses_pelican_verb_names(method, depth, verb):
    snap = snapshot((origin("o", Capability.NONE), ns(caps=Capability.NONE)))
    result = decide(request(method=method, depth=depth, to_origin=True), snap)
    assert result.status == 405
    assert f"(verb '{verb}', needs " in result.message


def test_an_unknown_method_on_the_origin_route_is_405():
    result = decide(request(method="POST", to_origin=True), snapshot((origin("o"), ns())))
    assert (result.status, result.message) == (
        405,
        "The method POST is not supported by the director.",
    )


def test_405_when_only_some_origins_lack_the_capability_is_not_raised():
    snap = snapshot(
        (origin("a-reader", PUBLIC), ns(caps=PUBLIC)),
        (origin("b-writer", Capability.WRITES), ns(caps=Capability.WRITES)),
    )
    result = decide(request(method="PUT", to_origin=True), snap)
    assert (result.status, names(result)) == (307, ["b-writer"])


# Validation


def test_directread_with_prefercached_is_400():
    result = decide(
        request(query=(("directread", ""), ("prefercached", ""))), snapshot((origin("o"), ns()))
    )
    assert (result.status, result.message) == (
        400,
        "Failed to validate incoming request: cannot have both directread and prefercached "
        "query parameters:",  # Pelican's text; the view appends " Request ID: <id>"
    )


def test_an_old_pelican_client_is_400_before_any_lookup():
    result = decide(request(user_agent="pelican-client/6.9.0"), Snapshot())
    assert (result.status, result.message) == (
        400,
        "The client version 6.9.0 is older than 7.0.0.",
    )


def test_a_director_user_agent_is_400():
    result = decide(request(user_agent="pelican-director/7.1.0"), snapshot((origin("o"), ns())))
    assert (result.status, result.message) == (
        400,
        "Unsupported service 'director' in User-Agent 'pelican-director/7.1.0'.",
    )


@pytest.mark.parametrize(
    "user_agent",
    ["pelican-client/7.0.0", "pelican-client/6.0.0 project/htcondor", "curl/8.5.0", ""],
)
def test_current_or_unparseable_user_agents_are_redirected(user_agent):
    result = decide(request(user_agent=user_agent), snapshot((origin("o"), ns())))
    assert result.status == 307


# Reference behaviour not yet implemented


def test_a_topology_origin_is_dropped_when_a_pelican_origin_serves_the_prefix():
    snap = snapshot(
        (origin("a-topology"), ns(from_topology=True)),
        (origin("b-pelican"), ns()),
        check_origin_presence=False,
    )
    assert names(decide(request(to_origin=True), snap)) == ["b-pelican"]


def test_a_topology_cache_is_not_used_for_a_public_namespace():
    snap = snapshot((origin("o"), ns()), (cache("topo-cache"), ns(from_topology=True)))
    result = decide(request(), snap)
    assert (result.destination, names(result)) == ("origin", ["o"])
