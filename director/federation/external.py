"""External registry mode (issue 19): this director beside a Pelican registry it does not
serve. ``registry_client()`` is the one way the rest of the director reaches it; ``None``
means this director is its own registry (its tables, ``director.federation.registry``).

The registry's URL is ``DIRECTOR_REGISTRY_URL``, else the ``namespace_registration_endpoint``
of the federation's discovery document (``DIRECTOR_FEDERATION_DISCOVERY_URL``), looked up
with the same bounded client and retried on later calls until it answers. The client is
made once per process: its caches are what make a re-advertisement cost no registry
request (``director.remote.registry``).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from director.remote.http import HttpClient, RemoteError
from director.remote.registry import RegistryClient
from director.wire.errors import Refusal

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5  # Retry-After while the registry's URL is not known
RESOLVE_RETRY = 5.0  # seconds between two look-ups of the registry's URL
_next_attempt = 0.0
_lock = threading.Lock()
_client: RegistryClient | None = None
_discovery_error: str | None = None


def configured() -> bool:
    """Whether this director uses an external registry (the mode's one switch)."""
    return bool(settings.DIRECTOR_REGISTRY_URL or settings.DIRECTOR_FEDERATION_DISCOVERY_URL)


def registry_url() -> str:
    """The external registry's base URL; "" when not configured or not known yet (the
    discovery document has not answered: ``discovery_error()`` says why). No I/O: the
    discovery document is read by ``registry_client()`` only."""
    if settings.DIRECTOR_REGISTRY_URL:
        return str(settings.DIRECTOR_REGISTRY_URL)
    return _client.base_url if _client is not None else ""


def _resolve_url() -> str:
    if settings.DIRECTOR_REGISTRY_URL:
        return str(settings.DIRECTOR_REGISTRY_URL)
    if not settings.DIRECTOR_FEDERATION_DISCOVERY_URL:
        return ""
    return _from_discovery(str(settings.DIRECTOR_FEDERATION_DISCOVERY_URL))


def _from_discovery(discovery_url: str) -> str:
    global _discovery_error
    url = discovery_url
    if not url.endswith("/.well-known/pelican-configuration"):
        url += "/.well-known/pelican-configuration"
    client = HttpClient()
    try:
        answer = client.request("GET", url)
        document = answer.json() if answer.status == 200 else None
    except RemoteError as error:
        _remember(f"discovery document {url}: {error}")
        return ""
    finally:
        client.close()
    endpoint = (
        document.get("namespace_registration_endpoint") if isinstance(document, dict) else None
    )
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        _remember(f"discovery document {url} names no namespace_registration_endpoint")
        return ""
    _discovery_error = None
    return endpoint.rstrip("/")


def discovery_error() -> str | None:
    """Why there is no registry client although one is configured: the discovery
    document did not name the registry, or the URL is not http(s)."""
    return _discovery_error


def registry_client() -> RegistryClient | None:
    """This process's client of the external registry, or None (not configured, or its
    URL not known yet)."""
    global _client
    global _next_attempt
    if _client is not None or not configured():
        return _client
    # One greenlet looks the URL up (a discovery document's answer may take its whole
    # deadline); the others do not wait for it, and a failed look-up is not repeated
    # for RESOLVE_RETRY seconds (health, metrics and discovery call this on each request).
    if time.monotonic() < _next_attempt or not _lock.acquire(blocking=False):
        return None
    try:
        if _client is None:
            url = _resolve_url()
            try:
                if url:
                    _client = RegistryClient(url)
                    logger.info("external registry: %s", url)
            except ValueError as problem:  # not an http(s) URL (system check W006)
                _remember(str(problem))
            if _client is None:
                _next_attempt = time.monotonic() + RESOLVE_RETRY
    finally:
        _lock.release()
    return _client


def required_client() -> RegistryClient | None:
    """For the advertisement path: None in this director's own registry mode; in
    external mode the client, or 503 with Retry-After while the registry's URL is not
    known (never this director's own tables instead)."""
    client = registry_client()
    if client is None and configured():
        why = discovery_error() or "its URL is not known yet"
        raise Refusal(
            503,
            f"The federation's registry cannot be asked now: {why}",
            header_lines=(("Retry-After", str(RETRY_SECONDS)),),
        )
    return client


def _remember(problem: str) -> None:
    global _discovery_error
    if problem != _discovery_error:
        logger.warning("external registry: %s", problem)
    _discovery_error = problem


def forget() -> None:
    """Drop this process's client (tests; a changed setting)."""
    global _client, _discovery_error, _next_attempt
    _next_attempt = 0.0
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
        _discovery_error = None
