from __future__ import annotations

import base64
import json
import random

import pytest
from helpers import FakeAvailability

from director.geo import Coordinate
from director.routing import RedirectRequest, RedirectResult, Trace, decide
from director.selection import Presence
from director.snapshot import DirectorSettings, NamespaceView, ServerView, Snapshot
from director.wire.types import Capability, ServerKind, ServerStatus, TokenGeneration, TokenIssuer

NOW = 1_700_000_000.0
DEADLINE = NOW + 2.5
REQUEST_ID = "6f1c2e4a-0f9b-4b7e-9d51-3c1a8d0e7a21"
PUBLIC = Capability.PUBLIC_READS | Capability.READS
PROTECTED = Capability.READS
DR = Capability.DIRECT_READS
EXPIRED_CHALLENGE = 'Bearer error="invalid_token", error_description="token has expired"'

LINCOLN_NE = Coordinate(40.8136, -96.7026)
MADISON = (43.0731, -89.4012)  # 406 mi from Lincoln
CHICAGO = (41.8781, -87.6298)  # 476 mi
SAN_DIEGO = (32.7157, -117.1611)  # 1259 mi
AMSTERDAM = (52.3676, 4.9041)  # 4484 mi


# Builders


def origin(name: str, caps: Capability = PUBLIC | DR, **fields) -> ServerView:
    return ServerView(
        name=name,
        kind=ServerKind.ORIGIN,
        url=fields.pop("url", f"https://{name}.example.org:8443"),
        capabilities=caps,
        **fields,
    )


def cache(name: str, caps: Capability = PUBLIC | DR, **fields) -> ServerView:
    return ServerView(
        name=name,
        kind=ServerKind.CACHE,
        url=fields.pop("url", f"https://{name}.example.org:8443"),
        capabilities=caps,
        **fields,
    )


def ns(path: str = "/ns", caps: Capability = PUBLIC | DR, **fields) -> NamespaceView:
    return NamespaceView(path=path, capabilities=caps, **fields)


def snapshot(*servers: tuple[ServerView, NamespaceView], **settings) -> Snapshot:
    return Snapshot.build(
        1, DirectorSettings(**settings), [(server, [namespace]) for server, namespace in servers]
    )


def request(
    path: str = "/ns/file.txt", method: str = "GET", *, to_origin: bool = False, **fields
) -> RedirectRequest:
    return RedirectRequest(
        method=method,
        path=path,
        to_origin=to_origin,
        request_id=REQUEST_ID,
        now=NOW,
        deadline=DEADLINE,
        **fields,
    )


def jwt(**claims: object) -> str:
    def b64url(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


EXPIRED_JWT = jwt(iat=NOW - 3600, exp=NOW - 5)
VALID_JWT = jwt(iat=NOW - 60, exp=NOW + 3600)


def names(result: RedirectResult) -> list[str]:
    return [server.name for server in result.servers]


def header_values(result: RedirectResult, name: str) -> list[str]:
    return [value for key, value in result.headers if key == name]


def link_urls(result: RedirectResult) -> list[str]:
    (link,) = header_values(result, "Link")
    return [part.split(">;")[0].lstrip("<") for part in link.split(", ")]


def two_origins(**settings) -> Snapshot:
    return snapshot((origin("o-1"), ns()), (origin("o-2"), ns()), **settings)


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


# Limits and URLs


def test_at_most_six_caches_are_listed():
    servers = [(cache(f"cache-{n}"), ns()) for n in range(1, 9)]
    result = decide(request(), snapshot((origin("o"), ns()), *servers))
    assert names(result) == [f"cache-{n}" for n in range(1, 7)]
    (link,) = header_values(result, "Link")
    assert link.count('rel="duplicate"') == 6
    assert link.endswith(
        '<https://cache-6.example.org:8443/ns/file.txt>; rel="duplicate"; pri=6; depth=1'
    )


def test_at_most_six_origins_are_listed():
    servers = [(origin(f"origin-{n}"), ns()) for n in range(1, 9)]
    result = decide(request(to_origin=True), snapshot(*servers, check_origin_presence=False))
    assert names(result) == [f"origin-{n}" for n in range(1, 7)]
    assert len(link_urls(result)) == 6


def test_protected_namespaces_redirect_to_the_auth_url_when_set():
    auth_origin = origin("o", PROTECTED | DR, auth_url="https://o-auth.example.org:8444")
    snap = snapshot((auth_origin, ns(caps=PROTECTED)))
    result = decide(request(to_origin=True, authorization="Bearer tok"), snap)
    assert result.location == "https://o-auth.example.org:8444/ns/file.txt?authz=tok"
    assert link_urls(result) == ["https://o-auth.example.org:8444/ns/file.txt"]


def test_writes_to_a_protected_namespace_redirect_to_the_auth_url():
    writer = origin("w", Capability.WRITES, auth_url="https://w-auth.example.org:8444")
    snap = snapshot((writer, ns(caps=Capability.WRITES)))
    result = decide(request(method="PUT", to_origin=True), snap)
    assert (result.status, result.location) == (307, "https://w-auth.example.org:8444/ns/file.txt")


def test_public_namespaces_redirect_to_the_data_url_even_with_an_auth_url():
    snap = snapshot((origin("o", auth_url="https://o-auth.example.org:8444"), ns()))
    result = decide(request(to_origin=True), snap)
    assert result.location == "https://o.example.org:8443/ns/file.txt"


def test_the_location_keeps_the_server_url_path_and_escapes_the_request_path():
    snap = snapshot((origin("o", url="https://posix.example.org:8443/export"), ns()))
    result = decide(request("/ns/a b?.txt", to_origin=True), snap)
    assert result.location == "https://posix.example.org:8443/export/ns/a%20b%3F.txt"


def test_the_query_goes_only_into_location_not_link():
    snap = snapshot((origin("o"), ns()))
    result = decide(
        request(
            to_origin=True,
            query=(("skipstat", "1"), ("foo", "a b")),
            authorization="Bearer tok",
            timeout_header="10s",
        ),
        snap,
    )
    assert result.location == (
        "https://o.example.org:8443/ns/file.txt?authz=tok&foo=a+b&pelican.timeout=10s&skipstat="
    )
    assert link_urls(result) == ["https://o.example.org:8443/ns/file.txt"]


# All headers at once


def test_a_protected_namespace_redirect_carries_every_pelican_header():
    issuer = "https://origin.example.org:8443"
    namespace = ns(
        "/ospool/ap40",
        PROTECTED | Capability.LISTINGS,
        token_issuers=(
            TokenIssuer(issuer=issuer, base_paths=("/ospool/ap40",)),
            TokenIssuer(issuer="https://second-issuer.example.org"),
        ),
        token_generations=(TokenGeneration(strategy="OAuth2", max_scope_depth=3, issuer=issuer),),
    )
    snap = snapshot(
        (origin("origin", PROTECTED | Capability.LISTINGS, url=issuer + "/export"), namespace),
        (cache("cache-b"), ns("/ospool/ap40", PROTECTED)),
        (cache("cache-a"), ns("/ospool/ap40", PROTECTED)),
    )
    result = decide(request("/ospool/ap40/data/u/f.txt", authorization="Bearer tok"), snap)
    assert result.status == 307
    assert result.location == "https://cache-a.example.org:8443/ospool/ap40/data/u/f.txt?authz=tok"
    assert result.headers == [
        (
            "Link",
            '<https://cache-a.example.org:8443/ospool/ap40/data/u/f.txt>; rel="duplicate"; '
            "pri=1; depth=3, "
            '<https://cache-b.example.org:8443/ospool/ap40/data/u/f.txt>; rel="duplicate"; '
            "pri=2; depth=3",
        ),
        (
            "X-Pelican-Namespace",
            "namespace=/ospool/ap40, require-token=true, "
            "collections-url=https://origin.example.org:8443",
        ),
        ("X-Pelican-Authorization", "issuer=https://origin.example.org:8443"),
        ("X-Pelican-Authorization", "issuer=https://second-issuer.example.org"),
        (
            "X-Pelican-Token-Generation",
            "issuer=https://origin.example.org:8443, max-scope-depth=3, strategy=OAuth2, "
            "base-path=/ospool/ap40",
        ),
        ("X-Pelican-JobId", REQUEST_ID),
    ]


def test_a_public_namespace_without_listings_has_the_short_namespace_header():
    result = decide(request(), snapshot((origin("o"), ns()), (cache("c"), ns())))
    assert header_values(result, "X-Pelican-Namespace") == ["namespace=/ns, require-token=false"]
    assert header_values(result, "X-Pelican-Authorization") == []
    assert header_values(result, "X-Pelican-Token-Generation") == []


def test_collections_url_comes_from_the_first_origin_with_listings():
    snap = snapshot(
        (origin("a-plain"), ns()),
        (origin("b-lists", PUBLIC | Capability.LISTINGS), ns(caps=PUBLIC | Capability.LISTINGS)),
        (
            origin("c-lists", PUBLIC | Capability.LISTINGS | DR),
            ns(caps=PUBLIC | Capability.LISTINGS | DR),
        ),
        (cache("cache"), ns()),
        check_origin_presence=False,
    )
    result = decide(request(), snap)
    assert names(result) == ["cache"]
    assert header_values(result, "X-Pelican-Namespace") == [
        "namespace=/ns, require-token=false, collections-url=https://b-lists.example.org:8443"
    ]


def test_collections_url_ignores_origins_that_cannot_serve_the_verb():
    # The first origin lists but its server cannot read, so it is not a GET candidate.
    snap = snapshot(
        (origin("a-lists-only", Capability.LISTINGS), ns(caps=PUBLIC | Capability.LISTINGS)),
        (origin("b-reads"), ns()),
    )
    result = decide(request(), snap)
    assert names(result) == ["b-reads"]
    assert header_values(result, "X-Pelican-Namespace") == ["namespace=/ns, require-token=false"]


def test_collections_url_uses_the_auth_url_for_a_protected_namespace():
    lists = PROTECTED | Capability.LISTINGS
    snap = snapshot(
        (origin("o", lists, auth_url="https://o-auth.example.org:8444/x"), ns(caps=lists)),
    )
    result = decide(request(method="PROPFIND", depth="1", to_origin=True), snap)
    assert header_values(result, "X-Pelican-Namespace") == [
        "namespace=/ns, require-token=true, collections-url=https://o-auth.example.org:8444"
    ]


def test_link_depth_is_zero_when_the_path_is_the_namespace():
    result = decide(request("/ns", to_origin=True), snapshot((origin("o"), ns())))
    assert header_values(result, "Link") == [
        '<https://o.example.org:8443/ns>; rel="duplicate"; pri=1; depth=0'
    ]


def test_job_id_header_is_the_request_id():
    result = decide(request(), snapshot((origin("o"), ns()), (cache("c"), ns())))
    assert header_values(result, "X-Pelican-JobId") == [REQUEST_ID]


def test_broker_header_comes_from_the_first_chosen_server_with_one():
    broker = "https://director.example.org:8444/api/v1.0/broker/reverse?origin=b&prefix=%2Fns"
    snap = snapshot(
        (origin("o", broker_url="https://director.example.org:8444/origin-broker"), ns()),
        (cache("a"), ns()),
        (cache("b", broker_url=broker), ns()),
        (cache("c", broker_url="https://director.example.org:8444/third"), ns()),
    )
    assert header_values(decide(request(), snap), "X-Pelican-Broker") == [broker]


def test_no_broker_header_when_no_chosen_server_has_one():
    snap = snapshot(
        (origin("o", broker_url="https://director.example.org:8444/origin-broker"), ns()),
        (cache("c"), ns()),
    )
    assert header_values(decide(request(), snap), "X-Pelican-Broker") == []


# Sorting


def located(name: str, place: tuple[float, float], kind: ServerKind, **fields) -> ServerView:
    build = origin if kind is ServerKind.ORIGIN else cache
    return build(name, latitude=place[0], longitude=place[1], **fields)


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


# Tokens


def test_an_expired_jwt_in_the_header_is_401_with_a_challenge():
    result = decide(request(authorization=f"Bearer {EXPIRED_JWT}"), snapshot((origin("o"), ns())))
    assert (result.status, result.message, result.headers) == (
        401,
        "The provided token has expired.",
        [("WWW-Authenticate", EXPIRED_CHALLENGE)],
    )


def test_an_expired_jwt_in_the_authz_query_is_401():
    result = decide(
        request(to_origin=True, query=(("authz", EXPIRED_JWT),)), snapshot((origin("o"), ns()))
    )
    assert (result.status, result.headers) == (401, [("WWW-Authenticate", EXPIRED_CHALLENGE)])


def test_a_valid_jwt_is_forwarded_in_the_location():
    result = decide(
        request(to_origin=True, authorization=f"Bearer {VALID_JWT}"),
        snapshot((origin("o"), ns())),
    )
    assert result.status == 307
    assert result.location == f"https://o.example.org:8443/ns/file.txt?authz={VALID_JWT}"


def test_presence_is_checked_before_the_token_expiry():
    availability = FakeAvailability({"o-1": Presence.ABSENT, "o-2": Presence.ABSENT})
    result = decide(
        request(to_origin=True, authorization=f"Bearer {EXPIRED_JWT}"),
        two_origins(),
        availability=availability,
    )
    assert result.status == 404


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
