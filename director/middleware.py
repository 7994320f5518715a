"""The front door: the first thing every request meets.

Adds ``Server: pelican/<version>`` (clients use it to tell a director from a proxy) and
answers ``OPTIONS /api/v1.0/director/*`` with CORS headers, as Pelican does.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from director.responses import SERVER_HEADER, PelicanResponse

DIRECTOR_PREFIX = "/api/v1.0/director/"


class FrontDoorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "OPTIONS" and request.path_info.startswith(DIRECTOR_PREFIX):
            return PelicanResponse(status=200)
        response = self.get_response(request)
        if "Server" not in response:
            response["Server"] = SERVER_HEADER
        if not response.streaming and "Content-Length" not in response:
            response["Content-Length"] = str(len(response.content))
        return response
