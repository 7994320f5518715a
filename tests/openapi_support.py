"""The OpenAPI checks' shared parts (tests/test_openapi*.py): walking the document, the
test client's federation (``Env``), and ``Case``, one real request with the status code it
must answer, with the cases of the registration, console and director endpoints."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError
from django.http import HttpResponse
from django.test import Client
from helpers import CACHE_UA, ORIGIN_UA, make_ad

import director.ads
from director.models import RegistrationToken
from director.ops.metrics import INFLIGHT

JSONDict = dict[str, Any]  # a part of the OpenAPI document, as parsed JSON


def operations(document: JSONDict) -> Iterator[tuple[str, str, JSONDict]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


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


def as_staff(url: str) -> Callable[[Env], HttpResponse]:
    def send(env: Env) -> HttpResponse:
        env.client.force_login(User.objects.create_user("operator", is_staff=True))
        return env.get(url)

    return send


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
