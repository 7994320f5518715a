"""The console's HTML pages. Each is a frame; ``console.js`` fills it from the page's
JSON (``director.console.api``) and refreshes it every ``DIRECTOR_CONSOLE_REFRESH``
seconds, so one renderer draws both the first view and every refresh."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from director.console.api import may_view
from director.console.data import refresh_seconds, worker
from director.console.worldmap import HEIGHT, WIDTH, land_path
from director.locate import client_ip

PAGES = (
    ("overview", "Overview", "/view/"),
    ("servers", "Servers", "/view/servers/"),
    ("map", "Map", "/view/map/"),
    ("namespaces", "Namespaces", "/view/namespaces/"),
    ("why", "Why", "/view/why/"),
)


def _page(request: HttpRequest, page: str, **context: object) -> HttpResponse:
    if not may_view(request):
        return redirect_to_login(request.get_full_path(), "/admin/login/")
    return render(
        request,
        f"console/{page}.html",
        {
            "page": page,
            "pages": PAGES,
            "director_name": settings.DIRECTOR_NAME,
            "refresh": refresh_seconds(),
            "worker": worker(),
            "public": settings.DIRECTOR_CONSOLE_PUBLIC,
            **context,
        },
    )


def _view(page: str) -> Callable[[HttpRequest], HttpResponse]:
    @require_safe
    def view(request: HttpRequest) -> HttpResponse:
        return _page(request, page)

    view.__name__ = f"console_{page}"
    return view


overview = _view("overview")
servers = _view("servers")
namespaces = _view("namespaces")


@require_safe
def why(request: HttpRequest) -> HttpResponse:
    """The form starts with the asker's own address (as a redirect would see it)."""
    return _page(request, "why", client_address=client_ip(request))


@require_safe
def world_map(request: HttpRequest) -> HttpResponse:
    return _page(request, "map", land=land_path(), width=WIDTH, height=HEIGHT)


@require_safe
def server(request: HttpRequest, name: str) -> HttpResponse:
    return _page(request, "server", name=name)
