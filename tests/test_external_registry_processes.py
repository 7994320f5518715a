"""Two real services (issue 19 item 5): this project as the federation's registry in one
``manage.py serve`` process, and as the director in another (``DIRECTOR_REGISTRY_URL``
naming the first, a database of its own). A Pelican origin and cache played the Pelican
way (``pelican_peer``) register at the registry process, are approved there
(``manage.py approvenamespace``), advertise to the director process and are routed; a
key rotation at the registry is accepted within seconds; with the registry process
frozen (SIGSTOP) and then killed, a server already verified is still accepted, a new one
gets 503 + Retry-After within 5 s, health says degraded naming the registry, redirects
keep their pace, and after SIGCONT the next ad is verified at once. (The registry
answering 500 is ``test_external_registry.py``'s loopback stand-in.)

The numbers for the README are printed (``pytest -s``): registry requests per 50
re-advertisements of a two-namespace origin, and an ad's answer time during each fault.
The kill test stops the registry for good, so it runs last in this module.
"""

from __future__ import annotations

import re
import secrets
import signal
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import pytest
import requests
from pelican_peer import PelicanPeer, server_ad
from processes import ManagedProcess, run_manage_ok, serve_named

FAULT_LIMIT = 5.0  # seconds: a new server's answer while the registry fails
API_COUNT = re.compile(
    r'^pelican_director_request_duration_seconds_count\{route="api"\} (\S+)$', re.M
)


@dataclass
class Service:
    url: str
    env: dict[str, str]
    process: ManagedProcess

    def manage(self, *args: str) -> str:
        return run_manage_ok(*args, env=self.env)

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 10)
        kw.setdefault("allow_redirects", False)
        return requests.get(f"{self.url}{path}", **kw)

    def api_requests(self) -> int:
        """Requests this process answered on its API routes (its own metrics)."""
        found = API_COUNT.search(self.get("/metrics").text)
        return int(float(found.group(1))) if found else 0

    def signal(self, number: int) -> None:
        self.process.popen.send_signal(number)


def serve(workdir: Path, **env: str) -> Service:
    process, url, environment = serve_named(workdir, **env)
    return Service(url, environment, process)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Service]]:
    registry = serve(tmp_path_factory.mktemp("registry"))
    try:
        director = serve(tmp_path_factory.mktemp("director"), DIRECTOR_REGISTRY_URL=registry.url)
        try:
            yield registry, director
        finally:
            director.process.stop()
    finally:
        registry.signal(signal.SIGCONT)  # a failed freeze test must not leave it stopped
        registry.process.stop()


def unique(stem: str) -> str:
    return f"{stem}-{secrets.token_hex(3)}"


def joined(registry: Service, kind: str, namespaces: list[str]) -> tuple[PelicanPeer, str]:
    """A server registered at the registry process with its namespaces, approved there."""
    peer = PelicanPeer(registry.url, unique(kind))
    prefix = f"/{kind}s/{peer.site_name}"
    for path in (prefix, *namespaces):
        assert peer.register(path).status_code == 201
    registry.manage("approvenamespace", prefix, *namespaces)
    return peer, prefix


def ad_of(peer: PelicanPeer, kind: str, prefix: str, port: int, namespaces: list[str]) -> Any:
    return server_ad(peer.site_name, kind, prefix, f"http://127.0.0.1:{port}", namespaces)


def timed(call: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def test_servers_registered_at_the_registry_advertise_to_the_director_and_are_routed(services):
    registry, director = services
    namespaces = [f"/{unique('ligo')}/data", f"/{unique('ligo')}/public"]
    origin, origin_prefix = joined(registry, "origin", namespaces)
    cache, cache_prefix = joined(registry, "cache", [])
    origin_ad = ad_of(origin, "origin", origin_prefix, 9, namespaces)

    assert origin.advertise(director.url, "origin", origin_ad).status_code == 200
    cache_ad = ad_of(cache, "cache", cache_prefix, 10, namespaces)
    assert cache.advertise(director.url, "cache", cache_ad).status_code == 200
    before = registry.api_requests()
    for _ in range(50):
        assert origin.advertise(director.url, "origin", origin_ad).status_code == 200
    asked = registry.api_requests() - before
    print(f"\nregistry requests for 50 re-advertisements of a two-namespace origin: {asked}")
    assert asked <= 10  # the target: a handful (Pelican's director: 300)

    to_origin = director.get(f"/api/v1.0/director/origin{namespaces[0]}/file.txt")
    to_cache = director.get(f"/api/v1.0/director/object{namespaces[1]}/file.txt")
    assert to_origin.status_code == 307, to_origin.text
    assert to_origin.headers["Location"] == f"http://127.0.0.1:9{namespaces[0]}/file.txt"
    assert to_cache.status_code == 307, to_cache.text
    assert to_cache.headers["Location"].startswith(f"http://127.0.0.1:10{namespaces[1]}/")
    # the director's own registry routes are not served; the registry's are
    assert (
        director.get(f"/api/v1.0/registry{origin_prefix}/.well-known/issuer.jwks").status_code
        == 404
    )
    assert registry.get(f"/api/v1.0/registry{origin_prefix}/.well-known/issuer.jwks").ok


def test_a_key_rotated_at_the_registry_is_accepted_within_seconds(services):
    registry, director = services
    namespace = f"/{unique('rot')}"
    peer, prefix = joined(registry, "origin", [namespace])
    ad = ad_of(peer, "origin", prefix, 11, [namespace])
    assert peer.advertise(director.url, "origin", ad).status_code == 200

    assert peer.rotate([prefix, namespace]).status_code == 200
    started = time.monotonic()
    # A kid missing from the cached keys refetches them at once, at most once per 10 s per
    # prefix (so forged kids cannot hammer the registry): within 10 s of the last fetch
    # the new key is told to come back when the next fetch may run (503 + Retry-After,
    # which a Pelican server follows within seconds; a 403 would cost it a minute).
    while (answer := peer.advertise(director.url, "origin", ad)).status_code != 200:
        assert answer.status_code == 503 and time.monotonic() - started < 15, answer.text
        assert 1 <= int(answer.headers["Retry-After"]) <= 10
        time.sleep(1)
    print(f"\nrotated key accepted after {time.monotonic() - started:.1f} s")
    old = peer.advertise_token(director.url, key=peer.keys[1])
    assert peer.advertise(director.url, "origin", ad, old).status_code == 200


def redirect_p99(director: Service, path: str, count: int = 200) -> float:
    took = []
    for _ in range(count):
        answer, seconds = timed(lambda: director.get(path))
        assert answer.status_code == 307
        took.append(seconds)
    return statistics.quantiles(took, n=100)[98]


def test_a_frozen_registry_keeps_verified_servers_and_tells_new_ones_to_retry(services):
    registry, director = services
    namespace = f"/{unique('frozen')}"
    known, known_prefix = joined(registry, "origin", [namespace])
    newcomer, new_prefix = joined(registry, "cache", [])
    known_ad = ad_of(known, "origin", known_prefix, 12, [namespace])
    new_ad = ad_of(newcomer, "cache", new_prefix, 13, [namespace])
    assert known.advertise(director.url, "origin", known_ad).status_code == 200
    path = f"/api/v1.0/director/origin{namespace}/f"
    calm = redirect_p99(director, path)

    registry.signal(signal.SIGSTOP)
    try:
        cached, cached_took = timed(lambda: known.advertise(director.url, "origin", known_ad))
        refused, refused_took = timed(lambda: newcomer.advertise(director.url, "cache", new_ad))
        # new servers keep knocking while redirects flow
        knocking = gevent.spawn(
            lambda: [newcomer.advertise(director.url, "cache", new_ad) for _ in range(5)]
        )
        frozen = redirect_p99(director, path)
        knocking.join(timeout=30)
        degraded = director.get("/api/v1.0/health").json()
    finally:
        registry.signal(signal.SIGCONT)

    print(
        f"\nregistry frozen: verified server's ad {cached_took:.3f} s, new server's ad "
        f"{refused_took:.3f} s; redirect p99 {calm * 1000:.1f} ms calm, "
        f"{frozen * 1000:.1f} ms frozen"
    )
    assert cached.status_code == 200, cached.text
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "2"
    assert refused_took < FAULT_LIMIT and cached_took < FAULT_LIMIT
    assert frozen < 5 * calm + 0.05  # generous: nothing on the redirect path asks the registry
    assert degraded["status"] == "degraded"
    assert any(registry.url in reason for reason in degraded["reasons"]), degraded

    deadline = time.monotonic() + 5.0  # the breaker half-opens within about a second
    while (answer := newcomer.advertise(director.url, "cache", new_ad)).status_code != 200:
        assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
        time.sleep(0.3)
    assert director.get("/api/v1.0/health").json()["status"] == "ok"


def test_zz_a_killed_registry_keeps_verified_servers_and_tells_new_ones_to_retry(services):
    """Last: the registry process does not come back."""
    registry, director = services
    known, known_prefix = joined(registry, "origin", [])
    newcomer, new_prefix = joined(registry, "origin", [])
    known_ad = ad_of(known, "origin", known_prefix, 14, [])
    assert known.advertise(director.url, "origin", known_ad).status_code == 200

    registry.process.stop()
    cached, cached_took = timed(lambda: known.advertise(director.url, "origin", known_ad))
    refused, refused_took = timed(
        lambda: newcomer.advertise(
            director.url, "origin", ad_of(newcomer, "origin", new_prefix, 15, [])
        )
    )
    degraded = director.get("/api/v1.0/health").json()

    print(
        f"\nregistry killed: verified server's ad {cached_took:.3f} s, "
        f"new server's {refused_took:.3f} s"
    )
    assert cached.status_code == 200, cached.text
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "2", refused.text
    assert refused_took < FAULT_LIMIT
    assert degraded["status"] == "degraded"
    assert degraded["registry"]["url"] == registry.url
    assert degraded["registry"]["lastError"]
