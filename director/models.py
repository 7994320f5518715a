"""The registry: servers, their namespaces and downtimes, registration tokens, settings.

The redirect path never reads these tables; ``director.registry`` turns them into an
in-memory ``Snapshot`` whenever the change counter (``RegistryState``) moves.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import logging
import secrets
from typing import ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pydantic import ValidationError as PydanticValidationError

from director.snapshot import (
    DEFAULT_SETTINGS,
    DirectorSettings,
    DowntimeWindow,
    Unroutable,
    unroutable_reason,
)
from director.wire.ads import NamespaceAdIn
from director.wire.types import CAPABILITY_NAMES, Capability, ServerKind, ServerStatus
from director.wire.types import HealthStatus as WireHealthStatus
from director.wire.types import SortMethod as WireSortMethod
from director.wire.validation import namespace_path_problem, registry_prefix_kind, url_problem

logger = logging.getLogger(__name__)


class Kind(models.TextChoices):
    ORIGIN = ServerKind.ORIGIN.value, "origin"
    CACHE = ServerKind.CACHE.value, "cache"


class Status(models.TextChoices):
    OK = ServerStatus.OK.value, "ok"
    WARNING = ServerStatus.WARNING.value, "warning"
    DEGRADED = ServerStatus.DEGRADED.value, "degraded"
    CRITICAL = ServerStatus.CRITICAL.value, "critical"
    SHUTTING_DOWN = ServerStatus.SHUTTING_DOWN.value, "shutting down"
    UNKNOWN = ServerStatus.UNKNOWN.value, "unknown"


class HealthStatus(models.TextChoices):
    """Director health tests (reference 7.4), as Pelican shows them in ``healthStatus``."""

    UNKNOWN = WireHealthStatus.UNKNOWN.value, "unknown"
    INITIALIZING = WireHealthStatus.INITIALIZING.value, "initializing"
    OK = WireHealthStatus.OK.value, "ok"
    ERROR = WireHealthStatus.ERROR.value, "error"
    DISABLED = WireHealthStatus.DISABLED.value, "disabled"


class Source(models.TextChoices):
    ADVERTISED = "advertised", "advertised"
    ADMIN = "admin", "defined in admin"


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

    name = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    data_url = models.CharField(
        "data URL", max_length=1000, help_text="Where objects are read: scheme://host:port[/path]."
    )
    web_url = models.CharField("web URL", max_length=1000, blank=True)
    auth_url = models.CharField(
        "auth URL",
        max_length=1000,
        blank=True,
        help_text="Used instead of the data URL for protected namespaces.",
    )
    broker_url = models.CharField("broker URL", max_length=1000, blank=True)
    registry_prefix = models.CharField(
        max_length=255, blank=True, help_text="/origins/<site> or /caches/<site>."
    )
    latitude = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-90.0), MaxValueValidator(90.0)]
    )
    longitude = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-180.0), MaxValueValidator(180.0)]
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UNKNOWN)
    version = models.CharField(max_length=100, default="unknown")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.ADMIN)
    enabled = models.BooleanField(
        default=True, help_text="A disabled server is left out of all routing."
    )
    expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the last advertisement lapses; empty for admin-defined servers.",
    )
    last_advertised_at = models.DateTimeField(null=True, blank=True)
    storage_type = models.CharField(max_length=50, blank=True)
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
        max_length=30, choices=HealthStatus.choices, default=HealthStatus.UNKNOWN
    )
    health_message = models.CharField(max_length=500, blank=True)
    health_checked_at = models.DateTimeField(null=True, blank=True)
    health_failing_since = models.DateTimeField(
        null=True, blank=True, help_text="Start of the current run of failed health tests."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ServerQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=[Kind.ORIGIN, Kind.CACHE]), name="director_server_kind_valid"
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
    path = models.CharField(max_length=1024, help_text="Absolute path without a trailing slash.")
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
            NamespaceAdIn.model_validate(
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

    @property
    def require_token(self) -> bool:
        return not self.public_reads


class Downtime(models.Model):
    """A window in which a server takes no part in routing (ads carry their own)."""

    class DowntimeClass(models.TextChoices):
        SCHEDULED = "SCHEDULED", "scheduled"
        UNSCHEDULED = "UNSCHEDULED", "unscheduled"

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="downtimes")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.ADMIN)
    external_id = models.CharField(
        max_length=100, blank=True, help_text="The id in the server's ad."
    )
    downtime_class = models.CharField(
        "class", max_length=20, choices=DowntimeClass.choices, default=DowntimeClass.SCHEDULED
    )
    severity = models.CharField(max_length=100, blank=True)
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


def hash_token_secret(secret: str) -> str:
    """SHA-256 of the secret: tokens are 32 random bytes, so a fast hash is enough."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class RegistrationTokenQuerySet(models.QuerySet["RegistrationToken"]):
    def live(self) -> RegistrationTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class RegistrationToken(models.Model):
    """A bearer token that lets a server advertise under one registry prefix.

    Only the SHA-256 of the secret is stored; the secret is shown once, when created.
    """

    registry_prefix = models.CharField(
        max_length=255, help_text="/origins/<site> or /caches/<site>: the ads this token may send."
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    description = models.CharField(max_length=255, blank=True)
    namespace_prefixes = models.TextField(
        blank=True,
        help_text=(
            "One namespace per line that ads sent with this token may serve (the namespace "
            "itself or anything under it). Empty: any namespace, so any holder of the token "
            "can claim any path of the federation."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = RegistrationTokenQuerySet.as_manager()

    class Meta:
        ordering = ["registry_prefix", "-created_at"]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "live"
        return f"{self.registry_prefix} ({state}, #{self.pk})"

    def clean(self) -> None:
        if registry_prefix_kind(self.registry_prefix) is None:
            raise ValidationError(
                {"registry_prefix": "Use /origins/<site> or /caches/<site> (one path segment)."}
            )
        problems = [
            problem
            for prefix in self.allowed_namespaces()
            if (problem := namespace_path_problem(prefix))
        ]
        if problems:
            raise ValidationError({"namespace_prefixes": problems})

    def allowed_namespaces(self) -> list[str]:
        return [
            line.strip().rstrip("/") or "/"
            for line in self.namespace_prefixes.splitlines()
            if line.strip()
        ]

    def allows_namespace(self, path: str) -> bool:
        """True when the token may advertise ``path`` (the trailing-slash rule applies)."""
        allowed = self.allowed_namespaces()
        if not allowed:
            return True
        key = path.rstrip("/") + "/"
        return any(key.startswith(prefix.rstrip("/") + "/") for prefix in allowed)

    @property
    def kind(self) -> str | None:
        return registry_prefix_kind(self.registry_prefix)

    @classmethod
    def issue(
        cls, registry_prefix: str, description: str = "", namespaces: list[str] | None = None
    ) -> tuple[RegistrationToken, str]:
        """Create a token; return it and its secret (which is not stored)."""
        secret = secrets.token_urlsafe(32)
        token = cls(
            registry_prefix=registry_prefix,
            description=description,
            namespace_prefixes="\n".join(namespaces or []),
        )
        token.full_clean(exclude=["token_hash"])
        token.token_hash = hash_token_secret(secret)
        token.save()
        return token, secret

    @classmethod
    def live_by_secret(cls, secret: str) -> RegistrationToken | None:
        """The live token whose secret this is (looked up by its hash), or None."""
        return cls.objects.live().filter(token_hash=hash_token_secret(secret)).first()


class StatSettings(models.Model):
    """The single row of director and stat parameters (Pelican's Director.*).

    Saved changes reach every running process within about a second.
    """

    class SortMethod(models.TextChoices):
        DISTANCE = WireSortMethod.DISTANCE.value, "distance"
        DISTANCE_AND_LOAD = (
            WireSortMethod.DISTANCE_AND_LOAD.value,
            "distanceAndLoad (same as distance)",
        )
        RANDOM = WireSortMethod.RANDOM.value, "random"
        ADAPTIVE = WireSortMethod.ADAPTIVE.value, "adaptive"

    stat_timeout = models.FloatField(
        default=DEFAULT_SETTINGS.stat_timeout,
        validators=[MinValueValidator(0.01)],
        help_text="Seconds one HEAD may take.",
    )
    stat_concurrency_limit = models.PositiveIntegerField(
        default=DEFAULT_SETTINGS.stat_concurrency_limit,
        validators=[MinValueValidator(1)],
        help_text="HEADs in flight per server.",
    )
    stat_max_wait = models.FloatField(
        default=DEFAULT_SETTINGS.stat_max_wait,
        validators=[MinValueValidator(0.0)],
        help_text="Seconds a stat may wait for a free slot before the server counts as saturated.",
    )
    stat_max_waiters = models.PositiveIntegerField(
        default=DEFAULT_SETTINGS.stat_max_waiters,
        help_text="Stats that may wait for a slot per server; beyond: saturated at once.",
    )
    redirect_timeout = models.FloatField(
        default=DEFAULT_SETTINGS.redirect_timeout,
        validators=[MinValueValidator(0.01)],
        help_text="Hard deadline of a redirect request, in seconds.",
    )
    cache_presence_ttl = models.FloatField(
        default=DEFAULT_SETTINGS.cache_presence_ttl,
        validators=[MinValueValidator(0.0)],
        help_text="Seconds a stat answer is kept.",
    )
    cache_presence_capacity = models.PositiveIntegerField(
        default=DEFAULT_SETTINGS.cache_presence_capacity,
        validators=[MinValueValidator(1)],
        help_text="Stat answers kept per server.",
    )
    check_origin_presence = models.BooleanField(default=DEFAULT_SETTINGS.check_origin_presence)
    check_cache_presence = models.BooleanField(default=DEFAULT_SETTINGS.check_cache_presence)
    assume_presence_at_single_origin = models.BooleanField(
        default=DEFAULT_SETTINGS.assume_presence_at_single_origin
    )
    max_stat_responses = models.PositiveIntegerField(
        default=DEFAULT_SETTINGS.max_stat_responses,
        validators=[MinValueValidator(1)],
        help_text="The redirect returns once this many servers answered present.",
    )
    sort_method = models.CharField(
        max_length=20, choices=SortMethod.choices, default=DEFAULT_SETTINGS.sort_method.value
    )
    startup_grace = models.FloatField(
        default=DEFAULT_SETTINGS.startup_grace,
        validators=[MinValueValidator(0.0)],
        help_text=(
            "Seconds after start during which an unknown path gets 429 instead of 404; 0 disables."
        ),
    )
    filter_caches_in_error_state = models.BooleanField(
        default=DEFAULT_SETTINGS.filter_caches_in_error_state,
        help_text="Leave caches whose status is critical or shutting down out of redirects.",
    )
    ejection_consecutive_failures = models.PositiveIntegerField(
        default=DEFAULT_SETTINGS.ejection_consecutive_failures,
        validators=[MinValueValidator(1)],
        help_text="Consecutive timeouts, errors or 5xx that eject a server.",
    )
    ejection_base_time = models.FloatField(
        default=DEFAULT_SETTINGS.ejection_base_time,
        validators=[MinValueValidator(0.0)],
        help_text="Seconds of the first ejection; multiplied by the times ejected.",
    )
    ejection_max_time = models.FloatField(
        default=DEFAULT_SETTINGS.ejection_max_time,
        validators=[MinValueValidator(0.0)],
        help_text="Upper bound of one ejection, in seconds.",
    )
    adaptive_working_set = models.PositiveIntegerField(
        default=DEFAULT_SETTINGS.adaptive_working_set,
        validators=[MinValueValidator(3)],
        help_text="Adaptive sort: the nearest servers that are statted and sampled (at least 3).",
    )
    status_ewma_time_constant = models.FloatField(
        default=DEFAULT_SETTINGS.status_ewma_time_constant,
        validators=[MinValueValidator(1.0)],
        help_text="Seconds: time constant of the status weight's moving average.",
    )
    health_test_interval = models.FloatField(
        default=DEFAULT_SETTINGS.health_test_interval,
        validators=[MinValueValidator(0.0)],
        help_text="Seconds between director health tests of one server; 0 turns them off.",
    )
    health_test_timeout = models.FloatField(
        default=DEFAULT_SETTINGS.health_test_timeout,
        validators=[MinValueValidator(0.1)],
        help_text="Deadline of one whole health test (all its requests).",
    )
    health_failure_grace = models.FloatField(
        default=DEFAULT_SETTINGS.health_failure_grace,
        validators=[MinValueValidator(0.0)],
        help_text="Seconds of failing health tests before the server's weight is lowered.",
    )
    health_failure_weight = models.FloatField(
        default=DEFAULT_SETTINGS.health_failure_weight,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Factor on the status weight of a server failing its health tests.",
    )
    max_inflight_requests = models.PositiveIntegerField(
        default=DEFAULT_SETTINGS.max_inflight_requests,
        validators=[MinValueValidator(1)],
        help_text=(
            "Requests one process serves at once; beyond that it answers 429 with Retry-After: 1."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "director settings"
        verbose_name_plural = "director settings"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="director_statsettings_singleton"),
        ]

    def __str__(self) -> str:
        return "Director settings"

    def clean(self) -> None:
        if self.ejection_max_time < self.ejection_base_time:
            raise ValidationError({"ejection_max_time": "Must be at least the base ejection time."})
        if self.redirect_timeout <= self.stat_timeout + self.stat_max_wait:
            raise ValidationError(
                {
                    "redirect_timeout": (
                        "Must be longer than the stat timeout plus the stat max wait: a stat "
                        "cut short by the redirect deadline says nothing about its server, "
                        "so a hung server would never be ejected."
                    )
                }
            )

    def save(self, *args: object, **kwargs: object) -> None:
        self.pk = 1
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def load(cls) -> StatSettings:
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row

    def as_settings(self) -> DirectorSettings:
        """This row as the frozen settings that the snapshot carries."""
        values = {
            item.name: getattr(self, item.name) for item in dataclasses.fields(DirectorSettings)
        }
        try:
            values["sort_method"] = WireSortMethod(self.sort_method)
        except ValueError:  # only raw SQL can store a value outside the choices
            logger.warning(
                "sort_method %r is not known; %s is used",
                self.sort_method,
                DEFAULT_SETTINGS.sort_method,
            )
            values["sort_method"] = DEFAULT_SETTINGS.sort_method
        return DirectorSettings(**values)

    @classmethod
    def current(cls) -> DirectorSettings:
        """The stored settings, or the defaults while no row has been saved."""
        row = cls.objects.filter(pk=1).first()
        return row.as_settings() if row is not None else DEFAULT_SETTINGS


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


class HealthTestLease(models.Model):
    """Which director process runs the health tests now (one per database)."""

    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="director_healthlease_singleton")
        ]

    def __str__(self) -> str:
        return f"Health tests run by {self.holder or 'nobody'}"


class RegistryState(models.Model):
    """One row whose ``generation`` moves on every registry change.

    Each director process compares it with its snapshot's generation (at most once per
    second) and rebuilds the snapshot when it moved: that is how processes sharing one
    database converge.
    """

    generation = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="director_registrystate_singleton")
        ]

    def __str__(self) -> str:
        return f"Registry generation {self.generation}"
