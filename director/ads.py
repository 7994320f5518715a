"""Server advertisements: the Pelican wire schema and how an ad enters the registry.

An ad is accepted only with a live registration token for exactly its ``registry-prefix``,
at the endpoint of the matching kind. It is stored in one transaction: the server row, its
namespaces and its advertised downtimes are replaced together, so a failing ad never
leaves half a server behind.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from director import models
from director.registry import registry_changed
from director.selection import ewma_status_weight
from director.wire.types import WIRE_CAPABILITY_KEYS, Capability, ServerStatus
from director.wire.validation import (
    header_safe_problem,
    namespace_path_problem,
    normalise_server_url,
    registry_prefix_kind,
    url_problem,
)
from director.wire.versions import MIN_ADVERTISE_VERSIONS, user_agent_problem, user_agent_version

logger = logging.getLogger(__name__)

# Pelican re-bases the expiry on our clock when the sender's clock is off by more.
CLOCK_SKEW_TOLERANCE = dt.timedelta(milliseconds=100)
GO_ZERO_TIME_YEAR = 1
MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
MAX_NAMESPACES = 1000  # namespaces in one ad
MAX_AD_LIFETIME = dt.timedelta(days=7)  # an expiry further out is cut to this


def go_url_to_string(value: Any) -> str:
    """Pelican marshals ``url.URL`` as an object ({"Scheme", "Host", "Path", ...})."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        scheme = str(value.get("Scheme") or "")
        host = str(value.get("Host") or "")
        path = str(value.get("Path") or "")
        opaque = str(value.get("Opaque") or "")
        if opaque:
            text = f"{scheme}:{opaque}"
        elif scheme or host:
            text = f"{scheme}://{host}{path}"
        else:
            text = path
        if value.get("RawQuery"):
            text += f"?{value['RawQuery']}"
        return text
    raise ValueError("must be a URL string or a Go URL object")


def go_url_object(url: str) -> dict[str, Any]:
    """The inverse: the JSON object Go writes for a ``url.URL``."""
    parts = urlsplit(url)
    return {
        "Scheme": parts.scheme,
        "Opaque": "",
        "User": None,
        "Host": parts.netloc,
        "Path": parts.path,
        "RawPath": "",
        "OmitHost": False,
        "ForceQuery": False,
        "RawQuery": parts.query,
        "Fragment": parts.fragment,
        "RawFragment": "",
    }


GoURL = Annotated[str, BeforeValidator(go_url_to_string)]


def _none_to_list(value: Any) -> Any:
    return [] if value is None else value


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class WireModel(BaseModel):
    # Pelican adds fields over time; unknown keys are ignored, not refused.
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class CapabilitiesIn(WireModel):
    PublicRead: bool = False
    Read: bool = False
    Write: bool = False
    Listing: bool = False
    FallBackRead: bool = False
    Copies: bool = False

    def flags(self) -> Capability:
        flags = Capability.NONE
        for key, flag in WIRE_CAPABILITY_KEYS:
            if getattr(self, key):
                flags |= flag
        return flags


def _url_or_empty(value: str) -> str:
    if value:
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
    return value


def _header_token(value: str) -> str:
    """A value that goes into an X-Pelican header as is (strategy, base path)."""
    problem = header_safe_problem(value, "Value", forbidden=",;=")
    if problem:
        raise ValueError(problem)
    return value


HeaderURL = Annotated[GoURL, AfterValidator(_url_or_empty)]
HeaderToken = Annotated[str, Field(max_length=200), AfterValidator(_header_token)]


class TokenIssuerIn(WireModel):
    base_paths: Annotated[list[HeaderToken], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, alias="base-paths", max_length=100
    )
    restricted_paths: Annotated[list[HeaderToken], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, alias="restricted-paths", max_length=100
    )
    issuer: HeaderURL = ""


class TokenGenerationIn(WireModel):
    strategy: HeaderToken = ""
    vault_server: HeaderURL = Field(default="", alias="vault-server")
    max_scope_depth: int = Field(default=0, alias="max-scope-depth", ge=0, le=1000)
    issuer: HeaderURL = ""


class NamespaceAdIn(WireModel):
    caps: CapabilitiesIn = Field(default_factory=CapabilitiesIn, alias="Caps")
    path: str
    token_generation: Annotated[list[TokenGenerationIn], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, alias="token-generation", max_length=20
    )
    token_issuer: Annotated[list[TokenIssuerIn], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, alias="token-issuer", max_length=20
    )
    from_topology: bool = Field(default=False, alias="from-topology")

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        problem = namespace_path_problem(value.rstrip("/") or "/")
        if problem:
            raise ValueError(problem)
        return value.rstrip("/") or "/"


class CoordinateIn(WireModel):
    Lat: float = 0.0
    Long: float = 0.0
    AccuracyRadius: int = 0
    Source: str = ""


class DowntimeIn(WireModel):
    id: Annotated[str | int, BeforeValidator(_no_nul)] = ""
    downtime_class: Literal["SCHEDULED", "UNSCHEDULED", "scheduled", "unscheduled"] = Field(
        default="SCHEDULED", alias="class"
    )
    description: Annotated[str, BeforeValidator(_no_nul)] = Field(default="", max_length=10_000)
    severity: Annotated[str, BeforeValidator(_no_nul)] = Field(default="", max_length=100)
    startTime: int = Field(ge=0, le=MAX_EPOCH_MS)  # epoch milliseconds
    endTime: int = Field(default=-1, ge=-1, le=MAX_EPOCH_MS)  # -1 means indefinite


class AdvertisementIn(WireModel):
    """Pelican's ``OriginAdvertise`` body, used for origins and caches alike."""

    name: Annotated[str, BeforeValidator(_no_nul)] = Field(min_length=1, max_length=255)
    data_url: str = Field(alias="data-url")
    web_url: str = Field(default="", alias="web-url")
    broker_url: str = Field(default="", alias="broker-url")
    registry_prefix: str = Field(alias="registry-prefix", max_length=255)
    capabilities: CapabilitiesIn = Field(default_factory=CapabilitiesIn)
    namespaces: Annotated[list[NamespaceAdIn], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, max_length=MAX_NAMESPACES
    )
    coordinate: CoordinateIn | None = None
    status: str = Field(default="", max_length=50)
    version: Annotated[str, BeforeValidator(_no_nul)] = Field(default="", max_length=100)
    expiry: dt.datetime | None = None
    now: dt.datetime | None = None
    downtimes: Annotated[list[DowntimeIn], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, max_length=100
    )
    director_test: bool = Field(default=False, alias="directorTest")
    storage_type: Annotated[str, BeforeValidator(_no_nul)] = Field(
        default="", alias="storageType", max_length=50
    )
    required_features: Annotated[list[str], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, alias="requiredFeatures", max_length=50
    )

    @field_validator("data_url", "web_url", "broker_url")
    @classmethod
    def _urls_are_absolute(cls, value: str, info: Any) -> str:
        if value or info.field_name == "data_url":
            problem = url_problem(value, allow_query=info.field_name == "broker_url")
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("coordinate")
    @classmethod
    def _coordinate_in_range(cls, value: CoordinateIn | None) -> CoordinateIn | None:
        if value is not None and not (-90 <= value.Lat <= 90 and -180 <= value.Long <= 180):
            raise ValueError("Lat must be within [-90, 90] and Long within [-180, 180]")
        return value


class AdRejected(Exception):
    """An ad that is refused; ``status`` is the HTTP status, the message is for the sender."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
    expiry is re-based to received + (expiry - now).
    """
    if _is_go_zero(ad.expiry):
        return received_at + dt.timedelta(seconds=settings.DIRECTOR_AD_TTL)
    expiry = _aware(ad.expiry)  # type: ignore[arg-type]
    if not _is_go_zero(ad.now):
        sender_now = _aware(ad.now)  # type: ignore[arg-type]
        if abs(received_at - sender_now) > CLOCK_SKEW_TOLERANCE:
            # Relative to our clock; a lifetime beyond MAX_AD_LIFETIME is cut to it first,
            # so that far-future values cannot overflow the date range.
            expiry = received_at + min(expiry - sender_now, MAX_AD_LIFETIME)
    return min(expiry, received_at + MAX_AD_LIFETIME)


def parse_status(raw: str) -> ServerStatus:
    text = raw.strip().lower()
    if not text:
        return ServerStatus.UNKNOWN
    try:
        return ServerStatus(text)
    except ValueError:
        logger.warning("advertised status %r is not known; treated as unknown", raw)
        return ServerStatus.UNKNOWN


def bearer_secret(authorization: str) -> str:
    """The secret of ``Authorization: Bearer <secret>``, or AdRejected (403)."""
    if not authorization:
        raise AdRejected(403, "Missing Authorization header with a registration token")
    if not authorization.startswith("Bearer ") or not authorization[7:].strip():
        raise AdRejected(403, "The Authorization header must be 'Bearer <registration token>'")
    return authorization[7:].strip()


def check_token(kind: str, authorization: str, registry_prefix: str) -> models.RegistrationToken:
    """The live token for ``registry_prefix`` that the bearer secret matches, or AdRejected."""
    secret = bearer_secret(authorization)
    prefix_kind = registry_prefix_kind(registry_prefix)
    if prefix_kind is None:
        raise AdRejected(
            403, f"registry-prefix {registry_prefix!r} is not /origins/<site> or /caches/<site>"
        )
    if prefix_kind != kind:
        raise AdRejected(
            403,
            f"registry-prefix {registry_prefix!r} is for a {prefix_kind}; "
            f"this endpoint registers a {kind}",
        )
    # Every live token of the prefix is compared in constant time; there are few.
    for token in models.RegistrationToken.objects.live().filter(registry_prefix=registry_prefix):
        if token.matches(secret):
            return token
    raise AdRejected(403, f"The token is not a live registration token for {registry_prefix}")


def record_advertisement(
    kind: str,
    ad: AdvertisementIn,
    *,
    authorization: str,
    user_agent: str = "",
    received_at: dt.datetime | None = None,
) -> RecordedAd:
    """Check and store one ad (reference 1.6). Raises AdRejected; stores nothing then."""
    received_at = received_at or timezone.now()
    problem = user_agent_problem(user_agent, MIN_ADVERTISE_VERSIONS)
    if problem:
        raise AdRejected(500, f"Incompatible versions detected: {problem}")
    token = check_token(kind, authorization, ad.registry_prefix)
    expires_at = effective_expiry(ad, received_at)
    if expires_at <= received_at:
        raise AdRejected(400, f"The advertisement expired at {expires_at.isoformat()}")
    paths = [namespace.path for namespace in ad.namespaces]
    duplicates = sorted({path for path in paths if paths.count(path) > 1})
    if duplicates:
        raise AdRejected(400, f"namespaces: duplicate path(s) {', '.join(duplicates)}")
    refused = [
        path
        for path in paths
        # Caches always serve the federation's own /pelican/ paths (reference 1.6 step 5).
        if not token.allows_namespace(path)
        and not (kind == "cache" and path.startswith("/pelican/"))
    ]
    if refused:
        raise AdRejected(
            403,
            f"The token for {ad.registry_prefix} may not advertise {', '.join(refused)} "
            f"(allowed: {', '.join(token.allowed_namespaces())})",
        )
    for downtime in ad.downtimes:
        if downtime.endTime != -1 and downtime.endTime < downtime.startTime:
            raise AdRejected(
                400, f"downtimes: endTime is before startTime in downtime {downtime.id!r}"
            )

    try:
        return _store(kind, ad, token, user_agent, received_at, expires_at)
    except IntegrityError:
        # Two first advertisements of one name at once: the row did not exist to lock.
        raise AdRejected(409, f"Server {ad.name!r} was registered concurrently; retry") from None


def _store(
    kind: str,
    ad: AdvertisementIn,
    token: models.RegistrationToken,
    user_agent: str,
    received_at: dt.datetime,
    expires_at: dt.datetime,
) -> RecordedAd:
    with transaction.atomic():
        server = models.Server.objects.select_for_update().filter(name=ad.name).first()
        created = server is None
        if server is not None:
            if server.source != models.Source.ADVERTISED:
                raise AdRejected(
                    403, f"Server {ad.name!r} is defined in the admin and cannot be advertised"
                )
            if server.registry_prefix != ad.registry_prefix:
                raise AdRejected(
                    403,
                    f"Server {ad.name!r} is registered under {server.registry_prefix}, "
                    f"not {ad.registry_prefix}",
                )
        else:
            server = models.Server(name=ad.name, source=models.Source.ADVERTISED, kind=kind)
        time_constant = models.StatSettings.current().status_ewma_time_constant
        _apply_ad(server, kind, ad, user_agent, received_at, expires_at, time_constant)
        server.save()
        server.namespaces.all().delete()
        models.Namespace.objects.bulk_create(_namespace_rows(server, ad))
        server.downtimes.filter(source=models.Source.ADVERTISED).delete()
        models.Downtime.objects.bulk_create(_downtime_rows(server, ad))
        token.last_used_at = received_at
        token.save(update_fields=["last_used_at"])
        registry_changed()
    return RecordedAd(server=server, created=created)


def _apply_ad(
    server: models.Server,
    kind: str,
    ad: AdvertisementIn,
    user_agent: str,
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
    previous_at = server.status_weight_updated_at
    server.status_weight = ewma_status_weight(
        server.status_weight if previous_at else None,
        (received_at - previous_at).total_seconds() if previous_at else None,
        status,
        time_constant,
    )
    server.status_weight_updated_at = received_at
    if ad.director_test:
        server.health_status = models.HealthStatus.DISABLED
    elif server.health_status == models.HealthStatus.DISABLED:
        server.health_status = models.HealthStatus.UNKNOWN
    server.version = ad.version or user_agent_version(user_agent) or "unknown"
    server.expires_at = expires_at
    server.last_advertised_at = received_at
    server.storage_type = ad.storage_type
    server.director_test_disabled = ad.director_test
    server.required_features = list(ad.required_features)


def _namespace_rows(server: models.Server, ad: AdvertisementIn) -> list[models.Namespace]:
    rows = []
    for namespace in ad.namespaces:
        row = models.Namespace(
            server=server,
            path=namespace.path,
            token_issuers=[
                {
                    "issuer": issuer.issuer,
                    "base-paths": issuer.base_paths,
                    "restricted-paths": issuer.restricted_paths,
                }
                for issuer in namespace.token_issuer
            ],
            token_generations=[
                {
                    "strategy": generation.strategy,
                    "vault-server": generation.vault_server,
                    "max-scope-depth": generation.max_scope_depth,
                    "issuer": generation.issuer,
                }
                for generation in namespace.token_generation
            ],
            from_topology=namespace.from_topology,
        )
        row.set_capabilities(namespace.caps.flags())
        rows.append(row)
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
