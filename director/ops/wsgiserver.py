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
from gevent.pywsgi import MAX_REQUEST_LINE, WSGIHandler, WSGIServer

from director.wire.documents import error_body

HEADER_TIMEOUT = 10.0

# What the server answers itself, before any application sees the request: the director's
# JSON error body (gevent's own answers have an empty or plain-text one).
WSGI_ERRORS = {
    400: ("400 Bad Request", "Malformed HTTP request: bad request line or header."),
    414: ("414 Request-URI Too Long", f"The request line is over {MAX_REQUEST_LINE} bytes."),
    500: ("500 Internal Server Error", "Internal error."),
}
NOT_UTF8 = "The request path is not valid UTF-8 (after percent-decoding)."


def path_is_utf8(path_info: str) -> bool:
    """WSGI's PATH_INFO carries the percent-decoded bytes as Latin-1 characters. Django
    would re-encode invalid ones (``%FF``) and a redirect would name another object."""
    if path_info.isascii():
        return True
    try:
        path_info.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False
    return True


def wsgi_error_response(code: int, message: str = "") -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of one of WSGI_ERRORS (``message``: another text)."""
    status, default = WSGI_ERRORS[code]
    body = error_body(message or default)
    headers = [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
    ]
    return status, headers, body


def _raw_error(code: int) -> bytes:
    status, headers, body = wsgi_error_response(code)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"HTTP/1.1 {status}\r\n{lines}\r\n".encode("latin-1") + body


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
            result = super().handle_one_request()  # type: ignore[misc]
        finally:
            self._stop_header_deadline()
        if isinstance(result, tuple):  # answered before the application: (code, raw bytes)
            code = int(result[0])
            return (result[0], _raw_error(code)) if code in WSGI_ERRORS else result
        return result

    def handle_one_response(self) -> None:
        environ: dict[str, Any] = self.environ  # type: ignore[attr-defined]
        if path_is_utf8(environ.get("PATH_INFO", "")):
            super().handle_one_response()  # type: ignore[misc]
            return
        self.close_connection = True  # the body, if any, stays unread
        status, headers, body = wsgi_error_response(400, NOT_UTF8)
        try:
            self.start_response(status, headers)  # type: ignore[attr-defined]
            self.write(body)  # type: ignore[attr-defined]
        except OSError:
            pass

    def _send_error_response_if_possible(self, error_code: int) -> None:
        if getattr(self, "response_length", 0) or error_code not in WSGI_ERRORS:
            super()._send_error_response_if_possible(error_code)  # type: ignore[misc]
            return
        status, headers, body = wsgi_error_response(error_code)
        try:
            self.start_response(status, headers)  # type: ignore[attr-defined]
            self.write(body)  # type: ignore[attr-defined]
        except OSError:
            self.close_connection = True

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
