"""POST /api/v1.0/director/registerOrigin and /registerCache over real HTTP (reference 1.6)."""

from __future__ import annotations

from helpers import caps, make_ad, namespace_ad
from registration_support import assert_error, assert_nothing_stored, without

from director.models import Namespace, Server, Source

SUCCESS = {"status": "success", "msg": "Successful registration"}
GO_ISSUER = {
    "Scheme": "https",
    "Opaque": "",
    "User": None,
    "Host": "issuer.example:8443",
    "Path": "",
    "RawPath": "",
    "OmitHost": False,
    "ForceQuery": False,
    "RawQuery": "",
    "Fragment": "",
    "RawFragment": "",
}


# --- success -------------------------------------------------------------------------------


def test_an_origin_ad_with_a_live_token_is_stored_with_its_namespaces(live_director):
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:8443/",
        namespaces=[namespace_ad("/data/"), namespace_ad("/other", Caps=caps(Read=True))],
        capabilities=caps(PublicRead=True, Read=True, Write=True),
        coordinate={"Lat": 43.07, "Long": -89.4, "AccuracyRadius": 0, "Source": "declared"},
        **{"broker-url": "http://broker.example/api"},
    )

    answer = live_director.advertise(ad)

    assert answer.status_code == 200
    assert answer.json() == SUCCESS
    assert answer.headers["Server"] == "pelican/0.1.0"
    server = Server.objects.get(name="origin-a")
    assert (server.kind, server.source, server.registry_prefix) == (
        "origin",
        Source.ADVERTISED,
        "/origins/origin-a",
    )
    assert server.data_url == "http://127.0.0.1:8443"
    assert server.broker_url == "http://broker.example/api"
    assert server.capability_names() == ["PublicReads", "Reads", "Writes"]
    assert (server.latitude, server.longitude) == (43.07, -89.4)
    assert (server.status, server.version) == ("ok", "7.20.0")
    namespaces = {ns.path: ns.capability_names() for ns in server.namespaces.all()}
    assert namespaces == {"/data": ["PublicReads", "Reads"], "/other": ["Reads"]}


def test_a_cache_ad_is_accepted_at_register_cache(live_director):
    answer = live_director.advertise(make_ad("cache-a", "cache", "http://127.0.0.1:8444"))

    assert answer.status_code == 200
    assert answer.json() == SUCCESS
    assert Server.objects.get(name="cache-a").kind == "cache"


# --- wire details ---------------------------------------------------------------------------


def test_issuer_urls_sent_as_go_url_objects_are_accepted(live_director):
    namespace = namespace_ad(
        "/secure",
        Caps=caps(Read=True),
        **{
            "token-issuer": [
                {"base-paths": ["/secure"], "restricted-paths": None, "issuer": GO_ISSUER}
            ],
            "token-generation": [
                {
                    "strategy": "OAuth2",
                    "vault-server": "",
                    "max-scope-depth": 3,
                    "issuer": GO_ISSUER | {"Path": "/auth"},
                }
            ],
        },
    )

    answer = live_director.advertise(
        make_ad(
            "origin-a", "origin", "http://127.0.0.1:1", [namespace], capabilities=caps(Read=True)
        )
    )

    assert answer.status_code == 200, answer.text
    stored = Namespace.objects.get(path="/secure")
    assert stored.token_issuers == [
        {
            "issuer": "https://issuer.example:8443",
            "base-paths": ["/secure"],
            "restricted-paths": [],
        }
    ]
    assert stored.token_generations == [
        {
            "strategy": "OAuth2",
            "vault-server": "",
            "max-scope-depth": 3,
            "issuer": "https://issuer.example:8443/auth",
        }
    ]


def test_the_version_comes_from_the_user_agent_when_the_ad_has_none(live_director):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1", version="")

    answer = live_director.advertise(ad, headers={"User-Agent": "pelican-origin/7.21.3"})

    assert answer.status_code == 200, answer.text
    assert Server.objects.get(name="origin-a").version == "7.21.3"


def test_the_version_is_unknown_without_ad_version_or_pelican_user_agent(live_director):
    ad = without(make_ad("origin-a", "origin", "http://127.0.0.1:1"), "version")

    answer = live_director.advertise(ad, headers={"User-Agent": "curl/8.0"})

    assert answer.status_code == 200, answer.text
    assert Server.objects.get(name="origin-a").version == "unknown"


def test_an_origin_older_than_7_9_0_gets_500_incompatible_versions(live_director):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")

    answer = live_director.advertise(ad, headers={"User-Agent": "pelican-origin/7.0.0"})

    message = assert_error(answer, 500)
    assert message.startswith("Incompatible versions")
    assert_nothing_stored()


def test_a_cache_at_the_minimum_version_7_8_2_is_accepted(live_director):
    ad = make_ad("cache-a", "cache", "http://127.0.0.1:1")

    answer = live_director.advertise(ad, headers={"User-Agent": "pelican-cache/7.8.2"})

    assert answer.status_code == 200, answer.text


# --- an origin and a cache may share a name (Pelican: /origins/<name> and /caches/<name>) -----


def test_an_origin_and_a_cache_may_share_a_name(live_director, file_servers):
    origin = file_servers({"/test/file.txt": b"data"}, name="origin")
    cache = file_servers(name="cache", upstream_director=live_director.url)
    live_director.register("site", "origin", origin.url)
    live_director.register("site", "cache", cache.url)
    live_director.register("site", "origin", origin.url)  # each renews its own row

    assert sorted(Server.objects.values_list("kind", "name")) == [
        ("cache", "site"),
        ("origin", "site"),
    ]
    to_cache = live_director.get("/api/v1.0/director/object/test/file.txt")
    to_origin = live_director.get("/api/v1.0/director/origin/test/file.txt")
    assert to_cache.headers["Location"] == f"{cache.url}/test/file.txt"
    assert to_origin.headers["Location"] == f"{origin.url}/test/file.txt"
    listed = live_director.get("/api/v1.0/director_ui/servers").json()
    assert sorted((item["type"], item["name"]) for item in listed) == [
        ("Cache", "site"),
        ("Origin", "site"),
    ]
    assert live_director.get("/api/v1.0/director_ui/servers/site").json()["type"] == "Origin"


def test_two_origins_may_not_share_a_name(live_director):
    live_director.register("site", "origin", "http://127.0.0.1:1111")
    other = make_ad("site", "origin", "http://127.0.0.1:2222", **{"registry-prefix": "/origins/x"})

    answer = live_director.advertise(other)

    assert_error(answer, 403, "/origins/site")
