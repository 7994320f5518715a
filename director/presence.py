"""The availability step of the redirect path, backed by the stat engine.

Turns routing's ServerViews into StatTargets, keeps the process's one ``StatEngine`` in
step with the snapshot (settings and servers), and maps stat outcomes to the
``Presence`` that routing ranks by.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from director import __version__
from director.selection import Presence
from director.snapshot import (
    DEFAULT_SETTINGS,
    DirectorSettings,
    NamespaceView,
    ServerKey,
    ServerView,
    Snapshot,
)
from director.stat import Outcome, StatConfig, StatEngine, StatResult, StatTarget
from director.wire.types import ServerKind

USER_AGENT = f"pelican-director/{__version__}"


def stat_config(settings: DirectorSettings) -> StatConfig:
    return StatConfig(
        stat_timeout=settings.stat_timeout,
        concurrency_limit=settings.stat_concurrency_limit,
        max_wait=settings.stat_max_wait,
        max_waiters=settings.stat_max_waiters,
        cache_ttl=settings.cache_presence_ttl,
        cache_capacity=settings.cache_presence_capacity,
        ejection_threshold=settings.ejection_consecutive_failures,
        ejection_base_time=settings.ejection_base_time,
        ejection_max_time=settings.ejection_max_time,
    )


engine = StatEngine(stat_config(DEFAULT_SETTINGS), user_agent=USER_AGENT)


def target_for(server: ServerView) -> StatTarget:
    return StatTarget(
        name=server.name,
        kind=server.kind.value,
        url=server.url,
        limit=server.stat_concurrency_limit,
    )


def follow_snapshot(snapshot: Snapshot, changed: frozenset[ServerKey] | None) -> None:
    """Registry listener: new settings and the server list reach the engine; after a
    delta (``changed``), only the servers it changed."""
    if changed is None:
        targets = [target_for(server) for server in snapshot.servers.values()]
        engine.configure(stat_config(snapshot.settings), targets)
        return
    engine.update_targets(
        [target_for(snapshot.servers[key]) for key in changed if key in snapshot.servers],
        [key for key in changed if key not in snapshot.servers],
    )


def presence_of(server: ServerView, result: StatResult) -> Presence:
    outcome = result.outcome
    if outcome is Outcome.PRESENT:
        # A cache answers 200 even when it would have to fetch from the origin; only a
        # local copy carries Age > 0 (Pelican PR #3179). Without it the cache does not
        # hold the object: weighed as absent (caches are weighed, never dropped).
        if server.kind is ServerKind.CACHE and not (result.age and result.age > 0):
            return Presence.ABSENT
        return Presence.PRESENT
    if outcome is Outcome.ABSENT:
        return Presence.ABSENT
    if outcome is Outcome.EJECTED:
        return Presence.EJECTED
    return Presence.UNKNOWN


class StatAvailability:
    """An ``Availability`` for one request; keeps the raw results for metrics and debug."""

    def __init__(self, settings: DirectorSettings) -> None:
        self.settings = settings
        self.results: dict[ServerKey, StatResult] = {}

    def __call__(
        self,
        servers: Sequence[ServerView],
        path: str,
        namespace: NamespaceView,
        token: str,
        deadline: float,
    ) -> Mapping[str, Presence]:
        # Origins: stop at max_stat_responses answers of "present". Caches (the adaptive
        # working set): every answer counts in the weights, so wait for all of them.
        caches_only = all(server.kind is ServerKind.CACHE for server in servers)
        results = engine.stat_many(
            [target_for(server) for server in servers],
            path,
            deadline=deadline,
            token=token,
            token_scoped=namespace.require_token,
            want_present=len(servers) if caches_only else self.settings.max_stat_responses,
        )
        self.results.update(results)  # origins first, then (adaptive) the cache working set
        # The seam answers by name: one call stats servers of one kind.
        return {server.name: presence_of(server, results[server.key]) for server in servers}


def availability_for(snapshot: Snapshot) -> StatAvailability:
    return StatAvailability(snapshot.settings)
