"""The OpenAPI document against the wire: every status code an operation answers with is
declared, with a schema, and the bodies sent validate against that schema.

``CASES`` holds real requests, one for each (operation, status code) the document
declares, and ``test_the_cases_cover_exactly_the_declared_status_codes`` keeps the two
lists equal. A new status code in a handler needs a declaration, and a new declaration
needs a case.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Union

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth.models import User
from django.db import IntegrityError
from django.http import HttpResponse
from django.test import Client, override_settings
from helpers import caps, create_server, make_ad, namespace_ad
from pelican_peer import nonce, public_jwk, server_id, sign_hex
from pydantic import BaseModel, TypeAdapter

import director.ads
from director import schemas
from director.console import schemas as console_schemas
from director.federation import issuer
from director.federation import schemas as federation_schemas
from director.federation.registry import decide
from director.models import RegistrationStatus, RegistrationToken
from director.ops.metrics import INFLIGHT
from director.responses import JSON_CONTENT_TYPE
from director.wire.documents import json_bytes
from director_project.api import api

JSONDict = dict[str, Any]  # a part of the OpenAPI document, as parsed JSON
ORIGIN_UA = "pelican-origin/7.20.0"
CACHE_UA = "pelican-cache/7.20.0"
ISSUER = "https://issuer.example:8443"


@pytest.fixture(scope="module")
def document() -> JSONDict:
    """The document as /api/openapi.json serves it (status codes as strings)."""
    parsed: JSONDict = json.loads(json.dumps(api.get_openapi_schema()))
    return parsed


def operations(document: JSONDict) -> Iterator[tuple[str, str, JSONDict]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


# --- (a) every response declares a typed schema ----------------------------------------------


def assert_typed(schema: JSONDict, components: JSONDict, where: str) -> None:
    """``schema`` says what the JSON is, all the way down: no bare ``{}`` and no object
    without properties (a ``dict[str, int]``, typed values, is fine)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        assert_typed(components[name], components, f"{where} -> {name}")
    elif "anyOf" in schema:
        for option in schema["anyOf"]:
            assert_typed(option, components, where)
    elif "const" in schema or "enum" in schema:
        pass
    elif schema.get("type") == "array":
        assert_typed(schema.get("items", {}), components, f"{where}[]")
    elif schema.get("type") == "object":
        properties = schema.get("properties")
        values = schema.get("additionalProperties")
        assert properties or isinstance(values, dict), f"{where}: an object without properties"
        for key, value in (properties or {}).items():
            assert_typed(value, components, f"{where}.{key}")
        if isinstance(values, dict):
            assert_typed(values, components, f"{where}.*")
    else:
        assert schema.get("type") in {"string", "integer", "number", "boolean", "null"}, (
            f"{where}: untyped schema {schema}"
        )


def test_every_response_of_every_operation_declares_a_typed_json_schema(
    document: JSONDict,
) -> None:
    components = document["components"]["schemas"]
    for path, method, operation in operations(document):
        assert operation["responses"], f"{method} {path} declares no response"
        for code, response in operation["responses"].items():
            where = f"{method.upper()} {path} {code}"
            assert set(response.get("content", {})) == {"application/json"}, where
            schema = response["content"]["application/json"]["schema"]
            assert_typed(schema, components, where)


def test_the_registration_operations_require_the_bearer_scheme(document: JSONDict) -> None:
    assert document["components"]["securitySchemes"] == {
        "RegistrationBearer": {"type": "http", "scheme": "bearer"}
    }
    secured = {path for path, _, operation in operations(document) if operation.get("security")}
    assert secured == {"/api/v1.0/director/registerOrigin", "/api/v1.0/director/registerCache"}
    for path in secured:
        assert document["paths"][path]["post"]["security"] == [{"RegistrationBearer": []}]


def test_the_deprecated_listing_documents_its_warning_header(document: JSONDict) -> None:
    answer = document["paths"]["/api/v1.0/director/listNamespaces"]["get"]["responses"]["299"]

    assert set(answer["headers"]) == {"Warning"}
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }


# --- (b) real answers: declared, and valid against the declared schema -----------------------


@dataclass
class Env:
    """A small federation behind the Django test client, and ways to talk to it."""

    client: Client
    monkeypatch: pytest.MonkeyPatch

    def get(self, path: str) -> HttpResponse:
        return self.client.get(path)

    def advertise(
        self,
        endpoint: str,
        ad: JSONDict | None = None,
        *,
        secret: str | None = "issue",
        user_agent: str | None = None,
        **extra: str,
    ) -> HttpResponse:
        """POST an ad (a fresh valid one by default) to registerOrigin or registerCache.

        ``secret="issue"`` sends a new live token for the ad's prefix, ``None`` no
        Authorization header at all.
        """
        kind = "origin" if endpoint == "registerOrigin" else "cache"
        ad = ad if ad is not None else make_ad(f"{kind}-z", kind, "http://127.0.0.1:7100")
        headers = {"HTTP_USER_AGENT": user_agent or (ORIGIN_UA if kind == "origin" else CACHE_UA)}
        if secret == "issue":
            secret = RegistrationToken.issue(ad["registry-prefix"])[1]
        if secret is not None:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
        return self.client.post(
            f"/api/v1.0/director/{endpoint}",
            data=json.dumps(ad),
            content_type="application/json",
            **headers,
            **extra,
        )


@pytest.fixture
def env(
    director_settings: Callable[..., object], client: Client, monkeypatch: pytest.MonkeyPatch
) -> Env:
    """origin-a (/shared with token metadata and a downtime, /only-a), cache-a (/shared),
    and an admin-defined cache with coordinates and a health test result."""
    env = Env(client, monkeypatch)
    protected = namespace_ad(
        "/shared",
        Caps=caps(Read=True, Listing=True),
        **{
            "token-issuer": [
                {"base-paths": ["/shared"], "restricted-paths": ["/shared/x"], "issuer": ISSUER}
            ],
            "token-generation": [
                {"strategy": "OAuth2", "vault-server": "", "max-scope-depth": 3, "issuer": ISSUER}
            ],
        },
    )
    origin = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:7001",
        namespaces=[protected, namespace_ad("/only-a")],
        coordinate={"Lat": 43.07, "Long": -89.4},
        downtimes=[{"id": "d1", "startTime": 1_700_000_000_000, "endTime": 1_700_000_600_000}],
    )
    cache = make_ad(
        "cache-a", "cache", "http://127.0.0.1:7002", namespaces=[namespace_ad("/shared")]
    )
    for endpoint, ad in (("registerOrigin", origin), ("registerCache", cache)):
        answer = env.advertise(endpoint, ad)
        assert answer.status_code == 200, answer.content
    create_server(
        "defined-cache",
        "cache",
        "http://127.0.0.1:7003",
        {"/only-a": {}},
        latitude=-33.5,
        longitude=151.25,
        health_status="OK",
        health_message="tested",
    )
    return env


def simulate_registration_race(env: Env) -> None:
    """Two first ads of one name at once: the second insert fails the unique constraint.

    That interleaving cannot be arranged through one test client, so the store step
    raises what the database raises then.
    """

    def insert_races(*args: object, **kwargs: object) -> None:
        raise IntegrityError("UNIQUE constraint failed: director_server.name")

    env.monkeypatch.setattr(director.ads, "_store", insert_races)


@dataclass(frozen=True)
class Case:
    path: str  # as in the document
    method: str
    status: int
    what: str
    send: Callable[[Env], HttpResponse]

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.path.removeprefix('/api')} {self.status} {self.what}"


def registration_cases(endpoint: str) -> list[Case]:
    path = f"/api/v1.0/director/{endpoint}"
    kind = "origin" if endpoint == "registerOrigin" else "cache"

    def case(status: int, what: str, send: Callable[[Env], HttpResponse]) -> Case:
        return Case(path, "post", status, what, send)

    def racing(env: Env) -> HttpResponse:
        simulate_registration_race(env)
        return env.advertise(endpoint)

    expired = make_ad(f"{kind}-z", kind, "http://127.0.0.1:7100", expiry="2001-01-01T00:00:00Z")
    invalid = {"registry-prefix": f"/{kind}s/{kind}-z", "data-url": "not a URL"}
    return [
        case(200, "a valid ad", lambda env: env.advertise(endpoint)),
        case(400, "a body that fails validation", lambda env: env.advertise(endpoint, invalid)),
        case(400, "an expired ad", lambda env: env.advertise(endpoint, expired)),
        case(403, "no token", lambda env: env.advertise(endpoint, secret=None)),
        case(403, "an unknown token", lambda env: env.advertise(endpoint, secret="nope")),
        case(
            403,
            "a token for another prefix",
            lambda env: env.advertise(
                endpoint, secret=RegistrationToken.issue(f"/{kind}s/other")[1]
            ),
        ),
        case(409, "a concurrent first registration", racing),
        case(
            413, "an oversized body", lambda env: env.advertise(endpoint, CONTENT_LENGTH="2000000")
        ),
        case(
            500,
            "a too old Pelican",
            lambda env: env.advertise(endpoint, user_agent=f"pelican-{kind}/7.0.0"),
        ),
    ]


def get_case(path: str, status: int, what: str, url: str) -> Case:
    return Case(path, "get", status, what, lambda env: env.get(url))


def overloaded_health(env: Env) -> HttpResponse:
    env.monkeypatch.setattr(INFLIGHT, "count", 10**6)  # health is exempt from shedding
    return env.get("/api/v1.0/health")


# --- the registry and the federation issuer (director.federation) ----------------------------

REGISTRY = "/api/v1.0/registry"
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
    claims = {"iss": "https://x", "sub": "x", "aud": ["x"], "scope": "pelican.advertise"}
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


def fed_token_for_a_cache(env: Env) -> HttpResponse:
    key = joined(env, "cache-f", "/caches/cache-f")
    return env.client.get(
        "/api/v1.0/director/getFedToken?host=cache-f&sType=Cache",
        HTTP_AUTHORIZATION=f"Bearer {advertise_token(key)}",
    )


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


def as_staff(url: str) -> Callable[[Env], HttpResponse]:
    def send(env: Env) -> HttpResponse:
        env.client.force_login(User.objects.create_user("operator", is_staff=True))
        return env.get(url)

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

    cases += [
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


def console_cases() -> list[Case]:
    """The console's JSON: staff only (403 otherwise), but explain, which is public."""
    console = "/api/v1.0/console"
    cases = []
    for path, url in (
        ("/overview", "/overview"),
        ("/servers", "/servers?sort=-state"),
        ("/servers/{kind}/{name}", "/servers/origin/origin-a"),
        ("/map", "/map"),
        ("/namespaces", "/namespaces?q=shared"),
    ):
        cases.append(Case(console + path, "get", 200, "staff", as_staff(console + url)))
        cases.append(get_case(console + path, 403, "anonymous", console + url))
    return [
        *cases,
        Case(f"{console}/servers", "get", 400, "a bad kind", as_staff(f"{console}/servers?kind=x")),
        Case(
            f"{console}/servers/{{kind}}/{{name}}",
            "get",
            404,
            "unknown",
            as_staff(f"{console}/servers/cache/origin-a"),
        ),
        Case(
            f"{console}/namespaces", "get", 400, "page 0", as_staff(f"{console}/namespaces?page=0")
        ),
        get_case(f"{console}/explain", 200, "", f"{console}/explain?path=/shared/a&coordinate=1,2"),
        get_case(f"{console}/pools", 200, "public", f"{console}/pools"),
        get_case(f"{console}/explain", 400, "a relative path", f"{console}/explain?path=a"),
    ]


PREFIX = "/api/v1.0/director/namespaces/prefix/{path}"
SERVER = "/api/v1.0/director_ui/servers/{name}"
UI = "/api/v1.0/director_ui"
CASES = [
    *registration_cases("registerOrigin"),
    *registration_cases("registerCache"),
    *registry_cases(),
    Case(
        "/api/v1.0/director/registerOrigin",
        "post",
        403,
        "an unapproved prefix",
        unapproved_ad("registerOrigin"),
    ),
    get_case(
        "/api/v1.0/director/listNamespaces", 299, "deprecated", "/api/v1.0/director/listNamespaces"
    ),
    get_case("/api/v2.0/director/listNamespaces", 200, "", "/api/v2.0/director/listNamespaces"),
    get_case(PREFIX, 200, "a match", "/api/v1.0/director/namespaces/prefix/shared/a/b"),
    get_case(PREFIX, 400, "the root", "/api/v1.0/director/namespaces/prefix//"),
    get_case(PREFIX, 400, "above the root", "/api/v1.0/director/namespaces/prefix/a/../../x"),
    get_case(PREFIX, 404, "no match", "/api/v1.0/director/namespaces/prefix/nothing/here"),
    get_case("/api/v1.0/director/directors", 200, "", "/api/v1.0/director/directors"),
    get_case(f"{UI}/servers", 200, "all", f"{UI}/servers"),
    get_case(f"{UI}/servers", 200, "caches", f"{UI}/servers?server_type=cache"),
    get_case(f"{UI}/servers", 400, "a bad server_type", f"{UI}/servers?server_type=all"),
    get_case(SERVER, 200, "an origin", f"{UI}/servers/origin-a"),
    get_case(SERVER, 200, "an admin cache", f"{UI}/servers/defined-cache"),
    get_case(SERVER, 404, "unknown", f"{UI}/servers/nobody"),
    get_case(f"{SERVER}/namespaces", 200, "", f"{UI}/servers/origin-a/namespaces"),
    get_case(f"{SERVER}/namespaces", 404, "unknown", f"{UI}/servers/nobody/namespaces"),
    get_case(f"{SERVER}/downtimes", 200, "", f"{UI}/servers/origin-a/downtimes"),
    get_case(f"{SERVER}/downtimes", 404, "unknown", f"{UI}/servers/nobody/downtimes"),
    get_case(f"{UI}/downtimes", 200, "", f"{UI}/downtimes"),
    get_case(f"{UI}/namespaces", 200, "", f"{UI}/namespaces"),
    get_case(f"{UI}/stat/pools", 200, "", f"{UI}/stat/pools"),
    get_case("/api/v1.0/health", 200, "ok", "/api/v1.0/health"),
    Case("/api/v1.0/health", "get", 503, "overloaded", overloaded_health),
    *console_cases(),
]


def _schema_class(reference: str) -> type[BaseModel]:
    name = reference.rsplit("/", 1)[1]
    for module in (schemas, federation_schemas, console_schemas):
        found: type[BaseModel] | None = getattr(module, name, None)
        if found is not None:
            return found
    raise LookupError(name)


def body_validator(schema: JSONDict) -> Callable[[bytes], object]:
    """A strict validator of a JSON body for a declared schema: the ``ThingOut`` it names,
    a list of them, or one of several. Keys are taken by their wire names only
    (``token-issuer``, not ``token_issuer``), so a body written without ninja's
    ``by_alias`` fails."""
    adapter: TypeAdapter[object]
    if schema.get("type") == "array":
        item = _schema_class(schema["items"]["$ref"])
        adapter = TypeAdapter(list[item])  # type: ignore[valid-type]
    elif "anyOf" in schema:
        options = tuple(_schema_class(option["$ref"]) for option in schema["anyOf"])
        adapter = TypeAdapter(Union[options])  # type: ignore[valid-type]  # noqa: UP007
    else:
        adapter = TypeAdapter(_schema_class(schema["$ref"]))
    return functools.partial(adapter.validate_json, strict=True, by_alias=True, by_name=False)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_each_answer_is_declared_and_its_body_validates(
    env: Env, document: JSONDict, case: Case
) -> None:
    answer = case.send(env)

    assert answer.status_code == case.status, answer.content
    declared = document["paths"][case.path][case.method]["responses"]
    assert str(answer.status_code) in declared
    assert answer["Content-Type"] == JSON_CONTENT_TYPE
    body_validator(declared[str(answer.status_code)]["content"]["application/json"]["schema"])(
        answer.content
    )
    # Pelican's byte shape: compact, non-ASCII as UTF-8 (what json_bytes writes).
    assert answer.content == json_bytes(json.loads(answer.content))


def test_the_cases_cover_exactly_the_declared_status_codes(document: JSONDict) -> None:
    declared = {
        (path, method, int(code))
        for path, method, operation in operations(document)
        for code in operation["responses"]
    }
    exercised = {(case.path, case.method, case.status) for case in CASES}
    assert exercised == declared
