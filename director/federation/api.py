"""HTTP routes of the registry (``/api/v1.0/registry``, reference pelican-trust 1.13) and
of the federation issuer under ``/api/v1.0/director`` (``getFedToken``,
``discoverServers``). Thin: they parse and answer what ``registry``, ``advertise`` and
``issuer`` decide."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Status

from director import registry as routing_registry
from director.federation import advertise, issuer
from director.federation import registry as service
from director.federation.schemas import (
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
    ServerRecordOut,
    TokenOut,
)
from director.locate import external_url
from director.schemas import ErrorOut
from director.trust import tokens
from director.wire.types import ServerKind

registry_router = Router(tags=["registry"], by_alias=True)
issuer_router = Router(tags=["federation issuer"], by_alias=True)

REGISTRY_OFF = (
    "This director does not serve Pelican's registry (DIRECTOR_PELICAN_REGISTRATION=0); "
    "register with a registration token instead"
)


def _answer(answer: service.Answer) -> Status[Any]:
    return Status(answer.status, answer.body)


def _off() -> Status[ErrorOut] | None:
    if settings.DIRECTOR_PELICAN_REGISTRATION:
        return None
    return Status(404, ErrorOut(msg=REGISTRY_OFF))


def _path_prefix(prefix: str) -> str:
    """The prefix of a path parameter; a NUL (which no column can hold) makes it one that
    is never registered."""
    return "/" + prefix.strip("/").replace("\x00", "\ufffd")


def _client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", ""))


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
    },
)
def register(request: HttpRequest, body: RegistrationIn) -> Status[Any]:
    if (off := _off()) is not None:
        return off
    if body.identity_required.lower() == "true":
        return Status(
            400,
            ErrorOut(
                msg=service.REGISTER_BAD + "registration with an OIDC identity is not "
                "supported by this registry; register without it and ask an administrator "
                "to approve the prefix"
            ),
        )
    return _answer(service.register(body.model_dump(), _client_address(request)))


@registry_router.post(
    "/checkNamespaceExists",
    summary="Is a prefix registered, and with this key?",
    response={200: ExistsOut, 400: ErrorOut, 404: ErrorOut},
)
def check_namespace_exists(request: HttpRequest, body: ExistsIn) -> Status[Any]:
    if (off := _off()) is not None:
        return off
    return _answer(service.check_exists(body.prefix, body.pubkey))


def _check_approval(body: PrefixIn) -> Status[Any]:
    if (off := _off()) is not None:
        return off
    return _answer(service.check_approval(body.prefix))


@registry_router.post(
    "/checkNamespaceStatus",
    summary="Is a prefix approved?",
    response={200: ApprovalOut, 400: ErrorOut, 404: ErrorOut},
)
def check_namespace_status(request: HttpRequest, body: PrefixIn) -> Status[Any]:
    return _check_approval(body)


@registry_router.post(
    "/namespaces/check/approval",
    summary="Is a prefix approved? (the same as checkNamespaceStatus)",
    response={200: ApprovalOut, 400: ErrorOut, 404: ErrorOut},
)
def check_approval(request: HttpRequest, body: PrefixIn) -> Status[Any]:
    return _check_approval(body)


@registry_router.post(
    "/namespaces/check/status",
    summary="Are these registrations complete?",
    response={200: CompletenessResultsOut, 400: ErrorOut, 404: ErrorOut},
)
def check_complete(request: HttpRequest, body: PrefixesIn) -> Status[Any]:
    if (off := _off()) is not None:
        return off
    return _answer(service.check_complete(body.prefixes, external_url(request)))


@registry_router.post(
    "/updateNamespacesPubKey",
    summary="Replace the keys of registered prefixes (proven with a registered key)",
    response={200: KeyUpdateChallengeOut | MessageOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut},
)
def update_namespaces_pubkey(request: HttpRequest, body: KeyUpdateIn) -> Status[Any]:
    if (off := _off()) is not None:
        return off
    return _answer(service.update_keys(body.model_dump()))


@registry_router.get(
    "/server/{path:prefix}",
    summary="A server's registry record (its ID and name), asked before each ad",
    response={200: ServerRecordOut, 404: ErrorOut},
)
def server_record(request: HttpRequest, prefix: str) -> Status[Any]:
    if (off := _off()) is not None:
        return off
    return _answer(service.server_record(_path_prefix(prefix)))


@registry_router.get(
    "/{path:prefix}/.well-known/issuer.jwks",
    summary="The public keys registered for a prefix (403 until approved)",
    response={200: JwksOut, 403: ErrorOut, 404: ErrorOut},
)
def prefix_jwks(request: HttpRequest, prefix: str) -> Status[Any]:
    if (off := _off()) is not None:
        return off
    return _answer(service.prefix_jwks(_path_prefix(prefix)))


@registry_router.get(
    "/{path:prefix}/.well-known/openid-configuration",
    summary="Where the keys of a prefix are",
    response={200: JwksUriOut, 404: ErrorOut},
)
def prefix_openid_configuration(request: HttpRequest, prefix: str) -> Status[Any]:
    if (off := _off()) is not None:
        return off
    return _answer(service.prefix_openid_configuration(_path_prefix(prefix), external_url(request)))


# --- the federation issuer's API -------------------------------------------------------------


def _bearer(request: HttpRequest) -> str:
    authorization = str(request.META.get("HTTP_AUTHORIZATION", ""))
    return authorization[7:].strip() if authorization.startswith("Bearer ") else ""


def _one(request: HttpRequest, name: str) -> tuple[str, str]:
    """The single value of query parameter ``name``, or ('', problem)."""
    values = [value.replace("\x00", "\ufffd") for value in request.GET.getlist(name)]
    if len(values) > 1:
        return "", "multiple"
    return (values[0], "") if values and values[0] else ("", "none")


@issuer_router.get(
    "/getFedToken",
    summary="A federation token for a registered server (Pelican's getFedToken)",
    response={200: TokenOut, 403: ErrorOut},
)
def get_fed_token(request: HttpRequest, host: str = "", sType: str = "") -> Status[Any]:  # noqa: N803
    url = request.get_full_path()
    host, host_problem = _one(request, "host")
    if host_problem == "none":
        return Status(403, ErrorOut(msg=f"no hostname found in the 'host' url parameter: {url}"))
    if host_problem:
        return Status(
            403, ErrorOut(msg=f"multiple hostnames found in the 'host' url parameter: {url}")
        )
    kind, kind_problem = _one(request, "sType")
    if kind_problem == "none":
        return Status(
            403,
            ErrorOut(
                msg=f"host '{host}' generated request with no server type found in the "
                f"'sType' url parameter: {url}"
            ),
        )
    if kind_problem:
        return Status(
            403,
            ErrorOut(
                msg=f"host '{host}' generated request with multiple server types in the "
                f"'sType' url parameter: {url}"
            ),
        )
    if kind.lower() not in ("origin", "cache"):
        return Status(
            403,
            ErrorOut(
                msg=f"host '{host}' generated request with invalid server type '{kind}' as "
                f"value of 'sType' url parameter: {url}"
            ),
        )
    token = _bearer(request) or request.GET.get("authz", "").replace("\x00", "")
    if not token:
        return Status(
            403,
            ErrorOut(
                msg=f"host '{host}' generated request with no authorization token in "
                "'Authorization' header or 'authz' url parameter"
            ),
        )
    verdict = advertise.verify_membership(token, f"/{kind.lower()}s/{host}")
    if verdict.problem:
        # Pelican answers 500 here; a token that does not verify is the caller's doing.
        return Status(403, ErrorOut(msg="Failed to verify advertise token"))
    if verdict.unapproved:
        return Status(403, ErrorOut(msg=f"Host '{host}' has not been approved by an administrator"))
    if not verdict.scoped:
        return Status(403, ErrorOut(msg="The provided advertise token was rejected"))
    minted = issuer.signer().mint(
        issuer=issuer.issuer_url(external_url(request)),
        subject=host,
        audience=[tokens.WLCG_AUDIENCE_ANY],
        scopes=[f"{tokens.STORAGE_READ}:/"],
        lifetime=settings.DIRECTOR_FED_TOKEN_LIFETIME,
    )
    return Status(200, TokenOut(access_token=minted, error=""))


@issuer_router.get(
    "/discoverServers",
    summary="Origins and caches for Prometheus HTTP service discovery (federation token)",
    response={200: list[DiscoveredTargetOut], 403: ErrorOut},
)
def discover_servers(request: HttpRequest) -> Status[Any]:
    token = _bearer(request)
    if not token:
        return Status(403, ErrorOut(msg="Authentication is required but no token is present."))
    try:
        issuer.verify_federation_token(
            token, issuer.issuer_url(external_url(request)), tokens.SERVICE_DISCOVERY
        )
    except tokens.TokenRejected as rejected:
        return Status(403, ErrorOut(msg=f"Failed to verify the token: {rejected}"))
    snapshot = routing_registry.current()
    now = time.time()
    targets = []
    for server in snapshot.servers.values():
        if not server.web_url or not server.routable(now):
            continue
        web = server.web_url.split("://", 1)[-1].split("/", 1)[0]
        default_port = "443" if server.web_url.startswith("https:") else "80"
        host_port = web if ":" in web.rsplit("]", 1)[-1] else f"{web}:{default_port}"
        targets.append(
            {
                "targets": [host_port],
                "labels": {
                    "server_auth_url": server.auth_url or server.url,
                    "server_lat": f"{server.latitude or 0.0:.4f}",
                    "server_long": f"{server.longitude or 0.0:.4f}",
                    "server_name": server.name,
                    "server_type": "Origin" if server.kind is ServerKind.ORIGIN else "Cache",
                    "server_url": server.url,
                    "server_web_url": server.web_url,
                },
            }
        )
    return Status(200, targets)
