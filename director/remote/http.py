"""One bounded HTTP exchange with another service.

``HttpClient.request`` sends one GET or POST and reads the whole answer within:

1. a connect timeout (about 1 s), and
2. ONE total deadline for the whole exchange (connect, headers and body), enforced with
   ``gevent.Timeout``: urllib3's own timeouts bound each socket operation, so a server
   that trickles its body a byte at a time would never trip them;
3. a size cap: the body is read in chunks and the read stops past the cap (a larger
   ``Content-Length`` is refused before anything is read).

Any HTTP status is an ``Answer`` (the caller decides what a 404 means); no answer at all
(timeout, refused connection, too big, a transport error) is one ``RemoteError`` with a
short reason for logs and health. Connections are pooled per remote (urllib3, bounded,
no retries, no redirects followed). Sockets are cooperative once gevent has patched the
process at its entry point; this module never patches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
import gevent
import urllib3
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as TransportTimeout

from director import __version__

USER_AGENT = f"pelican-director/{__version__}"
CONNECT_TIMEOUT = 1.0  # seconds to open a connection
DEADLINE = 2.5  # seconds for a whole exchange
MAX_BYTES = 1024 * 1024  # the largest body read
POOL_SIZE = 8  # connections kept per remote host
CHUNK = 64 * 1024
MESSAGE_CHARS = 200  # of a remote's error message, kept for logs and refusals


class RemoteError(Exception):
    """No usable answer from a remote; ``reason`` is short ("timeout after 2.5 s",
    "connection refused", "body over 1048576 bytes", "status 200 with a body that is not
    JSON"); ``too_big`` tells a body over the cap from the rest."""

    def __init__(
        self, reason: str, *, remote_status: int | None = None, too_big: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.remote_status = remote_status
        self.too_big = too_big


@dataclass(frozen=True)
class Answer:
    """A remote's answer, read whole: its status, body and how long it took."""

    status: int
    body: bytes
    latency: float

    def json(self) -> Any:
        """The body as JSON, or RemoteError("not JSON ...")."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise RemoteError(
                f"status {self.status} with a body that is not JSON", remote_status=self.status
            ) from None

    def message(self) -> str:
        """What the remote said, short: Pelican's ``msg`` (or ``error``) member when the
        body is one JSON error object, else the start of the body as text."""
        try:
            value = json.loads(self.body)
        except ValueError:
            value = None
        if isinstance(value, dict):
            for member in ("msg", "error"):
                if isinstance(value.get(member), str):
                    return str(value[member])[:MESSAGE_CHARS]
        # Pelican's registry may send two JSON objects in one body (an error, then more).
        text = self.body[:MESSAGE_CHARS].decode("utf-8", "replace")
        return " ".join(text.split())


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be asked (not http(s), no host), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"{url!r} is not an http(s) URL"
    if not parts.hostname:
        return f"{url!r} has no host"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{url!r} has a bad port"
    return None


class HttpClient:
    """Bounded requests to one or a few hosts, with pooled connections."""

    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        deadline: float = DEADLINE,
        max_bytes: int = MAX_BYTES,
        pool_size: int = POOL_SIZE,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.user_agent = user_agent
        self._pools = urllib3.PoolManager(
            num_pools=4,
            maxsize=max(1, pool_size),
            block=False,
            retries=False,
            ca_certs=certifi.where(),
        )

    def close(self) -> None:
        self._pools.clear()

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> Answer:
        """One exchange within ``deadline`` seconds (default: this client's). Raises
        RemoteError when there is no whole answer in time."""
        problem = url_problem(url)
        if problem is not None:
            raise RemoteError(problem)
        limit = self.deadline if deadline is None else deadline
        if limit <= 0:
            raise RemoteError("no time left")
        headers = {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        body = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(json_body).encode()
        started = time.monotonic()
        timer = gevent.Timeout(limit)
        timer.start()
        try:
            status, data = self._exchange(method, url, headers, body, limit)
        except gevent.Timeout as fired:
            if fired is not timer:
                raise
            raise RemoteError(f"timeout after {limit:g} s") from None
        finally:
            timer.close()
        return Answer(status, data, time.monotonic() - started)

    def _exchange(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, limit: float
    ) -> tuple[int, bytes]:
        timeout = urllib3.Timeout(connect=min(self.connect_timeout, limit), read=limit)
        try:
            response = self._pools.urlopen(
                method,
                url,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                timeout=timeout,
                preload_content=False,
                decode_content=False,
            )
        except (TransportError, OSError, ValueError) as error:
            raise RemoteError(_transport_reason(error)) from None
        complete = False
        try:
            data = self._read(response)
            complete = True
            return response.status, data
        except (TransportError, OSError) as error:
            raise RemoteError(_transport_reason(error), remote_status=response.status) from None
        finally:
            if not complete:
                response.close()  # a half-read answer leaves its connection unusable
            response.release_conn()

    def _read(self, response: urllib3.BaseHTTPResponse) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise RemoteError(
                f"body of {declared} bytes, over {self.max_bytes}",
                remote_status=response.status,
                too_big=True,
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.read(CHUNK, decode_content=False)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise RemoteError(
                    f"body over {self.max_bytes} bytes", remote_status=response.status, too_big=True
                )
            chunks.append(chunk)


def _transport_reason(error: Exception) -> str:
    """A short reason for a failed exchange."""
    text = str(error)
    if isinstance(error, NewConnectionError | ConnectionRefusedError) and "refused" in text.lower():
        return "connection refused"
    if isinstance(error, NewConnectionError):
        return "cannot connect"
    if isinstance(error, TransportTimeout):
        return "socket timeout"
    if isinstance(error, ProtocolError):
        return "connection broken"
    return f"transport error: {type(error).__name__}"
