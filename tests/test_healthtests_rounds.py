"""HealthTester end to end (reference 7): rounds over registered servers, their recorded
status, skipped servers, at most twenty tests in flight, the lease, and the status weight."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

import gevent
import pytest
import requests
from django.utils import timezone
from helpers import create_server, stored_test_objects, wait_until

from director import registry
from director.models import Downtime, HealthStatus, HealthTestLease, Server
from director.ops.healthtests import MAX_CONCURRENT_TESTS, HealthTester
from director.registry import registry_changed


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


def test_an_origin_and_a_cache_of_one_name_are_tested_and_recorded_apart(
    live_director, file_servers, testers
):
    origin = file_servers(name="origin")
    cache = file_servers(name="cache")
    cache.behaviour.status = 500
    live_director.register("site", "origin", origin.url)
    live_director.register("site", "cache", cache.url)

    run_round(testers())

    statuses = dict(Server.objects.values_list("kind", "health_status"))
    assert statuses == {"origin": HealthStatus.OK, "cache": HealthStatus.ERROR}
    assert origin.count("PUT") == 1 and cache.count("GET") == 1


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
    assert tester._running == {("origin", "origin-a")}
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
    weight_before = registry.current().server("origin-a").status_weight

    run_round(testers())

    assert registry.current().server("origin-a").status_weight == pytest.approx(
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
    weight_before = registry.current().server("origin-a").status_weight

    run_round(testers())

    assert Server.objects.get(name="origin-a").health_status == HealthStatus.ERROR
    assert registry.current().server("origin-a").status_weight == weight_before


def test_the_weight_is_lowered_once_failures_outlast_the_grace(
    live_director, file_servers, testers, director_settings
):
    director_settings(health_test_interval=0.05, health_failure_grace=0.5)
    origin = file_servers(name="origin-a")
    origin.behaviour.status = 500
    create_server("origin-a", "origin", origin.url)  # admin-defined: no re-advertisements
    tester = testers()
    weight_before = registry.current().server("origin-a").status_weight

    run_round(tester)  # first failure, within the grace
    assert registry.current().server("origin-a").status_weight == weight_before
    gevent.sleep(0.7)  # the grace lapses while the server keeps failing
    run_round(tester)
    gevent.sleep(0.1)
    run_round(tester)

    assert Server.objects.get(name="origin-a").health_failing_since is not None
    assert registry.current().server("origin-a").status_weight == pytest.approx(weight_before * 0.1)
