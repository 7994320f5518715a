"""Pelican's advertisement JSON: the schemas an ad is parsed with, and the one mapping of
token-issuer and token-generation metadata between their JSON and ``TokenIssuer`` /
``TokenGeneration``.

Plain pydantic, no Django. The registry stores the issuer and generation lists of a
namespace in the ad's own JSON shape (URLs as strings); ``listNamespaces`` writes them
with Go URL objects, as Pelican's director does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic import ValidationError as PydanticValidationError

from director.wire.types import WIRE_CAPABILITY_KEYS, Capability, TokenGeneration, TokenIssuer
from director.wire.validation import (
    MAX_DOWNTIME_ID_LENGTH,
    MAX_FEATURE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_SEVERITY_LENGTH,
    MAX_STORAGE_TYPE_LENGTH,
    MAX_VERSION_LENGTH,
    header_safe_problem,
    namespace_path_problem,
    url_problem,
)

MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
MAX_NAMESPACES = 1000  # namespaces in one ad


def go_url_to_string(value: object) -> str:
    """Pelican marshals ``url.URL`` as an object ({"Scheme", "Host", "Path", ...})."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        scheme = str(value.get("Scheme") or "")
        host = str(value.get("Host") or "")
        path = str(value.get("Path") or "")
        opaque = str(value.get("Opaque") or "")
        if opaque:
            text = f"{scheme}:{opaque}"
        elif scheme or host:
            text = f"{scheme}://{host}{path}"
        else:
            text = path
        if value.get("RawQuery"):
            text += f"?{value['RawQuery']}"
        return text
    raise ValueError("must be a URL string or a Go URL object")


def go_url_object(url: str) -> dict[str, object]:
    """The inverse: the JSON object Go writes for a ``url.URL``."""
    parts = urlsplit(url)
    return {
        "Scheme": parts.scheme,
        "Opaque": "",
        "User": None,
        "Host": parts.netloc,
        "Path": parts.path,
        "RawPath": "",
        "OmitHost": False,
        "ForceQuery": False,
        "RawQuery": parts.query,
        "Fragment": parts.fragment,
        "RawFragment": "",
    }


GoURL = Annotated[str, BeforeValidator(go_url_to_string)]


def _none_to_list(value: object) -> object:
    return [] if value is None else value


def _no_nul(value: object) -> object:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _nul_path(value: object, where: str) -> str:
    """Where in a parsed JSON value a string (or key) holds a NUL, or ''."""
    if isinstance(value, str):
        return where if "\x00" in value else ""
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_path(key, where) or _nul_path(item, f"{where}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{where}[{index}]")
            if found:
                return found
    return ""


nul_path = _nul_path  # for the other JSON bodies that reach the registry's columns


def _downtime_id(value: object) -> object:
    text = str(value) if isinstance(value, int) else value
    if isinstance(text, str) and len(text) > MAX_DOWNTIME_ID_LENGTH:
        raise ValueError(f"must be at most {MAX_DOWNTIME_ID_LENGTH} characters")
    return _no_nul(value)


class WireModel(BaseModel):
    # Pelican adds fields over time; unknown keys are ignored, not refused.
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class CapabilitiesIn(WireModel):
    PublicRead: bool = False
    Read: bool = False
    Write: bool = False
    Listing: bool = False
    FallBackRead: bool = False
    Copies: bool = False

    def flags(self) -> Capability:
        flags = Capability.NONE
        for key, flag in WIRE_CAPABILITY_KEYS:
            if getattr(self, key):
                flags |= flag
        return flags


def _url_or_empty(value: str) -> str:
    if value:
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
    return value


def _header_token(value: str) -> str:
    """A value that goes into an X-Pelican header as is (strategy, base path)."""
    problem = header_safe_problem(value, "Value", forbidden=",;=")
    if problem:
        raise ValueError(problem)
    return value


HeaderURL = Annotated[GoURL, AfterValidator(_url_or_empty)]
HeaderToken = Annotated[str, Field(max_length=200), AfterValidator(_header_token)]


class TokenIssuerIn(WireModel):
    base_paths: Annotated[list[HeaderToken], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, alias="base-paths", max_length=100
    )
    restricted_paths: Annotated[list[HeaderToken], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, alias="restricted-paths", max_length=100
    )
    issuer: HeaderURL = ""

    def view(self) -> TokenIssuer:
        return TokenIssuer(self.issuer, tuple(self.base_paths), tuple(self.restricted_paths))


class TokenGenerationIn(WireModel):
    strategy: HeaderToken = ""
    vault_server: HeaderURL = Field(default="", alias="vault-server")
    max_scope_depth: int = Field(default=0, alias="max-scope-depth", ge=0, le=1000)
    issuer: HeaderURL = ""

    def view(self) -> TokenGeneration:
        return TokenGeneration(self.strategy, self.vault_server, self.max_scope_depth, self.issuer)


class NamespaceAdIn(WireModel):
    caps: CapabilitiesIn = Field(default_factory=CapabilitiesIn, alias="Caps")
    path: str
    token_generation: Annotated[list[TokenGenerationIn], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, alias="token-generation", max_length=20
    )
    token_issuer: Annotated[list[TokenIssuerIn], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, alias="token-issuer", max_length=20
    )
    from_topology: bool = Field(default=False, alias="from-topology")

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        problem = namespace_path_problem(value.rstrip("/") or "/")
        if problem:
            raise ValueError(problem)
        return value.rstrip("/") or "/"


class CoordinateIn(WireModel):
    Lat: float = 0.0
    Long: float = 0.0
    AccuracyRadius: int = 0
    Source: str = ""


class DowntimeIn(WireModel):
    id: Annotated[str | int, BeforeValidator(_downtime_id)] = ""
    downtime_class: Literal["SCHEDULED", "UNSCHEDULED", "scheduled", "unscheduled"] = Field(
        default="SCHEDULED", alias="class"
    )
    description: Annotated[str, BeforeValidator(_no_nul)] = Field(default="", max_length=10_000)
    severity: Annotated[str, BeforeValidator(_no_nul)] = Field(
        default="", max_length=MAX_SEVERITY_LENGTH
    )
    startTime: int = Field(ge=0, le=MAX_EPOCH_MS)  # epoch milliseconds
    endTime: int = Field(default=-1, ge=-1, le=MAX_EPOCH_MS)  # -1 means indefinite


class AdvertisementIn(WireModel):
    """Pelican's ``OriginAdvertise`` body, used for origins and caches alike."""

    name: Annotated[str, BeforeValidator(_no_nul)] = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    data_url: str = Field(alias="data-url")
    web_url: str = Field(default="", alias="web-url")
    broker_url: str = Field(default="", alias="broker-url")
    # Optional in the schema, as in Pelican's: a missing one is refused with its 403.
    registry_prefix: str = Field(default="", alias="registry-prefix", max_length=MAX_NAME_LENGTH)
    capabilities: CapabilitiesIn = Field(default_factory=CapabilitiesIn)
    namespaces: Annotated[list[NamespaceAdIn], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, max_length=MAX_NAMESPACES
    )
    coordinate: CoordinateIn | None = None
    status: str = Field(default="", max_length=50)
    version: Annotated[str, BeforeValidator(_no_nul)] = Field(
        default="", max_length=MAX_VERSION_LENGTH
    )
    expiry: dt.datetime | None = None
    now: dt.datetime | None = None
    downtimes: Annotated[list[DowntimeIn], BeforeValidator(_none_to_list)] = Field(
        default_factory=list, max_length=100
    )
    director_test: bool = Field(default=False, alias="directorTest")
    storage_type: Annotated[str, BeforeValidator(_no_nul)] = Field(
        default="", alias="storageType", max_length=MAX_STORAGE_TYPE_LENGTH
    )
    required_features: Annotated[
        list[Annotated[str, Field(max_length=MAX_FEATURE_LENGTH)]],
        BeforeValidator(_none_to_list),
    ] = Field(default_factory=list, alias="requiredFeatures", max_length=50)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul_anywhere(cls, value: object, info: ValidationInfo) -> object:
        """No string of an ad may hold a NUL, however deep: PostgreSQL cannot store one
        (text or jsonb), and SQLite would store what the other database refuses."""
        found = _nul_path(value, str(info.field_name))
        if found:
            raise ValueError(f"{found} must not contain NUL characters")
        return value

    @field_validator("data_url", "web_url", "broker_url")
    @classmethod
    def _urls_are_absolute(cls, value: str, info: ValidationInfo) -> str:
        if value or info.field_name == "data_url":
            problem = url_problem(value, allow_query=info.field_name == "broker_url")
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("coordinate")
    @classmethod
    def _coordinate_in_range(cls, value: CoordinateIn | None) -> CoordinateIn | None:
        if value is not None and not (-90 <= value.Lat <= 90 and -180 <= value.Long <= 180):
            raise ValueError("Lat must be within [-90, 90] and Long within [-180, 180]")
        return value


# --- the one mapping of token metadata ----------------------------------------------------

UrlWriter = Callable[[str], object]
_Model = TypeVar("_Model", bound="WireModel")


def token_issuer_json(issuer: TokenIssuer, url: UrlWriter = str) -> dict[str, object]:
    """A TokenIssuer in the ad's JSON shape; ``url`` writes the issuer URL (a string for
    the registry, ``go_url_object`` for ``listNamespaces``)."""
    return {
        "base-paths": list(issuer.base_paths),
        "restricted-paths": list(issuer.restricted_paths),
        "issuer": url(issuer.issuer),
    }


def token_generation_json(generation: TokenGeneration, url: UrlWriter = str) -> dict[str, object]:
    """A TokenGeneration in the ad's JSON shape (see ``token_issuer_json``)."""
    return {
        "strategy": generation.strategy,
        "vault-server": generation.vault_server,
        "max-scope-depth": generation.max_scope_depth,
        "issuer": url(generation.issuer),
    }


def token_issuers_from_json(items: Iterable[object]) -> tuple[TokenIssuer, ...]:
    """Stored issuer JSON back to TokenIssuers; entries that do not validate are skipped
    (rows are validated when written, so only a hand-edited database holds such)."""
    return tuple(
        parsed.view() for item in items if (parsed := _parse(TokenIssuerIn, item)) is not None
    )


def token_generations_from_json(items: Iterable[object]) -> tuple[TokenGeneration, ...]:
    return tuple(
        parsed.view() for item in items if (parsed := _parse(TokenGenerationIn, item)) is not None
    )


def _parse(model: type[_Model], item: object) -> _Model | None:
    try:
        return model.model_validate(item)
    except PydanticValidationError:
        return None
