"""Redirect views: parse the request, call ``routing.decide``, render its result.

Also the root-path shortcut (reference 1.3) and federation discovery (1.12).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from director import presence, registry, routing
from director.headers import ROOT_OPTIONS_ALLOW, redirect_body
from director.metrics import REDIRECTS
from director.paths import PathError, clean_path
from director.responses import PelicanResponse, error_response
from director.selection import parse_coordinate_header

_rng = random.Random()
OBJECT_METHODS = ("GET", "HEAD")


def external_url(request: HttpRequest) -> str:
    """This director's public URL: DIRECTOR_EXTERNAL_URL, or the request's own origin."""
    return settings.DIRECTOR_EXTERNAL_URL or f"{request.scheme}://{request.get_host()}"


def request_id_for(request: HttpRequest) -> str:
    """X-Pelican-JobId when it is a UUID, else a new UUIDv4."""
    job_id = request.META.get("HTTP_X_PELICAN_JOBID", "")
    if job_id:
        try:
            return str(uuid.UUID(job_id))
        except ValueError:
            pass
    return str(uuid.uuid4())


def _query_pairs(request: HttpRequest) -> tuple[tuple[str, str], ...]:
    return tuple(parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True))


def build_redirect_request(
    request: HttpRequest,
    path: str,
    *,
    to_origin: bool,
    request_id: str,
    now: float,
    deadline: float,
) -> routing.RedirectRequest:
    meta = request.META
    return routing.RedirectRequest(
        method=request.method or "GET",
        path=path,
        to_origin=to_origin,
        request_id=request_id,
        now=now,
        deadline=deadline,
        query=_query_pairs(request),
        authorization=meta.get("HTTP_AUTHORIZATION", ""),
        timeout_header=meta.get("HTTP_X_PELICAN_TIMEOUT", ""),
        depth=meta.get("HTTP_DEPTH"),
        user_agent=meta.get("HTTP_USER_AGENT", ""),
        client=parse_coordinate_header(meta.get("HTTP_X_PELICAN_COORDINATE", "")),
    )


def redirect(request: HttpRequest, raw_path: str | None, *, to_origin: bool) -> HttpResponse:
    request_id = request_id_for(request)
    try:
        path = clean_path(raw_path or "/")
    except PathError as error:
        return error_response(400, f"{error}. Request ID: {request_id}")
    snapshot = registry.current()
    now = time.time()
    redirect_request = build_redirect_request(
        request,
        path,
        to_origin=to_origin,
        request_id=request_id,
        now=now,
        deadline=time.monotonic() + snapshot.settings.redirect_timeout,
    )
    result = routing.decide(
        redirect_request,
        snapshot,
        availability=presence.availability_for(snapshot),
        startup_grace_active=registry.startup_grace_active(snapshot, now),
        external_url=external_url(request),
        rng=_rng,
    )
    response = render_result(request, redirect_request, result)
    if not result.is_error:
        REDIRECTS.labels(result.destination, str(response.status_code)).inc()
    return response


def render_result(
    request: HttpRequest, redirect_request: routing.RedirectRequest, result: routing.RedirectResult
) -> HttpResponse:
    if result.is_error:
        return error_response(
            result.status,
            f"{result.message} Request ID: {redirect_request.request_id}",
            header_lines=result.headers,
        )
    if redirect_request.query_value("redirect").lower() == "false":
        return PelicanResponse(status=200, header_lines=result.headers)
    method = request.method
    if method == "GET":
        return PelicanResponse(
            redirect_body(result.location),
            status=307,
            header_lines=[("Location", result.location), *result.headers],
            content_type="text/html; charset=utf-8",
        )
    response = PelicanResponse(
        status=307, header_lines=[("Location", result.location), *result.headers]
    )
    if method == "HEAD":
        response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response


@csrf_exempt
@xframe_options_exempt
def object_redirect(request: HttpRequest, path: str | None = None) -> HttpResponse:
    """``GET|HEAD /api/v1.0/director/object/<path>``: redirect to caches."""
    if request.method not in OBJECT_METHODS:
        return error_response(
            405,
            f"The object endpoint takes GET and HEAD, not {request.method}; use "
            f"/api/v1.0/director/origin/ for other methods. Request ID: {request_id_for(request)}",
            header_lines=[("Allow", "GET, HEAD, OPTIONS")],
        )
    return redirect(request, path, to_origin=False)


@csrf_exempt
@xframe_options_exempt
def origin_redirect(request: HttpRequest, path: str | None = None) -> HttpResponse:
    """``GET|HEAD|PUT|DELETE|PROPFIND|COPY /api/v1.0/director/origin/<path>``."""
    if request.method not in routing.ORIGIN_METHODS:
        return error_response(
            405,
            f"The origin endpoint does not take {request.method}. "
            f"Request ID: {request_id_for(request)}",
            header_lines=[("Allow", "GET, HEAD, PUT, DELETE, PROPFIND, COPY, OPTIONS")],
        )
    return redirect(request, path, to_origin=True)


def _host_forces(request: HttpRequest) -> str:
    host = request.META.get("HTTP_HOST") or request.META.get("HTTP_X_FORWARDED_HOST", "")
    if host and host in settings.DIRECTOR_ORIGIN_RESPONSE_HOSTNAMES:
        return "origin"
    if host and host in settings.DIRECTOR_CACHE_RESPONSE_HOSTNAMES:
        return "cache"
    return ""


@csrf_exempt
@xframe_options_exempt
def root_shortcut(request: HttpRequest, path: str = "") -> HttpResponse:
    """Requests that match no route (reference 1.3), e.g. ``GET /foo/bar.txt``."""
    full_path = "/" + path
    method = request.method
    if method == "OPTIONS":
        return PelicanResponse(status=200, header_lines=[("Allow", ROOT_OPTIONS_ALLOW)])
    if full_path.startswith("/.well-known/") or (
        full_path.startswith("/api/v1.0/") and not full_path.startswith("/api/v1.0/director/")
    ):
        return error_response(404, f"No such endpoint: {full_path}", cors=False)
    if method in ("PUT", "DELETE", "COPY"):
        return redirect(request, full_path, to_origin=True)
    forced = _host_forces(request)
    if forced:
        if forced == "cache" and method not in OBJECT_METHODS:
            return error_response(
                405,
                f"Cache redirects take GET and HEAD, not {method}. "
                f"Request ID: {request_id_for(request)}",
            )
        return redirect(request, full_path, to_origin=forced == "origin")
    if method == "PROPFIND" or "directread" in dict(_query_pairs(request)):
        return redirect(request, full_path, to_origin=True)
    if method in OBJECT_METHODS:
        return redirect(
            request, full_path, to_origin=settings.DIRECTOR_DEFAULT_RESPONSE == "origin"
        )
    return error_response(404, f"No route for {method} {full_path}", cors=False)


def pelican_configuration(request: HttpRequest) -> HttpResponse:
    """``GET /.well-known/pelican-configuration``: federation discovery (reference 1.12)."""
    base = external_url(request)
    document = {
        "discovery_endpoint": base,
        "director_endpoint": base,
        "namespace_registration_endpoint": base,
        "jwks_uri": f"{base}/.well-known/issuer.jwks",
        "broker_endpoint": base,
    }
    response = HttpResponse(
        json.dumps(document, indent=2), content_type="application/json", status=200
    )
    response["Content-Disposition"] = "attachment; filename=pelican-configuration.json"
    return response


def metrics(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: Prometheus text format."""
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def issuer_jwks(request: HttpRequest) -> HttpResponse:
    """This director signs no tokens: its key set is empty."""
    return HttpResponse(b'{"keys":[]}', content_type="application/json")
