"""Checks on user-supplied values shared by the ad API, the admin and the commands."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from director.wire.types import ServerKind

_REGISTRY_PREFIX = re.compile(r"/(origins|caches)/([^/\s]+)")
KIND_BY_PREFIX = {"origins": ServerKind.ORIGIN, "caches": ServerKind.CACHE}


MAX_URL_LENGTH = 1000
# Column widths of the registry, shared by the ad schemas and the models (one source):
# an ad value that fits its schema fits its column on every database.
MAX_NAME_LENGTH = 255  # server names, registry prefixes
MAX_VERSION_LENGTH = 100
MAX_STORAGE_TYPE_LENGTH = 50
MAX_DOWNTIME_ID_LENGTH = 100
MAX_SEVERITY_LENGTH = 100
MAX_FEATURE_LENGTH = 100  # one of an ad's requiredFeatures
# What may go into a response header: printable ASCII. Values from ads (URLs, paths,
# issuers, strategies) end up in Location, Link and the X-Pelican headers.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]*")


def header_safe_problem(value: str, what: str, *, forbidden: str = "") -> str:
    """'' when ``value`` is printable ASCII without spaces (nor any of ``forbidden``)."""
    if not _HEADER_SAFE.fullmatch(value):
        return f"{what} {value!r} must be printable ASCII without spaces or control characters."
    bad = sorted({char for char in value if char in forbidden})
    if bad:
        return f"{what} {value!r} must not contain {' '.join(bad)}."
    return ""


def url_problem(value: str, *, allow_query: bool = False) -> str:
    """'' when ``value`` is an absolute http(s) URL with a host, else what is wrong.

    Server URLs are bases that paths are appended to, so they take no query; a broker
    URL (``.../broker/reverse?origin=...&prefix=...``) does. URLs go into response
    headers, so they must be printable ASCII (an IDN host in its xn-- form).
    """
    if not value:
        return "A URL is required."
    if len(value) > MAX_URL_LENGTH:
        return f"A URL must be at most {MAX_URL_LENGTH} characters."
    if any(char.isspace() or ord(char) < 32 for char in value):
        return f"{value!r} contains whitespace or control characters."
    if header_safe_problem(value, "URL"):
        return header_safe_problem(value, "URL")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError when out of range
    except ValueError as error:
        return f"{value!r} is not a valid URL ({error})."
    if parts.scheme not in ("http", "https"):
        return f"{value!r} must start with http:// or https://."
    if not parts.hostname:
        return f"{value!r} has no host."
    if parts.fragment or (parts.query and not allow_query):
        return f"{value!r} must not have a query or fragment."
    del port
    return ""


def normalise_server_url(value: str) -> str:
    """Strip a trailing slash so that base + "/path" joins cleanly."""
    return value.rstrip("/")


MAX_NAMESPACE_LENGTH = 1024


# A namespace path that passes every check below, in one match: segments of printable
# ASCII without '/', ',' or ';', none of them '.' or '..' (an ad may carry 1,000 of them).
_PLAIN_NAMESPACE = re.compile(r"(?:/(?!\.\.?(?:/|$))[\x21-\x2b\x2d-\x2e\x30-\x3a\x3c-\x7e]+)+|/")


def namespace_path_problem(path: str) -> str:
    """'' when ``path`` may be a namespace, else what is wrong with it."""
    if len(path) <= MAX_NAMESPACE_LENGTH and _PLAIN_NAMESPACE.fullmatch(path):
        return ""
    return namespace_path_checks(path)


def namespace_path_checks(path: str) -> str:
    """The checks one at a time, each with its own message."""
    if not path or not path.startswith("/"):
        return f"Namespace path {path!r} must start with '/'."
    if len(path) > MAX_NAMESPACE_LENGTH:
        return f"Namespace path must be at most {MAX_NAMESPACE_LENGTH} characters."
    if header_safe_problem(path, "Namespace path", forbidden=",;"):
        return header_safe_problem(path, "Namespace path", forbidden=",;")
    if any(char.isspace() or ord(char) < 32 for char in path):
        return f"Namespace path {path!r} contains whitespace or control characters."
    if any(segment in (".", "..") for segment in path.split("/")):
        return f"Namespace path {path!r} must not contain '.' or '..' segments."
    if "//" in path:
        return f"Namespace path {path!r} must not contain empty segments."
    return ""


def registry_prefix_kind(prefix: str) -> ServerKind | None:
    """ORIGIN for /origins/<site>, CACHE for /caches/<site>, else None."""
    match = _REGISTRY_PREFIX.fullmatch(prefix or "")
    return KIND_BY_PREFIX[match.group(1)] if match else None
