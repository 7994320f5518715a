"""Who owns the namespace around and inside a prefix (issue 24): key chaining by the
nearest owner, and the prefixes this director's registration tokens serve.

Key chaining (``DIRECTOR_REQUIRE_KEY_CHAINING``; Pelican's reference 1.4 step 6 accepts
a key of *any* registration above or below): a namespace inside registered ones needs a
key of the **nearest** (longest) enclosing registration; a namespace around registered
ones needs a key of **every** top-level registration inside it (those with no other
registration between them and it). Both apply to a prefix that is inside one and around
others. Denied registrations own nothing (they no longer block their prefix either).

Registration tokens: a Pelican registration may not be made of a server prefix a live
token advertises under, nor of a namespace inside or around one a live token may serve
(its namespace prefixes) or that a server advertised under such a token: a 403 naming
the token. An administrator who wants Pelican's way there revokes the token first.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from director.models import (
    Namespace,
    NamespaceRegistration,
    RegistrationKind,
    RegistrationStatus,
    RegistrationToken,
    Source,
)
from director.trust import keys
from director.trust import registry as protocol

CHAINING_REFUSED = (
    "Cannot register a namespace that is suffixed or prefixed by an already-registered "
    "namespace unless the incoming public key matches a registered key"
)


@dataclass(frozen=True)
class Nesting:
    """What a namespace prefix would nest in (the nearest enclosing registration) and
    around (the top-level registrations inside it)."""

    enclosing: NamespaceRegistration | None
    inside: list[NamespaceRegistration]


def _owners() -> QuerySet[NamespaceRegistration]:
    return NamespaceRegistration.objects.filter(kind=RegistrationKind.NAMESPACE).exclude(
        status=RegistrationStatus.DENIED
    )


def nesting(prefix: str) -> Nesting:
    owners = _owners().exclude(prefix=prefix)
    above = {row.prefix: row for row in owners.filter(prefix__in=protocol.ancestors(prefix))}
    below = {row.prefix: row for row in owners.filter(prefix__startswith=prefix + "/")}
    nearest = protocol.nearest_enclosing(prefix, above)
    return Nesting(
        enclosing=above[nearest] if nearest else None,
        inside=[below[other] for other in protocol.top_level_inside(prefix, below)],
    )


def _holds(registration: NamespaceRegistration, jwk: dict[str, str]) -> bool:
    try:
        return keys.parse_key_set(registration.pubkey).has_key(jwk)
    except keys.KeySetError:
        return False  # an unusable stored set (logged where it is read) matches no key


def chaining_allows(prefix: str, key_set: keys.KeySet) -> bool:
    """May ``key_set`` (its first key, the one that signed) register namespace ``prefix``?"""
    found = nesting(prefix)
    first = key_set.first()
    if found.enclosing is not None and not _holds(found.enclosing, first):
        return False
    return all(_holds(registration, first) for registration in found.inside)


def _related(prefix: str, other: str) -> bool:
    """One is the other, or inside it, by path component."""
    prefix, other = prefix.rstrip("/") or "/", other.rstrip("/") or "/"
    if "/" in (prefix, other) or prefix == other:
        return True
    return prefix.startswith(other + "/") or other.startswith(prefix + "/")


def token_owner(prefix: str) -> str | None:
    """The live registration token that owns ``prefix`` or a namespace inside or around it,
    described for a message, or None."""
    tokens = list(RegistrationToken.objects.live().order_by("pk"))
    if protocol.is_server_prefix(prefix):
        owner = next((token for token in tokens if token.registry_prefix == prefix), None)
        return _described(owner) if owner else None
    for token in tokens:
        if any(_related(prefix, allowed) for allowed in token.allowed_namespaces()):
            return _described(token)
    by_prefix = {token.registry_prefix: token for token in reversed(tokens)}
    around = Q(path__startswith=prefix + "/") | Q(path__in=[*protocol.ancestors(prefix), prefix])
    advertised = (
        Namespace.objects.filter(
            server__source=Source.ADVERTISED, server__registry_prefix__in=list(by_prefix)
        )
        .filter(around)
        .values_list("server__registry_prefix", "path")
        .first()
    )
    if advertised is None:
        return None
    return f"{_described(by_prefix[advertised[0]])}, which serves {advertised[1]}"


def _described(token: RegistrationToken) -> str:
    return f"registration token #{token.pk} of {token.registry_prefix}"
