"""The Django admin: the operator's registry of servers, namespaces, tokens and settings."""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Model, QuerySet
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from director.models import (
    CapabilityFields,
    Downtime,
    GeoIPOverride,
    Namespace,
    RegistrationToken,
    Server,
    Source,
    StatSettings,
)
from director.registry import registry_changed

_ModelT = TypeVar("_ModelT", bound=Model)
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


class RegistryAdmin(admin.ModelAdmin[_ModelT]):
    """A ModelAdmin whose every write is one registry change.

    A save (with its inlines), a bulk edit, a delete or a bulk delete runs in one
    transaction and records one change, naming the servers it touched (``servers_of``),
    or a full one (``full_change``: settings and overrides touch every server); every
    director process follows it within about a second.
    """

    full_change = False

    def servers_of(self, obj: _ModelT) -> list[int]:
        """The primary keys of the servers a write of ``obj`` changes."""
        return []

    def _record(self, objects: list[_ModelT], *, full: bool = False) -> None:
        servers = [pk for obj in objects for pk in self.servers_of(obj)]
        registry_changed(servers, full=full or self.full_change)

    def save_model(
        self, request: HttpRequest, obj: _ModelT, form: ModelForm[_ModelT], change: bool
    ) -> None:
        before = self._saved(obj) if change else None  # a row moved to another server
        super().save_model(request, obj, form, change)
        self._record([obj, *([before] if before is not None else [])])

    def _saved(self, obj: _ModelT) -> _ModelT | None:
        return type(obj)._default_manager.filter(pk=obj.pk).first()

    def save_related(
        self,
        request: HttpRequest,
        form: ModelForm[_ModelT],
        formsets: list[BaseFormSet[Any]],
        change: bool,
    ) -> None:
        super().save_related(request, form, formsets, change)
        self._record([form.instance])

    def delete_model(self, request: HttpRequest, obj: _ModelT) -> None:
        servers = self.servers_of(obj)
        super().delete_model(request, obj)
        registry_changed(servers, full=self.full_change or self.deleting_is_full)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[_ModelT]) -> None:
        with transaction.atomic():
            servers = [pk for obj in queryset for pk in self.servers_of(obj)]
            super().delete_queryset(request, queryset)
            registry_changed(servers, full=self.full_change or self.deleting_is_full)

    # A deleted server leaves no row to stamp: every process rebuilds.
    deleting_is_full = False


class NamespaceInline(admin.TabularInline[Namespace, Server]):
    model = Namespace
    extra = 0
    fields = ("path", *CAPABILITY_FIELDS, "token_issuers", "token_generations")

    def has_change_permission(self, request: HttpRequest, obj: Server | None = None) -> bool:
        return obj is None or obj.source == Source.ADMIN

    def has_add_permission(self, request: HttpRequest, obj: Server | None = None) -> bool:
        return obj is None or obj.source == Source.ADMIN

    def has_delete_permission(self, request: HttpRequest, obj: Server | None = None) -> bool:
        return obj is None or obj.source == Source.ADMIN


class DowntimeInline(admin.TabularInline[Downtime, Server]):
    model = Downtime
    extra = 0
    fields = ("source", "downtime_class", "severity", "description", "starts_at", "ends_at")
    readonly_fields = ("source",)


@admin.register(Server)
class ServerAdmin(RegistryAdmin[Server]):
    list_display = (
        "name",
        "kind",
        "status",
        "enabled",
        "source",
        "data_url",
        "namespace_count",
        "routing_state",
        "health_status",
        "last_advertised_at",
    )
    list_filter = ("kind", "status", "enabled", "source", "health_status")
    search_fields = ("name", "data_url", "web_url", "registry_prefix", "namespaces__path")
    inlines = (NamespaceInline, DowntimeInline)
    actions = ("disable_servers", "enable_servers", "expire_now")
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled", "status", "source")}),
        ("URLs", {"fields": ("data_url", "auth_url", "web_url", "broker_url", "registry_prefix")}),
        ("Capabilities", {"fields": CAPABILITY_FIELDS}),
        ("Location", {"fields": ("latitude", "longitude")}),
        (
            "Advertisement",
            {
                "fields": (
                    "version",
                    "storage_type",
                    "director_test_disabled",
                    "required_features",
                    "expires_at",
                    "last_advertised_at",
                )
            },
        ),
        (
            "Health and weight",
            {
                "fields": (
                    "health_status",
                    "health_message",
                    "health_checked_at",
                    "health_failing_since",
                    "status_weight",
                    "status_weight_updated_at",
                )
            },
        ),
        ("Advanced", {"classes": ("collapse",), "fields": ("stat_concurrency_limit",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Server]:
        queryset: QuerySet[Server] = super().get_queryset(request)
        # The routing column reads each row's downtimes.
        return queryset.annotate(_namespace_count=Count("namespaces")).prefetch_related("downtimes")

    def get_readonly_fields(
        self, request: HttpRequest, obj: Server | None = None
    ) -> tuple[str, ...]:
        always = (
            "source",
            "last_advertised_at",
            "health_status",
            "health_message",
            "health_checked_at",
            "health_failing_since",
            "status_weight",
            "status_weight_updated_at",
        )
        if obj is not None and obj.source == Source.ADVERTISED:
            return (*always, *ADVERTISED_SERVER_FIELDS, "expires_at")
        return always

    deleting_is_full = True

    def servers_of(self, obj: Server) -> list[int]:
        return [obj.pk]

    def save_model(
        self, request: HttpRequest, obj: Server, form: ModelForm[Server], change: bool
    ) -> None:
        if not change:
            obj.source = Source.ADMIN
            super().save_model(request, obj, form, change)
            return
        before = Server.objects.filter(pk=obj.pk).values_list("name", flat=True).first()
        admin.ModelAdmin.save_model(self, request, obj, form, change)
        # A renamed server leaves its old name in every snapshot: rebuild.
        registry_changed([obj.pk], full=before != obj.name)

    @admin.display(description="namespaces", ordering="_namespace_count")
    def namespace_count(self, obj: Server) -> int:
        return getattr(obj, "_namespace_count", 0)

    @admin.display(description="routing")
    def routing_state(self, obj: Server) -> str:
        reason = obj.unroutable_reason()
        return reason.label if reason is not None else "routable"

    def _update(self, request: HttpRequest, queryset: QuerySet[Server], **changes: Any) -> int:
        with transaction.atomic():
            servers = list(queryset.values_list("pk", flat=True))
            count = queryset.update(**changes)
            registry_changed(servers)
        return count

    @admin.action(description="Disable selected servers (leave them out of routing)")
    def disable_servers(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        count = self._update(request, queryset, enabled=False)
        self.message_user(request, f"Disabled {count} server(s).", messages.SUCCESS)

    @admin.action(description="Enable selected servers")
    def enable_servers(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        count = self._update(request, queryset, enabled=True)
        self.message_user(request, f"Enabled {count} server(s).", messages.SUCCESS)

    @admin.action(description="Expire the advertisements of selected servers now")
    def expire_now(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        advertised = queryset.filter(source=Source.ADVERTISED)
        skipped = queryset.count() - advertised.count()
        count = self._update(request, advertised, expires_at=timezone.now())
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


@admin.register(Namespace)
class NamespaceAdmin(RegistryAdmin[Namespace]):
    def servers_of(self, obj: Namespace) -> list[int]:
        return [obj.server_id]

    list_display = ("path", "server", "public_reads", "reads", "writes", "listings", "direct_reads")
    list_filter = ("server__kind", "public_reads", "writes", "listings")
    search_fields = ("path", "server__name")
    list_select_related = ("server",)
    autocomplete_fields = ("server",)


@admin.register(Downtime)
class DowntimeAdmin(RegistryAdmin[Downtime]):
    def servers_of(self, obj: Downtime) -> list[int]:
        return [obj.server_id]

    list_display = (
        "server",
        "downtime_class",
        "severity",
        "starts_at",
        "ends_at",
        "source",
        "is_active",
    )
    list_filter = ("source", "downtime_class")
    search_fields = ("server__name", "description")
    list_select_related = ("server",)
    autocomplete_fields = ("server",)

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


@admin.register(RegistrationToken)
class RegistrationTokenAdmin(admin.ModelAdmin[RegistrationToken]):
    list_display = ("registry_prefix", "description", "created_at", "last_used_at", "is_live")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("registry_prefix", "description")
    actions = ("revoke",)
    fields = (
        "registry_prefix",
        "namespace_prefixes",
        "description",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = ("created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(
        self, request: HttpRequest, obj: RegistrationToken | None = None
    ) -> tuple[str, ...]:
        if obj is not None:
            return (*self.readonly_fields, "registry_prefix")
        return self.readonly_fields

    @admin.display(boolean=True, description="live")
    def is_live(self, obj: RegistrationToken) -> bool:
        return obj.revoked_at is None

    def save_model(
        self,
        request: HttpRequest,
        obj: RegistrationToken,
        form: ModelForm[RegistrationToken],
        change: bool,
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, secret = RegistrationToken.issue(
            obj.registry_prefix, obj.description, obj.allowed_namespaces()
        )
        obj.pk = token.pk
        obj.token_hash = token.token_hash
        obj.created_at = token.created_at
        request.new_token_secret = secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: RegistrationToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The new secret on a page of its own, in this response only: a message would
        carry it in the (signed, not encrypted) messages cookie to the next page. The
        admin's own never_cache marks it no-store."""
        return TemplateResponse(
            request,
            "admin/director/registrationtoken/token_secret.html",
            {
                **self.admin_site.each_context(request),
                "token": obj,
                "secret": request.new_token_secret,  # type: ignore[attr-defined]
                "title": "New registration token",
            },
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[RegistrationToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(StatSettings)
class StatSettingsAdmin(RegistryAdmin[StatSettings]):
    """One row; the list page jumps straight to it."""

    full_change = True  # every server view carries weights computed with the settings

    fieldsets = (
        (
            "Object presence (stat)",
            {
                "fields": (
                    "check_origin_presence",
                    "check_cache_presence",
                    "assume_presence_at_single_origin",
                    "stat_timeout",
                    "max_stat_responses",
                    "cache_presence_ttl",
                    "cache_presence_capacity",
                )
            },
        ),
        (
            "Selection",
            {
                "fields": (
                    "sort_method",
                    "adaptive_working_set",
                    "status_ewma_time_constant",
                    "filter_caches_in_error_state",
                    "startup_grace",
                )
            },
        ),
        (
            "Health tests",
            {
                "fields": (
                    "health_test_interval",
                    "health_test_timeout",
                    "health_failure_grace",
                    "health_failure_weight",
                )
            },
        ),
        (
            "Advanced: bounds and deadlines",
            {
                "classes": ("collapse",),
                "fields": (
                    "redirect_timeout",
                    "stat_concurrency_limit",
                    "stat_max_wait",
                    "stat_max_waiters",
                    "max_inflight_requests",
                    "shed_queue_target",
                    "shed_queue_interval",
                    "ejection_consecutive_failures",
                    "ejection_base_time",
                    "ejection_max_time",
                ),
            },
        ),
    )
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StatSettings | None = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        StatSettings.load()
        return HttpResponseRedirect(reverse("admin:director_statsettings_change", args=[1]))


# The registry's registrations and the federation issuer's keys.
from director.federation import admin as federation_admin  # noqa: E402, F401
