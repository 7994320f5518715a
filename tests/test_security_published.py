"""Less published, less kept (issue 24 item 6): ``server/<prefix>`` names no administrator,
and a token sent in the query (``authz``, ``access_token``) never reaches a log line,
under ``manage.py serve``'s WSGI server or gunicorn, while the request itself still works.
"""

from __future__ import annotations

import io
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from pelican_peer import PelicanPeer
from processes import REPO_ROOT, manage_env, run_manage_ok, sqlite_url, wait_until_healthy

from director.federation.registry import decide
from director.models import RegistrationStatus
from director.serving.logsafe import redact_tokens
from director.serving.wsgiserver import make_server

ADMIN = "alice-the-approver"
# Shaped like a JWT, so that nothing but the redaction keeps it out of a log.
SECRET = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJsZWFrIn0.c2VjcmV0LXNpZ25hdHVyZQ"


@dataclass
class LoggedDirector:
    url: str
    log: io.StringIO  # what the server writes: its access log and error lines

    def access_lines(self) -> list[str]:
        lines = [line for line in self.log.getvalue().splitlines() if '"GET ' in line]
        self.log.seek(0)
        self.log.truncate()
        return lines


@pytest.fixture
def logged_director(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LoggedDirector]:
    """The director under ``manage.py serve``'s server with its access log on: the
    server writes to the sys.stderr of its making, here a buffer of the test's own."""
    log = io.StringIO()
    with monkeypatch.context() as patched:
        patched.setattr(sys, "stderr", log)
        server = make_server(
            "127.0.0.1",
            0,
            get_wsgi_application(),
            connections=50,
            keepalive_timeout=1.0,
            access_log=True,
        )
    server.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with override_settings(DIRECTOR_EXTERNAL_URL=url):
            yield LoggedDirector(url, log)
    finally:
        server.stop(timeout=1)


# --- server/<prefix> -------------------------------------------------------------------------


def test_the_server_record_names_no_administrator_and_still_gives_id_and_name(live_director):
    peer = PelicanPeer(live_director.url, "site-p")
    assert peer.register("/origins/site-p").status_code == 201
    assert peer.register("/caches/site-p").status_code == 201
    decide(["/origins/site-p"], RegistrationStatus.APPROVED, ADMIN)

    answer = peer.server_record("/origins/site-p")

    assert answer.status_code == 200, answer.text
    assert ADMIN not in answer.text
    body = answer.json()
    assert (body["name"], body["is_origin"], body["is_cache"]) == ("site-p", True, True)
    assert re.fullmatch(r"[a-z0-9]{7}", body["id"])
    approved, pending = (item["admin_metadata"] for item in body["registration"])
    assert (approved["status"], approved["approver_id"]) == ("Approved", "")
    assert approved["approved_at"] != "0001-01-01T00:00:00Z"
    assert (pending["status"], pending["approver_id"]) == ("Pending", "")


# --- tokens in the query, out of the logs ----------------------------------------------------


def test_redaction_replaces_only_token_values():
    line = (
        f"GET /api/v1.0/director/origin/f?x=1&authz={SECRET}&Access_Token=Bearer%20{SECRET}"
        "&authz=&y=authz HTTP/1.1"
    )
    assert redact_tokens(line) == (
        "GET /api/v1.0/director/origin/f?x=1&authz=REDACTED&Access_Token=REDACTED"
        "&authz=&y=authz HTTP/1.1"
    )
    assert redact_tokens(f"authorization={SECRET}&next=/a") == "authorization=REDACTED&next=/a"
    assert redact_tokens("GET /ns/file?authzx=1 HTTP/1.1") == "GET /ns/file?authzx=1 HTTP/1.1"


def test_an_advertise_token_in_authz_buys_a_fed_token_but_stays_out_of_serves_access_log(
    logged_director,
):
    url = logged_director.url
    cache = PelicanPeer(url, "cache-q")
    assert cache.register("/caches/cache-q").status_code == 201
    decide(["/caches/cache-q"], RegistrationStatus.APPROVED, ADMIN)
    token = cache.advertise_token(url)
    query = "host=cache-q&sType=Cache"
    logged_director.access_lines()

    bought = requests.get(f"{url}/api/v1.0/director/getFedToken?{query}&authz={token}", timeout=10)
    tokenless = requests.get(f"{url}/api/v1.0/director/getFedToken?{query}", timeout=10)
    redirect = requests.get(
        f"{url}/api/v1.0/director/origin/nowhere/f?access_token={SECRET}&x=1",
        allow_redirects=False,
        timeout=10,
    )
    lines = logged_director.access_lines()

    assert bought.status_code == 200, bought.text  # the query's token still works
    assert bought.json()["access_token"]
    assert tokenless.status_code == 403
    assert len(lines) == 3, lines
    assert token not in "\n".join(lines) and SECRET not in "\n".join(lines)
    assert f'"GET /api/v1.0/director/getFedToken?{query}&authz=REDACTED HTTP/1.1" 200 ' in lines[0]
    assert f'"GET /api/v1.0/director/getFedToken?{query} HTTP/1.1" 403 ' in lines[1]
    assert (
        '"GET /api/v1.0/director/origin/nowhere/f?access_token=REDACTED&x=1 HTTP/1.1" '
        f"{redirect.status_code} " in lines[2]
    )
    assert lines[0].startswith("127.0.0.1 - - [")


def test_a_malformed_request_line_is_logged_without_its_token(logged_director):
    host, port = logged_director.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(f"GET /x?authz={SECRET} HTTP/9.9\r\n\r\n".encode())
        answer = connection.recv(4096)

    assert answer.startswith(b"HTTP/1.1 400")
    logged = logged_director.log.getvalue()
    assert "authz=REDACTED" in logged
    assert SECRET not in logged


def test_gunicorns_access_log_holds_no_token(tmp_path: Path):
    env = manage_env(sqlite_url(tmp_path))
    run_manage_ok("migrate", "--noinput", "-v0", env=env)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    access_log = tmp_path / "access.log"
    stderr_path = tmp_path / "gunicorn.stderr"
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        *("-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1"),
        *("--access-logfile", str(access_log)),
    ]
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, stderr_path)
        answer = requests.get(
            f"{url}/api/v1.0/director/getFedToken?host=h&sType=Cache&authz={SECRET}",
            headers={"Referer": f"https://portal.example/p?authz={SECRET}"},
            timeout=10,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    assert answer.status_code == 403  # an unregistered host: refused, and logged
    logged = access_log.read_text()
    assert SECRET not in logged
    [line] = [line for line in logged.splitlines() if "getFedToken" in line]
    assert (
        '"GET /api/v1.0/director/getFedToken?host=h&sType=Cache&authz=REDACTED HTTP/1.1" 403'
        in (line)
    )
    assert '"https://portal.example/p?authz=REDACTED"' in line
