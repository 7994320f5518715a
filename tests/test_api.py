"""The JSON endpoints around the redirects: namespaces, directors, discovery, director_ui."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.conf import settings
from helpers import PUBLIC_CAPS, caps, create_server, namespace_ad

from director.models import Namespace, Server

PUBLIC = PUBLIC_CAPS
NO_CAPS = dict.fromkeys(PUBLIC, False)
ISSUER = "https://issuer.example:8443"
UI_PUBLIC = {
    "PublicReads": True,
    "Reads": True,
    "Writes": False,
    "Listings": False,
    "DirectReads": False,
    "Copies": False,
}


def go_url(scheme: str, host: str, path: str = "") -> dict[str, Any]:
    return {
        "Scheme": scheme,
        "Opaque": "",
        "User": None,
        "Host": host,
        "Path": path,
        "RawPath": "",
        "OmitHost": False,
        "ForceQuery": False,
        "RawQuery": "",
        "Fragment": "",
        "RawFragment": "",
    }


MONITORING = {
    "Caps": PUBLIC,
    "path": "/pelican/monitoring",
    "token-generation": [],
    "token-issuer": [],
    "from-topology": False,
}


@pytest.fixture
def small_federation(live_director):
    """origin-a (/shared with an issuer, /only-a), origin-b (/shared), cache-a (/shared)."""
    protected = namespace_ad(
        "/shared",
        Caps=caps(Read=True, Listing=True),
        **{
            "token-issuer": [
                {
                    "base-paths": ["/shared"],
                    "restricted-paths": ["/shared/private"],
                    "issuer": "https://issuer.example:8443",
                }
            ],
            "token-generation": [
                {
                    "strategy": "OAuth2",
                    "vault-server": "",
                    "max-scope-depth": 3,
                    "issuer": "https://issuer.example:8443",
                }
            ],
        },
    )
    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:7001",
        namespaces=[protected, namespace_ad("/only-a")],
        capabilities=caps(PublicRead=True, Read=True, Listing=True),
        coordinate={"Lat": 43.07, "Long": -89.4},
    )
    live_director.register("origin-b", "origin", "http://127.0.0.1:7002", namespaces=[protected])
    live_director.register(
        "cache-a", "cache", "http://127.0.0.1:7003", namespaces=[namespace_ad("/shared")]
    )
    return live_director


PROTECTED_AD = {
    "Caps": NO_CAPS | {"Read": True, "Listing": True},
    "path": "/shared",
    "token-generation": [
        {
            "strategy": "OAuth2",
            "vault-server": "",
            "max-scope-depth": 3,
            "issuer": go_url("https", "issuer.example:8443"),
        }
    ],
    "token-issuer": [
        {
            "base-paths": ["/shared"],
            "restricted-paths": ["/shared/private"],
            "issuer": go_url("https", "issuer.example:8443"),
        }
    ],
    "from-topology": False,
}


# --- listNamespaces -------------------------------------------------------------------------


def test_list_namespaces_v2_lists_every_origin_namespace_and_the_monitoring_one(
    small_federation,
):
    answer = small_federation.get("/api/v2.0/director/listNamespaces")

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    listing = answer.json()
    assert listing[-1] == MONITORING
    assert sorted(listing[:-1], key=lambda item: item["path"]) == [
        {
            "Caps": PUBLIC,
            "path": "/only-a",
            "token-generation": [],
            "token-issuer": [],
            "from-topology": False,
        },
        PROTECTED_AD,
        PROTECTED_AD,  # once per origin
    ]


def test_list_namespaces_v2_with_no_origins_has_only_the_monitoring_namespace(live_director):
    live_director.register("cache-a", "cache", "http://127.0.0.1:7003")

    answer = live_director.get("/api/v2.0/director/listNamespaces")

    assert answer.json() == [MONITORING]


def test_list_namespaces_v1_is_deprecated_with_status_299_and_a_warning(live_director):
    answer = live_director.get("/api/v1.0/director/listNamespaces")

    assert answer.status_code == 299
    assert answer.headers["Warning"] == (
        '299 - "Deprecated API: use GET /api/v2.0/director/listNamespaces"'
    )
    assert answer.json() == {
        "status": "error",
        "msg": "Deprecated API: use GET /api/v2.0/director/listNamespaces",
    }


# --- namespaces/prefix ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("/shared/x/y", "/shared"),
        ("/shared", "/shared"),
        ("/only-a/deep/er", "/only-a"),
    ],
)
def test_the_prefix_lookup_returns_the_longest_origin_namespace(small_federation, path, prefix):
    answer = small_federation.get(f"/api/v1.0/director/namespaces/prefix{path}")

    assert answer.status_code == 200
    assert answer.json() == {"prefix": prefix}


def test_the_prefix_lookup_prefers_a_nested_origin_namespace(live_director):
    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:7001",
        namespaces=[namespace_ad("/foo"), namespace_ad("/foo/bar")],
    )
    live_director.register(
        "cache-a", "cache", "http://127.0.0.1:7003", namespaces=[namespace_ad("/foo/bar/baz")]
    )

    assert live_director.get("/api/v1.0/director/namespaces/prefix/foo/bar/baz/q").json() == {
        "prefix": "/foo/bar"
    }
    assert live_director.get("/api/v1.0/director/namespaces/prefix/foo/barn").json() == {
        "prefix": "/foo"
    }


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1.0/director/namespaces/prefix/", 400),
        ("/api/v1.0/director/namespaces/prefix//", 400),
        ("/api/v1.0/director/namespaces/prefix/nothing/here", 404),
        ("/api/v1.0/director/namespaces/prefix/sharedx", 404),
    ],
)
def test_the_prefix_lookup_refuses_empty_paths_and_misses(small_federation, path, status):
    answer = small_federation.get(path)

    assert answer.status_code == status
    body = answer.json()
    assert set(body) == {"status", "msg"}
    assert body["status"] == "error"


# --- directors and discovery ----------------------------------------------------------------


def test_directors_lists_this_directors_own_ad(live_director):
    answer = live_director.get("/api/v1.0/director/directors")

    assert answer.status_code == 200
    [ad] = answer.json()
    assert set(ad) == {
        "name",
        "startTime",
        "instanceID",
        "generationID",
        "version",
        "expiry",
        "advertise_url",
    }
    assert ad["name"] == settings.DIRECTOR_NAME
    assert ad["version"] == "0.1.0"
    assert ad["advertise_url"] == live_director.url
    assert ad["generationID"] == 0
    assert re.fullmatch("[0-9a-f]{32}", ad["instanceID"])
    assert isinstance(ad["startTime"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", ad["expiry"])


def test_pelican_configuration_is_pretty_json_served_as_an_attachment(live_director):
    answer = live_director.get("/.well-known/pelican-configuration")

    # Pelican's bytes: its field order, https for the director whatever the request's
    # scheme (discovery.go); the live directors as each advertised itself.
    own = live_director.url
    base = own.replace("http://", "https://")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Content-Disposition"] == (
        "attachment; filename=pelican-configuration.json"
    )
    assert answer.text == (
        "{\n"
        f'  "discovery_endpoint": "{base}",\n'
        f'  "director_endpoint": "{base}",\n'
        '  "director_advertise_endpoints": [\n'
        f'    "{own}"\n'
        "  ],\n"
        f'  "namespace_registration_endpoint": "{base}",\n'
        f'  "jwks_uri": "{base}/.well-known/issuer.jwks",\n'
        f'  "broker_endpoint": "{base}"\n'
        "}\n"
    )


# --- director_ui ----------------------------------------------------------------------------


def names(answer: Any) -> list[str]:
    return [server["name"] for server in answer.json()]


def test_ui_servers_lists_origins_and_caches(small_federation):
    answer = small_federation.get("/api/v1.0/director_ui/servers")

    assert answer.status_code == 200
    assert names(answer) == ["cache-a", "origin-a", "origin-b"]
    origin = next(server for server in answer.json() if server["name"] == "origin-a")
    assert {key: origin[key] for key in EXPECTED_ORIGIN_A} == EXPECTED_ORIGIN_A
    assert sorted(origin["namespacePrefixes"]) == ["/only-a", "/shared"]
    assert "namespaces" not in origin


EXPECTED_ORIGIN_A = {
    "name": "origin-a",
    "url": "http://127.0.0.1:7001",
    "webUrl": "http://127.0.0.1:7001",
    "authUrl": "",
    "brokerUrl": "",
    "type": "Origin",
    "latitude": 43.07,
    "longitude": -89.4,
    "capabilities": UI_PUBLIC | {"Listings": True},
    "filtered": False,
    "filteredType": "",
    "downtimes": [],
    "fromTopology": False,
    "serverStatus": "ok",
    "registryPrefix": "/origins/origin-a",
    "version": "7.20.0",
}


@pytest.mark.parametrize(
    ("server_type", "expected"),
    [("origin", ["origin-a", "origin-b"]), ("cache", ["cache-a"]), ("Cache", ["cache-a"])],
)
def test_ui_servers_filters_by_server_type(small_federation, server_type, expected):
    answer = small_federation.get(f"/api/v1.0/director_ui/servers?server_type={server_type}")

    assert answer.status_code == 200
    assert names(answer) == expected
    assert {server["type"] for server in answer.json()} == {expected[0].split("-")[0].title()}


@pytest.mark.parametrize("server_type", ["director", "origins", "all"])
def test_ui_servers_refuses_other_server_types(small_federation, server_type):
    answer = small_federation.get(f"/api/v1.0/director_ui/servers?server_type={server_type}")

    assert answer.status_code == 400
    assert answer.json()["status"] == "error"


def test_ui_servers_marks_a_disabled_server_as_filtered(small_federation):
    Server.objects.filter(name="origin-b").update(enabled=False)

    answer = small_federation.get("/api/v1.0/director_ui/servers?server_type=origin")

    origin_b = answer.json()[1]
    assert (origin_b["name"], origin_b["filtered"]) == ("origin-b", True)
    assert origin_b["filteredType"] != ""


def test_ui_server_by_name_includes_its_full_namespaces(small_federation):
    answer = small_federation.get("/api/v1.0/director_ui/servers/origin-a")

    assert answer.status_code == 200
    server = answer.json()
    assert {key: server[key] for key in EXPECTED_ORIGIN_A} == EXPECTED_ORIGIN_A
    assert "namespacePrefixes" not in server
    assert sorted(ns["path"] for ns in server["namespaces"]) == ["/only-a", "/shared"]


def test_ui_server_by_unknown_name_is_404(small_federation):
    answer = small_federation.get("/api/v1.0/director_ui/servers/no-such-server")

    assert answer.status_code == 404
    assert answer.json()["status"] == "error"


def test_ui_server_namespaces_lists_one_servers_namespaces(small_federation):
    answer = small_federation.get("/api/v1.0/director_ui/servers/origin-a/namespaces")

    assert answer.status_code == 200
    assert sorted(answer.json(), key=lambda item: item["path"]) == [
        {
            "path": "/only-a",
            "capabilities": UI_PUBLIC,
            "tokenGeneration": [],
            "tokenIssuer": [],
            "fromTopology": False,
        },
        {
            "path": "/shared",
            "capabilities": dict.fromkeys(UI_PUBLIC, False) | {"Reads": True, "Listings": True},
            "tokenGeneration": [
                {
                    "strategy": "OAuth2",
                    "vault-server": "",
                    "max-scope-depth": 3,
                    "issuer": "https://issuer.example:8443",
                }
            ],
            "tokenIssuer": [
                {
                    "issuer": "https://issuer.example:8443",
                    "base-paths": ["/shared"],
                    "restricted-paths": ["/shared/private"],
                }
            ],
            "fromTopology": False,
        },
    ]
    missing = small_federation.get("/api/v1.0/director_ui/servers/nobody/namespaces")
    assert missing.status_code == 404


def test_ui_namespaces_merges_origins_and_caches_by_path(small_federation):
    create_server("defined-cache", "cache", "http://127.0.0.1:7004", {"/only-a": {}})

    answer = small_federation.get("/api/v1.0/director_ui/namespaces")

    assert answer.status_code == 200
    merged = {item["path"]: (item["origins"], item["caches"]) for item in answer.json()}
    assert merged == {
        "/only-a": (["origin-a"], ["defined-cache"]),
        "/shared": (["origin-a", "origin-b"], ["cache-a"]),
    }


SERVER_KEYS = [
    "name",
    "serverId",
    "storageType",
    "disableDirectorTest",
    "authUrl",
    "brokerUrl",
    "url",
    "webUrl",
    "type",
    "coordinate",
    "latitude",
    "longitude",
    "capabilities",
    "filtered",
    "filteredType",
    "downtimes",
    "fromTopology",
    "healthStatus",
    "healthMessage",
    "healthCheckedAt",
    "serverStatus",
    "ioLoad",
    "statusWeight",
    "statusWeightLastUpdate",
    "registryPrefix",
    "version",
    "enabled",
    "source",
    "expiresAt",
    "lastAdvertisedAt",
]
DOWNTIME_KEYS = [
    "active",
    "id",
    "serverName",
    "source",
    "class",
    "severity",
    "description",
    "startTime",
    "endTime",
]


def test_ui_server_bodies_keep_their_key_order(live_director):
    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:7001",
        downtimes=[{"id": "d1", "startTime": 1_700_000_000_000}],
    )

    [listed] = live_director.get("/api/v1.0/director_ui/servers").json()
    one = live_director.get("/api/v1.0/director_ui/servers/origin-a").json()

    assert list(listed) == [*SERVER_KEYS, "namespacePrefixes"]
    assert list(one) == [*SERVER_KEYS, "namespaces"]
    assert list(one["coordinate"]) == ["Lat", "Long", "AccuracyRadius", "Source", "FromTTLCache"]
    assert [list(downtime) for downtime in one["downtimes"]] == [DOWNTIME_KEYS]
    assert list(one["namespaces"][0]) == [
        "path",
        "capabilities",
        "tokenGeneration",
        "tokenIssuer",
        "fromTopology",
    ]


def test_json_bodies_are_compact_utf8_as_go_writes_them(live_director):
    description = "Wartung für das Café ✓"
    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:7001",
        downtimes=[{"id": "d1", "startTime": 1_700_000_000_000, "description": description}],
    )

    answer = live_director.get("/api/v1.0/director_ui/downtimes")

    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert description.encode() in answer.content
    assert answer.content == json.dumps(
        answer.json(), separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def test_ui_token_metadata_is_shown_as_routing_reads_it(small_federation):
    """Admin-entered JSON comes out in the ads' key order, missing keys filled in."""
    server = create_server("defined-cache", "cache", "http://127.0.0.1:7004", {"/only-a": {}})
    server.namespaces.update(token_issuers=[{"issuer": ISSUER, "base-paths": ["/only-a"]}])

    answer = small_federation.get("/api/v1.0/director_ui/servers/defined-cache/namespaces")

    [issuer] = answer.json()[0]["tokenIssuer"]
    assert list(issuer.items()) == [
        ("base-paths", ["/only-a"]),
        ("restricted-paths", []),
        ("issuer", ISSUER),
    ]


# --- OpenAPI ----------------------------------------------------------------------------------


def test_the_openapi_schema_describes_the_registration_endpoints(live_director):
    answer = live_director.get("/api/openapi.json")

    assert answer.status_code == 200
    paths = answer.json()["paths"]
    for path in (
        "/api/v1.0/director/registerOrigin",
        "/api/v1.0/director/registerCache",
        "/api/v2.0/director/listNamespaces",
        "/api/v1.0/director_ui/servers",
    ):
        assert path in paths


def test_the_api_docs_page_loads(live_director):
    answer = live_director.get("/api/docs")

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "/api/openapi.json" in answer.text


@pytest.mark.django_db
def test_token_metadata_entered_in_the_admin_is_stored_as_an_ad_stores_it():
    server = create_server("defined", "origin", "http://127.0.0.1:9001", rebuild=False)
    namespace = Namespace(
        server=server,
        path="/protected/",
        token_issuers=[{"issuer": {"Scheme": "https", "Host": "issuer.example", "Path": ""}}],
        token_generations=[{"issuer": "https://issuer.example", "strategy": "OAuth2"}],
    )
    namespace.full_clean()
    assert namespace.path == "/protected"
    assert namespace.token_issuers == [
        {"base-paths": [], "restricted-paths": [], "issuer": "https://issuer.example"}
    ]
    assert namespace.token_generations == [
        {
            "strategy": "OAuth2",
            "vault-server": "",
            "max-scope-depth": 0,
            "issuer": "https://issuer.example",
        }
    ]
