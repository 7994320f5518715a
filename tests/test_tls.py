"""TLS built into the director's WSGI server (director/serving/wsgiserver.py) and its gunicorn
worker: HTTPS answers, and the overload protections still hold under TLS (a handshake
deadline, the header deadline, the kernel's queueing-delay reading, the overflow pool's
429). Certificates come from a CA made by the test (trustme); the demo's own CA
(director/demo/tls.py) is checked with a real handshake too."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
import requests
from certs import Certificates, make_certificates
from processes import REPO_ROOT, manage_env, run_manage_ok, sqlite_url, wait_until_healthy

from director.demo import tls as demo_tls
from director.serving.tls import tls_context as server_context
from director.serving.wsgiserver import DirectorHandler, DirectorServer, make_server, request_wait

SOCKET_DEADLINE = 20.0  # generous: what the tests wait for, never what they assert on


def app(environ: dict, start_response) -> list[bytes]:
    body = environ["wsgi.url_scheme"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def start_tls_server(
    certificates: Certificates, *, connections: int = 4, overflow: int = 0
) -> DirectorServer:
    server = make_server(
        "127.0.0.1",
        0,
        app,
        connections=connections,
        keepalive_timeout=5.0,
        overflow=overflow,
        tls=server_context(str(certificates.cert), str(certificates.key)),
    )
    server.start()
    return server


@pytest.fixture
def tls_server(certificates: Certificates) -> Iterator[DirectorServer]:
    server = start_tls_server(certificates)
    yield server
    server.stop(timeout=1)


def closed_unanswered(sock: socket.socket) -> bool:
    """The server closed ``sock`` without a byte of answer (an orderly close, or a reset
    when it had not read all the client sent)."""
    sock.settimeout(SOCKET_DEADLINE)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def client_context(certificates: Certificates) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificates.ca))


def test_https_is_answered_and_plain_http_on_the_tls_port_is_closed(tls_server, certificates):
    url = f"https://127.0.0.1:{tls_server.server_port}/"

    with pytest.raises(requests.exceptions.SSLError):  # a CA the client does not trust
        requests.get(url, timeout=SOCKET_DEADLINE)
    with socket.create_connection(("127.0.0.1", tls_server.server_port)) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed_unanswered(plain)  # no handshake: no answer
    answer = requests.get(url, verify=str(certificates.ca), timeout=SOCKET_DEADLINE)

    assert answer.status_code == 200
    assert answer.text == "https"  # WSGI's url_scheme: what the director's URLs say


def test_a_client_that_never_finishes_its_handshake_is_dropped_at_the_deadline(
    tls_server, certificates
):
    tls_server.handshake_timeout = 0.5
    silent = socket.create_connection(("127.0.0.1", tls_server.server_port))
    dripping = socket.create_connection(("127.0.0.1", tls_server.server_port))
    try:
        dripping.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
        assert closed_unanswered(silent)
        assert closed_unanswered(dripping)
    finally:
        silent.close()
        dripping.close()
    # The connection greenlets were given back: the server still answers.
    answer = requests.get(
        f"https://127.0.0.1:{tls_server.server_port}/",
        verify=str(certificates.ca),
        timeout=SOCKET_DEADLINE,
    )
    assert answer.status_code == 200


def test_the_header_deadline_holds_after_the_handshake(tls_server, certificates, monkeypatch):
    monkeypatch.setattr(DirectorHandler, "header_timeout", 0.5)
    raw = socket.create_connection(("127.0.0.1", tls_server.server_port))
    with client_context(certificates).wrap_socket(raw, server_hostname="127.0.0.1") as client:
        client.settimeout(SOCKET_DEADLINE)
        client.sendall(b"GET / HTTP/1.1\r\n")
        for _ in range(20):  # a header byte every 0.2 s: slower than the deadline allows
            gevent.sleep(0.2)
            try:
                client.sendall(b"X")
            except OSError:
                break
        answer = b""
        try:
            while chunk := client.recv(4096):
                answer += chunk
        except (ssl.SSLError, ConnectionResetError):
            pass
    assert b"200 OK" not in answer  # never served: a 400, or just closed


def test_a_requests_queueing_delay_is_read_from_the_kernel_under_tls(certificates):
    """request_wait reads TCP_INFO through the TLS socket: the time since the request's
    (encrypted) bytes arrived, not since the handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    server_side = server_context(str(certificates.cert), str(certificates.key))

    def client() -> None:
        raw = socket.create_connection(listener.getsockname())
        with client_context(certificates).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            gevent.sleep(5.0)

    sender = gevent.spawn(client)
    try:
        accepted, _ = listener.accept()
        with server_side.wrap_socket(accepted, server_side=True) as tls_socket:
            gevent.sleep(1.0)  # the request waits in the socket's buffer
            assert 0.5 <= request_wait(tls_socket) <= 30.0
            assert tls_socket.recv(1024).startswith(b"GET / ")
    finally:
        sender.kill()
        listener.close()


def test_connections_beyond_the_pool_get_their_429_over_tls(certificates):
    server = start_tls_server(certificates, connections=1, overflow=2)
    url = f"https://127.0.0.1:{server.server_port}/"
    try:
        with requests.Session() as held:  # the one connection slot, kept alive
            ca = str(certificates.ca)
            assert held.get(url, verify=ca, timeout=SOCKET_DEADLINE).text == "https"
            extra = requests.get(url, verify=str(certificates.ca), timeout=SOCKET_DEADLINE)
        assert extra.status_code == 429
        assert extra.headers["Connection"] == "close"
        assert extra.headers["Retry-After"] == "1"
        assert "connection limit" in extra.json()["msg"]
    finally:
        server.stop(timeout=1)


def test_the_demo_ca_is_made_once_and_its_certificate_is_trusted(tmp_path):
    made = demo_tls.ensure_certificates(tmp_path / "demo-tls", ("127.0.0.1",))
    again = demo_tls.ensure_certificates(tmp_path / "demo-tls", ("127.0.0.1",))
    renamed = demo_tls.ensure_certificates(tmp_path / "demo-tls", ("director.test",))

    assert again == made
    for key in (made.key, tmp_path / "demo-tls" / demo_tls.CA_KEY_FILE):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    # A new name: a new server certificate from the same CA.
    assert renamed.ca.read_bytes() == made.ca.read_bytes()
    server = make_server(
        "127.0.0.1",
        0,
        app,
        connections=2,
        keepalive_timeout=5.0,
        tls=server_context(str(renamed.cert), str(renamed.key)),
    )
    server.start()
    try:
        for host in ("127.0.0.1", "localhost"):
            answer = requests.get(
                f"https://{host}:{server.server_port}/",
                verify=str(made.ca),
                timeout=SOCKET_DEADLINE,
            )
            assert answer.text == "https"
    finally:
        server.stop(timeout=1)


def test_gunicorn_serves_https_with_certfile_and_keyfile(tmp_path, certificates, monkeypatch):
    """gunicorn's own ``--certfile``/``--keyfile`` with the director's worker."""
    env = manage_env(sqlite_url(tmp_path), DIRECTOR_WORKERS="1")
    run_manage_ok("migrate", "--noinput", env=env)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stderr_path = tmp_path / "gunicorn.stderr"
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        "gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--certfile",
        str(certificates.cert),
        "--keyfile",
        str(certificates.key),
    ]
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
        )
    url = f"https://127.0.0.1:{port}"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates.ca))
    try:
        wait_until_healthy(url, stderr_path)
        directors = requests.get(f"{url}/api/v1.0/director/directors", timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    assert directors.status_code == 200, directors.text
    # The worker knows it serves TLS: this director's own ad names its https URL.
    assert [ad["advertise_url"] for ad in directors.json()] == [url]
