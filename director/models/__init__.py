"""The registry, as Django models: servers, their namespaces and downtimes, registration
tokens, GeoIP overrides, and the director's own rows (settings, health-test lease, change
counter).

The redirect path never reads these tables; ``director.registry`` turns them into an
in-memory ``Snapshot`` whenever the change counter (``RegistryState``) moves.
"""

from director.models.registrations import (
    IssuerKey,
    NamespaceRegistration,
    RegistrationKind,
    RegistrationStatus,
)
from director.models.servers import (
    CapabilityFields,
    Downtime,
    GeoIPOverride,
    HealthStatus,
    Kind,
    Namespace,
    Server,
    ServerQuerySet,
    Source,
    Status,
)
from director.models.settings import DirectorAd, HealthTestLease, RegistryState, StatSettings
from director.models.tokens import RegistrationToken, RegistrationTokenQuerySet, hash_token_secret

__all__ = [
    "CapabilityFields",
    "DirectorAd",
    "Downtime",
    "GeoIPOverride",
    "HealthStatus",
    "HealthTestLease",
    "IssuerKey",
    "Kind",
    "Namespace",
    "NamespaceRegistration",
    "RegistrationKind",
    "RegistrationStatus",
    "RegistrationToken",
    "RegistrationTokenQuerySet",
    "RegistryState",
    "Server",
    "ServerQuerySet",
    "Source",
    "StatSettings",
    "Status",
    "hash_token_secret",
]
