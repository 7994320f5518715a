"""The director's routes, one row each: what the urlconf mounts and what the front door
(``director.middleware``) knows of a path before any view runs.

A row gives a path (a prefix, or the whole path), its view, its label in the metrics and
the console's traffic (``director.serving.traffic.RouteLabel``), whether it reads or writes the
registry database (then it is served within the database's budget and deadline:
``director.serving.database``), and how the front door hands it on. Health and metrics
are never shed nor limited in flight: that fact is ``director.serving.shedding``'s
``UNSHED_PATHS`` (the WSGI server reads it), the rows only read it.

1. The urlconf (``director_project.urls``) is the rows with a view, in table order; the
   last, ``/``, is Pelican's root-path shortcut: any GET/HEAD no other route takes is a
   cache redirect (``GET /foo/bar.txt`` = the object endpoint).
2. The front door takes the row of the longest prefix (or whole path) that matches.
   Rows without a view are paths a mount above them serves (ninja's routers under
   ``/api/``: ``director_project.api``) that differ from it in label or database.
3. ``direct`` rows (the redirects) go straight to their view, without the resolver nor
   the admin's middleware; ``shortcut`` rows to the root shortcut; the rest through
   Django's stack.

It lives here, beside the urlconf, because it mounts the project's NinjaAPI and the
admin site, and ``director/`` has no room for another flat module (tests/test_architecture
.py); nothing that this module imports imports ``director.middleware``, so no cycle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.generic import RedirectView

from director import views
from director.federation.views import issuer_jwks, openid_configuration
from director.serving.shedding import HEALTH_PATH, METRICS_PATH, UNSHED_PATHS
from director.serving.traffic import RouteLabel
from director_project.api import api

# Pelican's API; the front door answers OPTIONS anywhere under it (CORS).
DIRECTOR_API = "/api/v1.0/director/"


class Match(Enum):
    """How a row's path matches, for the front door and in the urlconf."""

    EXACT = "exact"  # this path only: ``path(p, view)``
    PREFIX = "prefix"  # every path that starts with it: ``path(p, view or include())``
    SUBPATH = "subpath"  # this path, or it + "/<path>": the path is the view's argument
    REST = "rest"  # this prefix + anything: the rest is the view's ``path`` argument


@dataclass(frozen=True)
class Route:
    path: str
    label: RouteLabel
    match: Match = Match.PREFIX
    view: Any = None  # a view, or include()'s (urlconf, app, namespace); None: see 2.
    database: bool = False
    direct: bool = False
    shortcut: bool = False
    view_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def unlimited(self) -> bool:
        """Never shed nor limited by max_inflight_requests (health and metrics)."""
        return self.path in UNSHED_PATHS

    def matches(self, request_path: str) -> bool:
        if self.match is Match.EXACT:
            return request_path == self.path
        return request_path.startswith(self.path)

    def urlpattern(self) -> URLPattern | URLResolver:
        relative = self.path[1:]
        if self.match is Match.SUBPATH:
            pattern = re_path(
                rf"^{re.escape(relative)}(?P<path>/.*)?$", self.view, self.view_kwargs
            )
        elif self.match is Match.REST:
            pattern = re_path(rf"^{re.escape(relative)}(?P<path>.*)$", self.view, self.view_kwargs)
        else:
            pattern = path(relative, self.view, self.view_kwargs)
        return cast("URLPattern | URLResolver", pattern)


ROOT = Route("/", RouteLabel.SHORTCUT, Match.REST, views.root_shortcut, shortcut=True)
ROUTES = (
    Route(
        DIRECTOR_API + "object",
        RouteLabel.OBJECT,
        Match.SUBPATH,
        views.object_redirect,
        direct=True,
    ),
    Route(
        DIRECTOR_API + "origin",
        RouteLabel.ORIGIN,
        Match.SUBPATH,
        views.origin_redirect,
        direct=True,
    ),
    Route(DIRECTOR_API + "healthTest", RouteLabel.API, Match.SUBPATH, views.health_test_file),
    Route("/api/", RouteLabel.API, view=api.urls),
    Route(DIRECTOR_API + "registerOrigin", RouteLabel.API, database=True),
    Route(DIRECTOR_API + "registerCache", RouteLabel.API, database=True),
    Route("/api/v1.0/director_ui/servers", RouteLabel.API, database=True),
    Route("/api/v1.0/director_ui/namespaces", RouteLabel.API, database=True),
    Route("/api/v1.0/director_ui/downtimes", RouteLabel.API, database=True),
    # the Pelican registry and the federation issuer's keys (director.federation)
    Route("/api/v1.0/registry", RouteLabel.API, database=True),
    Route("/api/v1.0/downtime", RouteLabel.API, database=True),
    Route(DIRECTOR_API + "getFedToken", RouteLabel.API, database=True),
    Route(DIRECTOR_API + "discoverServers", RouteLabel.API, database=True),
    Route("/api/v1.0/console/", RouteLabel.CONSOLE, database=True),
    Route(HEALTH_PATH, RouteLabel.HEALTH, Match.EXACT),
    Route(METRICS_PATH, RouteLabel.METRICS, Match.EXACT, views.metrics),
    Route("/.well-known/", RouteLabel.API),  # the root shortcut's 404 for the others
    Route(
        "/.well-known/pelican-configuration",
        RouteLabel.API,
        Match.EXACT,
        views.pelican_configuration,
    ),
    # A prefix for the front door (any path under it within the database budget), a
    # whole path for the urlconf (path() of a view).
    Route("/.well-known/issuer.jwks", RouteLabel.API, view=issuer_jwks, database=True),
    Route("/.well-known/openid-configuration", RouteLabel.API, Match.EXACT, openid_configuration),
    Route("/admin/", RouteLabel.ADMIN, view=admin.site.urls, database=True),
    # "/admin" is not the admin's: the root shortcut answers it, within the database budget.
    Route("/admin", RouteLabel.SHORTCUT, Match.EXACT, database=True, shortcut=True),
    Route("/view/", RouteLabel.CONSOLE, view=include("director.console.urls"), database=True),
    Route(
        "/view", RouteLabel.CONSOLE, Match.EXACT, RedirectView.as_view(url="/view/"), database=True
    ),
    # Admin assets straight from the app directories (no collectstatic step to forget).
    Route("/static/", RouteLabel.ADMIN, Match.REST, serve_static, view_kwargs={"insecure": True}),
    ROOT,
)
# Longest first: the first that matches is the most specific.
_BY_LENGTH = sorted(ROUTES, key=lambda route: len(route.path), reverse=True)


def route_for(request_path: str) -> Route:
    """The row of the longest path that matches (``ROOT`` at worst)."""
    for route in _BY_LENGTH:
        if route.matches(request_path):
            return route
    return ROOT


def urlpatterns() -> list[URLPattern | URLResolver]:
    return [route.urlpattern() for route in ROUTES if route.view is not None]
