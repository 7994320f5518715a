"""The console's JSON (``/api/v1.0/console/...``), polled by its pages.

Staff only (a session of the admin), unless ``DIRECTOR_CONSOLE_PUBLIC`` is on. Two
operations are public, for the diagnostics commands: ``explain`` (what a redirect would do
for that client, as ``X-Pelican-Debug: true`` on a redirect tells) and ``pools`` (every
server's state and stat pool: what ``director_ui``'s servers and stat pools publish).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Status

from director.console import data
from director.console.rows import KINDS, SORTS, STATE_FILTERS, select, server_rows
from director.console.schemas import (
    ConsoleServerOut,
    ExplainOut,
    MapOut,
    NamespacesPageOut,
    OverviewOut,
    PoolsOut,
    ServerPageOut,
    ServersPageOut,
)
from director.explain import explain, parse_coordinate
from director.geo import parse_address
from director.schemas import ErrorOut
from director.wire.paths import PathError, clean_path
from director.wire.tokens import bearer_token

console_router = Router(tags=["console"], by_alias=True)
STAFF_ONLY = (
    "The console needs a staff login (/admin/login/?next=/view/), or "
    "DIRECTOR_CONSOLE_PUBLIC=1 for a public read-only console."
)


def may_view(request: HttpRequest) -> bool:
    """Staff, or anyone when the console is public."""
    if settings.DIRECTOR_CONSOLE_PUBLIC:
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def _error(status: int, message: str) -> Status[ErrorOut]:
    return Status(status, ErrorOut(msg=message))


@console_router.get(
    "/overview",
    summary="Health, counts, answers and stat outcomes over the last 15 minutes",
    response={200: OverviewOut, 403: ErrorOut},
)
def overview(request: HttpRequest) -> OverviewOut | Status[ErrorOut]:
    if not may_view(request):
        return _error(403, STAFF_ONLY)
    return data.overview()


@console_router.get(
    "/servers",
    summary="One page of servers, filtered and sorted (every server of the registry)",
    response={200: ServersPageOut, 400: ErrorOut, 403: ErrorOut},
)
def servers(
    request: HttpRequest,
    q: str = "",
    kind: str = "",
    state: str = "",
    sort: str = "kind",
    page: int = 1,
    size: int = 100,
) -> ServersPageOut | Status[ErrorOut]:
    if not may_view(request):
        return _error(403, STAFF_ONLY)
    if kind and kind not in KINDS:
        return _error(400, f"kind must be 'origin' or 'cache', not {kind!r}")
    if state and state not in STATE_FILTERS:
        return _error(400, f"state must be one of {', '.join(STATE_FILTERS)}, not {state!r}")
    if sort.lstrip("-") not in SORTS:
        return _error(400, f"sort must be one of {', '.join(SORTS)} (- first: descending)")
    if page < 1 or not 1 <= size <= 1000:
        return _error(400, "page must be at least 1 and size within [1, 1000]")
    now = time.time()
    chosen = select(
        server_rows(now), text=q, kind=kind, state=state, sort=sort, page=page, size=size
    )
    return ServersPageOut(
        now=data._time(now),
        worker=data.worker(),
        total=chosen.total,
        matched=chosen.matched,
        page=chosen.page,
        pages=chosen.pages,
        sort=sort,
        servers=[ConsoleServerOut.from_row(row) for row in chosen.rows],
    )


@console_router.get(
    "/pools",
    summary="Every server with its state and this process's stat pool (public; statpools)",
    response={200: PoolsOut},
)
def pools(request: HttpRequest) -> PoolsOut:
    now = time.time()
    return PoolsOut(
        now=data._time(now),
        worker=data.worker(),
        servers=[ConsoleServerOut.from_row(row) for row in server_rows(now)],
    )


@console_router.get(
    "/servers/{kind}/{name}",
    summary="One server (origin or cache, by name) with its namespaces, downtimes and last hour",
    response={200: ServerPageOut, 403: ErrorOut, 404: ErrorOut},
)
def server(request: HttpRequest, kind: str, name: str) -> ServerPageOut | Status[ErrorOut]:
    if not may_view(request):
        return _error(403, STAFF_ONLY)
    if kind not in KINDS:
        return _error(404, f"No server kind {kind!r}: the kinds are {' and '.join(KINDS)}")
    found = data.server_page((kind, name))
    if found is None:
        return _error(404, f"No {kind} named {name!r}")
    return found


@console_router.get(
    "/map",
    summary="Every located server with its state colour",
    response={200: MapOut, 403: ErrorOut},
)
def world_map(request: HttpRequest) -> MapOut | Status[ErrorOut]:
    if not may_view(request):
        return _error(403, STAFF_ONLY)
    return data.world_map()


@console_router.get(
    "/namespaces",
    summary="Namespaces with their origins and caches, a page at a time",
    response={200: NamespacesPageOut, 400: ErrorOut, 403: ErrorOut},
)
def namespaces(
    request: HttpRequest, q: str = "", page: int = 1, size: int = 100
) -> NamespacesPageOut | Status[ErrorOut]:
    if not may_view(request):
        return _error(403, STAFF_ONLY)
    if page < 1 or not 1 <= size <= 1000:
        return _error(400, "page must be at least 1 and size within [1, 1000]")
    return data.namespaces(q, page, size)


@console_router.get(
    "/explain",
    summary="Why a client would be sent where (the live decision, with real stats)",
    description="The client's token, if any, goes in the Authorization header (Bearer).",
    response={200: ExplainOut, 400: ErrorOut},
)
def explain_path(
    request: HttpRequest,
    path: str,
    client_ip: str = "",
    coordinate: str = "",
    origin: bool = False,
) -> ExplainOut | Status[ErrorOut]:
    if not path.startswith("/"):
        return _error(400, f"The path must start with '/': {path!r}")
    try:
        cleaned = clean_path(path)
    except PathError as error:
        return _error(400, f"Bad path {path!r}: {error}")
    if client_ip and parse_address(client_ip) is None:
        return _error(400, f"client_ip {client_ip!r} is not an IP address")
    declared = None
    if coordinate:
        try:
            declared = parse_coordinate(coordinate)
        except ValueError as error:
            return _error(400, f"coordinate: {error}")
    token = bearer_token(str(request.META.get("HTTP_AUTHORIZATION", "")))
    explanation = explain(
        cleaned, client_ip=client_ip, coordinate=declared, to_origin=origin, token=token
    )
    return ExplainOut(**dict(explanation), worker=data.worker())
