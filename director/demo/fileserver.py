"""A small HTTP object server on loopback: the demo's origins and caches, and the real
servers that tests and benchmarks run against.

Plain gevent ``pywsgi``, no Django. It serves GET, HEAD, PUT, DELETE and PROPFIND on an
in-memory or on-disk object store, and its ``Behaviour`` can be changed while it runs:
answer late, answer with a fixed status, never answer, demand a token. In cache mode it
pulls a missing object through the director from an origin and then answers with ``Age``.
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

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

logger = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Any
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    207: "Multi-Status",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
HANG_SECONDS = 3600.0
REPORT_PATHS = ("/api/v1.0/origin/directorTest", "/api/v1.0/cache/directorTest")


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
        max_connections: int = 2000,
    ) -> None:
        self.name = name
        self.root = root
        self.objects: dict[str, StoredObject] = {
            path: StoredObject(data) for path, data in (files or {}).items()
        }
        self.behaviour = Behaviour()
        self.upstream_director = upstream_director
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
    def _lookup(self, path: str) -> StoredObject | None:
        stored = self.objects.get(path)
        if stored is not None or self.root is None:
            return stored
        candidate = (self.root / path.lstrip("/")).resolve()
        if self.root.resolve() not in candidate.parents or not candidate.is_file():
            return None
        return StoredObject(candidate.read_bytes(), stored_at=candidate.stat().st_mtime)

    def _pull_through(self, path: str) -> StoredObject | None:
        """Cache mode: fetch a missing object from an origin via the director."""
        import requests

        assert self.upstream_director is not None
        try:
            answer = requests.get(
                f"{self.upstream_director}/api/v1.0/director/origin{path}",
                headers={"User-Agent": "pelican-cache/7.20.0"},
                timeout=5,
            )
        except requests.RequestException as error:
            logger.warning("%s: pull-through of %s failed: %s", self.name, path, error)
            return None
        if answer.status_code != 200:
            return None
        stored = StoredObject(answer.content)
        self.objects[path] = stored
        return stored

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
            return self._propfind(start_response, path)
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
        age: int | None = None
        if stored is None and self.upstream_director and not head:
            stored = self._pull_through(path)
            age = 0
        elif stored is not None and self.upstream_director:
            age = max(1, int(time.time() - stored.stored_at))
        if stored is None:
            return self._reply(start_response, 404, b"not found\n")
        headers = [
            ("Content-Length", str(len(stored.data))),
            ("Content-Type", "application/octet-stream"),
        ]
        if "crc32c" in environ.get("HTTP_WANT_DIGEST", "").lower():
            headers.append(("Digest", f"crc32c={crc32c(stored.data):08x}"))
        if age is not None:
            headers.append(("Age", str(age)))
        start_response("200 OK", headers)
        return [b""] if head else [stored.data]

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

    def _propfind(self, start_response: StartResponse, path: str) -> Iterable[bytes]:
        prefix = path.rstrip("/") + "/"
        names = sorted(name for name in self.objects if name.startswith(prefix) or name == path)
        if not names:
            return self._reply(start_response, 404, b"not found\n")
        body = (
            '<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:">'
            + "".join(f"<D:response><D:href>{name}</D:href></D:response>" for name in names)
            + "</D:multistatus>"
        ).encode()
        return self._reply(start_response, 207, body, "application/xml")

    @staticmethod
    def _reply(
        start_response: StartResponse, status: int, body: bytes, content_type: str = "text/plain"
    ) -> Iterable[bytes]:
        start_response(
            f"{status} {REASONS.get(status, 'Status')}",
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [body]
