"""Pelican's way in, end to end, against a live ``manage.py serve`` process: an origin and
a cache written from the protocol description (``pelican_peer``) register, are approved
with ``manage.py approvenamespace``, advertise with signed tokens and are routed; every
rejection of reference pelican-trust 2.4 answers 403 with Pelican's body and stores
nothing; the federation issuer's tokens (getFedToken, fedtoken) verify against the
served JWKS with PyJWT; discoverServers needs one; key rotation keeps old tokens valid.

One director process serves the whole module (each test uses names of its own).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from pelican_peer import PelicanPeer, public_jwk, server_ad
from processes import run_manage_ok, serve_named

HELP = "You may find more information on "


class Director:
    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.url = url
        self.env = env

    def manage(self, *args: str) -> str:
        return run_manage_ok(*args, env=self.env)

    def approve(self, *prefixes: str) -> None:
        self.manage("approvenamespace", *prefixes)

    def server(self, name: str) -> requests.Response:
        return requests.get(f"{self.url}/api/v1.0/director_ui/servers/{name}", timeout=10)

    def jwks(self) -> jwt.PyJWKSet:
        answer = requests.get(f"{self.url}/.well-known/issuer.jwks", timeout=10)
        assert answer.status_code == 200
        return jwt.PyJWKSet.from_dict(answer.json())

    def verify(self, token: str, audience: str | None = None) -> dict[str, Any]:
        """PyJWT against the served JWKS, by the token's kid."""
        kid = jwt.get_unverified_header(token)["kid"]
        key = self.jwks()[kid]
        return jwt.decode(
            token,
            key=key,
            algorithms=["ES256"],
            audience=audience,
            options={"verify_aud": audience is not None},
        )


@pytest.fixture(scope="module")
def director(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Director]:
    workdir = tmp_path_factory.mktemp("pelican-registry")
    # Named by its URL, as a deployment is (it mints getFedToken's tokens with that issuer
    # only then): a port chosen before it starts.
    process, url, env = serve_named(workdir)
    try:
        assert url == env["DIRECTOR_EXTERNAL_URL"]
        yield Director(url, env)
    finally:
        process.stop()


def unique(stem: str) -> str:
    return f"{stem}-{secrets.token_hex(3)}"


def joined_origin(director: Director, namespaces: list[str]) -> tuple[PelicanPeer, str]:
    """An origin registered and approved with its namespaces; its registry prefix."""
    name = unique("origin")
    peer = PelicanPeer(director.url, name)
    prefix = f"/origins/{name}"
    for path in (prefix, *namespaces):
        assert peer.register(path).status_code == 201
    director.approve(prefix, *namespaces)
    return peer, prefix


def assert_refused(answer: requests.Response, body: dict[str, Any]) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.json() == body


def assert_refused_with(answer: requests.Response, start: str) -> None:
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["status"] == "error"
    assert body["msg"].startswith(start), body["msg"]


# --- registration, approval, signed ads, routing -----------------------------------------------


def test_an_origin_and_a_cache_register_are_approved_advertise_and_are_routed(director):
    namespace = f"/{unique('ligo')}/data"
    origin = PelicanPeer(director.url, unique("origin"))
    cache = PelicanPeer(director.url, unique("cache"))
    origin_prefix, cache_prefix = f"/origins/{origin.site_name}", f"/caches/{cache.site_name}"

    answers = [origin.register(origin_prefix), origin.register(namespace)]
    answers.append(cache.register(cache_prefix))
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert answers[0].json() == {"message": f"Prefix {origin_prefix} successfully registered"}
    # a restart: the prefix is found with the same key, nothing is registered again
    again = origin.check_exists(origin_prefix, origin.current).json()
    assert again == {"prefix_exists": True, "key_match": True, "message": "", "error": ""}
    # pending: the prefix's keys are not served and the ad is refused as not approved
    jwks = requests.get(f"{director.url}/api/v1.0/registry{origin_prefix}/.well-known/issuer.jwks")
    assert jwks.status_code == 403
    origin_ad = server_ad(
        origin.site_name, "origin", origin_prefix, "http://127.0.0.1:9", [namespace]
    )
    assert_refused(
        origin.advertise(director.url, "origin", origin_ad),
        {
            "approval_error": True,
            "error": f'Origin "{origin.site_name}" was not approved by an administrator. '
            f"{HELP}{director.url}",
        },
    )

    director.approve(origin_prefix, namespace, cache_prefix)

    record = origin.server_record(origin_prefix).json()
    assert record["name"] == origin.site_name and record["is_origin"] and not record["is_cache"]
    origin_ad["serverId"] = record["id"]
    assert origin.advertise(director.url, "origin", origin_ad).json() == {
        "status": "success",
        "msg": "Successful registration",
    }
    cache_ad = server_ad(cache.site_name, "cache", cache_prefix, "http://127.0.0.1:10", [namespace])
    assert cache.advertise(director.url, "cache", cache_ad).status_code == 200
    keys = requests.get(f"{director.url}/api/v1.0/registry{namespace}/.well-known/issuer.jwks")
    assert keys.json() == {"keys": [public_jwk(origin.current)]}

    to_origin = requests.get(
        f"{director.url}/api/v1.0/director/origin{namespace}/file.txt", allow_redirects=False
    )
    to_cache = requests.get(
        f"{director.url}/api/v1.0/director/object{namespace}/file.txt", allow_redirects=False
    )
    assert to_origin.status_code == 307, to_origin.text
    assert to_origin.headers["Location"] == f"http://127.0.0.1:9{namespace}/file.txt"
    assert to_cache.status_code == 307, to_cache.text
    assert to_cache.headers["Location"].startswith(f"http://127.0.0.1:10{namespace}/file.txt")


def test_a_server_rotates_its_keys_and_advertises_with_the_new_one(director):
    namespace = f"/{unique('rot')}"
    peer, prefix = joined_origin(director, [namespace])

    answer = peer.rotate([prefix, namespace])

    assert answer.status_code == 200, answer.text
    assert answer.json()["message"] == (
        f"Updated the public key of namespace {prefix}: "
        f"Updated the public key of namespace {namespace}:"
    )
    ad = server_ad(peer.site_name, "origin", prefix, "http://127.0.0.1:11", [namespace])
    assert peer.advertise(director.url, "origin", ad).status_code == 200
    old_key_token = peer.advertise_token(director.url, key=peer.keys[1])
    assert peer.advertise(director.url, "origin", ad, old_key_token).status_code == 200


# --- every rejection: 403, Pelican's body, nothing stored ---------------------------------------


@pytest.fixture(scope="module")
def joined(director) -> tuple[PelicanPeer, str, str]:
    namespace = f"/{unique('ns')}"
    peer, prefix = joined_origin(director, [namespace])
    return peer, prefix, namespace


def refused_and_not_stored(
    director: Director, peer: PelicanPeer, ad: dict[str, Any], token: str, kind: str = "origin"
) -> requests.Response:
    answer = peer.advertise(director.url, kind, ad, token)
    assert answer.status_code == 403, answer.text
    assert director.server(ad["name"]).status_code == 404
    return answer


def test_a_token_signed_by_another_key_is_refused(director, joined):
    peer, prefix, namespace = joined
    stranger = PelicanPeer(director.url, "stranger")
    ad = server_ad(unique("s"), "origin", prefix, "http://127.0.0.1:12", [namespace])

    unknown_kid = refused_and_not_stored(director, peer, ad, stranger.advertise_token(director.url))
    forged = jwt.encode(
        jwt.decode(stranger.advertise_token(director.url), options={"verify_signature": False}),
        stranger.current,
        algorithm="ES256",
        headers={"kid": public_jwk(peer.current)["kid"]},  # claims the registered key's kid
    )
    bad_signature = refused_and_not_stored(director, peer, ad, forged)

    assert unknown_kid.json()["msg"].startswith(
        "Authorization token verification failed failed to verify token signature: no key"
    )
    assert bad_signature.json() == {
        "status": "error",
        "msg": "Authorization token verification failed failed to verify token signature: "
        "could not verify message using any of the signatures or keys",
    }


@pytest.mark.parametrize("denied", [False, True], ids=["pending", "denied"])
def test_an_unapproved_or_denied_prefix_gets_the_approval_error(director, denied):
    name = unique("pending")
    peer = PelicanPeer(director.url, name)
    prefix = f"/origins/{name}"
    assert peer.register(prefix).status_code == 201
    if denied:
        director.manage("approvenamespace", "--deny", prefix)
    ad = server_ad(name, "origin", prefix, "http://127.0.0.1:13", [])

    answer = refused_and_not_stored(director, peer, ad, peer.advertise_token(director.url))

    assert answer.json() == {
        "approval_error": True,
        "error": f'Origin "{name}" was not approved by an administrator. {HELP}{director.url}',
    }


def test_an_unapproved_namespace_gets_the_approval_error(director, joined):
    peer, prefix, _ = joined
    pending = f"/{unique('pending')}"
    assert peer.register(pending).status_code == 201
    ad = server_ad(unique("n"), "origin", prefix, "http://127.0.0.1:13", [pending])

    answer = refused_and_not_stored(director, peer, ad, peer.advertise_token(director.url))

    assert answer.json() == {
        "approval_error": True,
        "error": f'The namespace "{pending}" was not approved by an administrator. '
        f"{HELP}{director.url}",
    }


def test_a_token_without_the_advertise_scope_is_refused(director, joined):
    peer, prefix, namespace = joined
    ad = server_ad(unique("s"), "origin", prefix, "http://127.0.0.1:14", [namespace])

    answer = refused_and_not_stored(
        director, peer, ad, peer.advertise_token(director.url, scope="storage.read:/")
    )

    assert answer.json() == {
        "status": "error",
        "msg": "Authorization token verification failed. Token missing required scope",
    }


def test_an_expired_token_is_refused(director, joined):
    peer, prefix, namespace = joined
    ad = server_ad(unique("s"), "origin", prefix, "http://127.0.0.1:15", [namespace])
    # expired two minutes ago: beyond the 60 s leeway
    token = peer.advertise_token(director.url, issued_at=time.time() - 180)

    answer = refused_and_not_stored(director, peer, ad, token)

    assert answer.json()["msg"] == (
        'Authorization token verification failed failed to validate token claims: "exp" not '
        "satisfied"
    )


def test_a_namespace_not_registered_under_the_token_key_is_refused(director, joined):
    peer, prefix, namespace = joined
    owned = f"/{unique('owned')}"
    joined_origin(director, [owned])  # another origin's approved namespace, its own key
    unregistered = f"/{unique('nobody')}"
    theirs = server_ad(unique("s"), "origin", prefix, "http://127.0.0.1:16", [namespace, owned])
    nobodys = server_ad(unique("s"), "origin", prefix, "http://127.0.0.1:16", [unregistered])

    someone_elses = refused_and_not_stored(
        director, peer, theirs, peer.advertise_token(director.url)
    )
    not_registered = refused_and_not_stored(
        director, peer, nobodys, peer.advertise_token(director.url)
    )

    assert someone_elses.json()["msg"].startswith(
        "Authorization token verification failed: failed to verify token signature: no key"
    )
    assert not_registered.json() == {
        "status": "error",
        "msg": "Authorization token verification failed: failed to check namespace approval "
        "status: Registry returns error when checkNamespaceStatus 400 with body "
        f'{{"status":"error","msg":"The namespace {unregistered} does not exist in the '
        'registry"}',
    }


def test_a_token_replayed_for_another_prefix_is_refused(director, joined):
    peer, _, namespace = joined
    _, victim_prefix = joined_origin(director, [])
    ad = server_ad(unique("s"), "origin", victim_prefix, "http://127.0.0.1:17", [namespace])

    answer = refused_and_not_stored(director, peer, ad, peer.advertise_token(director.url))

    assert answer.json()["msg"].startswith(
        "Authorization token verification failed failed to verify token signature: no key"
    )


@pytest.mark.parametrize(
    ("endpoint_kind", "prefix", "message"),
    [
        (
            "origin",
            "",
            "Origin advertisement rejected: no registry prefix present in the ad. Ensure the "
            "server runs a supported Pelican version and is registered at the federation "
            "registry",
        ),
        (
            "origin",
            "/caches/x",
            'Origin advertisement rejected: registry prefix "/caches/x" is not a valid Origin '
            "registration prefix",
        ),
        (
            "cache",
            "/origins/x",
            'Cache advertisement rejected: registry prefix "/origins/x" is not a valid Cache '
            "registration prefix",
        ),
    ],
)
def test_a_missing_or_mismatched_registry_prefix_is_refused(
    director, joined, endpoint_kind, prefix, message
):
    peer = joined[0]
    ad = server_ad(unique("s"), endpoint_kind, prefix, "http://127.0.0.1:18", [])

    answer = refused_and_not_stored(
        director, peer, ad, peer.advertise_token(director.url), endpoint_kind
    )

    assert answer.json() == {"status": "error", "msg": message}


# --- the federation issuer ------------------------------------------------------------------------


def test_get_fed_token_verifies_against_the_served_jwks_with_pelicans_claims(director):
    cache = PelicanPeer(director.url, unique("cache"))
    prefix = f"/caches/{cache.site_name}"
    assert cache.register(prefix).status_code == 201
    url = f"{director.url}/api/v1.0/director/getFedToken?host={cache.site_name}&sType=Cache"
    headers = {"Authorization": f"Bearer {cache.advertise_token(director.url)}"}

    unapproved = requests.get(url, headers=headers, timeout=10)
    director.approve(prefix)
    answer = requests.get(url, headers=headers, timeout=10)

    assert unapproved.status_code == 403
    assert unapproved.json()["msg"] == (
        f"Host '{cache.site_name}' has not been approved by an administrator"
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["error"] == ""
    token = body["access_token"]
    assert jwt.get_unverified_header(token)["typ"] == "JWT"
    claims = director.verify(token, audience="https://wlcg.cern.ch/jwt/v1/any")
    discovery = requests.get(f"{director.url}/.well-known/pelican-configuration", timeout=10)
    issuer = discovery.json()["discovery_endpoint"]
    assert issuer == director.url.replace("http://", "https://")
    assert claims["iss"] == issuer
    assert claims["sub"] == cache.site_name
    assert claims["aud"] == ["https://wlcg.cern.ch/jwt/v1/any"]
    assert claims["scope"] == "storage.read:/"
    assert claims["wlcg.ver"] == "1.0"
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"]
    assert claims["jti"]
    assert discovery.json()["jwks_uri"] == f"{issuer}/.well-known/issuer.jwks"
    assert discovery.json()["namespace_registration_endpoint"] == issuer
    oidc = requests.get(f"{director.url}/.well-known/openid-configuration", timeout=10).json()
    assert oidc == {"issuer": issuer, "jwks_uri": f"{issuer}/.well-known/issuer.jwks"}


def test_discover_servers_needs_a_federation_token_and_lists_the_servers(director, joined):
    peer, prefix, namespace = joined
    name = unique("listed")
    ad = server_ad(name, "origin", prefix, "http://127.0.0.1:19", [namespace])
    assert peer.advertise(director.url, "origin", ad).status_code == 200
    url = f"{director.url}/api/v1.0/director/discoverServers"
    minted = director.manage(
        "fedtoken", "--scope", "pelican.director_service_discovery", "--lifetime", "600"
    ).strip()
    wrong_scope = director.manage("fedtoken", "--scope", "storage.read:/").strip()

    anonymous = requests.get(url, timeout=10)
    refused = requests.get(url, headers={"Authorization": f"Bearer {wrong_scope}"}, timeout=10)
    listed = requests.get(url, headers={"Authorization": f"Bearer {minted}"}, timeout=10)

    assert anonymous.status_code == 403
    assert anonymous.json() == {
        "status": "error",
        "msg": "Authentication is required but no token is present.",
    }
    assert refused.status_code == 403
    assert listed.status_code == 200, listed.text
    entry = next(item for item in listed.json() if item["labels"]["server_name"] == name)
    assert entry == {
        "targets": ["127.0.0.1:19"],
        "labels": {
            "server_auth_url": "http://127.0.0.1:19",
            "server_lat": "0.0000",
            "server_long": "0.0000",
            "server_name": name,
            "server_type": "Origin",
            "server_url": "http://127.0.0.1:19",
            "server_web_url": "http://127.0.0.1:19",
        },
    }
    assert director.verify(minted)["scope"] == "pelican.director_service_discovery"


def test_after_a_rotation_new_tokens_use_the_new_key_and_old_ones_stay_valid(director):
    before = director.manage("fedtoken", "--scope", "pelican.director_service_discovery").strip()
    old_kid = jwt.get_unverified_header(before)["kid"]

    printed = director.manage("rotatekey", "--delay", "0")
    after = director.manage("fedtoken", "--scope", "pelican.director_service_discovery").strip()

    new_kid = jwt.get_unverified_header(after)["kid"]
    assert new_kid != old_kid and new_kid in printed
    served = {key.key_id for key in director.jwks().keys}
    assert {old_kid, new_kid} <= served
    assert director.verify(before)["scope"] == "pelican.director_service_discovery"
    assert director.verify(after)["scope"] == "pelican.director_service_discovery"
    listed = requests.get(
        f"{director.url}/api/v1.0/director/discoverServers",
        headers={"Authorization": f"Bearer {before}"},
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
