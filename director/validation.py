"""Checks on user-supplied values shared by the ad API, the admin and the commands."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_REGISTRY_PREFIX = re.compile(r"/(origins|caches)/([^/\s]+)")
KIND_BY_PREFIX = {"origins": "origin", "caches": "cache"}


def url_problem(value: str, *, allow_query: bool = False) -> str:
    """'' when ``value`` is an absolute http(s) URL with a host, else what is wrong.

    Server URLs are bases that paths are appended to, so they take no query; a broker
    URL (``.../broker/reverse?origin=...&prefix=...``) does.
    """
    if not value:
        return "A URL is required."
    if any(char.isspace() or ord(char) < 32 for char in value):
        return f"{value!r} contains whitespace or control characters."
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


def namespace_path_problem(path: str) -> str:
    if not path or not path.startswith("/"):
        return f"Namespace path {path!r} must start with '/'."
    if any(char.isspace() or ord(char) < 32 for char in path):
        return f"Namespace path {path!r} contains whitespace or control characters."
    if any(segment in (".", "..") for segment in path.split("/")):
        return f"Namespace path {path!r} must not contain '.' or '..' segments."
    if "//" in path:
        return f"Namespace path {path!r} must not contain empty segments."
    return ""


def registry_prefix_kind(prefix: str) -> str | None:
    """'origin' for /origins/<site>, 'cache' for /caches/<site>, else None."""
    match = _REGISTRY_PREFIX.fullmatch(prefix or "")
    return KIND_BY_PREFIX[match.group(1)] if match else None
