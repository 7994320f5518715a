"""A redirect's headers over real HTTP, byte for byte (reference section 2): Location,
Link (ranked, with pri and depth, at most six), the X-Pelican headers (issuers, token
generation, broker, job ID), redirect=false and HEAD."""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from helpers import caps, make_ad, namespace_ad
from raw_http import CORS_LINES, JOB_ID, UUID, raw, redirect_lines

ISSUER_ONE = "https://issuer-one.example:8443"
ISSUER_TWO = "https://issuer-two.example"
PROTECTED_NAMESPACE = namespace_ad(
    "/data",
    Caps=caps(Read=True, Listing=True),
    **{
        "token-issuer": [
            {"base-paths": ["/data"], "restricted-paths": [], "issuer": ISSUER_ONE},
            {"base-paths": ["/elsewhere"], "restricted-paths": [], "issuer": ISSUER_TWO},
        ],
        "token-generation": [
            {"strategy": "OAuth2", "vault-server": "", "max-scope-depth": 3, "issuer": ISSUER_ONE}
        ],
    },
)


# --- headers, byte for byte (reference section 2) -------------------------------------------


@pytest.fixture
def federation(live_director, file_servers):
    """A protected /data namespace: one Listings origin with two issuers, one cache."""
    origin = file_servers({"/data/sub/f.txt": b"origin bytes"})
    cache = file_servers({"/data/sub/f.txt": b"cache bytes"})
    server_caps = caps(Read=True, Listing=True)
    live_director.register(
        "origin-a",
        "origin",
        origin.url,
        namespaces=[PROTECTED_NAMESPACE],
        capabilities=server_caps,
        **{"broker-url": "https://director.example.org:8444/api/v1.0/broker/reverse"},
    )
    live_director.register(
        "cache-a", "cache", cache.url, namespaces=[namespace_ad("/data", Caps=server_caps)]
    )
    return origin, cache


def test_a_cache_redirect_carries_every_pelican_header_exactly(live_director, federation):
    origin, cache = federation

    answer = raw(
        live_director,
        "GET",
        "/api/v1.0/director/object/data/sub/f.txt?zeta=1&alpha=two+words",
        headers={
            "Authorization": "Bearer opaque-token",
            "X-Pelican-Timeout": "10s",
            "X-Pelican-JobId": JOB_ID,
        },
    )

    assert answer.status == 307
    location = (
        f"{cache.url}/data/sub/f.txt?alpha=two+words&authz=opaque-token&pelican.timeout=10s&zeta=1"
    )
    expected = [
        ("Server", "pelican/0.1.0"),
        *CORS_LINES,
        ("Location", location),
        ("Link", f'<{cache.url}/data/sub/f.txt>; rel="duplicate"; pri=1; depth=2'),
        (
            "X-Pelican-Namespace",
            f"namespace=/data, require-token=true, collections-url={origin.url}",
        ),
        ("X-Pelican-Authorization", f"issuer={ISSUER_ONE}"),
        ("X-Pelican-Authorization", f"issuer={ISSUER_TWO}"),
        (
            "X-Pelican-Token-Generation",
            f"issuer={ISSUER_ONE}, max-scope-depth=3, strategy=OAuth2, base-path=/data",
        ),
        ("X-Pelican-JobId", JOB_ID),
    ]
    assert sorted(redirect_lines(answer)) == sorted(expected)
    # One line per issuer, in the order of the ad (clients read the first).
    assert answer.values("X-Pelican-Authorization") == [
        f"issuer={ISSUER_ONE}",
        f"issuer={ISSUER_TWO}",
    ]
    assert answer.one("Content-Type") == "text/html; charset=utf-8"
    assert answer.body == (
        f'<a href="{location.replace("&", "&amp;")}">Temporary Redirect</a>.\n\n'.encode()
    )


def test_the_download_through_a_protected_redirect_reaches_the_cache(live_director, federation):
    _, cache = federation

    answer = requests.get(
        f"{live_director.url}/api/v1.0/director/object/data/sub/f.txt",
        headers={"Authorization": "Bearer opaque-token"},
        timeout=5,
    )

    assert answer.content == b"cache bytes"
    assert answer.history[0].raw.headers.getlist("X-Pelican-Authorization") == [
        f"issuer={ISSUER_ONE}",
        f"issuer={ISSUER_TWO}",
    ]


def test_an_origin_redirect_names_the_broker_of_the_chosen_origin(live_director, federation):
    origin, _ = federation

    answer = raw(live_director, "GET", "/api/v1.0/director/origin/data/sub/f.txt")

    assert answer.status == 307
    assert answer.one("Location") == f"{origin.url}/data/sub/f.txt"
    assert answer.one("Link") == f'<{origin.url}/data/sub/f.txt>; rel="duplicate"; pri=1; depth=2'
    assert answer.one("X-Pelican-Broker") == (
        "https://director.example.org:8444/api/v1.0/broker/reverse"
    )


def test_a_cache_redirect_without_a_cache_broker_sends_no_broker_header(live_director, federation):
    answer = raw(live_director, "GET", "/api/v1.0/director/object/data/sub/f.txt")

    assert answer.values("X-Pelican-Broker") == []


def test_a_pelican_broker_url_with_its_query_is_echoed_in_x_pelican_broker(
    live_director, file_servers
):
    broker = (
        "https://director.example.org:8444/api/v1.0/broker/reverse"
        "?origin=origin.example.org&prefix=%2Ftest"
    )
    origin = file_servers()
    answer = live_director.advertise(
        make_ad("origin-a", "origin", origin.url, **{"broker-url": broker})
    )
    assert answer.status_code == 200, answer.text

    redirect = raw(live_director, "GET", "/api/v1.0/director/origin/test/f")

    assert redirect.one("X-Pelican-Broker") == broker


def test_a_public_namespace_sends_no_issuer_or_generation_headers(live_director, file_servers):
    origin = file_servers()
    live_director.register("origin-a", "origin", origin.url)

    answer = raw(live_director, "GET", "/api/v1.0/director/origin/test/f")

    assert answer.one("X-Pelican-Namespace") == "namespace=/test, require-token=false"
    assert answer.values("X-Pelican-Authorization") == []
    assert answer.values("X-Pelican-Token-Generation") == []


def test_redirect_false_answers_200_with_the_same_headers_and_no_location(
    live_director, federation
):
    path = "/api/v1.0/director/object/data/sub/f.txt"
    headers = {"X-Pelican-JobId": JOB_ID}

    redirected = raw(live_director, "GET", f"{path}?redirect=false", headers=headers)
    plain = raw(live_director, "GET", path, headers=headers)

    assert redirected.status == 200
    assert redirected.values("Location") == []
    assert redirected.body == b""
    assert redirect_lines(redirected) == [
        line for line in redirect_lines(plain) if line[0] != "Location"
    ]


def test_a_head_redirect_has_the_location_and_no_body(live_director, federation):
    _, cache = federation

    answer = raw(live_director, "HEAD", "/api/v1.0/director/object/data/sub/f.txt")

    assert answer.status == 307
    assert answer.one("Location") == f"{cache.url}/data/sub/f.txt"
    assert answer.body == b""


def test_a_job_id_that_is_not_a_uuid_is_replaced_by_a_fresh_one(live_director, federation):
    answer = raw(
        live_director,
        "GET",
        "/api/v1.0/director/object/data/sub/f.txt",
        headers={"X-Pelican-JobId": "job-42"},
    )

    job_id = answer.one("X-Pelican-JobId")
    assert re.fullmatch(UUID, job_id)
    assert uuid.UUID(job_id).version == 4


@pytest.mark.parametrize(
    ("query", "headers", "expected_query"),
    [
        pytest.param("", {"Authorization": "Bearer tok"}, "authz=tok", id="header-token"),
        pytest.param("?authz=Bearer%20q", {}, "authz=q", id="query-token-bearer-stripped"),
        pytest.param(
            "?authz=fromquery",
            {"Authorization": "Bearer fromheader"},
            "authz=fromquery",
            id="query-token-wins",
        ),
        pytest.param(
            "?pelican.timeout=3s", {"X-Pelican-Timeout": "9s"}, "pelican.timeout=3s", id="timeout"
        ),
        pytest.param(
            "?skipstat=yes&b=2&a=1&b=1", {}, "a=1&b=2&b=1&skipstat=", id="sorted-and-flags"
        ),
        pytest.param("?prefercached", {}, "prefercached=", id="prefercached"),
        pytest.param("?x=a%2Fb%20c", {}, "x=a%2Fb+c", id="go-query-escaping"),
    ],
)
def test_the_location_query_is_forwarded_as_pelican_encodes_it(
    live_director, file_servers, query, headers, expected_query
):
    cache = file_servers()
    live_director.register("origin-a", "origin", file_servers().url)
    live_director.register("cache-a", "cache", cache.url)

    answer = raw(live_director, "GET", f"/api/v1.0/director/object/test/f{query}", headers=headers)

    assert answer.one("Location") == f"{cache.url}/test/f?{expected_query}"
    assert answer.one("Link") == f'<{cache.url}/test/f>; rel="duplicate"; pri=1; depth=1'


def test_the_link_header_ranks_caches_by_distance_with_pri_and_depth(live_director, file_servers):
    live_director.register("origin-a", "origin", file_servers().url)
    far = file_servers()
    near = file_servers()
    live_director.register(
        "cache-a-far", "cache", far.url, coordinate={"Lat": -33.9, "Long": 151.2}
    )
    live_director.register(
        "cache-b-near", "cache", near.url, coordinate={"Lat": 43.1, "Long": -89.4}
    )

    answer = raw(
        live_director,
        "GET",
        "/api/v1.0/director/object/test/x/y/z.txt",
        headers={"X-Pelican-Coordinate": "lat=43.0,long=-89.0"},
    )

    assert answer.one("Location") == f"{near.url}/test/x/y/z.txt"
    assert answer.one("Link") == (
        f'<{near.url}/test/x/y/z.txt>; rel="duplicate"; pri=1; depth=3, '
        f'<{far.url}/test/x/y/z.txt>; rel="duplicate"; pri=2; depth=3'
    )


def test_the_link_header_lists_at_most_six_servers(live_director, file_servers):
    live_director.register("origin-a", "origin", file_servers().url)
    caches = [file_servers() for _ in range(7)]
    for index, cache in enumerate(caches):
        live_director.register(f"cache-{index}", "cache", cache.url)

    answer = raw(live_director, "GET", "/api/v1.0/director/object/test")

    links = answer.one("Link").split(", ")
    assert links == [
        f'<{cache.url}/test>; rel="duplicate"; pri={pri}; depth=0'
        for pri, cache in enumerate(caches[:6], start=1)
    ]
