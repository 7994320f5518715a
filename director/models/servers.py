"""The registry's servers: origins and caches, their namespaces and downtimes, and the
GeoIP overrides that place clients and servers."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pydantic import ValidationError as PydanticValidationError

from director.models.choices import wire_choices
from director.snapshot import DowntimeWindow, Unroutable, unroutable_reason
from director.wire.ads import NamespaceAdIn, token_generation_json, token_issuer_json
from director.wire.types import (
    CAPABILITY_NAMES,
    Capability,
    HealthStatus,
    ServerKind,
    ServerStatus,
)
from director.wire.validation import (
    MAX_DOWNTIME_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_NAMESPACE_LENGTH,
    MAX_SEVERITY_LENGTH,
    MAX_STORAGE_TYPE_LENGTH,
    MAX_URL_LENGTH,
    MAX_VERSION_LENGTH,
    namespace_path_problem,
    url_problem,
)

# The admin lists statuses best first and unknown last; Pelican's order (ServerStatus's)
# is worst first.
STATUSES_BEST_FIRST = (
    *reversed([status for status in ServerStatus if status is not ServerStatus.UNKNOWN]),
    ServerStatus.UNKNOWN,
)


class Source(models.TextChoices):
    ADVERTISED = "advertised", "advertised"
    ADMIN = "admin", "defined in admin"


class DowntimeSource(models.TextChoices):
    """Who set a downtime: an ad, the admin, or the external registry (polled by
    ``director.ops.registrypolls``; read-only here, replaced by each poll)."""

    ADVERTISED = "advertised", "advertised"
    ADMIN = "admin", "defined in admin"
    REGISTRY = "registry", "polled from the registry"


class AuthMode(models.TextChoices):
    """How an advertised server's ads are authenticated. A server keeps the mode of its
    first ad: the other mode may not advertise it until an administrator deletes it."""

    TOKEN = "token", "a registration token of this director"
    PELICAN = "pelican", "an advertise token signed with a key registered for its prefix"


class CapabilityFields(models.Model):
    """The six Pelican capabilities as admin checkboxes, shared by servers and namespaces."""

    public_reads = models.BooleanField("PublicReads", default=False)
    reads = models.BooleanField("Reads", default=False)
    writes = models.BooleanField("Writes", default=False)
    listings = models.BooleanField("Listings", default=False)
    direct_reads = models.BooleanField(
        "DirectReads",
        default=False,
        help_text="Pelican's FallBackRead: clients may read here directly.",
    )
    copies = models.BooleanField("Copies", default=False)

    CAPABILITY_FIELDS: ClassVar[tuple[tuple[str, Capability], ...]] = (
        ("public_reads", Capability.PUBLIC_READS),
        ("reads", Capability.READS),
        ("writes", Capability.WRITES),
        ("listings", Capability.LISTINGS),
        ("direct_reads", Capability.DIRECT_READS),
        ("copies", Capability.COPIES),
    )

    class Meta:
        abstract = True

    @property
    def capabilities(self) -> Capability:
        flags = Capability.NONE
        for field_name, flag in self.CAPABILITY_FIELDS:
            if getattr(self, field_name):
                flags |= flag
        return flags

    def set_capabilities(self, flags: Capability) -> None:
        for field_name, flag in self.CAPABILITY_FIELDS:
            setattr(self, field_name, bool(flags & flag))

    def capability_names(self) -> list[str]:
        return [name for name, flag in CAPABILITY_NAMES if self.capabilities & flag]


class ServerQuerySet(models.QuerySet["Server"]):
    def routable(self) -> ServerQuerySet:
        """Enabled and not expired (downtime and status are applied in the snapshot)."""
        return self.filter(enabled=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )


class Server(CapabilityFields):
    """An origin or cache, advertised through the API or defined in the admin."""

    # Unique per kind: an origin and a cache may share a name, as in Pelican, where each
    # registers under its own prefix (/origins/<name>, /caches/<name>).
    name = models.CharField(max_length=MAX_NAME_LENGTH)
    kind = models.CharField(max_length=10, choices=wire_choices(ServerKind))
    data_url = models.CharField(
        "data URL",
        max_length=MAX_URL_LENGTH,
        help_text="Where objects are read: scheme://host:port[/path].",
    )
    web_url = models.CharField("web URL", max_length=MAX_URL_LENGTH, blank=True)
    auth_url = models.CharField(
        "auth URL",
        max_length=MAX_URL_LENGTH,
        blank=True,
        help_text="Used instead of the data URL for protected namespaces.",
    )
    broker_url = models.CharField("broker URL", max_length=MAX_URL_LENGTH, blank=True)
    registry_prefix = models.CharField(
        max_length=MAX_NAME_LENGTH, blank=True, help_text="/origins/<site> or /caches/<site>."
    )
    latitude = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-90.0), MaxValueValidator(90.0)]
    )
    longitude = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-180.0), MaxValueValidator(180.0)]
    )
    status = models.CharField(
        max_length=20, choices=wire_choices(STATUSES_BEST_FIRST), default=ServerStatus.UNKNOWN
    )
    version = models.CharField(max_length=MAX_VERSION_LENGTH, default="unknown")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.ADMIN)
    auth_mode = models.CharField(
        "advertised with",
        max_length=10,
        choices=AuthMode.choices,
        blank=True,
        editable=False,
        help_text="How its ads are authenticated: the mode of its first ad, kept until the "
        "server is deleted; empty for servers defined in the admin.",
    )
    enabled = models.BooleanField(
        default=True, help_text="A disabled server is left out of all routing."
    )
    expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the last advertisement lapses; empty for admin-defined servers.",
    )
    last_advertised_at = models.DateTimeField(null=True, blank=True)
    storage_type = models.CharField(max_length=MAX_STORAGE_TYPE_LENGTH, blank=True)
    director_test_disabled = models.BooleanField(
        default=False,
        help_text="The server's ad says directorTest: true (no director health tests).",
    )
    required_features = models.JSONField(default=list, blank=True)
    stat_concurrency_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Per-server override of the stat concurrency limit; empty uses the global one.",
    )
    status_weight = models.FloatField(
        default=1.0, help_text="EWMA of the advertised status (1 ok, 0.5 warning, 0.01 worse)."
    )
    status_weight_updated_at = models.DateTimeField(null=True, blank=True)
    health_status = models.CharField(
        max_length=30, choices=wire_choices(HealthStatus), default=HealthStatus.UNKNOWN
    )
    health_message = models.CharField(max_length=500, blank=True)
    health_checked_at = models.DateTimeField(null=True, blank=True)
    health_failing_since = models.DateTimeField(
        null=True, blank=True, help_text="Start of the current run of failed health tests."
    )
    change_seq = models.BigIntegerField(
        default=0,
        db_index=True,
        editable=False,
        help_text="The registry generation of this server's last change (its ad included).",
    )
    structure_seq = models.BigIntegerField(
        default=0,
        editable=False,
        help_text="The generation of its last change beyond expiry and weight.",
    )
    ad_fingerprint = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="SHA-256 of the last ad minus its times: an equal one changes nothing.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ServerQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=list(ServerKind)), name="director_server_kind_valid"
            ),
            # Name first: lookups by name alone (director_ui) use this index too.
            models.UniqueConstraint(
                fields=["name", "kind"], name="director_server_unique_name_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        for field_name in ("data_url", "web_url", "auth_url", "broker_url"):
            value = getattr(self, field_name)
            if field_name == "data_url" or value:
                problem = url_problem(value, allow_query=field_name == "broker_url")
                if problem:
                    errors[field_name] = problem
        if (self.latitude is None) != (self.longitude is None):
            errors["longitude"] = "Give both latitude and longitude, or neither."
        if errors:
            raise ValidationError(errors)

    def unroutable_reason(self, now: dt.datetime | None = None) -> Unroutable | None:
        """Why this row takes no part in routing (the snapshot's rule, on the row), or None.

        Reads ``self.downtimes.all()``: prefetch them when asking for many rows."""
        return unroutable_reason(
            enabled=self.enabled,
            expires_at=self.expires_at.timestamp() if self.expires_at else None,
            status=self.status,
            downtimes=[downtime.window() for downtime in self.downtimes.all()],
            now=(now or timezone.now()).timestamp(),
        )


class Namespace(CapabilityFields):
    """A namespace one server serves, with the token metadata of its Pelican ad."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="namespaces")
    path = models.CharField(
        max_length=MAX_NAMESPACE_LENGTH, help_text="Absolute path without a trailing slash."
    )
    token_issuers = models.JSONField(
        default=list,
        blank=True,
        help_text='List of {"issuer": url, "base-paths": [...], "restricted-paths": [...]}.',
    )
    token_generations = models.JSONField(
        default=list,
        blank=True,
        help_text='List of {"strategy", "vault-server", "max-scope-depth", "issuer"}.',
    )
    from_topology = models.BooleanField(default=False)

    class Meta:
        ordering = ["server__name", "path"]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "path"], name="director_namespace_unique_path"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.path} on {self.server.name}"

    def clean(self) -> None:
        problem = namespace_path_problem(self.path)
        if problem:
            raise ValidationError({"path": problem})
        self.path = self.path.rstrip("/") or "/"
        # The same checks as an advertisement's: these values end up in response headers.
        try:
            parsed = NamespaceAdIn.model_validate(
                {
                    "path": self.path,
                    "token-issuer": self.token_issuers,
                    "token-generation": self.token_generations,
                }
            )
        except PydanticValidationError as error:
            raise ValidationError(
                "; ".join(
                    f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
                    for item in error.errors()
                )
            ) from None
        # Stored as an ad stores them (URLs as strings, every key, the ad's key order).
        self.token_issuers = [token_issuer_json(item.view()) for item in parsed.token_issuer]
        self.token_generations = [
            token_generation_json(item.view()) for item in parsed.token_generation
        ]

    @property
    def require_token(self) -> bool:
        return not self.public_reads


class Downtime(models.Model):
    """A window in which a server takes no part in routing (ads carry their own)."""

    class DowntimeClass(models.TextChoices):
        SCHEDULED = "SCHEDULED", "scheduled"
        UNSCHEDULED = "UNSCHEDULED", "unscheduled"

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="downtimes")
    source = models.CharField(
        max_length=20, choices=DowntimeSource.choices, default=DowntimeSource.ADMIN
    )
    external_id = models.CharField(
        max_length=MAX_DOWNTIME_ID_LENGTH,
        blank=True,
        help_text="The id in the server's ad, or in the registry's downtime list.",
    )
    downtime_class = models.CharField(
        "class", max_length=20, choices=DowntimeClass.choices, default=DowntimeClass.SCHEDULED
    )
    severity = models.CharField(max_length=MAX_SEVERITY_LENGTH, blank=True)
    description = models.TextField(blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty means indefinite.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["server__name", "starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gte=models.F("starts_at")),
                name="director_downtime_ends_after_start",
            ),
            # Processes that poll the registry at once insert each of its downtimes once.
            models.UniqueConstraint(
                fields=["server", "external_id"],
                condition=Q(source="registry"),
                name="director_downtime_unique_registry_id",
            ),
        ]

    def __str__(self) -> str:
        end = self.ends_at.isoformat() if self.ends_at else "indefinite"
        return f"{self.server.name}: {self.starts_at.isoformat()} to {end}"

    def clean(self) -> None:
        if self.ends_at is not None and self.starts_at and self.ends_at < self.starts_at:
            raise ValidationError({"ends_at": "The downtime must end after it starts."})

    def window(self) -> DowntimeWindow:
        return DowntimeWindow(
            start=self.starts_at.timestamp(),
            end=self.ends_at.timestamp() if self.ends_at else None,
        )

    @property
    def active(self) -> bool:
        return self.window().active(timezone.now().timestamp())


class GeoIPOverride(models.Model):
    """A client or server address range placed at a fixed coordinate (first match wins)."""

    network = models.CharField(
        max_length=64,
        help_text="An IPv4 or IPv6 address or CIDR, e.g. 192.0.2.0/24 or 2001:db8::/32.",
    )
    latitude = models.FloatField(validators=[MinValueValidator(-90.0), MaxValueValidator(90.0)])
    longitude = models.FloatField(validators=[MinValueValidator(-180.0), MaxValueValidator(180.0)])
    position = models.PositiveIntegerField(
        default=0, help_text="Rows are tried in ascending position; the first match wins."
    )
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["position", "pk"]
        verbose_name = "GeoIP override"

    def __str__(self) -> str:
        return f"{self.network} -> ({self.latitude}, {self.longitude})"

    def clean(self) -> None:
        try:
            ipaddress.ip_network(self.network.strip(), strict=False)
        except ValueError:
            raise ValidationError(
                {"network": f"{self.network!r} is not an IPv4/IPv6 address or CIDR."}
            ) from None
        self.network = self.network.strip()
