"""Exact formatting of the redirect headers (Pelican wire format, reference section 2).

Every function returns the header value byte for byte as the Pelican director writes it;
tests/test_headers.py pins each one with literal strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol
from urllib.parse import quote_plus, urlsplit

from director.wire.healthfiles import MONITORING_NAMESPACE
from director.wire.paths import go_path_escape, path_depth
from director.wire.types import TokenGeneration, TokenIssuer


class ServerView(Protocol):
    """What the headers read of a server (``director.snapshot.ServerView`` has it)."""

    @property
    def url(self) -> str: ...
    @property
    def auth_url(self) -> str: ...


class NamespaceView(Protocol):
    """What the headers read of a namespace (``director.snapshot.NamespaceView``)."""

    @property
    def path(self) -> str: ...
    @property
    def require_token(self) -> bool: ...
    @property
    def token_issuers(self) -> Sequence[TokenIssuer]: ...
    @property
    def token_generations(self) -> Sequence[TokenGeneration]: ...


CORS_HEADERS: tuple[tuple[str, str], ...] = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, PUT, OPTIONS, PROPFIND"),
    ("Access-Control-Allow-Headers", "Content-Type, Authorization, Depth"),
    (
        "Access-Control-Expose-Headers",
        "Content-Type, Authorization, X-Pelican-User, X-Pelican-Timeout, "
        "X-Pelican-Token-Generation, X-Pelican-Authorization, X-Pelican-Namespace",
    ),
)
ROOT_OPTIONS_ALLOW = "HEAD,GET,PUT,PROPFIND,COPY,OPTIONS,POST"
# Query keys that Pelican re-emits with an empty value whenever they are present.
FLAG_QUERY_KEYS = ("skipstat", "prefercached", "directread")


def go_query_escape(value: str) -> str:
    """Go's ``url.QueryEscape``: everything but unreserved characters, space as '+'."""
    return quote_plus(value, safe="")


def encode_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Go's ``url.Values.Encode``: keys sorted, values in arrival order, ``key=`` if empty."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return "&".join(
        f"{go_query_escape(key)}={go_query_escape(value)}"
        for key in sorted(grouped)
        for value in grouped[key]
    )


def strip_bearer(value: str) -> str:
    return value[7:] if value.startswith("Bearer ") else value


def redirect_query(
    query: Sequence[tuple[str, str]], authorization: str, timeout_header: str
) -> str:
    """The query string of ``Location`` (reference 2.1).

    Every incoming parameter is forwarded; ``authz`` comes from the query or else from the
    ``Authorization: Bearer`` header (so a header token is copied into the URL, as Pelican
    does); ``pelican.timeout`` from the query or else ``X-Pelican-Timeout``; the flag keys
    are re-emitted with empty values.
    """
    pairs: list[tuple[str, str]] = []
    authz = ""
    timeout = ""
    flags: set[str] = set()
    for key, value in query:
        if key == "authz":
            authz = authz or strip_bearer(value)
        elif key == "pelican.timeout":
            timeout = timeout or value
        elif key in FLAG_QUERY_KEYS:
            flags.add(key)
        else:
            pairs.append((key, value))
    authz = authz or strip_bearer(authorization)
    timeout = timeout or timeout_header
    if authz:
        pairs.append(("authz", authz))
    if timeout:
        pairs.append(("pelican.timeout", timeout))
    pairs.extend((flag, "") for flag in FLAG_QUERY_KEYS if flag in flags)
    return encode_query(pairs)


def server_base(server: ServerView, namespace: NamespaceView) -> str:
    """The server URL a redirect points at: AuthURL for a protected namespace if set."""
    if namespace.require_token and server.auth_url:
        return server.auth_url
    return server.url


def object_url(server: ServerView, namespace: NamespaceView, escaped_path: str) -> str:
    return server_base(server, namespace) + escaped_path


def link_header(urls: Sequence[str], depth: int) -> str:
    """RFC 6249 ``Link``: ``<url>; rel="duplicate"; pri=<n>; depth=<d>``, comma-separated."""
    return ", ".join(
        f'<{url}>; rel="duplicate"; pri={index}; depth={depth}'
        for index, url in enumerate(urls, start=1)
    )


def scheme_and_host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def namespace_header(namespace: NamespaceView, collections_url: str) -> str:
    """``namespace=<prefix>, require-token=<bool>[, collections-url=<url>]``."""
    require_token = "true" if namespace.require_token else "false"
    value = f"namespace={namespace.path}, require-token={require_token}"
    if collections_url:
        value += f", collections-url={collections_url}"
    return value


def authorization_lines(namespace: NamespaceView) -> tuple[str, ...]:
    """One ``X-Pelican-Authorization`` value per token issuer: ``issuer=<url>``."""
    return tuple(f"issuer={issuer.issuer}" for issuer in namespace.token_issuers)


def token_generation_header(namespace: NamespaceView) -> str:
    """``issuer=..., max-scope-depth=..., strategy=..., base-path=...`` from the first entry.

    Empty values and a max-scope-depth of 0 are left out. ``base-path`` is the first base
    path of the token issuer whose URL equals the generation's issuer.
    """
    if not namespace.token_generations:
        return ""
    generation = namespace.token_generations[0]
    base_path = ""
    for issuer in namespace.token_issuers:
        if issuer.issuer == generation.issuer and issuer.base_paths:
            base_path = issuer.base_paths[0]
            break
    parts = []
    if generation.issuer:
        parts.append(f"issuer={generation.issuer}")
    if generation.max_scope_depth:
        parts.append(f"max-scope-depth={generation.max_scope_depth}")
    if generation.strategy:
        parts.append(f"strategy={generation.strategy}")
    if base_path:
        parts.append(f"base-path={base_path}")
    return ", ".join(parts)


def go_html_escape(text: str) -> str:
    """Go's ``htmlEscape`` as used by ``http.Redirect``."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def redirect_body(location: str) -> bytes:
    """The small HTML body Go's ``http.Redirect`` writes for a GET 307."""
    return f'<a href="{go_html_escape(location)}">Temporary Redirect</a>.\n\n'.encode()


MONITORING_NAMESPACE_HEADER = f"namespace={MONITORING_NAMESPACE}, require-token=false"


def monitoring_redirect_headers(
    base: str,
    path: str,
    query: Sequence[tuple[str, str]],
    authorization: str,
    timeout_header: str,
    request_id: str,
) -> tuple[str, list[tuple[str, str]]]:
    """(Location, header lines) of the redirect of a ``/pelican/monitoring/`` path to the
    director's own health-test files under ``base`` (reference 1.5)."""
    escaped = go_path_escape(path)
    encoded = redirect_query(query, authorization, timeout_header)
    location = f"{base}{escaped}" + (f"?{encoded}" if encoded else "")
    lines = [
        ("Location", location),
        ("Link", link_header([f"{base}{escaped}"], path_depth(path, MONITORING_NAMESPACE))),
        ("X-Pelican-Namespace", MONITORING_NAMESPACE_HEADER),
        ("X-Pelican-JobId", request_id),
    ]
    return location, lines
