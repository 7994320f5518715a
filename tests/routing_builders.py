"""Builders for the tests of the redirect decision (``director.routing.decide``,
tests/test_routing*.py): server and namespace views, snapshots, requests at a fixed time,
tokens, and readers of a result's servers and headers."""

from __future__ import annotations

import base64
import json

from director.geo import Coordinate
from director.routing import RedirectRequest, RedirectResult
from director.snapshot import DirectorSettings, NamespaceView, ServerView, Snapshot
from director.wire.types import Capability, ServerKind

NOW = 1_700_000_000.0
DEADLINE = NOW + 2.5
REQUEST_ID = "6f1c2e4a-0f9b-4b7e-9d51-3c1a8d0e7a21"
PUBLIC = Capability.PUBLIC_READS | Capability.READS
PROTECTED = Capability.READS
DR = Capability.DIRECT_READS
EXPIRED_CHALLENGE = 'Bearer error="invalid_token", error_description="token has expired"'

LINCOLN_NE = Coordinate(40.8136, -96.7026)


def origin(name: str, caps: Capability = PUBLIC | DR, **fields) -> ServerView:
    return ServerView(
        name=name,
        kind=ServerKind.ORIGIN,
        url=fields.pop("url", f"https://{name}.example.org:8443"),
        capabilities=caps,
        **fields,
    )


def cache(name: str, caps: Capability = PUBLIC | DR, **fields) -> ServerView:
    return ServerView(
        name=name,
        kind=ServerKind.CACHE,
        url=fields.pop("url", f"https://{name}.example.org:8443"),
        capabilities=caps,
        **fields,
    )


def ns(path: str = "/ns", caps: Capability = PUBLIC | DR, **fields) -> NamespaceView:
    return NamespaceView(path=path, capabilities=caps, **fields)


def snapshot(*servers: tuple[ServerView, NamespaceView], **settings) -> Snapshot:
    return Snapshot.build(
        1, DirectorSettings(**settings), [(server, [namespace]) for server, namespace in servers]
    )


def request(
    path: str = "/ns/file.txt", method: str = "GET", *, to_origin: bool = False, **fields
) -> RedirectRequest:
    return RedirectRequest(
        method=method,
        path=path,
        to_origin=to_origin,
        request_id=REQUEST_ID,
        now=NOW,
        deadline=DEADLINE,
        **fields,
    )


def jwt(**claims: object) -> str:
    def b64url(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


EXPIRED_JWT = jwt(iat=NOW - 3600, exp=NOW - 5)
VALID_JWT = jwt(iat=NOW - 60, exp=NOW + 3600)


def names(result: RedirectResult) -> list[str]:
    return [server.name for server in result.servers]


def header_values(result: RedirectResult, name: str) -> list[str]:
    return [value for key, value in result.headers if key == name]


def link_urls(result: RedirectResult) -> list[str]:
    (link,) = header_values(result, "Link")
    return [part.split(">;")[0].lstrip("<") for part in link.split(", ")]


def two_origins(**settings) -> Snapshot:
    return snapshot((origin("o-1"), ns()), (origin("o-2"), ns()), **settings)


def located(name: str, place: tuple[float, float], kind: ServerKind, **fields) -> ServerView:
    build = origin if kind is ServerKind.ORIGIN else cache
    return build(name, latitude=place[0], longitude=place[1], **fields)
