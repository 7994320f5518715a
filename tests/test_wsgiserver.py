"""The director's WSGI server (director/serving/wsgiserver.py): slow or idle clients cannot hold
its connection slots."""

from __future__ import annotations

import socket
import time

import gevent
import pytest
import requests

from director.serving.wsgiserver import DirectorHandler, make_server


@pytest.fixture
def tiny_server():
    def app(environ: dict, start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])  # type: ignore[operator]
        return [b"ok"]

    server = make_server("127.0.0.1", 0, app, connections=2, keepalive_timeout=0.5)
    original = DirectorHandler.header_timeout
    DirectorHandler.header_timeout = 0.6
    server.start()
    yield server
    server.stop(timeout=0.5)
    DirectorHandler.header_timeout = original


def test_clients_dripping_their_headers_cannot_hold_the_connection_slots(tiny_server):
    port = tiny_server.server_port

    def drip() -> str:
        connection = socket.create_connection(("127.0.0.1", port))
        try:
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n":
                connection.sendall(bytes([byte]))
                gevent.sleep(0.3)
            return "held"
        except OSError:
            return "closed"
        finally:
            connection.close()

    dripping = [gevent.spawn(drip) for _ in range(2)]  # every slot of the server
    gevent.sleep(1.0)
    started = time.monotonic()
    answer = requests.get(f"http://127.0.0.1:{port}/", timeout=5)

    assert answer.text == "ok"
    assert time.monotonic() - started < 2.0
    gevent.joinall(dripping, timeout=20)
    assert [greenlet.value for greenlet in dripping] == ["closed", "closed"]


def test_an_idle_connection_is_closed_after_the_keepalive_timeout(tiny_server):
    connection = socket.create_connection(("127.0.0.1", tiny_server.server_port))
    connection.settimeout(5)
    started = time.monotonic()

    assert connection.recv(10) == b""
    assert 0.4 < time.monotonic() - started < 2.0
