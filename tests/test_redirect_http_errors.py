"""Status codes over real HTTP (reference 1.4-1.5): 404, the start-up grace's 429, 405,
401 for an expired token, 400 for bad input, each with Pelican's JSON error body and its
request ID."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from helpers import configure_director, namespace_ad
from raw_http import JOB_ID, assert_error_body, raw

from director import registry


def jwt(**claims: Any) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


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
