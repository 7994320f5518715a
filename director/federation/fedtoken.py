"""The federation issuer's answers to servers (reference pelican-trust 3.3-3.4):
``getFedToken`` mints a federation token for a registered server, ``discoverServers``
lists the routable origins and caches for Prometheus. Each returns what the API sends,
or raises ``Refusal`` with Pelican's words."""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.conf import settings

from director import registry as routing_registry
from director.federation import advertise, issuer, polls, standing
from director.trust import tokens
from director.wire.errors import Refusal
from director.wire.tokens import bearer_token
from director.wire.types import SERVER_TYPE_NAMES, ServerKind


def _single(values: Sequence[str], *, missing: str, repeated: str) -> str:
    """The one value of a query parameter (NUL made harmless), refused with ``missing``
    when absent or empty and with ``repeated`` when given more than once."""
    if len(values) > 1:
        raise Refusal(403, repeated)
    if not values or not values[0]:
        raise Refusal(403, missing)
    return values[0].replace("\x00", "\ufffd")


def fed_token(
    *,
    hosts: Sequence[str],
    server_types: Sequence[str],
    authorization: str,
    authz: str,
    url: str,
    base_url: str,
) -> str:
    """``getFedToken`` (reference 3.3): a federation token for the server ``host`` of
    type ``sType``, proven with its advertise token (the Bearer header, else ``authz``).

    ``url`` is the request's path and query as Pelican quotes it in its refusals;
    ``base_url`` this director's public URL, whose names the advertise token's ``aud``
    must carry. The token minted names the federation's issuer (``issuer.minting_issuer``:
    its discovery URL, else DIRECTOR_EXTERNAL_URL's; 503 without either).
    """
    about = "the 'host' url parameter"
    host = _single(
        hosts,
        missing=f"no hostname found in {about}: {url}",
        repeated=f"multiple hostnames found in {about}: {url}",
    )
    sender = f"host '{host}' generated request with"
    about = "the 'sType' url parameter"
    server_type = _single(
        server_types,
        missing=f"{sender} no server type found in {about}: {url}",
        repeated=f"{sender} multiple server types in {about}: {url}",
    )
    try:
        kind = ServerKind(server_type.lower())
    except ValueError:
        raise Refusal(
            403,
            f"{sender} invalid server type '{server_type}' as value of 'sType' url parameter: "
            f"{url}",
        ) from None
    token = bearer_token(authorization) or authz.replace("\x00", "")
    if not token:
        raise Refusal(
            403,
            f"{sender} no authorization token in 'Authorization' header or 'authz' url parameter",
        )
    prefix = f"/{kind}s/{host}"
    # Checked now, at minting: the registration's status and keys as they are this moment.
    verdict = advertise.verify_membership(token, prefix, advertise.binding(base_url))
    if verdict.problem:
        # Pelican answers 500 here; a token that does not verify is the caller's doing.
        raise Refusal(403, "Failed to verify advertise token")
    if verdict.unapproved:
        raise Refusal(403, f"Host '{host}' has not been approved by an administrator")
    if not verdict.scoped:
        raise Refusal(403, "The provided advertise token was rejected")
    if standing.token_server_holds(prefix):
        raise Refusal(
            403,
            f"Host '{host}' advertises with a registration token of this director: a key "
            f"registered for {prefix} cannot obtain tokens in its name. An administrator can "
            "release it by deleting the server in the director's admin",
        )
    return issuer.signer().mint(
        issuer=issuer.minting_issuer(),
        subject=host,
        audience=[tokens.WLCG_AUDIENCE_ANY],
        scopes=fed_token_scopes(host),
        lifetime=settings.DIRECTOR_FED_TOKEN_LIFETIME,
    )


def fed_token_scopes(host: str) -> list[str]:
    """The read scopes of ``host``'s federation token: ``storage.read:/``, or in external
    registry mode one per prefix the registry's cache allowed prefixes give ``host``
    (the name of its verified registry prefix; ``director.federation.polls``). Refused
    when that list is empty (a token would grant nothing); 503 before the first map."""
    prefixes = polls.read_prefixes(host)
    if prefixes is None:
        return [f"{tokens.STORAGE_READ}:/"]
    if not prefixes:
        raise Refusal(
            403,
            f"Host '{host}' may serve no namespace (its AllowedPrefixes at the registry is "
            "empty): no federation token is issued for it",
        )
    return [f"{tokens.STORAGE_READ}:{prefix}" for prefix in prefixes]


def discovered_targets(authorization: str, base_url: str) -> list[dict[str, object]]:
    """``discoverServers`` (reference 3.4): every routable server with a web URL, as a
    Prometheus HTTP service discovery target, for a federation token with the
    service-discovery scope."""
    token = bearer_token(authorization)
    if not token:
        raise Refusal(403, "Authentication is required but no token is present.")
    try:
        issuer.verify_federation_token(
            token, issuer.federation_issuer(base_url), tokens.SERVICE_DISCOVERY
        )
    except tokens.TokenRejected as rejected:
        raise Refusal(403, f"Failed to verify the token: {rejected}") from None
    snapshot = routing_registry.current()
    now = time.time()
    listed = [
        server for server in snapshot.servers.values() if server.web_url and server.routable(now)
    ]
    # One query: servers whose registration was withdrawn are left out even before
    # every process's snapshot has followed the change.
    withdrawn = standing.withdrawn([server.key for server in listed])
    targets: list[dict[str, object]] = []
    for server in listed:
        if server.key in withdrawn:
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
                    "server_type": SERVER_TYPE_NAMES[server.kind],
                    "server_url": server.url,
                    "server_web_url": server.web_url,
                },
            }
        )
    return targets
