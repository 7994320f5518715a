"""Registry challenges are single-use and short-lived (issue 24, item 1), written as the
attacks: a captured key update replayed with the attacker's key added, a registration's
challenge used again for another prefix, a challenge used after it lapsed, nonces that
Pelican's clients never send, a flood of inits. Beside each, the legitimate action of
the Pelican peer still works."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import requests
from django.test import override_settings
from django.utils import timezone
from pelican_peer import PelicanPeer, nonce, public_jwk, server_ad, sign_hex

from director.federation import challenges
from director.federation.registry import decide
from director.models import NamespaceRegistration, RegistrationStatus, RegistryChallenge
from director.trust.registry import ChallengeBudget

USED = "the challenge is unknown, already used or expired"


class MovableClock:
    """``challenges.clock``, moved by the test instead of sleeping."""

    def __init__(self) -> None:
        self.now = timezone.now()

    def __call__(self) -> dt.datetime:
        return self.now

    def move(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    moved = MovableClock()
    monkeypatch.setattr(challenges, "clock", moved)
    return moved


@pytest.fixture
def peer(live_director) -> PelicanPeer:
    return PelicanPeer(live_director.url, "site-a")


def post(director, path: str, body: Any) -> requests.Response:
    return requests.post(f"{director.url}/api/v1.0/registry{path}", json=body, timeout=10)


def unchanged_key_update(peer: PelicanPeer, prefixes: list[str]) -> dict[str, Any]:
    """The commit body of an ordinary "nothing changed" key update (reference 1.11), as a
    Pelican origin sends at every restart, after its init."""
    client_nonce = nonce()
    init = requests.post(
        peer.api("/updateNamespacesPubKey"),
        json={
            "client_nonce": client_nonce,
            "pubkey": {"keys": [public_jwk(peer.current)]},
            "prefixes": prefixes,
        },
        timeout=10,
    )
    assert init.status_code == 200, init.text
    started = init.json()
    payload = client_nonce + started["server_nonce"]
    return {
        "pubkey": {"keys": [public_jwk(peer.current)]},
        "all_pubkeys": peer.jwks(),
        "prefixes": prefixes,
        "site_name": peer.site_name,
        "client_nonce": client_nonce,
        "server_nonce": started["server_nonce"],
        "client_payload": payload,
        "client_signature": sign_hex(peer.current, payload),
        "key_update_authz_signature": sign_hex(peer.current, payload),
        "matched_key_id": public_jwk(peer.current)["kid"],
        "server_payload": started["server_payload"],
        "server_signature": started["server_signature"],
    }


def test_a_replayed_key_update_with_an_attackers_key_is_refused(live_director, peer):
    prefix = "/origins/site-a"
    assert peer.register(prefix).status_code == 201
    decide([prefix], RegistrationStatus.APPROVED, "test")
    attacker = PelicanPeer(live_director.url, "site-a")
    captured = unchanged_key_update(peer, [prefix])

    ordinary = post(live_director, "/updateNamespacesPubKey", captured)
    replayed = post(
        live_director,
        "/updateNamespacesPubKey",
        {**captured, "all_pubkeys": {"keys": [*peer.jwks()["keys"], public_jwk(attacker.current)]}},
    )
    ad = server_ad("site-a", "origin", prefix, "https://evil.example:8443", [])
    hijack = attacker.advertise(live_director.url, "origin", ad)
    legitimate = peer.advertise(
        live_director.url, "origin", {**ad, "data-url": "http://127.0.0.1:9"}
    )

    assert ordinary.status_code == 200, ordinary.text
    assert ordinary.json() == {
        "message": f"The public key of prefix {prefix} hasn't changed -- nothing to update!"
    }
    assert replayed.status_code == 403
    assert replayed.json()["msg"].startswith(
        "You don't have permission to update the registered public key of the prefix: " + USED
    )
    assert json.loads(NamespaceRegistration.objects.get(prefix=prefix).pubkey) == peer.jwks()
    assert hijack.status_code == 403
    assert legitimate.status_code == 200, legitimate.text
    assert peer.rotate([prefix]).status_code == 200  # a real rotation still goes through


def test_a_registration_challenge_is_good_for_one_prefix(live_director, peer):
    client_nonce, init = peer.challenge()

    first = peer.commit("/foo", client_nonce, init)
    reused = peer.commit("/bar", client_nonce, init)
    fresh = peer.register("/bar")

    assert first.status_code == 201
    assert reused.status_code == 403
    assert reused.json()["msg"] == (
        "You don't have permission to register the prefix: " + USED + ": start again with a "
        "new challenge init (each server nonce is good for one commit, within 300 seconds)"
    )
    assert fresh.status_code == 201
    assert sorted(NamespaceRegistration.objects.values_list("prefix", flat=True)) == [
        "/bar",
        "/foo",
    ]


def test_a_refused_commit_still_uses_up_its_challenge(live_director, peer):
    assert PelicanPeer(live_director.url, "site-b").register("/taken").status_code == 201
    client_nonce, init = peer.challenge()

    refused = peer.commit("/taken", client_nonce, init)  # registered with another key
    retried = peer.commit("/elsewhere", client_nonce, init)

    assert refused.status_code == 403
    assert retried.status_code == 403 and USED in retried.json()["msg"]
    assert not NamespaceRegistration.objects.filter(prefix="/elsewhere").exists()


def test_an_expired_challenge_is_refused(live_director, peer, clock):
    client_nonce, init = peer.challenge()
    clock.move(299)

    in_time = peer.commit("/in-time", client_nonce, init)
    client_nonce, init = peer.challenge()
    clock.move(301)
    late = peer.commit("/late", client_nonce, init)
    fresh = peer.register("/late")

    assert in_time.status_code == 201
    assert late.status_code == 403 and USED in late.json()["msg"]
    assert fresh.status_code == 201


def test_an_expired_key_update_challenge_is_refused(live_director, peer, clock):
    assert peer.register("/rot").status_code == 201
    body = unchanged_key_update(peer, ["/rot"])
    clock.move(301)

    late = post(live_director, "/updateNamespacesPubKey", body)

    assert late.status_code == 403 and USED in late.json()["msg"]
    clock.move(-301)
    assert post(
        live_director, "/updateNamespacesPubKey", unchanged_key_update(peer, ["/rot"])
    ).json() == {"message": "The public key of prefix /rot hasn't changed -- nothing to update!"}


def test_lapsed_challenges_are_deleted_when_new_ones_are_issued(live_director, peer, clock):
    for _ in range(3):
        peer.challenge()
    clock.move(301)

    peer.challenge()

    assert RegistryChallenge.objects.count() == 1


def test_a_registration_challenge_is_no_key_update_challenge(live_director, peer):
    assert peer.register("/mine").status_code == 201
    client_nonce, init = peer.challenge()  # a registration's
    body = unchanged_key_update(peer, ["/mine"])
    payload = client_nonce + init["server_nonce"]
    crossed = {
        **body,
        "client_nonce": client_nonce,
        "server_nonce": init["server_nonce"],
        "client_payload": payload,
        "client_signature": sign_hex(peer.current, payload),
        "key_update_authz_signature": sign_hex(peer.current, payload),
        "server_payload": init["server_payload"],
        "server_signature": init["server_signature"],
    }

    answer = post(live_director, "/updateNamespacesPubKey", crossed)

    assert answer.status_code == 403 and USED in answer.json()["msg"]


@pytest.mark.parametrize("client_nonce", ["n", "0" * 63, "0" * 65, "g" * 64, "a.b" + "0" * 61])
def test_a_client_nonce_pelican_would_not_send_is_400(live_director, peer, client_nonce):
    assert peer.register("/mine").status_code == 201

    registration = post(live_director, "", {"client_nonce": client_nonce, "pubkey": peer.jwks()})
    key_update = post(
        live_director,
        "/updateNamespacesPubKey",
        {"client_nonce": client_nonce, "pubkey": peer.jwks(), "prefixes": ["/mine"]},
    )

    for answer in (registration, key_update):
        assert answer.status_code == 400
        assert answer.json()["msg"] == (
            "Bad request for key-sign challenge: client_nonce must be 64 hex characters "
            "(32 random bytes, hex-encoded)"
        )
    assert RegistryChallenge.objects.count() == 0


@override_settings(DIRECTOR_REGISTRY_CHALLENGES_PER_MINUTE=3)
def test_one_address_cannot_flood_the_challenge_table(live_director, peer, monkeypatch):
    monkeypatch.setattr(challenges, "_budget", None)  # a budget of its own for this test

    answers = [
        post(live_director, "", {"client_nonce": nonce(), "pubkey": peer.jwks()}) for _ in range(4)
    ]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[3].json()["msg"].startswith("Too many registry challenges were asked for")
    assert RegistryChallenge.objects.count() == 3


def test_the_budget_is_per_address_and_per_minute():
    now = [0.0]
    budget = ChallengeBudget(2, addresses=10, clock=lambda: now[0])

    first = [budget.take("10.0.0.1") for _ in range(3)]
    other = budget.take("10.0.0.2")
    now[0] = 60.0
    next_minute = budget.take("10.0.0.1")

    assert first == [True, True, False]
    assert other is True
    assert next_minute is True


def test_the_table_of_unused_challenges_is_capped(live_director, peer, monkeypatch):
    monkeypatch.setattr(challenges, "MAX_OUTSTANDING", 2)

    answers = [
        post(live_director, "", {"client_nonce": nonce(), "pubkey": peer.jwks()}) for _ in range(3)
    ]

    assert [answer.status_code for answer in answers] == [200, 200, 429]


def test_a_key_update_refused_for_one_prefix_changes_none(live_director, peer):
    """All or nothing: a 403 for the second prefix leaves the first one's keys as they
    were (a refused update used to keep the prefixes before the refused one updated)."""
    other = PelicanPeer(live_director.url, "site-b")
    assert peer.register("/origins/site-a").status_code == 201
    assert other.register("/ns-of-b").status_code == 201
    before = peer.jwks()

    refused = peer.rotate(["/origins/site-a", "/ns-of-b"])

    assert refused.status_code == 403, refused.text
    assert "/ns-of-b" in refused.json()["msg"]
    assert json.loads(NamespaceRegistration.objects.get(prefix="/origins/site-a").pubkey) == before
    peer.keys.pop(0)  # the refused new key was never registered
    assert peer.rotate(["/origins/site-a"]).status_code == 200  # alone, it goes through
