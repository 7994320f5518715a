"""Where a client is (reference 3.5): header, overrides, a real MaxMind-format database
written at test time, and the sticky random fallback. The client address behind trusted
proxies: test_geo_client_address.py; server coordinates and all of it through real
redirects: test_geo_end_to_end.py."""

from __future__ import annotations

import ipaddress
import logging
import random
import re

import pytest
from helpers import (
    ALMOST_VAGUE_CLIENT,
    AMSTERDAM,
    CHICAGO,
    CHICAGO_CLIENT_V6,
    CITY_RECORDS,
    LINCOLN_CLIENT,
    LINCOLN_NE,
    MADISON,
    NULL_ISLAND_CLIENT,
    SAN_DIEGO,
    UNKNOWN_CLIENT,
    VAGUE_CLIENT,
    VAGUE_CLIENT_V6,
    FakeClock,
    write_mmdb,
)

from director import locate, registry
from director.geo import (
    ClientLocator,
    Coordinate,
    GeoIPDatabase,
    Override,
    Region,
    match_override,
)
from director.models import GeoIPOverride

pytestmark = pytest.mark.usefixtures("fresh_once_log")  # a new "log once" memory per test


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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
