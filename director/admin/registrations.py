"""The registry's pages in the admin: registrations (pending first; approved or denied
with the actions only, so every decision is logged with who made it) and the federation
issuer's keys (read-only; ``manage.py rotatekey``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Case, QuerySet, When
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from director.admin.base import log_changes
from director.federation import chaining, standing
from director.federation.registry import decide, stored_key_set
from director.models import (
    IssuerKey,
    NamespaceRegistration,
    RegistrationKind,
    RegistrationStatus,
)


def _described(registration: NamespaceRegistration) -> str:
    return (
        f"{registration.prefix} ({registration.get_status_display().lower()}, site "
        f"{registration.site_name or '?'})"
    )


def _decide(
    request: HttpRequest, queryset: QuerySet[NamespaceRegistration], status: RegistrationStatus
) -> None:
    by = request.user.get_username() if request.user.is_authenticated else ""
    selected = list(queryset)
    changed = decide([registration.prefix for registration in selected], status, by)
    log_changes(request, selected, f"{status.label} (bulk action)")
    messages.success(request, f"{changed} registration(s) {status.label.lower()}.")


@admin.register(NamespaceRegistration)
class NamespaceRegistrationAdmin(admin.ModelAdmin[NamespaceRegistration]):
    list_display = ("prefix", "kind", "status", "site_name", "created_at", "approved_by")
    list_filter = ("status", "kind")
    search_fields = ("prefix", "site_name", "server_id")
    readonly_fields = (
        "kind",
        "nesting",
        "status",
        "approved_by",
        "approved_at",
        "last_seen_at",
        "registered_from",
        "created_at",
        "updated_at",
    )
    fields = (
        "prefix",
        "kind",
        "nesting",
        "status",
        "site_name",
        "server_id",
        "institution",
        "description",
        "pubkey",
        *readonly_fields[3:],
    )
    actions = ["approve", "deny"]

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        """Pending registrations first: they wait for a decision."""
        pending_first = Case(When(status=RegistrationStatus.PENDING, then=0), default=1)
        return [pending_first.asc(), "prefix"]

    def save_model(
        self,
        request: HttpRequest,
        obj: NamespaceRegistration,
        form: ModelForm[NamespaceRegistration],
        change: bool,
    ) -> None:
        """An edit that moves the prefix or removes a key takes effect at once: the
        servers advertised under the old prefix or key leave routing now."""
        with transaction.atomic():
            before = (
                NamespaceRegistration.objects.select_for_update().filter(pk=obj.pk).first()
                if change
                else None
            )
            super().save_model(request, obj, form, change)
            if before is None:
                return
            if before.prefix != obj.prefix:
                standing.registrations_withdrawn(
                    [before.prefix], f"their registration was moved to {obj.prefix} in the admin"
                )
            elif before.pubkey != obj.pubkey:
                standing.keys_replaced(obj.prefix, stored_key_set(before), stored_key_set(obj))

    def delete_model(self, request: HttpRequest, obj: NamespaceRegistration) -> None:
        with transaction.atomic():
            super().delete_model(request, obj)
            standing.registrations_withdrawn([obj.prefix], "their registration was deleted")

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[NamespaceRegistration]
    ) -> None:
        with transaction.atomic():
            prefixes = list(queryset.values_list("prefix", flat=True))
            super().delete_queryset(request, queryset)
            standing.registrations_withdrawn(prefixes, "their registration was deleted")

    @admin.display(description="Nests in / around")
    def nesting(self, registration: NamespaceRegistration) -> SafeString | str:
        """What approving this prefix would put it inside (the nearest enclosing
        registration) and around (the top-level registrations inside it), and a
        registration token that serves it: an administrator sees whose namespace it is."""
        if not registration.prefix:
            return "-"
        lines = []
        owner = chaining.token_owner(registration.prefix)
        if owner:
            lines.append(format_html("Served by {}", owner))
        if registration.kind == RegistrationKind.NAMESPACE:
            found = chaining.nesting(registration.prefix)
            if found.enclosing is not None:
                lines.append(format_html("Inside {}", _described(found.enclosing)))
            if found.inside:
                around = format_html_join(", ", "{}", ((_described(r),) for r in found.inside))
                lines.append(format_html("Around {}", around))
        if not lines:
            return "Nothing registered inside or around it"
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))

    @admin.action(description="Approve the selected registrations")
    def approve(self, request: HttpRequest, queryset: QuerySet[NamespaceRegistration]) -> None:
        _decide(request, queryset, RegistrationStatus.APPROVED)

    @admin.action(description="Deny the selected registrations")
    def deny(self, request: HttpRequest, queryset: QuerySet[NamespaceRegistration]) -> None:
        _decide(request, queryset, RegistrationStatus.DENIED)


@admin.register(IssuerKey)
class IssuerKeyAdmin(admin.ModelAdmin[IssuerKey]):
    list_display = ("kid", "activates_at", "signed_until", "created_at")
    fields = ("kid", "activates_at", "signed_until", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are made by the director and ``manage.py rotatekey``

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
