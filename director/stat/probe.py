"""The HEAD request of one stat, classified into a StatResult.

``HeadProbe`` keeps one ``urllib3`` connection pool per server origin (the transport
that ``requests`` uses, without its per-call session machinery: ``requests`` cost about
500 us of CPU per HEAD here, urllib3 about 180 us; see bench/NOTES.md), sized to the
server's stat limit so that connections are reused instead of discarded. Each HEAD's
deadline is enforced with ``gevent.Timeout``: urllib3's own timeouts bound each socket
operation, not the whole exchange.

Like Pelican's ``sendHeadReq``, a stat is one or two HEADs:

1. The first asks for a checksum (``Want-Digest: crc32c``), within ``timeout``.
2. Anything but a 2xx or 404 (another status, no answer in time, a transport error) is
   asked again once without it, within ``min(timeout, what is left of budget)``: XCache
   answers 405 to every HEAD that asks for a digest; XRootD 5.5 answers 409 on a
   directory, and after a couple of those never answers such a HEAD on it at all.
3. When the second HEAD got a 2xx or 404 where the first did not, this server is sent
   plain HEADs for ``PLAIN_HEADS_FOR`` seconds: one HEAD per stat of an XCache instead of
   two, one wait for a hanging directory every few minutes instead of every stat.

A timeout says the server is unwell (``server_fault``) only when a HEAD waited its full
``timeout``; one cut shorter by ``budget`` (the request's deadline) says nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from urllib.parse import urlsplit

import certifi
import gevent
import urllib3
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as TransportTimeout

from director.stat.digest import normalise_digest
from director.stat.outcomes import Outcome, StatResult

# probe(url, token, timeout, budget): ``timeout`` bounds each HEAD, ``budget`` all of them.
Probe = Callable[[str, str, float, float], StatResult]
ATTEMPTS = 2  # a stat sends at most this many HEADs: the budget it needs is this x timeout
PLAIN_HEADS_FOR = 300.0  # seconds without Want-Digest after a server failed to answer one
# Response headers of a HEAD beyond this are a faulty server (http.client alone allows 100
# lines of 64 KiB each): an error, counted toward ejection, never "present".
MAX_RESPONSE_HEADER_BYTES = 64 * 1024


class HeadProbe:
    """``probe(url, token, timeout, budget) -> StatResult`` for one server."""

    def __init__(self, user_agent: str, pool_size: int) -> None:
        self.user_agent = user_agent
        self.pool_size = max(1, pool_size)
        self._pools: dict[str, urllib3.HTTPConnectionPool] = {}
        # Until then (monotonic) this server is sent plain HEADs only (module doc, 3).
        self.plain_heads_until = float("-inf")

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

    def __call__(
        self, url: str, token: str, timeout: float, budget: float | None = None
    ) -> StatResult:
        """One stat (module doc): at most two HEADs, each within ``timeout``, both within
        ``budget`` (default: ``timeout``)."""
        started = time.monotonic()
        budget = max(timeout, budget or 0.0)
        try:
            pool, target = self._pool_for(url)
        except ValueError as error:
            return _transport_error(started, error)
        ask_digest = started >= self.plain_heads_until
        first = self._attempt(pool, target, token, ask_digest, timeout)
        if not ask_digest or _settled(first):
            return self._result(first, started)
        left = budget - (time.monotonic() - started)
        if left <= 0:
            return self._result(first, started)
        retry_timeout = min(timeout, left)
        second = self._attempt(pool, target, token, False, retry_timeout)
        if isinstance(second, StatResult):  # no answer to the plain HEAD either
            if second.outcome is Outcome.TIMEOUT:
                full_length = retry_timeout >= timeout or _timed_out_fully(first)
                return replace(second, latency=time.monotonic() - started, server_fault=full_length)
            return replace(second, latency=time.monotonic() - started)
        if _settled(second):  # it was the digest that the server could not answer
            self.plain_heads_until = time.monotonic() + PLAIN_HEADS_FOR
        result = self._result(second, started)
        note = f"asked again without Want-Digest after {_what(first)}"
        return replace(result, detail=f"{result.detail}; {note}" if result.detail else note)

    def _attempt(
        self,
        pool: urllib3.HTTPConnectionPool,
        target: str,
        token: str,
        ask_digest: bool,
        timeout: float,
    ) -> urllib3.BaseHTTPResponse | StatResult:
        """One HEAD: the answer, or a StatResult for no answer (timeout, transport)."""
        headers = {"User-Agent": self.user_agent}
        if ask_digest:
            headers["Want-Digest"] = "crc32c"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        deadline = gevent.Timeout(timeout)
        deadline.start()
        try:
            response = pool.urlopen(
                "HEAD",
                target,
                headers=headers,
                retries=False,
                redirect=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                preload_content=False,
            )
            # A HEAD has no body, but until it is read the connection still holds this
            # answer as pending: the next request on it would fail (ResponseNotReady)
            # while this response object is alive, as a first answer is during a retry.
            response.drain_conn()
            response.release_conn()
            return response
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

    @staticmethod
    def _result(answer: urllib3.BaseHTTPResponse | StatResult, started: float) -> StatResult:
        latency = time.monotonic() - started
        if isinstance(answer, StatResult):
            return replace(answer, latency=latency)
        header_bytes = sum(len(name) + len(value) + 4 for name, value in answer.headers.items())
        if header_bytes > MAX_RESPONSE_HEADER_BYTES:
            return StatResult(
                Outcome.ERROR,
                answer.status,
                latency,
                server_fault=True,
                detail=f"{header_bytes} bytes of headers (at most {MAX_RESPONSE_HEADER_BYTES})",
            )
        return classify(answer.status, answer.headers, latency)


def _settled(answer: urllib3.BaseHTTPResponse | StatResult) -> bool:
    """A first answer that needs no second HEAD: a 2xx or a 404."""
    if isinstance(answer, StatResult):
        return False
    return 200 <= answer.status <= 299 or answer.status == 404


def _timed_out_fully(answer: urllib3.BaseHTTPResponse | StatResult) -> bool:
    return isinstance(answer, StatResult) and answer.outcome is Outcome.TIMEOUT


def _what(answer: urllib3.BaseHTTPResponse | StatResult) -> str:
    if not isinstance(answer, StatResult):
        return f"HTTP {answer.status}"
    if answer.outcome is Outcome.TIMEOUT:
        return f"no answer in {answer.latency:.1f} s"
    return answer.detail


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
    """Reference 4.5, with our outcomes: 200 needs a valid Content-Length.

    Only a 5xx says the server is unwell (``server_fault``, which counts toward ejection,
    as do timeouts and transport errors); any 4xx is an answer about the object.
    """
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
            checksum=normalise_digest(headers.get("Digest", "")),
            age=age,
        )
    if status == 404:
        return StatResult(Outcome.ABSENT, 404, latency)
    if status in (401, 403):
        return StatResult(Outcome.DENIED, status, latency)
    return StatResult(
        Outcome.ERROR, status, latency, server_fault=status >= 500, detail=f"HTTP {status}"
    )
