"""Director processes for tests: ``manage.py`` commands and ``serve`` children on a
database of the test's own, with every wait bounded and every child stopped.

gevent is monkey-patched in the test process (pytest plugin), so ``subprocess``,
``threading`` and ``queue`` here are cooperative.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import re
import secrets
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


def serve_named(workdir: Path, **env: str) -> tuple[ManagedProcess, str, dict[str, str]]:
    """A migrated ``manage.py serve`` on its own SQLite database in ``workdir``, named by
    its URL as a deployment is (DIRECTOR_EXTERNAL_URL, on a port chosen before it
    starts: only then does it mint tokens); its process, URL and environment. The caller
    stops the process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    environment = manage_env(
        sqlite_url(workdir), DIRECTOR_EXTERNAL_URL=f"http://127.0.0.1:{port}", **env
    )
    run_manage_ok("migrate", "--noinput", "-v0", env=environment)
    stderr_path = workdir / "serve.stderr"
    with stderr_path.open("w") as stderr:
        popen = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    process = ManagedProcess(workdir.name, popen, stderr_path)
    process.start_reader()
    url = ""
    try:
        url = process.wait_for_line(SERVING_LINE, START_TIMEOUT).group(1)
    finally:
        if not url:  # it never served: stopped here, the caller gets no process to stop
            process.stop()
    return process, url, environment


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


def wait_until_healthy(url: str, log: Path) -> None:
    """``url``'s health answers 200 within START_TIMEOUT, or fail with the process's log."""

    def healthy() -> bool | None:
        try:
            answer = requests.get(f"{url}/api/v1.0/health", timeout=HTTP_TIMEOUT)
        except requests.RequestException:
            return None
        return True if answer.status_code == 200 else None

    ready, _ = poll_until(healthy, START_TIMEOUT)
    assert ready, log.read_text()


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
