"""The registry endpoints one by one (reference pelican-trust 1), against the in-process
director with the protocol peer of ``pelican_peer``: bodies and status codes, key
chaining, server ownership, approval by type, key updates, and the two registration modes
turned off."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from django.test import override_settings
from pelican_peer import PelicanPeer, public_jwk, server_ad

from director.federation.registry import decide
from director.models import NamespaceRegistration, RegistrationStatus


def post(director, path: str, body: Any) -> requests.Response:
    return requests.post(f"{director.url}/api/v1.0/registry{path}", json=body, timeout=10)


def error(message: str) -> dict[str, str]:
    return {"status": "error", "msg": message}


@pytest.fixture
def peer(live_director) -> PelicanPeer:
    return PelicanPeer(live_director.url, "site-a")


def test_check_namespace_exists_answers_as_pelican(live_director, peer):
    pubkey = json.dumps(public_jwk(peer.current))
    other = PelicanPeer(live_director.url, "site-b")
    assert peer.register("/origins/site-a").status_code == 201

    answers = [
        post(live_director, "/checkNamespaceExists", {"pubkey": pubkey}),
        post(live_director, "/checkNamespaceExists", {"prefix": "/x"}),
        post(live_director, "/checkNamespaceExists", {"prefix": "/x", "pubkey": "nope"}),
        post(live_director, "/checkNamespaceExists", {"prefix": "/x", "pubkey": pubkey}),
        peer.check_exists("/origins/site-a", peer.current),
        other.check_exists("/origins/site-a", other.current),
    ]

    assert [a.status_code for a in answers] == [400, 400, 400, 200, 200, 200]
    assert answers[0].json() == error("prefix is required")
    assert answers[1].json() == error("pubkey is required")
    assert answers[2].json() == error("pubkey is not a valid JWK string: nope")
    assert answers[3].json() == {
        "prefix_exists": False,
        "key_match": False,
        "message": "Prefix was not found in database",
        "error": "",
    }
    assert answers[4].json()["key_match"] is True
    assert answers[5].json() == {
        "prefix_exists": True,
        "key_match": False,
        "message": "Given JWK is not present in the JWKS from database",
        "error": "",
    }


def test_the_challenge_refuses_what_pelican_refuses_and_a_forged_proof(live_director, peer):
    client_nonce, init = peer.challenge()
    tampered = dict(init, server_nonce="0" * 64)  # not the nonce the registry signed

    missing = post(live_director, "", {"pubkey": peer.jwks()})
    bad_prefix = peer.commit("/api/x", client_nonce, init)
    forged = peer.commit("/foo", client_nonce, tampered)
    no_site = peer.commit("/foo", client_nonce, init, site_name="")

    assert missing.status_code == 400
    assert missing.json() == error(
        "Bad request for key-sign challenge: Key sign challenge is missing parameters"
    )
    assert bad_prefix.status_code == 400
    assert bad_prefix.json() == error(
        "Bad request for key-sign challenge: requested namespace /api/x failed validation: "
        "Cannot register a prefix starting with '/api'"
    )
    assert forged.status_code == 403
    assert no_site.status_code == 400
    assert not NamespaceRegistration.objects.exists()


def test_a_registration_is_pending_with_the_whole_key_set(live_director, peer):
    peer.keys.append(PelicanPeer(live_director.url, "x").current)  # a second key it holds

    answer = peer.register("/ligo/data/")

    assert answer.status_code == 201
    assert answer.json() == {"message": "Prefix /ligo/data successfully registered"}
    stored = NamespaceRegistration.objects.get()
    assert (stored.prefix, stored.status, stored.site_name) == (
        "/ligo/data",
        RegistrationStatus.PENDING,
        "site-a",
    )
    assert json.loads(stored.pubkey) == peer.jwks()


def test_registering_again_is_nothing_with_the_key_and_refused_with_another(live_director, peer):
    assert peer.register("/foo").status_code == 201
    client_nonce, init = peer.challenge()
    again = peer.commit("/foo", client_nonce, init)
    other = PelicanPeer(live_director.url, "site-b")
    client_nonce, init = other.challenge()
    taken = other.commit("/foo", client_nonce, init)

    assert again.status_code == 200
    assert again.json() == {
        "message": "The prefix /foo is already registered -- nothing else to do!"
    }
    assert taken.status_code == 403


def test_key_chaining_by_path_components(live_director, peer):
    other = PelicanPeer(live_director.url, "site-b")
    assert peer.register("/a_b").status_code == 201

    inside = other.register("/a_b/c")
    around = PelicanPeer(live_director.url, "site-c").register("/a_b/c/d")
    unrelated = other.register("/axb/c")  # '_' is no wildcard here
    own = peer.register("/a_b/mine")

    assert inside.status_code == 403
    assert inside.json() == error(
        "You don't have permission to register the prefix: Cannot register a namespace that "
        "is suffixed or prefixed by an already-registered namespace unless the incoming "
        "public key matches a registered key"
    )
    assert around.status_code == 403
    assert (unrelated.status_code, own.status_code) == (201, 201)


def test_a_server_name_belongs_to_its_key(live_director, peer):
    assert peer.register("/origins/site-a").status_code == 201
    impostor = PelicanPeer(live_director.url, "site-a")

    stolen = impostor.register("/caches/site-a")
    second_service = peer.register("/caches/site-a")
    record = peer.server_record("/caches/site-a")

    assert stolen.status_code == 403
    assert stolen.json() == error(
        "You don't have permission to register the prefix: unable to verify you own the "
        'registered server "site-a"'
    )
    assert second_service.status_code == 201
    assert record.status_code == 200
    body = record.json()
    assert (body["name"], body["is_origin"], body["is_cache"]) == ("site-a", True, True)
    assert [item["prefix"] for item in body["registration"]] == [
        "/origins/site-a",
        "/caches/site-a",
    ]
    assert body["registration"][0]["admin_metadata"]["status"] == "Pending"
    assert peer.server_record("/origins/nobody").json() == error(
        "Server not found for the given prefix"
    )


def test_approval_is_decided_by_registration_type(live_director, peer):
    assert peer.register("/caches/site-a").status_code == 201
    assert peer.register("/origins/site-a").status_code == 201

    def approved(prefix: str) -> Any:
        return post(live_director, "/checkNamespaceStatus", {"prefix": prefix}).json()

    pending = [approved("/caches/site-a"), approved("/origins/site-a")]
    with override_settings(DIRECTOR_REQUIRE_CACHE_APPROVAL=False):
        caches_free = [approved("/caches/site-a"), approved("/origins/site-a")]
    decide(["/origins/site-a"], RegistrationStatus.APPROVED, "test")
    decide(["/caches/site-a"], RegistrationStatus.DENIED, "test")
    with override_settings(DIRECTOR_REQUIRE_CACHE_APPROVAL=False):
        denied = approved("/caches/site-a")
    unknown = post(live_director, "/namespaces/check/approval", {"prefix": "/nope"})

    assert pending == [{"approved": False}, {"approved": False}]
    # Pelican would say true for the origin here (its fail-open, reference 1.9)
    assert caches_free == [{"approved": True}, {"approved": False}]
    assert approved("/origins/site-a") == {"approved": True}
    assert denied == {"approved": False}
    assert unknown.status_code == 400
    assert unknown.json() == error("The namespace /nope does not exist in the registry")
    row = NamespaceRegistration.objects.get(prefix="/origins/site-a")
    assert row.approved_by == "test" and row.approved_at is not None


def test_the_keys_and_their_location_per_prefix(live_director, peer):
    assert peer.register("/origins/site-a").status_code == 201
    base = f"{live_director.url}/api/v1.0/registry/origins/site-a/.well-known"

    pending = requests.get(f"{base}/issuer.jwks", timeout=10)
    decide(["/origins/site-a"], RegistrationStatus.APPROVED, "test")
    approved = requests.get(f"{base}/issuer.jwks", timeout=10)
    location = requests.get(f"{base}/openid-configuration", timeout=10)
    unknown = requests.get(
        f"{live_director.url}/api/v1.0/registry/nope/.well-known/issuer.jwks", timeout=10
    )
    complete = post(live_director, "/namespaces/check/status", {"prefixes": ["/origins/site-a"]})

    assert pending.status_code == 403
    assert pending.json() == error("The origin has not been approved by a federation administrator")
    assert approved.json() == {"keys": [public_jwk(peer.current)]}
    assert location.json() == {"jwks_uri": f"{base}/issuer.jwks"}
    assert unknown.status_code == 404
    assert unknown.json() == error("namespace prefix '/nope', was not found")
    result = complete.json()["results"]["/origins/site-a"]
    assert result["complete"] is True and result["edit_url"].endswith("/change/")


def test_a_key_update_needs_a_registered_key(live_director, peer):
    assert peer.register("/foo").status_code == 201
    stranger = PelicanPeer(live_director.url, "site-b")

    refused = stranger.rotate(["/foo"], check=False)
    updated = peer.rotate(["/foo"])

    assert refused.status_code == 403
    assert refused.json()["msg"].startswith(
        "You don't have permission to update the registered public key of the prefix: The "
        "client that tries to update prefix '/foo' cannot be authorized"
    )
    assert updated.status_code == 200
    assert updated.json() == {"message": "Updated the public key of namespace /foo:"}
    assert json.loads(NamespaceRegistration.objects.get(prefix="/foo").pubkey) == peer.jwks()


@override_settings(DIRECTOR_PELICAN_REGISTRATION=False)
def test_without_pelican_registration_the_registry_is_gone_and_jwts_are_refused(
    live_director, peer
):
    exists = peer.check_exists("/foo", peer.current)
    ad = server_ad("site-a", "origin", "/origins/site-a", "http://127.0.0.1:9", [])
    advertised = peer.advertise(live_director.url, "origin", ad)

    assert exists.status_code == 404
    assert advertised.status_code == 403
    assert "DIRECTOR_PELICAN_REGISTRATION=0" in advertised.json()["msg"]


@override_settings(DIRECTOR_TOKEN_REGISTRATION=False)
def test_without_token_registration_registration_tokens_are_refused(live_director):
    ad = server_ad("o", "origin", "/origins/o", "http://127.0.0.1:9", [])

    answer = live_director.advertise(ad)

    assert answer.status_code == 403
    assert "DIRECTOR_TOKEN_REGISTRATION=0" in answer.json()["msg"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/namespaces/check/status", {"prefixes": ["/a\x00"]}),
        ("/checkNamespaceStatus", {"prefix": "/a\x00"}),
        ("", {"client_nonce": "n", "pubkey": {"keys": [{"kty": "EC\x00"}]}}),
    ],
)
def test_a_nul_anywhere_in_a_body_is_a_400_on_every_database(live_director, path, body):
    answer = post(live_director, path, body)

    assert answer.status_code == 400
    assert "must not contain NUL characters" in answer.json()["msg"]


def test_a_nul_in_a_path_or_query_is_never_registered(live_director):
    jwks = requests.get(
        f"{live_director.url}/api/v1.0/registry/a%00b/.well-known/issuer.jwks", timeout=10
    )
    fed = requests.get(
        f"{live_director.url}/api/v1.0/director/getFedToken?host=a%00&sType=Cache&authz=x.y.z",
        timeout=10,
    )

    assert jwks.status_code == 404
    assert fed.status_code == 403
