"""A real Pelican client over TLS: pelicanfs (the Pelican team's fsspec client, pinned in
requirements-pelicanfs.txt) and requests against ``manage.py serve --tls-cert`` with a
CA made by the test (trustme), routing to the demo's own file servers (an origin serving
a data folder, a cache pulling through the director, a protected origin).

One director process and one set of servers for the module; pelicanfs runs in a process
of its own (tests/pelicanfs_client.py), reaching nothing but loopback. Also ``make run``'s
own pelicanfs line, run as printed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from certs import Certificates, make_certificates
from director_process import DirectorProcess
from helpers import caps
from processes import REPO_ROOT, START_TIMEOUT, Spawn, manage_env, run_manage_ok, sqlite_url

from director.demo.federation import DEMO_FILES
from director.demo.fileserver import FileServer

PELICANFS_PYTHON = REPO_ROOT / ".venv-pelicanfs" / "bin" / "python"
CLIENT = Path(__file__).with_name("pelicanfs_client.py")
CLIENT_TIMEOUT = 180.0  # seconds for a whole batch of pelicanfs operations
HELLO = b"Hello over TLS from a pelicanfs test!\n"
NUMBERS = b"n,square\n" + b"".join(f"{n},{n * n}\n".encode() for n in range(1, 11))
DEEP = bytes(range(256)) * 4
SECRET = b"for token holders only\n"
TOKEN = "a-bearer-token-for-the-protected-origin"
PUBLIC = caps(PublicRead=True, Read=True, Listing=True)
PROTECTED = caps(Read=True, Listing=True, FallBackRead=True)
# Tokens, caches and clients the environment may point pelicanfs at: none of them here.
CLIENT_ENV_DROPPED = ("BEARER_TOKEN", "BEARER_TOKEN_FILE", "TOKEN", "_CONDOR_CREDS")

pytestmark = pytest.mark.skipif(
    not PELICANFS_PYTHON.exists(), reason="no .venv-pelicanfs: run `make install`"
)


class Federation:
    """The director (its HTTPS URL for clients, its HTTP URL for the servers' own
    traffic) and the servers it routes to."""

    def __init__(self, director: DirectorProcess, certificates: Certificates) -> None:
        self.director = director
        self.certificates = certificates
        self.servers: list[FileServer] = []

    @property
    def https(self) -> str:
        return self.director.tls_url

    @property
    def pelican_url(self) -> str:
        return "pelican://" + self.https.split("://", 1)[1]

    def start_server(self, **kw: Any) -> FileServer:
        server = FileServer(**kw).start()
        self.servers.append(server)
        return server

    def advertise(self, name: str, kind: str, url: str, namespace: str, served: dict) -> None:
        prefix = f"/{kind}s/{name}"
        now = dt.datetime.now(dt.UTC)
        ad = {
            "name": name,
            "registry-prefix": prefix,
            "data-url": url,
            "web-url": url,
            "capabilities": served,
            "namespaces": [{"Caps": served, "path": namespace}],
            "status": "ok",
            "version": "7.20.0",
            "now": now.isoformat(),
            "expiry": (now + dt.timedelta(minutes=30)).isoformat(),
        }
        endpoint = "registerOrigin" if kind == "origin" else "registerCache"
        answer = requests.post(
            f"{self.https}/api/v1.0/director/{endpoint}",
            json=ad,
            headers={"Authorization": f"Bearer {self.director.tokens[prefix]}"},
            verify=str(self.certificates.ca),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 10)
        return requests.get(f"{self.https}{path}", verify=str(self.certificates.ca), **kw)

    def pelicanfs(self, steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return run_pelicanfs(self.pelican_url, self.certificates.ca, steps)


def client_env(ca: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_DROPPED}
    env.update(SSL_CERT_FILE=str(ca), HOME=str(home))
    return env


def run_pelicanfs(url: str, ca: Path, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """pelicanfs ``steps`` against the federation at ``url`` (pelican://host:port),
    trusting ``ca``."""
    home = ca.parent / "client-home"
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [
            str(PELICANFS_PYTHON),
            str(CLIENT),
            json.dumps({"federation": url, "steps": steps}),
        ],
        cwd=home,
        env=client_env(ca, home),
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def value(results: dict[str, Any], name: str) -> Any:
    result = results[name]
    assert "value" in result, f"{name}: {result}"
    return result["value"]


def data(results: dict[str, Any], name: str) -> bytes:
    return value(results, name)["bytes"].encode("latin-1")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    workdir = tmp_path_factory.mktemp("pelicanfs")
    certificates = make_certificates(workdir / "tls")
    prefixes = ["/origins/pub-origin", "/origins/secret-origin", "/caches/pub-cache"]
    director = DirectorProcess(workdir, health_test_interval=0.0)
    federation = Federation(director, certificates)
    tls = (
        "--tls-port",
        "0",
        "--tls-cert",
        str(certificates.cert),
        "--tls-key",
        str(certificates.key),
    )
    director.start(prefixes, *tls)
    try:
        data_dir = workdir / "data"
        (data_dir / "pub" / "data" / "deep").mkdir(parents=True)
        (data_dir / "pub" / "hello.txt").write_bytes(HELLO)
        (data_dir / "pub" / "data" / "numbers.csv").write_bytes(NUMBERS)
        (data_dir / "pub" / "data" / "deep" / "bytes.bin").write_bytes(DEEP)
        (data_dir / "secret").mkdir()
        (data_dir / "secret" / "note.txt").write_bytes(SECRET)
        origin = federation.start_server(root=data_dir, name="pub-origin")
        cache = federation.start_server(name="pub-cache", upstream_director=director.url)
        protected = federation.start_server(root=data_dir, name="secret-origin")
        protected.behaviour.required_token = TOKEN
        federation.advertise("pub-origin", "origin", origin.url, "/pub", PUBLIC)
        federation.advertise("pub-cache", "cache", cache.url, "/pub", PUBLIC)
        federation.advertise("secret-origin", "origin", protected.url, "/secret", PROTECTED)
        yield federation
    finally:
        for server in federation.servers:
            server.stop(timeout=0.5)
        director.stop()


def test_requests_over_tls_discovers_reads_a_range_and_lists(federation):
    discovery = federation.get("/.well-known/pelican-configuration")
    whole = federation.get("/pub/hello.txt")
    ranged = federation.get("/pub/hello.txt", headers={"Range": "bytes=5-8"})
    listing = requests.request(
        "PROPFIND",
        f"{federation.https}/pub/data",
        headers={"Depth": "1"},
        verify=str(federation.certificates.ca),
        timeout=10,
    )

    assert discovery.status_code == 200
    assert discovery.json()["director_endpoint"] == federation.https
    assert whole.content == HELLO
    assert whole.history[0].status_code == 307  # through the director over TLS
    assert ranged.status_code == 206 and ranged.content == HELLO[5:9]
    assert listing.status_code == 207
    hrefs = sorted(e.text or "" for e in ET.fromstring(listing.content).iter("{DAV:}href"))
    assert hrefs == ["/pub/data/", "/pub/data/deep/", "/pub/data/numbers.csv"]


def test_pelicanfs_reads_lists_and_inspects_a_public_namespace(federation):
    results = federation.pelicanfs(
        [
            {"name": "cat", "op": "cat", "args": ["/pub/hello.txt"]},
            {"name": "range", "op": "cat_file", "args": ["/pub/data/numbers.csv", 9, 13]},
            {"name": "seek", "op": "seek_read", "args": ["/pub/data/deep/bytes.bin", 300, 8]},
            {"name": "info", "op": "info", "args": ["/pub/data/numbers.csv"]},
            {"name": "isfile", "op": "isfile", "args": ["/pub/hello.txt"]},
            {"name": "isfile-dir", "op": "isfile", "args": ["/pub/data"]},
            {"name": "isdir", "op": "isdir", "args": ["/pub/data"]},
            {"name": "isdir-file", "op": "isdir", "args": ["/pub/hello.txt"]},
            {"name": "ls", "op": "ls", "args": ["/pub"], "kwargs": {"detail": False}},
            {"name": "ls-detail", "op": "ls", "args": ["/pub/data"]},
            {"name": "glob", "op": "glob", "args": ["/pub/**/*.csv"]},
            {"name": "find", "op": "find", "args": ["/pub"]},
            {"name": "du", "op": "du", "args": ["/pub"]},
            {"name": "exists", "op": "exists", "args": ["/pub/hello.txt"]},
            {"name": "exists-missing", "op": "exists", "args": ["/pub/no-such-object.txt"]},
        ]
    )

    assert data(results, "cat") == HELLO
    assert data(results, "range") == NUMBERS[9:13]
    assert data(results, "seek") == DEEP[300:308]
    info = value(results, "info")
    assert (info["name"], info["size"]) == ("/pub/data/numbers.csv", len(NUMBERS))
    assert value(results, "isfile") is True
    assert value(results, "isfile-dir") is False
    assert value(results, "isdir") is True
    assert value(results, "isdir-file") is False
    assert sorted(value(results, "ls")) == ["/pub/data/", "/pub/hello.txt"]
    detail = {entry["name"]: entry for entry in value(results, "ls-detail")}
    assert detail["/pub/data/numbers.csv"]["size"] == len(NUMBERS)
    assert detail["/pub/data/numbers.csv"]["type"] == "file"
    assert detail["/pub/data/deep/"]["type"] == "directory"
    assert value(results, "glob") == ["/pub/data/numbers.csv"]
    assert sorted(value(results, "find")) == [
        "/pub/data/deep/bytes.bin",
        "/pub/data/numbers.csv",
        "/pub/hello.txt",
    ]
    assert value(results, "du") == len(HELLO) + len(NUMBERS) + len(DEEP)
    assert value(results, "exists") is True
    assert value(results, "exists-missing") is False


def test_pelicanfs_with_a_protected_namespace_missing_objects_and_unknown_paths(federation):
    results = federation.pelicanfs(
        [
            {"name": "with-token", "op": "cat", "args": ["/secret/note.txt"], "token": TOKEN},
            {"name": "ls-with-token", "op": "ls", "args": ["/secret"], "token": TOKEN},
            {"name": "without-token", "op": "cat", "args": ["/secret/note.txt"]},
            {"name": "missing", "op": "cat", "args": ["/pub/no-such-object.txt"]},
            {"name": "outside", "op": "cat", "args": ["/nowhere/at/all.txt"]},
        ]
    )

    assert data(results, "with-token") == SECRET
    assert [entry["name"] for entry in value(results, "ls-with-token")] == ["/secret/note.txt"]
    # Without a token the origin refuses (403): pelicanfs finds no server it may use.
    assert results["without-token"]["error"] == "NoAvailableSource", results["without-token"]
    [protected] = [server for server in federation.servers if server.name == "secret-origin"]
    asked = [h for h in protected.seen_headers if h["path"] == "/secret/note.txt"]
    assert any("Authorization" not in h for h in asked), asked  # it did ask, tokenless
    assert results["missing"]["error"] == "FileNotFoundError", results["missing"]
    # No namespace: the director answers 404 and names no server to try.
    assert results["outside"]["error"] == "NoAvailableSource", results["outside"]
    answer = federation.get("/nowhere/at/all.txt", allow_redirects=False)
    assert answer.status_code == 404 and "Link" not in answer.headers


PELICANFS_LINE = re.compile(r"^\s*(SSL_CERT_FILE=\S+ \.venv-pelicanfs/bin/python -c .*)$")


def test_make_runs_pelicanfs_line_reads_the_demo_over_https(tmp_path: Path, spawn: Spawn):
    """``make run`` as a new user meets it: the printed one-liner, run as printed."""
    env = manage_env(sqlite_url(tmp_path))
    run_manage_ok("migrate", "--noinput", env=env)
    folder = tmp_path / "demo-tls"
    args = ("serve", "--port", "0", "--tls-port", "0", "--demo-tls", str(folder), "--demo")
    director = spawn(*args, env=env, name="make-run")
    line = director.wait_for_line(PELICANFS_LINE, START_TIMEOUT).group(1)

    assert line.startswith(f"SSL_CERT_FILE={folder / 'ca.pem'} ")
    done = subprocess.run(
        ["bash", "-c", line],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k not in CLIENT_ENV_DROPPED},
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr(DEMO_FILES["demo/hello.txt"])

    federation = "pelican://" + line.split("pelican://", 1)[1].split("'", 1)[0]
    results = run_pelicanfs(
        federation,
        folder / "ca.pem",
        [
            {"name": "ls", "op": "ls", "args": ["/demo"], "kwargs": {"detail": False}},
            {"name": "range", "op": "cat_file", "args": ["/demo/data/numbers.csv", 0, 8]},
            {"name": "find", "op": "find", "args": ["/demo"]},
            # Two origins and two caches: the director sends the cache request for a
            # missing object to a cache (it stats no origin when caches serve), whose
            # 404 makes exists() False rather than an error.
            {"name": "exists-missing", "op": "exists", "args": ["/demo/no-such-object.txt"]},
        ],
    )
    assert sorted(value(results, "ls")) == ["/demo/data/", "/demo/hello.txt"]
    assert data(results, "range") == DEMO_FILES["demo/data/numbers.csv"][:8]
    assert sorted(value(results, "find")) == ["/demo/data/numbers.csv", "/demo/hello.txt"]
    assert value(results, "exists-missing") is False
    # The demo's caches pass their health tests: they fetch the test object through the
    # director's HTTPS URL (its external URL), trusting the demo's CA.
    plain = next(
        match.group(1)
        for line in director.lines
        if (match := re.search(r"curl -L (http://\S+)/demo/hello\.txt", line))
    )
    deadline = time.monotonic() + 90
    while True:
        servers = requests.get(f"{plain}/api/v1.0/director_ui/servers", timeout=10).json()
        statuses = {server["name"]: server["healthStatus"] for server in servers}
        if all(status == "OK" for status in statuses.values()):
            break
        assert time.monotonic() < deadline, (statuses, director.describe())
        time.sleep(1)
