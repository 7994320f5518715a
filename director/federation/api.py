"""HTTP routes of the registry (``/api/v1.0/registry``, reference pelican-trust 1.13) and
of the federation issuer under ``/api/v1.0/director`` (``getFedToken``,
``discoverServers``). Thin: they parse and answer what ``registry``, ``advertise`` and
``issuer`` decide."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec

from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Status

from director.federation import downtimes, external, fedtoken, keyupdates, refusals
from director.federation import registry as service
from director.federation.schemas import (
    AllowedPrefixesOut,
    ApprovalOut,
    ChallengeOut,
    CompletenessResultsOut,
    DiscoveredTargetOut,
    ExistsIn,
    ExistsOut,
    JwksOut,
    JwksUriOut,
    KeyUpdateChallengeOut,
    KeyUpdateIn,
    MessageOut,
    PrefixesIn,
    PrefixIn,
    RegistrationIn,
    RegistryDowntimeOut,
    ServerRecordOut,
    TokenOut,
)
from director.locate import client_ip, external_url
from director.schemas import ErrorOut
from director.wire.errors import Refusal

registry_router = Router(tags=["registry"], by_alias=True)
# Pelican serves the registry's downtimes beside, not under, /api/v1.0/registry.
registry_downtime_router = Router(tags=["registry"], by_alias=True)
issuer_router = Router(tags=["federation issuer"], by_alias=True)

REGISTRY_OFF = (
    "This director does not serve Pelican's registry (DIRECTOR_PELICAN_REGISTRATION=0); "
    "register with a registration token instead"
)


def external_registry_message() -> str:
    """The 404 of a registry route in external registry mode: where to register instead
    (the configured URL; no request is made to find it)."""
    where = settings.DIRECTOR_REGISTRY_URL or (
        f"the namespace_registration_endpoint of {settings.DIRECTOR_FEDERATION_DISCOVERY_URL}"
    )
    return (
        f"This director uses the federation's registry at {where} (DIRECTOR_REGISTRY_URL): "
        "register namespaces and servers there"
    )


def _answer(answer: service.Answer) -> Status[Any]:
    return Status(answer.status, answer.body)


P = ParamSpec("P")


def registry_served(handler: Callable[P, Status[Any]]) -> Callable[P, Status[Any]]:
    """A registry route, refused with 404 while this director does not serve Pelican's
    registry (``REGISTRY_OFF``), or uses an external one (``external_registry_message``:
    servers register there); checked after ninja has read the request, as before."""

    @functools.wraps(handler)
    def served(*args: P.args, **kwargs: P.kwargs) -> Status[Any]:
        if external.configured():
            raise Refusal(404, external_registry_message())
        if not settings.DIRECTOR_PELICAN_REGISTRATION:
            raise Refusal(404, REGISTRY_OFF)
        return handler(*args, **kwargs)

    return served


def _path_prefix(prefix: str) -> str:
    """The prefix of a path parameter; a NUL (which no column can hold) makes it one that
    is never registered."""
    return "/" + prefix.strip("/").replace("\x00", "\ufffd")


def _client_address(request: HttpRequest) -> str:
    """The client's address as the rest of the director sees it: behind a trusted proxy,
    the one it forwards (``locate.client_ip``), so challenge budgets are per client and
    ``registered_from`` names the client, not the proxy."""
    return client_ip(request)


@registry_router.post(
    "",
    summary="Register a prefix with its public keys: challenge init, then commit",
    response={
        200: ChallengeOut | MessageOut,
        201: MessageOut,
        400: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        429: ErrorOut,
    },
)
@registry_served
def register(request: HttpRequest, body: RegistrationIn) -> Status[Any]:
    return _answer(service.register(body.model_dump(), _client_address(request)))


@registry_router.post(
    "/checkNamespaceExists",
    summary="Is a prefix registered, and with this key?",
    response={200: ExistsOut, 400: ErrorOut, 404: ErrorOut},
)
@registry_served
def check_namespace_exists(request: HttpRequest, body: ExistsIn) -> Status[Any]:
    return _answer(service.check_exists(body.prefix, body.pubkey))


@registry_router.post(
    "/checkNamespaceStatus",
    summary="Is a prefix approved?",
    response={200: ApprovalOut, 400: ErrorOut, 404: ErrorOut},
)
@registry_served
def check_namespace_status(request: HttpRequest, body: PrefixIn) -> Status[Any]:
    return _answer(service.check_approval(body.prefix))


@registry_router.post(
    "/namespaces/check/approval",
    summary="Is a prefix approved? (the same as checkNamespaceStatus)",
    response={200: ApprovalOut, 400: ErrorOut, 404: ErrorOut},
)
@registry_served
def check_approval(request: HttpRequest, body: PrefixIn) -> Status[Any]:
    return _answer(service.check_approval(body.prefix))


@registry_router.post(
    "/namespaces/check/status",
    summary="Are these registrations complete?",
    response={200: CompletenessResultsOut, 400: ErrorOut, 404: ErrorOut},
)
@registry_served
def check_complete(request: HttpRequest, body: PrefixesIn) -> Status[Any]:
    return _answer(service.check_complete(body.prefixes, external_url(request)))


@registry_router.post(
    "/updateNamespacesPubKey",
    summary="Replace the keys of registered prefixes (proven with a registered key)",
    response={
        200: KeyUpdateChallengeOut | MessageOut,
        400: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        429: ErrorOut,
    },
)
@registry_served
def update_namespaces_pubkey(request: HttpRequest, body: KeyUpdateIn) -> Status[Any]:
    return _answer(keyupdates.update_keys(body.model_dump(), _client_address(request)))


@registry_router.get(
    "/caches/allowedPrefixes",
    summary="The namespaces each cache may serve (Pelican's AllowedPrefixes), polled by directors",
    response={200: AllowedPrefixesOut, 404: ErrorOut},
)
@registry_served
def cache_allowed_prefixes(request: HttpRequest) -> Status[Any]:
    return _answer(service.cache_allowed_prefixes())


@registry_router.get(
    "/server/{path:prefix}",
    summary="A server's registry record (its ID and name), asked before each ad",
    response={200: ServerRecordOut, 404: ErrorOut},
)
@registry_served
def server_record(request: HttpRequest, prefix: str) -> Status[Any]:
    return _answer(service.server_record(_path_prefix(prefix)))


@registry_router.get(
    "/{path:prefix}/.well-known/issuer.jwks",
    summary="The public keys registered for a prefix (403 until approved)",
    response={200: JwksOut, 403: ErrorOut, 404: ErrorOut},
)
@registry_served
def prefix_jwks(request: HttpRequest, prefix: str) -> Status[Any]:
    return _answer(service.prefix_jwks(_path_prefix(prefix)))


@registry_router.get(
    "/{path:prefix}/.well-known/openid-configuration",
    summary="Where the keys of a prefix are",
    response={200: JwksUriOut, 404: ErrorOut},
)
@registry_served
def prefix_openid_configuration(request: HttpRequest, prefix: str) -> Status[Any]:
    return _answer(service.prefix_openid_configuration(_path_prefix(prefix), external_url(request)))


@registry_downtime_router.get(
    "/downtime",
    summary="The registry's downtimes (active and future; ?status=all for every one)",
    response={200: list[RegistryDowntimeOut], 400: ErrorOut, 404: ErrorOut},
)
@registry_served
def registry_downtimes(request: HttpRequest, status: str = "", source: str = "") -> Status[Any]:
    return Status(200, downtimes.downtime_list(status, source))


# --- the federation issuer's API -------------------------------------------------------------


@issuer_router.get(
    "/getFedToken",
    summary="A federation token for a registered server (Pelican's getFedToken)",
    response={200: TokenOut, 403: ErrorOut, 429: ErrorOut, 503: ErrorOut},
)
def get_fed_token(request: HttpRequest, host: str = "", sType: str = "") -> Status[Any]:  # noqa: N803
    # The parameters declare the query in the OpenAPI document; fedtoken reads every value
    # given (a repeated one is refused). Refusals count per address, as ads' do.
    with refusals.counted(client_ip(request), "federation-token requests"):
        token = fedtoken.fed_token(
            hosts=request.GET.getlist("host"),
            server_types=request.GET.getlist("sType"),
            authorization=str(request.META.get("HTTP_AUTHORIZATION", "")),
            authz=request.GET.get("authz", ""),
            url=request.get_full_path(),
            base_url=external_url(request),
        )
    return Status(200, TokenOut(access_token=token, error=""))


@issuer_router.get(
    "/discoverServers",
    summary="Origins and caches for Prometheus HTTP service discovery (federation token)",
    response={200: list[DiscoveredTargetOut], 403: ErrorOut},
)
def discover_servers(request: HttpRequest) -> Status[Any]:
    authorization = str(request.META.get("HTTP_AUTHORIZATION", ""))
    return Status(200, fedtoken.discovered_targets(authorization, external_url(request)))
