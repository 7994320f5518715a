"""The gevent WSGI server the director runs under (``manage.py serve``), plain gevent.

Also used by the gunicorn worker (director_project/gunicorn_worker.py) and by the
benchmarks, to serve their baseline apps under the very same server.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.pool import Pool
from gevent.pywsgi import MAX_REQUEST_LINE, WSGIHandler, WSGIServer

from director.serving.logsafe import redact_tokens, redacted_environ
from director.serving.shedding import REQUEST_WAIT_ENVIRON, RETRY_AFTER, UNSHED_PATHS, shedder
from director.serving.tls import TLSHandshakeDeadline
from director.wire.documents import error_body

HEADER_TIMEOUT = 10.0
# Connections the kernel holds for us before we accept them (capped by net.core.somaxconn).
# gevent's default, 128, overflowed when clients opened a few hundred connections at once:
# SYNs dropped, and the clients' retransmissions (1 s, 3 s, 7 s) became time-outs.
LISTEN_BACKLOG = 4096
OVERFLOW_HEADER_TIMEOUT = 1.0  # an overflow connection's request (and TLS handshake)

# What the server answers itself, before any application sees the request: the director's
# JSON error body (gevent's own answers have an empty or plain-text one).
WSGI_ERRORS = {
    400: ("400 Bad Request", "Malformed HTTP request: bad request line or header."),
    414: ("414 Request-URI Too Long", f"The request line is over {MAX_REQUEST_LINE} bytes."),
    500: ("500 Internal Server Error", "Internal error."),
}
NOT_UTF8 = "The request path is not valid UTF-8 (after percent-decoding)."


_TCP_INFO_SIZE = 104
_LAST_DATA_RECV = 52  # offset of tcpi_last_data_recv (ms) in Linux's struct tcp_info


def request_wait(sock: Any) -> float:
    """Seconds since the kernel received the last bytes on ``sock``: for a request just
    read, how long it waited for us, in the accept backlog, in the socket's buffer and
    behind the greenlets ahead of it (0 when unknown: not TCP, not Linux)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except (OSError, AttributeError):
        return 0.0
    if len(info) < _LAST_DATA_RECV + 4:
        return 0.0
    milliseconds: int = struct.unpack_from("I", info, _LAST_DATA_RECV)[0]
    return milliseconds / 1000.0


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


# pywsgi lets Transfer-Encoding win over Content-Length and drops the latter (RFC 9112
# 6.3). Both at once is how requests are smuggled past a proxy that reads the other
# header: such a request is refused with 400, and the connection closed.
AMBIGUOUS_FRAMING = "A request may not carry both Transfer-Encoding and Content-Length."


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


_NOT_SHED = object()
_UNSHED_PATHS = frozenset(path.encode() for path in UNSHED_PATHS)
_prepared: dict[tuple[str, bool, float, float], bytes] = {}


def _prepared_refusal(reason: str, close: bool) -> bytes:
    """The whole 429 response for ``reason``, built once per setting of the thresholds
    its text names."""
    key = (reason, close, shedder.target, shedder.deadline)
    answer = _prepared.get(key)
    if answer is None:
        body = shedder.refusal_body(reason)
        connection = "Connection: close\r\n" if close else ""
        answer = (
            "HTTP/1.1 429 Too Many Requests\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER}\r\n{connection}\r\n"
        ).encode("latin-1") + body
        if len(_prepared) > 64:
            _prepared.clear()
        _prepared[key] = answer
    return answer


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
       keep-alive request;
    4. what it logs about a request (its access log line, under ``serve`` or gunicorn,
       and the server's error lines) holds no token of the query (logsafe.redact_tokens).
    """

    keepalive_timeout = 5.0
    header_timeout = HEADER_TIMEOUT
    socket: Any
    rfile: Any
    requestline: Any
    environ: Any
    _header_deadline: gevent.Timeout | None = None
    refuse_connection = False  # set on a connection over the server's limit
    pending_refusal = ""  # why the request being read is to be refused ("": serve it)
    request_waited = 0.0  # the queueing delay of the request being read (seconds)

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

    def MessageClass(self, *args: Any) -> Any:  # noqa: N802 (pywsgi's name)
        """pywsgi's request headers, noting both framings before pywsgi drops one."""
        headers = super().MessageClass(*args)  # type: ignore[misc]
        headers.ambiguous_framing = (
            headers.get("transfer-encoding") is not None
            and headers.get("content-length") is not None
        )
        return headers

    def read_request(self, raw_requestline: Any) -> Any:
        try:
            return super().read_request(raw_requestline)  # type: ignore[misc]
        finally:
            self._stop_header_deadline()

    def handle_one_request(self) -> Any:
        shed = self._shed_before_parsing()
        if shed is not _NOT_SHED:
            return shed
        try:
            result = super().handle_one_request()  # type: ignore[misc]
        finally:
            self._stop_header_deadline()
        if isinstance(result, tuple):  # answered before the application: (code, raw bytes)
            code = int(result[0])
            return (result[0], _raw_error(code)) if code in WSGI_ERRORS else result
        return result

    def _shed_before_parsing(self) -> Any:
        """The cheapest place to refuse a request: before pywsgi parses it.

        After the idle wait, the request's queueing delay is read from the kernel and fed
        to the shedder. A request to refuse whose request line and headers are all in the
        read buffer (a GET almost always is) is consumed and answered with prepared bytes:
        ~4x cheaper than pywsgi's parse and response, which matters because under
        overload most requests are refused and each refusal takes time from the requests
        being served. Anything else (a request to serve, headers not all read yet, an
        exempt path, a malformed line) goes the ordinary way with the decision kept for
        handle_one_response. Returns _NOT_SHED, True (next request) or None (close).
        """
        try:
            buffered = self.rfile.peek(1)  # the idle wait: bounded by the socket timeout
        except OSError:
            return None
        if not buffered:
            return None
        waited = self.request_waited = request_wait(self.socket)
        if self.refuse_connection:
            reason = "connections"
        else:
            shedder.observe(waited)
            reason = shedder.refusal(waited)
        self.pending_refusal = reason
        if not reason:
            return _NOT_SHED
        end = buffered.find(b"\r\n\r\n")
        if end < 0:
            return _NOT_SHED
        head = buffered[:end]
        request_line = head.split(b"\r\n", 1)[0]
        parts = request_line.split(b" ")
        if len(parts) != 3 or len(request_line) >= MAX_REQUEST_LINE:
            return _NOT_SHED
        if not self.refuse_connection and parts[1].split(b"?", 1)[0] in _UNSHED_PATHS:
            return _NOT_SHED
        lowered = head.lower()
        # A body (unread) would be taken for the next request; HTTP/1.0 and a client's
        # "Connection: close" expect the connection closed: close then.
        close = (
            self.refuse_connection
            or parts[2] != b"HTTP/1.1"
            or b"\r\ncontent-length:" in lowered
            or b"\r\ntransfer-encoding:" in lowered
            or b"\r\nconnection: close" in lowered
        )
        self.rfile.read(end + 4)
        shedder.count(reason)
        try:
            self.socket.sendall(_prepared_refusal(reason, close))
        except OSError:
            return None
        return None if close else True

    def handle_one_response(self) -> None:
        """The checks made before the application sees a request: the cheapest place
        left once the request is parsed."""
        environ: dict[str, Any] = self.environ
        path = environ.get("PATH_INFO", "")
        if not path_is_utf8(path):
            self._answer_before_app(*wsgi_error_response(400, NOT_UTF8), close=True)
            return
        if getattr(self.headers, "ambiguous_framing", False):  # type: ignore[attr-defined]
            self._answer_before_app(*wsgi_error_response(400, AMBIGUOUS_FRAMING), close=True)
            return
        environ[REQUEST_WAIT_ENVIRON] = self.request_waited
        # Decided by _shed_before_parsing, from this request's queueing delay.
        reason, self.pending_refusal = self.pending_refusal, ""
        if reason and reason != "connections" and path in UNSHED_PATHS:
            reason = ""
        if reason:
            shedder.count(reason)
            body = shedder.refusal_body(reason)
            headers = [
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Retry-After", RETRY_AFTER),
            ]
            # A body left unread would be taken for the next request: close then.
            has_body = environ.get("CONTENT_LENGTH") not in (None, "", "0") or (
                "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
            )
            close = has_body or self.refuse_connection
            self._answer_before_app("429 Too Many Requests", headers, body, close=close)
            return
        super().handle_one_response()  # type: ignore[misc]

    def _answer_before_app(
        self, status: str, headers: list[tuple[str, str]], body: bytes, *, close: bool
    ) -> None:
        if close:
            self.close_connection = True
            if not any(name.lower() == "connection" for name, _ in headers):
                headers = [*headers, ("Connection", "close")]
        # The per-response state that pywsgi's handle_one_response resets (keep-alive: the
        # previous response's would make this one go out without a status line).
        self.status = None
        self.headers_sent = False
        self.result = None
        self.response_use_chunked = False
        self.connection_upgraded = False
        self.response_length = 0
        try:
            self.start_response(status, headers)  # type: ignore[attr-defined]
            self.write(body)  # type: ignore[attr-defined]
        except OSError:
            self.close_connection = True

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

    def log_request(self) -> None:
        """The access log line with the query's tokens redacted: pywsgi's reads the
        request line, gunicorn's (its worker's handler) the environ's URLs."""
        self.requestline = redact_tokens(self.requestline or "")
        environ = getattr(self, "environ", None)
        if environ:
            self.environ = redacted_environ(environ)
        super().log_request()  # type: ignore[misc]

    def log_error(self, msg: str, *args: Any) -> None:
        """pywsgi's error line (a malformed request quotes its request line), redacted."""
        try:
            message = msg % args if args else msg
        except (TypeError, ValueError):
            message = f"{msg!r} {args!r}"
        super().log_error(redact_tokens(message))  # type: ignore[misc]

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.close()
            self._header_deadline = None


class DirectorHandler(ConnectionLimits, WSGIHandler):
    pass


class DirectorServer(TLSHandshakeDeadline, WSGIServer):
    """pywsgi's server that never stops accepting. pywsgi stops when its pool of
    connection greenlets is full, and new connections then wait in the kernel's backlog,
    unseen, until their clients time out. Here a connection beyond the pool is served by
    a small overflow pool that reads its request and answers 429 with ``Connection:
    close``; beyond that too, it is closed at once: the client knows now, not after its
    time-out.
    """

    # Connections accepted per wake-up of the listening socket (gevent's default, 100, let
    # 4,096 wait in the backlog under a 3,000 req/s overload while the loop had time).
    max_accept = 1000

    def __init__(self, *args: Any, overflow: Pool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.overflow = overflow
        self.refused_connections = 0  # closed unanswered: both pools full
        # gevent's set_spawn made ``full`` the pool's, which stops accepting: never full.
        self.full = lambda: False
        self._turns: Any = None

    def start(self) -> None:
        super().start()
        if self._turns is None:
            # Each turn of the event loop, right after polling: the shedder bounds how
            # far into a turn new requests are admitted (director.serving.shedding, step 2).
            self._turns = gevent.get_hub().loop.check()
            self._turns.start(shedder.turn_began)

    def stop(self, timeout: float | None = None) -> None:
        if self._turns is not None:
            self._turns.stop()
            self._turns = None
        super().stop(timeout=timeout)

    def do_handle(self, *args: Any) -> None:
        if self.pool is None or not self.pool.full():
            super().do_handle(*args)
        elif not self.overflow.full():
            self.overflow.spawn(self._refuse, *args)
        else:
            self.refused_connections += 1
            self.do_close(*args)

    def _refuse(self, sock: Any, address: Any) -> None:
        try:
            if self.ssl_enabled:
                self.after_handshake(sock, address, self._answer_429, OVERFLOW_HEADER_TIMEOUT)
            else:
                self._answer_429(sock, address)
        finally:
            self.do_close(sock, address)

    def _answer_429(self, sock: Any, address: Any) -> None:
        handler = self.handler_class(sock, address, self)
        handler.refuse_connection = True
        handler.header_timeout = OVERFLOW_HEADER_TIMEOUT
        handler.handle()


@dataclass(frozen=True)
class Listener:
    """An address to serve on: plain HTTP, or HTTPS with ``tls`` (``tls_context``)."""

    host: str
    port: int
    tls: Any = None


def make_servers(
    listeners: Sequence[Listener],
    application: Callable[..., Any],
    *,
    connections: int,
    keepalive_timeout: float,
    access_log: bool = False,
    overflow: int = 0,
) -> list[DirectorServer]:
    """One server per listener, all sharing at most ``connections`` connection greenlets
    (one bounded pool) and ``overflow`` more that only answer 429 (DirectorServer): serving
    HTTP and HTTPS side by side does not double the bound."""
    handler = type("Handler", (DirectorHandler,), {"keepalive_timeout": keepalive_timeout})
    pool, overflow_pool = Pool(connections), Pool(max(1, overflow))
    return [
        DirectorServer(
            (listener.host, listener.port),
            application,
            spawn=pool,
            overflow=overflow_pool,
            backlog=LISTEN_BACKLOG,
            handler_class=handler,
            log=sys.stderr if access_log else None,
            **({"ssl_context": listener.tls} if listener.tls is not None else {}),
        )
        for listener in listeners
    ]


def make_server(
    host: str,
    port: int,
    application: Callable[..., Any],
    *,
    connections: int,
    keepalive_timeout: float,
    access_log: bool = False,
    overflow: int = 0,
    tls: Any = None,
) -> DirectorServer:
    """``make_servers`` for one listener."""
    return make_servers(
        [Listener(host, port, tls)],
        application,
        connections=connections,
        keepalive_timeout=keepalive_timeout,
        access_log=access_log,
        overflow=overflow,
    )[0]
