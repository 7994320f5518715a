"""End-to-end deployment tests: real ``manage.py`` subprocesses on a fresh database.

Each test copies the environment, points ``DATABASE_URL`` at a database of its own (a new
SQLite file under ``tmp_path``, or a new PostgreSQL database) and drives the director the
way an operator does: ``migrate``, ``issuetoken``, ``serve --port 0``, then real HTTP on
loopback. gevent is monkey-patched in this process (pytest plugin), so ``subprocess``,
``threading`` and ``queue`` below are cooperative. Every wait has a deadline and every
process started here is terminated (then killed) when the test ends, pass or fail.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from director.demo.federation import DEMO_FILES
from director.demo.fileserver import FileServer

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVING_LINE = re.compile(r"^director serving on (http://\S+) \(")
CURL_LINE = re.compile(r"^\s*curl -L (\S+)\s*$")
DEMO_MEMBERS_LINE = re.compile(r"^demo federation: (.*)$")
START_TIMEOUT = 20.0  # seconds for a serve process to print its serving line
COMMAND_TIMEOUT = 60.0  # seconds for migrate / issuetoken / check
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
HTTP_TIMEOUT = 5.0
CONVERGENCE_LIMIT = 2.5  # seconds: poll interval 1 s, plus a rebuild and some slack
PUBLIC_CAPS = {
    "PublicRead": True,
    "Read": True,
    "Write": False,
    "Listing": False,
    "FallBackRead": False,
    "Copies": False,
}
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

T = TypeVar("T")


# --- helpers: environment, commands, processes -----------------------------------------------


def sqlite_url(tmp_path: Path, name: str = "director.sqlite3") -> str:
    return f"sqlite:///{tmp_path / name}"  # an absolute path gives sqlite:////tmp/...


def manage_env(database_url: str, **overrides: str | None) -> dict[str, str]:
    """os.environ plus DATABASE_URL and unbuffered output; an override of None unsets."""
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env["PYTHONUNBUFFERED"] = "1"
    # The poll interval is 1 s unless a test asks otherwise.
    env.pop("DIRECTOR_REGISTRY_POLL_INTERVAL", None)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_manage(
    *args: str, env: dict[str, str], timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py ARGS`` to completion (with a deadline) and return its output."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_manage_ok(*args: str, env: dict[str, str]) -> str:
    result = run_manage(*args, env=env)
    assert result.returncode == 0, (
        f"manage.py {' '.join(args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


@dataclass
class ManagedProcess:
    """A running ``manage.py`` subprocess whose stdout is read line by line by a thread."""

    name: str
    popen: subprocess.Popen[str]
    stderr_path: Path
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _reader: threading.Thread | None = None

    def start_reader(self) -> None:
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        try:
            for line in self.popen.stdout:
                self._queue.put(line.rstrip("\n"))
        except (OSError, ValueError):  # the pipe was closed under us at teardown
            pass
        finally:
            self._queue.put(None)

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self) -> str:
        return (
            f"{self.name} (exit status {self.popen.poll()})\n"
            f"stdout so far:\n" + "\n".join(self.lines) + f"\nstderr:\n{self.stderr_text()}"
        )

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first *new* stdout line matching ``pattern``, read within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(
                    f"no line matching {pattern.pattern!r} within {timeout} s from "
                    + self.describe()
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self._queue.put(None)  # keep the end-of-output marker for later waits
                self.popen.wait(timeout=STOP_GRACE)
                pytest.fail(f"output ended before {pattern.pattern!r}: " + self.describe())
            self.lines.append(line)
            match = pattern.search(line)
            if match:
                return match

    def drain(self) -> None:
        """Move whatever the reader has queued into ``lines`` (no waiting)."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self._queue.put(None)
                return
            self.lines.append(line)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_GRACE seconds; the exit status."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_GRACE)
        if self._reader is not None:
            self._reader.join(timeout=STOP_GRACE)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self.drain()
        return self.popen.returncode


Spawn = Callable[..., ManagedProcess]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``manage.py ARGS`` in the background; everything started is stopped at the end."""
    started: list[ManagedProcess] = []

    def start(*args: str, env: dict[str, str], name: str | None = None) -> ManagedProcess:
        label = name or f"{args[0]}-{len(started)}"
        stderr_path = tmp_path / f"{label}.stderr"
        with stderr_path.open("w") as stderr:
            popen = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        process = ManagedProcess(label, popen, stderr_path)
        started.append(process)
        process.start_reader()
        return process

    try:
        yield start
    finally:
        for process in reversed(started):
            process.stop()


def serve(spawn: Spawn, env: dict[str, str], *extra: str, name: str) -> tuple[ManagedProcess, str]:
    """``manage.py serve --port 0 EXTRA``; the process and its base URL once it serves."""
    process = spawn("serve", "--port", "0", *extra, env=env, name=name)
    url = process.wait_for_line(SERVING_LINE, START_TIMEOUT).group(1)
    return process, url


def poll_until(
    probe: Callable[[], T | None], timeout: float, interval: float = 0.05
) -> tuple[T | None, float]:
    """Call ``probe`` until it returns something not None; (result, seconds it took)."""
    started = time.monotonic()
    while True:
        result = probe()
        elapsed = time.monotonic() - started
        if result is not None or elapsed >= timeout:
            return result, elapsed
        time.sleep(interval)


def origin_ad(name: str, data_url: str, namespace: str) -> dict[str, Any]:
    """A Pelican origin advertisement (the shape of tests/helpers.py make_ad)."""
    now = dt.datetime.now(dt.UTC)
    return {
        "name": name,
        "registry-prefix": f"/origins/{name}",
        "data-url": data_url,
        "web-url": data_url,
        "capabilities": PUBLIC_CAPS,
        "namespaces": [{"Caps": PUBLIC_CAPS, "path": namespace}],
        "status": "ok",
        "version": "7.20.0",
        "now": now.isoformat(),
        "expiry": (now + dt.timedelta(minutes=10)).isoformat(),
    }


def register_origin(director_url: str, secret: str, ad: dict[str, Any]) -> None:
    answer = requests.post(
        f"{director_url}/api/v1.0/director/registerOrigin",
        json=ad,
        headers={"Authorization": f"Bearer {secret}", "User-Agent": "pelican-origin/7.20.0"},
        timeout=HTTP_TIMEOUT,
    )
    assert answer.status_code == 200, answer.text


def issue_token(registry_prefix: str, env: dict[str, str]) -> str:
    stdout = run_manage_ok("issuetoken", registry_prefix, env=env)
    secret = stdout.strip()
    assert secret and stdout == f"{secret}\n", f"issuetoken stdout is not one secret: {stdout!r}"
    return secret


@pytest.fixture
def origin_server() -> Iterator[Callable[[dict[str, bytes]], FileServer]]:
    started: list[FileServer] = []

    def start(files: dict[str, bytes]) -> FileServer:
        server = FileServer(files, name="deployment-origin").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(timeout=0.5)


def link_urls(link_header: str) -> list[str]:
    return re.findall(r"<([^>]+)>", link_header)


# --- 1. make run: the demo federation's curl path ----------------------------------------------


def test_demo_federation_curl_line_downloads_the_demo_file(tmp_path: Path, spawn: Spawn) -> None:
    env = manage_env(sqlite_url(tmp_path))
    run_manage_ok("migrate", "--noinput", env=env)
    director, url = serve(spawn, env, "--demo", name="demo-director")
    members_line = director.wait_for_line(DEMO_MEMBERS_LINE, START_TIMEOUT).group(1)
    curl_url = director.wait_for_line(CURL_LINE, START_TIMEOUT).group(1)

    members = dict(item.split(" ", 1) for item in members_line.split(", "))
    caches = {name: member_url for name, member_url in members.items() if "-cache-" in name}
    assert len(caches) == 2, members_line
    assert curl_url.startswith(f"{url}/"), (curl_url, url)
    path = curl_url[len(url) :]
    expected = DEMO_FILES[path.lstrip("/")]

    answer = requests.get(curl_url, allow_redirects=True, timeout=HTTP_TIMEOUT)

    assert answer.status_code == 200, answer.text
    assert answer.content == expected
    first_hop = answer.history[0]
    assert first_hop.status_code == 307
    assert first_hop.url == curl_url
    assert first_hop.headers["Server"].startswith("pelican/")
    listed = link_urls(first_hop.headers["Link"])
    assert sorted(listed) == sorted(f"{cache}{path}" for cache in caches.values())
    assert first_hop.headers["Location"] == listed[0]
    assert answer.url in listed  # the bytes came from one of the two caches


# --- 2. serve without the demo: directors, start-up grace, clean stop ------------------------


def test_serve_without_demo_answers_api_and_start_up_grace(tmp_path: Path, spawn: Spawn) -> None:
    env = manage_env(sqlite_url(tmp_path), DIRECTOR_NAME="deployment-director")
    run_manage_ok("migrate", "--noinput", env=env)
    director, url = serve(spawn, env, name="plain-director")

    # "Connection: close": an idle kept-alive connection would hold the graceful stop
    # below for the server's full two-second stop timeout.
    close = {"Connection": "close"}
    directors = requests.get(
        f"{url}/api/v1.0/director/directors", headers=close, timeout=HTTP_TIMEOUT
    )
    unknown = requests.get(
        f"{url}/nothing/here", headers=close, allow_redirects=False, timeout=HTTP_TIMEOUT
    )

    assert directors.status_code == 200, directors.text
    assert directors.headers["Content-Type"].startswith("application/json")
    [own_ad] = directors.json()
    assert own_ad["name"] == "deployment-director"
    assert own_ad["advertise_url"] == url

    assert unknown.status_code == 429, unknown.text
    assert unknown.headers["Retry-After"] == "1"
    assert unknown.headers["Server"].startswith("pelican/")
    body = unknown.json()
    assert body["status"] == "error"
    assert re.search(r"Request ID: [0-9a-f-]{36}$", body["msg"]), body

    # No demo: nothing but the serving line was printed, and SIGTERM stops it cleanly.
    assert director.stop() == 0, director.describe()
    assert not any("curl" in line for line in director.lines), director.lines
    assert director.lines[-1] == "stopping", director.describe()


# --- 3. two processes, one SQLite file ---------------------------------------------------------


def test_two_directors_sharing_sqlite_converge_within_a_poll(
    tmp_path: Path, spawn: Spawn, origin_server: Callable[[dict[str, bytes]], FileServer]
) -> None:
    env = manage_env(sqlite_url(tmp_path))
    run_manage_ok("migrate", "--noinput", env=env)
    _, url_a = serve(spawn, env, name="director-a")
    _, url_b = serve(spawn, env, name="director-b")
    origin = origin_server({"/conv/x.txt": b"x"})
    object_path = "/api/v1.0/director/origin/conv/x.txt"

    before = requests.get(f"{url_b}{object_path}", allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert before.status_code == 429, before.text  # no origin yet, start-up grace: 429

    secret = issue_token("/origins/o1", env)
    started = time.monotonic()
    register_origin(url_a, secret, origin_ad("o1", origin.url, "/conv"))

    # A rebuilds on commit: it redirects at once.
    at_a = requests.get(f"{url_a}{object_path}", allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert at_a.status_code == 307, at_a.text

    statuses: list[int] = []

    def redirected_at_b() -> requests.Response | None:
        answer = requests.get(f"{url_b}{object_path}", allow_redirects=False, timeout=HTTP_TIMEOUT)
        statuses.append(answer.status_code)
        return answer if answer.status_code == 307 else None

    answer, _ = poll_until(redirected_at_b, timeout=CONVERGENCE_LIMIT + 2.0)
    took = time.monotonic() - started
    assert answer is not None, f"B never redirected; statuses seen: {sorted(set(statuses))}"
    assert took <= CONVERGENCE_LIMIT, f"B converged after {took:.2f} s"
    assert set(statuses) <= {429, 307}, statuses  # never a 404 or 5xx on the way
    assert answer.headers["Location"] == f"{origin.url}/conv/x.txt"
    downloaded = requests.get(f"{url_b}{object_path}", timeout=HTTP_TIMEOUT)
    assert downloaded.status_code == 200
    assert downloaded.content == b"x"


# --- 4. PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, uniquely named PostgreSQL database, dropped afterwards; skip without a server."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=2, autocommit=True)
    except psycopg.Error as error:
        pytest.skip(f"no PostgreSQL answers at {POSTGRES_ADMIN_URL}: {error}")
    name = f"director_test_{secrets.token_hex(6)}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.mark.postgres
def test_postgres_migrate_issue_token_serve_and_redirect(
    postgres_url: str, spawn: Spawn, origin_server: Callable[[dict[str, bytes]], FileServer]
) -> None:
    env = manage_env(postgres_url)
    run_manage_ok("migrate", "--noinput", env=env)
    secret = issue_token("/origins/pg-origin", env)
    _, url = serve(spawn, env, name="postgres-director")
    origin = origin_server({"/pg/data/file.bin": b"bytes stored behind PostgreSQL\n"})

    register_origin(url, secret, origin_ad("pg-origin", origin.url, "/pg"))

    answer = requests.get(f"{url}/api/v1.0/director/origin/pg/data/file.bin", timeout=HTTP_TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.content == b"bytes stored behind PostgreSQL\n"
    assert answer.history[0].status_code == 307
    assert answer.history[0].headers["Location"] == f"{origin.url}/pg/data/file.bin"


# --- 5. DATABASE_URL errors --------------------------------------------------------------------

BAD_DATABASE_URLS = [
    ("mysql://x", "unsupported scheme 'mysql'"),
    ("postgres://postgres@127.0.0.1:5432", "names no database"),
    ("sqlite://", "names no SQLite file"),
]


@pytest.mark.parametrize(("database_url", "reason"), BAD_DATABASE_URLS)
def test_bad_database_url_fails_with_a_message_naming_it(
    tmp_path: Path, database_url: str, reason: str
) -> None:
    result = run_manage("check", env=manage_env(database_url))

    assert result.returncode != 0
    assert f"DATABASE_URL={database_url!r}" in result.stderr, result.stderr
    assert reason in result.stderr, result.stderr


def test_bad_database_url_message_is_not_buried_in_a_traceback() -> None:
    result = run_manage("check", env=manage_env("mysql://x"))

    assert result.returncode != 0
    assert "DATABASE_URL='mysql://x'" in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr, result.stderr


# --- 6. production: gunicorn ---------------------------------------------------------------


def test_gunicorn_serves_redirects_with_one_pelican_server_header(
    tmp_path: Path, origin_server: Callable[[dict[str, bytes]], FileServer]
) -> None:
    """``gunicorn -c gunicorn.conf.py`` as the README runs it in production."""
    env = manage_env(sqlite_url(tmp_path))
    run_manage_ok("migrate", "--noinput", env=env)
    secret = issue_token("/origins/gunicorn-origin", env)
    origin = origin_server({"/gu/file.txt": b"through gunicorn\n"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gunicorn = Path(sys.executable).parent / "gunicorn"
    stderr_path = tmp_path / "gunicorn.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [str(gunicorn), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool | None:
            try:
                answer = requests.get(f"{url}/api/v1.0/health", timeout=HTTP_TIMEOUT)
            except requests.RequestException:
                return None
            return True if answer.status_code == 200 else None

        ready, _ = poll_until(healthy, START_TIMEOUT)
        assert ready, stderr_path.read_text()
        register_origin(url, secret, origin_ad("gunicorn-origin", origin.url, "/gu"))
        time.sleep(1.5)  # the worker that did not take the ad sees it at its next poll (1 s)

        first_hop = requests.get(
            f"{url}/api/v1.0/director/origin/gu/file.txt", allow_redirects=False, timeout=5
        )
        for _ in range(20):  # both workers answer
            downloaded = requests.get(f"{url}/api/v1.0/director/origin/gu/file.txt", timeout=5)
            assert downloaded.content == b"through gunicorn\n"
        servers = first_hop.raw.headers.getlist("Server")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    assert first_hop.status_code == 307, first_hop.text
    assert first_hop.headers["Location"] == f"{origin.url}/gu/file.txt"
    assert servers == ["pelican/0.1.0"]
