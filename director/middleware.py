"""The front door: the first thing every request meets.

1. Sheds load instead of queueing it: past ``max_inflight_requests`` requests in this
   process, the answer is 429 with ``Retry-After: 1`` at once (Pelican clients retry on
   429). Health and metrics are exempt, so they still answer under overload.
2. Answers ``OPTIONS /api/v1.0/director/*`` with CORS headers, as Pelican does, and
   sends redirect requests straight to their view (the admin's middleware is not theirs).
3. Adds ``Server: pelican/<version>`` (clients tell a director from a proxy by it) and a
   Content-Length, drops the body of a HEAD answer, and records the duration by route.

What it knows of a path (its label, whether it needs the registry database, so is served
within the database's budget, how it is handed on) is the path's row in
``director_project.routes``, the table the urlconf is built from.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from director import registry, views
from director.ops.metrics import INFLIGHT
from director.responses import SERVER_HEADER, PelicanResponse, error_response
from director.serving import database
from director.serving.traffic import traffic
from director_project.routes import DIRECTOR_API, Route, route_for


def needs_database(path: str) -> bool:
    """Whether ``path`` reads or writes the registry database (its route says)."""
    return route_for(path).database


def database_unavailable(request: HttpRequest, message: str) -> HttpResponse:
    """503 with Retry-After: the registry database cannot serve this request now."""
    return error_response(
        503,
        f"{message} Request ID: {views.request_id_for(request)}",
        header_lines=[("Retry-After", database.RETRY_AFTER)],
        cors=False,
    )


class FrontDoorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        database.budget.limit = settings.DIRECTOR_DB_MAX_INFLIGHT

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        path = request.path_info
        route = route_for(path)
        if route.unlimited:
            response = self.get_response(request)
        elif route.database:
            response = database.serve_with_deadline(
                lambda: self._serve(request, path, route),
                settings.DIRECTOR_DB_REQUEST_TIMEOUT,
                lambda message: database_unavailable(request, message),
            )
        else:
            limit = registry.current().settings.max_inflight_requests
            if INFLIGHT.count >= limit:
                response = error_response(
                    429,
                    f"The director is serving its maximum of {limit} requests; retry shortly.",
                    header_lines=[("Retry-After", "1")],
                )
            else:
                INFLIGHT.count += 1
                try:
                    response = self._serve(request, path, route)
                finally:
                    INFLIGHT.count -= 1
        if "Server" not in response:
            response["Server"] = SERVER_HEADER
        if not response.streaming and "Content-Length" not in response:
            response["Content-Length"] = str(len(response.content))
        if request.method == "HEAD" and not response.streaming:
            response.content = b""  # headers (Content-Length included) as for GET, no body
        traffic.answered(
            route.label,
            response.status_code,
            time.perf_counter() - started,
            getattr(response, "destination", None),
            getattr(response, "first_server", None),
        )
        return response

    def _serve(self, request: HttpRequest, path: str, route: Route) -> HttpResponse:
        if request.method == "OPTIONS" and path.startswith(DIRECTOR_API):
            return PelicanResponse(status=200)
        # Redirects need none of the admin's middleware (sessions, CSRF, auth, messages)
        # nor the URL resolver: they go straight to their view, as the urlconf would.
        if route.direct:
            rest = path[len(route.path) :]
            if not rest:
                return route.view(request, None)  # type: ignore[no-any-return]
            if rest[0] == "/":
                return route.view(request, rest)  # type: ignore[no-any-return]
        if route.shortcut:
            return views.root_shortcut(request, path[1:])
        return self.get_response(request)
