"""The registry service (reference pelican-trust 1): what a Pelican origin or cache asks
at start-up and before each advertisement, answered from ``NamespaceRegistration``.

Each function takes the parsed request body and returns an ``Answer`` (a success's status
and the JSON body Pelican's registry gives) or raises ``Refusal`` with Pelican's error;
key updates are in ``keyupdates``, single-use challenges in ``challenges``, key chaining
and registration tokens' prefixes in ``chaining``. Differences from Pelican, each listed
in the README: a failed proof of key possession is 403 (Pelican: 500), an existing prefix
sent with another key is 403 (Pelican: 200 "already registered") unless it was denied (a
new registration then replaces it), a challenge is good for one commit.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from director.federation import chaining, challenges, inactive, issuer, standing
from director.models import (
    ChallengePurpose,
    NamespaceRegistration,
    RegistrationKind,
    RegistrationStatus,
)
from director.trust import keys
from director.trust import registry as protocol
from director.wire.documents import json_bytes
from director.wire.errors import Refusal
from director.wire.gotime import GO_ZERO_TIME, go_time

logger = logging.getLogger(__name__)

LAST_SEEN_RESOLUTION = dt.timedelta(minutes=10)
PELICAN_STATUS = {
    RegistrationStatus.PENDING: "Pending",
    RegistrationStatus.APPROVED: "Approved",
    RegistrationStatus.DENIED: "Denied",
}
REGISTER_DENIED = "You don't have permission to register the prefix: "
REGISTER_BAD = "Bad request for key-sign challenge: "
# With all six the request is a commit; with only a client nonce, an init.
CHALLENGE_FIELDS = (
    "client_nonce",
    "client_payload",
    "client_signature",
    "server_nonce",
    "server_payload",
    "server_signature",
)
# prefix_jwks's answer while a registration awaits approval, in Pelican's words.
UNAPPROVED = {
    RegistrationKind.CACHE: "The cache has not been approved by federation administrator",
    RegistrationKind.ORIGIN: "The origin has not been approved by a federation administrator",
    RegistrationKind.NAMESPACE: "The namespace has not been approved by a federation administrator",
}


@dataclass(frozen=True)
class Answer:
    """A success: its status (200, or 201 for a new registration) and its JSON body."""

    status: int
    body: dict[str, Any]


def _registry_keys() -> list[jwt.PyJWK]:
    return list(issuer.verification_keys().values())


def accepted(registration: NamespaceRegistration) -> bool:
    return registration.accepted(
        require_origin_approval=settings.DIRECTOR_REQUIRE_ORIGIN_APPROVAL,
        require_cache_approval=settings.DIRECTOR_REQUIRE_CACHE_APPROVAL,
    )


def stored_key_set(registration: NamespaceRegistration) -> keys.KeySet | None:
    try:
        return keys.parse_key_set(registration.pubkey)
    except keys.KeySetError:
        logger.warning("registration %s holds an unusable key set", registration.prefix)
        return None


# --- POST /api/v1.0/registry ---------------------------------------------------------------


def register(body: dict[str, Any], client_address: str = "") -> Answer:
    """Challenge init (a client nonce alone) or commit (all six challenge fields)."""
    if str(body.get("identity_required", "")).lower() == "true":
        raise Refusal(
            400,
            REGISTER_BAD + "registration with an OIDC identity is not supported by this "
            "registry; register without it and ask an administrator to approve the prefix",
        )
    if all(body.get(name) for name in CHALLENGE_FIELDS):
        return _commit(body, client_address)
    if body.get("client_nonce"):
        inactive.expire_inactive()
        return Answer(
            200,
            challenges.issue(
                str(body["client_nonce"]), ChallengePurpose.REGISTRATION, client_address
            ),
        )
    raise Refusal(400, REGISTER_BAD + "Key sign challenge is missing parameters")


def proof_holds(body: dict[str, Any], key_set: keys.KeySet) -> bool:
    return protocol.registry_signed(
        _registry_keys(),
        body["client_nonce"],
        body["server_nonce"],
        body["server_payload"],
        body["server_signature"],
    ) and protocol.client_signed(
        key_set, body["client_nonce"], body["server_nonce"], body["client_signature"]
    )


def _commit(body: dict[str, Any], client_address: str) -> Answer:
    """A registration's commit: the proof, then, in one transaction, the challenge taken
    (it stays taken whatever the answer) and the registration checked and stored."""
    try:
        key_set = keys.parse_key_set(body.get("pubkey"))
    except keys.KeySetError as problem:
        raise Refusal(
            400, f"{REGISTER_BAD}couldn't parse the pubkey from the request: {problem}"
        ) from None
    if not proof_holds(body, key_set):
        raise Refusal(
            403,
            REGISTER_DENIED + "Unable to verify the client's public key, or the registry's "
            "own signature of the challenge",
        )
    try:
        prefix = protocol.validate_prefix(str(body.get("prefix", "")))
    except protocol.PrefixError as problem:
        raise Refusal(
            400,
            f"{REGISTER_BAD}requested namespace {body.get('prefix')} failed validation: {problem}",
        ) from None
    refusal: Refusal | None = None
    with transaction.atomic():
        challenges.take(body, ChallengePurpose.REGISTRATION, REGISTER_DENIED)
        try:
            answer = _register(prefix, key_set, body, client_address)
        except Refusal as refused:
            refusal = refused  # raised once the challenge is taken for good
    if refusal is not None:
        raise refusal
    return answer


def _register(
    prefix: str, key_set: keys.KeySet, body: dict[str, Any], client_address: str
) -> Answer:
    site_name = str(body.get("site_name") or "").strip()
    existing = NamespaceRegistration.objects.filter(prefix=prefix).first()
    replaced: NamespaceRegistration | None = None
    if existing is not None:
        stored = stored_key_set(existing)
        if stored is not None and stored.has_key(key_set.first()):
            return Answer(
                200,
                {"message": f"The prefix {prefix} is already registered -- nothing else to do!"},
            )
        if existing.status != RegistrationStatus.DENIED:
            raise Refusal(
                403, f"{REGISTER_DENIED}The prefix {prefix} is registered with another key"
            )
        replaced = existing  # a denial refused that key, it does not keep the prefix
    owner = chaining.token_owner(prefix)
    if owner is not None:
        raise Refusal(
            403,
            f"{REGISTER_DENIED}{prefix} is, or is inside or around, a prefix of {owner}: "
            "it advertises with this director's registration tokens, not Pelican's keys",
        )
    server_id = str(body.get("server_id") or "")
    if protocol.is_server_prefix(prefix) and site_name:
        server = _server_registration(site_name)
        if server is not None:
            owned = stored_key_set(server)
            if owned is None or not protocol.signed_by_any(
                owned, body["client_nonce"], body["server_nonce"], body["client_signature"]
            ):
                raise Refusal(
                    403,
                    f"{REGISTER_DENIED}unable to verify you own the registered server "
                    f'"{site_name}"',
                )
            server_id = server.server_id  # a second service of one server (origin and cache)
    if not protocol.is_server_prefix(prefix) and settings.DIRECTOR_REQUIRE_KEY_CHAINING:
        if not chaining.chaining_allows(prefix, key_set):
            raise Refusal(403, REGISTER_DENIED + chaining.CHAINING_REFUSED)
    if not site_name:
        raise Refusal(400, f"{REGISTER_BAD}Site Name is required")
    if protocol.is_server_prefix(prefix):
        clash = NamespaceRegistration.objects.filter(server_id=server_id).exclude(
            site_name=site_name
        )
        if replaced is not None:
            clash = clash.exclude(pk=replaced.pk)
        if not server_id or clash.exists():
            raise Refusal(
                409,
                f'Server ID "{server_id}" already exists or is empty. Please try again with '
                "another server ID",
            )
    description = (
        "This is a namespace registration from Pelican CLI or an automated "
        "registration. Certain fields may not be populated"
    )
    try:
        with transaction.atomic():
            if replaced is not None:
                description += _replacement_note(replaced)
                replaced.delete()
            NamespaceRegistration.objects.create(
                prefix=prefix,
                pubkey=json_bytes(key_set.as_json()).decode(),
                status=RegistrationStatus.PENDING,  # whatever the request says
                site_name=site_name,
                server_id=server_id if protocol.is_server_prefix(prefix) else "",
                description=description,
                registered_from=client_address[:64],
            )
    except IntegrityError:  # another commit registered the prefix a moment before this one
        winner = NamespaceRegistration.objects.filter(prefix=prefix).first()
        stored = stored_key_set(winner) if winner is not None else None
        if stored is None or not stored.has_key(key_set.first()):
            raise Refusal(
                403, f"{REGISTER_DENIED}The prefix {prefix} is registered with another key"
            ) from None
        return Answer(
            200, {"message": f"The prefix {prefix} is already registered -- nothing else to do!"}
        )
    logger.info("registry: %s registered by %s, pending approval", prefix, site_name)
    return Answer(201, {"message": f"Prefix {prefix} successfully registered"})


def _replacement_note(replaced: NamespaceRegistration) -> str:
    """The history of a denied registration a new one replaces, kept in its description."""
    logger.info(
        "registry: the denied registration of %s (site %s) is replaced by a new one",
        replaced.prefix,
        replaced.site_name,
    )
    return (
        f"\n\nReplaces a denied registration of {replaced.prefix} (site "
        f"{replaced.site_name or '?'}, from {replaced.registered_from or '?'}, registered "
        f"{replaced.created_at:%Y-%m-%d %H:%M:%S} UTC) made with other keys: {replaced.pubkey}"
    )


def _server_registration(site_name: str) -> NamespaceRegistration | None:
    """The server that owns ``site_name``: its first registration not denied."""
    return (
        NamespaceRegistration.objects.filter(site_name=site_name)
        .exclude(server_id="")
        .exclude(status=RegistrationStatus.DENIED)
        .order_by("pk")
        .first()
    )


# --- the checks a server makes -----------------------------------------------------------------


def check_exists(prefix: str, pubkey: str) -> Answer:
    """``checkNamespaceExists`` (1.2): is ``prefix`` registered, and with this key?"""
    if not prefix:
        raise Refusal(400, "prefix is required")
    if not pubkey:
        raise Refusal(400, "pubkey is required")
    try:
        parsed = json.loads(pubkey)
    except ValueError:
        raise Refusal(400, f"pubkey is not a valid JWK string: {pubkey}") from None
    candidates = parsed.get("keys") if isinstance(parsed, dict) and "keys" in parsed else [parsed]
    if not isinstance(candidates, list) or len(candidates) != 1:
        raise Refusal(400, f"pubkey is a jwks with multiple or zero key: {pubkey}")
    try:
        given, _ = keys.parse_jwk(candidates[0])
    except keys.KeySetError:
        raise Refusal(400, f"pubkey is not a valid JWK string: {pubkey}") from None
    registration = NamespaceRegistration.objects.filter(prefix=prefix).first()
    if registration is None:
        return Answer(200, _exists(False, False, "Prefix was not found in database"))
    stored = stored_key_set(registration)
    if stored is None or not any(jwk["kid"] == given["kid"] for jwk in stored.jwks):
        return Answer(
            200, _exists(True, False, "Given JWK is not present in the JWKS from database")
        )
    if not stored.has_key(given):
        return Answer(
            200, _exists(True, False, "Given JWK does not equal to the JWK from database")
        )
    return Answer(200, _exists(True, True, ""))


def _exists(prefix_exists: bool, key_match: bool, message: str) -> dict[str, Any]:
    return {"prefix_exists": prefix_exists, "key_match": key_match, "message": message, "error": ""}


def check_approval(prefix: str) -> Answer:
    """``checkNamespaceStatus`` (1.9), with approval decided by type (``accepted``)."""
    if not prefix:
        raise Refusal(400, "prefix is required")
    registration = NamespaceRegistration.objects.filter(prefix=prefix).first()
    if registration is None:
        raise Refusal(400, f"The namespace {prefix} does not exist in the registry")
    return Answer(200, {"approved": accepted(registration)})


def check_complete(prefixes: Sequence[str], base_url: str) -> Answer:
    """``namespaces/check/status`` (1.5): every registration here is complete (no
    admin field is required); ``edit_url`` is its page in the admin."""
    found = {
        registration.prefix: registration
        for registration in NamespaceRegistration.objects.filter(prefix__in=list(prefixes))
    }
    results = {}
    for prefix in prefixes:
        registration = found.get(prefix)
        if registration is None:
            results[prefix] = {
                "edit_url": "",
                "complete": False,
                "msg": f"Namespace {prefix} does not exist",
            }
        else:
            results[prefix] = {
                "edit_url": (
                    f"{base_url}/admin/director/namespaceregistration/{registration.pk}/change/"
                ),
                "complete": True,
                "msg": "",
            }
    return Answer(200, {"results": results})


def prefix_jwks(prefix: str) -> Answer:
    """``<prefix>/.well-known/issuer.jwks`` (1.10): 403 while approval is missing."""
    registration = NamespaceRegistration.objects.filter(prefix=prefix).first()
    if registration is None:
        raise Refusal(404, f"namespace prefix '{prefix}', was not found")
    if not accepted(registration):
        raise Refusal(403, UNAPPROVED[RegistrationKind(protocol.registration_kind(prefix))])
    stored = stored_key_set(registration)
    return Answer(200, stored.as_json() if stored else {"keys": []})


def prefix_openid_configuration(prefix: str, base_url: str) -> Answer:
    """``<prefix>/.well-known/openid-configuration`` (1.10): where its keys are."""
    if not NamespaceRegistration.objects.filter(prefix=prefix).exists():
        raise Refusal(
            404, f"The requested prefix {prefix} does not exist in the registry's database"
        )
    return Answer(
        200, {"jwks_uri": f"{base_url}/api/v1.0/registry{prefix}/.well-known/issuer.jwks"}
    )


def cache_allowed_prefixes() -> Answer:
    """``GET caches/allowedPrefixes``, which Pelican's director (and this one in external
    registry mode) polls every minute: cache name -> the namespaces it may serve. This
    registry stores no ``AllowedPrefixes`` custom field, so no cache is restricted: the
    empty map, Pelican's "no entry = serve anything" for every cache."""
    return Answer(200, {})


def server_record(prefix: str) -> Answer:
    """``server/<prefix>`` (1.6): the server's registry ID and name, before each ad."""
    registration = NamespaceRegistration.objects.filter(prefix=prefix).exclude(server_id="").first()
    if registration is None:
        raise Refusal(404, "Server not found for the given prefix")
    services = list(
        NamespaceRegistration.objects.filter(server_id=registration.server_id).order_by("pk")
    )
    now = timezone.now()
    if registration.last_seen_at is None or now - registration.last_seen_at >= LAST_SEEN_RESOLUTION:
        NamespaceRegistration.objects.filter(pk=registration.pk).update(last_seen_at=now)
    return Answer(
        200,
        {
            "id": registration.server_id,
            "name": registration.site_name,
            "is_origin": any(service.kind == RegistrationKind.ORIGIN for service in services),
            "is_cache": any(service.kind == RegistrationKind.CACHE for service in services),
            "note": "",
            "registration": [registration_json(service) for service in services],
        },
    )


def _go_time(value: dt.datetime | None) -> str:
    """A JSON ``time.Time``; Go's zero time for one never set (``approved_at`` of a
    registration not approved yet)."""
    return go_time(value) if value is not None else GO_ZERO_TIME


def registration_json(registration: NamespaceRegistration) -> dict[str, Any]:
    """Pelican's Registration shape, with nothing of a person: no identity, and
    ``approver_id`` empty as for a registration not approved yet (the approving
    administrator's user name would name whom the per-user-name login lockout locks out;
    ``status`` and ``approved_at`` still say that and when it was approved)."""
    return {
        "id": registration.pk,
        "prefix": registration.prefix,
        "pubkey": registration.pubkey,
        "identity": "",
        "admin_metadata": {
            "user_id": "",
            "description": registration.description,
            "site_name": registration.site_name,
            "institution": registration.institution,
            "security_contact_user_id": "",
            "status": PELICAN_STATUS.get(RegistrationStatus(registration.status), "Unknown"),
            "approver_id": "",
            "approved_at": _go_time(registration.approved_at),
            "created_at": _go_time(registration.created_at),
            "updated_at": _go_time(registration.updated_at),
        },
        "custom_fields": {},
    }


# --- approval (the admin's actions and ``manage.py approvenamespace``) ----------------------


def decide(prefixes: Sequence[str], status: RegistrationStatus, by: str) -> int:
    """Approve or deny registrations; each decision is logged. Returns how many changed.

    A denial takes effect at once: the servers advertised under the denied prefixes
    leave routing now (``standing.registrations_withdrawn``), not when their ads expire."""
    now = timezone.now()
    changed = 0
    denied: list[str] = []
    with transaction.atomic():
        for registration in NamespaceRegistration.objects.select_for_update().filter(
            prefix__in=list(prefixes)
        ):
            if registration.status == status:
                continue
            registration.status = status
            registration.approved_by = by if status == RegistrationStatus.APPROVED else ""
            registration.approved_at = now if status == RegistrationStatus.APPROVED else None
            registration.save(update_fields=["status", "approved_by", "approved_at", "kind"])
            logger.info(
                "registry: %s %s by %s", registration.prefix, status.label.lower(), by or "?"
            )
            changed += 1
            if status == RegistrationStatus.DENIED:
                denied.append(registration.prefix)
        if denied:
            why = f"their registration was denied by {by or '?'}"
            standing.registrations_withdrawn(denied, why)
    return changed
