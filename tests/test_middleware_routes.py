"""The front door reads each path's row of ``director_project.routes``: the longest
prefix (or whole path) that matches gives its label, its database budget, its limits and
how it is handed on; the urlconf is the same rows."""

from __future__ import annotations

import pytest
from django.urls import resolve

from director import views
from director_project.routes import ROUTES, route_for

# path -> (label, needs the database, unlimited, handed on as)
PATHS = {
    "/api/v1.0/director/object/test/f": ("object", False, False, "direct"),
    "/api/v1.0/director/object": ("object", False, False, "direct"),
    "/api/v1.0/director/objects": ("object", False, False, "resolver"),
    "/api/v1.0/director/origin/test/f": ("origin", False, False, "direct"),
    "/api/v1.0/director/healthTest/x": ("api", False, False, "resolver"),
    "/api/v1.0/director/registerOrigin": ("api", True, False, "resolver"),
    "/api/v1.0/director_ui/servers/a": ("api", True, False, "resolver"),
    "/api/v1.0/director_ui/stat/pools": ("api", False, False, "resolver"),
    "/api/v1.0/registry/server/x": ("api", True, False, "resolver"),
    "/api/v1.0/console/overview": ("console", True, False, "resolver"),
    "/api/v1.0/health": ("health", False, True, "resolver"),
    "/api/v1.0/health/": ("api", False, False, "resolver"),
    "/metrics": ("metrics", False, True, "resolver"),
    "/metrics/": ("shortcut", False, False, "shortcut"),
    "/.well-known/pelican-configuration": ("api", False, False, "resolver"),
    "/.well-known/issuer.jwks": ("api", True, False, "resolver"),
    "/.well-known/other": ("api", False, False, "resolver"),
    "/admin/director/server/": ("admin", True, False, "resolver"),
    "/admin": ("shortcut", True, False, "shortcut"),
    "/static/admin/css/base.css": ("admin", False, False, "resolver"),
    "/view/": ("console", True, False, "resolver"),
    "/view": ("console", True, False, "resolver"),
    "/viewer": ("shortcut", False, False, "shortcut"),
    "/foo/bar.txt": ("shortcut", False, False, "shortcut"),
}


@pytest.mark.parametrize(("path", "expected"), PATHS.items())
def test_each_path_has_its_rows_properties(path, expected):
    route = route_for(path)
    handed_on = "direct" if route.direct and path[len(route.path) :][:1] in ("", "/") else None
    handed_on = handed_on or ("shortcut" if route.shortcut else "resolver")
    assert (route.label, route.database, route.unlimited, handed_on) == expected


def test_the_urlconf_is_the_rows_with_a_view_and_ends_with_the_root_shortcut():
    assert resolve("/foo/bar.txt").func is views.root_shortcut
    assert resolve("/api/v1.0/director/object/x").kwargs == {"path": "/x"}
    assert resolve("/api/v1.0/director/origin").func is views.origin_redirect
    assert ROUTES[-1].view is views.root_shortcut
