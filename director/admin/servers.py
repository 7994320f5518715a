"""The registry's servers, their namespaces and downtimes, and the GeoIP overrides."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils import timezone

from director import presence
from director.console.schemas import health_word
from director.federation import external, polls
from director.models import (
    CapabilityFields,
    Downtime,
    DowntimeSource,
    GeoIPOverride,
    Namespace,
    Server,
    Source,
)
from director.registry import registry_changed
from director.wire.types import ServerKind

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec

from director.admin.base import (
    SMALL_JSON,
    RegistryAdmin,
    log_changes,
    when,
)

CAPABILITY_FIELDS = tuple(name for name, _ in CapabilityFields.CAPABILITY_FIELDS)
# What an advertisement sets: read-only for advertised servers (the next ad would undo an edit).
ADVERTISED_SERVER_FIELDS = (
    "name",
    "kind",
    "data_url",
    "web_url",
    "auth_url",
    "broker_url",
    "registry_prefix",
    *CAPABILITY_FIELDS,
    "latitude",
    "longitude",
    "status",
    "version",
    "storage_type",
    "director_test_disabled",
    "required_features",
)


class NamespaceInline(admin.TabularInline[Namespace, Server]):
    """Editable on admin-defined servers; an advertised server's come from its ads."""

    model = Namespace
    extra = 0
    fields = ("path", *CAPABILITY_FIELDS, "token_issuers", "token_generations")
    formfield_overrides = SMALL_JSON

    def has_change_permission(self, request: HttpRequest, obj: Server | None = None) -> bool:
        return obj is None or obj.source == Source.ADMIN

    def has_add_permission(self, request: HttpRequest, obj: Server | None = None) -> bool:
        return obj is None or obj.source == Source.ADMIN

    def has_delete_permission(self, request: HttpRequest, obj: Server | None = None) -> bool:
        return obj is None or obj.source == Source.ADMIN


DOWNTIME_FIELDS = ("downtime_class", "severity", "description", "starts_at", "ends_at")


class DowntimeInline(admin.TabularInline[Downtime, Server]):
    """The admin's own downtimes of a server (its ad never touches these)."""

    model = Downtime
    extra = 0
    fields = DOWNTIME_FIELDS
    verbose_name_plural = "downtimes set in the admin"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Downtime]:
        return super().get_queryset(request).filter(source=Source.ADMIN)


class AdvertisedDowntimeInline(admin.TabularInline[Downtime, Server]):
    """An advertised server's own downtimes, read-only: its next ad replaces them."""

    model = Downtime
    extra = 0
    fields = DOWNTIME_FIELDS
    readonly_fields = DOWNTIME_FIELDS
    verbose_name_plural = "downtimes from its advertisement (read-only)"
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Downtime]:
        return super().get_queryset(request).filter(source=Source.ADVERTISED)

    def has_add_permission(self, request: HttpRequest, obj: Server | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Server | None = None) -> bool:
        return False


class RegistryDowntimeInline(AdvertisedDowntimeInline):
    """Downtimes polled from the external registry, read-only: each poll replaces them."""

    verbose_name_plural = "downtimes from the external registry (read-only)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Downtime]:
        queryset: QuerySet[Downtime] = admin.TabularInline.get_queryset(self, request)
        return queryset.filter(source=DowntimeSource.REGISTRY)


def registry_allowed_prefixes(obj: Server) -> str:
    """What the external registry's polled allowed prefixes give this cache."""
    allowed_map = polls.state.allowed.value
    if allowed_map is None:
        return "not polled yet"
    name = polls.prefix_name(obj.registry_prefix) if obj.registry_prefix else obj.name
    host = urlsplit(obj.data_url).hostname or ""
    allowed = polls.allowed_for(allowed_map, name, host)
    if allowed is None:
        return "any namespace (no entry, or *)"
    return ", ".join(sorted(allowed)) or "none (an empty list): only /pelican/..."


@admin.register(Server)
class ServerAdmin(RegistryAdmin[Server]):
    list_display = (
        "name",
        "kind",
        "status_and_weight",
        "enabled",
        "routing_state",
        "health_test",
        "namespace_count",
        "last_advertised",
    )
    list_filter = ("kind", "status", "enabled", "source", "health_status")
    search_fields = ("name", "data_url", "web_url", "registry_prefix", "namespaces__path")
    actions = ("disable_servers", "enable_servers", "expire_now")
    formfield_overrides = SMALL_JSON

    def get_inlines(
        self, request: HttpRequest, obj: Server | None
    ) -> list[type[admin.options.InlineModelAdmin[Any, Any]]]:
        inlines: list[type[admin.options.InlineModelAdmin[Any, Any]]] = [
            NamespaceInline,
            DowntimeInline,
        ]
        if obj is not None and obj.source == Source.ADVERTISED:
            inlines.append(AdvertisedDowntimeInline)
        if obj is not None and obj.downtimes.filter(source=DowntimeSource.REGISTRY).exists():
            inlines.append(RegistryDowntimeInline)
        return inlines

    def get_fieldsets(self, request: HttpRequest, obj: Server | None = None) -> _FieldsetSpec:
        advertised = obj is not None and obj.source == Source.ADVERTISED
        tests = "health_tests" if advertised else "director_test_disabled"
        polled: _FieldsetSpec = (
            [("External registry", {"fields": ("allowed_prefixes",)})]
            if obj is not None and obj.kind == ServerKind.CACHE and external.configured()
            else []
        )
        return [
            (None, {"fields": ("name", "kind", "enabled", "routing_state", "status", "source")}),
            (
                "URLs",
                {"fields": ("data_url", "auth_url", "web_url", "broker_url", "registry_prefix")},
            ),
            *polled,
            ("Capabilities", {"fields": CAPABILITY_FIELDS}),
            ("Location", {"fields": ("latitude", "longitude")}),
            (
                "Advertisement",
                {
                    "fields": (
                        "version",
                        "storage_type",
                        tests,
                        "required_features",
                        "expires" if advertised else "expires_at",
                        "last_advertised",
                    )
                },
            ),
            (
                "Health and weight",
                {
                    "fields": (
                        "health_test",
                        "health_message",
                        "health_failing",
                        "status_weight",
                        "status_weight_updated_at",
                    )
                },
            ),
            ("Advanced", {"classes": ("collapse",), "fields": ("stat_concurrency_limit",)}),
        ]

    def get_form(
        self, request: HttpRequest, obj: Server | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Server]]:
        """Two kinds of "off", two words: routing (``enabled``) and health tests."""
        form = super().get_form(request, obj, change, **kwargs)
        fields = form.base_fields
        if "enabled" in fields:
            fields["enabled"].label = "In routing"
            fields["enabled"].help_text = "Unticked: disabled in the admin, left out of routing."
        if "director_test_disabled" in fields:
            fields["director_test_disabled"].label = "Skip the director's health tests"
            fields["director_test_disabled"].help_text = "What an ad says with directorTest: true."
        return form

    def get_queryset(self, request: HttpRequest) -> QuerySet[Server]:
        queryset: QuerySet[Server] = super().get_queryset(request)
        # The routing column reads each row's downtimes.
        return queryset.annotate(_namespace_count=Count("namespaces")).prefetch_related("downtimes")

    def get_readonly_fields(
        self, request: HttpRequest, obj: Server | None = None
    ) -> tuple[str, ...]:
        always = (
            "allowed_prefixes",
            "source",
            "routing_state",
            "last_advertised",
            "health_test",
            "health_message",
            "health_failing",
            "health_tests",
            "expires",
            "status_weight",
            "status_weight_updated_at",
        )
        if obj is not None and obj.source == Source.ADVERTISED:
            return (*always, *ADVERTISED_SERVER_FIELDS, "expires_at")
        return always

    deleting_is_full = True

    @admin.display(description="allowed prefixes (polled)")
    def allowed_prefixes(self, obj: Server) -> str:
        return registry_allowed_prefixes(obj)

    def servers_of(self, obj: Server) -> list[int]:
        return [obj.pk]

    def save_model(
        self, request: HttpRequest, obj: Server, form: ModelForm[Server], change: bool
    ) -> None:
        if not change:
            obj.source = Source.ADMIN
            super().save_model(request, obj, form, change)
            return
        before = Server.objects.filter(pk=obj.pk).values_list("kind", "name").first()
        admin.ModelAdmin.save_model(self, request, obj, form, change)
        # A renamed server (or a new kind) leaves its old key in every snapshot: rebuild.
        registry_changed([obj.pk], full=before != (obj.kind, obj.name))

    def get_deleted_objects(
        self, objs: Sequence[Server] | QuerySet[Server], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """A server's namespaces and downtimes go with it, its advertised ones included
        (read-only on their own pages): deleting an advertised server also releases the
        authentication mode it keeps (``director.ads.check_auth_mode``)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        parts = {str(Namespace._meta.verbose_name), str(Downtime._meta.verbose_name)}
        return deleted, counts, perms_needed - parts, protected

    @admin.display(description="namespaces", ordering="_namespace_count")
    def namespace_count(self, obj: Server) -> int:
        return getattr(obj, "_namespace_count", 0)

    @admin.display(description="status · weight", ordering="status")
    def status_and_weight(self, obj: Server) -> str:
        return f"{obj.get_status_display()} · {obj.status_weight:.2f}"

    @admin.display(description="routing")
    def routing_state(self, obj: Server) -> str:
        """The one routability rule, then this process's ejection with its time left."""
        reason = obj.unroutable_reason()
        if reason is not None:
            return reason.value
        pool = presence.engine.state((obj.kind, obj.name))
        if pool is not None and pool.ejected:
            return f"ejected, {pool.ejected_for:.0f} s left (times ejected: {pool.times_ejected})"
        return "routable"

    @admin.display(description="health test", ordering="health_checked_at")
    def health_test(self, obj: Server) -> str:
        word = health_word(obj.health_status, not obj.director_test_disabled)
        return f"{word}, {when(obj.health_checked_at)}" if obj.health_checked_at else word

    @admin.display(description="health tests")
    def health_tests(self, obj: Server) -> str:
        if obj.director_test_disabled:
            return "not run: its ad says directorTest: true"
        return "run by the director"

    @admin.display(description="failing since")
    def health_failing(self, obj: Server) -> str:
        return when(obj.health_failing_since)

    @admin.display(description="last advertised", ordering="last_advertised_at")
    def last_advertised(self, obj: Server) -> str:
        return when(obj.last_advertised_at) if obj.last_advertised_at else "never (defined here)"

    @admin.display(description="advertisement expires")
    def expires(self, obj: Server) -> str:
        return when(obj.expires_at)

    def _update(
        self, request: HttpRequest, queryset: QuerySet[Server], message: str, **changes: Any
    ) -> int:
        with transaction.atomic():
            servers = list(queryset)
            count = queryset.update(**changes)
            registry_changed([server.pk for server in servers])
            log_changes(request, servers, message)
        return count

    @admin.action(description="Disable selected servers (leave them out of routing)")
    def disable_servers(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        count = self._update(
            request, queryset, "Disabled in the admin (In routing: off).", enabled=False
        )
        self.message_user(request, f"Disabled {count} server(s).", messages.SUCCESS)

    @admin.action(description="Enable selected servers")
    def enable_servers(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        count = self._update(request, queryset, "Enabled (In routing: on).", enabled=True)
        self.message_user(request, f"Enabled {count} server(s).", messages.SUCCESS)

    @admin.action(description="Expire the advertisements of selected servers now")
    def expire_now(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        advertised = queryset.filter(source=Source.ADVERTISED)
        skipped = queryset.count() - advertised.count()
        now = timezone.now()
        count = self._update(
            request, advertised, f"Advertisement expired now ({when(now)}).", expires_at=now
        )
        self.message_user(
            request,
            f"Expired {count} advertised server(s); they return when they advertise again.",
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(
                request,
                f"{skipped} admin-defined server(s) have no advertisement to expire: "
                "disable them instead.",
                messages.WARNING,
            )


class NamespaceForm(ModelForm[Namespace]):
    def clean_server(self) -> Server:
        server: Server = self.cleaned_data["server"]
        if server.source == Source.ADVERTISED:
            raise ValidationError(
                f"{server.name} is an advertised server: its namespaces come from its "
                "advertisements, and its next one would delete a namespace added here. "
                "Add namespaces to servers defined in the admin."
            )
        return server


def _admin_defined(obj: Namespace | Downtime | None) -> bool:
    """A namespace of an admin-defined server, or a downtime set in the admin: the rows
    the admin may change (an ad replaces the others)."""
    if obj is None:
        return True
    if isinstance(obj, Downtime):
        return obj.source == Source.ADMIN
    return obj.server.source == Source.ADMIN


@admin.register(Namespace)
class NamespaceAdmin(RegistryAdmin[Namespace]):
    """Namespaces of admin-defined servers; an advertised server's are read-only here."""

    form = NamespaceForm
    formfield_overrides = SMALL_JSON

    def servers_of(self, obj: Namespace) -> list[int]:
        return [obj.server_id]

    def has_change_permission(self, request: HttpRequest, obj: Namespace | None = None) -> bool:
        return _admin_defined(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Namespace | None = None) -> bool:
        return _admin_defined(obj) and super().has_delete_permission(request, obj)

    list_display = ("path", "server", "public_reads", "reads", "writes", "listings", "direct_reads")
    list_filter = ("server__kind", "public_reads", "writes", "listings")
    search_fields = ("path", "server__name")
    list_select_related = ("server",)
    autocomplete_fields = ("server",)


@admin.register(Downtime)
class DowntimeAdmin(RegistryAdmin[Downtime]):
    """The admin adds downtimes of its own (source "admin", which no ad touches), for any
    server; downtimes from an ad are read-only here (its next ad replaces them)."""

    def servers_of(self, obj: Downtime) -> list[int]:
        return [obj.server_id]

    list_display = ("server", "downtime_class", "severity", "starts", "ends", "source", "is_active")
    list_filter = ("source", "downtime_class")
    search_fields = ("server__name", "description")
    list_select_related = ("server",)
    autocomplete_fields = ("server",)
    fields = ("server", "source", *DOWNTIME_FIELDS)
    readonly_fields = ("source",)

    def has_change_permission(self, request: HttpRequest, obj: Downtime | None = None) -> bool:
        return _admin_defined(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Downtime | None = None) -> bool:
        return _admin_defined(obj) and super().has_delete_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: Downtime, form: ModelForm[Downtime], change: bool
    ) -> None:
        obj.source = Source.ADMIN
        super().save_model(request, obj, form, change)

    @admin.display(description="starts", ordering="starts_at")
    def starts(self, obj: Downtime) -> str:
        return when(obj.starts_at)

    @admin.display(description="ends", ordering="ends_at")
    def ends(self, obj: Downtime) -> str:
        return when(obj.ends_at) if obj.ends_at else "indefinite"

    @admin.display(boolean=True, description="active")
    def is_active(self, obj: Downtime) -> bool:
        return obj.active


@admin.register(GeoIPOverride)
class GeoIPOverrideAdmin(RegistryAdmin[GeoIPOverride]):
    """Address ranges placed at fixed coordinates; the form refuses invalid rows."""

    full_change = True  # clients and servers anywhere may move

    list_display = ("network", "latitude", "longitude", "position", "description")
    list_editable = ("position",)
    search_fields = ("network", "description")
    ordering = ("position", "pk")
