"""The health verdict's vocabulary: what ``director.ops.health.assess`` returns and the
health endpoint and the console show."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # answered with 200: redirects go on, something needs a look
    OVERLOADED = "overloaded"  # answered with 503: this process cannot serve


@dataclass(frozen=True)
class RegistryHealth:
    """The external registry as health reports it (external registry mode only)."""

    url: str
    reachable: bool
    last_error: str | None = None
    last_error_at: str | None = None  # RFC 3339


@dataclass
class Health:
    status: Verdict
    greenlets: int
    inflight: int
    max_inflight: int
    loop_lag_seconds: float
    saturated_servers: list[str] = field(default_factory=list)
    ejected_servers: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    database_unreachable_since: str | None = None  # RFC 3339, while it is
    registry: RegistryHealth | None = None  # the external registry's reachability

    @property
    def http_status(self) -> int:
        return 503 if self.status is Verdict.OVERLOADED else 200
