"""The front door: the first thing every request meets.

1. Sheds load instead of queueing it: past ``max_inflight_requests`` requests in this
   process, the answer is 429 with ``Retry-After: 1`` at once (Pelican clients retry on
   429). Health and metrics are exempt, so they still answer under overload.
2. Answers ``OPTIONS /api/v1.0/director/*`` with CORS headers, as Pelican does, and
   sends redirect requests straight to their view (the admin's middleware is not theirs).
3. Adds ``Server: pelican/<version>`` (clients tell a director from a proxy by it) and a
   Content-Length, drops the body of a HEAD answer, and records the duration by route.
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
from director.serving.shedding import METRICS_PATH, UNSHED_PATHS
from director.serving.traffic import traffic

DIRECTOR_PREFIX = "/api/v1.0/director/"
CONSOLE_PREFIX = "/view/"
UNLIMITED_PATHS = UNSHED_PATHS
REDIRECT_ROUTES = (
    ("/api/v1.0/director/object", views.object_redirect),
    ("/api/v1.0/director/origin", views.origin_redirect),
)
# Paths that belong to the urlconf's own routes; every other path is a root-path redirect.
NON_SHORTCUT_PREFIXES = ("/api/", "/admin/", "/static/", "/.well-known/", CONSOLE_PREFIX)
# The routes that read or write the registry database (the rest read the snapshot):
# served within the database's budget and deadline (director.serving.database).
DATABASE_PREFIXES = (
    "/admin/",
    "/api/v1.0/director/registerOrigin",
    "/api/v1.0/director/registerCache",
    "/api/v1.0/director_ui/servers",
    "/api/v1.0/director_ui/namespaces",
    "/api/v1.0/director_ui/downtimes",
    # the Pelican registry and the federation issuer's keys (director.federation)
    "/api/v1.0/registry",
    "/api/v1.0/director/getFedToken",
    "/api/v1.0/director/discoverServers",
    "/.well-known/issuer.jwks",
    "/api/v1.0/console/",
    CONSOLE_PREFIX,
)


def needs_database(path: str) -> bool:
    return path.startswith(DATABASE_PREFIXES) or path in ("/admin", "/view")


def route_label(path: str) -> str:
    if path.startswith("/api/v1.0/director/object"):
        return "object"
    if path.startswith("/api/v1.0/director/origin"):
        return "origin"
    if path.startswith("/api/v1.0/console/"):
        return "console"
    if path.startswith(("/api/", "/.well-known/")):
        return "api" if path not in UNLIMITED_PATHS else "health"
    if path == METRICS_PATH:
        return "metrics"
    if path.startswith(("/admin/", "/static/")):
        return "admin"
    if path.startswith(CONSOLE_PREFIX) or path == "/view":
        return "console"
    return "shortcut"


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
        if path in UNLIMITED_PATHS:
            response = self.get_response(request)
        elif needs_database(path):
            response = database.serve_with_deadline(
                lambda: self._serve(request, path),
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
                    response = self._serve(request, path)
                finally:
                    INFLIGHT.count -= 1
        if "Server" not in response:
            response["Server"] = SERVER_HEADER
        if not response.streaming and "Content-Length" not in response:
            response["Content-Length"] = str(len(response.content))
        if request.method == "HEAD" and not response.streaming:
            response.content = b""  # headers (Content-Length included) as for GET, no body
        traffic.answered(
            route_label(path),
            response.status_code,
            time.perf_counter() - started,
            getattr(response, "destination", ""),
            getattr(response, "first_server", None),
        )
        return response

    def _serve(self, request: HttpRequest, path: str) -> HttpResponse:
        if request.method == "OPTIONS" and path.startswith(DIRECTOR_PREFIX):
            return PelicanResponse(status=200)
        # Redirects need none of the admin's middleware (sessions, CSRF, auth, messages)
        # nor the URL resolver: they go straight to their view. Same routes as the urlconf.
        for prefix, view in REDIRECT_ROUTES:
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                if not rest:
                    return view(request, None)
                if rest[0] == "/":
                    return view(request, rest)
        if path not in (METRICS_PATH, "/view") and not path.startswith(NON_SHORTCUT_PREFIXES):
            return views.root_shortcut(request, path[1:])
        return self.get_response(request)
