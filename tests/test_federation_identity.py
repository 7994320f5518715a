"""The federation's identity (issue 19 items 4-5): with DIRECTOR_FEDERATION_DISCOVERY_URL
set (the federation's discovery on another host, as OSDF's static document), every token
this director mints carries that URL as ``iss`` and, signed with the federation's imported
key, verifies against the key set the federation publishes: built here from the PEM file's
public key the way Pelican publishes it (``pelican_peer.public_jwk``), not read from this
director. Discovery and openid-configuration name the federation's discovery URL and key
set. A token naming this director's own URL as issuer is then not the federation's.

The federation's registry is played on loopback (``FakeRegistry``) and named by
DIRECTOR_REGISTRY_URL, so a server registered and approved here is known there too: each
flow works whether this director asks its own tables or the external registry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from django.test import override_settings
from pelican_peer import PelicanPeer, public_jwk
from test_remote_http import Loopback
from test_remote_registry import FakeRegistry

from director import checks
from director.federation import external, issuer, polls
from director.federation.registry import decide
from director.models import RegistrationStatus
from director.ops.healthtests import HealthTester
from director.trust import tokens

FEDERATION = "https://federation.example.org"  # the discovery URL origins are configured with
FEDERATION_JWKS = "https://federation.example.org/osdf/public_signing_key.jwks"


class Quiet:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


@pytest.fixture
def federation_key(tmp_path: Path) -> ec.EllipticCurvePrivateKey:
    """The federation's existing issuer key, a PEM file of Pelican's IssuerKeysDirectory,
    imported into this director."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "pelican_generated_1.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    call_command("importissuerkey", str(path), stdout=Quiet())
    return key


@pytest.fixture
def pelican_registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    server = Loopback(fake.app).start()
    fake.url = server.url
    try:
        yield fake
    finally:
        server.stop()
        external.forget()
        polls.reset()


def in_federation(settings, registry: FakeRegistry, *, port: str = "") -> None:
    """This director swapped into the federation: its discovery and registry elsewhere."""
    settings.DIRECTOR_FEDERATION_DISCOVERY_URL = FEDERATION + port
    settings.DIRECTOR_REGISTRY_URL = registry.url
    external.forget()
    # As after the first poll of the registry's cache allowed prefixes: none restricted
    # (before it, getFedToken answers 503: tests/test_registry_polls.py).
    polls.reset().allowed.refresh(dict, time.time, ())


def federation_verified(
    token: str, key: ec.EllipticCurvePrivateKey, audience: str
) -> dict[str, object]:
    """The claims, verified as an origin of the federation verifies them: against the
    key set the federation publishes, ``iss`` = its discovery URL."""
    published = jwt.PyJWKSet.from_dict({"keys": [public_jwk(key)]})
    found = published[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key=found, algorithms=["ES256"], audience=audience, issuer=FEDERATION)


def test_discovery_names_the_federation_and_the_key_set_it_publishes(
    live_director, settings, pelican_registry
):
    own = live_director.url.replace("http://", "https://")
    before = live_director.get("/.well-known/pelican-configuration").json()
    in_federation(settings, pelican_registry, port=":443")
    settings.DIRECTOR_FEDERATION_JWKS_URL = FEDERATION_JWKS

    document = live_director.get("/.well-known/pelican-configuration").json()
    oidc = live_director.get("/.well-known/openid-configuration").json()

    assert (before["discovery_endpoint"], before["jwks_uri"]) == (
        own,
        f"{own}/.well-known/issuer.jwks",
    )
    assert document["discovery_endpoint"] == FEDERATION  # :443 dropped, as Pelican does
    assert document["jwks_uri"] == FEDERATION_JWKS
    assert document["director_endpoint"] == own  # the director is still this one
    assert oidc == {"issuer": FEDERATION, "jwks_uri": FEDERATION_JWKS}


def test_without_a_published_key_set_discovery_names_this_directors_own(
    live_director, settings, pelican_registry
):
    in_federation(settings, pelican_registry)
    own = live_director.url.replace("http://", "https://")

    document = live_director.get("/.well-known/pelican-configuration").json()

    assert document["discovery_endpoint"] == FEDERATION
    assert document["jwks_uri"] == f"{own}/.well-known/issuer.jwks"  # holds every key it signs with


def test_the_health_tests_tokens_carry_the_federation_issuer_and_verify_with_its_key_set(
    live_director, file_servers, settings, pelican_registry, federation_key
):
    origin = file_servers(name="origin-fed")
    live_director.register("origin-fed", "origin", origin.url)
    in_federation(settings, pelican_registry)
    tester = HealthTester("test-director", live_director.url)
    try:
        tester.tick()
        tester._pool.join(timeout=10)
        tester.tick()
    finally:
        tester.stop()

    put = next(seen for seen in origin.seen_headers if seen["method"] == "PUT")
    transfer_token = put["Authorization"].removeprefix("Bearer ")
    transfer = federation_verified(transfer_token, federation_key, origin.url)
    assert jwt.get_unverified_header(transfer_token)["kid"] == public_jwk(federation_key)["kid"]
    assert transfer["iss"] == transfer["sub"] == FEDERATION
    assert transfer["scope"] == "storage.read:/ storage.modify:/"
    [(body, authorization)] = origin.reports
    assert body["status"] == "ok"  # the test itself passed with that token
    report = federation_verified(authorization.removeprefix("Bearer "), federation_key, origin.url)
    assert report["scope"] == tokens.DIRECTOR_TEST_REPORT


def test_get_fed_token_carries_the_federation_issuer_whatever_the_host_says(
    live_director, settings, pelican_registry, federation_key
):
    cache = PelicanPeer(live_director.url, "cache-fed")
    assert cache.register("/caches/cache-fed").status_code == 201
    decide(["/caches/cache-fed"], RegistrationStatus.APPROVED, "admin")
    pelican_registry.add(cache, "/caches/cache-fed")
    in_federation(settings, pelican_registry)

    answer = requests.get(
        f"{live_director.url}/api/v1.0/director/getFedToken?host=cache-fed&sType=Cache",
        headers={
            "Authorization": f"Bearer {cache.advertise_token(live_director.url)}",
            "Host": "attacker.example",  # names neither the issuer nor the audience
            "X-Forwarded-Host": "attacker.example",
        },
        timeout=10,
    )

    assert answer.status_code == 200, answer.text
    claims = federation_verified(
        answer.json()["access_token"], federation_key, tokens.WLCG_AUDIENCE_ANY
    )
    assert claims["iss"] == FEDERATION
    assert claims["sub"] == "cache-fed"


def test_discover_servers_takes_the_federations_tokens_not_this_directors_own_name(
    live_director, settings, pelican_registry, federation_key, capsys
):
    in_federation(settings, pelican_registry)
    url = f"{live_director.url}/api/v1.0/director/discoverServers"
    own = live_director.url.replace("http://", "https://")
    call_command("fedtoken", "--scope", tokens.SERVICE_DISCOVERY)
    federation_token = capsys.readouterr().out.strip()
    call_command("fedtoken", "--scope", tokens.SERVICE_DISCOVERY, "--issuer", own)
    own_name_token = capsys.readouterr().out.strip()

    accepted = requests.get(
        url, headers={"Authorization": f"Bearer {federation_token}"}, timeout=10
    )
    foreign = requests.get(url, headers={"Authorization": f"Bearer {own_name_token}"}, timeout=10)

    assert federation_verified(federation_token, federation_key, own)["iss"] == FEDERATION
    assert accepted.status_code == 200, accepted.text
    assert foreign.status_code == 403
    assert f"is '{own}', not '{FEDERATION}'" in foreign.json()["msg"]


@pytest.mark.parametrize(
    ("configured", "resolved"),
    [
        ("https://federation.example.org:443", "https://federation.example.org"),
        ("federation.example.org", "https://federation.example.org"),
        ("https://federation.example.org/", "https://federation.example.org"),
        (
            "https://federation.example.org/.well-known/pelican-configuration",
            "https://federation.example.org",
        ),
        ("http://127.0.0.1:8443", "http://127.0.0.1:8443"),  # a test federation's, kept
        ("", ""),
    ],
)
def test_the_discovery_url_is_resolved_as_pelicans_servers_resolve_it(configured, resolved):
    with override_settings(DIRECTOR_FEDERATION_DISCOVERY_URL=configured):
        assert issuer.discovery_url() == resolved


def test_a_discovery_url_with_a_path_or_a_key_set_url_that_is_not_http_is_an_error():
    with override_settings(
        DIRECTOR_FEDERATION_DISCOVERY_URL="https://federation.example.org/osdf",
        DIRECTOR_FEDERATION_JWKS_URL="ftp://federation.example.org/keys",
    ):
        found = {message.id for message in checks.check_federation_identity()}
    with override_settings(
        DIRECTOR_FEDERATION_DISCOVERY_URL=f"{FEDERATION}/.well-known/pelican-configuration",
        DIRECTOR_FEDERATION_JWKS_URL=FEDERATION_JWKS,
    ):
        assert checks.check_federation_identity() == []

    assert found == {"director.E071", "director.E072"}
