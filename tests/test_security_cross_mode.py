"""Issue 24, the cross-mode takeover, written as the attack: a Pelican registration of the
prefix one of this director's registration tokens uses, once approved, must not take over
that token's server (its data URL rewritten), nor obtain getFedToken tokens in its name;
and the other way round. A server keeps the authentication mode of its first ad until an
administrator deletes it; the legitimate re-advertisement in each mode keeps working."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from django.urls import reverse
from helpers import make_ad
from pelican_peer import PelicanPeer, server_ad

from director.federation.registry import decide
from director.models import (
    AuthMode,
    NamespaceRegistration,
    RegistrationStatus,
    RegistrationToken,
    Server,
)
from director.registry import registry_changed

TOKEN_URL = "http://127.0.0.1:9201"
PELICAN_URL = "http://127.0.0.1:9202"
EVIL_URL = "https://evil.example:8443"
SITE = "shared-site"
PREFIX = f"/origins/{SITE}"


@pytest.fixture
def named(live_director, settings):
    settings.DIRECTOR_EXTERNAL_URL = live_director.url
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return live_director


def pelican_takes(live_director, *prefixes: str) -> PelicanPeer:
    """A Pelican peer that registered ``prefixes`` and was approved (the administrator
    approves what looks like an ordinary new origin)."""
    peer = PelicanPeer(live_director.url, SITE)
    for prefix in prefixes:
        assert peer.register(prefix).status_code == 201
    decide(list(prefixes), RegistrationStatus.APPROVED, "admin")
    return peer


def pelican_holds_despite_the_registry(live_director, *prefixes: str) -> PelicanPeer:
    """A Pelican peer approved for ``prefixes`` that a registration token already serves.
    The registry refuses such a registration (tests/test_security_chaining.py); these rows
    are the ones it cannot stop: made by hand in the admin, or older than the token. The
    ads' own rule (a server keeps its first authentication mode) must hold on its own."""
    peer = PelicanPeer(live_director.url, SITE)
    refused = peer.register(prefixes[0])
    assert refused.status_code == 403, refused.text
    assert "registration token" in refused.json()["msg"]
    for prefix in prefixes:
        NamespaceRegistration.objects.create(
            prefix=prefix,
            pubkey=json.dumps(peer.jwks()),
            status=RegistrationStatus.APPROVED,
            site_name=SITE,
            server_id="hand-made" if prefix.startswith("/origins/") else "",
        )
    registry_changed()
    return peer


def pelican_ad(name: str, data_url: str, namespace: str = "/test") -> dict[str, Any]:
    return server_ad(name, "origin", PREFIX, data_url, [namespace])


def location(live_director, path: str = "/api/v1.0/director/origin/test/file") -> str | None:
    answer = live_director.get(path)
    return answer.headers["Location"] if answer.status_code == 307 else None


def assert_cross_mode_refusal(answer: requests.Response, held: str) -> None:
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["status"] == "error"
    assert f"advertises with {held}" in body["msg"]
    assert "deleting the server in the director's admin" in body["msg"]


def test_a_pelican_registration_cannot_take_over_a_token_server(named):
    live_director = named
    live_director.register(SITE, "origin", TOKEN_URL)
    assert location(live_director) == f"{TOKEN_URL}/test/file"
    attacker = pelican_holds_despite_the_registry(live_director, PREFIX, "/test")

    takeover = attacker.advertise(live_director.url, "origin", pelican_ad(SITE, EVIL_URL))
    beside = attacker.advertise(live_director.url, "origin", pelican_ad("other-name", EVIL_URL))
    fed_token = requests.get(
        f"{live_director.url}/api/v1.0/director/getFedToken",
        params={"host": SITE, "sType": "Origin"},
        headers={"Authorization": f"Bearer {attacker.advertise_token(live_director.url)}"},
        timeout=10,
    )

    assert_cross_mode_refusal(takeover, AuthMode.TOKEN.label)
    assert_cross_mode_refusal(beside, AuthMode.TOKEN.label)
    assert fed_token.status_code == 403
    assert "advertises with a registration token of this director" in fed_token.json()["msg"]
    server = Server.objects.get(name=SITE)
    assert (server.data_url, server.auth_mode) == (TOKEN_URL, AuthMode.TOKEN)
    assert not Server.objects.filter(name="other-name").exists()
    # the token server's own re-advertisement still works
    live_director.register(SITE, "origin", "http://127.0.0.1:9203")
    assert location(live_director) == "http://127.0.0.1:9203/test/file"


def test_a_registration_token_cannot_take_over_a_pelican_server(named):
    live_director = named
    owner = pelican_takes(live_director, PREFIX, "/test")
    first = owner.advertise(live_director.url, "origin", pelican_ad(SITE, PELICAN_URL))
    assert first.status_code == 200, first.text
    _, secret = RegistrationToken.issue(PREFIX)  # issued by mistake, or leaked

    takeover = live_director.advertise(make_ad(SITE, "origin", EVIL_URL), token=secret)
    beside = live_director.advertise(
        make_ad("other-name", "origin", EVIL_URL, **{"registry-prefix": PREFIX}), token=secret
    )

    assert_cross_mode_refusal(takeover, AuthMode.PELICAN.label)
    assert_cross_mode_refusal(beside, AuthMode.PELICAN.label)
    assert Server.objects.get(name=SITE).data_url == PELICAN_URL
    assert location(live_director) == f"{PELICAN_URL}/test/file"
    # the Pelican server's own re-advertisement still works
    again = owner.advertise(live_director.url, "origin", pelican_ad(SITE, "http://127.0.0.1:9204"))
    assert again.status_code == 200, again.text
    assert location(live_director) == "http://127.0.0.1:9204/test/file"


@pytest.mark.django_db(transaction=True)
def test_deleting_the_server_in_the_admin_releases_its_mode(admin_client, named):
    live_director = named
    live_director.register(SITE, "origin", TOKEN_URL)
    newcomer = pelican_holds_despite_the_registry(live_director, PREFIX, "/test")
    assert newcomer.advertise(
        live_director.url, "origin", pelican_ad(SITE, PELICAN_URL)
    ).status_code == (403)
    server = Server.objects.get(name=SITE)

    deleted = admin_client.post(
        reverse("admin:director_server_delete", args=[server.pk]), {"post": "yes"}
    )

    assert deleted.status_code == 302
    moved = newcomer.advertise(live_director.url, "origin", pelican_ad(SITE, PELICAN_URL))
    assert moved.status_code == 200, moved.text
    assert Server.objects.get(name=SITE).auth_mode == AuthMode.PELICAN
    assert location(live_director) == f"{PELICAN_URL}/test/file"
