"""Which advertised servers still stand on an accepted registration (issue 24 item 2).

A Pelican server's ad was verified against the registration of its ``registry_prefix``
and, for an origin, of every namespace it advertised (``director.federation.advertise``);
``Server.auth_mode`` records that it came in that way. So:

1. ``registrations_withdrawn`` (a registration denied, deleted, moved to another prefix)
   and ``keys_replaced`` (a key removed from a registration's set) expire at once every
   Pelican server advertised under those prefixes, in the caller's transaction, and record
   the change (``registry_changed``): every process leaves them out of routing within its
   next poll, and they come back only with an ad that verifies again.
2. ``unaccepted`` answers, in one query, which of some servers no longer stand on accepted
   registrations: the health tests and ``discoverServers`` skip them, whatever the
   routing snapshot still holds.
3. ``token_server_holds`` says whether a registration token's server uses a prefix, so
   that ``getFedToken`` does not hand its name to a Pelican registration of that prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from director.federation import external, remote_check
from director.models import (
    AuthMode,
    Namespace,
    NamespaceRegistration,
    RegistrationKind,
    RegistrationStatus,
    Server,
    ServerKind,
    Source,
)
from director.registry import registry_changed
from director.remote.registry import RegistryClient
from director.snapshot import ServerKey
from director.trust import keys

logger = logging.getLogger(__name__)


def accepted_registrations() -> Q:
    """``director.trust.registry.accepted`` as a filter on registrations, with this
    director's approval settings (tests check that the two agree)."""
    accepted = Q(status=RegistrationStatus.APPROVED)
    if not settings.DIRECTOR_REQUIRE_CACHE_APPROVAL:
        accepted |= Q(status=RegistrationStatus.PENDING, kind=RegistrationKind.CACHE)
    if not settings.DIRECTOR_REQUIRE_ORIGIN_APPROVAL:
        accepted |= Q(status=RegistrationStatus.PENDING) & ~Q(kind=RegistrationKind.CACHE)
    return accepted


def _clean(prefix: str) -> str:
    return prefix.rstrip("/") or "/"


def servers_under(prefixes: Iterable[str]) -> list[int]:
    """The Pelican servers whose ad was verified against one of ``prefixes``: as their
    registry prefix, or (origins) as a namespace they advertised."""
    wanted = sorted({_clean(prefix) for prefix in prefixes})
    if not wanted:
        return []
    under = Q(registry_prefix__in=wanted) | (
        Q(kind=ServerKind.ORIGIN)
        & Exists(Namespace.objects.filter(server=OuterRef("pk"), path__in=wanted))
    )
    return list(
        Server.objects.filter(source=Source.ADVERTISED, auth_mode=AuthMode.PELICAN)
        .filter(under)
        .values_list("pk", flat=True)
    )


def registrations_withdrawn(prefixes: Iterable[str], why: str) -> list[int]:
    """Expire now every Pelican server advertised under ``prefixes`` (registrations
    denied, deleted or moved) and record the change. Returns their primary keys."""
    prefixes = list(prefixes)
    with transaction.atomic():
        now = timezone.now()
        ids = servers_under(prefixes)
        live = Server.objects.filter(pk__in=ids, expires_at__gt=now)
        expired = list(live.values_list("pk", "name"))
        if expired:
            live.update(expires_at=now)
            registry_changed([pk for pk, _ in expired], structure=False)
            logger.info(
                "registry: %s expired now: %s (%s)",
                ", ".join(sorted(name for _, name in expired)),
                why,
                ", ".join(sorted(prefixes)),
            )
    return [pk for pk, _ in expired]


def keys_replaced(prefix: str, before: keys.KeySet | None, after: keys.KeySet | None) -> list[int]:
    """A registration's key set changed from ``before`` to ``after``: when a key was
    removed (a rotated-out or compromised key), the ads it may have signed are expired
    (``registrations_withdrawn``); a key only added revokes nothing."""
    removed = (before.thumbprints() if before else frozenset()) - (
        after.thumbprints() if after else frozenset()
    )
    if not removed:
        return []
    return registrations_withdrawn([prefix], "a key of their registration was replaced")


def unaccepted(servers: Iterable[ServerKey]) -> set[ServerKey]:
    """Which of ``servers`` (kind, name) are Pelican servers no longer standing on
    accepted registrations: their registry prefix's, or (origins) one of their
    namespaces'. One query, whatever the number of servers."""
    wanted = set(servers)
    if not wanted:
        return set()
    accepted = NamespaceRegistration.objects.filter(accepted_registrations())
    prefix_gone = ~Exists(accepted.filter(prefix=OuterRef("registry_prefix")))
    namespace_gone = Q(kind=ServerKind.ORIGIN) & Exists(
        Namespace.objects.filter(server=OuterRef("pk")).exclude(
            Exists(accepted.filter(prefix=OuterRef("path")))
        )
    )
    found = (
        Server.objects.filter(
            source=Source.ADVERTISED,
            auth_mode=AuthMode.PELICAN,
            name__in=sorted({name for _, name in wanted}),
        )
        .filter(prefix_gone | namespace_gone)
        .values_list("kind", "name")
    )
    return {(kind, name) for kind, name in found if (kind, name) in wanted}


def withdrawn(servers: Iterable[ServerKey]) -> set[ServerKey]:
    """Which of ``servers`` no longer stand on accepted registrations, wherever the
    registry is: this director's tables (``unaccepted``, one query) or, in external
    registry mode, the registry's approval of their registry prefixes (its cached
    answers; a prefix it cannot be asked about now stays). The health tests and
    ``discoverServers`` ask this before they test or list a server."""
    wanted = list(servers)
    if not external.configured():
        return unaccepted(wanted)
    client = external.registry_client()
    if client is None:  # its URL not known yet: nobody can be asked, so nobody is dropped
        return set()
    return _unapproved_at_registry(client, wanted)


def _unapproved_at_registry(client: RegistryClient, servers: list[ServerKey]) -> set[ServerKey]:
    """External registry mode: which of ``servers`` are Pelican servers whose registry
    prefix, or (origins) one of whose namespaces, the registry no longer approves (its
    cached answers; two queries here), as ``unaccepted`` says for this director's tables."""
    names = sorted({name for _, name in servers})
    wanted = set(servers)
    rows = Server.objects.filter(
        source=Source.ADVERTISED, auth_mode=AuthMode.PELICAN, name__in=names
    ).values_list("pk", "kind", "name", "registry_prefix")
    needs: dict[ServerKey, set[str]] = {}
    by_pk: dict[int, ServerKey] = {}
    for pk, kind, name, prefix in rows:
        if (kind, name) in wanted:
            needs[(kind, name)] = {prefix.rstrip("/")} if prefix.strip("/") else set()
            by_pk[pk] = (kind, name)
    for server_id, path in Namespace.objects.filter(
        server_id__in=list(by_pk), server__kind=ServerKind.ORIGIN
    ).values_list("server_id", "path"):
        needs[by_pk[server_id]].add(path)
    gone = remote_check.unapproved_prefixes(client, set().union(*needs.values()))
    return {key for key, prefixes in needs.items() if prefixes & gone}


def token_server_holds(registry_prefix: str) -> bool:
    """Does a registration token's server advertise under ``registry_prefix``?"""
    return Server.objects.filter(
        source=Source.ADVERTISED,
        auth_mode=AuthMode.TOKEN,
        registry_prefix=_clean(registry_prefix),
    ).exists()
