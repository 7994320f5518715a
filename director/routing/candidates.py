"""Which servers may answer a request, and whether their presence is worth a stat.

The filters of reference 3.2 (caches for a cache request: topology caches, error states,
the features the origins require) and the stat rules of reference 4.2 (Pelican's
``shouldStatOrigins`` and its cache counterpart). Each filter records what it left out in
the ``Trace``.
"""

from __future__ import annotations

from collections.abc import Sequence

from director.routing.trace import Trace
from director.routing.types import RedirectRequest
from director.selection import cache_support, required_features, server_supports
from director.snapshot import DirectorSettings, Entry, NamespaceView, Snapshot
from director.wire import headers as fmt
from director.wire.types import Capability, ServerStatus

NO_STAT_METHODS = frozenset({"PUT", "DELETE", "PROPFIND"})
# Caches in these states are dropped when filter_caches_in_error_state is on.
CACHE_ERROR_STATES = frozenset({ServerStatus.CRITICAL, ServerStatus.SHUTTING_DOWN})


def without(entries: Sequence[Entry], removed: Sequence[Entry]) -> list[Entry]:
    """``entries`` minus ``removed``, by identity (Entry equality compares every field)."""
    gone = {id(entry) for entry in removed}
    return [entry for entry in entries if id(entry) not in gone]


def should_stat_caches(
    request: RedirectRequest,
    snapshot: Snapshot,
    caches: Sequence[Entry],
    namespace: NamespaceView,
    token: str,
) -> bool:
    """Reference 4.2: caches are statted only by the adaptive sort, and not for these."""
    if request.has_query("skipstat") or request.has_query("directread"):
        return False
    if not snapshot.settings.check_cache_presence or not caches:
        return False
    if request.method in NO_STAT_METHODS:
        return False
    return not (namespace.require_token and not token)


def should_stat_origins(
    request: RedirectRequest,
    snapshot: Snapshot,
    origins: Sequence[Entry],
    namespace: NamespaceView,
    token: str,
    caches_serve: bool,
) -> bool:
    """Reference 4.2 (Pelican's ``shouldStatOrigins``): when the origins' presence is
    worth asking. Not for a request the caches will answer (``caches_serve``): a cache
    finds out itself, and a missing object is the cache's 404 to give."""
    settings = snapshot.settings
    if request.has_query("skipstat") or not settings.check_origin_presence or not origins:
        return False
    if request.method in NO_STAT_METHODS or caches_serve:
        return False
    if settings.assume_presence_at_single_origin and len(origins) == 1:
        return False
    return not (namespace.require_token and not token)


def caches_for(
    caches: Sequence[Entry],
    origins: Sequence[Entry],
    namespace: NamespaceView,
    settings: DirectorSettings,
    trace: Trace,
) -> tuple[list[Entry], list[Entry]]:
    """The caches that may serve a cache request (reference 3.2): (supported, unknown).
    Topology caches never serve public namespaces; caches in state critical or shutting
    down are left out (``filter_caches_in_error_state``); so are those whose version lacks
    a feature the origins require (the union: any origin may get the cache's miss), and
    those whose version cannot tell come last, unsorted (``selection.cache_support``)."""
    usable = list(caches)
    if not namespace.require_token:
        trace.exclude([e for e in usable if e.namespace.from_topology], "topology cache")
        usable = [entry for entry in usable if not entry.namespace.from_topology]
    if settings.filter_caches_in_error_state:
        failing = [e for e in usable if e.server.status in CACHE_ERROR_STATES]
        for entry in failing:
            trace.excluded.setdefault(entry.server.key, f"status {entry.server.status}")
        usable = without(usable, failing)
    features = required_features(entry.server for entry in origins)
    supported, unknown = [], []
    for entry in usable:
        support = cache_support(entry.server, features)
        if support:
            supported.append(entry)
        elif support is None:
            unknown.append(entry)
        else:
            reason = f"version {entry.server.version} lacks {' and '.join(features)}"
            trace.excluded.setdefault(entry.server.key, reason)
    return supported, unknown


def collections_url_of(origins: Sequence[Entry]) -> str:
    for entry in origins:
        if server_supports(entry.server, entry.namespace, Capability.LISTINGS):
            return fmt.scheme_and_host(fmt.server_base(entry.server, entry.namespace))
    return ""
