"""The redirect decision's inputs and outputs: the cleaned request, the result the view
renders, and the availability seam through which object presence ("stat") plugs in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from director.geo import Coordinate
from director.selection import Presence
from director.snapshot import NamespaceView, ServerView
from director.wire.types import ServerKind

# The seam: (ordered candidates, path, namespace, client token, deadline) -> presence by
# server name. Servers missing from the answer count as UNKNOWN.
Availability = Callable[
    [Sequence[ServerView], str, NamespaceView, str, float], Mapping[str, Presence]
]


def all_available(
    servers: Sequence[ServerView], path: str, namespace: NamespaceView, token: str, deadline: float
) -> Mapping[str, Presence]:
    """The availability step when no stat is made: every candidate counts as unknown."""
    return {}


@dataclass(frozen=True, slots=True)
class RedirectRequest:
    method: str
    path: str  # cleaned (director.wire.paths.clean_path)
    to_origin: bool  # the /origin route (or a root path sent there)
    request_id: str
    now: float  # wall clock (epoch seconds): expiry and token checks
    deadline: float  # time.monotonic() value by which the answer must be on its way
    query: tuple[tuple[str, str], ...] = ()
    authorization: str = ""
    timeout_header: str = ""
    depth: str | None = None
    user_agent: str = ""
    client: Coordinate | None = None

    def has_query(self, key: str) -> bool:
        return any(name == key for name, _ in self.query)

    def query_value(self, key: str) -> str:
        for name, value in self.query:
            if name == key:
                return value
        return ""


@dataclass(slots=True)
class RedirectResult:
    """A 307 (or 200 with ``redirect=false``) with its ranked servers, or an error."""

    status: int
    message: str = ""  # for errors; the view appends " Request ID: <id>"
    location: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    servers: list[ServerView] = field(default_factory=list)
    namespace: str = ""
    destination: ServerKind | None = None  # the kind of the servers sent to, for metrics

    @property
    def is_error(self) -> bool:
        return self.status >= 400
