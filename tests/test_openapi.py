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
from collections.abc import Callable
from typing import Union

import pytest
from django.test import Client
from helpers import caps, create_server, make_ad, namespace_ad
from openapi_registry_cases import registry_cases, unapproved_ad
from openapi_support import (
    Case,
    Env,
    JSONDict,
    console_cases,
    get_case,
    operations,
    overloaded_health,
    registration_cases,
)
from pydantic import BaseModel, TypeAdapter

from director import schemas
from director.console import schemas as console_schemas
from director.federation import schemas as federation_schemas
from director.responses import JSON_CONTENT_TYPE
from director.wire.documents import json_bytes

ISSUER = "https://issuer.example:8443"


# --- real answers: declared, and valid against the declared schema ---------------------------


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
