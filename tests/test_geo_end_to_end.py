"""Where a server is when it declares no coordinate (an override, the GeoIP database), and
the client's location end to end through real redirects (reference 3.5)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from helpers import (
    AMSTERDAM,
    CHICAGO,
    LINCOLN_CLIENT,
    LINCOLN_NE,
    MADISON,
    SAN_DIEGO,
    VAGUE_CLIENT,
    create_server,
)

from director import locate, registry
from director.models import GeoIPOverride

pytestmark = pytest.mark.usefixtures("fresh_once_log")  # a new "log once" memory per test


# --- server coordinates -----------------------------------------------------------------


def test_a_server_without_a_declared_coordinate_is_placed_by_an_override(db, locate_settings):
    create_server("loopback-cache", "cache", "http://127.0.0.1:8443", rebuild=False)
    create_server(
        "declared-cache",
        "cache",
        "http://127.0.0.1:8444",
        latitude=AMSTERDAM[0],
        longitude=AMSTERDAM[1],
        rebuild=False,
    )
    create_server("nowhere-cache", "cache", "http://192.0.2.99:8443", rebuild=False)
    GeoIPOverride.objects.create(network="127.0.0.1/32", latitude=41.8781, longitude=-87.6298)

    snapshot = registry.rebuild()

    placed = snapshot.server("loopback-cache")
    assert (placed.latitude, placed.longitude, placed.location_source) == (*CHICAGO, "override")
    declared = snapshot.server("declared-cache")
    assert (declared.latitude, declared.longitude) == AMSTERDAM
    assert declared.location_source == "declared"
    nowhere = snapshot.server("nowhere-cache")
    assert (nowhere.latitude, nowhere.longitude, nowhere.location_source) == (None, None, "")


def test_a_server_without_a_declared_coordinate_is_placed_by_the_database(
    db, locate_settings, city_db
):
    locate_settings.DIRECTOR_GEOIP_DB = str(city_db)
    create_server("db-cache", "cache", "https://203.0.113.50:8443", rebuild=False)
    create_server("vague-cache", "cache", "https://192.0.2.130:8443", rebuild=False)

    snapshot = registry.rebuild()

    placed = snapshot.server("db-cache")
    assert (placed.latitude, placed.longitude, placed.location_source) == (*LINCOLN_NE, "maxmind")
    assert snapshot.server("vague-cache").location_source == ""


# --- end to end ------------------------------------------------------------------------------

CITY_CACHES = {
    "madison": MADISON,
    "chicago": CHICAGO,
    "san-diego": SAN_DIEGO,
    "amsterdam": AMSTERDAM,
}
OBJECT = "/api/v1.0/director/object/test/data/file.txt"


@pytest.fixture
def city_director(live_director, locate_settings, city_db) -> Callable[..., list[str]]:
    """Four caches with declared coordinates, clients behind a trusted proxy on 127.0.0.1,
    the city database configured; returns a function giving the cache order for headers."""
    locate_settings.DIRECTOR_GEOIP_DB = str(city_db)
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["127.0.0.1/32"]
    live_director.register("origin", "origin", "https://192.0.2.10:8443")
    for name, (latitude, longitude) in CITY_CACHES.items():
        live_director.register(
            name,
            "cache",
            f"https://{name}.example.org:8443",
            coordinate={"Lat": latitude, "Long": longitude},
        )

    def order(**headers: str) -> list[str]:
        answer = live_director.get(OBJECT, headers=headers)
        assert answer.status_code == 307, answer.text
        hosts = re.findall(r"<https://([a-z-]+)\.example\.org:8443/", answer.headers["Link"])
        assert answer.headers["Location"].startswith(f"https://{hosts[0]}.example.org:8443/")
        return hosts

    return order


def test_a_client_in_lincoln_is_sent_to_the_nearest_caches_first(city_director):
    # Great-circle miles from Lincoln (R = 3960 mi): Madison 406.4, Chicago 476.2,
    # San Diego 1259.3, Amsterdam 4483.6.
    assert city_director(**{"X-Forwarded-For": LINCOLN_CLIENT}) == [
        "madison",
        "chicago",
        "san-diego",
        "amsterdam",
    ]


def test_the_debug_body_shows_the_forwarded_address_and_its_maxmind_coordinate(
    live_director, city_director
):
    answer = live_director.get(
        OBJECT, headers={"X-Forwarded-For": LINCOLN_CLIENT, "X-Pelican-Debug": "true"}
    )

    client = answer.json()["clientInfo"]
    assert client["ipAddr"] == LINCOLN_CLIENT
    assert (client["Coordinate"]["Lat"], client["Coordinate"]["Long"]) == LINCOLN_NE
    assert client["Coordinate"]["Source"] == "maxmind"


def test_a_coordinate_header_overrides_the_database(city_director):
    # From Amsterdam: Chicago 4107.6 mi, Madison 4113.2 mi, San Diego 5602.9 mi.
    headers = {"X-Forwarded-For": LINCOLN_CLIENT, "X-Pelican-Coordinate": "lat=52.37,long=4.9"}

    assert city_director(**headers) == ["amsterdam", "chicago", "madison", "san-diego"]


def test_a_client_the_database_cannot_place_gets_the_whole_list(city_director):
    assert sorted(city_director(**{"X-Forwarded-For": VAGUE_CLIENT})) == sorted(CITY_CACHES)


def test_an_override_row_beats_the_database(city_director):
    GeoIPOverride.objects.create(network="203.0.113.0/24", latitude=32.7, longitude=-117.2)
    registry.rebuild()

    # From San Diego: Madison 1664.4 mi, Chicago 1732.1 mi, Amsterdam 5602.9 mi.
    assert city_director(**{"X-Forwarded-For": LINCOLN_CLIENT}) == [
        "san-diego",
        "madison",
        "chicago",
        "amsterdam",
    ]


def test_an_override_row_saved_in_the_admin_takes_effect_without_other_changes(
    city_director, admin_client
):
    assert city_director(**{"X-Forwarded-For": LINCOLN_CLIENT})[0] == "madison"

    answer = admin_client.post(
        "/admin/director/geoipoverride/add/",
        {"network": "203.0.113.0/24", "latitude": "32.7", "longitude": "-117.2", "position": "0"},
    )
    assert answer.status_code == 302, answer.content

    assert city_director(**{"X-Forwarded-For": LINCOLN_CLIENT})[0] == "san-diego"


def test_x_forwarded_for_is_ignored_when_the_proxy_is_not_trusted(
    live_director, city_director, locate_settings
):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8"]
    locate.trusted_proxies.cache_clear()

    answer = live_director.get(
        OBJECT, headers={"X-Forwarded-For": LINCOLN_CLIENT, "X-Pelican-Debug": "true"}
    )

    client = answer.json()["clientInfo"]
    assert client["ipAddr"] == "127.0.0.1"
    assert client["Coordinate"]["Source"] == "random"


def test_a_malformed_coordinate_header_never_breaks_a_redirect(live_director, city_director):
    answers = [
        live_director.get(
            OBJECT,
            headers={"X-Forwarded-For": LINCOLN_CLIENT, "X-Pelican-Coordinate": "lat=x,long=y"},
        )
        for _ in range(3)
    ]

    assert [answer.status_code for answer in answers] == [307, 307, 307]
    assert all(a.headers["Location"].startswith("https://madison.") for a in answers)
