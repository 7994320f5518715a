"""Several director processes on one PostgreSQL database: two ``manage.py serve`` and a
gunicorn with two workers. An ad sent to one is routed by all within a second, a server
disabled in the admin of one disappears from all, and each process's connections stay
within its budget. Skipped, with the reason, when no PostgreSQL server answers.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import psycopg
import pytest
import requests
from processes import (
    HTTP_TIMEOUT,
    POSTGRES_ADMIN_URL,
    REPO_ROOT,
    Spawn,
    issue_token,
    manage_env,
    origin_ad,
    poll_until,
    register_origin,
    run_manage_ok,
    serve,
    wait_until_healthy,
)

from director.demo.fileserver import FileServer

pytestmark = pytest.mark.postgres

CONVERGENCE = 1.0  # seconds: the poll interval; the test polls with some slack on top
DB_BUDGET = 4
BACKGROUND = 5  # director_project.settings.DATABASE_BACKGROUND_CONNECTIONS


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], str]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str]) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        stderr = (tmp_path / f"gunicorn-{port}.stderr").open("w")
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "-c",
                "gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"

        wait_until_healthy(url, (tmp_path / f"gunicorn-{port}.stderr"))
        return url

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def routed_everywhere(urls: list[str], path: str, routed: bool, repeats: int = 6) -> bool | None:
    """True when every URL redirects (or, ``routed=False``, does not) ``repeats`` times in
    a row: a gunicorn's two workers take turns unpredictably, several answers stand for
    both. (Without a server the answer is 429 during the start-up grace, 404 after.)"""
    for url in urls:
        for _ in range(repeats):
            answer = requests.get(f"{url}{path}", allow_redirects=False, timeout=HTTP_TIMEOUT)
            if (answer.status_code == 307) != routed:
                return None
    return True


def admin_session(url: str, env: dict[str, str]) -> tuple[requests.Session, str]:
    """A logged-in admin session on ``url`` (a superuser made for the test)."""
    run_manage_ok(
        "shell",
        "-c",
        "from django.contrib.auth.models import User\n"
        "User.objects.create_superuser('operator', 'op@example.org', 'pw-for-the-test')",
        env=env,
    )
    session = requests.Session()
    session.get(f"{url}/admin/login/", timeout=HTTP_TIMEOUT)
    token = session.cookies["csrftoken"]
    answer = session.post(
        f"{url}/admin/login/?next=/admin/",
        data={"username": "operator", "password": "pw-for-the-test", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{url}/admin/login/"},
        timeout=HTTP_TIMEOUT,
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:500]
    return session, session.cookies["csrftoken"]


def test_an_ad_and_an_admin_change_reach_every_process_within_a_second(
    postgres_url: str,
    spawn: Spawn,
    gunicorn: Callable[[dict[str, str]], str],
    origin_server: Callable[[dict[str, bytes]], FileServer],
) -> None:
    env = manage_env(postgres_url, DIRECTOR_REGISTRY_POLL_INTERVAL="1")
    run_manage_ok("migrate", "--noinput", env=env)
    secret = issue_token("/origins/shared", env)
    _, url_a = serve(spawn, env, name="director-a")
    _, url_b = serve(spawn, env, name="director-b")
    url_g = gunicorn(env)
    everyone = [url_a, url_b, url_g]
    origin = origin_server({"/shared/f.txt": b"f"})
    path = "/api/v1.0/director/origin/shared/f.txt"

    started = time.monotonic()
    register_origin(url_a, secret, origin_ad("shared", origin.url, "/shared"))
    done, _ = poll_until(lambda: routed_everywhere(everyone, path, routed=True), CONVERGENCE + 2.0)
    took = time.monotonic() - started
    assert done, "not every process routed the ad"
    assert took <= CONVERGENCE + 1.0, f"every process routed the ad after {took:.2f} s"

    session, csrf = admin_session(url_b, env)
    pk = requests.get(f"{url_b}/api/v1.0/director_ui/servers/shared", timeout=5).json()["serverId"]
    started = time.monotonic()
    answer = session.post(
        f"{url_b}/admin/director/server/",
        data={"action": "disable_servers", "_selected_action": pk, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{url_b}/admin/director/server/"},
        timeout=HTTP_TIMEOUT,
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:500]
    done, _ = poll_until(lambda: routed_everywhere(everyone, path, routed=False), CONVERGENCE + 2.0)
    took = time.monotonic() - started
    assert done, "a process still routes the disabled server"
    assert took <= CONVERGENCE + 1.0, f"every process left the server out after {took:.2f} s"


def connections_to(database: str) -> int:
    with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=2, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_each_process_holds_no_more_connections_than_its_database_budget(
    postgres_url: str, spawn: Spawn
) -> None:
    env = manage_env(postgres_url, DIRECTOR_DB_MAX_INFLIGHT=str(DB_BUDGET))
    run_manage_ok("migrate", "--noinput", env=env)
    _, url_a = serve(spawn, env, name="director-a")
    _, url_b = serve(spawn, env, name="director-b")
    database = postgres_url.rsplit("/", 1)[1]
    peak = 0
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, connections_to(database))
            gevent.sleep(0.02)

    sampler = gevent.spawn(sample)
    statuses: list[int] = []

    def ask(url: str) -> None:
        statuses.append(requests.get(f"{url}/api/v1.0/director_ui/servers", timeout=30).status_code)

    gevent.joinall([gevent.spawn(ask, url) for url in [url_a, url_b] * 30], timeout=60)
    sampling = False
    sampler.join(timeout=5)
    assert len(statuses) == 60
    # 503: over the database budget; 429: shed (30 requests at once on a loaded machine
    # can queue past shed_queue_target); never a 500, never a hang.
    assert set(statuses) <= {200, 429, 503}, statuses
    # Per process, its pool: the requests' budget plus the background work.
    assert peak <= 2 * (DB_BUDGET + BACKGROUND), peak
    gevent.sleep(1.5)
    assert connections_to(database) <= 2 * (DB_BUDGET + BACKGROUND)  # kept, up to a minute
