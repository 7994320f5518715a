"""Director health tests (reference 7) against real loopback origins, caches and directors."""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import gevent
import pytest
import requests
from django.utils import timezone
from helpers import create_server, wait_until

from director import registry
from director.demo.fileserver import FileServer, StoredObject
from director.models import Downtime, HealthStatus, HealthTestLease, Server
from director.ops.healthtests import (
    MAX_CONCURRENT_TESTS,
    HealthTester,
    cache_test,
    origin_test,
    run_test,
)
from director.registry import registry_changed
from director.snapshot import ServerView
from director.wire import healthfiles
from director.wire.types import ServerKind

TEST_BODY = healthfiles.TEST_TEXT.encode()
STAMP = "2024-05-06T07:08:09Z"
CACHE_TEST_PATH = (
    f"/pelican/monitoring/directorTest/some-director/2024-05-06/director-test-{STAMP}.txt"
)


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


@pytest.fixture
def testers() -> Iterator[Callable[[], HealthTester]]:
    """Factory of HealthTesters driven by hand (tick, never start); pools stopped after."""
    made: list[HealthTester] = []

    def make() -> HealthTester:
        tester = HealthTester("test-director")
        made.append(tester)
        return tester

    yield make
    for tester in made:
        tester.stop()


def view(server: FileServer, kind: ServerKind = ServerKind.ORIGIN) -> ServerView:
    return ServerView(name=server.name, kind=kind, url=server.url)


def stored_test_objects(server: FileServer) -> list[str]:
    return [path for path in server.objects if path.startswith(healthfiles.TEST_DIRECTORY)]


def wait_for_tests(tester: HealthTester, seconds: float = 5.0) -> None:
    """Wait (bounded) until no test greenlet of ``tester`` is running."""
    deadline = time.monotonic() + seconds
    while tester._running:
        assert time.monotonic() < deadline, f"tests still running: {tester._running}"
        gevent.sleep(0.02)
    tester._pool.join(timeout=max(0.0, deadline - time.monotonic()))


def run_round(tester: HealthTester, seconds: float = 5.0) -> None:
    """Start the due tests, wait for them, and record their outcomes."""
    tester.tick()
    wait_for_tests(tester, seconds)
    tester.tick()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` as is and read everything until the server closes."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


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
    assert healthfiles.parse_test_file(urlsplit(url).path) is not None
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
    assert healthfiles.parse_test_file(path) is not None
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


def test_the_health_test_file_get_answers_the_test_text_and_a_newline(live_director):
    answer = live_director.get(f"/api/v1.0/director/healthTest{CACHE_TEST_PATH}")

    assert answer.status_code == 200
    assert answer.content == TEST_BODY + b"\n"


def test_the_health_test_file_head_answers_the_length_and_no_body(live_director):
    path = f"/api/v1.0/director/healthTest{CACHE_TEST_PATH}"

    reply = raw_exchange(
        live_director.url,
        f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
    )

    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {key.lower(): value.strip() for key, value in (h.split(":", 1) for h in header_lines)}
    assert status_line.split()[1] == "200"
    assert headers["content-length"] == str(len(TEST_BODY) + 1)
    assert body == b""


def test_the_health_test_file_propfind_gives_length_and_the_time_in_its_name(live_director):
    answer = live_director.request(
        "PROPFIND", f"/api/v1.0/director/healthTest{CACHE_TEST_PATH}", headers={"Depth": "0"}
    )

    assert answer.status_code == 207
    assert answer.headers["Content-Type"].startswith("application/xml")
    text = answer.text
    assert f"<D:getcontentlength>{len(TEST_BODY) + 1}</D:getcontentlength>" in text
    assert "<D:getlastmodified>Mon, 06 May 2024 07:08:09 GMT</D:getlastmodified>" in text
    assert "<D:iscollection>0</D:iscollection>" in text
    assert f"<D:href>/api/v1.0/director/healthTest{CACHE_TEST_PATH}</D:href>" in text


def test_a_self_test_name_with_an_offset_is_served_too(live_director):
    answer = live_director.request(
        "PROPFIND",
        "/api/v1.0/director/healthTest/pelican/monitoring/self-test-2024-05-06T09:08:09+02:00.txt",
    )

    assert answer.status_code == 207
    assert "<D:getlastmodified>Mon, 06 May 2024 07:08:09 GMT</D:getlastmodified>" in answer.text


@pytest.mark.parametrize(
    "name",
    [
        "hello.txt",
        "director-test-yesterday.txt",
        "director-test-2024-05-06T07:08:09.txt",  # no time zone
        "director-test-2024-05-06T07:08:09Z",  # no extension
        "other-test-2024-05-06T07:08:09Z.txt",
    ],
)
def test_a_health_test_file_with_a_bad_name_is_a_400_with_the_json_error(live_director, name):
    answer = live_director.get(f"/api/v1.0/director/healthTest/pelican/monitoring/{name}")

    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"status", "msg"}
    assert body["status"] == "error"
    assert body["msg"].startswith("The last path element must be director-test-")


@pytest.mark.parametrize(
    "name",
    ["director-test-0001-01-01T00:00:00+01:00.txt", "self-test-9999-12-31T23:59:59-01:00.txt"],
)
def test_a_health_test_name_at_the_edge_of_time_is_a_400(live_director, name):
    answer = live_director.request("PROPFIND", f"/api/v1.0/director/healthTest/x/{name}")

    assert answer.status_code == 400


def test_the_propfind_href_is_escaped(live_director):
    answer = live_director.request(
        "PROPFIND", "/api/v1.0/director/healthTest/a<b>&/director-test-2026-01-01T00:00:00Z.txt"
    )

    assert answer.status_code == 207
    assert "a&lt;b&gt;&amp;/director-test" in answer.text


def test_the_origin_route_sends_monitoring_paths_to_the_directors_own_test_files(live_director):
    answer = live_director.get(f"/api/v1.0/director/origin{CACHE_TEST_PATH}")

    assert answer.status_code == 307
    assert answer.headers["Location"] == (
        f"{live_director.url}/api/v1.0/director/healthTest{CACHE_TEST_PATH}"
    )
    assert answer.headers["X-Pelican-Namespace"] == (
        "namespace=/pelican/monitoring, require-token=false"
    )
    followed = requests.get(answer.headers["Location"], timeout=5)
    assert followed.content == TEST_BODY + b"\n"


# --- HealthTester end to end -------------------------------------------------------------------


def test_a_round_records_ok_for_a_good_origin_and_error_for_a_bad_one(
    live_director, file_servers, testers
):
    good = file_servers(name="good")
    bad = file_servers(name="bad")
    bad.behaviour.status = 500
    live_director.register("origin-good", "origin", good.url)
    live_director.register("origin-bad", "origin", bad.url)
    before = timezone.now()

    run_round(testers())

    good_row = Server.objects.get(name="origin-good")
    bad_row = Server.objects.get(name="origin-bad")
    assert good_row.health_status == HealthStatus.OK
    assert good_row.health_message
    assert good_row.health_checked_at is not None and good_row.health_checked_at >= before
    assert good_row.health_failing_since is None
    assert bad_row.health_status == HealthStatus.ERROR
    assert "answered 500" in bad_row.health_message
    assert bad_row.health_checked_at is not None
    assert bad_row.health_failing_since == bad_row.health_checked_at
    assert stored_test_objects(good) == []


def test_a_cache_is_tested_through_the_director_in_a_round(live_director, file_servers, testers):
    cache = file_servers(name="cache-a", upstream_director=live_director.url)
    live_director.register("cache-a", "cache", cache.url)

    run_round(testers())

    row = Server.objects.get(name="cache-a")
    assert row.health_status == HealthStatus.OK, row.health_message
    assert [path.split("/")[4] for path in stored_test_objects(cache)] == ["test-director"]


def test_failing_since_is_kept_while_failing_and_cleared_by_a_pass(
    live_director, file_servers, testers, director_settings
):
    director_settings(health_test_interval=0.05)
    origin = file_servers(name="origin-a")
    origin.behaviour.status = 500
    live_director.register("origin-a", "origin", origin.url)
    tester = testers()

    run_round(tester)
    first = Server.objects.get(name="origin-a")
    gevent.sleep(0.1)
    run_round(tester)
    second = Server.objects.get(name="origin-a")
    origin.behaviour.status = None
    gevent.sleep(0.1)
    run_round(tester)
    third = Server.objects.get(name="origin-a")

    assert first.health_status == HealthStatus.ERROR
    assert first.health_failing_since is not None
    assert second.health_status == HealthStatus.ERROR
    assert second.health_checked_at > first.health_checked_at
    assert second.health_failing_since == first.health_failing_since
    assert third.health_status == HealthStatus.OK
    assert third.health_failing_since is None


def test_skipped_servers_directortest_disabled_or_in_downtime_get_no_test(
    live_director, file_servers, testers
):
    tested = file_servers(name="tested")
    opted_out = file_servers(name="opted-out")
    disabled = file_servers(name="disabled")
    down = file_servers(name="down")
    live_director.register("origin-tested", "origin", tested.url)
    live_director.register("origin-opted-out", "origin", opted_out.url, directorTest=True)
    create_server("origin-disabled", "origin", disabled.url, enabled=False)
    down_row = create_server("origin-down", "origin", down.url)
    Downtime.objects.create(server=down_row, starts_at=timezone.now() - dt.timedelta(minutes=1))
    registry_changed()

    run_round(testers())

    assert tested.count("PUT") == 1
    assert opted_out.count("PUT") == 0
    assert disabled.count("PUT") == 0
    assert down.count("PUT") == 0
    statuses = dict(Server.objects.values_list("name", "health_status"))
    assert statuses == {
        "origin-tested": HealthStatus.OK,
        "origin-opted-out": HealthStatus.DISABLED,
        "origin-disabled": HealthStatus.UNKNOWN,
        "origin-down": HealthStatus.UNKNOWN,
    }


def test_a_hanging_origin_has_one_test_in_flight_and_is_reported_after_the_timeout(
    live_director, file_servers, testers, director_settings
):
    director_settings(health_test_interval=0.05, health_test_timeout=2.0)
    origin = file_servers(name="origin-a")
    origin.behaviour.hang = True
    origin.behaviour.hang_seconds = 30
    live_director.register("origin-a", "origin", origin.url)
    tester = testers()
    started = time.monotonic()

    tester.tick()
    wait_until(lambda: origin.count("PUT") == 1, 10.0, "the first test's PUT", every=0.01)
    tester.tick()  # rounds while the test hangs start no second one
    tester.tick()

    assert origin.count("PUT") == 1
    assert tester._running == {"origin-a"}
    wait_for_tests(tester, seconds=10)
    # Cut at its 2 s timeout, not after the 30 s the origin hangs.
    assert time.monotonic() - started < 15.0
    tester.tick()
    row = Server.objects.get(name="origin-a")
    assert row.health_status == HealthStatus.ERROR
    assert "within 2 s" in row.health_message


def test_at_most_twenty_tests_are_in_flight_and_the_rest_start_in_a_later_round(
    live_director, file_servers, testers, director_settings
):
    director_settings(health_test_timeout=2.0)
    origin = file_servers(name="hanging")
    origin.behaviour.hang = True
    origin.behaviour.hang_seconds = 30
    for number in range(MAX_CONCURRENT_TESTS + 5):
        create_server(f"origin-{number:02d}", "origin", origin.url, rebuild=False)
    registry.rebuild()
    tester = testers()

    tester.tick()
    wait_until(lambda: origin.count("PUT") == MAX_CONCURRENT_TESTS, 10.0, "20 PUTs", every=0.01)

    assert len(tester._running) == MAX_CONCURRENT_TESTS
    wait_for_tests(tester, seconds=10)
    assert origin.count("PUT") == MAX_CONCURRENT_TESTS  # no 21st meanwhile
    tester.tick()
    wait_until(lambda: origin.count("PUT") == MAX_CONCURRENT_TESTS + 5, 10.0, "5 more", every=0.01)
    wait_for_tests(tester, seconds=10)
    tester.tick()
    statuses = set(Server.objects.values_list("health_status", flat=True))
    assert statuses == {HealthStatus.ERROR}


def test_a_second_tester_does_not_test_while_the_first_holds_the_lease(
    live_director, file_servers, testers
):
    origin = file_servers(name="origin-a")
    live_director.register("origin-a", "origin", origin.url)
    first, second = testers(), testers()

    first.tick()
    second.tick()
    wait_for_tests(first)
    wait_for_tests(second)

    assert origin.count("PUT") == 1
    lease = HealthTestLease.objects.get(pk=1)
    assert lease.holder == first.holder
    assert lease.expires_at > timezone.now()
    assert second.hold_lease() is False


def test_a_lapsed_lease_is_taken_over_by_another_tester(live_director, file_servers, testers):
    origin = file_servers(name="origin-a")
    live_director.register("origin-a", "origin", origin.url)
    HealthTestLease.objects.create(
        pk=1, holder="gone:1:deadbeef", expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    tester = testers()

    run_round(tester)

    assert HealthTestLease.objects.get(pk=1).holder == tester.holder
    assert origin.count("PUT") == 1


def test_an_interval_of_zero_turns_the_tests_off(
    live_director, file_servers, testers, director_settings
):
    director_settings(health_test_interval=0)
    origin = file_servers(name="origin-a")
    live_director.register("origin-a", "origin", origin.url)
    tester = testers()

    run_round(tester)

    assert tester._running == set()
    assert origin.count("PUT") == 0
    assert Server.objects.get(name="origin-a").health_status == HealthStatus.UNKNOWN
    assert not HealthTestLease.objects.exists()


def test_a_server_failing_beyond_the_grace_has_its_status_weight_lowered(
    live_director, file_servers, testers, director_settings
):
    director_settings(health_failure_grace=0, health_failure_weight=0.25)
    origin = file_servers(name="origin-a")
    origin.behaviour.status = 500
    live_director.register("origin-a", "origin", origin.url)
    weight_before = registry.current().servers["origin-a"].status_weight

    run_round(testers())

    assert registry.current().servers["origin-a"].status_weight == pytest.approx(
        weight_before * 0.25
    )
    listed = requests.get(f"{live_director.url}/api/v1.0/director_ui/servers", timeout=5).json()
    [entry] = [server for server in listed if server["name"] == "origin-a"]
    assert entry["healthStatus"] == "Error"
    assert "answered 500" in entry["healthMessage"]


def test_a_server_failing_within_the_grace_keeps_its_status_weight(
    live_director, file_servers, testers, director_settings
):
    director_settings(health_failure_grace=60)
    origin = file_servers(name="origin-a")
    origin.behaviour.status = 500
    live_director.register("origin-a", "origin", origin.url)
    weight_before = registry.current().servers["origin-a"].status_weight

    run_round(testers())

    assert Server.objects.get(name="origin-a").health_status == HealthStatus.ERROR
    assert registry.current().servers["origin-a"].status_weight == weight_before


def test_the_weight_is_lowered_once_failures_outlast_the_grace(
    live_director, file_servers, testers, director_settings
):
    director_settings(health_test_interval=0.05, health_failure_grace=0.5)
    origin = file_servers(name="origin-a")
    origin.behaviour.status = 500
    create_server("origin-a", "origin", origin.url)  # admin-defined: no re-advertisements
    tester = testers()
    weight_before = registry.current().servers["origin-a"].status_weight

    run_round(tester)  # first failure, within the grace
    assert registry.current().servers["origin-a"].status_weight == weight_before
    gevent.sleep(0.7)  # the grace lapses while the server keeps failing
    run_round(tester)
    gevent.sleep(0.1)
    run_round(tester)

    assert Server.objects.get(name="origin-a").health_failing_since is not None
    assert registry.current().servers["origin-a"].status_weight == pytest.approx(
        weight_before * 0.1
    )
