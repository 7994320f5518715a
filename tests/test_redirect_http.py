"""Redirects over real HTTP to real loopback file servers (reference 1.3-1.5, 3.1-3.3):
downloads through redirects, the root-path rules, namespace matching and disabled servers,
the hot path. Headers byte for byte: test_redirect_http_headers.py; status codes:
test_redirect_http_errors.py; server URLs and quirks of the match:
test_redirect_http_urls.py."""

from __future__ import annotations

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from helpers import caps, configure_director, create_server, namespace_ad
from raw_http import CORS_LINES, assert_error_body, raw

from director.models import Server
from director.registry import registry_changed

ALL_CAPS = caps(
    PublicRead=True, Read=True, Write=True, Listing=True, FallBackRead=True, Copies=True
)


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
