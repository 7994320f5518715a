"""How an advertisement enters the registry (reference 1.6); its schema is
``director.wire.ads``.

An ad is accepted only with a live registration token for exactly its ``registry-prefix``,
at the endpoint of the matching kind (the API's auth step finds the token; it is checked
once). It is stored in one transaction: the server row, its namespaces and its advertised
downtimes are replaced together, so a failing ad never leaves half a server behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from director import models, registry
from director.federation import polls
from director.registry import change_generation
from director.selection import ewma_status_weight
from director.serving import database
from director.serving.loopmonitor import yield_to_io
from director.wire.ads import AdvertisementIn, token_generation_json, token_issuer_json
from director.wire.errors import Refusal
from director.wire.healthfiles import supports_self_test
from director.wire.types import SERVER_TYPE_NAMES, HealthStatus, ServerKind, ServerStatus
from director.wire.validation import normalise_server_url, registry_prefix_kind
from director.wire.versions import MIN_ADVERTISE_VERSIONS, user_agent_problem, user_agent_version

logger = logging.getLogger(__name__)

# Pelican re-bases the expiry on our clock when the sender's clock is off by more.
CLOCK_SKEW_TOLERANCE = dt.timedelta(milliseconds=100)
GO_ZERO_TIME_YEAR = 1
# A re-based lifetime is first cut to this, so that far-apart dates cannot overflow.
MAX_AD_LIFETIME = dt.timedelta(days=7)


@dataclass(frozen=True)
class RecordedAd:
    server: models.Server
    created: bool


def _is_go_zero(value: dt.datetime | None) -> bool:
    return value is None or value.year <= GO_ZERO_TIME_YEAR


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def effective_expiry(ad: AdvertisementIn, received_at: dt.datetime) -> dt.datetime:
    """The ad's expiry on our clock (reference 1.6 step 11, 3.7).

    No expiry: received + DIRECTOR_AD_TTL. A sender clock off by more than 100 ms: the
    expiry is re-based to received + (expiry - now). Either way an ad lives at most
    DIRECTOR_AD_TTL (Pelican: up to 7 days): a server whose registration is withdrawn
    while the director cannot say so (another director, a lost change) leaves routing
    by then.
    """
    ttl = received_at + dt.timedelta(seconds=settings.DIRECTOR_AD_TTL)
    if ad.expiry is None or _is_go_zero(ad.expiry):
        return ttl
    expiry = _aware(ad.expiry)
    if ad.now is not None and not _is_go_zero(ad.now):
        sender_now = _aware(ad.now)
        if abs(received_at - sender_now) > CLOCK_SKEW_TOLERANCE:
            # Relative to our clock; a lifetime beyond MAX_AD_LIFETIME either way is cut to
            # it first, so that values far apart cannot overflow the date range (an expiry
            # long before the sender's now is simply expired).
            lifetime = expiry - sender_now
            expiry = received_at + max(-MAX_AD_LIFETIME, min(lifetime, MAX_AD_LIFETIME))
    return min(expiry, ttl)


def parse_status(raw: str) -> ServerStatus:
    text = raw.strip().lower()
    if not text:
        return ServerStatus.UNKNOWN
    try:
        return ServerStatus(text)
    except ValueError:
        logger.warning("advertised status %r is not known; treated as unknown", raw)
        return ServerStatus.UNKNOWN


def check_token(kind: ServerKind, token: models.RegistrationToken, registry_prefix: str) -> None:
    """Refuse the ad unless ``token`` (the live token the bearer secret named) may send it."""
    # Pelican's words (registerServerAd) for a prefix that is missing or not of this kind.
    server_type = SERVER_TYPE_NAMES[kind]
    if not registry_prefix:
        raise Refusal(
            403,
            f"{server_type} advertisement rejected: no registry prefix present in the ad. "
            "Ensure the server runs a supported Pelican version and is registered at the "
            "federation registry",
        )
    if registry_prefix_kind(registry_prefix) != kind:
        raise Refusal(
            403,
            f"{server_type} advertisement rejected: registry prefix "
            f"{json.dumps(registry_prefix, ensure_ascii=False)} is not a valid {server_type} "
            "registration prefix",
        )
    if token.registry_prefix != registry_prefix:
        raise Refusal(403, f"The token is not a live registration token for {registry_prefix}")


def check_auth_mode(
    server: models.Server | None, kind: ServerKind, ad: AdvertisementIn, mode: models.AuthMode
) -> None:
    """A server keeps the authentication mode of its first ad (no cross-mode takeover):
    refuse the ad when ``server`` (the row of its name, locked) or, for a new name,
    another server of its registry prefix came in the other way."""
    if server is not None:
        held = server.auth_mode
        holder = ad.name
    else:
        found = (
            models.Server.objects.filter(
                kind=kind, source=models.Source.ADVERTISED, registry_prefix=ad.registry_prefix
            )
            .exclude(auth_mode="")
            .exclude(auth_mode=mode)
            .values_list("name", "auth_mode")
            .first()
        )
        holder, held = found if found is not None else (ad.name, "")
    if held and held != mode:
        raise Refusal(
            403,
            f"Server {holder!r} ({ad.registry_prefix}) advertises with "
            f"{models.AuthMode(held).label}, the way of its first advertisement; it cannot be "
            f"advertised with {mode.label}. An administrator can release it by deleting the "
            "server in the director's admin",
        )


def without_name_authority(ad: AdvertisementIn) -> AdvertisementIn:
    """The ad of a server whose ``name`` is not the one registered under its prefix
    (external registry mode, reference pelican-registry-swap 3.4): recorded, but its
    downtimes and its ``shutting down`` status are ignored, as Pelican ignores them."""
    if ad.downtimes:
        logger.info(
            "%r is not the registered name of %s: its downtimes are ignored",
            ad.name,
            ad.registry_prefix,
        )
    status = "" if parse_status(ad.status) is ServerStatus.SHUTTING_DOWN else ad.status
    return ad.model_copy(update={"downtimes": [], "status": status})


def record_advertisement(
    kind: ServerKind,
    ad: AdvertisementIn,
    *,
    token: models.RegistrationToken | None,
    user_agent: str = "",
    received_at: dt.datetime | None = None,
) -> RecordedAd:
    """Check and store one ad (reference 1.6). Raises Refusal; stores nothing then.

    ``token`` is the registration token that sent it, or None for an ad whose advertise
    token the Pelican registry verified (``director.federation.advertise``): its prefix
    and, for an origin, every namespace are then proven already."""
    received_at = received_at or timezone.now()
    problem = user_agent_problem(user_agent, MIN_ADVERTISE_VERSIONS)
    if problem:
        raise Refusal(500, f"Incompatible versions detected: {problem}")
    if token is not None:
        check_token(kind, token, ad.registry_prefix)
    else:
        # Stored as verified (without a trailing slash): the registration it stands on.
        ad = ad.model_copy(update={"registry_prefix": ad.registry_prefix.rstrip("/")})
    expires_at = effective_expiry(ad, received_at)
    if expires_at <= received_at:
        raise Refusal(400, f"The advertisement expired at {expires_at.isoformat()}")
    paths = [namespace.path for namespace in ad.namespaces]
    duplicates = sorted(path for path, count in Counter(paths).items() if count > 1)
    if duplicates:
        raise Refusal(400, f"namespaces: duplicate path(s) {', '.join(duplicates)}")
    refused = [
        path
        for path in (token.refused_namespaces(paths) if token is not None else [])
        # Caches always serve the federation's own /pelican/ paths (reference 1.6 step 5).
        if not (kind == ServerKind.CACHE and path.startswith("/pelican/"))
    ]
    if refused and kind == ServerKind.CACHE:
        # Pelican keeps a cache's ad and drops the namespaces it may not serve: a default
        # cache advertises every namespace of the federation, restricted or not.
        logger.info("cache %r may not serve %s: left out", ad.name, ", ".join(refused))
        dropped = set(refused)
        kept = [namespace for namespace in ad.namespaces if namespace.path not in dropped]
        ad = ad.model_copy(update={"namespaces": kept})
    elif refused:
        raise Refusal(
            403,
            f"The token for {ad.registry_prefix} may not advertise {', '.join(refused)} "
            f"(allowed: {', '.join(token.allowed_namespaces() if token else [])})",
        )
    if kind == ServerKind.CACHE:
        ad = _without_disallowed_namespaces(ad)
    for downtime in ad.downtimes:
        if downtime.endTime != -1 and downtime.endTime < downtime.startTime:
            raise Refusal(
                400, f"downtimes: endTime is before startTime in downtime {downtime.id!r}"
            )

    try:
        return _store(kind, ad, token, user_agent, received_at, expires_at)
    except IntegrityError:
        # Two first advertisements of one name at once: the row did not exist to lock.
        raise Refusal(409, f"Server {ad.name!r} was registered concurrently; retry") from None


def _without_disallowed_namespaces(ad: AdvertisementIn) -> AdvertisementIn:
    """A cache ad without the namespaces the external registry's allowed prefixes do not
    give it (``director.federation.polls``; ``/pelican/...`` kept): the same rule as a
    registration token's. Before the first map: 503 with Retry-After (NotPolledYet)."""
    dropped = set(
        polls.cache_namespaces(
            ad.registry_prefix, ad.data_url, [namespace.path for namespace in ad.namespaces]
        )
    )
    if not dropped:
        return ad
    logger.info(
        "cache %r may not serve %s (registry allowed prefixes): left out",
        ad.name,
        ", ".join(sorted(dropped)),
    )
    kept = [namespace for namespace in ad.namespaces if namespace.path not in dropped]
    return ad.model_copy(update={"namespaces": kept})


# The token's last use is recorded to within this: a re-advertisement every minute need
# not write the token row every time.
TOKEN_USE_RESOLUTION = dt.timedelta(minutes=10)
# What a renewal writes: the one row of the server.
RENEWAL_FIELDS = [
    "auth_mode",  # already this one but on a server advertised before modes were recorded
    "expires_at",
    "last_advertised_at",
    "status_weight",
    "status_weight_updated_at",
    "change_seq",
    "updated_at",
]
NAMESPACE_FIELDS = [
    *(name for name, _ in models.CapabilityFields.CAPABILITY_FIELDS),
    "token_issuers",
    "token_generations",
    "from_topology",
]


def ad_fingerprint(kind: str, ad: AdvertisementIn, version: str) -> str:
    """SHA-256 of everything an ad says but its times: an ad with the fingerprint of the
    stored one changes nothing but the server's expiry and weight."""
    # Serialised by pydantic-core in the model's field order (1,000 namespaces: ~1 ms; a
    # sorted json.dumps took ~4). Equal content sent in another key order of a free-form
    # map would only cost one full write, never a missed change.
    content = ad.model_dump_json(by_alias=True, exclude={"expiry", "now"})
    return hashlib.sha256(f"{kind}\n{version}\n{content}".encode()).hexdigest()


def _store(
    kind: ServerKind,
    ad: AdvertisementIn,
    token: models.RegistrationToken | None,
    user_agent: str,
    received_at: dt.datetime,
    expires_at: dt.datetime,
) -> RecordedAd:
    """One transaction, writing what changed (reference 1.6 steps 9-12):

    1. A re-advertisement equal to the stored one but for its times renews the server:
       its expiry, last-advertised time and status weight, in one row.
    2. Anything else rewrites the server row and replaces exactly the namespaces and
       advertised downtimes that differ.
    Either way the server is stamped with the change's generation (``registry``).
    """
    version = ad.version or user_agent_version(user_agent) or "unknown"
    fingerprint = ad_fingerprint(kind, ad, version)
    mode = models.AuthMode.TOKEN if token is not None else models.AuthMode.PELICAN
    time_constant = registry.current().settings.status_ewma_time_constant
    # The rows are prepared before the transaction, with the loop given a turn before and
    # after (1,000 namespaces: ~5 ms each side), so the work inside it is the writes
    # alone: on SQLite nothing yields within it.
    yield_to_io()
    wanted_namespaces = _namespace_values(ad)
    yield_to_io()
    with transaction.atomic():
        server = models.Server.objects.select_for_update().filter(kind=kind, name=ad.name).first()
        created = server is None
        if server is not None:
            if server.source != models.Source.ADVERTISED:
                raise Refusal(
                    403, f"Server {ad.name!r} is defined in the admin and cannot be advertised"
                )
            if server.registry_prefix != ad.registry_prefix:
                raise Refusal(
                    403,
                    f"Server {ad.name!r} is registered under {server.registry_prefix}, "
                    f"not {ad.registry_prefix}",
                )
        check_auth_mode(server, kind, ad, mode)
        if server is None:
            server = models.Server(name=ad.name, source=models.Source.ADVERTISED, kind=kind)
        server.auth_mode = mode
        if not created and server.ad_fingerprint == fingerprint:
            _renew(server, parse_status(ad.status), received_at, expires_at, time_constant)
            server.change_seq = change_generation(renewal=server)
            server.save(update_fields=RENEWAL_FIELDS)
        else:
            _apply_ad(server, kind, ad, version, received_at, expires_at, time_constant)
            server.ad_fingerprint = fingerprint
            server.change_seq = server.structure_seq = change_generation()
            server.save()
            _replace_namespaces(server, wanted_namespaces)
            _replace_downtimes(server, _downtime_rows(server, ad))
        if token is not None and (
            token.last_used_at is None or received_at - token.last_used_at >= TOKEN_USE_RESOLUTION
        ):
            token.last_used_at = received_at
            token.save(update_fields=["last_used_at"])
    return RecordedAd(server=server, created=created)


def _renew(
    server: models.Server,
    status: ServerStatus,
    received_at: dt.datetime,
    expires_at: dt.datetime,
    time_constant: float,
) -> None:
    previous_at = server.status_weight_updated_at
    server.status_weight = ewma_status_weight(
        server.status_weight if previous_at else None,
        (received_at - previous_at).total_seconds() if previous_at else None,
        status,
        time_constant,
    )
    server.status_weight_updated_at = received_at
    server.expires_at = expires_at
    server.last_advertised_at = received_at


def _replace_namespaces(server: models.Server, wanted: dict[str, tuple[object, ...]]) -> None:
    """Delete and insert only the namespace rows that differ from ``wanted`` (path ->
    values of NAMESPACE_FIELDS); a row whose values changed is replaced.

    An ad's namespaces are written in one executemany: Django's ``bulk_create`` and
    ``bulk_update`` compile every value through the ORM, ~30 ms of CPU for 1,000
    namespaces inside the write transaction, which on SQLite holds the whole loop.
    """
    existing = {
        path: (pk, tuple(values))
        for path, pk, *values in models.Namespace.objects.filter(server=server)
        .order_by()
        .values_list("path", "pk", *NAMESPACE_FIELDS)
    }
    stale = [pk for path, (pk, values) in existing.items() if wanted.get(path) != values]
    if stale:
        models.Namespace.objects.filter(pk__in=stale).delete()
    kept = {path for path, (_, values) in existing.items() if wanted.get(path) == values}
    database.insert_rows(
        models.Namespace,
        ["server_id", "path", *NAMESPACE_FIELDS],
        [(server.pk, path, *values) for path, values in wanted.items() if path not in kept],
    )


def _downtime_key(row: models.Downtime) -> tuple[object, ...]:
    return (
        row.external_id,
        row.downtime_class,
        row.severity,
        row.description,
        row.starts_at,
        row.ends_at,
    )


def _replace_downtimes(server: models.Server, wanted: list[models.Downtime]) -> None:
    """The same for the advertised downtimes (those set in the admin stay)."""
    existing = list(server.downtimes.filter(source=models.Source.ADVERTISED))
    wanted_keys = {_downtime_key(row) for row in wanted}
    existing_keys = {_downtime_key(row) for row in existing}
    gone = [row.pk for row in existing if _downtime_key(row) not in wanted_keys]
    if gone:
        models.Downtime.objects.filter(pk__in=gone).delete()
    models.Downtime.objects.bulk_create(
        [row for row in wanted if _downtime_key(row) not in existing_keys]
    )


def _apply_ad(
    server: models.Server,
    kind: ServerKind,
    ad: AdvertisementIn,
    version: str,
    received_at: dt.datetime,
    expires_at: dt.datetime,
    time_constant: float,
) -> None:
    server.kind = kind
    server.data_url = normalise_server_url(ad.data_url)
    server.web_url = normalise_server_url(ad.web_url)
    server.broker_url = ad.broker_url
    server.registry_prefix = ad.registry_prefix
    server.set_capabilities(ad.capabilities.flags())
    coordinate = ad.coordinate
    if coordinate is not None and (coordinate.Lat, coordinate.Long) != (0.0, 0.0):
        server.latitude, server.longitude = coordinate.Lat, coordinate.Long
    else:
        server.latitude = server.longitude = None
    status = parse_status(ad.status)
    server.status = status.value
    _renew(server, status, received_at, expires_at, time_constant)
    # Storage that cannot take the test object (s3, https, ...) is never tested (Pelican).
    tests_disabled = ad.director_test or not supports_self_test(ad.storage_type)
    if tests_disabled:
        server.health_status = HealthStatus.DISABLED
    elif server.health_status == HealthStatus.DISABLED:
        server.health_status = HealthStatus.UNKNOWN
    server.version = version
    server.storage_type = ad.storage_type
    server.director_test_disabled = tests_disabled
    server.required_features = list(ad.required_features)


def _namespace_values(ad: AdvertisementIn) -> dict[str, tuple[object, ...]]:
    """The ad's namespaces as rows: path -> the values of NAMESPACE_FIELDS, as the database
    gives them back (so that an unchanged namespace compares equal and is not written)."""
    rows = {}
    for namespace in ad.namespaces:
        flags = namespace.caps.flags()
        rows[namespace.path] = (
            *(bool(flags & flag) for _, flag in models.CapabilityFields.CAPABILITY_FIELDS),
            [token_issuer_json(issuer.view()) for issuer in namespace.token_issuer],
            [token_generation_json(generation.view()) for generation in namespace.token_generation],
            namespace.from_topology,
        )
    return rows


def _epoch_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000.0, tz=dt.UTC)


def _downtime_rows(server: models.Server, ad: AdvertisementIn) -> list[models.Downtime]:
    return [
        models.Downtime(
            server=server,
            source=models.Source.ADVERTISED,
            external_id=str(downtime.id),
            downtime_class=downtime.downtime_class.upper() or "SCHEDULED",
            severity=downtime.severity,
            description=downtime.description,
            starts_at=_epoch_ms(downtime.startTime),
            ends_at=None if downtime.endTime == -1 else _epoch_ms(downtime.endTime),
        )
        for downtime in ad.downtimes
    ]
