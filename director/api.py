"""JSON API routers (django-ninja): registration, namespaces, directors, director_ui.

Handlers are thin: they parse, call a service or read the snapshot, and shape the answer
in Pelican's JSON. ``director_project.api`` mounts these routers and maps errors.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Router
from ninja.errors import HttpError
from ninja.security import HttpBearer

from director import __version__, presence, registry
from director.ads import AdRejected, record_advertisement
from director.models import Downtime, Kind, RegistrationToken, Server, Source
from director.ops.health import assess
from director.responses import JSON_CONTENT_TYPE, error_response, json_bytes
from director.snapshot import NamespaceView
from director.views import external_url
from director.wire.ads import (
    AdvertisementIn,
    go_url_object,
    token_generation_json,
    token_issuer_json,
)
from director.wire.paths import PathError, clean_path
from director.wire.types import CAPABILITY_NAMES, WIRE_CAPABILITY_KEYS, Capability, ServerKind

INSTANCE_ID = uuid.uuid4().hex
MAX_AD_BYTES = 1024 * 1024
MONITORING_NAMESPACE = NamespaceView(
    path="/pelican/monitoring", capabilities=Capability.PUBLIC_READS | Capability.READS
)

director_router = Router(tags=["director"])
director_v2_router = Router(tags=["director"])
ui_router = Router(tags=["director_ui"])
health_router = Router(tags=["health"])


def _json(payload: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(json_bytes(payload), status=status, content_type=JSON_CONTENT_TYPE)


def _error(status: int, message: str) -> HttpResponse:
    return error_response(status, message, cors=False)


# --- registration ----------------------------------------------------------------------


def _register(request: HttpRequest, kind: str, ad: AdvertisementIn) -> HttpResponse:
    token: RegistrationToken = request.auth  # type: ignore[attr-defined]  # set by the auth step
    try:
        record_advertisement(
            kind, ad, token=token, user_agent=request.META.get("HTTP_USER_AGENT", "")
        )
    except AdRejected as rejected:
        return _error(rejected.status, rejected.message)
    return _json({"status": "success", "msg": "Successful registration"})


class RegistrationBearer(HttpBearer):
    """The registration endpoints' auth step, declared as Bearer in the OpenAPI document.

    It runs before the body is read or parsed: without a bearer token that is some live
    registration token the answer is 403, and an oversized body 413, whatever the body.
    So an anonymous caller can neither learn the validation rules nor make the director
    parse megabytes. The token found is the one the ad is checked against (its prefix and
    kind once the body is read): the secret is looked up once, by its hash.
    """

    def __call__(self, request: HttpRequest) -> RegistrationToken:
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        if not authorization:
            raise HttpError(403, "Missing Authorization header with a registration token")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            raise HttpError(403, "The Authorization header must be 'Bearer <registration token>'")
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_AD_BYTES:
            raise HttpError(413, f"An advertisement must be at most {MAX_AD_BYTES} bytes")
        return self.authenticate(request, authorization[7:].strip())

    def authenticate(self, request: HttpRequest, token: str) -> RegistrationToken:
        found = RegistrationToken.live_by_secret(token)
        if found is None:
            raise HttpError(403, "The token is not a live registration token")
        return found


registration_bearer = RegistrationBearer()


@director_router.post(
    "/registerOrigin",
    summary="Advertise an origin (Pelican OriginAdvertise body, Bearer registration token)",
    response={200: dict, 400: dict, 403: dict, 413: dict, 500: dict},
    auth=registration_bearer,
)
def register_origin(request: HttpRequest, ad: AdvertisementIn) -> HttpResponse:
    return _register(request, Kind.ORIGIN, ad)


@director_router.post(
    "/registerCache",
    summary="Advertise a cache (Pelican OriginAdvertise body, Bearer registration token)",
    response={200: dict, 400: dict, 403: dict, 413: dict, 500: dict},
    auth=registration_bearer,
)
def register_cache(request: HttpRequest, ad: AdvertisementIn) -> HttpResponse:
    return _register(request, Kind.CACHE, ad)


# --- namespaces --------------------------------------------------------------------------


def wire_caps(capabilities: Capability) -> dict[str, bool]:
    return {key: bool(capabilities & flag) for key, flag in WIRE_CAPABILITY_KEYS}


def ui_caps(capabilities: Capability) -> dict[str, bool]:
    return {name: bool(capabilities & flag) for name, flag in CAPABILITY_NAMES}


def namespace_ad_json(namespace: NamespaceView) -> dict[str, Any]:
    """A NamespaceAd in the ad's own JSON shape (issuer URLs as Go URL objects)."""
    return {
        "Caps": wire_caps(namespace.capabilities),
        "path": namespace.path,
        "token-generation": [
            token_generation_json(generation, url=go_url_object)
            for generation in namespace.token_generations
        ],
        "token-issuer": [
            token_issuer_json(issuer, url=go_url_object) for issuer in namespace.token_issuers
        ],
        "from-topology": namespace.from_topology,
    }


@director_router.get("/listNamespaces", summary="Deprecated: use /api/v2.0/director/listNamespaces")
def list_namespaces_v1(request: HttpRequest) -> HttpResponse:
    response = _error(299, "Deprecated API: use GET /api/v2.0/director/listNamespaces")
    response["Warning"] = '299 - "Deprecated API: use GET /api/v2.0/director/listNamespaces"'
    return response


@director_v2_router.get("/listNamespaces", summary="Every namespace of every origin")
def list_namespaces(request: HttpRequest) -> HttpResponse:
    snapshot = registry.current()
    now = time.time()
    listing = [
        namespace_ad_json(namespace)
        for name, server in snapshot.servers.items()
        if server.kind is ServerKind.ORIGIN and server.routable(now)
        for namespace in snapshot.namespaces_by_server[name]
    ]
    listing.append(namespace_ad_json(MONITORING_NAMESPACE))
    return _json(listing)


@director_router.get("/namespaces/prefix/", include_in_schema=False)
def namespace_prefix_empty(request: HttpRequest) -> HttpResponse:
    return _error(400, "A path is required: /api/v1.0/director/namespaces/prefix/<path>")


@director_router.get("/namespaces/prefix/{path:path}", summary="Longest origin namespace of a path")
def namespace_prefix(request: HttpRequest, path: str) -> HttpResponse:
    try:
        cleaned = clean_path(path)
    except PathError as error:
        return _error(400, f"{error}.")
    if cleaned == "/":
        return _error(400, "A path other than '/' is required")
    prefix, _ = registry.current().longest_match(cleaned, time.time(), ServerKind.ORIGIN)
    if not prefix:
        return _error(404, f"No namespace found for path {cleaned}")
    return _json({"prefix": prefix})


@director_router.get("/directors", summary="This director's own advertisement")
def directors(request: HttpRequest) -> HttpResponse:
    expiry = timezone.now() + dt.timedelta(seconds=settings.DIRECTOR_AD_TTL)
    return _json(
        [
            {
                "name": settings.DIRECTOR_NAME,
                "startTime": int(registry.PROCESS_STARTED_AT),
                "instanceID": INSTANCE_ID,
                "generationID": 0,
                "version": __version__,
                "expiry": expiry.isoformat().replace("+00:00", "Z"),
                "advertise_url": external_url(request),
            }
        ]
    )


# --- director_ui ---------------------------------------------------------------------------


def _filtered_type(server: Server, now: dt.datetime) -> str:
    reason = server.unroutable_reason(now)
    return reason.filtered_type if reason is not None else ""


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def downtime_json(downtime: Downtime) -> dict[str, Any]:
    return {
        "active": downtime.active,
        "id": downtime.external_id or str(downtime.pk),
        "serverName": downtime.server.name,
        "source": downtime.source,
        "class": downtime.downtime_class,
        "severity": downtime.severity,
        "description": downtime.description,
        "startTime": int(downtime.starts_at.timestamp() * 1000),
        "endTime": int(downtime.ends_at.timestamp() * 1000) if downtime.ends_at else -1,
    }


def server_json(server: Server, now: dt.datetime, *, full: bool = False) -> dict[str, Any]:
    filtered_type = _filtered_type(server, now)
    namespaces = list(server.namespaces.all())
    coordinate = {
        "Lat": server.latitude or 0.0,
        "Long": server.longitude or 0.0,
        "AccuracyRadius": 0,
        "Source": "declared" if server.latitude is not None else "",
        "FromTTLCache": False,
    }
    data: dict[str, Any] = {
        "name": server.name,
        "serverId": str(server.pk),
        "storageType": server.storage_type,
        "disableDirectorTest": server.director_test_disabled,
        "authUrl": server.auth_url,
        "brokerUrl": server.broker_url,
        "url": server.data_url,
        "webUrl": server.web_url,
        "type": "Origin" if server.kind == Kind.ORIGIN else "Cache",
        "coordinate": coordinate,
        "latitude": server.latitude or 0.0,
        "longitude": server.longitude or 0.0,
        "capabilities": ui_caps(server.capabilities),
        "filtered": bool(filtered_type),
        "filteredType": filtered_type,
        "downtimes": [downtime_json(downtime) for downtime in server.downtimes.all()],
        "fromTopology": False,
        "healthStatus": server.health_status,
        "healthMessage": server.health_message,
        "healthCheckedAt": _iso(server.health_checked_at),
        "serverStatus": server.status,
        "ioLoad": 0.0,
        "statusWeight": server.status_weight,
        "statusWeightLastUpdate": int(server.status_weight_updated_at.timestamp())
        if server.status_weight_updated_at
        else 0,
        "registryPrefix": server.registry_prefix,
        "version": server.version,
        "enabled": server.enabled,
        "source": server.source,
        "expiresAt": _iso(server.expires_at),
        "lastAdvertisedAt": _iso(server.last_advertised_at),
    }
    if full:
        data["namespaces"] = [ui_namespace_json(namespace) for namespace in namespaces]
    else:
        data["namespacePrefixes"] = [namespace.path for namespace in namespaces]
    return data


def ui_namespace_json(namespace: Any) -> dict[str, Any]:
    return {
        "path": namespace.path,
        "capabilities": ui_caps(namespace.capabilities),
        "tokenGeneration": namespace.token_generations,
        "tokenIssuer": namespace.token_issuers,
        "fromTopology": namespace.from_topology,
    }


def _listed_servers() -> Any:
    """Servers whose ads have not lapsed (Pelican forgets lapsed ads), disabled included."""
    return (
        Server.objects.exclude(source=Source.ADVERTISED, expires_at__lte=timezone.now())
        .prefetch_related("namespaces", "downtimes")
        .order_by("kind", "name")
    )


@ui_router.get("/servers", summary="Origins and caches (server_type=origin|cache)")
def ui_servers(request: HttpRequest, server_type: str | None = None) -> HttpResponse:
    servers = _listed_servers()
    if server_type:  # absent or empty: no filter
        if server_type.lower() not in (Kind.ORIGIN, Kind.CACHE):
            return _error(400, f"server_type must be 'origin' or 'cache', not {server_type!r}")
        servers = servers.filter(kind=server_type.lower())
    now = timezone.now()
    return _json([server_json(server, now) for server in servers])


def _one_server(name: str) -> Server:
    server = _listed_servers().filter(name=name).first()
    if server is None:
        raise HttpError(404, f"No server named {name!r}")
    return server


@ui_router.get("/servers/{name}", summary="One server with its namespaces")
def ui_server(request: HttpRequest, name: str) -> HttpResponse:
    server = _one_server(name)
    return _json(server_json(server, timezone.now(), full=True))


@ui_router.get("/servers/{name}/namespaces", summary="The namespaces of one server")
def ui_server_namespaces(request: HttpRequest, name: str) -> HttpResponse:
    server = _one_server(name)
    return _json([ui_namespace_json(namespace) for namespace in server.namespaces.all()])


@ui_router.get("/servers/{name}/downtimes", summary="The downtimes of one server")
def ui_server_downtimes(request: HttpRequest, name: str) -> HttpResponse:
    server = _one_server(name)
    return _json([downtime_json(downtime) for downtime in server.downtimes.all()])


@ui_router.get("/downtimes", summary="Every downtime, from ads and from the admin")
def ui_downtimes(request: HttpRequest) -> HttpResponse:
    # As /servers: the servers of lapsed ads are forgotten, and so are their downtimes.
    downtimes = (
        Downtime.objects.select_related("server")
        .filter(server__in=_listed_servers())
        .order_by("starts_at", "server__name")
    )
    return _json([downtime_json(downtime) for downtime in downtimes])


@ui_router.get("/namespaces", summary="Namespaces with the origins and caches serving each")
def ui_namespaces(request: HttpRequest) -> HttpResponse:
    merged: dict[str, dict[str, Any]] = {}
    for server in _listed_servers().filter(enabled=True):
        for namespace in server.namespaces.all():
            entry = merged.get(namespace.path)
            if entry is None:
                entry = ui_namespace_json(namespace) | {"origins": [], "caches": []}
                merged[namespace.path] = entry
            entry["origins" if server.kind == Kind.ORIGIN else "caches"].append(server.name)
    return _json([merged[path] for path in sorted(merged)])


# --- stat pools and health -------------------------------------------------------------------


def pool_json(state: Any) -> dict[str, Any]:
    ejected_until = (
        (timezone.now() + dt.timedelta(seconds=state.ejected_for)) if state.ejected else None
    )
    return {
        "name": state.name,
        "type": state.kind,
        "url": state.url,
        "limit": state.limit,
        "active": state.active,
        "waiting": state.waiting,
        "maxWaiters": state.max_waiters,
        "ejectedUntil": _iso(ejected_until),
        "timesEjected": state.times_ejected,
        "consecutiveFailures": state.consecutive_failures,
        "cacheEntries": state.cache_entries,
        "saturated": state.saturated_recently,
        "outcomes": state.outcomes,
        "cachedOutcomes": state.cached_outcomes,
        "rejections": state.rejections,
    }


@ui_router.get("/stat/pools", summary="Per-server stat pools: limits, load, ejection, cache")
def stat_pools(request: HttpRequest) -> HttpResponse:
    states = sorted(presence.engine.states(), key=lambda state: (state.kind, state.name))
    return _json([pool_json(state) for state in states])


@health_router.get(
    "/health",
    summary="ok / degraded (a server saturated or ejected) / overloaded (503)",
    response={200: dict, 503: dict},
)
def health(request: HttpRequest) -> HttpResponse:
    verdict = assess(registry.current().settings.max_inflight_requests)
    return _json(
        {
            "status": verdict.status,
            "greenlets": verdict.greenlets,
            "inflight": verdict.inflight,
            "maxInflight": verdict.max_inflight,
            "loopLagSeconds": verdict.loop_lag_seconds,
            "saturatedServers": verdict.saturated_servers,
            "ejectedServers": verdict.ejected_servers,
            "reasons": verdict.reasons,
        },
        verdict.http_status,
    )
