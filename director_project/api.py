"""The one NinjaAPI of the project, mounted at /api/.

Every error leaves as ``{"status":"error","msg":...}``: a ``Refusal`` raised by a service
or a handler is mapped here, once; ninja's own 422 for a bad body becomes a 400 whose
message names the offending field. Bodies are written as Pelican
writes them, compact UTF-8 JSON (``PelicanJSONRenderer``).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError
from ninja.renderers import BaseRenderer

from director.api import director_router, director_v2_router, health_router, ui_router
from director.console.api import console_router
from director.federation.api import issuer_router, registry_downtime_router, registry_router
from director.responses import error_response, refusal_response
from director.wire.documents import json_bytes
from director.wire.errors import Refusal


class PelicanJSONRenderer(BaseRenderer):
    """``json_bytes``: no spaces, non-ASCII as is, as Go's encoding/json writes it.

    ninja's ``JSONRenderer`` writes ``{"a": 1}`` and escapes non-ASCII. The content
    type is ``application/json; charset=utf-8`` (``JSON_CONTENT_TYPE``).
    """

    media_type = "application/json"
    charset = "utf-8"

    def render(self, request: HttpRequest, data: object, *, response_status: int) -> bytes:
        return json_bytes(data)


api = NinjaAPI(
    title="director",
    version="1.0",
    description="Pelican-compatible director: registration, namespaces, servers, health.",
    urls_namespace="api",
    renderer=PelicanJSONRenderer(),
)
api.add_router("/v1.0/director", director_router)
api.add_router("/v1.0/director", issuer_router)
api.add_router("/v1.0/registry", registry_router)
api.add_router("/v1.0", registry_downtime_router)
api.add_router("/v2.0/director", director_v2_router)
api.add_router("/v1.0/director_ui", ui_router)
api.add_router("/v1.0", health_router)
api.add_router("/v1.0/console", console_router)


def _field_name(location: Any) -> str:
    """('body', 'ad', 'namespaces', 0, 'path') -> 'namespaces.0.path': the wire name.

    The first part is where the value came from; for a body, the second is the name of
    the handler's parameter.
    """
    parts = [str(part) for part in location]
    if parts[:1] == ["body"]:
        parts = parts[2:]
    elif parts[:1] in (["query"], ["path"]):
        parts = parts[1:]
    return ".".join(parts) or "body"


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    described = []
    for error in errors[:5]:
        message = str(error.get("msg", "invalid"))
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        described.append(f"field '{_field_name(error.get('loc', ()))}': {message}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "Invalid request: " + "; ".join(described) + more


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return error_response(400, describe_validation_errors(list(exc.errors)), cors=False)


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(exc.status_code, str(exc.message), cors=False)


@api.exception_handler(Refusal)
def on_refusal(request: HttpRequest, exc: Refusal) -> HttpResponse:
    return refusal_response(exc)
