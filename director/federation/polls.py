"""What this process last polled from the external registry (issue 19, reference
pelican-registry-swap.md 3.5-3.6): the cache allowed prefixes and the registry
downtimes, each the last good value with its time and the last failure
(``director.remote.cache.Polled``). ``director.ops.registrypolls`` fills them; cache ads
(``director.ads``), getFedToken (``director.federation.fedtoken``), health, metrics, the
console and the admin read them here, never the registry.

Allowed prefixes (registered cache name -> the namespace paths it may serve):

1. A cache is looked up by the name of its verified registry prefix (``/caches/<name>``),
   the registry's own key; only when that name has no entry, by the hostname of its
   ``data-url`` (Pelican's director's key, kept for compatibility). A hostname is the
   cache's own claim, so it can only narrow what its name allows, never widen it.
2. No entry, or an entry holding ``*``: no restriction. An empty list: nothing (but
   ``/pelican/...``, which every cache serves).
3. Before the first map has arrived, a cache cannot be judged: in external mode its ad
   and its getFedToken get 503 with ``Retry-After`` at once (``NotPolledYet``), never an
   unfiltered acceptance. Pelican holds the ad up to 15 s first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from director.federation import external
from director.remote.cache import Polled
from director.remote.registry import RETRY_AFTER
from director.wire.errors import Refusal

ANY_PREFIX = "*"
ALWAYS_SERVED = "/pelican/"  # caches always serve the federation's own paths
STALE_INTERVALS = 3  # polled data older than this many intervals is reported stale

AllowedMap = dict[str, frozenset[str]]


class NotPolledYet(Refusal):
    """A cache asked about before the first allowed-prefixes map: 503, retry shortly."""

    def __init__(self, what: str) -> None:
        polled = state.allowed
        reason = f" (last attempt: {polled.last_error})" if polled.last_error else ""
        super().__init__(
            503,
            f"The director has not yet fetched the cache allowed prefixes from the registry "
            f"at {external.registry_url() or 'its discovery URL'}{reason}, so it cannot "
            f"judge {what} yet; please retry shortly",
            header_lines=(("Retry-After", str(RETRY_AFTER)),),
        )


@dataclass
class RegistryPolls:
    """This process's polled registry data; ``now`` gives epoch seconds (tests move it)."""

    allowed: Polled[AllowedMap] = field(default_factory=Polled)
    downtimes: Polled[list[dict[str, Any]]] = field(default_factory=Polled)
    interval: float = 60.0
    started: bool = False  # a poller runs in this process
    now: Callable[[], float] = time.time

    def datasets(self) -> dict[str, Polled[Any]]:
        return {"allowedPrefixes": self.allowed, "downtime": self.downtimes}

    def stale(self, now: float | None = None) -> list[str]:
        """Health's reasons: each dataset never polled after a failed attempt, or older
        than ``STALE_INTERVALS`` intervals, with its age and last error."""
        if not self.started:
            return []
        moment = self.now() if now is None else now
        limit = STALE_INTERVALS * self.interval
        reasons = []
        for name, polled in self.datasets().items():
            age = polled.age(moment)
            error = f" (last error: {polled.last_error})" if polled.last_error else ""
            if age is None and polled.last_error:
                reasons.append(f"registry {name} never polled{error}")
            elif age is not None and age > limit:
                reasons.append(f"registry {name} polled {age:.0f} s ago, over {limit:g} s{error}")
        return reasons


state = RegistryPolls()


def reset(interval: float = 60.0, now: Callable[[], float] = time.time) -> RegistryPolls:
    """A fresh state (tests; a poller started anew)."""
    global state
    state = RegistryPolls(interval=interval, now=now)
    return state


def parse_allowed(value: Mapping[str, Iterable[str]]) -> AllowedMap:
    return {name: frozenset(prefixes) for name, prefixes in value.items()}


def allowed_for(
    allowed: Mapping[str, frozenset[str]], name: str, hostname: str = ""
) -> frozenset[str] | None:
    """The prefixes a cache registered as ``name`` (data URL host ``hostname``) may
    serve, or None for no restriction (module doc, 1-2)."""
    found = allowed.get(name)
    if found is None and hostname:
        found = allowed.get(hostname.lower(), allowed.get(hostname))
    if found is None or ANY_PREFIX in found:
        return None
    return found


def prefix_name(registry_prefix: str) -> str:
    """``/caches/<name>`` -> name, the registry's key; a legacy ``host:port`` loses its
    port (Pelican's registry names such a server by its host)."""
    tail = registry_prefix.rstrip("/").rsplit("/", 1)[-1]
    return tail.split(":", 1)[0] if "." in tail else tail


def _current_map(what: str) -> AllowedMap | None:
    """The map in external mode (None outside it); NotPolledYet before the first one."""
    if not external.configured():
        return None
    value = state.allowed.value
    if value is None:
        raise NotPolledYet(what)
    return value


def cache_namespaces(registry_prefix: str, data_url: str, paths: Iterable[str]) -> list[str]:
    """The paths of a cache ad that its allowed prefixes drop (``/pelican/...`` never).
    Empty outside external mode; NotPolledYet before the first map."""
    allowed_map = _current_map(f"the cache {registry_prefix}")
    if allowed_map is None:
        return []
    allowed = allowed_for(
        allowed_map, prefix_name(registry_prefix), urlsplit(data_url).hostname or ""
    )
    if allowed is None:
        return []
    return [path for path in paths if not path.startswith(ALWAYS_SERVED) and path not in allowed]


def read_prefixes(host: str) -> list[str] | None:
    """getFedToken's read scopes for ``host`` (the name of its verified registry prefix):
    the sorted allowed prefixes, or None for ``/`` (no restriction, or not external mode).
    A prefix that is not absolute is left out, as Pelican does."""
    allowed_map = _current_map(f"the tokens of host {host!r}")
    if allowed_map is None:
        return None
    # The name as a cache ad's is looked up (``prefix_name`` of /caches/<host>), so a
    # legacy host:port is restricted here as its ads are.
    allowed = allowed_for(allowed_map, prefix_name(f"/caches/{host}"))
    if allowed is None:
        return None
    return sorted(prefix for prefix in allowed if prefix.startswith("/"))
