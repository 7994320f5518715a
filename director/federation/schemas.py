"""Request and response bodies of the registry and issuer endpoints, in Pelican's JSON
(``server_structs/registry.go``, ``auth.go``). Responses follow ``director.schemas``:
``extra="forbid"``, every key written, wire order."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from director.schemas import WireOut
from director.wire.ads import nul_path

MAX_FIELD = 4096  # nonces are 64 hex characters, signatures ~144


class RegistryIn(BaseModel):
    """A registry request body: unknown keys ignored (as Go does), and no string with a
    NUL anywhere (PostgreSQL's text columns cannot hold one)."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = nul_path(data, "body")
        if where:
            raise ValueError(f"{where} must not contain NUL characters")
        return data


class RegistrationIn(RegistryIn):
    """``POST /api/v1.0/registry``: a challenge init or commit (reference 1.3, 1.4)."""

    client_nonce: str = Field("", max_length=MAX_FIELD)
    client_payload: str = Field("", max_length=MAX_FIELD)
    client_signature: str = Field("", max_length=MAX_FIELD)
    server_nonce: str = Field("", max_length=MAX_FIELD)
    server_payload: str = Field("", max_length=MAX_FIELD)
    server_signature: str = Field("", max_length=MAX_FIELD)
    pubkey: dict[str, Any] | None = None
    prefix: str = Field("", max_length=MAX_FIELD)
    server_id: str = Field("", max_length=64)
    site_name: str = Field("", max_length=255)
    access_token: str = Field("", max_length=MAX_FIELD)
    identity_required: str = Field("", max_length=16)


class KeyUpdateIn(RegistryIn):
    """``POST /api/v1.0/registry/updateNamespacesPubKey`` (reference 1.11)."""

    client_nonce: str = Field("", max_length=MAX_FIELD)
    client_payload: str = Field("", max_length=MAX_FIELD)
    client_signature: str = Field("", max_length=MAX_FIELD)
    key_update_authz_signature: str = Field("", max_length=MAX_FIELD)
    matched_key_id: str = Field("", max_length=MAX_FIELD)
    server_nonce: str = Field("", max_length=MAX_FIELD)
    server_payload: str = Field("", max_length=MAX_FIELD)
    server_signature: str = Field("", max_length=MAX_FIELD)
    pubkey: dict[str, Any] | None = None
    all_pubkeys: dict[str, Any] | None = None
    prefixes: list[Annotated[str, Field(max_length=MAX_FIELD)]] = Field(
        default_factory=list, max_length=1000
    )
    site_name: str = Field("", max_length=255)


class ExistsIn(RegistryIn):
    prefix: str = Field("", max_length=MAX_FIELD)
    pubkey: str = Field("", max_length=MAX_FIELD * 4)


class PrefixIn(RegistryIn):
    prefix: str = Field("", max_length=MAX_FIELD)


class PrefixesIn(RegistryIn):
    prefixes: list[Annotated[str, Field(max_length=MAX_FIELD)]] = Field(
        default_factory=list, max_length=1000
    )


class ChallengeOut(WireOut):
    server_nonce: str
    client_nonce: str
    server_payload: str
    server_signature: str


class KeyUpdateChallengeOut(ChallengeOut):
    registered_keys: dict[str, str]


class MessageOut(WireOut):
    """A registry success: ``{"message": ...}`` (Pelican's key; its clients read ``msg``)."""

    message: str


class ExistsOut(WireOut):
    prefix_exists: bool
    key_match: bool
    message: str
    error: str


class ApprovalOut(WireOut):
    approved: bool


class CompletenessOut(WireOut):
    edit_url: str
    complete: bool
    msg: str


class CompletenessResultsOut(WireOut):
    results: dict[str, CompletenessOut]


class AllowedPrefixesOut(RootModel[dict[str, list[str]]]):
    """``caches/allowedPrefixes``: a cache's registered name -> the namespaces it may
    serve; a cache without an entry (or with ``["*"]``) may serve any."""


class RegistryDowntimeOut(WireOut):
    """One of the registry's downtimes (Pelican's ``server_structs.Downtime``): times in
    epoch milliseconds, ``endTime`` -1 for none."""

    id: str
    serverName: str
    serverId: str
    createdBy: str
    updatedBy: str
    source: str
    downtime_class: str = Field(validation_alias="class", serialization_alias="class")
    description: str
    severity: str
    startTime: int
    endTime: int
    createdAt: int
    updatedAt: int
    deletedAt: int


class JwksOut(WireOut):
    keys: list[dict[str, str]]


class JwksUriOut(WireOut):
    jwks_uri: str


class AdminMetadataOut(WireOut):
    user_id: str
    description: str
    site_name: str
    institution: str
    security_contact_user_id: str
    status: str
    approver_id: str
    approved_at: str
    created_at: str
    updated_at: str


class RegistrationOut(WireOut):
    id: int
    prefix: str
    pubkey: str
    identity: str
    admin_metadata: AdminMetadataOut
    custom_fields: dict[str, str]


class ServerRecordOut(WireOut):
    id: str
    name: str
    is_origin: bool
    is_cache: bool
    note: str
    registration: list[RegistrationOut]


class TokenOut(WireOut):
    """getFedToken's answer (``server_structs.TokenResponse``)."""

    access_token: str
    error: str


class ApprovalErrorOut(WireOut):
    """An advertisement refused for want of approval: Pelican's client keys on it."""

    approval_error: bool
    error: str


class DiscoveredTargetLabelsOut(WireOut):
    """Go writes a map's keys sorted."""

    server_auth_url: str
    server_lat: str
    server_long: str
    server_name: str
    server_type: str
    server_url: str
    server_web_url: str


class DiscoveredTargetOut(WireOut):
    """One Prometheus HTTP service-discovery entry (reference 1.11)."""

    targets: list[str]
    labels: DiscoveredTargetLabelsOut
