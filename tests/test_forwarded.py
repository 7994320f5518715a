"""The URL a director gives of itself behind a TLS proxy (X-Forwarded-Proto and
X-Forwarded-Host, from DIRECTOR_TRUSTED_PROXIES only), discovery's URLs as Pelican
normalises them (https, no :443), and virtual-host routing by X-Forwarded-Host
(DIRECTOR_ORIGIN_RESPONSE_HOSTNAMES), against a live director on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from director import locate

MONITORING = "/api/v1.0/director/origin/pelican/monitoring/directorTest/director-test-x.txt"
PROXY_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "director.example.org"}


@pytest.fixture
def proxied(settings) -> Iterator[object]:
    """Settings whose trusted proxies the cached helper re-reads; none trusted at first,
    and no DIRECTOR_EXTERNAL_URL (live_director's), so that the request names the director."""
    settings.DIRECTOR_TRUSTED_PROXIES = []
    settings.DIRECTOR_EXTERNAL_URL = ""
    locate.trusted_proxies.cache_clear()
    yield settings
    locate.trusted_proxies.cache_clear()


def trust(settings, *networks: str) -> None:
    settings.DIRECTOR_TRUSTED_PROXIES = list(networks)
    locate.trusted_proxies.cache_clear()


def location(live_director, **headers: str) -> str:
    """Where the director sends a cache for its health-test object: a URL of its own."""
    answer = live_director.get(MONITORING, headers=headers)
    assert answer.status_code == 307, answer.text
    return answer.headers["Location"].split("/api/", 1)[0]


def discovery(live_director, **headers: str) -> dict[str, object]:
    answer = live_director.get("/.well-known/pelican-configuration", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_behind_a_trusted_tls_proxy_the_director_names_the_proxys_scheme_and_host(
    live_director, proxied
):
    trust(proxied, "127.0.0.1/32")

    assert location(live_director, **PROXY_HEADERS) == "https://director.example.org"
    assert location(live_director, **{"X-Forwarded-Proto": "https"}) == live_director.url.replace(
        "http://", "https://"
    )
    # Each proxy appends its own value: the first is what the client used.
    chained = {
        "X-Forwarded-Proto": "https, http",
        "X-Forwarded-Host": "director.example.org:8443, proxy.internal",
    }
    assert location(live_director, **chained) == "https://director.example.org:8443"
    assert discovery(live_director, **PROXY_HEADERS)["director_endpoint"] == (
        "https://director.example.org"
    )


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(live_director, proxied):
    trust(proxied, "10.0.0.0/8")

    assert location(live_director, **PROXY_HEADERS) == live_director.url
    host = live_director.url.split("://", 1)[1]
    assert discovery(live_director, **PROXY_HEADERS)["director_endpoint"] == f"https://{host}"


def test_a_forwarded_value_that_is_not_a_scheme_or_a_host_is_ignored(live_director, proxied):
    trust(proxied, "127.0.0.1/32")

    odd = {"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "bad host/x"}
    assert location(live_director, **odd) == live_director.url


def test_the_external_url_setting_wins_over_forwarded_headers(live_director, proxied):
    trust(proxied, "127.0.0.1/32")
    proxied.DIRECTOR_EXTERNAL_URL = "https://configured.example.org"

    assert location(live_director, **PROXY_HEADERS) == "https://configured.example.org"


@pytest.mark.parametrize(
    ("external", "advertised"),
    [
        ("http://director.example.org", "https://director.example.org"),
        ("https://director.example.org:443", "https://director.example.org"),
        ("http://director.example.org:443", "https://director.example.org"),
        ("https://director.example.org:8444", "https://director.example.org:8444"),
    ],
)
def test_discovery_gives_the_director_over_https_without_port_443(
    live_director, proxied, external, advertised
):
    proxied.DIRECTOR_EXTERNAL_URL = external

    document = discovery(live_director)

    for field in ("discovery_endpoint", "director_endpoint", "namespace_registration_endpoint"):
        assert document[field] == advertised
    assert document["jwks_uri"] == f"{advertised}/.well-known/issuer.jwks"


@pytest.fixture
def virtual_hosts(live_director, file_servers, settings):
    settings.DIRECTOR_ORIGIN_RESPONSE_HOSTNAMES = ["origin-hostname.com"]
    settings.DIRECTOR_CACHE_RESPONSE_HOSTNAMES = ["cache-hostname.com"]
    origin = file_servers({"/test/x": b"x"}, name="origin")
    cache = file_servers(name="cache")
    live_director.register("origin", "origin", origin.url)
    live_director.register("cache", "cache", cache.url)

    def destination(**headers: str) -> str:
        answer = live_director.get("/test/x", headers=headers)
        assert answer.status_code == 307, answer.text
        return "origin" if answer.headers["Location"].startswith(origin.url) else "cache"

    return destination


def test_x_forwarded_host_chooses_origin_redirects_from_any_client(virtual_hosts):
    # Pelican's rule: X-Forwarded-Host when present (behind a proxy, Host is the proxy's).
    forwarded = "X-Forwarded-Host"
    assert virtual_hosts() == "cache"
    assert virtual_hosts(**{forwarded: "origin-hostname.com"}) == "origin"
    assert virtual_hosts(Host="origin-hostname.com") == "origin"
    assert virtual_hosts(Host="origin-hostname.com", **{forwarded: "other.org"}) == "cache"
    assert virtual_hosts(Host="cache-hostname.com", **{forwarded: "origin-hostname.com"}) == (
        "origin"
    )
