"""A small HTTP object server on loopback: the demo's origins and caches, and the real
servers that tests and benchmarks run against.

Plain gevent ``pywsgi``, no Django. It serves GET and HEAD (single byte ranges, size,
``Last-Modified``, a CRC-32C ``Digest`` when asked), PUT, DELETE and WebDAV PROPFIND
(``Depth: 0`` and ``1``, with XRootD's properties: director/demo/webdav.py) on in-memory
objects and a folder on disk, and its ``Behaviour`` can be changed while it runs: answer
late, answer with a fixed status, never answer, demand a token.

In cache mode it pulls a missing object through the director from an origin and then
answers with ``Age``; as XCache does, a HEAD of an object it does not hold is answered
from the origin (200 without ``Age``), and ranges and PROPFIND of what it does not hold
are passed through to the origin.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

from director.demo.webdav import RangeNotSatisfiable, Resource, byte_range, http_date, multistatus

logger = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Any
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    206: "Partial Content",
    207: "Multi-Status",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    416: "Range Not Satisfiable",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
HANG_SECONDS = 3600.0
REPORT_PATHS = ("/api/v1.0/origin/directorTest", "/api/v1.0/cache/directorTest")
# What a cache passes on of an origin's answer to a GET or HEAD it does not answer itself.
RELAYED_HEADERS = (
    "Content-Type",
    "Content-Range",
    "Accept-Ranges",
    "Last-Modified",
    "Digest",
    "Cache-Control",
)
UPSTREAM_TIMEOUT = 5.0  # seconds for a cache's request to the director and an origin
CACHE_UA = "pelican-cache/7.20.0"


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum Pelican origins report in ``Digest``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@dataclass
class Behaviour:
    """How the server answers; tests change it while the server runs."""

    delay: float = 0.0  # seconds before any answer
    status: int | None = None  # answer every request with this status
    hang: bool = False  # accept, read the request, never answer
    required_token: str | None = None  # 403 unless "Authorization: Bearer <token>"
    missing: bool = False  # answer 404 for every object (the slow-has-it scenarios)
    any_path: bytes | None = None  # every path not stored holds these bytes (unique-path load)
    hang_seconds: float = HANG_SECONDS  # how long a hanging request is held


@dataclass
class StoredObject:
    data: bytes
    stored_at: float = field(default_factory=time.time)


class FileServer:
    """An origin or cache on 127.0.0.1 with a behaviour that can be changed at run time."""

    def __init__(
        self,
        files: dict[str, bytes] | None = None,
        *,
        root: Path | None = None,
        name: str = "fileserver",
        host: str = "127.0.0.1",
        port: int = 0,
        upstream_director: str | None = None,
        upstream_ca: str | None = None,
        max_connections: int = 2000,
    ) -> None:
        self.name = name
        self.root = root
        self.objects: dict[str, StoredObject] = {
            path: StoredObject(data) for path, data in (files or {}).items()
        }
        self.behaviour = Behaviour()
        self.upstream_director = upstream_director
        self.upstream_ca = upstream_ca  # a CA file trusted upstream besides the system's
        self.requests: Counter[str] = Counter()
        self.seen_headers: list[dict[str, str]] = []
        self.max_seen = 1000
        # Director health-test reports received (reference 7.4): body and Authorization.
        self.reports: list[tuple[dict[str, Any], str]] = []
        self._server = WSGIServer(
            (host, port), self.app, spawn=Pool(max_connections), log=None, error_log=None
        )

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> FileServer:
        self._server.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self._server.stop(timeout=timeout)

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put(self, path: str, data: bytes) -> None:
        self.objects[path] = StoredObject(data)

    def count(self, method: str) -> int:
        return self.requests[method]

    # -- storage -----------------------------------------------------------------------
    def _on_disk(self, path: str) -> Path | None:
        """``path`` under the root folder, if it is there and does not leave it."""
        if self.root is None:
            return None
        root = self.root.resolve()
        candidate = (root / path.lstrip("/")).resolve()
        if candidate != root and root not in candidate.parents:
            return None
        return candidate if candidate.exists() else None

    def _lookup(self, path: str) -> StoredObject | None:
        """The object at ``path`` (in memory first, then on disk), or None."""
        stored = self.objects.get(path)
        if stored is not None:
            return stored
        candidate = self._on_disk(path)
        if candidate is None or not candidate.is_file():
            return None
        return StoredObject(candidate.read_bytes(), stored_at=candidate.stat().st_mtime)

    def _resource(self, path: str) -> Resource | None:
        """What PROPFIND says of ``path``: an object, a collection (a folder on disk, or a
        prefix of objects in memory), or None."""
        path = "/" + path.strip("/")
        stored = self._lookup(path)
        if stored is not None:
            return Resource(path, len(stored.data), stored.stored_at, collection=False)
        candidate = self._on_disk(path)
        if candidate is not None and candidate.is_dir():
            return Resource(path, 0, candidate.stat().st_mtime, collection=True)
        prefix = path.rstrip("/") + "/"
        times = [o.stored_at for name, o in self.objects.items() if name.startswith(prefix)]
        return Resource(path, 0, max(times), collection=True) if times else None

    def _children(self, collection: Resource) -> list[Resource]:
        """The objects and collections directly in ``collection``, by name."""
        prefix = collection.path.rstrip("/") + "/"
        names: set[str] = set()
        folder = self._on_disk(collection.path)
        if folder is not None and folder.is_dir():
            names.update(child.name for child in folder.iterdir())
        for name in self.objects:
            if name.startswith(prefix):
                names.add(name[len(prefix) :].split("/", 1)[0])
        found = (self._resource(prefix + name) for name in sorted(names) if name)
        return [child for child in found if child is not None]

    # -- the cache's upstream ----------------------------------------------------------
    def _upstream(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> Any | None:
        """``method`` on the origin route of the director for ``path``, redirects
        followed (so at an origin); None when it cannot be reached."""
        import requests

        assert self.upstream_director is not None
        try:
            return requests.request(
                method,
                f"{self.upstream_director}/api/v1.0/director/origin{path}",
                headers={"User-Agent": CACHE_UA, **(headers or {})},
                timeout=UPSTREAM_TIMEOUT,
                verify=self.upstream_ca or True,
            )
        except requests.RequestException as error:
            logger.warning("%s: %s of %s upstream failed: %s", self.name, method, path, error)
            return None

    def _relay(
        self, start_response: StartResponse, answer: Any, names: tuple[str, ...]
    ) -> Iterable[bytes]:
        """Pass an upstream answer on: its status, body and the headers named."""
        status = int(answer.status_code)
        headers = [(name, answer.headers[name]) for name in names if name in answer.headers]
        body = answer.content
        start_response(
            f"{status} {REASONS.get(status, 'Status')}",
            [*headers, ("Content-Length", str(len(body)))],
        )
        return [body]

    # -- WSGI --------------------------------------------------------------------------
    def app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = self._answer(environ, start_response)
        if environ["REQUEST_METHOD"] == "HEAD":
            # Headers only: a body left on a keep-alive connection corrupts the next answer.
            return [b""]
        return body

    def _answer(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "/")
        self.requests[method] += 1
        if len(self.seen_headers) < self.max_seen:
            self.seen_headers.append(
                {
                    key[5:].replace("_", "-").title(): value
                    for key, value in environ.items()
                    if key.startswith("HTTP_")
                }
                | {"method": method, "path": path}
            )
        behaviour = self.behaviour
        if behaviour.hang:
            gevent.sleep(behaviour.hang_seconds)
        if behaviour.delay:
            gevent.sleep(behaviour.delay)
        if behaviour.status is not None:
            return self._reply(start_response, behaviour.status, b"forced status\n")
        if behaviour.required_token is not None:
            if environ.get("HTTP_AUTHORIZATION") != f"Bearer {behaviour.required_token}":
                return self._reply(start_response, 403, b"token required\n")
        if method in ("GET", "HEAD"):
            return self._get(environ, start_response, path, head=method == "HEAD")
        if method == "PUT":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            self.objects[path] = StoredObject(environ["wsgi.input"].read(length))
            return self._reply(start_response, 201, b"")
        if method == "DELETE":
            existed = self.objects.pop(path, None) is not None
            return self._reply(start_response, 204 if existed else 404, b"")
        if method == "PROPFIND":
            return self._propfind(environ, start_response, path)
        if method == "POST" and path in REPORT_PATHS:
            return self._report(environ, start_response)
        return self._reply(start_response, 405, b"method not allowed\n")

    def _get(
        self, environ: Environ, start_response: StartResponse, path: str, *, head: bool
    ) -> Iterable[bytes]:
        if self.behaviour.missing:
            return self._reply(start_response, 404, b"not found\n")
        stored = self._lookup(path)
        if stored is None and self.behaviour.any_path is not None:
            stored = StoredObject(self.behaviour.any_path)
        wants_digest = "crc32c" in environ.get("HTTP_WANT_DIGEST", "").lower()
        range_header = environ.get("HTTP_RANGE")
        age: int | None = None
        if stored is None and self.upstream_director:
            if head or range_header:  # answered by the origin, nothing kept
                return self._from_origin(environ, start_response, path, head=head)
            answer = self._upstream("GET", path)  # pulled through
            if answer is None:
                return self._reply(start_response, 404, b"not found\n")
            if answer.status_code != 200 or "no-store" in answer.headers.get("Cache-Control", ""):
                return self._relay(start_response, answer, RELAYED_HEADERS)
            stored = self.objects[path] = StoredObject(answer.content)
            age = 0
        elif stored is not None and self.upstream_director:
            age = max(1, int(time.time() - stored.stored_at))
        if stored is None:
            return self._collection_listing(start_response, path, head=head)
        size = len(stored.data)
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Accept-Ranges", "bytes"),
            ("Last-Modified", http_date(stored.stored_at)),
        ]
        if wants_digest:
            headers.append(("Digest", f"crc32c={crc32c(stored.data):08x}"))
        if age is not None:
            headers.append(("Age", str(age)))
        try:
            selected = byte_range(range_header, size)
        except RangeNotSatisfiable:
            return self._reply(
                start_response, 416, b"", extra=[("Content-Range", f"bytes */{size}")]
            )
        if selected is None:
            start_response("200 OK", [*headers, ("Content-Length", str(size))])
            return [b""] if head else [stored.data]
        first, last = selected
        start_response(
            "206 Partial Content",
            [
                *headers,
                ("Content-Range", f"bytes {first}-{last}/{size}"),
                ("Content-Length", str(last - first + 1)),
            ],
        )
        return [b""] if head else [stored.data[first : last + 1]]

    def _report(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """A director's health-test report, kept as received (the token is not checked)."""
        length = min(int(environ.get("CONTENT_LENGTH") or 0), 64 * 1024)
        try:
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except ValueError:
            return self._reply(start_response, 400, b'{"status":"error","msg":"bad body"}')
        if len(self.reports) < self.max_seen:
            self.reports.append((body, environ.get("HTTP_AUTHORIZATION", "")))
        return self._reply(start_response, 200, b'{"status":"success","msg":"Success"}')

    def _from_origin(
        self, environ: Environ, start_response: StartResponse, path: str, *, head: bool
    ) -> Iterable[bytes]:
        """A cache's HEAD or ranged GET of an object it does not hold, answered upstream."""
        forwarded = {
            name: environ[key]
            for name, key in (("Range", "HTTP_RANGE"), ("Want-Digest", "HTTP_WANT_DIGEST"))
            if key in environ
        }
        answer = self._upstream("HEAD" if head else "GET", path, forwarded)
        if answer is None:
            return self._reply(start_response, 404, b"not found\n")
        if head and answer.status_code == 200:
            # The size of the object, not of the (empty) body of the HEAD answer.
            length = answer.headers.get("Content-Length", "0")
            headers = [
                (name, answer.headers[name]) for name in RELAYED_HEADERS if name in answer.headers
            ]
            start_response("200 OK", [*headers, ("Content-Length", length)])
            return [b""]
        return self._relay(start_response, answer, RELAYED_HEADERS)

    def _collection_listing(
        self, start_response: StartResponse, path: str, *, head: bool
    ) -> Iterable[bytes]:
        """GET of a collection: an HTML listing, as XrdHttp serves one (fsspec's ``info``
        falls back to GET when HEAD fails); HEAD of one: 409, as XRootD answers it.
        Anything else: 404."""
        resource = self._resource(path)
        if resource is None or not resource.collection:
            return self._reply(start_response, 404, b"not found\n")
        if head:
            return self._reply(start_response, 409, b"is a collection\n")
        items = "".join(
            f'<li><a href="{escape(child.href)}">{escape(child.path.rsplit("/", 1)[-1])}</a></li>'
            for child in self._children(resource)
        )
        body = f"<html><body><ul>{items}</ul></body></html>\n".encode()
        # A listing changes as objects come and go: caches pass it on, never keep it.
        return self._reply(
            start_response, 200, body, "text/html", extra=[("Cache-Control", "no-store")]
        )

    def _propfind(
        self, environ: Environ, start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        """WebDAV PROPFIND: ``Depth: 0`` describes ``path``, any other depth (XRootD
        serves 1) also what a collection holds. ``<object>/`` is an error, as in XRootD.
        A cache passes it to the origin: it may hold only some of a collection."""
        depth = environ.get("HTTP_DEPTH", "1").strip()
        if self.upstream_director:  # a cache holds copies of some objects: ask the origin
            answer = self._upstream("PROPFIND", path, {"Depth": depth})
            if answer is None:
                return self._reply(start_response, 404, b"not found\n")
            return self._relay(start_response, answer, ("Content-Type",))
        resource = self._resource(path)
        if resource is None:
            return self._reply(start_response, 404, b"not found\n")
        if path.endswith("/") and len(path) > 1 and not resource.collection:
            return self._reply(start_response, 500, b"not a collection\n")
        listed = [resource]
        if depth != "0" and resource.collection:
            listed += self._children(resource)
        return self._reply(
            start_response, 207, multistatus(listed), "application/xml; charset=utf-8"
        )

    @staticmethod
    def _reply(
        start_response: StartResponse,
        status: int,
        body: bytes,
        content_type: str = "text/plain",
        *,
        extra: list[tuple[str, str]] | None = None,
    ) -> Iterable[bytes]:
        start_response(
            f"{status} {REASONS.get(status, 'Status')}",
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                *(extra or []),
            ],
        )
        return [body]
