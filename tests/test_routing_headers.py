"""The redirect decision's Location, Link and X-Pelican headers (reference section 2):
limits and URLs, all headers at once, and the token checks (an expired JWT: 401)."""

from __future__ import annotations

from helpers import FakeAvailability
from routing_builders import (
    DR,
    EXPIRED_CHALLENGE,
    EXPIRED_JWT,
    PROTECTED,
    PUBLIC,
    REQUEST_ID,
    VALID_JWT,
    cache,
    header_values,
    link_urls,
    names,
    ns,
    origin,
    request,
    snapshot,
    two_origins,
)

from director.routing import decide
from director.selection import Presence
from director.wire.types import Capability, TokenGeneration, TokenIssuer

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
