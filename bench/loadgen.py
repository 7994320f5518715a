"""An open-loop HTTP load generator (gevent, raw sockets).

Requests are sent at a fixed arrival rate whatever the server does: the k-th request is
due at ``start + k / rate``, and its latency is measured from that intended time, so a
stalled server shows up in the figures instead of slowing the generator down
(coordinated omission, reliability-anchors section 6). The generator reports its own
achieved rate and send lag, so a saturated generator is visible too.

Connections are reused (keep-alive) from a pool that grows as needed up to a cap; a
request that finds no connection opens one. Redirects are not followed. A response
whose headers take longer than ``header_timeout`` (10 s) is a client time-out.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from gevent.pool import Pool

Record = tuple[float, float, int, str]  # (intended offset s, latency s, status, error kind)


@dataclass
class LoadResult:
    rate: float
    duration: float
    records: list[Record] = field(default_factory=list)
    started_at: float = 0.0  # wall clock
    send_lag_max: float = 0.0
    send_lag_p99: float = 0.0
    dropped: int = 0  # requests the generator could not even start (pool full)
    achieved_rate: float = 0.0


class _Connection:
    __slots__ = ("sock", "buffer")

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class OpenLoop:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        header_timeout: float = 10.0,
        max_concurrency: int = 6000,
        extra_headers: str = "",
    ) -> None:
        self.host = host
        self.port = port
        self.header_timeout = header_timeout
        self.max_concurrency = max_concurrency
        self.extra_headers = extra_headers
        self._idle: list[_Connection] = []

    def _request(self, path: str) -> tuple[int, str]:
        """Send one GET; return (status, "") or (0, error kind)."""
        connection = self._idle.pop() if self._idle else None
        fresh = connection is None
        try:
            if connection is None:
                connection = _Connection(self.host, self.port, self.header_timeout)
            payload = (
                f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"User-Agent: pelican-client/7.20.0 bench\r\n{self.extra_headers}\r\n"
            ).encode()
            deadline = time.monotonic() + self.header_timeout
            connection.sock.settimeout(self.header_timeout)
            connection.sock.sendall(payload)
            status, keep = self._read_response(connection, deadline)
        except TimeoutError:
            if connection is not None:
                connection.close()
            return 0, "timeout"
        except ConnectionRefusedError:
            return 0, "refused"
        except (ConnectionResetError, BrokenPipeError):
            if connection is not None:
                connection.close()
            if not fresh:  # a kept-alive connection the server had closed: retry once
                return self._request(path)
            return 0, "reset"
        except OSError as error:
            if connection is not None:
                connection.close()
            return 0, f"oserror:{error.errno}"
        if keep:
            self._idle.append(connection)
        else:
            connection.close()
        return status, ""

    @staticmethod
    def _read_response(connection: _Connection, deadline: float) -> tuple[int, bool]:
        data = connection.buffer
        while b"\r\n\r\n" not in data:
            if time.monotonic() > deadline:
                raise TimeoutError
            chunk = connection.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        keep = True
        retry_after = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value.strip())
            elif lowered == b"connection" and value.strip().lower() == b"close":
                keep = False
            elif lowered == b"retry-after":
                retry_after = True
        if status == 429 and not retry_after:
            status = -429  # a 429 must say when to retry: counted apart
        while len(rest) < length:
            chunk = connection.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError
            rest += chunk
        connection.buffer = rest[length:]
        return status, keep

    def run(self, rate: float, duration: float, path_for: Callable[[int], str]) -> LoadResult:
        """Send ``rate`` requests per second for ``duration`` seconds; wait for them all."""
        total = int(rate * duration)
        result = LoadResult(rate=rate, duration=duration, started_at=time.time())
        pool = Pool(self.max_concurrency)
        lags: list[float] = []
        start = time.monotonic() + 0.05

        def one(index: int, intended: float) -> None:
            status, error = self._request(path_for(index))
            result.records.append((intended - start, time.monotonic() - intended, status, error))

        for index in range(total):
            intended = start + index / rate
            delay = intended - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            lags.append(max(0.0, time.monotonic() - intended))
            if pool.full():
                result.dropped += 1
                continue
            pool.spawn(one, index, intended)
        sent_in = time.monotonic() - start
        pool.join(timeout=self.header_timeout + 5)
        pool.kill()
        for connection in self._idle:
            connection.close()
        self._idle.clear()
        lags.sort()
        result.send_lag_max = lags[-1] if lags else 0.0
        result.send_lag_p99 = lags[int(len(lags) * 0.99)] if lags else 0.0
        result.achieved_rate = (total - result.dropped) / sent_in if sent_in > 0 else 0.0
        return result
