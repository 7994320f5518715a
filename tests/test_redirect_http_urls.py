"""Server URLs, filters and quirks of the match over real HTTP (reference 3.1-3.3): auth
and prefixed URLs, escaped paths, servers shutting down or in a downtime, the User-Agent
version gate, CacheAuthz, Pelican's words for a contradictory query."""

from __future__ import annotations

import time

import pytest
import requests
from helpers import create_server, namespace_ad
from raw_http import JOB_ID, assert_error_body, raw

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


def test_an_origin_requiring_cache_authz_is_served_only_by_caches_of_pelican_7_16_or_later(
    live_director,
):
    live_director.register(
        "authz-origin", "origin", "http://origin.invalid", requiredFeatures=["CacheAuthz"]
    )
    live_director.register("old-cache", "cache", "http://old.invalid", version="7.15.3")
    live_director.register("new-cache", "cache", "http://new.invalid", version="7.16.0")
    answer = live_director.get("/api/v1.0/director/object/test/file.txt")
    assert answer.status_code == 307
    assert answer.headers["Location"] == "http://new.invalid/test/file.txt"
    assert "old.invalid" not in answer.headers["Link"]


def test_directread_with_prefercached_is_a_400_in_pelicans_words(live_director):
    live_director.register("origin-a", "origin", "http://origin.invalid")
    answer = live_director.get(
        "/api/v1.0/director/origin/test/file.txt?directread&prefercached",
        headers={"X-Pelican-JobId": JOB_ID},
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "status": "error",
        "msg": "Failed to validate incoming request: cannot have both directread and "
        f"prefercached query parameters: Request ID: {JOB_ID}",
    }
