"""Redirects over real HTTP to real loopback file servers (reference 1.3-1.5, 2, 3.1-3.3)."""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from helpers import caps, configure_director, create_server, make_ad, namespace_ad

from director import registry
from director.models import Server
from director.registry import registry_changed

JOB_ID = "6f1c2e4a-0f9b-4b7e-9d51-3c1a8d0e7a21"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CORS_LINES = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, PUT, OPTIONS, PROPFIND"),
    ("Access-Control-Allow-Headers", "Content-Type, Authorization, Depth"),
    (
        "Access-Control-Expose-Headers",
        "Content-Type, Authorization, X-Pelican-User, X-Pelican-Timeout, "
        "X-Pelican-Token-Generation, X-Pelican-Authorization, X-Pelican-Namespace",
    ),
]
ALL_CAPS = caps(
    PublicRead=True, Read=True, Write=True, Listing=True, FallBackRead=True, Copies=True
)
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


@dataclass
class Raw:
    """One HTTP answer with every header line as sent (requests merges repeated ones)."""

    status: int
    lines: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.lines if key.lower() == name.lower()]

    def one(self, name: str) -> str:
        values = self.values(name)
        assert len(values) == 1, (name, values)
        return values[0]

    def json(self) -> Any:
        return json.loads(self.body)


def raw(
    live_director: Any,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Raw:
    """Send ``path`` exactly as given (no dot-segment removal, no re-quoting)."""
    address = urlsplit(live_director.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return Raw(answer.status, answer.getheaders(), answer.read())
    finally:
        conn.close()


def jwt(**claims: Any) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def assert_error_body(body: Any, message_start: str, request_id: str | None = None) -> str:
    assert set(body) == {"status", "msg"}
    assert body["status"] == "error"
    assert body["msg"].startswith(message_start), body["msg"]
    match = re.fullmatch(rf".* Request ID: ({UUID})", body["msg"])
    assert match is not None, body["msg"]
    if request_id is not None:
        assert match.group(1) == request_id
    return body["msg"]


def redirect_lines(answer: Raw) -> list[tuple[str, str]]:
    """The Pelican header lines of an answer, without transport headers."""
    transport = {"date", "content-length", "content-type"}
    return [(key, value) for key, value in answer.lines if key.lower() not in transport]


# --- downloads through redirects -------------------------------------------------------------


def test_the_object_endpoint_sends_the_client_to_a_cache_that_serves_the_bytes(
    live_director, file_servers
):
    origin = file_servers({"/test/hello.txt": b"from the origin\n"})
    cache = file_servers({"/test/hello.txt": b"from the cache\n"})
    live_director.register("origin-a", "origin", origin.url)
    live_director.register("cache-a", "cache", cache.url)

    answer = requests.get(f"{live_director.url}/api/v1.0/director/object/test/hello.txt", timeout=5)

    assert answer.status_code == 200
    assert answer.content == b"from the cache\n"
    assert [hop.status_code for hop in answer.history] == [307]
    assert answer.history[0].headers["Location"] == f"{cache.url}/test/hello.txt"
    assert origin.count("GET") == 0


def test_the_origin_endpoint_sends_the_client_to_the_origin(live_director, file_servers):
    origin = file_servers({"/test/hello.txt": b"from the origin\n"})
    cache = file_servers({"/test/hello.txt": b"from the cache\n"})
    live_director.register("origin-a", "origin", origin.url)
    live_director.register("cache-a", "cache", cache.url)

    answer = requests.get(f"{live_director.url}/api/v1.0/director/origin/test/hello.txt", timeout=5)

    assert answer.content == b"from the origin\n"
    assert answer.history[0].status_code == 307
    assert cache.count("GET") == 0


def test_a_root_path_get_is_a_cache_redirect(live_director, file_servers):
    origin = file_servers({"/test/a/b.bin": b"origin"})
    cache = file_servers({"/test/a/b.bin": b"cache"})
    live_director.register("origin-a", "origin", origin.url)
    live_director.register("cache-a", "cache", cache.url)

    answer = requests.get(f"{live_director.url}/test/a/b.bin", timeout=5)

    assert answer.content == b"cache"
    assert answer.history[0].headers["Location"] == f"{cache.url}/test/a/b.bin"


def test_dot_segments_inside_the_root_are_cleaned_before_routing(live_director, file_servers):
    origin = file_servers({"/test/f.txt": b"clean"})
    live_director.register("origin-a", "origin", origin.url)

    answer = raw(live_director, "GET", "/api/v1.0/director/origin/test/./a/../f.txt")

    assert answer.status == 307
    assert answer.one("Location") == f"{origin.url}/test/f.txt"


def test_without_caches_a_read_falls_back_to_an_origin_with_direct_reads(
    live_director, file_servers
):
    plain = file_servers({"/test/f": b"plain"})
    direct = file_servers({"/test/f": b"direct"})
    namespace = namespace_ad("/test", Caps=caps(PublicRead=True, Read=True, FallBackRead=True))
    live_director.register("origin-a-plain", "origin", plain.url)
    live_director.register(
        "origin-b-direct",
        "origin",
        direct.url,
        namespaces=[namespace],
        capabilities=caps(PublicRead=True, Read=True, FallBackRead=True),
    )

    answer = requests.get(f"{live_director.url}/api/v1.0/director/object/test/f", timeout=5)

    assert answer.content == b"direct"


def test_without_caches_or_direct_read_origins_a_read_gets_404(live_director, file_servers):
    live_director.register("origin-a", "origin", file_servers().url)

    answer = live_director.get("/api/v1.0/director/object/test/f")

    assert answer.status_code == 404
    assert_error_body(answer.json(), "No caches can fulfill this request")


def test_a_cache_in_critical_state_is_left_out(live_director, file_servers):
    live_director.register("origin-a", "origin", file_servers().url)
    sick = file_servers()
    well = file_servers()
    live_director.register("cache-a", "cache", sick.url, status="critical")
    live_director.register("cache-b", "cache", well.url, status="degraded")

    answer = live_director.get("/api/v1.0/director/object/test/f")

    assert answer.headers["Location"] == f"{well.url}/test/f"


def test_a_put_redirect_lets_the_client_write_the_bytes_to_the_origin(live_director, file_servers):
    origin = file_servers()
    writable = caps(PublicRead=True, Read=True, Write=True)
    live_director.register(
        "origin-a",
        "origin",
        origin.url,
        namespaces=[namespace_ad("/test", Caps=writable)],
        capabilities=writable,
    )

    answer = requests.put(
        f"{live_director.url}/api/v1.0/director/origin/test/up/load.bin",
        data=b"\x00uploaded bytes\xff",
        timeout=5,
    )

    assert answer.status_code == 201
    assert [hop.status_code for hop in answer.history] == [307]
    assert answer.history[0].headers["Location"] == f"{origin.url}/test/up/load.bin"
    assert origin.objects["/test/up/load.bin"].data == b"\x00uploaded bytes\xff"


# --- root-path rules (reference 1.3) --------------------------------------------------------


@pytest.fixture
def origin_and_cache(live_director, file_servers):
    origin = file_servers({"/test/f": b"origin"})
    cache = file_servers({"/test/f": b"cache"})
    live_director.register(
        "origin-a",
        "origin",
        origin.url,
        namespaces=[namespace_ad("/test", Caps=ALL_CAPS)],
        capabilities=ALL_CAPS,
    )
    live_director.register("cache-a", "cache", cache.url)
    return origin, cache


@pytest.mark.parametrize("method", ["PUT", "DELETE", "COPY", "PROPFIND"])
def test_root_path_writes_copies_and_propfind_go_to_the_origin(
    live_director, origin_and_cache, method
):
    origin, _ = origin_and_cache

    answer = raw(live_director, method, "/test/f")

    assert answer.status == 307
    assert answer.one("Location") == f"{origin.url}/test/f"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_root_path_reads_go_to_the_cache(live_director, origin_and_cache, method):
    _, cache = origin_and_cache

    answer = raw(live_director, method, "/test/f")

    assert answer.status == 307
    assert answer.one("Location") == f"{cache.url}/test/f"


def test_a_root_path_directread_goes_to_the_origin(live_director, origin_and_cache):
    origin, _ = origin_and_cache

    answer = raw(live_director, "GET", "/test/f?directread")

    assert answer.status == 307
    assert answer.one("Location") == f"{origin.url}/test/f?directread="


def test_options_at_the_root_answers_200_with_allow_and_cors(live_director):
    answer = raw(live_director, "OPTIONS", "/any/path")

    assert answer.status == 200
    assert answer.body == b""
    assert answer.one("Allow") == "HEAD,GET,PUT,PROPFIND,COPY,OPTIONS,POST"
    assert answer.one("Server") == "pelican/0.1.0"
    assert [line for line in answer.lines if line[0].startswith("Access-Control")] == CORS_LINES


@pytest.mark.parametrize(
    "path", ["/api/v1.0/director/anything", "/api/v1.0/director/object/test/f"]
)
def test_options_under_the_director_api_answers_200_with_cors(live_director, path):
    answer = raw(live_director, "OPTIONS", path)

    assert answer.status == 200
    assert answer.body == b""
    assert answer.one("Server") == "pelican/0.1.0"
    assert [line for line in answer.lines if line[0].startswith("Access-Control")] == CORS_LINES
    assert answer.values("Location") == []


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


# --- status codes ---------------------------------------------------------------------------


def test_a_path_no_origin_serves_gets_404_with_the_request_id(live_director, file_servers):
    live_director.register("cache-a", "cache", file_servers().url, namespaces=[namespace_ad("/c")])

    answer = raw(
        live_director,
        "GET",
        "/api/v1.0/director/object/c/f",
        headers={"X-Pelican-JobId": JOB_ID},
    )

    assert answer.status == 404
    assert answer.one("Content-Type") == "application/json; charset=utf-8"
    assert answer.one("Server") == "pelican/0.1.0"
    assert_error_body(answer.json(), "No sources found for the requested path /c/f", JOB_ID)


def test_during_the_start_up_grace_an_unknown_path_gets_429(live_director):
    configure_director(startup_grace=3600)

    answer = live_director.get("/api/v1.0/director/origin/nowhere/f")

    assert answer.status_code == 429
    assert_error_body(answer.json(), "No sources found for the requested path /nowhere/f")


def test_a_process_that_starts_with_live_ads_in_the_registry_has_no_start_up_grace(
    live_director, file_servers
):
    """A restart of one process among several: the ads are in the database already, and
    a 429 would be an error to pelicanfs, which does not retry on it."""
    configure_director(startup_grace=3600)
    live_director.register("origin-a", "origin", file_servers().url)
    registry.reset()  # this process starts now, with that live ad in the registry

    answer = live_director.get("/api/v1.0/director/origin/nowhere/f")

    assert answer.status_code == 404
    assert_error_body(answer.json(), "No sources found for the requested path /nowhere/f")


@pytest.mark.parametrize(
    ("method", "path", "headers", "verb"),
    [
        ("PUT", "/api/v1.0/director/origin/test/f", {}, "put"),
        ("DELETE", "/api/v1.0/director/origin/test/f", {}, "delete"),
        ("PROPFIND", "/api/v1.0/director/origin/test/", {"Depth": "1"}, "ls"),
        ("COPY", "/api/v1.0/director/origin/test/f", {}, "copy"),
        ("GET", "/api/v1.0/director/origin/test/f?directread", {}, "get"),
    ],
)
def test_origins_without_the_capability_get_405_naming_the_verb(
    live_director, file_servers, method, path, headers, verb
):
    live_director.register("origin-a", "origin", file_servers().url)

    answer = raw(live_director, method, path, headers=headers)

    assert answer.status == 405
    message = assert_error_body(answer.json(), "Discovered sources for the namespace")
    assert f"'{verb}'" in message


def test_a_propfind_without_depth_is_a_stat_that_reads_allow(live_director, file_servers):
    origin = file_servers()
    live_director.register("origin-a", "origin", origin.url)

    answer = raw(live_director, "PROPFIND", "/api/v1.0/director/origin/test/f")

    assert answer.status == 307
    assert answer.one("Location") == f"{origin.url}/test/f"


def _expired_jwt() -> str:
    now = int(time.time())
    return jwt(iss="https://issuer.example", iat=now - 3600, exp=now - 60)


@pytest.mark.parametrize(
    ("suffix", "headers"),
    [
        pytest.param("", {"Authorization": f"Bearer {_expired_jwt()}"}, id="header"),
        pytest.param(f"?authz={_expired_jwt()}", {}, id="authz-query"),
    ],
)
def test_an_expired_jwt_gets_401_with_the_bearer_challenge(
    live_director, file_servers, suffix, headers
):
    live_director.register("origin-a", "origin", file_servers().url)

    answer = raw(live_director, "GET", f"/api/v1.0/director/origin/test/f{suffix}", headers=headers)

    assert answer.status == 401
    assert answer.one("WWW-Authenticate") == (
        'Bearer error="invalid_token", error_description="token has expired"'
    )
    assert_error_body(answer.json(), "")


def test_a_jwt_expiring_within_the_grace_counts_as_expired(live_director, file_servers):
    live_director.register("origin-a", "origin", file_servers().url)
    now = int(time.time())
    almost = jwt(iat=now - 3600, exp=now + 5)

    answer = raw(
        live_director,
        "GET",
        "/api/v1.0/director/origin/test/f",
        headers={"Authorization": f"Bearer {almost}"},
    )

    assert answer.status == 401


def test_a_live_jwt_is_copied_into_the_location(live_director, file_servers):
    origin = file_servers()
    live_director.register("origin-a", "origin", origin.url)
    now = int(time.time())
    token = jwt(iat=now, exp=now + 3600)

    answer = raw(
        live_director,
        "GET",
        "/api/v1.0/director/origin/test/f",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert answer.status == 307
    assert answer.one("Location") == f"{origin.url}/test/f?authz={token}"


def test_a_token_built_to_exhaust_the_json_parser_is_just_not_a_jwt(live_director):
    live_director.register("origin-a", "origin", "http://127.0.0.1:1")
    payload = base64.urlsafe_b64encode(b"[" * 3000).rstrip(b"=").decode()

    answer = live_director.get(
        "/api/v1.0/director/origin/test/f", headers={"Authorization": f"Bearer a.{payload}.c"}
    )

    assert answer.status_code == 307


def test_directread_with_prefercached_gets_400(live_director, file_servers):
    live_director.register("origin-a", "origin", file_servers().url)

    answer = live_director.get("/api/v1.0/director/object/test/f?directread&prefercached")

    assert answer.status_code == 400
    assert_error_body(answer.json(), "")
    assert "directread" in answer.json()["msg"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1.0/director/object/../etc/passwd",
        "/api/v1.0/director/origin/test/../../x",
        "/../x",
        "/test/%2e%2e/%2e%2e/x",
        "/api/v1.0/director/object/test/%00x",
        "/test/nul%00",
        "/api/v1.0/director/object/test/%01x",
        "/api/v1.0/director/origin/test/%1fx",
        "/test/%7f",
        "/api/v1.0/director/object/test/" + "a" * 4096,
    ],
)
def test_unsafe_paths_get_400_and_never_a_redirect(live_director, file_servers, path):
    live_director.register("origin-a", "origin", file_servers().url)
    live_director.register("cache-a", "cache", file_servers().url)

    answer = raw(live_director, "GET", path)

    assert answer.status == 400
    assert answer.values("Location") == []
    assert_error_body(answer.json(), "Request path")


def test_a_path_of_exactly_4_kib_is_still_redirected(live_director, file_servers):
    origin = file_servers()
    live_director.register("origin-a", "origin", origin.url)
    path = "/test/" + "a" * (4096 - len("/test/"))

    answer = raw(live_director, "GET", f"/api/v1.0/director/origin{path}")

    assert answer.status == 307
    assert answer.one("Location") == f"{origin.url}{path}"


def test_the_object_endpoint_refuses_writes(live_director, file_servers):
    live_director.register("origin-a", "origin", file_servers().url)

    answer = raw(live_director, "PUT", "/api/v1.0/director/object/test/f", body=b"x")

    assert answer.status == 405
    assert answer.values("Location") == []


# --- namespace matching and disabled servers --------------------------------------------------


def test_the_longest_namespace_wins_and_foo_never_matches_foobar(live_director, file_servers):
    foo = file_servers()
    foobar = file_servers()
    live_director.register("origin-foo", "origin", foo.url, namespaces=[namespace_ad("/foo")])
    live_director.register(
        "origin-foobar", "origin", foobar.url, namespaces=[namespace_ad("/foobar")]
    )

    assert live_director.get("/api/v1.0/director/origin/foobar/x").headers["Location"] == (
        f"{foobar.url}/foobar/x"
    )
    assert live_director.get("/api/v1.0/director/origin/foo/x").headers["Location"] == (
        f"{foo.url}/foo/x"
    )
    assert live_director.get("/api/v1.0/director/origin/foo").headers["Location"] == (
        f"{foo.url}/foo"
    )
    assert live_director.get("/api/v1.0/director/origin/foob/x").status_code == 404


def test_a_nested_namespace_takes_precedence_over_its_parent(live_director, file_servers):
    parent = file_servers()
    child = file_servers()
    live_director.register("origin-p", "origin", parent.url, namespaces=[namespace_ad("/a")])
    live_director.register("origin-c", "origin", child.url, namespaces=[namespace_ad("/a/b")])

    answer = raw(live_director, "GET", "/api/v1.0/director/origin/a/b/c/d")

    assert answer.one("Location") == f"{child.url}/a/b/c/d"
    assert answer.one("X-Pelican-Namespace") == "namespace=/a/b, require-token=false"
    assert answer.one("Link") == f'<{child.url}/a/b/c/d>; rel="duplicate"; pri=1; depth=2'


def test_an_admin_disabled_server_is_not_routed(live_director, file_servers):
    first = file_servers()
    second = file_servers()
    live_director.register("origin-a", "origin", first.url)
    live_director.register("origin-b", "origin", second.url)
    server = Server.objects.get(name="origin-a")
    server.enabled = False
    server.save()
    registry_changed()

    answer = live_director.get("/api/v1.0/director/origin/test/f")

    assert answer.headers["Location"] == f"{second.url}/test/f"
    assert answer.headers["Link"] == f'<{second.url}/test/f>; rel="duplicate"; pri=1; depth=1'


def test_an_admin_disabled_only_origin_leaves_the_path_unserved(live_director, file_servers):
    live_director.register("origin-a", "origin", file_servers().url)
    server = Server.objects.get(name="origin-a")
    server.enabled = False
    server.save()
    registry_changed()

    answer = live_director.get("/api/v1.0/director/origin/test/f")

    assert answer.status_code == 404


# --- the hot path ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_redirect_makes_zero_database_queries_once_the_snapshot_is_built(client):
    configure_director()
    create_server("origin-a", "origin", "http://127.0.0.1:9001", {"/test": {}})
    create_server("cache-a", "cache", "http://127.0.0.1:9002", {"/test": {}})
    warm_up = client.get("/api/v1.0/director/object/test/warm")
    assert warm_up.status_code == 307

    with CaptureQueriesContext(connection) as queries:
        answer = client.get(
            "/api/v1.0/director/object/test/f?x=1", headers={"Authorization": "Bearer t"}
        )
        root = client.get("/test/g")
        origin = client.get("/api/v1.0/director/origin/test/h")
        missing = client.get("/api/v1.0/director/origin/elsewhere/h")

    statuses = [answer.status_code, root.status_code, origin.status_code, missing.status_code]
    assert statuses == [307, 307, 307, 404]
    assert answer["Location"] == "http://127.0.0.1:9002/test/f?authz=t&x=1"
    assert origin["Location"] == "http://127.0.0.1:9001/test/h"
    assert queries.captured_queries == []


# --- server URLs, filters and quirks of the match ------------------------------------------


def test_a_protected_namespace_redirects_to_the_auth_url_when_the_server_has_one(live_director):
    create_server(
        "defined",
        "origin",
        "http://127.0.0.1:9001",
        {"/open": {}, "/closed": {"public_reads": False}},
        auth_url="http://127.0.0.1:9443",
    )

    closed = raw(live_director, "GET", "/api/v1.0/director/origin/closed/f")
    opened = raw(live_director, "GET", "/api/v1.0/director/origin/open/f")

    assert closed.one("Location") == "http://127.0.0.1:9443/closed/f"
    assert closed.one("X-Pelican-Namespace") == "namespace=/closed, require-token=true"
    assert opened.one("Location") == "http://127.0.0.1:9001/open/f"


def test_a_server_url_with_a_path_prefixes_the_object_path(live_director, file_servers):
    origin = file_servers({"/export/test/f.txt": b"under a prefix"})
    live_director.register("origin-a", "origin", f"{origin.url}/export")

    answer = requests.get(f"{live_director.url}/api/v1.0/director/origin/test/f.txt", timeout=5)

    assert answer.content == b"under a prefix"
    assert answer.history[0].headers["Location"] == f"{origin.url}/export/test/f.txt"


def test_the_location_path_is_escaped_and_still_downloads(live_director, file_servers):
    origin = file_servers({"/test/a b?c.txt": b"odd name"})
    live_director.register("origin-a", "origin", origin.url)

    answer = requests.get(
        f"{live_director.url}/api/v1.0/director/origin/test/a%20b%3Fc.txt", timeout=5
    )

    assert answer.content == b"odd name"
    assert answer.history[0].headers["Location"] == f"{origin.url}/test/a%20b%3Fc.txt"


def test_a_cache_with_a_longer_prefix_than_every_origin_leaves_the_path_unserved(
    live_director, file_servers
):
    live_director.register("origin-a", "origin", file_servers().url)
    live_director.register(
        "cache-a", "cache", file_servers().url, namespaces=[namespace_ad("/test/deeper")]
    )

    answer = live_director.get("/api/v1.0/director/object/test/deeper/f")

    assert answer.status_code == 404
    assert_error_body(answer.json(), "No sources found for the requested path /test/deeper/f")


def test_a_server_that_is_shutting_down_is_not_routed(live_director, file_servers):
    live_director.register("origin-a", "origin", file_servers().url, status="shutting down")

    assert live_director.get("/api/v1.0/director/origin/test/f").status_code == 404


def test_a_server_in_an_active_downtime_is_not_routed_and_a_future_one_is(
    live_director, file_servers
):
    now_ms = int(time.time() * 1000)
    down = file_servers()
    later = file_servers()
    live_director.register(
        "origin-a-down",
        "origin",
        down.url,
        downtimes=[{"id": "now", "startTime": now_ms - 60_000, "endTime": -1}],
    )
    live_director.register(
        "origin-b-later",
        "origin",
        later.url,
        downtimes=[{"id": "later", "startTime": now_ms + 3_600_000, "endTime": -1}],
    )

    answer = raw(live_director, "GET", "/api/v1.0/director/origin/test/f")

    assert answer.one("Link") == f'<{later.url}/test/f>; rel="duplicate"; pri=1; depth=1'


@pytest.mark.parametrize(
    ("user_agent", "status"),
    [
        ("pelican-client/6.9.9", 400),
        ("pelican-origin/7.8.9", 400),
        ("pelican-director/7.1.0", 400),
        ("pelican-client/7.0.0", 307),
        ("pelican-cache/7.8.2", 307),
        ("pelican-client/6.0.0-rc.1", 307),  # unparseable: the check is skipped
        ("pelican-client/6.0.0 project/x", 307),
        ("python-requests/2.32", 307),
    ],
)
def test_the_user_agent_version_gate(live_director, file_servers, user_agent, status):
    live_director.register("origin-a", "origin", file_servers().url)

    answer = raw(
        live_director,
        "GET",
        "/api/v1.0/director/origin/test/f",
        headers={"User-Agent": user_agent},
    )

    assert answer.status == status
    if status == 400:
        assert_error_body(answer.json(), "")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/api/v1.0/director/object/test/f"), ("POST", "/api/v1.0/director/origin/test/f")],
)
def test_a_method_the_endpoint_does_not_take_gets_405_with_a_request_id(
    live_director, file_servers, method, path
):
    live_director.register("origin-a", "origin", file_servers().url)

    answer = raw(live_director, method, path, headers={"X-Pelican-JobId": JOB_ID}, body=b"")

    assert answer.status == 405
    assert_error_body(answer.json(), "", JOB_ID)
