"""Registration tokens: issue (the secret shown once), revoke, revoke and expire."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone

from director.models import (
    RegistrationToken,
    Server,
)
from director.registry import registry_changed

if TYPE_CHECKING:
    pass

from director.admin.base import (
    log_changes,
    when,
)


@admin.register(RegistrationToken)
class RegistrationTokenAdmin(admin.ModelAdmin[RegistrationToken]):
    """Tokens; a token's page has Revoke and "Revoke and expire its servers now"."""

    list_display = ("registry_prefix", "description", "created", "last_used", "is_live")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("registry_prefix", "description")
    actions = ("revoke", "revoke_and_expire")
    fields = (
        "registry_prefix",
        "namespace_prefixes",
        "description",
        "created",
        "last_used",
        "revoked",
        "servers",
    )
    readonly_fields = ("created", "last_used", "revoked", "servers")
    change_form_template = "admin/director/registrationtoken/change_form.html"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: RegistrationToken) -> str:
        return when(obj.created_at)

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, obj: RegistrationToken) -> str:
        return when(obj.last_used_at) if obj.last_used_at else "never"

    @admin.display(description="revoked")
    def revoked(self, obj: RegistrationToken) -> str:
        return when(obj.revoked_at) if obj.revoked_at else "no: live"

    @admin.display(description="its servers")
    def servers(self, obj: RegistrationToken) -> str:
        if obj.pk is None:
            return "–"
        found = list(obj.advertised_servers().order_by("name"))
        if not found:
            return "none has advertised with its prefix"
        return "; ".join(
            f"{server.name} (ad expires {when(server.expires_at)})" for server in found
        )

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

    def log_change(self, request: HttpRequest, obj: RegistrationToken, message: Any) -> Any:
        """A Revoke button saves the form first: no "No fields changed." entry for that."""
        if message or not ({"_revoke", "_revoke_expire"} & set(request.POST)):
            return super().log_change(request, obj, message)
        return None

    def response_change(self, request: HttpRequest, obj: RegistrationToken) -> HttpResponse:
        """The page's Revoke buttons (``change_form.html``)."""
        if "_revoke" in request.POST or "_revoke_expire" in request.POST:
            self._revoke(request, [obj], expire="_revoke_expire" in request.POST)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    @admin.action(description="Revoke selected tokens (their servers stay until their ads expire)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[RegistrationToken]) -> None:
        self._revoke(request, list(queryset), expire=False)

    @admin.action(description="Revoke selected tokens and expire their servers now")
    def revoke_and_expire(
        self, request: HttpRequest, queryset: QuerySet[RegistrationToken]
    ) -> None:
        self._revoke(request, list(queryset), expire=True)

    def _revoke(
        self, request: HttpRequest, tokens: list[RegistrationToken], *, expire: bool
    ) -> None:
        """Revoke, say what happens to the tokens' servers, and write the history."""
        now = timezone.now()
        live = [token for token in tokens if token.revoked_at is None]
        with transaction.atomic():
            RegistrationToken.objects.filter(pk__in=[t.pk for t in live]).update(revoked_at=now)
            log_changes(request, live, f"Revoked ({when(now)}).")
            servers = [
                server
                for token in tokens
                for server in token.advertised_servers().filter(expires_at__gt=now)
            ]
            if expire and servers:
                Server.objects.filter(pk__in=[s.pk for s in servers]).update(expires_at=now)
                registry_changed([server.pk for server in servers])
                log_changes(
                    request,
                    servers,
                    f"Advertisement expired now: its token was revoked ({when(now)}).",
                )
        self.message_user(request, f"Revoked {len(live)} token(s).", messages.SUCCESS)
        if not servers:
            return
        names = ", ".join(sorted(server.name for server in servers))
        if expire:
            self.message_user(
                request,
                f"Expired {len(servers)} server(s) now: {names}. They leave routing at once.",
                messages.SUCCESS,
            )
            return
        last = max(server.expires_at for server in servers if server.expires_at is not None)
        self.message_user(
            request,
            f"{len(servers)} server(s) advertised with these tokens stay routable until their "
            f"advertisements expire (the last {when(last)}): {names}. Use “Revoke and expire its "
            "servers now” to take them out at once.",
            messages.WARNING,
        )
        others = {t.registry_prefix for token in tokens for t in token.others_live()}
        if others:
            self.message_user(
                request,
                "Other live tokens may still advertise under " + ", ".join(sorted(others)) + ".",
                messages.WARNING,
            )
