"""The adaptive sort through real redirects (reference 3.4, 4.1-4.3): caches statted over
HTTP, the one holding the object first, the debug body and header with every weight, the
status weight following the advertised status."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter

import pytest
from helpers import (
    AMSTERDAM,
    CHICAGO,
    DISTANCE_WEIGHT,
    MADISON,
    SAN_DIEGO,
    make_ad,
    settle,
)

from director import presence, registry
from director.models import Server
from director.selection import (
    AVAILABLE_WEIGHT,
    UNAVAILABLE_WEIGHT,
)

# --- through real redirects ------------------------------------------------------------------

OBJECT_PATH = "/test/big.bin"
LINCOLN_HEADER = {"X-Pelican-Coordinate": "lat=40.8136,long=-96.7026"}


@pytest.fixture
def holder_and_empty(live_director, file_servers, director_settings):
    """Two caches in Madison: one holds the object (HEAD has Age), one does not have it."""
    director_settings(sort_method="adaptive", stat_timeout=1.0, redirect_timeout=2.0)
    origin = file_servers({OBJECT_PATH: b"x" * 100}, name="origin")
    holder = file_servers(
        {OBJECT_PATH: b"x" * 100}, name="holder", upstream_director=live_director.url
    )
    empty = file_servers(name="empty")
    live_director.register("origin", "origin", origin.url)
    coordinate = {"Lat": MADISON[0], "Long": MADISON[1]}
    live_director.register("holder", "cache", holder.url, coordinate=coordinate)
    live_director.register("empty", "cache", empty.url, coordinate=coordinate)
    return holder, empty


def test_the_cache_holding_the_object_is_first_in_most_redirects(live_director, holder_and_empty):
    holder, empty = holder_and_empty

    answers = [
        live_director.get(f"/api/v1.0/director/object{OBJECT_PATH}", headers=LINCOLN_HEADER)
        for _ in range(40)
    ]

    assert [answer.status_code for answer in answers] == [307] * 40
    firsts = Counter(answer.headers["Location"].split("/test/")[0] for answer in answers)
    assert firsts[holder.url] >= 20, firsts  # about 32 expected (4:1)
    assert all(empty.url in answer.headers["Link"] for answer in answers)
    assert holder.count("HEAD") >= 1 and empty.count("HEAD") >= 1


def test_the_debug_body_shows_the_stat_and_availability_of_the_working_set(
    live_director, holder_and_empty
):
    holder, empty = holder_and_empty
    url = f"/api/v1.0/director/object{OBJECT_PATH}"
    live_director.get(url, headers=LINCOLN_HEADER)
    settle(presence.engine, timeout=10.0)  # the answer the redirect did not wait for
    assert empty.count("HEAD") == 1 and holder.count("HEAD") == 1

    answer = live_director.get(url, headers={**LINCOLN_HEADER, "X-Pelican-Debug": "true"})

    assert answer.status_code == 307
    body = answer.json()
    assert body["directorSortMethod"] == "adaptive"
    assert body["stat"] == {"holder": "present", "empty": "absent"}
    weights = {u: info["RedirectWeights"] for u, info in body["serversInfo"].items()}
    assert weights[holder.url]["availabilityWeight"] == AVAILABLE_WEIGHT
    assert weights[empty.url]["availabilityWeight"] == UNAVAILABLE_WEIGHT
    assert sorted(body["order"]) == ["empty", "holder"]


def test_a_slower_absent_cache_is_not_weighed_as_present(live_director, holder_and_empty):
    holder, empty = holder_and_empty
    empty.behaviour.delay = 0.3  # well within the 1 s stat timeout

    answer = live_director.get(
        f"/api/v1.0/director/object{OBJECT_PATH}",
        headers={**LINCOLN_HEADER, "X-Pelican-Debug": "true"},
    )

    weights = answer.json()["serversInfo"][empty.url]["RedirectWeights"]
    assert weights["availabilityWeight"] == UNAVAILABLE_WEIGHT


def test_the_status_weight_follows_the_advertised_status(live_director, director_settings):
    director_settings(status_ewma_time_constant=60.0)
    url = "https://192.0.2.30:8443"

    def advertise(status: str, seconds_since_last: float) -> Server:
        if seconds_since_last:
            row = Server.objects.get(name="site")
            backdated = row.status_weight_updated_at - dt.timedelta(seconds=seconds_since_last)
            Server.objects.filter(pk=row.pk).update(status_weight_updated_at=backdated)
        answer = live_director.advertise(make_ad("site", "cache", url, status=status))
        assert answer.status_code == 200, answer.text
        return Server.objects.get(name="site")

    first = advertise("warning", 0)
    assert first.status_weight == 0.5

    before = first.status_weight_updated_at - dt.timedelta(seconds=60)
    second = advertise("ok", 60)
    elapsed = (second.status_weight_updated_at - before).total_seconds()
    assert 60 <= elapsed < 65
    # 0.5 + (1 - e^(-elapsed/60)) (1 - 0.5); about 0.816 at 60 s
    assert second.status_weight == pytest.approx(1 - 0.5 * math.exp(-elapsed / 60), rel=1e-12)

    before = second.status_weight_updated_at - dt.timedelta(seconds=120)
    third = advertise("critical", 120)
    elapsed = (third.status_weight_updated_at - before).total_seconds()
    alpha = 1 - math.exp(-elapsed / 60)
    assert third.status_weight == pytest.approx(
        second.status_weight + alpha * (0.01 - second.status_weight), rel=1e-12
    )
    assert registry.current().server("site").status_weight == third.status_weight


def test_the_debug_header_returns_every_weight_for_a_declared_client(live_director):
    servers = {
        "madison": (MADISON, "ok"),
        "chicago": (CHICAGO, "warning"),
        "san-diego": (SAN_DIEGO, "ok"),
        "amsterdam": (AMSTERDAM, "ok"),
        "broken": (MADISON, "critical"),
    }
    live_director.register("origin", "origin", "https://192.0.2.10:8443")
    for name, ((latitude, longitude), status) in servers.items():
        live_director.register(
            name,
            "cache",
            f"https://{name}.example.org:8443",
            coordinate={"Lat": latitude, "Long": longitude},
            status=status,
        )

    answer = live_director.get(
        "/api/v1.0/director/object/test/file.txt",
        headers={**LINCOLN_HEADER, "X-Pelican-Debug": "true"},
    )

    assert answer.status_code == 307
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers["Location"] == "https://madison.example.org:8443/test/file.txt"
    body = answer.json()
    assert body["clientInfo"] == {
        "Coordinate": {
            "Lat": 40.8136,
            "Long": -96.7026,
            "AccuracyRadius": 0,
            "Source": "declared",
            "FromTTLCache": False,
        },
        "ipAddr": "127.0.0.1",
    }
    assert body["directorSortMethod"] == "distance"
    assert body["order"] == ["madison", "chicago", "san-diego", "amsterdam"]
    assert body["excluded"] == {"broken": "status critical"}
    info = body["serversInfo"]
    assert set(info) == {f"https://{n}.example.org:8443" for n in DISTANCE_WEIGHT}
    for name, expected_distance in DISTANCE_WEIGHT.items():
        entry = info[f"https://{name}.example.org:8443"]
        weights = entry["RedirectWeights"]
        assert set(weights) == {
            "distanceWeight",
            "ioLoadWeight",
            "statusWeight",
            "availabilityWeight",
        }
        assert weights["distanceWeight"] == pytest.approx(expected_distance, rel=1e-8)
        assert weights["ioLoadWeight"] == 1.0
        assert weights["statusWeight"] == (0.5 if name == "chicago" else 1.0)
        assert weights["availabilityWeight"] == 1.0
        latitude, longitude = servers[name][0]
        assert entry["Coordinate"]["Lat"] == latitude
        assert entry["Coordinate"]["Long"] == longitude
        assert entry["Coordinate"]["Source"] == "declared"
