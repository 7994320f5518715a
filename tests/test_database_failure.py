"""A registry database that hangs (frozen, not down) costs redirects nothing, costs a
request that needs it at most its deadline (503 with Retry-After), is reported by health,
and is recovered from without a restart.

Runs against a PostgreSQL server of the test's own, frozen with SIGSTOP (tests/own_postgres.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from director_process import DirectorProcess
from own_postgres import OwnPostgres

from director.demo.fileserver import FileServer

DB_TIMEOUT = 2.0
SLACK = 2.0  # the client, the director and the database share two cores


@pytest.fixture
def postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def director(tmp_path, postgres) -> Iterator[DirectorProcess]:
    process = DirectorProcess(
        tmp_path,
        database_url=postgres.url,
        env={
            "DIRECTOR_DB_REQUEST_TIMEOUT": str(DB_TIMEOUT),
            "DIRECTOR_DB_CONNECT_TIMEOUT": "1",
            "DIRECTOR_DB_STATEMENT_TIMEOUT": "1",
            "DIRECTOR_REGISTRY_POLL_INTERVAL": "0.2",
        },
        health_test_interval=0.0,
    )
    try:
        yield process.start(["/origins/first", "/origins/second"])
    finally:
        process.stop()


@pytest.fixture
def origin() -> Iterator[FileServer]:
    server = FileServer({"/data/f": b"data\n"}, name="origin").start()
    try:
        yield server
    finally:
        server.stop(timeout=0.1)


def wait_for(condition, within: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not within {within} s: {what}")


def timed(call):
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def test_a_frozen_database_costs_redirects_nothing_and_other_requests_their_deadline(
    director, postgres, origin
):
    director.register("first", "origin", origin.url, "/data")
    redirect = f"{director.url}/api/v1.0/director/origin/data/f"
    assert requests.get(redirect, allow_redirects=False, timeout=5).status_code == 307

    postgres.freeze()
    try:
        # Redirects never needed the database: they keep being answered, at once.
        for _ in range(20):
            answer, took = timed(lambda: requests.get(redirect, allow_redirects=False, timeout=5))
            assert answer.status_code == 307
            assert took < 1.0
        # A request that needs the database gets 503 with Retry-After within its deadline.
        for path in ("/api/v1.0/director_ui/servers", "/api/v1.0/director_ui/namespaces"):
            answer, took = timed(lambda p=path: requests.get(f"{director.url}{p}", timeout=30))
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"]
            assert answer.json()["status"] == "error"
            assert took <= DB_TIMEOUT + SLACK
        answer, took = timed(
            lambda: requests.post(
                f"{director.url}/api/v1.0/director/registerOrigin",
                json={},
                headers={"Authorization": f"Bearer {director.tokens['/origins/second']}"},
                timeout=30,
            )
        )
        assert answer.status_code == 503 and took <= DB_TIMEOUT + SLACK
        # Health tells the truth: degraded, since when, and still 200 (redirects work).
        health = requests.get(f"{director.url}/api/v1.0/health", timeout=5)
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["databaseUnreachableSince"]
        assert any("registry database unreachable" in r for r in health.json()["reasons"])
    finally:
        postgres.thaw()

    # Recovery without a restart: health clears, and a new ad is routed within a second.
    wait_for(lambda: director.health()["status"] == "ok", 30, "health back to ok")
    director.register("second", "origin", origin.url, "/data2")
    second = f"{director.url}/api/v1.0/director/origin/data2/f"
    wait_for(
        lambda: requests.get(second, allow_redirects=False, timeout=5).status_code == 307,
        1.5,
        "the ad sent after recovery routed",
    )


def test_a_database_that_is_down_answers_503_not_500(director, postgres):
    postgres.stop()
    answer, took = timed(
        lambda: requests.get(f"{director.url}/api/v1.0/director_ui/servers", timeout=30)
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"]
    assert "registry database is unavailable" in answer.json()["msg"]
    assert took <= DB_TIMEOUT + SLACK
