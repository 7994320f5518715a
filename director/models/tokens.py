"""Registration tokens: who may advertise under which registry prefix."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import models

from director.models.servers import Server, Source
from director.wire.validation import namespace_path_problem, registry_prefix_kind


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
        return not self.refused_namespaces([path])

    def refused_namespaces(self, paths: Iterable[str]) -> list[str]:
        """The ``paths`` this token may not advertise (the prefixes parsed once)."""
        allowed = tuple(prefix.rstrip("/") + "/" for prefix in self.allowed_namespaces())
        if not allowed:
            return []
        return [path for path in paths if not (path.rstrip("/") + "/").startswith(allowed)]

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

    def advertised_servers(self) -> models.QuerySet[Server]:
        """The servers that advertised under this token's registry prefix."""
        return Server.objects.filter(source=Source.ADVERTISED, registry_prefix=self.registry_prefix)

    def others_live(self) -> models.QuerySet[RegistrationToken]:
        """Other live tokens of the same prefix: they may still advertise its servers."""
        return (
            RegistrationToken.objects.live()
            .filter(registry_prefix=self.registry_prefix)
            .exclude(pk=self.pk)
        )

    @classmethod
    def live_by_secret(cls, secret: str) -> RegistrationToken | None:
        """The live token whose secret this is (looked up by its hash), or None."""
        return cls.objects.live().filter(token_hash=hash_token_secret(secret)).first()
