"""TLS for the director's WSGI servers (``manage.py serve`` and the gunicorn worker): the
server-side context, and a deadline on every handshake."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
import gevent.ssl

# From accept to a finished handshake: as long as a request's line and headers may take.
HANDSHAKE_TIMEOUT = 10.0


def tls_context(cert_file: str, key_file: str) -> Any:
    """A server-side TLS context (TLS 1.2 or later) with this certificate chain and key;
    ``ssl.SSLError`` or ``OSError`` when they cannot be read or do not match."""
    context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = gevent.ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class TLSHandshakeTimedOut(Exception):
    pass


class TLSHandshakeDeadline:
    """For gevent stream servers serving TLS (a mixin). gevent does the handshake inside
    ``wrap_socket`` on a socket without a timeout: a client that connects and then says
    nothing, or drips its ClientHello, would hold a connection greenlet for ever. Here the
    handshake must finish within ``handshake_timeout`` seconds of the accept, or the
    connection is closed; a failed handshake (plain HTTP on the TLS port, an unknown CA) is
    closed quietly, with no traceback on stderr."""

    handshake_timeout = HANDSHAKE_TIMEOUT
    ssl_args: dict[str, Any]
    wrap_socket: Callable[..., Any]
    handle: Callable[..., Any]

    def wrap_socket_and_handle(self, client_socket: Any, address: Any) -> Any:
        return self.after_handshake(client_socket, address, self.handle, self.handshake_timeout)

    def after_handshake(
        self, client_socket: Any, address: Any, handle: Callable[..., Any], timeout: float
    ) -> Any:
        """Wrap ``client_socket`` in TLS, shake hands within ``timeout`` s, then
        ``handle(tls_socket, address)``."""
        tls_socket = self.wrap_socket(
            client_socket, **{**self.ssl_args, "do_handshake_on_connect": False}
        )
        try:
            try:
                with gevent.Timeout(timeout, TLSHandshakeTimedOut()):
                    tls_socket.do_handshake()
            except (TLSHandshakeTimedOut, OSError):  # ssl.SSLError is an OSError
                return None
            return handle(tls_socket, address)
        finally:
            tls_socket.close()
