"""Director health tests (reference 7): origin_test, cache_test and run_test against real
loopback origins, caches and a director."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from helpers import TEST_BODY, stored_test_objects

from director.demo.fileserver import FileServer, StoredObject
from director.ops.healthtests import cache_test, origin_test, run_test
from director.snapshot import ServerView
from director.wire import healthfiles
from director.wire.types import ServerKind


class CorruptingOrigin(FileServer):
    """Stores what is PUT, but reads back other bytes for the director's test objects."""

    def _lookup(self, path: str) -> StoredObject | None:
        stored = super()._lookup(path)
        if stored is not None and path.startswith(healthfiles.TEST_DIRECTORY):
            return StoredObject(b"these are not the bytes you PUT")
        return stored


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as client:
        yield client


@pytest.fixture
def corrupting_origin() -> Iterator[CorruptingOrigin]:
    origin = CorruptingOrigin(name="corrupting").start()
    yield origin
    origin.stop(timeout=0.2)


def view(server: FileServer, kind: ServerKind = ServerKind.ORIGIN) -> ServerView:
    return ServerView(name=server.name, kind=kind, url=server.url)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- origin_test and run_test ------------------------------------------------------------------


def test_an_origin_that_stores_and_returns_the_bytes_passes_and_the_object_is_deleted(
    file_servers, session
):
    origin = file_servers(name="origin-a")

    passed, message = run_test(session, view(origin), "test-director", timeout=5)

    assert passed is True, message
    assert (origin.count("PUT"), origin.count("GET"), origin.count("DELETE")) == (1, 1, 1)
    assert stored_test_objects(origin) == []


def test_the_test_object_is_put_under_the_monitoring_directory_with_the_test_text(file_servers):
    origin = file_servers(name="origin-a")

    class Recording(requests.Session):
        puts: list[tuple[str, bytes]] = []

        def put(self, url, data=None, **kw):  # type: ignore[override]
            self.puts.append((url, data))
            return super().put(url, data=data, **kw)

    with Recording() as recording:
        passed, _ = origin_test(recording, view(origin), timeout=5)

    assert passed is True
    [(url, body)] = recording.puts
    assert url.startswith(f"{origin.url}/pelican/monitoring/directorTest/director-test-")
    assert url.endswith(".txt")
    assert isinstance(healthfiles.check_test_file(urlsplit(url).path), healthfiles.TestFile)
    assert body == TEST_BODY


def test_an_origin_that_returns_other_bytes_fails_with_a_message(corrupting_origin, session):
    passed, message = run_test(session, view(corrupting_origin), "test-director", timeout=5)

    assert passed is False
    assert "differ from those PUT" in message
    assert corrupting_origin.count("DELETE") == 1
    assert stored_test_objects(corrupting_origin) == []


@pytest.mark.parametrize("status", [403, 500])
def test_an_origin_that_refuses_the_put_fails_with_its_status(file_servers, session, status):
    origin = file_servers(name="origin-a")
    origin.behaviour.status = status

    passed, message = run_test(session, view(origin), "test-director", timeout=5)

    assert passed is False
    assert message.startswith("PUT ")
    assert message.endswith(f"answered {status}")
    assert origin.count("GET") == 0


def test_an_origin_that_loses_the_object_fails_on_the_get(file_servers, session):
    origin = file_servers(name="origin-a")
    origin.behaviour.missing = True

    passed, message = run_test(session, view(origin), "test-director", timeout=5)

    assert passed is False
    assert message.startswith("GET ")
    assert message.endswith("answered 404")


def test_a_hanging_origin_is_reported_as_a_failure_within_the_timeout(file_servers, session):
    origin = file_servers(name="origin-a")
    origin.behaviour.hang = True
    origin.behaviour.hang_seconds = 5
    timeout = 1.0

    started = time.monotonic()
    passed, message = run_test(session, view(origin), "test-director", timeout=timeout)
    elapsed = time.monotonic() - started

    assert passed is False
    assert "within 1 s" in message
    assert elapsed < timeout + 0.5


def test_an_origin_that_does_not_listen_is_a_transport_error(session):
    dead = ServerView(name="dead", kind=ServerKind.ORIGIN, url=f"http://127.0.0.1:{closed_port()}")

    passed, message = run_test(session, dead, "test-director", timeout=2)

    assert passed is False
    assert message.startswith("transport error: ")


# --- cache_test through a real cache and a real director ---------------------------------------


def test_a_cache_pulls_the_test_object_through_the_director_and_passes(
    live_director, file_servers, session
):
    cache = file_servers(name="cache-a", upstream_director=live_director.url)

    passed, message = cache_test(session, view(cache, ServerKind.CACHE), "test-director", 5)

    assert passed is True, message
    [path] = stored_test_objects(cache)
    assert path.startswith("/pelican/monitoring/directorTest/test-director/")
    assert isinstance(healthfiles.check_test_file(path), healthfiles.TestFile)
    assert cache.objects[path].data == TEST_BODY + b"\n"


def test_a_cache_that_cannot_reach_the_director_fails(file_servers, session):
    cache = file_servers(name="cache-a", upstream_director=f"http://127.0.0.1:{closed_port()}")

    passed, message = run_test(session, view(cache, ServerKind.CACHE), "test-director", 5)

    assert passed is False
    assert message.endswith("answered 404")


def test_a_cache_that_returns_other_bytes_fails(file_servers, session):
    cache = file_servers(name="cache-a")
    cache.behaviour.any_path = b"stale bytes\n"

    passed, message = run_test(session, view(cache, ServerKind.CACHE), "test-director", 5)

    assert passed is False
    assert "other bytes" in message
