"""The decision's record of itself: every server left out and why, what the stat said,
every weight, and the servers chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from director.geo import Coordinate
from director.selection import Presence, Weights
from director.snapshot import Entry, ServerKey


@dataclass
class Trace:
    """Why an answer came out as it did: for ``X-Pelican-Debug`` and ``manage.py explain``.

    By server key: ``excluded`` maps a server to the reason it was left out; ``weights``
    holds every weight of every server that was ranked; ``presence`` what the stat said.
    """

    method: str = ""
    client: Coordinate | None = None
    namespace: str = ""
    excluded: dict[ServerKey, str] = field(default_factory=dict)
    presence: dict[ServerKey, Presence] = field(default_factory=dict)
    weights: dict[ServerKey, Weights] = field(default_factory=dict)
    chosen: list[ServerKey] = field(default_factory=list)

    def exclude(self, entries: Sequence[Entry], reason: str) -> None:
        for entry in entries:
            self.excluded.setdefault(entry.server.key, reason)

    def stat(self, entries: Sequence[Entry], presence: Mapping[str, Presence]) -> None:
        """What the availability step said (by name: one call asks servers of one kind)."""
        for entry in entries:
            if entry.server.name in presence:
                self.presence[entry.server.key] = presence[entry.server.name]
