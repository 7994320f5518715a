"""Pelican's vocabulary: capabilities, server kinds and statuses, token metadata.

Plain Python. The wire names (ad JSON keys, header values) are Pelican's; everything
else in the director refers to these types instead of repeating the strings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Capability(enum.IntFlag):
    """Server and namespace capabilities, as in Pelican's ``Capabilities`` struct."""

    NONE = 0
    PUBLIC_READS = 1
    READS = 2
    WRITES = 4
    LISTINGS = 8
    DIRECT_READS = 16
    COPIES = 32


# Pelican's wire names (ad JSON keys) for each capability, in its struct order.
WIRE_CAPABILITY_KEYS: tuple[tuple[str, Capability], ...] = (
    ("PublicRead", Capability.PUBLIC_READS),
    ("Read", Capability.READS),
    ("Write", Capability.WRITES),
    ("Listing", Capability.LISTINGS),
    ("FallBackRead", Capability.DIRECT_READS),
    ("Copies", Capability.COPIES),
)
# Names shown in messages and the UI API.
CAPABILITY_NAMES: tuple[tuple[str, Capability], ...] = (
    ("PublicReads", Capability.PUBLIC_READS),
    ("Reads", Capability.READS),
    ("Writes", Capability.WRITES),
    ("Listings", Capability.LISTINGS),
    ("DirectReads", Capability.DIRECT_READS),
    ("Copies", Capability.COPIES),
)


# Tuples: their order is the object and origin endpoints' Allow lines (director.views).
READ_METHODS = ("GET", "HEAD")
ORIGIN_METHODS = (*READ_METHODS, "PUT", "DELETE", "PROPFIND", "COPY")


def verb_requirement(method: str, depth: str | None) -> tuple[str, tuple[Capability, ...]]:
    """(Pelican verb name, capabilities any one of which must be on server and namespace)."""
    if method in READ_METHODS:
        return "get", (Capability.READS, Capability.PUBLIC_READS)
    if method in ("PUT", "DELETE"):
        return method.lower(), (Capability.WRITES,)
    if method == "PROPFIND":
        if depth is None or depth.strip() == "0":
            return "stat", (Capability.READS, Capability.PUBLIC_READS)
        return "ls", (Capability.LISTINGS,)
    if method == "COPY":
        return "copy", (Capability.COPIES,)
    return "unknown", ()


def capability_names(verb_caps: tuple[Capability, ...], query_caps: Capability) -> str:
    """What a request needs, as the 405 message says it: ``(Reads OR PublicReads) AND
    DirectReads``."""
    names = {flag: name for name, flag in CAPABILITY_NAMES}
    verb = " OR ".join(names[cap] for cap in verb_caps) or "none"
    extra = [
        names[cap] for cap in (Capability.DIRECT_READS, Capability.LISTINGS) if query_caps & cap
    ]
    if len(verb_caps) > 1 and extra:
        verb = f"({verb})"
    return " AND ".join([verb, *extra])


class ServerKind(enum.StrEnum):
    ORIGIN = "origin"
    CACHE = "cache"


# Pelican's name of each server type: the UI API's ``type``, service discovery's
# ``server_type`` label, and the advertisement refusals' first word.
SERVER_TYPE_NAMES: dict[ServerKind, str] = {ServerKind.ORIGIN: "Origin", ServerKind.CACHE: "Cache"}


class ServerStatus(enum.StrEnum):
    """Advertised health, ordered as Pelican orders it (shutting down is worst)."""

    SHUTTING_DOWN = "shutting down"
    CRITICAL = "critical"
    DEGRADED = "degraded"
    WARNING = "warning"
    OK = "ok"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    issuer: str
    base_paths: tuple[str, ...] = ()
    restricted_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenGeneration:
    strategy: str = ""
    vault_server: str = ""
    max_scope_depth: int = 0
    issuer: str = ""


class HealthStatus(enum.StrEnum):
    """Director health tests (reference 7.4), as Pelican shows them in ``healthStatus``."""

    UNKNOWN = "Unknown"
    INITIALIZING = "Initializing"
    OK = "OK"
    ERROR = "Error"
    DISABLED = "Health Test Disabled"


class SortMethod(enum.StrEnum):
    """Pelican's ``Director.CacheSortMethod`` values (they sort origins too)."""

    DISTANCE = "distance"
    DISTANCE_AND_LOAD = "distanceAndLoad"  # Pelican's placeholder: the same as distance
    RANDOM = "random"
    ADAPTIVE = "adaptive"
