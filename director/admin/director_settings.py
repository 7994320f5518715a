"""The one row of director settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from director.models import (
    StatSettings,
)

if TYPE_CHECKING:
    pass

from director.admin.base import (
    RegistryAdmin,
)


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
