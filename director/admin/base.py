"""What every page of the admin shares: the site's names, times with their age, history
entries for bulk actions, and ``RegistryAdmin`` (every write is one registry change)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import models, transaction
from django.db.models import Model, QuerySet
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest
from django.utils import timezone

from director.management.table import relative
from director.registry import registry_changed

if TYPE_CHECKING:
    pass

_ModelT = TypeVar("_ModelT", bound=Model)

# The admin says which director it is, and "View site" opens the console.
admin.site.site_header = f"director {settings.DIRECTOR_NAME}"
admin.site.site_title = f"director {settings.DIRECTOR_NAME}"
admin.site.index_title = "Registry"
admin.site.site_url = "/view/"
admin.site.enable_nav_sidebar = False  # the lists fit 1,280 px without it
# JSON lists (token issuers and generations) in small boxes: a namespace row fits a line.
SMALL_JSON: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
    models.JSONField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 28})}
}


def when(value: dt.datetime | None) -> str:
    """A time with seconds, zone and age: ``2026-12-05 13:00:39 UTC (2 min 3 s ago)``."""
    if value is None:
        return "–"
    age = relative((timezone.now() - value).total_seconds())
    return f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC ({age})"


def log_changes(request: HttpRequest, objects: Sequence[Model], message: str) -> None:
    """An admin history entry per object of a bulk action, saying what changed."""
    if objects:
        user = str(request.user.pk)
        LogEntry.objects.log_actions(user, objects, CHANGE, change_message=message)


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
