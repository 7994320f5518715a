"""The JSON bodies of the API (``director.api``), one ``ThingOut`` schema per shape.

Each schema is what the OpenAPI document shows and what the handler's value is serialised
through, so the document cannot drift from the wire. Fields are declared in wire order,
because pydantic writes keys in declaration order and Pelican clients and tests compare
whole bodies. Every key is always written: ``extra="forbid"`` refuses a key a schema does
not declare, and all keys are listed as required in the document.

The ``from_*`` classmethods convert models, snapshot views and stat states. They reuse
the wire mappings of ``director.wire`` rather than restating them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from director.models import Downtime, Namespace, Server
from director.serving.health import Health, Verdict
from director.snapshot import NamespaceView
from director.stat import PoolState
from director.wire.ads import (
    go_url_object,
    token_generation_json,
    token_generations_from_json,
    token_issuer_json,
    token_issuers_from_json,
)
from director.wire.gotime import go_time
from director.wire.types import (
    SERVER_TYPE_NAMES,
    WIRE_CAPABILITY_KEYS,
    Capability,
    ServerKind,
    TokenGeneration,
    TokenIssuer,
)

GoTime = Annotated[
    dt.datetime,
    PlainSerializer(go_time, return_type=str),
    # Without this the serialisation schema would say only "string".
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class WireOut(BaseModel):
    """Base of every response schema.

    A plain pydantic model rather than ``ninja.Schema``: bodies are built explicitly by
    the ``from_*`` classmethods, so ninja's attribute getter is not needed. It would
    also run validation twice under ``extra="forbid"``.
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        json_schema_serialization_defaults_required=True,
    )


class HyphenatedOut(WireOut):
    """Pelican's advertisement JSON spells keys with hyphens (``token-issuer``).

    The alias generator keeps the Python names as the constructor's keywords. ninja's
    ``by_alias=True`` (set on the routers) writes the hyphenated names.
    """

    model_config = ConfigDict(alias_generator=lambda name: name.replace("_", "-"))


# --- the one error body and registration ---------------------------------------------------


class ErrorOut(WireOut):
    """``{"status":"error","msg":...}``: every director error, as ``error_json`` writes
    it (a raised ``Refusal`` or ``error_response``); declared here for the OpenAPI document."""

    status: Literal["error"] = "error"
    msg: str


class SuccessOut(WireOut):
    status: Literal["success"] = "success"
    msg: str


# --- namespaces as the ads carry them (listNamespaces) ---------------------------------------


class GoURLOut(WireOut):
    """The JSON object Go writes for a ``url.URL`` (``director.wire.ads.go_url_object``)."""

    Scheme: str
    Opaque: str
    User: None  # Go's *url.Userinfo: never set by the director
    Host: str
    Path: str
    RawPath: str
    OmitHost: bool
    ForceQuery: bool
    RawQuery: str
    Fragment: str
    RawFragment: str


class CapsOut(WireOut):
    """Pelican's ``Capabilities`` JSON (``WIRE_CAPABILITY_KEYS``): a namespace's ``Caps``
    in an ad, and ``capabilities`` in the director_ui views."""

    PublicRead: bool
    Read: bool
    Write: bool
    Listing: bool
    FallBackRead: bool
    Copies: bool

    @classmethod
    def from_flags(cls, flags: Capability) -> CapsOut:
        return cls.model_validate({key: bool(flags & flag) for key, flag in WIRE_CAPABILITY_KEYS})


class TokenIssuerAdOut(HyphenatedOut):
    base_paths: list[str]
    restricted_paths: list[str]
    issuer: GoURLOut

    @classmethod
    def from_view(cls, issuer: TokenIssuer) -> TokenIssuerAdOut:
        return cls.model_validate(token_issuer_json(issuer, url=go_url_object))


class TokenGenerationAdOut(HyphenatedOut):
    strategy: str
    vault_server: str  # a string even in listNamespaces: only issuers are URL objects
    max_scope_depth: int
    issuer: GoURLOut

    @classmethod
    def from_view(cls, generation: TokenGeneration) -> TokenGenerationAdOut:
        return cls.model_validate(token_generation_json(generation, url=go_url_object))


class NamespaceAdOut(HyphenatedOut):
    """A NamespaceAd in the ad's own JSON shape, issuer URLs as Go URL objects."""

    Caps: CapsOut
    path: str
    token_generation: list[TokenGenerationAdOut]
    token_issuer: list[TokenIssuerAdOut]
    from_topology: bool

    @classmethod
    def from_view(cls, namespace: NamespaceView) -> NamespaceAdOut:
        return cls(
            Caps=CapsOut.from_flags(namespace.capabilities),
            path=namespace.path,
            token_generation=[
                TokenGenerationAdOut.from_view(generation)
                for generation in namespace.token_generations
            ],
            token_issuer=[TokenIssuerAdOut.from_view(issuer) for issuer in namespace.token_issuers],
            from_topology=namespace.from_topology,
        )


class PrefixOut(WireOut):
    prefix: str


class DirectorAdOut(WireOut):
    """This director's own advertisement (``/directors``)."""

    name: str
    startTime: int  # epoch seconds
    instanceID: str
    generationID: int
    version: str
    expiry: GoTime
    advertise_url: str


# --- director_ui -------------------------------------------------------------------------------


class UiTokenIssuerOut(WireOut):
    """A token issuer as Pelican's web UI reads it (``TokenIssuerResponse``)."""

    basePaths: list[str]
    restrictedPaths: list[str]
    issuer: str

    @classmethod
    def from_view(cls, issuer: TokenIssuer) -> UiTokenIssuerOut:
        return cls(
            basePaths=list(issuer.base_paths),
            restrictedPaths=list(issuer.restricted_paths),
            issuer=issuer.issuer,
        )


class UiTokenGenerationOut(WireOut):
    """A token-generation entry as Pelican's web UI reads it (``TokenGenResponse``)."""

    strategy: str
    vaultServer: str
    maxScopeDepth: int
    issuer: str

    @classmethod
    def from_view(cls, generation: TokenGeneration) -> UiTokenGenerationOut:
        return cls(
            strategy=generation.strategy,
            vaultServer=generation.vault_server,
            maxScopeDepth=generation.max_scope_depth,
            issuer=generation.issuer,
        )


class UiNamespaceOut(WireOut):
    path: str
    capabilities: CapsOut  # Pelican's Capabilities JSON: PublicRead, Read, ...
    tokenGeneration: list[UiTokenGenerationOut]
    tokenIssuer: list[UiTokenIssuerOut]
    fromTopology: bool

    @classmethod
    def from_row(cls, namespace: Namespace) -> UiNamespaceOut:
        return cls.model_validate(cls.row_fields(namespace))

    @staticmethod
    def row_fields(namespace: Namespace) -> dict[str, object]:
        """The token lists are read as the snapshot reads them (``director.registry``).

        Entries that do not validate are left out, and the keys come in the canonical
        order. So the UI shows the metadata that routing uses.
        """
        return {
            "path": namespace.path,
            "capabilities": CapsOut.from_flags(namespace.capabilities),
            "tokenGeneration": [
                UiTokenGenerationOut.from_view(generation)
                for generation in token_generations_from_json(namespace.token_generations or ())
            ],
            "tokenIssuer": [
                UiTokenIssuerOut.from_view(issuer)
                for issuer in token_issuers_from_json(namespace.token_issuers or ())
            ],
            "fromTopology": namespace.from_topology,
        }


class NamespaceSummaryOut(UiNamespaceOut):
    """One path of ``/namespaces``: the first server's namespace, and who serves it."""

    origins: list[str]
    caches: list[str]

    @classmethod
    def from_row(cls, namespace: Namespace) -> NamespaceSummaryOut:
        """With empty ``origins`` and ``caches``; the handler fills them."""
        return cls.model_validate(cls.row_fields(namespace) | {"origins": [], "caches": []})


class DowntimeOut(WireOut):
    active: bool
    id: str  # the ad's id, or the row's primary key for admin downtimes
    serverName: str
    source: str
    downtime_class: str = Field(validation_alias="class", serialization_alias="class")
    severity: str
    description: str
    startTime: int  # epoch milliseconds
    endTime: int  # epoch milliseconds, -1 when indefinite

    @classmethod
    def from_row(cls, downtime: Downtime) -> DowntimeOut:
        return cls(
            active=downtime.active,
            id=downtime.external_id or str(downtime.pk),
            serverName=downtime.server.name,
            source=downtime.source,
            downtime_class=downtime.downtime_class,
            severity=downtime.severity,
            description=downtime.description,
            startTime=int(downtime.starts_at.timestamp() * 1000),
            endTime=int(downtime.ends_at.timestamp() * 1000) if downtime.ends_at else -1,
        )


class CoordinateOut(WireOut):
    Lat: float
    Long: float
    AccuracyRadius: int
    Source: str  # "declared" when the server has coordinates, else ""
    FromTTLCache: bool


class ServerBaseOut(WireOut):
    """The keys that ``ServerOut`` and ``ServerDetailOut`` share, in wire order.

    Neither ``from_row`` needs more than ``server.namespaces`` and ``server.downtimes``.
    Prefetch both when listing many servers.
    """

    name: str
    serverId: str
    storageType: str
    disableDirectorTest: bool
    authUrl: str
    brokerUrl: str
    url: str
    webUrl: str
    type: Literal["Origin", "Cache"]
    coordinate: CoordinateOut
    latitude: float
    longitude: float
    capabilities: CapsOut  # Pelican's Capabilities JSON: PublicRead, Read, ...
    filtered: bool
    filteredType: str  # why the server takes no part in routing, "" when it does
    downtimes: list[DowntimeOut]
    fromTopology: bool
    healthStatus: str
    healthMessage: str
    healthCheckedAt: GoTime | None
    serverStatus: str
    ioLoad: float
    statusWeight: float
    statusWeightLastUpdate: int  # epoch seconds, 0 when never updated
    registryPrefix: str
    version: str
    enabled: bool
    source: str
    expiresAt: GoTime | None
    lastAdvertisedAt: GoTime | None

    @staticmethod
    def row_fields(server: Server, now: dt.datetime) -> dict[str, object]:
        reason = server.unroutable_reason(now)
        filtered_type = reason.filtered_type if reason is not None else ""
        return {
            "name": server.name,
            "serverId": str(server.pk),
            "storageType": server.storage_type,
            "disableDirectorTest": server.director_test_disabled,
            "authUrl": server.auth_url,
            "brokerUrl": server.broker_url,
            "url": server.data_url,
            "webUrl": server.web_url,
            "type": SERVER_TYPE_NAMES[ServerKind(server.kind)],
            "coordinate": CoordinateOut(
                Lat=server.latitude or 0.0,
                Long=server.longitude or 0.0,
                AccuracyRadius=0,
                Source="declared" if server.latitude is not None else "",
                FromTTLCache=False,
            ),
            "latitude": server.latitude or 0.0,
            "longitude": server.longitude or 0.0,
            "capabilities": CapsOut.from_flags(server.capabilities),
            "filtered": bool(filtered_type),
            "filteredType": filtered_type,
            "downtimes": [DowntimeOut.from_row(downtime) for downtime in server.downtimes.all()],
            "fromTopology": False,
            "healthStatus": server.health_status,
            "healthMessage": server.health_message,
            "healthCheckedAt": server.health_checked_at,
            "serverStatus": server.status,
            "ioLoad": 0.0,
            "statusWeight": server.status_weight,
            "statusWeightLastUpdate": int(server.status_weight_updated_at.timestamp())
            if server.status_weight_updated_at
            else 0,
            "registryPrefix": server.registry_prefix,
            "version": server.version,
            "enabled": server.enabled,
            "source": server.source,
            "expiresAt": server.expires_at,
            "lastAdvertisedAt": server.last_advertised_at,
        }


class ServerOut(ServerBaseOut):
    """An item of ``/servers``: the server with the paths of its namespaces."""

    namespacePrefixes: list[str]

    @classmethod
    def from_row(cls, server: Server, now: dt.datetime) -> ServerOut:
        prefixes = [namespace.path for namespace in server.namespaces.all()]
        return cls.model_validate(cls.row_fields(server, now) | {"namespacePrefixes": prefixes})


class ServerDetailOut(ServerBaseOut):
    """``/servers/{name}``: the server with its namespaces in full."""

    namespaces: list[UiNamespaceOut]

    @classmethod
    def from_row(cls, server: Server, now: dt.datetime) -> ServerDetailOut:
        namespaces = [UiNamespaceOut.from_row(namespace) for namespace in server.namespaces.all()]
        return cls.model_validate(cls.row_fields(server, now) | {"namespaces": namespaces})


# --- stat pools and health -------------------------------------------------------------------


class PoolOut(WireOut):
    """One server's stat pool: limits, load, ejection and cache (``PoolState``)."""

    name: str
    type: str  # "origin" or "cache"
    url: str
    limit: int
    active: int
    waiting: int
    maxWaiters: int
    ejectedUntil: GoTime | None
    timesEjected: int
    consecutiveFailures: int
    cacheEntries: int
    saturated: bool
    outcomes: dict[str, int]
    cachedOutcomes: dict[str, int]
    rejections: dict[str, int]

    @classmethod
    def from_state(cls, state: PoolState, now: dt.datetime) -> PoolOut:
        return cls(
            name=state.name,
            type=state.kind,
            url=state.url,
            limit=state.limit,
            active=state.active,
            waiting=state.waiting,
            maxWaiters=state.max_waiters,
            ejectedUntil=now + dt.timedelta(seconds=state.ejected_for) if state.ejected else None,
            timesEjected=state.times_ejected,
            consecutiveFailures=state.consecutive_failures,
            cacheEntries=state.cache_entries,
            saturated=state.saturated_recently,
            outcomes=state.outcomes,
            cachedOutcomes=state.cached_outcomes,
            rejections=state.rejections,
        )


class RegistryHealthOut(WireOut):
    """The external registry's reachability (external registry mode)."""

    url: str
    reachable: bool
    lastError: str | None
    lastErrorAt: str | None = Field(description="RFC 3339 time of the last failed call.")


class HealthOut(WireOut):
    """The health verdict; ``overloaded`` is answered with 503, the others with 200."""

    status: str = Field(json_schema_extra={"enum": [verdict.value for verdict in Verdict]})
    greenlets: int
    inflight: int
    maxInflight: int
    loopLagSeconds: float
    saturatedServers: list[str]
    ejectedServers: list[str]
    reasons: list[str]
    databaseUnreachableSince: str | None = Field(
        description="RFC 3339 time since when the registry database has not answered."
    )
    registry: RegistryHealthOut | None = Field(
        default=None, description="The external registry (DIRECTOR_REGISTRY_URL), if used."
    )

    @classmethod
    def from_verdict(cls, verdict: Health) -> HealthOut:
        return cls(
            status=verdict.status,
            greenlets=verdict.greenlets,
            inflight=verdict.inflight,
            maxInflight=verdict.max_inflight,
            loopLagSeconds=verdict.loop_lag_seconds,
            saturatedServers=verdict.saturated_servers,
            ejectedServers=verdict.ejected_servers,
            reasons=verdict.reasons,
            databaseUnreachableSince=verdict.database_unreachable_since,
            registry=None
            if verdict.registry is None
            else RegistryHealthOut(
                url=verdict.registry.url,
                reachable=verdict.registry.reachable,
                lastError=verdict.registry.last_error,
                lastErrorAt=verdict.registry.last_error_at,
            ),
        )
