"""The registry, as Django models: servers, their namespaces and downtimes, registration
tokens, GeoIP overrides, and the director's own rows (settings, health-test lease, change
counter).

The redirect path never reads these tables; ``director.registry`` turns them into an
in-memory ``Snapshot`` whenever the change counter (``RegistryState``) moves.

Kinds and statuses are Pelican's enums (``director.wire.types``), re-exported here; the
fields' choices come from them (``wire_choices``).
"""

from director.models.choices import wire_choices
from director.models.registrations import (
    ChallengePurpose,
    IssuerKey,
    NamespaceRegistration,
    RegistrationKind,
    RegistrationStatus,
    RegistryChallenge,
)
from director.models.servers import (
    AuthMode,
    CapabilityFields,
    Downtime,
    DowntimeSource,
    GeoIPOverride,
    Namespace,
    Server,
    ServerQuerySet,
    Source,
)
from director.models.settings import DirectorAd, HealthTestLease, RegistryState, StatSettings
from director.models.tokens import RegistrationToken, RegistrationTokenQuerySet, hash_token_secret
from director.wire.types import HealthStatus, ServerKind, ServerStatus

__all__ = [
    "AuthMode",
    "CapabilityFields",
    "ChallengePurpose",
    "DirectorAd",
    "Downtime",
    "DowntimeSource",
    "GeoIPOverride",
    "HealthStatus",
    "HealthTestLease",
    "IssuerKey",
    "Namespace",
    "NamespaceRegistration",
    "RegistrationKind",
    "RegistrationStatus",
    "RegistrationToken",
    "RegistrationTokenQuerySet",
    "RegistryChallenge",
    "RegistryState",
    "Server",
    "ServerKind",
    "ServerQuerySet",
    "ServerStatus",
    "Source",
    "StatSettings",
    "hash_token_secret",
    "wire_choices",
]
