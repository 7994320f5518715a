"""The HEAD request of one stat, classified into a StatResult.

``HeadProbe`` owns one ``requests.Session`` per server (connection pool sized to the
server's limit, so that connections are reused instead of discarded) and enforces a
total deadline with ``gevent.Timeout``: requests' own ``timeout`` bounds each socket
operation, not the whole exchange.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
import requests
from requests.adapters import HTTPAdapter

from director.stat.outcomes import Outcome, StatResult

Probe = Callable[[str, str, float], StatResult]


class HeadProbe:
    """``probe(url, token, timeout) -> StatResult`` for one server."""

    def __init__(self, user_agent: str, pool_size: int) -> None:
        self.user_agent = user_agent
        self.session = requests.Session()
        self.pool_size = 0
        self.resize(pool_size)

    def resize(self, pool_size: int) -> None:
        if pool_size == self.pool_size:
            return
        self.pool_size = pool_size
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, pool_size), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def __call__(self, url: str, token: str, timeout: float) -> StatResult:
        headers = {"User-Agent": self.user_agent, "Want-Digest": "crc32c"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        deadline = gevent.Timeout(timeout)
        deadline.start()
        try:
            response = self.session.head(
                url, headers=headers, timeout=timeout, allow_redirects=False
            )
            response.close()
        except gevent.Timeout as fired:
            if fired is not deadline:
                raise
            return _timed_out(started)
        except requests.Timeout:
            return _timed_out(started)
        except requests.RequestException as error:
            return StatResult(
                Outcome.ERROR,
                latency=time.monotonic() - started,
                server_fault=True,
                detail=f"transport error: {type(error).__name__}",
            )
        finally:
            deadline.close()
        return classify(response.status_code, response.headers, time.monotonic() - started)


def _timed_out(started: float) -> StatResult:
    return StatResult(Outcome.TIMEOUT, latency=time.monotonic() - started, server_fault=True)


def classify(
    status: int, headers: requests.structures.CaseInsensitiveDict | dict[str, str], latency: float
) -> StatResult:
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
