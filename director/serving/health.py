"""The health verdict's vocabulary: what ``director.ops.health.assess`` returns and the
health endpoint and the console show."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # answered with 200: redirects go on, something needs a look
    OVERLOADED = "overloaded"  # answered with 503: this process cannot serve


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

    @property
    def http_status(self) -> int:
        return 503 if self.status is Verdict.OVERLOADED else 200
