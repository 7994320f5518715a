"""Verified advertisements (reference pelican-trust 2.3-2.4): an ad's advertise token
must be signed by a key registered for its ``registry-prefix``, and for an origin by a
key of every namespace it serves, each registration accepted (approved), with the
``pelican.advertise`` scope.

Keys come from our own tables (in external registry mode from the registry, with the
same answers: ``director.federation.remote_check``): the server prefix's registration
first, the namespaces' only once it verified; each registration's key set is parsed
once (cached by its content) and the token's signature is checked once per distinct key,
however many namespaces share it. Unlike Pelican, the signature is checked before the approval (an
unsigned request learns nothing about approval), a missing key is never a stale cache
(the tables are read for every ad), and the token must be bound to this director
(``Binding``: its ``aud``, its lifetime, its ``iss``). ``authenticate`` is the auth
step's check, before the body is read: the token's ``kid`` names a registered key and
its signature verifies with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from django.conf import settings

from director.federation import external, remote_check
from director.federation.remote_check import RemoteCheck, SignedOnce, Verdict, bounded
from director.models import NamespaceRegistration
from director.remote.registry import RegistryClient
from director.trust import keys, tokens
from director.trust import registry as protocol
from director.wire.documents import error_json, federation_url
from director.wire.errors import ApprovalRefusal, Refusal
from director.wire.types import SERVER_TYPE_NAMES, ServerKind

PARSED_KEY_SETS: LRUCache[str, keys.KeySet | None] = LRUCache(maxsize=10_000)
MISSING_SCOPE = "Authorization token verification failed. Token missing required scope"
REGISTRY_ISSUER_PATH = "/api/v1.0/registry"
# Registrations whose key set names one kid that the auth step tries (keys are shared by
# an origin's server prefix and its namespaces; the signature is checked once per key).
KID_LOOKUP_LIMIT = 50


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


@dataclass(frozen=True)
class Binding:
    """What an advertise token must be bound to (reference pelican-trust 5.1): ``names``,
    this director's audiences (``tokens.audience_names``: its external URL, the extra
    DIRECTOR_ADVERTISE_AUDIENCES); a lifetime of at most ``max_lifetime`` seconds; an
    ``iss`` that is no issuer of this director's other than the registry's issuer of
    the server prefix the token speaks for. ``now``: the clock (None: the wall clock)."""

    names: frozenset[str]
    max_lifetime: float
    now: float | None = None
    hosts: frozenset[str] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        hosts = frozenset(name.split("://", 1)[1] for name in self.names)
        object.__setattr__(self, "hosts", hosts)

    def problem(self, claims: dict[str, Any], prefix: str = "") -> str:
        """ "" when ``claims`` are bound to this director (and, given ``prefix``, their
        ``iss`` to its registration); else what is wrong, in Pelican's words."""
        problem = tokens.bound_problem(
            claims, audiences=self.names, max_lifetime=self.max_lifetime, now=self.now
        )
        if problem or not prefix:
            return problem
        issuer = str(claims["iss"])
        audience = tokens.wlcg_audience(issuer)
        if not audience or audience.split("://", 1)[1] not in self.hosts:
            return ""  # the server's own issuer (its web URL, as Pelican's servers send)
        # An issuer of this director: only the registry's issuer of this very prefix.
        expected = federation_url(f"{audience}{REGISTRY_ISSUER_PATH}{prefix}")
        if federation_url(issuer.rstrip("/")) != expected:
            return (
                f'failed to validate token claims: "iss" {issuer!r} is an issuer of this '
                f"director but not the registry's issuer of {prefix}"
            )
        return ""


def binding(base_url: str) -> Binding:
    """The binding of advertise tokens sent to this director at ``base_url`` (its
    external URL: DIRECTOR_EXTERNAL_URL, else the request's own, ``locate.external_url``)."""
    urls = [base_url, *settings.DIRECTOR_ADVERTISE_AUDIENCES]
    return Binding(
        tokens.audience_names(urls), float(settings.DIRECTOR_ADVERTISE_TOKEN_MAX_LIFETIME)
    )


def authenticate(token: str, bound: Binding) -> dict[str, Any]:
    """The auth step's check of a Pelican advertise token, before the ad is read: its
    ``kid`` names a key of some registration (one query), its signature verifies with
    that key, its times hold and it is bound to this director (audience, lifetime).
    Returns its claims; raises Refusal 403. Which prefix it may advertise is decided
    once the ad names it (``verify_advertisement``)."""
    try:
        kid = tokens.unverified_kid(token)
    except tokens.TokenRejected as rejected:
        raise Refusal(403, f"Authorization token verification failed {rejected}") from None
    stored = NamespaceRegistration.objects.filter(pubkey__contains=f'"{kid}"').values_list(
        "pubkey", flat=True
    )[:KID_LOOKUP_LIMIT]
    problem = f'failed to verify token signature: no key with kid "{kid}" is registered'
    tried: set[str] = set()
    for pubkey in stored:
        key_set = parsed_key_set(pubkey)
        if key_set is None or kid not in key_set.keys or key_set.prints[kid] in tried:
            continue
        tried.add(key_set.prints[kid])
        try:
            claims = tokens.verify(token, {kid: key_set.keys[kid]})
        except tokens.TokenRejected as rejected:
            problem = str(rejected)
            continue
        problem = bound.problem(claims)
        if problem:
            break
        return claims
    raise Refusal(403, f"Authorization token verification failed {problem}")


class TokenCheck(SignedOnce):
    """One advertise token checked against the registrations of several prefixes: one
    query, the header read once, the signature checked once per distinct key."""

    KEYS_OF = "the key set registered for this prefix"

    def __init__(self, token: str, prefixes: Iterable[str], bound: Binding) -> None:
        super().__init__(token)
        self.bound = bound
        self.registrations: dict[str, tuple[str, str]] = {}
        self.load(prefixes)

    def load(self, prefixes: Iterable[str]) -> None:
        """Read the registrations of ``prefixes`` (one query)."""
        wanted = set(prefixes) - set(self.registrations)
        if not wanted:
            return
        self.registrations |= {
            prefix: (pubkey, status)
            for prefix, pubkey, status in NamespaceRegistration.objects.filter(prefix__in=wanted)
            .order_by()
            .values_list("prefix", "pubkey", "status")
        }

    def verdict(self, prefix: str, server_prefix: str = "") -> Verdict:
        """How the token fares against ``prefix``'s registration; its ``iss`` is checked
        against ``server_prefix`` (default ``prefix``), the server the token speaks for."""
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
        problem = self.bound.problem(claims, server_prefix or prefix)
        if problem:
            return Verdict(problem=problem)
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
    bound: Binding | None = None,
) -> str:
    """The verified registry prefix of an ad; else raises Refusal (ApprovalRefusal for want
    of approval) with Pelican's answer (reference pelican-trust 2.4 rows 7-14).

    The server prefix is checked first; the namespaces' registrations are read only once
    it passed. ``bound``: the token's binding (default ``binding(base_url)``)."""
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
    bound = bound or binding(base_url)
    client = external.required_client()
    if client is None:
        _verify(TokenCheck(token, [prefix], bound), kind, prefix, name, paths, base_url)
        return prefix
    with bounded(client):  # 503 + Retry-After when the registry cannot be asked in time
        _verify(RemoteCheck(client, token, bound), kind, prefix, name, paths, base_url)
    return prefix


def _verify(
    check: TokenCheck | RemoteCheck,
    kind: ServerKind,
    prefix: str,
    name: str,
    paths: list[str],
    base_url: str,
) -> None:
    """Pelican's order (reference pelican-trust 2.4 rows 9-14): the server prefix, then
    each namespace of an origin."""
    type_name = SERVER_TYPE_NAMES[kind]
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
    check.load(paths)
    for path in paths:
        verdict = check.verdict(path, prefix)
        if verdict.problem:
            raise Refusal(403, f"Authorization token verification failed: {verdict.problem}")
        if verdict.unapproved:
            raise ApprovalRefusal(
                f"The namespace {_quoted(path)} was not approved by an administrator. {help_text}"
            )
        if not verdict.scoped:
            raise Refusal(403, MISSING_SCOPE)


def authenticate_remote(
    client: RegistryClient,
    token: str,
    bound: Binding,
    kind: ServerKind,
    base_url: str,
    peek: Callable[[], dict[str, Any]],
) -> None:
    """``authenticate`` in external registry mode (``remote_check.authenticate``): a
    token whose kid the registry has not served yet is verified against what the body
    names (``peek``: the JSON not yet validated), in ``verify_advertisement``'s order."""

    def verify_peeked(ad: dict[str, Any]) -> None:
        prefix, name = ad.get("registry-prefix"), ad.get("name")
        listed = ad.get("namespaces")
        paths = [
            item["path"]
            for item in (listed if isinstance(listed, list) else [])
            if isinstance(item, dict) and isinstance(item.get("path"), str)
        ]
        verify_advertisement(
            kind,
            prefix if isinstance(prefix, str) else "",
            name if isinstance(name, str) else "",
            paths,
            token,
            base_url,
            bound,
        )

    remote_check.authenticate(client, token, bound, verify_peeked, peek)


def verify_membership(token: str, registry_prefix: str, bound: Binding) -> Verdict:
    """getFedToken's check (reference 3.3): the advertise token of a registered server,
    bound to this director (in external mode, at the registry: 503 when it cannot be
    asked)."""
    client = external.required_client()
    if client is not None:
        problem = remote_check.unverified_problem(token, bound)
        if problem:  # no registry request for a token that could never pass
            return Verdict(problem=problem)
        with bounded(client):
            return RemoteCheck(client, token, bound).verdict(registry_prefix)
    return TokenCheck(token, [registry_prefix], bound).verdict(registry_prefix)
