"""The HEAD request of one stat, classified into a StatResult.

``HeadProbe`` keeps one ``urllib3`` connection pool per server origin (the transport
that ``requests`` uses, without its per-call session machinery: ``requests`` cost about
500 us of CPU per HEAD here, urllib3 about 180 us; see bench/NOTES.md), sized to the
server's stat limit so that connections are reused instead of discarded. A total
deadline is enforced with ``gevent.Timeout``: urllib3's own timeouts bound each socket
operation, not the whole exchange.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import certifi
import gevent
import urllib3
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as TransportTimeout

from director.stat.outcomes import Outcome, StatResult

Probe = Callable[[str, str, float], StatResult]
# Response headers of a HEAD beyond this are a faulty server (http.client alone allows 100
# lines of 64 KiB each): an error, counted toward ejection, never "present".
MAX_RESPONSE_HEADER_BYTES = 64 * 1024


class HeadProbe:
    """``probe(url, token, timeout) -> StatResult`` for one server."""

    def __init__(self, user_agent: str, pool_size: int) -> None:
        self.user_agent = user_agent
        self.pool_size = max(1, pool_size)
        self._pools: dict[str, urllib3.HTTPConnectionPool] = {}

    def resize(self, pool_size: int) -> None:
        """New pools of the new size; connections of the old ones close as they return."""
        if max(1, pool_size) == self.pool_size:
            return
        self.pool_size = max(1, pool_size)
        self.close()

    def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()

    def _pool_for(self, url: str) -> tuple[urllib3.HTTPConnectionPool, str]:
        """The pool of the URL's scheme://host:port, and the request target (path?query)."""
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        pool = self._pools.get(key)
        if pool is None:
            host = parts.hostname or ""  # urllib3 refuses an empty host when connecting
            if parts.scheme == "https":
                pool = urllib3.HTTPSConnectionPool(
                    host,
                    parts.port,
                    maxsize=self.pool_size,
                    block=False,
                    retries=False,
                    ca_certs=certifi.where(),
                )
            else:
                pool = urllib3.HTTPConnectionPool(
                    host, parts.port, maxsize=self.pool_size, block=False, retries=False
                )
            self._pools[key] = pool
        target = url[len(key) :] or "/"
        return pool, target

    def __call__(self, url: str, token: str, timeout: float) -> StatResult:
        headers = {"User-Agent": self.user_agent, "Want-Digest": "crc32c"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        deadline = gevent.Timeout(timeout)
        deadline.start()
        try:
            pool, target = self._pool_for(url)
            response = pool.urlopen(
                "HEAD",
                target,
                headers=headers,
                retries=False,
                redirect=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                preload_content=False,
            )
            response.release_conn()
        except gevent.Timeout as fired:
            if fired is not deadline:
                raise
            return _timed_out(started)
        except TransportTimeout as error:
            # urllib3's NewConnectionError (refused, unreachable) is a ConnectTimeoutError.
            if not isinstance(error, NewConnectionError):
                return _timed_out(started)
            return _transport_error(started, error)
        except (TransportError, OSError, ValueError) as error:
            return _transport_error(started, error)
        finally:
            deadline.close()
        header_bytes = sum(len(name) + len(value) + 4 for name, value in response.headers.items())
        if header_bytes > MAX_RESPONSE_HEADER_BYTES:
            return StatResult(
                Outcome.ERROR,
                response.status,
                time.monotonic() - started,
                server_fault=True,
                detail=f"{header_bytes} bytes of headers (at most {MAX_RESPONSE_HEADER_BYTES})",
            )
        return classify(response.status, response.headers, time.monotonic() - started)


def _transport_error(started: float, error: Exception) -> StatResult:
    return StatResult(
        Outcome.ERROR,
        latency=time.monotonic() - started,
        server_fault=True,
        detail=f"transport error: {type(error).__name__}",
    )


def _timed_out(started: float) -> StatResult:
    return StatResult(Outcome.TIMEOUT, latency=time.monotonic() - started, server_fault=True)


def classify(status: int, headers: Mapping[str, str], latency: float) -> StatResult:
    """Reference 4.5, with our outcomes: 200 needs a valid Content-Length."""
    if status == 200:
        try:
            size = int(headers.get("Content-Length", ""))
        except ValueError:
            return StatResult(
                Outcome.ERROR, 200, latency, detail="200 without a valid Content-Length"
            )
        if size < 0:
            return StatResult(Outcome.ERROR, 200, latency, detail="negative Content-Length")
        age_header = headers.get("Age")
        try:
            age = int(age_header) if age_header is not None else None
        except ValueError:
            age = None
        return StatResult(
            Outcome.PRESENT,
            200,
            latency,
            size=size,
            checksum=headers.get("Digest", ""),
            age=age,
        )
    if status == 404:
        return StatResult(Outcome.ABSENT, 404, latency)
    if status in (401, 403):
        return StatResult(Outcome.DENIED, status, latency)
    return StatResult(
        Outcome.ERROR, status, latency, server_fault=status >= 500, detail=f"HTTP {status}"
    )
