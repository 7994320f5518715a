"""The stat engine's values: what it is asked to stat, under which parameters, and what it
reports of each server's pool.

Frozen dataclasses and one key function, shared by the engine (``director.stat.engine``),
its per-server pools (``director.stat.pool``) and the layers that feed and read it
(``director.presence``, the API, metrics, health, the console).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from director.stat.ejection import EjectionPolicy


@dataclass(frozen=True, slots=True)
class StatTarget:
    name: str
    kind: str  # "origin" or "cache"
    url: str  # data URL without a trailing slash
    limit: int | None = None  # per-server override of the concurrency limit

    @property
    def key(self) -> tuple[str, str]:
        """(kind, name): an origin and a cache may share a name."""
        return (self.kind, self.name)


@dataclass(frozen=True, slots=True)
class StatConfig:
    """The engine's parameters. No defaults here: ``director.presence.stat_config``
    derives them from the director's settings, whose defaults are written once."""

    stat_timeout: float
    concurrency_limit: int
    max_wait: float
    max_waiters: int
    cache_ttl: float
    cache_capacity: int
    ejection_threshold: int
    ejection_base_time: float
    ejection_max_time: float

    def ejection_policy(self) -> EjectionPolicy:
        return EjectionPolicy(
            self.ejection_threshold, self.ejection_base_time, self.ejection_max_time
        )


@dataclass(frozen=True)
class PoolState:
    """A copy of one server's pool state, for the API, metrics and health."""

    name: str
    kind: str
    url: str
    limit: int
    active: int
    waiting: int
    max_waiters: int
    ejected: bool
    ejected_for: float  # seconds left, 0 when not ejected
    times_ejected: int
    consecutive_failures: int
    cache_entries: int
    saturated_recently: bool
    outcomes: dict[str, int]  # outcome -> count, fresh and cached together
    cached_outcomes: dict[str, int]
    rejections: dict[str, int]  # saturated, ejected, deadline
    latency_sum: float = 0.0  # seconds, over the HEADs that got an answer or timed out
    heads: int = 0  # those HEADs

    @property
    def key(self) -> tuple[str, str]:
        """(kind, name), as ``StatTarget.key``."""
        return (self.kind, self.name)


def cache_key(path: str, token: str, token_scoped: bool) -> tuple[str, str]:
    """(path, token hash) for namespaces that need a token, so that one user's answer
    never serves another; (path, "") for public ones."""
    if token_scoped and token:
        return path, hashlib.sha256(token.encode("utf-8")).hexdigest()
    return path, ""
