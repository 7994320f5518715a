"""Where a client or a server is (reference 3.5): header, overrides, a real MaxMind-format
database written at test time, the sticky random fallback, the client address behind
trusted proxies, and all of it end to end through real redirects."""

from __future__ import annotations

import ipaddress
import logging
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.test import RequestFactory
from helpers import FakeClock, create_server
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from director import geo, locate, registry
from director.geo import (
    ClientLocator,
    Coordinate,
    GeoIPDatabase,
    OnceLog,
    Override,
    Region,
    match_override,
)
from director.models import GeoIPOverride

LINCOLN_NE = (40.8136, -96.7026)
MADISON = (43.0731, -89.4012)
CHICAGO = (41.8781, -87.6298)
SAN_DIEGO = (32.7157, -117.1611)
AMSTERDAM = (52.3676, 4.9041)

LINCOLN_CLIENT = "203.0.113.7"  # in 203.0.113.0/24, placed in Lincoln by the database
CHICAGO_CLIENT_V6 = "2001:db8:10::42"  # in 2001:db8:10::/48, placed in Chicago
NULL_ISLAND_CLIENT = "198.51.100.9"  # the database says (0, 0): rejected
VAGUE_CLIENT = "192.0.2.200"  # accuracy radius 900 km: rejected
ALMOST_VAGUE_CLIENT = "192.0.2.20"  # accuracy radius 899 km: accepted
VAGUE_CLIENT_V6 = "2001:db8:20::1"  # accuracy radius 1000 km: rejected
UNKNOWN_CLIENT = "100.64.1.1"  # not in the database

# (networks, latitude, longitude, accuracy radius in km)
CITY_RECORDS = [
    (["203.0.113.0/24"], *LINCOLN_NE, 20),
    (["2001:db8:10::/48"], *CHICAGO, 10),
    (["198.51.100.0/24"], 0.0, 0.0, 5),
    (["192.0.2.0/25"], 45.5, -100.25, 899),
    (["192.0.2.128/25"], 44.0, -99.0, 900),
    (["2001:db8:20::/48"], 39.0, -77.0, 1000),
]


def write_mmdb(path: Path, records: list[tuple[list[str], float, float, int]]) -> Path:
    """A GeoLite2-City-shaped database, as MaxMind's own writer format defines it."""
    writer = MMDBWriter(
        ip_version=6,
        database_type="GeoLite2-City",
        languages=["en"],
        description="test",
        ipv4_compatible=True,
    )
    for networks, latitude, longitude, radius in records:
        writer.insert_network(
            IPSet(networks),
            {
                "location": {
                    "latitude": latitude,
                    "longitude": longitude,
                    "accuracy_radius": radius,
                }
            },
        )
    writer.to_db_file(str(path))
    return path


def override(network: str, latitude: float, longitude: float) -> Override:
    return Override(
        ipaddress.ip_network(network, strict=False), Coordinate(latitude, longitude, "override")
    )


def at(coordinate: Coordinate) -> tuple[float, float, str]:
    return coordinate.latitude, coordinate.longitude, coordinate.source


def geo_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "director.geo" and record.levelno == logging.WARNING
    ]


@pytest.fixture(autouse=True)
def fresh_once_log(monkeypatch: pytest.MonkeyPatch) -> OnceLog:
    """A new "log once" memory per test: what an earlier test logged must not hide ours."""
    log = OnceLog()
    monkeypatch.setattr(geo, "once", log)
    monkeypatch.setattr(registry, "once", log)
    return log


@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    return write_mmdb(tmp_path / "GeoLite2-City.mmdb", CITY_RECORDS)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def locate_settings(settings) -> Iterator[object]:
    """Django settings whose GeoIP and proxy values the cached helpers re-read."""

    def clear() -> None:
        locate.trusted_proxies.cache_clear()
        locate.locator.cache_clear()
        locate.geoip_database.cache_clear()

    clear()
    yield settings
    clear()


# --- precedence --------------------------------------------------------------------------


def test_a_declared_header_beats_an_override_the_database_and_the_random_region(city_db):
    locator = ClientLocator(GeoIPDatabase(str(city_db)), rng=random.Random(1))
    overrides = [override("203.0.113.0/24", *AMSTERDAM)]

    found = locator.locate("lat=32.7157,long=-117.1611", LINCOLN_CLIENT, overrides)

    assert at(found) == (*SAN_DIEGO, "declared")


def test_an_override_beats_the_database(city_db):
    locator = ClientLocator(GeoIPDatabase(str(city_db)), rng=random.Random(1))

    found = locator.locate("", LINCOLN_CLIENT, [override("203.0.113.0/24", *AMSTERDAM)])

    assert at(found) == (*AMSTERDAM, "override")


def test_the_database_beats_the_random_region(city_db):
    locator = ClientLocator(GeoIPDatabase(str(city_db)), rng=random.Random(1))

    assert at(locator.locate("", LINCOLN_CLIENT)) == (*LINCOLN_NE, "maxmind")


def test_a_client_known_to_no_source_gets_a_random_point(city_db):
    locator = ClientLocator(GeoIPDatabase(str(city_db)), rng=random.Random(1))

    found = locator.locate("", UNKNOWN_CLIENT, [override("10.0.0.0/8", *AMSTERDAM)])

    assert found.source == "random"


def test_without_a_database_an_unmatched_client_gets_a_random_point():
    locator = ClientLocator(None, rng=random.Random(1))

    assert locator.locate("", LINCOLN_CLIENT).source == "random"


def test_an_unparsable_client_address_gets_a_random_point(city_db):
    locator = ClientLocator(GeoIPDatabase(str(city_db)), rng=random.Random(1))

    assert locator.locate("", "not-an-address", [override("0.0.0.0/0", 1.0, 2.0)]).source == (
        "random"
    )


@pytest.mark.parametrize(
    "header", ["lat=abc,long=1", "lat=91,long=0", "40.8,-96.7", "lat=1;long=2", "lat=nan,long=1"]
)
def test_a_malformed_header_falls_back_to_the_next_source(city_db, header):
    locator = ClientLocator(GeoIPDatabase(str(city_db)), rng=random.Random(1))

    assert at(locator.locate(header, LINCOLN_CLIENT)) == (*LINCOLN_NE, "maxmind")
    assert at(locator.locate(header, "10.1.2.3", [override("10.0.0.0/8", *MADISON)])) == (
        *MADISON,
        "override",
    )


def test_a_malformed_header_is_logged_once_however_often_it_is_sent(city_db, caplog):
    locator = ClientLocator(GeoIPDatabase(str(city_db)), rng=random.Random(1))
    caplog.set_level(logging.WARNING, logger="director.geo")

    for index in range(50):
        found = locator.locate(f"lat=north{index},long=west", LINCOLN_CLIENT)
        assert found.source == "maxmind"

    warnings = geo_warnings(caplog)
    assert len(warnings) == 1
    assert "X-Pelican-Coordinate" in warnings[0].getMessage()


# --- overrides ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("network", "address"),
    [
        ("192.0.2.0/24", "192.0.2.77"),
        ("192.0.2.77", "192.0.2.77"),
        ("192.0.2.77/32", "192.0.2.77"),
        ("2001:db8:abcd::/48", "2001:db8:abcd:12::9"),
        ("2001:db8::9", "2001:db8::9"),
        ("2001:db8::9/128", "[2001:db8::9]"),
    ],
)
def test_an_override_matches_addresses_inside_its_network(network, address):
    locator = ClientLocator(None, rng=random.Random(1))
    overrides = [override(network, *CHICAGO)]

    assert at(locator.locate("", address, overrides)) == (*CHICAGO, "override")


@pytest.mark.parametrize(
    ("network", "address"),
    [
        ("192.0.2.0/24", "192.0.3.1"),
        ("192.0.2.77", "192.0.2.78"),
        ("2001:db8:abcd::/48", "2001:db8:abce::1"),
        ("2001:db8::9", "2001:db8::a"),
    ],
)
def test_an_override_does_not_match_addresses_outside_its_network(network, address):
    assert match_override(ipaddress.ip_address(address), [override(network, *CHICAGO)]) is None


def test_the_first_matching_override_wins():
    broad_then_narrow = [override("10.0.0.0/8", *MADISON), override("10.1.0.0/16", *CHICAGO)]
    narrow_then_broad = list(reversed(broad_then_narrow))
    address = ipaddress.ip_address("10.1.2.3")

    assert match_override(address, broad_then_narrow) == Coordinate(*MADISON, "override")
    assert match_override(address, narrow_then_broad) == Coordinate(*CHICAGO, "override")
    # An address only the broad one holds still finds it, wherever it stands.
    assert match_override(ipaddress.ip_address("10.2.0.1"), narrow_then_broad) == Coordinate(
        *MADISON, "override"
    )


@pytest.mark.parametrize("network", ["::/0", "::/96", "::ffff:0:0/96", "::c000:201/128"])
def test_an_ipv4_address_never_matches_an_ipv6_network(network):
    # Each could be read as holding 192.0.2.1: everything, IPv4-compatible, IPv4-mapped,
    # and ::192.0.2.1 itself.
    address = ipaddress.ip_address("192.0.2.1")
    locator = ClientLocator(None, rng=random.Random(1))

    assert match_override(address, [override(network, *CHICAGO)]) is None
    assert locator.locate("", "192.0.2.1", [override(network, *CHICAGO)]).source == "random"


def test_an_ipv6_address_never_matches_an_ipv4_network():
    assert match_override(ipaddress.ip_address("::1"), [override("0.0.0.0/0", *CHICAGO)]) is None


def test_an_invalid_override_row_is_skipped_and_logged_once(db, caplog):
    caplog.set_level(logging.WARNING, logger="director.geo")
    GeoIPOverride.objects.create(network="not-a-network", latitude=1.0, longitude=2.0)
    GeoIPOverride.objects.create(network="198.51.100.0/24", latitude=3.0, longitude=4.0)

    for _ in range(3):
        snapshot = registry.rebuild()

    assert [str(row.network) for row in snapshot.overrides] == ["198.51.100.0/24"]
    warnings = geo_warnings(caplog)
    assert len(warnings) == 1
    assert "not-a-network" in warnings[0].getMessage()


# --- the MaxMind-format database -----------------------------------------------------------


def test_the_database_places_ipv4_and_ipv6_clients(city_db):
    database = GeoIPDatabase(str(city_db))

    assert database.lookup(ipaddress.ip_address(LINCOLN_CLIENT)) == (
        Coordinate(*LINCOLN_NE, "maxmind"),
        "",
    )
    assert database.lookup(ipaddress.ip_address(CHICAGO_CLIENT_V6)) == (
        Coordinate(*CHICAGO, "maxmind"),
        "",
    )


def test_an_answer_at_zero_zero_is_rejected(city_db):
    database = GeoIPDatabase(str(city_db))
    locator = ClientLocator(database, rng=random.Random(1))

    assert database.lookup(ipaddress.ip_address(NULL_ISLAND_CLIENT)) == (
        None,
        "coordinate (0, 0)",
    )
    assert locator.locate("", NULL_ISLAND_CLIENT).source == "random"


@pytest.mark.parametrize("address", [VAGUE_CLIENT, VAGUE_CLIENT_V6])
def test_an_answer_with_an_accuracy_radius_of_900_km_or_more_is_rejected(city_db, address):
    database = GeoIPDatabase(str(city_db))
    locator = ClientLocator(database, rng=random.Random(1))

    coordinate, reason = database.lookup(ipaddress.ip_address(address))

    assert coordinate is None
    assert reason.startswith("accuracy radius")
    assert locator.locate("", address).source == "random"


def test_an_answer_with_an_accuracy_radius_just_under_900_km_is_kept(city_db):
    locator = ClientLocator(GeoIPDatabase(str(city_db)), rng=random.Random(1))

    assert at(locator.locate("", ALMOST_VAGUE_CLIENT)) == (45.5, -100.25, "maxmind")


def test_an_address_outside_the_database_has_no_answer(city_db):
    coordinate, reason = GeoIPDatabase(str(city_db)).lookup(ipaddress.ip_address(UNKNOWN_CLIENT))

    assert coordinate is None
    assert reason == "address not in the database"


def test_a_missing_database_never_breaks_a_lookup(tmp_path, clock):
    database = GeoIPDatabase(str(tmp_path / "absent.mmdb"), clock=clock)
    locator = ClientLocator(database, rng=random.Random(1))

    for _ in range(20):
        assert locator.locate("", LINCOLN_CLIENT).source == "random"
        clock.advance(10)

    assert database.lookup(ipaddress.ip_address(LINCOLN_CLIENT)) == (None, "no database")


def test_a_database_missing_from_the_start_is_logged_once(tmp_path, clock, caplog):
    caplog.set_level(logging.WARNING, logger="director.geo")
    locator = ClientLocator(
        GeoIPDatabase(str(tmp_path / "absent.mmdb"), clock=clock), rng=random.Random(1)
    )

    for _ in range(20):
        locator.locate("", LINCOLN_CLIENT)
        clock.advance(10)

    warnings = geo_warnings(caplog)
    assert len(warnings) == 1
    assert "missing" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "content",
    [random.Random(5).randbytes(4096), b"", b"\x00" * 100 + b"\xab\xcd\xefMaxMind.com"],
    ids=["random bytes", "empty", "metadata marker at the end"],
)
def test_a_corrupt_database_never_breaks_a_lookup_and_is_logged_once(
    tmp_path, clock, caplog, content
):
    caplog.set_level(logging.WARNING, logger="director.geo")
    path = tmp_path / "corrupt.mmdb"
    path.write_bytes(content)
    locator = ClientLocator(GeoIPDatabase(str(path), clock=clock), rng=random.Random(1))

    for _ in range(20):
        assert locator.locate("", LINCOLN_CLIENT).source == "random"
        clock.advance(10)

    warnings = geo_warnings(caplog)
    assert len(warnings) == 1
    assert "cannot be read" in warnings[0].getMessage()


def test_a_database_with_a_corrupt_search_tree_never_breaks_a_lookup(city_db, clock, caplog):
    caplog.set_level(logging.WARNING, logger="director.geo")
    data = bytearray(city_db.read_bytes())
    metadata_at = data.rfind(b"\xab\xcd\xefMaxMind.com")
    data[:metadata_at] = b"\xff" * metadata_at  # the tree and data sections, metadata kept
    city_db.write_bytes(bytes(data))
    locator = ClientLocator(GeoIPDatabase(str(city_db), clock=clock), rng=random.Random(1))

    for _ in range(5):
        assert locator.locate("", LINCOLN_CLIENT).source == "random"
        clock.advance(10)
    assert len(geo_warnings(caplog)) == 1


def test_a_database_with_incomplete_metadata_never_breaks_a_lookup(tmp_path, clock, caplog):
    caplog.set_level(logging.WARNING, logger="director.geo")
    path = tmp_path / "city.mmdb"
    # The metadata marker followed by an empty map (0xe0: map of size 0).
    path.write_bytes(b"\x00" * 64 + b"\xab\xcd\xefMaxMind.com" + b"\xe0")
    locator = ClientLocator(GeoIPDatabase(str(path), clock=clock), rng=random.Random(1))

    for _ in range(5):
        assert locator.locate("", LINCOLN_CLIENT).source == "random"
        clock.advance(10)
    assert len(geo_warnings(caplog)) == 1


def test_the_database_is_reloaded_when_the_file_changes(city_db, clock, caplog):
    caplog.set_level(logging.INFO, logger="director.geo")
    database = GeoIPDatabase(str(city_db), clock=clock)
    client = ipaddress.ip_address(LINCOLN_CLIENT)
    assert database.lookup(client)[0] == Coordinate(*LINCOLN_NE, "maxmind")

    # A new edition: the client has moved to Madison, and the file has one network more.
    write_mmdb(city_db, [(["203.0.113.0/24"], *MADISON, 20), *CITY_RECORDS[1:]])

    clock.advance(4.9)  # the file is looked at no more than every 5 s
    assert database.lookup(client)[0] == Coordinate(*LINCOLN_NE, "maxmind")
    clock.advance(0.1)
    assert database.lookup(client)[0] == Coordinate(*MADISON, "maxmind")
    loaded = [r for r in caplog.records if r.name == "director.geo" and "loaded" in r.message]
    assert len(loaded) == 2


def test_a_database_that_is_repaired_is_used_again(tmp_path, clock):
    path = tmp_path / "city.mmdb"
    path.write_bytes(b"not a database")
    database = GeoIPDatabase(str(path), clock=clock)
    client = ipaddress.ip_address(LINCOLN_CLIENT)
    assert database.lookup(client) == (None, "no database")

    write_mmdb(path, CITY_RECORDS)
    clock.advance(5)

    assert database.lookup(client)[0] == Coordinate(*LINCOLN_NE, "maxmind")


def test_a_database_file_that_disappears_stops_answering_and_is_logged_once(city_db, clock, caplog):
    caplog.set_level(logging.WARNING, logger="director.geo")
    database = GeoIPDatabase(str(city_db), clock=clock)
    client = ipaddress.ip_address(LINCOLN_CLIENT)
    assert database.lookup(client)[0] is not None

    city_db.unlink()
    for _ in range(5):
        clock.advance(5)
        assert database.lookup(client) == (None, "no database")

    warnings = geo_warnings(caplog)
    assert len(warnings) == 1
    assert "missing" in warnings[0].getMessage()


# --- the random fallback -----------------------------------------------------------------


def test_random_points_lie_inside_the_region():
    region = Region(10.0, 12.0, -3.0, 4.0)
    locator = ClientLocator(None, region, rng=random.Random(3))

    points = [locator.locate("", f"100.64.{n // 250}.{n % 250}") for n in range(500)]

    assert all(p.source == "random" for p in points)
    assert all(10.0 <= p.latitude <= 12.0 and -3.0 <= p.longitude <= 4.0 for p in points)
    assert len({(p.latitude, p.longitude) for p in points}) == 500


def test_the_default_region_is_the_contiguous_united_states():
    point = ClientLocator(None, rng=random.Random(9)).locate("", UNKNOWN_CLIENT)

    assert 30.0 <= point.latitude <= 50.0 and -125.0 <= point.longitude <= -65.0


def test_a_random_point_is_sticky_per_address_for_20_minutes(clock):
    locator = ClientLocator(None, rng=random.Random(4), clock=clock)
    first = locator.locate("", UNKNOWN_CLIENT)
    other = locator.locate("", "100.64.9.9")

    clock.advance(20 * 60 - 0.5)
    assert locator.locate("", UNKNOWN_CLIENT) == first
    assert other != first

    clock.advance(0.5)  # 20 minutes on: a new draw
    again = locator.locate("", UNKNOWN_CLIENT)
    assert again != first
    clock.advance(60)
    assert locator.locate("", UNKNOWN_CLIENT) == again


def test_a_sticky_point_that_lapses_while_it_is_looked_up_is_still_an_answer():
    """The clock moves on during one lookup (a busy loop): the sticky point read at its
    last valid moment is the answer, and nothing reads the memory again to fail."""
    readings: list[float] = []

    def clock() -> float:
        return readings.pop(0) if len(readings) > 1 else readings[0]

    locator = ClientLocator(None, rng=random.Random(4), clock=clock)
    readings[:] = [0.0]
    first = locator.locate("", UNKNOWN_CLIENT)
    # A new override list: the short-lived memory misses; the sticky point is read at
    # its last valid moment, and the clock has passed it by the end of the lookup.
    readings[:] = [20 * 60 - 0.001, 20 * 60 - 0.001, 20 * 60]
    assert locator.locate("", UNKNOWN_CLIENT, overrides=[]) == first


def test_the_sticky_memory_holds_a_bounded_number_of_addresses(clock):
    locator = ClientLocator(None, rng=random.Random(4), clock=clock, sticky_capacity=2)
    first = locator.locate("", "100.64.0.1")
    second = locator.locate("", "100.64.0.2")
    third = locator.locate("", "100.64.0.3")  # the oldest, .1, is forgotten

    assert locator.locate("", "100.64.0.3") == third
    assert locator.locate("", "100.64.0.2") == second
    assert locator.locate("", "100.64.0.1") != first  # drawn again; .2 is forgotten now
    assert locator.locate("", "100.64.0.3") == third


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30,50,-125,-65", Region()),
        (" 10.5 , 20 , -1 , 1.25 ", Region(10.5, 20.0, -1.0, 1.25)),
        ("-90,90,-180,180", Region(-90.0, 90.0, -180.0, 180.0)),
    ],
)
def test_a_region_is_parsed_from_four_numbers(text, expected):
    assert Region.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30,50,-125", "expected lat_min,lat_max,long_min,long_max"),
        ("30,50,-125,-65,1", "expected lat_min,lat_max,long_min,long_max"),
        ("", "expected lat_min,lat_max,long_min,long_max"),
        ("north,50,-125,-65", "could not convert"),
        ("50,30,-125,-65", "min < max"),
        ("30,30,-125,-65", "min < max"),
        ("30,50,-65,-125", "min < max"),
        ("-91,50,-125,-65", "within [-90, 90]"),
        ("30,50,-181,-65", "within [-180, 180]"),
        ("nan,50,-125,-65", "within [-90, 90]"),
    ],
)
def test_a_bad_region_is_refused_with_a_reason(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Region.parse(text)


def test_a_bad_default_region_setting_falls_back_to_the_contiguous_united_states(
    locate_settings,
):
    locate_settings.DIRECTOR_DEFAULT_REGION = "50,30,0,1"

    assert locate.locator().region == Region()


def test_the_default_region_setting_is_used_for_random_points(locate_settings):
    locate_settings.DIRECTOR_DEFAULT_REGION = "-10,-9,100,101"

    point = locate.locator().locate("", UNKNOWN_CLIENT)

    assert -10 <= point.latitude <= -9 and 100 <= point.longitude <= 101


# --- the client's address ------------------------------------------------------------------


def http_request(peer: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/api/v1.0/director/object/test/a", **extra)


def test_the_client_is_the_peer_when_no_proxy_is_trusted(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = []

    assert locate.client_ip(http_request("192.0.2.5", "203.0.113.7")) == "192.0.2.5"


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert locate.client_ip(http_request("192.0.2.5", "203.0.113.7")) == "192.0.2.5"


def test_x_forwarded_for_from_a_trusted_peer_names_the_client(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert locate.client_ip(http_request("10.0.0.1", "203.0.113.7")) == "203.0.113.7"


def test_the_rightmost_untrusted_hop_is_the_client(locate_settings):
    # The client may write anything at the left; only what our proxies appended counts.
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.1"]

    forwarded = "1.2.3.4, 203.0.113.7, 10.9.9.9, 192.0.2.1"
    assert locate.client_ip(http_request("10.0.0.1", forwarded)) == "203.0.113.7"


def test_ipv6_proxies_and_clients_are_understood(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["::1", "fd00::/8"]

    forwarded = "2001:db8::5, fd00::7"
    assert locate.client_ip(http_request("::1", forwarded)) == "2001:db8::5"
    assert locate.client_ip(http_request("::1", "[2001:db8::6]")) == "2001:db8::6"


@pytest.mark.parametrize(
    "forwarded", ["203.0.113.7, garbage", "unknown", "203.0.113.7:8080", "203.0.113.7; 10.0.0.2"]
)
def test_a_malformed_forwarding_chain_falls_back_to_the_peer(locate_settings, forwarded):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert locate.client_ip(http_request("10.0.0.1", forwarded)) == "10.0.0.1"


def test_a_trusted_peer_without_x_forwarded_for_is_the_client(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert locate.client_ip(http_request("10.0.0.1")) == "10.0.0.1"
    assert locate.client_ip(http_request("10.0.0.1", " , ")) == "10.0.0.1"


def test_an_invalid_trusted_proxy_setting_trusts_nobody(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8", "not-a-network"]

    assert locate.client_ip(http_request("10.0.0.1", "203.0.113.7")) == "10.0.0.1"


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
