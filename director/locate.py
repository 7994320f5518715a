"""This process's client locator and GeoIP database, built from the settings.

The client's address is REMOTE_ADDR, or, only when that peer is a trusted proxy
(DIRECTOR_TRUSTED_PROXIES), the right-most address of X-Forwarded-For that is not itself
a trusted proxy. The scheme and host the client used are the request's own, or, from a
trusted proxy only, X-Forwarded-Proto and X-Forwarded-Host.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from functools import cache
from urllib.parse import urlsplit

import gevent
from cachetools import TTLCache
from django.conf import settings
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host

from director.geo import (
    ClientLocator,
    Coordinate,
    GeoIPDatabase,
    IPAddress,
    IPNetwork,
    Region,
    parse_address,
)
from director.snapshot import Snapshot

logger = logging.getLogger(__name__)

DNS_TIMEOUT = 1.0
DNS_CACHE_SECONDS = 600.0
DNS_CACHE_CAPACITY = 10_000  # hosts; snapshot builds also drop those no server uses
# host -> (its first address,), or (None,) when it did not resolve (remembered too).
_dns_cache: TTLCache[str, tuple[IPAddress | None]] = TTLCache(DNS_CACHE_CAPACITY, DNS_CACHE_SECONDS)


def parse_networks(values: list[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


def parse_region(text: str) -> Region:
    return Region.parse(text) if text else Region()


@cache
def geoip_database() -> GeoIPDatabase | None:
    path = settings.DIRECTOR_GEOIP_DB
    return GeoIPDatabase(path) if path else None


@cache
def locator() -> ClientLocator:
    try:
        region = parse_region(settings.DIRECTOR_DEFAULT_REGION)
    except ValueError:  # reported by system check director.E004
        region = Region()
    return ClientLocator(geoip_database(), region)


@cache
def trusted_proxies() -> tuple[IPNetwork, ...]:
    try:
        return tuple(parse_networks(settings.DIRECTOR_TRUSTED_PROXIES))
    except ValueError:  # reported by system check director.E003
        return ()


def _trusted(address: IPAddress | None, proxies: tuple[IPNetwork, ...]) -> bool:
    return address is not None and any(
        address.version == net.version and address in net for net in proxies
    )


def from_trusted_proxy(request: HttpRequest) -> bool:
    """Whether the peer is listed in DIRECTOR_TRUSTED_PROXIES."""
    proxies = trusted_proxies()
    peer = parse_address(str(request.META.get("REMOTE_ADDR", "")))
    return bool(proxies) and _trusted(peer, proxies)


def first_forwarded(request: HttpRequest, header: str) -> str:
    """The first value of an ``X-Forwarded-*`` header (each proxy appends its own: the
    first is what the client used), "" when absent."""
    return str(request.META.get(header, "")).split(",", 1)[0].strip()


def public_origin(request: HttpRequest) -> str:
    """``scheme://host`` as the client reached this director: the request's own, or,
    only from a trusted proxy (a TLS-terminating one), ``X-Forwarded-Proto`` and
    ``X-Forwarded-Host`` (a value that is not http/https or not a valid allowed host is
    ignored)."""
    scheme, host = request.scheme, request.get_host()
    if from_trusted_proxy(request):
        proto = first_forwarded(request, "HTTP_X_FORWARDED_PROTO").lower()
        if proto in ("http", "https"):
            scheme = proto
        forwarded_host = first_forwarded(request, "HTTP_X_FORWARDED_HOST")
        domain, _ = split_domain_port(forwarded_host)
        if domain and validate_host(domain, settings.ALLOWED_HOSTS):
            host = forwarded_host
    return f"{scheme}://{host}"


def external_url(request: HttpRequest) -> str:
    """This director's public URL: DIRECTOR_EXTERNAL_URL, or the scheme and host the
    client used (behind a trusted proxy, the ones it forwards: ``public_origin``)."""
    return settings.DIRECTOR_EXTERNAL_URL or public_origin(request)


def client_ip(request: HttpRequest) -> str:
    peer = str(request.META.get("REMOTE_ADDR", ""))
    if not from_trusted_proxy(request):
        return peer
    proxies = trusted_proxies()
    hops = [hop.strip() for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        address = parse_address(hop)
        if address is None:
            return peer  # a malformed chain: trust nothing in it
        if not _trusted(address, proxies):
            return str(address)
    return peer


def client_coordinate(request: HttpRequest, snapshot: Snapshot, ip: str) -> Coordinate:
    header = request.META.get("HTTP_X_PELICAN_COORDINATE", "")
    return locator().locate(header, ip, snapshot.overrides)


def forget_addresses_except(urls: list[str]) -> None:
    """Drop cached DNS answers of hosts no server uses any more (bounded by the registry)."""
    hosts = {urlsplit(url).hostname or "" for url in urls}
    for host in list(_dns_cache):
        if host not in hosts:
            _dns_cache.pop(host, None)


def server_address(url: str) -> IPAddress | None:
    """The first address of a server URL's host; DNS answers are cached for 10 minutes
    and a lookup gives up after 1 s (this runs when a snapshot is built)."""
    host = urlsplit(url).hostname or ""
    literal = parse_address(host)
    if literal is not None or not host:
        return literal
    cached = _dns_cache.get(host)
    if cached is not None:
        return cached[0]
    address: IPAddress | None = None
    try:
        infos = gevent.with_timeout(DNS_TIMEOUT, socket.getaddrinfo, host, None, timeout_value=[])
        if infos:
            address = parse_address(str(infos[0][4][0]))
    except OSError as error:
        logger.info("cannot resolve %s: %s", host, error)
    _dns_cache[host] = (address,)
    return address
