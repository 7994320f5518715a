"""JSON API routers (django-ninja): registration, namespaces, directors, director_ui.

Handlers are thin: they parse, call a service or read the snapshot, and return schemas
from ``director.schemas``. Each operation declares a schema for every status code it
can answer. ninja serialises the return value through the declared schema, and refuses
(with a 500) a status code that is not declared, so ``/api/openapi.json`` cannot leave
one out. A refusal is raised as ``Refusal`` (by a service, a handler or the auth step,
which runs before the body is read) and ``director_project.api`` turns it, and ninja's
400 for a body that does not validate, into the one ``ErrorOut`` body.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, NoReturn

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Router, Status
from ninja.security import HttpBearer

from director import presence, registry
from director.ads import record_advertisement, without_name_authority
from director.federation import advertise, external, refusals, remote_check
from director.federation.schemas import ApprovalErrorOut
from director.locate import client_ip, external_url
from director.models import Downtime, RegistrationToken, Server, Source
from director.ops.directors import live_directors, this_director
from director.ops.health import assess
from director.schemas import (
    DirectorAdOut,
    DowntimeOut,
    ErrorOut,
    HealthOut,
    NamespaceAdOut,
    NamespaceSummaryOut,
    PoolOut,
    PrefixOut,
    ServerDetailOut,
    ServerOut,
    SuccessOut,
    UiNamespaceOut,
)
from director.snapshot import NamespaceView
from director.trust.tokens import looks_like_jwt
from director.wire.ads import AdvertisementIn
from director.wire.errors import Refusal
from director.wire.healthfiles import MONITORING_NAMESPACE
from director.wire.paths import PathError, clean_path
from director.wire.tokens import bearer_token
from director.wire.types import Capability, ServerKind

MAX_AD_BYTES = 1024 * 1024
MONITORING_NAMESPACE_VIEW = NamespaceView(
    path=MONITORING_NAMESPACE, capabilities=Capability.PUBLIC_READS | Capability.READS
)
PELICAN_MODE_OFF = (
    "This director does not accept advertise tokens signed by registered keys "
    "(DIRECTOR_PELICAN_REGISTRATION=0); use a registration token"
)
TOKEN_MODE_OFF = (
    "This director does not accept registration tokens (DIRECTOR_TOKEN_REGISTRATION=0); "
    "register the server's namespace and sign its advertisements"
)
DEPRECATED_V1_LISTING = "Deprecated API: use GET /api/v2.0/director/listNamespaces"

# by_alias: the schemas' wire names (``token-issuer``, ``class``) in bodies and document.
director_router = Router(tags=["director"], by_alias=True)
director_v2_router = Router(tags=["director"], by_alias=True)
ui_router = Router(tags=["director_ui"], by_alias=True)
health_router = Router(tags=["health"], by_alias=True)


# --- registration ----------------------------------------------------------------------


@dataclass(frozen=True)
class AdvertiseToken:
    """A Pelican advertise token (a JWT) whose signature a registered key verified and
    that is bound to this director; which prefixes it may advertise is checked once the
    ad names them."""

    token: str
    binding: advertise.Binding


def _register(request: HttpRequest, kind: ServerKind, ad: AdvertisementIn) -> SuccessOut:
    auth: RegistrationToken | AdvertiseToken = request.auth  # type: ignore[attr-defined]
    token = auth if isinstance(auth, RegistrationToken) else None
    if isinstance(auth, AdvertiseToken):
        try:
            advertise.verify_advertisement(
                kind,
                ad.registry_prefix,
                ad.name,
                [namespace.path for namespace in ad.namespaces],
                auth.token,
                external_url(request),
                auth.binding,
            )
        except Refusal as refused:
            if refusals.sender_caused(refused):
                refusals.refused_ads.note(client_ip(request))
            raise
        client = external.registry_client()
        if client is not None and not remote_check.name_authorized(
            client, ad.registry_prefix.rstrip("/"), ad.name
        ):
            ad = without_name_authority(ad)
    record_advertisement(kind, ad, token=token, user_agent=request.META.get("HTTP_USER_AGENT", ""))
    return SuccessOut(msg="Successful registration")


def _peeked_json(request: HttpRequest) -> dict[str, Any]:
    """The body as JSON, not validated (the auth step's look at what an ad names, in
    external registry mode); {} when it is no JSON object."""
    try:
        value = json.loads(request.body)
    except (ValueError, RecursionError):  # RecursionError: a body nested past the stack
        return {}
    return value if isinstance(value, dict) else {}


class RegistrationBearer(HttpBearer):
    """The registration endpoints' auth step, declared as Bearer in the OpenAPI document.

    It runs before the body is read or parsed: without a bearer token that is some live
    registration token, or a JWT signed by a registered key and bound to this director
    (a Pelican advertise token; the prefixes it may advertise are checked once the body
    names them), the answer is 403, and an oversized body 413, whatever the body. So an
    anonymous caller can neither learn the validation rules nor make the director parse
    megabytes. An address refused DIRECTOR_REFUSED_ADS_PER_MINUTE times in a minute is
    answered 429 (Retry-After) before anything else. A registration token found is the
    one the ad is checked against (its prefix and kind once the body is read): the
    secret is looked up once, by its hash; a JWT's key once, by its ``kid``.
    """

    def __call__(self, request: HttpRequest) -> RegistrationToken | AdvertiseToken:
        with refusals.counted(client_ip(request)):
            return self.checked(request)

    def checked(self, request: HttpRequest) -> RegistrationToken | AdvertiseToken:
        authorization = str(request.META.get("HTTP_AUTHORIZATION", ""))
        if not authorization:
            raise Refusal(403, "Bearer token not present in the 'Authorization' header")
        token = bearer_token(authorization)
        if not token:
            raise Refusal(403, "The Authorization header must be 'Bearer <registration token>'")
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_AD_BYTES:
            raise Refusal(413, f"An advertisement must be at most {MAX_AD_BYTES} bytes")
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> RegistrationToken | AdvertiseToken:
        if looks_like_jwt(token):
            if not settings.DIRECTOR_PELICAN_REGISTRATION:
                raise Refusal(403, PELICAN_MODE_OFF)
            base_url = external_url(request)
            bound = advertise.binding(base_url)
            client = external.required_client()
            if client is None:
                advertise.authenticate(token, bound)
            else:
                kind = ServerKind.CACHE if request.path.endswith("Cache") else ServerKind.ORIGIN
                advertise.authenticate_remote(
                    client, token, bound, kind, base_url, lambda: _peeked_json(request)
                )
            return AdvertiseToken(token, bound)
        if not settings.DIRECTOR_TOKEN_REGISTRATION:
            raise Refusal(403, TOKEN_MODE_OFF)
        found = RegistrationToken.live_by_secret(token)
        if found is None:
            raise Refusal(403, "The token is not a live registration token")
        return found


registration_bearer = RegistrationBearer()
# 400: a body that does not validate, or an ad refused (expired, duplicate paths, ...);
# 403: the auth step, or a token that may not send this ad; 409: a concurrent first
# registration of one name; 413, 429: the auth step; 500: a too old Pelican version.
REGISTRATION_RESPONSES = {
    200: SuccessOut,
    400: ErrorOut,
    403: ErrorOut | ApprovalErrorOut,
    409: ErrorOut,
    413: ErrorOut,
    429: ErrorOut,
    500: ErrorOut,
}


@director_router.post(
    "/registerOrigin",
    summary="Advertise an origin (OriginAdvertise body; Bearer advertise or registration token)",
    response=REGISTRATION_RESPONSES,
    auth=registration_bearer,
)
def register_origin(request: HttpRequest, ad: AdvertisementIn) -> SuccessOut:
    return _register(request, ServerKind.ORIGIN, ad)


@director_router.post(
    "/registerCache",
    summary="Advertise a cache (OriginAdvertise body; Bearer advertise or registration token)",
    response=REGISTRATION_RESPONSES,
    auth=registration_bearer,
)
def register_cache(request: HttpRequest, ad: AdvertisementIn) -> SuccessOut:
    return _register(request, ServerKind.CACHE, ad)


# --- namespaces --------------------------------------------------------------------------


@director_router.get(
    "/listNamespaces",
    summary="Deprecated: use /api/v2.0/director/listNamespaces",
    response={299: ErrorOut},
    # ninja knows no description for 299, and does not document response headers.
    openapi_extra={
        "responses": {
            299: {
                "description": "Deprecated API (Pelican's answer): an error body",
                "headers": {
                    "Warning": {
                        "description": f'299 - "{DEPRECATED_V1_LISTING}"',
                        "schema": {"type": "string"},
                    }
                },
            }
        }
    },
)
def list_namespaces_v1(request: HttpRequest, response: HttpResponse) -> Status[ErrorOut]:
    response["Warning"] = f'299 - "{DEPRECATED_V1_LISTING}"'
    # An answer, not a refusal: Pelican's deprecation notice, with its Warning header.
    return Status(299, ErrorOut(msg=DEPRECATED_V1_LISTING))


@director_v2_router.get(
    "/listNamespaces",
    summary="Every namespace of every origin",
    response={200: list[NamespaceAdOut]},
)
def list_namespaces(request: HttpRequest) -> list[NamespaceAdOut]:
    snapshot = registry.current()
    now = time.time()
    listing = [
        NamespaceAdOut.from_view(namespace)
        for name, server in snapshot.servers.items()
        if server.kind is ServerKind.ORIGIN and server.routable(now)
        for namespace in snapshot.namespaces_by_server[name]
    ]
    listing.append(NamespaceAdOut.from_view(MONITORING_NAMESPACE_VIEW))
    return listing


@director_router.get("/namespaces/prefix/", response={400: ErrorOut}, include_in_schema=False)
def namespace_prefix_empty(request: HttpRequest) -> NoReturn:
    raise Refusal(400, "A path is required: /api/v1.0/director/namespaces/prefix/<path>")


@director_router.get(
    "/namespaces/prefix/{path:path}",
    summary="Longest origin namespace of a path",
    response={200: PrefixOut, 400: ErrorOut, 404: ErrorOut},
)
def namespace_prefix(request: HttpRequest, path: str) -> PrefixOut:
    try:
        cleaned = clean_path(path)
    except PathError as error:
        raise Refusal(400, f"{error}.") from None
    if cleaned == "/":
        raise Refusal(400, "A path other than '/' is required")
    prefix, _ = registry.current().longest_match(cleaned, time.time(), ServerKind.ORIGIN)
    if not prefix:
        raise Refusal(404, f"No namespace found for path {cleaned}")
    return PrefixOut(prefix=prefix)


@director_router.get(
    "/directors",
    summary="The live directors of the federation (each one's own advertisement)",
    response={200: list[DirectorAdOut]},
)
def directors(request: HttpRequest) -> list[DirectorAdOut]:
    """The live directors of the federation, as this one last read them from the shared
    registry (``director.ops.directors``); just itself before its first read."""
    itself = this_director(external_url(request), settings.DIRECTOR_AD_TTL)
    return [
        DirectorAdOut(
            name=info.name,
            startTime=int(info.started_at),
            instanceID=info.instance_id,
            generationID=0,
            version=info.version,
            expiry=info.expires_at,
            advertise_url=info.url,
        )
        for info in live_directors(itself)
    ]


# --- director_ui ---------------------------------------------------------------------------


def _listed_servers() -> QuerySet[Server]:
    """Servers whose ads have not lapsed (Pelican forgets lapsed ads), disabled included."""
    return (
        Server.objects.exclude(source=Source.ADVERTISED, expires_at__lte=timezone.now())
        .prefetch_related("namespaces", "downtimes")
        .order_by("kind", "name")
    )


def _one_server(name: str) -> Server:
    """The server of that name; the origin when an origin and a cache share it."""
    server = min(
        _listed_servers().filter(name=name),
        key=lambda row: row.kind != ServerKind.ORIGIN,
        default=None,
    )
    if server is None:
        raise Refusal(404, f"No server named {name!r}")
    return server


@ui_router.get(
    "/servers",
    summary="Origins and caches (server_type=origin|cache)",
    response={200: list[ServerOut], 400: ErrorOut},
)
def ui_servers(request: HttpRequest, server_type: str | None = None) -> list[ServerOut]:
    servers = _listed_servers()
    if server_type:  # absent or empty: no filter
        if server_type.lower() not in (ServerKind.ORIGIN, ServerKind.CACHE):
            raise Refusal(400, f"server_type must be 'origin' or 'cache', not {server_type!r}")
        servers = servers.filter(kind=server_type.lower())
    now = timezone.now()
    return [ServerOut.from_row(server, now) for server in servers]


@ui_router.get(
    "/servers/{name}",
    summary="One server with its namespaces",
    response={200: ServerDetailOut, 404: ErrorOut},
)
def ui_server(request: HttpRequest, name: str) -> ServerDetailOut:
    server = _one_server(name)
    return ServerDetailOut.from_row(server, timezone.now())


@ui_router.get(
    "/servers/{name}/namespaces",
    summary="The namespaces of one server",
    response={200: list[UiNamespaceOut], 404: ErrorOut},
)
def ui_server_namespaces(request: HttpRequest, name: str) -> list[UiNamespaceOut]:
    server = _one_server(name)
    return [UiNamespaceOut.from_row(namespace) for namespace in server.namespaces.all()]


@ui_router.get(
    "/servers/{name}/downtimes",
    summary="The downtimes of one server",
    response={200: list[DowntimeOut], 404: ErrorOut},
)
def ui_server_downtimes(request: HttpRequest, name: str) -> list[DowntimeOut]:
    server = _one_server(name)
    return [DowntimeOut.from_row(downtime) for downtime in server.downtimes.all()]


@ui_router.get(
    "/downtimes",
    summary="Every downtime, from ads and from the admin",
    response={200: list[DowntimeOut]},
)
def ui_downtimes(request: HttpRequest) -> list[DowntimeOut]:
    # As /servers: the servers of lapsed ads are forgotten, and so are their downtimes.
    downtimes = (
        Downtime.objects.select_related("server")
        .filter(server__in=_listed_servers())
        .order_by("starts_at", "server__name")
    )
    return [DowntimeOut.from_row(downtime) for downtime in downtimes]


@ui_router.get(
    "/namespaces",
    summary="Namespaces with the origins and caches serving each",
    response={200: list[NamespaceSummaryOut]},
)
def ui_namespaces(request: HttpRequest) -> list[NamespaceSummaryOut]:
    merged: dict[str, NamespaceSummaryOut] = {}
    for server in _listed_servers().filter(enabled=True):
        for namespace in server.namespaces.all():
            entry = merged.get(namespace.path)
            if entry is None:
                entry = merged[namespace.path] = NamespaceSummaryOut.from_row(namespace)
            names = entry.origins if server.kind == ServerKind.ORIGIN else entry.caches
            names.append(server.name)
    return [merged[path] for path in sorted(merged)]


# --- stat pools and health -------------------------------------------------------------------


@ui_router.get(
    "/stat/pools",
    summary="Per-server stat pools: limits, load, ejection, cache",
    response={200: list[PoolOut]},
)
def stat_pools(request: HttpRequest) -> list[PoolOut]:
    states = sorted(presence.engine.states(), key=lambda state: (state.kind, state.name))
    now = timezone.now()
    return [PoolOut.from_state(state, now) for state in states]


@health_router.get(
    "/health",
    summary="ok / degraded (a server saturated or ejected) / overloaded (503)",
    response={200: HealthOut, 503: HealthOut},
)
def health(request: HttpRequest) -> Status[HealthOut]:
    verdict = assess(registry.current().settings.max_inflight_requests)
    return Status(verdict.http_status, HealthOut.from_verdict(verdict))
