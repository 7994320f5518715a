"""End-to-end deployment tests: real ``manage.py`` subprocesses on a fresh database.

Each test copies the environment, points ``DATABASE_URL`` at a database of its own (a new
SQLite file under ``tmp_path``, or a new PostgreSQL database) and drives the director the
way an operator does: ``migrate``, ``issuetoken``, ``serve --port 0``, then real HTTP on
loopback. gevent is monkey-patched in this process (pytest plugin), so ``subprocess``,
``threading`` and ``queue`` below are cooperative. Every wait has a deadline and every
process started here is terminated (then killed) when the test ends, pass or fail.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from processes import (
    CONVERGENCE_LIMIT,
    CURL_LINE,
    DEMO_MEMBERS_LINE,
    HTTP_TIMEOUT,
    REPO_ROOT,
    START_TIMEOUT,
    Spawn,
    issue_token,
    link_urls,
    manage_env,
    origin_ad,
    poll_until,
    register_origin,
    run_manage,
    run_manage_ok,
    serve,
    sqlite_url,
    wait_until_healthy,
)

from director.demo.federation import DEMO_FILES
from director.demo.fileserver import FileServer


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
        wait_until_healthy(url, stderr_path)
        register_origin(url, secret, origin_ad("gunicorn-origin", origin.url, "/gu"))
        # The worker that did not take the ad sees it at its next poll (1 s): wait until
        # ten answers in a row (from either worker) redirect.
        in_a_row = 0
        give_up = time.monotonic() + 30.0
        while in_a_row < 10 and time.monotonic() < give_up:
            answer = requests.get(
                f"{url}/api/v1.0/director/origin/gu/file.txt", allow_redirects=False, timeout=5
            )
            in_a_row = in_a_row + 1 if answer.status_code == 307 else 0
            time.sleep(0.05)

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


def test_check_deploy_is_clean_in_production_mode_and_says_what_is_missing_otherwise(
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path / 'director.sqlite3'}"
    key = "k" + "".join(chr(ord("a") + n % 26) + str(n) for n in range(30))
    production = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=manage_env(
            database,
            DJANGO_SECURE="1",
            DJANGO_SECRET_KEY=key,
            DJANGO_DEBUG=None,
            DIRECTOR_EXTERNAL_URL="https://director.example.org",
        ),
    )
    assert production.returncode == 0, production.stdout + production.stderr
    laptop = run_manage(
        "check",
        "--deploy",
        env=manage_env(
            database, DJANGO_SECURE=None, DJANGO_SECRET_KEY=None, DIRECTOR_EXTERNAL_URL=None
        ),
    )
    warnings = ("security.W004", "security.W008", "security.W012", "director.W001", "director.W002")
    for warning in warnings:
        assert warning in laptop.stderr + laptop.stdout
