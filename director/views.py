"""Redirect views: parse the request, ask ``redirects.decide``, render its result.

Also the root-path shortcut (reference 1.3), federation discovery (1.12), the health-test
files (7.3), /metrics and the JSON 500 handler.
"""

from __future__ import annotations

import sys
import uuid
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from director import redirects, registry, routing
from director.federation import external, issuer
from director.locate import client_coordinate, client_ip, external_url, first_forwarded
from director.ops import directors
from director.responses import JSON_CONTENT_TYPE, PelicanResponse, error_response
from director.serving import database
from director.serving.shedding import REQUEST_WAIT_ENVIRON
from director.wire import healthfiles
from director.wire.documents import discovery_bytes, discovery_document, json_bytes
from director.wire.headers import ROOT_OPTIONS_ALLOW, monitoring_redirect_headers, redirect_body
from director.wire.healthfiles import MONITORING_PREFIX
from director.wire.paths import PathError, clean_path
from director.wire.types import ORIGIN_METHODS, READ_METHODS, ServerKind

HEALTH_TEST_METHODS = (*READ_METHODS, "PROPFIND")


def allow_line(*methods: str) -> tuple[str, str]:
    """The ``Allow`` header line of a 405, as Pelican writes it: the methods in order."""
    return ("Allow", ", ".join(methods))


# The front door answers OPTIONS under /api/v1.0/director/ (CORS), so the redirect
# endpoints list it; Pelican's health-test endpoint does not.
OBJECT_ALLOW = allow_line(*READ_METHODS, "OPTIONS")
ORIGIN_ALLOW = allow_line(*ORIGIN_METHODS, "OPTIONS")
HEALTH_TEST_ALLOW = allow_line(*HEALTH_TEST_METHODS)


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


def redirect(request: HttpRequest, raw_path: str | None, *, to_origin: bool) -> HttpResponse:
    """Parse, ask ``redirects.decide``, render: the one path of every redirect."""
    request_id = request_id_for(request)
    try:
        path = clean_path(raw_path or "/")
    except PathError as error:
        return error_response(400, f"{error}. Request ID: {request_id}")
    if to_origin and path.startswith(MONITORING_PREFIX):
        return monitoring_redirect(request, path, request_id)
    snapshot = registry.current()
    ip = client_ip(request)
    meta = request.META
    redirect_request = redirects.new_request(
        snapshot,
        path,
        method=request.method or "GET",
        to_origin=to_origin,
        request_id=request_id,
        query=_query_pairs(request),
        authorization=meta.get("HTTP_AUTHORIZATION", ""),
        timeout_header=meta.get("HTTP_X_PELICAN_TIMEOUT", ""),
        depth=meta.get("HTTP_DEPTH"),
        user_agent=meta.get("HTTP_USER_AGENT", ""),
        client=client_coordinate(request, snapshot, ip),
        waited=meta.get(REQUEST_WAIT_ENVIRON, 0.0),
    )
    decision = redirects.decide(
        redirect_request, snapshot, external_url=lambda: external_url(request)
    )
    result = decision.result
    if meta.get("HTTP_X_PELICAN_DEBUG", "").lower() == "true" and not result.is_error:
        response: PelicanResponse = PelicanResponse(
            json_bytes(decision.debug_document(snapshot, ip)),
            status=307,
            header_lines=[("Location", result.location), *result.headers],
            content_type=JSON_CONTENT_TYPE,
        )
    else:
        response = render_result(request, redirect_request, result)
    # For the front door's count (director.serving.traffic): one attribute write each.
    response.destination = result.destination or (
        ServerKind.ORIGIN if to_origin else ServerKind.CACHE
    )
    if result.servers:
        response.first_server = result.servers[0].key
    return response


def monitoring_redirect(request: HttpRequest, path: str, request_id: str) -> HttpResponse:
    """Paths under /pelican/monitoring/ go to this director's own health-test files
    (reference 1.5): that is how a cache fetches its director-test object."""
    location, lines = monitoring_redirect_headers(
        f"{external_url(request)}/api/v1.0/director/healthTest",
        path,
        _query_pairs(request),
        request.META.get("HTTP_AUTHORIZATION", ""),
        request.META.get("HTTP_X_PELICAN_TIMEOUT", ""),
        request_id,
    )
    body = redirect_body(location) if request.method == "GET" else b""
    return PelicanResponse(
        body, status=307, header_lines=lines, content_type="text/html; charset=utf-8"
    )


def render_result(
    request: HttpRequest, redirect_request: routing.RedirectRequest, result: routing.RedirectResult
) -> PelicanResponse:
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
    if request.method not in READ_METHODS:
        return error_response(
            405,
            f"The object endpoint takes GET and HEAD, not {request.method}; use "
            f"/api/v1.0/director/origin/ for other methods. Request ID: {request_id_for(request)}",
            header_lines=[OBJECT_ALLOW],
        )
    return redirect(request, path, to_origin=False)


@csrf_exempt
@xframe_options_exempt
def origin_redirect(request: HttpRequest, path: str | None = None) -> HttpResponse:
    """``GET|HEAD|PUT|DELETE|PROPFIND|COPY /api/v1.0/director/origin/<path>``."""
    if request.method not in ORIGIN_METHODS:
        return error_response(
            405,
            f"The origin endpoint does not take {request.method}. "
            f"Request ID: {request_id_for(request)}",
            header_lines=[ORIGIN_ALLOW],
        )
    return redirect(request, path, to_origin=True)


def _host_forces(request: HttpRequest) -> ServerKind | None:
    """Virtual-host routing (reference 1.3 rule 5): X-Forwarded-Host when a request has
    it, from any client, as Pelican (whose Go server takes ``Host`` out of the headers it
    reads): behind a proxy ``Host`` is the proxy's, and the choice is one a client can
    make anyway by asking the origin or object endpoint; else ``Host``."""
    host = first_forwarded(request, "HTTP_X_FORWARDED_HOST") or request.META.get("HTTP_HOST", "")
    if host and host in settings.DIRECTOR_ORIGIN_RESPONSE_HOSTNAMES:
        return ServerKind.ORIGIN
    if host and host in settings.DIRECTOR_CACHE_RESPONSE_HOSTNAMES:
        return ServerKind.CACHE
    return None


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
    if forced is not None:
        if forced is ServerKind.CACHE and method not in READ_METHODS:
            return error_response(
                405,
                f"Cache redirects take GET and HEAD, not {method}. "
                f"Request ID: {request_id_for(request)}",
            )
        return redirect(request, full_path, to_origin=forced is ServerKind.ORIGIN)
    if method == "PROPFIND" or "directread" in dict(_query_pairs(request)):
        return redirect(request, full_path, to_origin=True)
    if method in READ_METHODS:
        return redirect(
            request, full_path, to_origin=settings.DIRECTOR_DEFAULT_RESPONSE == ServerKind.ORIGIN
        )
    return error_response(404, f"No route for {method} {full_path}", cors=False)


def pelican_configuration(request: HttpRequest) -> HttpResponse:
    """``GET /.well-known/pelican-configuration``: federation discovery (reference 1.12)."""
    base = external_url(request)
    itself = directors.this_director(base, settings.DIRECTOR_AD_TTL)
    endpoints = [info.url for info in directors.live_directors(itself)]
    document = discovery_document(base, endpoints)
    # The federation's identity: its discovery URL (the iss of the tokens minted here)
    # and the key set it publishes, when its discovery lives elsewhere.
    if issuer.discovery_url():
        document["discovery_endpoint"] = issuer.discovery_url()
    document["jwks_uri"] = issuer.jwks_url(base)
    if external.configured():
        # Servers register at the federation's registry (issue 19); omitted while its URL
        # is not known yet (the discovery document it comes from has not answered).
        client = external.registry_client()
        if client is None:
            del document["namespace_registration_endpoint"]
        else:
            document["namespace_registration_endpoint"] = client.base_url
    response = HttpResponse(
        discovery_bytes(document),
        content_type="application/json",
        status=200,
    )
    response["Content-Disposition"] = "attachment; filename=pelican-configuration.json"
    return response


def metrics(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: Prometheus text format."""
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def admin_locked_out(
    request: HttpRequest, response: HttpResponse | None = None, credentials: object = None
) -> HttpResponse:
    """django-axes' answer to a login from a locked-out address or user name."""
    seconds = int(settings.DIRECTOR_ADMIN_LOCKOUT_SECONDS)
    return error_response(
        429,
        f"Too many failed logins from this address or for this user name; logins are "
        f"refused for {seconds} s after the last failure. Request ID: {request_id_for(request)}",
        header_lines=[("Retry-After", str(seconds))],
        cors=False,
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 handler (a Host not in DJANGO_ALLOWED_HOSTS, a request Django refuses
    as suspicious): the JSON error shape, never an HTML page."""
    if isinstance(exception, DisallowedHost):
        message = "The Host header names a host this director does not serve."
    else:
        message = "Bad request."
    return error_response(400, f"{message} Request ID: {request_id_for(request)}", cors=False)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 handler: the director's JSON error shape, never an HTML page. A
    request that failed because the registry database did (``note_request_exception``)
    gets 503 with Retry-After instead: it may well succeed shortly."""
    failure = getattr(request, "database_error", None)
    if failure is not None:
        return error_response(
            503,
            f"The registry database is unavailable ({failure}); retry shortly. "
            f"Request ID: {request_id_for(request)}",
            header_lines=[("Retry-After", database.RETRY_AFTER)],
            cors=False,
        )
    return error_response(500, f"Internal error. Request ID: {request_id_for(request)}", cors=False)


def note_request_exception(
    sender: object, request: HttpRequest | None = None, **kwargs: object
) -> None:
    """``got_request_exception`` receiver: remember a database failure for ``server_error``
    and for health."""
    error = sys.exc_info()[1]
    if request is not None and error is not None and database.is_database_error(error):
        summary = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
        request.database_error = summary  # type: ignore[attr-defined]
        database.health.failed(summary)


@csrf_exempt
def health_test_file(request: HttpRequest, path: str = "") -> HttpResponse:
    """``GET|HEAD|PROPFIND /api/v1.0/director/healthTest/<path>`` (reference 7.3)."""
    request_id = request_id_for(request)
    if request.method not in HEALTH_TEST_METHODS:
        return error_response(
            405,
            f"The health-test endpoint takes GET, HEAD and PROPFIND. Request ID: {request_id}",
            header_lines=[HEALTH_TEST_ALLOW],
        )
    try:
        cleaned = clean_path(path or "")
    except PathError:
        cleaned = path or ""  # then not a test file's path: refused below
    test_file = healthfiles.check_test_file(cleaned)
    if isinstance(test_file, str):  # Pelican's message, as its getHealthTestFile words it
        return error_response(400, test_file)
    if request.method == "PROPFIND":
        # 207 with Pelican's multistatus body and, as Pelican sends it, a text type.
        return PelicanResponse(
            healthfiles.propfind_body(cleaned, test_file),
            status=207,
            content_type="text/plain; charset=utf-8",
        )
    body = healthfiles.test_file_body()
    return PelicanResponse(body, status=200, content_type="text/plain; charset=utf-8")
