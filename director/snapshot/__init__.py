"""The in-memory routing snapshot: frozen views of servers and namespaces.

Plain Python, no Django. ``director.registry`` builds a Snapshot from the database; the
redirect path reads only the snapshot, so a redirect never touches the database.
Everything a redirect needs per namespace (header strings, issuer lines) is computed once
here, when the snapshot is built, not per request.

The package: ``views`` (servers, namespaces, entries, downtimes, the routability rule),
``director_settings`` (``DirectorSettings``: every setting's default, bounds and help,
once), and here the ``Snapshot`` itself, the namespace index of one generation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from director.geo import Override
from director.snapshot.director_settings import (
    DEFAULT_SETTINGS,
    SETTING_FIELDS,
    DirectorSettings,
)
from director.snapshot.views import (
    DowntimeWindow,
    Entry,
    NamespaceView,
    ServerKey,
    ServerView,
    Unroutable,
    server_labels,
    unroutable_reason,
)
from director.wire.types import ServerKind

__all__ = [
    "DEFAULT_SETTINGS",
    "SETTING_FIELDS",
    "DirectorSettings",
    "DowntimeWindow",
    "Entry",
    "NamespaceView",
    "ServerKey",
    "ServerView",
    "Snapshot",
    "Unroutable",
    "prefix_key",
    "server_labels",
    "unroutable_reason",
]


@dataclass(frozen=True)
class Snapshot:
    """An immutable picture of the registry at one generation.

    ``by_prefix`` maps a namespace path with a trailing slash ("/foo/") to every entry that
    advertises exactly that namespace, origins before caches, each group in name order.
    """

    generation: int = -1
    # The registry's full_generation when this snapshot's base was built: a settings or
    # overrides change, or a server deleted, moves it and asks for a full rebuild.
    full_generation: int = -1
    settings: DirectorSettings = field(default_factory=DirectorSettings)
    servers: dict[ServerKey, ServerView] = field(default_factory=dict)
    by_prefix: dict[str, tuple[Entry, ...]] = field(default_factory=dict)
    namespaces_by_server: dict[ServerKey, tuple[NamespaceView, ...]] = field(default_factory=dict)
    overrides: tuple[Override, ...] = ()  # in match order
    # prefix key -> (valid from, valid until, routable entries): see _routable
    _live: dict[str, tuple[float, float, tuple[Entry, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def build(
        cls,
        generation: int,
        settings: DirectorSettings,
        servers: Iterable[tuple[ServerView, Sequence[NamespaceView]]],
        overrides: Sequence[Override] = (),
        full_generation: int = -1,
    ) -> Snapshot:
        by_server: dict[ServerKey, ServerView] = {}
        by_prefix: dict[str, list[Entry]] = {}
        namespaces: dict[ServerKey, tuple[NamespaceView, ...]] = {}
        ordered = sorted(
            servers, key=lambda item: (item[0].kind != ServerKind.ORIGIN, item[0].name)
        )
        for server, server_namespaces in ordered:
            by_server[server.key] = server
            namespaces[server.key] = tuple(server_namespaces)
            for namespace in server_namespaces:
                by_prefix.setdefault(prefix_key(namespace.path), []).append(
                    Entry(server, namespace)
                )
        return cls(
            generation=generation,
            full_generation=full_generation,
            settings=settings,
            servers=by_server,
            by_prefix={key: tuple(entries) for key, entries in by_prefix.items()},
            namespaces_by_server=namespaces,
            overrides=tuple(overrides),
        )

    def apply(
        self,
        generation: int,
        upserts: Iterable[tuple[ServerView, Sequence[NamespaceView]]] = (),
        removals: Iterable[ServerKey] = (),
    ) -> Snapshot:
        """This snapshot with some servers replaced, added or removed: one change's delta.

        The cost is a copy of the three maps (C-level, O(servers + prefixes)) and work in
        proportion to the changed servers' namespaces, never a rebuild:

        1. Drop every changed or removed server's entries from the prefixes it owned.
        2. Add the changed servers' new entries; each touched prefix is ordered again
           (origins before caches, each in name order, as ``build`` orders them).
        3. Keep the routable-entries memo of every prefix that was not touched.
        """
        upserted = list(upserts)
        gone = set(removals) | {server.key for server, _ in upserted}
        servers = dict(self.servers)
        namespaces = dict(self.namespaces_by_server)
        by_prefix = dict(self.by_prefix)
        touched: set[str] = set()
        for server_key in gone:
            servers.pop(server_key, None)
            for namespace in namespaces.pop(server_key, ()):
                touched.add(prefix_key(namespace.path))
        added: dict[str, list[Entry]] = {}
        for server, server_namespaces in upserted:
            servers[server.key] = server
            namespaces[server.key] = tuple(server_namespaces)
            for namespace in server_namespaces:
                key = prefix_key(namespace.path)
                touched.add(key)
                added.setdefault(key, []).append(Entry(server, namespace))
        for key in touched:
            kept = [entry for entry in by_prefix.get(key, ()) if entry.server.key not in gone]
            entries = sorted(kept + added.get(key, []), key=_entry_order)
            if entries:
                by_prefix[key] = tuple(entries)
            else:
                by_prefix.pop(key, None)
        live = dict(self._live)  # a C-level copy: no Python loop over every prefix
        for key in touched:
            live.pop(key, None)
        return replace(
            self,
            generation=generation,
            servers=servers,
            by_prefix=by_prefix,
            namespaces_by_server=namespaces,
            _live=live,
        )

    def server(self, name: str, kind: str | None = None) -> ServerView:
        """The server of that name (and kind; without one, the origin first, as Pelican's
        director_ui finds a name). KeyError when there is none."""
        for candidate in (kind,) if kind else (ServerKind.ORIGIN, ServerKind.CACHE):
            view = self.servers.get((str(candidate), name))
            if view is not None:
                return view
        raise KeyError(name)

    def longest_match(
        self, path: str, now: float, kind: ServerKind | None = None
    ) -> tuple[str, tuple[Entry, ...]]:
        """Routable entries of the longest namespace that contains ``path``.

        ``path`` is cleaned (see ``director.wire.paths``). The trailing-slash rule: "/foo" matches
        "/foo" and "/foo/x", never "/foobar". As in Pelican, origins and caches compete
        together and only the longest prefix with a routable server wins. The cost is one
        dict lookup per path level. ``kind`` restricts the match to origins or caches.
        Returns ("", ()) when nothing matches.
        """
        key = path if path.endswith("/") else path + "/"
        by_prefix = self.by_prefix
        while True:
            entries = by_prefix.get(key)
            if entries:
                live = self._routable(key, entries, now)
                if kind is not None:
                    live = tuple(entry for entry in live if entry.server.kind is kind)
                if live:
                    return (key[:-1] or "/"), live
            if key == "/":
                return "", ()
            key = key[: key.rstrip("/").rfind("/") + 1]

    def _routable(self, key: str, entries: tuple[Entry, ...], now: float) -> tuple[Entry, ...]:
        """The routable entries of one prefix, remembered until the next moment at which
        any of them could change (an expiry, a downtime starting or ending)."""
        remembered = self._live.get(key)
        if remembered is not None and remembered[0] <= now < remembered[1]:
            return remembered[2]
        live = tuple(entry for entry in entries if entry.server.routable(now))
        changes = [when for entry in entries for when in entry.server.changes_after(now)]
        self._live[key] = (now, min(changes, default=float("inf")), live)
        return live


def _entry_order(entry: Entry) -> tuple[bool, str]:
    return entry.server.kind != ServerKind.ORIGIN, entry.server.name


def prefix_key(namespace_path: str) -> str:
    """The lookup key of a namespace path: always ends with exactly one '/'."""
    return namespace_path.rstrip("/") + "/"
