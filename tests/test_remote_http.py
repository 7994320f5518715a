"""One bounded exchange (director/remote/http.py) against real loopback servers that
answer, fail, hang, trickle, flood, send garbage or refuse connections: the total
deadline holds, the size cap holds, and each failure is one RemoteError with a short
reason."""

from __future__ import annotations

import io
import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import gevent
import pytest
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

from director import __version__
from director.remote.http import Answer, HttpClient, RemoteError

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# A call bounded by a deadline of 0.5 s returns well within this on a busy machine.
SLACK = 5.0


class Loopback:
    """A pywsgi server on 127.0.0.1:0 whose WSGI app a test sets; it counts requests by
    path and keeps the last request headers."""

    def __init__(self, app: App | None = None) -> None:
        self.app = app or json_app({"ok": True})
        self.requests: Counter[str] = Counter()
        self.last_headers: dict[str, str] = {}
        self.bodies: list[bytes] = []
        self.client_ports: list[str] = []
        self._server = WSGIServer(
            ("127.0.0.1", 0), self._serve, spawn=Pool(200), log=None, error_log=None
        )

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self.requests[environ["PATH_INFO"]] += 1
        self.client_ports.append(environ.get("REMOTE_PORT", ""))
        self.last_headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            self.last_headers["Content-Type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        self.bodies.append(body)
        environ["wsgi.input"] = io.BytesIO(body)  # for the app to read again
        return self.app(environ, start_response)

    def start(self) -> Loopback:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(timeout=0.5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def total(self) -> int:
        return sum(self.requests.values())


def json_app(value: Any, status: str = "200 OK") -> App:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = json.dumps(value).encode()
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    return app


@pytest.fixture
def loopback() -> Iterator[Callable[..., Loopback]]:
    started: list[Loopback] = []

    def start(app: App | None = None) -> Loopback:
        server = Loopback(app).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def refused_url() -> str:
    """A loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/x"


def timed(call: Callable[[], Answer]) -> tuple[Answer | RemoteError, float]:
    started = time.monotonic()
    try:
        result: Answer | RemoteError = call()
    except RemoteError as error:
        result = error
    return result, time.monotonic() - started


def test_an_answer_is_read_whole_with_the_director_user_agent(loopback):
    server = loopback(json_app({"approved": True}))
    answer = HttpClient().request("POST", f"{server.url}/check", json_body={"prefix": "/ns"})
    assert answer.status == 200
    assert answer.json() == {"approved": True}
    assert server.last_headers["User-Agent"] == f"pelican-director/{__version__}"
    assert server.last_headers["Content-Type"] == "application/json"
    assert json.loads(server.bodies[-1]) == {"prefix": "/ns"}


def test_an_error_status_is_an_answer_with_the_remote_message(loopback):
    server = loopback(json_app({"status": "error", "msg": "boom"}, "500 Internal Server Error"))
    answer = HttpClient().request("GET", f"{server.url}/x")
    assert (answer.status, answer.message()) == (500, "boom")


def test_a_server_that_hangs_after_its_headers_is_cut_at_the_total_deadline(loopback):
    def hang(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "100")])
        yield b"{"
        gevent.sleep(30)
        yield b"}"

    server = loopback(hang)
    result, took = timed(lambda: HttpClient(deadline=0.5).request("GET", f"{server.url}/x"))
    assert isinstance(result, RemoteError)
    assert result.reason == "timeout after 0.5 s"
    assert took < SLACK


def test_a_server_that_never_answers_is_cut_at_the_total_deadline(loopback):
    def silent(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        gevent.sleep(30)
        return []

    server = loopback(silent)
    result, took = timed(lambda: HttpClient(deadline=0.5).request("GET", f"{server.url}/x"))
    assert isinstance(result, RemoteError) and result.reason.startswith("timeout")
    assert took < SLACK


def test_a_trickled_body_is_cut_at_the_total_deadline_though_each_read_is_quick(loopback):
    """Each byte comes within 0.1 s (no per-socket timeout would fire); the whole body
    would take 20 s."""

    def trickle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "200")])
        for _ in range(200):
            gevent.sleep(0.1)
            yield b" "

    server = loopback(trickle)
    result, took = timed(lambda: HttpClient(deadline=0.5).request("GET", f"{server.url}/x"))
    assert isinstance(result, RemoteError)
    assert result.reason == "timeout after 0.5 s"
    assert took < SLACK


def test_a_ten_megabyte_body_is_refused_whether_declared_or_not(loopback):
    big = b"x" * (10 * 1024 * 1024)

    def declared(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", str(len(big)))])
        return [big]

    def chunked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [])
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    client = HttpClient(max_bytes=64 * 1024)
    for app in (declared, chunked):
        server = loopback(app)
        with pytest.raises(RemoteError) as refused:
            client.request("GET", f"{server.url}/x")
        assert refused.value.too_big, refused.value.reason
        assert "64" in refused.value.reason or "65536" in refused.value.reason
    # The pool is still usable afterwards, for a body within the cap.
    assert client.request("GET", f"{loopback().url}/x").json() == {"ok": True}


def test_garbage_is_an_answer_whose_json_is_a_clear_error(loopback):
    def garbage(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<html>not a registry</html>"]

    answer = HttpClient().request("GET", f"{loopback(garbage).url}/x")
    with pytest.raises(RemoteError, match="not JSON"):
        answer.json()
    assert answer.message() == "<html>not a registry</html>"


def test_a_refused_connection_is_an_error_at_once():
    result, took = timed(lambda: HttpClient(deadline=2.0).request("GET", refused_url()))
    assert isinstance(result, RemoteError)
    assert result.reason == "connection refused"
    assert took < SLACK


def test_a_url_that_is_not_http_is_refused_before_any_connection():
    with pytest.raises(RemoteError, match="not an http"):
        HttpClient().request("GET", "file:///etc/passwd")


def test_connections_are_reused_and_a_cut_one_is_not(loopback):
    def slow_once(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            gevent.sleep(30)
        start_response("200 OK", [])
        return [b"{}"]

    server = loopback(slow_once)
    client = HttpClient(deadline=0.5)
    for _ in range(5):
        assert client.request("GET", f"{server.url}/x").status == 200
    assert len(set(server.client_ports)) == 1  # one connection, kept
    with pytest.raises(RemoteError, match="timeout"):
        client.request("GET", f"{server.url}/slow")
    assert client.request("GET", f"{server.url}/x").status == 200
    assert server.client_ports[-1] not in server.client_ports[:-2]  # a new connection
