"""Verified advertisements (reference pelican-trust 2.3-2.4): an ad's advertise token
must be signed by a key registered for its ``registry-prefix``, and for an origin by a
key of every namespace it serves, each registration accepted (approved), with the
``pelican.advertise`` scope.

Keys come from our own tables, one query per ad; each registration's key set is parsed
once (cached by its content) and the token's signature is checked once per distinct key,
however many namespaces share it. Unlike Pelican, the signature is checked before the
approval (an unsigned request learns nothing about approval), and a missing key is
never a stale cache: the tables are read for every ad.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from django.conf import settings

from director.models import NamespaceRegistration
from director.trust import keys, tokens
from director.trust import registry as protocol
from director.wire.documents import error_json
from director.wire.errors import ApprovalRefusal, Refusal
from director.wire.types import SERVER_TYPE_NAMES, ServerKind

PARSED_KEY_SETS: LRUCache[str, keys.KeySet | None] = LRUCache(maxsize=10_000)
MISSING_SCOPE = "Authorization token verification failed. Token missing required scope"


def _quoted(value: str) -> str:
    """As Go's %q writes a printable string."""
    return json.dumps(value, ensure_ascii=False)


def approval_help(base_url: str) -> str:
    """Pelican's help sentence of an approval error (Director.SupportContact*)."""
    email = settings.DIRECTOR_SUPPORT_CONTACT_EMAIL
    url = settings.DIRECTOR_SUPPORT_CONTACT_URL
    if email and url:
        return f"Contact {email} or visit {url} for help."
    if email:
        return f"Contact {email} for help."
    if url:
        return f"Visit {url} for help."
    return f"You may find more information on {base_url}"


def parsed_key_set(pubkey: str) -> keys.KeySet | None:
    """A registration's keys, parsed once per content of its key set (the cache key is
    the stored text, so a changed key set is parsed anew)."""
    if pubkey not in PARSED_KEY_SETS:
        try:
            PARSED_KEY_SETS[pubkey] = keys.parse_key_set(pubkey)
        except keys.KeySetError:
            PARSED_KEY_SETS[pubkey] = None
    return PARSED_KEY_SETS[pubkey]


@dataclass
class Verdict:
    """How one token fares against one prefix: ``problem`` (a verification error),
    ``unapproved`` or ``scoped`` (has pelican.advertise)."""

    problem: str = ""
    unapproved: bool = False
    scoped: bool = False


class TokenCheck:
    """One advertise token checked against the registrations of several prefixes: one
    query, the header read once, the signature checked once per distinct key."""

    def __init__(self, token: str, prefixes: Iterable[str]) -> None:
        self.token = token
        self.registrations = {
            prefix: (pubkey, status)
            for prefix, pubkey, status in NamespaceRegistration.objects.filter(
                prefix__in=set(prefixes)
            )
            .order_by()
            .values_list("prefix", "pubkey", "status")
        }
        try:
            self.kid, self.kid_problem = tokens.unverified_kid(token), ""
        except tokens.TokenRejected as rejected:
            self.kid, self.kid_problem = "", str(rejected)
        self._by_key: dict[str, dict[str, Any] | str] = {}  # thumbprint -> claims or error

    def _claims(self, key_set: keys.KeySet) -> dict[str, Any] | str:
        key_print = key_set.prints.get(self.kid)
        if key_print is None:
            return (
                f'failed to verify token signature: no key with kid "{self.kid}" in the key set '
                "registered for this prefix"
            )
        if key_print not in self._by_key:
            try:
                self._by_key[key_print] = tokens.verify(
                    self.token, {self.kid: key_set.keys[self.kid]}
                )
            except tokens.TokenRejected as rejected:
                self._by_key[key_print] = str(rejected)
        return self._by_key[key_print]

    def verdict(self, prefix: str) -> Verdict:
        found = self.registrations.get(prefix)
        if found is None:
            return Verdict(
                problem="failed to check namespace approval status: Registry returns error "
                "when checkNamespaceStatus 400 with body "
                + json.dumps(
                    error_json(f"The namespace {prefix} does not exist in the registry"),
                    separators=(",", ":"),
                )
            )
        pubkey, status = found
        key_set = parsed_key_set(pubkey)
        if key_set is None:
            return Verdict(problem=f"the keys registered for {prefix} cannot be read")
        if self.kid_problem:
            return Verdict(problem=self.kid_problem)
        claims = self._claims(key_set)
        if isinstance(claims, str):
            return Verdict(problem=claims)
        if not protocol.accepted(
            prefix,
            status,
            require_origin=settings.DIRECTOR_REQUIRE_ORIGIN_APPROVAL,
            require_cache=settings.DIRECTOR_REQUIRE_CACHE_APPROVAL,
        ):
            return Verdict(unapproved=True)
        return Verdict(scoped=tokens.has_scope(claims, tokens.ADVERTISE))


def verify_advertisement(
    kind: ServerKind,
    registry_prefix: str,
    name: str,
    namespaces: list[str],
    token: str,
    base_url: str,
) -> str:
    """The verified registry prefix of an ad; else raises Refusal (ApprovalRefusal for want
    of approval) with Pelican's answer (reference pelican-trust 2.4 rows 7-14)."""
    type_name = SERVER_TYPE_NAMES[kind]
    prefix = registry_prefix.rstrip("/")
    if not prefix:
        raise Refusal(
            403,
            f"{type_name} advertisement rejected: no registry prefix present in the ad. Ensure "
            "the server runs a supported Pelican version and is registered at the federation "
            "registry",
        )
    prefix_kind = protocol.registration_kind(prefix)
    if prefix_kind != kind or not prefix[len(f"/{kind}s/") :]:
        raise Refusal(
            403,
            f"{type_name} advertisement rejected: registry prefix {_quoted(prefix)} is not "
            f"a valid {type_name} registration prefix",
        )
    paths = namespaces if kind == ServerKind.ORIGIN else []
    check = TokenCheck(token, [prefix, *paths])
    verdict = check.verdict(prefix)
    help_text = approval_help(base_url)
    if verdict.problem:
        raise Refusal(403, f"Authorization token verification failed {verdict.problem}")
    if verdict.unapproved:
        raise ApprovalRefusal(
            f"{type_name} {_quoted(name)} was not approved by an administrator. {help_text}"
        )
    if not verdict.scoped:
        raise Refusal(403, MISSING_SCOPE)
    for path in paths:
        verdict = check.verdict(path)
        if verdict.problem:
            raise Refusal(403, f"Authorization token verification failed: {verdict.problem}")
        if verdict.unapproved:
            raise ApprovalRefusal(
                f"The namespace {_quoted(path)} was not approved by an administrator. {help_text}"
            )
        if not verdict.scoped:
            raise Refusal(403, MISSING_SCOPE)
    return prefix


def verify_membership(token: str, registry_prefix: str) -> Verdict:
    """getFedToken's check (reference 3.3): the advertise token of a registered server."""
    return TokenCheck(token, [registry_prefix]).verdict(registry_prefix)
