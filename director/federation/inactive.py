"""Pending registrations that never come back expire (issue 24; Pelican's
``Registry.InactiveRegistrationTimeout``, reference pelican-trust 1.8): a server that
registered, was never approved and stopped asking for its server record does not keep
its prefixes and site name from others."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from director.federation import challenges
from director.models import NamespaceRegistration, RegistrationKind, RegistrationStatus
from director.trust import keys

logger = logging.getLogger("director.federation.registry")


def _thumbprints(registration: NamespaceRegistration) -> frozenset[str] | None:
    try:
        return keys.parse_key_set(registration.pubkey).thumbprints()
    except keys.KeySetError:
        return None


_last_expiry = 0.0  # time.monotonic() of this process's last expire_inactive run


def expire_inactive(now: dt.datetime | None = None, *, force: bool = False) -> int:
    """Pelican's inactive-registration cleanup (reference 1.8), run at most every
    ``DIRECTOR_INACTIVE_REGISTRATION_CHECK_INTERVAL`` per process, when a challenge is
    asked for: with both approval flags on, a server whose registrations are all pending
    and none of which asked for its server record within
    ``DIRECTOR_INACTIVE_REGISTRATION_TIMEOUT`` (or was made within it) is deleted, with the
    pending namespaces of its site name and keys. Returns how many rows went."""
    global _last_expiry
    if not (settings.DIRECTOR_REQUIRE_ORIGIN_APPROVAL and settings.DIRECTOR_REQUIRE_CACHE_APPROVAL):
        return 0
    moment = time.monotonic()
    interval = settings.DIRECTOR_INACTIVE_REGISTRATION_CHECK_INTERVAL
    if not force and _last_expiry and moment - _last_expiry < interval:
        return 0
    _last_expiry = moment
    cutoff = (now or challenges.clock()) - dt.timedelta(
        seconds=settings.DIRECTOR_INACTIVE_REGISTRATION_TIMEOUT
    )
    servers = NamespaceRegistration.objects.exclude(server_id="")
    alive = servers.filter(
        ~Q(status=RegistrationStatus.PENDING)
        | Q(last_seen_at__gte=cutoff)
        | Q(last_seen_at__isnull=True, created_at__gte=cutoff)
    ).values("server_id")
    deleted = 0
    with transaction.atomic():
        stale = list(servers.exclude(server_id__in=alive))
        for registration in stale:
            key_set = _thumbprints(registration)
            namespaces = [
                namespace.pk
                for namespace in NamespaceRegistration.objects.filter(
                    kind=RegistrationKind.NAMESPACE,
                    status=RegistrationStatus.PENDING,
                    site_name=registration.site_name,
                )
                if key_set is not None and _thumbprints(namespace) == key_set
            ]
            gone, _ = NamespaceRegistration.objects.filter(
                pk__in=[registration.pk, *namespaces]
            ).delete()
            deleted += gone
            logger.info(
                "registry: %s and %d pending namespace(s) of %s expired: never approved, "
                "not seen since %s",
                registration.prefix,
                len(namespaces),
                registration.site_name,
                registration.last_seen_at or registration.created_at,
            )
    return deleted
