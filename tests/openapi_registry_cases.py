"""OpenAPI cases of the registry and the federation issuer (director.federation): real
requests that join prefixes with a key, sign challenges and mint tokens, for
tests/test_openapi.py's ``CASES``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from unittest.mock import patch

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from django.http import HttpResponse
from django.test import override_settings
from helpers import make_ad
from openapi_support import Case, Env
from pelican_peer import nonce, public_jwk, server_id, sign_hex

from director.federation import challenges, issuer
from director.federation.registry import decide
from director.models import RegistrationStatus

# --- the registry and the federation issuer (director.federation) ----------------------------

REGISTRY = "/api/v1.0/registry"
TESTSERVER = "http://testserver"  # the Django test client's Host
WELL_KNOWN = "/api/v1.0/registry/{prefix}/.well-known"


def post_json(env: Env, path: str, body: object, **headers: str) -> HttpResponse:
    return env.client.post(path, data=json.dumps(body), content_type="application/json", **headers)


def register_with(
    env: Env, key: ec.EllipticCurvePrivateKey, prefix: str, site: str, **changes: str
) -> HttpResponse:
    """Challenge init and commit for ``prefix`` with ``key`` (pelican_peer's conventions)."""
    jwks = {"keys": [public_jwk(key)]}
    client_nonce = nonce()
    init = post_json(env, REGISTRY, {"client_nonce": client_nonce, "pubkey": jwks}).json()
    payload = client_nonce + init["server_nonce"]
    body = {
        "pubkey": jwks,
        "prefix": prefix,
        "site_name": site,
        "client_nonce": client_nonce,
        "server_nonce": init["server_nonce"],
        "client_payload": payload,
        "client_signature": sign_hex(key, payload),
        "server_payload": init["server_payload"],
        "server_signature": init["server_signature"],
        "server_id": server_id() if prefix.startswith(("/origins/", "/caches/")) else "",
        **changes,
    }
    return post_json(env, REGISTRY, body)


def joined(env: Env, site: str, *prefixes: str, approve: bool = True) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    for prefix in prefixes:
        answer = register_with(env, key, prefix, site)
        assert answer.status_code == 201, answer.content
    if approve:
        decide(list(prefixes), RegistrationStatus.APPROVED, "test")
    return key


def advertise_token(key: ec.EllipticCurvePrivateKey) -> str:
    now = int(time.time())
    # aud: the director as the test client names it (http://testserver)
    claims = {"iss": "https://x", "sub": "x", "aud": [TESTSERVER], "scope": "pelican.advertise"}
    claims |= {"iat": now, "nbf": now, "exp": now + 60}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": public_jwk(key)["kid"]})


def registry_off(send: Callable[[Env], HttpResponse]) -> Callable[[Env], HttpResponse]:
    def sent(env: Env) -> HttpResponse:
        with override_settings(DIRECTOR_PELICAN_REGISTRATION=False):
            return send(env)

    return sent


def server_id_in_use(env: Env) -> HttpResponse:
    key = ec.generate_private_key(ec.SECP256R1())
    register_with(env, key, "/origins/one", "one", server_id="same123")
    return register_with(env, key, "/origins/two", "two", server_id="same123")


def forged_key_update(env: Env) -> HttpResponse:
    joined(env, "site-u", "/upd")
    stranger = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [public_jwk(stranger)]}
    client_nonce = nonce()
    init = post_json(
        env,
        f"{REGISTRY}/updateNamespacesPubKey",
        {"client_nonce": client_nonce, "pubkey": jwks, "prefixes": ["/upd"]},
    ).json()
    payload = client_nonce + init["server_nonce"]
    return post_json(
        env,
        f"{REGISTRY}/updateNamespacesPubKey",
        {
            "pubkey": jwks,
            "all_pubkeys": jwks,
            "prefixes": ["/upd"],
            "client_nonce": client_nonce,
            "server_nonce": init["server_nonce"],
            "client_payload": payload,
            "client_signature": sign_hex(stranger, payload),
            "key_update_authz_signature": sign_hex(stranger, payload),
            "matched_key_id": public_jwk(stranger)["kid"],
            "server_payload": init["server_payload"],
            "server_signature": init["server_signature"],
        },
    )


def key_update_init(env: Env) -> HttpResponse:
    key = joined(env, "site-i", "/init")
    body = {"client_nonce": nonce(), "pubkey": {"keys": [public_jwk(key)]}, "prefixes": ["/init"]}
    return post_json(env, f"{REGISTRY}/updateNamespacesPubKey", body)


def challenges_capped(path: str) -> Callable[[Env], HttpResponse]:
    """A challenge init while the table of unused challenges is full: 429."""

    def send(env: Env) -> HttpResponse:
        key = joined(env, "site-c", "/capped")
        body = {"client_nonce": nonce(), "pubkey": {"keys": [public_jwk(key)]}}
        with patch.object(challenges, "MAX_OUTSTANDING", 0):
            return post_json(env, path, {**body, "prefixes": ["/capped"]})

    return send


def fed_token_for_a_cache(env: Env) -> HttpResponse:
    with override_settings(DIRECTOR_EXTERNAL_URL=TESTSERVER):
        return fed_token_unnamed(env)


def fed_token_unnamed(env: Env) -> HttpResponse:
    """getFedToken of a director without DIRECTOR_EXTERNAL_URL: it mints nothing (503)."""
    key = joined(env, "cache-f", "/caches/cache-f")
    return env.client.get(
        "/api/v1.0/director/getFedToken?host=cache-f&sType=Cache",
        HTTP_AUTHORIZATION=f"Bearer {advertise_token(key)}",
    )


def refused_twice(endpoint: str) -> Callable[[Env], HttpResponse]:
    """An ad with a token no registered key signed, twice, with one refusal allowed a
    minute: the second is answered 429 before its token is looked at."""

    def send(env: Env) -> HttpResponse:
        key = ec.generate_private_key(ec.SECP256R1())
        with override_settings(DIRECTOR_REFUSED_ADS_PER_MINUTE=1):
            first = env.advertise(endpoint, secret=advertise_token(key))
            assert first.status_code == 403, first.content
            return env.advertise(endpoint, secret=advertise_token(key))

    return send


def fed_token_refused_twice(env: Env) -> HttpResponse:
    """getFedToken without a token, twice, with one refusal allowed a minute: 429."""
    with override_settings(DIRECTOR_REFUSED_ADS_PER_MINUTE=1):
        first = env.get("/api/v1.0/director/getFedToken?host=cache-r&sType=Cache")
        assert first.status_code == 403, first.content
        return env.get("/api/v1.0/director/getFedToken?host=cache-r&sType=Cache")


def discovered_servers(env: Env) -> HttpResponse:
    token = issuer.signer().mint(
        issuer="https://testserver",  # discovery's name for http://testserver
        subject="prometheus",
        audience=["https://testserver"],
        scopes=["pelican.director_service_discovery"],
        lifetime=60,
    )
    return env.client.get(
        "/api/v1.0/director/discoverServers", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def unapproved_ad(endpoint: str) -> Callable[[Env], HttpResponse]:
    def send(env: Env) -> HttpResponse:
        kind = "origin" if endpoint == "registerOrigin" else "cache"
        key = joined(env, f"{kind}-p", f"/{kind}s/{kind}-p", approve=False)
        ad = make_ad(f"{kind}-p", kind, "http://127.0.0.1:7100")
        return env.advertise(endpoint, ad, secret=advertise_token(key))

    return send


def registry_cases() -> list[Case]:
    def post(path: str, status: int, what: str, send: Callable[[Env], HttpResponse]) -> Case:
        return Case(path, "post", status, what, send)

    exists = f"{REGISTRY}/checkNamespaceExists"
    approval = f"{REGISTRY}/checkNamespaceStatus"
    approval2 = f"{REGISTRY}/namespaces/check/approval"
    complete = f"{REGISTRY}/namespaces/check/status"
    update = f"{REGISTRY}/updateNamespacesPubKey"
    jwk = json.dumps(public_jwk(ec.generate_private_key(ec.SECP256R1())))
    init = {"client_nonce": nonce(), "pubkey": {"keys": [json.loads(jwk)]}}
    cases = [
        post(REGISTRY, 200, "a challenge", lambda env: post_json(env, REGISTRY, init)),
        post(
            REGISTRY,
            201,
            "a new prefix",
            lambda env: register_with(env, ec.generate_private_key(ec.SECP256R1()), "/n", "s"),
        ),
        post(REGISTRY, 400, "no nonce", lambda env: post_json(env, REGISTRY, {})),
        post(
            REGISTRY,
            403,
            "a forged proof",
            lambda env: register_with(
                env, ec.generate_private_key(ec.SECP256R1()), "/n", "s", client_signature="00"
            ),
        ),
        post(REGISTRY, 409, "a server ID in use", server_id_in_use),
        post(REGISTRY, 429, "too many challenges", challenges_capped(REGISTRY)),
        post(
            exists,
            200,
            "unknown",
            lambda env: post_json(env, exists, {"prefix": "/x", "pubkey": jwk}),
        ),
        post(exists, 400, "no prefix", lambda env: post_json(env, exists, {})),
        post(update, 200, "a challenge", key_update_init),
        post(update, 400, "no nonce", lambda env: post_json(env, update, {})),
        post(update, 403, "a key not registered", forged_key_update),
        post(update, 429, "too many challenges", challenges_capped(update)),
        post(complete, 200, "", lambda env: post_json(env, complete, {"prefixes": ["/x"]})),
        post(complete, 400, "a bad body", lambda env: post_json(env, complete, {"prefixes": 1})),
    ]
    for path in (approval, approval2):
        cases += [
            post(
                path,
                200,
                "registered",
                lambda env, path=path: (
                    joined(env, "site-a", "/a"),
                    post_json(env, path, {"prefix": "/a"}),
                )[1],
            ),
            post(
                path, 400, "unknown", lambda env, path=path: post_json(env, path, {"prefix": "/u"})
            ),
        ]
    for path in (REGISTRY, exists, approval, approval2, complete, update):
        cases.append(
            post(path, 404, "registry off", registry_off(lambda env, p=path: post_json(env, p, {})))
        )
    server = f"{REGISTRY}/server/{{prefix}}"

    def get(path: str, status: int, what: str, send: Callable[[Env], HttpResponse]) -> Case:
        return Case(path, "get", status, what, send)

    def joined_then(url: str, approve: bool = True) -> Callable[[Env], HttpResponse]:
        def send(env: Env) -> HttpResponse:
            joined(env, "site-j", "/origins/site-j", approve=approve)
            return env.get(url)

        return send

    allowed = f"{REGISTRY}/caches/allowedPrefixes"
    downtime = "/api/v1.0/downtime"
    cases += [
        get(downtime, 200, "the registry's downtimes", lambda env: env.get(downtime)),
        get(downtime, 400, "bad status", lambda env: env.get(f"{downtime}?status=soon")),
        get(downtime, 404, "registry off", registry_off(lambda env: env.get(downtime))),
        get(allowed, 200, "no cache restricted", lambda env: env.get(allowed)),
        get(allowed, 404, "registry off", registry_off(lambda env: env.get(allowed))),
        get(server, 200, "a server", joined_then(f"{REGISTRY}/server/origins/site-j")),
        get(server, 404, "unknown", lambda env: env.get(f"{REGISTRY}/server/origins/nobody")),
        get(
            f"{WELL_KNOWN}/issuer.jwks",
            200,
            "approved",
            joined_then(f"{REGISTRY}/origins/site-j/.well-known/issuer.jwks"),
        ),
        get(
            f"{WELL_KNOWN}/issuer.jwks",
            403,
            "pending",
            joined_then(f"{REGISTRY}/origins/site-j/.well-known/issuer.jwks", approve=False),
        ),
        get(
            f"{WELL_KNOWN}/issuer.jwks",
            404,
            "unknown",
            lambda env: env.get(f"{REGISTRY}/nope/.well-known/issuer.jwks"),
        ),
        get(
            f"{WELL_KNOWN}/openid-configuration",
            200,
            "registered",
            joined_then(f"{REGISTRY}/origins/site-j/.well-known/openid-configuration"),
        ),
        get(
            f"{WELL_KNOWN}/openid-configuration",
            404,
            "unknown",
            lambda env: env.get(f"{REGISTRY}/nope/.well-known/openid-configuration"),
        ),
        get("/api/v1.0/director/getFedToken", 200, "a cache's token", fed_token_for_a_cache),
        get("/api/v1.0/director/getFedToken", 503, "no external URL", fed_token_unnamed),
        get("/api/v1.0/director/getFedToken", 429, "refused", fed_token_refused_twice),
        post("/api/v1.0/director/registerOrigin", 429, "refused", refused_twice("registerOrigin")),
        post("/api/v1.0/director/registerCache", 429, "refused", refused_twice("registerCache")),
        get(
            "/api/v1.0/director/getFedToken",
            403,
            "no host",
            lambda env: env.get("/api/v1.0/director/getFedToken?sType=Cache"),
        ),
        get("/api/v1.0/director/discoverServers", 200, "a federation token", discovered_servers),
        get(
            "/api/v1.0/director/discoverServers",
            403,
            "no token",
            lambda env: env.get("/api/v1.0/director/discoverServers"),
        ),
    ]
    return cases
