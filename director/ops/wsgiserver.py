"""The gevent WSGI server the director runs under (``manage.py serve``), plain gevent.

Also used by the gunicorn worker (director_project/gunicorn_worker.py) and by the
benchmarks, to serve their baseline apps under the very same server.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

HEADER_TIMEOUT = 10.0


class ConnectionLimits:
    """What every served connection gets (a mixin for pywsgi handlers):

    1. an idle connection is closed after ``keepalive_timeout`` seconds of silence;
    2. from the first byte of a request, its request line and headers must all arrive
       within ``header_timeout`` seconds, so that a client dripping a byte at a time
       cannot hold a connection greenlet for ever (the socket timeout bounds each read,
       not the whole);
    3. each write is sent at once (TCP_NODELAY): a response goes out as headers then body,
       and with Nagle the body would wait for the client's delayed ACK, ~40 ms per
       keep-alive request.
    """

    keepalive_timeout = 5.0
    header_timeout = HEADER_TIMEOUT
    socket: Any
    rfile: Any
    _header_deadline: gevent.Timeout | None = None

    def handle(self) -> None:
        self.socket.settimeout(self.keepalive_timeout)
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not TCP (a Unix socket)
            pass
        super().handle()  # type: ignore[misc]

    def read_requestline(self) -> Any:
        try:
            self.rfile.peek(1)  # the idle wait: bounded by the socket timeout alone
        except OSError:
            return ""
        # Fired, the deadline raises a socket timeout, which pywsgi treats as a dropped
        # connection (closed quietly) or a client error (400 and close).
        self._header_deadline = gevent.Timeout(
            self.header_timeout, TimeoutError("request line and headers took too long")
        )
        self._header_deadline.start()
        return super().read_requestline()  # type: ignore[misc]

    def read_request(self, raw_requestline: Any) -> Any:
        try:
            return super().read_request(raw_requestline)  # type: ignore[misc]
        finally:
            self._stop_header_deadline()

    def handle_one_request(self) -> Any:
        try:
            return super().handle_one_request()  # type: ignore[misc]
        finally:
            self._stop_header_deadline()

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.close()
            self._header_deadline = None


class DirectorHandler(ConnectionLimits, WSGIHandler):
    pass


def make_server(
    host: str,
    port: int,
    application: Callable[..., Any],
    *,
    connections: int,
    keepalive_timeout: float,
    access_log: bool = False,
) -> WSGIServer:
    """A server with at most ``connections`` connection greenlets (a bounded pool)."""
    handler = type("Handler", (DirectorHandler,), {"keepalive_timeout": keepalive_timeout})
    return WSGIServer(
        (host, port),
        application,
        spawn=Pool(connections),
        handler_class=handler,
        log=sys.stderr if access_log else None,
    )
