"""The gevent WSGI server the director runs under (``manage.py serve``), plain gevent.

Also used by the benchmarks to serve their baseline apps under the very same server.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer


class DirectorHandler(WSGIHandler):
    """Closes a connection that stays silent for ``keepalive_timeout`` seconds, so an
    idle or slow client cannot hold a connection greenlet for ever; and sends each write
    at once (TCP_NODELAY): a response goes out as headers then body, and with Nagle the
    body would wait for the client's delayed ACK, about 40 ms per keep-alive request."""

    keepalive_timeout = 5.0

    def handle(self) -> None:
        self.socket.settimeout(self.keepalive_timeout)
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not TCP (a Unix socket)
            pass
        super().handle()


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
