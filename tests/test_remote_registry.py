"""Pelican's registry asked as Pelican's director asks it (director/remote/registry.py),
against a real loopback server playing the registry of reference
pelican-registry-swap.md 3 (and, once, against this project's own registry), with the
keys of a Pelican server played the Pelican way (``pelican_peer``).

Each attack or fault is beside the legitimate call that still works: 50 ads at once cost
one request per call, re-verifications within the TTL cost none, a stale approval is
served while the registry fails, an unknown kid refetches once and forged kids do not
hammer, a 404 from checkNamespaceStatus is not approval, foreign or odd key sets are
refused, and every fault ends within the deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from helpers import FakeClock, join_all
from jwt.algorithms import RSAAlgorithm
from pelican_peer import PelicanPeer, public_jwk
from test_remote_http import SLACK, Loopback, refused_url

from director.remote.registry import (
    KeysNotRefreshedYet,
    RegistryClient,
    RegistryRefused,
    RegistryTiming,
    RegistryUnavailable,
)
from director.trust.tokens import TokenRejected, verify

REG = "/api/v1.0/registry"
ORIGIN = "/origins/origin.example.org:8443"
NAMESPACES = ["/ospool/data", "/ospool/public"]
DIRECTOR = "https://director.example.org"


@dataclass
class Entry:
    jwks: dict[str, Any]
    approved: bool = True
    name: str = ""


@dataclass
class FakeRegistry:
    """Pelican's registry as the reference describes its answers (section 3), with a
    fault a test may switch on: "500", "hang", "slow" (5 s), "garbage"."""

    url: str = ""
    entries: dict[str, Entry] = field(default_factory=dict)
    fault: str = ""
    old_status_route: bool = False  # a registry without checkNamespaceStatus (404)
    no_openid_configuration: bool = False  # openid-configuration 404, keys still served
    jwks_uri: str = ""  # a jwks_uri to announce instead of the registry's own
    allowed: dict[str, list[str]] = field(default_factory=dict)
    downtime: list[dict[str, Any]] = field(default_factory=list)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.fault == "hang":
            gevent.sleep(30)
        if self.fault == "slow":
            gevent.sleep(5)
        if self.fault == "500":
            return reply(start_response, 500, {"status": "error", "msg": "database is down"})
        if self.fault == "garbage":
            start_response("200 OK", [("Content-Type", "text/html")])
            return [b"<html>maintenance</html>"]
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if method == "POST" and path == f"{REG}/checkNamespaceStatus":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            prefix = json.loads(environ["wsgi.input"].read(length))["prefix"]
            if self.old_status_route:
                return reply(start_response, 404, {"status": "error", "msg": "404 page not found"})
            if prefix not in self.entries:
                message = f"The namespace {prefix} does not exist in the registry"
                return reply(start_response, 400, {"status": "error", "msg": message})
            return reply(start_response, 200, {"approved": self.entries[prefix].approved})
        if path == f"{REG}/caches/allowedPrefixes":
            return reply(start_response, 200, self.allowed)
        if path == "/api/v1.0/downtime":
            return reply(start_response, 200, self.downtime)
        if path.startswith(f"{REG}/server/"):
            entry = self.entries.get(path[len(f"{REG}/server") :])
            if entry is None or not entry.name:
                return reply(start_response, 404, {"status": "error", "msg": "Server not found"})
            return reply(start_response, 200, {"id": "abc1234", "name": entry.name})
        for suffix in ("/.well-known/openid-configuration", "/.well-known/issuer.jwks"):
            if path.startswith(REG) and path.endswith(suffix):
                return self._keys(start_response, path[len(REG) : -len(suffix)], suffix)
        return reply(start_response, 404, {"status": "error", "msg": "no such route"})

    def _keys(self, start_response: Callable[..., Any], prefix: str, suffix: str) -> list[bytes]:
        entry = self.entries.get(prefix)
        if suffix.endswith("openid-configuration"):
            jwks_uri = self.jwks_uri or f"{self.url}{REG}{prefix}/.well-known/issuer.jwks"
            if entry is None or self.no_openid_configuration:
                # Pelican's registry writes an error and then the object (quirk 9).
                error = {"status": "error", "msg": f"The requested prefix {prefix} does not exist"}
                start_response("404 Not Found", [("Content-Type", "application/json")])
                return [json.dumps(error).encode() + json.dumps({"jwks_uri": jwks_uri}).encode()]
            return reply(start_response, 200, {"jwks_uri": jwks_uri})
        if entry is None:
            message = f"namespace prefix '{prefix}', was not found"
            return reply(start_response, 404, {"status": "error", "msg": message})
        if not entry.approved:
            message = "The origin has not been approved by a federation administrator"
            return reply(start_response, 403, {"status": "error", "msg": message})
        return reply(start_response, 200, entry.jwks)

    def add(self, peer: PelicanPeer, *prefixes: str, approved: bool = True) -> None:
        for prefix in prefixes:
            name = peer.site_name if prefix.startswith(("/origins/", "/caches/")) else ""
            self.entries[prefix] = Entry(peer.jwks(), approved, name)


def reply(start_response: Callable[..., Any], status: int, value: Any) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}
    start_response(
        f"{status} {reason.get(status, 'Error')}", [("Content-Type", "application/json")]
    )
    return [json.dumps(value).encode()]


@pytest.fixture
def registry() -> Iterator[tuple[FakeRegistry, Loopback]]:
    fake = FakeRegistry()
    server = Loopback(fake.app).start()
    fake.url = server.url
    try:
        yield fake, server
    finally:
        server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(registry, clock) -> Iterator[RegistryClient]:
    made = RegistryClient(registry[1].url, now=clock, timing=RegistryTiming(deadline=0.5))
    yield made
    made.close()


@pytest.fixture
def origin(registry) -> PelicanPeer:
    """An origin registered and approved with its two namespaces."""
    peer = PelicanPeer(registry[0].url, "origin.example.org")
    registry[0].add(peer, ORIGIN, *NAMESPACES)
    return peer


def verified(client: RegistryClient, peer: PelicanPeer, prefix: str) -> bool:
    """What the advertisement path does for one prefix: approval, then the token's kid
    in the prefix's keys."""
    token = peer.advertise_token(DIRECTOR)
    kid = public_jwk(peer.current)["kid"]
    if not client.approved(prefix):
        return False
    return verify(token, client.key_set(prefix, kid).keys)["sub"] == f"https://{peer.site_name}"


def key_requests(server: Loopback, prefix: str) -> int:
    return (
        server.requests[f"{REG}{prefix}/.well-known/openid-configuration"]
        + server.requests[f"{REG}{prefix}/.well-known/issuer.jwks"]
    )


# --- the legitimate calls ------------------------------------------------------------------


def test_keys_approval_and_server_name_are_asked_as_pelicans_director_asks(
    registry, client, origin
):
    fake, server = registry
    assert verified(client, origin, ORIGIN)
    assert client.server_name(ORIGIN) == "origin.example.org"
    assert server.requests == {
        f"{REG}/checkNamespaceStatus": 1,
        f"{REG}{ORIGIN}/.well-known/openid-configuration": 1,
        f"{REG}{ORIGIN}/.well-known/issuer.jwks": 1,
        f"{REG}/server{ORIGIN}": 1,
    }
    assert json.loads(server.bodies[0]) == {"prefix": ORIGIN}
    assert server.last_headers["User-Agent"].startswith("pelican-director/")


def test_an_openid_configuration_404_falls_back_to_issuer_jwks(registry, client, origin):
    fake, server = registry
    fake.no_openid_configuration = True
    assert verified(client, origin, NAMESPACES[0])
    assert server.requests[f"{REG}{NAMESPACES[0]}/.well-known/issuer.jwks"] == 1


def test_fifty_ads_at_once_cost_one_request_per_call(registry, client, origin):
    fake, server = registry
    callers = [gevent.spawn(verified, client, origin, ORIGIN) for _ in range(50)]
    assert join_all(callers, timeout=10.0) == [True] * 50
    assert server.requests[f"{REG}/checkNamespaceStatus"] == 1
    assert key_requests(server, ORIGIN) == 2  # openid-configuration, then the keys


def test_fifty_re_advertisements_of_a_two_namespace_origin_cost_no_request_within_the_ttl(
    registry, client, clock, origin
):
    fake, server = registry
    prefixes = [ORIGIN, *NAMESPACES]
    assert all(verified(client, origin, prefix) for prefix in prefixes)
    first = server.total()
    assert first == 9  # per prefix: approval, openid-configuration, keys
    for _ in range(50):
        clock.advance(0.5)  # 25 s in all: within the approval TTL
        assert all(verified(client, origin, prefix) for prefix in prefixes)
    assert server.total() == first  # Pelican: 300 for these 50
    assert client.status().routes["checkNamespaceStatus"].cache_hits == 150


def test_allowed_prefixes_and_downtimes_are_parsed_for_the_poller(registry, client):
    fake, _ = registry
    fake.allowed = {"cache-a": ["/ospool/data", "/ospool/public"], "cache-b": []}
    fake.downtime = [{"id": "d1", "serverName": "cache-a", "startTime": 1, "endTime": -1}]
    assert client.allowed_prefixes() == {
        "cache-a": frozenset({"/ospool/data", "/ospool/public"}),
        "cache-b": frozenset(),
    }
    assert client.downtimes() == fake.downtime


def test_the_client_speaks_to_this_projects_own_registry_played_the_pelican_way(live_director):
    from director.federation.registry import decide
    from director.models import RegistrationStatus

    peer = PelicanPeer(live_director.url, "remote-site")
    prefix, namespace, pending = "/origins/remote-site", "/remote/data", "/remote/pending"
    for path in (prefix, namespace, pending):
        assert peer.register(path).status_code == 201
    decide([prefix, namespace], RegistrationStatus.APPROVED, "test")
    client = RegistryClient(live_director.url, timing=RegistryTiming(deadline=5.0))
    try:
        assert verified(client, peer, prefix)
        assert verified(client, peer, namespace)
        assert client.server_name(prefix) == "remote-site"
        assert client.approved(pending) is False
        with pytest.raises(RegistryRefused, match="approved"):
            client.key_set(pending)
        with pytest.raises(RegistryRefused, match="does not exist"):
            client.approved("/never/registered")
    finally:
        client.close()


# --- the registry fails ----------------------------------------------------------------------


def test_a_cached_approval_is_served_while_the_registry_fails_and_a_new_one_is_503(
    registry, client, clock, origin
):
    fake, server = registry
    assert verified(client, origin, ORIGIN)
    clock.advance(46)  # approval expired, keys still fresh
    fake.fault = "500"
    assert verified(client, origin, ORIGIN)  # the known server keeps advertising
    with pytest.raises(RegistryUnavailable) as unavailable:
        client.approved(NAMESPACES[0])  # never verified: cannot be
    assert unavailable.value.status == 503
    assert "database is down" in unavailable.value.message
    status = client.status()
    assert not status.reachable
    assert status.last_error is not None and "status 500" in status.last_error
    assert status.last_error_at == clock.now
    assert status.routes["checkNamespaceStatus"].errors == 2
    # Recovery: the registry is asked again within a second, and the ad is verified.
    fake.fault = ""
    clock.advance(1)
    assert client.approved(NAMESPACES[0]) is True
    assert client.status().reachable


def test_a_failing_registry_is_asked_again_after_a_second_not_once_per_ad(
    registry, client, clock, origin
):
    fake, server = registry
    fake.fault = "500"
    for _ in range(50):  # 50 ads from servers never verified, or forged ones
        with pytest.raises(RegistryUnavailable):
            client.approved(ORIGIN)
    assert server.requests[f"{REG}/checkNamespaceStatus"] == 1
    fake.fault = ""
    clock.advance(1)
    assert client.approved(ORIGIN) is True
    assert server.requests[f"{REG}/checkNamespaceStatus"] == 2


@pytest.mark.parametrize("fault", ["hang", "slow", "garbage", "500"])
def test_each_registry_fault_is_a_503_within_the_deadline_never_a_hang_or_403(
    registry, client, origin, fault
):
    fake, _ = registry
    fake.fault = fault
    for call in (
        lambda: client.approved(ORIGIN),
        lambda: client.key_set(ORIGIN),
        lambda: client.server_name(ORIGIN),
        client.allowed_prefixes,
        client.downtimes,
    ):
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable) as unavailable:
            call()
        assert time.monotonic() - started < SLACK
        assert unavailable.value.status == 503
    assert not client.status().reachable


def test_a_registry_that_refuses_connections_is_a_503_at_once(clock):
    client = RegistryClient(refused_url().removesuffix("/x"), now=clock)
    with pytest.raises(RegistryUnavailable, match="connection refused"):
        client.approved(ORIGIN)
    assert client.status().last_error == "checkNamespaceStatus: connection refused"


# --- the attacks and Pelican's quirks ------------------------------------------------------


def test_a_check_namespace_status_404_is_not_approval(registry, client, clock, origin):
    fake, _ = registry
    fake.old_status_route = True
    with pytest.raises(RegistryUnavailable, match="a 404 is not approval"):
        client.approved(ORIGIN)
    fake.old_status_route = False
    clock.advance(1)
    assert client.approved(ORIGIN) is True


def test_an_unknown_prefix_is_refused_with_the_registrys_message(registry, client, origin):
    with pytest.raises(RegistryRefused) as refused:
        client.approved("/not/registered")
    assert refused.value.status == 403
    assert "The namespace /not/registered does not exist in the registry" in refused.value.message
    with pytest.raises(RegistryRefused, match="was not found"):
        client.key_set("/not/registered")


def test_an_unapproved_prefix_is_asked_again_after_seconds_not_minutes(
    registry, client, clock, origin
):
    fake, server = registry
    fake.entries[ORIGIN].approved = False
    assert client.approved(ORIGIN) is False
    assert client.approved(ORIGIN) is False
    assert server.requests[f"{REG}/checkNamespaceStatus"] == 1
    fake.entries[ORIGIN].approved = True
    clock.advance(6)
    assert verified(client, origin, ORIGIN)


def test_a_rotated_key_is_fetched_at_once_and_forged_kids_do_not_hammer(
    registry, client, clock, origin
):
    fake, server = registry
    assert verified(client, origin, ORIGIN)
    clock.advance(11)
    origin.keys.insert(0, ec.generate_private_key(ec.SECP256R1()))  # a new current key
    fake.add(origin, ORIGIN)  # the registry now serves the old and the new key
    assert verified(client, origin, ORIGIN)  # the new kid: refetched at once
    assert key_requests(server, ORIGIN) == 4
    # A stream of forged kids: at most one refetch per 10 s for the prefix; meanwhile
    # each is told when the next one is (503 + Retry-After: a key rotated a moment ago
    # is retried then, not refused).
    for index in range(200):
        clock.advance(0.01)
        with pytest.raises(KeysNotRefreshedYet) as waiting:
            client.key_set(ORIGIN, f"forged-{index}")
        assert 1 <= waiting.value.retry_after <= 10
        assert waiting.value.status == 503
    assert key_requests(server, ORIGIN) == 4
    clock.advance(10)
    keys = client.key_set(ORIGIN, "forged-again")  # fetched again: the kid is not there
    assert "forged-again" not in keys.keys
    assert key_requests(server, ORIGIN) == 6


def test_a_token_signed_by_a_key_the_registry_does_not_hold_does_not_verify(
    registry, client, origin
):
    stranger = PelicanPeer(registry[0].url, "origin.example.org")
    token = stranger.advertise_token(DIRECTOR)
    with pytest.raises(TokenRejected):
        verify(token, client.key_set(ORIGIN, public_jwk(stranger.current)["kid"]).keys)


def test_a_jwks_uri_on_another_host_is_refused(registry, client, origin):
    fake, _ = registry
    fake.jwks_uri = f"https://attacker.example.net{REG}{ORIGIN}/.well-known/issuer.jwks"
    with pytest.raises(RegistryRefused, match="not on the registry's own host"):
        client.key_set(ORIGIN)


def test_a_key_set_with_a_non_ec_key_is_refused(registry, client, origin):
    fake, _ = registry
    rsa_jwk = RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048).public_key(), as_dict=True)
    fake.entries[ORIGIN].jwks = {"keys": [{**rsa_jwk, "alg": "RS256", "kid": "r1"}]}
    with pytest.raises(RegistryRefused, match="only EC keys"):
        client.key_set(ORIGIN)


def test_a_huge_key_set_is_refused_for_that_prefix_only(registry, client, origin):
    fake, _ = registry
    fake.entries[ORIGIN].jwks = {"keys": [{"kty": "EC", "x": "A" * (2 * 1024 * 1024)}]}
    with pytest.raises(RegistryRefused, match="over"):
        client.key_set(ORIGIN)
    assert verified(client, origin, NAMESPACES[0])


def test_a_prefix_that_would_walk_out_of_the_registry_path_is_refused_unasked(registry, client):
    _, server = registry
    for prefix in ("/../downtime", "/a/./b", "/x?y=1", "relative", "/a//b", "/%2e%2e/x"):
        with pytest.raises(RegistryRefused, match="Cannot ask the registry"):
            client.key_set(prefix)
        with pytest.raises(RegistryRefused, match="Cannot ask the registry"):
            client.approved(prefix)
    assert server.total() == 0


def test_a_registry_url_that_is_not_http_is_refused():
    with pytest.raises(ValueError, match="not an http"):
        RegistryClient("ftp://registry.example.org")


def test_private_keys_in_a_key_set_are_refused(registry, client, origin):
    fake, _ = registry
    private = dict(public_jwk(origin.current), d="secret")
    fake.entries[ORIGIN].jwks = {"keys": [private]}
    with pytest.raises(RegistryRefused, match="public keys only"):
        client.key_set(ORIGIN)
