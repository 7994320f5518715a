"""Pelican's registry in our tables: namespace registrations (a prefix, its public keys,
its approval) and the federation issuer's own signing keys.

The registry service that fills them is ``director.federation``; the protocol rules are
``director.trust``.
"""

from __future__ import annotations

from django.db import models

from director.trust.registry import accepted, registration_kind
from director.wire.types import ServerKind
from director.wire.validation import MAX_NAME_LENGTH, MAX_NAMESPACE_LENGTH


class RegistrationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"


class RegistrationKind(models.TextChoices):
    ORIGIN = ServerKind.ORIGIN.value, "Origin (/origins/<host:port>)"
    CACHE = ServerKind.CACHE.value, "Cache (/caches/<site>)"
    NAMESPACE = "namespace", "Namespace"


class NamespaceRegistration(models.Model):
    """One registered prefix (Pelican's Registration): a server prefix (``/origins/<host:
    port>``, ``/caches/<site>``) or a namespace an origin exports (``/ligo/data``).

    Its keys (``pubkey``, the JWKS as the server sent it) verify the server's advertise
    tokens; its status gates them: an automatic registration is always Pending until an
    administrator approves it (admin action, ``manage.py approvenamespace``).
    """

    prefix = models.CharField(max_length=MAX_NAMESPACE_LENGTH, unique=True)
    kind = models.CharField(max_length=10, choices=RegistrationKind.choices, editable=False)
    pubkey = models.TextField(help_text='The public keys, as a JWKS: {"keys":[...]}.')
    status = models.CharField(
        max_length=10, choices=RegistrationStatus.choices, default=RegistrationStatus.PENDING
    )
    site_name = models.CharField(max_length=MAX_NAME_LENGTH, blank=True)
    server_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="Server prefixes: the server's registry ID (the serverId of its ads).",
    )
    institution = models.CharField(max_length=MAX_NAME_LENGTH, blank=True)
    description = models.TextField(blank=True)
    registered_from = models.CharField(
        max_length=64, blank=True, help_text="The address the registration came from."
    )
    approved_by = models.CharField(max_length=150, blank=True, editable=False)
    approved_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_seen_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Last request for its server record."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["prefix"]
        indexes = [models.Index(fields=["status", "kind"]), models.Index(fields=["server_id"])]

    def __str__(self) -> str:
        return f"{self.prefix} ({self.get_status_display()})"

    def save(self, *args: object, **kwargs: object) -> None:
        self.kind = registration_kind(self.prefix)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def accepted(self, *, require_origin_approval: bool, require_cache_approval: bool) -> bool:
        """May this prefix advertise? (``director.trust.registry.accepted``)"""
        return accepted(
            self.prefix,
            self.status,
            require_origin=require_origin_approval,
            require_cache=require_cache_approval,
        )


class ChallengePurpose(models.TextChoices):
    REGISTRATION = "registration", "Registration"
    KEY_UPDATE = "key_update", "Key update"


class RegistryChallenge(models.Model):
    """A server nonce the registry handed out (a registration's or a key update's challenge
    init), until the commit that uses it takes it or it lapses
    (``DIRECTOR_REGISTRY_CHALLENGE_SECONDS``): each is good for one commit, of its purpose,
    for the client nonce it was issued for (``director.federation.challenges``)."""

    server_nonce = models.CharField(max_length=64, unique=True)
    client_nonce = models.CharField(max_length=64)
    purpose = models.CharField(max_length=16, choices=ChallengePurpose.choices)
    issued_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["issued_at"]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} challenge issued {self.issued_at:%Y-%m-%d %H:%M:%S}"


class IssuerKey(models.Model):
    """A signing key of the federation issuer (this director).

    The newest key whose ``activates_at`` has come signs; every other key stays in the
    published JWKS while a token it signed may still be valid: until the key after it
    activated plus the longest automatic token lifetime, or ``signed_until`` (the latest
    expiry an operator's ``fedtoken`` gave), whichever is later.
    """

    kid = models.CharField(max_length=64, unique=True)
    private_pem = models.TextField()
    activates_at = models.DateTimeField()
    signed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["activates_at", "pk"]

    def __str__(self) -> str:
        return f"{self.kid} (signs from {self.activates_at:%Y-%m-%d %H:%M:%S})"
