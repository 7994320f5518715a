"""What one stat of one server can come to. Failures are values, never exceptions."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    PRESENT = "present"  # 200 with a Content-Length
    ABSENT = "absent"  # 404
    DENIED = "denied"  # 401 or 403
    ERROR = "error"  # another status, or a transport error
    TIMEOUT = "timeout"  # no answer within min(stat timeout, time left)
    SATURATED = "saturated"  # no free slot within the allowed wait, or too many waiting
    EJECTED = "ejected"  # the server is ejected: no HEAD was sent
    PENDING = "pending"  # still running when the request stopped waiting


# Outcomes that count towards ejection (Envoy's consecutive_5xx incl. local-origin errors).
# An ERROR counts only when ``StatResult.server_fault`` says so (5xx or transport).
KNOWN_ANSWERS = frozenset({Outcome.PRESENT, Outcome.ABSENT})


@dataclass(frozen=True, slots=True)
class StatResult:
    outcome: Outcome
    status_code: int | None = None
    latency: float = 0.0  # seconds the HEAD took (0 for cached and rejected results)
    size: int | None = None
    checksum: str = ""  # the Digest header, e.g. "crc32c=0a1b2c3d"
    age: int | None = None  # the Age header; caches only hold the object when > 0
    cached: bool = False
    server_fault: bool = False  # 5xx, transport error or full-length timeout
    detail: str = ""

    def as_cached(self) -> StatResult:
        return StatResult(
            outcome=self.outcome,
            status_code=self.status_code,
            size=self.size,
            checksum=self.checksum,
            age=self.age,
            cached=True,
        )


def rejected(outcome: Outcome, detail: str = "") -> StatResult:
    return StatResult(outcome=outcome, detail=detail)
