"""Bad input gets a clean answer: the right 4xx with the JSON error body, nothing stored,
the same on SQLite and PostgreSQL (this file runs in both passes)."""

from __future__ import annotations

import json
import logging
import socket

import pytest
import requests
from helpers import ORIGIN_UA, configure_director, make_ad, namespace_ad

from director.models import Downtime, RegistrationToken, Server
from director.serving.logsafe import EscapingFormatter, escape_controls

pytestmark = pytest.mark.django_db


@pytest.fixture
def send_ad(client):
    configure_director()
    _, secret = RegistrationToken.issue("/origins/bad")

    def send(**fields):
        ad = make_ad("bad", "origin", "http://127.0.0.1:9", **fields)
        return client.post(
            "/api/v1.0/director/registerOrigin",
            data=json.dumps(ad),
            content_type="application/json",
            headers={"Authorization": f"Bearer {secret}", "User-Agent": ORIGIN_UA},
        )

    return send


def assert_json_error(answer, status: int, fragment: str = "") -> None:
    assert answer.status_code == status, answer.content
    assert answer["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["status"] == "error"
    assert fragment in body["msg"]


DOWNTIME = {"class": "SCHEDULED", "severity": "", "startTime": 0, "endTime": -1}


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"downtimes": [DOWNTIME | {"id": "d" * 101}]}, "at most 100 characters"),
        ({"downtimes": [DOWNTIME | {"id": 10**101}]}, "at most 100 characters"),
        ({"requiredFeatures": ["Cache\x00Authz"]}, "NUL"),
        ({"requiredFeatures": ["f" * 101]}, "at most 100 characters"),
        ({"registry-prefix": "/origins/bad\x00"}, "NUL"),
        ({"namespaces": [namespace_ad("/ok", **{"x\x00": 1})]}, "NUL"),
        ({"version": "v" * 101}, "at most 100 characters"),
    ],
    ids=[
        "long-id",
        "long-int-id",
        "nul-feature",
        "long-feature",
        "nul-prefix",
        "nul-key",
        "long-version",
    ],
)
def test_ad_values_beyond_their_columns_or_with_a_nul_are_refused_whole(send_ad, fields, fragment):
    assert_json_error(send_ad(**fields), 400, fragment)
    assert not Server.objects.filter(name="bad").exists()
    assert not Downtime.objects.exists()


def test_the_longest_allowed_values_are_stored(send_ad):
    answer = send_ad(
        downtimes=[DOWNTIME | {"id": "d" * 100}],
        requiredFeatures=["f" * 100],
        version="v" * 100,
    )
    assert answer.status_code == 200, answer.content
    server = Server.objects.get(name="bad")
    assert server.required_features == ["f" * 100]
    assert Downtime.objects.get(server=server).external_id == "d" * 100


def test_an_expiry_far_before_the_senders_now_is_expired_not_an_overflow(send_ad):
    answer = send_ad(expiry="0002-01-01T00:00:00Z", now="9999-12-31T00:00:00Z")
    assert_json_error(answer, 400, "expired")
    answer = send_ad(expiry="9999-12-31T00:00:00Z", now="0002-01-01T00:00:00Z")
    assert answer.status_code == 200, answer.content  # cut to the longest lifetime


@pytest.fixture
def echo_server():
    """The director's WSGI server (serve and the gunicorn worker) before an app that
    answers with the path it was given."""
    from director.serving.wsgiserver import make_server

    def app(environ: dict, start_response) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode("latin-1")]

    server = make_server("127.0.0.1", 0, app, connections=4, keepalive_timeout=2.0)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.stop(timeout=1)


@pytest.mark.parametrize(
    "path", ["/api/v1.0/director/origin/u8/a%ffb", "/u8/a%c3", "/api/v1.0/director/object/%80"]
)
def test_a_path_that_is_not_utf8_is_refused_not_renamed(echo_server, path):
    answer = requests.get(echo_server + path, timeout=10)
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("application/json")
    assert "UTF-8" in answer.json()["msg"]


def test_a_utf8_path_reaches_the_application(echo_server):
    answer = requests.get(echo_server + "/u8/%C3%A9%25FF", timeout=10)
    assert answer.status_code == 200
    assert answer.content == "/u8/é%FF".encode()


def test_a_bad_host_header_gets_the_json_error(client):
    answer = client.get("/.well-known/pelican-configuration", HTTP_HOST="bad host")
    assert_json_error(answer, 400, "Host")


def test_log_messages_cannot_forge_lines(send_ad):
    formatter = EscapingFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.WARNING, "", 0, "server %s", ("a\r\nFORGED",), None)
    assert formatter.format(record) == "WARNING server a\\r\\nFORGED"
    assert escape_controls("tab\tkept, \x1b[31m\u2028") == "tab\tkept, \\x1b[31m\\u2028"
    # the configured console handler is the escaping one
    handlers = logging.getLogger().handlers
    assert any(isinstance(handler.formatter, EscapingFormatter) for handler in handlers)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"NOT A REQUEST LINE\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 3\r\n\r\nabc",
            400,
        ),
    ],
    ids=[
        "414-long-line",
        "400-request-line",
        "400-version",
        "400-length",
        "400-long-header",
        "400-te-and-length",
    ],
)
def test_the_wsgi_server_answers_its_own_errors_with_the_json_body(request_bytes, status):
    from director.serving.wsgiserver import make_server

    def app(environ: dict, start_response: object) -> list[bytes]:
        raise AssertionError("the application must not see a malformed request")

    server = make_server("127.0.0.1", 0, app, connections=4, keepalive_timeout=2.0)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
            sock.sendall(request_bytes)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
    finally:
        server.stop(timeout=1)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].startswith(f"HTTP/1.1 {status}".encode())
    assert b"application/json" in head
    assert json.loads(body)["status"] == "error"
