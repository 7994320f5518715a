"""Downtimes (reference 3.3): admin and advertised windows keep a server out of routing,
checked at request time, and listed by the director_ui API."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from django.utils import timezone
from helpers import create_server, wait_until

from director import registry
from director.models import Downtime, Server, Source
from director.registry import registry_changed

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
ORIGIN_PATH = "/api/v1.0/director/origin/test/f"


def at_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def whole_ms(moment: dt.datetime) -> dt.datetime:
    """``moment`` cut to milliseconds, the precision of the wire format."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def add_downtime(server: Server, starts_in: dt.timedelta, ends_in: dt.timedelta | None) -> Downtime:
    """A downtime written through the ORM, announced as every writer must announce it."""
    now = timezone.now()
    downtime = Downtime.objects.create(
        server=server,
        starts_at=now + starts_in,
        ends_at=None if ends_in is None else now + ends_in,
        severity="Outage (completely inaccessible)",
        description="disk replacement",
    )
    registry_changed()
    return downtime


def ad_downtime(ident: str, starts_in: dt.timedelta, ends_in: dt.timedelta | None) -> dict:
    now = timezone.now()
    return {
        "id": ident,
        "class": "SCHEDULED",
        "severity": "Outage (completely inaccessible)",
        "description": "moving racks",
        "startTime": at_ms(now + starts_in),
        "endTime": -1 if ends_in is None else at_ms(now + ends_in),
    }


def routed(live_director) -> bool:
    answer = live_director.get(ORIGIN_PATH)
    assert answer.status_code in (307, 404), answer.text
    return answer.status_code == 307


# --- admin downtimes and routing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("starts_in", "ends_in", "is_routed"),
    [
        pytest.param(-MINUTE, MINUTE, False, id="active"),
        pytest.param(-MINUTE, None, False, id="indefinite"),
        pytest.param(HOUR, 2 * HOUR, True, id="not-yet-started"),
        pytest.param(HOUR, None, True, id="indefinite-not-yet-started"),
        pytest.param(-2 * HOUR, -MINUTE, True, id="ended"),
    ],
)
def test_only_an_active_or_indefinite_downtime_keeps_a_server_out_of_redirects(
    client, director_settings, file_servers, starts_in, ends_in, is_routed
):
    origin = file_servers({"/test/f": b"data\n"})
    server = create_server("origin-a", "origin", origin.url, rebuild=False)
    add_downtime(server, starts_in, ends_in)
    registry.rebuild()

    answer = client.get(ORIGIN_PATH)

    if is_routed:
        assert answer.status_code == 307
        assert answer["Location"] == f"{origin.url}/test/f"
    else:
        assert answer.status_code == 404
        assert answer.json()["msg"].startswith("No sources found for the requested path")


def test_a_server_in_downtime_leaves_the_others_routed(client, director_settings, file_servers):
    down = file_servers({"/test/f": b"data\n"})
    up = file_servers({"/test/f": b"data\n"})
    add_downtime(create_server("origin-down", "origin", down.url, rebuild=False), -MINUTE, None)
    create_server("origin-up", "origin", up.url, rebuild=False)
    registry.rebuild()

    for _ in range(5):
        answer = client.get(ORIGIN_PATH)
        assert answer.status_code == 307
        assert answer["Location"] == f"{up.url}/test/f"
        assert down.url not in answer.get("Link", "")


def test_a_cache_in_downtime_is_not_offered_by_the_object_endpoint(
    client, director_settings, file_servers
):
    origin = file_servers({"/test/f": b"data\n"})
    down = file_servers({"/test/f": b"data\n"})
    up = file_servers({"/test/f": b"data\n"})
    create_server("origin-a", "origin", origin.url, rebuild=False)
    add_downtime(create_server("cache-down", "cache", down.url, rebuild=False), -MINUTE, HOUR)
    create_server("cache-up", "cache", up.url, rebuild=False)
    registry.rebuild()

    answer = client.get("/api/v1.0/director/object/test/f")

    assert answer.status_code == 307
    assert answer["Location"] == f"{up.url}/test/f"
    assert down.url not in answer["Link"]


def test_a_downtime_starts_at_request_time_without_a_rebuild(live_director, file_servers):
    origin = file_servers({"/test/f": b"data\n"})
    server = create_server("origin-a", "origin", origin.url)
    add_downtime(server, dt.timedelta(seconds=3), None)
    snapshot = registry.current()

    assert routed(live_director) is True
    wait_until(lambda: not routed(live_director), 20.0, "the downtime started", every=0.1)
    assert registry.current() is snapshot


def test_a_downtime_ends_at_request_time_without_a_rebuild(live_director, file_servers):
    origin = file_servers({"/test/f": b"data\n"})
    server = create_server("origin-a", "origin", origin.url)
    add_downtime(server, -MINUTE, dt.timedelta(seconds=3))
    snapshot = registry.current()

    assert routed(live_director) is False
    wait_until(lambda: routed(live_director), 20.0, "the downtime ended", every=0.1)
    assert registry.current() is snapshot


# --- downtimes in advertisements ---------------------------------------------------------------


def test_an_advertised_downtime_is_stored_and_takes_the_server_out_of_routing(
    live_director, file_servers
):
    origin = file_servers({"/test/f": b"data\n"})
    downtime = ad_downtime("dt-1", -MINUTE, None)

    live_director.register("origin-a", "origin", origin.url, downtimes=[downtime])

    row = Downtime.objects.get()
    assert row.server.name == "origin-a"
    assert row.source == Source.ADVERTISED
    assert row.external_id == "dt-1"
    assert row.downtime_class == "SCHEDULED"
    assert row.severity == "Outage (completely inaccessible)"
    assert row.description == "moving racks"
    assert at_ms(row.starts_at) == downtime["startTime"]
    assert row.ends_at is None
    assert routed(live_director) is False


def test_a_readvertisement_without_downtimes_restores_the_server(live_director, file_servers):
    origin = file_servers({"/test/f": b"data\n"})
    live_director.register(
        "origin-a", "origin", origin.url, downtimes=[ad_downtime("dt-1", -MINUTE, HOUR)]
    )
    assert routed(live_director) is False

    live_director.register("origin-a", "origin", origin.url)

    assert not Downtime.objects.exists()
    assert routed(live_director) is True


def test_an_ended_or_future_advertised_downtime_does_not_stop_routing(live_director, file_servers):
    origin = file_servers({"/test/f": b"data\n"})

    live_director.register(
        "origin-a",
        "origin",
        origin.url,
        downtimes=[
            ad_downtime("past", -2 * HOUR, -HOUR),
            ad_downtime("future", HOUR, None),
        ],
    )

    assert Downtime.objects.count() == 2
    assert routed(live_director) is True


def test_admin_downtimes_survive_a_readvertisement(live_director, file_servers):
    origin = file_servers({"/test/f": b"data\n"})
    live_director.register(
        "origin-a", "origin", origin.url, downtimes=[ad_downtime("ad-1", HOUR, None)]
    )
    admin = add_downtime(Server.objects.get(name="origin-a"), -MINUTE, HOUR)
    assert routed(live_director) is False

    live_director.register("origin-a", "origin", origin.url)

    assert list(Downtime.objects.values_list("pk", "source")) == [(admin.pk, Source.ADMIN)]
    assert routed(live_director) is False


def test_the_servers_api_says_a_server_in_downtime_is_filtered(live_director, file_servers):
    live_director.register(
        "origin-a", "origin", file_servers().url, downtimes=[ad_downtime("d", -MINUTE, None)]
    )

    [entry] = requests.get(f"{live_director.url}/api/v1.0/director_ui/servers", timeout=5).json()

    assert entry["filtered"] is True
    assert entry["filteredType"] == "In downtime"
    assert [downtime["id"] for downtime in entry["downtimes"]] == ["d"]


# --- the director_ui downtimes API -------------------------------------------------------------


@pytest.fixture
def two_servers_with_downtimes(live_director, file_servers):
    """origin-a: one advertised indefinite downtime; cache-b: one admin window, not started."""
    now = whole_ms(timezone.now())
    advertised = {
        "id": "ad-7",
        "class": "unscheduled",
        "severity": "Intermittent Outage (may be up for some of the time)",
        "description": "flaky link",
        "startTime": at_ms(now - HOUR),
        "endTime": -1,
    }
    live_director.register("origin-a", "origin", file_servers().url, downtimes=[advertised])
    cache = create_server("cache-b", "cache", file_servers().url)
    admin = Downtime.objects.create(
        server=cache,
        starts_at=now + HOUR,
        ends_at=now + 2 * HOUR,
        severity="No Significant Outage Expected (you shouldn't even notice)",
        description="kernel update",
    )
    return now, admin


def test_the_downtimes_api_lists_every_downtime_with_pelicans_fields(
    live_director, two_servers_with_downtimes
):
    now, admin = two_servers_with_downtimes

    answer = requests.get(f"{live_director.url}/api/v1.0/director_ui/downtimes", timeout=5)

    assert answer.status_code == 200
    assert answer.json() == [
        {
            "active": True,
            "id": "ad-7",
            "serverName": "origin-a",
            "source": "advertised",
            "class": "UNSCHEDULED",
            "severity": "Intermittent Outage (may be up for some of the time)",
            "description": "flaky link",
            "startTime": at_ms(now - HOUR),
            "endTime": -1,
        },
        {
            "active": False,
            "id": str(admin.pk),
            "serverName": "cache-b",
            "source": "admin",
            "class": "SCHEDULED",
            "severity": "No Significant Outage Expected (you shouldn't even notice)",
            "description": "kernel update",
            "startTime": at_ms(now + HOUR),
            "endTime": at_ms(now + 2 * HOUR),
        },
    ]


def test_the_server_downtimes_api_lists_only_that_servers(
    live_director, two_servers_with_downtimes
):
    base = f"{live_director.url}/api/v1.0/director_ui/servers"

    origin = requests.get(f"{base}/origin-a/downtimes", timeout=5)
    cache = requests.get(f"{base}/cache-b/downtimes", timeout=5)

    assert origin.status_code == 200
    assert [(d["id"], d["serverName"], d["active"]) for d in origin.json()] == [
        ("ad-7", "origin-a", True)
    ]
    assert [(d["serverName"], d["source"], d["active"]) for d in cache.json()] == [
        ("cache-b", "admin", False)
    ]


def test_the_server_downtimes_api_is_404_for_an_unknown_name(live_director):
    answer = requests.get(
        f"{live_director.url}/api/v1.0/director_ui/servers/nobody/downtimes", timeout=5
    )

    assert answer.status_code == 404
    assert answer.json() == {"status": "error", "msg": "No server named 'nobody'"}


def test_a_server_without_downtimes_lists_none(live_director, file_servers):
    live_director.register("origin-a", "origin", file_servers().url)

    answer = requests.get(
        f"{live_director.url}/api/v1.0/director_ui/servers/origin-a/downtimes", timeout=5
    )

    assert answer.status_code == 200
    assert answer.json() == []
    assert (
        requests.get(f"{live_director.url}/api/v1.0/director_ui/downtimes", timeout=5).json() == []
    )


def test_the_active_flag_follows_the_clock(live_director, file_servers):
    server = create_server("origin-a", "origin", file_servers().url)
    add_downtime(server, dt.timedelta(seconds=3), None)
    url = f"{live_director.url}/api/v1.0/director_ui/downtimes"

    before = requests.get(url, timeout=5).json()
    assert [entry["active"] for entry in before] == [False]
    wait_until(
        lambda: [entry["active"] for entry in requests.get(url, timeout=5).json()] == [True],
        20.0,
        "the downtime is active",
        every=0.1,
    )


def test_deleting_an_admin_downtime_restores_routing(live_director, file_servers):
    origin = file_servers({"/test/f": b"data\n"})
    downtime = add_downtime(create_server("origin-a", "origin", origin.url), -MINUTE, None)
    assert routed(live_director) is False

    downtime.delete()
    registry_changed()

    assert routed(live_director) is True
