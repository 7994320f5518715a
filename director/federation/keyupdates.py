"""Key rotation (reference pelican-trust 1.11, ``POST /api/v1.0/registry/updateNamespacesPubKey``):
a registered prefix's keys are replaced by a sender proving it holds the current key and
a key already registered for each prefix. Unlike Pelican, every prefix named is checked
and updated (Pelican: the first only), the new set must hold the signing key, and the
challenge is good for one commit within a few minutes (``challenges``): a captured update
cannot be sent again with other keys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from director.federation import challenges, standing
from director.federation.registry import (
    CHALLENGE_FIELDS,
    REGISTER_BAD,
    Answer,
    proof_holds,
    stored_key_set,
)
from director.models import ChallengePurpose, NamespaceRegistration
from director.trust import keys
from director.wire.documents import json_bytes
from director.wire.errors import Refusal

# The registry's logger: key updates were always logged under it.
logger = logging.getLogger("director.federation.registry")

UPDATE_DENIED = "You don't have permission to update the registered public key of the prefix: "


def update_keys(body: dict[str, Any], client_address: str = "") -> Answer:
    """Key rotation: a challenge init (the registered keys of each prefix come back) or
    a commit, proven with the current key and with a key already registered."""
    prefixes = [str(prefix) for prefix in body.get("prefixes") or []]
    if all(body.get(name) for name in CHALLENGE_FIELDS):
        return _update_commit(body, prefixes)
    if not body.get("client_nonce"):
        raise Refusal(400, REGISTER_BAD + "Key sign challenge is missing parameters")
    found = {
        registration.prefix: registration.pubkey
        for registration in NamespaceRegistration.objects.filter(prefix__in=prefixes)
    }
    missing = [prefix for prefix in prefixes if prefix not in found]
    if missing:
        raise Refusal(400, f"{REGISTER_BAD}the prefix {missing[0]} is not registered")
    answer = challenges.issue(
        str(body["client_nonce"]), ChallengePurpose.KEY_UPDATE, client_address
    )
    return Answer(
        200, {**answer, "registered_keys": {prefix: found[prefix] for prefix in prefixes}}
    )


def _update_commit(body: dict[str, Any], prefixes: list[str]) -> Answer:
    try:
        current = keys.parse_key_set(body.get("pubkey"))
        new_set = keys.parse_key_set(body.get("all_pubkeys"))
    except keys.KeySetError as problem:
        raise Refusal(400, f"{REGISTER_BAD}{problem}") from None
    if not prefixes:
        raise Refusal(400, f"{REGISTER_BAD}no prefixes to update")
    if not new_set.has_key(current.first()):
        raise Refusal(400, f"{REGISTER_BAD}all_pubkeys must hold the key that signed the request")
    if not proof_holds(body, current):
        raise Refusal(
            403,
            UPDATE_DENIED + "Unable to verify the client's public key, or the registry's own "
            "signature of the challenge",
        )
    proof = ProofOfPossession(
        matched_key_id=str(body.get("matched_key_id") or ""),
        nonces="".join((body["client_nonce"], body["server_nonce"])),
        signature=str(body.get("key_update_authz_signature") or ""),
    )
    messages = []
    with transaction.atomic():  # a refused commit still uses up its challenge
        challenges.take(body, ChallengePurpose.KEY_UPDATE, UPDATE_DENIED)
    # All or nothing: a prefix refused part-way rolls back the ones before it (a 403 must
    # not leave half the keys replaced).
    with transaction.atomic():
        registrations = {
            registration.prefix: registration
            for registration in NamespaceRegistration.objects.select_for_update().filter(
                prefix__in=prefixes
            )
        }
        for prefix in prefixes:
            messages.append(_update_one(prefix, registrations.get(prefix), new_set, proof))
    return Answer(200, {"message": " ".join(messages)})


@dataclass(frozen=True)
class ProofOfPossession:
    """A key update's proof that the sender holds a registered key of each prefix."""

    matched_key_id: str
    nonces: str  # the client's and the registry's nonce, as signed
    signature: str


def _update_one(
    prefix: str,
    registration: NamespaceRegistration | None,
    new_set: keys.KeySet,
    proof: ProofOfPossession,
) -> str:
    """Replace one prefix's keys, or raise Refusal; the message of its update."""
    if registration is None:
        raise Refusal(400, f"{REGISTER_BAD}the prefix {prefix} is not registered")
    stored = stored_key_set(registration)
    key = stored.keys.get(proof.matched_key_id) if stored is not None else None
    if stored is None or key is None:
        raise Refusal(
            403,
            f"{UPDATE_DENIED}The client that tries to update prefix '{prefix}' cannot be "
            "authorized because it doesn't contain any public key matching the existing "
            "namespace's public key in db",
        )
    if not keys.verify_payload(key, proof.nonces.encode(), proof.signature):
        raise Refusal(
            403,
            f"{UPDATE_DENIED}The client that tries to update prefix '{prefix}' cannot be "
            "authorized because it fails to pass the proof of possession verification",
        )
    if stored.thumbprints() == new_set.thumbprints():
        return f"The public key of prefix {prefix} hasn't changed -- nothing to update!"
    standing.keys_replaced(prefix, stored, new_set)  # the removed keys' ads expire now
    registration.pubkey = json_bytes(new_set.as_json()).decode()
    registration.save(update_fields=["pubkey", "kind", "updated_at"])
    logger.info("registry: the keys of %s were updated", prefix)
    return f"Updated the public key of namespace {prefix}:"
