"""The external registry's polled data (issue 19; reference pelican-registry-swap.md
3.5-3.6): its cache allowed prefixes and its downtimes, asked at start and every
``DIRECTOR_REGISTRY_QUERY_INTERVAL`` (60 s, Pelican's ``Director.RegistryQueryInterval``),
never on the redirect path.

Where the results live (decided): **every serving process polls for itself.**

- The allowed prefixes stay in its own memory (``director.federation.polls``): the cache
  ads and getFedToken it answers read them there, with no database read per ad. N
  processes cost N small GETs a minute, which the registry answers from one query.
- The downtimes are written to the shared database as ``Downtime`` rows of source
  "registry" (only the rows that differ, stamped as a registry change), so that the one
  routability rule of the snapshot applies to them in every process and the admin lists
  them. Polls of several processes converge: a partial unique constraint inserts each
  downtime once, and deleting a row twice is a no-op.

A lease (one poller per database, like the health tests) would save N-1 GETs a minute
but make the allowed prefixes a database read on the ad path or a second copy to keep.

The loop (one ``SupervisedLoop``):

1. Without a client yet (the discovery document has not named the registry), retry
   every ``tick``.
2. Poll allowedPrefixes, then downtime, each within the client's deadline. A failure
   keeps the last good value; its age and the error go to health, metrics and console.
3. Map a good downtime list to the servers and store it (``store_downtimes``).
4. Every ``tick`` until the next poll: when a server appeared in the routing snapshot
   since the last mapping, map the kept list again, so a server that advertises in the
   middle of a registry downtime leaves routing within a tick, not an interval.

Mapping an entry to servers (reference 3.6): an entry with a ``serverId`` names its
server by its registered name (``serverName``), compared with the registered name of
each server's verified registry prefix (asked of the registry, cached 10 min; when it
cannot say, the prefix's last component, ``/caches/<name>``); a legacy entry (no
``serverId``) names the registry prefix itself. A server cannot dodge a downtime by
advertising under another name. Entries that match no server stay in memory, for display.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gevent
from django.db import close_old_connections, transaction

from director import registry
from director.federation import external, polls
from director.models import Downtime, DowntimeSource, Server
from director.remote.registry import RegistryClient, RegistryRefused, RegistryUnavailable
from director.serving.supervisor import SupervisedLoop
from director.wire.validation import MAX_DOWNTIME_ID_LENGTH, MAX_SEVERITY_LENGTH

logger = logging.getLogger(__name__)

TICK = 5.0  # seconds between checks for new servers (and for a client not known yet)
LOOKUP_BUDGET = 10.0  # seconds of registered-name lookups per mapping
POLL_ERRORS = (RegistryUnavailable, RegistryRefused)
CLASSES = {"SCHEDULED", "UNSCHEDULED"}
INDEFINITE = -1


@dataclass(frozen=True)
class ServerRef:
    pk: int
    registry_prefix: str


@dataclass(frozen=True)
class Window:
    """One registry downtime as a row's values (its id, class, severity, description,
    start and end)."""

    external_id: str
    downtime_class: str
    severity: str
    description: str
    starts_at: dt.datetime
    ends_at: dt.datetime | None


def _epoch_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000.0, tz=dt.UTC)


def window(entry: dict[str, Any]) -> Window | None:
    """The entry as a row's values, or None when its times are unusable."""
    start, end = entry.get("startTime"), entry.get("endTime")
    if not isinstance(start, int) or not isinstance(end, int) or start < 0:
        return None
    if end != INDEFINITE and end < start:
        return None
    try:
        starts_at = _epoch_ms(start)
        ends_at = None if end == INDEFINITE else _epoch_ms(end)
    except (OverflowError, OSError, ValueError):
        return None
    raw_id = entry.get("id")
    if isinstance(raw_id, str) and raw_id and len(raw_id) <= MAX_DOWNTIME_ID_LENGTH:
        external_id = raw_id
    else:
        canonical = json.dumps(entry, sort_keys=True, default=str)
        external_id = hashlib.sha256(canonical.encode()).hexdigest()
    cls = str(entry.get("class") or "").upper()
    return Window(
        external_id,
        cls if cls in CLASSES else "SCHEDULED",
        str(entry.get("severity") or "")[:MAX_SEVERITY_LENGTH],
        str(entry.get("description") or ""),
        starts_at,
        ends_at,
    )


def registered_names(
    servers: Iterable[ServerRef], client: RegistryClient | None, budget: float = LOOKUP_BUDGET
) -> dict[int, str]:
    """Each server's registered name: asked of the registry while ``budget`` lasts, else
    (or when it cannot say) its prefix's last component."""
    names: dict[int, str] = {}
    ends = time.monotonic() + budget
    for server in servers:
        name = polls.prefix_name(server.registry_prefix)
        if client is not None and time.monotonic() < ends:
            try:
                name = client.server_name(server.registry_prefix)
            except (RegistryUnavailable, RegistryRefused) as error:
                logger.debug("registered name of %s: %s", server.registry_prefix, error)
        names[server.pk] = name
    return names


def owners(
    entries: list[dict[str, Any]],
    servers: list[ServerRef],
    names: Callable[[], dict[int, str]],
) -> list[tuple[dict[str, Any], list[int]]]:
    """Each entry with the primary keys of the servers it names (module doc)."""
    by_prefix: dict[str, list[int]] = {}
    for server in servers:
        by_prefix.setdefault(server.registry_prefix.rstrip("/"), []).append(server.pk)
    by_name: dict[str, list[int]] | None = None
    found = []
    for entry in entries:
        server_name = str(entry.get("serverName") or "")
        if entry.get("serverId"):
            if by_name is None:  # asked only when some entry names a server
                by_name = {}
                for pk, name in names().items():
                    by_name.setdefault(name, []).append(pk)
            found.append((entry, by_name.get(server_name, [])))
        else:
            found.append((entry, by_prefix.get(server_name.rstrip("/"), [])))
    return found


def _row_key(server_id: int, item: Window) -> tuple[Any, ...]:
    return (server_id, *vars(item).values())


def store_downtimes(matched: list[tuple[dict[str, Any], list[int]]]) -> set[int]:
    """Make the rows of source "registry" what ``matched`` says (only the differences
    are written, in one transaction recorded as one registry change). Returns the
    primary keys of the servers whose downtimes changed."""
    wanted: dict[tuple[Any, ...], Downtime] = {}
    for entry, pks in matched:
        item = window(entry)
        if item is None:
            logger.warning("registry downtime %r has unusable times: ignored", entry.get("id"))
            continue
        for pk in pks:
            wanted[_row_key(pk, item)] = Downtime(
                server_id=pk, source=DowntimeSource.REGISTRY, **vars(item)
            )
    with transaction.atomic():
        existing = {
            _row_key(
                row.server_id,
                Window(
                    row.external_id,
                    row.downtime_class,
                    row.severity,
                    row.description,
                    row.starts_at,
                    row.ends_at,
                ),
            ): row
            for row in Downtime.objects.filter(source=DowntimeSource.REGISTRY)
        }
        gone = [row for key, row in existing.items() if key not in wanted]
        new = [row for key, row in wanted.items() if key not in existing]
        if gone:
            Downtime.objects.filter(pk__in=[row.pk for row in gone]).delete()
        if new:
            Downtime.objects.bulk_create(new, ignore_conflicts=True)
        changed = {row.server_id for row in (*gone, *new)}
        if changed:
            registry.registry_changed(changed)
    return changed


class RegistryPoller:
    """Owner of the greenlet that polls the external registry (module doc)."""

    def __init__(self, interval: float, tick: float = TICK) -> None:
        self.interval = interval
        self.tick = min(tick, interval)
        self.state = polls.reset(interval)
        self._mapped: frozenset[tuple[str, str]] = frozenset()
        self._stored = True
        self._loop = SupervisedLoop("registry-polls", logger, label="registry poller")

    def start(self) -> None:
        self.state.started = True
        self._loop.start(self._run)

    def stop(self) -> None:
        self._loop.stop()
        self.state.started = False

    def _run(self) -> None:
        next_poll = 0.0
        while True:
            try:
                client = external.registry_client()
                if client is not None and time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.interval
                    self.poll(client)
                elif client is not None:
                    self._follow_new_servers(client)
            except Exception:  # a bug or a database error: the next round tries again
                logger.exception("registry poll failed")
            gevent.sleep(self.tick)

    def poll(self, client: RegistryClient) -> None:
        """One poll of both datasets; a good downtime list is mapped and stored."""
        state = self.state
        state.allowed.refresh(client.allowed_prefixes, state.now, POLL_ERRORS)
        if state.downtimes.refresh(client.downtimes, state.now, POLL_ERRORS):
            self._stored = False
        if state.allowed.last_error or state.downtimes.last_error:
            logger.warning(
                "registry poll: allowedPrefixes %s; downtime %s",
                state.allowed.last_error or "ok",
                state.downtimes.last_error or "ok",
            )
        self._follow_new_servers(client, force=not self._stored)

    def _follow_new_servers(self, client: RegistryClient, force: bool = False) -> None:
        """Map the kept downtime list again when it is new or a server appeared."""
        entries = self.state.downtimes.value
        snapshot = registry.installed()
        keys = frozenset(snapshot.servers) if snapshot is not None else frozenset()
        if entries is None or not (force or keys - self._mapped):
            return
        try:
            servers = [
                ServerRef(pk, prefix)
                for pk, prefix in Server.objects.exclude(registry_prefix="").values_list(
                    "pk", "registry_prefix"
                )
            ]
            matched = owners(entries, servers, lambda: registered_names(servers, client))
            changed = store_downtimes(matched)
            self._stored = True
            self._mapped = keys
        finally:
            close_old_connections()
        if changed:
            logger.info("registry downtimes changed for %d server(s)", len(changed))


poller: RegistryPoller | None = None


def start(interval: float) -> RegistryPoller:
    global poller
    if poller is None:
        poller = RegistryPoller(interval)
    poller.start()
    return poller


def stop() -> None:
    if poller is not None:
        poller.stop()
